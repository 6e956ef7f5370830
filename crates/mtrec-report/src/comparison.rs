//! Runs grouped by config name (the seeds of one experiment) and compared: per-task
//! summaries, Δm against a Single-Task group, and tests against a reference group, paired
//! over the seeds both ran. `mtrec compare` and the report page ([`crate::page`]) both build
//! on this, so the two never compute a figure differently; where they choose differently
//! (which Single-Task group Δm is taken against, what a seed run twice counts as) the choice
//! is an option here.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::runs::{Metric, RunRecord};
use crate::stats::{
    DeltaTask, Summary, TestResult, delta_m, paired_t_test, summarize, welch_t_test,
    wilcoxon_signed_rank,
};

/// The model kind whose groups are the references of Δm.
pub const SINGLE_TASK: &str = "single-task";

/// What a seed that occurs in more than one run of a group pairs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepeatedSeeds {
    /// Nothing: which of its runs to pair is ambiguous (`mtrec compare`).
    Skip,
    /// Its last run in the order given (the report, which orders runs by seed and folder).
    Last,
}

/// Which Single-Task group a group's Δm is taken against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaReference {
    /// Each group that is not Single-Task, against the first Single-Task group (in the
    /// groups' order) with the same tasks and metrics (`mtrec compare`).
    FirstMatchingSingleTask,
    /// Every group, Single-Task ones included (the reference's own Δm is 0), against the
    /// Single-Task group with the most runs, the last of equals (the report, where all groups
    /// share one task set).
    SingleTaskWithMostRuns,
}

/// The runs of one config name.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub name: String,
    pub model: String,
    pub runs: usize,
    /// The seeds of its runs, sorted.
    pub seeds: Vec<u64>,
    /// Task -> metric, from the first run with the task.
    pub metric: BTreeMap<String, Metric>,
    /// Task -> summary of its runs' figures, in the runs' order.
    pub tasks: BTreeMap<String, Summary>,
    pub delta_m: Option<DeltaM>,
    /// Task -> tests against that task's reference group; none where this group is it.
    pub tests: BTreeMap<String, Tests>,
    pub wall_seconds: Option<Summary>,
    pub search_seconds: Option<Summary>,
    /// Task -> seed -> figure, the pairs the paired tests are made of.
    #[serde(skip)]
    by_seed: BTreeMap<String, BTreeMap<u64, f64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeltaM {
    /// The Single-Task group.
    pub reference: String,
    /// From the groups' means.
    pub percent: f64,
    /// Over the seeds both groups ran, each against the same seed's Single-Task run.
    pub per_seed: Option<Summary>,
}

/// One task of one group against the reference group of that task.
#[derive(Debug, Clone, Serialize)]
pub struct Tests {
    pub reference: String,
    /// This group's mean minus the reference's.
    pub mean_diff: f64,
    /// Seeds run by both groups: the pairs of the paired tests.
    pub shared_seeds: usize,
    pub paired_t: Option<TestResult>,
    pub wilcoxon: Option<TestResult>,
    pub welch: Option<TestResult>,
    /// (this group's figure, the reference's) per shared seed, in seed order.
    #[serde(skip)]
    pub pairs: Vec<(f64, f64)>,
}

impl Group {
    /// The group of `runs` (one config name), without Δm or tests yet.
    pub fn new(name: &str, runs: &[&RunRecord], repeated: RepeatedSeeds) -> Self {
        let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut metric = BTreeMap::new();
        for run in runs {
            for (task, fig) in &run.tasks {
                metric.entry(task.clone()).or_insert(fig.metric);
                values.entry(task.clone()).or_default().push(fig.value);
            }
        }
        let seconds = |f: fn(&RunRecord) -> Option<f64>| {
            let v: Vec<f64> = runs.iter().copied().filter_map(f).collect();
            (!v.is_empty()).then(|| summarize(&v))
        };
        let mut seeds: Vec<u64> = runs.iter().filter_map(|r| r.seed).collect();
        seeds.sort_unstable();
        let mut count: BTreeMap<u64, usize> = BTreeMap::new();
        for s in &seeds {
            *count.entry(*s).or_default() += 1;
        }
        let mut by_seed: BTreeMap<String, BTreeMap<u64, f64>> = BTreeMap::new();
        for run in runs {
            let Some(seed) = run.seed else { continue };
            if repeated == RepeatedSeeds::Skip && count[&seed] > 1 {
                continue;
            }
            for (task, fig) in &run.tasks {
                by_seed
                    .entry(task.clone())
                    .or_default()
                    .insert(seed, fig.value);
            }
        }
        Self {
            name: name.to_string(),
            model: runs.first().map(|r| r.model.clone()).unwrap_or_default(),
            runs: runs.len(),
            seeds,
            metric,
            tasks: values
                .iter()
                .map(|(t, v)| (t.clone(), summarize(v)))
                .collect(),
            delta_m: None,
            tests: BTreeMap::new(),
            wall_seconds: seconds(|r| r.wall_seconds),
            search_seconds: seconds(|r| r.search_seconds),
            by_seed,
        }
    }

