//! `mtrec repro census`: the MMoE paper's Census-Income comparison (Ma et al., KDD 2018,
//! section 6.2; spec section 5): every model of the zoo on both task groups, each tuned on the
//! validation AUC of the main task, then trained `R` times from new initialisations, reported
//! as mean ± 95 % CI test AUC per task.
//!
//! The work is done by the two commands that already do it, run as child processes of this
//! executable: `mtrec tune` (one per model and group, `jobs` at a time, each resumable from its
//! `trials.jsonl`) and then `mtrec run` on a grid of the tuned configs x seeds (resumable from
//! its `results.jsonl`). This module plans, checks, and reads the results back. So a stopped
//! study resumes by running the same command again, every trial and run stays one command line
//! a user can repeat by hand, and the numbers come from exactly the code paths of `train`,
//! `tune` and `run`.
//!
//! Layout of the output folder:
//!
//! ```text
//! DIR/settings.json           what every trial and run shares (data protocol, --set); checked on resume
//! DIR/tune/<id>/              one tuning (`mtrec tune --out`): trials.jsonl, trials/<k>/, best.toml
//! DIR/tune/<id>.log           its command line, table and messages
//! DIR/configs/<id>.toml       the tuned config (best.toml), named so its runs are <id>-s<seed>
//! DIR/grid.toml               the runs: tuned configs x seeds 1..R (`mtrec run` grid)
//! DIR/runs/                   the runner's folder: results.jsonl, <id>-s<seed>/
//! DIR/census.{md,csv,json}    the table and the protocol
//! ```
//!
//! with `<id>` = `census-g<group>-<model>`, the stem of the zoo config it tunes.
//!
//! Hidden units per layer are capped at 2048 as in the paper. The paper counts experts x units
//! per expert for its MoE models; the same count over the layer's parallel networks is used
//! here for every model (a layer of Single-Task, L2-Constrained, Cross-Stitch or
//! Tensor-Factorization is one network per task), so no model gets more width than another.
//! The cap lives in the tuning spaces (`configs/tune/`): a space's ranges must keep every
//! layer within it, which [`check_cap`] verifies at every corner of the ranges before any
//! tuning starts (widths and counts only ever raise a layer's units, so the corners bound it).

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use indicatif::{ProgressBar, ProgressStyle};
use mtrec_arch::ArchConfig;
use mtrec_data::DataConfig;
use mtrec_data::census::{OFFICIAL_TRAIN_SHA256, census_schema, content_sha256};
use mtrec_engine::ExperimentConfig;
use mtrec_engine::config::Override;
use mtrec_report::stats::{Summary, summarize};
use mtrec_report::{RunRecord, load_run};
use mtrec_tune::{Direction, ParamKind, Space, TrialLog, TrialRecord, TrialStatus};
use serde::Serialize;

use crate::atomic::write_atomically;
use crate::child::{self, Transcript, last_line, shell_line};
use crate::cli::{CensusArgs, RunArgs};
use crate::folder_settings;
use crate::grid::Grid;
use crate::lock::lock_folder;

/// Hidden units per layer, summed over the layer's parallel networks (spec section 5).
pub const HIDDEN_UNITS_CAP: usize = 2048;
/// Runs of each tuned config (the paper's count is not practical on 2 cores; see README).
pub const DEFAULT_RUNS: usize = 10;

const SETTINGS_FILE: &str = "settings.json";
const LOCK_FILE: &str = ".repro-census.lock";
const GRID_FILE: &str = "grid.toml";
const MARKDOWN_FILE: &str = "census.md";
const CSV_FILE: &str = "census.csv";
const JSON_FILE: &str = "census.json";

/// `--quick`: a smoke test of the whole pipeline, under a minute (its help states these).
pub(super) const QUICK_TRIALS: usize = 3;
pub(super) const QUICK_RUNS: usize = 3;
pub(super) const QUICK_SETS: [&str; 2] = ["train.epochs=1", "data.subsample=5000"];

/// A model of the comparison: its name on the command line and in file names (the zoo config
/// `configs/census-g<g>-<key>.toml` and the space `configs/tune/census-g<g>-<key>.toml`).
#[derive(Debug)]
pub struct ZooModel {
    pub key: &'static str,
    pub label: &'static str,
    /// In the default comparison: the paper's seven models and our PLE and AdaTT.
    pub default: bool,
    /// In `--quick`.
    pub quick: bool,
}

const fn model(key: &'static str, label: &'static str, default: bool, quick: bool) -> ZooModel {
    ZooModel {
        key,
        label,
        default,
        quick,
    }
}

/// In table order: the paper's baselines, its MoE models, then the later ones.
pub const MODELS: [ZooModel; 11] = [
    model("single-task", "Single-Task", true, true),
    model("shared-bottom", "Shared-Bottom", true, true),
    model("l2-constrained", "L2-Constrained", true, false),
    model("cross-stitch", "Cross-Stitch", true, false),
    model("tensor-factorization", "Tensor-Factorization", true, false),
    model("omoe", "OMoE", true, false),
    model("mmoe", "MMoE", true, true),
    model("cgc", "CGC", false, false),
    model("ple", "PLE", true, false),
    model("adatt-sp", "AdaTT-sp", false, false),
    model("adatt", "AdaTT", true, false),
];

/// What the study does, from the arguments.
#[derive(Debug)]
struct Plan {
    groups: Vec<u8>,
    models: Vec<&'static ZooModel>,
    /// `None`: each space's own budget.
    trials: Option<usize>,
    runs: usize,
    jobs: usize,
    /// Tensor threads of every trial and run.
    threads: usize,
    out: PathBuf,
    config_dir: PathBuf,
    /// `--set` overrides of every trial (and so of every tuned config and run).
    sets: Vec<Override>,
    quick: bool,
}

