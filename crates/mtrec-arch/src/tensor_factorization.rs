//! Tensor-Factorization multi-task networks, Tucker form (Yang and Hospedales, "Deep
//! Multi-task Representation Learning: A Tensor Factorisation Approach", ICLR 2017).
//!
//! Every hidden layer has one weight matrix per task; stacked, they form a tensor
//! `W in R^{m x n x T}` kept in Tucker form,
//! `W = sum_{i1,i2,i3} S[i1,i2,i3] * U1[:,i1] o U2[:,i2] o U3[:,i3]`, with core
//! `S [r1, r2, r3]`, `U1 [m, r1]`, `U2 [n, r2]`, `U3 [T, r3]`. Task `k` uses the slice
//! `W[:, :, k]` plus its own bias, so the tasks share the input subspace `U1`, the output
//! subspace `U2` and the core, and differ only through their row of `U3` (and the bias).
//! The towers are ordinary per-task towers: the factorisation ties the hidden layers only.
//!
//! Input `x` `[B, F*d_emb + D]` from one shared embedding, hidden activations `[T, B, H_l]`,
//! output `[B, T]`.
//!
//! Ranks: one `ranks = [r1, r2, r3]` for every hidden layer, each clamped to its dimension
//! (`r1 <= m`, `r2 <= n`, `r3 <= T`): full ranks make the tasks independent, small ranks force
//! them into shared subspaces. The paper picks the ranks by an SVD threshold on single-task
//! weights; with no pre-training step here they are hyper-parameters. Defaults (our choice):
//! hidden 113 and towers 8 as for Single-Task, ranks `[32, 32, 8]` (the task mode full rank for
//! up to 8 tasks, sharing through 32-dimensional input and output subspaces).
//!
//! Initialisation: the paper starts the factors from the SVD of trained single-task weights,
//! i.e. with orthonormal columns and the scale in the core. We mimic that without pre-training:
//! the columns of `U1` and `U2` are random unit vectors (nearly orthogonal when `dim >> r`),
//! each task's row of `U3` is a random unit vector (so every task starts at the same scale and
//! two tasks' slices correlate by the cosine of their rows), and `S ~ N(0, n / (3 r1 r2))`.
//! Then an entry of `W[:, :, k]` has mean variance `(r1/m)(r2/n) Var(S) = 1 / (3 m)`, the
//! variance of PyTorch's `nn.Linear` default `U(-1/sqrt(m), 1/sqrt(m))`. Biases use that
//! default directly.
//!
//! Speed: each forward materialises the `T` slices with three plain products
//! (`S x_3 U3`, then `U1`, then `U2`, costing `O(T m n r2)`, independent of the batch), then
//! applies them as one product: a wide `[B, m] x [m, T*n]` for the first layer, whose input all
//! tasks share, and a batched `[T, B, m] x [T, m, n]` for deeper ones.

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::relu;
use mtrec_nn::{
    FeatureEmbedding, FeatureEmbeddingConfig, ModelInput, TowerBank, TowerBankConfig,
    torch_linear_init,
};
use serde::{Deserialize, Serialize};

use crate::{ArchError, ModelOutput};

const MODEL: &str = "tensor-factorization";

/// The `[model]` section for `kind = "tensor-factorization"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TensorFactorizationConfig {
    /// Hidden widths shared by every task's network; each layer is Tucker-factorised.
    pub hidden: Vec<usize>,
    /// Hidden widths of every task's (unfactorised) tower; a final `Linear(-> 1)` follows.
    pub tower: Vec<usize>,
    /// Tucker ranks `[r1, r2, r3]` (input, output, task mode) of every hidden layer, each
    /// clamped to its dimension.
    pub ranks: [usize; 3],
}

impl Default for TensorFactorizationConfig {
    fn default() -> Self {
        Self {
            hidden: vec![113],
            tower: vec![8],
            ranks: [32, 32, 8],
        }
    }
}

impl TensorFactorizationConfig {
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
        if self.ranks.contains(&0) {
            return Err(invalid(format!(
                "every Tucker rank must be at least 1, got {:?}",
                self.ranks
            )));
        }
        Ok(())
    }
}