    fn by_seed(&self, task: &str) -> Option<&BTreeMap<u64, f64>> {
        self.by_seed.get(task)
    }

    fn values(&self, task: &str) -> &[f64] {
        self.tasks.get(task).map_or(&[], |s| &s.values)
    }

    /// Δm against `reference` over the tasks both have.
    fn delta_m_against(&self, reference: &Group) -> Option<DeltaM> {
        let tasks: Vec<(&String, Metric)> = self
            .metric
            .iter()
            .filter(|(t, _)| reference.tasks.contains_key(*t))
            .map(|(t, m)| (t, *m))
            .collect();
        let from = |pick: &dyn Fn(&str) -> Option<(f64, f64)>| -> Option<f64> {
            let figures: Option<Vec<DeltaTask>> = tasks
                .iter()
                .map(|(t, m)| {
                    let (model, single) = pick(t)?;
                    Some(DeltaTask {
                        model,
                        single,
                        lower_is_better: m.lower_is_better(),
                    })
                })
                .collect();
            delta_m(&figures?)
        };
        let percent = from(&|t| Some((self.tasks[t].mean, reference.tasks[t].mean)))?;
        // Seeds where both groups have every task.
        let per_seed: Vec<f64> = tasks
            .first()
            .and_then(|(t, _)| self.by_seed(t))
            .into_iter()
            .flat_map(BTreeMap::keys)
            .filter_map(|seed| {
                from(&|t| {
                    Some((
                        *self.by_seed(t)?.get(seed)?,
                        *reference.by_seed(t)?.get(seed)?,
                    ))
                })
            })
            .collect();
        Some(DeltaM {
            reference: reference.name.clone(),
            percent,
            per_seed: (!per_seed.is_empty()).then(|| summarize(&per_seed)),
        })
    }
}

/// The Single-Task group with the most runs, the last of equals.
pub fn single_task_with_most_runs(groups: &[Group]) -> Option<usize> {
    groups
        .iter()
        .enumerate()
        .filter(|(_, g)| g.model == SINGLE_TASK)
        .max_by_key(|(_, g)| g.runs)
        .map(|(i, _)| i)
}

/// Sets every group's Δm (or `None`) against the reference `how` picks.
pub fn add_delta_m(groups: &mut [Group], how: DeltaReference) {
    let fixed = single_task_with_most_runs(groups);
    let mut found = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let reference = match how {
            DeltaReference::SingleTaskWithMostRuns => fixed,
            DeltaReference::FirstMatchingSingleTask => groups
                .iter()
                .position(|s| s.model == SINGLE_TASK && s.metric == g.metric)
                .filter(|&r| r != i && g.model != SINGLE_TASK && !g.metric.is_empty()),
        };
        found.push(reference.and_then(|r| g.delta_m_against(&groups[r])));
    }
    for (g, d) in groups.iter_mut().zip(found) {
        g.delta_m = d;
    }
}

