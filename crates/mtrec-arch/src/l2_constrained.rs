//! L2-Constrained multi-task networks (Duong, Cohn, Bird and Cook, "Low Resource Dependency
//! Parsing: Cross-lingual Parameter Sharing in a Neural Network Parser", ACL 2015).
//!
//! One network per task with identical shapes, `y_k = tower_k(bottom_k(x))`, tied softly by a
//! penalty on their distance: the training loss is
//! `sum_k L_k + alpha * sum_layers sum_{j<k} ||theta_j - theta_k||^2` (the paper has two tasks,
//! `||theta_1 - theta_2||^2`; every pair for `T > 2`). The model returns the second term as
//! [`ModelOutput::aux_loss`] and the engine adds it to the task losses.
//!
//! `theta_k` is every weight and every bias of task `k`'s bottom and tower. The embeddings are
//! one shared input `x` `[B, F*d_emb + D]` here, so they have no per-task copy and no distance
//! to penalise; output `[B, T]`.
//!
//! Defaults: the Single-Task defaults (bottom 113, towers 8) so that this model is exactly
//! Single-Task with shared embeddings plus the penalty; `alpha = 1e-3` is our choice (the paper
//! tunes its weight on development data; the Census protocol tunes it on validation AUC).
//!
//! Speed: the bottoms are one [`ExpertBank`] (one expert per task) and the towers one
//! [`TowerBank`], so the `T` networks run as batched products; the penalty uses
//! `sum_{j<k} ||a_j - a_k||^2 = T * sum_j ||a_j - mean(a)||^2`, a few element-wise operations
//! per parameter tensor instead of `T(T-1)/2` differences. It equals
//! `T * sum_j ||a_j||^2 - ||sum_j a_j||^2` but subtracts before squaring, so it stays exact (0)
//! when the networks agree instead of cancelling two large numbers in `f32`.

use burn::module::Module;
use burn::prelude::*;
use mtrec_nn::{
    BatchedLinear, ExpertBank, ExpertBankConfig, FeatureEmbedding, FeatureEmbeddingConfig,
    ModelInput, TowerBank, TowerBankConfig,
};
use serde::{Deserialize, Serialize};

use crate::{ArchError, ModelOutput};

const MODEL: &str = "l2-constrained";

/// The `[model]` section for `kind = "l2-constrained"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct L2ConstrainedConfig {
    /// Hidden widths of every task's bottom.
    pub hidden: Vec<usize>,
    /// Hidden widths of every task's tower (a final `Linear(-> 1)` follows).
    pub tower: Vec<usize>,
    /// Weight of the summed squared distances between the task networks.
    pub alpha: f64,
}

impl Default for L2ConstrainedConfig {
    fn default() -> Self {
        Self {
            hidden: vec![113],
            tower: vec![8],
            alpha: 1e-3,
        }
    }
}

impl L2ConstrainedConfig {
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
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(invalid(format!(
                "alpha must be finite and non-negative, got {}",
                self.alpha
            )));
        }
        Ok(())
    }
}

#[derive(Module, Debug)]
pub struct L2Constrained {
    pub embedding: FeatureEmbedding,
    /// One bottom per task; the first layer's weight `[in, T*H1]` holds task `k` in columns
    /// `k*H1 .. (k+1)*H1`, the deeper ones `[T, H_{l-1}, H_l]`.
    pub bottoms: ExpertBank,
    pub towers: TowerBank,
    alpha: f64,
    n_tasks: usize,
}

impl L2Constrained {
    /// Expects a config that passed [`L2ConstrainedConfig::validate`] (the bottoms need at least
    /// one hidden layer).
    pub fn new(
        cfg: &L2ConstrainedConfig,
        emb: FeatureEmbeddingConfig,
        n_tasks: usize,
        device: &Device,
    ) -> Self {
        let bottoms = ExpertBankConfig {
            d_input: emb.d_out(),
            n_experts: n_tasks,
            hidden: cfg.hidden.clone(),
        };
        let towers = TowerBankConfig {
            n_tasks,
            d_input: bottoms.d_out(),
            hidden: cfg.tower.clone(),
        };
        Self {
            embedding: emb.init(device),
            bottoms: bottoms.init(device),
            towers: towers.init(device),
            alpha: cfg.alpha,
            n_tasks,
        }
    }

