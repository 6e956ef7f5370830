//! One optimisation step at a time: forward, per-task losses, weighting, backward, Adam.
//! The plain training scheme, and what the benchmarks drive, so what is measured is what trains.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::module::{ModuleVisitor, Param, ParamId};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Gradients;
use mtrec_arch::{Model, MultiTaskModel};
use mtrec_data::{Batch, Dataset, TaskKind};
use mtrec_weighting::{StepContext, Weighting};

use crate::lazy_adam::LazyTable;
use crate::resume::{Snapshot, record_params, restore_params};
use crate::scheme::{Predictor, Trainer};
use crate::tensors::{input_of, labels_of, weights_of};
use crate::{EngineError, ExperimentConfig};

/// The Adam optimizer of `[train]` (learning rate aside, which each step passes).
pub(crate) fn adam(cfg: &ExperimentConfig) -> ModuleOptimizer {
    let mut adam = AdamConfig::new();
    if cfg.train.weight_decay > 0.0 {
        adam = adam.with_weight_decay(Some(WeightDecayConfig::new(cfg.train.weight_decay as f32)));
    }
    adam.init()
}

pub struct Stepper {
    model: Option<Model>,
    optim: ModuleOptimizer,
    weighting: Box<dyn Weighting>,
    kinds: Vec<TaskKind>,
    ctx: StepContext,
    /// Whether each parameter is shared, decided at its first per-task step: sharing is a
    /// property of the architecture, so it is not re-counted (one reduction and one device
    /// read per parameter) on every step.
    shared: HashMap<ParamId, bool>,
    /// The embedding table when `train.lazy_embeddings` is on (the model's own copy is then
    /// stale until [`Trainer::predictor`] writes this one into the snapshot).
    lazy: Option<LazyTable>,
    device: Device,
}

impl Stepper {
    /// `model` must live on an autodiff device; `device` is that device.
    pub fn new(
        model: Model,
        cfg: &ExperimentConfig,
        kinds: Vec<TaskKind>,
        task_names: &[String],
        device: &Device,
    ) -> Result<Self, EngineError> {
        let weighting = mtrec_weighting::build(&cfg.weighting, task_names, device)?;
        let lazy = if cfg.train.lazy_embeddings {
            if weighting.per_task_gradients() {
                return Err(EngineError::Invalid(format!(
                    "train.lazy_embeddings cannot be combined with [weighting] kind = \"{}\", \
                     which combines each task's gradients parameter by parameter",
                    cfg.weighting.kind()
                )));
            }
            Some(LazyTable::from_model(&model, cfg.train.weight_decay)?)
        } else {
            None
        };
        Ok(Self {
            model: Some(model),
            optim: adam(cfg),
            weighting,
            kinds,
            ctx: StepContext {
                step: 0,
                epoch: 1,
                learning_rate: cfg.train.learning_rate,
            },
            shared: HashMap::new(),
            lazy,
            device: device.clone(),
        })
    }

    /// Runs one step on `batch`; returns the training objective before the update.
    pub fn step(&mut self, batch: &Batch) -> f64 {
        let model = self.model.take().expect("model present between steps");
        let mut input = input_of(batch, &self.device);
        let labels = labels_of(batch, &self.device);
        let weights = weights_of(batch, &self.device);
        let gathered = self.lazy.as_ref().map(|table| {
            let g = table.gather(&batch.sparse, batch.len, &self.device);
            input.slots = Some(g.slots.clone());
            g
        });
        // Lazy embeddings exclude per-task gradients (checked in `new`), so they take the
        // plain path and add one step of the host table.
        let (loss, grads) = if self.weighting.per_task_gradients() {
            let every_task = every_task_weighed(batch);
            self.per_task_grads(&model, &input, labels, weights, every_task)
        } else {
            let out = model.forward(&input);
            let losses = crate::weighted_task_losses(out.outputs, labels, weights, &self.kinds);
            let (loss, raw) =
                weighted_backward(self.weighting.as_mut(), &self.ctx, losses, out.aux_loss);
            if let (Some(gathered), Some(table)) = (&gathered, self.lazy.as_mut())
                && let Some(grad) = gathered.slots.grad(&raw)
            {
                let grad = grad
                    .into_data()
                    .try_to_vec_as::<f32>()
                    .expect("f32 gradient");
                table.step(gathered, &grad, self.ctx.learning_rate);
            }
            (loss, GradientsParams::from_grads(raw, &model))
        };
        self.model = Some(self.optim.step(self.ctx.learning_rate, model, grads));
        self.ctx.step += 1;
        loss
    }

