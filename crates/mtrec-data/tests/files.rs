//! Schema-described files: CSV variants, Parquet, splits, and encoding new
//! files with a fitted preprocessor.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field};
use mtrec_data::{
    DataConfig, Dataset, FilesConfig, Format, Preprocessor, SourceSpec, TaskKind, load,
};
use parquet::arrow::ArrowWriter;

const SCHEMA: &str = r#"
[[sparse]]
name = "city"
[[sparse]]
name = "shop"
column = "shop_id"
min_count = 2
[[dense]]
name = "price"
fill = 10.0
[[tasks]]
name = "click"
kind = "binary"
[[tasks]]
name = "buy"
kind = "binary"
column = "bought"
positive = ["yes"]
[[tasks]]
name = "spend"
kind = "regression"
column = "amount"
[[tasks]]
name = "long"
kind = "binary"
column = "amount"
threshold = 5.0
"#;

/// (city, shop_id, price, click, bought, amount); one price is missing.
type Row = (&'static str, i64, Option<f64>, i64, &'static str, f64);
const ROWS: [Row; 6] = [
    ("paris", 7, Some(1.5), 0, "no", 0.0),
    ("rome", 7, Some(2.5), 1, "yes", 9.5),
    ("paris", 8, None, 1, "no", 3.0),
    ("oslo", 9, Some(4.0), 0, "no", 0.0),
    ("rome", 9, Some(6.0), 1, "yes", 5.0),
    ("paris", 7, Some(8.0), 0, "no", 0.0),
];

fn csv_text(sep: char, header: bool) -> String {
    let mut s = String::new();
    if header {
        s.push_str(
            &["city", "shop_id", "price", "click", "bought", "amount"].join(&sep.to_string()),
        );
        s.push('\n');
    }
    for (c, shop, price, click, bought, amount) in ROWS {
        let price = price.map(|p| p.to_string()).unwrap_or_default();
        let fields = [
            c.to_string(),
            shop.to_string(),
            price,
            click.to_string(),
            bought.to_string(),
            amount.to_string(),
        ];
        s.push_str(&fields.join(&sep.to_string()));
        s.push('\n');
    }
    s
}

fn write_parquet(path: &Path) {
    let schema = Arc::new(arrow_schema::Schema::new(vec![
        Field::new("city", DataType::Utf8, false),
        Field::new("shop_id", DataType::Int64, false),
        Field::new("price", DataType::Float64, true),
        Field::new("click", DataType::Int64, false),
        Field::new("bought", DataType::Utf8, false),
        Field::new("amount", DataType::Float64, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(ROWS.iter().map(|r| r.0))),
        Arc::new(Int64Array::from_iter_values(ROWS.iter().map(|r| r.1))),
        Arc::new(Float64Array::from_iter(ROWS.iter().map(|r| r.2))),
        Arc::new(Int64Array::from_iter_values(ROWS.iter().map(|r| r.3))),
        Arc::new(StringArray::from_iter_values(ROWS.iter().map(|r| r.4))),
        Arc::new(Float64Array::from_iter_values(ROWS.iter().map(|r| r.5))),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols).expect("batch");
    let file = fs::File::create(path).expect("create");
    let mut w = ArrowWriter::try_new(file, schema, None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

/// Loads `train` with every row in the training split (valid and test are
/// the same file, so nothing is carved out).
fn load_all(dir: &Path, train: &str, tweak: impl FnOnce(&mut FilesConfig)) -> Dataset {
    fs::write(dir.join("schema.toml"), SCHEMA).expect("schema");
    let mut cfg = FilesConfig::new("schema.toml", train);
    cfg.valid = Some(train.into());
    cfg.test = Some(train.into());
    tweak(&mut cfg);
    load(&DataConfig::Files(cfg), dir).expect("loads")
}

#[test]
fn labels_follow_each_rule_and_fill_is_applied_before_standardising() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("a.csv"), csv_text(',', true)).expect("write");
    let ds = load_all(dir.path(), "a.csv", |_| {});
    let t = &ds.train;
    assert_eq!((t.n_rows, t.n_sparse, t.n_dense, t.n_tasks), (6, 2, 1, 4));
    assert_eq!(t.labels_of_task(0), vec![0.0, 1.0, 1.0, 0.0, 1.0, 0.0]);
    assert_eq!(t.labels_of_task(1), vec![0.0, 1.0, 0.0, 0.0, 1.0, 0.0]);
    assert_eq!(t.labels_of_task(2), vec![0.0, 9.5, 3.0, 0.0, 5.0, 0.0]);
    assert_eq!(t.labels_of_task(3), vec![0.0, 1.0, 0.0, 0.0, 1.0, 0.0]);
    assert_eq!(
        ds.meta().task_kinds,
        vec![
            TaskKind::Binary,
            TaskKind::Binary,
            TaskKind::Regression,
            TaskKind::Binary
        ]
    );
    // price with the missing value filled by 10: [1.5, 2.5, 10, 4, 6, 8].
    let raw = [1.5f64, 2.5, 10.0, 4.0, 6.0, 8.0];
    let mean = raw.iter().sum::<f64>() / 6.0;
    let std = (raw.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 6.0).sqrt();
    let s = ds.preprocessor.dense_stats[0];
    assert!((f64::from(s.mean) - mean).abs() < 1e-6 && (f64::from(s.std) - std).abs() < 1e-6);
    assert!((f64::from(t.dense[2]) - (10.0 - mean) / std).abs() < 1e-5);
    // city sorted: oslo=1, paris=2, rome=3; shop 8 is seen once (< min_count 2).
    let v = &ds.preprocessor.vocabs;
    assert_eq!(v[0].values(), ["oslo", "paris", "rome"]);
    assert_eq!(v[1].values(), ["7", "9"]);
    assert_eq!(t.sparse_row(2), &[2, 0]);
    assert_eq!(ds.meta().vocab_sizes, vec![4, 3]);
}

#[test]
fn separator_headerless_gzip_and_parquet_all_load_the_same_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    fs::write(d.join("a.csv"), csv_text(',', true)).expect("write");
    let reference = load_all(d, "a.csv", |_| {});

    fs::write(d.join("b.txt"), csv_text(';', true)).expect("write");
    let semi = load_all(d, "b.txt", |c| c.separator = Some(';'));
    assert_eq!(semi, reference, "custom separator");

    fs::write(d.join("c.tsv"), csv_text('\t', true)).expect("write");
    assert_eq!(
        load_all(d, "c.tsv", |_| {}),
        reference,
        "tsv guessed from the name"
    );

    let columns =
        "columns = [\"city\", \"shop_id\", \"price\", \"click\", \"bought\", \"amount\"]\n";
    fs::write(d.join("nh.csv"), csv_text(',', false)).expect("write");
    fs::write(d.join("schema_nh.toml"), format!("{columns}{SCHEMA}")).expect("write");
    let mut cfg = FilesConfig::new("schema_nh.toml", "nh.csv");
    cfg.valid = Some("nh.csv".into());
    cfg.test = Some("nh.csv".into());
    cfg.header = Some(false);
    let nh = load(&DataConfig::Files(cfg), d).expect("headerless loads");
    assert_eq!(nh.train, reference.train, "no header + columns");

    let gz = fs::File::create(d.join("a.csv.gz")).expect("create");
    let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::default());
    enc.write_all(csv_text(',', true).as_bytes()).expect("gzip");
    enc.finish().expect("finish");
    assert_eq!(load_all(d, "a.csv.gz", |_| {}), reference, "gzip");

    write_parquet(&d.join("a.parquet"));
    let pq = load_all(d, "a.parquet", |_| {});
    assert_eq!(pq.train, reference.train, "parquet");
    assert_eq!(pq.preprocessor.vocabs, reference.preprocessor.vocabs);
    // The format can also be forced regardless of the name.
    fs::copy(d.join("a.parquet"), d.join("a.bin")).expect("copy");
    let forced = load_all(d, "a.bin", |c| c.format = Some(Format::Parquet));
    assert_eq!(forced.train, reference.train, "forced parquet");
}

