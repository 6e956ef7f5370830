//! `mtrec compare`: test figures of several runs side by side, grouped by config name and
//! settings (the seeds of one experiment; runs of one name with other settings are groups of
//! their own, labelled with the keys that differ), each with its uncertainty: mean, sample
//! std, 95 % confidence interval and n per task; Δm against a Single-Task group of the same
//! tasks; and tests of every group against a reference group (the best per task, or
//! `--baseline`), paired over the seeds both ran, unpaired (Welch) otherwise.
//!
//! `--json` prints an array with one object per group (sorted by name):
//!
//! - `name` (the config name, with `[key=value, ...]` where runs of one name have several
//!   settings), `config` (the name alone), `settings` (key -> value of those differing keys),
//!   `model`, `runs`; `seeds`: the seeds of its runs (from metrics.json or the saved config),
//!   sorted; `repeated_seeds`: seed -> run folders, for seeds that several runs ran (left out
//!   of the pairing);
//! - `metric`: task -> `"auc"` or `"mse"`;
//! - `tasks`: task -> `{n, mean, std, ci95: [low, high] | null, values}`;
//! - `delta_m`: `null`, or `{reference, percent, per_seed}`: Δm in % against the Single-Task
//!   group `reference` from the means, and `per_seed` the same figure's summary over seeds
//!   both ran (each seed against the same seed's Single-Task run) or `null`;
//! - `tests`: task -> `{reference, mean_diff, shared_seeds, paired_t, wilcoxon, welch}` for
//!   every task where this group is not the reference; each test `null` or
//!   `{test, method, n, statistic, p_value, mean_diff, df, zeros}`;
//! - `wall_seconds`, `search_seconds`: summaries, or `null` where no run recorded them.
//!
//! `--csv FILE` writes one row per group and task: the columns `run, model, runs, task, metric,
//! mean, std, wall_seconds_mean` (as before) followed by `n, ci95_low, ci95_high,
//! delta_m_percent, delta_m_reference, vs, mean_diff, shared_seeds, paired_t_p, wilcoxon_p,
//! welch_p`; an empty field where a figure does not apply.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use mtrec_report::comparison::{
    self, DeltaM, DeltaReference, Group, RepeatedSeeds, Tests, split_by_settings,
};
use mtrec_report::runs::{METRICS_FILE, find_runs};
use mtrec_report::stats::{PMethod, TestResult};
use mtrec_report::{RunRecord, load_run};

use super::run::RESULTS_FILE;
use crate::atomic::write_atomically;
use crate::cli::CompareArgs;

/// The runs the paths name, and how many files were skipped. A run folder or its
/// metrics.json is taken as given; a folder without a metrics.json (a grid's `out`) stands for
/// every run at or below it. What a shell glob over a grid's folder picks up beside its runs,
/// `mtrec run`'s `<id>.log` files and `results.jsonl`, is skipped; anything else that is not a
/// run is an error when it is read.
fn expand_paths(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, usize)> {
    let mut runs = Vec::new();
    let mut skipped = 0;
    for path in paths {
        if path.is_dir() && !path.join(METRICS_FILE).is_file() {
            let found = find_runs(path);
            if found.is_empty() {
                bail!(
                    "{}: neither a run folder nor a folder of runs (no {METRICS_FILE} in it or below it)",
                    path.display()
                );
            }
            runs.extend(found);
        } else if path.is_file() && is_run_byproduct(path) {
            skipped += 1;
        } else {
            runs.push(path.clone());
        }
    }
    Ok((runs, skipped))
}

/// A file `mtrec run` writes beside its run folders: a run's log or the grid's results.
fn is_run_byproduct(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == RESULTS_FILE)
        || path.extension().is_some_and(|e| e == "log")
}

