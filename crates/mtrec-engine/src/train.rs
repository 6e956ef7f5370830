//! The training loop: Adam over batches, validation after every epoch, early stopping on the
//! monitored figure, the best epoch's weights kept.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::prelude::*;
use mtrec_arch::Model;
use mtrec_data::{Batch, Dataset, EncodedTable, TaskKind, batches};
use serde::{Deserialize, Serialize};

use crate::scheme::{Predictor, model_meta, trainer};
use crate::{EngineError, EvalReport, Event, ExperimentConfig, Monitor, Observer, evaluate};

/// One epoch of the training history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub valid: EvalReport,
    pub seconds: f64,
    /// The weighting's or scheme's figures after the epoch (loss weights, mask densities).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stats: BTreeMap<String, f64>,
}

/// What a finished training returns: the selected model and its figures.
#[derive(Debug)]
pub struct TrainOutcome {
    /// The best epoch's model, in validation mode (no autodiff).
    pub model: Predictor,
    pub history: Vec<EpochRecord>,
    /// The per-task weights of the loss at the end of training (learnt ones included).
    pub loss_weights: Vec<f64>,
    /// What a scheme did before the epochs (LT4Rec's pruning rounds); empty for most.
    pub prepare_log: Vec<serde_json::Value>,
    pub best_epoch: usize,
    pub valid: EvalReport,
    pub test: EvalReport,
    /// Seconds spent in the training epochs' steps (evaluation and a scheme's preparation,
    /// such as LT4Rec's pruning rounds, excluded: the wall time has them).
    pub train_seconds: f64,
    pub examples_per_second: f64,
}

