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
//!
//! `mmoe-large` (and `mmoe-large-1m`, 1M ids per field, on request) trains the embedding table
//! with lazy Adam (`train.lazy_embeddings`) against PyTorch's sparse embedding with
//! `SparseAdam` (the `sparse` variant) and its dense variants; every MMoE row also gets its
//! training GFLOP/s beside a 1024^3 sgemm through the same stack.

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
    Batch, CensusConfig, DataConfig, Dataset, EncodedTable, FeatureMeta, SyntheticConfig, TaskKind,
    batches,
};

mod large;
mod latency;
mod load;

/// Rows of the generated `mmoe-large` data: 50 batches of 2048.
const LARGE_ROWS: usize = 102_400;
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
    /// Workloads to run (default: mmoe-synthetic, mmoe-census, automtl-supernet, mmoe-large;
    /// mmoe-large-1m, about 7 GB of memory, only when named).
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
    /// Rows of the load-parquet / load-csv file (generated once into bench/out/load/).
    #[arg(long, default_value_t = 2_000_000)]
    load_rows: usize,
    /// Train the mmoe-large tables with dense Adam instead of lazy Adam (the before/after of
    /// `train.lazy_embeddings`).
    #[arg(long)]
    dense_embeddings: bool,
    /// Python with torch installed (default: bench/.venv/bin/python, then python3).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Project folder (holds data/ and bench/).
    #[arg(long, default_value = ".")]
    project: PathBuf,
}

struct Workload {
    name: &'static str,
    train: EncodedTable,
    meta: FeatureMeta,
    /// `Mmoe` (timed with [`Stepper`]) or `Automtl`, the search space (timed with
    /// [`SearchStepper`] in the joint phase).
    arch: ArchConfig,
    embedding: EmbeddingConfig,
    batch: usize,
    /// Timed and untimed steps per round.
    steps: usize,
    warmup: usize,
    /// The reference script under `bench/reference/` and the variants to run.
    script: &'static str,
    variants: &'static [&'static str],
    /// mtrec trains the embedding table with lazy (row-wise) Adam, as the `sparse` reference
    /// does with `SparseAdam`.
    lazy: bool,
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
        train: TrainConfig {
            lazy_embeddings: w.lazy,
            ..TrainConfig::default()
        },
        search: SearchConfig {
            batch_size: w.batch,
            ..SearchConfig::default()
        },
    }
}

const MMOE: (&str, &[&str]) = ("mmoe.py", &["peer", "batched"]);
const AUTOMTL: (&str, &[&str]) = ("automtl.py", &["peer", "fused"]);
/// Large vocabularies: the fastest PyTorch keeps one table with sparse gradients and
/// `SparseAdam`; the dense variants show what that buys (the per-field peer only at 100k ids,
/// where a round still takes seconds rather than minutes).
const LARGE: (&str, &[&str]) = ("mmoe.py", &["peer", "batched", "sparse"]);
const LARGE_1M: (&str, &[&str]) = ("mmoe.py", &["batched", "sparse"]);

const KNOWN: [&str; 8] = [
    "mmoe-synthetic",
    "mmoe-census",
    "automtl-supernet",
    "mmoe-large",
    "mmoe-large-1m",
    "predict",
    "load-parquet",
    "load-csv",
];
/// What runs without `--workload`: the 1M-id variant needs about 7 GB and minutes per round.
const DEFAULT: [&str; 7] = [
    "mmoe-synthetic",
    "mmoe-census",
    "automtl-supernet",
    "mmoe-large",
    "predict",
    "load-parquet",
    "load-csv",
];

