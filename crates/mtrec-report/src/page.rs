//! What a results report says, built from run folders: the comparison table per data set and
//! task set, paired tests, training curves, per-run figures and gate diagnostics. The HTML
//! ([`crate::html`]) and markdown ([`crate::markdown`]) pages render this one model, so the
//! two never disagree, and it serialises as the report's JSON.
//!
//! Runs are grouped by config name and settings (the seeds of one experiment, as `mtrec
//! compare` does; see [`crate::comparison::split_by_settings`]) within the same data and
//! tasks; the data is the run's `[data]` section without its `seed` keys, so repeated runs on
//! freshly drawn data still form one group.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::comparison::{
    self, DeltaReference, Group, RepeatedSeeds, SINGLE_TASK, single_task_with_most_runs,
    split_by_settings,
};
use crate::plot::{Panel, Series, write_svg};
use crate::runs::{Metric, RunRecord, TaskFigure};
use crate::stats::{Summary, summarize};

/// Effective experts below this count as collapse: the task leans on about one expert.
pub const COLLAPSE_BELOW: f64 = 1.5;

/// Whether a gate that can use `reachable` experts and effectively uses `effective` has
/// collapsed; a gate wired to a single expert (AutoMTL) has nothing to collapse from.
pub fn collapsed(effective: f64, reachable: usize) -> bool {
    reachable >= 2 && effective < COLLAPSE_BELOW
}

/// One gated level of one run, averaged over its test split (see `mtrec_engine::gates`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateLevel {
    /// 1-based; `levels` is the model's count (1 for OMoE/MMoE).
    pub level: usize,
    pub levels: usize,
    /// Gate names (tasks, `all tasks`, `shared`, ...).
    pub gates: Vec<String>,
    pub experts: Vec<String>,
    /// `[gate][expert]` mean gate weight; `None` where the gate cannot weigh the expert.
    pub mean: Vec<Vec<Option<f64>>>,
    /// Per gate: `exp(entropy)` of the mean distribution over its reachable experts.
    pub effective: Vec<f64>,
    /// Per gate: experts it can weigh.
    pub reachable: Vec<usize>,
    /// Per gate: `effective / reachable`.
    pub share: Vec<f64>,
    /// Test rows averaged over.
    pub rows: usize,
}

/// What the report knows about a run beyond its metrics.json.
#[derive(Debug, Clone, Default)]
pub struct RunExtras {
    /// Gate diagnostics, or why there are none for a model that has gates.
    pub gates: Option<Result<Vec<GateLevel>, String>>,
}

/// One run's own figures.
#[derive(Debug, Clone, Serialize)]
pub struct RunSection {
    /// The run folder relative to the report's folder.
    pub label: String,
    pub seed: Option<u64>,
    pub tasks: BTreeMap<String, TaskFigure>,
    pub test_loss: Option<f64>,
    pub best_epoch: Option<u64>,
    pub epochs_run: Option<u64>,
    pub wall_seconds: Option<f64>,
    /// The SVG files the run wrote (training curves, weighting logs, searched
    /// architectures): file name and contents.
    #[serde(skip)]
    pub figures: Vec<(String, String)>,
    pub gates: Vec<GateLevel>,
    /// Why a gated model has no gate figures (data not found, ...).
    pub gate_note: Option<String>,
}

/// One gate's expert use over a group's runs.
#[derive(Debug, Clone, Serialize)]
pub struct GateUsage {
    pub level: usize,
    pub levels: usize,
    pub gate: String,
    /// Fewest and most experts the gate could use in a run (they differ between searched
    /// AutoMTL architectures).
    pub reachable: (usize, usize),
    pub effective: Summary,
    pub share: Summary,
}

/// The runs of one config (its seeds).
#[derive(Debug, Clone, Serialize)]
pub struct GroupSection {
    pub name: String,
    pub model: String,
    /// HTML anchor.
    pub anchor: String,
    /// Training curves of every run (one line per run), one SVG document per panel.
    #[serde(skip)]
    pub curves: Vec<String>,
    pub gate_usage: Vec<GateUsage>,
    pub runs: Vec<RunSection>,
}

