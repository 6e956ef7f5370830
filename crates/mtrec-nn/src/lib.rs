//! Reusable neural-network blocks for multi-task recommenders.
//!
//! Every block here is built for the CPU hot path: a bank of `G` parallel networks (experts,
//! task towers, per-task bottoms) is one batched matrix product, never `G` small products,
//! because small models are bound by per-operation overhead rather than FLOPs.
//!
//! Blocks follow the `XConfig::init(device) -> X`, `X::forward` pattern; parameter names are
//! the struct field paths and become the safetensors keys of a checkpoint.

pub mod batched_linear;
pub mod embedding;
pub mod expert_bank;
pub mod gate;
pub mod mlp;
pub mod tower_bank;

pub use batched_linear::{BatchedLinear, BatchedLinearConfig};
pub use embedding::{Bag, FeatureEmbedding, FeatureEmbeddingConfig, ModelInput, Pooling};
pub use expert_bank::{ExpertBank, ExpertBankConfig};
pub use gate::{GateBank, GateBankConfig};
pub use mlp::{Mlp, MlpConfig};
pub use tower_bank::{TowerBank, TowerBankConfig};

use burn::nn::Initializer;

/// PyTorch's default `nn.Linear` initialisation, `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` for
/// weights and biases alike, so that mtrec and the PyTorch reference start from the same
/// distribution.
pub fn torch_linear_init(fan_in: usize) -> Initializer {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    Initializer::Uniform {
        min: -bound,
        max: bound,
    }
}
