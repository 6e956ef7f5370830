//! The regulariser on the architecture parameters that makes a search decide.
//!
//! Why it exists: measured on Census-Income (docs/automtl.md), the loss alone leaves the
//! architecture undecided. With sampled gates, keeping an input never costs the loss anything,
//! so every gate's keep-probability drifts upwards; and the op weights move by noise of about
//! the size of their signal, so every block's entropy stays near 1. Two terms:
//!
//! - **gate cost** `lambda_g * sum_i p_i` over free gate elements: the expected number of kept
//!   inputs, the L0 penalty of Louizos et al. (2018). An input stays only where the loss keeps
//!   pushing its gate up harder than this constant pull.
//! - **sharpening** `-lambda_s * (sum_i |a_i| + sum_b log softmax(beta_b)[leader_b])` over free
//!   gate logits `a` and mixed blocks (leader: the op with the largest weight now): it pushes
//!   every choice further the way it already leans, at a constant rate, so the search ends
//!   decided; a leaning the loss consistently opposes is still overturned. Unlike entropy or
//!   FairDARTS's `-(p - 1/2)^2`, it is not flat near the undecided point.
//!
//! The search applies the regulariser by its own plain gradient step at the architecture
//! learning rate, decoupled from Adam (as AdamW decouples weight decay). The loss gradients of
//! these parameters differ by four orders of magnitude between feature gates and connection
//! gates (measured: mean |dL/da| 3e-5 and 0.16), which Adam normalises away; a decoupled step
//! makes a weight mean the same for every kind of choice: the fraction of Adam's largest step
//! (the learning rate) that the regulariser moves a parameter by.

use burn::prelude::*;
use burn::tensor::activation::{log_softmax, sigmoid};

use super::block::Block;
use super::network::AutoMtl;

/// Weights of the two terms at one step (0 switches a term off).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ArchRegularisation {
    pub gate_cost: f64,
    pub sharpen: f64,
}

impl ArchRegularisation {
    pub fn is_off(&self) -> bool {
        self.gate_cost == 0.0 && self.sharpen == 0.0
    }
}

