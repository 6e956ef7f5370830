//! Helpers shared by the engine's integration tests.

#![allow(dead_code)]

use std::path::Path;

use mtrec_data::Dataset;
use mtrec_engine::{
    Checkpoint, ExperimentConfig, Predictor, default_device, load_checkpoint, predict,
    save_checkpoint,
};

/// A small MMoE on 3000 Census group-1 rows with `scheme` as its `[scheme]` section, trained
/// for `epochs` without early stopping: a few seconds per run in the test profile.
pub fn census_scheme_config(scheme: &str, epochs: usize) -> ExperimentConfig {
    let text = format!(
        r#"
        name = "scheme-test"
        [data]
        kind = "census"
        group = 1
        test_file = "data/census-income/census-income.test.gz"
        seed = 3
        subsample = 3000
        [embedding]
        dim = 4
        [model]
        kind = "mmoe"
        n_experts = 3
        expert = [16]
        tower = [8]
        [scheme]
        {scheme}
        [train]
        learning_rate = 5e-3
        batch_size = 256
        epochs = {epochs}
        patience = 0
        seed = 11
        "#
    );
    ExperimentConfig::from_toml_str(&text, Path::new("inline.toml")).unwrap()
}

/// Saves `model` as a checkpoint in `dir/ck`, loads it back, and asserts the loaded model
/// predicts the test split exactly as `model` does. Returns the checkpoint's folder contents
/// as loaded, for further checks.
pub fn assert_checkpoint_round_trip(
    dir: &Path,
    cfg: &ExperimentConfig,
    data: &Dataset,
    model: &Predictor,
) -> Checkpoint {
    let path = dir.join("ck");
    save_checkpoint(
        &path,
        cfg,
        &data.preprocessor,
        model,
        &serde_json::json!({}),
    )
    .unwrap();
    let device = default_device();
    let loaded = load_checkpoint(&path, &device).unwrap();
    let kinds = &data.meta().task_kinds;
    let a = predict(model, &data.test, kinds, 512, &device);
    let b = predict(&loaded.model, &data.test, kinds, 512, &device);
    assert_eq!(a.len(), kinds.len());
    assert_eq!(a, b, "the reloaded checkpoint predicts differently");
    loaded
}