impl Plan {
    fn from_args(args: &CensusArgs) -> Result<Self> {
        let groups = if args.groups.is_empty() {
            if args.quick { vec![1] } else { vec![1, 2] }
        } else {
            let mut groups: Vec<u8> = Vec::new();
            for &g in &args.groups {
                if g != 1 && g != 2 {
                    bail!(
                        "--groups: Census-Income has task groups 1 (income, marital) and 2 (education, marital), not {g}"
                    );
                }
                if !groups.contains(&g) {
                    groups.push(g);
                }
            }
            groups
        };
        let models = if args.models.is_empty() {
            MODELS
                .iter()
                .filter(|m| if args.quick { m.quick } else { m.default })
                .collect()
        } else {
            let mut models: Vec<&'static ZooModel> = Vec::new();
            for name in &args.models {
                let m = find_model(name)?;
                if !models.iter().any(|k| k.key == m.key) {
                    models.push(m);
                }
            }
            models
        };
        let trials = args.trials.or(args.quick.then_some(QUICK_TRIALS));
        if trials == Some(0) {
            bail!("--trials must be at least 1");
        }
        let runs = args
            .runs
            .unwrap_or(if args.quick { QUICK_RUNS } else { DEFAULT_RUNS });
        if runs == 0 {
            bail!("--runs must be at least 1");
        }
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        let jobs = args.jobs.map_or(cores, NonZeroUsize::get);
        // The global --threads (default: all cores), shared among the jobs.
        let threads = (rayon::current_num_threads() / jobs).max(1);
        let out = args.out.clone().unwrap_or_else(|| {
            PathBuf::from(if args.quick {
                "runs/repro-census-quick"
            } else {
                "runs/repro-census"
            })
        });
        let mut sets: Vec<Override> = Vec::new();
        if args.quick {
            for s in QUICK_SETS {
                sets.push(s.parse().map_err(anyhow::Error::msg)?);
            }
        }
        if let Some(f) = &args.train_file {
            sets.push(Override {
                path: vec!["data".into(), "train_file".into()],
                value: toml::Value::String(f.display().to_string()),
            });
        }
        sets.extend(args.set.iter().cloned());
        Ok(Self {
            groups,
            models,
            trials,
            runs,
            jobs,
            threads,
            out,
            config_dir: args.configs.clone(),
            sets,
            quick: args.quick,
        })
    }

    fn set_strings(&self) -> Vec<String> {
        self.sets.iter().map(ToString::to_string).collect()
    }
}

fn find_model(name: &str) -> Result<&'static ZooModel> {
    MODELS.iter().find(|m| m.key == name.trim()).ok_or_else(|| {
        let known: Vec<&str> = MODELS.iter().map(|m| m.key).collect();
        anyhow::anyhow!(
            "--models: unknown model `{name}`; the Census comparison has {}",
            known.join(", ")
        )
    })
}

/// One model on one task group: its tuning and its runs.
#[derive(Debug)]
struct CellPlan {
    group: u8,
    model: &'static ZooModel,
    /// `census-g<group>-<model>`.
    id: String,
    tasks: Vec<String>,
    config: PathBuf,
    space_path: PathBuf,
    space: Space,
    budget: usize,
    /// The zoo config with the plan's overrides.
    base: ExperimentConfig,
    tune_dir: PathBuf,
    tuned_config: PathBuf,
}

impl CellPlan {
    fn main_task(&self) -> &str {
        &self.tasks[0]
    }

    fn best_file(&self) -> PathBuf {
        self.tune_dir.join("best.toml")
    }

    fn log_file(&self) -> PathBuf {
        child::log_beside(&self.tune_dir)
    }

    fn tune_args(&self, plan: &Plan) -> Vec<String> {
        let mut a = vec![
            "--threads".to_string(),
            plan.threads.to_string(),
            "tune".into(),
            "--config".into(),
            self.config.display().to_string(),
            "--space".into(),
            self.space_path.display().to_string(),
            "--trials".into(),
            self.budget.to_string(),
            "--out".into(),
            self.tune_dir.display().to_string(),
        ];
        for s in plan.set_strings() {
            a.push("--set".into());
            a.push(s);
        }
        a
    }
}

/// Loads and checks one cell: its config with the plan's overrides, its space's objective
/// (the main task's validation AUC, maximised) and the hidden-unit cap of the space.
fn plan_cell(plan: &Plan, group: u8, model: &'static ZooModel) -> Result<CellPlan> {
    let id = format!("census-g{group}-{}", model.key);
    let config = plan.config_dir.join(format!("{id}.toml"));
    let space_path = plan.config_dir.join("tune").join(format!("{id}.toml"));
    for (path, what) in [(&config, "zoo config"), (&space_path, "tuning space")] {
        if !path.is_file() {
            bail!(
                "{}: no such {what} for {} on group {group}; run from the project root, or point --configs at a folder with {id}.toml and tune/{id}.toml",
                path.display(),
                model.label
            );
        }
    }
    let base = ExperimentConfig::from_toml_file_with(&config, &plan.sets)?;
    match &base.data {
        DataConfig::Census(c) if c.group == group => {}
        DataConfig::Census(c) => bail!(
            "{}: [data] group = {}, but its name says group {group}",
            config.display(),
            c.group
        ),
        _ => bail!(
            "{}: [data] kind must be \"census\" for the Census comparison",
            config.display()
        ),
    }
    if base.model.kind() != model_kind(model.key) {
        bail!(
            "{}: [model] kind = \"{}\", but {} is the comparison's {}",
            config.display(),
            base.model.kind(),
            id,
            model.label
        );
    }
    let space = Space::from_toml_file(&space_path)?;
    let tasks = census_schema(group).task_names();
    let wanted = format!("valid.{}.auc", tasks[0]);
    if space.objective.metric.to_string() != wanted || space.objective.direction != Direction::Max {
        bail!(
            "{}: objective must be metric = \"{wanted}\", direction = \"max\" (the main task's validation AUC, as the paper tunes), not {} ({:?})",
            space_path.display(),
            space.objective.metric,
            space.objective.direction
        );
    }
    check_cap(&space, &space_path, &config, &plan.sets, tasks.len())?;
    let budget = plan.trials.unwrap_or(space.trials);
    Ok(CellPlan {
        group,
        model,
        tune_dir: plan.out.join("tune").join(&id),
        tuned_config: plan.out.join("configs").join(format!("{id}.toml")),
        id,
        tasks,
        config,
        space_path,
        space,
        budget,
        base,
    })
}

/// The `[model] kind` of a zoo model (AdaTT-sp is AdaTT without shared experts).
fn model_kind(key: &str) -> &str {
    match key {
        "adatt-sp" => "adatt",
        k => k,
    }
}

/// One hidden layer's units, summed over its parallel networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerUnits {
    pub layer: String,
    pub units: usize,
}

