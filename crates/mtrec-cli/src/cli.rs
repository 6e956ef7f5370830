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
    /// Worker threads for tensor operations (default: all cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
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
        after_help = "Examples:\n  mtrec train --config configs/census-g1-mmoe.toml\n  mtrec train --config configs/synthetic-mmoe.toml --out runs/syn --json\n  mtrec train --config configs/census-g1-mmoe.toml --set train.learning_rate=3e-3 --set model.n_experts=4\n  mtrec train --config configs/census-g1-mmoe-lt4rec.toml   # a sharing scheme (see mtrec models)\n  mtrec train --config configs/census-g1-automtl.toml --arch runs/census-g1-automtl/arch.json\n  mtrec train --config configs/kuairand-mtl.toml --strict   # refuse label leaks\n\nBefore training, every input field is scored alone against every label on the training\nsplit; one that nearly determines a label (AUC or R^2 >= 0.96) is a warning, or with\n--strict an error."
    )]
    Train(TrainArgs),
    /// AutoMTL: search an architecture (DESAN space, PD-DARTS), finetune it, save it.
    ///
    /// `[search] preset = "decide"` (default) makes the search decide on data of any size;
    /// `preset = "paper"` runs the spec's settings. The output says how decided the fixed
    /// choices were (median block entropy and gate |p - 0.5| at fixing).
    #[command(
        after_help = "Examples:\n  mtrec search --config configs/census-g1-automtl.toml\n  mtrec search --config configs/synthetic-c05-automtl.toml --out runs/syn-search --seed 3 --json\n  mtrec search --config configs/census-g1-automtl.toml --set search.preset=paper\n  mtrec arch show runs/census-g1-automtl/arch.json\n  mtrec train --config configs/census-g1-automtl.toml --arch runs/census-g1-automtl/arch.json"
    )]
    Search(SearchArgs),
    /// Test figures of several runs side by side: mean ± std over runs of one config.
    #[command(
        after_help = "Examples:\n  mtrec compare runs/census-g1-mmoe-s* runs/census-g1-automtl-s*\n  mtrec compare runs/*/ --csv comparison.csv --json"
    )]
    Compare(CompareArgs),
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
    /// Override train.epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Override train.seed.
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
    pub output: OutputArgs,
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
    /// Override train.seed (seeds the search and the finetune).
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
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Checkpoint folders (or their metrics.json) written by `train`, `search` or `demo`.
    pub runs: Vec<PathBuf>,
    /// Also write the table as CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
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
