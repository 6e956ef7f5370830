//! `mtrec-bench`: training throughput of mtrec against PyTorch, measured back to back.
//!
//! For each workload of `../shared/docs/benchmarks.md` it writes the encoded data and the model
//! shape to `bench/out/<workload>/` (the contract `bench/reference/mmoe.py` and
//! `bench/reference/automtl.py` read), then alternates rounds of mtrec and of the PyTorch
//! reference (as the peers write the model, and batched/fused) on the same data, threads, batch
//! size and model, and prints one JSON line per engine plus a table of ratios. Machines here
//! are noisy: only same-run ratios mean much.
//!
//! `automtl-supernet` times one step of the AutoMTL search's joint phase (weights and
//! architecture parameters, sampled gates) through [`SearchStepper`], the step `mtrec search`
//! runs; the MMoE workloads time [`Stepper`], the step `mtrec train` runs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::prelude::*;
use clap::Parser;
use mtrec_arch::automtl::SpaceConfig;
use mtrec_arch::{ArchConfig, EmbeddingConfig, Model, MoeConfig};
use mtrec_data::{
    Batch, CensusConfig, DataConfig, Dataset, EncodedTable, SyntheticConfig, TaskKind, batches,
};
use mtrec_engine::{ExperimentConfig, SearchConfig, SearchStepper, Stepper, TrainConfig};

#[derive(Parser, Debug)]
#[command(
    about = "Training throughput of mtrec vs the PyTorch reference",
    after_help = "Examples:\n  bash bench/run.sh\n  cargo run --release -p mtrec-bench -- --threads 2 --workload mmoe-census"
)]
struct Args {
    /// Threads for both engines.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Workloads to run (default: all of mmoe-synthetic, mmoe-census, automtl-supernet).
    #[arg(long)]
    workload: Vec<String>,
    /// Timed steps per round (automtl-supernet: a tenth of it, at least 3).
    #[arg(long, default_value_t = 60)]
    steps: usize,
    /// Untimed steps before each round (automtl-supernet: a tenth of it, at least 1).
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
    /// `Mmoe` (timed with [`Stepper`]) or `Automtl`, the search space (timed with
    /// [`SearchStepper`] in the joint phase).
    arch: ArchConfig,
    embedding: EmbeddingConfig,
    batch: usize,
    /// Timed and untimed steps per round.
    steps: usize,
    warmup: usize,
    /// The reference script under `bench/reference/` and its two variants.
    script: &'static str,
    variants: [&'static str; 2],
}

/// The mtrec config of a workload: the training (MMoE) or search (AutoMTL) hyper-parameters
/// are the engine's defaults, which the reference reads back from `meta.json`.
fn experiment(w: &Workload) -> ExperimentConfig {
    ExperimentConfig {
        name: w.name.into(),
        data: DataConfig::Synthetic(SyntheticConfig::default()),
        embedding: w.embedding.clone(),
        model: w.arch.clone(),
        weighting: Default::default(),
        scheme: Default::default(),
        train: TrainConfig::default(),
        search: SearchConfig {
            batch_size: w.batch,
            ..SearchConfig::default()
        },
    }
}

const MMOE: (&str, [&str; 2]) = ("mmoe.py", ["peer", "batched"]);
const AUTOMTL: (&str, [&str; 2]) = ("automtl.py", ["peer", "fused"]);

fn workloads(args: &Args) -> Result<Vec<Workload>> {
    let wanted = |n: &str| args.workload.is_empty() || args.workload.iter().any(|w| w == n);
    let known = ["mmoe-synthetic", "mmoe-census", "automtl-supernet"];
    if let Some(w) = args.workload.iter().find(|w| !known.contains(&w.as_str())) {
        bail!("unknown workload `{w}`; known: {}", known.join(", "));
    }
    // Census-Income group 1, loaded once for every workload that reads it.
    let census = if wanted("mmoe-census") || wanted("automtl-supernet") {
        let cfg = DataConfig::Census(CensusConfig {
            group: 1,
            ..CensusConfig::default()
        });
        Some(mtrec_data::load(&cfg, &args.project)?)
    } else {
        None
    };
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
            arch: ArchConfig::Mmoe(MoeConfig {
                n_experts: 8,
                expert: vec![16],
                tower: vec![8],
            }),
            embedding: EmbeddingConfig::default(),
            batch: 1024,
            steps: args.steps,
            warmup: args.warmup,
            script: MMOE.0,
            variants: MMOE.1,
        });
    }
    if wanted("mmoe-census") {
        out.push(Workload {
            name: "mmoe-census",
            data: census.clone().expect("loaded above"),
            arch: ArchConfig::Mmoe(MoeConfig {
                n_experts: 8,
                expert: vec![64],
                tower: vec![32],
            }),
            embedding: EmbeddingConfig::default(),
            batch: 1024,
            steps: args.steps,
            warmup: args.warmup,
            script: MMOE.0,
            variants: MMOE.1,
        });
    }
    if wanted("automtl-supernet") {
        // One step of the default DESAN super-network (24 blocks of 8 candidates, the widest
        // MLP-1024) costs about 100 MMoE steps: a tenth of the steps keeps rounds short.
        out.push(Workload {
            name: "automtl-supernet",
            data: census.expect("loaded above"),
            arch: ArchConfig::Automtl(SpaceConfig::default()),
            embedding: EmbeddingConfig {
                dim: 16,
                init_std: 0.05,
            },
            batch: 2048,
            steps: (args.steps / 10).max(3),
            warmup: (args.warmup / 10).max(1),
            script: AUTOMTL.0,
            variants: AUTOMTL.1,
        });
    }
    if out.is_empty() {
        bail!("no known workload in {:?}", args.workload);
    }
    Ok(out)
}

