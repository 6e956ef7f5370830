//! Cross-Stitch networks (Misra, Shrivastava, Gupta and Hebert, "Cross-stitch Networks for
//! Multi-task Learning", CVPR 2016).
//!
//! One column (MLP) per task; after each hidden layer `l` the columns' activations
//! `h_1..h_T` are mixed, `h~_j = sum_k a^l_{jk} h_k`, with a learned `T x T` matrix `A^l`, and
//! the next layer of column `j` reads `h~_j`; then `y_k = tower_k(h~_k^L)`.
//!
//! Input `x` `[B, F*d_emb + D]` from one shared embedding (the paper's columns all read the same
//! image; here they all read the same `x`), columns `[T, B, H_l]`, output `[B, T]`.
//!
//! `A^l` starts at 0.9 on the diagonal and `0.1 / (T - 1)` elsewhere (`1.0` when `T = 1`): the
//! paper's best initialisation `(alpha_S, alpha_D) = (0.9, 0.1)`, with the off-diagonal mass
//! spread over the other tasks so every row stays a convex combination and the activations
//! keep their scale whatever `T`. The paper trains the stitch units with a larger learning rate
//! than the columns; mtrec uses one learning rate for every parameter.
//!
//! Defaults (our choice, the paper's columns are AlexNets): the Single-Task defaults, columns of
//! 113 units and towers of 8, so that the per-task-network baselines start at one size and differ
//! only in how they share.
//!
//! Speed: the first layer of every column reads the same `x`, so it is one wide product
//! `[B, in] x [in, T*H1]`; deeper layers are one batched product over the task axis, and each
//! stitch is a single `[T, T] x [T, B*H]` product.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use mtrec_nn::{
    BatchedLinear, BatchedLinearConfig, FeatureEmbedding, FeatureEmbeddingConfig, ModelInput,
    TowerBank, TowerBankConfig, torch_linear_init,
};
use serde::{Deserialize, Serialize};

use crate::{ArchError, ModelOutput};

const MODEL: &str = "cross-stitch";

/// The `[model]` section for `kind = "cross-stitch"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrossStitchConfig {
    /// Hidden widths of every task's column; a stitch follows each of these layers.
    pub hidden: Vec<usize>,
    /// Hidden widths of every task's tower (a final `Linear(-> 1)` follows).
    pub tower: Vec<usize>,
}

impl Default for CrossStitchConfig {
    fn default() -> Self {
        Self {
            hidden: vec![113],
            tower: vec![8],
        }
    }
}

impl CrossStitchConfig {
    pub fn validate(&self, n_tasks: usize) -> Result<(), ArchError> {
        let invalid = |message: String| ArchError::Invalid {
            model: MODEL,
            message,
        };
        if n_tasks == 0 {
            return Err(invalid("needs at least one task".into()));
        }
        ArchError::check_layers(MODEL, "hidden", &self.hidden, true)?;
        ArchError::check_layers(MODEL, "tower", &self.tower, false)?;
        Ok(())
    }
}

/// The paper's initial stitch, row-major `T x T`: 0.9 on the diagonal, `0.1 / (T - 1)` elsewhere.
pub fn initial_stitch(n_tasks: usize) -> Vec<f32> {
    if n_tasks == 1 {
        return vec![1.0];
    }
    let off = 0.1 / (n_tasks - 1) as f32;
    (0..n_tasks * n_tasks)
        .map(|i| if i / n_tasks == i % n_tasks { 0.9 } else { off })
        .collect()
}

#[derive(Module, Debug)]
pub struct CrossStitch {
    pub embedding: FeatureEmbedding,
    /// First layer of all columns, `Linear(in -> T*H1)`: column `k` owns output units
    /// `k*H1 .. (k+1)*H1`.
    pub first: Linear,
    /// Layers `2..L` of all columns, weights `[T, H_{l-1}, H_l]`.
    pub deeper: Vec<BatchedLinear>,
    /// `A^l` `[T, T]`, one per hidden layer; row `j` holds the weights column `j` gives to every
    /// column.
    pub stitches: Vec<Param<Tensor<2>>>,
    pub towers: TowerBank,
    n_tasks: usize,
}

