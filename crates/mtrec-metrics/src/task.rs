//! The metrics of one task: a serialisable summary, the functions that fill
//! it for each kind of task, and an accumulator that gathers an evaluation
//! pass batch by batch.
//!
//! A binary task (CTR, CVR, income > 50k) is judged by [`auc()`] and
//! [`logloss()`] of its probabilities; a regression task by
//! [`mse()`]. Fields that do not apply stay `None` and are left out
//! of the JSON.

use serde::{Deserialize, Serialize};

use crate::error::{check_inputs, weighted_rows};
use crate::{MetricError, auc, logloss, mse, weighted_auc, weighted_logloss, weighted_mse};

/// Summary of one task on one evaluation set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskMetrics {
    /// Exact ROC AUC (binary tasks).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub auc: Option<f64>,
    /// Mean binary cross-entropy (binary tasks).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub logloss: Option<f64>,
    /// Mean squared error (regression tasks).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mse: Option<f64>,
    /// Number of examples the metrics were computed over: with partial labels, the rows
    /// labelled for this task (weight above 0).
    pub n: usize,
    /// Sum of the example weights, when the metrics are weighted (see
    /// [`weighted_binary_metrics`]); absent when every counted row weighs 1.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub weight_sum: Option<f64>,
}

impl TaskMetrics {
    /// A metric by the name used in configs and reports: `"auc"`,
    /// `"logloss"` or `"mse"`. `None` for another name or a metric this task
    /// does not have.
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "auc" => self.auc,
            "logloss" => self.logloss,
            "mse" => self.mse,
            _ => None,
        }
    }
}

/// Whether a larger value of `metric` is better: true for `"auc"`, false for
/// `"logloss"`, `"mse"` and `"loss"` (and any other name, which is read as a
/// loss).
pub fn higher_is_better(metric: &str) -> bool {
    matches!(metric, "auc")
}

/// AUC and logloss of a binary task; `probs` are probabilities (after the
/// sigmoid), `labels` are 0/1.
///
/// # Errors
/// Any error of [`auc()`] or [`logloss()`], including
/// [`MetricError::SingleClass`] when the set holds one class only.
pub fn binary_metrics(probs: &[f32], labels: &[f32]) -> Result<TaskMetrics, MetricError> {
    Ok(TaskMetrics {
        auc: Some(auc(probs, labels)?),
        logloss: Some(logloss(probs, labels)?),
        mse: None,
        n: probs.len(),
        weight_sum: None,
    })
}

/// AUC and logloss of a binary task under example weights ([`weighted_auc()`],
/// [`weighted_logloss()`]); `n` counts the rows of weight above 0 and `weight_sum` their
/// weights.
///
/// # Errors
/// Any error of [`weighted_auc()`] or [`weighted_logloss()`].
pub fn weighted_binary_metrics(
    probs: &[f32],
    labels: &[f32],
    weights: &[f32],
) -> Result<TaskMetrics, MetricError> {
    let kept = weighted_rows(probs, labels, weights)?;
    Ok(TaskMetrics {
        auc: Some(weighted_auc(probs, labels, weights)?),
        logloss: Some(weighted_logloss(probs, labels, weights)?),
        mse: None,
        n: kept.len(),
        weight_sum: Some(kept.iter().map(|&i| f64::from(weights[i])).sum()),
    })
}

/// MSE of a regression task under example weights ([`weighted_mse()`]).
///
/// # Errors
/// Any error of [`weighted_mse()`].
pub fn weighted_regression_metrics(
    preds: &[f32],
    targets: &[f32],
    weights: &[f32],
) -> Result<TaskMetrics, MetricError> {
    let kept = weighted_rows(preds, targets, weights)?;
    Ok(TaskMetrics {
        auc: None,
        logloss: None,
        mse: Some(weighted_mse(preds, targets, weights)?),
        n: kept.len(),
        weight_sum: Some(kept.iter().map(|&i| f64::from(weights[i])).sum()),
    })
}

/// MSE of a regression task.
///
/// # Errors
/// Any error of [`mse()`].
pub fn regression_metrics(preds: &[f32], targets: &[f32]) -> Result<TaskMetrics, MetricError> {
    Ok(TaskMetrics {
        auc: None,
        logloss: None,
        mse: Some(mse(preds, targets)?),
        n: preds.len(),
        weight_sum: None,
    })
}

/// Which metrics a [`TaskAccumulator`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Binary,
    Regression,
}

/// Gathers one task's predictions and labels over the batches of an
/// evaluation pass, then computes its [`TaskMetrics`] at once (AUC is not a
/// mean over batches, so the whole pass has to be kept).
#[derive(Clone, Debug)]
pub struct TaskAccumulator {
    kind: Kind,
    preds: Vec<f32>,
    labels: Vec<f32>,
}

impl TaskAccumulator {
    /// For a binary task: push probabilities and 0/1 labels; finishes with
    /// [`binary_metrics`].
    pub fn binary() -> Self {
        Self {
            kind: Kind::Binary,
            preds: Vec::new(),
            labels: Vec::new(),
        }
    }

    /// For a regression task: push predictions and targets; finishes with
    /// [`regression_metrics`].
    pub fn regression() -> Self {
        Self {
            kind: Kind::Regression,
            preds: Vec::new(),
            labels: Vec::new(),
        }
    }

