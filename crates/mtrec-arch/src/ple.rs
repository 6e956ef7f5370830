//! PLE and CGC (Tang et al., "Progressive Layered Extraction (PLE): A Novel Multi-Task Learning
//! (MTL) Model for Personalized Recommendations", RecSys 2020).
//!
//! At extraction level `l`, task `k` owns `m_k` experts and all tasks share `m_s` experts. Task
//! `k`'s gate mixes its own and the shared experts,
//! `g_k^l = softmax(W_k^l x_k^l)^T [E_{k,1..m_k}^l, E_{s,1..m_s}^l]`, and on every level but the
//! last a shared gate mixes all `T*m_k + m_s` experts, `g_s^l = softmax(W_s^l x_s^l)^T E^l`.
//! Level 1 reads `x` everywhere; level `l > 1` feeds `x_k^l = g_k^{l-1}` to task `k`'s experts
//! and gate and `x_s^l = g_s^{l-1}` to the shared experts and gate. `y_k = tower_k(g_k^L)`.
//! CGC (Customized Gate Control) is PLE with one level.
//!
//! Input `x` `[B, F*d_emb + D]`; a level's output `[B, T+1, H]` (tasks, then the shared unit) or
//! `[B, T, H]` on the last level; output `[B, T]`.
//!
//! Defaults: 2 levels, 1 task-specific and 1 shared expert per level, experts of 16 units,
//! towers of 8. The paper compares every multi-level model at two levels (§5.1.3) and analyses
//! gates with one expert per expert module (§5.3); it tunes expert counts per data set and
//! implements experts as single-layer networks. Widths are the MMoE synthetic defaults
//! ([`crate::MoeConfig`]) so the MoE family compares at equal expert size; torch-rechub's Census
//! example uses the same widths with 2 task-specific experts.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use mtrec_nn::{
    BatchedLinear, BatchedLinearConfig, ExpertBank, ExpertBankConfig, FeatureEmbedding,
    FeatureEmbeddingConfig, ModelInput, TowerBank, TowerBankConfig, torch_linear_init,
};
use serde::{Deserialize, Serialize};

use crate::levels::{LevelInput, run_levels};
use crate::{ArchError, ModelOutput};

/// PLE (`n_levels > 1`) and CGC (`n_levels = 1`): the `[model]` keys of `kind = "ple"` and
/// `kind = "cgc"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PleConfig {
    /// Extraction levels (1 = CGC).
    pub n_levels: usize,
    /// Experts each task owns per level (`m_k`, the same for every task).
    pub n_task_experts: usize,
    /// Experts all tasks share per level (`m_s`).
    pub n_shared_experts: usize,
    /// Hidden widths of every expert (Linear + ReLU each); the last one is a level's output
    /// width and the next level's input width.
    pub expert: Vec<usize>,
    pub tower: Vec<usize>,
}

impl Default for PleConfig {
    fn default() -> Self {
        Self {
            n_levels: 2,
            n_task_experts: 1,
            n_shared_experts: 1,
            expert: vec![16],
            tower: vec![8],
        }
    }
}

impl PleConfig {
    /// Rejects configs that cannot build. Both expert kinds are required: without task experts
    /// PLE is a multi-level MMoE, and without shared experts the shared gate feeds nothing.
    pub fn validate(&self, n_tasks: usize) -> Result<(), ArchError> {
        let invalid = |message: String| ArchError::Invalid {
            model: "ple",
            message,
        };
        if n_tasks == 0 {
            return Err(ArchError::NoTasks);
        }
        if self.n_levels == 0 {
            return Err(invalid("n_levels must be at least 1".into()));
        }
        if self.n_task_experts == 0 || self.n_shared_experts == 0 {
            return Err(invalid(format!(
                "needs at least one task-specific and one shared expert per level \
                 (n_task_experts = {}, n_shared_experts = {})",
                self.n_task_experts, self.n_shared_experts
            )));
        }
        ArchError::check_layers("ple", "expert", &self.expert, true)?;
        ArchError::check_layers("ple", "tower", &self.tower, false)?;
        Ok(())
    }
}

