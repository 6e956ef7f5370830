//! Loss weighting: how per-task losses become the one scalar the optimizer follows.
//!
//! Weighting is an axis independent of the architecture (LibMTL's split): the engine hands a
//! [`Weighting`] the per-task losses of a batch and differentiates what it returns, so every
//! weighting works with every model. Schemes that need more than the losses (per-task
//! gradients of the shared parameters) declare it through capabilities, never by name.

pub mod config;
pub mod fixed;

pub use config::WeightingConfig;
pub use fixed::FixedWeights;

use burn::prelude::*;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum WeightingError {
    #[error("[weighting] names task `{task}`, which the data does not have (tasks: {known})")]
    UnknownTask { task: String, known: String },
    #[error("[weighting] weight of task `{task}` must be finite and >= 0, got {value}")]
    BadWeight { task: String, value: f64 },
}

/// Combines per-task losses into the training objective.
pub trait Weighting: Send {
    /// `losses` is `[T]` in task order; returns the scalar `[1]` to differentiate.
    fn combine(&mut self, losses: Tensor<1>) -> Tensor<1>;

    /// The weights currently applied, in task order (for logs and reports).
    fn weights(&self) -> Vec<f64>;

    /// Whether the scheme needs each task's gradient of the shared parameters separately
    /// (MetaBalance-style schemes); the engine then runs one backward pass per task.
    fn needs_shared_grads(&self) -> bool {
        false
    }
}

/// Builds the weighting a config asks for, for the given task names.
pub fn build(
    cfg: &WeightingConfig,
    task_names: &[String],
) -> Result<Box<dyn Weighting>, WeightingError> {
    match cfg {
        WeightingConfig::Fixed { weights } => Ok(Box::new(FixedWeights::from_names(
            weights.as_ref(),
            task_names,
        )?)),
    }
}
