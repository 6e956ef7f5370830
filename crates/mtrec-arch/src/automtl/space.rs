//! The `[model] kind = "automtl"` section: the shape of the DESAN search space.

use serde::{Deserialize, Serialize};

use super::OpKind;
use crate::ArchError;

/// Defaults are the spec's bracketed values from the authors' code; the embedding width (16)
/// is the `[embedding]` section's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpaceConfig {
    /// MoE layers `L`.
    pub n_layers: usize,
    /// Experts per layer `N`.
    pub n_experts: usize,
    /// MoO blocks per expert `K`.
    pub n_blocks: usize,
    /// Output width of every block.
    pub block_width: usize,
    /// Candidate ops of every block, e.g. `["identity", "mlp-16", "mlp-64"]`.
    pub candidates: Vec<OpKind>,
    /// Hidden widths of each task tower.
    pub tower: Vec<usize>,
    pub dropout: f64,
}

impl Default for SpaceConfig {
    fn default() -> Self {
        Self {
            n_layers: 2,
            n_experts: 4,
            n_blocks: 3,
            block_width: 64,
            candidates: OpKind::default_candidates(),
            tower: vec![64],
            dropout: 0.2,
        }
    }
}

impl SpaceConfig {
    pub fn validate(&self) -> Result<(), ArchError> {
        let err = |message: String| {
            Err(ArchError::Invalid {
                model: "automtl",
                message,
            })
        };
        for (name, v) in [
            ("n_layers", self.n_layers),
            ("n_experts", self.n_experts),
            ("n_blocks", self.n_blocks),
            ("block_width", self.block_width),
        ] {
            if v == 0 {
                return err(format!("{name} must be at least 1"));
            }
        }
        if self.candidates.is_empty() {
            return err("candidates must list at least one op".into());
        }
        let mut seen = self.candidates.clone();
        seen.sort_by_key(|c| c.to_string());
        seen.dedup();
        if seen.len() != self.candidates.len() {
            return err("candidates lists an op twice".into());
        }
        ArchError::check_layers("automtl", "tower", &self.tower, false)?;
        if !(0.0..1.0).contains(&self.dropout) {
            return err(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        Ok(())
    }
}
