//! `mtrec run GRID.toml`: every run of a grid (configs x variants x seeds, see [`crate::grid`])
//! by a pool of worker processes, each run one `mtrec train`/`mtrec search` command line of
//! this executable; each finished run becomes one JSON line of `<out>/results.jsonl`.
//!
//! Restarting the same command skips runs recorded `ok` and retries failed ones. A run folder
//! that holds a finished run (its `metrics.json`) without a line, because it ran elsewhere
//! from `--print-commands` or this process died before writing the line, is recorded
//! instead of run again, once its saved `config.toml` is checked against the grid.
//!
//! Only the coordinating thread writes `results.jsonl`, one whole line per `write` and a sync
//! after each, so lines never interleave and a crash can cut off at most the line being
//! written; reading skips such a line and the next append starts on a fresh one.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use indicatif::{HumanDuration, ProgressBar, ProgressState, ProgressStyle};
use mtrec_engine::ExperimentConfig;
use mtrec_engine::checkpoint::{CONFIG_FILE, METRICS_FILE};
use mtrec_engine::config::Override;
use mtrec_report::settings;
use serde::{Deserialize, Serialize};

use crate::child::{self, Transcript, last_line, shell_line};
use crate::cli::RunArgs;
use crate::grid::{Grid, Program, RunSpec};
use crate::lock::lock_exclusively;

pub const RESULTS_FILE: &str = "results.jsonl";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Failed,
}

/// Whether this runner started the run or found it finished in its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Source {
    Ran,
    Found,
}

/// One line of `results.jsonl`.
#[derive(Debug, Serialize)]
struct Record<'a> {
    id: &'a str,
    config: String,
    command: &'static str,
    variant: Option<&'a str>,
    overrides: &'a [String],
    seed: u64,
    out: String,
    /// The exact argument vector, executable first, and the same as one shell line.
    argv: Vec<String>,
    command_line: String,
    status: Status,
    source: Source,
    exit_code: Option<i32>,
    /// For failures: the tail of the run's stderr, or why the runner refused the run.
    error: Option<String>,
    /// The run's whole stderr (runs started by this runner).
    log: Option<String>,
    wall_seconds: Option<f64>,
    finished_unix: u64,
    /// The run's `metrics.json` (successes).
    metrics: Option<serde_json::Value>,
}

/// What a restart reads back from a line: whether the run is finished, and with which
/// settings.
#[derive(Debug, Deserialize)]
struct Recorded {
    id: String,
    config: String,
    command: String,
    overrides: Vec<String>,
    seed: u64,
    status: Status,
    #[serde(default)]
    exit_code: Option<i32>,
    #[serde(default)]
    error: Option<String>,
}

impl Recorded {
    fn same_settings(&self, spec: &RunSpec) -> bool {
        self.settings_difference(spec).is_none()
    }

