//! The plain multi-layer perceptron of spec §1: Linear + ReLU per hidden layer.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::torch_linear_init;

#[derive(Debug, Clone)]
pub struct MlpConfig {
    pub d_input: usize,
    /// Widths of the hidden layers, each followed by ReLU.
    pub hidden: Vec<usize>,
    /// Width of a final linear layer without activation (a tower's logit), if any.
    pub d_output: Option<usize>,
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub hidden: Vec<Linear>,
    pub output: Option<Linear>,
}

fn linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out)
        .with_initializer(torch_linear_init(d_in))
        .init(device)
}

impl MlpConfig {
    pub fn init(&self, device: &Device) -> Mlp {
        let mut width = self.d_input;
        let mut hidden = Vec::with_capacity(self.hidden.len());
        for &h in &self.hidden {
            hidden.push(linear(width, h, device));
            width = h;
        }
        let output = self.d_output.map(|o| linear(width, o, device));
        Mlp { hidden, output }
    }

    /// Width of what `forward` returns.
    pub fn d_out(&self) -> usize {
        self.d_output
            .or(self.hidden.last().copied())
            .unwrap_or(self.d_input)
    }
}

impl Mlp {
    pub fn forward(&self, mut x: Tensor<2>) -> Tensor<2> {
        for layer in &self.hidden {
            x = relu(layer.forward(x));
        }
        match &self.output {
            Some(out) => out.forward(x),
            None => x,
        }
    }
}