    /// Each task's loss differentiated on its own (burn keeps no graph across backward
    /// passes, so one forward per task), then combined parameter by parameter: shared ones
    /// (reached by several tasks) through the weighting, the others as they are. The extra
    /// forwards also move batch-norm running statistics once per task, and draw fresh dropout
    /// masks per task: a step sees T slightly different networks, not one.
    ///
    /// Which parameters are shared is read off the gradients, so it is only remembered from
    /// a step where `every_task` has weight in the batch: a conditional task without one
    /// qualifying row has zero gradients everywhere and would make shared layers look private.
    fn per_task_grads(
        &mut self,
        model: &Model,
        input: &mtrec_arch::ModelInput,
        labels: Tensor<2>,
        weights: Option<Tensor<2>>,
        every_task: bool,
    ) -> (f64, GradientsParams) {
        let t = self.kinds.len();
        let mut total = 0.0;
        let mut per_task = Vec::with_capacity(t);
        for k in 0..t {
            let out = model.forward(input);
            let losses = crate::weighted_task_losses(
                out.outputs,
                labels.clone(),
                weights.clone(),
                &self.kinds,
            );
            let mut loss = losses.narrow(0, k, 1);
            // A model's own penalty is shared out evenly, so the tasks' sum keeps it once.
            if let Some(aux) = out.aux_loss {
                loss = loss + aux / t as f64;
            }
            total += loss.clone().into_scalar::<f32>() as f64;
            per_task.push(loss.backward());
        }
        let mut combine = CombineGrads {
            per_task: &per_task,
            weighting: self.weighting.as_mut(),
            ctx: &self.ctx,
            shared: &mut self.shared,
            remember: every_task,
            out: GradientsParams::new(),
        };
        model.visit(&mut combine);
        (total, combine.out)
    }

    pub fn model(&self) -> &Model {
        self.model.as_ref().expect("model present between steps")
    }

    pub fn weights(&self) -> Vec<f64> {
        self.weighting.weights()
    }
}

/// Whether every task has some weight in `batch` (always, without example weights).
fn every_task_weighed(batch: &Batch) -> bool {
    let Some(w) = &batch.weights else {
        return true;
    };
    let t = batch.n_tasks;
    (0..t).all(|k| w.iter().skip(k).step_by(t.max(1)).any(|&x| x > 0.0))
}

/// The weighted objective of `losses` (plus a model's own penalty `aux`), differentiated; a
/// learnable weighting takes its own gradients out and steps. Returns the objective's value
/// and the remaining gradients.
pub(crate) fn weighted_backward(
    weighting: &mut dyn Weighting,
    ctx: &StepContext,
    losses: Tensor<1>,
    aux: Option<Tensor<1>>,
) -> (f64, Gradients) {
    let mut total = weighting.combine(losses, ctx);
    if let Some(aux) = aux {
        total = total + aux;
    }
    let loss = total.clone().into_scalar::<f32>() as f64;
    let mut raw = total.backward();
    weighting.update(&mut raw, ctx);
    (loss, raw)
}

/// Each task's gradient of `value` (a parameter), flattened; `None` where a task's backward
/// pass did not reach it.
pub(crate) fn task_grads<const D: usize>(
    value: &Tensor<D>,
    per_task: &[Gradients],
) -> Vec<Option<Tensor<1>>> {
    let n = value.shape().num_elements();
    per_task
        .iter()
        .map(|g| value.grad(g).map(|g| g.reshape([n])))
        .collect()
}

