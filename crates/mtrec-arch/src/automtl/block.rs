//! Mixture-of-operation blocks (spec §4, "Expert module"): a block is either a softmax-weighted
//! mixture of candidate ops or, once discretised, the one op it chose.

use burn::module::{Module, Param, RunningState};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::{relu, softmax};
use mtrec_nn::torch_linear_init;

use super::OpKind;

fn linear(d_in: usize, d_out: usize, bias: bool, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out)
        .with_bias(bias)
        .with_initializer(torch_linear_init(d_in))
        .init(device)
}

/// A new parameter holding a copy of `t`'s values. Going through host data makes the copy a
/// leaf of no graph, which a slice of a parameter on the autodiff device is not.
fn param_copy<const D: usize>(t: Tensor<D>) -> Param<Tensor<D>> {
    let device = t.device();
    Param::from_tensor(Tensor::from_data(t.into_data(), &device))
}

/// Batch norm of `x` with channels `[offset, offset + width)` of `norm`, written out in tensor
/// ops because burn-flex's batch-norm kernel was 2.3x slower on wide activations (forward +
/// backward on `[2048, 2032]`: 136 ms against 58 ms). Same formula as burn's (biased batch
/// variance, `eps` inside the root); in training it also returns the batch statistics, which
/// the caller folds into the running ones with [`update_running`].
fn batch_norm(
    norm: &BatchNorm,
    x: Tensor<2>,
    offset: usize,
    width: usize,
) -> (Tensor<2>, Option<(Tensor<1>, Tensor<1>)>) {
    let gamma = norm.gamma.val().narrow(0, offset, width).unsqueeze::<2>();
    let beta = norm.beta.val().narrow(0, offset, width).unsqueeze::<2>();
    if x.device().is_autodiff() && norm.training.is_enabled() {
        let mean = x.clone().mean_dim(0);
        let centered = x - mean.clone();
        let var = (centered.clone() * centered.clone()).mean_dim(0);
        let y = centered / (var.clone() + norm.epsilon).sqrt() * gamma + beta;
        let stats = (
            mean.reshape([width]).detach(),
            var.reshape([width]).detach(),
        );
        (y, Some(stats))
    } else {
        let device = x.device();
        let cut = |t: Tensor<1>| {
            t.to_device(&device)
                .narrow(0, offset, width)
                .unsqueeze::<2>()
        };
        let mean = cut(norm.running_mean.value());
        let var = cut(norm.running_var.value());
        (
            (x - mean) / (var + norm.epsilon).sqrt() * gamma + beta,
            None,
        )
    }
}

/// `running = (1 - momentum) running + momentum batch`, as burn's batch norm updates it.
fn update_running(norm: &BatchNorm, mean: Tensor<1>, var: Tensor<1>) {
    let m = norm.momentum;
    let device = mean.device();
    let blend = |running: Tensor<1>, batch: Tensor<1>| {
        running
            .to_device(&device)
            .mul_scalar(1.0 - m)
            .add(batch.mul_scalar(m))
            .detach()
    };
    norm.running_mean
        .update(blend(norm.running_mean.value_sync(), mean));
    norm.running_var
        .update(blend(norm.running_var.value_sync(), var));
}

/// `H(softmax(beta)) / log(#ops)`: 1 for a uniform mixture, 0 for a decided one. A single
/// candidate is decided by definition.
pub fn normalised_entropy(probs: &[f64]) -> f64 {
    if probs.len() < 2 {
        return 0.0;
    }
    let h: f64 = probs
        .iter()
        .filter(|p| **p > 0.0)
        .map(|p| -p * p.ln())
        .sum();
    h / (probs.len() as f64).ln()
}

/// Identity: a true skip when widths agree, else a bias-free projection.
#[derive(Module, Debug)]
pub struct IdentityOp {
    pub projection: Option<Linear>,
}

/// `Dropout -> Linear(in, h) -> BatchNorm -> ReLU -> Linear(h, out) -> ReLU`.
#[derive(Module, Debug)]
pub struct MlpOp {
    pub dropout: Dropout,
    pub hidden: Linear,
    pub norm: BatchNorm,
    pub out: Linear,
}