/// One extraction level.
///
/// Experts are stored unit-major (task 0's `m_k`, ..., task `T-1`'s, then the `m_s` shared) in
/// one [`ExpertBank`], so level 1 runs them as one product and later levels as one batched
/// product over per-expert inputs. Task gates keep their exact `m_k + m_s` outputs (no dead
/// parameters); their probabilities are then scattered into a zero-padded `[B, T, N]` matrix by
/// a constant block-diagonal mask, so that every gate of the level, the shared one included,
/// mixes the experts in a single `[B, T+1, N] x [B, N, H]` product.
#[derive(Module, Debug)]
pub struct PleLevel {
    pub experts: ExpertBank,
    /// Task gates, weights `[T, in, m_k + m_s]`.
    pub task_gates: BatchedLinear,
    /// The shared gate over all `N = T*m_k + m_s` experts; absent on the last level.
    pub shared_gate: Option<Linear>,
    /// `eye(T)` as `[1, T, T, 1]`: places task `k`'s probabilities on its own experts.
    own_mask: Tensor<4>,
    n_tasks: usize,
    n_task_experts: usize,
    n_shared_experts: usize,
}

impl PleLevel {
    fn new(d_input: usize, cfg: &PleConfig, n_tasks: usize, last: bool, device: &Device) -> Self {
        let (t, m, s) = (n_tasks, cfg.n_task_experts, cfg.n_shared_experts);
        let n = t * m + s;
        let experts = ExpertBankConfig {
            d_input,
            n_experts: n,
            hidden: cfg.expert.clone(),
        };
        let shared_gate = (!last).then(|| {
            LinearConfig::new(d_input, n)
                .with_initializer(torch_linear_init(d_input))
                .init(device)
        });
        Self {
            experts: experts.init(device),
            task_gates: BatchedLinearConfig::new(t, d_input, m + s).init(device),
            shared_gate,
            own_mask: Tensor::<2>::eye(t, device).reshape([1, t, t, 1]),
            n_tasks: t,
            n_task_experts: m,
            n_shared_experts: s,
        }
    }

    /// Mixed experts per unit: `[B, T+1, H]`, or `[B, T, H]` on the last level.
    pub fn forward(&self, input: LevelInput) -> Tensor<3> {
        let (experts, gates) = self.experts_and_gates(input);
        gates.matmul(experts)
    }

    /// Every expert's output `[B, N, H]` and every gate's probabilities placed on the level's
    /// experts, `[B, T(+1), N]`: what [`Self::forward`] mixes, and what gate diagnostics read.
    pub fn experts_and_gates(&self, input: LevelInput) -> (Tensor<3>, Tensor<3>) {
        let (t, m, s) = (self.n_tasks, self.n_task_experts, self.n_shared_experts);
        let (n, k) = (t * m + s, m + s);
        let (experts, task_logits, shared_logits) = match input {
            LevelInput::Same(x) => {
                let [b, d] = x.dims();
                let experts = self.experts.forward(x.clone());
                // Every gate reads `x`: the task gates' `[T, in, K]` weights viewed as one
                // `[in, T*K]` matrix and the shared gate's columns appended make one product.
                let mut weights = vec![
                    self.task_gates
                        .weight
                        .val()
                        .swap_dims(0, 1)
                        .reshape([d, t * k]),
                ];
                let mut biases = vec![self.task_gates.bias.val().reshape([1, t * k])];
                let mut width = t * k;
                if let Some(gate) = &self.shared_gate {
                    weights.push(gate.weight.val());
                    biases.push(match &gate.bias {
                        Some(bias) => bias.val().reshape([1, n]),
                        None => Tensor::zeros([1, n], &x.device()),
                    });
                    width += n;
                }
                let logits = x.matmul(Tensor::cat(weights, 1)) + Tensor::cat(biases, 1);
                let shared = (width > t * k).then(|| logits.clone().narrow(1, t * k, n));
                let tasks = logits.narrow(1, 0, t * k).reshape([b, t, k]);
                (experts, tasks, shared)
            }
            LevelInput::PerUnit(h) => {
                let [b, _, d] = h.dims();
                let units = h.swap_dims(0, 1); // [T+1, B, in]
                let tasks = units.clone().narrow(0, 0, t);
                let shared = units.narrow(0, t, 1);
                let expert_inputs = Tensor::cat(
                    vec![
                        tasks
                            .clone()
                            .unsqueeze_dim::<4>(1)
                            .expand([t, m, b, d])
                            .reshape([t * m, b, d]),
                        shared.clone().expand([s, b, d]),
                    ],
                    0,
                );
                let experts = self.experts.forward_each(expert_inputs);
                let task_logits = self.task_gates.forward(tasks).swap_dims(0, 1);
                let shared_logits = self
                    .shared_gate
                    .as_ref()
                    .map(|gate| gate.forward(shared.reshape([b, d])));
                (experts, task_logits, shared_logits)
            }
        };
        let [b, _, _] = task_logits.dims();
        let probs = softmax(task_logits, 2); // [B, T, K]
        let own = (probs.clone().narrow(2, 0, m).reshape([b, t, 1, m]) * self.own_mask.clone())
            .reshape([b, t, t * m]);
        let mut gates = Tensor::cat(vec![own, probs.narrow(2, m, s)], 2); // [B, T, N]
        if let Some(logits) = shared_logits {
            gates = Tensor::cat(vec![gates, softmax(logits, 1).reshape([b, 1, n])], 1);
        }
        (experts, gates)
    }