/// One config group's row of a comparison table.
#[derive(Debug, Clone, Serialize)]
pub struct ComparisonRow {
    pub name: String,
    pub model: String,
    pub anchor: String,
    pub runs: usize,
    /// Per task of the comparison, in its order; `None` where the group lacks the task.
    pub tasks: Vec<Option<Summary>>,
    /// Δm in percent against the comparison's Single-Task baseline, from the means.
    pub delta_m: Option<f64>,
    pub wall_seconds: Option<Summary>,
}

/// One paired comparison on the seeds two groups share.
#[derive(Debug, Clone, Serialize)]
pub struct PairedRow {
    pub task: String,
    pub best: String,
    pub other: String,
    pub pairs: usize,
    /// Mean of best - other over the shared seeds.
    pub mean_diff: f64,
    pub t_p: Option<f64>,
    pub wilcoxon_p: Option<f64>,
}

/// The groups that ran on the same data and tasks.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The data, in one line (`kind = "census", group = 1, ...`).
    pub data: String,
    pub tasks: Vec<(String, Metric)>,
    /// The Single-Task group Δm is taken against, when there is one.
    pub baseline: Option<String>,
    pub rows: Vec<ComparisonRow>,
    /// Per task, the best group by mean against every other group on their shared seeds.
    pub paired: Vec<PairedRow>,
}

