use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    /// A config that `--set` overrides made invalid; `overrides` lists those at fault
    /// (`--set train.learning_rat=0.003`).
    #[error("{path} with {overrides}: {message}")]
    Override {
        path: PathBuf,
        overrides: String,
        message: String,
    },
    #[error(transparent)]
    Data(#[from] mtrec_data::DataError),
    #[error(transparent)]
    Arch(#[from] mtrec_arch::ArchError),
    #[error(transparent)]
    Weighting(#[from] mtrec_weighting::WeightingError),
    /// A metric failed; `split` (set by [`EngineError::in_split`]) says on which data.
    #[error("{}task `{task}`: {error}", split.as_deref().map(|s| format!("{s}: ")).unwrap_or_default())]
    Metric {
        task: String,
        split: Option<String>,
        error: mtrec_metrics::MetricError,
    },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    /// A run state (`<out>.state`) that cannot be resumed.
    #[error("run state {path}: {message}")]
    State { path: PathBuf, message: String },
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
    /// Names the split (or file) a metric error happened on; other errors pass unchanged.
    pub fn in_split(self, name: &str) -> Self {
        match self {
            EngineError::Metric { task, error, .. } => EngineError::Metric {
                task,
                split: Some(name.to_string()),
                error,
            },
            e => e,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, err: impl std::fmt::Display) -> Self {
        EngineError::Io {
            path: path.into(),
            message: err.to_string(),
        }
    }
}
