//! Regression tests for faults found by replaying users' bug reports: line
//! numbers in CRLF files, duplicate column names, non-finite values after
//! preprocessing, and the missing hint when a header-less file is read with a
//! header. Each test fails on the code before the fix.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field};
use mtrec_data::{
    DataConfig, DataError, Dataset, DenseStats, FilesConfig, Preprocessor, Schema, SourceReader,
    SourceSpec, inspect, load,
};
use parquet::arrow::ArrowWriter;

const SCHEMA: &str = r#"
[[sparse]]
name = "city"
[[dense]]
name = "price"
[[tasks]]
name = "click"
kind = "binary"
"#;

/// Writes `schema.toml` and the given files into a fresh directory.
fn dir_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("schema.toml"), SCHEMA).expect("write schema");
    for (name, bytes) in files {
        fs::write(dir.path().join(name), bytes).expect("write file");
    }
    dir
}

/// Loads `train` of `dir` with `schema.toml`, split 50/25/25 unless `edit` says otherwise.
fn load_in(
    dir: &Path,
    train: &str,
    edit: impl FnOnce(&mut FilesConfig),
) -> Result<Dataset, DataError> {
    let mut cfg = FilesConfig {
        split: Some([0.5, 0.25, 0.25]),
        ..FilesConfig::new("schema.toml", train)
    };
    edit(&mut cfg);
    load(&DataConfig::Files(cfg), dir)
}

fn load_csv(text: &[u8]) -> (tempfile::TempDir, PathBuf, Result<Dataset, DataError>) {
    let dir = dir_with(&[("data.csv", text)]);
    let result = load_in(dir.path(), "data.csv", |_| {});
    let path = dir.path().join("data.csv");
    (dir, path, result)
}

/// A header and four rows, lines joined by `eol`; the price on `bad_line`
/// (1-based, header = line 1) is `abc`.
fn rows_with_bad_price(bad_line: usize, eol: &str) -> String {
    let mut lines = vec!["city,price,click".to_string()];
    for (i, city) in ["paris", "rome", "oslo", "kyiv"].iter().enumerate() {
        let line = i + 2;
        let price = if line == bad_line {
            "abc".to_string()
        } else {
            line.to_string()
        };
        lines.push(format!("{city},{price},{}", line % 2));
    }
    lines.join(eol) + eol
}

const ENDINGS: [(&str, &str); 3] = [("LF", "\n"), ("CRLF", "\r\n"), ("CR", "\r")];

// ---- Fault 4: line numbers are the editor's, whatever the line ending ----

#[test]
fn bad_value_line_is_the_editor_line_for_lf_crlf_and_lone_cr() {
    // Before: CRLF reported lines 1 and 3, lone CR reported line 1 for both.
    for (name, eol) in ENDINGS {
        for bad in [2u64, 4] {
            let (_d, path, r) = load_csv(rows_with_bad_price(bad as usize, eol).as_bytes());
            let e = r.expect_err("abc is not a number");
            assert!(
                matches!(e, DataError::BadNumber { line, .. } if line == bad),
                "{name}: {e:?}"
            );
            assert_eq!(
                e.to_string(),
                format!(
                    "{}:{bad}: field `price`: cannot parse \"abc\" as a number",
                    path.display()
                ),
                "{name}"
            );
        }
    }
}

#[test]
fn wrong_field_count_line_is_the_editor_line_for_every_ending() {
    // Before: line 2 for CRLF, line 1 for lone CR.
    for (name, eol) in ENDINGS {
        let text = ["city,price,click", "paris,1,0", "rome,2", "oslo,3,0"].join(eol) + eol;
        let (_d, path, r) = load_csv(text.as_bytes());
        let e = r.expect_err("short row");
        assert_eq!(
            e.to_string(),
            format!("{}:3: expected 3 fields, found 2", path.display()),
            "{name}"
        );
    }
}

