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
        "uncertainty",
        "meta-balance",
        "cross-distil",
        "lt4rec",
        "csm",
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

/// Every weighting and scheme trains from `mtrec train`, logs its per-epoch figures as JSON and
/// a plot beside the checkpoint, and the checkpoint evaluates (per-task models included).
#[test]
fn weightings_and_schemes_train_log_and_evaluate() {
    let dir = tempfile::tempdir().unwrap();
    for (name, section, stat) in [
        (
            "uncertainty",
            "[weighting]\nkind = \"uncertainty\"",
            "log_variance/income",
        ),
        (
            "metabalance",
            "[weighting]\nkind = \"meta-balance\"",
            "grad_norm/marital",
        ),
        (
            "cross-distil",
            "[scheme]\nkind = \"cross-distil\"\nwarmup_epochs = 0",
            "rank_loss/income>marital",
        ),
        (
            "lt4rec",
            "[scheme]\nkind = \"lt4rec\"\nrounds = 2",
            "density/income",
        ),
        (
            "csm",
            "[scheme]\nkind = \"csm\"\nprune_epochs = 1",
            "owned/marital",
        ),
    ] {
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "name = \"{name}\"\n[data]\nkind = \"census\"\ngroup = 1\ntest_file = \"data/census-income/census-income.test.gz\"\nsubsample = 2000\n\
                 [model]\nkind = \"mmoe\"\nn_experts = 2\nexpert = [8]\ntower = [4]\n\
                 [train]\nepochs = 1\nbatch_size = 256\n{section}\n"
            ),
        )
        .unwrap();
        let out = dir.path().join(name);
        let o = mtrec(&[
            "train",
            "--config",
            &config.display().to_string(),
            "--out",
            &out.display().to_string(),
            "--json",
        ]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(v["tasks"].as_object().unwrap().len(), 2, "{name}: {v}");
        let log: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("scheme-log.json")).unwrap())
                .unwrap();
        let value = log["epochs"][0]["stats"][stat].as_f64();
        assert!(
            value.is_some_and(f64::is_finite),
            "{name}: no {stat} in {log}"
        );
        let svg = std::fs::read_to_string(out.join("scheme-log.svg")).unwrap();
        assert!(svg.contains("<svg"), "{name}");

        let o = mtrec(&[
            "eval",
            "--checkpoint",
            &out.display().to_string(),
            "--data",
            "data/census-income/census-income.test.gz",
            "--json",
        ]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let e: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert!(
            e["tasks"]["income"]["auc"].as_f64().unwrap() > 0.5,
            "{name}: {e}"
        );
    }
}