/// The largest number of tasks whose gradients are non-zero at one same element: 2 or more
/// means the parameter is shared. Counting per element rather than per tensor matters because
/// banks hold every task's tower (or gate) in one tensor, each task reaching its own slice.
pub(crate) fn tasks_sharing(grads: &[Option<Tensor<1>>]) -> usize {
    let present: Vec<&Tensor<1>> = grads.iter().flatten().collect();
    if present.len() < 2 {
        return present.len();
    }
    present
        .iter()
        .map(|g| (*g).clone().not_equal_elem(0.0).float())
        .reduce(|a, b| a + b)
        .expect("two gradients")
        .max()
        .into_scalar::<f32>()
        .round() as usize
}

/// Per parameter: the tasks' gradients, combined by the weighting where several tasks reach it.
struct CombineGrads<'a> {
    per_task: &'a [Gradients],
    weighting: &'a mut dyn Weighting,
    ctx: &'a StepContext,
    shared: &'a mut HashMap<ParamId, bool>,
    /// Whether sharing found on this step may be remembered (see `per_task_grads`).
    remember: bool,
    out: GradientsParams,
}

impl ModuleVisitor for CombineGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        let shape = value.shape();
        let grads = task_grads(&value, self.per_task);
        if grads.iter().all(Option::is_none) {
            return;
        }
        let shared = match self.shared.get(&param.id) {
            Some(&known) => known,
            None => {
                let found = tasks_sharing(&grads) >= 2;
                if self.remember {
                    self.shared.insert(param.id, found);
                }
                found
            }
        };
        let combined = if shared {
            self.weighting.combine_shared(param.id, grads, self.ctx)
        } else {
            grads
                .into_iter()
                .flatten()
                .reduce(|a, b| a + b)
                .expect("a gradient")
        };
        self.out.register::<D>(param.id, combined.reshape(shape));
    }
}

impl Trainer for Stepper {
    fn begin_epoch(&mut self, epoch: usize) {
        self.ctx.epoch = epoch;
    }

    fn step(&mut self, batch: &Batch) -> f64 {
        Stepper::step(self, batch)
    }

    fn end_epoch(&mut self, _data: &Dataset) -> Result<BTreeMap<String, f64>, EngineError> {
        Ok(self.weighting.stats())
    }

    fn predictor(&self) -> Predictor {
        let mut model = self.model().valid();
        if let Some(table) = &self.lazy {
            let device = model
                .embedding()
                .and_then(|e| e.table_weights())
                .map(|t| t.device())
                .expect("a lazy table comes from a model with one");
            table.write_into(&mut model, &device);
        }
        Predictor::Whole(model)
    }

    fn eval_weights(&self) -> Vec<f64> {
        self.weighting.weights()
    }

    fn save_state(&self, snapshot: &mut Snapshot) -> Result<(), EngineError> {
        save_core(snapshot, self.model(), &self.optim, self.weighting.as_ref())?;
        if let Some(table) = &self.lazy {
            snapshot.blobs.insert(LAZY_BLOB.into(), table.to_bytes());
        }
        let mut shared: Vec<(u64, bool)> = self.shared.iter().map(|(k, v)| (k.val(), *v)).collect();
        shared.sort_unstable();
        snapshot.put("stepper.step", &self.ctx.step)?;
        snapshot.put("stepper.shared", &shared)
    }

    fn load_state(
        &mut self,
        snapshot: &Snapshot,
        file: &Path,
        _data: &Dataset,
    ) -> Result<(), EngineError> {
        let model = self.model.take().expect("model present between steps");
        self.model = Some(load_core(
            snapshot,
            file,
            model,
            &mut self.optim,
            self.weighting.as_mut(),
        )?);
        if let Some(table) = self.lazy.as_mut() {
            table
                .load_bytes(snapshot.blob(file, LAZY_BLOB)?)
                .map_err(|e| state_damage(file, "the embedding table", e))?;
        }
        self.ctx.step = snapshot.get(file, "stepper.step")?;
        let shared: Vec<(u64, bool)> = snapshot.get(file, "stepper.shared")?;
        self.shared = shared
            .into_iter()
            .map(|(k, v)| (ParamId::from(k), v))
            .collect();
        Ok(())
    }
}

