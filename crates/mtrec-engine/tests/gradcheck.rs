//! Finite-difference check of one MMoE forward/backward pass, loss included: the analytic
//! gradient autodiff returns for a parameter entry must match
//! `(L(theta + eps) - L(theta - eps)) / (2 eps)`.

use burn::module::Param;
use burn::prelude::*;
use mtrec_arch::{ArchConfig, EmbeddingConfig, Model, ModelInput, MoeConfig, MultiTaskModel};
use mtrec_data::{FeatureMeta, TaskKind};
use mtrec_engine::task_losses;

fn meta() -> FeatureMeta {
    FeatureMeta {
        sparse_names: vec!["a".into(), "b".into()],
        vocab_sizes: vec![5, 3],
        bags: Vec::new(),
        dense_names: vec!["x".into(), "y".into(), "z".into()],
        task_names: vec!["click".into(), "watch".into()],
        task_kinds: vec![TaskKind::Binary, TaskKind::Regression],
    }
}

fn batch(device: &Device) -> (ModelInput, Tensor<2>) {
    let sparse = [1i64, 2, 4, 0, 0, 1, 3, 2];
    let dense = [
        0.5f32, -1.0, 0.3, 1.2, 0.1, -0.7, -0.4, 0.9, 2.0, 0.0, -1.5, 0.8,
    ];
    let input = ModelInput::from_host(4, &sparse, 2, &dense, 3, device);
    let labels =
        Tensor::<2>::from_floats([[1.0, 0.5], [0.0, -0.3], [1.0, 1.2], [0.0, 0.1]], device);
    (input, labels)
}

fn loss_of(model: &Model, device: &Device) -> Tensor<1> {
    let (input, labels) = batch(device);
    let out = model.forward(&input).outputs;
    task_losses(out, labels, &[TaskKind::Binary, TaskKind::Regression]).sum()
}

/// Reads or replaces one 2-D parameter of the MMoE by name.
fn param<'m>(model: &'m mut Model, which: &str) -> &'m mut Param<Tensor<2>> {
    let Model::Moe(m) = model else {
        panic!("not an MoE")
    };
    match which {
        "expert" => &mut m.experts.first.weight,
        "gate" => &mut m.gates.linear.weight,
        "embedding" => &mut m.embedding.table.as_mut().expect("sparse fields").weight,
        _ => panic!("unknown parameter {which}"),
    }
}

fn perturbed(model: &Model, which: &str, index: [usize; 2], delta: f32) -> Model {
    let mut m = model.clone();
    let p = param(&mut m, which);
    let value = p.val();
    let [r, c] = value.dims();
    let mut onehot = vec![0f32; r * c];
    onehot[index[0] * c + index[1]] = delta;
    let bump = Tensor::<2>::from_data(TensorData::new(onehot, [r, c]), &value.device());
    *p = Param::initialized(p.id, value + bump);
    m
}

#[test]
fn mmoe_gradient_matches_finite_differences() {
    let device = Device::default();
    let ad = device.clone().autodiff();
    device.seed(7);
    let arch = ArchConfig::Mmoe(MoeConfig {
        n_experts: 3,
        expert: vec![6, 4],
        tower: vec![3],
    });
    let emb = EmbeddingConfig {
        dim: 2,
        init_std: 0.5,
    };
    let mut model = mtrec_arch::build(&arch, &emb, &meta(), &ad).unwrap();
    let grads = loss_of(&model, &ad).backward();
    let plain = model.valid();
    let eps = 1e-2f32;
    let mut checked = 0;
    for which in ["expert", "gate", "embedding"] {
        let analytic: Vec<f32> = param(&mut model, which)
            .val()
            .grad(&grads)
            .expect("parameter has a gradient")
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let [r, c] = param(&mut model, which).val().dims();
        for &(i, j) in &[(0, 0), (1, c - 1), (r - 1, c / 2), (r / 2, 1 % c)] {
            let up: f32 = loss_of(&perturbed(&plain, which, [i, j], eps), &device).into_scalar();
            let down: f32 = loss_of(&perturbed(&plain, which, [i, j], -eps), &device).into_scalar();
            let numeric = (up - down) / (2.0 * eps);
            let a = analytic[i * c + j];
            assert!(
                (a - numeric).abs() <= 2e-3 + 2e-2 * numeric.abs(),
                "{which}[{i},{j}]: autodiff {a} vs finite difference {numeric}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}
