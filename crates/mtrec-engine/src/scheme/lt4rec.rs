//! LT4Rec / sparse sharing (Sun et al., AAAI 2020; spec §3): each task finds its own lottery
//! ticket in the shared weights by iterative magnitude pruning, then all tasks train jointly,
//! alternating batch by batch, each through its own sub-network.
//!
//! Per task: train on that task alone for `round_epochs`, drop the smallest-magnitude surviving
//! weights over all shared matrices at once, rewind the survivors (to the initial weights, or
//! to a multi-task warm-up), and repeat `rounds` times. Round `r` keeps `keep^(r/rounds)` of
//! the weights, which is pruning `1 - keep^(1/rounds)` of the survivors per round. Biases,
//! embeddings and towers are never pruned ([`SharedWeights`]). Joint training starts from the
//! rewind point; positions no task keeps are zero and stay so.

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use mtrec_arch::Model;
use mtrec_data::{Batch, Dataset, TaskKind, batches};
use serde::{Deserialize, Serialize};

use super::masks::{Mask, SharedWeights, mask_stats};
use super::subnet::SubNetworks;
use super::{Predictor, Trainer};
use crate::resume::Snapshot;
use crate::train::{batches_per_epoch, run_epoch};
use crate::{EngineError, Event, ExperimentConfig, Observer, Stepper, TrainConfig};

/// Where the surviving weights go back to after each pruning round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rewind {
    /// The initial weights (the lottery-ticket procedure).
    #[default]
    Init,
    /// The weights after `warmup_epochs` of ordinary multi-task training.
    WarmUp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lt4recConfig {
    /// Fraction of the shared weights each task keeps in the end (LT4Rec 0.2; sparse
    /// sharing used 0.1).
    pub keep: f64,
    /// Pruning rounds per task (LT4Rec 4; sparse sharing 20).
    pub rounds: usize,
    /// Single-task training epochs before each pruning.
    pub round_epochs: usize,
    pub rewind: Rewind,
    /// Multi-task epochs before the search for tickets, when `rewind = "warm-up"`.
    pub warmup_epochs: usize,
}

impl Default for Lt4recConfig {
    fn default() -> Self {
        Self {
            keep: 0.2,
            rounds: 4,
            round_epochs: 1,
            rewind: Rewind::Init,
            warmup_epochs: 1,
        }
    }
}

impl Lt4recConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.keep > 0.0 && self.keep <= 1.0) {
            return Err(format!("keep must be in (0, 1], got {}", self.keep));
        }
        if self.rounds == 0 || self.round_epochs == 0 {
            return Err("rounds and round_epochs must be >= 1".into());
        }
        if self.rewind == Rewind::WarmUp && self.warmup_epochs == 0 {
            return Err("rewind = \"warm-up\" needs warmup_epochs >= 1".into());
        }
        Ok(())
    }
}

pub struct Lt4rec {
    /// `None` until `prepare` has found the shared weights (it needs a batch).
    nets: Option<SubNetworks>,
    initial: Model,
    config: Lt4recConfig,
    experiment: ExperimentConfig,
    names: Vec<String>,
    kinds: Vec<TaskKind>,
    device: Device,
    step: usize,
}

impl Lt4rec {
    pub fn new(
        model: Model,
        config: &Lt4recConfig,
        cfg: &ExperimentConfig,
        data: &Dataset,
        device: &Device,
    ) -> Result<Self, EngineError> {
        let meta = data.meta();
        Ok(Self {
            nets: None,
            initial: model,
            config: config.clone(),
            experiment: cfg.clone(),
            names: meta.task_names,
            kinds: meta.task_kinds,
            device: device.clone(),
            step: 0,
        })
    }

    /// The shared weights, masks and model (after `prepare`).
    pub fn nets(&self) -> &SubNetworks {
        self.nets.as_ref().expect("prepare() runs before training")
    }

    /// The tasks' masks (after `prepare`).
    pub fn masks(&self) -> &[Mask] {
        &self.nets().masks
    }
}

/// `epochs` epochs of `step` over the training split as one reported phase; returns each
/// epoch's mean training loss.
fn phase_epochs(
    observer: &mut dyn Observer,
    name: &str,
    epochs: usize,
    data: &Dataset,
    t: &TrainConfig,
    seed: u64,
    mut step: impl FnMut(&Batch) -> f64,
) -> Result<Vec<f64>, EngineError> {
    let n_batches = batches_per_epoch(data.train.n_rows, t.batch_size, t.max_batches_per_epoch);
    observer.on_event(&Event::Phase {
        name,
        epochs,
        batches_per_epoch: n_batches,
    });
    (1..=epochs)
        .map(|epoch| {
            observer.on_event(&Event::EpochStart { epoch });
            let (sum, seen) = run_epoch(
                &data.train,
                t.batch_size,
                n_batches,
                seed,
                epoch,
                observer,
                &mut step,
            )?;
            Ok(sum / seen.max(1) as f64)
        })
        .collect()
}