/// The training workloads asked for, and the data of the prediction one when asked for.
fn workloads(args: &Args) -> Result<(Vec<Workload>, Option<Dataset>)> {
    let wanted = |n: &str| asked(args, n);
    if let Some(w) = args.workload.iter().find(|w| !KNOWN.contains(&w.as_str())) {
        bail!("unknown workload `{w}`; known: {}", KNOWN.join(", "));
    }
    // Census-Income group 1, loaded once for every workload that reads it.
    let census = if wanted("mmoe-census") || wanted("automtl-supernet") || wanted("predict") {
        let cfg = DataConfig::Census(CensusConfig {
            group: 1,
            ..CensusConfig::default()
        });
        Some(mtrec_data::load(&cfg, &args.project)?)
    } else {
        None
    };
    let mut out = Vec::new();
    let mmoe = |name, data: Dataset, experts: Vec<usize>, tower: Vec<usize>, batch| Workload {
        name,
        meta: data.meta(),
        train: data.train,
        arch: ArchConfig::Mmoe(MoeConfig {
            n_experts: 8,
            expert: experts,
            tower,
        }),
        embedding: EmbeddingConfig::default(),
        batch,
        steps: args.steps,
        warmup: args.warmup,
        script: MMOE.0,
        variants: MMOE.1,
        lazy: false,
    };
    if wanted("mmoe-synthetic") {
        let cfg = DataConfig::Synthetic(SyntheticConfig {
            n_train: 100_000,
            n_valid: 1000,
            n_test: 1000,
            correlation: 0.9,
            ..SyntheticConfig::default()
        });
        let data = mtrec_data::load(&cfg, &args.project)?;
        out.push(mmoe("mmoe-synthetic", data, vec![16], vec![8], 1024));
    }
    if wanted("mmoe-census") {
        let data = census.clone().expect("loaded above");
        out.push(mmoe("mmoe-census", data, vec![64], vec![32], 1024));
    }
    if wanted("automtl-supernet") {
        // One step of the default DESAN super-network (24 blocks of 8 candidates, the widest
        // MLP-1024) costs about 100 MMoE steps: a tenth of the steps keeps rounds short.
        let data = census.clone().expect("loaded above");
        out.push(Workload {
            name: "automtl-supernet",
            meta: data.meta(),
            train: data.train,
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
            lazy: false,
        });
    }
    for (name, vocab, steps, variants) in [
        ("mmoe-large", 100_000, args.steps / 2, LARGE.1),
        ("mmoe-large-1m", 1_000_000, args.steps / 6, LARGE_1M.1),
    ] {
        if wanted(name) {
            let (train, meta) = large::data(vocab, LARGE_ROWS);
            out.push(Workload {
                name,
                train,
                meta,
                arch: ArchConfig::Mmoe(MoeConfig {
                    n_experts: 8,
                    expert: vec![256, 128],
                    tower: vec![64],
                }),
                embedding: EmbeddingConfig {
                    dim: 16,
                    init_std: 0.01,
                },
                batch: 2048,
                steps: steps.max(3),
                warmup: (args.warmup / 2).max(2),
                script: LARGE.0,
                variants,
                lazy: !args.dense_embeddings,
            });
        }
    }
    let predict = wanted("predict").then(|| census.clone().expect("loaded above"));
    Ok((out, predict))
}

