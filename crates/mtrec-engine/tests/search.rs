//! AutoMTL end to end on small data: the search fixes every choice, logs every step, and the
//! found architecture retrains and reloads like any model.

use std::path::Path;

use mtrec_arch::automtl::{Genotype, OpKind};
use mtrec_arch::{ArchConfig, Model, MultiTaskModel};
use mtrec_engine::SearchConfig;
use mtrec_engine::search::GateSchedule;
use mtrec_engine::{
    ExperimentConfig, NullObserver, default_device, load_checkpoint, predict, save_checkpoint,
    search, train,
};

fn config(data: &str) -> ExperimentConfig {
    let text = format!(
        r#"
        name = "search-test"
        {data}
        [embedding]
        dim = 4
        [model]
        kind = "automtl"
        n_layers = 2
        n_experts = 3
        n_blocks = 2
        block_width = 8
        candidates = ["identity", "mlp-8", "mlp-16"]
        tower = [8]
        [search]
        warmup_epochs = 1
        joint_epochs = 2
        blocks_per_epoch = 5
        batch_size = 128
        max_batches_per_epoch = 6
        [train]
        batch_size = 128
        epochs = 2
        max_batches_per_epoch = 6
        seed = 4
        "#
    );
    ExperimentConfig::from_toml_str(&text, Path::new("inline.toml")).unwrap()
}

const SYNTHETIC: &str = r#"
    [data]
    kind = "synthetic"
    correlation = 0.5
    n_train = 1000
    n_valid = 300
    n_test = 300
    seed = 2
"#;

#[test]
fn a_short_search_fixes_every_choice_and_logs_each_step() {
    let cfg = config(SYNTHETIC);
    let data = mtrec_data::load(&cfg.data, Path::new(".")).unwrap();
    let device = default_device();
    let out = search(&cfg, &data, &device, &mut NullObserver).unwrap();

    out.genotype.validate(&data.meta()).unwrap();
    assert_eq!(out.log.epochs.len(), 3);
    assert_eq!(out.log.epochs[0].phase, "warm-up");
    assert!(
        out.log.epochs[0].decisions.is_empty(),
        "no decision in warm-up"
    );
    // 2 layers x 3 experts x 2 blocks: 5 fixed after epoch 2, the other 7 at the end.
    let blocks = |e: usize| {
        out.log.epochs[e]
            .decisions
            .iter()
            .filter(|d| d.kind == "block")
            .map(|d| d.score)
            .collect::<Vec<_>>()
    };
    assert_eq!(blocks(1).len(), 5);
    assert_eq!(blocks(2).len(), 7);
    assert!(
        blocks(1).windows(2).all(|w| w[0] <= w[1]),
        "lowest entropy first"
    );
    // The five fixed were the five lowest-entropy blocks of the epoch's snapshot.
    let mut entropies: Vec<f64> = out.log.epochs[1].blocks.iter().map(|b| b.entropy).collect();
    entropies.sort_by(f64::total_cmp);
    assert_eq!(blocks(1), entropies[..5].to_vec());
    // Every gate element decided at the end: 3 + 2 connection masks over 3 experts (the data
    // has no sparse field, so no feature gate).
    let gates = out.log.epochs[2]
        .decisions
        .iter()
        .filter(|d| d.kind == "gate")
        .count();
    assert_eq!(gates, (3 + 2) * 3);
    // Architecture parameters moved during the joint phase.
    let first = &out.log.epochs[1].blocks[0].probabilities;
    assert!(
        first.iter().any(|p| (p - 1.0 / 3.0).abs() > 1e-4),
        "{first:?}"
    );

    let test = &out.finetune.test;
    assert_eq!(test.tasks.len(), 2);
    assert!(
        test.tasks
            .iter()
            .all(|t| t.metrics.mse.unwrap().is_finite())
    );
    let ArchConfig::Searched(g) = &out.retrain_config.model else {
        panic!("retrain config holds the genotype")
    };
    assert_eq!(g, &out.genotype);
}

