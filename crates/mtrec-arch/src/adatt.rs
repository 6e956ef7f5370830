//! AdaTT-sp and AdaTT (Li et al., "AdaTT: Adaptive Task-to-Task Fusion Network for Multitask
//! Learning in Recommendations", KDD 2023, arXiv 2304.04959).
//!
//! `f_t^0 = x`. At fusion level `l`, task `t`'s unit has `m_t` native experts
//! `E_{t,i}^l = e_{t,i}^l(f_t^{l-1})` of width `d^l`; `E_t^l` stacks them and `E^l` stacks every
//! unit's experts (`M` rows). With gate `G_t^l = softmax(W_t^l f_t^{l-1})` over all `M` experts
//! and learned `v_t^l in R^{m_t}`, the unit's output is (eq. 7)
//! `f_t^l = (G_t^l)^T E^l + (v_t^l)^T E_t^l`, computed as one product
//! `(pad(v_t^l) + G_t^l)^T E^l`. A unit with one expert adds `E_t^l` itself (unit weight).
//! General AdaTT adds a shared unit whose experts join `E^l` for every task; it fuses like a
//! task unit except at the last level, where it only supplies experts. `y_t = tower_t(f_t^L)`.
//!
//! Input `x` `[B, F*d_emb + D]`; a level's output `[B, U, H]`, one row per fusing unit (the `T`
//! tasks, then the shared unit below the last level); output `[B, T]`.
//!
//! Defaults: 2 fusion levels, 1 expert per task, no shared unit (AdaTT-sp), experts of 16
//! units, towers of 8. The authors' code defaults to AdaTT-sp (`mtl_model = "att_sp"`) with
//! `num_task_experts = 1`; the paper draws and discusses AdaTT with two fusion levels. Widths are
//! the MMoE synthetic defaults ([`crate::MoeConfig`]) so that the expert-based models compare at
//! equal expert size.
//!
//! Native weights, our reading of the spec: a unit with one expert gets the fixed unit weight
//! (no parameter), a unit with `m > 1` experts a learned `v in R^m` initialised
//! `U(-sqrt(1/m), sqrt(1/m))`, as in the authors' code. Their code switches to fixed unit weights
//! only when *every* unit has one expert and otherwise learns a scalar for single-expert units
//! too; the two agree for AdaTT-sp and whenever all units have the same expert count.
//! Experts are Linear + ReLU MLPs without batch norm or dropout, as in the authors' code.

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::prelude::*;
use burn::tensor::activation::softmax;
use mtrec_nn::{
    BatchedLinear, BatchedLinearConfig, ExpertBank, ExpertBankConfig, FeatureEmbedding,
    FeatureEmbeddingConfig, ModelInput, TowerBank, TowerBankConfig,
};
use serde::{Deserialize, Serialize};

use crate::levels::{LevelInput, run_levels};
use crate::{ArchError, ModelOutput};

/// AdaTT-sp (`n_shared_experts = 0`) and general AdaTT: the `[model]` keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdaTTConfig {
    /// Fusion levels `L`.
    pub n_levels: usize,
    /// Native experts of every task unit per level (`m_t`, the same for every task).
    pub experts_per_task: usize,
    /// Experts of the shared fusion unit per level; 0 = AdaTT-sp (no shared unit).
    pub n_shared_experts: usize,
    /// Hidden widths of every expert (Linear + ReLU each), the same at every level; the last
    /// one is `d^l`, a level's output width and the next level's input width.
    pub expert: Vec<usize>,
    pub tower: Vec<usize>,
}

impl Default for AdaTTConfig {
    fn default() -> Self {
        Self {
            n_levels: 2,
            experts_per_task: 1,
            n_shared_experts: 0,
            expert: vec![16],
            tower: vec![8],
        }
    }
}

impl AdaTTConfig {
    /// Rejects configs that cannot build.
    pub fn validate(&self, n_tasks: usize) -> Result<(), ArchError> {
        let invalid = |message: String| ArchError::Invalid {
            model: "adatt",
            message,
        };
        if n_tasks == 0 {
            return Err(ArchError::NoTasks);
        }
        if self.n_levels == 0 {
            return Err(invalid("n_levels must be at least 1".into()));
        }
        if self.experts_per_task == 0 {
            return Err(invalid(
                "experts_per_task must be at least 1: every task unit needs native experts".into(),
            ));
        }
        ArchError::check_layers("adatt", "expert", &self.expert, true)?;
        ArchError::check_layers("adatt", "tower", &self.tower, false)?;
        Ok(())
    }

