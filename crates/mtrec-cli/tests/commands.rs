//! The small commands: help texts, model list, data inspection and synthesis.

mod common;

use common::{mtrec, stderr, stdout};

#[test]
fn every_command_has_help_with_an_example() {
    for args in [
        vec!["--help"],
        vec!["demo", "--help"],
        vec!["train", "--help"],
        vec!["eval", "--help"],
        vec!["predict", "--help"],
        vec!["data", "inspect", "--help"],
        vec!["data", "synth", "--help"],
        vec!["models", "--help"],
        vec!["search", "--help"],
        vec!["arch", "show", "--help"],
        vec!["compare", "--help"],
    ] {
        let o = mtrec(&args);
        assert!(o.status.success(), "{args:?}");
        assert!(
            stdout(&o).contains("mtrec "),
            "{args:?} help has no example"
        );
    }
}

#[test]
fn models_lists_every_kind() {
    let o = mtrec(&["models"]);
    let s = stdout(&o);
    for kind in [
        "single-task",
        "shared-bottom",
        "omoe",
        "mmoe",
        "cgc",
        "ple",
        "adatt",
        "cross-stitch",
        "l2-constrained",
        "tensor-factorization",
        "esmm",
        "automtl",
        "searched",
    ] {
        assert!(s.contains(kind), "{s}");
    }
    assert!(s.contains("n_experts"), "{s}");
}

#[test]
fn inspect_guesses_a_schema_that_loads() {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.toml");
    let o = mtrec(&[
        "data",
        "inspect",
        "data/samples/ali-ccp/ali_ccp_train_sample.csv",
        "--json",
        "--schema-out",
        &schema.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["inspection"]["n_rows"], 100);
    let text = std::fs::read_to_string(&schema).unwrap();
    assert!(
        mtrec_data::Schema::from_toml_str(&text, "schema.toml").is_ok(),
        "{text}"
    );
}

#[test]
fn synth_writes_csv_and_parquet_that_train() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["s.csv", "s.parquet"] {
        let path = dir.path().join(name);
        let o = mtrec(&[
            "data",
            "synth",
            "--correlation",
            "0.5",
            "--rows",
            "500",
            "--out",
            &path.display().to_string(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let ins = mtrec(&["data", "inspect", &path.display().to_string(), "--json"]);
        let v: serde_json::Value = serde_json::from_str(stdout(&ins).trim()).unwrap();
        assert_eq!(v["inspection"]["n_rows"], 500, "{name}");
    }
    let o = mtrec(&["data", "synth", "--correlation", "2", "--out", "x.csv"]);
    assert!(!o.status.success());
}

#[test]
fn esmm_runs_on_both_bundled_click_conversion_samples() {
    let dir = tempfile::tempdir().unwrap();
    for (config, conversion) in [
        ("configs/ali-ccp-esmm.toml", "purchase"),
        ("configs/aliexpress-esmm.toml", "conversion"),
    ] {
        let out = dir.path().join(conversion);
        let o = mtrec(&[
            "train",
            "--config",
            config,
            "--epochs",
            "2",
            "--json",
            "--out",
            &out.display().to_string(),
        ]);
        assert!(o.status.success(), "{config}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        for task in ["click", conversion, "cvr"] {
            assert!(
                v["tasks"][task]["n"].as_u64().unwrap() > 0,
                "{config}: {task}"
            );
        }
        assert!(v["tasks"]["click"]["logloss"].as_f64().unwrap().is_finite());
    }
}

/// Regression: printing into a closed pipe (`mtrec models | head -1`) panicked.
#[test]
fn closed_stdout_ends_quietly() {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtrec"))
        .arg("models")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}