#[test]
fn blank_lines_and_invalid_utf8_keep_editor_lines_in_crlf_files() {
    // Line 2 is blank, so `rome,x,1` is on line 4 (before: line 2).
    let (_d, _p, r) = load_csv(b"city,price,click\r\n\r\nparis,1,0\r\nrome,x,1");
    let e = r.expect_err("x is not a number");
    assert!(matches!(e, DataError::BadNumber { line: 4, .. }), "{e:?}");
    // Invalid UTF-8 on line 3 (before: line 2).
    let (_d, _p, r) = load_csv(b"city,price,click\r\nparis,1,0\r\nro\xffme,2,1\r\n");
    let e = r.expect_err("invalid UTF-8");
    assert!(matches!(e, DataError::Csv { line: 3, .. }), "{e:?}");
    assert!(
        e.to_string().contains(":3: invalid UTF-8 in field 1"),
        "{e}"
    );
}

#[test]
fn a_record_spanning_lines_is_reported_at_the_line_where_it_starts() {
    for (name, eol) in [("LF", "\n"), ("CRLF", "\r\n")] {
        // The quoted city spans lines 2-3; its bad price is reported on line 2.
        let text = format!("city,price,click{eol}\"new{eol}york\",abc,0{eol}rome,2,1{eol}");
        let (_d, _p, r) = load_csv(text.as_bytes());
        let e = r.expect_err("abc");
        assert!(
            matches!(e, DataError::BadNumber { line: 2, .. }),
            "{name}: {e:?}"
        );
        // The record after it starts on line 4.
        let text = format!("city,price,click{eol}\"new{eol}york\",1,0{eol}rome,abc,1{eol}");
        let (_d, _p, r) = load_csv(text.as_bytes());
        let e = r.expect_err("abc");
        assert!(
            matches!(e, DataError::BadNumber { line: 4, .. }),
            "{name}: {e:?}"
        );
    }
}

// ---- Fault 5: a column name twice is an error naming both positions ----

#[test]
fn duplicate_header_column_is_an_error_naming_both_positions() {
    // Before: loaded, silently reading the first `price`.
    let (_d, path, r) = load_csv(b"city,price,click,buy,price\nparis,1,0,1,9\nrome,2,1,0,8\n");
    let e = r.expect_err("price twice");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: column \"price\" appears twice in the header (columns 2 and 5)",
            path.display()
        )
    );
}

#[test]
fn a_stale_label_copy_before_the_real_one_is_refused() {
    // Before: the model trained on column 2, the stale copy, with exit 0.
    let (_d, _p, r) = load_csv(b"city,click,price,click\nparis,0,1,1\nrome,0,2,0\n");
    let e = r.expect_err("click twice");
    assert!(
        matches!(&e, DataError::DuplicateColumn { column, first: 2, second: 4, .. } if column == "click"),
        "{e:?}"
    );
}

#[test]
fn inspect_refuses_duplicate_columns_like_loading_does() {
    // Before: the inspection succeeded and its guessed schema listed `price` twice.
    let dir = dir_with(&[("data.csv", b"city,price,click,price\nparis,1.5,0,2.5\n")]);
    let path = dir.path().join("data.csv");
    let e = inspect(&SourceSpec::new(&path), None).expect_err("price twice");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: column \"price\" appears twice in the header (columns 2 and 4)",
            path.display()
        )
    );
}

#[test]
fn given_column_names_and_schema_columns_must_be_unique_too() {
    let dir = dir_with(&[("data.txt", b"paris,1,0\n")]);
    let spec = SourceSpec::new(dir.path().join("data.txt"))
        .with_header(false)
        .with_columns(vec!["city".into(), "price".into(), "city".into()]);
    let e = SourceReader::open(&spec).err().expect("city twice");
    assert!(
        e.to_string()
            .ends_with("column \"city\" appears twice in the given column names (columns 1 and 3)"),
        "{e}"
    );
    // Before: "`columns` names `price` twice", without the positions.
    let text = format!("columns = [\"city\", \"price\", \"click\", \"price\"]\n{SCHEMA}");
    let e = Schema::from_toml_str(&text, "s.toml").unwrap_err();
    assert_eq!(
        e.to_string(),
        "s.toml: column \"price\" appears twice in `columns` (columns 2 and 4)"
    );
}

