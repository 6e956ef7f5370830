//! The search space's contracts: hand-made models are points of it, discretisation order, and
//! a fully discretised super-network is exactly its exported genotype.

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::Distribution;
use mtrec_data::{FeatureMeta, TaskKind};

use super::*;
use crate::test_support::sample_input;
use crate::{ArchConfig, EmbeddingConfig, Model, MultiTaskModel, build};

fn meta(n_tasks: usize) -> FeatureMeta {
    FeatureMeta {
        sparse_names: vec!["a".into(), "b".into()],
        vocab_sizes: vec![5, 3],
        bags: Vec::new(),
        dense_names: vec!["x".into(), "y".into(), "z".into()],
        task_names: (0..n_tasks).map(|t| format!("t{t}")).collect(),
        task_kinds: vec![TaskKind::Binary; n_tasks],
    }
}

fn emb() -> EmbeddingConfig {
    EmbeddingConfig {
        dim: 2,
        init_std: 0.5,
    }
}

fn small_space() -> SpaceConfig {
    SpaceConfig {
        n_layers: 2,
        n_experts: 3,
        n_blocks: 2,
        block_width: 4,
        candidates: vec![OpKind::Identity, OpKind::Mlp(3), OpKind::Mlp(5)],
        tower: vec![4],
        dropout: 0.2,
    }
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn mmoe_and_ple_are_points_of_the_search_space() {
    let device = Device::flex();
    let m = meta(2);
    let blocks = [OpKind::Mlp(8)];
    let mmoe = Genotype::mmoe(&m, 4, &blocks, 4);
    let ple = Genotype::ple(&m, 2, 1, 2, &blocks, 4);
    // PLE: 2 tasks x 1 specific + 2 shared experts per level; task 1's expert of level 1 and
    // tower mix its own expert (1) and the shared ones (2, 3), never task 0's expert.
    assert_eq!(ple.layers[1].experts[1].inputs, Some(vec![1, 2, 3]));
    assert_eq!(ple.layers[1].experts[3].inputs, Some(vec![0, 1, 2, 3]));
    assert_eq!(ple.towers[1].inputs, vec![1, 2, 3]);
    for g in [mmoe, ple] {
        g.validate(&m).unwrap();
        let json = g.to_json();
        assert_eq!(Genotype::from_json(&json).unwrap(), g);
        let model = build(&ArchConfig::Searched(g.clone()), &emb(), &m, &device).unwrap();
        let Model::AutoMtl(net) = &model else {
            panic!("searched builds AutoMtl")
        };
        assert_eq!(net.genotype().as_ref(), Some(&g));
        let out = model.forward(&sample_input(&device)).outputs;
        assert_eq!(out.dims(), [4, 2]);
        assert!(values(out).iter().all(|v| v.is_finite()));
    }
}

#[test]
fn a_genotype_for_other_data_is_rejected_with_the_name() {
    let m = meta(2);
    let mut g = Genotype::mmoe(&m, 2, &[OpKind::Identity], 4);
    g.layers[0].experts[1]
        .features
        .as_mut()
        .unwrap()
        .single
        .push("zip".into());
    let e = g.validate(&m).unwrap_err().to_string();
    assert!(e.contains("`zip`"), "{e}");
    let mut g = Genotype::mmoe(&m, 2, &[OpKind::Identity], 4);
    g.towers[0].inputs = vec![0, 5];
    assert!(g.validate(&m).unwrap_err().to_string().contains("expert 5"));
    assert!(
        g.validate_structure()
            .unwrap_err()
            .to_string()
            .contains("expert 5")
    );
    assert!(g.validate(&meta(3)).is_err());
    // Without data only the structure is checked: other field and task names pass.
    let mut g = Genotype::mmoe(&meta(3), 2, &[OpKind::Identity], 4);
    g.layers[0].experts[0]
        .features
        .as_mut()
        .unwrap()
        .single
        .push("zip".into());
    g.validate_structure().unwrap();
}

#[test]
fn the_lowest_entropy_block_is_fixed_first() {
    let device = Device::flex();
    device.seed(1);
    let mut net = AutoMtl::supernet(&small_space(), 2, 0.5, &meta(2), &device);
    let target = BlockAt {
        layer: 1,
        expert: 2,
        block: 0,
    };
    // A peaked mixture on mlp-5; every other block is near uniform (beta ~ N(0, 1e-3)).
    if let Block::Mixed(m) = net.block_mut(target) {
        m.beta = Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![0.0f32, 0.5, 3.0], [3]),
            &device,
        ));
    }
    let open = net.open_blocks();
    assert_eq!(open.len(), 2 * 3 * 2);
    let decided = net.fix_lowest_entropy_blocks(1);
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0].target, target.to_string());
    assert_eq!(decided[0].choice, "mlp-5");
    let p = [1.0f64, 0.5f64.exp(), 3.0f64.exp()];
    let s: f64 = p.iter().sum();
    let expected = normalised_entropy(&p.map(|v| v / s));
    assert!((decided[0].score - expected).abs() < 1e-6);
    assert!(matches!(net.block(target), Block::Fixed(Op::Mlp(_))));
    assert_eq!(net.open_blocks().len(), 11);
}

