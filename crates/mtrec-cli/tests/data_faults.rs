//! Users' data-file bug reports, replayed through the binary: duplicate column
//! names and line numbers in CRLF files. Each test fails on the code before the fix.

mod common;

use std::path::Path;

use common::{assert_clean_failure, mtrec};

const SCHEMA: &str = r#"
[[sparse]]
name = "user"
[[dense]]
name = "price"
[[tasks]]
name = "click"
kind = "binary"
"#;

/// Writes the schema, `train.csv` holding `csv`, and an experiment config; returns the config path.
fn setup(dir: &Path, csv: &str) -> String {
    std::fs::write(dir.join("schema.toml"), SCHEMA).expect("write schema");
    std::fs::write(dir.join("train.csv"), csv).expect("write csv");
    let cfg = format!(
        "name = \"t\"\n[data]\nkind = \"files\"\nschema = \"{}\"\ntrain = \"{}\"\n[train]\nepochs = 1\n",
        dir.join("schema.toml").display(),
        dir.join("train.csv").display()
    );
    let path = dir.join("exp.toml");
    std::fs::write(&path, cfg).expect("write config");
    path.display().to_string()
}

fn train(dir: &Path, csv: &str) -> std::process::Output {
    let cfg = setup(dir, csv);
    let out = dir.join("run").display().to_string();
    mtrec(&["train", "--config", &cfg, "--out", &out])
}

#[test]
fn inspect_refuses_a_duplicate_column_and_writes_no_schema() {
    // Before: exit 0 and a schema listing `price` twice, which `train` then refused.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data.csv");
    std::fs::write(
        &data,
        "user,price,click,buy,price\nu1,1.5,0,1,9\nu2,2.5,1,0,8\n",
    )
    .expect("write");
    let schema = dir.path().join("guessed.toml");
    let o = mtrec(&[
        "data",
        "inspect",
        &data.display().to_string(),
        "--schema-out",
        &schema.display().to_string(),
    ]);
    assert_clean_failure(
        &o,
        &["column \"price\" appears twice in the header (columns 2 and 5)"],
    );
    assert!(!schema.exists(), "a schema was written");
}

#[test]
fn train_refuses_a_stale_label_copy_before_the_real_one() {
    // Before: trained on column 2 (the stale `click`) and exited 0.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut csv = String::from("user,click,price,click\n");
    for i in 0..20 {
        csv.push_str(&format!("u{},0,{i}.5,{}\n", i % 3, i % 2));
    }
    let o = train(dir.path(), &csv);
    assert_clean_failure(
        &o,
        &["train.csv: column \"click\" appears twice in the header (columns 2 and 4)"],
    );
}

#[test]
fn train_reports_the_editor_line_of_a_bad_value_in_a_crlf_file() {
    // Before: "train.csv:3" for the value on line 4.
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = "user,price,click\r\nu1,1.5,0\r\nu2,2.5,1\r\nu3,abc,0\r\nu4,3.5,1\r\n";
    let o = train(dir.path(), csv);
    assert_clean_failure(
        &o,
        &["train.csv:4: field `price`: cannot parse \"abc\" as a number"],
    );
}
