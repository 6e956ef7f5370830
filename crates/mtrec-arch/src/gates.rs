//! Gate diagnostics: the softmax gates of the expert models, read out for a batch.
//!
//! A mixture-of-experts model can collapse onto one or two experts per task, or route every
//! task to the same ones; the gates' probabilities show it. [`gate_weights`] returns, for any
//! model of the zoo with softmax gates over experts, one [`GateLayer`] per gated level: each
//! gate's probabilities over that level's experts, with who owns every gate and expert, so a
//! report can draw tasks x experts without knowing the architecture.
//!
//! Models with such gates: OMoE and MMoE ([`crate::Moe`]), CGC and PLE ([`crate::Ple`], task
//! gates and, below the last level, the shared gate), AdaTT and AdaTT-sp ([`crate::AdaTT`],
//! the all-expert gate `G` of every fusing unit; the native term `pad(v)` added beside it is not
//! a gate and is left out), and AutoMTL networks (every layer's consumer gates
//! `softmax(W z) * c`, masked by the connection gates and, as in the forward pass, not
//! renormalised). The others return `None`.
//!
//! Reading the gates never changes a model: each method computes the same tensors as the
//! model's forward pass (the same functions on the same inputs), and stops at the gates.

use burn::prelude::*;
use burn::tensor::activation::softmax;
use mtrec_nn::ModelInput;

use crate::automtl::AutoMtl;
use crate::{Model, MultiTaskModel};

/// Whose mixture a gate computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateOwner {
    /// Task `k`'s gate (MMoE, the task gates of CGC/PLE/AdaTT, AutoMTL's tower inputs).
    Task(usize),
    /// One gate every task reads (OMoE).
    AllTasks,
    /// The shared unit's gate of PLE or AdaTT, feeding the next level's shared experts.
    Shared,
    /// AutoMTL: the gate feeding expert `j` of the next layer.
    NextExpert(usize),
}

/// Who an expert belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpertOwner {
    /// One pool every gate may use (OMoE, MMoE, AutoMTL).
    Pool,
    /// Task `k`'s own experts (CGC/PLE task-specific experts, AdaTT native experts).
    Task(usize),
    /// The shared experts of CGC/PLE/AdaTT.
    Shared,
}

/// Every gate of one level for one batch.
#[derive(Debug, Clone)]
pub struct GateLayer {
    /// `[B, U, N]`: row `u` is gate `u`'s probabilities over the level's `N` experts, 0 where
    /// the gate cannot pick the expert (see `reachable`).
    pub weights: Tensor<3>,
    /// Owner of each of the `U` gates.
    pub gates: Vec<GateOwner>,
    /// Owner of each of the `N` experts, in the order of `weights`' last axis.
    pub experts: Vec<ExpertOwner>,
    /// `[U][N]`: whether gate `u` can give expert `j` any weight (PLE's task gates see their
    /// own and the shared experts only; AutoMTL's see the connected ones).
    pub reachable: Vec<Vec<bool>>,
}

impl GateLayer {
    /// A level whose every gate may pick every expert.
    fn dense(weights: Tensor<3>, gates: Vec<GateOwner>, experts: Vec<ExpertOwner>) -> Self {
        let reachable = vec![vec![true; experts.len()]; gates.len()];
        Self {
            weights,
            gates,
            experts,
            reachable,
        }
    }
}

/// The owners of `t * m` task experts (task-major) followed by `s` shared ones.
pub(crate) fn task_then_shared(t: usize, m: usize, s: usize) -> Vec<ExpertOwner> {
    (0..t * m)
        .map(|j| ExpertOwner::Task(j / m))
        .chain((0..s).map(|_| ExpertOwner::Shared))
        .collect()
}

/// Whether models of this config have softmax gates over experts (what [`gate_weights`]
/// reads), so a caller can skip loading the others.
pub fn has_expert_gates(arch: &crate::ArchConfig) -> bool {
    use crate::ArchConfig as A;
    matches!(
        arch,
        A::Omoe(_)
            | A::Mmoe(_)
            | A::Cgc(_)
            | A::Ple(_)
            | A::Adatt(_)
            | A::Automtl(_)
            | A::Searched(_)
    )
}

/// The softmax gates of `model` for one batch, one entry per gated level (first level first);
/// `None` for models without gates over experts. `model` should be in validation mode.
pub fn gate_weights(model: &Model, input: &ModelInput) -> Option<Vec<GateLayer>> {
    match model {
        Model::Moe(m) => Some(m.gate_weights(input)),
        Model::Ple(m) => Some(m.gate_weights(input)),
        Model::AdaTT(m) => Some(m.gate_weights(input)),
        Model::AutoMtl(m) => Some(automtl_gate_weights(m, input)),
        _ => None,
    }
}