/// A Parquet file of `city` and the given f64 columns.
fn write_parquet(path: &Path, cities: &[&str], columns: &[(&str, Vec<f64>)]) {
    let mut fields = vec![Field::new("city", DataType::Utf8, false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(cities.iter()))];
    for (name, values) in columns {
        fields.push(Field::new(*name, DataType::Float64, false));
        arrays.push(Arc::new(Float64Array::from(values.clone())));
    }
    let schema = Arc::new(arrow_schema::Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).expect("batch");
    let file = fs::File::create(path).expect("create");
    let mut w = ArrowWriter::try_new(file, schema, None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

#[test]
fn duplicate_parquet_column_is_an_error() {
    // Before: loaded, reading the first `price`.
    let dir = dir_with(&[]);
    let path = dir.path().join("data.parquet");
    let cols = [
        ("price", vec![1.0, 2.0]),
        ("price", vec![3.0, 4.0]),
        ("click", vec![0.0, 1.0]),
    ];
    write_parquet(&path, &["paris", "rome"], &cols);
    let e = load_in(dir.path(), "data.parquet", |_| {}).expect_err("price twice");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: column \"price\" appears twice in the file's columns (columns 2 and 3)",
            path.display()
        )
    );
}

// ---- Fault 3: the data layer never produces a non-finite value ----

#[test]
fn a_std_below_the_smallest_normal_f32_counts_as_constant() {
    // 0 and 2e-38: the population std is 1e-38, a subnormal f32 (before: kept).
    let s = DenseStats::fit([0.0, 2e-38, 0.0, 2e-38]);
    assert_eq!(s.std, 1.0);
    assert!(
        s.apply(2e-38).abs() < 1e-37 && s.apply(0.0).abs() < 1e-37,
        "{s:?}"
    );
    // 0, 0, 0 and 1e-45 (the smallest subnormal): the std, 6e-46, is 0 as an f32
    // (before: std 0, and every value encoded to NaN or inf).
    let s = DenseStats::fit([0.0, 0.0, 0.0, 1e-45]);
    assert_eq!(s.std, 1.0);
    assert!(s.apply(0.0).is_finite() && s.apply(1e-45).is_finite());
}

#[test]
fn a_spread_below_f32_rounding_counts_as_constant_but_a_real_one_is_kept() {
    // 1e6 and the next f32 up (the step there is 0.0625): std 0.03125, below
    // one rounding step at this magnitude, 1e6 * 2^-23 = 0.119.
    let s = DenseStats::fit([1e6, 1e6 + 0.0625]);
    assert_eq!(s.std, 1.0, "before: 0.03125");
    // 1000.001 and 1000.002 are the f32s 1000 + 16 and 1000 + 33 steps of
    // 2^-14: std = 17 / 2 * 2^-14 = 5.18798828e-4, far above 1000 * 2^-23.
    let s = DenseStats::fit([1000.001, 1000.002]);
    assert!((s.std - 8.5 / 16384.0).abs() < 1e-9, "{s:?}");
}