    /// The config's `kind`: AdaTT-sp without a shared unit.
    pub fn variant(&self) -> &'static str {
        if self.n_shared_experts == 0 {
            "adatt-sp"
        } else {
            "adatt"
        }
    }
}

/// One fusion level.
///
/// All `M` experts live unit-major (task 0's `m`, ..., task `T-1`'s, then the shared unit's) in
/// one [`ExpertBank`], so level 1 runs them as one product and later levels as one batched
/// product over per-expert inputs; all gates are one (batched) product too. The native
/// weights are padded into a constant `[U, M]` ownership mask, so that gate and native term
/// fuse in the single `[B, U, M] x [B, M, H]` product of eq. 10.
#[derive(Module, Debug)]
pub struct AdaTTLevel {
    pub experts: ExpertBank,
    /// One gate per fusing unit, weights `[U, in, M]`.
    pub gates: BatchedLinear,
    /// `v` of every task unit, `[T, m]`; absent when `m = 1` (fixed unit weight).
    pub native: Option<Param<Tensor<2>>>,
    /// `v` of the shared unit, `[m_s]`; absent when it has one expert or does not fuse here.
    pub native_shared: Option<Param<Tensor<1>>>,
    /// `[U, M]`: 1 where unit `u` owns expert `j`.
    owner_mask: Tensor<2>,
    n_tasks: usize,
    per_task: usize,
    n_shared: usize,
    n_fusing: usize,
}

fn native_init(m: usize) -> Initializer {
    let bound = (1.0 / m as f64).sqrt();
    Initializer::Uniform {
        min: -bound,
        max: bound,
    }
}

impl AdaTTLevel {
    fn new(d_input: usize, cfg: &AdaTTConfig, n_tasks: usize, last: bool, device: &Device) -> Self {
        let (t, m, s) = (n_tasks, cfg.experts_per_task, cfg.n_shared_experts);
        let n = t * m + s;
        let shared_fuses = s > 0 && !last;
        let n_fusing = t + usize::from(shared_fuses);
        let mut mask = vec![0f32; n_fusing * n];
        for j in 0..n {
            let owner = if j < t * m { j / m } else { t };
            if owner < n_fusing {
                mask[owner * n + j] = 1.0;
            }
        }
        let experts = ExpertBankConfig {
            d_input,
            n_experts: n,
            hidden: cfg.expert.clone(),
        };
        Self {
            experts: experts.init(device),
            gates: BatchedLinearConfig::new(n_fusing, d_input, n).init(device),
            native: (m > 1).then(|| native_init(m).init([t, m], device)),
            native_shared: (shared_fuses && s > 1).then(|| native_init(s).init([s], device)),
            owner_mask: Tensor::from_data(TensorData::new(mask, [n_fusing, n]), device),
            n_tasks: t,
            per_task: m,
            n_shared: s,
            n_fusing,
        }
    }

    /// Every expert's output `[B, M, H]` and every fusing unit's gate `[B, U, M]`.
    pub fn experts_and_gates(&self, input: LevelInput) -> (Tensor<3>, Tensor<3>) {
        let (t, m, s, u) = (self.n_tasks, self.per_task, self.n_shared, self.n_fusing);
        let n = t * m + s;
        match input {
            LevelInput::Same(x) => {
                let [b, d] = x.dims();
                let experts = self.experts.forward(x.clone());
                // Every gate reads `x`: the `[U, in, M]` weights viewed as one `[in, U*M]`.
                let w = self.gates.weight.val().swap_dims(0, 1).reshape([d, u * n]);
                let logits = x.matmul(w) + self.gates.bias.val().reshape([1, u * n]);
                (experts, softmax(logits.reshape([b, u, n]), 2))
            }
            LevelInput::PerUnit(h) => {
                let [b, _, d] = h.dims();
                let units = h.swap_dims(0, 1); // [U_prev, B, in]
                let mut inputs = vec![
                    units
                        .clone()
                        .narrow(0, 0, t)
                        .unsqueeze_dim::<4>(1)
                        .expand([t, m, b, d])
                        .reshape([t * m, b, d]),
                ];
                if s > 0 {
                    inputs.push(units.clone().narrow(0, t, 1).expand([s, b, d]));
                }
                let experts = self.experts.forward_each(Tensor::cat(inputs, 0));
                let logits = self.gates.forward(units.narrow(0, 0, u)).swap_dims(0, 1);
                (experts, softmax(logits, 2))
            }
        }
    }

