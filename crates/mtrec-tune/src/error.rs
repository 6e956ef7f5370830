use std::path::{Path, PathBuf};

/// What can go wrong before or between trials. A trial that fails to train is not an error
/// here: it is a logged outcome (see [`crate::TrialStatus`]).
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// A mistake in the search-space file; `line` is 1-based where the mistake has a place.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Space {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// A trial log that cannot be resumed (a damaged line, or one written for another space).
    #[error("{} line {line}: {message}", path.display())]
    Log {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// `error` is not a `source()`: the message already carries it, and a source would be
    /// printed a second time by `{:#}`-style error chains.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The surrogate could not be fitted (no positive-definite covariance on the whole
    /// hyper-parameter grid: only with non-finite objective values).
    #[error("Gaussian process: {0}")]
    Gp(String),
}

impl TuneError {
    pub(crate) fn io(path: &Path, error: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            error,
        }
    }
}
