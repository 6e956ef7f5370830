//! One tower per task, all towers run as batched products over the task axis.

use burn::module::Module;
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::{BatchedLinear, BatchedLinearConfig};

/// `T` towers: `Linear + ReLU` per entry of `hidden`, then `Linear(-> 1)` without activation.
#[derive(Debug, Clone)]
pub struct TowerBankConfig {
    pub n_tasks: usize,
    pub d_input: usize,
    pub hidden: Vec<usize>,
}

#[derive(Module, Debug)]
pub struct TowerBank {
    pub hidden: Vec<BatchedLinear>,
    pub output: BatchedLinear,
}

impl TowerBankConfig {
    pub fn init(&self, device: &Device) -> TowerBank {
        let t = self.n_tasks;
        let mut width = self.d_input;
        let mut hidden = Vec::with_capacity(self.hidden.len());
        for &h in &self.hidden {
            hidden.push(BatchedLinearConfig::new(t, width, h).init(device));
            width = h;
        }
        TowerBank {
            hidden,
            output: BatchedLinearConfig::new(t, width, 1).init(device),
        }
    }
}

impl TowerBank {
    /// Task-major input `[T, B, H]` (task `t` reads row `t`) -> outputs `[B, T]`.
    pub fn forward(&self, mut x: Tensor<3>) -> Tensor<2> {
        for layer in &self.hidden {
            x = relu(layer.forward(x));
        }
        let [t, b, _] = x.dims();
        self.output.forward(x).reshape([t, b]).transpose()
    }

    /// Every tower reads the same input `[B, H]` (Shared-Bottom).
    pub fn forward_shared(&self, x: Tensor<2>) -> Tensor<2> {
        let t = self.output.groups();
        let [b, h] = x.dims();
        self.forward(x.unsqueeze_dim::<3>(0).expand([t, b, h]))
    }

    /// Each task reads its own row of a batch-major input `[B, T, H]` (mixture outputs).
    pub fn forward_per_task(&self, x: Tensor<3>) -> Tensor<2> {
        self.forward(x.swap_dims(0, 1))
    }
}