#[test]
fn the_found_architecture_retrains_from_json_and_reloads_from_its_checkpoint() {
    let mut cfg = config(SYNTHETIC);
    cfg.search.gates = GateSchedule::Progressive;
    cfg.search.gates_per_epoch = 4;
    cfg.search.sample_gates = false;
    let data = mtrec_data::load(&cfg.data, Path::new(".")).unwrap();
    let device = default_device();
    let out = search(&cfg, &data, &device, &mut NullObserver).unwrap();
    let progressive = out.log.epochs[1]
        .decisions
        .iter()
        .filter(|d| d.kind == "gate")
        .count();
    assert_eq!(progressive, 4);

    // Retrain from the JSON file, as `mtrec train --arch` does.
    let genotype = Genotype::from_json(&out.genotype.to_json()).unwrap();
    let mut retrain = out.retrain_config.clone();
    retrain.model = ArchConfig::Searched(genotype);
    let trained = train(&retrain, &data, &device, &mut NullObserver).unwrap();
    assert!(matches!(
        trained.model,
        mtrec_engine::Predictor::Whole(Model::AutoMtl(_))
    ));

    // The checkpoint (config.toml holds the genotype) rebuilds the same network.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck");
    let metrics = serde_json::json!({});
    save_checkpoint(
        &path,
        &retrain,
        &data.preprocessor,
        &trained.model,
        &metrics,
    )
    .unwrap();
    let loaded = load_checkpoint(&path, &device).unwrap();
    assert_eq!(loaded.config.model, retrain.model);
    let kinds = &data.meta().task_kinds;
    let a = predict(&trained.model, &data.test, kinds, 256, &device);
    let b = predict(&loaded.model, &data.test, kinds, 256, &device);
    assert_eq!(a, b);
    assert_eq!(loaded.model.n_tasks(), 2);
}

/// Binary tasks with sparse fields: feature selection takes part and AUCs come out.
#[test]
fn a_search_on_census_selects_features() {
    let mut cfg = config(
        r#"
        [data]
        kind = "census"
        group = 1
        test_file = "data/census-income/census-income.test.gz"
        seed = 1
        subsample = 3000
        "#,
    );
    cfg.search.warmup_epochs = 0;
    cfg.search.joint_epochs = 1;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = mtrec_data::load(&cfg.data, &root).unwrap();
    let n_fields = data.meta().sparse_names.len();
    assert!(n_fields > 0);
    let out = search(&cfg, &data, &default_device(), &mut NullObserver).unwrap();
    let gates = out.log.epochs[0]
        .decisions
        .iter()
        .filter(|d| d.kind == "gate")
        .count();
    assert_eq!(gates, 3 * 2 * n_fields + (3 + 2) * 3);
    let first = &out.genotype.layers[0].experts;
    assert!(first.iter().all(|e| e.features.is_some()));
    for e in &out.genotype.layers[0].experts {
        assert!(
            e.blocks
                .iter()
                .all(|b| [OpKind::Identity, OpKind::Mlp(8), OpKind::Mlp(16)].contains(b))
        );
    }
    for t in &out.finetune.test.tasks {
        let auc = t.metrics.auc.expect("binary task");
        assert!((0.0..=1.0).contains(&auc));
    }
}

