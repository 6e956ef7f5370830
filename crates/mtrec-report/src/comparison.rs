//! Runs grouped by config name and settings (the seeds of one experiment) and compared:
//! per-task summaries, Δm against a Single-Task group, and tests against a reference group,
//! paired over the seeds both ran. Runs of one name with different settings (another
//! `model.n_experts`, other `--set` overrides) are different experiments: they are kept apart
//! as groups labelled with the keys that differ, never pooled. `mtrec compare` and the report page ([`crate::page`]) both build
//! on this, so the two never compute a figure differently; where they choose differently
//! (which Single-Task group Δm is taken against, what a seed run twice counts as) the choice
//! is an option here.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::runs::{Metric, RunRecord};
use crate::settings::{differences, lookup};
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

/// The runs of one config name and settings.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// The config name, with the settings that set this group apart where runs of one name
    /// have several (see [`RunSet::label`]).
    pub name: String,
    /// The config name alone.
    pub config: String,
    /// Key -> value of the settings that differ between the groups of its config name; empty
    /// where the name has one setting.
    pub settings: BTreeMap<String, String>,
    pub model: String,
    pub runs: usize,
    /// The seeds of its runs, sorted.
    pub seeds: Vec<u64>,
    /// Seeds that more than one of its runs ran -> those runs' folders. Which of them to pair
    /// is a choice ([`RepeatedSeeds`]) that the output states.
    pub repeated_seeds: BTreeMap<u64, Vec<String>>,
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
        let mut repeated_seeds: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for run in runs {
            if let Some(seed) = run.seed.filter(|s| count[s] > 1) {
                repeated_seeds
                    .entry(seed)
                    .or_default()
                    .push(run.dir.display().to_string());
            }
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
            config: name.to_string(),
            settings: BTreeMap::new(),
            model: runs.first().map(|r| r.model.clone()).unwrap_or_default(),
            runs: runs.len(),
            seeds,
            repeated_seeds,
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

    /// The group of one [`RunSet`], without Δm or tests yet.
    pub fn of_set<T>(
        set: &RunSet<T>,
        run: impl Fn(&T) -> &RunRecord,
        repeated: RepeatedSeeds,
    ) -> Self {
        let runs: Vec<&RunRecord> = set.members.iter().map(run).collect();
        let mut group = Self::new(&set.label, &runs, repeated);
        group.config = set.config.clone();
        group.settings = set.settings.clone();
        group
    }

    /// One line per seed that several runs ran, saying what the pairing made of it.
    pub fn repeated_seed_notes(&self, repeated: RepeatedSeeds) -> Vec<String> {
        self.repeated_seeds
            .iter()
            .map(|(seed, dirs)| {
                let what = match repeated {
                    RepeatedSeeds::Skip => "it is left out of the paired tests and per-seed Δm, which need one run per seed (means and Welch use every run)".to_string(),
                    RepeatedSeeds::Last => format!(
                        "the paired tests use the last of them ({}), the means every run",
                        dirs.last().map_or("", String::as_str)
                    ),
                };
                format!(
                    "`{}`: seed {seed} ran {} times ({}); {what}",
                    self.name,
                    dirs.len(),
                    dirs.join(", ")
                )
            })
            .collect()
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

/// The runs of one config name and one setting: the repetitions of one experiment.
#[derive(Debug, Clone)]
pub struct RunSet<T> {
    /// The config name where all its runs share their settings; else the name with this
    /// set's values of the keys that differ, `census-g1-mmoe [model.n_experts=2]`.
    pub label: String,
    pub config: String,
    /// Key -> this set's value, for the keys that differ between the sets of its name.
    pub settings: BTreeMap<String, String>,
    pub members: Vec<T>,
}

/// Settings shown in a label; the rest are counted.
const LABEL_KEYS: usize = 3;
/// Characters of a value shown in a label.
const LABEL_VALUE_CHARS: usize = 40;

/// A setting's value for a label: strings bare, a missing key `unset`, long values cut.
fn show_setting(value: Option<&toml::Value>) -> String {
    let text = match value {
        None => "unset".to_string(),
        Some(toml::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    if text.chars().count() > LABEL_VALUE_CHARS {
        let cut: String = text.chars().take(LABEL_VALUE_CHARS - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// Splits runs by config name and settings (see [`RunRecord::settings`]), in name order and
/// then label order. Returns one note per name whose runs have several settings.
pub fn split_by_settings<T>(
    items: Vec<T>,
    run: impl Fn(&T) -> &RunRecord,
) -> (Vec<RunSet<T>>, Vec<String>) {
    type Variants<T> = Vec<(Option<toml::Table>, Vec<T>)>;
    let mut by_name: BTreeMap<String, Variants<T>> = BTreeMap::new();
    for item in items {
        let r = run(&item);
        let variants = by_name.entry(r.name.clone()).or_default();
        match variants.iter_mut().find(|(s, _)| *s == r.settings) {
            Some((_, members)) => members.push(item),
            None => {
                let settings = r.settings.clone();
                variants.push((settings, vec![item]));
            }
        }
    }
    let mut sets = Vec::new();
    let mut notes = Vec::new();
    for (name, variants) in by_name {
        if variants.len() == 1 {
            let (_, members) = variants.into_iter().next().expect("one variant");
            sets.push(RunSet {
                label: name.clone(),
                config: name,
                settings: BTreeMap::new(),
                members,
            });
            continue;
        }
        // Keys differing from the first setting cover every pair: two settings that both
        // agree with the first on a key agree with each other.
        let known: Vec<&toml::Table> = variants.iter().filter_map(|(s, _)| s.as_ref()).collect();
        let keys: BTreeSet<String> = known
            .iter()
            .skip(1)
            .flat_map(|s| differences(known[0], s))
            .map(|d| d.key)
            .collect();
        let count = variants.len();
        let without_config = count - known.len();
        let mut named: Vec<RunSet<T>> = variants
            .into_iter()
            .map(|(settings, members)| {
                let settings: BTreeMap<String, String> = match &settings {
                    Some(t) => keys
                        .iter()
                        .map(|k| (k.clone(), show_setting(lookup(t, k))))
                        .collect(),
                    None => [("config.toml".to_string(), "missing".to_string())].into(),
                };
                let mut shown: Vec<String> = settings
                    .iter()
                    .take(LABEL_KEYS)
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                if settings.len() > LABEL_KEYS {
                    shown.push(format!("+{} more", settings.len() - LABEL_KEYS));
                }
                RunSet {
                    label: format!("{name} [{}]", shown.join(", ")),
                    config: name.clone(),
                    settings,
                    members,
                }
            })
            .collect();
        named.sort_by(|a, b| a.label.cmp(&b.label));
        // Labels cut short can coincide; a group's label must name it alone.
        for i in 1..named.len() {
            if named[..i].iter().any(|s| s.label == named[i].label) {
                named[i].label = format!("{} #{}", named[i].label, i + 1);
            }
        }
        let mut differing: Vec<String> = keys.into_iter().collect();
        if without_config > 0 {
            differing.push("config.toml (missing in some runs)".into());
        }
        notes.push(format!(
            "`{name}`: its runs have {count} different settings (differing in {}); each is a group of its own, labelled with its values, not pooled",
            differing.join(", ")
        ));
        sets.extend(named);
    }
    (sets, notes)
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
            settings: Some(toml::Table::new()),
        }
    }

    fn groups(runs: &[RunRecord], repeated: RepeatedSeeds) -> Vec<Group> {
        let (sets, _) = split_by_settings(runs.iter().collect(), |r| *r);
        sets.iter()
            .map(|set| Group::of_set(set, |r| *r, repeated))
            .collect()
    }

    fn with_settings(mut r: RunRecord, text: &str) -> RunRecord {
        r.settings = Some(text.parse().unwrap());
        r
    }

    /// One name, two expert counts (seeds 1 and 2 each) and a run without a config: three
    /// groups, never one of five runs.
    #[test]
    fn runs_of_one_name_with_other_settings_are_kept_apart() {
        let two = "[model]\nkind = \"mmoe\"\nn_experts = 2\n[train]\nepochs = 3";
        let eight = "[model]\nkind = \"mmoe\"\nn_experts = 8\n[train]\nepochs = 3";
        let mut bare = run("m", "mmoe", 3, 0.7, 1.0);
        bare.settings = None;
        let runs = [
            with_settings(run("m", "mmoe", 1, 0.90, 1.0), eight),
            with_settings(run("m", "mmoe", 1, 0.80, 1.0), two),
            with_settings(run("m", "mmoe", 2, 0.92, 1.0), eight),
            with_settings(run("m", "mmoe", 2, 0.82, 1.0), two),
            bare,
            run("other", "ple", 1, 0.5, 1.0),
        ];
        let (sets, notes) = split_by_settings(runs.iter().collect(), |r| *r);
        let labels: Vec<&str> = sets.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "m [config.toml=missing]",
                "m [model.n_experts=2]",
                "m [model.n_experts=8]",
                "other"
            ]
        );
        assert_eq!(sets[1].members.len(), 2);
        assert_eq!(sets[1].config, "m");
        assert_eq!(sets[2].settings["model.n_experts"], "8");
        assert!(sets[3].settings.is_empty());
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("`m`: its runs have 3 different settings")
                && notes[0].contains("model.n_experts"),
            "{notes:?}"
        );
        let g = Group::of_set(&sets[2], |r| *r, RepeatedSeeds::Skip);
        assert_eq!(
            (g.name.as_str(), g.config.as_str()),
            ("m [model.n_experts=8]", "m")
        );
        assert_eq!((g.runs, g.seeds.as_slice()), (2, &[1, 2][..]));
        assert!((g.tasks["income"].mean - 0.91).abs() < 1e-12);
        assert!(g.repeated_seeds.is_empty());
    }

    /// Many differing keys: three shown, the rest counted; values cut to a readable length.
    #[test]
    fn labels_show_a_few_keys_and_short_values() {
        let a = "a = 1\nb = 1\nc = 1\nd = 1\ne = \"short\"";
        let long = format!("a = 2\nb = 2\nc = 2\nd = 2\ne = \"{}\"", "x".repeat(60));
        let runs = [
            with_settings(run("m", "mmoe", 1, 0.9, 1.0), a),
            with_settings(run("m", "mmoe", 1, 0.9, 1.0), &long),
        ];
        let (sets, _) = split_by_settings(runs.iter().collect(), |r| *r);
        assert_eq!(sets[0].label, "m [a=1, b=1, c=1, +2 more]");
        assert_eq!(sets[1].settings["e"].chars().count(), LABEL_VALUE_CHARS);
        assert!(sets[1].settings["e"].ends_with('…'));
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
        assert_eq!(
            skip[0].repeated_seeds,
            [(2, vec!["/runs/a-2".to_string(), "/runs/a-2".to_string()])].into()
        );
        let notes = skip[0].repeated_seed_notes(RepeatedSeeds::Skip);
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].starts_with("`a`: seed 2 ran 2 times") && notes[0].contains("left out"),
            "{notes:?}"
        );
        assert!(skip[1].repeated_seed_notes(RepeatedSeeds::Skip).is_empty());
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
