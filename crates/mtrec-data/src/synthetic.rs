//! The synthetic data of the MMoE paper (Ma et al., KDD 2018, section 3.2;
//! spec section 2.1): two regression tasks whose relatedness is set by one
//! number, the Pearson-like `correlation` between their weight vectors.
//!
//! ```text
//! u1, u2 orthonormal in R^d (Gram-Schmidt on two Gaussian vectors)
//! w1 = c u1,  w2 = c (p u1 + sqrt(1 - p^2) u2)
//! x ~ N(0, I_d)
//! y_k = w_k.x + sum_{i=1..m} sin(alpha_i w_k.x + beta_i) + eps_k,  eps_k ~ N(0, noise_std^2)
//! alpha_i = i (i = 1..m),  beta_i = i^2 (i = 0..m-1)     (the authors' public generator)
//! ```
//!
//! The sine terms make the tasks non-linear, so that even at `p = 1` the label
//! correlation is below 1 and falls further as `p` falls. The paper's text
//! says N(0, 0.1) noise, its generator 0.01: `noise_std` defaults to 0.01.
//!
//! Everything is drawn from one ChaCha8 stream seeded by `seed`, in this
//! order: the two Gaussian vectors, then per row the `d` inputs and the two
//! noises. Train, validation and test rows are consecutive rows of one
//! stream, so they share `u1`, `u2`.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, RecordBatch};
use arrow_schema::{DataType, Field};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomically;
use crate::config::Dataset;
use crate::encode::RawTable;
use crate::error::{DataError, Result};
use crate::schema::{DenseField, Schema, TaskKind, TaskSpec};
use crate::table::EncodedTable;

/// Parameters of the generator and the split sizes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Input dimension `d` (paper: 100).
    pub dim: usize,
    /// Task correlation `p` in [-1, 1]; the paper compares 0.5, 0.9 and 1.0.
    pub correlation: f64,
    /// Weight scale `c` (paper: 1.0).
    pub scale: f64,
    /// Number of sine terms `m` (paper: 10).
    pub m: usize,
    /// Std of the label noise (authors' generator: 0.01).
    pub noise_std: f64,
    pub n_train: usize,
    pub n_valid: usize,
    pub n_test: usize,
    pub seed: u64,
}

impl Default for SyntheticConfig {
    /// Paper values for the generator; the split sizes (10k/1k/1k) are ours,
    /// the paper does not state them.
    fn default() -> Self {
        SyntheticConfig {
            dim: 100,
            correlation: 0.9,
            scale: 1.0,
            m: 10,
            noise_std: 0.01,
            n_train: 10_000,
            n_valid: 1_000,
            n_test: 1_000,
            seed: 0,
        }
    }
}

impl SyntheticConfig {
    /// Rejects parameters for which the generator is undefined.
    pub fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(DataError::config(format!("synthetic: {m}")));
        if self.dim < 2 {
            return fail(format!("dim must be at least 2 (got {})", self.dim));
        }
        if !(-1.0..=1.0).contains(&self.correlation) {
            return fail(format!(
                "correlation must be in [-1, 1] (got {})",
                self.correlation
            ));
        }
        if !self.scale.is_finite() {
            return fail(format!("scale must be finite (got {})", self.scale));
        }
        if !(self.noise_std.is_finite() && self.noise_std >= 0.0) {
            return fail(format!("noise_std must be >= 0 (got {})", self.noise_std));
        }
        if self.n_train == 0 {
            return fail("n_train must be positive".into());
        }
        Ok(())
    }
}

/// Generated rows plus the hidden parameters, kept for tests and plots.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticData {
    pub u1: Vec<f64>,
    pub u2: Vec<f64>,
    pub w1: Vec<f64>,
    pub w2: Vec<f64>,
    /// `n * dim` inputs, row-major.
    pub x: Vec<f32>,
    /// `n * 2` labels `(y1, y2)`, row-major.
    pub y: Vec<f32>,
    pub n: usize,
    pub dim: usize,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn normalised(v: Vec<f64>) -> Vec<f64> {
    let norm = dot(&v, &v).sqrt();
    if norm > 1e-12 {
        v.into_iter().map(|x| x / norm).collect()
    } else {
        vec![0.0; v.len()]
    }
}