/// Writes `meta.json` and `data.bin` in the layout `bench/reference/mmoe.py` documents
/// (`bench/reference/automtl.py` adds the search space's keys).
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
    let mut json = serde_json::json!({
        "workload": w.name, "n_rows": t.n_rows, "n_sparse": t.n_sparse, "n_dense": t.n_dense,
        "n_tasks": t.n_tasks, "vocab_sizes": meta.vocab_sizes, "emb_dim": w.embedding.dim,
        "emb_init_std": w.embedding.init_std, "task_kinds": kinds, "batch": w.batch,
    });
    let extra = match &w.arch {
        ArchConfig::Mmoe(m) => serde_json::json!({
            "n_experts": m.n_experts, "expert_hidden": m.expert, "tower_hidden": m.tower,
        }),
        ArchConfig::Automtl(space) => {
            let s = experiment(w).search;
            // The reference checks that it builds as many parameters (burn counts batch-norm
            // running statistics too).
            let net = mtrec_arch::build(&w.arch, &w.embedding, &meta, &Device::flex())?;
            let candidates: Vec<String> = space.candidates.iter().map(|c| c.to_string()).collect();
            serde_json::json!({
                "n_layers": space.n_layers, "n_experts": space.n_experts,
                "n_blocks": space.n_blocks, "block_width": space.block_width,
                "candidates": candidates, "tower_hidden": space.tower, "dropout": space.dropout,
                "sample_gates": s.sample_gates, "learning_rate": s.learning_rate,
                "weight_decay": s.weight_decay, "arch_learning_rate": s.arch_learning_rate,
                "arch_weight_decay": s.arch_weight_decay, "n_params": net.num_params(),
            })
        }
        other => bail!("{}: no reference for model kind `{}`", w.name, other.kind()),
    };
    let (Some(obj), serde_json::Value::Object(extra)) = (json.as_object_mut(), extra) else {
        unreachable!("json objects");
    };
    obj.extend(extra);
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

