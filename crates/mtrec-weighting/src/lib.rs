//! Loss weighting: how per-task losses become the one update the optimizer follows.
//!
//! Weighting is an axis independent of the architecture (LibMTL's split): the engine hands a
//! [`Weighting`] the per-task losses of a batch and differentiates what it returns, so every
//! weighting works with every model. Schemes that need more than the losses (each task's
//! gradient of the shared parameters, as MetaBalance does) say so through
//! [`Weighting::per_task_gradients`]; the engine then decides which parameters are shared
//! (those reached by more than one task's loss), never the model.

pub mod config;
pub mod fixed;
pub mod metabalance;
pub mod uncertainty;

use std::collections::BTreeMap;

pub use config::WeightingConfig;
pub use fixed::FixedWeights;
pub use metabalance::MetaBalance;
pub use uncertainty::UncertaintyWeighting;

use burn::module::ParamId;
use burn::prelude::*;
use burn::tensor::Gradients;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum WeightingError {
    #[error("[weighting] names task `{task}`, which the data does not have (tasks: {known})")]
    UnknownTask { task: String, known: String },
    #[error("[weighting] weight of task `{task}` must be finite and >= 0, got {value}")]
    BadWeight { task: String, value: f64 },
    #[error("[weighting] {0}")]
    Invalid(String),
}

/// What the engine knows about the optimisation step in progress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepContext {
    /// Optimizer steps taken before this one (0 for the first).
    pub step: usize,
    /// 1-based training epoch.
    pub epoch: usize,
    /// The model's learning rate; learnable weightings step their own parameters with it.
    pub learning_rate: f64,
}

/// Combines per-task losses (or per-task gradients) into the training update.
pub trait Weighting: Send {
    /// `losses` is `[T]` in task order, on the autodiff device; returns the scalar `[1]` to
    /// differentiate. Learnable weightings use their own parameters here, so the engine's
    /// backward pass reaches them and [`Weighting::update`] can step them.
    fn combine(&mut self, losses: Tensor<1>, ctx: &StepContext) -> Tensor<1>;

    /// The loss weights currently applied, in task order (validation loss, logs, reports).
    fn weights(&self) -> Vec<f64>;

    /// Figures worth a line in the per-epoch log, such as `weight/income` or
    /// `log_variance/income`. Names are `<quantity>/<task>` so a plot can group them.
    fn stats(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (name, w) in self.task_names().iter().zip(self.weights()) {
            out.insert(format!("weight/{name}"), w);
        }
        out
    }

    /// Task names in task order (for [`Weighting::stats`]).
    fn task_names(&self) -> &[String];

    /// Whether the engine must differentiate every task's loss separately (one forward and
    /// backward pass per task) and call [`Weighting::combine_shared`] for each shared
    /// parameter. Parameters reached by one task only take that task's gradient unchanged.
    fn per_task_gradients(&self) -> bool {
        false
    }

    /// The gradient to apply to shared parameter `param`, given each task's gradient of it
    /// (`grads[k]`, flattened; `None` where task `k` does not reach it). The default adds
    /// them up.
    fn combine_shared(
        &mut self,
        param: ParamId,
        grads: Vec<Option<Tensor<1>>>,
        ctx: &StepContext,
    ) -> Tensor<1> {
        let _ = (param, ctx);
        grads
            .into_iter()
            .flatten()
            .reduce(|a, b| a + b)
            .expect("a shared parameter has at least one task's gradient")
    }

    /// Called after the backward pass of [`Weighting::combine`]'s objective, before the model's
    /// optimizer step: a learnable weighting takes its own gradients out of `grads` and steps.
    fn update(&mut self, grads: &mut Gradients, ctx: &StepContext) {
        let _ = (grads, ctx);
    }

    /// The weighting's own training state (learnt parameters with their optimizer, moving
    /// averages), for a run that must resume exactly; empty when it has none.
    fn save_state(&self) -> Result<Vec<u8>, WeightingError> {
        Ok(Vec::new())
    }

    /// Takes back what [`Weighting::save_state`] wrote.
    fn load_state(&mut self, bytes: &[u8]) -> Result<(), WeightingError> {
        if bytes.is_empty() {
            Ok(())
        } else {
            Err(WeightingError::Invalid(
                "the saved run state holds weighting state this weighting does not have".into(),
            ))
        }
    }
}

/// CBOR for a weighting's saved state (f64 values come back bit for bit).
pub(crate) fn encode_state(value: &impl serde::Serialize) -> Result<Vec<u8>, WeightingError> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out)
        .map_err(|e| WeightingError::Invalid(format!("encoding the weighting state: {e}")))?;
    Ok(out)
}

pub(crate) fn decode_state<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, WeightingError> {
    ciborium::from_reader(bytes)
        .map_err(|e| WeightingError::Invalid(format!("the saved weighting state is damaged: {e}")))
}

/// Builds the weighting a config asks for, for the given task names; learnable weightings put
/// their parameters on `device` (the autodiff device the model trains on).
pub fn build(
    cfg: &WeightingConfig,
    task_names: &[String],
    device: &Device,
) -> Result<Box<dyn Weighting>, WeightingError> {
    match cfg {
        WeightingConfig::Fixed { weights } => Ok(Box::new(FixedWeights::from_names(
            weights.as_ref(),
            task_names,
        )?)),
        WeightingConfig::Uncertainty { init } => Ok(Box::new(UncertaintyWeighting::new(
            task_names, *init, device,
        )?)),
        WeightingConfig::MetaBalance {
            target,
            relax,
            beta,
        } => Ok(Box::new(MetaBalance::new(
            task_names,
            target.as_deref(),
            *relax,
            *beta,
        )?)),
    }
}
