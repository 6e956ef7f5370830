//! Shared-Bottom (hard parameter sharing, Caruana 1997): `h = bottom(x)`, `y_k = tower_k(h)`.
//!
//! Input `x` `[B, F*d_emb + D]`, output `[B, T]`. Defaults from the MMoE paper's synthetic
//! experiment: bottom 113, towers 8.

use burn::module::Module;
use mtrec_nn::{
    FeatureEmbedding, FeatureEmbeddingConfig, Mlp, MlpConfig, ModelInput, TowerBank,
    TowerBankConfig,
};

use crate::{BottomConfig, ModelOutput};
use burn::prelude::*;

#[derive(Module, Debug)]
pub struct SharedBottom {
    pub embedding: FeatureEmbedding,
    pub bottom: Mlp,
    pub towers: TowerBank,
    n_tasks: usize,
}

impl SharedBottom {
    pub fn new(
        cfg: &BottomConfig,
        emb: FeatureEmbeddingConfig,
        n_tasks: usize,
        device: &Device,
    ) -> Self {
        let bottom = MlpConfig {
            d_input: emb.d_out(),
            hidden: cfg.bottom.clone(),
            d_output: None,
        };
        let towers = TowerBankConfig {
            n_tasks,
            d_input: bottom.d_out(),
            hidden: cfg.tower.clone(),
        };
        Self {
            embedding: emb.init(device),
            bottom: bottom.init(device),
            towers: towers.init(device),
            n_tasks,
        }
    }

    pub fn forward(&self, input: &ModelInput) -> ModelOutput {
        let h = self.bottom.forward(self.embedding.forward(input));
        ModelOutput {
            outputs: self.towers.forward_shared(h),
            aux_loss: None,
        }
    }

    pub fn n_tasks(&self) -> usize {
        self.n_tasks
    }
}