    /// What changed between the recorded command line and the grid's, briefly.
    fn settings_difference(&self, spec: &RunSpec) -> Option<String> {
        let mut parts = Vec::new();
        let config = spec.config.display().to_string();
        if self.config != config || self.command != spec.program.as_str() {
            parts.push(format!(
                "recorded `{} --config {}`, the grid now gives `{} --config {config}`",
                self.command,
                self.config,
                spec.program.as_str()
            ));
        }
        if self.seed != spec.seed {
            parts.push(format!(
                "recorded seed {}, the grid now gives {}",
                self.seed, spec.seed
            ));
        }
        let (recorded, now) = (canonical(&self.overrides), canonical(&spec.overrides));
        if recorded != now {
            // Named as written, compared as parsed.
            let missing = |a: &[String], ca: &[String], cb: &[String]| -> Vec<String> {
                a.iter()
                    .zip(ca)
                    .filter(|(_, c)| !cb.contains(c))
                    .map(|(o, _)| format!("--set {o}"))
                    .collect()
            };
            let dropped = missing(&self.overrides, &recorded, &now);
            let added = missing(&spec.overrides, &now, &recorded);
            let mut said = Vec::new();
            if !dropped.is_empty() {
                said.push(format!("drops `{}`", dropped.join(" ")));
            }
            if !added.is_empty() {
                said.push(format!("adds `{}`", added.join(" ")));
            }
            if said.is_empty() {
                said.push("orders its overrides differently".into());
            }
            parts.push(format!("the grid now {}", said.join(" and ")));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Overrides as parsed (key path and TOML value, written back as `key=value`), so that
/// `train.epochs = 1` and `train.epochs=1` are the same setting; text that does not parse
/// stays as it is.
fn canonical(overrides: &[String]) -> Vec<String> {
    overrides
        .iter()
        .map(|o| {
            o.parse::<Override>()
                .map_or_else(|_| o.clone(), |p| p.to_string())
        })
        .collect()
}

/// Where a run stands before this invocation starts anything.
#[derive(Debug)]
enum State {
    /// Recorded `ok`.
    Done,
    /// Last recorded failed, and `--skip-failed` keeps it so.
    KeptFailed,
    /// Its folder holds a finished run of exactly these settings, not yet recorded.
    Found(serde_json::Value),
    /// Its folder holds a finished run of other settings: refused, never overwritten.
    Clash(String),
    Pending,
}

pub fn run(args: RunArgs) -> Result<()> {
    run_grid(args, true)
}

/// [`run`] for a caller that prints its own summary of the results (`mtrec repro census`):
/// without the `mtrec compare` hint.
pub fn run_without_hint(args: RunArgs) -> Result<()> {
    run_grid(args, false)
}

fn run_grid(args: RunArgs, compare_hint: bool) -> Result<()> {
    let grid = Grid::load(&args.grid)?;
    let threads = args.threads_per_run.map_or(1, NonZeroUsize::get);
    let exe = std::env::current_exe()
        .context("cannot find the mtrec executable to start the runs with")?
        .display()
        .to_string();
    let results_path = grid.out.join(RESULTS_FILE);
    // Locked before reading, so a runner that just finished cannot leave this one a stale
    // picture; printing commands only reads.
    let log = if args.print_commands {
        None
    } else {
        fs::create_dir_all(&grid.out)
            .with_context(|| format!("{}: cannot create the output folder", grid.out.display()))?;
        Some(ResultsLog::open(&results_path)?)
    };
    let recorded = read_results(&results_path)?;
    check_finished_settings(&grid, &recorded, &results_path)?;
    let states: Vec<State> = grid
        .runs
        .iter()
        .map(|spec| state_of(spec, recorded.get(&spec.id), args.skip_failed))
        .collect();

    let Some(mut log) = log else {
        return print_commands(&grid, &states, &exe, threads, &results_path);
    };
    let interactive = std::io::stderr().is_terminal();
    let total = grid.runs.len();
    let count = |f: fn(&State) -> bool| states.iter().filter(|s| f(s)).count();
    let done_before = count(|s| matches!(s, State::Done));
    let kept_failed = count(|s| matches!(s, State::KeptFailed));
    let pending: VecDeque<usize> = (0..total)
        .filter(|&i| matches!(states[i], State::Pending))
        .collect();
    let jobs = args
        .jobs
        .map(NonZeroUsize::get)
        .unwrap_or_else(|| default_jobs(threads))
        .min(pending.len().max(1));

    let mut tally = Tally::default();
    let mut failures: Vec<FailureRow> = Vec::new();
    for (index, (spec, state)) in grid.runs.iter().zip(&states).enumerate() {
        match state {
            State::KeptFailed => {
                let r = &recorded[&spec.id];
                failures.push(FailureRow {
                    index,
                    id: spec.id.clone(),
                    exit_code: r.exit_code,
                    error: r.error.clone().unwrap_or_default(),
                    note: "earlier, kept (--skip-failed)",
                });
            }
            State::Found(metrics) => {
                let record = record_of(spec, &exe, threads, Outcome::found(metrics.clone()));
                log.append(&record)?;
                tally.found += 1;
            }
            State::Clash(why) => {
                let outcome = Outcome::refused(why.clone());
                log.append(&record_of(spec, &exe, threads, outcome))?;
                failures.push(FailureRow {
                    index,
                    id: spec.id.clone(),
                    exit_code: None,
                    error: why.clone(),
                    note: "refused",
                });
            }
            State::Done | State::Pending => {}
        }
    }

    let (bar, time_left) = overall_bar(interactive, &grid.name, total, total - pending.len());
    bar.set_message(failed_note(failures.len()));
    let header = format!(
        "grid {}: {total} runs; {done_before} finished before, {} found on disk, {} to run, {jobs} at a time with {threads} thread(s) each",
        grid.name,
        tally.found,
        pending.len()
    );
    if interactive {
        bar.println(header);
    } else {
        tracing::info!("{header}");
    }

    let to_run = pending.len();
    let queue = Mutex::new(pending);
    let stop = AtomicBool::new(false);
    let mut log_error: Option<anyhow::Error> = None;
    let mut finished_walls: Vec<f64> = Vec::new();
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, Outcome)>();
        for _ in 0..jobs.min(to_run) {
            let tx = tx.clone();
            let (queue, stop, grid, exe) = (&queue, &stop, &grid, &exe);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                    let Some(i) = next else { break };
                    let spec = &grid.runs[i];
                    let outcome = execute(exe, spec, threads);
                    if tx.send((i, outcome)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (i, outcome) in rx {
            let spec = &grid.runs[i];
            if let Some(w) = outcome.wall_seconds {
                finished_walls.push(w);
            }
            let line = match outcome.status {
                Status::Ok => format!(
                    "ok      {} ({:.1} s)",
                    spec.id,
                    outcome.wall_seconds.unwrap_or(0.0)
                ),
                Status::Failed => format!(
                    "FAILED  {}: {}",
                    spec.id,
                    last_line(outcome.error.as_deref().unwrap_or(""))
                ),
            };
            match (interactive, outcome.status) {
                (true, _) => bar.println(line),
                (false, Status::Ok) => tracing::info!("{line}"),
                (false, Status::Failed) => tracing::warn!("{line}"),
            }
            if outcome.status == Status::Failed {
                failures.push(FailureRow {
                    index: i,
                    id: spec.id.clone(),
                    exit_code: outcome.exit_code,
                    error: outcome.error.clone().unwrap_or_default(),
                    note: "",
                });
                tally.failed_now += 1;
            } else {
                tally.ran += 1;
            }
            if log_error.is_none()
                && let Err(e) = log.append(&record_of(spec, &exe, threads, outcome))
            {
                // Nothing more can be recorded: let the runs under way end, start none.
                stop.store(true, Ordering::Relaxed);
                log_error = Some(e);
            }
            let settled = tally.ran + tally.failed_now;
            bar.inc(1);
            bar.set_message(failed_note(failures.len()));
            set_time_left(&time_left, &finished_walls, to_run - settled, jobs);
        }
    });
    bar.finish_and_clear();
    if let Some(e) = log_error {
        return Err(e.context("stopped: the results file cannot be written"));
    }

    let ok = done_before + tally.found + tally.ran;
    if !failures.is_empty() {
        failures.sort_by_key(|f| f.index);
        println!("{}", failure_table(&failures));
    }
    println!(
        "grid {}: {ok} of {total} runs ok ({} ran now, {} found on disk, {done_before} finished before), {} failed; results in {}",
        grid.name,
        tally.ran,
        tally.found,
        failures.len(),
        results_path.display()
    );
    if ok > 0 && compare_hint {
        println!("compare them: mtrec compare {}/*/", grid.out.display());
    }
    if !failures.is_empty() {
        let retry = if kept_failed > 0 {
            "without --skip-failed, running this command again retries them"
        } else {
            "running this command again retries them"
        };
        bail!(
            "{} of {total} runs failed (listed above; {retry})",
            failures.len()
        );
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Tally {
    ran: usize,
    found: usize,
    failed_now: usize,
}

/// As many runs at a time as there are cores for their threads.
fn default_jobs(threads: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    (cores / threads).max(1)
}

fn print_commands(
    grid: &Grid,
    states: &[State],
    exe: &str,
    threads: usize,
    results: &Path,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let mut found = 0;
    let mut listed = 0;
    for (spec, state) in grid.runs.iter().zip(states) {
        match state {
            State::Pending => {
                writeln!(out, "{}", shell_line(exe, &spec.args(threads)))?;
                listed += 1;
            }
            State::Found(_) => found += 1,
            State::Clash(why) => tracing::warn!("{}: not listed: {why}", spec.id),
            State::Done | State::KeptFailed => {}
        }
    }
    if found > 0 {
        tracing::info!(
            "{found} run(s) finished on disk and not listed; `mtrec run` records them without running them"
        );
    }
    if listed == 0 {
        // An empty stdout alone reads like a failure to a user piping it into a file.
        eprintln!("{}", nothing_pending(states, results));
    }
    Ok(())
}

/// Why `--print-commands` printed no line.
fn nothing_pending(states: &[State], results: &Path) -> String {
    let count = |f: fn(&State) -> bool| states.iter().filter(|s| f(s)).count();
    let done = count(|s| matches!(s, State::Done));
    let total = states.len();
    if done == total {
        return format!(
            "nothing pending: all {total} runs are recorded in {}",
            results.display()
        );
    }
    let mut parts = vec![format!(
        "{done} of {total} runs are recorded in {}",
        results.display()
    )];
    let found = count(|s| matches!(s, State::Found(_)));
    if found > 0 {
        parts.push(format!(
            "{found} finished on disk (`mtrec run` without --print-commands records them)"
        ));
    }
    let kept = count(|s| matches!(s, State::KeptFailed));
    if kept > 0 {
        parts.push(format!("{kept} failed and kept so by --skip-failed"));
    }
    let clashes = count(|s| matches!(s, State::Clash(_)));
    if clashes > 0 {
        parts.push(format!("{clashes} refused (see above)"));
    }
    format!("nothing pending: {}", parts.join(", "))
}

/// The bar's note after `N/M runs`: empty until a run fails, so the line never shows an
/// empty field.
fn failed_note(failed: usize) -> String {
    if failed == 0 {
        String::new()
    } else {
        format!(", {failed} failed")
    }
}

/// How a run ended.
#[derive(Debug)]
struct Outcome {
    status: Status,
    source: Source,
    exit_code: Option<i32>,
    error: Option<String>,
    log: Option<String>,
    wall_seconds: Option<f64>,
    metrics: Option<serde_json::Value>,
}

impl Outcome {
    fn found(metrics: serde_json::Value) -> Self {
        Self {
            status: Status::Ok,
            source: Source::Found,
            exit_code: None,
            error: None,
            log: None,
            wall_seconds: metrics["wall_seconds"].as_f64(),
            metrics: Some(metrics),
        }
    }

    fn refused(why: String) -> Self {
        Self {
            status: Status::Failed,
            source: Source::Found,
            exit_code: None,
            error: Some(why),
            log: None,
            wall_seconds: None,
            metrics: None,
        }
    }
}

fn record_of<'a>(spec: &'a RunSpec, exe: &str, threads: usize, o: Outcome) -> Record<'a> {
    let args = spec.args(threads);
    Record {
        id: &spec.id,
        config: spec.config.display().to_string(),
        command: spec.program.as_str(),
        variant: spec.variant.as_deref(),
        overrides: &spec.overrides,
        seed: spec.seed,
        out: spec.out.display().to_string(),
        command_line: shell_line(exe, &args),
        argv: std::iter::once(exe.to_string()).chain(args).collect(),
        status: o.status,
        source: o.source,
        exit_code: o.exit_code,
        error: o.error,
        log: o.log,
        wall_seconds: o.wall_seconds,
        finished_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        metrics: o.metrics,
    }
}

/// Runs one command line of this executable and waits for it. The child's stderr goes to
/// `<out>/<id>.log`, beside the run folder.
fn execute(exe: &str, spec: &RunSpec, threads: usize) -> Outcome {
    let started = Instant::now();
    let result = child::run(
        Path::new(exe),
        &spec.args(threads),
        &child::log_beside(&spec.out),
        Transcript::Stderr,
    );
    let wall = started.elapsed().as_secs_f64();
    let failed = |exit_code, error: String, log| Outcome {
        status: Status::Failed,
        source: Source::Ran,
        exit_code,
        error: Some(error),
        log,
        wall_seconds: Some(wall),
        metrics: None,
    };
    let finished = match result {
        Ok(f) => f,
        Err(e) => return failed(None, e, None),
    };
    let log = finished.log.map(|p| p.display().to_string());
    let code = finished.status.code();
    if !finished.status.success() {
        let error = child::error_tail(&finished.stderr, &finished.status);
        return failed(code, error, log);
    }
    match read_metrics(&spec.out) {
        Ok(metrics) => Outcome {
            status: Status::Ok,
            source: Source::Ran,
            exit_code: code,
            error: None,
            log,
            wall_seconds: Some(wall),
            metrics: Some(metrics),
        },
        Err(e) => failed(code, format!("the run exited cleanly but {e}"), log),
    }
}

fn read_metrics(dir: &Path) -> Result<serde_json::Value, String> {
    let path = dir.join(METRICS_FILE);
    let text =
        fs::read_to_string(&path).map_err(|e| format!("{} cannot be read: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))
}

fn state_of(spec: &RunSpec, last: Option<&Recorded>, skip_failed: bool) -> State {
    match last {
        Some(r) if r.status == Status::Ok => return State::Done,
        Some(r) if skip_failed && r.same_settings(spec) => return State::KeptFailed,
        _ => {}
    }
    if !spec.out.join(METRICS_FILE).is_file() {
        return State::Pending;
    }
    let clash = |why: String| {
        State::Clash(format!(
            "{} holds a finished run of other settings ({why}); delete that folder to run it again, or give the grid another `out`",
            spec.out.display()
        ))
    };
    match saved_config_difference(spec) {
        Ok(None) => match read_metrics(&spec.out) {
            Ok(metrics) => State::Found(metrics),
            Err(e) => clash(e),
        },
        Ok(Some(diff)) => clash(diff),
        Err(e) => clash(e),
    }
}

/// `Ok(None)` when the run folder's saved config is the one the grid asks for; otherwise the
/// first difference. A search saves the architecture it found in place of its search space,
/// so for a search every section but `[model]` is compared (the rule `mtrec compare` and
/// `mtrec report` group runs by: [`mtrec_report::settings`]).
fn saved_config_difference(spec: &RunSpec) -> Result<Option<String>, String> {
    let path = spec.out.join(CONFIG_FILE);
    let text =
        fs::read_to_string(&path).map_err(|e| format!("{} cannot be read: {e}", path.display()))?;
    let saved = ExperimentConfig::from_toml_str(&text, &path).map_err(|e| e.to_string())?;
    let as_table = |c: &ExperimentConfig| match toml::Value::try_from(c) {
        Ok(toml::Value::Table(t)) => Ok(t),
        Ok(_) => Err("a config is not a TOML table".to_string()),
        Err(e) => Err(e.to_string()),
    };
    let (mut saved, mut expected) = (as_table(&saved)?, as_table(&spec.expected)?);
    if settings::holds_search_outcome(&saved, spec.program == Program::Search) {
        saved.remove(settings::MODEL_SECTION);
        expected.remove(settings::MODEL_SECTION);
    }
    Ok(first_difference(&saved, &expected))
}

/// The first key whose value differs, as "`train.learning_rate`: saved 0.001, grid 0.003".
fn first_difference(saved: &toml::Table, grid: &toml::Table) -> Option<String> {
    let d = settings::differences(saved, grid).into_iter().next()?;
    let show = |v: Option<toml::Value>| v.map_or("nothing".to_string(), |v| v.to_string());
    Some(format!(
        "`{}`: saved {}, grid {}",
        d.key,
        show(d.left),
        show(d.right)
    ))
}

/// Refuses to mix settings in one results file: a run recorded `ok` must have been made with
/// the settings the grid gives it now (its command line, and the config in its folder where
/// that still exists), else the grid needs a new `out`.
fn check_finished_settings(
    grid: &Grid,
    recorded: &HashMap<String, Recorded>,
    results: &Path,
) -> Result<()> {
    let mut changed = Vec::new();
    for spec in &grid.runs {
        let Some(r) = recorded.get(&spec.id).filter(|r| r.status == Status::Ok) else {
            continue;
        };
        if let Some(diff) = r.settings_difference(spec) {
            changed.push(format!("{}: {diff}", spec.id));
        } else if spec.out.join(CONFIG_FILE).is_file() {
            match saved_config_difference(spec) {
                Ok(None) => {}
                Ok(Some(diff)) => changed.push(format!("{}: {diff}", spec.id)),
                Err(e) => changed.push(format!("{}: {e}", spec.id)),
            }
        }
    }
    if changed.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = changed.iter().take(5).map(|c| format!("\n  {c}")).collect();
    bail!(
        "{}: {} finished run(s) were made with other settings than the grid (or its configs) now give:{}{}\nresults of different settings must not mix: give the changed grid another `out`, or a variant a new label",
        results.display(),
        changed.len(),
        shown.concat(),
        if changed.len() > 5 { "\n  ..." } else { "" }
    )
}

/// The last record of each run id; lines that do not parse (a write cut short) are skipped.
fn read_results(path: &Path) -> Result<HashMap<String, Recorded>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read", path.display())),
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut last = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Recorded>(line) {
            Ok(r) => {
                last.insert(r.id.clone(), r);
            }
            Err(e) => tracing::warn!(
                "{}:{}: not a run record ({e}); ignored",
                path.display(),
                n + 1
            ),
        }
    }
    Ok(last)
}

/// The runs a results file records as failed (the last record of each id decides), sorted by
/// id, each with the line of its error that says why: the `error: ...` line a failed mtrec
/// command ends with, else the error's last line.
pub(crate) fn recorded_failures(path: &Path) -> Result<Vec<(String, String)>> {
    let mut failed: Vec<(String, String)> = read_results(path)?
        .into_values()
        .filter(|r| r.status == Status::Failed)
        .map(|r| {
            let error = r.error.unwrap_or_default();
            let line = child::reported_error(&error)
                .and_then(|e| e.lines().next().map(str::to_string))
                .unwrap_or_else(|| last_line(&error).to_string());
            (r.id, line)
        })
        .collect();
    failed.sort();
    Ok(failed)
}

/// `results.jsonl`, opened for appending by one runner at a time.
struct ResultsLog {
    file: File,
}

impl ResultsLog {
    fn open(path: &Path) -> Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .with_context(|| format!("{}: cannot open for appending", path.display()))?;
        // Two runners on one `out` would start the same runs twice.
        lock_exclusively(&file, path, || {
            format!(
                "{}: another `mtrec run` is working on this grid; wait for it, or give this one another `out`",
                path.display()
            )
        })?;
        // A line cut short by a crash stays a line of its own.
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))
                .and_then(|_| file.read_exact(&mut last))
                .with_context(|| format!("{}: cannot read", path.display()))?;
            if last[0] != b'\n' {
                file.write_all(b"\n")
                    .with_context(|| format!("{}: cannot write", path.display()))?;
            }
        }
        Ok(Self { file })
    }

    fn append(&mut self, record: &Record<'_>) -> Result<()> {
        let mut line = serde_json::to_string(record)?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .context("appending to the results file")
    }
}

