//! Prediction and per-task metrics on a held-out table.

use burn::prelude::*;
use mtrec_arch::{DerivedTask, MultiTaskModel};
use mtrec_data::{EncodedTable, TaskKind, batches};
use mtrec_metrics::{
    MetricError, TaskMetrics, auc, binary_metrics, logloss, regression_metrics,
    weighted_binary_metrics, weighted_logloss, weighted_regression_metrics,
};
use serde::{Deserialize, Serialize};

use crate::EngineError;
use crate::tensors::input_of;

/// One task's metrics on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    pub name: String,
    pub kind: TaskKind,
    pub metrics: TaskMetrics,
}

/// Metrics of every task on one split, in task order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct EvalReport {
    pub tasks: Vec<TaskReport>,
    /// Figures the model derives from its outputs (ESMM's CVR on clicked rows); not trained,
    /// so not part of the loss or of model selection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub derived: Vec<TaskReport>,
    /// `sum_k w_k L_k` (logloss for binary tasks, MSE for regression) with the weights passed
    /// to [`evaluate`]: in training, the fixed weights model selection uses (see
    /// [`crate::Monitor::Loss`]), so the figure compares across epochs and runs. A
    /// standardised regression label enters on the scale the model trains on (`MSE / std^2`),
    /// so a target in milliseconds does not decide model selection alone; the task's reported
    /// `mse` is on the label's own scale.
    pub loss: f64,
}

impl EvalReport {
    pub fn task(&self, name: &str) -> Option<&TaskMetrics> {
        self.tasks
            .iter()
            .chain(&self.derived)
            .find(|t| t.name == name)
            .map(|t| &t.metrics)
    }

    /// Mean AUC over the tasks that have one.
    pub fn mean_auc(&self) -> Option<f64> {
        let aucs: Vec<f64> = self.tasks.iter().filter_map(|t| t.metrics.auc).collect();
        (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64)
    }

    /// `{"tasks": {"income": {"auc": .., "logloss": ..}, ..}, "loss": ..}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut tasks = serde_json::Map::new();
        for t in self.tasks.iter().chain(&self.derived) {
            tasks.insert(
                t.name.clone(),
                serde_json::to_value(&t.metrics).unwrap_or_default(),
            );
        }
        serde_json::json!({ "tasks": tasks, "loss": self.loss })
    }
}

/// Model outputs for every row, per task: probabilities for binary tasks, values for
/// regression on the label's own scale (mapped back from the standardised scale the model
/// trains on with the table's `label_scales`). `model` should be in validation mode
/// (`Module::valid`).
pub fn predict<M: MultiTaskModel>(
    model: &M,
    table: &EncodedTable,
    kinds: &[TaskKind],
    batch_size: usize,
    device: &Device,
) -> Vec<Vec<f32>> {
    let t = kinds.len();
    let mut out: Vec<Vec<f32>> = (0..t).map(|_| Vec::with_capacity(table.n_rows)).collect();
    for batch in batches(table, batch_size, None) {
        let y = model.forward(&input_of(&batch, device)).outputs;
        let values: Vec<f32> = y.into_data().try_to_vec::<f32>().unwrap_or_default();
        for (i, v) in values.into_iter().enumerate() {
            let task = i % t;
            out[task].push(match kinds[task] {
                TaskKind::Binary => 1.0 / (1.0 + (-v).exp()),
                TaskKind::Regression => table.label_scale(task).invert(v),
            });
        }
    }
    out
}

/// Metrics of every task, and the weighted loss with `weights` (one per task).
pub fn evaluate<M: MultiTaskModel>(
    model: &M,
    table: &EncodedTable,
    names: &[String],
    kinds: &[TaskKind],
    weights: &[f64],
    batch_size: usize,
    device: &Device,
) -> Result<EvalReport, EngineError> {
    let preds = predict(model, table, kinds, batch_size, device);
    let mut tasks = Vec::with_capacity(names.len());
    let mut loss = 0.0;
    for (t, name) in names.iter().enumerate() {
        let labels = table.labels_of_task(t);
        let example_weights = table.weights_of_task(t);
        let metrics =
            task_metrics(name, kinds[t], &preds[t], &labels, example_weights).map_err(|error| {
                EngineError::Metric {
                    task: name.clone(),
                    split: None,
                    error,
                }
            })?;
        let std = f64::from(table.label_scale(t).std);
        let task_loss = metrics
            .logloss
            .or(metrics.mse.map(|mse| mse / (std * std)))
            .unwrap_or(0.0);
        loss += weights.get(t).copied().unwrap_or(1.0) * task_loss;
        tasks.push(TaskReport {
            name: name.clone(),
            kind: kinds[t],
            metrics,
        });
    }
    let derived = model
        .derived_tasks()
        .iter()
        .map(|d| derived_metrics(d, &preds, table))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EvalReport {
        tasks,
        derived,
        loss,
    })
}