    /// `gates` from [`Self::experts_and_gates`] with their owners: task `k`'s gate reaches its
    /// own and the shared experts, the shared gate all of them.
    pub(crate) fn gate_layer(&self, gates: Tensor<3>) -> crate::gates::GateLayer {
        use crate::gates::{ExpertOwner, GateOwner};
        let (t, m, s) = (self.n_tasks, self.n_task_experts, self.n_shared_experts);
        let experts = crate::gates::task_then_shared(t, m, s);
        let mut owners: Vec<GateOwner> = (0..t).map(GateOwner::Task).collect();
        if self.shared_gate.is_some() {
            owners.push(GateOwner::Shared);
        }
        let reachable = owners
            .iter()
            .map(|owner| {
                experts
                    .iter()
                    .map(|e| match (owner, e) {
                        (GateOwner::Task(k), ExpertOwner::Task(j)) => k == j,
                        _ => true,
                    })
                    .collect()
            })
            .collect();
        crate::gates::GateLayer {
            weights: gates,
            gates: owners,
            experts,
            reachable,
        }
    }
}

#[derive(Module, Debug)]
pub struct Ple {
    pub embedding: FeatureEmbedding,
    pub levels: Vec<PleLevel>,
    pub towers: TowerBank,
    n_tasks: usize,
}

impl Ple {
    /// `cfg` must pass [`PleConfig::validate`].
    pub fn new(
        cfg: &PleConfig,
        emb: FeatureEmbeddingConfig,
        n_tasks: usize,
        device: &Device,
    ) -> Self {
        let n_levels = cfg.n_levels.max(1);
        let d_out = *cfg.expert.last().unwrap_or(&emb.d_out());
        let mut d_in = emb.d_out();
        let mut levels = Vec::with_capacity(n_levels);
        for l in 0..n_levels {
            levels.push(PleLevel::new(d_in, cfg, n_tasks, l + 1 == n_levels, device));
            d_in = d_out;
        }
        let towers = TowerBankConfig {
            n_tasks,
            d_input: d_out,
            hidden: cfg.tower.clone(),
        };
        Self {
            embedding: emb.init(device),
            levels,
            towers: towers.init(device),
            n_tasks,
        }
    }

    /// The last level's task outputs `[B, T, H]`, the towers' inputs.
    pub fn extract(&self, x: Tensor<2>) -> Tensor<3> {
        run_levels(x, &self.levels, self.n_tasks, |level, input| {
            level.forward(input)
        })
    }

    pub fn forward(&self, input: &ModelInput) -> ModelOutput {
        let x = self.embedding.forward(input);
        ModelOutput {
            outputs: self.towers.forward_per_task(self.extract(x)),
            aux_loss: None,
        }
    }