/// `T` task-specific linear maps `m -> n` whose stacked weights are one Tucker tensor.
#[derive(Debug, Clone)]
pub struct TuckerLinearConfig {
    pub n_tasks: usize,
    pub d_input: usize,
    pub d_output: usize,
    /// Requested ranks; [`TuckerLinearConfig::ranks`] gives the clamped ones.
    pub ranks: [usize; 3],
}

#[derive(Module, Debug)]
pub struct TuckerLinear {
    /// `S` `[r1, r2, r3]`.
    pub core: Param<Tensor<3>>,
    /// `U1` `[m, r1]`, input mode.
    pub u1: Param<Tensor<2>>,
    /// `U2` `[n, r2]`, output mode.
    pub u2: Param<Tensor<2>>,
    /// `U3` `[T, r3]`, task mode.
    pub u3: Param<Tensor<2>>,
    /// One bias per task, `[T, n]`.
    pub bias: Param<Tensor<2>>,
}

impl TuckerLinearConfig {
    /// The ranks actually used: the requested ones clamped to `[m, n, T]` (and at least 1).
    pub fn ranks(&self) -> [usize; 3] {
        let dims = [self.d_input, self.d_output, self.n_tasks];
        [0, 1, 2].map(|i| self.ranks[i].clamp(1, dims[i].max(1)))
    }

    pub fn init(&self, device: &Device) -> TuckerLinear {
        let [r1, r2, r3] = self.ranks();
        let (m, n, t) = (
            self.d_input.max(1),
            self.d_output.max(1),
            self.n_tasks.max(1),
        );
        let normal =
            |shape: [usize; 2]| Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), device);
        let unit_columns = |u: Tensor<2>| u.clone() / u.square().sum_dim(0).sqrt().clamp_min(1e-12);
        let unit_rows = |u: Tensor<2>| u.clone() / u.square().sum_dim(1).sqrt().clamp_min(1e-12);
        let core_std = (n as f64 / (3.0 * (r1 * r2) as f64)).sqrt();
        TuckerLinear {
            core: Initializer::Normal {
                mean: 0.0,
                std: core_std,
            }
            .init([r1, r2, r3], device),
            u1: Param::from_tensor(unit_columns(normal([m, r1])).detach()),
            u2: Param::from_tensor(unit_columns(normal([n, r2])).detach()),
            u3: Param::from_tensor(unit_rows(normal([t, r3])).detach()),
            bias: torch_linear_init(m).init([t, n], device),
        }
    }
}

impl TuckerLinear {
    /// All tasks' weights side by side, `[m, T*n]`: task `k` owns columns `k*n .. (k+1)*n`.
    pub fn wide_weight(&self) -> Tensor<2> {
        let [r1, r2, r3] = self.core.dims();
        let [m, _] = self.u1.dims();
        let [n, _] = self.u2.dims();
        let [t, _] = self.u3.dims();
        // G[i1, i2, k] = sum_i3 S[i1, i2, i3] U3[k, i3]
        let g = self
            .core
            .val()
            .reshape([r1 * r2, r3])
            .matmul(self.u3.val().transpose());
        // -> [r1, T, r2], so that U1 and then U2 are plain 2-D products.
        let g = g.reshape([r1, r2, t]).swap_dims(1, 2).reshape([r1, t * r2]);
        let w = self.u1.val().matmul(g); // [m, T*r2]
        w.reshape([m * t, r2])
            .matmul(self.u2.val().transpose())
            .reshape([m, t * n])
    }

    /// The task slices `W[:, :, k]` stacked task-major, `[T, m, n]`.
    pub fn weights(&self) -> Tensor<3> {
        let [m, _] = self.u1.dims();
        let [n, _] = self.u2.dims();
        let [t, _] = self.u3.dims();
        self.wide_weight().reshape([m, t, n]).swap_dims(0, 1)
    }

    /// Every task reads the same input: `[B, m] -> [T, B, n]`.
    pub fn forward_shared(&self, x: Tensor<2>) -> Tensor<3> {
        let [b, _] = x.dims();
        let [t, n] = self.bias.dims();
        let y = x.matmul(self.wide_weight()) + self.bias.val().reshape([1, t * n]);
        y.reshape([b, t, n]).swap_dims(0, 1)
    }