#[test]
fn standardising_huge_values_does_not_overflow() {
    // Mean 1e38, deviations 2e38, -4e38, 2e38: std = sqrt(8e76) = 2.828e38.
    // Before: -3e38 - 1e38 overflowed f32 to -inf before the division.
    let s = DenseStats::fit([3e38, -3e38, 3e38]);
    assert!(
        (s.apply(-3e38) + std::f32::consts::SQRT_2).abs() < 1e-5,
        "{s:?}"
    );
    assert!(
        (s.apply(3e38) - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-5,
        "{s:?}"
    );
}

#[test]
fn near_constant_and_huge_columns_load_as_finite_values() {
    // Before: the first file encoded to NaN/inf (std 0 as f32), the second to -inf.
    for (low, high) in [("0", "1e-45"), ("-3e38", "3e38")] {
        let mut text = String::from("city,price,click\n");
        for i in 0..12 {
            let price = if i % 3 == 0 { high } else { low };
            text.push_str(&format!("c{},{price},{}\n", i % 4, i % 2));
        }
        let dir = dir_with(&[("data.csv", text.as_bytes())]);
        let ds =
            load_in(dir.path(), "data.csv", |c| c.split = Some([1.0, 0.0, 0.0])).expect("loads");
        assert_eq!(ds.train.dense.len(), 12);
        assert!(
            ds.train.dense.iter().all(|v| v.is_finite()),
            "{low}/{high}: {:?}",
            ds.train.dense
        );
    }
}

#[test]
fn an_infinite_or_out_of_range_dense_cell_names_file_line_and_field() {
    // Before: "cannot parse \"inf\" as a number", though it parses: it is infinite.
    let (_d, path, r) = load_csv(b"city,price,click\nparis,1,0\nrome,inf,1\n");
    let e = r.expect_err("inf");
    assert!(matches!(e, DataError::NonFinite { line: 3, .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "{}:3: field `price`: \"inf\" is not a finite 32-bit number",
            path.display()
        )
    );
    let (_d, path, r) = load_csv(b"city,price,click\nparis,1e39,0\nrome,-Infinity,1\n");
    assert_eq!(
        r.expect_err("1e39").to_string(),
        format!(
            "{}:2: field `price`: \"1e39\" is not a finite 32-bit number \
             (32-bit floats reach ±3.4e38)",
            path.display()
        )
    );
}

#[test]
fn an_infinite_or_huge_parquet_value_names_file_row_and_field() {
    // Before: both loaded, and the non-finite raw value made every encoded price NaN.
    for bad in [f64::INFINITY, 1e300] {
        let dir = dir_with(&[]);
        let path = dir.path().join("data.parquet");
        let cols = [
            ("price", vec![1.0, bad, 2.0]),
            ("click", vec![0.0, 1.0, 0.0]),
        ];
        write_parquet(&path, &["paris", "rome", "oslo"], &cols);
        let e = load_in(dir.path(), "data.parquet", |_| {}).expect_err("non-finite");
        assert!(
            matches!(&e, DataError::NonFinite { line: 2, field, .. } if field == "price"),
            "{bad}: {e:?}"
        );
        assert!(
            e.to_string()
                .contains(&format!("\"{bad:e}\" is not a finite")),
            "{e}"
        );
    }
}

#[test]
fn a_regression_label_beyond_the_f32_range_is_an_error() {
    // Before: accepted as an infinite label.
    let dir = dir_with(&[("data.csv", b"city,price,watch\nparis,1,3.5\nrome,2,1e39\n")]);
    let schema = SCHEMA.replace(
        "name = \"click\"\nkind = \"binary\"",
        "name = \"watch\"\nkind = \"regression\"",
    );
    fs::write(dir.path().join("schema.toml"), schema).expect("write schema");
    let e = load_in(dir.path(), "data.csv", |_| {}).expect_err("1e39");
    assert!(matches!(e, DataError::BadLabel { line: 3, .. }), "{e:?}");
    assert!(e.to_string().contains("finite 32-bit number"), "{e}");
}

/// Train prices alternate 0 and 1e-37 (mean 5e-38, std 5e-38), so a price of
/// 1e38 standardises to 2e75, beyond f32.
const TINY_TRAIN: &[u8] = b"city,price,click\nparis,0,0\nrome,1e-37,1\noslo,0,0\nkyiv,1e-37,1\n";

#[test]
fn a_value_that_standardises_beyond_f32_names_the_split_file_and_field() {
    // Before: loaded with +inf in the validation split.
    let dir = dir_with(&[
        ("train.csv", TINY_TRAIN),
        ("valid.csv", b"city,price,click\nparis,1e38,0\n"),
        ("test.csv", b"city,price,click\nparis,0,0\n"),
    ]);
    let e = load_in(dir.path(), "train.csv", |c| {
        c.split = None;
        c.valid = Some("valid.csv".into());
        c.test = Some("test.csv".into());
    })
    .expect_err("2e75 is not an f32");
    let msg = e.to_string();
    let valid = dir.path().join("valid.csv");
    assert!(
        msg.starts_with(&format!(
            "the validation split ({}): field `price`",
            valid.display()
        )),
        "{msg}"
    );
    assert!(msg.contains("standardises to inf"), "{msg}");
}

#[test]
fn encoding_a_new_file_names_the_line_of_a_value_beyond_f32() {
    // Before: encode_file returned +inf, and `predict` wrote NaN.
    let dir = dir_with(&[
        ("train.csv", TINY_TRAIN),
        ("new.csv", b"city,price,click\nparis,0,0\nrome,1e38,1\n"),
    ]);
    let ds = load_in(dir.path(), "train.csv", |c| c.split = Some([1.0, 0.0, 0.0])).expect("loads");
    let new = dir.path().join("new.csv");
    let e = ds
        .preprocessor
        .encode_file(&SourceSpec::new(&new))
        .expect_err("inf");
    assert!(
        e.to_string()
            .starts_with(&format!("{}:3: field `price`", new.display())),
        "{e}"
    );
}

#[test]
fn a_saved_preprocessor_with_a_zero_std_is_refused() {
    // Before: accepted, and every encoded price was NaN or inf.
    let dir = dir_with(&[("train.csv", TINY_TRAIN)]);
    let ds = load_in(dir.path(), "train.csv", |c| c.split = Some([1.0, 0.0, 0.0])).expect("loads");
    let mut pre: Preprocessor = ds.preprocessor;
    pre.dense_stats[0].std = 0.0;
    let json = dir.path().join("pre.json");
    pre.save_json(&json).expect("save");
    let e = Preprocessor::load_json(&json).expect_err("std 0");
    assert!(
        e.to_string().contains("field `price`") && e.to_string().contains("std 0"),
        "{e}"
    );
}

// ---- Fault 7: a header-less file read with a header gets a hint ----

const COLUMNS_SCHEMA: &str = "columns = [\"city\", \"price\", \"click\"]\n";

#[test]
fn schema_columns_with_a_header_read_hint_at_header_false() {
    // Before: only "no column named `city` (the file has: `paris`, `1.5`, `0`)".
    let dir = dir_with(&[("data.csv", b"paris,1.5,0\nrome,2,1\noslo,3,0\nkyiv,4,1\n")]);
    fs::write(
        dir.path().join("schema.toml"),
        format!("{COLUMNS_SCHEMA}{SCHEMA}"),
    )
    .expect("write");
    let e = load_in(dir.path(), "data.csv", |_| {}).expect_err("first row read as header");
    let msg = e.to_string();
    assert!(msg.contains("no column named `city`"), "{msg}");
    assert!(
        msg.contains("the file may have no header row (the schema lists `columns`")
            && msg.contains("set `header = false` in the [data] section"),
        "{msg}"
    );
    load_in(dir.path(), "data.csv", |c| c.header = Some(false)).expect("loads without header");
}

#[test]
fn a_numeric_header_cell_hints_at_header_false_and_columns() {
    let (_d, _p, r) = load_csv(b"paris,1.5,0\nrome,2,1\n");
    let msg = r.expect_err("no header").to_string();
    assert!(
        msg.contains("(its first line holds the number \"1.5\", as data rows do)")
            && msg.contains("`header = false`")
            && msg.contains("`columns = [...]`"),
        "{msg}"
    );
}

#[test]
fn a_misspelt_header_name_gets_no_header_hint() {
    let (_d, _p, r) = load_csv(b"city,cost,click\nparis,1.5,0\n");
    let msg = r.expect_err("no price").to_string();
    assert!(
        msg.contains("no column named `price`") && !msg.contains("header"),
        "{msg}"
    );
}

/// Found by a fresh user: a header-less file whose first row repeats a value (two 0/1 labels)
/// failed on the duplicate "column" before the missing-column hint could say why.
#[test]
fn a_data_row_read_as_a_header_with_repeated_values_hints_at_header_false() {
    let (_d, _p, r) = load_csv(b"paris,1,1\nrome,2,0\n");
    let msg = r.expect_err("no header").to_string();
    assert!(
        msg.contains("column \"1\" appears twice in the header (columns 2 and 3)")
            && msg.contains("(its first line holds the number \"1\", as data rows do)")
            && msg.contains("`header = false`"),
        "{msg}"
    );
}

/// A repeated real name gets no such hint.
#[test]
fn a_repeated_header_name_gets_no_header_hint() {
    let (_d, _p, r) = load_csv(b"city,price,price\nparis,1,2\n");
    let msg = r.expect_err("duplicate").to_string();
    assert!(
        msg.contains("appears twice") && !msg.contains("header = false"),
        "{msg}"
    );
}
