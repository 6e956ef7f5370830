//! In-process prediction: the latency of one row and the throughput of 256-row batches through
//! `mtrec_engine::predict`, the path `mtrec predict` and the server take after decoding.

use std::time::Instant;

use burn::prelude::*;
use mtrec_arch::{ArchConfig, EmbeddingConfig};
use mtrec_data::{EncodedTable, FeatureMeta};

/// Latency percentiles in microseconds and throughput.
#[derive(Debug)]
pub struct Latency {
    pub calls: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub rows_per_second: f64,
}

/// `calls` predictions of `batch` consecutive rows of `table` (cycling), each timed alone,
/// after `calls / 10` untimed ones; the model is `arch` freshly built (weights do not change
/// the arithmetic).
pub fn measure(
    arch: &ArchConfig,
    embedding: &EmbeddingConfig,
    meta: &FeatureMeta,
    table: &EncodedTable,
    batch: usize,
    calls: usize,
) -> anyhow::Result<Latency> {
    let device = Device::flex();
    let ad = device.clone().autodiff();
    device.seed(1);
    let model = mtrec_arch::build(arch, embedding, meta, &ad)?.valid();
    let n = table.n_rows / batch;
    anyhow::ensure!(n > 0, "fewer rows than one batch of {batch}");
    let chunks: Vec<EncodedTable> = (0..n)
        .map(|i| table.select(&(i * batch..(i + 1) * batch).collect::<Vec<_>>()))
        .collect();
    let run = |i: usize| {
        let out = mtrec_engine::predict(&model, &chunks[i % n], &meta.task_kinds, batch, &device);
        std::hint::black_box(out);
    };
    for i in 0..calls / 10 {
        run(i);
    }
    let mut times = Vec::with_capacity(calls);
    let start = Instant::now();
    for i in 0..calls {
        let t = Instant::now();
        run(i);
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let total = start.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    let pct = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
    Ok(Latency {
        calls,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        p999_us: pct(0.999),
        rows_per_second: (calls * batch) as f64 / total,
    })
}
