//! Partial labels in the schema: masked labels (`missing = "mask"`, `missing_values`),
//! conditional tasks (`given`), example weights (`weight`), and the standardisation of
//! regression labels (`scale`), as the encoded tables carry them.

use std::fs;
use std::path::Path;

use mtrec_data::{
    DataConfig, Dataset, DenseStats, FilesConfig, Preprocessor, Schema, SourceSpec,
    TaskRequirement, TaskRule, batches, check_task_rows, load,
};

const SCHEMA: &str = r#"
[[sparse]]
name = "user"
[[tasks]]
name = "click"
kind = "binary"
missing = "mask"
[[tasks]]
name = "conv"
kind = "binary"
given = "click"
missing = "mask"
[[tasks]]
name = "watch"
kind = "regression"
column = "watch_ms"
missing = "mask"
missing_values = ["-1"]
weight = "w"
"#;

/// Row 3 lacks its click (so its conversion does not count either) and its watch time (`-1`;
/// its empty weight is then never read); row 4 lacks its conversion.
const ROWS: &str = "user,click,conv,watch_ms,w
u1,1,1,1000,2
u2,0,0,2000,1
u3,,1,-1,
u4,1,,4000,0.5
u5,1,0,3000,1
";

fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).unwrap();
}

/// The rows above as train, validation and test file alike: the training split is the file,
/// in order.
fn load_rows(schema: &str, rows: &str) -> Result<Dataset, mtrec_data::DataError> {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "s.toml", schema);
    write(dir.path(), "d.csv", rows);
    let mut cfg = FilesConfig::new("s.toml", "d.csv");
    cfg.valid = Some("d.csv".into());
    cfg.test = Some("d.csv".into());
    load(&DataConfig::Files(cfg), dir.path())
}

#[test]
fn masked_conditional_and_weighted_labels_become_example_weights() {
    let data = load_rows(SCHEMA, ROWS).unwrap();
    let t = &data.train;
    assert_eq!(t.n_rows, 5);
    #[rustfmt::skip]
    let want_weights = vec![
        1.0, 1.0, 2.0,
        1.0, 0.0, 1.0, // no click: the conversion does not count
        0.0, 0.0, 0.0, // click missing, so conv excluded; watch `-1`
        1.0, 0.0, 0.5, // conversion missing
        1.0, 1.0, 1.0,
    ];
    assert_eq!(t.label_weights, Some(want_weights));
    // Masked labels are stored as 0; a label excluded by `given` keeps its value.
    #[rustfmt::skip]
    let want_labels = vec![
        1.0, 1.0, 1000.0,
        0.0, 0.0, 2000.0,
        0.0, 1.0, 0.0,
        1.0, 0.0, 4000.0,
        1.0, 0.0, 3000.0,
    ];
    assert_eq!(t.labels, want_labels);
    assert_eq!(
        (t.labelled_rows(0), t.labelled_rows(1), t.labelled_rows(2)),
        (4, 2, 4)
    );
    // Tables without partial labels carry no weights at all.
    let plain = SCHEMA
        .replace("given = \"click\"\n", "")
        .replace("missing = \"mask\"\n", "")
        .replace("weight = \"w\"\n", "")
        .replace("missing_values = [\"-1\"]\n", "");
    let full = "user,click,conv,watch_ms,w\nu1,1,1,1000,2\nu2,0,0,2000,1\n";
    assert_eq!(load_rows(&plain, full).unwrap().train.label_weights, None);
}

#[test]
fn regression_labels_are_standardised_on_labelled_training_rows() {
    let data = load_rows(SCHEMA, ROWS).unwrap();
    // watch: labelled rows 1000, 2000, 4000, 3000 (the masked row's stored 0 is left out):
    // mean 2500, population std sqrt((1500^2 + 500^2 + 1500^2 + 500^2) / 4) = 1118.034.
    let s = data.preprocessor.label_stats[2];
    assert!((s.mean - 2500.0).abs() < 1e-3, "{s:?}");
    assert!((s.std - 1118.034).abs() < 1e-2, "{s:?}");
    assert_eq!(data.preprocessor.label_stats[0], DenseStats::default());
    assert_eq!(data.train.label_scales, data.preprocessor.label_stats);
    assert_eq!(data.test.label_scales, data.preprocessor.label_stats);
    // The table keeps the labels as written; batches carry them on the training scale, with
    // a row of weight 0 at 0.
    let b = batches(&data.train, 5, None).next().unwrap();
    let watch: Vec<f32> = (0..5).map(|r| b.labels[r * 3 + 2]).collect();
    let z = |v: f32| (v - 2500.0) / s.std;
    for (got, want) in watch
        .iter()
        .zip([z(1000.0), z(2000.0), 0.0, z(4000.0), z(3000.0)])
    {
        assert!((got - want).abs() < 1e-6, "{watch:?}");
    }
    assert!((s.invert(s.apply(1234.5)) - 1234.5).abs() < 1e-3);

    // scale = "none": identity, and tables carry no scales.
    let raw = load_rows(
        &SCHEMA.replace("weight = \"w\"\n", "weight = \"w\"\nscale = \"none\"\n"),
        ROWS,
    )
    .unwrap();
    assert_eq!(raw.preprocessor.label_stats[2], DenseStats::default());
    assert!(raw.train.label_scales.is_empty());
}