/// One task's metrics. With example weights, the rows of weight 0 drop out (`n` counts the
/// others); when every remaining weight is 1 the plain metrics of those rows are reported, so
/// masking rows gives exactly the figures of the labelled rows alone, else the weighted ones
/// (`weighted_auc`, `weighted_logloss`, `weighted_mse`, with `weight_sum`). A split without a
/// labelled row reports `n = 0` and no figure, with a warning, rather than failing.
fn task_metrics(
    name: &str,
    kind: TaskKind,
    preds: &[f32],
    labels: &[f32],
    weights: Option<Vec<f32>>,
) -> Result<TaskMetrics, MetricError> {
    let Some(weights) = weights else {
        return plain_metrics(name, kind, preds, labels);
    };
    let kept: Vec<usize> = (0..weights.len()).filter(|&i| weights[i] > 0.0).collect();
    if kept.is_empty() {
        tracing::warn!("task `{name}`: no labelled rows in this split; no figures");
        return Ok(TaskMetrics::default());
    }
    if kept.iter().all(|&i| weights[i] == 1.0) {
        let pick = |v: &[f32]| kept.iter().map(|&i| v[i]).collect::<Vec<f32>>();
        return plain_metrics(name, kind, &pick(preds), &pick(labels));
    }
    match kind {
        TaskKind::Binary => logloss_if_single_class(
            name,
            weighted_binary_metrics(preds, labels, &weights),
            || {
                Ok(TaskMetrics {
                    logloss: Some(weighted_logloss(preds, labels, &weights)?),
                    n: kept.len(),
                    weight_sum: Some(kept.iter().map(|&i| f64::from(weights[i])).sum()),
                    ..TaskMetrics::default()
                })
            },
        ),
        TaskKind::Regression => weighted_regression_metrics(preds, labels, &weights),
    }
}

/// A small split can hold one class only: AUC is undefined there, but the logloss still says
/// how the model does, so `logloss_only` is reported rather than failing.
fn logloss_if_single_class(
    name: &str,
    metrics: Result<TaskMetrics, MetricError>,
    logloss_only: impl FnOnce() -> Result<TaskMetrics, MetricError>,
) -> Result<TaskMetrics, MetricError> {
    match metrics {
        Err(e @ MetricError::SingleClass { .. }) => {
            tracing::warn!("task `{name}`: {e}; reporting logloss only");
            logloss_only()
        }
        other => other,
    }
}

/// AUC and logloss, or MSE, of every row given.
fn plain_metrics(
    name: &str,
    kind: TaskKind,
    preds: &[f32],
    labels: &[f32],
) -> Result<TaskMetrics, MetricError> {
    match kind {
        TaskKind::Binary => logloss_if_single_class(name, binary_metrics(preds, labels), || {
            Ok(TaskMetrics {
                logloss: Some(logloss(preds, labels)?),
                n: labels.len(),
                ..TaskMetrics::default()
            })
        }),
        TaskKind::Regression => regression_metrics(preds, labels),
    }
}

/// AUC of `p[numerator] / p[denominator]` against the numerator's labels, on the rows where
/// the `given` task's label is positive (and both tasks are labelled).
fn derived_metrics(
    d: &DerivedTask,
    preds: &[Vec<f32>],
    table: &EncodedTable,
) -> Result<TaskReport, EngineError> {
    let given = table.labels_of_task(d.given);
    let target = table.labels_of_task(d.numerator);
    let labelled = |t: usize, i: usize| table.label_weight_row(i).is_none_or(|w| w[t] > 0.0);
    let mut scores = Vec::new();
    let mut labels = Vec::new();
    for (i, &g) in given.iter().enumerate() {
        if g > 0.5 && labelled(d.given, i) && labelled(d.numerator, i) {
            scores.push(preds[d.numerator][i] / preds[d.denominator][i].max(f32::MIN_POSITIVE));
            labels.push(target[i]);
        }
    }
    let metrics = match auc(&scores, &labels) {
        Ok(a) => TaskMetrics {
            auc: Some(a),
            n: labels.len(),
            ..TaskMetrics::default()
        },
        Err(e @ (MetricError::SingleClass { .. } | MetricError::Empty)) => {
            tracing::warn!("derived task `{}`: {e}", d.name);
            TaskMetrics {
                n: labels.len(),
                ..TaskMetrics::default()
            }
        }
        Err(error) => {
            return Err(EngineError::Metric {
                task: d.name.clone(),
                split: None,
                error,
            });
        }
    };
    Ok(TaskReport {
        name: d.name.clone(),
        kind: TaskKind::Binary,
        metrics,
    })
}
