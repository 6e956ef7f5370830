//! OMoE and MMoE (Ma et al., "Modeling Task Relationships in Multi-task Learning with
//! Multi-gate Mixture-of-Experts", KDD 2018).
//!
//! `n` experts `f_i` over the shared input `x`; MMoE: `g^k(x) = softmax(W_{gk} x)` and
//! `y_k = tower_k(sum_i g^k(x)_i f_i(x))`; OMoE: the same with a single gate shared by all tasks.
//! Input `x` `[B, F*d_emb + D]`, experts `[B, n, H]`, gates `[B, G, n]` (`G` = 1 or `T`),
//! output `[B, T]`. Defaults: 8 experts of 16 units, towers of 8 (the paper's synthetic setup).
//!
//! All experts run as one product, all gates as one product, and the mixture of every task is
//! one batched `[B, G, n] x [B, n, H]` product: the model is small enough that per-operation
//! overhead, not arithmetic, bounds its speed.

use burn::module::Module;
use burn::prelude::*;
use mtrec_nn::{
    ExpertBank, ExpertBankConfig, FeatureEmbedding, FeatureEmbeddingConfig, GateBank,
    GateBankConfig, ModelInput, TowerBank, TowerBankConfig,
};

use crate::{ModelOutput, MoeConfig};

/// Whether the tasks share one gate (OMoE) or each has its own (MMoE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoeKind {
    OneGate,
    GatePerTask,
}

#[derive(Module, Debug)]
pub struct Moe {
    pub embedding: FeatureEmbedding,
    pub experts: ExpertBank,
    pub gates: GateBank,
    pub towers: TowerBank,
    n_tasks: usize,
    one_gate: bool,
}

impl Moe {
    pub fn new(
        cfg: &MoeConfig,
        kind: MoeKind,
        emb: FeatureEmbeddingConfig,
        n_tasks: usize,
        device: &Device,
    ) -> Self {
        let d_in = emb.d_out();
        let experts = ExpertBankConfig {
            d_input: d_in,
            n_experts: cfg.n_experts,
            hidden: cfg.expert.clone(),
        };
        let n_gates = match kind {
            MoeKind::OneGate => 1,
            MoeKind::GatePerTask => n_tasks,
        };
        let gates = GateBankConfig {
            d_input: d_in,
            n_gates,
            n_experts: cfg.n_experts,
        };
        let towers = TowerBankConfig {
            n_tasks,
            d_input: experts.d_out(),
            hidden: cfg.tower.clone(),
        };
        Self {
            embedding: emb.init(device),
            experts: experts.init(device),
            gates: gates.init(device),
            towers: towers.init(device),
            n_tasks,
            one_gate: kind == MoeKind::OneGate,
        }
    }

    pub fn forward(&self, input: &ModelInput) -> ModelOutput {
        let x = self.embedding.forward(input);
        let experts = self.experts.forward(x.clone());
        let mixed = self.gates.mix(x, experts); // [B, G, H]
        let outputs = if self.one_gate {
            let [b, _, h] = mixed.dims();
            self.towers.forward_shared(mixed.reshape([b, h]))
        } else {
            self.towers.forward_per_task(mixed)
        };
        ModelOutput {
            outputs,
            aux_loss: None,
        }
    }

    pub fn n_tasks(&self) -> usize {
        self.n_tasks
    }

    pub fn is_one_gate(&self) -> bool {
        self.one_gate
    }
}