/// Writes `meta.json` and `data.bin` in the layout `bench/reference/mmoe.py` documents
/// (`bench/reference/automtl.py` adds the search space's keys).
fn export(w: &Workload, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let t: &EncodedTable = &w.train;
    let meta = &w.meta;
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
            let net = mtrec_arch::build(&w.arch, &w.embedding, meta, &Device::flex())?;
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
    let meta = &w.meta;
    let model = mtrec_arch::build(&w.arch, &w.embedding, meta, &ad)?;
    let cfg = experiment(w);
    let mut step: Box<dyn FnMut(&Batch) -> f64> = match model {
        Model::AutoMtl(net) => {
            // The search's joint phase: weights and architecture parameters, gates sampled.
            let mut stepper = SearchStepper::new(net, &cfg, meta, &ad)?;
            stepper.set_joint(true);
            Box::new(move |b| stepper.step(b))
        }
        model => {
            let mut stepper =
                Stepper::new(model, &cfg, meta.task_kinds.clone(), &meta.task_names, &ad)?;
            Box::new(move |b| stepper.step(b))
        }
    };
    let full: Vec<_> = batches(&w.train, w.batch, None)
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

/// The training GFLOP/s an MMoE workload's examples/s stand for (the dense layers only: the
/// embedding lookup is memory traffic, not arithmetic); `None` for other models.
fn gflops(w: &Workload, examples_per_second: f64) -> Option<f64> {
    let ArchConfig::Mmoe(moe) = &w.arch else {
        return None;
    };
    let input = w.meta.vocab_sizes.len() * w.embedding.dim + w.meta.dense_names.len();
    let macs = large::mmoe_forward_macs(input, moe, w.meta.task_names.len());
    Some(large::training_flops(macs) * examples_per_second / 1e9)
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
    let peak = large::sgemm_peak(&Device::flex(), 7);
    eprintln!(
        "sgemm peak through burn (1024 x 1024 x 1024, f32, {} threads, median of 7): {peak:.1} GFLOP/s",
        args.threads
    );
    println!(
        "{}",
        serde_json::json!({"workload": "sgemm-1024", "engine": "mtrec", "threads": args.threads,
            "value": (peak * 10.0).round() / 10.0, "unit": "GFLOP/s"})
    );
    let mut table = comfy_table::Table::new();
    table.set_header(vec![
        "workload",
        "threads",
        "engine",
        "examples/s",
        "mtrec / engine",
        "dense GFLOP/s",
        "% of sgemm peak",
    ]);
    let mut notes = Vec::new();
    let (training, predict) = workloads(&args)?;
    for w in training {
        let dir = args.project.join("bench/out").join(w.name);
        export(&w, &dir)?;
        if w.steps != args.steps || w.warmup != args.warmup {
            let note = format!(
                "{}: {} timed steps after {} warm-up steps per round (--steps {} and --warmup {} \
                 scaled down: one step costs many small-model steps)",
                w.name, w.steps, w.warmup, args.steps, args.warmup
            );
            eprintln!("{note}");
            notes.push(note);
        }
        let mut ours = Vec::new();
        let mut theirs: Vec<Vec<f64>> = vec![Vec::new(); w.variants.len()];
        for _ in 0..args.rounds {
            ours.push(run_mtrec(&w)?);
            if let Some(py) = &python {
                for (variant, values) in w.variants.iter().zip(&mut theirs) {
                    values.push(run_torch(py, &dir, variant, &args, &w)?);
                }
            }
        }
        let line = |engine: &str, value: f64| {
            serde_json::json!({"workload": w.name, "engine": engine, "threads": args.threads,
                "value": value.round(), "unit": "examples/s"})
        };
        let ours_name = if w.lazy { "mtrec (lazy Adam)" } else { "mtrec" };
        let m = median(ours);
        println!("{}", line("mtrec", m));
        let mut rows = vec![(ours_name.to_string(), m)];
        if python.is_some() {
            for (variant, values) in w.variants.iter().zip(theirs) {
                let v = median(values);
                let engine = format!("pytorch-{variant}");
                println!("{}", line(&engine, v));
                rows.push((engine, v));
            }
        }
        let fastest = rows[1..].iter().map(|r| r.1).fold(f64::NAN, f64::max);
        for (engine, v) in rows {
            let ratio = if engine.starts_with("mtrec") {
                if fastest.is_nan() {
                    "-".to_string()
                } else {
                    format!("{:.2}x of fastest", m / fastest)
                }
            } else {
                format!("{:.2}x", m / v)
            };
            let g = gflops(&w, v);
            table.add_row(vec![
                w.name.to_string(),
                args.threads.to_string(),
                engine,
                format!("{v:.0}"),
                ratio,
                g.map_or("-".into(), |g| format!("{g:.1}")),
                g.map_or("-".into(), |g| format!("{:.0} %", 100.0 * g / peak)),
            ]);
        }
    }
    eprintln!("{table}");
    for note in notes {
        eprintln!("{note}");
    }
    if let Some(data) = predict {
        prediction_latency(&data, args.threads)?;
    }
    loading(&args)?;
    Ok(())
}

/// Whether workload `name` runs: named with `--workload`, or in [`DEFAULT`] when none is.
fn asked(args: &Args, name: &str) -> bool {
    if args.workload.is_empty() {
        DEFAULT.contains(&name)
    } else {
        args.workload.iter().any(|w| w == name)
    }
}

/// The load workloads asked for: median rows/s of `--rounds` loads of the same file.
fn loading(args: &Args) -> Result<()> {
    let mut table = comfy_table::Table::new();
    table.set_header(vec![
        "workload",
        "threads",
        "rows",
        "seconds (median)",
        "rows/s",
    ]);
    let mut any = false;
    for (name, ext) in [("load-parquet", "parquet"), ("load-csv", "csv")] {
        if !asked(args, name) {
            continue;
        }
        any = true;
        let path = load::data_file(&args.project.join("bench/out/load"), args.load_rows, ext)?;
        let seconds = median(
            (0..args.rounds)
                .map(|_| load::load_seconds(&path))
                .collect::<Result<Vec<_>>>()?,
        );
        let rate = args.load_rows as f64 / seconds;
        println!(
            "{}",
            serde_json::json!({"workload": name, "engine": "mtrec", "threads": args.threads,
                "rows": args.load_rows, "value": rate.round(), "unit": "rows/s"})
        );
        table.add_row(vec![
            name.to_string(),
            args.threads.to_string(),
            args.load_rows.to_string(),
            format!("{seconds:.2}"),
            format!("{rate:.0}"),
        ]);
    }
    if any {
        eprintln!("{table}");
    }
    Ok(())
}

/// The `predict` workload: MMoE as in `mmoe-census` (8 experts [64], towers [32]) on the
/// Census test rows, batch 1 and batch 256, in process.
fn prediction_latency(data: &Dataset, threads: usize) -> Result<()> {
    let arch = ArchConfig::Mmoe(MoeConfig {
        n_experts: 8,
        expert: vec![64],
        tower: vec![32],
    });
    let mut table = comfy_table::Table::new();
    table.set_header(vec![
        "workload",
        "threads",
        "batch",
        "calls",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "rows/s",
    ]);
    for (batch, calls) in [(1, 20_000), (256, 2_000)] {
        let l = latency::measure(
            &arch,
            &EmbeddingConfig::default(),
            &data.meta(),
            &data.test,
            batch,
            calls,
        )?;
        println!(
            "{}",
            serde_json::json!({"workload": "predict", "engine": "mtrec", "threads": threads,
                "batch": batch, "p50_us": l.p50_us, "p99_us": l.p99_us, "p999_us": l.p999_us,
                "value": l.rows_per_second.round(), "unit": "rows/s"})
        );
        table.add_row(vec![
            "predict (in process, mmoe-census model)".to_string(),
            threads.to_string(),
            batch.to_string(),
            l.calls.to_string(),
            format!("{:.0}", l.p50_us),
            format!("{:.0}", l.p99_us),
            format!("{:.0}", l.p999_us),
            format!("{:.0}", l.rows_per_second),
        ]);
    }
    eprintln!("{table}");
    Ok(())
}