/// One chosen operation.
#[derive(Module, Debug)]
pub enum Op {
    Identity(IdentityOp),
    Mlp(MlpOp),
}

impl Op {
    pub fn new(kind: OpKind, d_in: usize, d_out: usize, dropout: f64, device: &Device) -> Self {
        match kind {
            OpKind::Identity => Op::Identity(IdentityOp {
                projection: (d_in != d_out).then(|| linear(d_in, d_out, false, device)),
            }),
            OpKind::Mlp(h) => Op::Mlp(MlpOp {
                dropout: DropoutConfig::new(dropout).init(),
                hidden: linear(d_in, h, true, device),
                norm: BatchNormConfig::new(h).init(device),
                out: linear(h, d_out, true, device),
            }),
        }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Op::Identity(op) => match &op.projection {
                Some(p) => p.forward(x),
                None => x,
            },
            Op::Mlp(op) => {
                let pre = op.hidden.forward(op.dropout.forward(x));
                let width = pre.dims()[1];
                let (h, stats) = batch_norm(&op.norm, pre, 0, width);
                if let Some((mean, var)) = stats {
                    update_running(&op.norm, mean, var);
                }
                relu(op.out.forward(relu(h)))
            }
        }
    }
}

/// All candidates of a block over one shared input. The first layers of all MLP candidates are
/// stored as one `Linear(in, sum h)` and one batch norm over the concatenated widths (batch
/// norm is per feature, so this equals one norm per candidate), and the input is dropped out
/// once for all of them (the one difference from separate modules: a shared dropout mask).
///
/// Each candidate multiplies the shared input by its own column slice of the fused weight:
/// one `[B, in] x [in, sum h]` product followed by slicing the `[B, sum h]` activation was
/// slower on the CPU backend, because the backward of every activation slice materialises a
/// zero-filled `[B, sum h]` gradient, where a weight slice's is `[in, sum h]` (forward and
/// backward of a default block at batch 2048: 345 ms fused, 194 ms sliced by weight).
#[derive(Module, Debug)]
pub struct MixedBlock {
    /// Architecture parameters `beta`, one per candidate, `N(0, 1e-3)` initialised.
    pub beta: Param<Tensor<1>>,
    pub dropout: Dropout,
    pub hidden: Option<Linear>,
    pub norm: Option<BatchNorm>,
    /// Second layer of each MLP candidate, in candidate order.
    pub outs: Vec<Linear>,
    pub projection: Option<Linear>,
    #[module(skip)]
    candidates: Vec<OpKind>,
    /// Candidates whose weight `softmax(beta)_i` is below this are not evaluated (0 = all
    /// are); see [`MixedBlock::set_prune_below`].
    #[module(skip)]
    prune_below: f32,
}

impl MixedBlock {
    pub fn new(
        candidates: &[OpKind],
        d_in: usize,
        d_out: usize,
        dropout: f64,
        device: &Device,
    ) -> Self {
        let widths: Vec<usize> = candidates
            .iter()
            .filter_map(|c| match c {
                OpKind::Mlp(h) => Some(*h),
                OpKind::Identity => None,
            })
            .collect();
        let total: usize = widths.iter().sum();
        let beta = Tensor::random([candidates.len()], Distribution::Normal(0.0, 1e-3), device);
        Self {
            beta: Param::from_tensor(beta),
            dropout: DropoutConfig::new(dropout).init(),
            hidden: (total > 0).then(|| linear(d_in, total, true, device)),
            norm: (total > 0).then(|| BatchNormConfig::new(total).init(device)),
            outs: widths
                .iter()
                .map(|&h| linear(h, d_out, true, device))
                .collect(),
            projection: (candidates.contains(&OpKind::Identity) && d_in != d_out)
                .then(|| linear(d_in, d_out, false, device)),
            candidates: candidates.to_vec(),
            prune_below: 0.0,
        }
    }

    /// Stops evaluating candidates whose mixture weight has collapsed below `threshold`: their
    /// products cost as much as a live candidate's but move the output by less than `threshold`
    /// times theirs. Their term is left out, not renormalised away, so the output differs from
    /// the full mixture by exactly the skipped candidates' weighted outputs; their `beta` then
    /// gets only the softmax coupling's gradient (`-w_i w_j o_i`, which still pushes them
    /// down). The leader is always evaluated. The skipped candidates' batch-norm running
    /// statistics stay as they are.
    pub fn set_prune_below(&mut self, threshold: f32) {
        self.prune_below = threshold;
    }

