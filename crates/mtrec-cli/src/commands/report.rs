//! `mtrec report DIR`: one self-contained HTML page, its markdown and its JSON for every run
//! under a results folder: comparison tables with their uncertainty, training curves,
//! per-run figures and, for MoE-family models, gate diagnostics on the test split.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use mtrec_data::Dataset;
use mtrec_engine::gates::{GateStats, gate_stats};
use mtrec_engine::{ExperimentConfig, load_checkpoint};
use mtrec_report::page::{FailedRun, GateLevel};
use mtrec_report::runs::{METRICS_FILE, find_runs, folders_below};
use mtrec_report::{
    ReportPage, RunExtras, RunRecord, build_page, load_run, render_html, render_markdown,
};

use crate::atomic::write_atomically;
use crate::cli::ReportArgs;
use crate::progress::Progress;

use super::run::{RESULTS_FILE, recorded_failures};

pub fn run(args: ReportArgs) -> Result<()> {
    if args.dir.is_file() {
        bail!(
            "{}: expected a folder of runs, not a file (`mtrec report` reads every run at or below a folder; `mtrec compare` takes single runs)",
            args.dir.display()
        );
    }
    if !args.dir.is_dir() {
        bail!("{}: no such folder", args.dir.display());
    }
    let found = find_runs(&args.dir);
    let failed_runs = grid_failures(&args.dir)?;
    let mut failures = Vec::new();
    let mut runs: Vec<RunRecord> = Vec::new();
    for dir in &found {
        match load_run(dir) {
            Ok(run) => runs.push(run),
            Err(e) => {
                tracing::warn!("skipping a run: {e}");
                failures.push(e.to_string());
            }
        }
    }
    if runs.is_empty() {
        match failures.first() {
            Some(first) => bail!(
                "{}: none of the {} run folder(s) could be read; the first: {first}",
                args.dir.display(),
                found.len()
            ),
            None => bail!(
                "{}: no runs found (no folder below it has a {METRICS_FILE} written by `mtrec train`, `search` or `demo`){}",
                args.dir.display(),
                match failed_runs.first() {
                    Some(f) => format!(
                        "; {} records {} failed run(s), the first {}: {}",
                        f.results,
                        failed_runs.len(),
                        f.id,
                        f.error
                    ),
                    None => String::new(),
                }
            ),
        }
    }
    let extras = if args.no_gates {
        vec![RunExtras::default(); runs.len()]
    } else {
        gate_extras(&runs, &args.data_dir)
    };
    let title = args
        .title
        .clone()
        .unwrap_or_else(|| format!("mtrec report: {}", args.dir.display()));
    let mut page = build_page(&title, &args.dir, runs.into_iter().zip(extras).collect());
    page.notes
        .extend(failures.iter().map(|e| format!("skipped a run: {e}")));
    page.failed_runs = failed_runs;
    let html_path = args
        .out
        .clone()
        .unwrap_or_else(|| args.dir.join("report.html"));
    page.link_root = link_root(&args.dir, &html_path)?;
    let md_path = html_path.with_extension("md");
    let json_path = html_path.with_extension("json");
    let json = serde_json::to_string_pretty(&page)?;
    if let Some(parent) = html_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    write_atomically(&html_path, render_html(&page).as_bytes())?;
    write_atomically(&md_path, render_markdown(&page).as_bytes())?;
    write_atomically(&json_path, json.as_bytes())?;
    if args.output.json {
        for note in &page.notes {
            tracing::warn!("{note}");
        }
        println!("{json}");
    } else {
        print_tables(&page);
        for note in &page.notes {
            println!("note: {note}");
        }
        if !page.failed_runs.is_empty() {
            println!("{}", failed_table(&page.failed_runs));
        }
        println!(
            "wrote {}, {} and {}",
            html_path.display(),
            md_path.display(),
            json_path.display()
        );
    }
    Ok(())
}

/// The runs that grids under `root` (`mtrec run`, whose `<out>/results.jsonl` records every
/// run) recorded as failed: they left no figures, and a page without them would look
/// complete. Results files are named relative to `root`.
fn grid_failures(root: &Path) -> Result<Vec<FailedRun>> {
    let mut out = Vec::new();
    for dir in folders_below(root) {
        let path = dir.join(RESULTS_FILE);
        if !path.is_file() {
            continue;
        }
        let shown = path
            .strip_prefix(root)
            .map_or_else(|_| path.display().to_string(), |p| p.display().to_string());
        for (id, error) in recorded_failures(&path)? {
            out.push(FailedRun {
                id,
                error,
                results: shown.clone(),
            });
        }
    }
    Ok(out)
}

fn failed_table(failed: &[FailedRun]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec!["failed run", "error", "recorded in"]);
    for f in failed {
        table.add_row(vec![&f.id, &f.error, &f.results]);
    }
    table
}