/// Generates `n` rows (the config's split sizes are ignored here).
/// Out-of-range parameters are clamped rather than rejected; [`SyntheticConfig::validate`]
/// is where they are refused.
pub fn generate(cfg: &SyntheticConfig, n: usize) -> SyntheticData {
    let d = cfg.dim;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let gaussian = |rng: &mut ChaCha8Rng| -> Vec<f64> {
        (0..d)
            .map(|_| rng.sample::<f64, _>(StandardNormal))
            .collect()
    };
    let g1 = gaussian(&mut rng);
    let g2 = gaussian(&mut rng);
    let u1 = normalised(g1);
    // Two Gram-Schmidt passes: the second removes the rounding left by the first.
    let mut v2 = g2;
    for _ in 0..2 {
        let proj = dot(&v2, &u1);
        for (v, u) in v2.iter_mut().zip(&u1) {
            *v -= proj * u;
        }
    }
    let u2 = normalised(v2);

    let p = cfg.correlation.clamp(-1.0, 1.0);
    let c = cfg.scale;
    let q = (1.0 - p * p).max(0.0).sqrt();
    let w1: Vec<f64> = u1.iter().map(|u| c * u).collect();
    let w2: Vec<f64> = u1
        .iter()
        .zip(&u2)
        .map(|(a, b)| c * (p * a + q * b))
        .collect();
    let alphas: Vec<f64> = (1..=cfg.m).map(|i| i as f64).collect();
    let betas: Vec<f64> = (0..cfg.m).map(|i| (i * i) as f64).collect();
    let noise = cfg.noise_std.abs();
    let target = |wx: f64| -> f64 {
        wx + alphas
            .iter()
            .zip(&betas)
            .map(|(a, b)| (a * wx + b).sin())
            .sum::<f64>()
    };

    let mut x = Vec::with_capacity(n * d);
    let mut y = Vec::with_capacity(n * 2);
    let mut row = vec![0.0f64; d];
    for _ in 0..n {
        for v in row.iter_mut() {
            // Labels are computed from the stored (f32) inputs, so that a file
            // round trip reproduces them exactly.
            let xi = rng.sample::<f64, _>(StandardNormal) as f32;
            x.push(xi);
            *v = f64::from(xi);
        }
        let e1 = noise * rng.sample::<f64, _>(StandardNormal);
        let e2 = noise * rng.sample::<f64, _>(StandardNormal);
        y.push((target(dot(&w1, &row)) + e1) as f32);
        y.push((target(dot(&w2, &row)) + e2) as f32);
    }
    SyntheticData {
        u1,
        u2,
        w1,
        w2,
        x,
        y,
        n,
        dim: d,
    }
}

/// Input and label column names: `x0..x{d-1}`, `y1`, `y2`.
fn column_names(dim: usize) -> Vec<String> {
    (0..dim)
        .map(|j| format!("x{j}"))
        .chain(["y1".to_string(), "y2".to_string()])
        .collect()
}

/// The schema of written synthetic files: dense `x0..`, regression tasks
/// `task1` (column `y1`) and `task2` (column `y2`).
pub fn synthetic_schema(dim: usize) -> Schema {
    Schema {
        columns: None,
        sparse: Vec::new(),
        dense: (0..dim).map(|j| DenseField::new(format!("x{j}"))).collect(),
        // Raw labels, as the MMoE paper trains them (its reported MSEs are on that scale).
        tasks: [("task1", "y1"), ("task2", "y2")]
            .map(|(name, column)| TaskSpec {
                scale: Some(crate::LabelScale::None),
                ..TaskSpec::new(name, TaskKind::Regression, column)
            })
            .into(),
    }
}

/// Writes the rows as CSV with a header; floats are written in their shortest
/// exact form, so reading them back gives the same f32 values.
pub fn write_csv(data: &SyntheticData, path: &Path) -> Result<()> {
    write_atomically(path, |w| {
        let io = |e| DataError::io(path, e);
        writeln!(w, "{}", column_names(data.dim).join(",")).map_err(io)?;
        for r in 0..data.n {
            let xs = &data.x[r * data.dim..(r + 1) * data.dim];
            for v in xs {
                write!(w, "{v},").map_err(io)?;
            }
            writeln!(w, "{},{}", data.y[2 * r], data.y[2 * r + 1]).map_err(io)?;
        }
        Ok(())
    })
}

/// Writes the rows as Parquet (Float32 columns, Snappy).
pub fn write_parquet(data: &SyntheticData, path: &Path) -> Result<()> {
    const CHUNK: usize = 8192;
    let perr = |e: &dyn std::fmt::Display| DataError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let names = column_names(data.dim);
    let schema = Arc::new(arrow_schema::Schema::new(
        names
            .iter()
            .map(|n| Field::new(n, DataType::Float32, false))
            .collect::<Vec<_>>(),
    ));
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    write_atomically(path, |w| {
        let mut writer =
            ArrowWriter::try_new(w, schema.clone(), Some(props)).map_err(|e| perr(&e))?;
        let mut start = 0;
        while start < data.n {
            let end = (start + CHUNK).min(data.n);
            let mut columns: Vec<ArrayRef> = (0..data.dim)
                .map(|j| {
                    let col: Float32Array =
                        (start..end).map(|r| data.x[r * data.dim + j]).collect();
                    Arc::new(col) as ArrayRef
                })
                .collect();
            for k in 0..2 {
                let col: Float32Array = (start..end).map(|r| data.y[2 * r + k]).collect();
                columns.push(Arc::new(col));
            }
            let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| perr(&e))?;
            writer.write(&batch).map_err(|e| perr(&e))?;
            start = end;
        }
        writer.close().map_err(|e| perr(&e))?;
        Ok(())
    })
}

