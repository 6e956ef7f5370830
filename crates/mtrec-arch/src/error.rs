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

impl ArchError {
    /// Checks the layer widths of one MLP part of `model`: at least one layer when `required`,
    /// and no layer of width 0. Every model's config validation goes through here, so the same
    /// mistake reads the same in every model.
    pub(crate) fn check_layers(
        model: &'static str,
        what: &str,
        widths: &[usize],
        required: bool,
    ) -> Result<(), ArchError> {
        let message = if required && widths.is_empty() {
            format!("{what} needs at least one layer")
        } else if widths.contains(&0) {
            format!("{what} has a layer of width 0: {widths:?}")
        } else {
            return Ok(());
        };
        Err(ArchError::Invalid { model, message })
    }
}
