//! Single-Task baseline: one independent network per task, no sharing.
//!
//! `y_k = tower_k(bottom_k(x))`. Input `x` `[B, F*d_emb + D]`, output `[B, T]`.
//! The `T` bottoms are one [`ExpertBank`] with one expert per task, so the per-task networks
//! still run as batched products. The embeddings are per task too (no sharing at all).

use burn::module::Module;
use burn::prelude::*;
use mtrec_nn::{
    ExpertBank, ExpertBankConfig, FeatureEmbedding, FeatureEmbeddingConfig, ModelInput, TowerBank,
    TowerBankConfig,
};

use crate::{BottomConfig, ModelOutput};

#[derive(Module, Debug)]
pub struct SingleTask {
    pub embeddings: Vec<FeatureEmbedding>,
    pub bottoms: ExpertBank,
    pub towers: TowerBank,
}

impl SingleTask {
    pub fn new(
        cfg: &BottomConfig,
        emb: FeatureEmbeddingConfig,
        n_tasks: usize,
        device: &Device,
    ) -> Self {
        let d_in = emb.d_out();
        let embeddings = (0..n_tasks).map(|_| emb.init(device)).collect();
        let bottoms = ExpertBankConfig {
            d_input: d_in,
            n_experts: n_tasks,
            hidden: cfg.bottom.clone(),
        };
        let towers = TowerBankConfig {
            n_tasks,
            d_input: bottoms.d_out(),
            hidden: cfg.tower.clone(),
        };
        Self {
            embeddings,
            bottoms: bottoms.init(device),
            towers: towers.init(device),
        }
    }

    pub fn forward(&self, input: &ModelInput) -> ModelOutput {
        // Separate embeddings make the tasks' inputs differ, so they stack as [T, B, in].
        let xs: Vec<Tensor<3>> = self
            .embeddings
            .iter()
            .map(|e| e.forward(input).unsqueeze_dim(0))
            .collect();
        let hidden = self.bottoms.forward_each(Tensor::cat(xs, 0)); // [B, T, H]
        ModelOutput {
            outputs: self.towers.forward_per_task(hidden),
            aux_loss: None,
        }
    }

    pub fn n_tasks(&self) -> usize {
        self.embeddings.len()
    }
}