/// The runs' groups (one per config name and settings, in name order) and notes on them:
/// names split by settings, seeds run twice.
fn load_groups(paths: &[PathBuf]) -> Result<(Vec<Group>, Vec<String>)> {
    let mut seen = BTreeSet::new();
    let mut records: Vec<RunRecord> = Vec::new();
    for path in paths {
        let run = load_run(path)?;
        // The same run given twice (overlapping globs) would count as two seeds.
        let key = std::fs::canonicalize(&run.dir).unwrap_or_else(|_| run.dir.clone());
        if !seen.insert(key) {
            bail!(
                "{}: the same run is given twice; pass each run folder once",
                path.display()
            );
        }
        records.push(run);
    }
    let (sets, mut notes) = split_by_settings(records, |r: &RunRecord| r);
    let mut out = Vec::new();
    for set in sets {
        let name = &set.label;
        let mut metric = BTreeMap::new();
        for run in &set.members {
            for (task, fig) in &run.tasks {
                if let Some(prev) = metric.insert(task.clone(), fig.metric)
                    && prev != fig.metric
                {
                    bail!(
                        "{}: task `{task}` has {} here but {prev} in other runs of `{name}`",
                        run.dir.display(),
                        fig.metric
                    );
                }
            }
        }
        // A seed run twice cannot be paired unambiguously: the notes say it is left out.
        let group = Group::of_set(&set, |r| r, RepeatedSeeds::Skip);
        notes.extend(group.repeated_seed_notes(RepeatedSeeds::Skip));
        out.push(group);
    }
    Ok((out, notes))
}

/// Tests of each group against the reference of each task: `baseline` if given, else the
/// group with the best mean.
fn add_tests(groups: &mut [Group], baseline: Option<&str>) -> Result<()> {
    let fixed = match baseline {
        // A config name split by settings needs its group's label; one that is not names
        // its only group either way.
        Some(name) => match groups.iter().position(|g| g.name == name).or_else(|| {
            let mut of_config = groups
                .iter()
                .enumerate()
                .filter(|(_, g)| g.config == name)
                .map(|(i, _)| i);
            of_config.next().filter(|_| of_config.next().is_none())
        }) {
            Some(i) => Some(i),
            None => {
                let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
                bail!(
                    "--baseline `{name}` is not among the runs' config names: {}",
                    names.join(", ")
                );
            }
        },
        None => None,
    };
    comparison::add_tests(groups, fixed);
    Ok(())
}

pub fn run(args: CompareArgs) -> Result<()> {
    if args.runs.is_empty() {
        bail!("no run given: pass checkpoint folders (or their metrics.json)");
    }
    let (paths, skipped) = expand_paths(&args.runs)?;
    if paths.is_empty() {
        bail!(
            "no run given: the {skipped} file(s) given are `mtrec run` logs or results, not runs; pass run folders, or the grid's folder"
        );
    }
    let (mut groups, mut extra_notes) = load_groups(&paths)?;
    if skipped > 0 {
        extra_notes.insert(
            0,
            format!("skipped {skipped} file(s) that are not runs: `mtrec run` logs (*.log) and results.jsonl"),
        );
    }
    comparison::add_delta_m(&mut groups, DeltaReference::FirstMatchingSingleTask);
    add_tests(&mut groups, args.baseline.as_deref())?;
    if let Some(path) = &args.csv {
        write_csv(path, &groups)?;
    }
    if args.json {
        for line in &extra_notes {
            tracing::warn!("{line}");
        }
        println!("{}", serde_json::to_string_pretty(&groups)?);
        return Ok(());
    }
    println!("{}", summary_table(&groups));
    let tests = tests_table(&groups);
    if let Some(t) = &tests {
        println!("{t}");
    }
    for line in notes(&groups, tests.is_some(), args.baseline.as_deref()) {
        println!("{line}");
    }
    for line in &extra_notes {
        println!("Note: {line}");
    }
    Ok(())
}

fn right(text: impl ToString) -> Cell {
    Cell::new(text.to_string()).set_alignment(CellAlignment::Right)
}

fn show_delta_m(d: &DeltaM) -> String {
    match d.per_seed.as_ref().and_then(|s| s.ci95) {
        Some((lo, hi)) => format!("{:+.3} [{lo:+.3}, {hi:+.3}]", d.percent),
        None => format!("{:+.3}", d.percent),
    }
}

fn all_tasks(groups: &[Group]) -> Vec<&String> {
    let set: BTreeSet<&String> = groups.iter().flat_map(|g| g.metric.keys()).collect();
    set.into_iter().collect()
}