    /// Which candidates `forward` evaluates: all, or those at or above the prune threshold.
    fn live(&self) -> Vec<bool> {
        if self.prune_below <= 0.0 {
            return vec![true; self.candidates.len()];
        }
        let p = self.probabilities();
        let leader = p
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        p.iter()
            .enumerate()
            .map(|(i, &q)| i == leader || q >= f64::from(self.prune_below))
            .collect()
    }

    pub fn candidates(&self) -> &[OpKind] {
        &self.candidates
    }

    /// `softmax(beta)`.
    pub fn probabilities(&self) -> Vec<f64> {
        softmax(self.beta.val(), 0)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 beta")
            .into_iter()
            .map(f64::from)
            .collect()
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let dropped = self
            .hidden
            .as_ref()
            .map(|_| self.dropout.forward(x.clone()));
        let live = self.live();
        let mut outs = Vec::with_capacity(self.candidates.len());
        let mut kept = Vec::with_capacity(self.candidates.len());
        let mut stats = Vec::new();
        let mut offset = 0;
        let mut next_out = self.outs.iter();
        for (i, c) in self.candidates.iter().enumerate() {
            if !live[i] {
                if let (OpKind::Mlp(h), Some(norm)) = (c, &self.norm) {
                    next_out.next();
                    if x.device().is_autodiff() && norm.training.is_enabled() {
                        // Batch statistics equal to the running ones leave those unchanged.
                        let cut = |t: Tensor<1>| t.narrow(0, offset, *h);
                        stats.push((
                            cut(norm.running_mean.value_sync()).to_device(&x.device()),
                            cut(norm.running_var.value_sync()).to_device(&x.device()),
                        ));
                    }
                    offset += h;
                }
                continue;
            }
            kept.push(i as i64);
            outs.push(match c {
                OpKind::Identity => match &self.projection {
                    Some(p) => p.forward(x.clone()),
                    None => x.clone(),
                },
                OpKind::Mlp(h) => {
                    let (Some(lin), Some(norm), Some(input)) = (&self.hidden, &self.norm, &dropped)
                    else {
                        unreachable!("mlp candidates have a hidden layer");
                    };
                    let w = lin.weight.val().narrow(1, offset, *h);
                    let mut pre = input.clone().matmul(w);
                    if let Some(b) = &lin.bias {
                        pre = pre + b.val().narrow(0, offset, *h).unsqueeze::<2>();
                    }
                    let (y, s) = batch_norm(norm, pre, offset, *h);
                    stats.extend(s);
                    offset += h;
                    relu(next_out.next().expect("one out per mlp").forward(relu(y)))
                }
            });
        }
        if let (Some(norm), false) = (&self.norm, stats.is_empty()) {
            let (means, vars): (Vec<_>, Vec<_>) = stats.into_iter().unzip();
            update_running(norm, Tensor::cat(means, 0), Tensor::cat(vars, 0));
        }
        let n = outs.len();
        let mut w = softmax(self.beta.val(), 0);
        if n < self.candidates.len() {
            let device = w.device();
            w = w.select(0, Tensor::<1, Int>::from_data(kept.as_slice(), &device));
        }
        (Tensor::stack::<3>(outs, 0) * w.reshape([n, 1, 1]))
            .sum_dim(0)
            .squeeze_dim(0)
    }

