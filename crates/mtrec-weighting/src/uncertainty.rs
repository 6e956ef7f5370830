//! Uncertainty weighting (Kendall et al., CVPR 2018): each task's loss is scaled by a learned
//! homoscedastic precision, `sum_k L_k / (2 exp(s_k)) + s_k / 2`, where the `s_k / 2` term
//! stops the log-variances `s_k` from growing without bound.

use std::collections::BTreeMap;

use burn::module::{Module, Param, ParamId};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Gradients;

use crate::{StepContext, Weighting, WeightingError};

/// A module of its own so that a burn optimizer can step `s` apart from the model.
#[derive(Module, Debug)]
struct LogVariances {
    s: Param<Tensor<1>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SavedState {
    id: u64,
    s: Vec<f32>,
    optim: Vec<u8>,
}

pub struct UncertaintyWeighting {
    task_names: Vec<String>,
    /// `None` only while [`Weighting::update`] moves it through the optimizer.
    params: Option<LogVariances>,
    optim: ModuleOptimizer,
}

impl UncertaintyWeighting {
    /// Every `s_k` starts at `init`; `device` is the autodiff device the model trains on, so the
    /// engine's backward pass reaches `s`.
    pub fn new(task_names: &[String], init: f64, device: &Device) -> Result<Self, WeightingError> {
        if !init.is_finite() {
            return Err(WeightingError::Invalid(format!(
                "uncertainty: initial log-variance must be finite, got {init}"
            )));
        }
        let s = Tensor::<1>::full([task_names.len()], init, device);
        Ok(Self {
            task_names: task_names.to_vec(),
            params: Some(LogVariances {
                s: Param::from_tensor(s),
            }),
            optim: AdamConfig::new().init(),
        })
    }

    fn s(&self) -> Tensor<1> {
        self.params.as_ref().expect("log-variances present").s.val()
    }

    /// The current `s_k`, in task order.
    pub fn log_variances(&self) -> Vec<f64> {
        self.s().into_data().iter::<f64>().collect()
    }
}

impl Weighting for UncertaintyWeighting {
    fn combine(&mut self, losses: Tensor<1>, _ctx: &StepContext) -> Tensor<1> {
        let mut s = self.s();
        // Validation losses come without autodiff; `s` is then a constant.
        if !losses.is_autodiff() {
            s = s.inner();
        }
        let s = s.to_device(&losses.device());
        (losses * s.clone().neg().exp() * 0.5 + s * 0.5).sum()
    }

    fn weights(&self) -> Vec<f64> {
        self.log_variances()
            .into_iter()
            .map(|s| 0.5 * (-s).exp())
            .collect()
    }

    fn stats(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for ((name, w), s) in self
            .task_names
            .iter()
            .zip(self.weights())
            .zip(self.log_variances())
        {
            out.insert(format!("weight/{name}"), w);
            out.insert(format!("log_variance/{name}"), s);
        }
        out
    }

    fn task_names(&self) -> &[String] {
        &self.task_names
    }

    fn save_state(&self) -> Result<Vec<u8>, WeightingError> {
        let p = self.params.as_ref().expect("log-variances present");
        let optim = self
            .optim
            .into_bytes()
            .map_err(|e| WeightingError::Invalid(format!("saving the optimizer: {e:?}")))?;
        crate::encode_state(&SavedState {
            id: p.s.id.val(),
            s: p.s
                .val()
                .into_data()
                .try_to_vec_as::<f32>()
                .unwrap_or_default(),
            optim: optim.to_vec(),
        })
    }

    /// The log-variances take back their saved id too: the optimizer's state is keyed by it.
    fn load_state(&mut self, bytes: &[u8]) -> Result<(), WeightingError> {
        let saved: SavedState = crate::decode_state(bytes)?;
        if saved.s.len() != self.task_names.len() {
            return Err(WeightingError::Invalid(format!(
                "the saved uncertainty weighting has {} tasks, this run {}",
                saved.s.len(),
                self.task_names.len()
            )));
        }
        let device = self.s().device();
        let s = Tensor::<1>::from_floats(saved.s.as_slice(), &device).require_grad();
        self.params = Some(LogVariances {
            s: Param::initialized(ParamId::from(saved.id), s),
        });
        let optim = std::mem::replace(&mut self.optim, AdamConfig::new().init());
        self.optim = optim
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(saved.optim))
            .map_err(|e| WeightingError::Invalid(format!("the saved optimizer state: {e:?}")))?;
        Ok(())
    }