/// The data set of a config: train, valid and test are consecutive rows of
/// one generated stream; inputs are standardised with train statistics like
/// any other data set (a near no-op here, as `x` is already standard normal).
pub fn dataset(cfg: &SyntheticConfig) -> Result<Dataset> {
    cfg.validate()?;
    let n = cfg.n_train + cfg.n_valid + cfg.n_test;
    let data = generate(cfg, n);
    let schema = synthetic_schema(cfg.dim);
    let raw = RawTable {
        table: EncodedTable {
            n_rows: n,
            n_sparse: 0,
            n_dense: cfg.dim,
            n_tasks: 2,
            sparse: Vec::new(),
            dense: data.x,
            labels: data.y,
            ..EncodedTable::default()
        },
        interners: Vec::new(),
    };
    let a = cfg.n_train;
    let b = a + cfg.n_valid;
    Dataset::from_raw(
        &schema,
        &raw,
        (0..a).collect(),
        (a..b).collect(),
        (b..n).collect(),
        None,
    )
}

/// Pearson correlation of two equally long samples (0 when undefined).
pub fn pearson(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    if n == 0 {
        return 0.0;
    }
    let mean = |v: &[f32]| v[..n].iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a[..n].iter().zip(&b[..n]) {
        let (dx, dy) = (f64::from(x) - ma, f64::from(y) - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    let den = (saa * sbb).sqrt();
    if den > 0.0 { sab / den } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(correlation: f64, seed: u64) -> SyntheticConfig {
        SyntheticConfig {
            correlation,
            seed,
            ..SyntheticConfig::default()
        }
    }

    #[test]
    fn u1_u2_are_orthonormal_and_w2_has_the_requested_cosine() {
        let d = generate(&cfg(0.5, 3), 0);
        assert!((dot(&d.u1, &d.u1) - 1.0).abs() < 1e-9);
        assert!((dot(&d.u2, &d.u2) - 1.0).abs() < 1e-9);
        assert!(dot(&d.u1, &d.u2).abs() < 1e-9);
        let cos = dot(&d.w1, &d.w2) / (dot(&d.w1, &d.w1) * dot(&d.w2, &d.w2)).sqrt();
        assert!((cos - 0.5).abs() < 1e-9, "{cos}");
    }

    #[test]
    fn label_correlation_falls_with_task_correlation() {
        let r: Vec<f64> = [1.0, 0.9, 0.5, 0.0]
            .iter()
            .map(|&p| {
                let d = generate(&cfg(p, 11), 20_000);
                let y1: Vec<f32> = d.y.iter().step_by(2).copied().collect();
                let y2: Vec<f32> = d.y.iter().skip(1).step_by(2).copied().collect();
                pearson(&y1, &y2)
            })
            .collect();
        assert!(r[0] > 0.99, "{r:?}");
        assert!(r[0] > r[1] && r[1] > r[2] && r[2] > r[3], "{r:?}");
        assert!(r[3].abs() < 0.05, "{r:?}");
    }

    #[test]
    fn labels_follow_the_formula() {
        let mut c = cfg(0.9, 5);
        c.noise_std = 0.0;
        c.dim = 4;
        let d = generate(&c, 3);
        for r in 0..3 {
            let x: Vec<f64> = d.x[r * 4..(r + 1) * 4]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            for (k, w) in [&d.w1, &d.w2].into_iter().enumerate() {
                let wx = dot(w, &x);
                let mut y = wx;
                for i in 1..=10 {
                    y += (i as f64 * wx + ((i - 1) * (i - 1)) as f64).sin();
                }
                assert!((f64::from(d.y[2 * r + k]) - y).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        assert_eq!(generate(&cfg(0.5, 1), 50), generate(&cfg(0.5, 1), 50));
        assert_ne!(generate(&cfg(0.5, 1), 50).x, generate(&cfg(0.5, 2), 50).x);
    }

    #[test]
    fn dataset_splits_one_stream() {
        let c = SyntheticConfig {
            n_train: 100,
            n_valid: 20,
            n_test: 30,
            ..cfg(0.5, 9)
        };
        let ds = dataset(&c).expect("dataset");
        assert_eq!(
            (ds.train.n_rows, ds.valid.n_rows, ds.test.n_rows),
            (100, 20, 30)
        );
        assert_eq!(ds.meta().task_names, vec!["task1", "task2"]);
        assert_eq!(ds.meta().dense_names.len(), 100);
        let all = generate(&c, 150);
        assert_eq!(ds.test.labels[..], all.y[240..]);
        assert!(
            dataset(&SyntheticConfig {
                dim: 1,
                ..c.clone()
            })
            .is_err()
        );
        assert!(
            dataset(&SyntheticConfig {
                correlation: 1.5,
                ..c
            })
            .is_err()
        );
    }
}
