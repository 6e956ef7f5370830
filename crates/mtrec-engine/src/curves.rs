//! Learning curves: a training of a fixed number of optimizer steps, evaluated every `every`
//! steps on the validation and test splits.
//!
//! Papers plot loss against steps (the MMoE paper's figure 4 is the mean test loss of 200
//! runs against steps), which [`crate::fit`] cannot give: it evaluates once per epoch, keeps
//! the best epoch and stops early. Here nothing is selected and nothing stops early: the
//! model after step `s` is evaluated as it stands, and the run ends at `steps`. Batches follow
//! `fit`'s order (shuffled per epoch with seed `train.seed + epoch`, epochs counted from 1),
//! so a curve of one epoch's steps ends at exactly the model `fit` trains in one epoch.
//! Evaluating never changes the trajectory: the same run with another `every` passes through
//! the same weights.

use std::sync::Mutex;
use std::time::Instant;

use burn::module::{ModuleVisitor, Param};
use burn::prelude::*;
use mtrec_arch::Model;
use mtrec_data::{Dataset, batches};
use serde::{Deserialize, Serialize};

use crate::scheme::{Predictor, model_meta, trainer};
use crate::train::check_labelled;
use crate::{EngineError, EvalReport, ExperimentConfig, evaluate};

/// How long a curve runs and how often it is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurvePlan {
    /// Optimizer steps in all (one batch each).
    pub steps: usize,
    /// Evaluate after every `every` steps (and at step 0 and at the last step).
    pub every: usize,
}

impl CurvePlan {
    /// The steps after which the model is evaluated: 0, `every`, `2 every`, ..., and `steps`.
    pub fn checkpoints(&self) -> Vec<usize> {
        let every = self.every.max(1);
        let mut at: Vec<usize> = (0..=self.steps).step_by(every).collect();
        if at.last() != Some(&self.steps) {
            at.push(self.steps);
        }
        at
    }
}

/// The model measured after `step` optimizer steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub step: usize,
    /// Mean training objective of the steps since the previous point (`None` at step 0).
    pub train_loss: Option<f64>,
    pub valid: EvalReport,
    /// Empty (no task) when the data has no test split.
    pub test: EvalReport,
}

/// A finished curve and the model at its last step.
#[derive(Debug)]
pub struct Curve {
    pub points: Vec<CurvePoint>,
    /// The model after the last step, in validation mode.
    pub model: Predictor,
    /// Seconds in optimizer steps, evaluation excluded.
    pub train_seconds: f64,
    pub eval_seconds: f64,
}

/// The flex backend draws initial weights from one process-wide generator, which
/// [`Device::seed`] resets, and burn draws a parameter's weights lazily, at its first use: two
/// threads training at once would interleave their draws, and a run's initialisation would
/// depend on its neighbours. Seeding, building and drawing every weight under this lock make
/// it depend on the run's own seed only, so runs on worker threads reproduce.
static INIT: Mutex<()> = Mutex::new(());

/// Draws the weights of every lazily initialised parameter.
struct Materialise;

impl ModuleVisitor for Materialise {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.base();
    }

    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
        let _ = param.base();
    }

    fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<D, Bool>>) {
        let _ = param.base();
    }
}

/// The config's model for `data`, initialised from `cfg.train.seed` alone, on `device`'s
/// autodiff twin. Safe to call from several threads at once: the flex backend draws initial
/// weights from one process-wide generator, lazily, so this seeds it, builds and draws every
/// weight under one lock. The weights are drawn in the model's field order, not in the order
/// of first use that `train` follows, so the same seed need not give `train`'s weights.
pub fn build_seeded(
    cfg: &ExperimentConfig,
    data: &Dataset,
    device: &Device,
) -> Result<Model, EngineError> {
    let meta = model_meta(&cfg.scheme, &data.meta())?;
    let _guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    device.seed(cfg.train.seed);
    let model = mtrec_arch::build(
        &cfg.model,
        &cfg.embedding,
        &meta,
        &device.clone().autodiff(),
    )?;
    model.visit(&mut Materialise);
    Ok(model)
}

/// [`build_seeded`], then [`train_curve`].
pub fn build_and_train_curve(
    cfg: &ExperimentConfig,
    data: &Dataset,
    device: &Device,
    plan: CurvePlan,
    on_point: &mut dyn FnMut(&CurvePoint),
) -> Result<Curve, EngineError> {
    let model = build_seeded(cfg, data, device)?;
    train_curve(model, cfg, data, device, plan, on_point)
}