    pub fn n_tasks(&self) -> usize {
        self.n_tasks
    }

    pub fn n_levels(&self) -> usize {
        self.levels.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{emb_config, sample_input as batch};
    use burn::module::{ModuleVisitor, Param};
    use burn::tensor::Tolerance;

    fn small(n_levels: usize) -> PleConfig {
        PleConfig {
            n_levels,
            n_task_experts: 2,
            n_shared_experts: 3,
            expert: vec![6, 4],
            tower: vec![3],
        }
    }

    #[test]
    fn outputs_have_one_column_per_task() {
        let device = Device::default();
        device.seed(1);
        for n_levels in [1, 2, 3] {
            for t in [2, 3] {
                let cfg = small(n_levels);
                cfg.validate(t).unwrap();
                let model = Ple::new(&cfg, emb_config(), t, &device);
                let out = model.forward(&batch(&device));
                assert_eq!(out.outputs.dims(), [4, t]);
                assert!(out.aux_loss.is_none());
                assert_eq!(model.n_tasks(), t);
                assert_eq!(model.n_levels(), n_levels);
            }
        }
    }

    #[test]
    fn validate_rejects_empty_parts() {
        let ok = PleConfig::default();
        assert!(ok.validate(2).is_ok());
        for bad in [
            PleConfig {
                n_levels: 0,
                ..ok.clone()
            },
            PleConfig {
                n_task_experts: 0,
                ..ok.clone()
            },
            PleConfig {
                n_shared_experts: 0,
                ..ok.clone()
            },
            PleConfig {
                expert: vec![],
                ..ok.clone()
            },
            PleConfig {
                expert: vec![4, 0],
                ..ok.clone()
            },
            PleConfig {
                tower: vec![0],
                ..ok.clone()
            },
        ] {
            assert!(
                matches!(
                    bad.validate(2),
                    Err(ArchError::Invalid { model: "ple", .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(ok.validate(0), Err(ArchError::NoTasks)));
    }

    /// CGC with a hand-set gate: task `k`'s output is the explicit weighted sum of its own and
    /// the shared experts.
    #[test]
    fn cgc_task_output_is_the_gated_sum_of_own_and_shared_experts() {
        let device = Device::default();
        device.seed(3);
        let (t, m, s) = (3, 2, 3);
        let cfg = PleConfig {
            n_levels: 1,
            n_task_experts: m,
            n_shared_experts: s,
            expert: vec![5],
            tower: vec![],
        };
        let mut model = Ple::new(&cfg, emb_config(), t, &device);
        let level = &mut model.levels[0];
        assert!(level.shared_gate.is_none(), "CGC has no shared gate");
        // Constant gates: zero weights and biases `ln(w)`, so softmax returns `w` exactly.
        let wanted: Vec<[f32; 5]> = vec![
            [0.1, 0.2, 0.3, 0.25, 0.15],
            [0.5, 0.1, 0.1, 0.2, 0.1],
            [0.05, 0.05, 0.6, 0.2, 0.1],
        ];
        let d_in = emb_config().d_out();
        level.task_gates.weight = Param::from_tensor(Tensor::zeros([t, d_in, m + s], &device));
        let logits: Vec<f32> = wanted.iter().flatten().map(|w| w.ln()).collect();
        level.task_gates.bias = Param::from_tensor(Tensor::from_data(
            TensorData::new(logits, [t, m + s]),
            &device,
        ));
        let x = model.embedding.forward(&batch(&device));
        let experts = model.levels[0].experts.forward(x.clone()); // [B, N, H]
        let got = model.extract(x);
        assert_eq!(got.dims(), [4, t, 5]);
        for (k, w) in wanted.iter().enumerate() {
            let mut expected = Tensor::<2>::zeros([4, 5], &device);
            for (j, e) in (k * m..(k + 1) * m).chain(t * m..t * m + s).enumerate() {
                expected = expected + experts.clone().narrow(1, e, 1).reshape([4, 5]) * w[j];
            }
            got.clone()
                .narrow(1, k, 1)
                .reshape([4, 5])
                .into_data()
                .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-6));
        }
    }

    /// PLE level by level the slow way, every unit separately: each expert runs on its own
    /// unit's input through the plain (shared-input) expert path, each gate is its own slice of
    /// the gate weights, each mixture an explicit weighted sum.
    fn extract_slowly(model: &Ple, x: Tensor<2>) -> Tensor<3> {
        let t = model.n_tasks;
        let [b, _] = x.dims();
        let mut units: Vec<Tensor<2>> = vec![x; t + 1];
        for level in &model.levels {
            let (m, s) = (level.n_task_experts, level.n_shared_experts);
            let n = t * m + s;
            let owner = |e: usize| if e < t * m { e / m } else { t };
            let experts: Vec<Tensor<2>> = (0..n)
                .map(|e| {
                    let all = level.experts.forward(units[owner(e)].clone());
                    let h = all.dims()[2];
                    all.narrow(1, e, 1).reshape([b, h])
                })
                .collect();
            let mix = |gate: Tensor<2>, chosen: Vec<usize>| {
                let gate = softmax(gate, 1);
                let mut out = experts[0].clone().zeros_like();
                for (j, e) in chosen.into_iter().enumerate() {
                    out = out + experts[e].clone() * gate.clone().narrow(1, j, 1);
                }
                out
            };
            let mut next = Vec::new();
            for (k, unit) in units.iter().enumerate().take(t) {
                let [_, d, kk] = level.task_gates.weight.dims();
                let w = level
                    .task_gates
                    .weight
                    .val()
                    .narrow(0, k, 1)
                    .reshape([d, kk]);
                let bias = level.task_gates.bias.val().narrow(0, k, 1);
                let logits = unit.clone().matmul(w) + bias;
                let chosen = (k * m..(k + 1) * m).chain(t * m..n).collect();
                next.push(mix(logits, chosen));
            }
            if let Some(gate) = &level.shared_gate {
                next.push(mix(gate.forward(units[t].clone()), (0..n).collect()));
            }
            units = next;
        }
        Tensor::stack(units[..t].to_vec(), 1)
    }

    #[test]
    fn batched_levels_equal_the_unit_by_unit_computation() {
        let device = Device::default();
        device.seed(5);
        for n_levels in [1, 2, 3] {
            let model = Ple::new(&small(n_levels), emb_config(), 3, &device);
            let x = model.embedding.forward(&batch(&device));
            let fast = model.extract(x.clone());
            let slow = extract_slowly(&model, x);
            fast.into_data()
                .assert_approx_eq::<f32>(&slow.into_data(), Tolerance::absolute(1e-5));
        }
    }

    /// Collects whether every float parameter got a gradient.
    struct HasGrad<'a> {
        grads: &'a burn::tensor::Gradients,
        missing: usize,
        seen: usize,
    }

    impl ModuleVisitor for HasGrad<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.seen += 1;
            if param.val().grad(self.grads).is_none() {
                self.missing += 1;
            }
        }
    }

    #[test]
    fn every_parameter_receives_a_gradient() {
        let device = Device::default().autodiff();
        device.seed(7);
        let model = Ple::new(&small(2), emb_config(), 2, &device);
        let out = model.forward(&batch(&device)).outputs;
        let grads = out.powi_scalar(2).sum().backward();
        let level = &model.levels[0];
        assert!(level.task_gates.weight.val().grad(&grads).is_some());
        let shared = level.shared_gate.as_ref().expect("first of two levels");
        assert!(shared.weight.val().grad(&grads).is_some());
        assert!(level.experts.first.weight.val().grad(&grads).is_some());
        assert!(
            model.levels[1].experts.deeper[0]
                .weight
                .val()
                .grad(&grads)
                .is_some()
        );
        let mut visitor = HasGrad {
            grads: &grads,
            missing: 0,
            seen: 0,
        };
        model.visit(&mut visitor);
        // Embedding, 2 levels x (2 expert layers x 2 + task gate 2) + 1 shared gate x 2,
        // tower hidden 2 + output 2.
        assert_eq!(visitor.seen, 1 + 2 * 6 + 2 + 4);
        assert_eq!(visitor.missing, 0);
    }
}
