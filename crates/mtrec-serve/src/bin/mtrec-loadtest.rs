//! `mtrec-loadtest`: drives `mtrec serve` over loopback and reports throughput, latency
//! percentiles, wrong answers and the server's memory (see `mtrec_serve::loadtest`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use mtrec_serve::LoadedModel;
use mtrec_serve::client::Client;
use mtrec_serve::loadtest::{
    LevelResult, Plan, Requests, Tally, malformed, prepare, rss_kib, run, synth_rows, table,
};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(
    name = "mtrec-loadtest",
    about = "Load test of `mtrec serve` over loopback: requests/s, p50/p99/p99.9 latency, \
             wrong answers, server memory.",
    after_help = "Examples:\n  mtrec-loadtest --checkpoint runs/demo                       # starts `mtrec serve` itself\n  mtrec-loadtest --checkpoint runs/demo --requests 200 --seconds 2 --concurrency 1,4   # a smoke run\n  mtrec-loadtest --checkpoint runs/demo --soak 600 --sample-every 10   # 10-minute soak: RSS over time\n  mtrec-loadtest --checkpoint runs/demo --addr 127.0.0.1:8080 --pid 4242   # a running server\n\nEvery level (a batch size at a concurrency) sends at most --requests requests for at most\n--seconds seconds; then a mixed stream of all batch sizes with --malformed-share malformed\nrequests checks that each gets its exact 4xx. Only loopback addresses are accepted.\nExit status 1 when any request failed, was answered wrongly, or the server died."
)]
struct Args {
    /// Checkpoint the server serves (read here too, to know the right answers).
    #[arg(long)]
    checkpoint: PathBuf,
    /// A server already running on this address (loopback only); default: start one.
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Process id of the server at --addr, to read its memory.
    #[arg(long, requires = "addr")]
    pid: Option<u32>,
    /// The `mtrec` binary to start (default: the one beside this program).
    #[arg(long, conflicts_with = "addr")]
    mtrec: Option<PathBuf>,
    /// Tensor threads of the started server (`mtrec --threads`).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Threads of this program's clients.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Rows per request, one set of levels each.
    #[arg(long, value_delimiter = ',', default_value = "1,256")]
    batches: Vec<usize>,
    /// Concurrent clients (keep-alive connections), one level each.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    concurrency: Vec<usize>,
    /// Requests per level at most.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Seconds per level at most.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Share of malformed requests in the mixed stream (and the soak).
    #[arg(long, default_value_t = 0.1)]
    malformed_share: f64,
    /// Seconds of a soak run after the levels (0: none): the mixed stream, RSS sampled.
    #[arg(long, default_value_t = 0.0)]
    soak: f64,
    /// Clients of the soak run.
    #[arg(long, default_value_t = 4)]
    soak_concurrency: usize,
    /// Seconds between two RSS samples of the soak run.
    #[arg(long, default_value_t = 10.0)]
    sample_every: f64,
    /// JSON results file.
    #[arg(long, default_value = "loadtest.json")]
    out: PathBuf,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match main_with(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A server this program started, stopped with SIGTERM when dropped.
struct Started {
    child: Child,
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn main_with(args: Args) -> Result<bool> {
    let positive = |name: &str, v: f64| {
        if !(v.is_finite() && v > 0.0) {
            bail!("--{name} must be a positive number of seconds, got {v}");
        }
        Ok(Duration::from_secs_f64(v))
    };
    let level_time = positive("seconds", args.seconds)?;
    if args.batches.is_empty() || args.batches.contains(&0) {
        bail!("--batches: sizes of at least 1 row");
    }
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        bail!("--concurrency: at least 1 client per level");
    }
    if let Some(addr) = args.addr
        && !addr.ip().is_loopback()
    {
        bail!("--addr {addr}: the load test only drives servers on this machine's loopback");
    }

    eprintln!("preparing requests from {}", args.checkpoint.display());
    let device = mtrec_engine::default_device();
    let model = LoadedModel::load(&args.checkpoint, 1, &device)?;
    let pool = synth_rows(&model, 4096, args.seed);
    let max_batch = *args.batches.iter().max().unwrap_or(&1);
    let sets: Vec<Requests> = args
        .batches
        .iter()
        .map(|&b| prepare(&model, &pool, b, if b >= 64 { 16 } else { 256 }, &device))
        .collect::<Result<_>>()?;

    let (addr, mut started, pid) = match args.addr {
        Some(addr) => (addr, None, args.pid),
        None => {
            let (addr, child) = start_server(&args)?;
            let pid = child.id();
            (addr, Some(Started { child }), Some(pid))
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()?;
    let rss = || pid.and_then(rss_kib);

    let info: Value = runtime.block_on(async { Client::new(addr).get("/model").await?.json() })?;
    let max_rows = info["limits"]["max_rows"].as_u64().unwrap_or(10_000) as usize;
    let bad = Arc::new(malformed(&pool[0], max_rows));
    let rss_at_start = rss();

    let mut results = Vec::new();
    for (i, &batch) in args.batches.iter().enumerate() {
        let mixes = Arc::new(vec![(
            Requests {
                batch,
                valid: sets[i].valid.clone(),
            },
            1.0,
        )]);
        // Warm-up: first-touch allocations and caches, not measured.
        let warm = Plan {
            concurrency: 1,
            max_requests: 20,
            max_time: level_time,
            malformed_share: 0.0,
            seed: args.seed,
        };
        runtime.block_on(run(addr, mixes.clone(), Arc::new(Vec::new()), &warm));
        for &concurrency in &args.concurrency {
            let plan = Plan {
                concurrency,
                max_requests: args.requests,
                max_time: level_time,
                malformed_share: 0.0,
                seed: args.seed + concurrency as u64,
            };
            let before = rss();
            let (tally, elapsed) =
                runtime.block_on(run(addr, mixes.clone(), Arc::new(Vec::new()), &plan));
            let r = LevelResult::new(batch, concurrency, tally, elapsed, (before, rss()));
            report_level(&r);
            results.push(r);
        }
    }

    // The mixed stream: every batch size (small ones mostly) and malformed requests.
    let mixes = Arc::new(mix(&args.batches, &sets));
    let concurrency = *args.concurrency.iter().max().unwrap_or(&1);
    let plan = Plan {
        concurrency,
        max_requests: args.requests,
        max_time: level_time,
        malformed_share: args.malformed_share,
        seed: args.seed + 1000,
    };
    let before = rss();
    let (tally, elapsed) = runtime.block_on(run(addr, mixes.clone(), bad.clone(), &plan));
    let mut r = LevelResult::new(max_batch, concurrency, tally, elapsed, (before, rss()));
    r.workload = "mixed".into();
    report_level(&r);
    results.push(r);

    // The soak: the mixed stream for --soak seconds, RSS sampled as it goes.
    let mut soak = None;
    if args.soak > 0.0 {
        let every = positive("sample-every", args.sample_every)?;
        let end = Instant::now() + Duration::from_secs_f64(args.soak);
        let mut samples = vec![json!({"seconds": 0.0, "rss_kib": rss(), "requests": 0})];
        let (mut all, mut time) = (Tally::default(), Duration::ZERO);
        let start = Instant::now();
        let mut round = 0u64;
        while Instant::now() < end {
            let plan = Plan {
                concurrency: args.soak_concurrency.max(1),
                max_requests: usize::MAX,
                max_time: every.min(end.saturating_duration_since(Instant::now())),
                malformed_share: args.malformed_share,
                seed: args.seed + 2000 + round,
            };
            round += 1;
            let (tally, elapsed) = runtime.block_on(run(addr, mixes.clone(), bad.clone(), &plan));
            time += elapsed;
            all.merge(tally);
            let requests = all.latencies_us.len() + all.errors + all.malformed_sent;
            let sample = json!({
                "seconds": start.elapsed().as_secs_f64(),
                "rss_kib": rss(),
                "requests": requests,
            });
            eprintln!("soak: {sample}");
            samples.push(sample);
        }
        let first = samples.first().and_then(|s| s["rss_kib"].as_u64());
        let last = samples.last().and_then(|s| s["rss_kib"].as_u64());
        let mut r = LevelResult::new(
            max_batch,
            args.soak_concurrency.max(1),
            all,
            time,
            (first, last),
        );
        r.workload = "soak".into();
        report_level(&r);
        soak = Some(json!({ "result": r, "rss_samples": samples }));
    }

    // Still alive, and it counted no server error?
    let health: Option<Value> = runtime
        .block_on(async { Client::new(addr).get("/health").await?.json() })
        .ok();
    let alive = health.is_some()
        && started
            .as_mut()
            .is_none_or(|s| matches!(s.child.try_wait(), Ok(None)));
    let server_errors = health
        .as_ref()
        .and_then(|h| h["server_errors"].as_u64())
        .unwrap_or(0);
    let rss_at_end = rss();
    let clean_stop = started.as_mut().map(stop_server);

    let soak_result: Option<LevelResult> = soak
        .as_ref()
        .and_then(|s| serde_json::from_value(s["result"].clone()).ok());
    let rows: Vec<LevelResult> = results
        .iter()
        .chain(soak_result.as_ref())
        .cloned()
        .collect();
    println!("{}", table(&rows));
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|r| r.first_problem.clone())
        .collect();
    let problems: usize = rows
        .iter()
        .map(|r| r.errors + r.wrong + r.malformed_unexpected)
        .sum();
    println!(
        "server: {} at the end, {} server errors, RSS {} -> {} KiB{}",
        if alive { "alive" } else { "DEAD" },
        server_errors,
        rss_at_start.map_or("-".into(), |v| v.to_string()),
        rss_at_end.map_or("-".into(), |v| v.to_string()),
        match clean_stop {
            Some(true) => ", stopped cleanly by SIGTERM",
            Some(false) => ", did NOT stop cleanly on SIGTERM",
            None => "",
        }
    );
    let output = json!({
        "checkpoint": args.checkpoint.display().to_string(),
        "addr": addr.to_string(),
        "server_threads": args.addr.is_none().then_some(args.threads),
        "client_threads": args.client_threads,
        "tolerance": mtrec_serve::loadtest::TOLERANCE,
        "levels": results,
        "soak": soak,
        "server": {
            "alive_at_end": alive,
            "server_errors": server_errors,
            "rss_start_kib": rss_at_start,
            "rss_end_kib": rss_at_end,
            "clean_stop": clean_stop,
        },
    });
    write_atomically(&args.out, &serde_json::to_vec_pretty(&output)?)?;
    eprintln!("wrote {}", args.out.display());
    let ok = problems == 0 && alive && server_errors == 0 && clean_stop != Some(false);
    if !ok {
        eprintln!("FAILED: {problems} failed, wrong or mis-answered requests");
        for f in failures.iter().take(5) {
            eprintln!("  first problem: {f}");
        }
    }
    Ok(ok)
}

/// Batch sizes mixed as traffic mixes them: the smallest 90 %, the others sharing the rest.
fn mix(batches: &[usize], sets: &[Requests]) -> Vec<(Requests, f64)> {
    let smallest = batches.iter().copied().min().unwrap_or(1);
    let others = batches.iter().filter(|&&b| b != smallest).count().max(1) as f64;
    batches
        .iter()
        .zip(sets)
        .map(|(&b, set)| {
            let weight = if b == smallest { 0.9 } else { 0.1 / others };
            (
                Requests {
                    batch: b,
                    valid: set.valid.clone(),
                },
                weight,
            )
        })
        .collect()
}

fn report_level(r: &LevelResult) {
    eprintln!(
        "{} x{}: {} requests in {:.1} s, {:.0} req/s, p99 {} ms, {} errors, {} wrong",
        r.workload,
        r.concurrency,
        r.requests,
        r.seconds,
        r.requests_per_second,
        r.p99_ms.map_or("-".into(), |v| format!("{v:.3}")),
        r.errors,
        r.wrong
    );
}

/// Starts `mtrec serve` on a free loopback port; returns its address once it listens.
fn start_server(args: &Args) -> Result<(SocketAddr, Child)> {
    let mtrec = match &args.mtrec {
        Some(p) => p.clone(),
        None => {
            let here = std::env::current_exe()?;
            let beside = here.with_file_name(format!("mtrec{}", std::env::consts::EXE_SUFFIX));
            if !beside.is_file() {
                bail!(
                    "no `mtrec` beside {} (build it with `cargo build -p mtrec-cli`, or give \
                     --mtrec PATH or --addr of a running server)",
                    here.display()
                );
            }
            beside
        }
    };
    let mut child = Command::new(&mtrec)
        .arg("--threads")
        .arg(args.threads.to_string())
        .arg("serve")
        .arg("--checkpoint")
        .arg(&args.checkpoint)
        .arg("--addr")
        .arg("127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", mtrec.display()))?;
    let stdout = child.stdout.take().context("the server's stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|a| a.parse().ok());
    match addr {
        Some(addr) => Ok((addr, child)),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{} serve did not start (it printed {line:?})",
                mtrec.display()
            )
        }
    }
}

/// SIGTERM, then up to 30 s for a clean exit; whether it exited with success.
fn stop_server(started: &mut Started) -> bool {
    let pid = started.child.id() as i32;
    // SAFETY: kill(2) with a child's pid that has not been waited for (it cannot be reused).
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match started.child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => return false,
        }
    }
    false
}

/// The results file, renamed into place whole.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map_or_else(Default::default, |n| n.to_string_lossy()),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("{}: cannot write", path.display()))
}
