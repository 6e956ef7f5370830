//! `mtrec train`: config -> data -> model -> checkpoint + report. `demo` reuses it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mtrec_arch::ArchConfig;
use mtrec_arch::automtl::Genotype;
use mtrec_engine::config::Override;
use mtrec_engine::{ExperimentConfig, StateFile, TrainOutcome, save_checkpoint_with};
use mtrec_report::{Panel, Series, write_svg};

use crate::cli::{StateArgs, TrainArgs};
use crate::progress::Progress;

pub fn run(args: TrainArgs) -> Result<()> {
    refuse_flag_and_set("--epochs", args.epochs, "train.epochs", &args.set)?;
    refuse_flag_and_set("--seed", args.seed, "train.seed", &args.set)?;
    let mut cfg = ExperimentConfig::from_toml_file_with(&args.config, &args.set)?;
    if let Some(e) = args.epochs {
        cfg.train.epochs = e;
    }
    if let Some(s) = args.seed {
        cfg.train.seed = s;
    }
    if let Some(path) = &args.arch {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let genotype = Genotype::from_json(&text)
            .map_err(|e| anyhow::anyhow!("{}: not an architecture file: {e}", path.display()))?;
        cfg.model = ArchConfig::Searched(genotype);
        // A retraining from scratch is its own experiment: `compare` must not pool it with
        // the search runs of the same config.
        cfg.name = format!("{}-scratch", cfg.name);
    } else if let ArchConfig::Automtl(_) = cfg.model {
        anyhow::bail!(
            "{}: `[model] kind = \"automtl\"` is a search space: run `mtrec search --config {0}`, or retrain a found architecture with `--arch arch.json`",
            args.config.display()
        );
    }
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("runs").join(&cfg.name));
    let (state, _lock) = state_file(&args.state, &out, &cfg)?;
    run_experiment(
        &cfg,
        Path::new("."),
        &out,
        args.output.json,
        args.strict,
        state.as_ref(),
    )
}

/// The run state of a command writing to `out` as `--state-every`, `--no-state` and
/// `--restart` ask (see [`StateArgs`]), and the lock on `out`: two runs writing one checkpoint
/// and one state would do the work twice and the second would resume from the first's live
/// state. Keep the returned file open for as long as the run.
pub fn state_file(
    args: &StateArgs,
    out: &Path,
    cfg: &ExperimentConfig,
) -> Result<(Option<StateFile>, std::fs::File)> {
    let lock = lock_beside(out)?;
    let every = args.state_every.map_or(0, |n| n.get());
    let file = StateFile::beside(out, every, cfg);
    if (args.restart || args.no_state) && file.path.exists() {
        // Under --no-state a state left by an earlier run would outlive this run's checkpoint
        // and be resumed over it by the next plain command.
        tracing::warn!(
            "discarding the run state {} ({})",
            file.path.display(),
            if args.restart {
                "--restart"
            } else {
                "--no-state"
            }
        );
        file.remove()?;
    }
    Ok(((!args.no_state).then_some(file), lock))
}

/// Locks `.<name>.lock` beside the output folder `<name>` (hidden: it stays, empty, after
/// the run; removing it would let a run that opened it just before lock a deleted file).
fn lock_beside(out: &Path) -> Result<std::fs::File> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = format!(
        ".{}.lock",
        out.file_name().unwrap_or_default().to_string_lossy()
    );
    crate::lock::lock_folder(&parent, &name, || {
        format!(
            "another mtrec is already writing to {} (it holds {}): wait for it to finish, or \
             give this run another --out",
            out.display(),
            parent.join(&name).display()
        )
    })
}

/// A flag (`--epochs 3`) and a `--set` of the key it stands for (`train.epochs=1`): which one
/// should win is a guess, so neither does.
pub fn refuse_flag_and_set(
    flag: &str,
    value: Option<impl std::fmt::Display>,
    key: &str,
    set: &[Override],
) -> Result<()> {
    if let Some(v) = value
        && let Some(o) = set.iter().find(|o| o.path.join(".") == key)
    {
        anyhow::bail!("{flag} {v} and --set {o} both set {key}: give only one of them");
    }
    Ok(())
}

