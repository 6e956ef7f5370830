//! The load test of `mtrec serve` (run by the `mtrec-loadtest` binary).
//!
//! It drives one server on this machine's loopback with keep-alive connections, one per
//! concurrent client, each sending its next request as soon as the last is answered. The
//! requests are prepared before the clock starts: rows drawn from the checkpoint's own
//! vocabularies and statistics (known and unknown categories, missing values), each
//! request's expected answer computed in-process with the same checkpoint, and its exact
//! bytes rendered. An answer whose bytes differ is parsed and compared value by value: a
//! difference over [`TOLERANCE`] counts as a wrong answer, a smaller one as inexact. Every
//! level is bounded in requests and in time, and the mixed stream adds malformed requests
//! whose exact 4xx status is checked.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::Method;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use mtrec_data::RecordFieldKind;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::api::{ModelStamp, PredictAnswer, PredictResponse, Predictions};
use crate::client::Client;
use crate::model::LoadedModel;

/// Largest difference between a served and an expected prediction that is not a wrong
/// answer. Batching requests together changes no prediction here (the tests check exact
/// equality); the margin keeps a backend whose kernels depend on batch size from
/// reporting rounding as wrong answers, while a mixed-up answer is off by far more.
pub const TOLERANCE: f32 = 1e-5;

/// A `/predict` request ready to send, and what a correct answer is.
#[derive(Clone)]
pub struct Prepared {
    pub body: Bytes,
    /// The exact bytes of the correct answer.
    pub answer: Bytes,
    /// `[task][row]`, for comparing an answer whose bytes differ.
    pub expected: Vec<Vec<f32>>,
}

/// A malformed request of the mixed stream and the status it must get.
#[derive(Clone)]
pub struct Malformed {
    pub what: &'static str,
    pub method: Method,
    pub path: &'static str,
    pub body: Bytes,
    pub status: u16,
}

/// Requests for one batch size.
pub struct Requests {
    pub batch: usize,
    pub valid: Vec<Prepared>,
}

/// `n` rows a client could send to `model`: known values mostly, some unknown or missing.
pub fn synth_rows(model: &LoadedModel, n: usize, seed: u64) -> Vec<Map<String, Value>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pre = &model.preprocessor;
    let mut dense = 0;
    let fields: Vec<_> = model
        .decoder
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let j = match f.kind {
                RecordFieldKind::Numeric { .. } => {
                    dense += 1;
                    Some(dense - 1)
                }
                RecordFieldKind::Categorical { .. } => None,
            };
            (i, f, j)
        })
        .collect();
    (0..n)
        .map(|_| {
            let mut row = Map::new();
            for (i, field, j) in &fields {
                let value = if rng.random_bool(0.03) {
                    Value::Null
                } else {
                    match (&field.kind, j) {
                        (RecordFieldKind::Numeric { .. }, Some(j)) => {
                            let s = pre.dense_stats.get(*j).copied().unwrap_or_default();
                            let z: f32 = rng.random_range(-2.0..2.0);
                            json!(s.mean + s.std * z)
                        }
                        (RecordFieldKind::Categorical { separator, .. }, _) => {
                            let vocab = pre.vocabs.get(*i).map(|v| v.values()).unwrap_or(&[]);
                            let pick = |rng: &mut ChaCha8Rng| {
                                if vocab.is_empty() || rng.random_bool(0.05) {
                                    format!("unseen-{}", rng.random_range(0..1000))
                                } else {
                                    vocab[rng.random_range(0..vocab.len())].clone()
                                }
                            };
                            match separator {
                                Some(sep) => {
                                    let k = rng.random_range(0..4);
                                    let values: Vec<String> =
                                        (0..k).map(|_| pick(&mut rng)).collect();
                                    json!(values.join(sep))
                                }
                                None => json!(pick(&mut rng)),
                            }
                        }
                        _ => Value::Null,
                    }
                };
                row.insert(field.column.clone(), value);
            }
            row
        })
        .collect()
}

