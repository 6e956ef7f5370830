//! The command-line grammar (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "mtrec",
    version,
    about = "Multi-task learning for recommender systems: MMoE and friends, in one native binary.",
    after_help = "Examples:\n  mtrec demo\n  mtrec train --config configs/census-g1-mmoe.toml\n  mtrec eval --checkpoint runs/census-g1-mmoe --data data/census-income/census-income.test.gz\n  mtrec data inspect data/samples/kuairand/kuairand_sample.csv"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Worker threads for tensor operations (default: all cores); for `mtrec run`, the
    /// threads of each run unless --threads-per-run is given.
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// Where tensors live: cpu (default), cuda or cuda:N (a build with `--features cuda`);
    /// MTREC_DEVICE does the same, and `mtrec run` passes it on to its runs.
    #[arg(long, global = true, value_name = "DEVICE")]
    pub device: Option<String>,
    /// More log output on stderr (-v info, -vv debug); MTREC_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train MMoE on the bundled Census-Income data and print test AUCs per task.
    #[command(after_help = "Examples:\n  mtrec demo\n  mtrec demo --epochs 2 --json")]
    Demo(DemoArgs),
    /// Train a model from an experiment config (TOML) and save a checkpoint.
    #[command(
        after_help = "Examples:\n  mtrec train --config configs/census-g1-mmoe.toml\n  mtrec train --config configs/synthetic-mmoe.toml --out runs/syn --json\n  mtrec train --config configs/census-g1-mmoe.toml --set train.learning_rate=3e-3 --set model.n_experts=4\n  mtrec train --config configs/census-g1-mmoe-lt4rec.toml   # a sharing scheme (see mtrec models)\n  mtrec train --config configs/census-g1-automtl.toml --arch runs/census-g1-automtl/arch.json\n  mtrec train --config configs/kuairand-mtl.toml --strict   # refuse label leaks\n  mtrec train --config configs/census-g1-mmoe.toml --out runs/g1 --state-every 500   # killed? the same command resumes from runs/g1.state\n\nBefore training, every input field is scored alone against every label on the training\nsplit; one that nearly determines a label (AUC or R^2 >= 0.96) is a warning, or with\n--strict an error."
    )]
    Train(TrainArgs),
    /// AutoMTL: search an architecture (DESAN space, PD-DARTS), finetune it, save it.
    ///
    /// `[search] preset = "decide"` (default) makes the search decide on data of any size;
    /// `preset = "paper"` runs the spec's settings. The output says how decided the fixed
    /// choices were (median block entropy and gate |p - 0.5| at fixing).
    #[command(
        after_help = "Examples:\n  mtrec search --config configs/census-g1-automtl.toml\n  mtrec search --config configs/synthetic-c05-automtl.toml --out runs/syn-search --seed 3 --json\n  mtrec search --config configs/census-g1-automtl.toml --set search.preset=paper\n  mtrec search --config configs/census-g1-automtl.toml --out runs/s   # killed? the same command resumes from runs/s.state\n  mtrec arch show runs/census-g1-automtl/arch.json\n  mtrec train --config configs/census-g1-automtl.toml --arch runs/census-g1-automtl/arch.json"
    )]
    Search(SearchArgs),
    /// Run a grid of experiments (configs x variants x seeds) by a pool of worker processes.
    ///
    /// Every run is one `mtrec train` (or, for `[model] kind = "automtl"`, `mtrec search`)
    /// command line of this executable, writing `<out>/<run id>`; each finished run is one JSON
    /// line of `<out>/results.jsonl`. Running the same command again skips finished runs and
    /// retries failed ones; run folders that ran elsewhere (from --print-commands) are recorded
    /// without running them again once their saved config matches the grid.
    #[command(
        after_help = "Examples:\n  mtrec run configs/grids/census-g1-seeds.toml\n  mtrec run configs/grids/synthetic-smoke.toml --jobs 2 --threads-per-run 1\n  mtrec run configs/grids/census-g1-seeds.toml --print-commands > commands.txt   # one line per pending run\n  parallel -j 8 < commands.txt && mtrec run configs/grids/census-g1-seeds.toml   # records them\n  mtrec compare runs/census-g1-seeds/*/\n\nGrid file:\n  [grid]\n  name = \"census-g1-seeds\"          # default: the file's stem\n  out = \"runs/census-g1-seeds\"      # default: runs/<name>\n  configs = [\"configs/census-g1-mmoe.toml\", \"configs/census-g1-ple.toml\"]\n  seeds = [1, 2, 3, 4, 5]           # train.seed of each run\n  set = [\"train.epochs=20\"]         # optional: --set for every run\n  [[grid.variant]]                  # optional: configs x seeds once per variant, with its set\n  label = \"base\"                    # no set: the configs as written (with variants, only the\n  [[grid.variant]]                  #   variants run: list this one to keep those runs)\n  label = \"lr3e-3\"                  # run ids <config stem>[-<label>]-s<seed>\n  set = [\"train.learning_rate=3e-3\"]"
    )]
    Run(RunArgs),
    /// Tune a config's hyper-parameters by Gaussian-process Bayesian optimisation.
    ///
    /// Each trial is `mtrec train` of the config with the trial's values as `--set`
    /// overrides, in `<out>/trials/<k>`; each finished trial is one JSON line of
    /// `<out>/trials.jsonl`. The objective is a validation figure (never a test one). Running
    /// the same command again resumes up to the budget; a failed trial is logged and the
    /// tuning goes on. At the end: a table of the trials, `<out>/best.toml` (the config with
    /// the best values, for `mtrec train`) and `<out>/objective.svg`. --threads is passed to
    /// each trial's training.
    #[command(
        after_help = "Examples:\n  mtrec tune --config configs/census-g1-mmoe.toml --space configs/tune/census-g1-mmoe.toml\n  mtrec tune --config configs/census-g1-mmoe.toml --space configs/tune/census-g1-mmoe.toml --trials 40 --out runs/tune-mmoe   # resumes a stopped tuning\n  mtrec --threads 1 tune --config configs/synthetic-mmoe.toml --space space.toml --trials 3 --set train.epochs=1\n  mtrec train --config runs/tune-mmoe/best.toml\n\nSpace file:\n  trials = 30                      # budget (failed trials count)\n  initial = 6                      # Latin-hypercube trials before the GP proposes\n  seed = 1                         # seeds the proposals (training keeps train.seed)\n  [objective]\n  metric = \"valid.income.auc\"      # valid.<task>.{auc,logloss,mse} | valid.mean-auc | valid.loss\n  direction = \"max\"                # default: max for AUCs, min otherwise\n  [[param]]\n  key = \"train.learning_rate\"\n  min = 1e-4\n  max = 1e-2\n  log = true\n  [[param]]\n  key = \"model.n_experts\"\n  type = \"int\"                     # float (default) | int | choice\n  min = 2\n  max = 16\n  [[param]]\n  key = \"model.expert\"             # a list of widths: layers = 1 writes [w]\n  type = \"int\"\n  min = 8\n  max = 128\n  log = true\n  layers = 1\n  [[param]]\n  key = \"weighting.kind\"\n  values = [\"fixed\", \"uncertainty\"]"
    )]
    Tune(TuneArgs),
    /// Test figures of several runs side by side: mean ± std over runs of one config.
    ///
    /// Runs form one group when they share the config name and settings (their saved
    /// config.toml but the seeds); runs of one name with other settings are groups of their
    /// own, labelled with the keys that differ, e.g. `census-g1-mmoe [model.n_experts=2]`.
    #[command(
        after_help = "Examples:\n  mtrec compare runs/census-g1-mmoe-s* runs/census-g1-automtl-s*\n  mtrec compare runs/census-g1-seeds              # every run of a grid\n  mtrec compare runs/*/ --csv comparison.csv --json\n  mtrec compare runs/census-g1-*-s* --baseline census-g1-single-task"
    )]
    Compare(CompareArgs),
    /// One self-contained HTML page (plus markdown and JSON) for every run under a folder.
    ///
    /// Comparison tables per data set (mean, sample std, 95 % CI, n; Δm against Single-Task;
    /// paired tests on shared seeds), training curves, per-run figures and, for MoE-family
    /// models, gate diagnostics: the mean gate weight of every expert per task on the test
    /// split and the share of experts each task effectively uses.
    #[command(
        after_help = "Examples:\n  mtrec report runs/census-g1-seeds            # writes runs/census-g1-seeds/report.{html,md,json}\n  mtrec report runs --out docs/results/report.html --title \"Census group 1\"\n  mtrec report /data/exp --data-dir /data/mtrec   # where `mtrec train` ran (relative data paths)\n  mtrec report runs --no-gates --json             # tables only, JSON on stdout\n\nGate diagnostics reload each gated run's checkpoint and rebuild its data from its\nconfig, with relative paths resolved against --data-dir (default: the current folder)."
    )]
    Report(ReportArgs),
    /// Reproduce a paper's study end to end: runs, figures and a report of its claims.
    #[command(subcommand)]
    Repro(ReproCommand),
    /// Evaluate a checkpoint on a labelled data file.
    #[command(
        after_help = "Example:\n  mtrec eval --checkpoint runs/census-g1-mmoe --data data/census-income/census-income.test.gz --json"
    )]
    Eval(EvalArgs),
    /// Write per-task predictions of a checkpoint for every row of a data file.
    #[command(
        after_help = "Example:\n  mtrec predict --checkpoint runs/census-g1-mmoe --data data/census-income/census-income.test.gz --out predictions.csv"
    )]
    Predict(PredictArgs),
    /// Serve a checkpoint's predictions over HTTP (POST /predict, GET /health, GET /model).
    #[command(
        after_help = "Examples:\n  mtrec serve --checkpoint runs/census-g1-mmoe\n  mtrec serve --checkpoint runs/demo --addr 127.0.0.1:9000 --reload\n  curl -s localhost:8080/predict -d '{\"rows\": [{\"age\": 37, \"education\": \"Bachelors degree(BA AB BS)\", ...}]}'\n  curl -s localhost:8080/model      # tasks, the fields a row gives, architecture, metrics\n  kill -HUP <pid>                   # reload the checkpoint folder without downtime\n\nA row gives every field /model lists under `inputs` (null for a missing value), keyed by\nits column name as in the training file; values are read as `mtrec predict` reads a file.\nSIGTERM or Ctrl-C stops accepting connections and finishes the requests in flight."
    )]
    Serve(ServeArgs),
    /// Look at data files: statistics, a guessed schema, synthetic data.
    #[command(subcommand)]
    Data(DataCommand),
    /// Look at a searched architecture (arch.json from `mtrec search`): text and diagram.
    #[command(subcommand)]
    Arch(ArchCommand),
    /// List the model architectures, loss weightings and training schemes with their config keys.
    #[command(after_help = "Example:\n  mtrec models")]
    Models,
}