    /// `pad(v)` of every fusing unit, `[U, M]`.
    pub fn native_weights(&self) -> Tensor<2> {
        if self.native.is_none() && self.native_shared.is_none() {
            return self.owner_mask.clone();
        }
        let (t, m, s) = (self.n_tasks, self.per_task, self.n_shared);
        let device = self.owner_mask.device();
        let mut per_expert = vec![match &self.native {
            Some(v) => v.val().reshape([t * m]),
            None => Tensor::ones([t * m], &device),
        }];
        if s > 0 {
            per_expert.push(match &self.native_shared {
                Some(v) => v.val(),
                None => Tensor::ones([s], &device),
            });
        }
        self.owner_mask.clone() * Tensor::cat(per_expert, 0).reshape([1, t * m + s])
    }

    /// Fused outputs `[B, U, H]`: `(G + pad(v))^T E` for every unit in one product.
    pub fn forward(&self, input: LevelInput) -> Tensor<3> {
        let (experts, gates) = self.experts_and_gates(input);
        self.fuse(experts, gates)
    }

    /// `(G + pad(v))^T E` from [`Self::experts_and_gates`]' outputs.
    pub fn fuse(&self, experts: Tensor<3>, gates: Tensor<3>) -> Tensor<3> {
        (gates + self.native_weights().unsqueeze_dim(0)).matmul(experts)
    }

    /// `gates` from [`Self::experts_and_gates`] with their owners (the task units, then the
    /// shared unit where it fuses); every gate reaches every expert.
    pub(crate) fn gate_layer(&self, gates: Tensor<3>) -> crate::gates::GateLayer {
        use crate::gates::GateOwner;
        let (t, m, s) = (self.n_tasks, self.per_task, self.n_shared);
        let owners: Vec<GateOwner> = (0..self.n_fusing)
            .map(|u| {
                if u < t {
                    GateOwner::Task(u)
                } else {
                    GateOwner::Shared
                }
            })
            .collect();
        let experts = crate::gates::task_then_shared(t, m, s);
        crate::gates::GateLayer {
            reachable: vec![vec![true; experts.len()]; owners.len()],
            weights: gates,
            gates: owners,
            experts,
        }
    }
}

#[derive(Module, Debug)]
pub struct AdaTT {
    pub embedding: FeatureEmbedding,
    pub levels: Vec<AdaTTLevel>,
    pub towers: TowerBank,
    n_tasks: usize,
}