/// Builds the model the config describes (seeded) and trains it.
pub fn train(
    cfg: &ExperimentConfig,
    data: &Dataset,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<TrainOutcome, EngineError> {
    device.seed(cfg.train.seed);
    let model = mtrec_arch::build(
        &cfg.model,
        &cfg.embedding,
        &model_meta(&cfg.scheme, &data.meta())?,
        &device.clone().autodiff(),
    )?;
    fit(model, cfg, data, device, observer)
}

/// The figure model selection follows, as "bigger is better".
fn score(monitor: &Monitor, report: &EvalReport) -> Result<f64, EngineError> {
    match monitor {
        // Without any AUC (no binary task, or single-class validation labels) the loss decides.
        Monitor::Auto | Monitor::MeanAuc => Ok(report.mean_auc().unwrap_or(-report.loss)),
        Monitor::Loss => Ok(-report.loss),
        Monitor::TaskAuc(task) => report.task(task).and_then(|m| m.auc).ok_or_else(|| {
            EngineError::Invalid(format!("train.monitor: no AUC for task `{task}`"))
        }),
    }
}

/// Batches in one epoch over `n_rows`, capped by `max` (0 = no cap).
pub(crate) fn batches_per_epoch(n_rows: usize, batch_size: usize, max: usize) -> usize {
    let n = n_rows.div_ceil(batch_size.max(1));
    if max > 0 { n.min(max) } else { n }
}

/// One pass over `n_batches` shuffled batches (order seeded by `seed + epoch`), stopping at a
/// non-finite loss; returns the example-weighted loss sum and the examples seen. The training
/// loop and the search share it.
pub(crate) fn run_epoch(
    table: &EncodedTable,
    batch_size: usize,
    n_batches: usize,
    seed: u64,
    epoch: usize,
    observer: &mut dyn Observer,
    mut step: impl FnMut(&Batch) -> f64,
) -> Result<(f64, usize), EngineError> {
    let (mut loss_sum, mut seen) = (0.0, 0usize);
    let order_seed = seed.wrapping_add(epoch as u64);
    for (i, batch) in batches(table, batch_size, Some(order_seed))
        .take(n_batches)
        .enumerate()
    {
        let loss = step(&batch);
        if !loss.is_finite() {
            return Err(EngineError::Diverged {
                epoch,
                batch: i + 1,
                loss,
            });
        }
        loss_sum += loss * batch.len as f64;
        seen += batch.len;
        observer.on_event(&Event::Batch {
            epoch,
            batch: i + 1,
            loss,
        });
    }
    Ok((loss_sum, seen))
}

/// Trains an already built model (the entry point for models that do not come from
/// `[model]`, such as a searched architecture).
pub fn fit(
    model: Model,
    cfg: &ExperimentConfig,
    data: &Dataset,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<TrainOutcome, EngineError> {
    let t = &cfg.train;
    let meta = data.meta();
    let kinds = &meta.task_kinds;
    let names = &meta.task_names;
    if data.train.n_rows == 0 || data.valid.n_rows == 0 {
        return Err(EngineError::Invalid(
            "the training and validation splits must not be empty".into(),
        ));
    }
    let monitor = match &t.monitor {
        Monitor::Auto if kinds.iter().all(|k| *k == TaskKind::Binary) => Monitor::MeanAuc,
        Monitor::Auto => Monitor::Loss,
        m => m.clone(),
    };
    let ad_device = device.clone().autodiff();
    let mut stepper = trainer(model, cfg, data, &ad_device)?;
    let prepare_log = stepper.prepare(data, observer)?;

    let n_batches = batches_per_epoch(data.train.n_rows, t.batch_size, t.max_batches_per_epoch);
    observer.on_event(&Event::TrainStart {
        epochs: t.epochs,
        batches_per_epoch: n_batches,
        n_train: data.train.n_rows,
    });

    let mut history = Vec::new();
    let mut best: Option<(f64, usize, Predictor)> = None;
    let mut since_best = 0;
    let mut train_seconds = 0.0;
    let mut examples = 0usize;
    for epoch in 1..=t.epochs {
        observer.on_event(&Event::EpochStart { epoch });
        stepper.begin_epoch(epoch);
        let start = Instant::now();
        let (loss_sum, seen) = run_epoch(
            &data.train,
            t.batch_size,
            n_batches,
            t.seed,
            epoch,
            observer,
            |b| stepper.step(b),
        )?;
        let seconds = start.elapsed().as_secs_f64();
        train_seconds += seconds;
        examples += seen;
        let stats = stepper.end_epoch(data)?;

        let snapshot = stepper.predictor();
        let valid = evaluate(
            &snapshot,
            &data.valid,
            names,
            kinds,
            &stepper.eval_weights(),
            t.eval_batch_size,
            device,
        )?;
        let s = score(&monitor, &valid)?;
        let improved = best.as_ref().is_none_or(|(b, _, _)| s > *b);
        let train_loss = loss_sum / seen.max(1) as f64;
        observer.on_event(&Event::EpochEnd {
            epoch,
            train_loss,
            valid: &valid,
            improved,
            seconds,
        });
        history.push(EpochRecord {
            epoch,
            train_loss,
            valid,
            seconds,
            stats,
        });
        if improved {
            best = Some((s, epoch, snapshot));
            since_best = 0;
        } else {
            since_best += 1;
            if t.patience > 0 && since_best >= t.patience {
                let best_epoch = best.as_ref().map_or(epoch, |b| b.1);
                observer.on_event(&Event::EarlyStop { epoch, best_epoch });
                break;
            }
        }
    }
    let Some((_, best_epoch, best_model)) = best else {
        return Err(EngineError::Invalid(
            "train.epochs must be at least 1".into(),
        ));
    };
    let weights = stepper.eval_weights();
    let valid = history[best_epoch - 1].valid.clone();
    observer.on_event(&Event::Evaluating { split: "test" });
    let test = if data.test.n_rows > 0 {
        evaluate(
            &best_model,
            &data.test,
            names,
            kinds,
            &weights,
            t.eval_batch_size,
            device,
        )?
    } else {
        EvalReport::default()
    };
    Ok(TrainOutcome {
        model: best_model,
        history,
        prepare_log,
        loss_weights: weights,
        best_epoch,
        valid,
        test,
        train_seconds,
        examples_per_second: examples as f64 / train_seconds.max(1e-9),
    })
}
