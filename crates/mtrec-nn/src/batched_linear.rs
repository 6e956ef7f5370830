//! `G` independent linear layers applied as one batched product.

use burn::module::{Module, Param};
use burn::prelude::*;

use crate::torch_linear_init;

/// `G` linear maps `in -> out`, one per group (expert or task).
#[derive(Debug, Clone)]
pub struct BatchedLinearConfig {
    pub groups: usize,
    pub d_input: usize,
    pub d_output: usize,
}

/// Weights `[G, in, out]`, biases `[G, out]`.
///
/// Input `[G, B, in]` (group-major), output `[G, B, out]`.
#[derive(Module, Debug)]
pub struct BatchedLinear {
    pub weight: Param<Tensor<3>>,
    pub bias: Param<Tensor<2>>,
}

impl BatchedLinearConfig {
    pub fn new(groups: usize, d_input: usize, d_output: usize) -> Self {
        Self {
            groups,
            d_input,
            d_output,
        }
    }

    pub fn init(&self, device: &Device) -> BatchedLinear {
        let init = torch_linear_init(self.d_input);
        BatchedLinear {
            weight: init.init([self.groups, self.d_input, self.d_output], device),
            bias: init.init([self.groups, self.d_output], device),
        }
    }
}

impl BatchedLinear {
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        x.matmul(self.weight.val()) + self.bias.val().unsqueeze_dim(1)
    }

    pub fn groups(&self) -> usize {
        self.weight.dims()[0]
    }
}