impl CrossStitch {
    /// Expects a config that passed [`CrossStitchConfig::validate`]; without hidden layers it
    /// falls back to one column layer as wide as the input rather than panicking.
    pub fn new(
        cfg: &CrossStitchConfig,
        emb: FeatureEmbeddingConfig,
        n_tasks: usize,
        device: &Device,
    ) -> Self {
        let d_in = emb.d_out();
        let t = n_tasks;
        let h1 = cfg.hidden.first().copied().unwrap_or(d_in);
        let first = LinearConfig::new(d_in, t * h1)
            .with_initializer(torch_linear_init(d_in))
            .init(device);
        let deeper = cfg
            .hidden
            .windows(2)
            .map(|w| BatchedLinearConfig::new(t, w[0], w[1]).init(device))
            .collect();
        let stitches = (0..cfg.hidden.len().max(1))
            .map(|_| Param::from_data(TensorData::new(initial_stitch(t), [t, t]), device))
            .collect();
        let towers = TowerBankConfig {
            n_tasks: t,
            d_input: cfg.hidden.last().copied().unwrap_or(d_in),
            hidden: cfg.tower.clone(),
        };
        Self {
            embedding: emb.init(device),
            first,
            deeper,
            stitches,
            towers: towers.init(device),
            n_tasks: t,
        }
    }

    pub fn forward(&self, input: &ModelInput) -> ModelOutput {
        let x = self.embedding.forward(input);
        let [b, _] = x.dims();
        let t = self.n_tasks;
        let h1 = self.first.weight.dims()[1] / t;
        let columns = relu(self.first.forward(x))
            .reshape([b, t, h1])
            .swap_dims(0, 1); // [T, B, H1]
        let mut h = stitch(columns, &self.stitches[0]);
        for (layer, a) in self.deeper.iter().zip(&self.stitches[1..]) {
            h = stitch(relu(layer.forward(h)), a);
        }
        ModelOutput {
            outputs: self.towers.forward(h),
            aux_loss: None,
        }
    }

    pub fn n_tasks(&self) -> usize {
        self.n_tasks
    }
}