    fn update(&mut self, grads: &mut Gradients, ctx: &StepContext) {
        let params = self.params.take().expect("log-variances present");
        let own = GradientsParams::from_module(grads, &params);
        self.params = Some(if own.is_empty() {
            params
        } else {
            self.optim.step(ctx.learning_rate, params, own)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LN2: f64 = std::f64::consts::LN_2;

    fn ctx(learning_rate: f64) -> StepContext {
        StepContext {
            step: 0,
            epoch: 1,
            learning_rate,
        }
    }

    /// Two tasks with `s = [0, ln 2]`, i.e. `exp(s) = [1, 2]`.
    fn two_tasks(device: &Device) -> UncertaintyWeighting {
        let names = vec!["a".to_string(), "b".to_string()];
        let mut w = UncertaintyWeighting::new(&names, 0.0, device).unwrap();
        let s = Tensor::<1>::from_floats([0.0, LN2 as f32], device);
        w.params.as_mut().unwrap().s = Param::from_tensor(s);
        w
    }

    #[test]
    fn objective_and_weights_follow_the_formula() {
        let device = Device::default().autodiff();
        let mut w = two_tasks(&device);
        let losses = Tensor::<1>::from_floats([3.0, 4.0], &device);
        // 3 / (2 * 1) + 0 / 2 + 4 / (2 * 2) + ln2 / 2 = 1.5 + 1 + 0.346574 = 2.846574
        let total: f32 = w.combine(losses, &ctx(1e-3)).into_scalar();
        assert!((total as f64 - (2.5 + LN2 / 2.0)).abs() < 1e-5, "{total}");
        // 1 / (2 exp(s)) = [0.5, 0.25]
        let weights = w.weights();
        assert!((weights[0] - 0.5).abs() < 1e-6 && (weights[1] - 0.25).abs() < 1e-6);
        let stats = w.stats();
        assert!((stats["weight/b"] - 0.25).abs() < 1e-6);
        assert!((stats["log_variance/b"] - LN2).abs() < 1e-6);
    }

    #[test]
    fn gradient_of_s_is_half_minus_the_weighted_loss() {
        let device = Device::default().autodiff();
        let mut w = two_tasks(&device);
        let losses = Tensor::<1>::from_floats([3.0, 4.0], &device);
        let grads = w.combine(losses, &ctx(1e-3)).backward();
        let g: Vec<f32> = w.s().grad(&grads).unwrap().into_data().iter().collect();
        // -L_k / (2 exp(s_k)) + 1/2: -3/2 + 1/2 = -1, -4/4 + 1/2 = -0.5
        assert!(
            (g[0] + 1.0).abs() < 1e-6 && (g[1] + 0.5).abs() < 1e-6,
            "{g:?}"
        );
    }

    #[test]
    fn update_steps_s_against_its_gradient_and_takes_its_grads() {
        let device = Device::default().autodiff();
        let names = vec!["a".to_string()];
        let mut w = UncertaintyWeighting::new(&names, -0.5, &device).unwrap();
        let losses = Tensor::<1>::from_floats([0.1], &device);
        let mut grads = w.combine(losses, &ctx(0.01)).backward();
        let s_before = w.s();
        // dJ/ds = -0.1 / (2 e^-0.5) + 0.5 = 0.5 - 0.082436 = 0.417564 > 0. Adam's first step
        // is lr * g / (|g| + 1e-5) = 0.01 * 0.999976, so s becomes -0.5099998.
        w.update(&mut grads, &ctx(0.01));
        assert!(
            s_before.grad(&grads).is_none(),
            "update leaves its grads behind"
        );
        let s = w.log_variances()[0];
        assert!(
            (s - (-0.5 - 0.01 * 0.417564 / 0.417574)).abs() < 1e-6,
            "{s}"
        );
    }

    #[test]
    fn non_autodiff_losses_are_combined_with_s_as_a_constant() {
        let device = Device::default();
        let mut w = two_tasks(&device.clone().autodiff());
        let losses = Tensor::<1>::from_floats([3.0, 4.0], &device);
        let total: f32 = w.combine(losses, &ctx(1e-3)).into_scalar();
        assert!((total as f64 - (2.5 + LN2 / 2.0)).abs() < 1e-5, "{total}");
    }

    #[test]
    fn non_finite_init_is_an_error() {
        let names = vec!["a".to_string()];
        let device = Device::default().autodiff();
        assert!(UncertaintyWeighting::new(&names, f64::NAN, &device).is_err());
        assert!(UncertaintyWeighting::new(&names, f64::INFINITY, &device).is_err());
    }
}