    /// Each task reads its own row: `[T, B, m] -> [T, B, n]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        x.matmul(self.weights()) + self.bias.val().unsqueeze_dim(1)
    }
}

#[derive(Module, Debug)]
pub struct TensorFactorization {
    pub embedding: FeatureEmbedding,
    /// One Tucker layer per hidden width; the first reads the shared `x`.
    pub layers: Vec<TuckerLinear>,
    pub towers: TowerBank,
    n_tasks: usize,
}

impl TensorFactorization {
    /// Expects a config that passed [`TensorFactorizationConfig::validate`]; without hidden
    /// layers the towers read `x` directly.
    pub fn new(
        cfg: &TensorFactorizationConfig,
        emb: FeatureEmbeddingConfig,
        n_tasks: usize,
        device: &Device,
    ) -> Self {
        let mut width = emb.d_out();
        let mut layers = Vec::with_capacity(cfg.hidden.len());
        for &h in &cfg.hidden {
            let layer = TuckerLinearConfig {
                n_tasks,
                d_input: width,
                d_output: h,
                ranks: cfg.ranks,
            };
            layers.push(layer.init(device));
            width = h;
        }
        let towers = TowerBankConfig {
            n_tasks,
            d_input: width,
            hidden: cfg.tower.clone(),
        };
        Self {
            embedding: emb.init(device),
            layers,
            towers: towers.init(device),
            n_tasks,
        }
    }

    pub fn forward(&self, input: &ModelInput) -> ModelOutput {
        let x = self.embedding.forward(input);
        let outputs = match self.layers.split_first() {
            Some((first, deeper)) => {
                let mut h = relu(first.forward_shared(x)); // [T, B, H1]
                for layer in deeper {
                    h = relu(layer.forward(h));
                }
                self.towers.forward(h)
            }
            None => self.towers.forward_shared(x),
        };
        ModelOutput {
            outputs,
            aux_loss: None,
        }
    }