/// Loads the data, trains, saves the checkpoint to `out` and prints the report; label leaks
/// are warnings, or with `strict` an error.
pub fn run_experiment(
    cfg: &ExperimentConfig,
    base_dir: &Path,
    out: &Path,
    json: bool,
    strict: bool,
    state: Option<&StateFile>,
) -> Result<()> {
    let started = std::time::Instant::now();
    let spinner = Progress::spinner("loading data");
    let data = mtrec_data::load(&cfg.data, base_dir)?;
    spinner.finish_and_clear();
    mtrec_engine::check_tasks(cfg, &data, base_dir)?;
    check_leakage(&data, strict)?;
    tracing::info!(
        "data: {} train / {} valid / {} test rows",
        data.train.n_rows,
        data.valid.n_rows,
        data.test.n_rows
    );
    let device = mtrec_engine::default_device();
    let mut progress = Progress::new();
    let outcome = mtrec_engine::train_resumable(cfg, &data, &device, &mut progress, state)?;
    drop(progress);
    let report = report_json(cfg, &outcome, out, started.elapsed().as_secs_f64());
    let log = stats_log(&outcome);
    let extra = match &log {
        Some(log) => vec![(STATS_LOG, serde_json::to_string_pretty(log)?)],
        None => Vec::new(),
    };
    save_checkpoint_with(
        out,
        cfg,
        &data.preprocessor,
        &outcome.model,
        &report,
        &extra,
    )
    .with_context(|| format!("saving the checkpoint to {}", out.display()))?;
    if let Some(state) = state {
        state.remove()?;
    }
    let curves = out.join("curves.svg");
    if let Err(e) = write_svg(&curves, &curve_panels(&outcome)) {
        tracing::warn!("cannot draw {}: {e}", curves.display());
    }
    if log.is_some() {
        let plot = out.join(STATS_PLOT);
        if let Err(e) = write_svg(&plot, &stats_panels(&outcome)) {
            tracing::warn!("cannot draw {}: {e}", plot.display());
        }
    }
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_summary(cfg, &outcome, out, started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// Input fields that nearly determine a label on the training split (see
/// [`mtrec_data::leakage`]): one warning each, or with `strict` one error naming them all.
pub fn check_leakage(data: &mtrec_data::Dataset, strict: bool) -> Result<()> {
    let threshold = mtrec_data::leakage::LEAK_THRESHOLD;
    let leaks = mtrec_data::find_leaks(&data.train, &data.meta(), threshold);
    if strict && !leaks.is_empty() {
        let list: Vec<String> = leaks.iter().map(|l| format!("\n  - {l}")).collect();
        anyhow::bail!(
            "--strict: {} input field(s) nearly determine a label:{}",
            leaks.len(),
            list.concat()
        );
    }
    for leak in &leaks {
        tracing::warn!("{leak}");
    }
    Ok(())
}

fn report_json(
    cfg: &ExperimentConfig,
    outcome: &TrainOutcome,
    out: &Path,
    wall_seconds: f64,
) -> serde_json::Value {
    let test = outcome.test.to_json();
    let mut report = serde_json::json!({
        "name": cfg.name,
        "model": cfg.model.kind(),
        "weighting": cfg.weighting.kind(),
        "scheme": cfg.scheme.kind(),
        "tasks": test["tasks"],
        "test_loss": test["loss"],
        "valid": outcome.valid.to_json(),
        "best_epoch": outcome.best_epoch,
        "epochs_run": outcome.history.len(),
        "best_epoch_is_last": outcome.best_epoch_is_last(),
        "history": outcome.history,
        "loss_weights": outcome.loss_weights,
        "train_seconds": outcome.train_seconds,
        "wall_seconds": wall_seconds,
        "examples_per_second": outcome.examples_per_second,
        "checkpoint": out.display().to_string(),
    });
    if let Some(hint) = outcome.undertrained_hint() {
        report["hint"] = hint.into();
    }
    report
}

/// The weighting's or scheme's figures per epoch (and a scheme's preparation, such as LT4Rec's
/// pruning rounds), beside the checkpoint.
const STATS_LOG: &str = "scheme-log.json";
const STATS_PLOT: &str = "scheme-log.svg";

fn stats_log(outcome: &TrainOutcome) -> Option<serde_json::Value> {
    let epochs: Vec<_> = outcome
        .history
        .iter()
        .filter(|r| !r.stats.is_empty())
        .map(|r| serde_json::json!({ "epoch": r.epoch, "stats": r.stats }))
        .collect();
    (!epochs.is_empty() || !outcome.prepare_log.is_empty())
        .then(|| serde_json::json!({ "epochs": epochs, "prepare": outcome.prepare_log }))
}

/// One panel per quantity (`weight`, `density`, ...), one line per task or pair: the stats
/// are named `<quantity>/<who>`.
fn stats_panels(outcome: &TrainOutcome) -> Vec<Panel> {
    let mut panels: Vec<Panel> = Vec::new();
    for record in &outcome.history {
        for (key, &value) in &record.stats {
            let (quantity, who) = key.split_once('/').unwrap_or((key.as_str(), key.as_str()));
            let panel = match panels.iter().position(|p| p.title == quantity) {
                Some(i) => &mut panels[i],
                None => {
                    panels.push(Panel {
                        title: quantity.to_string(),
                        x_label: "epoch".into(),
                        y_label: quantity.to_string(),
                        series: Vec::new(),
                    });
                    panels.last_mut().expect("just pushed")
                }
            };
            let series = match panel.series.iter().position(|s| s.name == who) {
                Some(i) => &mut panel.series[i],
                None => {
                    panel.series.push(Series {
                        name: who.to_string(),
                        points: Vec::new(),
                    });
                    panel.series.last_mut().expect("just pushed")
                }
            };
            series.points.push((record.epoch as f64, value));
        }
    }
    panels
}

/// Loss per epoch (train and validation) and each task's validation AUC or MSE per epoch.
fn curve_panels(outcome: &TrainOutcome) -> Vec<Panel> {
    let h = &outcome.history;
    let x = |e: usize| e as f64;
    let loss = Panel {
        title: "loss".into(),
        x_label: "epoch".into(),
        y_label: "loss".into(),
        series: vec![
            Series {
                name: "train".into(),
                points: h.iter().map(|r| (x(r.epoch), r.train_loss)).collect(),
            },
            Series {
                name: "validation".into(),
                points: h.iter().map(|r| (x(r.epoch), r.valid.loss)).collect(),
            },
        ],
    };
    let names: Vec<&str> = outcome
        .valid
        .tasks
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    let metric = |r: &mtrec_engine::EpochRecord, task: &str| {
        r.valid.task(task).and_then(|m| m.auc.or(m.mse))
    };
    let uses_auc = outcome.valid.tasks.iter().any(|t| t.metrics.auc.is_some());
    let tasks = Panel {
        title: "validation per task".into(),
        x_label: "epoch".into(),
        y_label: if uses_auc {
            "AUC (MSE for regression)"
        } else {
            "MSE"
        }
        .into(),
        series: names
            .iter()
            .map(|&task| Series {
                name: task.to_string(),
                points: h
                    .iter()
                    .filter_map(|r| metric(r, task).map(|v| (x(r.epoch), v)))
                    .collect(),
            })
            .collect(),
    };
    vec![loss, tasks]
}

fn print_summary(cfg: &ExperimentConfig, outcome: &TrainOutcome, out: &Path, wall: f64) {
    println!(
        "{}",
        super::report_table(&format!("{} test", cfg.model.kind()), &outcome.test)
    );
    println!(
        "best epoch {} of {}; training {:.1}s ({:.0} examples/s); wall {:.1}s; checkpoint {}",
        outcome.best_epoch,
        outcome.history.len(),
        outcome.train_seconds,
        outcome.examples_per_second,
        wall,
        out.display()
    );
}