/// Examples per second of `w.steps` mtrec training steps after `w.warmup` untimed ones.
fn run_mtrec(w: &Workload) -> Result<f64> {
    let (steps, warmup) = (w.steps, w.warmup);
    let device = Device::flex();
    let ad = device.clone().autodiff();
    device.seed(1);
    let meta = w.data.meta();
    let model = mtrec_arch::build(&w.arch, &w.embedding, &meta, &ad)?;
    let cfg = experiment(w);
    let mut step: Box<dyn FnMut(&Batch) -> f64> = match model {
        Model::AutoMtl(net) => {
            // The search's joint phase: weights and architecture parameters, gates sampled.
            let mut stepper = SearchStepper::new(net, &cfg, &meta, &ad)?;
            stepper.set_joint(true);
            Box::new(move |b| stepper.step(b))
        }
        model => {
            let mut stepper =
                Stepper::new(model, &cfg, meta.task_kinds.clone(), &meta.task_names, &ad)?;
            Box::new(move |b| stepper.step(b))
        }
    };
    let full: Vec<_> = batches(&w.data.train, w.batch, None)
        .filter(|b| b.len == w.batch)
        .collect();
    if full.is_empty() {
        bail!("{}: fewer rows than one batch", w.name);
    }
    let mut next = full.iter().cycle();
    for b in next.by_ref().take(warmup) {
        step(b);
    }
    let start = Instant::now();
    let mut loss = f64::NAN;
    for b in next.take(steps) {
        loss = step(b);
    }
    let seconds = start.elapsed().as_secs_f64();
    let value = (steps * w.batch) as f64 / seconds;
    eprintln!(
        "{} mtrec: {steps} steps in {seconds:.3} s, {value:.0} examples/s, last loss {loss:.4}",
        w.name
    );
    Ok(value)
}

fn run_torch(python: &Path, dir: &Path, variant: &str, args: &Args, w: &Workload) -> Result<f64> {
    let script = args.project.join("bench/reference").join(w.script);
    let out = Command::new(python)
        .arg(&script)
        .args(["--data", &dir.display().to_string(), "--variant", variant])
        .args(["--threads", &args.threads.to_string()])
        .args(["--steps", &w.steps.to_string()])
        .args(["--warmup", &w.warmup.to_string()])
        .args(["--batch", &w.batch.to_string()])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "{} --variant {variant}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The reference's one-line summary (time, last loss) goes to our stderr.
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
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
    let mut table = comfy_table::Table::new();
    table.set_header(vec![
        "workload",
        "threads",
        "mtrec ex/s",
        "torch peer ex/s",
        "torch batched/fused ex/s",
        "mtrec / peer",
        "mtrec / batched/fused",
    ]);
    let mut notes = Vec::new();
    for w in workloads(&args)? {
        let dir = args.project.join("bench/out").join(w.name);
        export(&w, &dir)?;
        if w.steps != args.steps || w.warmup != args.warmup {
            let note = format!(
                "{}: {} timed steps after {} warm-up steps per round (a tenth of --steps, at \
                 least 3, and of --warmup, at least 1: one step costs about 100 MMoE steps)",
                w.name, w.steps, w.warmup
            );
            eprintln!("{note}");
            notes.push(note);
        }
        let [peer_variant, fast_variant] = w.variants;
        let mut ours = Vec::new();
        let mut peer = Vec::new();
        let mut batched = Vec::new();
        for _ in 0..args.rounds {
            ours.push(run_mtrec(&w)?);
            if let Some(py) = &python {
                peer.push(run_torch(py, &dir, peer_variant, &args, &w)?);
                batched.push(run_torch(py, &dir, fast_variant, &args, &w)?);
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
            println!("{}", line(&format!("pytorch-{peer_variant}"), p));
            println!("{}", line(&format!("pytorch-{fast_variant}"), b));
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
    for note in notes {
        eprintln!("{note}");
    }
    Ok(())
}