    /// Appends one batch.
    ///
    /// # Errors
    /// [`MetricError::LengthMismatch`] when the batch's slices differ in
    /// length (nothing is appended then). Values are checked in
    /// [`finish`](Self::finish).
    pub fn push(&mut self, preds: &[f32], labels: &[f32]) -> Result<(), MetricError> {
        if preds.len() != labels.len() {
            return Err(MetricError::LengthMismatch {
                scores: preds.len(),
                labels: labels.len(),
            });
        }
        self.preds.extend_from_slice(preds);
        self.labels.extend_from_slice(labels);
        Ok(())
    }

    /// Number of examples gathered so far.
    pub fn len(&self) -> usize {
        self.preds.len()
    }

    /// Whether nothing was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.preds.is_empty()
    }

    /// The metrics over everything pushed so far.
    ///
    /// # Errors
    /// Those of [`binary_metrics`] or [`regression_metrics`].
    pub fn finish(&self) -> Result<TaskMetrics, MetricError> {
        check_inputs(&self.preds, &self.labels)?;
        match self.kind {
            Kind::Binary => binary_metrics(&self.preds, &self.labels),
            Kind::Regression => regression_metrics(&self.preds, &self.labels),
        }
    }

    /// Forgets everything pushed, keeping the allocation for the next pass.
    pub fn clear(&mut self) {
        self.preds.clear();
        self.labels.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_has_auc_and_logloss_only() {
        let m = binary_metrics(&[0.9, 0.2], &[1.0, 0.0]).unwrap();
        assert_eq!(m.n, 2);
        assert_eq!(m.auc, Some(1.0));
        let want = -((0.9f32 as f64).ln() + (1.0 - 0.2f32 as f64).ln()) / 2.0;
        assert!((m.logloss.unwrap() - want).abs() < 1e-12);
        assert_eq!(m.mse, None);
        assert_eq!(m.get("auc"), m.auc);
        assert_eq!(m.get("logloss"), m.logloss);
        assert_eq!(m.get("mse"), None);
        assert_eq!(m.get("accuracy"), None);
    }

    #[test]
    fn binary_single_class_is_an_error() {
        assert_eq!(
            binary_metrics(&[0.9, 0.2], &[1.0, 1.0]),
            Err(MetricError::SingleClass {
                positives: 2,
                negatives: 0
            })
        );
    }

    #[test]
    fn regression_has_mse_only() {
        let m = regression_metrics(&[1.5, 2.0, 5.0], &[1.0, 3.0, 3.0]).unwrap();
        assert_eq!(
            m,
            TaskMetrics {
                auc: None,
                logloss: None,
                mse: Some(1.75),
                n: 3,
                weight_sum: None,
            }
        );
        assert_eq!(m.get("mse"), Some(1.75));
        assert_eq!(m.get("auc"), None);
    }

    #[test]
    fn weighted_metrics_count_labelled_rows_and_sum_weights() {
        // Row 2 has weight 0: it is not counted, its label is never read.
        let m =
            weighted_binary_metrics(&[0.9, 0.2, 0.7], &[1.0, 0.0, 0.0], &[3.0, 1.0, 0.0]).unwrap();
        assert_eq!((m.n, m.weight_sum, m.auc), (2, Some(4.0), Some(1.0)));
        let want = (3.0 * -(0.9f32 as f64).ln() - (1.0 - 0.2f32 as f64).ln()) / 4.0;
        assert!((m.logloss.unwrap() - want).abs() < 1e-12);
        let r = weighted_regression_metrics(&[1.5, 2.0], &[1.0, 3.0], &[2.0, 0.5]).unwrap();
        assert_eq!((r.n, r.weight_sum), (2, Some(2.5)));
        assert!((r.mse.unwrap() - 0.4).abs() < 1e-12);
    }

    #[test]
    fn direction_of_each_metric() {
        assert!(higher_is_better("auc"));
        assert!(!higher_is_better("logloss"));
        assert!(!higher_is_better("mse"));
        assert!(!higher_is_better("loss"));
    }

    #[test]
    fn accumulator_equals_one_shot() {
        let probs = [0.9, 0.4, 0.4, 0.3, 0.2, 0.4];
        let labels = [1.0, 1.0, 0.0, 0.0, 1.0, 0.0];
        let mut acc = TaskAccumulator::binary();
        assert!(acc.is_empty());
        acc.push(&probs[..2], &labels[..2]).unwrap();
        acc.push(&probs[2..], &labels[2..]).unwrap();
        assert_eq!(acc.len(), 6);
        assert_eq!(acc.finish(), binary_metrics(&probs, &labels));

        let mut acc = TaskAccumulator::regression();
        acc.push(&[1.5], &[1.0]).unwrap();
        acc.push(&[2.0, 5.0], &[3.0, 3.0]).unwrap();
        assert_eq!(acc.finish().unwrap().mse, Some(1.75));
        acc.clear();
        assert_eq!(acc.finish(), Err(MetricError::Empty));
    }

    #[test]
    fn accumulator_rejects_a_ragged_batch() {
        let mut acc = TaskAccumulator::regression();
        assert_eq!(
            acc.push(&[1.0, 2.0], &[1.0]),
            Err(MetricError::LengthMismatch {
                scores: 2,
                labels: 1
            })
        );
        assert!(acc.is_empty());
    }
}
