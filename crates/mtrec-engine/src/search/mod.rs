//! PD-DARTS (spec §4): the AutoMTL search as a training schedule over the DESAN super-network.
//!
//! Phase 1 trains weights with every gate on; phase 2 steps a weight optimizer and an
//! architecture optimizer on every training batch (single-level, as the authors' code) or, with
//! `arch_holdout > 0`, the weights on most of the training split and the architecture only on
//! the held-out rest (first-order bilevel; the validation split is never used), and, after each
//! epoch, fixes the least uncertain blocks; the last phase-2 epoch fixes everything. The discrete network then finetunes through [`fit`] with its weights
//! inherited, so early stopping, test evaluation and checkpoints are the zoo's.
//!
//! The `decide` preset ([`config`]) sets the architecture learning rate from the joint phase's
//! length and follows every architecture step with a decoupled regulariser step; every fixed
//! choice's decidedness is logged ([`decidedness`]).

use std::path::Path;
use std::time::Instant;

use burn::module::ParamId;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, SgdConfig};
use burn::prelude::*;
use mtrec_arch::automtl::{ArchRegularisation, AutoMtl, Choices, Decision, GateMode, Genotype};
use mtrec_arch::{ArchConfig, Model, MultiTaskModel};
use mtrec_data::{Batch, Dataset, FeatureMeta, TaskKind, batches, split_indices};
use serde::{Deserialize, Serialize};

mod config;
mod decidedness;

pub use config::{GateSchedule, SearchConfig, SearchPreset};
pub use decidedness::{
    Decidedness, MAX_MEDIAN_BLOCK_ENTROPY, MIN_MEDIAN_GATE_MARGIN, decidedness, median,
};

use crate::tensors::{input_of, labels_of, weights_of};

/// Keeps the held-out permutation independent of the data split's, which uses the same seed.
const HOLDOUT_SEED_SALT: u64 = 0x5eed_a4c4;
use crate::resume::{Snapshot, StateFile, record_params, restore_params, seed_step};
use crate::train::{batches_per_epoch, run_epoch};
use crate::{
    EngineError, EvalReport, Event, ExperimentConfig, Observer, TrainOutcome, evaluate,
    fit_resumable, weighted_task_losses,
};

/// The state of one open block at the end of an epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockSnapshot {
    pub block: String,
    /// `softmax(beta)` in candidate order.
    pub probabilities: Vec<f64>,
    pub entropy: f64,
}

/// The keep-probabilities of one gate vector at the end of an epoch (fixed elements as 0/1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateSnapshot {
    pub gate: String,
    pub elements: Vec<String>,
    pub probabilities: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchEpoch {
    pub epoch: usize,
    /// `warm-up` or `joint`.
    pub phase: String,
    pub train_loss: f64,
    /// Reported for the log only; no architecture decision reads it.
    pub valid: EvalReport,
    pub seconds: f64,
    pub blocks: Vec<BlockSnapshot>,
    pub gates: Vec<GateSnapshot>,
    /// What was fixed after this epoch, in order.
    pub decisions: Vec<Decision>,
    /// How decided those choices were when fixed.
    pub decidedness: Decidedness,
    /// Architecture learning rate and regulariser weights at the end of the epoch (joint
    /// phase; zeros in warm-up).
    pub arch_learning_rate: f64,
    pub gate_cost: f64,
    pub sharpen: f64,
    pub op_cost: f64,
}

/// The search log: architecture parameters over time and every discretisation step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SearchLog {
    pub candidates: Vec<String>,
    /// Architecture steps of the joint phase (its epochs times batches per epoch).
    pub joint_steps: usize,
    pub epochs: Vec<SearchEpoch>,
    /// Over every decision of the search.
    pub decidedness: Decidedness,
}

#[derive(Debug)]
pub struct SearchOutcome {
    pub genotype: Genotype,
    pub log: SearchLog,
    /// The finetuned discrete network with its validation and test figures.
    pub finetune: TrainOutcome,
    /// Wall seconds of phases 1 and 2 (training and the per-epoch validation).
    pub search_seconds: f64,
    /// Wall seconds of the finetune (training, validation, test).
    pub finetune_seconds: f64,
    /// The config that retrains the found architecture (`[model] kind = "searched"`).
    pub retrain_config: ExperimentConfig,
}

