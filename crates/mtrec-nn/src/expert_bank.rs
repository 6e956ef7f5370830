//! A bank of `E` identical-shaped MLP experts over one shared input.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::{BatchedLinear, BatchedLinearConfig, torch_linear_init};

/// `E` experts, each `Linear + ReLU` per entry of `hidden`.
#[derive(Debug, Clone)]
pub struct ExpertBankConfig {
    pub d_input: usize,
    pub n_experts: usize,
    pub hidden: Vec<usize>,
}

/// The first layer of all experts is a single `Linear(in -> E*H1)`: every expert reads the same
/// input, so their weights concatenate into one wide product. Deeper layers read per-expert
/// inputs and run as one batched product over `[E, B, H]`.
#[derive(Module, Debug)]
pub struct ExpertBank {
    pub first: Linear,
    pub deeper: Vec<BatchedLinear>,
    n_experts: usize,
    widths: Vec<usize>,
}

impl ExpertBankConfig {
    pub fn init(&self, device: &Device) -> ExpertBank {
        assert!(
            !self.hidden.is_empty(),
            "an expert needs at least one hidden layer"
        );
        let e = self.n_experts;
        let first = LinearConfig::new(self.d_input, e * self.hidden[0])
            .with_initializer(torch_linear_init(self.d_input))
            .init(device);
        let deeper = self
            .hidden
            .windows(2)
            .map(|w| BatchedLinearConfig::new(e, w[0], w[1]).init(device))
            .collect();
        ExpertBank {
            first,
            deeper,
            n_experts: e,
            widths: self.hidden.clone(),
        }
    }

    pub fn d_out(&self) -> usize {
        *self.hidden.last().unwrap_or(&self.d_input)
    }
}

impl ExpertBank {
    /// `[B, in] -> [B, E, H_last]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<3> {
        let [b, _] = x.dims();
        let e = self.n_experts;
        let h = relu(self.first.forward(x)).reshape([b, e, self.widths[0]]);
        if self.deeper.is_empty() {
            return h;
        }
        let mut g = h.swap_dims(0, 1); // [E, B, H]
        for layer in &self.deeper {
            g = relu(layer.forward(g));
        }
        g.swap_dims(0, 1)
    }

    /// Each expert reads its own input: `[E, B, in] -> [B, E, H_last]` (per-task bottoms of
    /// Single-Task, whose inputs differ). The wide first-layer weight `[in, E*H1]` is viewed
    /// as `[E, in, H1]`, so both entry points share one parameter layout.
    pub fn forward_each(&self, x: Tensor<3>) -> Tensor<3> {
        let e = self.n_experts;
        let h1 = self.widths[0];
        let [d_in, _] = self.first.weight.dims();
        let w = self
            .first
            .weight
            .val()
            .reshape([d_in, e, h1])
            .swap_dims(0, 1);
        let mut g = x.matmul(w);
        if let Some(bias) = &self.first.bias {
            g = g + bias.val().reshape([e, 1, h1]);
        }
        g = relu(g);
        for layer in &self.deeper {
            g = relu(layer.forward(g));
        }
        g.swap_dims(0, 1)
    }

    pub fn n_experts(&self) -> usize {
        self.n_experts
    }

    pub fn d_out(&self) -> usize {
        *self.widths.last().unwrap_or(&0)
    }
}
