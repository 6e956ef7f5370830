//! What a tuning maximises or minimises: one validation figure of a trained run.
//!
//! Only validation figures can be named. The test split is what the tuned model is finally
//! reported on; choosing hyper-parameters by it would make that report optimistic, so a
//! `test.*` objective is refused rather than read.

use serde::{Deserialize, Serialize};

/// A validation figure of a run, by the names `mtrec train --json` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metric {
    /// `valid.<task>.<auc|logloss|mse>`.
    Task { task: String, metric: TaskMetric },
    /// `valid.mean-auc`: the mean AUC over the binary tasks (what `monitor = "mean-auc"` follows).
    MeanAuc,
    /// `valid.loss`: the fixed-weight validation loss (what `monitor = "loss"` follows).
    Loss,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskMetric {
    Auc,
    Logloss,
    Mse,
}

impl TaskMetric {
    pub fn name(self) -> &'static str {
        match self {
            Self::Auc => "auc",
            Self::Logloss => "logloss",
            Self::Mse => "mse",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Max,
    Min,
}

/// The metric and whether bigger is better.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    pub metric: Metric,
    pub direction: Direction,
}

impl Metric {
    /// Parses `valid.income.auc`, `valid.mean-auc`, `valid.loss`. The task part may itself
    /// hold dots: the metric is the last part.
    pub fn parse(text: &str) -> Result<Self, String> {
        let examples = "valid.<task>.auc, valid.<task>.logloss, valid.<task>.mse, valid.mean-auc or valid.loss";
        let rest = match text.split_once('.') {
            Some(("valid", rest)) => rest,
            Some(("test", _)) => {
                return Err(format!(
                    "`{text}`: tuning may read validation figures only ({examples}); the test split stays unseen until the tuned model is evaluated"
                ));
            }
            _ => return Err(format!("`{text}`: expected {examples}")),
        };
        match rest {
            "mean-auc" => return Ok(Self::MeanAuc),
            "loss" => return Ok(Self::Loss),
            _ => {}
        }
        let Some((task, metric)) = rest.rsplit_once('.') else {
            return Err(format!("`{text}`: expected {examples}"));
        };
        let metric = match metric {
            "auc" => TaskMetric::Auc,
            "logloss" => TaskMetric::Logloss,
            "mse" => TaskMetric::Mse,
            other => {
                return Err(format!(
                    "`{text}`: unknown metric `{other}` (auc, logloss or mse)"
                ));
            }
        };
        if task.is_empty() {
            return Err(format!("`{text}`: no task name"));
        }
        Ok(Self::Task {
            task: task.to_string(),
            metric,
        })
    }

    /// Whether runs over `tasks` (each task's name and the figures it reports: AUC and
    /// logloss for a binary task, MSE for a regression) report this figure: checked against
    /// the config before the first trial, since a figure no run has fails every trial alike.
    pub fn check_reportable(&self, tasks: &[(&str, &[TaskMetric])]) -> Result<(), String> {
        match self {
            Self::Loss => Ok(()),
            Self::MeanAuc => {
                if tasks.iter().any(|(_, m)| m.contains(&TaskMetric::Auc)) {
                    Ok(())
                } else {
                    Err(format!("{self}: no task has a validation AUC"))
                }
            }
            Self::Task { task, metric } => {
                let Some((_, figures)) = tasks.iter().find(|(name, _)| name == task) else {
                    let names: Vec<&str> = tasks.iter().map(|(name, _)| *name).collect();
                    return Err(format!(
                        "{self}: no task `{task}` (tasks: {})",
                        names.join(", ")
                    ));
                };
                if figures.contains(metric) {
                    Ok(())
                } else {
                    Err(format!("{self}: task `{task}` has no {}", metric.name()))
                }
            }
        }
    }

    /// The direction in which the figure improves: AUC up, losses and errors down.
    pub fn natural_direction(&self) -> Direction {
        match self {
            Self::Task {
                metric: TaskMetric::Auc,
                ..
            }
            | Self::MeanAuc => Direction::Max,
            _ => Direction::Min,
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Task { task, metric } => write!(f, "valid.{task}.{}", metric.name()),
            Self::MeanAuc => f.write_str("valid.mean-auc"),
            Self::Loss => f.write_str("valid.loss"),
        }
    }
}

impl Objective {
    /// The value in "bigger is better" orientation, which is what the optimiser maximises.
    pub fn score(&self, value: f64) -> f64 {
        match self.direction {
            Direction::Max => value,
            Direction::Min => -value,
        }
    }

    /// Whether `a` is better than `b`.
    pub fn better(&self, a: f64, b: f64) -> bool {
        self.score(a) > self.score(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_and_keeps_dots_in_task_names() {
        assert_eq!(
            Metric::parse("valid.income.auc").unwrap(),
            Metric::Task {
                task: "income".into(),
                metric: TaskMetric::Auc
            }
        );
        assert_eq!(
            Metric::parse("valid.watch.time.mse").unwrap(),
            Metric::Task {
                task: "watch.time".into(),
                metric: TaskMetric::Mse
            }
        );
        assert_eq!(Metric::parse("valid.mean-auc").unwrap(), Metric::MeanAuc);
        assert_eq!(Metric::parse("valid.loss").unwrap(), Metric::Loss);
        for text in ["valid.income.auc", "valid.mean-auc", "valid.loss"] {
            assert_eq!(Metric::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn refuses_test_figures_and_unknown_metrics() {
        let e = Metric::parse("test.income.auc").unwrap_err();
        assert!(e.contains("validation figures only"), "{e}");
        let e = Metric::parse("valid.income.f1").unwrap_err();
        assert!(e.contains("unknown metric `f1`"), "{e}");
        assert!(Metric::parse("income.auc").is_err());
        assert!(Metric::parse("valid.auc").is_err());
    }

    #[test]
    fn reportable_figures_follow_the_tasks_and_their_kinds() {
        use TaskMetric::*;
        let binary: &[TaskMetric] = &[Auc, Logloss];
        let regression: &[TaskMetric] = &[Mse];
        let mixed = [("income", binary), ("watch.time", regression)];
        for ok in [
            "valid.income.auc",
            "valid.income.logloss",
            "valid.watch.time.mse",
            "valid.mean-auc",
            "valid.loss",
        ] {
            Metric::parse(ok).unwrap().check_reportable(&mixed).unwrap();
        }
        let e = |text: &str, tasks: &[(&str, &[TaskMetric])]| {
            Metric::parse(text)
                .unwrap()
                .check_reportable(tasks)
                .unwrap_err()
        };
        assert_eq!(
            e("valid.incme.auc", &mixed),
            "valid.incme.auc: no task `incme` (tasks: income, watch.time)"
        );
        assert_eq!(
            e("valid.watch.time.auc", &mixed),
            "valid.watch.time.auc: task `watch.time` has no auc"
        );
        assert_eq!(
            e("valid.income.mse", &mixed),
            "valid.income.mse: task `income` has no mse"
        );
        let regressions = [("task1", regression), ("task2", regression)];
        assert_eq!(
            e("valid.mean-auc", &regressions),
            "valid.mean-auc: no task has a validation AUC"
        );
    }

    #[test]
    fn directions_and_scores() {
        assert_eq!(
            Metric::parse("valid.x.auc").unwrap().natural_direction(),
            Direction::Max
        );
        assert_eq!(Metric::Loss.natural_direction(), Direction::Min);
        let min = Objective {
            metric: Metric::Loss,
            direction: Direction::Min,
        };
        assert!(min.better(0.1, 0.2));
        assert_eq!(min.score(0.3), -0.3);
    }
}
