//! The model zoo: every multi-task architecture behind one [`MultiTaskModel`] trait.
//!
//! One file per architecture, one [`ArchConfig`] enum naming them all (the `[model]` section of
//! an experiment config), one [`build`] turning a config and the data's feature layout into a
//! [`Model`]. The engine only sees the trait, so a new architecture is a new file, a new enum
//! variant and a new match arm here: nothing in the training loop changes.

pub mod adatt;
pub mod automtl;
pub mod config;
pub mod cross_stitch;
pub mod error;
pub mod esmm;
pub mod gates;
pub mod l2_constrained;
pub mod levels;
pub mod model;
pub mod moe;
pub mod ple;
pub mod shared_bottom;
pub mod single_task;
pub mod tensor_factorization;
#[cfg(test)]
mod test_support;

pub use adatt::{AdaTT, AdaTTConfig};
pub use config::{ArchConfig, BottomConfig, EmbeddingConfig, MoeConfig};
pub use cross_stitch::{CrossStitch, CrossStitchConfig};
pub use error::ArchError;
pub use esmm::{Esmm, EsmmConfig};
pub use gates::{ExpertOwner, GateLayer, GateOwner, gate_weights, has_expert_gates};
pub use l2_constrained::{L2Constrained, L2ConstrainedConfig};
pub use model::{DerivedTask, Model, ModelOutput, MultiTaskModel, build};
pub use moe::Moe;
pub use mtrec_nn::ModelInput;
pub use ple::{Ple, PleConfig};
pub use shared_bottom::SharedBottom;
pub use single_task::SingleTask;
pub use tensor_factorization::{TensorFactorization, TensorFactorizationConfig};
