//! The discrete architecture AutoMTL exports (spec §4, "Result"): which fields each first-layer
//! expert reads, which experts feed every consumer, the op of every block, the towers.
//!
//! It is plain data (JSON for `--arch`, TOML inside a checkpoint's `config.toml`) and names
//! fields and tasks instead of indexing them, so a file read back against other data fails with
//! a message that names the missing field rather than silently reading the wrong column.

use std::fmt;

use mtrec_data::FeatureMeta;
use serde::{Deserialize, Serialize};

use crate::ArchError;

/// One candidate operation of a mixture-of-operation block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum OpKind {
    /// A true skip when input and output widths agree, else a bias-free linear projection.
    Identity,
    /// `Dropout -> Linear(in, h) -> BatchNorm -> ReLU -> Linear(h, out) -> ReLU`.
    Mlp(usize),
}

impl OpKind {
    /// The spec's default candidate list: Identity and MLP-h for h in 16..=1024.
    pub fn default_candidates() -> Vec<OpKind> {
        let mut ops = vec![OpKind::Identity];
        ops.extend([16, 32, 64, 128, 256, 512, 1024].map(OpKind::Mlp));
        ops
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpKind::Identity => f.write_str("identity"),
            OpKind::Mlp(h) => write!(f, "mlp-{h}"),
        }
    }
}

impl From<OpKind> for String {
    fn from(op: OpKind) -> String {
        op.to_string()
    }
}

impl TryFrom<String> for OpKind {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        if lower == "identity" {
            return Ok(OpKind::Identity);
        }
        match lower.strip_prefix("mlp-").map(str::parse::<usize>) {
            Some(Ok(h)) if h > 0 => Ok(OpKind::Mlp(h)),
            _ => Err(format!(
                "unknown operation `{s}` (expected `identity` or `mlp-<hidden width>`, e.g. `mlp-64`)"
            )),
        }
    }
}

/// The fields a first-layer expert reads: as single embeddings, and inside its FM interaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureGene {
    pub single: Vec<String>,
    pub interaction: Vec<String>,
}

/// One expert: its input (fields for the first layer, experts below for the others) and its
/// chain of blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpertGene {
    /// First layer only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<FeatureGene>,
    /// Layers above the first: indices of the experts of the layer below that this expert's
    /// gate mixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<usize>>,
    /// One op per block, input side first.
    pub blocks: Vec<OpKind>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerGene {
    pub experts: Vec<ExpertGene>,
}

/// A task's tower and the last-layer experts its gate mixes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TowerGene {
    pub task: String,
    pub inputs: Vec<usize>,
}

/// A complete discrete DESAN architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genotype {
    /// Output width of every block (and so of every expert).
    pub block_width: usize,
    /// Hidden widths of every task tower (Linear, BatchNorm, ReLU, Dropout each).
    pub tower: Vec<usize>,
    pub dropout: f64,
    /// MoE layers, input side first.
    pub layers: Vec<LayerGene>,
    /// One per task, in the data's task order.
    pub towers: Vec<TowerGene>,
}

