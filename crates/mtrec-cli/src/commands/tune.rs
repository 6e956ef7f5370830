//! `mtrec tune`: Gaussian-process Bayesian optimisation of a config's hyper-parameters (the
//! optimiser is `mtrec-tune`; this module runs the trials and owns the terminal).
//!
//! A trial is `mtrec train` run as a child process of this executable, with the trial's
//! values as `--set` overrides, rather than training in this process: a trial is then one
//! self-contained command line (logged, re-runnable by hand, the same form `mtrec run`
//! dispatches), a crash or running out of memory fails that trial instead of the tuning, and
//! trials train through exactly `mtrec train`'s code path. Reloading the data per trial costs
//! a second or two against trainings of minutes.
//!
//! The objective is read from the trial's `metrics.json`: the validation report of the epoch
//! that training kept (its `history`), never the test figures beside it.
//!
//! An output folder is one tuning: one process at a time works on it (a lock), and its
//! `settings.json` (the config's content hash, the `--set` values, the objective) must match
//! on every resume, so trials made under other settings are never ranked together.

use std::fs::File;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use indicatif::{ProgressBar, ProgressStyle};
use mtrec_arch::ArchConfig;
use mtrec_data::{DataConfig, Schema, TaskKind};
use mtrec_engine::checkpoint::METRICS_FILE;
use mtrec_engine::config::Override;
use mtrec_engine::{EvalReport, ExperimentConfig};
use mtrec_report::{Panel, Series, write_svg};
use mtrec_tune::{
    Assignment, Direction, Metric, Proposal, Space, TaskMetric, TrialLog, TrialRecord, TrialStatus,
    propose,
};
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomically;
use crate::child::{self, Transcript};
use crate::cli::TuneArgs;
use crate::folder_settings;
use crate::lock::lock_folder;

const LOG_FILE: &str = "trials.jsonl";
const BEST_FILE: &str = "best.toml";
const PLOT_FILE: &str = "objective.svg";
/// What the trials of the folder share besides the space (see [`Settings`]).
const SETTINGS_FILE: &str = "settings.json";
const LOCK_FILE: &str = ".tune.lock";
/// Keys a tuning sets to train each trial for less (`--set train.epochs=1`): best.toml keeps
/// them, since they are what its values were chosen under, and a warning says how to retrain.
const SHORTCUT_KEYS: [&str; 3] = [
    "train.epochs",
    "train.max_batches_per_epoch",
    "data.subsample",
];

pub fn run(args: TuneArgs) -> Result<()> {
    let space = Space::from_toml_file(&args.space)?;
    check_fixed_keys(&space, &args)?;
    let base = ExperimentConfig::from_toml_file_with(&args.config, &args.set)?;
    if let ArchConfig::Automtl(_) = base.model {
        bail!(
            "{}: `[model] kind = \"automtl\"` is a search space, and tune trains with `mtrec train`: tune a hand-made model, or the searched one with `--set` on its config",
            args.config.display()
        );
    }
    check_space_fits_config(&space, &args)?;
    check_objective(&space, &base, &args)?;
    let budget = args.trials.unwrap_or(space.trials);
    if budget == 0 {
        bail!("--trials must be at least 1");
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("{}-tune", base.name)));
    std::fs::create_dir_all(out.join("trials"))
        .with_context(|| format!("creating {}", out.join("trials").display()))?;
    let _lock = lock(&out)?;
    let mut log = TrialLog::open(&out.join(LOG_FILE))?;
    Settings::of(&args, &space)?.check(&out, !log.records().is_empty())?;
    if log.dropped_torn_line {
        tracing::warn!(
            "{}: dropped a last line cut off by a crash; that trial runs again",
            log.path().display()
        );
    }
    let mut history = log.observations(&space)?;
    let runner = TrialRunner::new(&args, &out, &base.name)?;
    let bar = TrialBar::new(budget, log.records().len());
    if !log.records().is_empty() && log.records().len() < budget {
        bar.note(format!(
            "resuming {}: {} of {budget} trials done",
            log.path().display(),
            log.records().len()
        ));
    }
    while log.records().len() < budget {
        if let Some((n, error)) = log.shared_failure(space.initial) {
            bar.clear();
            bail!(
                "the first {n} trials all failed with the same error, so the config (or the whole space) is at fault rather than any trial's values, and the rest of the budget would fail alike:\n  {error}\nfix it, then tune into another --out or delete {} (trial logs: {})",
                out.display(),
                out.join("trials").display()
            );
        }
        let trial = log.records().len() + 1;
        let proposal = propose(&space, &history);
        let params = space.decode(&proposal.x);
        bar.start(trial, &space.overrides(&params).join(" "));
        let record = runner.run(&space, trial, params, &proposal)?;
        bar.finished(
            &record,
            &space,
            best_of(&space, log.records().iter().chain([&record])),
        );
        log.append(record)?;
        history = log.observations(&space)?;
    }
    bar.clear();
    report(&args, &space, &base, &out, log.records())
}

