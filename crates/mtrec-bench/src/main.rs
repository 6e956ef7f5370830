//! `mtrec-bench`: training throughput of mtrec against PyTorch, measured back to back.
//!
//! For each workload of `../shared/docs/benchmarks.md` it writes the encoded data and the model
//! shape to `bench/out/<workload>/` (the contract `bench/reference/mmoe.py` reads), then
//! alternates rounds of mtrec and of the PyTorch reference (as the peers write MMoE, and with
//! batched experts) on the same data, threads, batch size and model, and prints one JSON line
//! per engine plus a table of ratios. Machines here are noisy: only same-run ratios mean much.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use clap::Parser;
use mtrec_arch::{ArchConfig, EmbeddingConfig, MoeConfig};
use mtrec_data::{
    CensusConfig, DataConfig, Dataset, EncodedTable, SyntheticConfig, TaskKind, batches,
};
use mtrec_engine::{ExperimentConfig, Stepper, TrainConfig};

#[derive(Parser, Debug)]
#[command(
    about = "Training throughput of mtrec vs the PyTorch reference",
    after_help = "Examples:\n  bash bench/run.sh\n  cargo run --release -p mtrec-bench -- --threads 2 --workload mmoe-census"
)]
struct Args {
    /// Threads for both engines.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Workloads to run (default: all of mmoe-synthetic, mmoe-census).
    #[arg(long)]
    workload: Vec<String>,
    /// Timed steps per round.
    #[arg(long, default_value_t = 60)]
    steps: usize,
    /// Untimed steps before each round.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Alternating rounds per engine; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Python with torch installed (default: bench/.venv/bin/python, then python3).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Project folder (holds data/ and bench/).
    #[arg(long, default_value = ".")]
    project: PathBuf,
}

struct Workload {
    name: &'static str,
    data: Dataset,
    arch: MoeConfig,
    embedding: EmbeddingConfig,
    batch: usize,
}

fn workloads(args: &Args) -> Result<Vec<Workload>> {
    let wanted = |n: &str| args.workload.is_empty() || args.workload.iter().any(|w| w == n);
    let mut out = Vec::new();
    if wanted("mmoe-synthetic") {
        let cfg = DataConfig::Synthetic(SyntheticConfig {
            n_train: 100_000,
            n_valid: 1000,
            n_test: 1000,
            correlation: 0.9,
            ..SyntheticConfig::default()
        });
        out.push(Workload {
            name: "mmoe-synthetic",
            data: mtrec_data::load(&cfg, &args.project)?,
            arch: MoeConfig {
                n_experts: 8,
                expert: vec![16],
                tower: vec![8],
            },
            embedding: EmbeddingConfig::default(),
            batch: 1024,
        });
    }
    if wanted("mmoe-census") {
        let cfg = DataConfig::Census(CensusConfig {
            group: 1,
            ..CensusConfig::default()
        });
        out.push(Workload {
            name: "mmoe-census",
            data: mtrec_data::load(&cfg, &args.project)?,
            arch: MoeConfig {
                n_experts: 8,
                expert: vec![64],
                tower: vec![32],
            },
            embedding: EmbeddingConfig::default(),
            batch: 1024,
        });
    }
    if out.is_empty() {
        bail!("no known workload in {:?}", args.workload);
    }
    Ok(out)
}

/// Writes `meta.json` and `data.bin` in the layout `bench/reference/mmoe.py` documents.
fn export(w: &Workload, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let t: &EncodedTable = &w.data.train;
    let meta = w.data.meta();
    let kinds: Vec<&str> = meta
        .task_kinds
        .iter()
        .map(|k| match k {
            TaskKind::Binary => "binary",
            TaskKind::Regression => "regression",
        })
        .collect();
    let json = serde_json::json!({
        "workload": w.name, "n_rows": t.n_rows, "n_sparse": t.n_sparse, "n_dense": t.n_dense,
        "n_tasks": t.n_tasks, "vocab_sizes": meta.vocab_sizes, "emb_dim": w.embedding.dim,
        "emb_init_std": w.embedding.init_std, "task_kinds": kinds, "n_experts": w.arch.n_experts,
        "expert_hidden": w.arch.expert, "tower_hidden": w.arch.tower, "batch": w.batch,
    });
    std::fs::write(dir.join("meta.json"), serde_json::to_string_pretty(&json)?)?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("data.bin"))?);
    for &id in &t.sparse {
        f.write_all(&(id as i32).to_le_bytes())?;
    }
    for &v in t.dense.iter().chain(&t.labels) {
        f.write_all(&v.to_le_bytes())?;
    }
    f.flush()?;
    Ok(())
}