impl Genotype {
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a genotype always serialises")
    }

    /// Checks the genotype against the data it is meant for: every named field and task must
    /// exist, every index must point at an expert of the layer below.
    pub fn validate(&self, meta: &FeatureMeta) -> Result<(), ArchError> {
        self.check(Some(meta))
    }

    /// The checks that need no data: widths, layer shapes and expert indices (what `mtrec arch
    /// show` can verify of a file on its own).
    pub fn validate_structure(&self) -> Result<(), ArchError> {
        self.check(None)
    }

    fn check(&self, meta: Option<&FeatureMeta>) -> Result<(), ArchError> {
        let err = |message: String| ArchError::Invalid {
            model: "automtl",
            message,
        };
        if self.block_width == 0 {
            return Err(err("block_width must be at least 1".into()));
        }
        if self.tower.contains(&0) {
            return Err(err("tower widths must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(err(format!(
                "dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        if self.layers.is_empty() {
            return Err(err("the architecture has no expert layer".into()));
        }
        let task_names: Vec<&str> = self.towers.iter().map(|t| t.task.as_str()).collect();
        if let Some(meta) = meta
            && task_names
                != meta
                    .task_names
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
        {
            return Err(err(format!(
                "the architecture's towers are for tasks [{}] but the data has [{}]",
                task_names.join(", "),
                meta.task_names.join(", ")
            )));
        }
        for (l, layer) in self.layers.iter().enumerate() {
            if layer.experts.is_empty() {
                return Err(err(format!("layer {l} has no expert")));
            }
            for (e, expert) in layer.experts.iter().enumerate() {
                let at = format!("layer {l} expert {e}");
                if expert.blocks.is_empty() {
                    return Err(err(format!("{at} has no block")));
                }
                if expert.blocks.contains(&OpKind::Mlp(0)) {
                    return Err(err(format!("{at}: mlp width must be at least 1")));
                }
                match (l, &expert.features, &expert.inputs) {
                    (0, Some(features), None) => {
                        let Some(meta) = meta else { continue };
                        for name in features.single.iter().chain(&features.interaction) {
                            if !meta.sparse_names.contains(name) {
                                return Err(err(format!(
                                    "{at} reads field `{name}`, which the data does not have (sparse fields: {})",
                                    meta.sparse_names.join(", ")
                                )));
                            }
                        }
                    }
                    (0, _, _) => {
                        return Err(err(format!(
                            "{at} is in the first layer: it needs `features` and no `inputs`"
                        )));
                    }
                    (_, None, Some(inputs)) => {
                        check_inputs(inputs, self.layers[l - 1].experts.len(), &at).map_err(err)?;
                    }
                    _ => {
                        return Err(err(format!(
                            "{at} is above the first layer: it needs `inputs` and no `features`"
                        )));
                    }
                }
            }
        }
        let last = self.layers.last().expect("non-empty").experts.len();
        for tower in &self.towers {
            check_inputs(&tower.inputs, last, &format!("tower `{}`", tower.task)).map_err(err)?;
        }
        Ok(())
    }

    /// MMoE as a genotype: one layer of `n_experts` experts that all read every field, every
    /// tower mixing every expert. Shows the hand-made model is a point of the search space.
    pub fn mmoe(
        meta: &FeatureMeta,
        n_experts: usize,
        blocks: &[OpKind],
        block_width: usize,
    ) -> Self {
        let experts = (0..n_experts)
            .map(|_| ExpertGene {
                features: Some(all_fields(meta)),
                inputs: None,
                blocks: blocks.to_vec(),
            })
            .collect();
        let all: Vec<usize> = (0..n_experts).collect();
        Self {
            block_width,
            tower: vec![block_width],
            dropout: 0.0,
            layers: vec![LayerGene { experts }],
            towers: towers(meta, |_| all.clone()),
        }
    }

    /// PLE as a genotype: per level, `specific` experts per task followed by `shared` experts.
    /// A task's expert of level `l > 0` mixes its own and the shared experts of level `l - 1`, a
    /// shared expert mixes all of them; a task's tower mixes its own and the shared experts of
    /// the last level.
    pub fn ple(
        meta: &FeatureMeta,
        n_levels: usize,
        specific: usize,
        shared: usize,
        blocks: &[OpKind],
        block_width: usize,
    ) -> Self {
        let n_tasks = meta.task_names.len();
        let n = n_tasks * specific + shared;
        let own_and_shared = |t: usize| -> Vec<usize> {
            (t * specific..(t + 1) * specific)
                .chain(n_tasks * specific..n)
                .collect()
        };
        let layers = (0..n_levels)
            .map(|level| LayerGene {
                experts: (0..n)
                    .map(|e| {
                        let owner = (e < n_tasks * specific).then_some(e / specific.max(1));
                        let (features, inputs) = if level == 0 {
                            (Some(all_fields(meta)), None)
                        } else {
                            let inputs = match owner {
                                Some(t) => own_and_shared(t),
                                None => (0..n).collect(),
                            };
                            (None, Some(inputs))
                        };
                        ExpertGene {
                            features,
                            inputs,
                            blocks: blocks.to_vec(),
                        }
                    })
                    .collect(),
            })
            .collect();
        Self {
            block_width,
            tower: vec![block_width],
            dropout: 0.0,
            layers,
            towers: towers(meta, own_and_shared),
        }
    }
}

fn all_fields(meta: &FeatureMeta) -> FeatureGene {
    FeatureGene {
        single: meta.sparse_names.clone(),
        interaction: Vec::new(),
    }
}

fn towers(meta: &FeatureMeta, inputs: impl Fn(usize) -> Vec<usize>) -> Vec<TowerGene> {
    meta.task_names
        .iter()
        .enumerate()
        .map(|(t, name)| TowerGene {
            task: name.clone(),
            inputs: inputs(t),
        })
        .collect()
}

fn check_inputs(inputs: &[usize], n_below: usize, at: &str) -> Result<(), String> {
    if let Some(bad) = inputs.iter().find(|&&i| i >= n_below) {
        return Err(format!(
            "{at} takes input from expert {bad}, but the layer below has {n_below} experts"
        ));
    }
    let mut sorted = inputs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != inputs.len() {
        return Err(format!("{at} lists an input expert twice"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_names_round_trip_and_reject_garbage() {
        for op in OpKind::default_candidates() {
            assert_eq!(OpKind::try_from(op.to_string()).unwrap(), op);
        }
        assert_eq!(
            OpKind::try_from("MLP-64".to_string()).unwrap(),
            OpKind::Mlp(64)
        );
        assert!(OpKind::try_from("mlp-0".to_string()).is_err());
        assert!(OpKind::try_from("conv".to_string()).is_err());
    }
}