    pub fn forward(&self, input: &ModelInput) -> ModelOutput {
        let hidden = self.bottoms.forward(self.embedding.forward(input)); // [B, T, H]
        ModelOutput {
            outputs: self.towers.forward_per_task(hidden),
            aux_loss: Some(self.aux_loss()),
        }
    }

    /// `alpha * distance()`, `[1]`.
    pub fn aux_loss(&self) -> Tensor<1> {
        self.distance().mul_scalar(self.alpha)
    }

    /// `sum_layers sum_{j<k} ||theta_j - theta_k||^2` over every weight and bias of the bottoms
    /// and towers, `[1]`.
    pub fn distance(&self) -> Tensor<1> {
        let t = self.n_tasks;
        let first = &self.bottoms.first;
        let [d_in, th] = first.weight.dims();
        let h1 = th / t;
        let mut total = spread(first.weight.val().reshape([d_in, t, h1]), 1);
        if let Some(bias) = &first.bias {
            total = total + spread(bias.val().reshape([t, h1]), 0);
        }
        let banks = self
            .bottoms
            .deeper
            .iter()
            .chain(&self.towers.hidden)
            .chain(std::iter::once(&self.towers.output));
        for layer in banks {
            total = total + batched_spread(layer);
        }
        total.mul_scalar(t as f64)
    }

    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    pub fn n_tasks(&self) -> usize {
        self.n_tasks
    }
}

/// `sum_j ||a_j - mean(a)||^2` over the task axis `dim`; times `T` it is the pairwise sum.
fn spread<const D: usize>(p: Tensor<D>, dim: usize) -> Tensor<1> {
    let centred = p.clone() - p.mean_dim(dim);
    centred.square().sum()
}