#[derive(Args, Debug)]
pub struct OutputArgs {
    /// Print one JSON object on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Training epochs (the demo's config uses early stopping within them).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Checkpoint folder.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Keep only the first N rows of each split (quick runs).
    #[arg(long)]
    pub subsample: Option<usize>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Experiment config (TOML), e.g. configs/census-g1-mmoe.toml.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Checkpoint folder (default: runs/<config name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override train.epochs (not together with --set train.epochs).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Override train.seed (not together with --set train.seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override any config key before it is checked, e.g. `--set train.learning_rate=3e-3
    /// --set model.n_experts=4` (repeatable; plain words need no quotes).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<mtrec_engine::config::Override>,
    /// Train this searched architecture (arch.json from `mtrec search`) from scratch instead
    /// of the config's `[model]`.
    #[arg(long)]
    pub arch: Option<PathBuf>,
    /// Refuse to train when an input field nearly determines a label on the training split
    /// (single-field AUC or R^2 >= 0.96); without it such fields are a warning.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Where a killed run picks up again: `<out>.state` beside the output folder, written at the
/// end of every epoch (and with --state-every, every N steps) and removed once the results
/// are saved. Running the same command again resumes from it.
#[derive(Args, Debug, Clone, Default)]
pub struct StateArgs {
    /// Also save the run state every N optimizer steps inside an epoch (default: at the end
    /// of each epoch only).
    #[arg(long, value_name = "N")]
    pub state_every: Option<std::num::NonZeroUsize>,
    /// Keep no run state: a killed run starts over.
    #[arg(long, conflicts_with_all = ["state_every", "restart"])]
    pub no_state: bool,
    /// Discard a saved run state and start from the beginning.
    #[arg(long)]
    pub restart: bool,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Experiment config with `[model] kind = "automtl"` and a `[search]` section.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Output folder: finetuned checkpoint, arch.json, search-log.json, plots
    /// (default: runs/<config name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override train.seed (seeds the search and the finetune; not together with
    /// --set train.seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override any config key before it is checked, e.g. `--set train.learning_rate=3e-3
    /// --set model.n_experts=4` (repeatable; plain words need no quotes).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<mtrec_engine::config::Override>,
    /// Refuse to search when an input field nearly determines a label on the training split
    /// (single-field AUC or R^2 >= 0.96); without it such fields are a warning.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Grid file (TOML): `[grid]` with configs, seeds and optional overrides and variants.
    pub grid: PathBuf,
    /// Runs at a time (default: the cores divided by the threads of each run).
    #[arg(long, short)]
    pub jobs: Option<std::num::NonZeroUsize>,
    /// Tensor threads of each run, passed as its `--threads` (default: the global --threads
    /// if given, else 1).
    #[arg(long)]
    pub threads_per_run: Option<std::num::NonZeroUsize>,
    /// Print one shell-quoted command line per pending run and run nothing (for GNU parallel
    /// or a cluster array job; `mtrec run` afterwards records what they wrote).
    #[arg(long)]
    pub print_commands: bool,
    /// Do not retry runs whose last attempt failed (by default a restart retries them).
    #[arg(long)]
    pub skip_failed: bool,
}

#[derive(Args, Debug)]
pub struct TuneArgs {
    /// Experiment config to tune (TOML), e.g. configs/census-g1-mmoe.toml.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Search space (TOML): the parameters, their ranges, the objective and the budget.
    #[arg(long)]
    pub space: PathBuf,
    /// Budget in trials (default: the space's `trials`); raise it to continue a finished tuning.
    #[arg(long)]
    pub trials: Option<usize>,
    /// Output folder: trials.jsonl, trials/<k>/, best.toml, objective.svg
    /// (default: runs/<config name>-tune).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override a config key in every trial, e.g. `--set train.epochs=10` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<mtrec_engine::config::Override>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Results folder: every folder at or below it with a metrics.json (from `mtrec train`,
    /// `search`, `demo` or `run`) is a run.
    pub dir: PathBuf,
    /// HTML file to write (default: DIR/report.html); the .md and .json go beside it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Folder the runs' relative data paths are resolved against: where `mtrec train` ran.
    #[arg(long, default_value = ".")]
    pub data_dir: PathBuf,
    /// Skip gate diagnostics (they reload every gated run's checkpoint and data).
    #[arg(long)]
    pub no_gates: bool,
    /// Page title (default: "mtrec report: DIR").
    #[arg(long)]
    pub title: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Run folders (or their metrics.json) written by `train`, `search`, `demo` or `run`, or
    /// folders of runs (a grid's `out`: every run below it). The `<id>.log` files and
    /// results.jsonl that `mtrec run` writes beside its runs are skipped.
    pub runs: Vec<PathBuf>,
    /// Also write the table as CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Group every other group is tested against: a config name, or the bracketed label of
    /// a group where runs of one name have several settings (default: the best group per task).
    #[arg(long, value_name = "NAME")]
    pub baseline: Option<String>,
    /// Print a JSON array on stdout instead of tables: one object per group.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Checkpoint folder written by `mtrec train` or `mtrec demo`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Labelled data file in the layout the model was trained on (CSV, CSV.gz or Parquet).
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Checkpoint folder written by `mtrec train`, `mtrec search` or `mtrec demo`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Data file in the training layout; label columns may be absent.
    #[arg(long)]
    pub data: PathBuf,
    /// Output CSV: one column per task (probability for binary tasks).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Checkpoint folder written by `mtrec train`, `mtrec search` or `mtrec demo`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    /// Reload when a new checkpoint is saved in the folder (SIGHUP reloads in any case).
    #[arg(long)]
    pub reload: bool,
    /// Seconds between two looks at the checkpoint folder with --reload.
    #[arg(long, default_value_t = 2.0, requires = "reload")]
    pub reload_interval: f64,
    /// Largest request body in bytes (413 above).
    #[arg(long, default_value_t = 16 << 20)]
    pub max_body_bytes: usize,
    /// Most rows in one request (413 above); each request is one batch.
    #[arg(long, default_value_t = 10_000)]
    pub max_rows: usize,
    /// Rows of concurrent requests joined into one forward pass at most.
    #[arg(long, default_value_t = 1024)]
    pub max_batch_rows: usize,
    /// Seconds requests in flight may take to finish after SIGTERM.
    #[arg(long, default_value_t = 30.0)]
    pub shutdown_timeout: f64,
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Column statistics and a guessed schema of a CSV or Parquet file.
    ///
    /// Two-valued columns named like feedback (click, like, purchase, ...) are proposed as
    /// binary tasks; other two-valued columns (task?) and ID-like ones (mostly distinct
    /// values) stay inputs, flagged in the table and named in the schema's header comments.
    #[command(
        after_help = "Examples:\n  mtrec data inspect data/samples/kuairand/kuairand_sample.csv\n  mtrec data inspect data.parquet --json\n  mtrec data inspect data.csv --schema-out schema.toml"
    )]
    Inspect(InspectArgs),
    /// Write synthetic data to CSV or Parquet: the MMoE paper's two-task set (--kind mmoe), or
    /// planted multi-task recommendation data with its schema and ground truth (--kind recsys).
    #[command(
        after_help = "Examples:\n  mtrec data synth --correlation 0.9 --rows 10000 --out synth.parquet\n  mtrec data synth --kind recsys --rows 1000000 --out data/planted.parquet --seed 7\n  mtrec data synth --kind recsys --rows 100000 --out planted.csv --tasks click:0.3,like:0.05,buy:0.01 --tasks share:0.2,follow:0.05 --correlation 0.5 --between-groups independent\n\n--kind recsys writes F, F's schema (planted.csv -> planted.schema.toml) and what was planted\n(planted.truth.json). Train on it with [data] kind = \"files\", schema = the .schema.toml,\ntrain = F: the loader splits the single file 80/10/10."
    )]
    Synth(SynthArgs),
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Data file to inspect (CSV, CSV.gz or Parquet).
    pub file: PathBuf,
    /// Field separator of a CSV file (default ',').
    #[arg(long)]
    pub separator: Option<char>,
    /// The CSV file has no header row.
    #[arg(long)]
    pub no_header: bool,
    /// Read at most this many rows.
    #[arg(long)]
    pub rows: Option<usize>,
    /// Also write the guessed schema (TOML) to this file.
    #[arg(long)]
    pub schema_out: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Which generator: the MMoE paper's two regression tasks, or planted multi-task
    /// recommendation data (sparse Zipf fields, task groups, interactions, binary labels).
    #[arg(long, value_enum, default_value_t = SynthKind::Mmoe)]
    pub kind: SynthKind,
    /// Task correlation in [-1, 1]: mmoe's p (default 0.9); recsys: the correlation of the
    /// logits within every task group (default 0.8).
    #[arg(long, allow_negative_numbers = true)]
    pub correlation: Option<f64>,
    /// Rows to write (streamed: any count fits in memory).
    #[arg(long, default_value_t = 10_000)]
    pub rows: usize,
    /// Seed (default 2018; for recsys it overrides the seed of --recsys-config).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output file; `.parquet` writes Parquet, anything else CSV (recsys: `.csv`, `.parquet`
    /// or `.pq`).
    #[arg(long)]
    pub out: PathBuf,
    /// recsys: one task group as NAME:POSITIVE_RATE pairs, e.g. click:0.3,like:0.05,buy:0.01;
    /// repeat for more groups (named g0, g1, ...). Default: click, like, buy | share, follow.
    #[arg(long, value_name = "NAME:RATE,...")]
    pub tasks: Vec<String>,
    /// recsys: whether group g also pulls two of group g-1's fields the opposite way
    /// (conflict, the default) or the groups share nothing (independent).
    #[arg(long, value_enum)]
    pub between_groups: Option<BetweenGroupsArg>,
    /// recsys: every generator parameter from a TOML file (the keys of the `config` object in
    /// the truth JSON); the flags above override it.
    #[arg(long, value_name = "TOML")]
    pub recsys_config: Option<PathBuf>,
}