/// `h~_j = sum_k a_{jk} h_k` for all `j` at once: `[T, T] x [T, B*H]`.
fn stitch(h: Tensor<3>, a: &Param<Tensor<2>>) -> Tensor<3> {
    let [t, b, w] = h.dims();
    a.val().matmul(h.reshape([t, b * w])).reshape([t, b, w])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{emb_config, sample_input as input};

    fn host(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    fn config() -> CrossStitchConfig {
        CrossStitchConfig {
            hidden: vec![6, 5, 4],
            tower: vec![3],
        }
    }

    /// Runs every column on its own (one small product per task, explicit slices of the batched
    /// weights), mixing with `mix` (host `T x T` matrices) after each hidden layer if given.
    fn reference(model: &CrossStitch, input: &ModelInput, mix: Option<&[Vec<f32>]>) -> Tensor<2> {
        let x = model.embedding.forward(input);
        let t = model.n_tasks();
        let [d_in, th] = model.first.weight.dims();
        let h1 = th / t;
        let w1 = model.first.weight.val();
        let b1 = model.first.bias.as_ref().unwrap().val();
        let mut cols: Vec<Tensor<2>> = (0..t)
            .map(|k| {
                let w = w1.clone().slice([0..d_in, k * h1..(k + 1) * h1]);
                let b = b1.clone().narrow(0, k * h1, h1).unsqueeze_dim(0);
                relu(x.clone().matmul(w) + b)
            })
            .collect();
        let mixed = |cols: Vec<Tensor<2>>, l: usize| -> Vec<Tensor<2>> {
            match mix {
                None => cols,
                Some(a) => (0..t)
                    .map(|j| {
                        (0..t)
                            .map(|k| cols[k].clone() * a[l][j * t + k])
                            .reduce(|p, q| p + q)
                            .unwrap()
                    })
                    .collect(),
            }
        };
        cols = mixed(cols, 0);
        for (l, layer) in model.deeper.iter().enumerate() {
            let [_, a, o] = layer.weight.dims();
            cols = (0..t)
                .map(|k| {
                    let w = layer
                        .weight
                        .val()
                        .slice([k..k + 1, 0..a, 0..o])
                        .reshape([a, o]);
                    let b = layer.bias.val().slice([k..k + 1, 0..o]);
                    relu(cols[k].clone().matmul(w) + b)
                })
                .collect();
            cols = mixed(cols, l + 1);
        }
        let stacked: Vec<Tensor<3>> = cols.into_iter().map(|c| c.unsqueeze_dim(0)).collect();
        model.towers.forward(Tensor::cat(stacked, 0))
    }

    fn assert_close(a: Tensor<2>, b: Tensor<2>, tol: f32) {
        assert_eq!(a.dims(), b.dims());
        for (x, y) in host(a).into_iter().zip(host(b)) {
            assert!((x - y).abs() <= tol, "{x} vs {y}");
        }
    }

    #[test]
    fn initial_stitch_is_0_9_on_the_diagonal_and_0_1_shared_elsewhere() {
        assert_eq!(initial_stitch(1), vec![1.0]);
        assert_eq!(initial_stitch(2), vec![0.9, 0.1, 0.1, 0.9]);
        let three = initial_stitch(3);
        for j in 0..3 {
            for k in 0..3 {
                let want = if j == k { 0.9 } else { 0.05 };
                assert!((three[j * 3 + k] - want).abs() < 1e-7);
            }
        }
        let device = Device::default();
        let model = CrossStitch::new(&config(), emb_config(), 3, &device);
        assert_eq!(model.stitches.len(), 3);
        for a in &model.stitches {
            assert_eq!(host(a.val()), three);
        }
    }

    #[test]
    fn output_shapes_for_two_and_three_tasks() {
        let device = Device::default();
        for t in [1, 2, 3] {
            for cfg in [config(), CrossStitchConfig::default()] {
                let model = CrossStitch::new(&cfg, emb_config(), t, &device);
                let out = model.forward(&input(&device));
                assert_eq!(out.outputs.dims(), [4, t]);
                assert!(out.aux_loss.is_none());
                assert_eq!(model.n_tasks(), t);
            }
        }
    }

    #[test]
    fn identity_stitches_give_independent_columns() {
        let device = Device::default();
        device.seed(3);
        for t in [2, 3] {
            let mut model = CrossStitch::new(&config(), emb_config(), t, &device);
            for a in model.stitches.iter_mut() {
                *a = Param::from_tensor(Tensor::eye(t, &device));
            }
            let x = input(&device);
            assert_close(model.forward(&x).outputs, reference(&model, &x, None), 1e-5);
        }
    }

    #[test]
    fn stitches_mix_the_columns_as_specified() {
        let device = Device::default();
        device.seed(4);
        for t in [2, 3] {
            let model = CrossStitch::new(&config(), emb_config(), t, &device);
            let mix: Vec<Vec<f32>> = model.stitches.iter().map(|a| host(a.val())).collect();
            let x = input(&device);
            let unmixed = reference(&model, &x, None);
            let out = model.forward(&x).outputs;
            assert_close(out.clone(), reference(&model, &x, Some(&mix)), 1e-5);
            let gap: f32 = (out - unmixed).abs().max().into_scalar();
            assert!(gap > 1e-4, "the initial stitches must mix the columns");
        }
    }

    #[test]
    fn key_parameters_receive_gradients() {
        let device = Device::default().autodiff();
        device.seed(5);
        for t in [2, 3] {
            let model = CrossStitch::new(&config(), emb_config(), t, &device);
            let loss = model.forward(&input(&device)).outputs.square().sum();
            let grads = loss.backward();
            let table = &model.embedding.table.as_ref().unwrap().weight;
            assert!(table.val().grad(&grads).is_some());
            assert!(model.first.weight.val().grad(&grads).is_some());
            assert!(model.deeper[1].weight.val().grad(&grads).is_some());
            for a in &model.stitches {
                let g = a.val().grad(&grads).expect("stitch gradient");
                let size: f32 = g.abs().sum().into_scalar();
                assert!(size > 0.0);
            }
            assert!(model.towers.output.weight.val().grad(&grads).is_some());
        }
    }

    #[test]
    fn validate_rejects_empty_and_zero_widths() {
        let ok = CrossStitchConfig::default();
        assert!(ok.validate(2).is_ok());
        assert!(ok.validate(0).is_err());
        let empty = CrossStitchConfig {
            hidden: vec![],
            ..ok.clone()
        };
        assert!(empty.validate(2).is_err());
        let zero = CrossStitchConfig {
            tower: vec![4, 0],
            ..ok
        };
        let err = zero.validate(2).unwrap_err().to_string();
        assert!(
            err.contains("cross-stitch") && err.contains("tower"),
            "{err}"
        );
    }
}