fn snapshot(net: &AutoMtl) -> (Vec<BlockSnapshot>, Vec<GateSnapshot>) {
    let blocks = net
        .open_blocks()
        .into_iter()
        .map(|b| BlockSnapshot {
            block: b.at.to_string(),
            probabilities: b.probabilities,
            entropy: b.entropy,
        })
        .collect();
    let gates = net
        .gate_positions()
        .into_iter()
        .filter(|at| !net.gate(*at).is_empty())
        .map(|at| {
            let gate = net.gate(at);
            GateSnapshot {
                gate: format!("{at:?}"),
                elements: (0..gate.len())
                    .map(|i| net.gate_element_name(at, i))
                    .collect(),
                probabilities: gate.probabilities(),
            }
        })
        .collect();
    (blocks, gates)
}

fn adam(weight_decay: f64) -> AdamConfig {
    let adam = AdamConfig::new();
    if weight_decay > 0.0 {
        adam.with_weight_decay(Some(WeightDecayConfig::new(weight_decay as f32)))
    } else {
        adam
    }
}

/// One PD-DARTS training step at a time over the super-network: forward, per-task losses,
/// weighting, backward, then the weight optimizer on the weights and, in the joint phase, the
/// architecture optimizer on the architecture parameters (single-level, same batch). The
/// search loop and the benchmarks both drive this, so what is measured is what searches.
pub struct SearchStepper {
    net: Option<AutoMtl>,
    weight_optim: burn::optim::ModuleOptimizer,
    arch_optim: burn::optim::ModuleOptimizer,
    /// Plain gradient descent for the architecture regulariser.
    reg_optim: burn::optim::ModuleOptimizer,
    weighting: Box<dyn mtrec_weighting::Weighting>,
    kinds: Vec<TaskKind>,
    cfg: SearchConfig,
    arch_ids: Vec<ParamId>,
    joint: bool,
    /// Architecture steps taken and planned in the joint phase (the regularisers' ramp).
    joint_done: usize,
    joint_total: usize,
    arch_learning_rate: f64,
    ctx: mtrec_weighting::StepContext,
    device: Device,
}

impl SearchStepper {
    /// `net` must live on an autodiff device; `device` is that device. Starts in the warm-up
    /// phase (every gate on, no architecture step); see [`SearchStepper::set_joint`].
    pub fn new(
        net: AutoMtl,
        cfg: &ExperimentConfig,
        meta: &FeatureMeta,
        device: &Device,
    ) -> Result<Self, EngineError> {
        let s = &cfg.search;
        let weighting = mtrec_weighting::build(&cfg.weighting, &meta.task_names, device)?;
        if weighting.per_task_gradients() {
            return Err(EngineError::Invalid(format!(
                "a search cannot use [weighting] kind = \"{}\" (per-task gradients); use fixed or uncertainty weighting",
                cfg.weighting.kind()
            )));
        }
        let mut stepper = Self {
            net: Some(net),
            weight_optim: adam(s.weight_decay).init(),
            arch_optim: adam(s.arch_weight_decay).init(),
            reg_optim: SgdConfig::new().init(),
            weighting,
            kinds: meta.task_kinds.clone(),
            cfg: s.clone(),
            arch_ids: Vec::new(),
            joint: false,
            joint_done: 0,
            joint_total: 0,
            arch_learning_rate: s.arch_learning_rate,
            ctx: mtrec_weighting::StepContext {
                step: 0,
                epoch: 1,
                learning_rate: s.learning_rate,
            },
            device: device.clone(),
        };
        stepper.set_joint(false);
        Ok(stepper)
    }

    /// Enters phase 1 (`false`: gates all on, weights only) or phase 2 (`true`: gates
    /// sampled or straight-through per `sample_gates`, architecture optimizer stepping).
    /// Also re-reads the free architecture parameters, which discretisation removes: call it
    /// after every change of the network's choices.
    pub fn set_joint(&mut self, joint: bool) {
        self.joint = joint;
        let sample = self.cfg.sample_gates;
        let net = self.net_mut();
        net.set_gate_mode(match (joint, sample) {
            (false, _) => GateMode::AllOn,
            (true, true) => GateMode::Sample,
            (true, false) => GateMode::StraightThrough,
        });
        self.arch_ids = self.net().arch_param_ids();
    }

