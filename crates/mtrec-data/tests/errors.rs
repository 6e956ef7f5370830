//! Every kind of bad input fails with an error that names the file, the line
//! (1-based, header counted) and the field.

use std::fs;
use std::path::{Path, PathBuf};

use mtrec_data::{DataConfig, DataError, FilesConfig, load};

const SCHEMA: &str = r#"
[[sparse]]
name = "city"
[[dense]]
name = "price"
[[tasks]]
name = "click"
kind = "binary"
"#;

const GOOD_ROWS: &str = "city,price,click\nparis,1.5,0\nrome,2,1\noslo,3,0\n";

/// Writes the schema and `csv` into a fresh directory and loads them.
fn load_csv(schema: &str, csv: &str) -> (tempfile::TempDir, PathBuf, Result<(), DataError>) {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("schema.toml"), schema).expect("write schema");
    let data = dir.path().join("data.csv");
    fs::write(&data, csv).expect("write data");
    let cfg = DataConfig::Files(FilesConfig {
        split: Some([0.5, 0.25, 0.25]),
        ..FilesConfig::new("schema.toml", "data.csv")
    });
    let result = load(&cfg, dir.path()).map(|_| ());
    (dir, data, result)
}

fn err(schema: &str, csv: &str) -> (DataError, String, PathBuf) {
    let (_dir, data, result) = load_csv(schema, csv);
    let e = result.expect_err("bad input must fail");
    let msg = e.to_string();
    (e, msg, data)
}

#[test]
fn good_file_loads() {
    let (_d, _p, r) = load_csv(SCHEMA, GOOD_ROWS);
    r.expect("good file loads");
}

#[test]
fn malformed_row_names_file_and_line() {
    let (e, msg, data) = err(SCHEMA, "city,price,click\nparis,1.5,0\nrome,2\noslo,3,0\n");
    assert!(matches!(e, DataError::Csv { line: 3, .. }), "{e:?}");
    assert_eq!(
        msg,
        format!("{}:3: expected 3 fields, found 2", data.display())
    );
}

#[test]
fn missing_column_names_column_and_file() {
    let (e, msg, data) = err(SCHEMA, "city,cost,click\nparis,1.5,0\n");
    assert!(
        matches!(e, DataError::MissingColumn { ref column, .. } if column == "price"),
        "{e:?}"
    );
    assert!(msg.contains(&data.display().to_string()), "{msg}");
    assert!(
        msg.contains("no column named `price`") && msg.contains("`cost`"),
        "{msg}"
    );
}

#[test]
fn non_numeric_dense_value_names_file_line_and_field() {
    let (e, msg, data) = err(SCHEMA, "city,price,click\nparis,1.5,0\nrome,abc,1\n");
    assert!(matches!(e, DataError::BadNumber { line: 3, .. }), "{e:?}");
    assert_eq!(
        msg,
        format!(
            "{}:3: field `price`: cannot parse \"abc\" as a number",
            data.display()
        )
    );
}

#[test]
fn empty_or_nan_label_names_file_line_and_field() {
    for bad in ["", "NaN", "nan"] {
        let csv = format!("city,price,click\nparis,1.5,0\nrome,2,1\noslo,3,{bad}\n");
        let (e, msg, data) = err(SCHEMA, &csv);
        assert!(
            matches!(e, DataError::NanLabel { line: 4, .. }),
            "{bad:?}: {e:?}"
        );
        assert_eq!(
            msg,
            format!(
                "{}:4: field `click`: label is missing or NaN (if some rows are unlabelled \
                 for this task, set `missing = \"mask\"` on it in the schema)",
                data.display()
            )
        );
    }
}

#[test]
fn binary_label_other_than_0_or_1_is_rejected() {
    let (e, msg, _) = err(SCHEMA, "city,price,click\nparis,1.5,2\n");
    assert!(matches!(e, DataError::BadLabel { line: 2, .. }), "{e:?}");
    assert!(
        msg.contains(":2: field `click`: a binary label must be 0 or 1, got \"2\""),
        "{msg}"
    );
    let (e, _, _) = err(SCHEMA, "city,price,click\nparis,1.5,yes\n");
    assert!(matches!(e, DataError::BadNumber { line: 2, .. }), "{e:?}");
}

#[test]
fn unknown_schema_key_names_key_and_schema_file() {
    let schema = SCHEMA.replace("kind = \"binary\"", "kind = \"binary\"\npositve = [\"1\"]");
    let (e, msg, data) = err(&schema, GOOD_ROWS);
    assert!(matches!(e, DataError::Schema { .. }), "{e:?}");
    let schema_path = data.with_file_name("schema.toml");
    assert!(
        msg.starts_with(&format!("{}: line 9:", schema_path.display())),
        "{msg}"
    );
    assert!(msg.contains("positve"), "{msg}");
}

#[test]
fn unknown_task_kind_is_a_schema_error() {
    let schema = SCHEMA.replace("\"binary\"", "\"multiclass\"");
    let (e, msg, _) = err(&schema, GOOD_ROWS);
    assert!(matches!(e, DataError::Schema { .. }), "{e:?}");
    assert!(msg.contains("multiclass"), "{msg}");
}

#[test]
fn headerless_row_count_mismatch_is_a_csv_error() {
    let schema = format!("columns = [\"city\", \"price\", \"click\"]\n{SCHEMA}");
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("s.toml"), schema).expect("write");
    fs::write(dir.path().join("d.txt"), "paris,1,0\nrome,2,1,9\n").expect("write");
    let cfg = DataConfig::Files(FilesConfig {
        header: Some(false),
        ..FilesConfig::new("s.toml", "d.txt")
    });
    let e = load(&cfg, dir.path()).expect_err("must fail");
    assert!(matches!(e, DataError::Csv { line: 2, .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("d.txt:2: expected 3 fields, found 4"),
        "{e}"
    );
}

#[test]
fn missing_files_are_io_errors_naming_the_path() {
    let cfg = DataConfig::Files(FilesConfig::new("nope.toml", "t.csv"));
    let e = load(&cfg, Path::new("/nonexistent")).expect_err("must fail");
    assert!(matches!(e, DataError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("/nonexistent/nope.toml"), "{e}");
}
