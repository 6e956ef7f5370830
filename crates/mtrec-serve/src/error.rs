//! What can stop the server itself (as opposed to a bad request, which is an answer: see
//! [`crate::api::ApiError`]).

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The checkpoint cannot be loaded (at start, or on a reload, which keeps the old model).
    #[error(transparent)]
    Checkpoint(#[from] mtrec_engine::EngineError),

    /// Shown with its cause by `{:#}` (anyhow's chain), so the message does not repeat it.
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Io(#[from] std::io::Error),
}