/// Every hidden layer of a model with `n_tasks` tasks and its units summed over the layer's
/// parallel networks: experts x units per expert for the MoE family (all experts of a level,
/// task-specific and shared), tasks x units where each task has its own network, and the
/// towers (one per task) as well. `None` for kinds outside the comparison.
pub fn hidden_units(model: &ArchConfig, n_tasks: usize) -> Option<Vec<LayerUnits>> {
    let layers = |name: &str, widths: &[usize], copies: usize| -> Vec<LayerUnits> {
        widths
            .iter()
            .enumerate()
            .map(|(i, w)| LayerUnits {
                layer: format!("{name}[{i}]"),
                units: w * copies,
            })
            .collect()
    };
    let t = n_tasks;
    let (body, tower) = match model {
        ArchConfig::SingleTask(b) => (layers("bottom", &b.bottom, t), &b.tower),
        ArchConfig::SharedBottom(b) => (layers("bottom", &b.bottom, 1), &b.tower),
        ArchConfig::Omoe(m) | ArchConfig::Mmoe(m) => {
            (layers("expert", &m.expert, m.n_experts), &m.tower)
        }
        ArchConfig::Cgc(p) | ArchConfig::Ple(p) => (
            layers(
                "expert",
                &p.expert,
                p.n_task_experts * t + p.n_shared_experts,
            ),
            &p.tower,
        ),
        ArchConfig::Adatt(a) => (
            layers(
                "expert",
                &a.expert,
                a.experts_per_task * t + a.n_shared_experts,
            ),
            &a.tower,
        ),
        ArchConfig::CrossStitch(c) => (layers("hidden", &c.hidden, t), &c.tower),
        ArchConfig::L2Constrained(c) => (layers("hidden", &c.hidden, t), &c.tower),
        ArchConfig::TensorFactorization(c) => (layers("hidden", &c.hidden, t), &c.tower),
        ArchConfig::Esmm(_) | ArchConfig::Automtl(_) | ArchConfig::Searched(_) => return None,
    };
    Some(body.into_iter().chain(layers("tower", tower, t)).collect())
}

/// Checks that no config the space can produce has a hidden layer above
/// [`HIDDEN_UNITS_CAP`]: every corner of the numeric ranges with every value of each choice.
/// Units grow with every width and count a space can tune, so the corners bound all points.
fn check_cap(
    space: &Space,
    space_path: &Path,
    config: &Path,
    sets: &[Override],
    n_tasks: usize,
) -> Result<()> {
    let axes: Vec<(&mtrec_tune::Param, Vec<toml::Value>)> =
        space.params.iter().map(|p| (p, p.extremes())).collect();
    let combos: usize = axes.iter().map(|(_, v)| v.len()).product();
    if combos > 4096 {
        bail!(
            "{}: {combos} corners to check for the hidden-unit cap; tune fewer parameters at once",
            space_path.display()
        );
    }
    for k in 0..combos {
        let mut rest = k;
        let mut corner = sets.to_vec();
        let mut said = Vec::new();
        for (p, values) in &axes {
            let v = values[rest % values.len()].clone();
            rest /= values.len();
            said.push(format!("{}={v}", p.key));
            corner.push(Override {
                path: p.key.split('.').map(|s| s.trim().to_string()).collect(),
                value: v,
            });
        }
        let cfg = ExperimentConfig::from_toml_file_with(config, &corner).with_context(|| {
            format!(
                "{}: the corner {} of the space does not fit {}",
                space_path.display(),
                said.join(" "),
                config.display()
            )
        })?;
        let Some(layers) = hidden_units(&cfg.model, n_tasks) else {
            bail!(
                "{}: `{}` models are not part of the Census comparison",
                config.display(),
                cfg.model.kind()
            );
        };
        if let Some(l) = layers.iter().find(|l| l.units > HIDDEN_UNITS_CAP) {
            let line = space
                .params
                .iter()
                .filter(|p| !matches!(p.kind, ParamKind::Float { .. }))
                .map(|p| p.line)
                .min()
                .unwrap_or(1);
            bail!(
                "{} line {line}: at {} the layer {} has {} hidden units, above the cap of {HIDDEN_UNITS_CAP} (summed over its experts or per-task networks); narrow the ranges",
                space_path.display(),
                said.join(" "),
                l.layer,
                l.units
            );
        }
    }
    Ok(())
}

/// The data protocol every cell shares (checked equal, group aside).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
struct DataProtocol {
    test_file: PathBuf,
    train_file: Option<PathBuf>,
    /// sha256 of the train file's content (official: [`OFFICIAL_TRAIN_SHA256`]).
    train_sha256: Option<String>,
    seed: u64,
    subsample: Option<usize>,
}

impl DataProtocol {
    fn of(cell: &CellPlan) -> Self {
        let DataConfig::Census(c) = &cell.base.data else {
            unreachable!("checked in plan_cell")
        };
        Self {
            test_file: c.test_file.clone(),
            train_file: c.train_file.clone(),
            train_sha256: None,
            seed: c.seed,
            subsample: c.subsample,
        }
    }

    /// Markdown sentences.
    fn describe(&self) -> String {
        let mut s = match (&self.train_file, &self.train_sha256) {
            (Some(train), Some(sha)) => format!(
                "**Paper protocol.** Trained on the official train file `{}` (sha256 `{sha}`, the official `census-income.data`); the shipped test file `{}` is split 1:1 at random (seed {}) into validation and test.",
                train.display(),
                self.test_file.display(),
                self.seed
            ),
            _ => format!(
                "**Our protocol** (the official train file was not supplied; see `--train-file`). The shipped test file `{}` is split 50/25/25 at random (seed {}) into train, validation and test.",
                self.test_file.display(),
                self.seed
            ),
        };
        if let Some(n) = self.subsample {
            s.push_str(&format!(
                " Only the first {n} rows of each split are used (`data.subsample`)."
            ));
        }
        s
    }
}

/// What every trial and run of an output folder shares; a restart must match it.
#[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
struct Settings {
    sets: Vec<String>,
    data: DataProtocol,
}

/// The whole protocol, for the report and `census.json`.
#[derive(Debug, Serialize)]
struct Protocol<'a> {
    data: &'a DataProtocol,
    sets: Vec<String>,
    hidden_units_cap: usize,
    runs: usize,
    seeds: Vec<u64>,
    jobs: usize,
    threads_per_job: usize,
    quick: bool,
}

