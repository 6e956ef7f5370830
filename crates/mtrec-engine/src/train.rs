//! The training loop: Adam over batches, validation after every epoch, early stopping on the
//! monitored figure, the best epoch's weights kept.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use burn::prelude::*;
use mtrec_arch::Model;
use mtrec_data::{Batch, Dataset, EncodedTable, TaskKind, batches};
use serde::{Deserialize, Serialize};

use crate::resume::{Snapshot, StateFile, record_params, restore_params, seed_step};
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
    train_resumable(cfg, data, device, observer, None)
}

/// [`train`] keeping its state in `state` and resuming from it (see [`fit_resumable`]).
pub fn train_resumable(
    cfg: &ExperimentConfig,
    data: &Dataset,
    device: &Device,
    observer: &mut dyn Observer,
    state: Option<&StateFile>,
) -> Result<TrainOutcome, EngineError> {
    device.seed(cfg.train.seed);
    let model = mtrec_arch::build(
        &cfg.model,
        &cfg.embedding,
        &model_meta(&cfg.scheme, &data.meta())?,
        &device.clone().autodiff(),
    )?;
    fit_resumable(model, cfg, data, device, observer, state)
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

/// How far an epoch has got: batches done and the example-weighted loss over them.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct EpochProgress {
    pub batches: usize,
    pub loss_sum: f64,
    pub seen: usize,
}

/// One epoch's shuffled batches (order seeded by `seed + epoch`), from where `progress`
/// says it stands, with the bookkeeping every loop shares: the loss sum, a non-finite loss
/// stopping the run, the batch event.
pub(crate) struct Epoch<'a> {
    batches: std::iter::Take<mtrec_data::BatchIter<'a>>,
    epoch: usize,
    pub progress: EpochProgress,
}

impl<'a> Epoch<'a> {
    pub fn start(
        table: &'a EncodedTable,
        batch_size: usize,
        n_batches: usize,
        seed: u64,
        epoch: usize,
        progress: EpochProgress,
    ) -> Self {
        let order_seed = seed.wrapping_add(epoch as u64);
        let batches = batches(table, batch_size, Some(order_seed))
            .advance(progress.batches)
            .take(n_batches.saturating_sub(progress.batches));
        Self {
            batches,
            epoch,
            progress,
        }
    }

    pub fn next_batch(&mut self) -> Option<Batch> {
        self.batches.next()
    }

    /// Counts a step's `loss` on a batch of `len` examples.
    pub fn record(
        &mut self,
        loss: f64,
        len: usize,
        observer: &mut dyn Observer,
    ) -> Result<(), EngineError> {
        let p = &mut self.progress;
        p.batches += 1;
        if !loss.is_finite() {
            return Err(EngineError::Diverged {
                epoch: self.epoch,
                batch: p.batches,
                loss,
            });
        }
        p.loss_sum += loss * len as f64;
        p.seen += len;
        observer.on_event(&Event::Batch {
            epoch: self.epoch,
            batch: p.batches,
            loss,
        });
        Ok(())
    }
}

/// One whole pass over `n_batches` shuffled batches (see [`Epoch`]); returns the
/// example-weighted loss sum and the examples seen.
pub(crate) fn run_epoch(
    table: &EncodedTable,
    batch_size: usize,
    n_batches: usize,
    seed: u64,
    epoch: usize,
    observer: &mut dyn Observer,
    mut step: impl FnMut(&Batch) -> f64,
) -> Result<(f64, usize), EngineError> {
    let mut pass = Epoch::start(
        table,
        batch_size,
        n_batches,
        seed,
        epoch,
        EpochProgress::default(),
    );
    while let Some(batch) = pass.next_batch() {
        let loss = step(&batch);
        pass.record(loss, batch.len, observer)?;
    }
    Ok((pass.progress.loss_sum, pass.progress.seen))
}

/// The training loop's own state between steps; with the trainer's and the best epoch's
/// weights, what a resumed run needs to go on as if never stopped.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LoopState {
    /// The epoch in progress (1-based), `progress` into it.
    epoch: usize,
    progress: EpochProgress,
    /// Training seconds of `epoch` so far.
    epoch_seconds: f64,
    history: Vec<EpochRecord>,
    /// Score and epoch of the best epoch so far.
    best: Option<(f64, usize)>,
    since_best: usize,
    train_seconds: f64,
    examples: usize,
    prepare_log: Vec<serde_json::Value>,
}

const LOOP_KEY: &str = "fit.loop";

fn best_blob(i: usize) -> String {
    format!("fit.best.{i}")
}

/// Writes the loop's, the trainer's and the best model's state to `file`.
fn save_state(
    file: &StateFile,
    trainer: &dyn Trainer,
    state: &LoopState,
    best: Option<&Predictor>,
) -> Result<(), EngineError> {
    let mut snapshot = Snapshot::default();
    trainer.save_state(&mut snapshot)?;
    snapshot.put(LOOP_KEY, state)?;
    if let Some(best) = best {
        for (i, m) in best.models().into_iter().enumerate() {
            snapshot.blobs.insert(best_blob(i), record_params(m));
        }
    }
    file.save(&snapshot)
}