const MODEL_BLOB: &str = "stepper.model";
const OPTIM_BLOB: &str = "stepper.optim";
const WEIGHTING_BLOB: &str = "stepper.weighting";
const LAZY_BLOB: &str = "stepper.lazy";

/// A damaged part of the run state `file`, in one line.
pub(crate) fn state_damage(file: &Path, what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::State {
        path: file.to_path_buf(),
        message: format!("{what}: {e}"),
    }
}

/// The state every one-model trainer has: the model's parameters with their ids, its Adam
/// and the weighting's own state.
pub(crate) fn save_core(
    snapshot: &mut Snapshot,
    model: &Model,
    optim: &ModuleOptimizer,
    weighting: &dyn Weighting,
) -> Result<(), EngineError> {
    let optim = optim
        .into_bytes()
        .map_err(|e| EngineError::Invalid(format!("saving the optimizer state: {e:?}")))?;
    snapshot
        .blobs
        .insert(MODEL_BLOB.into(), record_params(model));
    snapshot.blobs.insert(OPTIM_BLOB.into(), optim.to_vec());
    snapshot
        .blobs
        .insert(WEIGHTING_BLOB.into(), weighting.save_state()?);
    Ok(())
}

/// Takes back [`save_core`]: returns `model` with the saved parameters and ids.
pub(crate) fn load_core(
    snapshot: &Snapshot,
    file: &Path,
    model: Model,
    optim: &mut ModuleOptimizer,
    weighting: &mut dyn Weighting,
) -> Result<Model, EngineError> {
    let model = restore_params(model, snapshot.blob(file, MODEL_BLOB)?, true)
        .map_err(|e| state_damage(file, "the model's weights", e))?;
    let old = std::mem::replace(optim, AdamConfig::new().init());
    let bytes = burn::tensor::Bytes::from_bytes_vec(snapshot.blob(file, OPTIM_BLOB)?.to_vec());
    *optim = old
        .from_bytes(bytes)
        .map_err(|e| state_damage(file, "the optimizer state", format!("{e:?}")))?;
    weighting
        .load_state(snapshot.blob(file, WEIGHTING_BLOB)?)
        .map_err(|e| state_damage(file, "the weighting", e))?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(v: &[f32]) -> Option<Tensor<1>> {
        Some(Tensor::<1>::from_floats(v, &Device::default()))
    }

    /// MetaBalance remembers which parameters are shared from the first step it sees; a
    /// conditional task without a qualifying row in that batch has no gradient anywhere, so
    /// such a step must not decide it.
    #[test]
    fn sharing_is_only_decided_on_a_batch_that_weighs_every_task() {
        let batch = |weights: Option<Vec<f32>>| Batch {
            len: 2,
            sparse: Vec::new(),
            dense: vec![0.0, 0.0],
            labels: vec![0.0; 4],
            weights,
            n_sparse: 0,
            n_dense: 1,
            n_tasks: 2,
        };
        assert!(every_task_weighed(&batch(None)));
        assert!(every_task_weighed(&batch(Some(vec![1.0, 0.0, 0.0, 0.5]))));
        assert!(!every_task_weighed(&batch(Some(vec![1.0, 0.0, 2.0, 0.0]))));
    }

    #[test]
    fn sharing_is_counted_per_element() {
        // A tower bank: each task reaches its own slice only.
        assert_eq!(
            tasks_sharing(&[g(&[1.0, 2.0, 0.0, 0.0]), g(&[0.0, 0.0, 3.0, 4.0])]),
            1
        );
        // A shared layer: both tasks reach element 1.
        assert_eq!(
            tasks_sharing(&[g(&[1.0, 2.0, 0.0]), g(&[0.0, -1.0, 3.0])]),
            2
        );
        assert_eq!(tasks_sharing(&[g(&[1.0]), None, g(&[2.0])]), 2);
        assert_eq!(tasks_sharing(&[None, g(&[1.0])]), 1);
        assert_eq!(tasks_sharing(&[None, None]), 0);
    }
}