/// A run that a grid runner (`mtrec run`) recorded as failed: it has no figures to show,
/// but a report that left it out would look complete.
#[derive(Debug, Clone, Serialize)]
pub struct FailedRun {
    /// The run's id in its grid.
    pub id: String,
    /// The line of its error that says why.
    pub error: String,
    /// The results file that records it.
    pub results: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportPage {
    pub title: String,
    pub dir: String,
    pub n_runs: usize,
    pub comparisons: Vec<Comparison>,
    pub groups: Vec<GroupSection>,
    /// Runs that could not be read, names split by settings, seeds run twice, and other
    /// warnings.
    pub notes: Vec<String>,
    /// Runs recorded as failed in the results files under the folder.
    pub failed_runs: Vec<FailedRun>,
    /// Where the markdown's links to run figures start: `None` when the markdown lies in the
    /// report's folder (links relative to it), else that folder's path.
    #[serde(skip)]
    pub link_root: Option<String>,
}

/// The `[data]` section of a run's config.toml, without seeds: a key that groups runs of the
/// same data, and a one-line description. Runs without a readable config share one key.
fn data_of(dir: &Path) -> (String, String) {
    let Ok(text) = std::fs::read_to_string(dir.join(crate::runs::CONFIG_FILE)) else {
        return (String::new(), "unknown data (no config.toml)".into());
    };
    let Ok(mut config) = text.parse::<toml::Table>() else {
        return (
            String::new(),
            "unknown data (unreadable config.toml)".into(),
        );
    };
    let Some(toml::Value::Table(mut data)) = config.remove("data") else {
        return (String::new(), "unknown data (no [data] section)".into());
    };
    data.remove("seed");
    // `kind` first: it says what the other keys mean.
    let mut keys: Vec<&String> = data.keys().collect();
    keys.sort_by_key(|k| *k != "kind");
    let label = keys
        .iter()
        .map(|k| format!("{k} = {}", data[*k]))
        .collect::<Vec<_>>()
        .join(", ");
    (data.to_string(), label)
}

/// An HTML id from a name: letters, digits and dashes.
fn slug(text: &str, i: usize) -> String {
    let s: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("g{i}-{s}")
}

/// Builds the report from loaded runs (each with its extras); `dir` is the report's folder
/// (run labels are relative to it).
pub fn build_page(title: &str, dir: &Path, runs: Vec<(RunRecord, RunExtras)>) -> ReportPage {
    let n_runs = runs.len();
    // (data key, task list) -> (data label, runs)
    type Members = Vec<(RunRecord, RunExtras)>;
    let mut by_data: BTreeMap<(String, Vec<String>), (String, Members)> = BTreeMap::new();
    for (run, extras) in runs {
        let (key, label) = data_of(&run.dir);
        let tasks: Vec<String> = run.tasks.keys().cloned().collect();
        by_data
            .entry((key, tasks))
            .or_insert_with(|| (label, Vec::new()))
            .1
            .push((run, extras));
    }
    let mut comparisons = Vec::new();
    let mut groups = Vec::new();
    let mut notes = Vec::new();
    for ((_, task_names), (data_label, members)) in by_data {
        let (sets, split) = split_by_settings(members, |m: &(RunRecord, RunExtras)| &m.0);
        notes.extend(split);
        let tasks: Vec<(String, Metric)> = task_names
            .iter()
            .map(|t| {
                let metric = sets
                    .iter()
                    .flat_map(|s| &s.members)
                    .find_map(|(r, _)| r.tasks.get(t).map(|f| f.metric))
                    .unwrap_or(Metric::Auc);
                (t.clone(), metric)
            })
            .collect();
        let mut compared = Vec::new();
        for mut set in sets {
            set.members
                .sort_by(|a, b| (a.0.seed, &a.0.dir).cmp(&(b.0.seed, &b.0.dir)));
            let anchor = slug(&set.label, groups.len());
            // Members are in seed and folder order: a seed run twice pairs its last folder.
            let group = Group::of_set(&set, |m| &m.0, RepeatedSeeds::Last);
            notes.extend(group.repeated_seed_notes(RepeatedSeeds::Last));
            groups.push(group_section(
                &set.label,
                &group.model,
                anchor.clone(),
                dir,
                set.members,
            ));
            compared.push((group, anchor));
        }
        // Single-Task first, then by name; the Single-Task group with the most runs is the
        // baseline.
        compared.sort_by_key(|(g, _)| (g.model != SINGLE_TASK, g.name.clone()));
        let (mut compared, anchors): (Vec<Group>, Vec<String>) = compared.into_iter().unzip();
        comparison::add_delta_m(&mut compared, DeltaReference::SingleTaskWithMostRuns);
        comparison::add_tests(&mut compared, None);
        let baseline = single_task_with_most_runs(&compared).map(|i| compared[i].name.clone());
        let rows = compared
            .iter()
            .zip(anchors)
            .map(|(g, anchor)| ComparisonRow {
                name: g.name.clone(),
                model: g.model.clone(),
                anchor,
                runs: g.runs,
                tasks: tasks.iter().map(|(t, _)| g.tasks.get(t).cloned()).collect(),
                delta_m: g.delta_m.as_ref().map(|d| d.percent),
                wall_seconds: g.wall_seconds.clone(),
            })
            .collect();
        comparisons.push(Comparison {
            data: data_label,
            paired: paired_rows(&tasks, &compared),
            tasks,
            baseline,
            rows,
        });
    }
    ReportPage {
        title: title.to_string(),
        dir: dir.display().to_string(),
        n_runs,
        comparisons,
        groups,
        notes,
        failed_runs: Vec::new(),
        link_root: None,
    }
}

/// Per task: the best group by mean against each other group on the seeds both ran (at
/// least two).
fn paired_rows(tasks: &[(String, Metric)], groups: &[Group]) -> Vec<PairedRow> {
    let mut out = Vec::new();
    for (task, _) in tasks {
        for g in groups {
            let Some(t) = g.tests.get(task).filter(|t| t.pairs.len() >= 2) else {
                continue;
            };
            let n = t.pairs.len();
            out.push(PairedRow {
                task: task.clone(),
                best: t.reference.clone(),
                other: g.name.clone(),
                pairs: n,
                mean_diff: t
                    .pairs
                    .iter()
                    .map(|(other, best)| best - other)
                    .sum::<f64>()
                    / n as f64,
                t_p: t.paired_t.as_ref().map(|t| t.p_value),
                wilcoxon_p: t.wilcoxon.as_ref().map(|t| t.p_value),
            });
        }
    }
    out
}

fn group_section(
    name: &str,
    model: &str,
    anchor: String,
    dir: &Path,
    members: Vec<(RunRecord, RunExtras)>,
) -> GroupSection {
    let labels: Vec<String> = members
        .iter()
        .map(|(r, _)| run_label(dir, &r.dir))
        .collect();
    let curves = curves_svg(&members.iter().map(|(r, _)| r).collect::<Vec<_>>(), &labels);
    let runs: Vec<RunSection> = members
        .into_iter()
        .zip(labels)
        .map(|((run, extras), label)| run_section(run, extras, label))
        .collect();
    GroupSection {
        name: name.to_string(),
        model: model.to_string(),
        anchor,
        curves,
        gate_usage: gate_usage(&runs),
        runs,
    }
}

fn run_label(dir: &Path, run: &Path) -> String {
    match run.strip_prefix(dir) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".into(),
        Ok(rel) => rel.display().to_string(),
        Err(_) => run.display().to_string(),
    }
}