    /// Plans a joint phase of `total` architecture steps: sets the architecture learning rate
    /// by the reach rule and the length of the regularisers' ramp.
    pub fn plan_joint_steps(&mut self, total: usize) {
        self.joint_total = total;
        self.arch_learning_rate = self.cfg.effective_arch_learning_rate(total);
    }

    /// The architecture learning rate in use.
    pub fn arch_learning_rate(&self) -> f64 {
        self.arch_learning_rate
    }

    /// The regulariser weights at the current joint-phase step.
    pub fn regularisation(&self) -> ArchRegularisation {
        self.cfg.regularisation(self.joint_done, self.joint_total)
    }

    /// Runs one step on `batch`; returns the training objective before the update (without
    /// the architecture regulariser, so warm-up and joint losses compare). Steps the weights,
    /// and in the joint phase the architecture too (single-level).
    pub fn step(&mut self, batch: &Batch) -> f64 {
        self.step_parts(batch, true, self.joint)
    }

    /// A step of the weights alone (bilevel search: the training part of the split).
    pub fn weight_step(&mut self, batch: &Batch) -> f64 {
        self.step_parts(batch, true, false)
    }

    /// A step of the architecture alone (bilevel search: the held-out part); joint phase only.
    pub fn arch_step(&mut self, batch: &Batch) -> f64 {
        self.step_parts(batch, false, self.joint)
    }

    fn step_parts(&mut self, batch: &Batch, update_weights: bool, update_arch: bool) -> f64 {
        let mut net = self.net.take().expect("network present between steps");
        let out = net.forward(&input_of(batch, &self.device));
        let losses = weighted_task_losses(
            out.outputs,
            labels_of(batch, &self.device),
            weights_of(batch, &self.device),
            &self.kinds,
        );
        let objective = self.weighting.combine(losses, &self.ctx);
        let loss = objective.clone().into_scalar::<f32>() as f64;
        let mut raw = objective.backward();
        if update_weights {
            self.weighting.update(&mut raw, &self.ctx);
            self.ctx.step += 1;
        }
        let mut grads = GradientsParams::from_grads(raw, &net);
        let mut arch_grads = GradientsParams::new();
        for id in &self.arch_ids {
            if let Some(g) = grads.remove::<1>(*id) {
                if update_arch && tracing::enabled!(tracing::Level::DEBUG) {
                    let v = g
                        .clone()
                        .into_data()
                        .try_to_vec::<f32>()
                        .unwrap_or_default();
                    let mean_abs = v.iter().map(|x| x.abs()).sum::<f32>() / v.len().max(1) as f32;
                    tracing::debug!(
                        step = self.ctx.step,
                        n = v.len(),
                        mean_abs,
                        "architecture gradient"
                    );
                }
                arch_grads.register(*id, g);
            }
        }
        if update_weights {
            net = self.weight_optim.step(self.cfg.learning_rate, net, grads);
        }
        if update_arch {
            net = self
                .arch_optim
                .step(self.arch_learning_rate, net, arch_grads);
            // The regulariser's own plain gradient step, decoupled from Adam (see
            // mtrec_arch::automtl::regularise for why).
            if let Some(reg) = net.arch_regulariser(&self.regularisation()) {
                let grads = GradientsParams::from_grads(reg.backward(), &net);
                net = self.reg_optim.step(self.arch_learning_rate, net, grads);
            }
            self.joint_done += 1;
        }
        self.net = Some(net);
        loss
    }

    pub fn net(&self) -> &AutoMtl {
        self.net.as_ref().expect("network present between steps")
    }

    pub fn net_mut(&mut self) -> &mut AutoMtl {
        self.net.as_mut().expect("network present between steps")
    }

    pub fn into_net(self) -> AutoMtl {
        self.net.expect("network present between steps")
    }

    pub fn weights(&self) -> Vec<f64> {
        self.weighting.weights()
    }

