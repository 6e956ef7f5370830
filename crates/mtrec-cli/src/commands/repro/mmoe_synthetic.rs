//! The runs of `mtrec repro mmoe-synthetic`: the MMoE paper's task-relatedness study (Ma et
//! al., KDD 2018, section 5.2 and figures 4 and 5; spec section 5).
//!
//! Protocol. Shared-Bottom (bottom 113, towers 8), OMoE and MMoE (8 experts of 16, towers 8)
//! on the paper's synthetic data (input 100, two regression tasks, `mtrec_data::synthetic`) at
//! task correlations 0.5, 0.9 and 1.0, trained with Adam for a fixed number of steps, the test
//! loss (the mean of the two tasks' MSEs) measured every `every` steps
//! ([`mtrec_engine::train_curve`]). The paper states neither the data size nor the steps; the
//! defaults here are ours ([`Settings::full`]).
//!
//! Learning rate. The paper grid-searches it in {1e-4, 1e-3, 1e-2}. Here each model gets one
//! rate for all correlations: `pilots` pilot runs per (model, rate, correlation), on data and
//! initialisations the main runs never use, each scored by its validation loss at the last
//! step; the rate with the lowest mean score wins, and a rate with a diverged pilot loses.
//!
//! Runs. Run `i` of every cell draws new data (seed `data_seed(i)`) and a new initialisation
//! (seed `init_seed(model, i)`), as the paper's independent runs do. The seeds are shared
//! across cells: run `i` of every model sees the same inputs, and a model's run `i` at each
//! correlation starts from the same weights on the same inputs (only `w2` of the generator
//! differs), which makes comparisons between cells less noisy without making the runs of a
//! cell any less independent.
//!
//! Execution. `jobs` worker threads take runs from a queue, each run on a one-thread rayon
//! pool (the model is too small to gain from splitting its products, see docs/performance.md),
//! so `jobs` runs proceed at once. Only the coordinating thread writes `runs.jsonl`: one
//! whole line per finished run, synced, so an interrupted study loses at most the runs under
//! way; the same command again skips recorded runs (a larger `--runs` adds runs). The
//! settings that shape a run are saved in `settings.json` and must match on a restart.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use mtrec_arch::{ArchConfig, BottomConfig, MoeConfig};
use mtrec_data::{DataConfig, SyntheticConfig};
use mtrec_engine::{CurvePlan, ExperimentConfig, TrainConfig, build_and_train_curve};
use serde::{Deserialize, Serialize};

use super::mmoe_report;
use crate::atomic::write_atomically;
use crate::cli::MmoeSyntheticArgs;
use crate::folder_settings;
use crate::lock::lock_exclusively;

/// The file of finished runs, one JSON object per line.
pub const RUNS_FILE: &str = "runs.jsonl";
/// The settings the recorded runs were made with.
pub const SETTINGS_FILE: &str = "settings.json";

/// The paper's three models, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    SharedBottom,
    Omoe,
    Mmoe,
}

impl ModelKind {
    pub const ALL: [ModelKind; 3] = [ModelKind::SharedBottom, ModelKind::Omoe, ModelKind::Mmoe];

    /// The config `kind` (and the name in files).
    pub fn key(self) -> &'static str {
        match self {
            ModelKind::SharedBottom => "shared-bottom",
            ModelKind::Omoe => "omoe",
            ModelKind::Mmoe => "mmoe",
        }
    }

    /// The paper's name.
    pub fn label(self) -> &'static str {
        match self {
            ModelKind::SharedBottom => "Shared-Bottom",
            ModelKind::Omoe => "OMoE",
            ModelKind::Mmoe => "MMoE",
        }
    }

    fn index(self) -> u64 {
        self as u64
    }

    /// The paper's sizes: the MoE models have 100 x 16 x 8 + 16 x 8 x 2 = 13,056 weights in
    /// experts and towers; Shared-Bottom's bottom of 113 = 13,056 / (100 + 8 x 2) matches it.
    fn arch(self) -> ArchConfig {
        let moe = MoeConfig {
            n_experts: 8,
            expert: vec![16],
            tower: vec![8],
        };
        match self {
            ModelKind::SharedBottom => ArchConfig::SharedBottom(BottomConfig {
                bottom: vec![113],
                tower: vec![8],
            }),
            ModelKind::Omoe => ArchConfig::Omoe(moe),
            ModelKind::Mmoe => ArchConfig::Mmoe(moe),
        }
    }
}