/// Every parameter at its extremes (every value of a choice) must make a valid config, so a
/// typo in a key or a range the config refuses stops the tuning before the first trial.
fn check_space_fits_config(space: &Space, args: &TuneArgs) -> Result<()> {
    for p in &space.params {
        for value in p.extremes() {
            let mut sets = args.set.clone();
            sets.push(Override {
                path: p.key.split('.').map(|s| s.trim().to_string()).collect(),
                value: value.clone(),
            });
            if let Err(e) = ExperimentConfig::from_toml_file_with(&args.config, &sets) {
                let e = e.to_string();
                let hint = if e.contains("floating point") {
                    " (an integer key needs type = \"int\")"
                } else {
                    ""
                };
                bail!(
                    "{} line {}: param `{}` = {value} does not fit {}: {e}{hint}",
                    args.space.display(),
                    p.line,
                    p.key,
                    args.config.display()
                );
            }
        }
    }
    Ok(())
}

/// A `--set` of a key the space tunes would be overridden by every trial's value (and in
/// best.toml), so it is refused rather than silently ignored.
fn check_fixed_keys(space: &Space, args: &TuneArgs) -> Result<()> {
    for o in &args.set {
        if let Some(p) = space.param_covering(&o.path) {
            bail!(
                "--set {o}: `{}` is tuned ({} line {}), so every trial would override this value; drop the --set, or the param from the space",
                p.key,
                args.space.display(),
                p.line
            );
        }
    }
    Ok(())
}

/// The objective must be a figure the runs report: a misspelt task (`valid.incme.auc`) or an
/// AUC of a regression task would otherwise fail only after the first trial has trained.
/// The task names come from the data's schema, which costs no rows: Census and synthetic
/// data have fixed schemas, files name theirs. Configs whose `data.*` the space tunes are
/// checked at every extreme, since their tasks may differ.
fn check_objective(space: &Space, base: &ExperimentConfig, args: &TuneArgs) -> Result<()> {
    // ESMM also reports a task its model derives (`cvr`), which only a trained run shows.
    let esmm = |kind: &str| kind == "esmm";
    let may_derive = esmm(base.model.kind())
        || space.params.iter().any(|p| {
            p.key == "model.kind" && p.extremes().iter().any(|v| v.as_str().is_some_and(esmm))
        });
    if may_derive {
        return Ok(());
    }
    let mut variants = vec![(String::new(), base.clone())];
    for p in space.params.iter().filter(|p| p.key.starts_with("data.")) {
        for value in p.extremes() {
            let set = Override {
                path: p.key.split('.').map(|s| s.trim().to_string()).collect(),
                value,
            };
            let mut sets = args.set.clone();
            sets.push(set.clone());
            let cfg = ExperimentConfig::from_toml_file_with(&args.config, &sets)?;
            variants.push((format!(" with --set {set}"), cfg));
        }
    }
    for (with, cfg) in variants {
        let schema = schema_of(&cfg.data)
            .with_context(|| format!("{}: the data's tasks", args.config.display()))?;
        let tasks: Vec<(&str, &[TaskMetric])> = schema
            .tasks
            .iter()
            .map(|t| {
                let figures: &[TaskMetric] = match t.kind {
                    TaskKind::Binary => &[TaskMetric::Auc, TaskMetric::Logloss],
                    TaskKind::Regression => &[TaskMetric::Mse],
                };
                (t.name.as_str(), figures)
            })
            .collect();
        space
            .objective
            .metric
            .check_reportable(&tasks)
            .map_err(|e| {
                anyhow!(
                    "{}: objective {e} in the data of {}{with}",
                    args.space.display(),
                    args.config.display()
                )
            })?;
    }
    Ok(())
}

/// The schema a config's data is read with, without reading any rows. Relative paths are
/// taken from the current folder, as the trials (`mtrec train`, started here) take them.
fn schema_of(data: &DataConfig) -> Result<Schema> {
    Ok(match data {
        DataConfig::Census(c) => mtrec_data::census_schema(c.group),
        DataConfig::Synthetic(c) => mtrec_data::synthetic::synthetic_schema(c.dim),
        DataConfig::Files(f) => Schema::from_toml_file(&f.schema)?,
    })
}

/// Two tunings of one folder would run every trial twice into the same trial folders and
/// append every line twice, leaving a log no resume can read.
fn lock(out: &Path) -> Result<File> {
    lock_folder(out, LOCK_FILE, || {
        format!(
            "another `mtrec tune` is working on {}; wait for it to finish, or give this one another --out",
            out.display()
        )
    })
}