/// Small planted data (issue 11): the `decide` preset ends with every choice decided (median
/// block entropy at fixing <= 0.9, median gate |p - 0.5| >= 0.2), where the authors' `paper`
/// preset, on the same data and steps, fixes near-uniform choices.
#[test]
fn a_short_search_on_planted_data_ends_decided_and_the_paper_preset_does_not() {
    use mtrec_engine::search::{SearchPreset, decidedness};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("planted.csv");
    let planted = mtrec_data::PlantedConfig {
        seed: 5,
        ..mtrec_data::PlantedConfig::default()
    };
    mtrec_data::planted::write(&planted, 6000, &file).unwrap();
    let data_section = format!(
        "[data]\nkind = \"files\"\nschema = \"{}\"\ntrain = \"{}\"\n",
        mtrec_data::planted::schema_path(&file).display(),
        file.display()
    );
    let run = |preset: SearchPreset| {
        let mut cfg = config(&data_section);
        let keep = cfg.search.clone();
        cfg.search = SearchConfig {
            warmup_epochs: keep.warmup_epochs,
            joint_epochs: keep.joint_epochs,
            blocks_per_epoch: keep.blocks_per_epoch,
            batch_size: keep.batch_size,
            max_batches_per_epoch: keep.max_batches_per_epoch,
            ..preset.defaults()
        };
        let data = mtrec_data::load(&cfg.data, Path::new(".")).unwrap();
        search(&cfg, &data, &default_device(), &mut NullObserver).unwrap()
    };
    let decided = run(SearchPreset::Decide);
    let d = &decided.log.decidedness;
    assert!(d.meets_targets(), "{d:?}");
    assert_eq!(d.blocks_fixed, 2 * 3 * 2);
    // The summary is the decisions' own figures.
    let all: Vec<_> = decided
        .log
        .epochs
        .iter()
        .flat_map(|e| e.decisions.clone())
        .collect();
    assert_eq!(&decidedness(&all), d);
    let joint = &decided.log.epochs[1];
    assert!(
        joint.arch_learning_rate > 1e-3,
        "reach rule: {}",
        joint.arch_learning_rate
    );
    assert!(joint.gate_cost > 0.0 && joint.sharpen > 0.0);

    let paper = run(SearchPreset::Paper);
    assert!(
        !paper.log.decidedness.meets_targets(),
        "{:?}",
        paper.log.decidedness
    );
    assert_eq!(paper.log.epochs[1].arch_learning_rate, 1e-3);
}

/// Bilevel search (`arch_holdout`): the architecture steps only on the held-out rows, exactly
/// once per held-out batch per joint epoch, and those steps set the reach rule and the ramp.
#[test]
fn a_bilevel_search_steps_the_architecture_once_per_held_out_batch() {
    let mut cfg = config(SYNTHETIC);
    cfg.search.arch_holdout = 0.2;
    let data = mtrec_data::load(&cfg.data, Path::new(".")).unwrap();
    assert_eq!(data.train.n_rows, 1000);
    let out = search(&cfg, &data, &default_device(), &mut NullObserver).unwrap();
    // 200 held-out rows in batches of 128: 2 architecture steps per joint epoch, 2 epochs.
    assert_eq!(out.log.joint_steps, 4);
    let s = &cfg.search;
    let (first, last) = (&out.log.epochs[1], &out.log.epochs[2]);
    assert!((first.arch_learning_rate - s.arch_reach / 4.0).abs() < 1e-12);
    // The sharpening ramp is done / total architecture steps: half after the first joint
    // epoch, complete after the second, so exactly 2 + 2 architecture steps ran.
    assert!(
        (first.sharpen - s.sharpen / 2.0).abs() < 1e-9,
        "{}",
        first.sharpen
    );
    assert!((last.sharpen - s.sharpen).abs() < 1e-9, "{}", last.sharpen);
    let moved = &first.blocks[0].probabilities;
    assert!(
        moved.iter().any(|p| (p - 1.0 / 3.0).abs() > 1e-4),
        "{moved:?}"
    );
    out.genotype.validate(&data.meta()).unwrap();

    cfg.search.arch_holdout = 0.7;
    let err = search(&cfg, &data, &default_device(), &mut NullObserver).unwrap_err();
    assert!(
        err.to_string()
            .contains("search.arch_holdout must be in [0, 0.5], got 0.7"),
        "{err}"
    );
}