/// One row per group: every task's mean ± std [95 % CI], Δm and wall time.
fn summary_table(groups: &[Group]) -> Table {
    let tasks = all_tasks(groups);
    let references: BTreeSet<&str> = groups
        .iter()
        .filter_map(|g| g.delta_m.as_ref().map(|d| d.reference.as_str()))
        .collect();
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec![Cell::new("run"), Cell::new("model"), Cell::new("n")];
    for t in &tasks {
        let metric = groups.iter().find_map(|g| g.metric.get(*t));
        header.push(Cell::new(format!(
            "{t} {}",
            metric.map_or("", |m| m.name())
        )));
    }
    if !references.is_empty() {
        header.push(Cell::new("Δm %"));
    }
    header.push(Cell::new("wall s"));
    table.set_header(header);
    for g in groups {
        let mut row = vec![Cell::new(&g.name), Cell::new(&g.model), right(g.runs)];
        for t in &tasks {
            // n per cell only where a task is missing from some runs of the group.
            let text = g.tasks.get(*t).map_or("-".into(), |s| {
                if s.n == g.runs {
                    s.show_without_n(4)
                } else {
                    s.show(4)
                }
            });
            row.push(right(text));
        }
        if !references.is_empty() {
            let text = match &g.delta_m {
                Some(d) => show_delta_m(d),
                None if references.contains(g.name.as_str()) => "reference".into(),
                None => "-".into(),
            };
            row.push(right(text));
        }
        // Wall time is a cost, not a result under test: mean ± std is enough.
        row.push(right(g.wall_seconds.as_ref().map_or(
            "-".into(),
            |s| match s.n {
                1 => format!("{:.1}", s.mean),
                _ => format!("{:.1} ± {:.1}", s.mean, s.std),
            },
        )));
        table.add_row(row);
    }
    table
}

fn show_p(t: Option<&TestResult>) -> String {
    match t {
        None => "-".into(),
        Some(t) => {
            let p = mtrec_report::stats::format_p(t.p_value);
            if t.method == PMethod::NormalApproximation {
                format!("{p} (normal)")
            } else {
                p
            }
        }
    }
}

/// One row per group and task that has a reference: difference and p-values.
fn tests_table(groups: &[Group]) -> Option<Table> {
    let rows: Vec<(&Group, &String, &Tests)> = groups
        .iter()
        .flat_map(|g| g.tests.iter().map(move |(t, c)| (g, t, c)))
        .collect();
    if rows.is_empty() {
        return None;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "run",
        "task",
        "vs",
        "Δ mean",
        "shared seeds",
        "paired t p",
        "Wilcoxon p",
        "Welch p",
    ]);
    for (g, task, c) in rows {
        table.add_row(vec![
            Cell::new(&g.name),
            Cell::new(format!("{task} {}", g.metric[task])),
            Cell::new(&c.reference),
            right(format!("{:+.4}", c.mean_diff)),
            right(c.shared_seeds),
            right(show_p(c.paired_t.as_ref())),
            right(show_p(c.wilcoxon.as_ref())),
            right(show_p(c.welch.as_ref())),
        ]);
    }
    Some(table)
}

