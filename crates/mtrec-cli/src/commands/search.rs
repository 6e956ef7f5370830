//! `mtrec search`: AutoMTL on a config's data, then finetune; writes the found architecture,
//! the search log and plots next to the finetuned model's checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mtrec_engine::search::{MAX_MEDIAN_BLOCK_ENTROPY, MIN_MEDIAN_GATE_MARGIN, SearchLog, median};
use mtrec_engine::{ExperimentConfig, SearchOutcome, save_checkpoint_with};
use mtrec_report::{Panel, Series, write_svg};

use crate::cli::SearchArgs;
use crate::progress::Progress;

pub const ARCH_FILE: &str = "arch.json";
pub const LOG_FILE: &str = "search-log.json";

pub fn run(args: SearchArgs) -> Result<()> {
    super::train::refuse_flag_and_set("--seed", args.seed, "train.seed", &args.set)?;
    let mut cfg = ExperimentConfig::from_toml_file_with(&args.config, &args.set)?;
    if let Some(s) = args.seed {
        cfg.train.seed = s;
    }
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("runs").join(&cfg.name));
    let started = std::time::Instant::now();
    let spinner = Progress::spinner("loading data");
    let data = mtrec_data::load(&cfg.data, Path::new("."))?;
    spinner.finish_and_clear();
    mtrec_engine::check_tasks(&cfg, &data, Path::new("."))?;
    super::train::check_leakage(&data, args.strict)?;
    let device = mtrec_engine::default_device();
    let mut progress = Progress::new();
    let (state, _lock) = super::train::state_file(&args.state, &out, &cfg)?;
    let outcome =
        mtrec_engine::search_resumable(&cfg, &data, &device, &mut progress, state.as_ref())?;
    drop(progress);
    let wall = started.elapsed().as_secs_f64();
    let report = report_json(&cfg, &outcome, &out, wall);
    save_checkpoint_with(
        &out,
        &outcome.retrain_config,
        &data.preprocessor,
        &outcome.finetune.model,
        &report,
        &[
            (ARCH_FILE, outcome.genotype.to_json()),
            (LOG_FILE, serde_json::to_string_pretty(&outcome.log)?),
        ],
    )
    .with_context(|| format!("saving the search result to {}", out.display()))?;
    if let Some(state) = &state {
        state.remove()?;
    }
    for (file, result) in [
        (
            "search.svg",
            write_svg(&out.join("search.svg"), &search_panels(&outcome.log)),
        ),
        (
            "arch.svg",
            mtrec_report::write_genotype_svg(&out.join("arch.svg"), &outcome.genotype)
                .map_err(|e| e.to_string()),
        ),
    ] {
        if let Err(e) = result {
            tracing::warn!("cannot draw {}: {e}", out.join(file).display());
        }
    }
    if args.output.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", mtrec_report::genotype_text(&outcome.genotype));
        println!(
            "{}",
            super::report_table("automtl test", &outcome.finetune.test)
        );
        println!("{}", decidedness_line(&outcome.log));
        println!(
            "search {:.1}s, finetune {:.1}s ({} epochs, best {}), wall {:.1}s\narchitecture {}, log {}, checkpoint {}",
            outcome.search_seconds,
            outcome.finetune_seconds,
            outcome.finetune.history.len(),
            outcome.finetune.best_epoch,
            wall,
            out.join(ARCH_FILE).display(),
            out.join(LOG_FILE).display(),
            out.display()
        );
    }
    Ok(())
}

fn report_json(
    cfg: &ExperimentConfig,
    outcome: &SearchOutcome,
    out: &Path,
    wall_seconds: f64,
) -> serde_json::Value {
    let test = outcome.finetune.test.to_json();
    serde_json::json!({
        "name": cfg.name,
        "model": "automtl",
        "tasks": test["tasks"],
        "test_loss": test["loss"],
        "valid": outcome.finetune.valid.to_json(),
        "best_epoch": outcome.finetune.best_epoch,
        "epochs_run": outcome.finetune.history.len(),
        "history": outcome.finetune.history,
        "search_seconds": outcome.search_seconds,
        "finetune_seconds": outcome.finetune_seconds,
        "wall_seconds": wall_seconds,
        "architecture": outcome.genotype,
        "joint_steps": outcome.log.joint_steps,
        "decidedness": outcome.log.decidedness,
        "checkpoint": out.display().to_string(),
    })
}

