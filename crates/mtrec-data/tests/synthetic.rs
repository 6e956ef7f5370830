//! Synthetic data written to CSV and Parquet loads back into exactly the
//! data set the generator builds in memory.

use std::path::Path;

use mtrec_data::synthetic::{self, generate, synthetic_schema, write_csv, write_parquet};
use mtrec_data::{DataConfig, FilesConfig, SourceSpec, SyntheticConfig, SyntheticData, load};

fn slice(d: &SyntheticData, from: usize, to: usize) -> SyntheticData {
    SyntheticData {
        x: d.x[from * d.dim..to * d.dim].to_vec(),
        y: d.y[from * 2..to * 2].to_vec(),
        n: to - from,
        ..d.clone()
    }
}

fn round_trip(ext: &str, write: fn(&SyntheticData, &Path) -> mtrec_data::Result<()>) {
    let cfg = SyntheticConfig {
        dim: 8,
        correlation: 0.5,
        n_train: 300,
        n_valid: 50,
        n_test: 70,
        seed: 42,
        ..SyntheticConfig::default()
    };
    let in_memory = load(&DataConfig::Synthetic(cfg.clone()), Path::new(".")).expect("synthetic");
    let data = generate(&cfg, 420);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for (name, a, b) in [("train", 0, 300), ("valid", 300, 350), ("test", 350, 420)] {
        write(&slice(&data, a, b), &d.join(format!("{name}.{ext}"))).expect("write");
    }
    std::fs::write(d.join("s.toml"), synthetic_schema(8).to_toml_string()).expect("w");
    let cfg = DataConfig::Files(FilesConfig {
        valid: Some(format!("valid.{ext}").into()),
        test: Some(format!("test.{ext}").into()),
        ..FilesConfig::new("s.toml", format!("train.{ext}"))
    });
    let from_files = load(&cfg, d).expect("files load");
    assert_eq!(from_files, in_memory, "{ext} round trip");

    let ins = mtrec_data::inspect(&SourceSpec::new(d.join(format!("train.{ext}"))), None)
        .expect("inspect");
    assert_eq!(ins.n_rows, 300);
    assert_eq!(ins.columns.len(), 10);
    assert!(ins.columns.iter().all(|c| c.guessed == "dense"));
}

#[test]
fn csv_round_trip_through_the_loader() {
    round_trip("csv", write_csv);
}

#[test]
fn parquet_round_trip_through_the_loader() {
    round_trip("parquet", write_parquet);
}

#[test]
fn correlation_orders_label_correlation_on_20k_rows() {
    let r: Vec<f64> = [1.0, 0.9, 0.5, 0.0]
        .iter()
        .map(|&p| {
            let d = generate(
                &SyntheticConfig {
                    correlation: p,
                    seed: 2024,
                    ..Default::default()
                },
                20_000,
            );
            let y1: Vec<f32> = d.y.iter().step_by(2).copied().collect();
            let y2: Vec<f32> = d.y.iter().skip(1).step_by(2).copied().collect();
            synthetic::pearson(&y1, &y2)
        })
        .collect();
    eprintln!("label correlation for p = 1.0, 0.9, 0.5, 0.0: {r:.3?}");
    assert!(r[0] > r[1] && r[1] > r[2] && r[2] > r[3], "{r:?}");
}