/// SVG files larger than this are linked, not embedded, to keep the page loadable.
const MAX_EMBEDDED_SVG: u64 = 2 << 20;

fn run_section(run: RunRecord, extras: RunExtras, label: String) -> RunSection {
    let mut figures = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&run.dir) {
        let mut paths: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "svg"))
            .filter(|p| p.metadata().is_ok_and(|m| m.len() <= MAX_EMBEDDED_SVG))
            .collect();
        paths.sort();
        for path in paths {
            if let Ok(text) = std::fs::read_to_string(&path) {
                let file = path.file_name().unwrap_or_default().to_string_lossy();
                figures.push((file.to_string(), text));
            }
        }
    }
    let (gates, gate_note) = match extras.gates {
        None => (Vec::new(), None),
        Some(Ok(levels)) => (levels, None),
        Some(Err(note)) => (Vec::new(), Some(note)),
    };
    RunSection {
        label,
        seed: run.seed,
        test_loss: run.test_loss,
        best_epoch: run.metrics["best_epoch"].as_u64(),
        epochs_run: run.metrics["epochs_run"].as_u64(),
        wall_seconds: run.wall_seconds,
        tasks: run.tasks,
        figures,
        gates,
        gate_note,
    }
}

/// Expert use per gate over the group's runs (seeds): permutation-invariant, so it pools
/// across seeds although the experts themselves are interchangeable between runs.
fn gate_usage(runs: &[RunSection]) -> Vec<GateUsage> {
    type Pooled = (usize, (usize, usize), Vec<f64>, Vec<f64>);
    let mut by_gate: BTreeMap<(usize, String), Pooled> = BTreeMap::new();
    let mut order = Vec::new();
    for run in runs {
        for level in &run.gates {
            for (g, gate) in level.gates.iter().enumerate() {
                let key = (level.level, gate.clone());
                let entry = by_gate.entry(key.clone()).or_insert_with(|| {
                    order.push(key);
                    let k = level.reachable[g];
                    (level.levels, (k, k), Vec::new(), Vec::new())
                });
                entry.1.0 = entry.1.0.min(level.reachable[g]);
                entry.1.1 = entry.1.1.max(level.reachable[g]);
                entry.2.push(level.effective[g]);
                entry.3.push(level.share[g]);
            }
        }
    }
    order
        .into_iter()
        .map(|key| {
            let (levels, reachable, effective, share) = &by_gate[&key];
            GateUsage {
                level: key.0,
                levels: *levels,
                gate: key.1,
                reachable: *reachable,
                effective: summarize(effective),
                share: summarize(share),
            }
        })
        .collect()
}

