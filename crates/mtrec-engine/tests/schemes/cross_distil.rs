//! CrossDistil end to end on a Census subsample: the scheme trains through `train`, logs its
//! per-epoch figures, its teachers learn to rank, and only the data's tasks leave the model
//! (reports, checkpoints).

use std::path::Path;

use crate::common;

use mtrec_arch::MultiTaskModel;
use mtrec_engine::{ExperimentConfig, NullObserver, default_device, train};

const TEACHERS: [&str; 2] = ["income>marital", "marital>income"];

fn config(scheme: &str) -> ExperimentConfig {
    common::census_scheme_config(&format!("kind = \"cross-distil\"\n{scheme}"), 4)
}

#[test]
fn cross_distil_trains_logs_its_figures_and_reloads() {
    let cfg = config(
        "warmup_epochs = 1\ndistill_weight = 0.5\nbalanced_pairs = false\ncalibration_rows = 2000",
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = mtrec_data::load(&cfg.data, &root).unwrap();
    let device = default_device();
    let outcome = train(&cfg, &data, &device, &mut NullObserver).unwrap();

    assert_eq!(outcome.history.len(), 4);
    for (e, record) in outcome.history.iter().enumerate() {
        let stats = &record.stats;
        for teacher in TEACHERS {
            for quantity in ["rank_loss", "platt_a", "platt_b", "teacher_auc"] {
                let v = stats
                    .get(&format!("{quantity}/{teacher}"))
                    .unwrap_or_else(|| panic!("epoch {}: no {quantity}/{teacher}", e + 1));
                assert!(v.is_finite(), "{quantity}/{teacher} = {v}");
            }
            assert!(stats[&format!("platt_a/{teacher}")] >= 0.0);
        }
        for task in ["income", "marital"] {
            // Warm-up for epoch 1, distillation from epoch 2 on.
            let on = if e == 0 { 0.0 } else { 1.0 };
            assert_eq!(stats[&format!("distilled/{task}")], on, "epoch {}", e + 1);
            let corrected = stats[&format!("corrected/{task}")];
            assert!((0.0..=1.0).contains(&corrected), "{corrected}");
            if e == 0 {
                assert_eq!(corrected, 0.0);
            }
        }
    }
    let last = &outcome.history.last().unwrap().stats;
    let first = &outcome.history[0].stats;
    for teacher in TEACHERS {
        let key = format!("rank_loss/{teacher}");
        assert!(
            last[&key] < first[&key],
            "{key}: {} -> {}",
            first[&key],
            last[&key]
        );
        let auc = last[&format!("teacher_auc/{teacher}")];
        assert!((0.0..=1.0).contains(&auc), "teacher_auc/{teacher} = {auc}");
    }
    // `marital>income` ranks by marital first: its score separates marital well. (Not so
    // `income>marital` this early: marital's positive is "never married", which goes with low
    // income, and its many `-+ > --` pairs teach it to score never-married rows up.)
    let auc = last["teacher_auc/marital>income"];
    assert!(auc > 0.8, "teacher_auc/marital>income = {auc}");

    // Only the data's tasks are evaluated.
    let names: Vec<&str> = outcome.test.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["income", "marital"]);
    assert_eq!(outcome.model.n_tasks(), 2);
    for t in &outcome.test.tasks {
        assert!(t.metrics.auc.unwrap() > 0.7, "{}: {:?}", t.name, t.metrics);
    }

    // A checkpoint rebuilds the model with its teacher towers and predicts the same.
    let dir = tempfile::tempdir().unwrap();
    let loaded = common::assert_checkpoint_round_trip(dir.path(), &cfg, &data, &outcome.model);
    assert_eq!(loaded.config.scheme, cfg.scheme);
}

#[test]
fn cross_distil_needs_two_binary_tasks_and_valid_settings() {
    let bad = r#"
        [data]
        kind = "synthetic"
        n_train = 200
        n_valid = 50
        n_test = 50
        [model]
        kind = "shared-bottom"
        bottom = [8]
        tower = [4]
        [scheme]
        kind = "cross-distil"
        "#;
    // Synthetic data has regression tasks only: no pair of binary tasks to distil across.
    let cfg = ExperimentConfig::from_toml_str(bad, Path::new("inline.toml")).unwrap();
    let data = mtrec_data::load(&cfg.data, Path::new(".")).unwrap();
    let err = train(&cfg, &data, &default_device(), &mut NullObserver).unwrap_err();
    assert!(err.to_string().contains("two binary tasks"), "{err}");

    let out_of_range = bad.replace(
        "kind = \"cross-distil\"",
        "kind = \"cross-distil\"\ndistill_weight = 2.0",
    );
    let cfg = ExperimentConfig::from_toml_str(&out_of_range, Path::new("inline.toml")).unwrap();
    assert!(cfg.validate(Path::new("inline.toml")).is_err());
}