/// Examples per second of `steps` mtrec training steps after `warmup` untimed ones.
fn run_mtrec(w: &Workload, steps: usize, warmup: usize) -> Result<f64> {
    let device = Device::flex();
    let ad = device.clone().autodiff();
    device.seed(1);
    let meta = w.data.meta();
    let arch = ArchConfig::Mmoe(w.arch.clone());
    let model = mtrec_arch::build(&arch, &w.embedding, &meta, &ad)?;
    let cfg = ExperimentConfig {
        name: w.name.into(),
        data: DataConfig::Synthetic(SyntheticConfig::default()),
        embedding: w.embedding.clone(),
        model: arch,
        weighting: Default::default(),
        train: TrainConfig::default(),
        search: Default::default(),
    };
    let mut stepper = Stepper::new(model, &cfg, meta.task_kinds.clone(), &meta.task_names, &ad)?;
    let full: Vec<_> = batches(&w.data.train, w.batch, None)
        .filter(|b| b.len == w.batch)
        .collect();
    if full.is_empty() {
        bail!("{}: fewer rows than one batch", w.name);
    }
    let mut next = full.iter().cycle();
    for b in next.by_ref().take(warmup) {
        stepper.step(b);
    }
    let start = Instant::now();
    for b in next.take(steps) {
        stepper.step(b);
    }
    Ok((steps * w.batch) as f64 / start.elapsed().as_secs_f64())
}

fn run_torch(
    python: &Path,
    script: &Path,
    dir: &Path,
    variant: &str,
    args: &Args,
    batch: usize,
) -> Result<f64> {
    let out = Command::new(python)
        .arg(script)
        .args(["--data", &dir.display().to_string(), "--variant", variant])
        .args(["--threads", &args.threads.to_string()])
        .args(["--steps", &args.steps.to_string()])
        .args(["--warmup", &args.warmup.to_string()])
        .args(["--batch", &batch.to_string()])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .last()
        .context("no output from the reference")?;
    let v: serde_json::Value = serde_json::from_str(line)?;
    v["value"]
        .as_f64()
        .context("no value in the reference output")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The reference needs torch; without it the benchmark says so and reports mtrec alone.
fn find_python(args: &Args) -> Option<PathBuf> {
    let candidates = match &args.python {
        Some(p) => vec![p.clone()],
        None => vec![
            args.project.join("bench/.venv/bin/python"),
            PathBuf::from("python3"),
        ],
    };
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import torch, numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()?;
    let python = find_python(&args);
    if python.is_none() {
        eprintln!(
            "PyTorch reference skipped: no python with torch found (run `bash bench/setup_reference.sh`)"
        );
    }
    let script = args.project.join("bench/reference/mmoe.py");
    let mut table = comfy_table::Table::new();
    table.set_header(vec![
        "workload",
        "threads",
        "mtrec ex/s",
        "torch peer ex/s",
        "torch batched ex/s",
        "mtrec / peer",
        "mtrec / batched",
    ]);
    for w in workloads(&args)? {
        let dir = args.project.join("bench/out").join(w.name);
        export(&w, &dir)?;
        let mut ours = Vec::new();
        let mut peer = Vec::new();
        let mut batched = Vec::new();
        for _ in 0..args.rounds {
            ours.push(run_mtrec(&w, args.steps, args.warmup)?);
            if let Some(py) = &python {
                peer.push(run_torch(py, &script, &dir, "peer", &args, w.batch)?);
                batched.push(run_torch(py, &script, &dir, "batched", &args, w.batch)?);
            }
        }
        let line = |engine: &str, value: f64| {
            serde_json::json!({"workload": w.name, "engine": engine, "threads": args.threads,
                "value": value.round(), "unit": "examples/s"})
        };
        let m = median(ours);
        println!("{}", line("mtrec", m));
        let (p, b) = if python.is_some() {
            let (p, b) = (median(peer), median(batched));
            println!("{}", line("pytorch-peer", p));
            println!("{}", line("pytorch-batched", b));
            (Some(p), Some(b))
        } else {
            (None, None)
        };
        let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
        let r = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.2}x", m / v));
        table.add_row(vec![
            w.name.to_string(),
            args.threads.to_string(),
            format!("{m:.0}"),
            f(p),
            f(b),
            r(p),
            r(b),
        ]);
    }
    eprintln!("{table}");
    Ok(())
}
