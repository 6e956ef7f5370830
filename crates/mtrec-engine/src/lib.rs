//! The only training and evaluation loop of mtrec.
//!
//! The engine owns the loop (batches, losses, optimizer steps, early stopping, checkpoints) and
//! reports progress as [`Event`]s to an [`Observer`]; it never prints. Models come from
//! `mtrec-arch` through the `MultiTaskModel` trait, loss combination from `mtrec-weighting`,
//! so neither knows about the other and every pair works.

pub mod checkpoint;
pub mod config;
pub mod curves;
pub mod device;
pub mod error;
pub mod evaluate;
pub mod events;
pub mod gates;
pub mod lazy_adam;
pub mod loss;
pub mod requirements;
pub mod resume;
pub mod scheme;
pub mod search;
pub mod stepper;
pub mod tensors;
pub mod train;

pub use checkpoint::{Checkpoint, load_checkpoint, save_checkpoint, save_checkpoint_with};
pub use config::{ExperimentConfig, Monitor, TrainConfig};
pub use curves::{Curve, CurvePlan, CurvePoint, build_and_train_curve, build_seeded, train_curve};
pub use error::EngineError;
pub use evaluate::{EvalReport, TaskReport, evaluate, predict};
pub use events::{Event, NullObserver, Observer};
pub use loss::{task_losses, weighted_task_losses};
pub use requirements::{check_tasks, task_requirements};
pub use resume::StateFile;
pub use scheme::{Predictor, SchemeConfig, Trainer};
pub use search::{
    GateSchedule, SearchConfig, SearchLog, SearchOutcome, SearchStepper, search, search_resumable,
};
pub use stepper::Stepper;
pub use train::{EpochRecord, TrainOutcome, fit, fit_resumable, train, train_resumable};

pub use device::{DeviceChoice, default_device, select_device};
