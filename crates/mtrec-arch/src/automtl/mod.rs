//! AutoMTL (Jiang et al., KDD 2024; spec §4): the DESAN search space as one super-network, and
//! the discrete architectures the search exports.
//!
//! The super-network and a searched architecture are the same module type, [`AutoMtl`]: a
//! block is either still a mixture of candidate ops or fixed to one, a gate either still has
//! architecture parameters or a fixed 0/1 mask. Discretising every choice therefore yields,
//! field for field, the module that [`AutoMtl::from_genotype`] builds, which is what lets a
//! searched network keep its weights into finetuning and be saved, reloaded and retrained from
//! its JSON like any zoo model.

pub mod analysis;
pub mod block;
pub mod discretise;
pub mod gate;
pub mod genotype;
pub mod network;
pub mod regularise;
pub mod space;

pub use block::{Block, MixedBlock, Op, normalised_entropy};
pub use discretise::{Choices, Decision, OpenBlock};
pub use gate::{BinaryGate, GateMode, straight_through};
pub use genotype::{ExpertGene, FeatureGene, Genotype, LayerGene, OpKind, TowerGene};
pub use network::{AutoMtl, BlockAt, Expert, ExpertLayer, FeatureSelector, GateAt, Tower};
pub use regularise::ArchRegularisation;
pub use space::SpaceConfig;

#[cfg(test)]
mod tests;