impl Trainer for Lt4rec {
    fn prepare(
        &mut self,
        data: &Dataset,
        observer: &mut dyn Observer,
    ) -> Result<Vec<serde_json::Value>, EngineError> {
        let t = &self.experiment.train;
        let n_batches = batches_per_epoch(data.train.n_rows, t.batch_size, t.max_batches_per_epoch);
        let probe = probe_batch(data, &self.experiment)?;
        let shared = SharedWeights::discover(&self.initial, &probe, &self.kinds, &self.device)?;
        let mut log = Vec::new();

        let rewind = match self.config.rewind {
            Rewind::Init => self.initial.clone(),
            Rewind::WarmUp => {
                let mut plain = Stepper::new(
                    self.initial.clone(),
                    &self.experiment,
                    self.kinds.clone(),
                    &self.names,
                    &self.device,
                )?;
                let losses = phase_epochs(
                    observer,
                    "lt4rec warm-up",
                    self.config.warmup_epochs,
                    data,
                    t,
                    t.seed,
                    |b| plain.step(b),
                )?;
                for (i, loss) in losses.into_iter().enumerate() {
                    log.push(serde_json::json!({
                        "phase": "warm-up", "epoch": i + 1, "train_loss": loss,
                    }));
                }
                plain.model().clone()
            }
        };

        let mut nets = SubNetworks::new(
            rewind.clone(),
            shared,
            &self.experiment,
            self.kinds.clone(),
            &self.device,
        );
        let total = nets.shared.len();
        let mut found = Vec::with_capacity(self.kinds.len());
        for task in 0..self.kinds.len() {
            nets.reset_model(rewind.clone());
            nets.masks[task] = Mask::full(&nets.full);
            for round in 1..=self.config.rounds {
                nets.reset_optimizer(&self.experiment);
                let losses = phase_epochs(
                    observer,
                    &format!("lt4rec {} round {round}", self.names[task]),
                    self.config.round_epochs,
                    data,
                    t,
                    t.seed.wrapping_add(round as u64 * 1000),
                    |b| nets.step_task(b, task, |l| l, None).loss,
                )?;
                let loss = losses.last().copied().unwrap_or(f64::NAN);
                let target = self
                    .config
                    .keep
                    .powf(round as f64 / self.config.rounds as f64);
                let n_keep = (target * total as f64).round() as usize;
                let magnitude: Vec<Tensor<1>> = nets.full.iter().map(|w| w.clone().abs()).collect();
                let mask = Mask::top(&magnitude, Some(&nets.masks[task]), n_keep);
                let density = mask.density();
                nets.masks[task] = mask;
                log.push(serde_json::json!({
                    "phase": "prune", "task": self.names[task], "round": round,
                    "train_loss": loss, "density": density,
                }));
                // Rewind the survivors; the pruned positions are zero for this task from now on.
                nets.reset_model(rewind.clone());
            }
            found.push(nets.masks[task].clone());
        }
        // Joint training from the rewind point; what no task keeps is zero for good.
        nets.reset_model(rewind);
        nets.reset_optimizer(&self.experiment);
        let union = found
            .iter()
            .cloned()
            .reduce(|a, b| a.or(&b))
            .expect("at least one task");
        nets.full = union.apply(&nets.full);
        nets.masks = found;
        self.nets = Some(nets);
        observer.on_event(&Event::Phase {
            name: "joint",
            epochs: t.epochs,
            batches_per_epoch: n_batches,
        });
        Ok(log)
    }

    fn begin_epoch(&mut self, _epoch: usize) {}

    fn step(&mut self, batch: &Batch) -> f64 {
        let task = self.step % self.kinds.len();
        self.step += 1;
        let nets = self.nets.as_mut().expect("prepare() runs before training");
        nets.step_task(batch, task, |l| l, None).loss
    }

    fn end_epoch(&mut self, _data: &Dataset) -> Result<BTreeMap<String, f64>, EngineError> {
        Ok(mask_stats(self.masks(), &self.names))
    }

    fn predictor(&self) -> Predictor {
        self.nets().predictor()
    }

    fn eval_weights(&self) -> Vec<f64> {
        vec![1.0 / self.kinds.len() as f64; self.kinds.len()]
    }

    /// The joint phase's state (states are written from the first epoch on, after the
    /// pruning rounds of `prepare`, whose masks it holds).
    fn save_state(&self, snapshot: &mut Snapshot) -> Result<(), EngineError> {
        self.nets().save_state(snapshot)?;
        snapshot.put("lt4rec.step", &self.step)
    }

    fn load_state(
        &mut self,
        snapshot: &Snapshot,
        file: &Path,
        data: &Dataset,
    ) -> Result<(), EngineError> {
        let probe = probe_batch(data, &self.experiment)?;
        self.nets = Some(SubNetworks::restore(
            self.initial.clone(),
            snapshot,
            file,
            &probe,
            &self.experiment,
            self.kinds.clone(),
            &self.device,
        )?);
        self.step = snapshot.get(file, "lt4rec.step")?;
        Ok(())
    }
}

/// The batch the shared weights are found on: the first of the unshuffled training split.
pub(crate) fn probe_batch(data: &Dataset, cfg: &ExperimentConfig) -> Result<Batch, EngineError> {
    batches(&data.train, cfg.train.batch_size, None)
        .next()
        .ok_or_else(|| EngineError::Invalid("empty training split".into()))
}