/// Pilot runs choose the learning rate; main runs make the figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Pilot,
    Main,
}

/// Everything that shapes a run: a restart must use the same, or its runs would not pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub correlations: Vec<f64>,
    pub learning_rates: Vec<f64>,
    pub pilots: usize,
    pub steps: usize,
    pub every: usize,
    pub batch_size: usize,
    pub train_rows: usize,
    pub valid_rows: usize,
    pub test_rows: usize,
    /// The generator's fixed parameters (`correlation` and `seed` vary per run).
    pub generator: Generator,
}

/// The synthetic generator's parameters other than correlation and seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generator {
    pub dim: usize,
    pub scale: f64,
    pub m: usize,
    pub noise_std: f64,
}

impl Settings {
    /// The full study. Data: 50,000 training rows, 2,000 validation and 2,000 test rows per
    /// run; 10,000 steps of 128 examples (about 26 passes over the training rows), the test
    /// loss every 250 steps. At 10,000 steps the curves have flattened (a pilot study: the
    /// mean test loss at learning rate 1e-2 fell by about 10 % over the last 5,000 steps),
    /// and a run costs about 3.5 s of one core in a release build (243 runs measured), so 200
    /// runs per cell, 1,881 runs with the pilots, take about an hour on 2 idle cores.
    pub fn full() -> Self {
        let g = SyntheticConfig::default();
        Settings {
            correlations: vec![0.5, 0.9, 1.0],
            learning_rates: vec![1e-4, 1e-3, 1e-2],
            pilots: 3,
            steps: 10_000,
            every: 250,
            batch_size: 128,
            train_rows: 50_000,
            valid_rows: 2_000,
            test_rows: 2_000,
            generator: Generator {
                dim: g.dim,
                scale: g.scale,
                m: g.m,
                noise_std: g.noise_std,
            },
        }
    }

    /// `--quick`: the same data, shorter: one pilot per rate and correlation, 3,000 steps.
    /// (Fewer training rows would not save much and change the study: OMoE overfits 20,000.)
    pub fn quick() -> Self {
        Settings {
            pilots: 1,
            steps: 3_000,
            every: 150,
            ..Settings::full()
        }
    }

    fn plan(&self) -> CurvePlan {
        CurvePlan {
            steps: self.steps,
            every: self.every,
        }
    }

    fn data(&self, correlation: f64, seed: u64) -> SyntheticConfig {
        SyntheticConfig {
            dim: self.generator.dim,
            correlation,
            scale: self.generator.scale,
            m: self.generator.m,
            noise_std: self.generator.noise_std,
            n_train: self.train_rows,
            n_valid: self.valid_rows,
            n_test: self.test_rows,
            seed,
        }
    }

    fn validate(&self) -> Result<()> {
        let positive = [
            ("steps", self.steps),
            ("every", self.every),
            ("batch size", self.batch_size),
            ("training rows", self.train_rows),
            ("validation rows", self.valid_rows),
            ("test rows", self.test_rows),
        ];
        for (name, v) in positive {
            if v == 0 {
                bail!("the number of {name} must be at least 1");
            }
        }
        if self.pilots == 0 && self.learning_rates.len() > 1 {
            bail!("--pilots must be at least 1 to choose among the learning rates");
        }
        Ok(())
    }
}