/// What every trial of a folder was made with besides the space (which the log itself
/// checks, line by line): trials made under other settings are not comparable, and ranking
/// them together could hand best.toml to the odd one out. Saved as `settings.json` when the
/// first trial is about to run; a resume must bring the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Settings {
    /// As given; informative only (the same file under another path is the same config).
    config: String,
    /// The config file's bytes: an edit of it changes what every trial trains.
    config_sha256: String,
    /// `--set` as `key=value`: a later one of the same key replaces an earlier one, and the
    /// order of different keys does not matter (unless one lies inside another), so neither
    /// changes the settings.
    sets: Vec<String>,
    objective: String,
    direction: Direction,
}

impl Settings {
    fn of(args: &TuneArgs, space: &Space) -> Result<Self> {
        use sha2::{Digest, Sha256};
        let bytes = std::fs::read(&args.config)
            .with_context(|| format!("{}: cannot read", args.config.display()))?;
        Ok(Self {
            config: args.config.display().to_string(),
            config_sha256: Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            sets: canonical_sets(&args.set),
            objective: space.objective.metric.to_string(),
            direction: space.objective.direction,
        })
    }

    /// Saves the settings for a folder without trials; otherwise they must match the saved
    /// ones. A folder with trials but no settings (an older mtrec's) gets them saved, with a
    /// warning that its trials could not be checked.
    fn check(&self, out: &Path, has_trials: bool) -> Result<()> {
        let path = out.join(SETTINGS_FILE);
        let saved: Option<Self> = folder_settings::read_saved(&path)?;
        match saved {
            Some(saved) if saved == *self => return Ok(()),
            Some(saved) if has_trials => {
                return match saved.difference(self) {
                    Some(difference) => bail!(
                        "{}: the trials there were made with other settings: {difference}; ranking new trials with them would mix results that do not compare: give this tuning another --out (or rerun with the same settings to resume)",
                        out.display()
                    ),
                    None => Ok(()),
                };
            }
            None if has_trials => tracing::warn!(
                "{}: no {SETTINGS_FILE} (written by an older mtrec): the logged trials are taken to share this tuning's config and --set values",
                out.display()
            ),
            _ => {}
        }
        folder_settings::save(&path, self)
    }

    /// The first setting in which `now` differs from `self`, in words; `None` where only the
    /// config's path does (same content).
    fn difference(&self, now: &Self) -> Option<String> {
        if self.config_sha256 != now.config_sha256 {
            return Some(if self.config == now.config {
                format!(
                    "{} has changed since (sha256 {} then, {} now)",
                    now.config,
                    &self.config_sha256[..12.min(self.config_sha256.len())],
                    &now.config_sha256[..12.min(now.config_sha256.len())]
                )
            } else {
                format!(
                    "--config {} now, but they were made with {} (other content)",
                    now.config, self.config
                )
            });
        }
        let key = |s: &str| s.split_once('=').map_or(s, |(k, _)| k).to_string();
        let find = |sets: &[String], k: &str| sets.iter().find(|s| key(s) == k).cloned();
        for then in &self.sets {
            match find(&now.sets, &key(then)) {
                None => return Some(format!("they had --set {then}, this run has none")),
                Some(n) if n != *then => {
                    return Some(format!("--set {n} now, but they had --set {then}"));
                }
                _ => {}
            }
        }
        if let Some(n) = now
            .sets
            .iter()
            .find(|n| find(&self.sets, &key(n)).is_none())
        {
            return Some(format!("--set {n} now, which they did not have"));
        }
        if self.sets != now.sets {
            return Some(format!(
                "--set {} now, but they had --set {} (nested keys, in another order)",
                now.sets.join(" --set "),
                self.sets.join(" --set ")
            ));
        }
        if (&self.objective, self.direction) != (&now.objective, now.direction) {
            let named = |d: Direction| match d {
                Direction::Max => "max",
                Direction::Min => "min",
            };
            return Some(format!(
                "objective {} ({}) now, but they were judged by {} ({})",
                now.objective,
                named(now.direction),
                self.objective,
                named(self.direction)
            ));
        }
        None
    }
}

/// `--set` values as the settings record them: a later value of a key replaces an earlier
/// one, and keys are sorted unless one lies inside another (`train` and `train.epochs`),
/// where the order decides the result.
fn canonical_sets(sets: &[Override]) -> Vec<String> {
    let mut kept: Vec<&Override> = sets
        .iter()
        .enumerate()
        .filter(|(i, o)| !sets[i + 1..].iter().any(|later| later.path == o.path))
        .map(|(_, o)| o)
        .collect();
    let nested = kept.iter().any(|a| {
        kept.iter()
            .any(|b| a.path.len() < b.path.len() && b.path.starts_with(&a.path))
    });
    if !nested {
        kept.sort_by(|a, b| a.path.cmp(&b.path));
    }
    kept.iter().map(ToString::to_string).collect()
}

