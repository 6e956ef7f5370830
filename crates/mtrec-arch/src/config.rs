//! The `[model]` and `[embedding]` sections of an experiment config.
//!
//! Defaults are the MMoE paper's synthetic-data setting where the paper gives one; the Census
//! configs in `configs/` override them.

use mtrec_data::TaskRequirement;
use serde::{Deserialize, Serialize};

use crate::adatt::AdaTTConfig;
use crate::automtl::{Genotype, SpaceConfig};
use crate::cross_stitch::CrossStitchConfig;
use crate::esmm::EsmmConfig;
use crate::l2_constrained::L2ConstrainedConfig;
use crate::ple::PleConfig;
use crate::tensor_factorization::TensorFactorizationConfig;

/// How the sparse fields become the model input (spec §1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddingConfig {
    /// Embedding width `d_emb` of every sparse field.
    pub dim: usize,
    /// Standard deviation of the normal initialisation.
    pub init_std: f64,
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        Self {
            dim: 8,
            init_std: 0.05,
        }
    }
}

/// Which architecture, with its own hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ArchConfig {
    SingleTask(BottomConfig),
    SharedBottom(BottomConfig),
    Omoe(MoeConfig),
    Mmoe(MoeConfig),
    /// CGC: PLE with a single extraction level (`n_levels` is ignored).
    Cgc(PleConfig),
    Ple(PleConfig),
    /// AdaTT; `n_shared_experts = 0` is AdaTT-sp.
    Adatt(AdaTTConfig),
    CrossStitch(CrossStitchConfig),
    L2Constrained(L2ConstrainedConfig),
    TensorFactorization(TensorFactorizationConfig),
    Esmm(EsmmConfig),
    /// The AutoMTL search space (DESAN); `mtrec search` searches it, `build` gives the
    /// super-network.
    Automtl(SpaceConfig),
    /// A discrete architecture found by `mtrec search` (what `--arch F.json` loads, and what a
    /// searched model's checkpoint records).
    Searched(Genotype),
}

impl Default for ArchConfig {
    fn default() -> Self {
        ArchConfig::Mmoe(MoeConfig::default())
    }
}

impl ArchConfig {
    /// The config's `kind` string.
    pub fn kind(&self) -> &'static str {
        match self {
            ArchConfig::SingleTask(_) => "single-task",
            ArchConfig::SharedBottom(_) => "shared-bottom",
            ArchConfig::Omoe(_) => "omoe",
            ArchConfig::Mmoe(_) => "mmoe",
            ArchConfig::Cgc(_) => "cgc",
            ArchConfig::Ple(_) => "ple",
            ArchConfig::Adatt(_) => "adatt",
            ArchConfig::CrossStitch(_) => "cross-stitch",
            ArchConfig::L2Constrained(_) => "l2-constrained",
            ArchConfig::TensorFactorization(_) => "tensor-factorization",
            ArchConfig::Esmm(_) => "esmm",
            ArchConfig::Automtl(_) => "automtl",
            ArchConfig::Searched(_) => "searched",
        }
    }

    /// What the architecture assumes about the tasks beyond their number being at least one
    /// (ESMM: click then conversion, both binary, no conversion without a click); the engine
    /// checks it against the data before training. Empty for the models that take any tasks.
    pub fn task_requirements(&self) -> Vec<TaskRequirement> {
        match self {
            ArchConfig::Esmm(_) => EsmmConfig::task_requirements(),
            _ => Vec::new(),
        }
    }

    /// Every kind with a one-line description, for `--help` texts and `mtrec models`.
    pub fn catalogue() -> &'static [(&'static str, &'static str)] {
        &[
            (
                "single-task",
                "one independent MLP bottom and tower per task, no sharing",
            ),
            (
                "shared-bottom",
                "one shared MLP bottom, one tower per task (hard parameter sharing)",
            ),
            (
                "omoe",
                "one-gate mixture of experts: all tasks share one softmax gate",
            ),
            (
                "mmoe",
                "multi-gate mixture of experts (Ma et al., KDD 2018): one gate per task",
            ),
            (
                "cgc",
                "customized gate control: task-specific and shared experts, one level (Tang et al., RecSys 2020)",
            ),
            (
                "ple",
                "progressive layered extraction: stacked CGC levels with shared gates (Tang et al., RecSys 2020)",
            ),
            (
                "adatt",
                "adaptive task-to-task fusion with native experts; n_shared_experts = 0 is AdaTT-sp (Li et al., KDD 2023)",
            ),
            (
                "cross-stitch",
                "one MLP column per task, mixed after every hidden layer by learned TxT units (Misra et al., CVPR 2016)",
            ),
            (
                "l2-constrained",
                "one network per task tied by an alpha-weighted squared L2 distance (Duong et al., ACL 2015)",
            ),
            (
                "tensor-factorization",
                "per-task hidden layers whose stacked weights are one Tucker-factorised tensor (Yang & Hospedales, ICLR 2017)",
            ),
            (
                "esmm",
                "entire-space CTR x CVR towers over shared embeddings, tasks click then conversion (Ma et al., SIGIR 2018)",
            ),
            (
                "automtl",
                "the AutoMTL search space (DESAN super-network); run `mtrec search` on it (Jiang et al., KDD 2024)",
            ),
            (
                "searched",
                "an architecture found by `mtrec search`: `mtrec train --arch arch.json` retrains it",
            ),
        ]
    }
}

/// Single-Task (a `bottom` per task) and Shared-Bottom (one shared `bottom`): an MLP bottom,
/// then a `tower` per task. Defaults: the MMoE paper's synthetic experiment (bottom 113,
/// towers 8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BottomConfig {
    pub bottom: Vec<usize>,
    pub tower: Vec<usize>,
}

impl Default for BottomConfig {
    fn default() -> Self {
        Self {
            bottom: vec![113],
            tower: vec![8],
        }
    }
}

/// OMoE and MMoE. Defaults: the MMoE paper's synthetic experiment (8 experts of 16, towers 8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MoeConfig {
    pub n_experts: usize,
    /// Hidden widths of every expert.
    pub expert: Vec<usize>,
    pub tower: Vec<usize>,
}

impl Default for MoeConfig {
    fn default() -> Self {
        Self {
            n_experts: 8,
            expert: vec![16],
            tower: vec![8],
        }
    }
}

impl ArchConfig {
    /// The default config of every kind, in catalogue order (for `mtrec models`); `searched`
    /// has no default, its keys are a whole genotype.
    pub fn defaults() -> Vec<ArchConfig> {
        vec![
            ArchConfig::SingleTask(BottomConfig::default()),
            ArchConfig::SharedBottom(BottomConfig::default()),
            ArchConfig::Omoe(MoeConfig::default()),
            ArchConfig::Mmoe(MoeConfig::default()),
            ArchConfig::Cgc(PleConfig {
                n_levels: 1,
                ..PleConfig::default()
            }),
            ArchConfig::Ple(PleConfig::default()),
            ArchConfig::Adatt(AdaTTConfig::default()),
            ArchConfig::CrossStitch(CrossStitchConfig::default()),
            ArchConfig::L2Constrained(L2ConstrainedConfig::default()),
            ArchConfig::TensorFactorization(TensorFactorizationConfig::default()),
            ArchConfig::Esmm(EsmmConfig::default()),
            ArchConfig::Automtl(SpaceConfig::default()),
        ]
    }
}
