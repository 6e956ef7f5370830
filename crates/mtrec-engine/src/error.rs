use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error(transparent)]
    Data(#[from] mtrec_data::DataError),
    #[error(transparent)]
    Arch(#[from] mtrec_arch::ArchError),
    #[error(transparent)]
    Weighting(#[from] mtrec_weighting::WeightingError),
    #[error("task `{task}`: {error}")]
    Metric {
        task: String,
        error: mtrec_metrics::MetricError,
    },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("training diverged at epoch {epoch}, batch {batch}: the loss is {loss}")]
    Diverged {
        epoch: usize,
        batch: usize,
        loss: f64,
    },
    #[error("{0}")]
    Invalid(String),
}

impl EngineError {
    pub(crate) fn io(path: impl Into<PathBuf>, err: impl std::fmt::Display) -> Self {
        EngineError::Io {
            path: path.into(),
            message: err.to_string(),
        }
    }
}