/// AutoMTL: every layer's consumer gates read the flat model input `z` only, so no expert
/// runs; the connection mask is taken in the network's current gate mode, as in its forward.
fn automtl_gate_weights(model: &AutoMtl, input: &ModelInput) -> Vec<GateLayer> {
    let b = input.batch_size;
    let z = model.embedding.forward(input);
    let device = z.device();
    let n_layers = model.layers.len();
    let n_tasks = model.n_tasks();
    model
        .layers
        .iter()
        .enumerate()
        .map(|(l, layer)| {
            let n = layer.experts.len();
            let c = layer.connections.len();
            let masks: Vec<Tensor<1>> = layer
                .connections
                .iter()
                .map(|g| g.mask(model.gate_mode(), &device))
                .collect();
            let masks = Tensor::stack::<2>(masks, 0); // [C, N]
            let reachable: Vec<Vec<bool>> = masks
                .clone()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap_or_default()
                .chunks(n.max(1))
                .map(|row| row.iter().map(|&v| v > 0.0).collect())
                .collect();
            let gates = softmax(layer.gates.forward(z.clone()).reshape([b, c, n]), 2);
            let owners = (0..c)
                .map(|k| {
                    if l + 1 == n_layers && c == n_tasks {
                        GateOwner::Task(k)
                    } else {
                        GateOwner::NextExpert(k)
                    }
                })
                .collect();
            GateLayer {
                weights: gates * masks.reshape([1, c, n]),
                gates: owners,
                experts: vec![ExpertOwner::Pool; n],
                reachable,
            }
        })
        .collect()
}

impl crate::Moe {
    /// The gates' probabilities for a batch: one level of `[B, G, n]` (`G` = 1 for OMoE, `T`
    /// for MMoE).
    pub fn gate_weights(&self, input: &ModelInput) -> Vec<GateLayer> {
        let x = self.embedding.forward(input);
        let weights = self.gates.forward(x);
        let [_, g, n] = weights.dims();
        let gates = if self.is_one_gate() {
            vec![GateOwner::AllTasks; g]
        } else {
            (0..g).map(GateOwner::Task).collect()
        };
        vec![GateLayer::dense(weights, gates, vec![ExpertOwner::Pool; n])]
    }
}

impl crate::Ple {
    /// Every level's task gates (and shared gate below the last level), each task gate's
    /// probabilities placed on its own and the shared experts: `[B, T(+1), T*m_k + m_s]`.
    pub fn gate_weights(&self, input: &ModelInput) -> Vec<GateLayer> {
        let mut h = crate::levels::LevelInput::Same(self.embedding.forward(input));
        let mut out = Vec::with_capacity(self.levels.len());
        for level in &self.levels {
            let (experts, gates) = level.experts_and_gates(h);
            let layer = level.gate_layer(gates.clone());
            h = crate::levels::LevelInput::PerUnit(gates.matmul(experts));
            out.push(layer);
        }
        out
    }
}

impl crate::AdaTT {
    /// Every level's unit gates `G` over all experts, `[B, U, M]` (the native term is not a
    /// gate and is not included).
    pub fn gate_weights(&self, input: &ModelInput) -> Vec<GateLayer> {
        let mut h = crate::levels::LevelInput::Same(self.embedding.forward(input));
        let mut out = Vec::with_capacity(self.levels.len());
        for level in &self.levels {
            let (experts, gates) = level.experts_and_gates(h);
            let layer = level.gate_layer(gates.clone());
            h = crate::levels::LevelInput::PerUnit(level.fuse(experts, gates));
            out.push(layer);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moe::MoeKind;
    use crate::test_support::{emb_config, sample_input as batch};
    use crate::{AdaTT, AdaTTConfig, Moe, MoeConfig, Ple, PleConfig};
    use burn::module::Param;
    use burn::tensor::Tolerance;

    fn rows(t: Tensor<3>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// Zero gate weights and biases `ln(w)`: softmax returns `w` for every example.
    fn constant_logits(wanted: &[Vec<f32>]) -> Vec<f32> {
        wanted.iter().flatten().map(|w| w.ln()).collect()
    }

    #[test]
    fn mmoe_gates_are_the_hand_set_softmax_for_every_example() {
        let device = Device::default();
        device.seed(11);
        let cfg = MoeConfig {
            n_experts: 3,
            expert: vec![4],
            tower: vec![2],
        };
        let mut model = Moe::new(&cfg, MoeKind::GatePerTask, emb_config(), 2, &device);
        let wanted = vec![vec![0.7, 0.2, 0.1], vec![0.25, 0.25, 0.5]];
        let d_in = emb_config().d_out();
        model.gates.linear.weight = Param::from_tensor(Tensor::zeros([d_in, 6], &device));
        model.gates.linear.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(constant_logits(&wanted), [6]),
            &device,
        )));
        let layers = model.gate_weights(&batch(&device));
        assert_eq!(layers.len(), 1);
        let layer = &layers[0];
        assert_eq!(layer.gates, vec![GateOwner::Task(0), GateOwner::Task(1)]);
        assert_eq!(layer.experts, vec![ExpertOwner::Pool; 3]);
        assert_eq!(layer.weights.dims(), [4, 2, 3]);
        let expected: Vec<f32> = (0..4).flat_map(|_| wanted.concat()).collect();
        layer.weights.clone().into_data().assert_approx_eq::<f32>(
            &TensorData::new(expected, [4, 2, 3]),
            Tolerance::absolute(1e-6),
        );
    }