impl AdaTT {
    /// `cfg` must pass [`AdaTTConfig::validate`].
    pub fn new(
        cfg: &AdaTTConfig,
        emb: FeatureEmbeddingConfig,
        n_tasks: usize,
        device: &Device,
    ) -> Self {
        let n_levels = cfg.n_levels.max(1);
        let d_out = *cfg.expert.last().unwrap_or(&emb.d_out());
        let mut d_in = emb.d_out();
        let mut levels = Vec::with_capacity(n_levels);
        for l in 0..n_levels {
            levels.push(AdaTTLevel::new(
                d_in,
                cfg,
                n_tasks,
                l + 1 == n_levels,
                device,
            ));
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

    /// The last level's task outputs `f_t^L`, `[B, T, H]`: the towers' inputs.
    pub fn fuse(&self, x: Tensor<2>) -> Tensor<3> {
        run_levels(x, &self.levels, self.n_tasks, |level, input| {
            level.forward(input)
        })
    }

    pub fn forward(&self, input: &ModelInput) -> ModelOutput {
        let x = self.embedding.forward(input);
        ModelOutput {
            outputs: self.towers.forward_per_task(self.fuse(x)),
            aux_loss: None,
        }
    }

    pub fn n_tasks(&self) -> usize {
        self.n_tasks
    }

    pub fn n_levels(&self) -> usize {
        self.levels.len()
    }

    /// Whether there is a shared fusion unit (general AdaTT) or not (AdaTT-sp).
    pub fn has_shared_unit(&self) -> bool {
        self.levels.first().is_some_and(|l| l.n_shared > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{emb_config, sample_input as batch};
    use burn::module::ModuleVisitor;
    use burn::tensor::Tolerance;

    fn config(n_levels: usize, experts_per_task: usize, n_shared_experts: usize) -> AdaTTConfig {
        AdaTTConfig {
            n_levels,
            experts_per_task,
            n_shared_experts,
            expert: vec![6, 4],
            tower: vec![3],
        }
    }

    #[test]
    fn outputs_have_one_column_per_task() {
        let device = Device::default();
        device.seed(1);
        for (m, s) in [(1, 0), (2, 0), (1, 1), (2, 3)] {
            for t in [2, 3] {
                let cfg = config(2, m, s);
                cfg.validate(t).unwrap();
                let model = AdaTT::new(&cfg, emb_config(), t, &device);
                let out = model.forward(&batch(&device));
                assert_eq!(out.outputs.dims(), [4, t]);
                assert!(out.aux_loss.is_none());
                assert_eq!(model.n_tasks(), t);
                assert_eq!(model.has_shared_unit(), s > 0);
                assert_eq!(cfg.variant(), if s > 0 { "adatt" } else { "adatt-sp" });
            }
        }
    }

    #[test]
    fn validate_rejects_empty_parts() {
        let ok = AdaTTConfig::default();
        assert!(ok.validate(2).is_ok());
        for bad in [
            AdaTTConfig {
                n_levels: 0,
                ..ok.clone()
            },
            AdaTTConfig {
                experts_per_task: 0,
                ..ok.clone()
            },
            AdaTTConfig {
                expert: vec![],
                ..ok.clone()
            },
            AdaTTConfig {
                expert: vec![0],
                ..ok.clone()
            },
            AdaTTConfig {
                tower: vec![4, 0],
                ..ok.clone()
            },
        ] {
            assert!(
                matches!(
                    bad.validate(2),
                    Err(ArchError::Invalid { model: "adatt", .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(ok.validate(0), Err(ArchError::NoTasks)));
    }

    #[test]
    fn shared_unit_fuses_below_the_last_level_only() {
        let device = Device::default();
        let model = AdaTT::new(&config(3, 2, 3), emb_config(), 2, &device);
        let fusing: Vec<usize> = model.levels.iter().map(|l| l.gates.groups()).collect();
        assert_eq!(fusing, vec![3, 3, 2]);
        let learned: Vec<bool> = model
            .levels
            .iter()
            .map(|l| l.native_shared.is_some())
            .collect();
        assert_eq!(learned, vec![true, true, false]);
        // Every level still has the shared unit's experts.
        assert!(
            model
                .levels
                .iter()
                .all(|l| l.experts.n_experts() == 2 * 2 + 3)
        );
    }

    #[test]
    fn native_weights_start_in_the_reference_range() {
        let device = Device::default();
        device.seed(2);
        let model = AdaTT::new(&config(1, 4, 0), emb_config(), 3, &device);
        let v: Vec<f32> = model.levels[0]
            .native
            .as_ref()
            .expect("m > 1 learns v")
            .val()
            .into_data()
            .try_to_vec()
            .unwrap();
        assert_eq!(v.len(), 12);
        assert!(v.iter().all(|w| w.abs() <= 0.5), "{v:?}");
        assert!(v.iter().any(|w| *w < 0.0) && v.iter().any(|w| *w > 0.0));
        let unit = AdaTT::new(&config(2, 1, 1), emb_config(), 3, &device);
        assert!(
            unit.levels
                .iter()
                .all(|l| l.native.is_none() && l.native_shared.is_none())
        );
    }

    /// Eq. 7 the slow way, unit by unit from the same parameters: each expert runs on its own
    /// unit's input through the shared-input expert path, each gate is its own slice of the
    /// gate weights, and the native term is the explicit sum `sum_i v_i E_{u,i}`.
    fn fuse_slowly(model: &AdaTT, x: Tensor<2>) -> Tensor<3> {
        let t = model.n_tasks;
        let [b, _] = x.dims();
        let mut units: Vec<Tensor<2>> = vec![x; t + 1];
        for level in &model.levels {
            let (m, s, u) = (level.per_task, level.n_shared, level.n_fusing);
            let n = t * m + s;
            let owner = |j: usize| if j < t * m { j / m } else { t };
            let experts: Vec<Tensor<2>> = (0..n)
                .map(|j| {
                    let all = level.experts.forward(units[owner(j)].clone());
                    let h = all.dims()[2];
                    all.narrow(1, j, 1).reshape([b, h])
                })
                .collect();
            let stacked = Tensor::stack::<3>(experts.clone(), 1); // [B, M, H]
            let task_v: Option<Vec<f32>> = level
                .native
                .as_ref()
                .map(|v| v.val().into_data().try_to_vec().unwrap());
            let shared_v: Option<Vec<f32>> = level
                .native_shared
                .as_ref()
                .map(|v| v.val().into_data().try_to_vec().unwrap());
            let [_, d, _] = level.gates.weight.dims();
            let mut next = Vec::new();
            for unit in 0..u {
                let w = level.gates.weight.val().narrow(0, unit, 1).reshape([d, n]);
                let bias = level.gates.bias.val().narrow(0, unit, 1);
                let gate = softmax(units[unit].clone().matmul(w) + bias, 1);
                let all_experts = gate.unsqueeze_dim::<3>(1).matmul(stacked.clone());
                let mut f = all_experts.reshape([b, experts[0].dims()[1]]);
                let (own, weights) = if unit < t {
                    let v = task_v
                        .as_ref()
                        .map(|v| v[unit * m..(unit + 1) * m].to_vec());
                    ((unit * m..(unit + 1) * m).collect::<Vec<_>>(), v)
                } else {
                    ((t * m..n).collect(), shared_v.clone())
                };
                for (i, j) in own.into_iter().enumerate() {
                    let vi = weights.as_ref().map_or(1.0, |v| v[i]);
                    f = f + experts[j].clone() * vi;
                }
                next.push(f);
            }
            units = next;
        }
        Tensor::stack(units[..t].to_vec(), 1)
    }

    #[test]
    fn single_product_equals_the_two_term_formula() {
        let device = Device::default();
        device.seed(5);
        for (n_levels, m, s) in [(3, 2, 2), (2, 3, 1), (2, 1, 2), (2, 1, 0), (1, 2, 0)] {
            let model = AdaTT::new(&config(n_levels, m, s), emb_config(), 3, &device);
            let x = model.embedding.forward(&batch(&device));
            let fast = model.fuse(x.clone());
            let slow = fuse_slowly(&model, x);
            fast.into_data()
                .assert_approx_eq::<f32>(&slow.into_data(), Tolerance::absolute(1e-5));
        }
    }

    /// With one expert per unit, `f_u - G_u^T E` is exactly unit `u`'s own expert, at every level.
    #[test]
    fn one_expert_per_unit_adds_that_expert_with_unit_weight() {
        let device = Device::default();
        device.seed(9);
        for s in [0, 1] {
            let t = 3;
            let model = AdaTT::new(&config(2, 1, s), emb_config(), t, &device);
            let mut input = LevelInput::Same(model.embedding.forward(&batch(&device)));
            for level in &model.levels {
                let (experts, gates) = level.experts_and_gates(input.clone());
                let u = level.n_fusing;
                let fused = level.forward(input);
                let native = fused.clone() - gates.matmul(experts.clone());
                native.into_data().assert_approx_eq::<f32>(
                    &experts.narrow(1, 0, u).into_data(),
                    Tolerance::absolute(1e-6),
                );
                input = LevelInput::PerUnit(fused);
            }
        }
    }

    /// Counts float parameters and those without a gradient.
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
        let model = AdaTT::new(&config(2, 2, 2), emb_config(), 2, &device);
        let out = model.forward(&batch(&device)).outputs;
        let grads = out.powi_scalar(2).sum().backward();
        let first = &model.levels[0];
        let v = first.native.as_ref().expect("m = 2 learns v");
        assert!(v.val().grad(&grads).is_some());
        let vs = first.native_shared.as_ref().expect("shared unit fuses");
        assert!(vs.val().grad(&grads).is_some());
        assert!(first.gates.weight.val().grad(&grads).is_some());
        assert!(first.experts.first.weight.val().grad(&grads).is_some());
        let last = &model.levels[1];
        assert!(last.experts.deeper[0].weight.val().grad(&grads).is_some());
        let mut visitor = HasGrad {
            grads: &grads,
            missing: 0,
            seen: 0,
        };
        model.visit(&mut visitor);
        // Embedding; per level 2 expert layers x 2 + gates 2 + task v; the shared v on level 1;
        // tower hidden 2 + output 2.
        assert_eq!(visitor.seen, 1 + 2 * 7 + 1 + 4);
        assert_eq!(visitor.missing, 0);
    }
}