#[test]
fn label_statistics_are_saved_and_old_preprocessors_load_as_identity() {
    let data = load_rows(SCHEMA, ROWS).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("preprocessor.json");
    data.preprocessor.save_json(&path).unwrap();
    let back = Preprocessor::load_json(&path).unwrap();
    assert_eq!(back, data.preprocessor);

    // A preprocessor written before label scaling: no `label_stats` key.
    let mut json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("label_stats");
    fs::write(&path, json.to_string()).unwrap();
    let old = Preprocessor::load_json(&path).unwrap();
    assert!(old.label_stats.is_empty());
    assert!(old.label_scales().is_empty());
    write(dir.path(), "new.csv", ROWS);
    let table = old
        .encode_file_unlabelled(&SourceSpec::new(dir.path().join("new.csv")))
        .unwrap();
    assert_eq!(table.label_scale(2), DenseStats::default());

    // A hand-edited std of 0 is refused, naming the task.
    json["label_stats"] = serde_json::json!([
        {"mean": 0.0, "std": 1.0}, {"mean": 0.0, "std": 1.0}, {"mean": 5.0, "std": 0.0}
    ]);
    fs::write(&path, json.to_string()).unwrap();
    let e = Preprocessor::load_json(&path).unwrap_err().to_string();
    assert!(e.contains("task `watch`") && e.contains("std 0"), "{e}");
}

#[test]
fn encoding_a_new_file_carries_weights_and_scales() {
    let data = load_rows(SCHEMA, ROWS).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "new.csv", ROWS);
    let src = SourceSpec::new(dir.path().join("new.csv"));
    let labelled = data.preprocessor.encode_file(&src).unwrap();
    assert_eq!(labelled.label_weights, data.train.label_weights);
    assert_eq!(labelled.label_scales, data.preprocessor.label_stats);
    let unlabelled = data.preprocessor.encode_file_unlabelled(&src).unwrap();
    assert_eq!(unlabelled.label_weights, None);
    assert_eq!(unlabelled.label_scales, data.preprocessor.label_stats);
}

#[test]
fn a_bad_weight_names_file_line_column_and_task() {
    for (cell, shown) in [
        ("-1", "\"-1\""),
        ("abc", "\"abc\""),
        ("inf", "\"inf\""),
        ("", "\"\""),
    ] {
        let rows = ROWS.replace("u2,0,0,2000,1", &format!("u2,0,0,2000,{cell}"));
        let e = load_rows(SCHEMA, &rows).unwrap_err().to_string();
        assert!(
            e.contains(
                "d.csv:3: field `w`: the weight of task `watch` must be a finite number >= 0"
            ) && e.ends_with(&format!("got {shown}")),
            "{cell:?}: {e}"
        );
    }
}

#[test]
fn a_declared_missing_value_is_an_error_unless_masked() {
    let strict = SCHEMA.replace(
        "column = \"watch_ms\"\nmissing = \"mask\"\n",
        "column = \"watch_ms\"\n",
    );
    let e = load_rows(&strict, ROWS).unwrap_err().to_string();
    assert!(
        e.contains("d.csv:4: field `watch_ms`: label is missing"),
        "{e}"
    );
}

#[test]
fn inconsistent_partial_label_schemas_are_rejected() {
    let cases = [
        (
            SCHEMA.replace("given = \"click\"", "given = \"clik\""),
            "task `conv`: `given = \"clik\"` names no task (tasks: click, conv, watch)",
        ),
        (
            SCHEMA.replace("given = \"click\"", "given = \"conv\""),
            "task `conv`: a task cannot be given itself",
        ),
        (
            SCHEMA.replace("given = \"click\"", "given = \"watch\""),
            "`given = \"watch\"` must name a binary task",
        ),
        (
            SCHEMA.replace("given = \"click\"", "scale = \"none\""),
            "task `conv`: `scale` applies to regression labels",
        ),
        (
            SCHEMA.replace("weight = \"w\"", "weight = \"user\""),
            "task `watch`: the weight column `user` is also the input field `user`",
        ),
        (
            SCHEMA.replace("weight = \"w\"", "weight = \"watch_ms\""),
            "the weight column `watch_ms` is the task's own label column",
        ),
        (
            format!("columns = [\"user\", \"click\", \"conv\", \"watch_ms\"]\n{SCHEMA}"),
            "column `w` is used but not listed in `columns`",
        ),
        (
            SCHEMA.replace("missing = \"mask\"", "missing = \"drop\""),
            "drop",
        ),
    ];
    for (text, needle) in cases {
        let e = Schema::from_toml_str(&text, "s.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.toml: "), "{e}");
        assert!(e.contains(needle), "expected {needle:?} in {e}");
    }
    // The keys round-trip through the schema's TOML.
    let s = Schema::from_toml_str(SCHEMA, "s.toml").unwrap();
    let back = Schema::from_toml_str(&s.to_toml_string(), "back.toml").unwrap();
    assert_eq!(back, s);
    assert!(s.has_partial_labels() && s.tasks[2].is_standardised());
}

/// Row 3 has a conversion but its click is missing: no breach of "conversion implies click",
/// since a row unlabelled for either task says nothing about it. Stored as 0, the missing
/// click used to read as a breach.
#[test]
fn implications_skip_rows_unlabelled_for_either_task() {
    let data = load_rows(SCHEMA, ROWS).unwrap();
    let reqs = [TaskRequirement {
        by: "model `esmm`",
        rule: TaskRule::Implies { from: 1, to: 0 },
        why: "test",
    }];
    let cfg = DataConfig::Files(FilesConfig::new("s.toml", "d.csv"));
    let warnings = check_task_rows(&reqs, &cfg, Path::new("."), &data).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(data.train.label_row(2)[..2], [0.0, 1.0]);
}
