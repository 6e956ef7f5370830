//! Every bad-input case ends in one clear error naming file, line and field, a non-zero exit
//! code and no panic.

mod common;

use std::path::Path;

use common::{assert_clean_failure, mtrec};

const SCHEMA: &str = r#"
[[sparse]]
name = "city"
[[dense]]
name = "age"
[[tasks]]
name = "click"
kind = "binary"
column = "click"
"#;

/// Writes a schema, a training CSV with `rows` and an experiment config using them.
fn setup(dir: &Path, header: &str, rows: &str) -> String {
    std::fs::write(dir.join("schema.toml"), SCHEMA).unwrap();
    let mut csv = format!("{header}\n");
    // Enough good rows for a split, then the rows under test.
    for i in 0..30 {
        csv.push_str(&format!("c{},{}.5,{}\n", i % 3, i, (i / 2) % 2));
    }
    csv.push_str(rows);
    std::fs::write(dir.join("train.csv"), csv).unwrap();
    let cfg = format!(
        "name = \"t\"\n[data]\nkind = \"files\"\nschema = \"{}\"\ntrain = \"{}\"\n[train]\nepochs = 1\n",
        dir.join("schema.toml").display(),
        dir.join("train.csv").display()
    );
    let path = dir.join("exp.toml");
    std::fs::write(&path, cfg).unwrap();
    path.display().to_string()
}

fn train(cfg: &str, dir: &Path) -> std::process::Output {
    let out = dir.join("run");
    mtrec(&[
        "train",
        "--config",
        cfg,
        "--out",
        &out.display().to_string(),
    ])
}

#[test]
fn malformed_row_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), "city,age,click", "c1,3.0\n");
    // Header is line 1, 30 good rows, so the short row is line 32.
    assert_clean_failure(&train(&cfg, dir.path()), &["train.csv:32"]);
}

#[test]
fn missing_column_names_the_column_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), "town,age,click", "");
    assert_clean_failure(&train(&cfg, dir.path()), &["train.csv", "city"]);
}

#[test]
fn non_numeric_dense_value_names_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), "city,age,click", "c1,abc,1\n");
    assert_clean_failure(
        &train(&cfg, dir.path()),
        &["train.csv:32", "field `age`", "abc"],
    );
}

#[test]
fn nan_label_names_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), "city,age,click", "c1,3.0,NaN\n");
    assert_clean_failure(&train(&cfg, dir.path()), &["train.csv:32", "field `click`"]);
}

#[test]
fn unknown_config_key_names_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), "city,age,click", "");
    let text = std::fs::read_to_string(&cfg).unwrap() + "bacth_size = 4\n";
    std::fs::write(&cfg, text).unwrap();
    assert_clean_failure(&train(&cfg, dir.path()), &["exp.toml", "bacth_size"]);
}

#[test]
fn unknown_model_kind_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), "city,age,click", "");
    let text = std::fs::read_to_string(&cfg).unwrap() + "[model]\nkind = \"mmoee\"\n";
    std::fs::write(&cfg, text).unwrap();
    assert_clean_failure(&train(&cfg, dir.path()), &["exp.toml", "mmoee"]);
}

#[test]
fn missing_checkpoint_and_truncated_weights_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing");
    let o = mtrec(&[
        "eval",
        "--checkpoint",
        &missing.display().to_string(),
        "--data",
        "data/census-income/census-income.test.gz",
    ]);
    assert_clean_failure(&o, &["nothing"]);

    // A good checkpoint, then its weights cut in half.
    let cfg = setup(dir.path(), "city,age,click", "");
    let o = train(&cfg, dir.path());
    assert!(o.status.success(), "{}", common::stderr(&o));
    let weights = dir.path().join("run/model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let o = mtrec(&[
        "eval",
        "--checkpoint",
        &dir.path().join("run").display().to_string(),
        "--data",
        &dir.path().join("train.csv").display().to_string(),
    ]);
    assert_clean_failure(&o, &["model.safetensors"]);
}

/// How often `needle` occurs in `text`.
fn occurrences(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[test]
fn a_missing_file_names_the_os_error_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), "city,age,click", "");
    let missing = dir.path().join("nope.csv");
    let o = mtrec(&[
        "train",
        "--config",
        &cfg,
        "--set",
        &format!("data.train={}", missing.display()),
        "--out",
        &dir.path().join("run").display().to_string(),
    ]);
    assert_clean_failure(&o, &["nope.csv", "(os error 2)"]);
    let err = common::stderr(&o);
    assert_eq!(occurrences(&err, "(os error 2)"), 1, "{err}");

    // A missing search-space file of `mtrec tune`, through another library's error type.
    let space = dir.path().join("nope-space.toml");
    let o = mtrec(&[
        "tune",
        "--config",
        &cfg,
        "--space",
        &space.display().to_string(),
        "--out",
        &dir.path().join("tune").display().to_string(),
    ]);
    assert_clean_failure(&o, &["nope-space.toml", "(os error 2)"]);
    let err = common::stderr(&o);
    assert_eq!(occurrences(&err, "(os error 2)"), 1, "{err}");
}

#[test]
fn a_flag_and_a_set_of_the_same_key_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), "city,age,click", "");
    let out = dir.path().join("run").display().to_string();
    let base = ["train", "--config", cfg.as_str(), "--out", out.as_str()];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        mtrec(&args)
    };
    assert_clean_failure(
        &with(&["--epochs", "3", "--set", "train.epochs=1"]),
        &["--epochs 3", "--set train.epochs=1", "train.epochs"],
    );
    assert_clean_failure(
        &with(&["--seed", "5", "--set", "train.seed = 7"]),
        &["--seed 5", "--set train.seed=7"],
    );
    assert!(!dir.path().join("run").exists(), "it trained");
    let o = mtrec(&[
        "search",
        "--config",
        "configs/synthetic-c05-automtl.toml",
        "--seed",
        "5",
        "--set",
        "train.seed=7",
        "--out",
        &out,
    ]);
    assert_clean_failure(&o, &["--seed 5", "--set train.seed=7"]);
}

#[test]
fn a_set_error_names_the_override_at_fault_only() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), "city,age,click", "");
    let o = mtrec(&[
        "train",
        "--config",
        &cfg,
        "--set",
        "train.epochs=1",
        "--set",
        "train.learning_rat=0.003",
        "--out",
        &dir.path().join("run").display().to_string(),
    ]);
    assert_clean_failure(
        &o,
        &["exp.toml with --set train.learning_rat=0.003: unknown field `learning_rat`"],
    );
    assert!(
        !common::stderr(&o).contains("--set train.epochs"),
        "{}",
        common::stderr(&o)
    );
}
