//! What a model or scheme assumes about the tasks is checked before training (issue 12, fault 2):
//! ESMM's two binary tasks, click first, no conversion without a click.

mod common;

use std::path::Path;

use common::{assert_clean_failure, mtrec, stderr};

/// Rows `c{i % 3},{i}.5,click,conversion` for `i` in `range`: a click on every third row, a
/// conversion on every sixth (so only ever on a click).
fn clean_rows(range: std::ops::Range<usize>) -> String {
    range
        .map(|i| {
            let click = i % 3 == 0;
            let conversion = i % 6 == 0;
            format!(
                "c{},{i}.5,{},{}\n",
                i % 3,
                u8::from(click),
                u8::from(conversion)
            )
        })
        .collect()
}

/// The schema (tasks in `order`, the second of kind `second_kind`), the given CSV files
/// (header added) and an ESMM config over them; returns the config's path.
fn setup(dir: &Path, order: [&str; 2], second_kind: &str, files: &[(&str, String)]) -> String {
    let schema = format!(
        "[[sparse]]\nname = \"cat\"\n[[dense]]\nname = \"x\"\n\
         [[tasks]]\nname = \"{}\"\nkind = \"binary\"\n\
         [[tasks]]\nname = \"{}\"\nkind = \"{second_kind}\"\n",
        order[0], order[1]
    );
    std::fs::write(dir.join("schema.toml"), schema).unwrap();
    let mut data = format!("schema = \"{}\"\n", dir.join("schema.toml").display());
    for (name, rows) in files {
        let file = dir.join(format!("{name}.csv"));
        std::fs::write(&file, format!("cat,x,click,conversion\n{rows}")).unwrap();
        data.push_str(&format!("{name} = \"{}\"\n", file.display()));
    }
    let cfg = format!(
        "name = \"t\"\n[data]\nkind = \"files\"\n{data}[model]\nkind = \"esmm\"\ntower = [8]\n\
         [train]\nepochs = 1\nbatch_size = 16\n"
    );
    let path = dir.join("esmm.toml");
    std::fs::write(&path, cfg).unwrap();
    path.display().to_string()
}

fn train(cfg: &str, dir: &Path) -> std::process::Output {
    let out = dir.join("run").display().to_string();
    mtrec(&["train", "--config", cfg, "--out", &out])
}

fn path(dir: &Path, file: &str) -> String {
    dir.join(file).display().to_string()
}

/// Before: trained silently, CTCVR scored against the raw conversion column.
#[test]
fn esmm_conversion_without_a_click_in_the_training_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // Header line 1, clean rows on lines 2-41; conversions without a click on 42 and 44.
    let rows = format!("{}c1,3.5,0,1\nc2,1.5,1,1\nc0,2.5,0,1\n", clean_rows(0..40));
    let cfg = setup(
        dir.path(),
        ["click", "conversion"],
        "binary",
        &[("train", rows)],
    );
    let o = train(&cfg, dir.path());
    let at = format!(
        "{}:42: task `conversion` is 1 but task `click` is 0 (2 such rows in this file)",
        path(dir.path(), "train.csv")
    );
    assert_clean_failure(&o, &[&at, "model `esmm`", "without `click`"]);
}

/// Before: trained, with only a warning that the CVR AUC is undefined.
#[test]
fn esmm_tasks_listed_conversion_first_are_an_error_naming_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(
        dir.path(),
        ["conversion", "click"],
        "binary",
        &[("train", clean_rows(0..40))],
    );
    let o = train(&cfg, dir.path());
    // Clicks without a conversion: i = 3, 9, ..., 39 (7 rows), the first on line 3 + 2.
    let at = format!(
        "{}:5: task `click` is 1 but task `conversion` is 0 (7 such rows in this file)",
        path(dir.path(), "train.csv")
    );
    assert_clean_failure(&o, &[&at, "wrong order: swap `conversion` and `click`"]);
}

/// Before: trained and printed a CVR AUC of a regression label.
#[test]
fn esmm_regression_second_task_is_an_error_naming_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(
        dir.path(),
        ["click", "conversion"],
        "regression",
        &[("train", clean_rows(0..40))],
    );
    let o = train(&cfg, dir.path());
    // The schema's second [[tasks]] header is line 8.
    let at = format!(
        "{}:8: model `esmm` needs task 2 (`conversion`) to be binary, but it is a regression task",
        path(dir.path(), "schema.toml")
    );
    assert_clean_failure(&o, &[&at]);
}

/// Before: no word about the rows; now a warning with their count, at training and at `eval`.
#[test]
fn esmm_breaches_in_an_evaluation_file_are_a_warning_with_their_count() {
    let dir = tempfile::tempdir().unwrap();
    // Lines 2-11 clean; conversions without a click on lines 12, 14 and 15.
    let valid = format!(
        "{}c0,1.0,0,1\nc1,2.0,1,1\nc2,3.0,0,1\nc0,4.0,0,1\n",
        clean_rows(0..10)
    );
    let cfg = setup(
        dir.path(),
        ["click", "conversion"],
        "binary",
        &[
            ("train", clean_rows(0..40)),
            ("valid", valid),
            ("test", clean_rows(0..12)),
        ],
    );
    let o = train(&cfg, dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let warning = format!(
        "{}:12: 3 rows have task `conversion` = 1 but `click` = 0",
        path(dir.path(), "valid.csv")
    );
    assert!(stderr(&o).contains(&warning), "{}", stderr(&o));
    assert!(!stderr(&o).contains("test.csv"), "{}", stderr(&o));

    let o = mtrec(&[
        "eval",
        "--checkpoint",
        &path(dir.path(), "run"),
        "--data",
        &path(dir.path(), "valid.csv"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(&warning), "{}", stderr(&o));
}

#[test]
fn cross_distil_with_one_binary_task_is_refused_naming_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(
        dir.path(),
        ["click", "conversion"],
        "regression",
        &[("train", clean_rows(0..40))],
    );
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("kind = \"esmm\"\ntower = [8]", "kind = \"mmoe\"")
        + "[scheme]\nkind = \"cross-distil\"\n";
    std::fs::write(&cfg, text).unwrap();
    let at = format!(
        "{}: [scheme] kind = \"cross-distil\" needs at least 2 binary tasks, the data has 1 (`click`)",
        path(dir.path(), "schema.toml")
    );
    assert_clean_failure(&train(&cfg, dir.path()), &[&at]);
}