/// The runs' learning curves from their metrics.json history: train and validation loss,
/// and each task's validation figure, one line per run.
fn curves_svg(runs: &[&RunRecord], labels: &[String]) -> Vec<String> {
    let mut train = Vec::new();
    let mut valid = Vec::new();
    let mut per_task: BTreeMap<String, (String, Vec<Series>)> = BTreeMap::new();
    for (run, label) in runs.iter().zip(labels) {
        let Some(history) = run.metrics["history"].as_array() else {
            continue;
        };
        let mut tr = Vec::new();
        let mut va = Vec::new();
        let mut tasks: BTreeMap<String, (String, Vec<(f64, f64)>)> = BTreeMap::new();
        for record in history {
            let Some(epoch) = record["epoch"].as_f64() else {
                continue;
            };
            if let Some(v) = record["train_loss"].as_f64() {
                tr.push((epoch, v));
            }
            if let Some(v) = record["valid"]["loss"].as_f64() {
                va.push((epoch, v));
            }
            for task in record["valid"]["tasks"].as_array().into_iter().flatten() {
                let Some(name) = task["name"].as_str() else {
                    continue;
                };
                let m = &task["metrics"];
                let (metric, v) = match (m["auc"].as_f64(), m["mse"].as_f64()) {
                    (Some(v), _) => ("AUC", v),
                    (None, Some(v)) => ("MSE", v),
                    _ => continue,
                };
                let entry = tasks
                    .entry(name.to_string())
                    .or_insert_with(|| (metric.to_string(), Vec::new()));
                entry.1.push((epoch, v));
            }
        }
        let series = |points| Series {
            name: label.clone(),
            points,
        };
        if !tr.is_empty() {
            train.push(series(tr));
        }
        if !va.is_empty() {
            valid.push(series(va));
        }
        for (task, (metric, points)) in tasks {
            per_task
                .entry(task)
                .or_insert_with(|| (metric, Vec::new()))
                .1
                .push(series(points));
        }
    }
    if train.is_empty() && valid.is_empty() {
        return Vec::new();
    }
    let panel = |title: String, y: &str, series: Vec<Series>| Panel {
        title,
        x_label: "epoch".into(),
        y_label: y.into(),
        series,
    };
    let mut panels = vec![
        panel("train loss".into(), "loss", train),
        panel("validation loss".into(), "loss", valid),
    ];
    for (task, (metric, series)) in per_task {
        panels.push(panel(
            format!("validation {metric}: {task}"),
            &metric,
            series,
        ));
    }
    // One document per panel, so that a page lays them out to its width.
    panels
        .into_iter()
        .filter(|p| !p.series.is_empty())
        .filter_map(|p| svg_string(&[p]))
        .collect()
}