/// Runs per cell of `--quick` (the default without it is the paper's 200).
pub const QUICK_RUNS: usize = 3;

/// Runs per cell are capped so that the seeds of different models never meet.
const MAX_RUNS: usize = 100_000;

/// Seeds of the data of run `run`: shared by every model and correlation of the phase.
fn data_seed(phase: Phase, run: usize) -> u64 {
    let base = match phase {
        Phase::Main => 1_000_000,
        Phase::Pilot => 2_000_000,
    };
    base + run as u64
}

/// Seed of the initialisation (and batch order) of a model's run `run`.
fn init_seed(phase: Phase, model: ModelKind, run: usize) -> u64 {
    let base = match phase {
        Phase::Main => 10_000_000,
        Phase::Pilot => 20_000_000,
    };
    base + MAX_RUNS as u64 * model.index() + run as u64
}

/// One run to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub phase: Phase,
    pub model: ModelKind,
    pub correlation: f64,
    pub learning_rate: f64,
    pub run: usize,
}

impl Job {
    fn key(&self) -> Key {
        Key::new(
            self.phase,
            self.model,
            self.correlation,
            self.learning_rate,
            self.run,
        )
    }
}

/// Identifies a run among the recorded ones (floats by their bits: they are written and read
/// back exactly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key(Phase, ModelKind, u64, u64, usize);

impl Key {
    fn new(phase: Phase, model: ModelKind, correlation: f64, lr: f64, run: usize) -> Self {
        Key(phase, model, correlation.to_bits(), lr.to_bits(), run)
    }
}

/// One finished run: a line of `runs.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub phase: Phase,
    pub model: ModelKind,
    pub correlation: f64,
    pub learning_rate: f64,
    pub run: usize,
    pub data_seed: u64,
    pub init_seed: u64,
    /// Steps at which the model was measured (0 = before training).
    #[serde(default)]
    pub steps: Vec<usize>,
    /// Mean of the two tasks' MSEs on the validation split, at each step of `steps`.
    #[serde(default)]
    pub valid_loss: Vec<f64>,
    /// The same on the test split.
    #[serde(default)]
    pub test_loss: Vec<f64>,
    /// Each task's test MSE after the last step.
    #[serde(default)]
    pub final_task_mse: Vec<f64>,
    /// Wall seconds of the run (data generation, training and evaluation).
    pub seconds: f64,
    /// CPU seconds of the run's thread: its cost on an otherwise idle core, whatever else the
    /// machine was doing (`None` where the platform cannot say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    #[serde(default)]
    pub train_seconds: f64,
    /// Why the run failed (diverged, ...); its losses are then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunRecord {
    fn key(&self) -> Key {
        Key::new(
            self.phase,
            self.model,
            self.correlation,
            self.learning_rate,
            self.run,
        )
    }

    pub fn ok(&self) -> bool {
        self.error.is_none() && !self.test_loss.is_empty()
    }

    /// The test loss after the last step.
    pub fn final_test_loss(&self) -> Option<f64> {
        self.ok().then(|| self.test_loss.last().copied()).flatten()
    }

    pub fn final_valid_loss(&self) -> Option<f64> {
        self.ok().then(|| self.valid_loss.last().copied()).flatten()
    }
}

