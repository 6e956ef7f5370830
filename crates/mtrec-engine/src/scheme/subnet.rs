//! Training with one masked sub-network per task over shared weights (LT4Rec, CSM).
//!
//! One full copy `W` of the shared weights lives here. A step of task `t` writes `W * m_t`
//! into the model, differentiates task `t`'s loss, scales the shared weights' gradient by the
//! step's update mask (by default `m_t`), takes one Adam step and copies the result back into
//! `W` where `m_t` is 1 only. Tasks alternate batch by batch (spec §3, sparse sharing).

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Gradients;
use mtrec_arch::{Model, MultiTaskModel};
use mtrec_data::{Batch, TaskKind};

use super::Predictor;
use super::masks::{Mask, SharedWeights};
use crate::ExperimentConfig;
use crate::stepper::adam;
use crate::tensors::{input_of, labels_of, weights_of};

pub struct SubNetworks {
    model: Option<Model>,
    optim: ModuleOptimizer,
    pub shared: SharedWeights,
    /// Every position's current value (the union of the tasks' sub-networks).
    pub full: Vec<Tensor<1>>,
    pub masks: Vec<Mask>,
    kinds: Vec<TaskKind>,
    learning_rate: f64,
    device: Device,
}

/// What one task step saw.
pub struct TaskStep {
    /// The objective optimised (task loss plus any term the caller added).
    pub loss: f64,
    /// The shared weights' gradient of the objective, before masking (flattened).
    pub grads: Vec<Option<Tensor<1>>>,
}

impl SubNetworks {
    /// Starts from `model`'s current weights with every task keeping every shared weight.
    pub fn new(
        model: Model,
        shared: SharedWeights,
        cfg: &ExperimentConfig,
        kinds: Vec<TaskKind>,
        device: &Device,
    ) -> Self {
        let full = shared.read(&model);
        let masks = vec![Mask::full(&full); kinds.len()];
        Self {
            model: Some(model),
            optim: adam(cfg),
            shared,
            full,
            masks,
            kinds,
            learning_rate: cfg.train.learning_rate,
            device: device.clone(),
        }
    }

    /// Forgets Adam's moments (a new pruning round starts as a new training).
    pub fn reset_optimizer(&mut self, cfg: &ExperimentConfig) {
        self.optim = adam(cfg);
    }

    pub fn model(&self) -> &Model {
        self.model.as_ref().expect("model present between steps")
    }

    /// Replaces the whole model (a rewind) and re-reads `W` from it.
    pub fn reset_model(&mut self, model: Model) {
        self.full = self.shared.read(&model);
        self.model = Some(model);
    }

    /// One step of task `t` on `batch`. `objective` turns the task's loss `[1]` into what is
    /// differentiated (CSM adds its contrastive term); `update` scales the shared weights'
    /// gradient (default: `m_t`, so only the task's own positions move).
    pub fn step_task(
        &mut self,
        batch: &Batch,
        t: usize,
        objective: impl FnOnce(Tensor<1>) -> Tensor<1>,
        update: Option<&Mask>,
    ) -> TaskStep {
        let model = self.model.take().expect("model present between steps");
        let masked = self.masks[t].apply(&self.full);
        let model = self.shared.write(model, &masked);
        let out = model.forward(&input_of(batch, &self.device));
        let losses = crate::weighted_task_losses(
            out.outputs.narrow(1, 0, self.kinds.len()),
            labels_of(batch, &self.device),
            weights_of(batch, &self.device),
            &self.kinds,
        );
        let mut loss = losses.narrow(0, t, 1);
        if let Some(aux) = out.aux_loss {
            loss = loss + aux;
        }
        let total = objective(loss);
        let value = total.clone().into_scalar::<f32>() as f64;
        let raw: Gradients = total.backward();
        let grads = self.shared.grads(&model, &raw);
        let mut params = GradientsParams::from_grads(raw, &model);
        self.shared
            .mask_grads(&model, &mut params, update.unwrap_or(&self.masks[t]));
        let model = self.optim.step(self.learning_rate, model, params);
        let stepped = self.shared.read(&model);
        self.full = self.masks[t].merge(&self.full, &stepped);
        self.model = Some(model);
        TaskStep { loss: value, grads }
    }

    /// Task `t`'s loss with the shared weights `W * mask` (no gradient, no update).
    pub fn loss_with(&self, batch: &Batch, t: usize, mask: &Mask) -> f64 {
        let model = self
            .shared
            .write(self.model().clone(), &mask.apply(&self.full));
        let inner = self.device.clone().inner();
        let out = model.valid().forward(&input_of(batch, &inner));
        crate::weighted_task_losses(
            out.outputs.narrow(1, 0, self.kinds.len()),
            labels_of(batch, &inner),
            weights_of(batch, &inner),
            &self.kinds,
        )
        .narrow(0, t, 1)
        .into_scalar::<f32>() as f64
    }

    /// One model per task with its sub-network's weights, in validation mode.
    pub fn predictor(&self) -> Predictor {
        Predictor::PerTask(
            self.masks
                .iter()
                .map(|m| {
                    self.shared
                        .write(self.model().clone(), &m.apply(&self.full))
                        .valid()
                })
                .collect(),
        )
    }
}
