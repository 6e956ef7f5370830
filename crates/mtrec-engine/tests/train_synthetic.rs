//! End-to-end training on the MMoE paper's synthetic data.

use std::path::{Path, PathBuf};

use mtrec_data::Dataset;

use mtrec_arch::{ArchConfig, MoeConfig};
use mtrec_engine::{
    ExperimentConfig, Monitor, NullObserver, TrainConfig, TrainOutcome, default_device,
    load_checkpoint, predict, save_checkpoint, train,
};

fn config(epochs: usize) -> ExperimentConfig {
    let text = r#"
        name = "synthetic-test"
        [data]
        kind = "synthetic"
        correlation = 0.9
        n_train = 20000
        n_valid = 1000
        n_test = 2000
        seed = 3
        [model]
        kind = "mmoe"
    "#;
    let mut cfg = ExperimentConfig::from_toml_str(text, Path::new("inline.toml")).unwrap();
    cfg.model = ArchConfig::Mmoe(MoeConfig::default());
    cfg.train = TrainConfig {
        learning_rate: 1e-2,
        batch_size: 256,
        epochs,
        patience: 0,
        monitor: Monitor::Loss,
        seed: 5,
        ..TrainConfig::default()
    };
    cfg
}

fn variance(v: &[f32]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n
}

#[test]
fn mmoe_beats_predicting_the_mean_on_held_out_data() {
    let cfg = config(15);
    let data = mtrec_data::load(&cfg.data, Path::new(".")).unwrap();
    let device = default_device();
    let outcome = train(&cfg, &data, &device, &mut NullObserver).unwrap();
    for (t, task) in outcome.test.tasks.iter().enumerate() {
        // Predicting the test mean scores the label variance. About half of that variance is
        // the high-frequency terms sin(i w.x + i^2), i >= 3, which 16-unit experts cannot
        // follow, so ~0.55 of the variance is what MMoE reaches; demand below 0.7.
        let baseline = variance(&data.test.labels_of_task(t));
        let mse = task.metrics.mse.unwrap();
        assert!(
            mse < 0.7 * baseline,
            "task {}: test MSE {mse} vs mean-prediction {baseline}",
            task.name
        );
    }
    let first = outcome.history.first().unwrap().valid.loss;
    let last = outcome.history.last().unwrap().valid.loss;
    assert!(
        last < first,
        "validation loss did not fall: {first} -> {last}"
    );
}

#[test]
fn same_seed_same_result() {
    let cfg = config(2);
    let data = mtrec_data::load(&cfg.data, Path::new(".")).unwrap();
    let device = default_device();
    let a = train(&cfg, &data, &device, &mut NullObserver).unwrap();
    let b = train(&cfg, &data, &device, &mut NullObserver).unwrap();
    assert_eq!(a.test, b.test);
    let mut other = cfg.clone();
    other.train.seed = 6;
    let c = train(&other, &data, &device, &mut NullObserver).unwrap();
    assert_ne!(a.test, c.test);
}

/// Trains one epoch and saves a checkpoint into `dir/ck`.
fn saved_checkpoint(dir: &Path) -> (ExperimentConfig, Dataset, TrainOutcome, PathBuf) {
    let cfg = config(1);
    let data = mtrec_data::load(&cfg.data, Path::new(".")).unwrap();
    let outcome = train(&cfg, &data, &default_device(), &mut NullObserver).unwrap();
    let path = dir.join("ck");
    let save = || {
        save_checkpoint(
            &path,
            &cfg,
            &data.preprocessor,
            &outcome.model,
            &serde_json::json!({}),
        )
        .unwrap()
    };
    save();
    // Saving again over an existing checkpoint replaces it and leaves no temporary folder.
    save();
    (cfg, data, outcome, path)
}

#[test]
fn checkpoint_round_trip_gives_identical_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, data, outcome, path) = saved_checkpoint(dir.path());
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1);
    let device = default_device();
    let ck = load_checkpoint(&path, &device).unwrap();
    let kinds = &data.meta().task_kinds;
    let before = predict(&outcome.model, &data.test, kinds, 512, &device);
    let after = predict(&ck.model, &data.test, kinds, 512, &device);
    assert_eq!(before, after);
    assert_eq!(ck.config, cfg);
}

#[test]
fn truncated_weights_are_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, _, path) = saved_checkpoint(dir.path());
    let weights = path.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_checkpoint(&path, &default_device())
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn unknown_config_key_names_the_key() {
    let text = "name = \"x\"\n[data]\nkind = \"synthetic\"\n[train]\nlerning_rate = 0.1\n";
    let err = ExperimentConfig::from_toml_str(text, Path::new("bad.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.toml") && err.contains("lerning_rate"),
        "{err}"
    );
}