    /// The candidate `index` as a stand-alone op, weights inherited from the fused layers.
    pub fn extract(&self, index: usize) -> Op {
        let kind = self.candidates[index];
        match kind {
            OpKind::Identity => Op::Identity(IdentityOp {
                // Whole layers move as they are (same parameters, same optimizer state).
                projection: self.projection.clone(),
            }),
            OpKind::Mlp(h) => {
                let mut offset = 0;
                let mut which = 0;
                for c in &self.candidates[..index] {
                    if let OpKind::Mlp(w) = c {
                        offset += w;
                        which += 1;
                    }
                }
                let hidden = self.hidden.as_ref().expect("mlp candidates");
                let norm = self.norm.as_ref().expect("mlp candidates");
                let cut = |t: Tensor<1>| t.narrow(0, offset, h);
                let out = &self.outs[which];
                Op::Mlp(MlpOp {
                    dropout: self.dropout.clone(),
                    hidden: Linear {
                        weight: param_copy(hidden.weight.val().narrow(1, offset, h)),
                        bias: hidden.bias.as_ref().map(|b| param_copy(cut(b.val()))),
                    },
                    norm: BatchNorm {
                        gamma: param_copy(cut(norm.gamma.val())),
                        beta: param_copy(cut(norm.beta.val())),
                        training: norm.training.clone(),
                        running_mean: RunningState::new(cut(norm.running_mean.value()).detach()),
                        running_var: RunningState::new(cut(norm.running_var.value()).detach()),
                        momentum: norm.momentum,
                        epsilon: norm.epsilon,
                    },
                    out: out.clone(),
                })
            }
        }
    }
}

/// A block of an expert: still searching, or decided.
#[derive(Module, Debug)]
pub enum Block {
    Mixed(MixedBlock),
    Fixed(Op),
}

