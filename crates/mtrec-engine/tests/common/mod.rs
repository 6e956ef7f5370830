//! Helpers shared by the engine's integration tests.

#![allow(dead_code)]

use std::path::Path;

use mtrec_data::Dataset;
use mtrec_engine::{
    Checkpoint, ExperimentConfig, Predictor, default_device, load_checkpoint, predict,
    save_checkpoint,
};

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
