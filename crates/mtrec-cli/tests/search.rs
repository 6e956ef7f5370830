//! `mtrec search` end to end on a small synthetic config: what it writes, and how the found
//! architecture goes on (arch show, train --arch, eval, compare).

mod common;

use std::path::Path;

use common::{assert_clean_failure, mtrec, stdout};

const CONFIG: &str = r#"
name = "cli-search"
[data]
kind = "synthetic"
correlation = 0.5
n_train = 800
n_valid = 200
n_test = 200
seed = 3
[model]
kind = "automtl"
n_layers = 2
n_experts = 2
n_blocks = 2
block_width = 8
candidates = ["identity", "mlp-8", "mlp-16"]
tower = [8]
[search]
warmup_epochs = 1
joint_epochs = 2
blocks_per_epoch = 4
batch_size = 100
[train]
batch_size = 100
epochs = 2
monitor = "loss"
"#;

fn write_config(dir: &Path) -> String {
    let path = dir.join("search.toml");
    std::fs::write(&path, CONFIG).unwrap();
    path.display().to_string()
}

#[test]
fn search_writes_the_architecture_log_plots_and_a_retrainable_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let out = dir.path().join("run");
    let o = mtrec(&[
        "search",
        "--config",
        &config,
        "--out",
        &out.display().to_string(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["model"], "automtl");
    assert!(
        report["tasks"]["task1"]["mse"]
            .as_f64()
            .unwrap()
            .is_finite()
    );
    assert!(report["search_seconds"].as_f64().unwrap() > 0.0);
    for file in [
        "arch.json",
        "search-log.json",
        "search.svg",
        "arch.svg",
        "model.safetensors",
        "config.toml",
    ] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("search-log.json")).unwrap())
            .unwrap();
    let epochs = log["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 3);
    assert_eq!(epochs[1]["decisions"].as_array().unwrap().len(), 4);
    let config_toml = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config_toml.contains("kind = \"searched\""), "{config_toml}");

    let arch = out.join("arch.json").display().to_string();
    let o = mtrec(&["arch", "show", &arch]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("layer 1"), "{}", stdout(&o));

    // Retrain from the JSON, then evaluate and compare both checkpoints.
    let retrained = dir.path().join("retrained").display().to_string();
    let o = mtrec(&[
        "train", "--config", &config, "--arch", &arch, "--out", &retrained, "--json",
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let o = mtrec(&["compare", &out.display().to_string(), &retrained, "--json"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let groups: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    // The retraining is its own experiment (`<name>-scratch`), not a second search run.
    let names: Vec<&str> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().any(|n| n.ends_with("-scratch")), "{names:?}");
    assert!(groups.as_array().unwrap().iter().all(|g| g["runs"] == 1));

    // Decidedness is in the report and the search log.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert!(
        report["decidedness"]["blocks_fixed"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert!(
        log["decidedness"]["median_gate_margin"].is_number(),
        "{}",
        log["decidedness"]
    );

    // Two searches' architectures score: agreement beside its chance level.
    let o = mtrec(&["arch", "score", &arch, &arch, "--json"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let score: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(score["agreement"]["features"], 1.0, "{score}");
    assert_eq!(score["agreement"]["connections"], 1.0, "{score}");
}

#[test]
fn a_search_space_is_not_trained_directly_and_a_zoo_config_is_not_searched() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let o = mtrec(&["train", "--config", &config]);
    assert_clean_failure(&o, &["search space", "mtrec search"]);
    let o = mtrec(&["search", "--config", "configs/synthetic-mmoe.toml"]);
    assert_clean_failure(&o, &["kind = \"automtl\"", "mmoe"]);
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, CONFIG.replace("blocks_per_epoch", "blocks_per_epok")).unwrap();
    let o = mtrec(&["search", "--config", &bad.display().to_string()]);
    assert_clean_failure(&o, &["blocks_per_epok"]);
    let arch = dir.path().join("arch.json");
    std::fs::write(&arch, r#"{"block_width": 8}"#).unwrap();
    let o = mtrec(&[
        "train",
        "--config",
        &config,
        "--arch",
        &arch.display().to_string(),
    ]);
    assert_clean_failure(&o, &["arch.json", "not an architecture file"]);
}