/// Restores the trainer from `snapshot` and returns the loop state and the best model.
fn load_state(
    file: &Path,
    snapshot: &Snapshot,
    trainer: &mut dyn Trainer,
    data: &Dataset,
) -> Result<(LoopState, Option<Predictor>), EngineError> {
    let state: LoopState = snapshot.get(file, LOOP_KEY)?;
    // Inside an epoch, the trainer's per-epoch settings are those of that epoch, and the
    // figures it gathered so far come back with its state (the loop does not begin it again).
    if state.progress.batches > 0 {
        trainer.begin_epoch(state.epoch);
    }
    trainer.load_state(snapshot, file, data)?;
    let best = match state.best {
        None => None,
        Some(_) => {
            let mut p = trainer.predictor();
            for (i, m) in p.models_mut().into_iter().enumerate() {
                *m = restore_params(m.clone(), snapshot.blob(file, &best_blob(i))?, false)
                    .map_err(|e| EngineError::State {
                        path: file.to_path_buf(),
                        message: format!("the best epoch's weights: {e}"),
                    })?;
            }
            Some(p)
        }
    };
    Ok((state, best))
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
    fit_resumable(model, cfg, data, device, observer, None)
}

/// [`fit`] that keeps its state in `state` (at the end of every epoch, and every
/// `every_steps` steps) and, when that file holds a state of this experiment, continues
/// from it. `model` must be built exactly as for the saved run (same config and seed).
pub fn fit_resumable(
    model: Model,
    cfg: &ExperimentConfig,
    data: &Dataset,
    device: &Device,
    observer: &mut dyn Observer,
    state_file: Option<&StateFile>,
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
    // A finished search's state holds no training loop yet: its finetune starts fresh.
    let saved = match state_file {
        Some(f) => f
            .load()?
            .filter(|s| s.values.contains_key(LOOP_KEY))
            .map(|s| (f, s)),
        None => None,
    };
    let (mut state, mut best) = match &saved {
        Some((f, snapshot)) => {
            let (state, best) = load_state(&f.path, snapshot, stepper.as_mut(), data)?;
            // A warning, so it shows at the default log level: the run goes on, it does not
            // start over.
            tracing::warn!(
                "resuming from {}: epoch {}, {} batches into it",
                f.path.display(),
                state.epoch,
                state.progress.batches
            );
            (state, best)
        }
        None => {
            let prepare_log = stepper.prepare(data, observer)?;
            let state = LoopState {
                epoch: 1,
                prepare_log,
                ..LoopState::default()
            };
            (state, None)
        }
    };
    drop(saved);

    let n_batches = batches_per_epoch(data.train.n_rows, t.batch_size, t.max_batches_per_epoch);
    observer.on_event(&Event::TrainStart {
        epochs: t.epochs,
        batches_per_epoch: n_batches,
        n_train: data.train.n_rows,
    });
    let every_steps = state_file.map_or(0, |f| f.every_steps);
    let mut stopped = false;
    while state.epoch <= t.epochs && !stopped {
        let epoch = state.epoch;
        observer.on_event(&Event::EpochStart { epoch });
        if state.progress.batches == 0 {
            stepper.begin_epoch(epoch);
        }
        let start = Instant::now();
        let mut pass = Epoch::start(
            &data.train,
            t.batch_size,
            n_batches,
            t.seed,
            epoch,
            state.progress,
        );
        while let Some(batch) = pass.next_batch() {
            let step = ((epoch - 1) * n_batches + pass.progress.batches) as u64;
            seed_step(device, t.seed, step);
            let loss = stepper.step(&batch);
            pass.record(loss, batch.len, observer)?;
            crate::resume::kill_point("step");
            if let Some(f) = state_file
                && every_steps > 0
                && (step + 1).is_multiple_of(every_steps as u64)
                && pass.progress.batches < n_batches
            {
                let mid = LoopState {
                    progress: pass.progress,
                    epoch_seconds: state.epoch_seconds + start.elapsed().as_secs_f64(),
                    ..state.clone()
                };
                save_state(f, stepper.as_ref(), &mid, best.as_ref())?;
            }
        }
        let EpochProgress { loss_sum, seen, .. } = pass.progress;
        let seconds = state.epoch_seconds + start.elapsed().as_secs_f64();
        state.train_seconds += seconds;
        state.examples += seen;
        let stats = stepper.end_epoch(data)?;

        let (snapshot, valid) = validate(stepper.as_ref(), data, &selection_weights, t, device)?;
        let s = score(&monitor, &valid)?;
        let improved = state.best.is_none_or(|(b, _)| s > b);
        let train_loss = loss_sum / seen.max(1) as f64;
        observer.on_event(&Event::EpochEnd {
            epoch,
            train_loss,
            valid: &valid,
            improved,
            seconds,
        });
        state.history.push(EpochRecord {
            epoch,
            train_loss,
            valid,
            seconds,
            stats,
        });
        if improved {
            state.best = Some((s, epoch));
            best = Some(snapshot);
            state.since_best = 0;
        } else {
            state.since_best += 1;
            if t.patience > 0 && state.since_best >= t.patience {
                let best_epoch = state.best.map_or(epoch, |b| b.1);
                observer.on_event(&Event::EarlyStop { epoch, best_epoch });
                stopped = true;
            }
        }
        state.epoch += 1;
        state.progress = EpochProgress::default();
        state.epoch_seconds = 0.0;
        if let Some(f) = state_file
            && !stopped
            && state.epoch <= t.epochs
        {
            save_state(f, stepper.as_ref(), &state, best.as_ref())?;
        }
    }
    let (Some((_, best_epoch)), Some(best_model)) = (state.best, best) else {
        return Err(EngineError::Invalid(
            "train.epochs must be at least 1".into(),
        ));
    };
    let history = state.history;
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
        prepare_log: state.prepare_log,
        loss_weights: stepper.eval_weights(),
        best_epoch,
        valid,
        test,
        train_seconds: state.train_seconds,
        examples_per_second: state.examples as f64 / state.train_seconds.max(1e-9),
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
