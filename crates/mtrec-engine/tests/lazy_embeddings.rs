//! Lazy (row-wise) Adam for embedding tables against burn's dense Adam, through the training
//! step `mtrec train` runs: the two must agree on rows every batch contains, and differ only
//! where the dense rule moves rows a batch misses.

use std::path::Path;

use burn::prelude::*;
use mtrec_arch::MultiTaskModel;
use mtrec_data::{Batch, FeatureMeta, TaskKind};
use mtrec_engine::{ExperimentConfig, Predictor, Stepper, Trainer};

fn config(lazy: bool, weight_decay: f64) -> ExperimentConfig {
    let text = format!(
        "[data]\nkind = \"synthetic\"\n\
         [model]\nkind = \"mmoe\"\nn_experts = 2\nexpert = [4]\ntower = [3]\n\
         [embedding]\ndim = 3\ninit_std = 0.5\n\
         [train]\nlearning_rate = 0.01\nweight_decay = {weight_decay}\nlazy_embeddings = {lazy}\n"
    );
    ExperimentConfig::from_toml_str(&text, Path::new("inline.toml")).unwrap()
}

/// Two fields (vocabularies 3 and 2), one dense value, two binary tasks.
fn meta() -> FeatureMeta {
    FeatureMeta {
        sparse_names: vec!["a".into(), "b".into()],
        vocab_sizes: vec![3, 2],
        bags: Vec::new(),
        dense_names: vec!["x".into()],
        task_names: vec!["click".into(), "buy".into()],
        task_kinds: vec![TaskKind::Binary, TaskKind::Binary],
    }
}

/// Four rows; `a` ids and `b` ids as given, fixed dense values and labels.
fn batch(a: [i64; 4], b: [i64; 4]) -> Batch {
    Batch {
        len: 4,
        sparse: (0..4).flat_map(|r| [a[r], b[r]]).collect(),
        dense: vec![0.3, -1.2, 0.8, 0.1],
        labels: vec![1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0],
        weights: None,
        n_sparse: 2,
        n_dense: 1,
        n_tasks: 2,
    }
}

/// The trained table and the predictions on `probe` after `steps` on `batches`, cycled.
fn train(lazy: bool, weight_decay: f64, batches: &[Batch], steps: usize) -> (Vec<f32>, Vec<f32>) {
    let device = Device::default();
    let ad = device.clone().autodiff();
    let cfg = config(lazy, weight_decay);
    device.seed(7);
    let meta = meta();
    let model = mtrec_arch::build(&cfg.model, &cfg.embedding, &meta, &ad).unwrap();
    let mut stepper =
        Stepper::new(model, &cfg, meta.task_kinds.clone(), &meta.task_names, &ad).unwrap();
    for b in batches.iter().cycle().take(steps) {
        assert!(stepper.step(b).is_finite());
    }
    let Predictor::Whole(model) = Trainer::predictor(&stepper) else {
        panic!("plain training predicts with one model");
    };
    let table = model.embedding().unwrap().table_weights().unwrap();
    let probe = batch([0, 1, 2, 2], [1, 0, 1, 0]);
    let out = model.forward(&mtrec_engine::tensors::input_of(&probe, &device));
    (
        table.into_data().try_to_vec_as().unwrap(),
        out.outputs.into_data().try_to_vec_as().unwrap(),
    )
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Every batch holds every id of both fields (rows 0-2 and 3-4 of the table): no row ever
/// sits out, so lazy and dense Adam take the same steps, weight decay included.
#[test]
fn lazy_adam_equals_dense_adam_when_every_batch_holds_every_row() {
    let batches = [
        batch([0, 1, 2, 1], [0, 1, 1, 0]),
        batch([2, 2, 0, 1], [1, 0, 0, 1]),
    ];
    for wd in [0.0, 0.05] {
        let (dense_table, dense_out) = train(false, wd, &batches, 6);
        let (lazy_table, lazy_out) = train(true, wd, &batches, 6);
        let (_, untrained) = train(false, wd, &batches, 0);
        assert!(
            max_diff(&dense_out, &untrained) > 1e-3,
            "training must move the outputs"
        );
        assert!(
            max_diff(&dense_table, &lazy_table) < 1e-6,
            "weight decay {wd}: tables differ by {}",
            max_diff(&dense_table, &lazy_table)
        );
        assert!(
            max_diff(&dense_out, &lazy_out) < 1e-5,
            "weight decay {wd}: outputs differ by {}",
            max_diff(&dense_out, &lazy_out)
        );
    }
}

/// Id 2 of field `a` (table row 2) is in the first batch only: after it, lazy Adam leaves the
/// row where that step put it, while dense Adam keeps moving it on its momentum.
#[test]
fn a_row_missing_from_the_batch_keeps_still_under_lazy_adam_only() {
    let first = [batch([0, 1, 2, 1], [0, 1, 1, 0])];
    let later = [
        batch([0, 1, 2, 1], [0, 1, 1, 0]),
        batch([0, 1, 1, 0], [0, 1, 1, 0]),
    ];
    let row = |t: &[f32]| t[2 * 3..3 * 3].to_vec();
    let (lazy_one, _) = train(true, 0.0, &first, 1);
    let (lazy_two, _) = train(true, 0.0, &later, 2);
    assert_eq!(row(&lazy_one), row(&lazy_two), "lazy: untouched row moved");
    let (dense_one, _) = train(false, 0.0, &first, 1);
    let (dense_two, _) = train(false, 0.0, &later, 2);
    assert!(
        max_diff(&row(&dense_one), &row(&dense_two)) > 1e-4,
        "dense Adam moves it"
    );
    assert!(
        max_diff(&row(&lazy_one), &row(&dense_one)) < 1e-6,
        "same first step"
    );
}

#[test]
fn lazy_embeddings_refuse_per_task_gradient_weightings() {
    let device = Device::default();
    let ad = device.clone().autodiff();
    let mut cfg = config(true, 0.0);
    cfg.weighting = toml::from_str("kind = \"meta-balance\"").unwrap();
    let meta = meta();
    let model = mtrec_arch::build(&cfg.model, &cfg.embedding, &meta, &ad).unwrap();
    let err = Stepper::new(model, &cfg, meta.task_kinds.clone(), &meta.task_names, &ad)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("train.lazy_embeddings cannot be combined"),
        "{err}"
    );
}
