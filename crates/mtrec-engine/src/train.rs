//! The training loop: Adam over batches, validation after every epoch, early stopping on the
//! monitored figure, the best epoch's weights kept.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::prelude::*;
use mtrec_arch::Model;
use mtrec_data::{Batch, Dataset, EncodedTable, TaskKind, batches};
use serde::{Deserialize, Serialize};

use crate::scheme::{Predictor, Trainer, model_meta, trainer};
use crate::{
    EngineError, EvalReport, Event, ExperimentConfig, Monitor, Observer, TrainConfig, evaluate,
};

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
    /// The weighting's per-task weights at the end of training (learnt ones included), for
    /// the report; the validation and test losses use the fixed selection weights instead.
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

impl TrainOutcome {
    /// Whether the kept epoch is the last one run. Early stopping ends a run only after
    /// `patience` epochs without improvement, so this means the run hit `train.epochs` while
    /// the monitored figure was still improving: the model is likely undertrained.
    pub fn best_epoch_is_last(&self) -> bool {
        self.best_epoch == self.history.len()
    }

    /// The advice to give when [`TrainOutcome::best_epoch_is_last`]; `None` otherwise.
    pub fn undertrained_hint(&self) -> Option<String> {
        self.best_epoch_is_last().then(|| {
            format!(
                "the best epoch is the last one ({} of {}): validation was still improving when \
                 training stopped; raise train.epochs so that early stopping ends the run",
                self.best_epoch,
                self.history.len()
            )
        })
    }
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

/// The figure model selection follows, as "bigger is better". The validation loss in
/// `report` must be weighted by [`WeightingConfig::selection_weights`], so that an epoch's
/// score depends on its model only (see [`Monitor::Loss`]).
///
/// [`WeightingConfig::selection_weights`]: mtrec_weighting::WeightingConfig::selection_weights
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

/// With partial labels, logs each task's labelled training rows, and refuses a task that has
/// none: it would train on nothing and report figures of an untrained tower.
pub(crate) fn check_labelled(train: &EncodedTable, names: &[String]) -> Result<(), EngineError> {
    if train.label_weights.is_none() {
        return Ok(());
    }
    for (t, name) in names.iter().enumerate() {
        let n = train.labelled_rows(t);
        if n == 0 {
            return Err(EngineError::Invalid(format!(
                "task `{name}` has no labelled row in the training split (every label is \
                 missing, its `given` task is never positive, or every weight is 0)"
            )));
        }
        tracing::info!(
            "task `{name}`: {n} of {} training rows labelled",
            train.n_rows
        );
    }
    Ok(())
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
    check_labelled(&data.train, names)?;
    let monitor = match &t.monitor {
        Monitor::Auto if kinds.iter().all(|k| *k == TaskKind::Binary) => Monitor::MeanAuc,
        Monitor::Auto => Monitor::Loss,
        m => m.clone(),
    };
    let selection_weights = cfg.weighting.selection_weights(names)?;
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

        let (snapshot, valid) = validate(stepper.as_ref(), data, &selection_weights, t, device)?;
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
    let valid = history[best_epoch - 1].valid.clone();
    observer.on_event(&Event::Evaluating { split: "test" });
    // The test loss is weighted as the validation loss was, so the two compare.
    let test = if data.test.n_rows > 0 {
        evaluate(
            &best_model,
            &data.test,
            names,
            kinds,
            &selection_weights,
            t.eval_batch_size,
            device,
        )
        .map_err(|e| e.in_split("the test split"))?
    } else {
        EvalReport::default()
    };
    let outcome = TrainOutcome {
        model: best_model,
        history,
        prepare_log,
        loss_weights: stepper.eval_weights(),
        best_epoch,
        valid,
        test,
        train_seconds,
        examples_per_second: examples as f64 / train_seconds.max(1e-9),
    };
    if let Some(hint) = outcome.undertrained_hint() {
        tracing::warn!("{hint}");
    }
    Ok(outcome)
}

/// The model as it stands and its validation report, whose loss is weighted by
/// `selection_weights` rather than by the trainer's current (possibly learnt) weights.
fn validate(
    trainer: &dyn Trainer,
    data: &Dataset,
    selection_weights: &[f64],
    t: &TrainConfig,
    device: &Device,
) -> Result<(Predictor, EvalReport), EngineError> {
    let meta = data.meta();
    let snapshot = trainer.predictor();
    let report = evaluate(
        &snapshot,
        &data.valid,
        &meta.task_names,
        &meta.task_kinds,
        selection_weights,
        t.eval_batch_size,
        device,
    )
    .map_err(|e| e.in_split("the validation split"))?;
    Ok((snapshot, report))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(weighting: &str) -> ExperimentConfig {
        let text = format!(
            "[data]\nkind = \"synthetic\"\ndim = 8\nn_train = 64\nn_valid = 50\nn_test = 0\nseed = 1\n\
             [model]\nkind = \"shared-bottom\"\nbottom = [8]\ntower = [4]\n\
             [weighting]\n{weighting}\n"
        );
        ExperimentConfig::from_toml_str(&text, Path::new("inline.toml")).unwrap()
    }

    /// One model under two uncertainty weightings whose log-variances differ (`s = -0.5` and
    /// `s = 2`, i.e. weights 0.82 and 0.068): what they learnt must not change the figure the
    /// epoch is selected on, which is the plain mean of the two tasks' MSEs.
    #[test]
    fn loss_monitor_does_not_depend_on_learnt_weights() {
        let device = crate::default_device();
        let low = config("kind = \"uncertainty\"\ninit = -0.5");
        let high = config("kind = \"uncertainty\"\ninit = 2.0");
        let data = mtrec_data::load(&low.data, Path::new(".")).unwrap();
        let ad = device.clone().autodiff();
        let model = mtrec_arch::build(&low.model, &low.embedding, &data.meta(), &ad).unwrap();
        let a = trainer(model.clone(), &low, &data, &ad).unwrap();
        let b = trainer(model, &high, &data, &ad).unwrap();
        assert!(
            (a.eval_weights()[0] - b.eval_weights()[0]).abs() > 0.5,
            "the two weightings must differ for the test to mean anything"
        );
        let selection = low
            .weighting
            .selection_weights(&data.meta().task_names)
            .unwrap();
        assert_eq!(
            selection,
            high.weighting
                .selection_weights(&data.meta().task_names)
                .unwrap()
        );
        let (_, ra) = validate(a.as_ref(), &data, &selection, &low.train, &device).unwrap();
        let (_, rb) = validate(b.as_ref(), &data, &selection, &high.train, &device).unwrap();
        let mse = |r: &EvalReport, k: usize| r.tasks[k].metrics.mse.unwrap();
        assert_eq!(mse(&ra, 0), mse(&rb, 0));
        let mean = 0.5 * (mse(&ra, 0) + mse(&ra, 1));
        assert!((ra.loss - mean).abs() < 1e-12, "{} vs {mean}", ra.loss);
        assert_eq!(
            score(&Monitor::Loss, &ra).unwrap(),
            score(&Monitor::Loss, &rb).unwrap()
        );
    }
}