    pub fn n_tasks(&self) -> usize {
        self.n_tasks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{emb_config, sample_input as input};

    fn config() -> TensorFactorizationConfig {
        TensorFactorizationConfig {
            hidden: vec![6, 5],
            tower: vec![3],
            ranks: [3, 2, 2],
        }
    }

    fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn task_slices_equal_the_explicit_tucker_reconstruction() {
        let device = Device::default();
        device.seed(21);
        // Every dimension and rank distinct, so a transposed mode cannot pass.
        let cfg = TuckerLinearConfig {
            n_tasks: 3,
            d_input: 7,
            d_output: 5,
            ranks: [4, 3, 2],
        };
        let layer = cfg.init(&device);
        let (m, n, t) = (7, 5, 3);
        let [r1, r2, r3] = cfg.ranks();
        assert_eq!([r1, r2, r3], [4, 3, 2]);
        let s = host(layer.core.val());
        let u1 = host(layer.u1.val());
        let u2 = host(layer.u2.val());
        let u3 = host(layer.u3.val());
        let w = host(layer.weights());
        let wide = host(layer.wide_weight());
        assert_eq!(layer.weights().dims(), [t, m, n]);
        for k in 0..t {
            for a in 0..m {
                for b in 0..n {
                    let mut want = 0.0f64;
                    for i1 in 0..r1 {
                        for i2 in 0..r2 {
                            for i3 in 0..r3 {
                                want += (s[(i1 * r2 + i2) * r3 + i3]
                                    * u1[a * r1 + i1]
                                    * u2[b * r2 + i2]
                                    * u3[k * r3 + i3])
                                    as f64;
                            }
                        }
                    }
                    let got = w[(k * m + a) * n + b] as f64;
                    assert!((got - want).abs() < 1e-5, "W[{a},{b},{k}]: {got} vs {want}");
                    assert_eq!(wide[a * t * n + k * n + b], w[(k * m + a) * n + b]);
                }
            }
        }
    }

    #[test]
    fn layer_applies_each_task_slice_and_bias() {
        let device = Device::default();
        device.seed(22);
        let cfg = TuckerLinearConfig {
            n_tasks: 2,
            d_input: 4,
            d_output: 3,
            ranks: [2, 2, 2],
        };
        let layer = cfg.init(&device);
        let x = Tensor::<2>::random([5, 4], Distribution::Default, &device);
        let shared = layer.forward_shared(x.clone());
        let batched = layer.forward(x.clone().unsqueeze_dim::<3>(0).repeat_dim(0, 2));
        let w = layer.weights();
        for k in 0..2 {
            let wk = w.clone().narrow(0, k, 1).reshape([4, 3]);
            let bk = layer.bias.val().narrow(0, k, 1);
            let want = host(x.clone().matmul(wk) + bk);
            for got in [&shared, &batched] {
                let got = host(got.clone().narrow(0, k, 1).reshape([5, 3]));
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() < 1e-5, "{g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn ranks_are_clamped_to_the_tensor_dimensions() {
        let cfg = TuckerLinearConfig {
            n_tasks: 2,
            d_input: 10,
            d_output: 3,
            ranks: [32, 32, 8],
        };
        assert_eq!(cfg.ranks(), [10, 3, 2]);
        let layer = cfg.init(&Device::default());
        assert_eq!(layer.core.dims(), [10, 3, 2]);
        assert_eq!(layer.u3.dims(), [2, 2]);
    }

    #[test]
    fn initial_weights_have_the_pytorch_linear_scale() {
        let device = Device::default();
        device.seed(23);
        let (m, n) = (256, 128);
        let cfg = TuckerLinearConfig {
            n_tasks: 3,
            d_input: m,
            d_output: n,
            ranks: [32, 32, 8],
        };
        let w = host(cfg.init(&device).weights());
        let want = 1.0 / (3.0 * m as f64);
        // Every task starts at the scale, not only their average.
        for (k, slice) in w.chunks(m * n).enumerate() {
            let var = slice.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / slice.len() as f64;
            assert!(
                (var / want - 1.0).abs() < 0.2,
                "task {k}: std {} vs {}",
                var.sqrt(),
                want.sqrt()
            );
        }
    }

    #[test]
    fn output_shapes_for_two_and_three_tasks() {
        let device = Device::default();
        for t in [1, 2, 3] {
            for cfg in [config(), TensorFactorizationConfig::default()] {
                let model = TensorFactorization::new(&cfg, emb_config(), t, &device);
                let out = model.forward(&input(&device));
                assert_eq!(out.outputs.dims(), [4, t]);
                assert!(out.aux_loss.is_none());
                assert_eq!(model.n_tasks(), t);
            }
        }
    }

    #[test]
    fn key_parameters_receive_gradients() {
        let device = Device::default().autodiff();
        device.seed(24);
        for t in [2, 3] {
            let model = TensorFactorization::new(&config(), emb_config(), t, &device);
            let loss = model.forward(&input(&device)).outputs.square().sum();
            let grads = loss.backward();
            let table = &model.embedding.table.as_ref().unwrap().weight;
            assert!(table.val().grad(&grads).is_some());
            for layer in &model.layers {
                assert!(layer.core.val().grad(&grads).is_some());
                assert!(layer.u1.val().grad(&grads).is_some());
                assert!(layer.u2.val().grad(&grads).is_some());
                assert!(layer.u3.val().grad(&grads).is_some());
                assert!(layer.bias.val().grad(&grads).is_some());
            }
            assert!(model.towers.output.weight.val().grad(&grads).is_some());
        }
    }

    #[test]
    fn validate_rejects_zero_ranks_and_widths() {
        let ok = TensorFactorizationConfig::default();
        assert!(ok.validate(2).is_ok());
        assert!(ok.validate(0).is_err());
        let rank = TensorFactorizationConfig {
            ranks: [4, 0, 2],
            ..ok.clone()
        };
        let err = rank.validate(2).unwrap_err().to_string();
        assert!(
            err.contains("tensor-factorization") && err.contains("rank"),
            "{err}"
        );
        let empty = TensorFactorizationConfig {
            hidden: vec![],
            ..ok.clone()
        };
        assert!(empty.validate(2).is_err());
        let zero = TensorFactorizationConfig {
            tower: vec![0],
            ..ok
        };
        assert!(zero.validate(2).is_err());
    }
}
