//! Softmax gates over experts: `g(x) = softmax(W x)`, several gates in one product.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;

use crate::torch_linear_init;

#[derive(Debug, Clone)]
pub struct GateBankConfig {
    pub d_input: usize,
    /// How many gates (1 for OMoE, `T` for MMoE).
    pub n_gates: usize,
    pub n_experts: usize,
}

#[derive(Module, Debug)]
pub struct GateBank {
    pub linear: Linear,
    n_gates: usize,
    n_experts: usize,
}

impl GateBankConfig {
    pub fn init(&self, device: &Device) -> GateBank {
        GateBank {
            linear: LinearConfig::new(self.d_input, self.n_gates * self.n_experts)
                .with_initializer(torch_linear_init(self.d_input))
                .init(device),
            n_gates: self.n_gates,
            n_experts: self.n_experts,
        }
    }
}

impl GateBank {
    /// `[B, in] -> [B, G, E]`, each row a probability vector over experts.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<3> {
        let [b, _] = x.dims();
        softmax(
            self.linear
                .forward(x)
                .reshape([b, self.n_gates, self.n_experts]),
            2,
        )
    }

    /// Mixes expert outputs `[B, E, H]` with the gates: `[B, G, H]`.
    pub fn mix(&self, x: Tensor<2>, experts: Tensor<3>) -> Tensor<3> {
        self.forward(x).matmul(experts)
    }
}