/// The generators of `mtrec data synth`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynthKind {
    Mmoe,
    Recsys,
}

/// How planted task groups relate (`--between-groups`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BetweenGroupsArg {
    Conflict,
    Independent,
}

#[derive(Subcommand, Debug)]
pub enum ArchCommand {
    /// Print an architecture readably and draw it as SVG (and, with --dot, Graphviz DOT).
    #[command(
        after_help = "Examples:\n  mtrec arch show runs/census-g1-automtl/arch.json\n  mtrec arch show arch.json --svg arch.svg --dot arch.dot\n  mtrec arch show arch.json --json"
    )]
    Show(ArchShowArgs),
    /// What found architectures say: per task the fields it reads (recall and precision of a
    /// planted ground truth), expert sharing within and across task groups, and, for several
    /// searches of one space, how much they agree beside random architectures of the same
    /// densities.
    #[command(
        after_help = "Examples:\n  mtrec arch score runs/planted-s1/arch.json --truth data/planted.truth.json\n  mtrec arch score runs/census-g1-s*/arch.json          # agreement across seeds\n  mtrec arch score runs/p-s*/arch.json --truth planted.truth.json --json"
    )]
    Score(ArchScoreArgs),
}

#[derive(Args, Debug)]
pub struct ArchScoreArgs {
    /// Architecture files (JSON) of one search space, e.g. one per seed.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Ground truth of planted data (`mtrec data synth --kind recsys` writes `*.truth.json`).
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Random architecture pairs drawn per real pair for the chance level.
    #[arg(long, default_value_t = 200)]
    pub draws: usize,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct ArchShowArgs {
    /// Architecture file (JSON), e.g. runs/census-g1-automtl/arch.json.
    pub file: PathBuf,
    /// Where to write the diagram (default: next to FILE, same name, `.svg`).
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Also write the diagram as Graphviz DOT to this file.
    #[arg(long)]
    pub dot: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Subcommand, Debug)]
