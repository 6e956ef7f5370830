//! Evaluation metrics for multi-task recommendation: exact ROC AUC, binary
//! logloss and mean squared error, plus a per-task summary.
//!
//! Why a crate of its own: the engine, the report and the NAS driver all judge
//! tasks by the same numbers, and those numbers must not depend on which of
//! them computed it. Every metric is a plain function over `f32` slices that
//! accumulates in `f64` and returns a typed [`MetricError`] instead of a NaN
//! when its input cannot give a meaningful value (empty, mismatched lengths,
//! non-finite values, a single class for AUC).
//!
//! One metric per file:
//! - [`auc`](mod@auc): exact ROC AUC through the Mann-Whitney U statistic, ties count
//!   one half, `O(n log n)`; [`weighted_auc`] the same with example weights;
//! - [`logloss`](mod@logloss): mean binary cross-entropy of probabilities;
//! - [`mse`](mod@mse): mean squared error;
//! - [`task`](mod@task): [`TaskMetrics`], the summary of one task, and
//!   [`TaskAccumulator`], which gathers predictions batch by batch.

pub mod auc;
pub mod error;
pub mod logloss;
pub mod mse;
pub mod task;

pub use auc::{auc, weighted_auc};
pub use error::{MetricError, Operand};
pub use logloss::{logloss, weighted_logloss};
pub use mse::{mse, weighted_mse};
pub use task::{
    TaskAccumulator, TaskMetrics, binary_metrics, higher_is_better, regression_metrics,
    weighted_binary_metrics, weighted_regression_metrics,
};
