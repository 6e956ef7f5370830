//! Gaussian-process Bayesian optimisation of an experiment's hyper-parameters, for
//! `mtrec tune`.
//!
//! The tuner knows nothing of models or tensors: a [`Space`] says which config keys vary and
//! how they map to the unit cube, [`propose`] picks the next point from the finished
//! trials (a Latin hypercube, then maximum expected improvement under a [`Gp`]), and the
//! [`TrialLog`] is the whole state, so a stopped tuning resumes where it was. Training a
//! trial and reading its validation figure are the caller's business.

pub mod acquisition;
pub mod error;
pub mod gp;
pub mod objective;
pub mod optimizer;
pub mod space;
pub mod trial_log;

pub use acquisition::expected_improvement;
pub use error::TuneError;
pub use gp::{Gp, Hyper};
pub use objective::{Direction, Metric, Objective, TaskMetric};
pub use optimizer::{Observation, Proposal, Source, propose, propose_random};
pub use space::{Assignment, Param, ParamKind, Space};
pub use trial_log::{TrialLog, TrialRecord, TrialStatus};
