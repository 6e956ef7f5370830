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

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use indicatif::{ProgressBar, ProgressStyle};
use mtrec_arch::ArchConfig;
use mtrec_engine::checkpoint::METRICS_FILE;
use mtrec_engine::config::Override;
use mtrec_engine::{EvalReport, ExperimentConfig};
use mtrec_report::{Panel, Series, write_svg};
use mtrec_tune::{
    Assignment, Metric, Proposal, Space, TrialLog, TrialRecord, TrialStatus, propose,
};

use crate::atomic::write_atomically;
use crate::child::{self, Transcript};
use crate::cli::TuneArgs;

const LOG_FILE: &str = "trials.jsonl";
const BEST_FILE: &str = "best.toml";
const PLOT_FILE: &str = "objective.svg";

pub fn run(args: TuneArgs) -> Result<()> {
    let space = Space::from_toml_file(&args.space)?;
    let base = ExperimentConfig::from_toml_file_with(&args.config, &args.set)?;
    if let ArchConfig::Automtl(_) = base.model {
        bail!(
            "{}: `[model] kind = \"automtl\"` is a search space, and tune trains with `mtrec train`: tune a hand-made model, or the searched one with `--set` on its config",
            args.config.display()
        );
    }
    check_space_fits_config(&space, &args)?;
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
    let mut log = TrialLog::open(&out.join(LOG_FILE))?;
    if log.dropped_torn_line {
        tracing::warn!(
            "{}: dropped a last line cut off by a crash; that trial runs again",
            log.path().display()
        );
    }
    let mut history = log.observations(&space)?;
    let runner = TrialRunner::new(&args, &out)?;
    let bar = TrialBar::new(budget, log.records().len());
    if !log.records().is_empty() && log.records().len() < budget {
        bar.note(format!(
            "resuming {}: {} of {budget} trials done",
            log.path().display(),
            log.records().len()
        ));
    }
    while log.records().len() < budget {
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

/// Runs trials as `mtrec train` child processes.
struct TrialRunner {
    exe: PathBuf,
    threads: usize,
    config: PathBuf,
    fixed: Vec<String>,
    out: PathBuf,
}

/// Trial outcomes that are not the trial's fault stop the tuning instead of being logged: a
/// log line with them would poison the resume.
enum Failure {
    Trial(String),
    Setup(String),
}

impl TrialRunner {
    fn new(args: &TuneArgs, out: &Path) -> Result<Self> {
        Ok(Self {
            exe: std::env::current_exe().context("cannot find the mtrec executable")?,
            // Set by the global --threads (all cores by default).
            threads: rayon::current_num_threads(),
            config: args.config.clone(),
            fixed: args.set.iter().map(ToString::to_string).collect(),
            out: out.to_path_buf(),
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
        let args = self.args(&dir, &space.overrides(&params));
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
    if let Some(b) = best {
        write_best_config(args, space, base, b, records.len(), &best_path)?;
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
            "log": out.join(LOG_FILE).display().to_string(),
            "plot": plot.display().to_string(),
        });
        println!("{}", serde_json::to_string(&summary)?);
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
    Ok(())
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
        row.extend(space.params.iter().map(|p| {
            right(
                r.params
                    .get(&p.key)
                    .map_or_else(|| "-".to_string(), ToString::to_string),
            )
        }));
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
    let listed: Vec<String> = sets.iter().map(|s| format!("--set {s}")).collect();
    let text = format!(
        "# Written by `mtrec tune`: {} with the best of {trials} trials (trial {}, {} = {}).\n# Equivalent to: mtrec train --config {0} {}\n\n{}",
        args.config.display(),
        best.trial,
        best.metric,
        best.objective.unwrap_or(f64::NAN),
        listed.join(" "),
        cfg.to_toml_string()
    );
    write_atomically(path, text.as_bytes())
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