/// Runs trials as `mtrec train` child processes.
struct TrialRunner {
    exe: PathBuf,
    threads: usize,
    config: PathBuf,
    fixed: Vec<String>,
    out: PathBuf,
    /// The config's name (after `--set`): trial `k` trains as `<name>-trial-<k>`.
    name: String,
}

/// Trial outcomes that are not the trial's fault stop the tuning instead of being logged: a
/// log line with them would poison the resume.
enum Failure {
    Trial(String),
    Setup(String),
}

impl TrialRunner {
    fn new(args: &TuneArgs, out: &Path, name: &str) -> Result<Self> {
        Ok(Self {
            exe: std::env::current_exe().context("cannot find the mtrec executable")?,
            // Set by the global --threads (all cores by default).
            threads: rayon::current_num_threads(),
            config: args.config.clone(),
            fixed: args.set.iter().map(ToString::to_string).collect(),
            out: out.to_path_buf(),
            name: name.to_string(),
        })
    }

    fn args(&self, dir: &Path, sets: &[String]) -> Vec<String> {
        let mut a = vec![
            "--threads".to_string(),
            self.threads.to_string(),
            "train".into(),
            "--config".into(),
            self.config.display().to_string(),
            "--out".into(),
            dir.display().to_string(),
        ];
        for s in self.fixed.iter().chain(sets) {
            a.push("--set".into());
            a.push(s.clone());
        }
        a
    }

    fn run(
        &self,
        space: &Space,
        trial: usize,
        params: Assignment,
        proposal: &Proposal,
    ) -> Result<TrialRecord> {
        let dir = self.out.join("trials").join(trial.to_string());
        let mut sets = space.overrides(&params);
        sets.push(trial_name(&self.name, trial));
        let args = self.args(&dir, &sets);
        let started = Instant::now();
        let result = self.execute(&dir, &args, &space.objective.metric);
        let wall_seconds = started.elapsed().as_secs_f64();
        let (status, objective, error) = match result {
            Ok(v) => (TrialStatus::Ok, Some(v), None),
            Err(Failure::Trial(e)) => (TrialStatus::Failed, None, Some(e)),
            Err(Failure::Setup(e)) => bail!("trial {trial} ({}): {e}", dir.display()),
        };
        Ok(TrialRecord {
            trial,
            params,
            metric: space.objective.metric.to_string(),
            objective,
            status,
            error,
            wall_seconds,
            source: proposal.source,
            expected_improvement: proposal.expected_improvement,
            out: dir.display().to_string(),
            command: child::shell_line("mtrec", &args),
        })
    }

    fn execute(&self, dir: &Path, args: &[String], metric: &Metric) -> Result<f64, Failure> {
        let finished = child::run(&self.exe, args, &child::log_beside(dir), Transcript::Stderr)
            .map_err(Failure::Setup)?;
        if !finished.status.success() {
            return Err(Failure::Trial(error_of(&finished.stderr, &finished.status)));
        }
        let path = dir.join(METRICS_FILE);
        let report: serde_json::Value = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .ok_or_else(|| {
                Failure::Trial(format!(
                    "training exited cleanly but left no readable {}",
                    path.display()
                ))
            })?;
        objective_of(metric, &report)
    }
}

/// `name=<name>-trial-<k>`, the `--set` that names trial `k`'s run apart: trials share the
/// config's name otherwise, and `mtrec compare` or `mtrec report` over them would show runs of
/// different values under one name. Bare where it reads back as that string, else quoted.
fn trial_name(name: &str, trial: usize) -> String {
    let named = format!("{name}-trial-{trial}");
    let bare = format!("name={named}");
    match bare.parse::<Override>() {
        Ok(o) if o.value.as_str() == Some(named.as_str()) => bare,
        _ => Override {
            path: vec!["name".into()],
            value: toml::Value::String(named),
        }
        .to_string(),
    }
}

/// The `error: ...` line a failed `mtrec train` ends with (else its last line), or how it
/// ended.
fn error_of(stderr: &str, status: &std::process::ExitStatus) -> String {
    child::reported_error(stderr)
        .or_else(|| Some(child::last_line(stderr).to_string()))
        .filter(|text| !text.is_empty())
        .map_or_else(
            || child::silent_end(status),
            |text| text.chars().take(2000).collect(),
        )
}

