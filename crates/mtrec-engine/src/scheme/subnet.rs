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

use std::path::Path;

use super::Predictor;
use super::masks::{Mask, SharedWeights};
use crate::resume::{Snapshot, record_params, restore_params};
use crate::stepper::{adam, state_damage};
use crate::tensors::{input_of, labels_of, weights_of};
use crate::{EngineError, ExperimentConfig};

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

    /// Adds the model (with its parameter ids), Adam, `W` and the masks to `snapshot`.
    pub fn save_state(&self, snapshot: &mut Snapshot) -> Result<(), EngineError> {
        let optim = self
            .optim
            .into_bytes()
            .map_err(|e| EngineError::Invalid(format!("saving the optimizer state: {e:?}")))?;
        snapshot
            .blobs
            .insert("subnet.model".into(), record_params(self.model()));
        snapshot.blobs.insert("subnet.optim".into(), optim.to_vec());
        snapshot.put("subnet.full", &host_parts(&self.full))?;
        let masks: Vec<Vec<Vec<f32>>> = self.masks.iter().map(|m| host_parts(&m.parts)).collect();
        snapshot.put("subnet.masks", &masks)
    }

    /// Rebuilds what [`SubNetworks::save_state`] wrote around `model` (built as the saved
    /// one was): the shared weights are found again on the restored model, so they are keyed
    /// by the saved parameter ids, from `probe` (the batch `prepare` used).
    pub fn restore(
        model: Model,
        snapshot: &Snapshot,
        file: &Path,
        probe: &Batch,
        cfg: &ExperimentConfig,
        kinds: Vec<TaskKind>,
        device: &Device,
    ) -> Result<Self, EngineError> {
        let weights = snapshot.blob(file, "subnet.model")?;
        let restore = |m: Model| {
            restore_params(m, weights, true).map_err(|e| state_damage(file, "the model", e))
        };
        let model = restore(model)?;
        let shared = SharedWeights::discover(&model, probe, &kinds, device)?;
        // The probe's forward passes may have moved running statistics: put them back.
        let model = restore(model)?;
        let mut nets = SubNetworks::new(model, shared, cfg, kinds, device);
        let bytes =
            burn::tensor::Bytes::from_bytes_vec(snapshot.blob(file, "subnet.optim")?.to_vec());
        nets.optim = adam(cfg)
            .from_bytes(bytes)
            .map_err(|e| state_damage(file, "the optimizer state", format!("{e:?}")))?;
        let full: Vec<Vec<f32>> = snapshot.get(file, "subnet.full")?;
        nets.full = device_parts(file, full, &nets.full)?;
        let masks: Vec<Vec<Vec<f32>>> = snapshot.get(file, "subnet.masks")?;
        if masks.len() != nets.masks.len() {
            return Err(state_damage(file, "the masks", "not one per task"));
        }
        nets.masks = masks
            .into_iter()
            .map(|m| {
                Ok(Mask {
                    parts: device_parts(file, m, &nets.full)?,
                })
            })
            .collect::<Result<_, EngineError>>()?;
        Ok(nets)
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

/// Tensors as host vectors (for a run state).
pub(crate) fn host_parts(parts: &[Tensor<1>]) -> Vec<Vec<f32>> {
    parts
        .iter()
        .map(|p| {
            p.clone()
                .into_data()
                .try_to_vec_as::<f32>()
                .unwrap_or_default()
        })
        .collect()
}

/// Host vectors back as tensors shaped and placed like `like`; refuses other lengths.
pub(crate) fn device_parts(
    file: &Path,
    parts: Vec<Vec<f32>>,
    like: &[Tensor<1>],
) -> Result<Vec<Tensor<1>>, EngineError> {
    if parts.len() != like.len() || parts.iter().zip(like).any(|(p, l)| p.len() != l.dims()[0]) {
        return Err(state_damage(
            file,
            "the shared weights",
            "not of this model's shared weights' sizes",
        ));
    }
    Ok(parts
        .into_iter()
        .zip(like)
        .map(|(p, l)| Tensor::<1>::from_floats(p.as_slice(), &l.device()))
        .collect())
}