    #[test]
    fn omoe_has_one_gate_for_all_tasks() {
        let device = Device::default();
        let model = Moe::new(
            &MoeConfig::default(),
            MoeKind::OneGate,
            emb_config(),
            3,
            &device,
        );
        let layers = model.gate_weights(&batch(&device));
        assert_eq!(layers[0].gates, vec![GateOwner::AllTasks]);
        assert_eq!(layers[0].weights.dims(), [4, 1, 8]);
        // Probabilities: every row sums to 1.
        for row in rows(layers[0].weights.clone()).chunks(8) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    /// CGC with hand-set task gates: each task's probabilities sit on its own and the shared
    /// experts, zeros elsewhere, and those cells are the only reachable ones.
    #[test]
    fn cgc_task_gates_are_placed_on_own_and_shared_experts() {
        let device = Device::default();
        device.seed(3);
        let (t, m, s) = (2, 1, 2);
        let cfg = PleConfig {
            n_levels: 1,
            n_task_experts: m,
            n_shared_experts: s,
            expert: vec![4],
            tower: vec![],
        };
        let mut model = Ple::new(&cfg, emb_config(), t, &device);
        let wanted = vec![vec![0.5, 0.3, 0.2], vec![0.1, 0.6, 0.3]];
        let d_in = emb_config().d_out();
        let level = &mut model.levels[0];
        level.task_gates.weight = Param::from_tensor(Tensor::zeros([t, d_in, m + s], &device));
        level.task_gates.bias = Param::from_tensor(Tensor::from_data(
            TensorData::new(constant_logits(&wanted), [t, m + s]),
            &device,
        ));
        let layers = model.gate_weights(&batch(&device));
        assert_eq!(layers.len(), 1);
        let layer = &layers[0];
        assert_eq!(layer.gates, vec![GateOwner::Task(0), GateOwner::Task(1)]);
        assert_eq!(
            layer.experts,
            vec![
                ExpertOwner::Task(0),
                ExpertOwner::Task(1),
                ExpertOwner::Shared,
                ExpertOwner::Shared
            ]
        );
        assert_eq!(
            layer.reachable,
            vec![vec![true, false, true, true], vec![false, true, true, true]]
        );
        let one = [0.5f32, 0.0, 0.3, 0.2, 0.0, 0.1, 0.6, 0.3];
        let expected: Vec<f32> = (0..4).flat_map(|_| one).collect();
        layer.weights.clone().into_data().assert_approx_eq::<f32>(
            &TensorData::new(expected, [4, 2, 4]),
            Tolerance::absolute(1e-6),
        );
    }

    #[test]
    fn ple_reports_every_level_with_the_shared_gate_below_the_last() {
        let device = Device::default();
        device.seed(4);
        let cfg = PleConfig {
            n_levels: 2,
            n_task_experts: 2,
            n_shared_experts: 1,
            expert: vec![4],
            tower: vec![2],
        };
        let model = Ple::new(&cfg, emb_config(), 2, &device);
        let layers = model.gate_weights(&batch(&device));
        assert_eq!(layers.len(), 2);
        assert_eq!(
            layers[0].gates,
            vec![GateOwner::Task(0), GateOwner::Task(1), GateOwner::Shared]
        );
        assert_eq!(layers[0].reachable[2], vec![true; 5]);
        assert_eq!(
            layers[1].gates,
            vec![GateOwner::Task(0), GateOwner::Task(1)]
        );
        for layer in &layers {
            let [_, u, n] = layer.weights.dims();
            assert_eq!(n, 5);
            let w = rows(layer.weights.clone());
            for (i, row) in w.chunks(n).enumerate() {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
                // Nothing outside the reachable experts.
                for (j, &v) in row.iter().enumerate() {
                    if !layer.reachable[i % u][j] {
                        assert_eq!(v, 0.0);
                    }
                }
            }
        }
    }

    /// Reading the gates runs the same levels as the forward pass: the second level's gates
    /// depend on the first level's outputs, so a level fed the wrong input would differ.
    #[test]
    fn adatt_second_level_gates_match_the_forward_path() {
        let device = Device::default();
        device.seed(9);
        let cfg = AdaTTConfig {
            n_levels: 2,
            experts_per_task: 2,
            n_shared_experts: 1,
            expert: vec![4],
            tower: vec![2],
        };
        let model = AdaTT::new(&cfg, emb_config(), 2, &device);
        let input = batch(&device);
        let layers = model.gate_weights(&input);
        assert_eq!(layers.len(), 2);
        assert_eq!(
            layers[0].gates,
            vec![GateOwner::Task(0), GateOwner::Task(1), GateOwner::Shared]
        );
        assert_eq!(
            layers[1].gates,
            vec![GateOwner::Task(0), GateOwner::Task(1)]
        );
        assert_eq!(layers[1].experts, task_then_shared(2, 2, 1));
        let x = model.embedding.forward(&input);
        let first = model.levels[0].forward(crate::levels::LevelInput::Same(x));
        let (_, gates) =
            model.levels[1].experts_and_gates(crate::levels::LevelInput::PerUnit(first));
        layers[1]
            .weights
            .clone()
            .into_data()
            .assert_approx_eq::<f32>(&gates.into_data(), Tolerance::absolute(1e-6));
    }

    /// A searched PLE: each tower's gate is masked to its own and the shared experts and, as
    /// in the forward pass, not renormalised, so zero gate weights give `1/N` on the connected
    /// experts and rows that sum to less than 1.
    #[test]
    fn automtl_tower_gates_are_masked_by_the_connections() {
        use crate::automtl::{Genotype, OpKind};
        use mtrec_data::{FeatureMeta, TaskKind};
        let device = Device::default();
        device.seed(2);
        let meta = FeatureMeta {
            sparse_names: vec!["a".into(), "b".into()],
            vocab_sizes: vec![5, 3],
            bags: Vec::new(),
            dense_names: vec!["x".into(), "y".into(), "z".into()],
            task_names: vec!["t0".into(), "t1".into()],
            task_kinds: vec![TaskKind::Binary; 2],
        };
        let genotype = Genotype::ple(&meta, 2, 1, 2, &[OpKind::Mlp(4)], 4);
        let emb = crate::EmbeddingConfig {
            dim: 2,
            init_std: 0.5,
        };
        let mut model =
            crate::build(&crate::ArchConfig::Searched(genotype), &emb, &meta, &device).unwrap();
        let Model::AutoMtl(net) = &mut model else {
            panic!("a searched genotype builds AutoMtl")
        };
        let last = net.layers.last_mut().unwrap();
        last.gates.weight = Param::from_tensor(last.gates.weight.val().zeros_like());
        let layers = gate_weights(&model, &batch(&device)).unwrap();
        assert_eq!(layers.len(), 2);
        let tower = &layers[1];
        assert_eq!(tower.gates, vec![GateOwner::Task(0), GateOwner::Task(1)]);
        assert_eq!(
            tower.reachable,
            vec![vec![true, false, true, true], vec![false, true, true, true]]
        );
        let one = [0.25f32, 0.0, 0.25, 0.25, 0.0, 0.25, 0.25, 0.25];
        let expected: Vec<f32> = (0..4).flat_map(|_| one).collect();
        tower.weights.clone().into_data().assert_approx_eq::<f32>(
            &TensorData::new(expected, [4, 2, 4]),
            Tolerance::absolute(1e-6),
        );
        assert!(matches!(layers[0].gates[0], GateOwner::NextExpert(0)));
    }

    #[test]
    fn models_without_expert_gates_have_none() {
        let device = Device::default();
        let model = Model::SharedBottom(crate::SharedBottom::new(
            &crate::BottomConfig::default(),
            emb_config(),
            2,
            &device,
        ));
        assert!(gate_weights(&model, &batch(&device)).is_none());
        let bottom = crate::BottomConfig::default();
        assert!(!has_expert_gates(&crate::ArchConfig::SharedBottom(bottom)));
        assert!(has_expert_gates(&crate::ArchConfig::Mmoe(
            MoeConfig::default()
        )));
        assert!(has_expert_gates(&crate::ArchConfig::Cgc(
            PleConfig::default()
        )));
    }
}