/// Trains one run; a failure becomes the record's `error`, never a panic.
fn run_job(job: &Job, settings: &Settings, device: &burn::prelude::Device) -> RunRecord {
    let start = Instant::now();
    let cpu_start = thread_cpu_seconds();
    let data_seed = data_seed(job.phase, job.run);
    let init_seed = init_seed(job.phase, job.model, job.run);
    let data_cfg = settings.data(job.correlation, data_seed);
    let cfg = ExperimentConfig {
        name: format!("mmoe-synthetic-{}", job.model.key()),
        data: DataConfig::Synthetic(data_cfg.clone()),
        embedding: Default::default(),
        model: job.model.arch(),
        weighting: Default::default(),
        scheme: Default::default(),
        train: TrainConfig {
            learning_rate: job.learning_rate,
            batch_size: settings.batch_size,
            seed: init_seed,
            ..TrainConfig::default()
        },
        search: Default::default(),
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let data = mtrec_data::synthetic::dataset(&data_cfg).map_err(|e| e.to_string())?;
        build_and_train_curve(&cfg, &data, device, settings.plan(), &mut |_| {})
            .map_err(|e| e.to_string())
    }))
    .unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(format!("the run panicked: {message}"))
    });
    let mut record = RunRecord {
        phase: job.phase,
        model: job.model,
        correlation: job.correlation,
        learning_rate: job.learning_rate,
        run: job.run,
        data_seed,
        init_seed,
        steps: Vec::new(),
        valid_loss: Vec::new(),
        test_loss: Vec::new(),
        final_task_mse: Vec::new(),
        seconds: 0.0,
        cpu_seconds: None,
        train_seconds: 0.0,
        error: None,
    };
    match outcome {
        Ok(curve) => {
            let points = &curve.points;
            let losses = |f: fn(&mtrec_engine::CurvePoint) -> f64| points.iter().map(f).collect();
            record.steps = points.iter().map(|p| p.step).collect();
            record.valid_loss = losses(|p| p.valid.loss);
            record.test_loss = losses(|p| p.test.loss);
            record.final_task_mse = points
                .last()
                .map(|p| p.test.tasks.iter().filter_map(|t| t.metrics.mse).collect())
                .unwrap_or_default();
            record.train_seconds = curve.train_seconds;
            let finite = record
                .valid_loss
                .iter()
                .chain(&record.test_loss)
                .all(|v| v.is_finite());
            if !finite {
                record.error = Some("a validation or test loss is not finite".into());
                record.valid_loss.clear();
                record.test_loss.clear();
            }
        }
        Err(e) => record.error = Some(e),
    }
    record.seconds = start.elapsed().as_secs_f64();
    record.cpu_seconds = cpu_start.zip(thread_cpu_seconds()).map(|(a, b)| b - a);
    record
}

/// CPU time of the calling thread. A run executes on one thread (its one-thread rayon pool
/// included), so the difference over a run is the run's cost.
#[cfg(unix)]
fn thread_cpu_seconds() -> Option<f64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec this function owns.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
}

#[cfg(not(unix))]
fn thread_cpu_seconds() -> Option<f64> {
    None
}

/// `runs.jsonl` and `settings.json` of an output folder, locked against a second writer.
struct Store {
    path: PathBuf,
    file: File,
    records: Vec<RunRecord>,
    index: HashMap<Key, usize>,
}

impl Store {
    fn open(dir: &Path, settings: &Settings) -> Result<Self> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        check_settings(&dir.join(SETTINGS_FILE), settings)?;
        let path = dir.join(RUNS_FILE);
        let records = read_records(&path)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        lock_exclusively(&file, &path, || {
            format!(
                "{}: another `mtrec repro` is writing this folder; wait for it or choose another --out",
                path.display()
            )
        })?;
        let mut store = Store {
            path,
            file,
            records: Vec::new(),
            index: HashMap::new(),
        };
        for r in records {
            store.remember(r);
        }
        Ok(store)
    }

    /// A later line for the same run replaces an earlier one.
    fn remember(&mut self, record: RunRecord) {
        match self.index.get(&record.key()) {
            Some(&i) => self.records[i] = record,
            None => {
                self.index.insert(record.key(), self.records.len());
                self.records.push(record);
            }
        }
    }

    fn has(&self, job: &Job) -> bool {
        self.index.contains_key(&job.key())
    }

    /// Appends the record and keeps it as a restart will read it: serde_json's float parser
    /// may miss the last bit of a long decimal, and a study must report the same numbers
    /// whether its runs were trained now or read back.
    fn append(&mut self, record: RunRecord) -> Result<()> {
        let mut line = serde_json::to_string(&record)?;
        let kept: RunRecord = serde_json::from_str(&line)?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("appending to {}", self.path.display()))?;
        self.remember(kept);
        Ok(())
    }
}