/// The objective from a run's report: the validation figures of the kept epoch. A figure
/// the report cannot have (an unknown task, AUC of a regression task) is a setup error that
/// every trial would repeat; a figure that is not a number (JSON writes NaN as null, which
/// leaves the report unreadable) is the trial's failure.
fn objective_of(metric: &Metric, report: &serde_json::Value) -> Result<f64, Failure> {
    let unreadable = || {
        Failure::Trial(format!(
            "{METRICS_FILE}: no readable validation figures for the kept epoch (not a number?)"
        ))
    };
    let best = report["best_epoch"].as_u64().ok_or_else(unreadable)? as usize;
    let valid: EvalReport = best
        .checked_sub(1)
        .and_then(|i| report["history"].get(i))
        .and_then(|r| serde_json::from_value(r["valid"].clone()).ok())
        .ok_or_else(unreadable)?;
    let value = match metric {
        Metric::Loss => valid.loss,
        Metric::MeanAuc => valid
            .mean_auc()
            .ok_or_else(|| Failure::Setup("valid.mean-auc: no task has a validation AUC".into()))?,
        Metric::Task { task, metric: m } => {
            let figures = valid.task(task).ok_or_else(|| {
                let names: Vec<&str> = valid
                    .tasks
                    .iter()
                    .chain(&valid.derived)
                    .map(|t| t.name.as_str())
                    .collect();
                Failure::Setup(format!(
                    "{metric}: no task `{task}` (tasks: {})",
                    names.join(", ")
                ))
            })?;
            figures.get(m.name()).ok_or_else(|| {
                Failure::Setup(format!("{metric}: task `{task}` has no {}", m.name()))
            })?
        }
    };
    if !value.is_finite() {
        return Err(Failure::Trial(format!(
            "{metric} is {value}: training diverged"
        )));
    }
    Ok(value)
}

/// The best successful record.
fn best_of<'a>(
    space: &Space,
    records: impl Iterator<Item = &'a TrialRecord>,
) -> Option<&'a TrialRecord> {
    records
        .filter(|r| r.status == TrialStatus::Ok && r.objective.is_some())
        .fold(None, |best: Option<&TrialRecord>, r| match best {
            Some(b) if !space.objective.better(r.objective?, b.objective?) => Some(b),
            _ => Some(r),
        })
}

/// One bar over the budget on a terminal; log lines otherwise.
struct TrialBar {
    bar: Option<ProgressBar>,
}

