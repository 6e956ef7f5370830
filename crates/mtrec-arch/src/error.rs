use thiserror::Error;

#[derive(Debug, Error)]
pub enum ArchError {
    #[error("model `{model}`: {message}")]
    Invalid {
        model: &'static str,
        message: String,
    },
    #[error("the data has neither sparse nor dense input fields")]
    NoInputs,
    #[error("the data has no task")]
    NoTasks,
}
