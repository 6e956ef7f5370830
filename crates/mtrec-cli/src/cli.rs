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
        after_help = "Examples:\n  mtrec train --config configs/census-g1-mmoe.toml\n  mtrec train --config configs/synthetic-mmoe.toml --out runs/syn --json\n  mtrec train --config configs/census-g1-mmoe-lt4rec.toml   # a sharing scheme (see mtrec models)\n  mtrec train --config configs/census-g1-automtl.toml --arch runs/census-g1-automtl/arch.json"
    )]
    Train(TrainArgs),
    /// AutoMTL: search an architecture (DESAN space, PD-DARTS), finetune it, save it.
    #[command(
        after_help = "Examples:\n  mtrec search --config configs/census-g1-automtl.toml\n  mtrec search --config configs/synthetic-c05-automtl.toml --out runs/syn-search --seed 3 --json\n  mtrec arch show runs/census-g1-automtl/arch.json\n  mtrec train --config configs/census-g1-automtl.toml --arch runs/census-g1-automtl/arch.json"
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
    /// Train this searched architecture (arch.json from `mtrec search`) from scratch instead
    /// of the config's `[model]`.
    #[arg(long)]
    pub arch: Option<PathBuf>,
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
    #[command(
        after_help = "Examples:\n  mtrec data inspect data/samples/kuairand/kuairand_sample.csv\n  mtrec data inspect data.parquet --json\n  mtrec data inspect data.csv --schema-out schema.toml"
    )]
    Inspect(InspectArgs),
    /// Write the MMoE paper's synthetic two-task data set to CSV or Parquet.
    #[command(
        after_help = "Example:\n  mtrec data synth --correlation 0.9 --rows 10000 --out synth.parquet"
    )]
    Synth(SynthArgs),
}

#[derive(Args, Debug)]
pub struct InspectArgs {
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
    /// Task correlation p in [-1, 1].
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    pub correlation: f64,
    #[arg(long, default_value_t = 10_000)]
    pub rows: usize,
    #[arg(long, default_value_t = 2018)]
    pub seed: u64,
    /// Output file; `.parquet` writes Parquet, anything else CSV.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum ArchCommand {
    /// Print an architecture readably and draw it as SVG (and, with --dot, Graphviz DOT).
    #[command(
        after_help = "Examples:\n  mtrec arch show runs/census-g1-automtl/arch.json\n  mtrec arch show arch.json --svg arch.svg --dot arch.dot\n  mtrec arch show arch.json --json"
    )]
    Show(ArchShowArgs),
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