/// `count` requests of `batch` rows each, windows of `pool`, with their answers computed
/// in-process by `model` (one batch per request, as the server's inference thread would).
pub fn prepare(
    model: &LoadedModel,
    pool: &[Map<String, Value>],
    batch: usize,
    count: usize,
    device: &burn::prelude::Device,
) -> anyhow::Result<Requests> {
    let mut valid = Vec::with_capacity(count);
    for k in 0..count {
        let rows: Vec<Map<String, Value>> = (0..batch)
            .map(|i| pool[(k * 7919 + i) % pool.len()].clone())
            .collect();
        let table = model
            .decoder
            .encode(&model.preprocessor, &rows)
            .map_err(|e| anyhow::anyhow!("a prepared row does not encode: {}", e[0]))?;
        let expected = mtrec_engine::predict(
            &model.model,
            &table,
            &model.task_kinds,
            batch.max(1),
            device,
        );
        let answer = serde_json::to_vec(&PredictResponse {
            model: ModelStamp {
                name: model.name.as_str().into(),
                generation: model.generation,
            },
            tasks: &model.task_names,
            predictions: Predictions {
                tasks: &model.task_names,
                values: &expected,
            },
        })?;
        valid.push(Prepared {
            body: serde_json::to_vec(&json!({ "rows": rows }))?.into(),
            answer: answer.into(),
            expected,
        });
    }
    Ok(Requests { batch, valid })
}

/// The malformed requests of the mixed stream, built from a valid row.
pub fn malformed(row: &Map<String, Value>, max_rows: usize) -> Vec<Malformed> {
    let post = |what, body: Vec<u8>, status| Malformed {
        what,
        method: Method::POST,
        path: "/predict",
        body: body.into(),
        status,
    };
    let mut cases = vec![
        post("not JSON", b"{\"rows\": [".to_vec(), 400),
        post("NaN", b"{\"rows\": [{\"x\": NaN}]}".to_vec(), 400),
        post("no rows key", b"{}".to_vec(), 400),
        Malformed {
            what: "wrong path",
            method: Method::GET,
            path: "/nowhere",
            body: Bytes::new(),
            status: 404,
        },
    ];
    if let Some((first, _)) = row.iter().next() {
        let mut missing = row.clone();
        missing.remove(first);
        let mut wrong_type = row.clone();
        wrong_type.insert(first.clone(), json!(true));
        let mut unknown = row.clone();
        unknown.insert("no-such-field".into(), json!(1));
        for (what, r) in [
            ("missing field", missing),
            ("wrong type", wrong_type),
            ("unknown field", unknown),
        ] {
            let body = serde_json::to_vec(&json!({ "rows": [row, r] })).unwrap_or_default();
            cases.push(post(what, body, 422));
        }
    }
    // Too many rows, when that stays a small body.
    if max_rows < 2000 {
        let rows = vec![Value::Object(Map::new()); max_rows + 1];
        let body = serde_json::to_vec(&json!({ "rows": rows })).unwrap_or_default();
        cases.push(post("too many rows", body, 413));
    }
    cases
}

/// Counts and latencies of one run of requests.
#[derive(Default, Debug, Clone)]
pub struct Tally {
    pub ok: usize,
    /// Valid requests answered with another status, or not answered (connection errors).
    pub errors: usize,
    /// 200 answers whose predictions are off by more than [`TOLERANCE`].
    pub wrong: usize,
    /// 200 answers within the tolerance but not byte-identical.
    pub inexact: usize,
    pub malformed_sent: usize,
    /// Malformed requests not answered with their exact 4xx status.
    pub malformed_unexpected: usize,
    /// Latency of every valid request, in microseconds.
    pub latencies_us: Vec<u32>,
    pub rows: usize,
    pub first_problem: Option<String>,
}

impl Tally {
    /// Adds another run's counts and latencies.
    pub fn merge(&mut self, o: Tally) {
        self.ok += o.ok;
        self.errors += o.errors;
        self.wrong += o.wrong;
        self.inexact += o.inexact;
        self.malformed_sent += o.malformed_sent;
        self.malformed_unexpected += o.malformed_unexpected;
        self.latencies_us.extend(o.latencies_us);
        self.rows += o.rows;
        if self.first_problem.is_none() {
            self.first_problem = o.first_problem;
        }
    }

    fn problem(&mut self, what: String) {
        if self.first_problem.is_none() {
            self.first_problem = Some(what);
        }
    }
}

/// How one run of requests is made.
#[derive(Clone, Debug)]
pub struct Plan {
    pub concurrency: usize,
    /// Requests in all (malformed ones included).
    pub max_requests: usize,
    pub max_time: Duration,
    /// Share of requests that are malformed (0 for the latency levels).
    pub malformed_share: f64,
    pub seed: u64,
}