    /// Adds the network's parameters (with their ids), the three optimizers, the weighting
    /// and the step counters to `snapshot`. The fixed choices are the caller's
    /// ([`AutoMtl::choices`]): they decide which parameters exist.
    fn save_state(&self, snapshot: &mut Snapshot) -> Result<(), EngineError> {
        snapshot
            .blobs
            .insert("search.net".into(), record_params(self.net()));
        for (name, optim) in [
            ("search.weight_optim", &self.weight_optim),
            ("search.arch_optim", &self.arch_optim),
            ("search.reg_optim", &self.reg_optim),
        ] {
            let bytes = optim
                .into_bytes()
                .map_err(|e| EngineError::Invalid(format!("saving {name}: {e:?}")))?;
            snapshot.blobs.insert(name.into(), bytes.to_vec());
        }
        snapshot
            .blobs
            .insert("search.weighting".into(), self.weighting.save_state()?);
        snapshot.put("search.steps", &(self.ctx.step, self.joint_done))
    }

    /// Takes back [`SearchStepper::save_state`] on a stepper whose network has the saved
    /// choices fixed.
    fn load_state(&mut self, snapshot: &Snapshot, file: &Path) -> Result<(), EngineError> {
        let bad = |what: &str, e: String| crate::stepper::state_damage(file, what, e);
        let net = self.net.take().expect("network present between steps");
        self.net = Some(
            restore_params(net, snapshot.blob(file, "search.net")?, true)
                .map_err(|e| bad("the super-network", e))?,
        );
        for (name, optim) in [
            ("search.weight_optim", &mut self.weight_optim),
            ("search.arch_optim", &mut self.arch_optim),
            ("search.reg_optim", &mut self.reg_optim),
        ] {
            let old = std::mem::replace(optim, SgdConfig::new().init());
            let bytes = burn::tensor::Bytes::from_bytes_vec(snapshot.blob(file, name)?.to_vec());
            *optim = old
                .from_bytes(bytes)
                .map_err(|e| bad(name, format!("{e:?}")))?;
        }
        self.weighting
            .load_state(snapshot.blob(file, "search.weighting")?)
            .map_err(|e| bad("the weighting", e.to_string()))?;
        (self.ctx.step, self.joint_done) = snapshot.get(file, "search.steps")?;
        Ok(())
    }
}

/// The search loop's state after an epoch: what a resumed search goes on from.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SearchLoop {
    /// The next epoch to run (1-based); past the last one, the search is done.
    next_epoch: usize,
    choices: Choices,
    log: SearchLog,
    search_seconds: f64,
}

const SEARCH_LOOP_KEY: &str = "search.loop";