/// Discretise a super-network with random architecture parameters, export it to JSON, build
/// the JSON's network and load the discretised weights into it: same module layout, same
/// outputs.
#[test]
fn a_discretised_supernet_equals_its_genotype_rebuilt_from_json() {
    let device = Device::flex();
    device.seed(5);
    let m = meta(2);
    let mut net = AutoMtl::supernet(&small_space(), 2, 0.5, &m, &device);
    for at in net.gate_positions() {
        let gate = net.gate_mut(at);
        let n = gate.len();
        gate.logits = Some(Param::from_tensor(Tensor::random(
            [n],
            Distribution::Normal(0.0, 2.0),
            &device,
        )));
    }
    for at in net.block_positions() {
        if let Block::Mixed(b) = net.block_mut(at) {
            let n = b.candidates().len();
            b.beta =
                Param::from_tensor(Tensor::random([n], Distribution::Normal(0.0, 1.0), &device));
        }
    }
    let mut log = net.fix_lowest_entropy_blocks(5);
    log.extend(net.fix_most_decided_gates(3));
    log.extend(net.finalise());
    assert_eq!(log.iter().filter(|d| d.kind == "block").count(), 12);
    assert!(net.is_discrete());
    assert!(net.arch_param_ids().is_empty());
    let genotype = net.genotype().expect("discrete");
    genotype.validate(&m).unwrap();
    for t in &genotype.towers {
        assert!(!t.inputs.is_empty(), "every consumer keeps an input");
    }

    let rebuilt = Genotype::from_json(&genotype.to_json()).unwrap();
    let fresh = AutoMtl::from_genotype(&rebuilt, 2, 0.5, &m, &device);
    let input = sample_input(&device);
    let before = values(net.forward(&input).outputs);
    assert_ne!(
        before,
        values(fresh.forward(&input).outputs),
        "fresh weights differ"
    );
    let loaded = fresh.load_record(net.clone().into_record());
    assert_eq!(loaded.num_params(), net.num_params());
    assert_eq!(values(loaded.forward(&input).outputs), before);
}

#[test]
fn a_supernet_trains_every_candidate_and_reports_its_architecture_parameters() {
    let device = Device::flex().autodiff();
    device.seed(2);
    let mut net = AutoMtl::supernet(&small_space(), 2, 0.5, &meta(2), &device);
    // 3 experts x 2 feature gates + 3 + 2 connection gates + 12 mixed blocks.
    assert_eq!(net.arch_param_ids().len(), 6 + 5 + 12);
    net.set_gate_mode(GateMode::Sample);
    let out = net.forward(&sample_input(&device)).outputs;
    let grads = out.sum().backward();
    let Block::Mixed(b) = net.block(BlockAt {
        layer: 0,
        expert: 0,
        block: 0,
    }) else {
        panic!("mixed")
    };
    assert!(b.beta.val().grad(&grads).is_some());
    let gate = net.gate(GateAt::Connection {
        layer: 1,
        consumer: 0,
    });
    assert!(gate.logits.as_ref().unwrap().val().grad(&grads).is_some());
}

/// Every free gate logit set to a known value, one element fixed, every block's betas set:
/// the value against the formula worked out on the host, and the gradients against
/// `lambda_g p (1 - p) - lambda_s sign(a)` and
/// `-lambda_s (onehot(leader) - q) + lambda_c q (c - q.c)`.
#[test]
fn the_arch_regulariser_matches_its_formula_and_gradient() {
    let device = Device::flex().autodiff();
    device.seed(3);
    let mut net = AutoMtl::supernet(&small_space(), 2, 0.5, &meta(2), &device);
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
                expected += lg / (1.0 + (-a).exp()) - ls * a.abs();
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
    // Candidates identity, mlp-3, mlp-5: widths 0, 3/5, 1.
    let c = [0.0, 0.6, 1.0];
    let lc = 0.9;
    let expected_width: f64 = q.iter().zip(c).map(|(q, c)| q * c).sum();
    expected += (lc * expected_width - ls * q[1].ln()) * beta_ids.len() as f64;

    let w = ArchRegularisation {
        gate_cost: lg,
        sharpen: ls,
        op_cost: lc,
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
        let p = 1.0 / (1.0 + (-a).exp());
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
        // d/d beta_i of sum_j q_j c_j is q_i (c_i - sum_j q_j c_j).
        let want = -ls * (f64::from(u8::from(i == 1)) - q[i]) + lc * q[i] * (c[i] - expected_width);
        assert!((f64::from(*gi) - want).abs() < 1e-5, "{i}: {gi} vs {want}");
    }
    assert!(
        net.arch_regulariser(&ArchRegularisation::default())
            .is_none()
    );
}