/// One line on how decided the fixed choices were, against the targets.
fn decidedness_line(log: &SearchLog) -> String {
    let d = &log.decidedness;
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    format!(
        "decidedness: {} blocks fixed at median entropy {} (max {}), {} gates binarised at median |p - 0.5| {} (min {}) over {} architecture steps{}",
        d.blocks_fixed,
        f(d.median_block_entropy),
        f(d.max_block_entropy),
        d.gates_fixed,
        f(d.median_gate_margin),
        f(d.min_gate_margin),
        log.joint_steps,
        if d.meets_targets() {
            String::new()
        } else {
            format!(
                " (undecided: targets are median entropy <= {MAX_MEDIAN_BLOCK_ENTROPY} and median |p - 0.5| >= {MIN_MEDIAN_GATE_MARGIN})"
            )
        }
    )
}

/// Architecture parameters over the search epochs: each open block's normalised entropy, each
/// connection's keep-probability, and each first-layer expert's mean field keep-probability.
fn search_panels(log: &SearchLog) -> Vec<Panel> {
    let mut entropy: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut connections: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut fields: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for e in &log.epochs {
        let x = e.epoch as f64;
        for b in &e.blocks {
            entropy
                .entry(b.block.clone())
                .or_default()
                .push((x, b.entropy));
        }
        for g in &e.gates {
            if g.gate.starts_with("Connection") {
                for (name, p) in g.elements.iter().zip(&g.probabilities) {
                    connections.entry(name.clone()).or_default().push((x, *p));
                }
            } else if !g.probabilities.is_empty() {
                let mean = g.probabilities.iter().sum::<f64>() / g.probabilities.len() as f64;
                fields.entry(g.gate.clone()).or_default().push((x, mean));
            }
        }
    }
    let series = |m: BTreeMap<String, Vec<(f64, f64)>>| {
        m.into_iter()
            .map(|(name, points)| Series { name, points })
            .collect()
    };
    let panel = |title: &str, y: &str, s| Panel {
        title: title.into(),
        x_label: "epoch".into(),
        y_label: y.into(),
        series: s,
    };
    let loss = vec![Series {
        name: "train".into(),
        points: log
            .epochs
            .iter()
            .map(|e| (e.epoch as f64, e.train_loss))
            .collect(),
    }];
    // Per epoch: how decided the still-open choices are, what was fixed after the epoch, and
    // the two targets (a single point draws no line, so the open choices carry the curve).
    let mut decided: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for e in &log.epochs {
        let x = e.epoch as f64;
        let d = &e.decidedness;
        let mut entropies: Vec<f64> = e.blocks.iter().map(|b| b.entropy).collect();
        let mut margins: Vec<f64> = e
            .gates
            .iter()
            .flat_map(|g| g.probabilities.iter().map(|p| (p - 0.5).abs()))
            .collect();
        for (name, v) in [
            ("median entropy of open blocks", median(&mut entropies)),
            ("median gate |p - 0.5|", median(&mut margins)),
            ("median block entropy at fixing", d.median_block_entropy),
            ("median gate |p - 0.5| at binarising", d.median_gate_margin),
            ("target: entropy <=", Some(MAX_MEDIAN_BLOCK_ENTROPY)),
            ("target: |p - 0.5| >=", Some(MIN_MEDIAN_GATE_MARGIN)),
        ] {
            if let Some(v) = v {
                decided.entry(name.into()).or_default().push((x, v));
            }
        }
    }
    vec![
        panel("search training loss", "loss", loss),
        panel("decidedness of the fixed choices", "value", series(decided)),
        panel(
            "MoO block entropy (open blocks)",
            "H / log(#ops)",
            series(entropy),
        ),
        panel(
            "expert connections",
            "keep probability",
            series(connections),
        ),
        panel(
            "feature selection (mean over fields)",
            "keep probability",
            series(fields),
        ),
    ]
}
