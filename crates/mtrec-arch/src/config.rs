//! The `[model]` and `[embedding]` sections of an experiment config.
//!
//! Defaults are the MMoE paper's synthetic-data setting where the paper gives one; the Census
//! configs in `configs/` override them.

use serde::{Deserialize, Serialize};

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