fn batched_spread(layer: &BatchedLinear) -> Tensor<1> {
    spread(layer.weight.val(), 0) + spread(layer.bias.val(), 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{emb_config, sample_input as input};

    fn config() -> L2ConstrainedConfig {
        L2ConstrainedConfig {
            hidden: vec![6, 5],
            tower: vec![3],
            alpha: 0.25,
        }
    }

    fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// Every task's parameters as one flat host vector, read straight from the stored layouts.
    fn task_vectors(model: &L2Constrained) -> Vec<Vec<f64>> {
        let t = model.n_tasks();
        let mut per_task = vec![Vec::new(); t];
        let first = &model.bottoms.first;
        let [d_in, th] = first.weight.dims();
        let h1 = th / t;
        let w = host(first.weight.val());
        let b = host(first.bias.as_ref().unwrap().val());
        for (k, v) in per_task.iter_mut().enumerate() {
            for r in 0..d_in {
                v.extend(
                    w[r * th + k * h1..r * th + (k + 1) * h1]
                        .iter()
                        .map(|&x| x as f64),
                );
            }
            v.extend(b[k * h1..(k + 1) * h1].iter().map(|&x| x as f64));
        }
        let banks = model
            .bottoms
            .deeper
            .iter()
            .chain(&model.towers.hidden)
            .chain(std::iter::once(&model.towers.output));
        for layer in banks {
            for p in [host(layer.weight.val()), host(layer.bias.val())] {
                let per = p.len() / t;
                for (k, v) in per_task.iter_mut().enumerate() {
                    v.extend(p[k * per..(k + 1) * per].iter().map(|&x| x as f64));
                }
            }
        }
        per_task
    }

    fn brute_force(model: &L2Constrained) -> f64 {
        let v = task_vectors(model);
        let mut sum = 0.0;
        for j in 0..v.len() {
            for k in j + 1..v.len() {
                sum += v[j]
                    .iter()
                    .zip(&v[k])
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>();
            }
        }
        sum
    }

    /// Copies task 0's network onto every task.
    fn tie(model: &mut L2Constrained) {
        let t = model.n_tasks();
        let first = &mut model.bottoms.first;
        let [d_in, th] = first.weight.dims();
        let w = first.weight.val().reshape([d_in, t, th / t]);
        first.weight = first
            .weight
            .clone()
            .map(|_| w.narrow(1, 0, 1).repeat_dim(1, t).reshape([d_in, th]));
        let b = first.bias.as_ref().unwrap().val().reshape([t, th / t]);
        first.bias = first
            .bias
            .clone()
            .map(|p| p.map(|_| b.narrow(0, 0, 1).repeat_dim(0, t).reshape([th])));
        let banks = model
            .bottoms
            .deeper
            .iter_mut()
            .chain(model.towers.hidden.iter_mut())
            .chain(std::iter::once(&mut model.towers.output));
        for layer in banks {
            layer.weight = layer
                .weight
                .clone()
                .map(|w| w.narrow(0, 0, 1).repeat_dim(0, t));
            layer.bias = layer
                .bias
                .clone()
                .map(|b| b.narrow(0, 0, 1).repeat_dim(0, t));
        }
    }

    #[test]
    fn output_shapes_for_two_and_three_tasks() {
        let device = Device::default();
        for t in [1, 2, 3] {
            for cfg in [config(), L2ConstrainedConfig::default()] {
                let model = L2Constrained::new(&cfg, emb_config(), t, &device);
                let out = model.forward(&input(&device));
                assert_eq!(out.outputs.dims(), [4, t]);
                assert_eq!(out.aux_loss.expect("penalty").dims(), [1]);
            }
        }
    }

    #[test]
    fn aux_loss_matches_brute_force_pairwise_distances() {
        let device = Device::default();
        device.seed(11);
        for t in [2, 3] {
            let model = L2Constrained::new(&config(), emb_config(), t, &device);
            let want = 0.25 * brute_force(&model);
            let got: f32 = model
                .forward(&input(&device))
                .aux_loss
                .unwrap()
                .into_scalar();
            assert!(want > 1.0, "random task networks must differ: {want}");
            assert!(
                ((got as f64) - want).abs() <= 1e-5 * want,
                "{t} tasks: {got} vs brute force {want}"
            );
        }
    }

    #[test]
    fn aux_loss_is_zero_for_equal_task_networks() {
        let device = Device::default();
        device.seed(12);
        for t in [1, 2, 3] {
            let mut model = L2Constrained::new(&config(), emb_config(), t, &device);
            tie(&mut model);
            assert_eq!(brute_force(&model), 0.0);
            let out = model.forward(&input(&device));
            let aux: f32 = out.aux_loss.unwrap().into_scalar();
            assert!(aux.abs() < 1e-9, "{t} tasks: {aux}");
            // Equal networks on a shared input predict the same for every task.
            let y = host(out.outputs);
            for row in y.chunks(t) {
                assert!(row.iter().all(|v| (v - row[0]).abs() < 1e-6), "{row:?}");
            }
        }
    }

    #[test]
    fn key_parameters_receive_gradients() {
        let device = Device::default().autodiff();
        device.seed(13);
        for t in [2, 3] {
            let model = L2Constrained::new(&config(), emb_config(), t, &device);
            let out = model.forward(&input(&device));
            let loss = out.outputs.square().sum() + out.aux_loss.unwrap();
            let grads = loss.backward();
            let table = &model.embedding.table.as_ref().unwrap().weight;
            assert!(table.val().grad(&grads).is_some());
            assert!(model.bottoms.first.weight.val().grad(&grads).is_some());
            assert!(model.bottoms.deeper[0].weight.val().grad(&grads).is_some());
            assert!(model.towers.output.weight.val().grad(&grads).is_some());
        }
        // The penalty alone reaches every per-task parameter.
        let model = L2Constrained::new(&config(), emb_config(), 2, &device);
        let grads = model.aux_loss().backward();
        assert!(model.bottoms.first.weight.val().grad(&grads).is_some());
        assert!(model.towers.hidden[0].bias.val().grad(&grads).is_some());
    }

    #[test]
    fn validate_rejects_bad_alpha_and_widths() {
        let ok = L2ConstrainedConfig::default();
        assert!(ok.validate(2).is_ok());
        assert!(ok.validate(0).is_err());
        for alpha in [-1.0, f64::NAN, f64::INFINITY] {
            let bad = L2ConstrainedConfig {
                alpha,
                ..ok.clone()
            };
            assert!(bad.validate(2).is_err());
        }
        let empty = L2ConstrainedConfig {
            hidden: vec![],
            ..ok.clone()
        };
        assert!(empty.validate(2).is_err());
        let zero = L2ConstrainedConfig {
            hidden: vec![0],
            ..ok
        };
        let err = zero.validate(2).unwrap_err().to_string();
        assert!(err.contains("l2-constrained"), "{err}");
    }
}