/// [`write_svg`] into a string, through a private temporary file.
fn svg_string(panels: &[Panel]) -> Option<String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "mtrec-report-{}-{}.svg",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_svg(&path, panels);
    let text = result
        .ok()
        .and_then(|_| std::fs::read_to_string(&path).ok());
    let _ = std::fs::remove_file(&path);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run folder with a metrics.json (and, with `data`, a config.toml).
    fn write_run(root: &Path, sub: &str, name: &str, model: &str, seed: u64, aucs: &[(&str, f64)]) {
        let dir = root.join(sub);
        std::fs::create_dir_all(&dir).unwrap();
        let tasks: serde_json::Map<String, serde_json::Value> = aucs
            .iter()
            .map(|(t, a)| (t.to_string(), serde_json::json!({"auc": a, "n": 100})))
            .collect();
        let history: Vec<serde_json::Value> = (1..=3)
            .map(|e| {
                serde_json::json!({"epoch": e, "train_loss": 1.0 / e as f64,
                "valid": {"loss": 0.5, "tasks": [{"name": aucs[0].0, "kind": "binary",
                "metrics": {"auc": 0.8}}]}})
            })
            .collect();
        let m = serde_json::json!({"name": name, "model": model, "seed": seed,
            "wall_seconds": 2.0, "tasks": tasks, "history": history});
        std::fs::write(dir.join("metrics.json"), m.to_string()).unwrap();
        std::fs::write(
            dir.join("config.toml"),
            "name = \"x\"\n[data]\nkind = \"census\"\ngroup = 1\nseed = 7\n",
        )
        .unwrap();
    }

    fn load(root: &Path, subs: &[&str]) -> Vec<(RunRecord, RunExtras)> {
        subs.iter()
            .map(|s| {
                (
                    crate::runs::load_run(&root.join(s)).unwrap(),
                    RunExtras::default(),
                )
            })
            .collect()
    }

    /// Δm against Single-Task by hand: MMoE means income 0.95 (Single-Task 0.94) and marital
    /// 0.99 (0.99): ((0.95 - 0.94) / 0.94 + 0) / 2 * 100 = 0.531915 %.
    #[test]
    fn groups_summarise_seeds_and_take_delta_m_against_single_task() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_run(
            root,
            "st-1",
            "st",
            "single-task",
            1,
            &[("income", 0.93), ("marital", 0.99)],
        );
        write_run(
            root,
            "st-2",
            "st",
            "single-task",
            2,
            &[("income", 0.95), ("marital", 0.99)],
        );
        write_run(
            root,
            "mm-1",
            "mm",
            "mmoe",
            1,
            &[("income", 0.96), ("marital", 0.985)],
        );
        write_run(
            root,
            "mm-2",
            "mm",
            "mmoe",
            2,
            &[("income", 0.94), ("marital", 0.995)],
        );
        let page = build_page("t", root, load(root, &["mm-1", "st-2", "mm-2", "st-1"]));
        assert_eq!(page.n_runs, 4);
        assert_eq!(page.comparisons.len(), 1, "one data set, one task set");
        let c = &page.comparisons[0];
        assert_eq!(c.baseline.as_deref(), Some("st"));
        assert_eq!(c.data, "kind = \"census\", group = 1");
        assert_eq!(c.rows[0].name, "st", "Single-Task first");
        let mm = &c.rows[1];
        assert_eq!(mm.runs, 2);
        let income = mm.tasks[0].as_ref().unwrap();
        assert!((income.mean - 0.95).abs() < 1e-12);
        // Sample std of 0.96, 0.94: sqrt(2 * 0.01^2 / 1) = 0.0141421.
        assert!((income.std - 0.014_142_1).abs() < 1e-6);
        let dm = mm.delta_m.unwrap();
        assert!((dm - 0.531_915).abs() < 1e-5, "{dm}");
        assert!(c.rows[0].delta_m.unwrap().abs() < 1e-12);
        // Paired on seeds 1 and 2: the best income group (mm, 0.95 vs 0.94) against st.
        let p = c.paired.iter().find(|p| p.task == "income").unwrap();
        assert_eq!(
            (p.best.as_str(), p.other.as_str(), p.pairs),
            ("mm", "st", 2)
        );
        assert!((p.mean_diff - 0.01).abs() < 1e-12);
        // Groups: seeds in order, curves drawn from the history.
        let g = page.groups.iter().find(|g| g.name == "mm").unwrap();
        assert_eq!(g.runs[0].label, "mm-1");
        assert_eq!(g.runs[1].seed, Some(2));
        assert_eq!(g.curves.len(), 3, "train loss, validation loss, income AUC");
        assert!(g.curves.iter().all(|svg| svg.contains("<svg")));
        assert!(g.curves[2].contains("validation AUC: income"));
    }

    fn set_experts(root: &Path, sub: &str, experts: u64) {
        let path = root.join(sub).join("config.toml");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(&format!(
            "[model]\nkind = \"mmoe\"\nn_experts = {experts}\n"
        ));
        std::fs::write(path, text).unwrap();
    }

    /// One config name trained with 2 and with 8 experts (seeds 1 and 2 each): two rows of two
    /// runs, labelled with the expert count, and a note; never one row of four.
    #[test]
    fn one_name_with_two_settings_makes_two_rows_and_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (sub, seed, experts, auc) in [
            ("a1", 1, 2, 0.90),
            ("a2", 2, 2, 0.92),
            ("b1", 1, 8, 0.80),
            ("b2", 2, 8, 0.82),
        ] {
            write_run(root, sub, "m", "mmoe", seed, &[("income", auc)]);
            set_experts(root, sub, experts);
        }
        let page = build_page("t", root, load(root, &["a1", "a2", "b1", "b2"]));
        let rows = &page.comparisons[0].rows;
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["m [model.n_experts=2]", "m [model.n_experts=8]"]);
        assert!(rows.iter().all(|r| r.runs == 2));
        assert!((rows[0].tasks[0].as_ref().unwrap().mean - 0.91).abs() < 1e-12);
        assert_eq!(page.groups.len(), 2);
        assert_eq!(page.groups[1].runs[0].label, "b1");
        assert_eq!(page.notes.len(), 1, "{:?}", page.notes);
        assert!(
            page.notes[0]
                .contains("`m`: its runs have 2 different settings (differing in model.n_experts)"),
            "{:?}",
            page.notes
        );
    }

    /// The same settings and seed in two folders: one group of two runs, and a note that
    /// the paired tests take the later folder.
    #[test]
    fn a_seed_run_twice_is_noted() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_run(root, "a", "m", "mmoe", 1, &[("income", 0.9)]);
        write_run(root, "b", "m", "mmoe", 1, &[("income", 0.8)]);
        let page = build_page("t", root, load(root, &["a", "b"]));
        assert_eq!(page.comparisons[0].rows[0].runs, 2);
        assert_eq!(page.notes.len(), 1, "{:?}", page.notes);
        let note = &page.notes[0];
        assert!(note.starts_with("`m`: seed 1 ran 2 times"), "{note}");
        assert!(
            note.contains("use the last of them") && note.ends_with("the means every run"),
            "{note}"
        );
    }

    #[test]
    fn a_gate_with_one_expert_has_not_collapsed() {
        assert!(collapsed(1.2, 4));
        assert!(!collapsed(1.6, 4));
        assert!(!collapsed(1.0, 1));
    }

    #[test]
    fn other_data_or_tasks_make_another_comparison() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_run(
            root,
            "a",
            "g1",
            "mmoe",
            1,
            &[("income", 0.9), ("marital", 0.9)],
        );
        write_run(
            root,
            "b",
            "g2",
            "mmoe",
            1,
            &[("education", 0.9), ("marital", 0.9)],
        );
        let page = build_page("t", root, load(root, &["a", "b"]));
        assert_eq!(page.comparisons.len(), 2);
        assert!(page.comparisons.iter().all(|c| c.baseline.is_none()));
        assert!(page.comparisons.iter().all(|c| c.rows[0].delta_m.is_none()));
    }

    /// Share over seeds: 0.5 and 1.0 average 0.75.
    #[test]
    fn gate_usage_pools_runs_per_gate() {
        let level = |share: f64| GateLevel {
            level: 1,
            levels: 1,
            gates: vec!["income".into()],
            experts: vec!["e1".into(), "e2".into()],
            mean: vec![vec![Some(0.5), Some(0.5)]],
            effective: vec![2.0 * share],
            reachable: vec![2],
            share: vec![share],
            rows: 10,
        };
        let run = |share| RunSection {
            label: "r".into(),
            seed: None,
            tasks: BTreeMap::new(),
            test_loss: None,
            best_epoch: None,
            epochs_run: None,
            wall_seconds: None,
            figures: Vec::new(),
            gates: vec![level(share)],
            gate_note: None,
        };
        let mut other = run(1.0);
        other.gates[0].reachable = vec![3];
        let usage = gate_usage(&[run(0.5), other]);
        assert_eq!(usage.len(), 1);
        assert_eq!(usage[0].reachable, (2, 3));
        assert_eq!(usage[0].gate, "income");
        assert!((usage[0].share.mean - 0.75).abs() < 1e-12);
        assert_eq!(usage[0].share.n, 2);
    }
}