impl TrialBar {
    fn new(budget: usize, done: usize) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { bar: None };
        }
        let bar = ProgressBar::new(budget as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>10} [{bar:30}] {pos}/{len} trials, {elapsed} elapsed, ~{eta} left {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix("tune");
        bar.set_position(done as u64);
        bar.enable_steady_tick(Duration::from_secs(1));
        Self { bar: Some(bar) }
    }

    fn note(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => tracing::info!("{line}"),
        }
    }

    fn start(&self, trial: usize, settings: &str) {
        match &self.bar {
            Some(bar) => bar.set_prefix(format!("trial {trial}")),
            None => tracing::info!("trial {trial}: {settings}"),
        }
    }

    fn finished(&self, r: &TrialRecord, space: &Space, best: Option<&TrialRecord>) {
        let outcome = match (r.objective, &r.error) {
            (Some(v), _) => format!("{} {v:.4}", r.metric),
            (None, Some(e)) => format!("failed: {}", e.lines().next().unwrap_or("")),
            (None, None) => "failed".into(),
        };
        self.note(format!(
            "trial {}: {} -> {outcome} ({:.1}s)",
            r.trial,
            space.overrides(&r.params).join(" "),
            r.wall_seconds
        ));
        if let (Some(bar), Some(b)) = (&self.bar, best) {
            bar.set_message(format!(
                "best {:.4} (trial {})",
                b.objective.unwrap_or(f64::NAN),
                b.trial
            ));
        }
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The table, best.toml, the plot, and the JSON summary.
fn report(
    args: &TuneArgs,
    space: &Space,
    base: &ExperimentConfig,
    out: &Path,
    records: &[TrialRecord],
) -> Result<()> {
    let mut ranked: Vec<&TrialRecord> = records.iter().collect();
    ranked.sort_by(|a, b| match (a.objective, b.objective) {
        (Some(x), Some(y)) => space
            .objective
            .score(y)
            .partial_cmp(&space.objective.score(x))
            .unwrap_or(std::cmp::Ordering::Equal),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.trial.cmp(&b.trial),
    });
    let best = best_of(space, records.iter());
    let best_path = out.join(BEST_FILE);
    let shortcuts = shortcuts_of(args, base)?;
    let retrain = retrain_command(&best_path, &shortcuts);
    if let Some(b) = best {
        write_best_config(args, space, base, b, records.len(), &best_path, &retrain)?;
    }
    let plot = out.join(PLOT_FILE);
    if let Err(e) = write_svg(&plot, &[objective_panel(space, records)]) {
        tracing::warn!("cannot draw {}: {e}", plot.display());
    }
    if args.output.json {
        let summary = serde_json::json!({
            "metric": space.objective.metric.to_string(),
            "direction": space.objective.direction,
            "trials": ranked,
            "best": best,
            "best_config": best.map(|_| best_path.display().to_string()),
            "shortcuts": shortcuts.iter().map(|s| s.tuned.clone()).collect::<Vec<_>>(),
            "retrain": best.and(retrain.clone()),
            "log": out.join(LOG_FILE).display().to_string(),
            "plot": plot.display().to_string(),
        });
        println!("{}", serde_json::to_string(&summary)?);
        if best.is_some() {
            warn_shortcuts(&best_path, &shortcuts, &retrain);
        }
        return Ok(());
    }
    println!("{}", trials_table(space, &ranked));
    match best {
        Some(b) => println!(
            "best: trial {}, {} = {:.4}; config {best} (train it: mtrec train --config {best}); plot {}",
            b.trial,
            b.metric,
            b.objective.unwrap_or(f64::NAN),
            plot.display(),
            best = best_path.display(),
        ),
        None => println!(
            "no trial succeeded: see the errors above and the logs in {}",
            out.join("trials").display()
        ),
    }
    if best.is_some() {
        warn_shortcuts(&best_path, &shortcuts, &retrain);
    }
    Ok(())
}

/// A tuned value as the table shows it: a string bare (`fixed`, not `"fixed"`), anything
/// else as TOML writes it (`[16]`, `0.003`).
fn shown(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn trials_table(space: &Space, ranked: &[&TrialRecord]) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec![Cell::new("rank"), Cell::new("trial")];
    header.extend(space.params.iter().map(|p| Cell::new(&p.key)));
    header.extend([
        Cell::new(space.objective.metric.to_string()),
        Cell::new("seconds"),
        Cell::new("proposed by"),
    ]);
    table.set_header(header);
    for (i, r) in ranked.iter().enumerate() {
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        let mut row = vec![
            right(if r.objective.is_some() {
                (i + 1).to_string()
            } else {
                "-".into()
            }),
            right(r.trial.to_string()),
        ];
        row.extend(
            space
                .params
                .iter()
                .map(|p| right(r.params.get(&p.key).map_or_else(|| "-".into(), shown))),
        );
        row.push(match (r.objective, &r.error) {
            (Some(v), _) => right(format!("{v:.4}")),
            (None, e) => {
                let e = e.as_deref().and_then(|e| e.lines().next()).unwrap_or("");
                let short: String = e.chars().take(48).collect();
                Cell::new(format!(
                    "failed: {short}{}",
                    if e.chars().count() > 48 { "..." } else { "" }
                ))
            }
        });
        row.push(right(format!("{:.1}", r.wall_seconds)));
        row.push(Cell::new(
            serde_json::to_value(r.source)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        ));
        table.add_row(row);
    }
    table.to_string()
}

/// The config with the best trial's values, renamed `<name>-tuned` so training it does not
/// overwrite (or pool in `compare` with) the untuned runs.
fn write_best_config(
    args: &TuneArgs,
    space: &Space,
    base: &ExperimentConfig,
    best: &TrialRecord,
    trials: usize,
    path: &Path,
    retrain: &Option<String>,
) -> Result<()> {
    let mut sets = args.set.clone();
    sets.extend(space.params.iter().filter_map(|p| {
        best.params.get(&p.key).map(|v| Override {
            path: p.key.split('.').map(|s| s.trim().to_string()).collect(),
            value: v.clone(),
        })
    }));
    let mut cfg = ExperimentConfig::from_toml_file_with(&args.config, &sets)?;
    cfg.name = format!("{}-tuned", base.name);
    let mut line = vec![
        "train".to_string(),
        "--config".into(),
        args.config.display().to_string(),
    ];
    for s in &sets {
        line.extend(["--set".to_string(), s.to_string()]);
    }
    let full_budget = retrain.as_ref().map_or_else(String::new, |command| {
        format!(
            "# Its trials trained on a shortened budget, kept here; at the config's own: {command}\n"
        )
    });
    let text = format!(
        "# Written by `mtrec tune`: {} with the best of {trials} trials (trial {}, {} = {}).\n# Equivalent to: {}\n{full_budget}\n{}",
        args.config.display(),
        best.trial,
        best.metric,
        best.objective.unwrap_or(f64::NAN),
        child::shell_line("mtrec", &line),
        cfg.to_toml_string()
    );
    write_atomically(path, text.as_bytes())
}

/// A shortcut key (see [`SHORTCUT_KEYS`]) whose value the tuning's `--set` changed.
struct Shortcut {
    key: &'static str,
    /// `key=value` as the trials had it.
    tuned: String,
    /// The config's own value; `None` where the config leaves the key out.
    config: Option<toml::Value>,
}

/// The shortcut keys on which the config with the tuning's `--set` differs from the file.
fn shortcuts_of(args: &TuneArgs, base: &ExperimentConfig) -> Result<Vec<Shortcut>> {
    if args.set.is_empty() {
        return Ok(Vec::new());
    }
    let plain = toml::Value::try_from(ExperimentConfig::from_toml_file(&args.config)?)?;
    let tuned = toml::Value::try_from(base)?;
    let at = |v: &toml::Value, key: &str| -> Option<toml::Value> {
        key.split('.').try_fold(v, |v, part| v.get(part)).cloned()
    };
    Ok(SHORTCUT_KEYS
        .iter()
        .filter_map(|&key| {
            let (config, now) = (at(&plain, key), at(&tuned, key));
            (config != now).then(|| Shortcut {
                key,
                tuned: format!(
                    "{key}={}",
                    now.map_or_else(|| "(none)".into(), |v| v.to_string())
                ),
                config,
            })
        })
        .collect())
}

/// How to train best.toml at the config's own budget, where the tuning shortened it.
fn retrain_command(best: &Path, shortcuts: &[Shortcut]) -> Option<String> {
    if shortcuts.is_empty() {
        return None;
    }
    let mut line = vec![
        "train".to_string(),
        "--config".into(),
        best.display().to_string(),
    ];
    let mut delete = Vec::new();
    for s in shortcuts {
        match &s.config {
            Some(v) => line.extend(["--set".to_string(), format!("{}={v}", s.key)]),
            None => delete.push(format!("`{}`", s.key)),
        }
    }
    let mut command = child::shell_line("mtrec", &line);
    if !delete.is_empty() {
        command.push_str(&format!(
            " (after deleting {} from it: the config has none)",
            delete.join(" and ")
        ));
    }
    Some(command)
}

/// The end-of-tuning warning that best.toml inherits the tuning's shortened budget.
fn warn_shortcuts(best: &Path, shortcuts: &[Shortcut], retrain: &Option<String>) {
    if let Some(command) = retrain {
        let listed: Vec<String> = shortcuts
            .iter()
            .map(|s| format!("--set {}", s.tuned))
            .collect();
        tracing::warn!(
            "{} keeps this tuning's shortcuts ({}), as its trials trained with them: to train the best values at the config's own budget, run {command}",
            best.display(),
            listed.join(" ")
        );
    }
}

fn objective_panel(space: &Space, records: &[TrialRecord]) -> Panel {
    let done: Vec<(f64, f64)> = records
        .iter()
        .filter_map(|r| r.objective.map(|v| (r.trial as f64, v)))
        .collect();
    let mut best_so_far: Vec<(f64, f64)> = Vec::new();
    for &(t, v) in &done {
        let next = match best_so_far.last() {
            Some(&(_, b)) if !space.objective.better(v, b) => b,
            _ => v,
        };
        best_so_far.push((t, next));
    }
    let metric = space.objective.metric.to_string();
    Panel {
        title: format!("{metric} by trial"),
        x_label: "trial".into(),
        y_label: metric,
        series: vec![
            Series {
                name: "trial".into(),
                points: done,
            },
            Series {
                name: "best so far".into(),
                points: best_so_far,
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report whose validation and test figures differ everywhere, as `mtrec train` writes
    /// it: the objective must come from the kept epoch's validation figures.
    fn report() -> serde_json::Value {
        let valid = |auc_a: f64, loss: f64| {
            serde_json::json!({
                "tasks": [
                    {"name": "a", "kind": "binary", "metrics": {"auc": auc_a, "logloss": 0.3, "n": 10}},
                    {"name": "b", "kind": "binary", "metrics": {"auc": 0.7, "logloss": 0.5, "n": 10}}
                ],
                "loss": loss
            })
        };
        serde_json::json!({
            "tasks": {"a": {"auc": 0.99, "n": 10}, "b": {"auc": 0.98, "n": 10}},
            "test_loss": 0.01,
            "valid": {"tasks": {"a": {"auc": 0.8, "n": 10}}, "loss": 0.4},
            "best_epoch": 2,
            "history": [
                {"epoch": 1, "train_loss": 1.0, "valid": valid(0.6, 0.9), "seconds": 1.0},
                {"epoch": 2, "train_loss": 0.8, "valid": valid(0.8, 0.4), "seconds": 1.0},
                {"epoch": 3, "train_loss": 0.7, "valid": valid(0.75, 0.5), "seconds": 1.0}
            ]
        })
    }

    fn value(metric: &str) -> Result<f64, Failure> {
        objective_of(&Metric::parse(metric).unwrap(), &report())
    }

    #[test]
    fn objective_is_the_kept_epochs_validation_figure_never_a_test_one() {
        assert_eq!(value("valid.a.auc").ok(), Some(0.8));
        assert_eq!(value("valid.a.logloss").ok(), Some(0.3));
        assert_eq!(value("valid.mean-auc").ok(), Some(0.75));
        assert_eq!(value("valid.loss").ok(), Some(0.4));
    }

    #[test]
    fn a_figure_the_report_cannot_have_stops_the_tuning() {
        match value("valid.c.auc") {
            Err(Failure::Setup(e)) => assert!(e.contains("no task `c` (tasks: a, b)"), "{e}"),
            _ => panic!("expected a setup error"),
        }
        match value("valid.a.mse") {
            Err(Failure::Setup(e)) => assert!(e.contains("task `a` has no mse"), "{e}"),
            _ => panic!("expected a setup error"),
        }
    }

    #[test]
    fn a_diverged_training_fails_only_its_trial() {
        // A NaN validation loss reaches the file as null (JSON has no NaN).
        let mut r = report();
        r["history"][1]["valid"]["loss"] = serde_json::json!(f64::NAN);
        assert!(r["history"][1]["valid"]["loss"].is_null());
        for metric in ["valid.loss", "valid.a.auc"] {
            match objective_of(&Metric::parse(metric).unwrap(), &r) {
                Err(Failure::Trial(e)) => assert!(e.contains("not a number"), "{e}"),
                _ => panic!("{metric}: expected the trial to fail"),
            }
        }
    }

    #[test]
    fn trials_are_named_apart_from_the_config() {
        assert_eq!(
            trial_name("census-g1-mmoe", 3),
            "name=census-g1-mmoe-trial-3"
        );
        // A name that would not read back bare (its space trimmed) is quoted, and does.
        let quoted = trial_name(" a", 1);
        assert_eq!(quoted, "name=\" a-trial-1\"");
        let o: Override = quoted.parse().unwrap();
        assert_eq!(o.value.as_str(), Some(" a-trial-1"));
    }

    #[test]
    fn the_table_shows_choice_values_bare() {
        let space = Space::from_toml_str(
            "[objective]\nmetric = \"valid.loss\"\n[[param]]\nkey = \"weighting.kind\"\nvalues = [\"fixed\", \"uncertainty\"]\n[[param]]\nkey = \"model.expert\"\ntype = \"int\"\nmin = 4\nmax = 8\nlayers = 1\n",
            Path::new("s.toml"),
        )
        .unwrap();
        let record = TrialRecord {
            trial: 1,
            params: space.decode(&[0.0, 1.0, 0.0]),
            metric: "valid.loss".into(),
            objective: Some(0.25),
            status: TrialStatus::Ok,
            error: None,
            wall_seconds: 1.0,
            source: mtrec_tune::Source::Design,
            expected_improvement: None,
            out: String::new(),
            command: String::new(),
        };
        let table = trials_table(&space, &[&record]);
        assert!(table.contains(" uncertainty "), "{table}");
        assert!(!table.contains('"'), "{table}");
        assert!(table.contains(" [4] "), "{table}");
    }

    #[test]
    fn settings_ignore_repeats_and_order_but_name_the_first_difference() {
        let sets =
            |list: &[&str]| -> Vec<Override> { list.iter().map(|s| s.parse().unwrap()).collect() };
        assert_eq!(
            canonical_sets(&sets(&[
                "train.epochs=2",
                "data.n_train=256",
                "train.epochs=1"
            ])),
            ["data.n_train=256", "train.epochs=1"]
        );
        // A key inside another: the order decides, so it is kept.
        assert_eq!(
            canonical_sets(&sets(&["train.epochs=1", "train={epochs = 2}"])),
            ["train.epochs=1", "train={ epochs = 2 }"]
        );
        let settings = |sha: &str, sets: &[&str], objective: &str| Settings {
            config: "a.toml".into(),
            config_sha256: sha.into(),
            sets: sets.iter().map(|s| s.to_string()).collect(),
            objective: objective.into(),
            direction: Direction::Min,
        };
        let then = settings("aaaa", &["train.epochs=1"], "valid.loss");
        assert_eq!(then.difference(&then.clone()), None);
        let moved = Settings {
            config: "./a.toml".into(),
            ..then.clone()
        };
        assert_eq!(then.difference(&moved), None, "same content, another path");
        assert_eq!(
            then.difference(&settings("bbbb", &["train.epochs=1"], "valid.loss"))
                .unwrap(),
            "a.toml has changed since (sha256 aaaa then, bbbb now)"
        );
        assert_eq!(
            then.difference(&settings("aaaa", &[], "valid.loss"))
                .unwrap(),
            "they had --set train.epochs=1, this run has none"
        );
        assert_eq!(
            then.difference(&settings("aaaa", &["train.epochs=1"], "valid.a.mse"))
                .unwrap(),
            "objective valid.a.mse (min) now, but they were judged by valid.loss (min)"
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_error_line_of_a_failed_training_is_kept() {
        use std::os::unix::process::ExitStatusExt;
        let status = std::process::ExitStatus::from_raw(256);
        let e = error_of(
            "WARN something\nerror: the training and validation splits must not be empty\n",
            &status,
        );
        assert_eq!(e, "the training and validation splits must not be empty");
        assert_eq!(error_of("", &status), "exit code 1, nothing on stderr");
    }
}