/// The estimate shown as `left`, and when it was made (it counts down between runs).
type TimeLeft = Arc<Mutex<Option<(Instant, Duration)>>>;

/// One bar over the whole grid; hidden when stderr is not a terminal.
fn overall_bar(
    interactive: bool,
    name: &str,
    total: usize,
    settled: usize,
) -> (ProgressBar, TimeLeft) {
    let left: TimeLeft = Arc::new(Mutex::new(None));
    if !interactive {
        return (ProgressBar::hidden(), left);
    }
    let shown = Arc::clone(&left);
    let style = ProgressStyle::with_template(
        "{prefix:>12} [{bar:30}] {pos}/{len} runs{msg}, {elapsed} elapsed, {left} left",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .with_key(
        "left",
        move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
            let text = match *shown.lock().unwrap_or_else(|p| p.into_inner()) {
                Some((at, estimate)) => {
                    format!("~{}", HumanDuration(estimate.saturating_sub(at.elapsed())))
                }
                None => "?".to_string(),
            };
            let _ = w.write_str(&text);
        },
    )
    .progress_chars("=> ");
    let bar = ProgressBar::new(total as u64);
    bar.set_style(style);
    bar.set_prefix(name.to_string());
    bar.set_position(settled as u64);
    bar.enable_steady_tick(Duration::from_secs(1));
    (bar, left)
}