pub enum ReproCommand {
    /// The MMoE paper's task-relatedness study (its figures 4 and 5) on synthetic data.
    ///
    /// Shared-Bottom (bottom 113, towers 8), OMoE and MMoE (8 experts of 16, towers 8) on the
    /// paper's synthetic regression tasks (input 100) at task correlations 0.5, 0.9 and 1.0;
    /// Adam with the learning rate of each model chosen from {1e-4, 1e-3, 1e-2} by pilot runs
    /// on the validation loss; N runs per model and correlation, each with new data and a new
    /// initialisation. Writes the mean test loss against steps (figure4.{png,svg}), histograms
    /// of the final test loss (figure5.{png,svg}), curves.csv, final_losses.csv, summary.json
    /// and report.md, which says for each of the paper's observations whether it holds here,
    /// with the statistics. Finished runs are appended to DIR/runs.jsonl: the same command
    /// again resumes, and a larger --runs adds runs to the ones done.
    #[command(
        after_help = "Examples:\n  mtrec repro mmoe-synthetic --quick                 # about a minute: 3 runs per cell, 3,000 steps\n  mtrec repro mmoe-synthetic --runs 200 --jobs 2     # the paper's 200 runs (about an hour on 2 idle cores; resumable)\n  mtrec repro mmoe-synthetic --runs 50 --out runs/mmoe-syn-50\n\nEach run trains on one thread; --jobs runs that many at once (default: all cores).\nOutput: runs/repro-mmoe-synthetic (with --quick runs/repro-mmoe-synthetic-quick) unless --out."
    )]
    MmoeSynthetic(MmoeSyntheticArgs),
    /// The MMoE paper's Census-Income table: every zoo model on both task groups, tuned, then
    /// run R times; mean ± 95 % CI test AUC per task.
    ///
    /// Each model and group is tuned with `mtrec tune` (Gaussian process, the space
    /// configs/tune/census-g<g>-<model>.toml) on the validation AUC of the main task (income
    /// for group 1, education for group 2); spaces cap hidden units per layer at 2048, summed
    /// over experts or per-task networks, and the cap is checked before tuning. The tuned
    /// configs then train R times with seeds 1..R through `mtrec run`. Writes DIR/census.md
    /// (the table, the protocol, the tuned values), DIR/census.csv and DIR/census.json. The
    /// same command again resumes: finished trials and runs are kept.
    #[command(
        after_help = "Examples:\n  mtrec repro census --quick                          # under a minute: group 1, 3 models, tiny budgets\n  mtrec repro census --jobs 2                         # the full study (hours; resumable)\n  mtrec repro census --groups 1 --models mmoe,ple --trials 20 --runs 5\n  mtrec repro census --train-file census-income.data  # the paper's protocol (sha256 checked)\n\nModels: single-task, shared-bottom, l2-constrained, cross-stitch, tensor-factorization,\nomoe, mmoe, ple, adatt (the default set), cgc, adatt-sp.\nWithout --train-file the shipped test file is split 50/25/25 into train, validation and\ntest (seed 2018); with it, training uses that file and the test file is split 1:1."
    )]
    Census(CensusArgs),
}

