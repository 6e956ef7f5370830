//! `mtrec serve`: predictions of a checkpoint over HTTP.
//!
//! A request's rows go through the checkpoint's own preprocessor (vocabularies, statistics,
//! buckets, label scales) by the same code as `mtrec predict`'s file rows, so served and
//! batch predictions agree exactly. The pieces, in the order a request meets them:
//!
//! - [`api`]: the wire format (rows in, per-task predictions out, JSON errors naming the
//!   row and field);
//! - [`decode`]: JSON values to the cells a file would hold, then to model input;
//! - [`worker`]: inference on a thread of its own, queued requests joined into one batch;
//! - [`model`]: the served checkpoint, swapped whole by a reload;
//! - [`http`]: the routes and limits; [`server`]: binding, reload triggers, graceful
//!   shutdown;
//! - [`client`] and [`loadtest`]: a loopback HTTP client, and the load test built on it
//!   (`mtrec-loadtest`).

pub mod api;
pub mod client;
pub mod decode;
pub mod error;
pub mod http;
pub mod loadtest;
pub mod model;
pub mod server;
pub mod worker;

pub use api::{ErrorBody, PredictAnswer, RowError};
pub use client::Client;
pub use error::ServeError;
pub use http::Limits;
pub use model::{LoadedModel, ModelSlot, Reloaded};
pub use server::{ServeOptions, Server, ServerHandle, shutdown_signal};