/// Gate diagnostics of every run whose model has softmax gates over experts: the checkpoint
/// is loaded, its data rebuilt from its config (once per distinct data section) and the gates
/// averaged over the test split. A run whose data cannot be rebuilt gets a note instead.
fn gate_extras(runs: &[RunRecord], data_dir: &Path) -> Vec<RunExtras> {
    let configs: Vec<Option<ExperimentConfig>> = runs
        .iter()
        .map(|r| {
            let path = r.dir.join(mtrec_engine::checkpoint::CONFIG_FILE);
            let text = std::fs::read_to_string(&path).ok()?;
            ExperimentConfig::from_toml_str(&text, &path).ok()
        })
        .collect();
    let gated = configs
        .iter()
        .flatten()
        .filter(|c| mtrec_arch::has_expert_gates(&c.model))
        .count();
    let spinner = Progress::spinner("gate diagnostics");
    let device = mtrec_engine::default_device();
    let mut datasets: HashMap<String, Result<Dataset, String>> = HashMap::new();
    let mut done = 0;
    let out = runs
        .iter()
        .zip(&configs)
        .map(|(run, cfg)| {
            let Some(cfg) = cfg
                .as_ref()
                .filter(|c| mtrec_arch::has_expert_gates(&c.model))
            else {
                return RunExtras::default();
            };
            done += 1;
            spinner.set_message(format!("gate diagnostics: run {done} of {gated}"));
            let gates = run_gates(&run.dir, cfg, data_dir, &device, &mut datasets);
            if let Err(note) = &gates {
                tracing::warn!("{}: no gate diagnostics: {note}", run.dir.display());
            }
            RunExtras { gates: Some(gates) }
        })
        .collect();
    spinner.finish_and_clear();
    out
}

fn run_gates(
    dir: &Path,
    cfg: &ExperimentConfig,
    data_dir: &Path,
    device: &burn::prelude::Device,
    datasets: &mut HashMap<String, Result<Dataset, String>>,
) -> Result<Vec<GateLevel>, String> {
    let key = serde_json::to_string(&cfg.data).map_err(|e| e.to_string())?;
    let data = datasets.entry(key).or_insert_with(|| {
        mtrec_data::load(&cfg.data, data_dir).map_err(|e| {
            format!(
                "cannot rebuild its data ({e}); relative paths are resolved against --data-dir ({}), which should be the folder `mtrec train` ran in",
                data_dir.display()
            )
        })
    });
    let data = data.as_ref().map_err(Clone::clone)?;
    let ck = load_checkpoint(dir, device).map_err(|e| e.to_string())?;
    if !same_inputs(&ck.preprocessor, &data.preprocessor) {
        return Err(
            "the data rebuilt from its config differs from what it trained on (vocabularies or statistics changed)".into(),
        );
    }
    let names = &data.meta().task_names;
    let stats = gate_stats(
        &ck.model,
        &data.test,
        names,
        ck.config.train.eval_batch_size,
        device,
    )
    .ok_or("the model has no gates over experts, or the test split is empty")?;
    let levels = stats.len();
    Ok(stats.into_iter().map(|s| gate_level(s, levels)).collect())
}

/// Whether two preprocessors encode inputs alike: the gates read inputs only, so what else a
/// checkpoint stores (label scales, added in later versions) does not matter here.
fn same_inputs(a: &mtrec_data::Preprocessor, b: &mtrec_data::Preprocessor) -> bool {
    a.meta() == b.meta()
        && a.vocabs == b.vocabs
        && a.dense_stats == b.dense_stats
        && a.buckets == b.buckets
}

fn gate_level(s: GateStats, levels: usize) -> GateLevel {
    GateLevel {
        level: s.level,
        levels,
        mean: s
            .mean
            .iter()
            .zip(&s.reachable)
            .map(|(m, r)| m.iter().zip(r).map(|(v, ok)| ok.then_some(*v)).collect())
            .collect(),
        effective: s.usage.iter().map(|u| u.effective).collect(),
        reachable: s.usage.iter().map(|u| u.reachable).collect(),
        share: s.usage.iter().map(|u| u.share).collect(),
        gates: s.gates,
        experts: s.experts,
        rows: s.rows,
    }
}

fn print_tables(page: &ReportPage) {
    for c in &page.comparisons {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        let mut header = vec![Cell::new("config"), Cell::new("model"), Cell::new("n")];
        for (task, metric) in &c.tasks {
            header.push(Cell::new(format!("{task} {metric} (mean ± std [95 % CI])")));
        }
        header.push(Cell::new("Δm %"));
        table.set_header(header);
        for r in &c.rows {
            let mut row = vec![
                Cell::new(&r.name),
                Cell::new(&r.model),
                Cell::new(r.runs).set_alignment(CellAlignment::Right),
            ];
            for s in &r.tasks {
                let text = s.as_ref().map_or("-".into(), |s| s.show_without_n(4));
                row.push(Cell::new(text).set_alignment(CellAlignment::Right));
            }
            let dm = r.delta_m.map_or("-".into(), |d| format!("{d:+.3}"));
            row.push(Cell::new(dm).set_alignment(CellAlignment::Right));
            table.add_row(row);
        }
        println!("data: {}", c.data);
        println!("{table}");
    }
}

/// `None` when the report goes into `dir` itself (its markdown then links to run figures
/// relatively), else `dir`'s absolute path for the links.
fn link_root(dir: &Path, html: &Path) -> Result<Option<String>> {
    let parent = match html.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("{}", dir.display()))?;
    let parent = parent
        .canonicalize()
        .with_context(|| format!("{}", parent.display()))?;
    Ok((dir != parent).then(|| dir.display().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Failures of every grid below the folder, named by the results file that holds them.
    #[test]
    fn failed_runs_of_grids_below_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let grid = dir.path().join("g");
        std::fs::create_dir_all(&grid).unwrap();
        let record = |id: &str, status: &str| {
            serde_json::json!({"id": id, "config": "c.toml", "command": "train", "overrides": [],
                "seed": 1, "status": status, "error": "error: no such file data/x.csv"})
            .to_string()
        };
        let text = [record("a-s1", "ok"), record("b-s1", "failed")].join("\n");
        std::fs::write(grid.join(RESULTS_FILE), text).unwrap();
        let failed = grid_failures(dir.path()).unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].id, "b-s1");
        assert_eq!(failed[0].error, "no such file data/x.csv");
        assert_eq!(failed[0].results, format!("g/{RESULTS_FILE}"));
    }
}