#[derive(Args, Debug)]
pub struct CensusArgs {
    /// A smoke test of the whole pipeline in under a minute: group 1, Single-Task,
    /// Shared-Bottom and MMoE, 3 trials and 3 runs of one epoch on the first 5,000 rows of
    /// each split; its figures say nothing about the models.
    #[arg(long)]
    pub quick: bool,
    /// Task groups, comma-separated (default 1,2; with --quick 1).
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<u8>,
    /// Models, comma-separated (default: the paper's seven, PLE and AdaTT; see below).
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Tuning trials per model and group (default: each space's `trials`, 30; --quick 3).
    #[arg(long)]
    pub trials: Option<usize>,
    /// Runs of each tuned config, seeds 1..R (default 10; --quick 3).
    #[arg(long)]
    pub runs: Option<usize>,
    /// Tunings (then runs) at a time; the cores (--threads) are shared among them
    /// (default: the number of cores, one thread each).
    #[arg(long, short)]
    pub jobs: Option<std::num::NonZeroUsize>,
    /// Output folder (default runs/repro-census, with --quick runs/repro-census-quick).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The official census-income.data (plain or gzip; its sha256 must match): train on it
    /// and split the test file 1:1 into validation and test, the paper's protocol.
    #[arg(long)]
    pub train_file: Option<PathBuf>,
    /// Folder of the zoo configs census-g<g>-<model>.toml and their spaces tune/*.toml.
    #[arg(long, default_value = "configs")]
    pub configs: PathBuf,
    /// Override a config key in every trial and run, e.g. `--set train.epochs=10`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<mtrec_engine::config::Override>,
}

#[derive(Args, Debug)]
pub struct MmoeSyntheticArgs {
    /// A smoke test of the pipeline in about a minute of one core (a release build): 3 runs
    /// per cell, one pilot run per learning rate and correlation, 3,000 steps instead of
    /// 10,000. Its verdicts say nothing about the models.
    #[arg(long)]
    pub quick: bool,
    /// Runs per model and correlation (default 200, the paper's; with --quick 3).
    #[arg(long)]
    pub runs: Option<usize>,
    /// Output folder (default runs/repro-mmoe-synthetic, with --quick
    /// runs/repro-mmoe-synthetic-quick).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Runs trained at once, one thread each (default: the number of cores).
    #[arg(long, short)]
    pub jobs: Option<std::num::NonZeroUsize>,
    /// Pilot runs per model, learning rate and correlation that choose the learning rate
    /// (default 3; with --quick 1).
    #[arg(long)]
    pub pilots: Option<usize>,
    /// Optimizer steps per run (for tests and timing).
    #[arg(long, hide = true)]
    pub steps: Option<usize>,
    /// Steps between two evaluations of the curve.
    #[arg(long, hide = true)]
    pub every: Option<usize>,
    /// Training rows of each run's data.
    #[arg(long, hide = true)]
    pub train_rows: Option<usize>,
    /// Validation and test rows of each run's data (each).
    #[arg(long, hide = true)]
    pub eval_rows: Option<usize>,
    /// Batch size.
    #[arg(long, hide = true)]
    pub batch_size: Option<usize>,
    #[command(flatten)]
    pub output: OutputArgs,
}