pub fn run(args: CensusArgs) -> Result<()> {
    let started = Instant::now();
    let plan = Plan::from_args(&args)?;
    let mut cells = Vec::new();
    for &g in &plan.groups {
        for &m in &plan.models {
            cells.push(plan_cell(&plan, g, m)?);
        }
    }
    let data = shared_data(&cells)?;

    fs::create_dir_all(plan.out.join("tune"))
        .with_context(|| format!("{}: cannot create the output folder", plan.out.display()))?;
    let _lock = lock(&plan.out)?;
    check_settings(
        &plan.out.join(SETTINGS_FILE),
        &Settings {
            sets: plan.set_strings(),
            data: data.clone(),
        },
    )?;

    let mut failures: Vec<String> = Vec::new();
    let tuned = tune_all(&plan, &cells, &mut failures)?;
    let ready: Vec<&CellPlan> = cells
        .iter()
        .zip(&tuned)
        .filter_map(|(c, t)| t.is_some().then_some(c))
        .collect();
    let grid = if ready.is_empty() {
        None
    } else {
        let grid = write_grid(&plan, &ready)?;
        let run_args = RunArgs {
            grid: plan.out.join(GRID_FILE),
            jobs: NonZeroUsize::new(plan.jobs),
            threads_per_run: Some(NonZeroUsize::new(plan.threads).unwrap_or(NonZeroUsize::MIN)),
            print_commands: false,
            skip_failed: false,
        };
        // The study prints its own table: the grid's `mtrec compare` hint would be noise.
        if let Err(e) = crate::commands::run::run_without_hint(run_args) {
            failures.push(format!("runs: {e:#}"));
        }
        Some(grid)
    };

    let results = collect(&cells, &tuned, grid.as_ref())?;
    let protocol = Protocol {
        data: &data,
        sets: plan.set_strings(),
        hidden_units_cap: HIDDEN_UNITS_CAP,
        runs: plan.runs,
        seeds: seeds(plan.runs),
        jobs: plan.jobs,
        threads_per_job: plan.threads,
        quick: plan.quick,
    };
    let cost = Cost::of(&results, started.elapsed().as_secs_f64());
    write_outputs(&plan, &protocol, &results, &cost)?;
    for g in &plan.groups {
        println!("{}", terminal_table(*g, &results));
    }
    println!(
        "Mean wall time: {}, {}; this invocation {:.0} s. Report: {} (also {} and {})",
        cost.per_trial_text(),
        cost.per_run_text(),
        cost.invocation_seconds,
        plan.out.join(MARKDOWN_FILE).display(),
        plan.out.join(CSV_FILE).display(),
        plan.out.join(JSON_FILE).display(),
    );
    if !failures.is_empty() {
        bail!(
            "{} part(s) of the study failed; the table holds what finished, and running the same command again retries the rest:\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
    Ok(())
}

/// Every cell must train on the same data (group aside): a comparison across splits or files
/// would measure the data, not the models. A supplied train file must be the official one.
fn shared_data(cells: &[CellPlan]) -> Result<DataProtocol> {
    let first = cells.first().context("no model and group to run")?;
    let mut data = DataProtocol::of(first);
    for c in &cells[1..] {
        let other = DataProtocol::of(c);
        if other != data {
            bail!(
                "{} and {} use different data ({data:?} against {other:?}); the comparison needs one protocol: make their [data] sections agree",
                first.config.display(),
                c.config.display()
            );
        }
    }
    if let Some(train) = &data.train_file {
        let got =
            content_sha256(train).with_context(|| format!("--train-file {}", train.display()))?;
        if got != OFFICIAL_TRAIN_SHA256 {
            bail!(
                "{}: sha256 {got} is not that of the official census-income.data ({OFFICIAL_TRAIN_SHA256}): the paper protocol needs the official file (199,523 rows, plain or gzip); train on another file with `mtrec train --set data.train_file=...` instead",
                train.display()
            );
        }
        data.train_sha256 = Some(got);
    }
    Ok(data)
}

/// Two studies writing one folder would tune the same models twice and interleave logs.
fn lock(out: &Path) -> Result<File> {
    lock_folder(out, LOCK_FILE, || {
        format!(
            "{}: another `mtrec repro census` is working on this folder; wait for it, or give this one another --out",
            out.display()
        )
    })
}

/// Saves the settings on the first run; later runs must bring the same ones, or their trials
/// and runs would not pool.
fn check_settings(path: &Path, settings: &Settings) -> Result<()> {
    if let Some(saved) = folder_settings::saved_or_save(path, settings)?
        && &saved != settings
    {
        bail!(
            "{}: this folder was made with other settings (--quick, --set or --train-file):\n  saved: {}\n  now:   {}\ntheir results must not mix: give this study another --out",
            path.display(),
            serde_json::to_string(&saved)?,
            serde_json::to_string(settings)?
        );
    }
    Ok(())
}

/// The best trial of a tuning.
#[derive(Debug, Clone, Serialize)]
struct Tuned {
    trial: usize,
    objective: f64,
    /// `key=value`, in the space's order.
    values: Vec<String>,
    trials: usize,
    trials_ok: usize,
    trial_seconds: Vec<f64>,
}

/// The tuning's state from its log: `Ok(None)` while its budget is not spent.
fn tuned_of(cell: &CellPlan) -> Result<Option<Tuned>> {
    let log = TrialLog::open(&cell.tune_dir.join("trials.jsonl"))?;
    // A log written for another space (or objective) is an error, not a result.
    log.observations(&cell.space)?;
    let records = log.records();
    if records.len() < cell.budget || !cell.best_file().is_file() {
        return Ok(None);
    }
    let ok: Vec<&TrialRecord> = records
        .iter()
        .filter(|r| r.status == TrialStatus::Ok && r.objective.is_some_and(f64::is_finite))
        .collect();
    let Some(best) = ok
        .iter()
        .copied()
        .reduce(|b, r| match (r.objective, b.objective) {
            (Some(x), Some(y)) if cell.space.objective.better(x, y) => r,
            _ => b,
        })
    else {
        return Ok(None);
    };
    Ok(Some(Tuned {
        trial: best.trial,
        objective: best.objective.unwrap_or(f64::NAN),
        values: cell.space.overrides(&best.params),
        trials: records.len(),
        trials_ok: ok.len(),
        trial_seconds: records.iter().map(|r| r.wall_seconds).collect(),
    }))
}

/// Runs the unfinished tunings, `jobs` at a time, each as `mtrec tune`; returns each cell's
/// best trial (`None` where its tuning failed, with the reason pushed to `failures`).
fn tune_all(
    plan: &Plan,
    cells: &[CellPlan],
    failures: &mut Vec<String>,
) -> Result<Vec<Option<Tuned>>> {
    let mut tuned: Vec<Option<Tuned>> = cells.iter().map(tuned_of).collect::<Result<_>>()?;
    let pending: VecDeque<usize> = (0..cells.len()).filter(|&i| tuned[i].is_none()).collect();
    let total: usize = cells.iter().map(|c| c.budget).sum();
    let note = |line: String| tracing::info!("{line}");
    if pending.is_empty() {
        note(format!("all {} tunings finished before", cells.len()));
        return Ok(tuned);
    }
    let exe = std::env::current_exe().context("cannot find the mtrec executable")?;
    let bar = TrialBar::new(total);
    bar.println(format!(
        "tuning {} of {} models x groups ({total} trials in all), {} at a time with {} thread(s) each",
        pending.len(),
        cells.len(),
        plan.jobs.min(pending.len()),
        plan.threads
    ));
    let progress = || -> u64 {
        cells
            .iter()
            .map(|c| trial_lines(&c.tune_dir.join("trials.jsonl")).min(c.budget) as u64)
            .sum()
    };
    bar.set_position(progress());
    let queue = Mutex::new(pending);
    let workers = plan.jobs.min(queue.lock().map_or(1, |q| q.len()));
    let mut outcomes: Vec<(usize, Result<(), String>)> = Vec::new();
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, Result<(), String>)>();
        for _ in 0..workers {
            let tx = tx.clone();
            let (queue, exe) = (&queue, &exe);
            scope.spawn(move || {
                loop {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                    let Some(i) = next else { break };
                    let outcome = run_tuning(exe, &cells[i], plan);
                    if tx.send((i, outcome)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        loop {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok((i, outcome)) => {
                    let c = &cells[i];
                    bar.println(match &outcome {
                        Ok(()) => match tuned_of(c) {
                            Ok(Some(t)) => format!(
                                "tuned   {}: {} = {:.4} (trial {} of {})",
                                c.id, c.space.objective.metric, t.objective, t.trial, t.trials
                            ),
                            _ => format!("tuned   {}: no trial succeeded", c.id),
                        },
                        Err(e) => format!("FAILED  tuning {}: {}", c.id, last_line(e)),
                    });
                    outcomes.push((i, outcome));
                    bar.set_position(progress());
                }
                Err(mpsc::RecvTimeoutError::Timeout) => bar.set_position(progress()),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    });
    bar.finish();
    outcomes.sort_by_key(|(i, _)| *i);
    for (i, outcome) in outcomes {
        let c = &cells[i];
        let log = c.log_file();
        match outcome {
            Err(e) => failures.push(format!(
                "tuning {}: {} (log: {})",
                c.id,
                last_line(&e),
                log.display()
            )),
            Ok(()) => match tuned_of(c)? {
                Some(t) => tuned[i] = Some(t),
                None => failures.push(format!(
                    "tuning {}: no trial succeeded (log: {}; trial logs in {})",
                    c.id,
                    log.display(),
                    c.tune_dir.join("trials").display()
                )),
            },
        }
    }
    Ok(tuned)
}

/// One `mtrec tune` child; its command line, stdout and stderr go to `<tune dir>.log`.
fn run_tuning(exe: &Path, cell: &CellPlan, plan: &Plan) -> Result<(), String> {
    let finished = child::run(
        exe,
        &cell.tune_args(plan),
        &cell.log_file(),
        Transcript::CommandAndOutput,
    )?;
    if finished.status.success() {
        return Ok(());
    }
    // Only the `error: ` line itself: it is what the summary and the failure list show.
    let error = child::reported_error(&finished.stderr)
        .map(|e| e.lines().next().unwrap_or("").to_string())
        .unwrap_or_else(|| format!("`mtrec tune` ended with {}", finished.status));
    Err(error)
}

/// Finished trials in a tuning's log, for the progress bar (a torn last line never counts).
fn trial_lines(path: &Path) -> usize {
    fs::read(path).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
}

/// One bar over all trials of all tunings on a terminal; log lines otherwise.
struct TrialBar {
    bar: Option<ProgressBar>,
}

impl TrialBar {
    fn new(total: usize) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { bar: None };
        }
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{bar:30}] {pos}/{len} trials, {elapsed} elapsed, ~{eta} left",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix("tune");
        bar.enable_steady_tick(Duration::from_secs(1));
        Self { bar: Some(bar) }
    }

    fn println(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => tracing::info!("{line}"),
        }
    }

    fn set_position(&self, pos: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(pos);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn seeds(runs: usize) -> Vec<u64> {
    (1..=runs as u64).collect()
}

/// Copies each best.toml to `configs/<id>.toml` (the name gives its runs their ids) and
/// writes the grid of them x seeds; returns the loaded grid. A tuned config that changed
/// (a larger --trials found a better one) after its runs were made is refused: its old runs
/// would otherwise be mixed with, or silently replaced by, runs of another config.
fn write_grid(plan: &Plan, ready: &[&CellPlan]) -> Result<Grid> {
    let configs_dir = plan.out.join("configs");
    fs::create_dir_all(&configs_dir)
        .with_context(|| format!("{}: cannot create", configs_dir.display()))?;
    let runs_dir = plan.out.join("runs");
    for c in ready {
        let best = fs::read_to_string(c.best_file())
            .with_context(|| format!("{}: cannot read", c.best_file().display()))?;
        // Compared as configs: best.toml's header counts the trials, which changes with every
        // larger budget even when the best trial stays the same.
        let old = c
            .tuned_config
            .is_file()
            .then(|| ExperimentConfig::from_toml_file(&c.tuned_config).ok());
        let Some(old) = old else {
            write_atomically(&c.tuned_config, best.as_bytes())?;
            continue;
        };
        let new = ExperimentConfig::from_toml_str(&best, &c.best_file())?;
        if old.as_ref() == Some(&new) {
            continue;
        }
        let made = run_folders(&runs_dir, &c.id);
        if !made.is_empty() {
            let shown: Vec<String> = made
                .iter()
                .take(3)
                .map(|d| d.display().to_string())
                .collect();
            bail!(
                "{}: the tuning of {} now has another best config than the one its runs used ({}{}); delete those run folders to run the new one, or give this study another --out",
                c.best_file().display(),
                c.id,
                shown.join(", "),
                if made.len() > 3 { ", ..." } else { "" }
            );
        }
        write_atomically(&c.tuned_config, best.as_bytes())?;
    }
    let toml_str = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
    let configs: Vec<String> = ready
        .iter()
        .map(|c| format!("    {},", toml_str(&c.tuned_config)))
        .collect();
    let text = format!(
        "# Written by `mtrec repro census`: the tuned configs x seeds. `mtrec run` on this file\n# runs (or resumes) them; `mtrec repro census` does that itself.\n[grid]\nname = \"census\"\nout = {}\nconfigs = [\n{}\n]\nseeds = {:?}\n",
        toml_str(&runs_dir),
        configs.join("\n"),
        seeds(plan.runs)
    );
    let path = plan.out.join(GRID_FILE);
    write_atomically(&path, text.as_bytes())?;
    Grid::load(&path)
}

/// The run folders `<id>-s<seed>` under `runs_dir`, any seed.
fn run_folders(runs_dir: &Path, id: &str) -> Vec<PathBuf> {
    let prefix = format!("{id}-s");
    let Ok(entries) = fs::read_dir(runs_dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_prefix(&prefix))
                    .is_some_and(|n| n.parse::<u64>().is_ok())
        })
        .collect();
    found.sort();
    found
}

/// One cell's outcome: its tuning and the test figures of its runs.
#[derive(Debug, Serialize)]
struct CellResult {
    group: u8,
    model: &'static str,
    label: &'static str,
    id: String,
    main_task: String,
    tuned: Option<Tuned>,
    /// Run folders counted (finished, with the tuned config and one of the plan's seeds).
    runs: Vec<PathBuf>,
    run_seconds: Vec<f64>,
    /// Test AUC per task over the runs, in the group's task order (the main task first).
    tasks: Vec<TaskResult>,
}

#[derive(Debug, Serialize)]
struct TaskResult {
    task: String,
    auc: Summary,
}

/// Reads the runs of every cell: a run counts when its folder holds metrics and the config
/// the grid gave it (a folder of another config is never pooled).
fn collect(
    cells: &[CellPlan],
    tuned: &[Option<Tuned>],
    grid: Option<&Grid>,
) -> Result<Vec<CellResult>> {
    let mut out = Vec::new();
    for (c, t) in cells.iter().zip(tuned) {
        let mut runs: Vec<RunRecord> = Vec::new();
        if t.is_some()
            && let Some(grid) = grid
        {
            let prefix = format!("{}-s", c.id);
            for spec in grid.runs.iter().filter(|s| {
                s.id.strip_prefix(&prefix)
                    .is_some_and(|n| n.parse::<u64>().is_ok())
            }) {
                let saved = spec.out.join(mtrec_report::runs::CONFIG_FILE);
                let same =
                    ExperimentConfig::from_toml_file(&saved).is_ok_and(|cfg| cfg == spec.expected);
                if !same || !spec.out.join(mtrec_report::runs::METRICS_FILE).is_file() {
                    continue;
                }
                runs.push(load_run(&spec.out)?);
            }
        }
        let tasks = c
            .tasks
            .iter()
            .map(|task| {
                let values: Vec<f64> = runs
                    .iter()
                    .filter_map(|r| r.tasks.get(task).map(|f| f.value))
                    .collect();
                TaskResult {
                    task: task.clone(),
                    auc: summarize(&values),
                }
            })
            .collect();
        out.push(CellResult {
            group: c.group,
            model: c.model.key,
            label: c.model.label,
            id: c.id.clone(),
            main_task: c.main_task().to_string(),
            tuned: t.clone(),
            run_seconds: runs.iter().filter_map(|r| r.wall_seconds).collect(),
            runs: runs.into_iter().map(|r| r.dir).collect(),
            tasks,
        });
    }
    Ok(out)
}

/// Measured wall times, for the report and for projecting larger studies.
#[derive(Debug, Serialize)]
struct Cost {
    trials: usize,
    mean_trial_seconds: Option<f64>,
    runs: usize,
    mean_run_seconds: Option<f64>,
    invocation_seconds: f64,
}

impl Cost {
    fn of(results: &[CellResult], invocation_seconds: f64) -> Self {
        let trial: Vec<f64> = results
            .iter()
            .filter_map(|r| r.tuned.as_ref())
            .flat_map(|t| t.trial_seconds.iter().copied())
            .collect();
        let run: Vec<f64> = results
            .iter()
            .flat_map(|r| r.run_seconds.iter().copied())
            .collect();
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        Self {
            trials: trial.len(),
            mean_trial_seconds: mean(&trial),
            runs: run.len(),
            mean_run_seconds: mean(&run),
            invocation_seconds,
        }
    }

    fn per_trial_text(&self) -> String {
        self.mean_trial_seconds.map_or("no trials".into(), |s| {
            format!("{s:.1} s per trial ({} trials)", self.trials)
        })
    }

    fn per_run_text(&self) -> String {
        self.mean_run_seconds.map_or("no runs".into(), |s| {
            format!("{s:.1} s per run ({} runs)", self.runs)
        })
    }
}

/// `0.9485 ± 0.0004`: the mean and half the 95 % interval, or the mean alone for one run.
fn mean_ci(s: &Summary) -> String {
    match (s.n, s.ci95_half_width()) {
        (0, _) => "-".into(),
        (_, Some(h)) => format!("{:.4} ± {h:.4}", s.mean),
        (_, None) => format!("{:.4}", s.mean),
    }
}

fn std_text(s: &Summary) -> String {
    if s.n >= 2 {
        format!("{:.4}", s.std)
    } else {
        "-".into()
    }
}

fn group_tasks(group: u8, results: &[CellResult]) -> Vec<String> {
    results
        .iter()
        .find(|r| r.group == group)
        .map(|r| r.tasks.iter().map(|t| t.task.clone()).collect())
        .unwrap_or_default()
}

fn terminal_table(group: u8, results: &[CellResult]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    let tasks = group_tasks(group, results);
    let mut header = vec![Cell::new(format!("group {group}"))];
    for (i, t) in tasks.iter().enumerate() {
        let main = if i == 0 { " (main)" } else { "" };
        header.push(Cell::new(format!("{t}{main} test AUC\nmean ± 95% CI")));
        header.push(Cell::new("std"));
        header.push(Cell::new("n"));
    }
    header.push(Cell::new("tuned (valid AUC)"));
    table.set_header(header);
    let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
    for r in results.iter().filter(|r| r.group == group) {
        let mut row = vec![Cell::new(r.label)];
        for TaskResult { auc: s, .. } in &r.tasks {
            row.push(right(mean_ci(s)));
            row.push(right(std_text(s)));
            row.push(right(s.n.to_string()));
        }
        row.push(Cell::new(
            r.tuned.as_ref().map_or("tuning failed".into(), |t| {
                format!("{} ({:.4})", short_values(&t.values), t.objective)
            }),
        ));
        table.add_row(row);
    }
    table
}

/// `lr=0.002 n_experts=8 expert=[64]`: tuned values without their section prefixes.
fn short_values(values: &[String]) -> String {
    values
        .iter()
        .map(|v| {
            let v = v.strip_prefix("model.").unwrap_or(v);
            v.replace("train.learning_rate", "lr")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn markdown(plan: &Plan, protocol: &Protocol<'_>, results: &[CellResult], cost: &Cost) -> String {
    let mut md = String::from("# Census-Income: tuned models, test AUC over repeated runs\n\n");
    md.push_str(
        "Written by `mtrec repro census` (the MMoE paper's comparison, Ma et al., KDD 2018, section 6.2; spec section 5).\n\n",
    );
    if plan.quick {
        md.push_str("**`--quick`**: a smoke test with tiny budgets; the figures say nothing about the models.\n\n");
    }
    let argv: Vec<String> = std::env::args().skip(1).collect();
    md.push_str(&format!(
        "Command: `{}`\n\n## Protocol\n\n",
        shell_line("mtrec", &argv)
    ));
    md.push_str(&format!("- Data. {}\n", protocol.data.describe()));
    md.push_str("- Tasks: group 1 `income` (main) and `marital`; group 2 `education` (main) and `marital`. The label columns of a group are not inputs.\n");
    let budgets: Vec<String> = {
        let mut b: Vec<usize> = results
            .iter()
            .filter_map(|r| r.tuned.as_ref().map(|t| t.trials))
            .collect();
        b.sort_unstable();
        b.dedup();
        b.iter().map(ToString::to_string).collect()
    };
    md.push_str(&format!(
        "- Tuning: `mtrec tune`, Gaussian-process Bayesian optimisation, {} trials per model and group (a Latin hypercube first), maximising the validation AUC of the main task at the epoch training kept (each zoo config's `[train]`: early stopping on its `monitor`); every trial trains with the zoo config's `train.seed`. Spaces: `{}/tune/census-g<group>-<model>.toml`.\n",
        if budgets.is_empty() { "no".into() } else { budgets.join(" or ") },
        plan.config_dir.display()
    ));
    md.push_str(&format!(
        "- Width: at most {} hidden units per layer, summed over the layer's parallel networks (experts x units per expert for the MoE models; tasks x units where each task has its own network), checked at every corner of each space.\n",
        protocol.hidden_units_cap
    ));
    md.push_str(&format!(
        "- Runs: each tuned config trained {} time(s) with `train.seed` = {} (a new initialisation and batch order each; the same data split). Test AUC per task: mean ± 95 % confidence interval of the mean (Student t, n - 1 degrees of freedom), sample standard deviation, n runs.\n",
        protocol.runs,
        seed_range(&protocol.seeds)
    ));
    if !protocol.sets.is_empty() {
        md.push_str(&format!(
            "- Overrides of every trial and run: {}.\n",
            protocol
                .sets
                .iter()
                .map(|s| format!("`--set {s}`"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    for &g in &plan.groups {
        let tasks = group_tasks(g, results);
        md.push_str(&format!("\n## Group {g}: test AUC\n\n| model |"));
        for (i, t) in tasks.iter().enumerate() {
            let main = if i == 0 { " (main)" } else { "" };
            md.push_str(&format!(" {t}{main}: mean ± 95% CI | std | n |"));
        }
        md.push_str("\n|---|");
        md.push_str(&"---:|---:|---:|".repeat(tasks.len()));
        md.push('\n');
        for r in results.iter().filter(|r| r.group == g) {
            md.push_str(&format!("| {} |", r.label));
            for TaskResult { auc: s, .. } in &r.tasks {
                md.push_str(&format!(" {} | {} | {} |", mean_ci(s), std_text(s), s.n));
            }
            md.push('\n');
        }
    }
    md.push_str("\n## Tuned values\n\n| group | model | best valid AUC (main task) | trial | trials (ok) | values |\n|---|---|---:|---:|---:|---|\n");
    for r in results {
        match &r.tuned {
            Some(t) => md.push_str(&format!(
                "| {} | {} | {:.4} | {} | {} ({}) | {} |\n",
                r.group,
                r.label,
                t.objective,
                t.trial,
                t.trials,
                t.trials_ok,
                t.values
                    .iter()
                    .map(|v| format!("`{v}`"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
            None => md.push_str(&format!(
                "| {} | {} | - | - | - | tuning not finished or failed |\n",
                r.group, r.label
            )),
        }
    }
    md.push_str(&format!(
        "\n## Cost\n\nMean wall time: {}; {}. This invocation: {:.0} s, {} job(s) at a time with {} thread(s) each.\n",
        cost.per_trial_text(),
        cost.per_run_text(),
        cost.invocation_seconds,
        protocol.jobs,
        protocol.threads_per_job
    ));
    md
}

fn seed_range(seeds: &[u64]) -> String {
    match seeds {
        [] => "none".into(),
        [one] => one.to_string(),
        [first, .., last] => format!("{first}..{last}"),
    }
}

/// One row per group, model and task; fields are model keys, task names and numbers, none of
/// which holds a comma or a quote, so no quoting is needed.
fn csv(results: &[CellResult]) -> String {
    let mut text = String::from(
        "group,model,label,task,main_task,metric,n,mean,std,ci95_low,ci95_high,ci95_half_width\n",
    );
    let num = |v: Option<f64>| {
        v.filter(|v| v.is_finite())
            .map_or(String::new(), |v| v.to_string())
    };
    for r in results {
        for TaskResult { task, auc: s } in &r.tasks {
            text.push_str(&format!(
                "{},{},{},{task},{},auc,{},{},{},{},{},{}\n",
                r.group,
                r.model,
                r.label,
                task == &r.main_task,
                s.n,
                num(Some(s.mean)),
                num((s.n >= 2).then_some(s.std)),
                num(s.ci95.map(|c| c.0)),
                num(s.ci95.map(|c| c.1)),
                num(s.ci95_half_width()),
            ));
        }
    }
    text
}

fn write_outputs(
    plan: &Plan,
    protocol: &Protocol<'_>,
    results: &[CellResult],
    cost: &Cost,
) -> Result<()> {
    write_atomically(
        &plan.out.join(MARKDOWN_FILE),
        markdown(plan, protocol, results, cost).as_bytes(),
    )?;
    write_atomically(&plan.out.join(CSV_FILE), csv(results).as_bytes())?;
    let json = serde_json::json!({
        "protocol": protocol,
        "results": results,
        "cost": cost,
    });
    write_atomically(
        &plan.out.join(JSON_FILE),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use mtrec_arch::{AdaTTConfig, BottomConfig, MoeConfig, PleConfig};

    fn units(model: &ArchConfig) -> Vec<(String, usize)> {
        hidden_units(model, 2)
            .unwrap()
            .into_iter()
            .map(|l| (l.layer, l.units))
            .collect()
    }

    fn l(name: &str, units: usize) -> (String, usize) {
        (name.to_string(), units)
    }

    #[test]
    fn units_are_summed_over_a_layers_parallel_networks() {
        // MMoE: 16 experts of [128, 64] -> 2048 and 1024; towers [32] for 2 tasks -> 64.
        let moe = MoeConfig {
            n_experts: 16,
            expert: vec![128, 64],
            tower: vec![32],
        };
        assert_eq!(
            units(&ArchConfig::Mmoe(moe.clone())),
            [
                l("expert[0]", 2048),
                l("expert[1]", 1024),
                l("tower[0]", 64)
            ]
        );
        assert_eq!(units(&ArchConfig::Omoe(moe)).len(), 3);
        // PLE: (3 task experts x 2 tasks + 2 shared) = 8 experts of 100 -> 800.
        let ple = PleConfig {
            n_levels: 2,
            n_task_experts: 3,
            n_shared_experts: 2,
            expert: vec![100],
            tower: vec![8],
        };
        assert_eq!(
            units(&ArchConfig::Ple(ple.clone())),
            [l("expert[0]", 800), l("tower[0]", 16)]
        );
        assert_eq!(units(&ArchConfig::Cgc(ple))[0], l("expert[0]", 800));
        // AdaTT: (4 x 2 + 8) x 128 = 2048; AdaTT-sp: 8 x 2 x 128 = 2048.
        let adatt = AdaTTConfig {
            n_levels: 2,
            experts_per_task: 4,
            n_shared_experts: 8,
            expert: vec![128],
            tower: vec![32],
        };
        assert_eq!(units(&ArchConfig::Adatt(adatt))[0], l("expert[0]", 2048));
        // Single-Task: a bottom per task; Shared-Bottom: one.
        let b = BottomConfig {
            bottom: vec![1024, 300],
            tower: vec![16],
        };
        assert_eq!(
            units(&ArchConfig::SingleTask(b.clone())),
            [l("bottom[0]", 2048), l("bottom[1]", 600), l("tower[0]", 32)]
        );
        assert_eq!(
            units(&ArchConfig::SharedBottom(b)),
            [l("bottom[0]", 1024), l("bottom[1]", 300), l("tower[0]", 32)]
        );
    }

    /// Every shipped space keeps every layer within the cap at its widest corner, and the
    /// corner check would catch one that did not.
    #[test]
    fn shipped_spaces_respect_the_cap_and_a_wider_one_is_refused() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let configs = root.join("configs");
        for g in [1u8, 2] {
            for m in &MODELS {
                let id = format!("census-g{g}-{}", m.key);
                let space_path = configs.join("tune").join(format!("{id}.toml"));
                let space = Space::from_toml_file(&space_path).unwrap();
                let config = configs.join(format!("{id}.toml"));
                check_cap(&space, &space_path, &config, &[], 2)
                    .unwrap_or_else(|e| panic!("{id}: {e:#}"));
                let main = census_schema(g).task_names()[0].clone();
                assert_eq!(
                    space.objective.metric.to_string(),
                    format!("valid.{main}.auc"),
                    "{id}"
                );
            }
        }
        // 17 experts of at most 128: 2176 units at the widest corner.
        let text = std::fs::read_to_string(configs.join("tune/census-g1-mmoe.toml"))
            .unwrap()
            .replace("max = 16", "max = 17");
        let space = Space::from_toml_str(&text, Path::new("wide.toml")).unwrap();
        let e = check_cap(
            &space,
            Path::new("wide.toml"),
            &configs.join("census-g1-mmoe.toml"),
            &[],
            2,
        )
        .unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("expert[0] has 2176 hidden units"), "{e}");
        assert!(e.contains("model.n_experts=17"), "{e}");
    }

    #[test]
    fn the_csv_has_one_row_per_model_and_task_with_the_interval() {
        let s = summarize(&[0.9, 0.8, 0.7]);
        let r = CellResult {
            group: 1,
            model: "mmoe",
            label: "MMoE",
            id: "census-g1-mmoe".into(),
            main_task: "income".into(),
            tuned: None,
            runs: vec![],
            run_seconds: vec![],
            tasks: vec![
                TaskResult {
                    task: "income".into(),
                    auc: s,
                },
                TaskResult {
                    task: "marital".into(),
                    auc: summarize(&[0.5]),
                },
            ],
        };
        let text = csv(&[r]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        // mean 0.8, std 0.1, half width t(0.975, 2) * 0.1 / sqrt(3) = 4.302653 * 0.057735.
        let f: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(&f[..7], ["1", "mmoe", "MMoE", "income", "true", "auc", "3"]);
        let half: f64 = f[11].parse().unwrap();
        assert!((half - 4.302_652_729_911_275 * 0.1 / 3f64.sqrt()).abs() < 1e-9);
        // One run: no spread, no interval.
        assert!(lines[2].ends_with(",1,0.5,,,,"), "{}", lines[2]);
    }

    #[test]
    fn unknown_models_are_named_with_the_known_ones() {
        let e = find_model("mmeo").unwrap_err().to_string();
        assert!(e.contains("unknown model `mmeo`"), "{e}");
        assert!(e.contains("single-task") && e.contains("adatt-sp"), "{e}");
        assert_eq!(find_model("ple").unwrap().label, "PLE");
    }
}
