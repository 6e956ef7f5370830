//! The `load-parquet` / `load-csv` workloads: rows per second of `mtrec_data::load` (read,
//! split, fit vocabularies and dense statistics on the training rows, encode every split) on
//! a file in the `mmoe-large` layout: planted data with 26 categorical fields (vocabularies
//! from 10 to 100k, Zipf-distributed values, stored as integers), 13 dense and 2 label columns.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use mtrec_data::planted::{self, TaskGroup};
use mtrec_data::{DataConfig, PlantedConfig};

/// The data file of `rows` rows with extension `ext` under `dir`, generated once and reused.
pub fn data_file(dir: &Path, rows: usize, ext: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("large-{rows}.{ext}"));
    if path.is_file() && planted::schema_path(&path).is_file() {
        return Ok(path);
    }
    let cfg = PlantedConfig {
        n_sparse: 26,
        n_dense: 13,
        groups: vec![TaskGroup::new("g0", &[("click", 0.25), ("convert", 0.05)])],
        ..PlantedConfig::default()
    };
    let start = Instant::now();
    planted::write(&cfg, rows, &path).with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "wrote {} ({rows} rows) in {:.1} s",
        path.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(path)
}

/// Seconds of one full load of `path` (80/10/10 split).
pub fn load_seconds(path: &Path) -> Result<f64> {
    let text = format!(
        "kind = \"files\"\nschema = {:?}\ntrain = {:?}\n",
        planted::schema_path(path).display().to_string(),
        path.display().to_string()
    );
    let cfg: DataConfig = toml::from_str(&text)?;
    let start = Instant::now();
    let data = mtrec_data::load(&cfg, Path::new("."))?;
    let seconds = start.elapsed().as_secs_f64();
    std::hint::black_box(data.train.n_rows);
    Ok(seconds)
}