/// What the figures are, under the tables.
fn notes(groups: &[Group], tests: bool, baseline: Option<&str>) -> Vec<String> {
    let mut lines = vec![
        "Figures: mean ± sample std [95 % confidence interval of the mean, t distribution] over the runs of one config name and settings.".to_string(),
    ];
    let references: BTreeSet<&str> = groups
        .iter()
        .filter_map(|g| g.delta_m.as_ref().map(|d| d.reference.as_str()))
        .collect();
    if !references.is_empty() {
        lines.push(format!(
            "Δm: average relative gain per task over Single-Task ({}) in %, from the means (lower MSE counts as a gain); [95 % CI] over the seeds both ran.",
            references.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if tests {
        lines.push(format!(
            "Tests against {}: two-sided p-values; paired t and Wilcoxon over shared seeds (Wilcoxon needs 6 seeds to reach p < 0.05), Welch over all runs.",
            baseline.map_or_else(
                || "the best group per task".to_string(),
                |b| format!("{b} (--baseline)")
            )
        ));
    }
    lines
}

/// A CSV field, quoted where it holds a separator, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(v: Option<f64>) -> String {
    v.filter(|v| !v.is_nan())
        .map_or_else(String::new, |v| v.to_string())
}

fn write_csv(path: &Path, groups: &[Group]) -> Result<()> {
    let mut text = String::from(
        "run,model,runs,task,metric,mean,std,wall_seconds_mean,n,ci95_low,ci95_high,\
         delta_m_percent,delta_m_reference,vs,mean_diff,shared_seeds,paired_t_p,wilcoxon_p,welch_p\n",
    );
    for g in groups {
        for (task, s) in &g.tasks {
            let c = g.tests.get(task);
            let p = |t: Option<&TestResult>| num(t.map(|t| t.p_value));
            let fields = [
                csv_field(&g.name),
                csv_field(&g.model),
                g.runs.to_string(),
                csv_field(task),
                g.metric[task].to_string(),
                num(Some(s.mean)),
                num(Some(s.std)),
                num(g.wall_seconds.as_ref().map(|w| w.mean)),
                s.n.to_string(),
                num(s.ci95.map(|c| c.0)),
                num(s.ci95.map(|c| c.1)),
                num(g.delta_m.as_ref().map(|d| d.percent)),
                g.delta_m
                    .as_ref()
                    .map_or_else(String::new, |d| csv_field(&d.reference)),
                c.map_or_else(String::new, |c| csv_field(&c.reference)),
                num(c.map(|c| c.mean_diff)),
                c.map_or_else(String::new, |c| c.shared_seeds.to_string()),
                p(c.and_then(|c| c.paired_t.as_ref())),
                p(c.and_then(|c| c.wilcoxon.as_ref())),
                p(c.and_then(|c| c.welch.as_ref())),
            ];
            text.push_str(&fields.join(","));
            text.push('\n');
        }
    }
    write_atomically(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mtrec_report::Metric;

    fn write(
        dir: &Path,
        sub: &str,
        name: &str,
        model: &str,
        seed: u64,
        auc: f64,
        mse: f64,
    ) -> PathBuf {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).unwrap();
        let m = serde_json::json!({"name": name, "model": model, "wall_seconds": 2.0, "seed": seed,
            "tasks": {"income": {"auc": auc, "n": 10}, "age": {"mse": mse, "n": 10}}});
        std::fs::write(d.join("metrics.json"), m.to_string()).unwrap();
        d
    }

    #[test]
    fn runs_group_by_config_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let runs = vec![
            write(p, "a", "g1", "mmoe", 1, 0.9, 1.0),
            write(p, "b", "g1", "mmoe", 2, 0.8, 1.0),
            write(p, "c", "g2", "mmoe", 1, 0.5, 1.0),
        ];
        let (groups, notes) = load_groups(&runs).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].runs, 2);
        assert_eq!(groups[0].seeds, vec![1, 2]);
        assert!((groups[0].tasks["income"].mean - 0.85).abs() < 1e-12);
        assert_eq!(groups[0].metric["income"], Metric::Auc);
        let twice = vec![runs[0].clone(), runs[0].join("metrics.json")];
        let e = load_groups(&twice).unwrap_err().to_string();
        assert!(e.contains("given twice"), "{e}");
    }

    #[test]
    fn tests_pair_shared_seeds_against_the_best_group() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let mut runs = Vec::new();
        for (seed, a, b) in [
            (1, 0.90, 0.88),
            (2, 0.91, 0.90),
            (3, 0.92, 0.89),
            (4, 0.93, 0.92),
        ] {
            runs.push(write(p, &format!("a{seed}"), "a", "mmoe", seed, a, 1.0 + a));
            runs.push(write(p, &format!("b{seed}"), "b", "ple", seed, b, 1.0 + b));
        }
        // A third group on other seeds: compared by Welch only.
        runs.push(write(p, "c7", "c", "adatt", 7, 0.85, 1.0));
        runs.push(write(p, "c8", "c", "adatt", 8, 0.86, 1.0));
        let (mut groups, _) = load_groups(&runs).unwrap();
        add_tests(&mut groups, None).unwrap();
        // `a` has the best AUC: it is the reference and gets no test of its own.
        assert!(!groups[0].tests.contains_key("income"));
        let b = &groups[1].tests["income"];
        assert_eq!((b.reference.as_str(), b.shared_seeds), ("a", 4));
        // Differences 0.02, 0.01, 0.03, 0.01, all one way: Wilcoxon's smallest p for 4 pairs.
        let w = b.wilcoxon.as_ref().unwrap();
        assert!((w.p_value - 0.125).abs() < 1e-12, "{}", w.p_value);
        assert!((b.mean_diff + 0.0175).abs() < 1e-12);
        assert!(b.paired_t.as_ref().unwrap().p_value < 0.05);
        let c = &groups[2].tests["income"];
        assert_eq!(c.shared_seeds, 0);
        assert!(c.paired_t.is_none() && c.wilcoxon.is_none() && c.welch.is_some());
        // Age is an MSE: lower is better, so `c` (1.0) is that task's reference.
        assert_eq!(groups[0].tests["age"].reference, "c");

        add_tests(&mut groups, Some("b")).unwrap();
        assert_eq!(groups[0].tests["income"].reference, "b");
        let e = add_tests(&mut groups, Some("zzz")).unwrap_err().to_string();
        assert!(e.contains("zzz") && e.contains("a, b, c"), "{e}");
    }

    fn set_config(dir: &Path, text: &str) {
        std::fs::write(dir.join("config.toml"), text).unwrap();
    }

    /// One name with 2 and with 8 experts: two groups of two, a note, and `--baseline` by the
    /// label (the bare name is ambiguous).
    #[test]
    fn one_name_with_two_settings_is_two_groups() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let mut runs = Vec::new();
        for (sub, seed, experts, auc) in [
            ("a1", 1, 2, 0.90),
            ("a2", 2, 2, 0.92),
            ("b1", 1, 8, 0.80),
            ("b2", 2, 8, 0.82),
        ] {
            let d = write(p, sub, "m", "mmoe", seed, auc, 1.0);
            set_config(
                &d,
                &format!(
                    "name = \"m\"\n[train]\nseed = {seed}\n[model]\nkind = \"mmoe\"\nn_experts = {experts}\n"
                ),
            );
            runs.push(d);
        }
        let (mut groups, notes) = load_groups(&runs).unwrap();
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["m [model.n_experts=2]", "m [model.n_experts=8]"]);
        assert!(groups.iter().all(|g| g.runs == 2 && g.config == "m"));
        assert!((groups[1].tasks["income"].mean - 0.81).abs() < 1e-12);
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].contains("2 different settings (differing in model.n_experts)"),
            "{notes:?}"
        );
        add_tests(&mut groups, Some("m [model.n_experts=8]")).unwrap();
        assert_eq!(groups[0].tests["income"].shared_seeds, 2);
        let e = add_tests(&mut groups, Some("m")).unwrap_err().to_string();
        assert!(
            e.contains("m [model.n_experts=2], m [model.n_experts=8]"),
            "{e}"
        );
    }

    /// The same seed in two folders of one experiment: not paired, and said so.
    #[test]
    fn a_seed_run_twice_is_named_in_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let runs = vec![
            write(p, "a", "g1", "mmoe", 1, 0.9, 1.0),
            write(p, "a-again", "g1", "mmoe", 1, 0.8, 1.0),
            write(p, "b", "g1", "mmoe", 2, 0.8, 1.0),
        ];
        let (groups, notes) = load_groups(&runs).unwrap();
        assert_eq!(groups[0].runs, 3);
        assert_eq!(groups[0].repeated_seeds[&1].len(), 2);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with("`g1`: seed 1 ran 2 times")
                && notes[0].contains("left out of the paired tests"),
            "{notes:?}"
        );
    }

    /// A grid's folder stands for its runs; its logs and results file are skipped; any other
    /// file is still read as a run (and fails there).
    #[test]
    fn a_grid_folder_expands_and_its_logs_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let grid = dir.path().join("grid");
        let a = write(&grid, "a-s1", "a", "mmoe", 1, 0.9, 1.0);
        let b = write(&grid, "b-s1", "b", "mmoe", 1, 0.9, 1.0);
        let log = grid.join("a-s1.log");
        let results = grid.join(RESULTS_FILE);
        let other = grid.join("notes.txt");
        for f in [&log, &results, &other] {
            std::fs::write(f, "x").unwrap();
        }
        let (runs, skipped) = expand_paths(std::slice::from_ref(&grid)).unwrap();
        assert_eq!((runs, skipped), (vec![a.clone(), b.clone()], 0));
        let (runs, skipped) =
            expand_paths(&[a.clone(), log, b.clone(), results, other.clone()]).unwrap();
        assert_eq!((runs, skipped), (vec![a, b, other], 2));
        let empty = dir.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let e = expand_paths(&[empty]).unwrap_err().to_string();
        assert!(
            e.contains("neither a run folder nor a folder of runs"),
            "{e}"
        );
    }

    #[test]
    fn csv_fields_with_commas_are_quoted() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
