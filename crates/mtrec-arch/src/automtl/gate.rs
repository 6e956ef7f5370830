//! Binary architecture gates with the straight-through estimator (PD-DARTS, spec §4 step 1):
//! feature selection and expert connections are 0/1 masks whose keep-probability
//! `p = sigmoid(a)` is learnt.

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::sigmoid;
use serde::{Deserialize, Serialize};

/// How unfixed gates behave in a forward pass; the search sets it per phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum GateMode {
    /// Warm-up: every gate is 1 and no gradient reaches its parameter.
    #[default]
    AllOn,
    /// The authors' code (`sample_gates = false`): the forward value stays 1, the
    /// straight-through gradient still trains `a`.
    StraightThrough,
    /// The paper: a Bernoulli(p) sample in training, `1[p > 0.5]` at evaluation, gradient
    /// straight through to `p`.
    Sample,
}

/// The straight-through estimator: forward value `hard`, gradient of `p` (so `dm/dp = 1`).
pub fn straight_through(p: Tensor<1>, hard: Tensor<1>) -> Tensor<1> {
    p.clone() + (hard - p).detach()
}

/// A vector of `n` binary gates. Each element is either free (learnt through `logits`) or
/// fixed by discretisation; once every element is fixed the logits are dropped, so a fully
/// discretised gate holds no parameter, exactly like one built from a genotype.
#[derive(Module, Debug)]
pub struct BinaryGate {
    pub logits: Option<Param<Tensor<1>>>,
    #[module(skip)]
    fixed: Vec<Option<bool>>,
}

impl BinaryGate {
    /// `n` free gates with `a = 0`, i.e. `p = 0.5` (the authors' initialisation). Zero gates
    /// (feature selection on data without sparse fields) hold no parameter.
    pub fn searchable(n: usize, device: &Device) -> Self {
        Self {
            logits: (n > 0).then(|| Param::from_tensor(Tensor::zeros([n], device))),
            fixed: vec![None; n],
        }
    }

    pub fn fixed(keep: Vec<bool>) -> Self {
        Self {
            logits: None,
            fixed: keep.into_iter().map(Some).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.fixed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fixed.is_empty()
    }

    /// Fixed elements' values, `None` where still free.
    pub fn state(&self) -> &[Option<bool>] {
        &self.fixed
    }

    /// Keep-probabilities `sigmoid(a)` of every element (fixed ones as 0 or 1).
    pub fn probabilities(&self) -> Vec<f64> {
        let p: Option<Vec<f32>> = self.logits.as_ref().map(|a| {
            sigmoid(a.val())
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32 logits")
        });
        self.fixed
            .iter()
            .enumerate()
            .map(|(i, f)| match (f, &p) {
                (Some(keep), _) => f64::from(u8::from(*keep)),
                (None, Some(p)) => f64::from(p[i]),
                (None, None) => unreachable!("a free gate always has logits"),
            })
            .collect()
    }

    /// Fixes element `i`; drops the logits when it was the last free one.
    pub fn fix(&mut self, i: usize, keep: bool) {
        self.fixed[i] = Some(keep);
        if self.fixed.iter().all(Option::is_some) {
            self.logits = None;
        }
    }

    /// The mask `[n]` for one forward pass.
    pub fn mask(&self, mode: GateMode, device: &Device) -> Tensor<1> {
        let n = self.len();
        let fixed_values: Vec<f32> = self
            .fixed
            .iter()
            .map(|f| f32::from(u8::from(f.unwrap_or(false))))
            .collect();
        let fixed = Tensor::<1>::from_data(TensorData::new(fixed_values, [n]), device);
        let Some(logits) = &self.logits else {
            return fixed;
        };
        let free_values: Vec<f32> = self
            .fixed
            .iter()
            .map(|f| f32::from(u8::from(f.is_none())))
            .collect();
        let free = Tensor::<1>::from_data(TensorData::new(free_values, [n]), device);
        let p = sigmoid(logits.val());
        let learnt = match mode {
            GateMode::AllOn => Tensor::ones([n], device),
            GateMode::StraightThrough => straight_through(p, Tensor::ones([n], device)),
            GateMode::Sample => {
                let hard = if device.is_autodiff() {
                    p.random_like(Distribution::Uniform(0.0, 1.0))
                        .lower(p.clone())
                        .float()
                } else {
                    p.clone().greater_elem(0.5).float()
                };
                straight_through(p, hard)
            }
        };
        learnt * free + fixed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_mask_is_hard_while_the_gradient_reaches_the_logits() {
        let device = Device::flex().autodiff();
        device.seed(7);
        let n = 64;
        let mut gate = BinaryGate::searchable(n, &device);
        // Spread the probabilities so that both values occur.
        let a: Vec<f32> = (0..n).map(|i| (i as f32 - 32.0) / 8.0).collect();
        gate.logits = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(a.clone(), [n]),
            &device,
        )));
        let weights: Vec<f32> = (0..n).map(|i| 1.0 + i as f32).collect();
        let w = Tensor::<1>::from_data(TensorData::new(weights.clone(), [n]), &device);
        let mask = gate.mask(GateMode::Sample, &device);
        let values = mask.clone().into_data().try_to_vec::<f32>().unwrap();
        assert!(values.iter().all(|v| *v == 0.0 || *v == 1.0), "{values:?}");
        assert!(values.contains(&0.0) && values.contains(&1.0));
        let grads = (mask * w).sum().backward();
        let logits = gate.logits.as_ref().unwrap();
        let g = logits
            .val()
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        // d(sum w*m)/da = w * p * (1 - p), with dm/dp = 1.
        for i in 0..n {
            let p = 1.0 / (1.0 + (-a[i]).exp());
            let expected = weights[i] * p * (1.0 - p);
            assert!(
                (g[i] - expected).abs() < 1e-5,
                "{i}: {} vs {expected}",
                g[i]
            );
        }
    }

    #[test]
    fn evaluation_thresholds_and_warm_up_is_all_ones() {
        let device = Device::flex();
        let mut gate = BinaryGate::searchable(3, &device);
        gate.logits = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![-1.0f32, 0.5, 2.0], [3]),
            &device,
        )));
        let eval = gate
            .mask(GateMode::Sample, &device)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(eval, vec![0.0, 1.0, 1.0]);
        let on = gate
            .mask(GateMode::AllOn, &device)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(on, vec![1.0; 3]);
        let st = gate
            .mask(GateMode::StraightThrough, &device)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(st, vec![1.0; 3]);
    }

    #[test]
    fn fixing_every_element_drops_the_parameter() {
        let device = Device::flex();
        let mut gate = BinaryGate::searchable(2, &device);
        gate.fix(0, false);
        assert!(gate.logits.is_some());
        let m = gate
            .mask(GateMode::AllOn, &device)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(m, vec![0.0, 1.0]);
        gate.fix(1, true);
        assert!(gate.logits.is_none());
        assert_eq!(gate.probabilities(), vec![0.0, 1.0]);
        let m = gate
            .mask(GateMode::Sample, &device)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(m, vec![0.0, 1.0]);
    }
}
