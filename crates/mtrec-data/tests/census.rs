//! Census-Income on the shipped files: split sizes, label rates, inputs, and
//! the paper protocol with the train-file fixture.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use mtrec_data::census::{self, CENSUS_COLUMNS};
use mtrec_data::{CensusConfig, DataConfig, Dataset, EncodedTable, load};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Loading takes a moment, so each group is loaded once per test binary.
fn group(g: u8) -> &'static Dataset {
    static G1: OnceLock<Dataset> = OnceLock::new();
    static G2: OnceLock<Dataset> = OnceLock::new();
    let cell = if g == 1 { &G1 } else { &G2 };
    cell.get_or_init(|| {
        let cfg = DataConfig::Census(CensusConfig {
            group: g,
            ..CensusConfig::default()
        });
        let t = Instant::now();
        let ds = load(&cfg, &root()).expect("census loads");
        eprintln!(
            "census group {g}: loaded 99,762 rows in {:.2?}",
            t.elapsed()
        );
        ds
    })
}

fn positive_rate(ds: &Dataset, task: usize) -> f64 {
    let all: Vec<f32> = [&ds.train, &ds.valid, &ds.test]
        .iter()
        .flat_map(|t| t.labels_of_task(task))
        .collect();
    all.iter().map(|&y| f64::from(y)).sum::<f64>() / all.len() as f64
}

fn column_of(t: &EncodedTable, f: usize) -> impl Iterator<Item = u32> + '_ {
    t.sparse.iter().skip(f).step_by(t.n_sparse).copied()
}

#[test]
fn default_protocol_splits_the_test_file_50_25_25() {
    let ds = group(1);
    let sizes = (ds.train.n_rows, ds.valid.n_rows, ds.test.n_rows);
    assert_eq!(sizes, (49_881, 24_940, 24_941));
    assert_eq!(sizes.0 + sizes.1 + sizes.2, 99_762);
    for t in [&ds.train, &ds.valid, &ds.test] {
        assert_eq!((t.n_sparse, t.n_dense, t.n_tasks), (32, 7, 2));
    }
}

#[test]
fn group1_label_rates_match_the_documented_statistics() {
    let ds = group(1);
    assert_eq!(ds.meta().task_names, vec!["income", "marital"]);
    let income = positive_rate(ds, 0);
    let never_married = positive_rate(ds, 1);
    assert!((income - 0.0620).abs() < 0.0005, "income {income}");
    assert!(
        (never_married - 0.4325).abs() < 0.0005,
        "marital {never_married}"
    );
}

#[test]
fn group2_education_rate_counts_the_six_degrees() {
    let ds = group(2);
    assert_eq!(ds.meta().task_names, vec!["education", "marital"]);
    // 9885 + 3306 + 2690 + 2079 + 876 + 620 = 19,456 of 99,762 rows.
    let edu = positive_rate(ds, 0);
    assert!((edu - 19_456.0 / 99_762.0).abs() < 1e-9, "education {edu}");
    let m = ds.meta();
    assert!(m.sparse_names.iter().any(|n| n == "income"));
    assert!(!m.sparse_names.iter().any(|n| n == "education"));
}

#[test]
fn label_columns_and_instance_weight_are_not_inputs() {
    let m = group(1).meta();
    let inputs: Vec<&String> = m.sparse_names.iter().chain(&m.dense_names).collect();
    assert_eq!(inputs.len(), 39);
    for gone in ["income", "marital stat", "instance weight"] {
        assert!(!inputs.iter().any(|n| *n == gone), "{gone} is an input");
    }
    assert!(m.sparse_names.iter().any(|n| n == "education"));
    assert!(m.sparse_names.iter().any(|n| n == "year"));
    assert_eq!(
        m.dense_names,
        vec![
            "age",
            "wage per hour",
            "capital gains",
            "capital losses",
            "dividends from stocks",
            "num persons worked for employer",
            "weeks worked in year"
        ]
    );
    // education has 17 values, all frequent enough to appear in train.
    let edu = m
        .sparse_names
        .iter()
        .position(|n| n == "education")
        .expect("edu");
    assert_eq!(m.vocab_sizes[edu], 18);
    assert_eq!(CENSUS_COLUMNS.len(), 42);
}

#[test]
fn vocabularies_are_fitted_on_train_only() {
    let ds = group(1);
    // Census has no empty cells, so id 0 in train would mean a fitting bug;
    // in valid/test it marks values never seen in train.
    let mut unseen_in_eval = 0;
    for f in 0..ds.train.n_sparse {
        assert!(column_of(&ds.train, f).all(|id| id != 0), "field {f}");
        unseen_in_eval += column_of(&ds.valid, f).filter(|&id| id == 0).count();
        unseen_in_eval += column_of(&ds.test, f).filter(|&id| id == 0).count();
        let max = column_of(&ds.train, f).max().unwrap_or(0) as usize;
        assert_eq!(max + 1, ds.meta().vocab_sizes[f], "field {f}");
    }
    assert!(
        unseen_in_eval > 0,
        "rare values should be missing from train"
    );
    // Standardised on train: mean ~0, std ~1 there, not exactly so elsewhere.
    let n = ds.train.n_rows as f64;
    let age: Vec<f64> = ds
        .train
        .dense
        .iter()
        .step_by(7)
        .map(|&v| f64::from(v))
        .collect();
    let mean = age.iter().sum::<f64>() / n;
    let var = age.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    assert!(
        mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3,
        "{mean} {var}"
    );
}

#[test]
fn paper_protocol_with_the_head1890_fixture_warns_but_loads() {
    let fixture = root().join("data/census-income/census-income.data.head1890.gz");
    assert!(!census::check_train_hash(&fixture).expect("hash readable"));
    let cfg = CensusConfig {
        train_file: Some(fixture),
        ..CensusConfig::default()
    };
    let ds = census::load(&cfg, &root()).expect("loads");
    // `wc -l` says 1,890, but the last record has no trailing newline: 1,891 rows.
    assert_eq!(ds.train.n_rows, 1_891);
    assert_eq!((ds.valid.n_rows, ds.test.n_rows), (49_881, 49_881));
    let rate: f64 = ds
        .train
        .labels_of_task(0)
        .iter()
        .map(|&y| f64::from(y))
        .sum::<f64>()
        / 1891.0;
    assert!(rate > 0.0 && rate < 0.2, "{rate}");
}

#[test]
fn subsample_cuts_each_split_and_same_seed_same_split() {
    let cfg = CensusConfig {
        subsample: Some(500),
        ..CensusConfig::default()
    };
    let a = census::load(&cfg, &root()).expect("loads");
    assert_eq!(
        (a.train.n_rows, a.valid.n_rows, a.test.n_rows),
        (500, 500, 500)
    );
    assert_eq!(a.train.labels, group(1).train.head(500).labels);
    let other = census::load(&CensusConfig { seed: 1, ..cfg }, &root()).expect("loads");
    assert_ne!(a.train.labels, other.train.labels);
}