/// The part of a finished search's state its finetune carries: the loop (choices and log)
/// and the network's weights.
fn carried(snapshot: &Snapshot) -> Snapshot {
    Snapshot {
        values: snapshot
            .values
            .iter()
            .filter(|(k, _)| k.starts_with("search."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        blobs: snapshot
            .blobs
            .iter()
            .filter(|(k, _)| k.starts_with("search."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// Searches the `[model] kind = "automtl"` space on `data`, then finetunes the result.
pub fn search(
    cfg: &ExperimentConfig,
    data: &Dataset,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<SearchOutcome, EngineError> {
    search_resumable(cfg, data, device, observer, None)
}

/// [`search`] keeping its state in `state_file` after every epoch (and through the finetune,
/// see [`fit_resumable`]) and resuming from it: the phase, the choices fixed, the weights,
/// architecture parameters and optimizers.
pub fn search_resumable(
    cfg: &ExperimentConfig,
    data: &Dataset,
    device: &Device,
    observer: &mut dyn Observer,
    state_file: Option<&StateFile>,
) -> Result<SearchOutcome, EngineError> {
    let ArchConfig::Automtl(space) = &cfg.model else {
        return Err(EngineError::Invalid(format!(
            "a search needs `[model] kind = \"automtl\"` (the search space), not `{}`",
            cfg.model.kind()
        )));
    };
    if !cfg.scheme.is_none() {
        return Err(EngineError::Invalid(format!(
            "a search trains with the plain scheme; remove `[scheme] kind = \"{}\"`",
            cfg.scheme.kind()
        )));
    }
    let s = &cfg.search;
    s.validate().map_err(EngineError::Invalid)?;
    if data.train.n_rows == 0 || data.valid.n_rows == 0 {
        return Err(EngineError::Invalid(
            "the training and validation splits must not be empty".into(),
        ));
    }
    let meta = data.meta();
    let (names, kinds) = (&meta.task_names, &meta.task_kinds);
    let ad_device = device.clone().autodiff();
    device.seed(cfg.train.seed);
    let Model::AutoMtl(net) = mtrec_arch::build(&cfg.model, &cfg.embedding, &meta, &ad_device)?
    else {
        unreachable!("kind automtl builds the super-network");
    };
    let mut stepper = SearchStepper::new(net, cfg, &meta, &ad_device)?;
    stepper.net_mut().set_prune_below(s.prune_below as f32);
    let mut saved = match state_file {
        Some(f) => f.load()?,
        None => None,
    };
    let resumed: Option<SearchLoop> = match (&saved, state_file) {
        (Some(snapshot), Some(f)) => {
            let state: SearchLoop = snapshot.get(&f.path, SEARCH_LOOP_KEY)?;
            stepper
                .net_mut()
                .apply_choices(&state.choices)
                .map_err(|e| EngineError::State {
                    path: f.path.clone(),
                    message: format!("the fixed choices: {e}"),
                })?;
            stepper.set_joint(false);
            stepper.load_state(snapshot, &f.path)?;
            tracing::warn!(
                "resuming the search from {} at epoch {}",
                f.path.display(),
                state.next_epoch
            );
            Some(state)
        }
        _ => None,
    };

    let started = Instant::now();
    // Bilevel search: the weights never see the held-out rows; architecture steps use only them.
    let holdout = (s.arch_holdout > 0.0).then(|| {
        let parts = split_indices(
            data.train.n_rows,
            &[1.0 - s.arch_holdout, s.arch_holdout],
            cfg.train.seed ^ HOLDOUT_SEED_SALT,
        );
        (data.train.select(&parts[0]), data.train.select(&parts[1]))
    });
    if holdout
        .as_ref()
        .is_some_and(|(w, a)| w.n_rows == 0 || a.n_rows == 0)
    {
        return Err(EngineError::Invalid(format!(
            "search.arch_holdout = {} leaves no rows for the weights or the architecture ({} training rows)",
            s.arch_holdout, data.train.n_rows
        )));
    }
    let weight_rows = holdout.as_ref().map_or(&data.train, |(w, _)| w);
    let n_batches = batches_per_epoch(weight_rows.n_rows, s.batch_size, s.max_batches_per_epoch);
    let n_arch_batches = holdout.as_ref().map_or(n_batches, |(_, a)| {
        batches_per_epoch(a.n_rows, s.batch_size, s.max_batches_per_epoch)
    });
    let total = s.warmup_epochs + s.joint_epochs;
    let joint_steps = n_arch_batches * s.joint_epochs;
    stepper.plan_joint_steps(joint_steps);
    let (first_epoch, mut log, seconds_before) = match resumed {
        Some(state) => (state.next_epoch, state.log, state.search_seconds),
        None => (
            1,
            SearchLog {
                candidates: space.candidates.iter().map(|c| c.to_string()).collect(),
                joint_steps,
                epochs: Vec::new(),
                decidedness: Decidedness::default(),
            },
            0.0,
        ),
    };
    for epoch in first_epoch..=total {
        let joint = epoch > s.warmup_epochs;
        if epoch == first_epoch || epoch == s.warmup_epochs + 1 {
            observer.on_event(&Event::Phase {
                name: if joint { "joint" } else { "warm-up" },
                epochs: if joint {
                    s.joint_epochs
                } else {
                    s.warmup_epochs
                },
                batches_per_epoch: n_batches,
            });
        }
        stepper.set_joint(joint);
        observer.on_event(&Event::EpochStart { epoch });
        let epoch_start = Instant::now();
        // Bilevel joint epochs interleave the held-out architecture batches evenly with the
        // weight steps; otherwise every step is single-level (`step`).
        let mut arch_batches = holdout.as_ref().filter(|_| joint).map(|(_, arch_rows)| {
            batches(
                arch_rows,
                s.batch_size,
                Some((cfg.train.seed ^ HOLDOUT_SEED_SALT).wrapping_add(epoch as u64)),
            )
            .take(n_arch_batches)
        });
        let mut done = 0usize;
        let (loss_sum, seen) = run_epoch(
            weight_rows,
            s.batch_size,
            n_batches,
            cfg.train.seed,
            epoch,
            observer,
            |b| {
                // Reseeded per step: a search resumed at an epoch boundary draws what the
                // uninterrupted one drew.
                seed_step(
                    device,
                    cfg.train.seed,
                    ((epoch - 1) * n_batches + done) as u64,
                );
                let Some(arch_batches) = arch_batches.as_mut() else {
                    done += 1;
                    return stepper.step(b);
                };
                let loss = stepper.weight_step(b);
                let due =
                    (done + 1) * n_arch_batches / n_batches - done * n_arch_batches / n_batches;
                done += 1;
                for arch_batch in arch_batches.by_ref().take(due) {
                    stepper.arch_step(&arch_batch);
                }
                loss
            },
        )?;
        let seconds = epoch_start.elapsed().as_secs_f64();
        let valid = evaluate(
            &Model::AutoMtl(stepper.net().valid()),
            &data.valid,
            names,
            kinds,
            &stepper.weights(),
            cfg.train.eval_batch_size,
            device,
        )
        .map_err(|e| e.in_split("the validation split"))?;
        let train_loss = loss_sum / seen.max(1) as f64;
        observer.on_event(&Event::EpochEnd {
            epoch,
            train_loss,
            valid: &valid,
            improved: false,
            seconds,
        });
        let (blocks, gates) = snapshot(stepper.net());
        let decisions = if epoch == total {
            stepper.net_mut().finalise()
        } else if joint {
            let net = stepper.net_mut();
            let mut d = net.fix_lowest_entropy_blocks(s.blocks_per_epoch);
            if s.gates == GateSchedule::Progressive {
                d.extend(net.fix_most_decided_gates(s.gates_per_epoch));
            }
            d
        } else {
            Vec::new()
        };
        if !decisions.is_empty() {
            observer.on_event(&Event::Discretised {
                epoch,
                decisions: &decisions,
                open_blocks: stepper.net().open_blocks().len(),
                open_gates: stepper.net().open_gates().len(),
            });
        }
        let reg = if joint {
            stepper.regularisation()
        } else {
            ArchRegularisation::default()
        };
        log.epochs.push(SearchEpoch {
            epoch,
            phase: if joint { "joint" } else { "warm-up" }.into(),
            train_loss,
            valid,
            seconds,
            blocks,
            gates,
            decidedness: decidedness(&decisions),
            decisions,
            arch_learning_rate: if joint {
                stepper.arch_learning_rate()
            } else {
                0.0
            },
            gate_cost: reg.gate_cost,
            sharpen: reg.sharpen,
            op_cost: reg.op_cost,
        });
        if let Some(f) = state_file {
            let mut snapshot = Snapshot::default();
            stepper.save_state(&mut snapshot)?;
            snapshot.put(
                SEARCH_LOOP_KEY,
                &SearchLoop {
                    next_epoch: epoch + 1,
                    choices: stepper.net().choices(),
                    log: log.clone(),
                    search_seconds: seconds_before + started.elapsed().as_secs_f64(),
                },
            )?;
            f.save(&snapshot)?;
            crate::resume::kill_point("search-epoch");
            saved = Some(snapshot);
        }
    }
    log.decidedness = decidedness(log.epochs.iter().flat_map(|e| &e.decisions));
    let search_seconds = seconds_before + started.elapsed().as_secs_f64();
    // The finetune's states carry the finished search (its last epoch's state) along, so a
    // run killed during the finetune resumes it instead of searching again.
    let finetune_state = match (state_file, &saved) {
        (Some(f), Some(last)) => Some(f.with_carry(carried(last))),
        (f, _) => f.cloned(),
    };
    drop(saved);
    let net = stepper.into_net();
    let genotype = net
        .genotype()
        .expect("the last search epoch fixes every choice");

    let retrain_config = ExperimentConfig {
        model: ArchConfig::Searched(genotype.clone()),
        ..cfg.clone()
    };
    observer.on_event(&Event::Phase {
        name: "finetune",
        epochs: cfg.train.epochs,
        batches_per_epoch: data.train.n_rows.div_ceil(cfg.train.batch_size),
    });
    let finetune_start = Instant::now();
    let finetune = fit_resumable(
        Model::AutoMtl(net),
        &retrain_config,
        data,
        device,
        observer,
        finetune_state.as_ref(),
    )?;
    Ok(SearchOutcome {
        genotype,
        log,
        finetune,
        search_seconds,
        finetune_seconds: finetune_start.elapsed().as_secs_f64(),
        retrain_config,
    })
}