/// Tests of each group against the reference of each task: the group at `fixed` if given,
/// else the group with the best mean (the first of equals).
pub fn add_tests(groups: &mut [Group], fixed: Option<usize>) {
    for g in groups.iter_mut() {
        g.tests.clear();
    }
    let tasks: BTreeSet<String> = groups
        .iter()
        .flat_map(|g| g.metric.keys().cloned())
        .collect();
    let mut found = Vec::new();
    for task in &tasks {
        let best = || {
            groups
                .iter()
                .enumerate()
                .filter(|(_, g)| g.tasks.get(task).is_some_and(|s| !s.mean.is_nan()))
                .reduce(|a, b| {
                    let m = a.1.metric[task];
                    if m.better(b.1.tasks[task].mean, a.1.tasks[task].mean) {
                        b
                    } else {
                        a
                    }
                })
                .map(|(i, _)| i)
        };
        let Some(r) = fixed.or_else(best) else {
            continue;
        };
        let reference = &groups[r];
        let Some(ref_summary) = reference.tasks.get(task) else {
            continue;
        };
        let empty = BTreeMap::new();
        let ref_seeds = reference.by_seed(task).unwrap_or(&empty);
        for (i, g) in groups.iter().enumerate() {
            let Some(s) = g.tasks.get(task) else {
                continue;
            };
            if i == r || g.metric[task] != reference.metric[task] {
                continue;
            }
            let pairs: Vec<(f64, f64)> = g
                .by_seed(task)
                .into_iter()
                .flatten()
                .filter_map(|(seed, v)| Some((*v, *ref_seeds.get(seed)?)))
                .collect();
            let (a, b): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
            found.push((
                i,
                task.clone(),
                Tests {
                    reference: reference.name.clone(),
                    mean_diff: s.mean - ref_summary.mean,
                    shared_seeds: a.len(),
                    paired_t: paired_t_test(&a, &b),
                    wilcoxon: (a.len() >= 2)
                        .then(|| wilcoxon_signed_rank(&a, &b))
                        .flatten(),
                    welch: welch_t_test(g.values(task), reference.values(task)),
                    pairs,
                },
            ));
        }
    }
    for (i, task, c) in found {
        groups[i].tests.insert(task, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::TaskFigure;

    fn run(name: &str, model: &str, seed: u64, income: f64, age: f64) -> RunRecord {
        let fig = |metric, value| TaskFigure {
            metric,
            value,
            logloss: None,
            n: None,
        };
        RunRecord {
            dir: format!("/runs/{name}-{seed}").into(),
            name: name.into(),
            model: model.into(),
            seed: Some(seed),
            tasks: [
                ("income".to_string(), fig(Metric::Auc, income)),
                ("age".to_string(), fig(Metric::Mse, age)),
            ]
            .into(),
            test_loss: None,
            wall_seconds: Some(2.0),
            search_seconds: None,
            metrics: serde_json::Value::Null,
        }
    }

    fn groups(runs: &[RunRecord], repeated: RepeatedSeeds) -> Vec<Group> {
        let mut by_name: BTreeMap<&str, Vec<&RunRecord>> = BTreeMap::new();
        for r in runs {
            by_name.entry(&r.name).or_default().push(r);
        }
        by_name
            .iter()
            .map(|(name, rs)| Group::new(name, rs, repeated))
            .collect()
    }

    #[test]
    fn delta_m_against_single_task_from_means_and_per_seed() {
        let runs = [
            run("st", SINGLE_TASK, 1, 0.80, 2.0),
            run("st", SINGLE_TASK, 2, 0.80, 2.0),
            run("mt", "mmoe", 1, 0.88, 1.8),
            run("mt", "mmoe", 2, 0.84, 1.9),
        ];
        let mut g = groups(&runs, RepeatedSeeds::Skip);
        add_delta_m(&mut g, DeltaReference::FirstMatchingSingleTask);
        let d = g[0].delta_m.as_ref().unwrap();
        assert_eq!((g[0].name.as_str(), d.reference.as_str()), ("mt", "st"));
        // By hand: AUC 0.86 vs 0.80 is +7.5 %; MSE 1.85 vs 2.0 is -7.5 %, a gain: mean +7.5 %.
        assert!((d.percent - 7.5).abs() < 1e-9, "{}", d.percent);
        // Seed 1: (+10 + 10) / 2 = 10; seed 2: (+5 + 5) / 2 = 5.
        let per_seed = &d.per_seed.as_ref().unwrap().values;
        assert!((per_seed[0] - 10.0).abs() < 1e-9 && (per_seed[1] - 5.0).abs() < 1e-9);
        assert!(g[1].delta_m.is_none(), "the reference has no Δm of its own");

        add_delta_m(&mut g, DeltaReference::SingleTaskWithMostRuns);
        assert!((g[0].delta_m.as_ref().unwrap().percent - 7.5).abs() < 1e-9);
        assert_eq!(g[1].delta_m.as_ref().unwrap().percent, 0.0);
    }

    /// A seed run twice: skipped, or its last run paired.
    #[test]
    fn a_repeated_seed_is_skipped_or_its_last_run_paired() {
        let runs = [
            run("a", "mmoe", 1, 0.90, 1.0),
            run("a", "mmoe", 2, 0.92, 1.0),
            run("a", "mmoe", 2, 0.94, 1.0),
            run("b", "ple", 1, 0.80, 1.0),
            run("b", "ple", 2, 0.82, 1.0),
        ];
        let mut skip = groups(&runs, RepeatedSeeds::Skip);
        add_tests(&mut skip, None);
        let t = &skip[1].tests["income"];
        assert_eq!(
            (t.reference.as_str(), t.pairs.as_slice()),
            ("a", &[(0.80, 0.90)][..])
        );
        let mut last = groups(&runs, RepeatedSeeds::Last);
        add_tests(&mut last, None);
        let t = &last[1].tests["income"];
        assert_eq!(t.pairs, [(0.80, 0.90), (0.82, 0.94)]);
        // The mean difference is over all runs either way: 0.81 - 0.92.
        assert!((t.mean_diff + 0.11).abs() < 1e-12);
    }
}