impl Block {
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Block::Mixed(b) => b.forward(x),
            Block::Fixed(op) => op.forward(x),
        }
    }

    /// Replaces a mixed block by its candidate `index`; a fixed block stays as it is.
    pub fn fix(&mut self, index: usize) -> OpKind {
        let Block::Mixed(mixed) = self else {
            panic!("block already fixed");
        };
        let kind = mixed.candidates()[index];
        *self = Block::Fixed(mixed.extract(index));
        kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_entropy_is_one_for_uniform_and_zero_for_one_hot() {
        for n in [2, 3, 8] {
            let uniform = vec![1.0 / n as f64; n];
            assert!((normalised_entropy(&uniform) - 1.0).abs() < 1e-12);
            let mut one_hot = vec![0.0; n];
            one_hot[n - 1] = 1.0;
            assert_eq!(normalised_entropy(&one_hot), 0.0);
        }
        // Worked by hand: p = (0.5, 0.5, 0) -> ln 2 / ln 3.
        let h = normalised_entropy(&[0.5, 0.5, 0.0]);
        assert!((h - 2f64.ln() / 3f64.ln()).abs() < 1e-12);
    }

    /// The fused evaluation equals the softmax-weighted sum of the candidates run one by one
    /// with the weights they inherit on discretisation.
    #[test]
    fn fused_mixture_equals_the_weighted_sum_of_extracted_ops() {
        let device = Device::flex();
        device.seed(3);
        let candidates = OpKind::default_candidates()[..4].to_vec();
        let block = MixedBlock::new(&candidates, 10, 6, 0.2, &device);
        let x = Tensor::<2>::random([5, 10], Distribution::Normal(0.0, 1.0), &device);
        let ops: Vec<Op> = (0..4).map(|i| block.extract(i)).collect();
        assert_mixture_of(&block, &ops, x);
    }

    /// The block's output equals the `softmax(beta)`-weighted sum of `ops` run one by one.
    fn assert_mixture_of(block: &MixedBlock, ops: &[Op], x: Tensor<2>) {
        assert_partial_mixture_of(block, ops, &vec![true; ops.len()], x);
    }

    /// The block's output equals the `softmax(beta)`-weighted sum of the `live` `ops`.
    fn assert_partial_mixture_of(block: &MixedBlock, ops: &[Op], live: &[bool], x: Tensor<2>) {
        let values = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
        let mixed = values(block.forward(x.clone()));
        let mut expected = vec![0.0f32; mixed.len()];
        for ((op, wi), _) in ops
            .iter()
            .zip(block.probabilities())
            .zip(live)
            .filter(|(_, l)| **l)
        {
            for (e, o) in expected.iter_mut().zip(values(op.forward(x.clone()))) {
                *e += wi as f32 * o;
            }
        }
        for (a, b) in mixed.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    /// In training (batch statistics) too, and both paths move the running statistics the
    /// way burn's batch norm does: `0.9 * running + 0.1 * batch`.
    #[test]
    fn training_mode_matches_the_extracted_ops_and_burns_batch_norm() {
        let device = Device::flex().autodiff();
        device.seed(4);
        let candidates = vec![OpKind::Mlp(3), OpKind::Identity, OpKind::Mlp(5)];
        let block = MixedBlock::new(&candidates, 6, 6, 0.0, &device);
        let x = Tensor::<2>::random([8, 6], Distribution::Normal(0.0, 1.0), &device);
        let ops: Vec<Op> = (0..3).map(|i| block.extract(i)).collect();
        assert_mixture_of(&block, &ops, x.clone());
        // Against burn's own batch norm on the first candidate's pre-activation.
        let Op::Mlp(first) = &ops[0] else {
            panic!("mlp")
        };
        let pre = first.hidden.forward(x.clone());
        let reference = BatchNormConfig::new(3).init(&device);
        let ours = batch_norm(&reference, pre.clone(), 0, 3).0;
        let theirs = reference.forward(pre.clone());
        let (a, b) = (ours.into_data(), theirs.into_data());
        a.assert_approx_eq::<f32>(&b, burn::tensor::Tolerance::absolute(1e-5));
        let batch_mean = pre
            .mean_dim(0)
            .reshape([3])
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let running = block.norm.as_ref().unwrap().running_mean.value_sync();
        let running = running.into_data().try_to_vec::<f32>().unwrap();
        for (r, m) in running[..3].iter().zip(&batch_mean) {
            assert!((r - 0.1 * m).abs() < 1e-6, "{r} vs 0.1 * {m}");
        }
    }

    #[test]
    fn identity_is_a_true_skip_when_widths_agree() {
        let device = Device::flex();
        let op = Op::new(OpKind::Identity, 4, 4, 0.0, &device);
        let x = Tensor::<2>::random([3, 4], Distribution::Normal(0.0, 1.0), &device);
        let y = op.forward(x.clone());
        assert_eq!(x.into_data(), y.into_data());
        assert_eq!(op.num_params(), 0);
        assert_eq!(
            Op::new(OpKind::Identity, 4, 6, 0.0, &device).num_params(),
            24
        );
    }

    /// With a prune threshold, candidates whose weight fell below it are left out of the sum
    /// (the leader never), and their running statistics do not move, in training and in eval.
    #[test]
    fn pruned_candidates_are_left_out_and_their_running_statistics_kept() {
        let device = Device::flex().autodiff();
        device.seed(5);
        let candidates = vec![
            OpKind::Mlp(3),
            OpKind::Identity,
            OpKind::Mlp(5),
            OpKind::Mlp(4),
        ];
        let mut block = MixedBlock::new(&candidates, 6, 6, 0.0, &device);
        // Weights ~ (0.0009, 0.33, 0.0009, 0.67): candidates 0 and 2 under 1e-3.
        block.beta = Param::from_tensor(Tensor::from_floats([-3.0, 3.3, -3.0, 4.0], &device));
        let p = block.probabilities();
        assert!(p[0] < 1e-3 && p[2] < 1e-3 && p[1] > 0.3, "{p:?}");
        block.set_prune_below(1e-3);
        let live = [false, true, false, true];
        assert_eq!(block.live(), live);
        let x = Tensor::<2>::random([8, 6], Distribution::Normal(0.0, 1.0), &device);
        let ops: Vec<Op> = (0..4).map(|i| block.extract(i)).collect();
        let running = |b: &MixedBlock| {
            b.norm
                .as_ref()
                .unwrap()
                .running_mean
                .value_sync()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let before = running(&block);
        assert_partial_mixture_of(&block, &ops, &live, x.clone());
        let after = running(&block);
        // Widths 3 | 5 | 4: candidate 2's slice [3, 8) is skipped, candidate 3's [8, 12) moves.
        assert_eq!(&after[3..8], &before[3..8]);
        assert!(after[8..].iter().zip(&before[8..]).any(|(a, b)| a != b));
        // A threshold above every weight still evaluates the leader.
        block.set_prune_below(0.99);
        assert_eq!(block.live(), [false, false, false, true]);
        // Eval mode (no autodiff) prunes the same way.
        let inner = block.valid();
        let ops: Vec<Op> = (0..4).map(|i| inner.extract(i)).collect();
        let xi = x.inner();
        assert_partial_mixture_of(&inner, &ops, &[false, false, false, true], xi);
    }
}
