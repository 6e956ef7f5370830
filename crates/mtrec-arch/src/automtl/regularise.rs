//! The regulariser on the architecture parameters that makes a search decide.
//!
//! Why it exists: measured on Census-Income (docs/automtl.md), the loss alone leaves the
//! architecture undecided. With sampled gates, keeping an input never costs the loss anything,
//! so every gate's keep-probability drifts upwards; and the op weights move by noise of about
//! the size of their signal, so every block's entropy stays near 1. Three terms:
//!
//! - **gate cost** `lambda_g * sum_i p_i` over free gate elements: the expected number of kept
//!   inputs, the L0 penalty of Louizos et al. (2018). An input stays only where the loss keeps
//!   pushing its gate up harder than this constant pull.
//! - **sharpening** `-lambda_s * (sum_i |a_i| + sum_b log softmax(beta_b)[leader_b])` over free
//!   gate logits `a` and mixed blocks (leader: the op with the largest weight now): it pushes
//!   every choice further the way it already leans, at a constant rate, so the search ends
//!   decided; a leaning the loss consistently opposes is still overturned. Unlike entropy or
//!   FairDARTS's `-(p - 1/2)^2`, it is not flat near the undecided point.
//! - **op cost** `lambda_c * sum_b sum_i q_i h_i / h_max` over mixed blocks (`h_i`: an MLP
//!   candidate's hidden width, 0 for identity): the expected width of each block, the op
//!   counterpart of the gate cost. Single-level search scores ops by the training loss, which
//!   the widest MLPs always lower by fitting the training data better; the cost makes width
//!   pay for itself (the resource terms of FBNet and ProxylessNAS, here in hidden units).
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
use super::discretise::argmax;
use super::genotype::OpKind;
use super::network::AutoMtl;

/// Weights of the three terms at one step (0 switches a term off).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ArchRegularisation {
    pub gate_cost: f64,
    pub sharpen: f64,
    pub op_cost: f64,
}

impl ArchRegularisation {
    pub fn is_off(&self) -> bool {
        self.gate_cost == 0.0 && self.sharpen == 0.0 && self.op_cost == 0.0
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
        if w.sharpen != 0.0 || w.op_cost != 0.0 {
            for at in self.block_positions() {
                let Block::Mixed(m) = self.block(at) else {
                    continue;
                };
                let probabilities = m.probabilities();
                if probabilities.len() < 2 {
                    continue;
                }
                let leader = argmax(&probabilities);
                let log_q = log_softmax(m.beta.val(), 0);
                if w.sharpen != 0.0 {
                    let lead = log_q.clone().narrow(0, leader, 1);
                    terms.push(lead.sum().mul_scalar(-w.sharpen));
                }
                if w.op_cost != 0.0 {
                    let widths = relative_widths(m.candidates());
                    let n = widths.len();
                    let widths =
                        Tensor::<1>::from_data(TensorData::new(widths, [n]), &log_q.device());
                    terms.push((log_q.exp() * widths).sum().mul_scalar(w.op_cost));
                }
            }
        }
        terms.into_iter().reduce(|a, b| a + b)
    }
}

/// Each candidate's hidden width over the widest one's (identity: 0).
fn relative_widths(candidates: &[OpKind]) -> Vec<f32> {
    let width = |c: &OpKind| match c {
        OpKind::Identity => 0.0f32,
        OpKind::Mlp(h) => *h as f32,
    };
    let max = candidates.iter().map(width).fold(0.0, f32::max);
    candidates
        .iter()
        .map(|c| if max > 0.0 { width(c) / max } else { 0.0 })
        .collect()
}