/// Runs `plan` against the server at `addr`, drawing valid requests from `mixes` (a
/// request set and its weight) and malformed ones from `bad`.
pub async fn run(
    addr: SocketAddr,
    mixes: Arc<Vec<(Requests, f64)>>,
    bad: Arc<Vec<Malformed>>,
    plan: &Plan,
) -> (Tally, Duration) {
    let sent = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut clients = Vec::with_capacity(plan.concurrency);
    for c in 0..plan.concurrency {
        let (mixes, bad, sent, plan) = (mixes.clone(), bad.clone(), sent.clone(), plan.clone());
        clients.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(plan.seed ^ (c as u64).wrapping_mul(0x9e37));
            let mut client = Client::new(addr);
            let mut tally = Tally::default();
            let total: f64 = mixes.iter().map(|(_, w)| w).sum();
            while sent.fetch_add(1, Ordering::Relaxed) < plan.max_requests
                && start.elapsed() < plan.max_time
            {
                if !bad.is_empty() && rng.random_bool(plan.malformed_share.clamp(0.0, 1.0)) {
                    let m = &bad[rng.random_range(0..bad.len())];
                    tally.malformed_sent += 1;
                    match client
                        .request(m.method.clone(), m.path, m.body.clone())
                        .await
                    {
                        Ok(a) if a.status == m.status => {}
                        Ok(a) => {
                            tally.malformed_unexpected += 1;
                            tally.problem(format!(
                                "{}: status {} instead of {}: {}",
                                m.what,
                                a.status,
                                m.status,
                                String::from_utf8_lossy(&a.body[..a.body.len().min(200)])
                            ));
                        }
                        Err(e) => {
                            tally.malformed_unexpected += 1;
                            tally.problem(format!("{}: {e}", m.what));
                        }
                    }
                    continue;
                }
                let mut pick = rng.random_range(0.0..total.max(f64::MIN_POSITIVE));
                let set = mixes
                    .iter()
                    .find(|(_, w)| {
                        pick -= w;
                        pick < 0.0
                    })
                    .unwrap_or(&mixes[0]);
                let requests = &set.0;
                let p = &requests.valid[rng.random_range(0..requests.valid.len())];
                let t0 = Instant::now();
                let answer = client.post("/predict", p.body.clone()).await;
                let us = t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                match answer {
                    Ok(a) if a.status == 200 => {
                        tally.latencies_us.push(us);
                        tally.rows += requests.batch;
                        if a.body == p.answer {
                            tally.ok += 1;
                        } else {
                            match check(&a.body, &p.expected) {
                                Ok(()) => {
                                    tally.ok += 1;
                                    tally.inexact += 1;
                                }
                                Err(why) => {
                                    tally.wrong += 1;
                                    tally.problem(why);
                                }
                            }
                        }
                    }
                    Ok(a) => {
                        tally.errors += 1;
                        tally.problem(format!(
                            "status {}: {}",
                            a.status,
                            String::from_utf8_lossy(&a.body[..a.body.len().min(200)])
                        ));
                    }
                    Err(e) => {
                        tally.errors += 1;
                        tally.problem(format!("no answer: {e}"));
                    }
                }
            }
            tally
        }));
    }
    let mut tally = Tally::default();
    for c in clients {
        if let Ok(t) = c.await {
            tally.merge(t);
        }
    }
    (tally, start.elapsed())
}

/// Whether an answer's predictions are the expected ones within [`TOLERANCE`].
fn check(body: &[u8], expected: &[Vec<f32>]) -> Result<(), String> {
    let answer: PredictAnswer =
        serde_json::from_slice(body).map_err(|e| format!("unreadable answer: {e}"))?;
    let got = answer.columns();
    if got.len() != expected.len() || got.iter().zip(expected).any(|(g, e)| g.len() != e.len()) {
        return Err("an answer with the wrong number of rows or tasks".into());
    }
    let worst = got
        .iter()
        .flatten()
        .zip(expected.iter().flatten())
        .map(|(g, e)| (g - e).abs())
        .fold(
            0.0f32,
            |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
        );
    if worst > TOLERANCE {
        return Err(format!("a prediction off by {worst}"));
    }
    Ok(())
}