impl AutoMtl {
    /// The regulariser as a scalar `[1]` on the autodiff graph of the free architecture
    /// parameters; `None` when every weight is 0 or nothing is left to decide.
    pub fn arch_regulariser(&self, w: &ArchRegularisation) -> Option<Tensor<1>> {
        if w.is_off() {
            return None;
        }
        let mut terms: Vec<Tensor<1>> = Vec::new();
        for at in self.gate_positions() {
            let gate = self.gate(at);
            let Some(logits) = &gate.logits else { continue };
            let n = gate.len();
            let free: Vec<f32> = gate
                .state()
                .iter()
                .map(|s| f32::from(u8::from(s.is_none())))
                .collect();
            let free = Tensor::<1>::from_data(TensorData::new(free, [n]), &logits.device());
            let a = logits.val();
            if w.gate_cost != 0.0 {
                terms.push(
                    (sigmoid(a.clone()) * free.clone())
                        .sum()
                        .mul_scalar(w.gate_cost),
                );
            }
            if w.sharpen != 0.0 {
                terms.push((a.abs() * free).sum().mul_scalar(-w.sharpen));
            }
        }
        if w.sharpen != 0.0 {
            for at in self.block_positions() {
                let Block::Mixed(m) = self.block(at) else {
                    continue;
                };
                let probabilities = m.probabilities();
                if probabilities.len() < 2 {
                    continue;
                }
                let leader = probabilities
                    .iter()
                    .enumerate()
                    .max_by(|x, y| x.1.total_cmp(y.1))
                    .map_or(0, |(i, _)| i);
                let log_q = log_softmax(m.beta.val(), 0).narrow(0, leader, 1);
                terms.push(log_q.sum().mul_scalar(-w.sharpen));
            }
        }
        terms.into_iter().reduce(|a, b| a + b)
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Param;
    use mtrec_data::{FeatureMeta, TaskKind};

    use super::*;
    use crate::automtl::{GateAt, OpKind, SpaceConfig};

    fn net(device: &Device) -> AutoMtl {
        let meta = FeatureMeta {
            sparse_names: vec!["a".into(), "b".into()],
            vocab_sizes: vec![4, 3],
            dense_names: vec!["x".into()],
            task_names: vec!["t0".into(), "t1".into()],
            task_kinds: vec![TaskKind::Binary; 2],
        };
        let space = SpaceConfig {
            n_layers: 1,
            n_experts: 2,
            n_blocks: 1,
            block_width: 4,
            candidates: vec![OpKind::Identity, OpKind::Mlp(3), OpKind::Mlp(5)],
            tower: vec![4],
            dropout: 0.0,
        };
        AutoMtl::supernet(&space, 2, 0.5, &meta, device)
    }

    fn sigmoid(a: f64) -> f64 {
        1.0 / (1.0 + (-a).exp())
    }

    /// Every free gate logit set to a known value, one element fixed, one block's betas set:
    /// the value against the formula worked out on the host, and the gradients against
    /// `lambda_g p (1 - p) - lambda_s sign(a)` and `-lambda_s (onehot(leader) - q)`.
    #[test]
    fn value_and_gradient_match_the_formulas() {
        let device = Device::flex().autodiff();
        device.seed(3);
        let mut net = net(&device);
        let single = GateAt::Single { expert: 0 };
        let mut expected = 0.0;
        let (lg, ls) = (0.3, 0.7);
        for at in net.gate_positions() {
            let n = net.gate(at).len();
            let a: Vec<f32> = (0..n).map(|i| 0.4 * i as f32 - 0.5).collect();
            net.gate_mut(at).logits = Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(a, [n]),
                &device,
            )));
        }
        // A fixed element must not count.
        net.gate_mut(GateAt::Single { expert: 1 }).fix(0, true);
        for at in net.gate_positions() {
            let n = net.gate(at).len();
            for i in 0..n {
                if net.gate(at).state()[i].is_none() {
                    let a = 0.4 * i as f64 - 0.5;
                    expected += lg * sigmoid(a) - ls * a.abs();
                }
            }
        }
        let betas = [0.2f64, 1.0, -0.3];
        let mut beta_ids = Vec::new();
        for at in net.block_positions() {
            if let Block::Mixed(m) = net.block_mut(at) {
                let b: Vec<f32> = betas.iter().map(|v| *v as f32).collect();
                m.beta = Param::from_tensor(Tensor::from_data(TensorData::new(b, [3]), &device));
                beta_ids.push(at);
            }
        }
        let z: f64 = betas.iter().map(|b| b.exp()).sum();
        let q: Vec<f64> = betas.iter().map(|b| b.exp() / z).collect();
        expected -= ls * q[1].ln() * beta_ids.len() as f64;

        let w = ArchRegularisation {
            gate_cost: lg,
            sharpen: ls,
        };
        let value = net.arch_regulariser(&w).unwrap();
        let got = f64::from(value.clone().into_scalar::<f32>());
        assert!((got - expected).abs() < 1e-4, "{got} vs {expected}");

        let grads = value.backward();
        let g = net
            .gate(single)
            .logits
            .as_ref()
            .unwrap()
            .val()
            .grad(&grads)
            .unwrap();
        let g = g.into_data().try_to_vec::<f32>().unwrap();
        for (i, gi) in g.iter().enumerate() {
            let a = 0.4 * i as f64 - 0.5;
            let p = sigmoid(a);
            let want = lg * p * (1.0 - p) - ls * a.signum();
            assert!((f64::from(*gi) - want).abs() < 1e-5, "{i}: {gi} vs {want}");
        }
        let Block::Mixed(m) = net.block(beta_ids[0]) else {
            unreachable!()
        };
        let g = m
            .beta
            .val()
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (i, gi) in g.iter().enumerate() {
            let want = -ls * (f64::from(u8::from(i == 1)) - q[i]);
            assert!((f64::from(*gi) - want).abs() < 1e-5, "{i}: {gi} vs {want}");
        }
        assert!(
            net.arch_regulariser(&ArchRegularisation::default())
                .is_none()
        );
    }
}