/// Time left: the mean wall time of the runs finished so far, times the rounds of `jobs`
/// parallel runs still needed.
fn set_time_left(left: &TimeLeft, walls: &[f64], remaining: usize, jobs: usize) {
    if walls.is_empty() {
        return;
    }
    let mean = walls.iter().sum::<f64>() / walls.len() as f64;
    let rounds = remaining.div_ceil(jobs.max(1));
    let estimate = Duration::from_secs_f64(mean * rounds as f64);
    *left.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), estimate));
}

struct FailureRow {
    /// Position in the grid: the table lists failures in grid order.
    index: usize,
    id: String,
    exit_code: Option<i32>,
    error: String,
    note: &'static str,
}

fn failure_table(rows: &[FailureRow]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec!["failed run", "exit", "error", "note"]);
    for r in rows {
        table.add_row(vec![
            Cell::new(&r.id),
            Cell::new(r.exit_code.map_or("-".to_string(), |c| c.to_string()))
                .set_alignment(CellAlignment::Right),
            Cell::new(last_line(&r.error)),
            Cell::new(r.note),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_compare_as_parsed_not_as_written() {
        let a = ["train.epochs=1".to_string(), "name = \"x\"".to_string()];
        let b = ["train.epochs = 1".to_string(), "name=x".to_string()];
        assert_eq!(canonical(&a), canonical(&b));
        assert_ne!(canonical(&a), canonical(&["train.epochs=2".to_string()]));
        // 1 and 1.0 are different TOML values: an integer field would refuse the float.
        assert_ne!(
            canonical(&["train.epochs=1".to_string()]),
            canonical(&["train.epochs=1.0".to_string()])
        );
    }

    #[test]
    fn the_bar_note_is_empty_until_a_run_fails() {
        assert_eq!(failed_note(0), "");
        assert_eq!(failed_note(2), ", 2 failed");
    }

    #[test]
    fn nothing_pending_says_where_the_runs_are() {
        let results = Path::new("runs/g/results.jsonl");
        assert_eq!(
            nothing_pending(&[State::Done, State::Done], results),
            "nothing pending: all 2 runs are recorded in runs/g/results.jsonl"
        );
        let mixed = nothing_pending(
            &[
                State::Done,
                State::Found(serde_json::Value::Null),
                State::Clash("x".into()),
            ],
            results,
        );
        assert_eq!(
            mixed,
            "nothing pending: 1 of 3 runs are recorded in runs/g/results.jsonl, 1 finished on disk (`mtrec run` without --print-commands records them), 1 refused (see above)"
        );
    }

    /// A retried run that succeeded is not a failure; a failure shows its `error:` line.
    #[test]
    fn recorded_failures_take_the_last_record_and_its_error_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RESULTS_FILE);
        let line = |id: &str, status: &str, error: Option<&str>| {
            serde_json::json!({"id": id, "config": "c.toml", "command": "train", "overrides": [],
                "seed": 1, "status": status, "error": error})
            .to_string()
        };
        let lines = [
            line(
                "b-s1",
                "failed",
                Some("INFO loading\nerror: out of memory\n\nCaused by:\n  x"),
            ),
            line("a-s1", "failed", Some("killed by signal 9")),
            line("c-s1", "failed", Some("boom")),
            line("c-s1", "ok", None),
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        assert_eq!(
            recorded_failures(&path).unwrap(),
            [
                ("a-s1".to_string(), "killed by signal 9".to_string()),
                ("b-s1".to_string(), "out of memory".to_string()),
            ]
        );
        assert!(
            recorded_failures(&dir.path().join("none.jsonl"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn the_first_difference_names_the_dotted_key() {
        let saved: toml::Table =
            toml::from_str("name = \"a\"\n[train]\nepochs = 1\nseed = 2\n[model]\nkind = \"mmoe\"")
                .unwrap();
        let grid: toml::Table =
            toml::from_str("name = \"a\"\n[train]\nepochs = 1\nseed = 3\n[model]\nkind = \"mmoe\"")
                .unwrap();
        assert_eq!(
            first_difference(&saved, &grid).as_deref(),
            Some("`train.seed`: saved 2, grid 3")
        );
        assert_eq!(first_difference(&saved, &saved), None);
        let fewer: toml::Table = toml::from_str("name = \"a\"").unwrap();
        let d = first_difference(&fewer, &grid).unwrap();
        assert!(d.starts_with("`model`: saved nothing, grid "), "{d}");
    }
}