/// Trains `model` (built on `device`'s autodiff twin) for `plan.steps` steps of `[train]`'s
/// batch size, learning rate and weighting, calling `on_point` at every point as it is
/// measured. `train.epochs`, `patience` and `monitor` do not apply; the validation and test
/// losses are weighted with the weighting's fixed selection weights, as in `fit`.
pub fn train_curve(
    model: Model,
    cfg: &ExperimentConfig,
    data: &Dataset,
    device: &Device,
    plan: CurvePlan,
    on_point: &mut dyn FnMut(&CurvePoint),
) -> Result<Curve, EngineError> {
    let t = &cfg.train;
    let meta = data.meta();
    if data.train.n_rows == 0 || data.valid.n_rows == 0 {
        return Err(EngineError::Invalid(
            "the training and validation splits must not be empty".into(),
        ));
    }
    check_labelled(&data.train, &meta.task_names)?;
    let weights = cfg.weighting.selection_weights(&meta.task_names)?;
    let measure = |model: &Predictor, step: usize, train_loss: Option<f64>| {
        let eval = |table, split: &str| {
            evaluate(
                model,
                table,
                &meta.task_names,
                &meta.task_kinds,
                &weights,
                t.eval_batch_size,
                device,
            )
            .map_err(|e| e.in_split(split))
        };
        let valid = eval(&data.valid, "the validation split")?;
        let test = if data.test.n_rows > 0 {
            eval(&data.test, "the test split")?
        } else {
            EvalReport::default()
        };
        Ok::<_, EngineError>(CurvePoint {
            step,
            train_loss,
            valid,
            test,
        })
    };

    let ad_device = device.clone().autodiff();
    let mut stepper = trainer(model, cfg, data, &ad_device)?;
    let checkpoints = plan.checkpoints();
    let mut next = checkpoints.iter().copied().peekable();
    let mut points = Vec::with_capacity(checkpoints.len());
    let (mut train_seconds, mut eval_seconds) = (0.0, 0.0);
    let mut record = |model: &Predictor, step, train_loss, seconds: &mut f64| {
        let start = Instant::now();
        let point = measure(model, step, train_loss)?;
        *seconds += start.elapsed().as_secs_f64();
        on_point(&point);
        points.push(point);
        Ok::<_, EngineError>(())
    };
    next.next_if_eq(&0);
    record(&stepper.predictor(), 0, None, &mut eval_seconds)?;

    let (mut step, mut epoch) = (0usize, 0usize);
    let (mut loss_sum, mut loss_steps) = (0.0, 0usize);
    while step < plan.steps {
        epoch += 1;
        stepper.begin_epoch(epoch);
        let order_seed = t.seed.wrapping_add(epoch as u64);
        for (i, batch) in batches(&data.train, t.batch_size, Some(order_seed)).enumerate() {
            let start = Instant::now();
            let loss = stepper.step(&batch);
            train_seconds += start.elapsed().as_secs_f64();
            if !loss.is_finite() {
                return Err(EngineError::Diverged {
                    epoch,
                    batch: i + 1,
                    loss,
                });
            }
            step += 1;
            loss_sum += loss;
            loss_steps += 1;
            if next.next_if_eq(&step).is_some() {
                let mean = loss_sum / loss_steps as f64;
                (loss_sum, loss_steps) = (0.0, 0);
                record(&stepper.predictor(), step, Some(mean), &mut eval_seconds)?;
            }
            if step == plan.steps {
                break;
            }
        }
    }
    Ok(Curve {
        points,
        model: stepper.predictor(),
        train_seconds,
        eval_seconds,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use mtrec_data::TaskKind;

    use super::*;
    use crate::{NullObserver, fit, predict};

    /// 64 training rows in batches of 16: four steps per epoch.
    fn config(epochs: usize) -> ExperimentConfig {
        let text = format!(
            "[data]\nkind = \"synthetic\"\ndim = 8\nn_train = 64\nn_valid = 40\nn_test = 30\nseed = 3\n\
             [model]\nkind = \"mmoe\"\nn_experts = 2\nexpert = [4]\ntower = [3]\n\
             [train]\nbatch_size = 16\nlearning_rate = 0.01\nepochs = {epochs}\nseed = 5\n"
        );
        ExperimentConfig::from_toml_str(&text, Path::new("inline.toml")).unwrap()
    }

    fn data(cfg: &ExperimentConfig) -> Dataset {
        mtrec_data::load(&cfg.data, Path::new(".")).unwrap()
    }

    fn losses(curve: &Curve) -> Vec<(usize, f64, f64)> {
        curve
            .points
            .iter()
            .map(|p| (p.step, p.valid.loss, p.test.loss))
            .collect()
    }

    #[test]
    fn checkpoints_start_at_zero_and_end_at_the_last_step() {
        let plan = |steps, every| CurvePlan { steps, every }.checkpoints();
        assert_eq!(plan(10, 5), vec![0, 5, 10]);
        assert_eq!(plan(10, 4), vec![0, 4, 8, 10]);
        assert_eq!(plan(3, 10), vec![0, 3]);
        assert_eq!(plan(0, 10), vec![0]);
        // `every = 0` is read as every step rather than looping forever.
        assert_eq!(plan(2, 0), vec![0, 1, 2]);
    }

    /// The test loss of a point is the plain mean of the two tasks' MSEs of the model as it
    /// stands, worked out here from its raw predictions and the labels.
    #[test]
    fn test_loss_is_the_mean_task_mse_of_the_current_model() {
        let cfg = config(1);
        let data = data(&cfg);
        let device = crate::default_device();
        let plan = CurvePlan { steps: 6, every: 3 };
        let curve = build_and_train_curve(&cfg, &data, &device, plan, &mut |_| {}).unwrap();
        assert_eq!(
            curve.points.iter().map(|p| p.step).collect::<Vec<_>>(),
            [0, 3, 6]
        );
        let kinds = [TaskKind::Regression, TaskKind::Regression];
        let preds = predict(&curve.model, &data.test, &kinds, 7, &device);
        let mut mse = [0.0f64; 2];
        for (k, m) in mse.iter_mut().enumerate() {
            let labels = data.test.labels_of_task(k);
            for (p, y) in preds[k].iter().zip(&labels) {
                *m += f64::from(p - y).powi(2) / labels.len() as f64;
            }
        }
        let last = curve.points.last().unwrap();
        let expected = 0.5 * (mse[0] + mse[1]);
        assert!(
            (last.test.loss - expected).abs() < 1e-5 * expected,
            "{} vs {expected}",
            last.test.loss
        );
        assert!(last.train_loss.is_some() && curve.points[0].train_loss.is_none());
    }

    /// Four steps are one epoch of `fit`: the same batches in the same order from the same
    /// initial weights, so the curve's last point is the model `fit` keeps after one epoch.
    #[test]
    fn one_epoch_of_steps_ends_where_fit_does() {
        let cfg = config(1);
        let data = data(&cfg);
        let device = crate::default_device();
        let plan = CurvePlan { steps: 4, every: 2 };
        let curve = build_and_train_curve(&cfg, &data, &device, plan, &mut |_| {}).unwrap();
        let model = build_seeded(&cfg, &data, &device).unwrap();
        let fitted = fit(model, &cfg, &data, &device, &mut NullObserver).unwrap();
        let last = curve.points.last().unwrap();
        assert_eq!((last.step, fitted.history.len()), (4, 1));
        assert_eq!(last.valid.loss, fitted.valid.loss);
        assert_eq!(last.test.loss, fitted.test.loss);
    }

    /// Measuring is read-only: measured every step or only at the end, a run passes through
    /// the same weights, across epoch boundaries (10 steps = 2.5 epochs).
    #[test]
    fn evaluating_does_not_change_the_trajectory() {
        let cfg = config(1);
        let data = data(&cfg);
        let device = crate::default_device();
        let mut seen = Vec::new();
        let dense = build_and_train_curve(
            &cfg,
            &data,
            &device,
            CurvePlan {
                steps: 10,
                every: 1,
            },
            &mut |p| seen.push(p.step),
        )
        .unwrap();
        let sparse = build_and_train_curve(
            &cfg,
            &data,
            &device,
            CurvePlan {
                steps: 10,
                every: 10,
            },
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(seen, (0..=10).collect::<Vec<_>>());
        assert_eq!(losses(&dense).last(), losses(&sparse).last());
        assert_eq!(losses(&dense)[0], losses(&sparse)[0]);
        // The training moved the model: the curve is not flat.
        assert_ne!(losses(&dense)[0].2, losses(&dense)[10].2);
    }

    /// Runs built at once on several threads get the initial weights of their own seed.
    #[test]
    fn parallel_builds_reproduce_serial_ones() {
        let cfg = config(1);
        let data = data(&cfg);
        let device = crate::default_device();
        let plan = CurvePlan { steps: 2, every: 2 };
        let seeds = [11u64, 12, 13, 14];
        let run = |seed: u64| {
            let mut c = cfg.clone();
            c.train.seed = seed;
            let curve = build_and_train_curve(&c, &data, &device, plan, &mut |_| {}).unwrap();
            losses(&curve)
        };
        let serial: Vec<_> = seeds.iter().map(|&s| run(s)).collect();
        let parallel: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = seeds.iter().map(|&s| scope.spawn(move || run(s))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(serial, parallel);
        assert_ne!(serial[0], serial[1]);
    }

    #[test]
    fn a_diverging_run_is_an_error_naming_the_step() {
        let mut cfg = config(1);
        cfg.train.learning_rate = 1e30;
        let data = data(&cfg);
        let device = crate::default_device();
        let plan = CurvePlan {
            steps: 40,
            every: 40,
        };
        match build_and_train_curve(&cfg, &data, &device, plan, &mut |_| {}) {
            Err(EngineError::Diverged { .. }) => {}
            other => panic!("expected divergence, got {:?}", other.map(|c| losses(&c))),
        }
    }
}