#[test]
fn only_a_train_file_is_split_80_10_10_by_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("schema.toml"), SCHEMA).expect("schema");
    let mut text = csv_text(',', true);
    for _ in 0..(100 / ROWS.len()) {
        text.push_str(&csv_text(',', false));
    }
    fs::write(dir.path().join("a.csv"), &text).expect("write");
    let n = text.lines().count() - 1;
    let ds = load(
        &DataConfig::Files(FilesConfig::new("schema.toml", "a.csv")),
        dir.path(),
    )
    .expect("loads");
    let expect_train = (n as f64 * 0.8 + 1e-9).floor() as usize;
    let expect_valid = (n as f64 * 0.1 + 1e-9).floor() as usize;
    assert_eq!(ds.train.n_rows, expect_train);
    assert_eq!(ds.valid.n_rows, expect_valid);
    assert_eq!(ds.test.n_rows, n - expect_train - expect_valid);
}

#[test]
fn fitted_preprocessor_encodes_new_files_and_survives_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    fs::write(d.join("a.csv"), csv_text(',', true)).expect("write");
    let ds = load_all(d, "a.csv", |_| {});
    let pre = &ds.preprocessor;

    // A value never seen in training maps to 0; a known one keeps its id.
    fs::write(
        d.join("new.csv"),
        "city,shop_id,price,click,bought,amount\nlima,7,1.5,1,yes,2\nrome,100,1.5,0,no,0\n",
    )
    .expect("write");
    let t = pre
        .encode_file(&SourceSpec::new(d.join("new.csv")))
        .expect("encode");
    assert_eq!(t.sparse, vec![0, 1, 3, 0]);
    assert_eq!(t.labels, vec![1.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(t.dense[0], ds.train.dense[0]);

    // Prediction files need no label columns.
    fs::write(d.join("pred.csv"), "price,city,shop_id\n1.5,paris,9\n").expect("write");
    let p = pre
        .encode_file_unlabelled(&SourceSpec::new(d.join("pred.csv")))
        .expect("encode");
    assert_eq!((p.n_rows, p.n_tasks, p.labels.len()), (1, 0, 0));
    assert_eq!(p.sparse, vec![2, 2]);
    assert!(
        pre.encode_file(&SourceSpec::new(d.join("pred.csv")))
            .is_err()
    );

    let json = d.join("preprocessor.json");
    pre.save_json(&json).expect("save");
    let back = Preprocessor::load_json(&json).expect("load");
    assert_eq!(&back, pre);
    assert_eq!(
        back.encode_file(&SourceSpec::new(d.join("new.csv")))
            .expect("enc"),
        t
    );
    let leftovers: Vec<_> = fs::read_dir(d)
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "atomic write left {leftovers:?}");
}