/// The nearest-rank percentile `p` (0-100) of sorted values.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    // The small slack keeps binary rounding (99.9 % of 1000 = 999.0000000000001) from
    // moving the rank up by one.
    let rank = ((p / 100.0) * sorted.len() as f64 - 1e-9).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The server's resident memory in KiB (VmRSS of /proc/<pid>/status), where readable.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// One row of the results: a batch size at a concurrency.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct LevelResult {
    /// `batch-N` (requests of N rows), `mixed` (every batch size and malformed requests) or
    /// `soak` (the mixed stream for a long time).
    pub workload: String,
    /// Rows per request; for a mix, its largest batch.
    pub batch: usize,
    pub concurrency: usize,
    pub requests: usize,
    pub ok: usize,
    pub errors: usize,
    pub wrong: usize,
    pub inexact: usize,
    pub malformed_sent: usize,
    pub malformed_unexpected: usize,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub rows_per_second: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub rss_start_kib: Option<u64>,
    pub rss_end_kib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_problem: Option<String>,
}

impl LevelResult {
    pub fn new(
        batch: usize,
        concurrency: usize,
        mut tally: Tally,
        elapsed: Duration,
        rss: (Option<u64>, Option<u64>),
    ) -> LevelResult {
        tally.latencies_us.sort_unstable();
        let ms = |p: f64| percentile(&tally.latencies_us, p).map(|us| f64::from(us) / 1000.0);
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let answered = tally.latencies_us.len();
        LevelResult {
            workload: format!("batch-{batch}"),
            batch,
            concurrency,
            requests: answered + tally.errors + tally.malformed_sent,
            ok: tally.ok,
            errors: tally.errors,
            wrong: tally.wrong,
            inexact: tally.inexact,
            malformed_sent: tally.malformed_sent,
            malformed_unexpected: tally.malformed_unexpected,
            seconds,
            requests_per_second: answered as f64 / seconds,
            rows_per_second: tally.rows as f64 / seconds,
            p50_ms: ms(50.0),
            p99_ms: ms(99.0),
            p999_ms: ms(99.9),
            max_ms: ms(100.0),
            rss_start_kib: rss.0,
            rss_end_kib: rss.1,
            first_problem: tally.first_problem,
        }
    }
}

/// The results as a terminal table.
pub fn table(results: &[LevelResult]) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "workload",
        "clients",
        "requests",
        "req/s",
        "rows/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "errors",
        "wrong",
        "bad 4xx ok",
        "RSS MiB",
    ]);
    let ms = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.3}"));
    let mib =
        |v: Option<u64>| v.map_or_else(|| "-".into(), |v| format!("{:.1}", v as f64 / 1024.0));
    for r in results {
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        let malformed = match r.malformed_sent {
            0 => "-".to_string(),
            n => format!("{}/{n}", n - r.malformed_unexpected),
        };
        t.add_row(vec![
            Cell::new(&r.workload),
            right(r.concurrency.to_string()),
            right(r.requests.to_string()),
            right(format!("{:.0}", r.requests_per_second)),
            right(format!("{:.0}", r.rows_per_second)),
            right(ms(r.p50_ms)),
            right(ms(r.p99_ms)),
            right(ms(r.p999_ms)),
            right(ms(r.max_ms)),
            right(r.errors.to_string()),
            right(r.wrong.to_string()),
            right(malformed),
            right(format!(
                "{} -> {}",
                mib(r.rss_start_kib),
                mib(r.rss_end_kib)
            )),
        ]);
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&v, 50.0), Some(500));
        assert_eq!(percentile(&v, 99.0), Some(990));
        assert_eq!(percentile(&v, 99.9), Some(999));
        assert_eq!(percentile(&v, 100.0), Some(1000));
        assert_eq!(percentile(&[7], 99.9), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        // 10 values: p99 is the 10th (ceil(9.9)), p50 the 5th.
        let v: Vec<u32> = (1..=10).collect();
        assert_eq!(
            (percentile(&v, 50.0), percentile(&v, 99.0)),
            (Some(5), Some(10))
        );
    }

    #[test]
    fn answers_are_checked_value_by_value() {
        let expected = vec![vec![0.5f32, 0.25]];
        let body = br#"{"model":{"name":"m","generation":1},"tasks":["a"],"predictions":[{"a":0.5},{"a":0.250001}]}"#;
        assert!(check(body, &expected).is_ok());
        let body = br#"{"model":{"name":"m","generation":1},"tasks":["a"],"predictions":[{"a":0.25},{"a":0.5}]}"#;
        assert!(check(body, &expected).unwrap_err().contains("off by 0.25"));
        let body =
            br#"{"model":{"name":"m","generation":1},"tasks":["a"],"predictions":[{"a":0.5}]}"#;
        assert!(check(body, &expected).is_err());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn rss_of_this_process_is_readable() {
        let kib = rss_kib(std::process::id()).expect("VmRSS on Linux");
        assert!(kib > 100, "{kib}");
    }
}