/// Writes `settings` to `path`, or checks them against the ones there.
fn check_settings(path: &Path, settings: &Settings) -> Result<()> {
    let ours = serde_json::to_value(settings)?;
    if let Some(saved) = folder_settings::saved_or_save(path, &ours)?
        && saved != ours
    {
        bail!(
            "{}: the runs in this folder were made with other settings ({}); \
             choose another --out, or delete the folder to start over",
            path.display(),
            settings_difference(&saved, &ours)?
        );
    }
    Ok(())
}

/// Every setting that differs, and first whether `--quick` is the difference: a folder of a
/// quick study resumed without `--quick` (or the other way round) differs in several fields
/// at once, none of which the user typed.
fn settings_difference(saved: &serde_json::Value, ours: &serde_json::Value) -> Result<String> {
    let quick = serde_json::to_value(Settings::quick())?;
    let full = serde_json::to_value(Settings::full())?;
    let mut keys: Vec<&String> = ours
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .collect();
    for k in saved.as_object().into_iter().flatten().map(|(k, _)| k) {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let differing: Vec<&str> = keys
        .into_iter()
        .map(String::as_str)
        .filter(|k| saved.get(k) != ours.get(k))
        .collect();
    let listed = differing
        .iter()
        .map(|k| {
            let show =
                |v: Option<&serde_json::Value>| v.map_or("nothing".into(), |v| v.to_string());
            format!(
                "`{k}` is {} now but was {}",
                show(ours.get(k)),
                show(saved.get(k))
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let by_quick: Vec<&str> = differing
        .iter()
        .copied()
        .filter(|k| quick.get(k) != full.get(k))
        .collect();
    let moved = |from: &serde_json::Value, to: &serde_json::Value| {
        !by_quick.is_empty()
            && by_quick
                .iter()
                .all(|k| saved.get(k) == from.get(k) && ours.get(k) == to.get(k))
    };
    let only_quick = by_quick.len() == differing.len();
    let reason = match (moved(&quick, &full), moved(&full, &quick), only_quick) {
        (true, _, true) => {
            "made with --quick, and this command is without it: add --quick to resume them; "
        }
        (true, _, false) => "made with --quick, and this command is without it, among others; ",
        (_, true, true) => {
            "made without --quick, and this command has it: drop --quick to resume them; "
        }
        (_, true, false) => "made without --quick, and this command has it, among others; ",
        _ => "",
    };
    Ok(if listed.is_empty() {
        "the saved settings have other keys".into()
    } else {
        format!("{reason}{listed}")
    })
}

/// The records of `path` (none if it does not exist). A last line without its newline was
/// cut off by an interruption: it is dropped, and the file rewritten without it so that the
/// next append starts a fresh line. Any other bad line is an error naming it.
fn read_records(path: &Path) -> Result<Vec<RunRecord>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let complete = text.rfind('\n').map_or(0, |i| i + 1);
    let mut records = Vec::new();
    for (i, line) in text[..complete].lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: RunRecord = serde_json::from_str(line).with_context(|| {
            format!(
                "{} line {}: not a run record; delete the line to run it again",
                path.display(),
                i + 1
            )
        })?;
        records.push(record);
    }
    if complete < text.len() {
        tracing::warn!(
            "{}: dropping an unfinished last line (an interrupted write)",
            path.display()
        );
        write_atomically(path, &text.as_bytes()[..complete])?;
    }
    Ok(records)
}

/// Runs `jobs` on `workers` threads (one tensor thread each), handing each finished record
/// to `done` on this thread in the order they finish. Stops at `done`'s first error.
fn run_parallel(
    jobs: &[Job],
    workers: usize,
    settings: &Settings,
    mut done: impl FnMut(RunRecord) -> Result<()>,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<Result<RunRecord, String>>();
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, jobs.len().max(1)) {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || {
                let pool = match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
                    Ok(pool) => pool,
                    Err(e) => {
                        let _ = tx.send(Err(format!("cannot start a worker thread: {e}")));
                        return;
                    }
                };
                let device = mtrec_engine::default_device();
                while !stop.load(Ordering::Relaxed) {
                    let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    let record = pool.install(|| run_job(job, settings, &device));
                    if tx.send(Ok(record)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for message in rx {
            let outcome = message.map_err(anyhow::Error::msg).and_then(&mut done);
            if let Err(e) = outcome {
                stop.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
        Ok(())
    })
}

/// One bar over every run still to do, with the time left; log lines when stderr is not a
/// terminal.
struct Bar {
    bar: ProgressBar,
    interactive: bool,
    total: usize,
    done: usize,
    logged_tenth: usize,
}

impl Bar {
    fn new(total: usize) -> Self {
        let interactive = std::io::stderr().is_terminal();
        let bar = if interactive && total > 0 {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>6} [{bar:30}] {pos}/{len} runs, {elapsed} elapsed, about {eta} left {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        } else {
            ProgressBar::hidden()
        };
        Bar {
            bar,
            interactive,
            total,
            done: 0,
            logged_tenth: 0,
        }
    }

    fn phase(&self, name: &str) {
        self.bar.set_prefix(name.to_string());
        if !self.interactive {
            tracing::info!("{name} runs");
        }
    }

    fn finished(&mut self, record: &RunRecord) {
        self.done += 1;
        self.bar.inc(1);
        let what = format!(
            "{} c={} lr={:e} #{}",
            record.model.label(),
            mmoe_report::corr(record.correlation),
            record.learning_rate,
            record.run
        );
        match &record.error {
            Some(e) => self.bar.println(format!("run {what} failed: {e}")),
            None => self
                .bar
                .set_message(format!("(last: {what}, {:.1}s)", record.seconds)),
        }
        let tenth = self.done * 10 / self.total.max(1);
        if !self.interactive && tenth > self.logged_tenth {
            self.logged_tenth = tenth;
            tracing::info!("{}/{} runs done", self.done, self.total);
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// The settings of the command line: `--quick` or the full study, then the hidden overrides.
fn settings_of(args: &MmoeSyntheticArgs) -> Settings {
    let mut s = if args.quick {
        Settings::quick()
    } else {
        Settings::full()
    };
    let set = |v: Option<usize>, field: &mut usize| {
        if let Some(v) = v {
            *field = v;
        }
    };
    set(args.pilots, &mut s.pilots);
    set(args.steps, &mut s.steps);
    set(args.every, &mut s.every);
    set(args.batch_size, &mut s.batch_size);
    set(args.train_rows, &mut s.train_rows);
    set(args.eval_rows, &mut s.valid_rows);
    set(args.eval_rows, &mut s.test_rows);
    s
}

pub fn run(args: MmoeSyntheticArgs) -> Result<()> {
    let settings = settings_of(&args);
    settings.validate()?;
    let runs = args.runs.unwrap_or(if args.quick {
        QUICK_RUNS
    } else {
        mmoe_report::PAPER_RUNS
    });
    if runs == 0 || runs > MAX_RUNS {
        bail!("--runs must be between 1 and {MAX_RUNS} (got {runs})");
    }
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(if args.quick {
            "runs/repro-mmoe-synthetic-quick"
        } else {
            "runs/repro-mmoe-synthetic"
        })
    });
    let workers = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |j| j.get(),
    );
    let mut store = Store::open(&out, &settings)?;
    let started = Instant::now();

    let pilots: Vec<Job> = pilot_jobs(&settings)
        .into_iter()
        .filter(|j| !store.has(j))
        .collect();
    // The main runs' count is known before their learning rates are.
    let main_count = |s: &Store| {
        let mut n = 0;
        for model in ModelKind::ALL {
            for &correlation in &settings.correlations {
                for run in 0..runs {
                    let done = s.records.iter().any(|r| {
                        r.phase == Phase::Main
                            && r.model == model
                            && r.correlation == correlation
                            && r.run == run
                    });
                    n += usize::from(!done);
                }
            }
        }
        n
    };
    let mut bar = Bar::new(pilots.len() + main_count(&store));
    if !pilots.is_empty() {
        bar.phase("pilot");
        run_parallel(&pilots, workers, &settings, |record| {
            bar.finished(&record);
            store.append(record)
        })?;
    }
    let rates = mmoe_report::choose_learning_rates(&settings, &store.records)?;
    let mains: Vec<Job> = main_jobs(&settings, runs, &rates)
        .into_iter()
        .filter(|j| !store.has(j))
        .collect();
    if !mains.is_empty() {
        bar.phase("main");
        run_parallel(&mains, workers, &settings, |record| {
            bar.finished(&record);
            store.append(record)
        })?;
    }
    drop(bar);
    let ran = pilots.len() + mains.len();
    let wall = started.elapsed().as_secs_f64();
    mmoe_report::write_outputs(
        &out,
        &settings,
        runs,
        &rates,
        &store.records,
        mmoe_report::Session {
            ran,
            workers,
            wall_seconds: wall,
        },
        args.output.json,
    )
}

/// Every pilot run: `pilots` per (model, learning rate, correlation).
fn pilot_jobs(settings: &Settings) -> Vec<Job> {
    let mut jobs = Vec::new();
    for run in 0..settings.pilots {
        for model in ModelKind::ALL {
            for &learning_rate in &settings.learning_rates {
                for &correlation in &settings.correlations {
                    jobs.push(Job {
                        phase: Phase::Pilot,
                        model,
                        correlation,
                        learning_rate,
                        run,
                    });
                }
            }
        }
    }
    jobs
}

/// Every main run, run index outermost so that an interrupted study has whole runs of every
/// cell rather than all of one cell and none of another.
fn main_jobs(settings: &Settings, runs: usize, rates: &mmoe_report::Rates) -> Vec<Job> {
    let mut jobs = Vec::new();
    for run in 0..runs {
        for model in ModelKind::ALL {
            for &correlation in &settings.correlations {
                jobs.push(Job {
                    phase: Phase::Main,
                    model,
                    correlation,
                    learning_rate: rates.chosen(model),
                    run,
                });
            }
        }
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(phase: Phase, model: ModelKind, run: usize, final_loss: f64) -> RunRecord {
        RunRecord {
            phase,
            model,
            correlation: 0.5,
            learning_rate: 1e-3,
            run,
            data_seed: data_seed(phase, run),
            init_seed: init_seed(phase, model, run),
            steps: vec![0, 10],
            valid_loss: vec![9.0, final_loss + 0.1],
            test_loss: vec![9.0, final_loss],
            final_task_mse: vec![final_loss, final_loss],
            seconds: 1.0,
            cpu_seconds: Some(0.9),
            train_seconds: 0.5,
            error: None,
        }
    }

    #[test]
    fn seeds_never_collide_between_phases_models_and_runs() {
        let mut seen = std::collections::HashSet::new();
        for phase in [Phase::Pilot, Phase::Main] {
            for model in ModelKind::ALL {
                for run in [0, 1, MAX_RUNS - 1] {
                    assert!(seen.insert(init_seed(phase, model, run)));
                }
            }
            for run in [0, 1, MAX_RUNS - 1] {
                assert!(seen.insert(data_seed(phase, run)));
            }
        }
    }

    #[test]
    fn the_paper_sizes_match_its_parameter_count() {
        // 100 x 16 x 8 + 16 x 8 x 2 = 13,056; 13,056 / (100 + 8 x 2) = 112.6 -> 113.
        assert_eq!(100 * 16 * 8 + 16 * 8 * 2, 13_056);
        assert_eq!((13_056.0f64 / 116.0).round() as usize, 113);
        match ModelKind::SharedBottom.arch() {
            ArchConfig::SharedBottom(b) => assert_eq!((b.bottom, b.tower), (vec![113], vec![8])),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_cut_off_last_line_is_dropped_and_a_bad_line_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RUNS_FILE);
        let a = serde_json::to_string(&record(Phase::Main, ModelKind::Mmoe, 0, 1.0)).unwrap();
        let b = serde_json::to_string(&record(Phase::Main, ModelKind::Mmoe, 1, 2.0)).unwrap();
        fs::write(&path, format!("{a}\n{}", &b[..b.len() / 2])).unwrap();
        let records = read_records(&path).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{a}\n"));
        fs::write(&path, format!("{a}\nnot json\n{b}\n")).unwrap();
        let err = format!("{:#}", read_records(&path).unwrap_err());
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn the_store_resumes_and_refuses_other_settings() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::quick();
        {
            let mut store = Store::open(dir.path(), &settings).unwrap();
            store
                .append(record(Phase::Main, ModelKind::Omoe, 0, 1.5))
                .unwrap();
            // A second writer is refused while the first holds the folder.
            let err = format!("{:#}", Store::open(dir.path(), &settings).err().unwrap());
            assert!(err.contains("another `mtrec repro`"), "{err}");
        }
        let store = Store::open(dir.path(), &settings).unwrap();
        let job = Job {
            phase: Phase::Main,
            model: ModelKind::Omoe,
            correlation: 0.5,
            learning_rate: 1e-3,
            run: 0,
        };
        assert!(store.has(&job));
        assert!(!store.has(&Job { run: 1, ..job }));
        drop(store);
        let other = Settings {
            steps: 7,
            ..settings
        };
        let err = format!("{:#}", Store::open(dir.path(), &other).err().unwrap());
        assert!(err.contains("`steps` is 7 now but was 3000"), "{err}");
        assert!(!err.contains("--quick"), "{err}");
    }

    #[test]
    fn a_rerun_that_differs_by_quick_says_so() {
        let value = |s: Settings| serde_json::to_value(s).unwrap();
        let (quick, full) = (value(Settings::quick()), value(Settings::full()));
        let d = settings_difference(&quick, &full).unwrap();
        assert!(
            d.starts_with("made with --quick, and this command is without it"),
            "{d}"
        );
        // Every differing field is listed, not only the first.
        for field in [
            "`pilots` is 3 now but was 1",
            "`steps` is 10000 now but was 3000",
        ] {
            assert!(d.contains(field), "{field} not in {d}");
        }
        let d = settings_difference(&full, &quick).unwrap();
        assert!(
            d.starts_with("made without --quick, and this command has it"),
            "{d}"
        );
        // The hidden flags on top of both still leave --quick the difference.
        let small = |s: Settings| {
            value(Settings {
                steps: 30,
                train_rows: 400,
                ..s
            })
        };
        let d = settings_difference(&small(Settings::quick()), &small(Settings::full())).unwrap();
        assert!(d.starts_with("made with --quick"), "{d}");
        // A difference --quick does not make is not blamed on it, nor left out.
        let other = value(Settings {
            batch_size: 64,
            ..Settings::quick()
        });
        let d = settings_difference(&other, &quick).unwrap();
        assert_eq!(d, "`batch_size` is 128 now but was 64");
        let d = settings_difference(&other, &full).unwrap();
        assert!(
            d.starts_with("made with --quick, and this command is without it, among others; "),
            "{d}"
        );
        assert!(d.contains("`batch_size` is 128 now but was 64"), "{d}");
    }
}
