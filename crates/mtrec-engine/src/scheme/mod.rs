//! Training schemes: procedures that change how a model of the zoo trains, not what it is
//! (the survey's sharing schemes, spec §3 end). Each lives in its own file and drives any
//! model through [`Trainer`]; no model knows about them.
//!
//! - `none`: one optimizer step per batch on the weighted task losses ([`crate::Stepper`]).
//! - [`cross_distil`]: augmented ranking tasks as teachers, distilled into the task towers.
//! - [`lt4rec`]: per-task lottery-ticket masks over the shared weights, then joint training.
//! - [`csm`]: per-task masks pruned progressively by a contrastive contribution measure.

pub mod cross_distil;
pub mod csm;
pub mod lt4rec;
pub mod masks;
pub mod predictor;
pub mod subnet;

use std::collections::BTreeMap;
use std::path::Path;

use mtrec_arch::Model;
use mtrec_data::{Batch, Dataset, FeatureMeta, TaskRequirement};
use mtrec_weighting::WeightingConfig;
use serde::{Deserialize, Serialize};

pub use cross_distil::CrossDistilConfig;
pub use csm::CsmConfig;
pub use lt4rec::Lt4recConfig;
pub use predictor::Predictor;

use crate::resume::Snapshot;
use crate::{EngineError, ExperimentConfig, Observer, Stepper};

/// The `[scheme]` section of an experiment config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SchemeConfig {
    /// Plain training: every batch, every task, one step.
    #[default]
    None,
    CrossDistil(CrossDistilConfig),
    Lt4rec(Lt4recConfig),
    Csm(CsmConfig),
}

impl SchemeConfig {
    pub fn is_none(&self) -> bool {
        matches!(self, SchemeConfig::None)
    }

    pub fn kind(&self) -> &'static str {
        match self {
            SchemeConfig::None => "none",
            SchemeConfig::CrossDistil(_) => "cross-distil",
            SchemeConfig::Lt4rec(_) => "lt4rec",
            SchemeConfig::Csm(_) => "csm",
        }
    }

    /// What the scheme assumes about the tasks (checked with the model's before training).
    /// LT4Rec and CSM take any tasks: their masks are per task, whatever its kind, and their
    /// task steps use the example weights like plain training.
    pub fn task_requirements(&self) -> Vec<TaskRequirement> {
        match self {
            SchemeConfig::CrossDistil(_) => CrossDistilConfig::task_requirements(),
            SchemeConfig::None | SchemeConfig::Lt4rec(_) | SchemeConfig::Csm(_) => Vec::new(),
        }
    }

    /// Checks ranges serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            SchemeConfig::None => Ok(()),
            SchemeConfig::CrossDistil(c) => c.validate(),
            SchemeConfig::Lt4rec(c) => c.validate(),
            SchemeConfig::Csm(c) => c.validate(),
        }
    }
}

/// Drives one model through a training run for [`crate::fit`]: the epoch loop, validation,
/// early stopping and checkpoints stay the engine's, a scheme decides what a step does.
pub trait Trainer {
    /// Work before the first epoch (LT4Rec's pruning rounds); returns its log records.
    fn prepare(
        &mut self,
        data: &Dataset,
        observer: &mut dyn Observer,
    ) -> Result<Vec<serde_json::Value>, EngineError> {
        let _ = (data, observer);
        Ok(Vec::new())
    }

    /// Called before epoch `epoch` (1-based) of the main training.
    fn begin_epoch(&mut self, epoch: usize);

    /// One optimisation step on `batch`; returns the training objective before the update.
    fn step(&mut self, batch: &Batch) -> f64;

    /// Called after an epoch's steps, before validation: schedules (pruning, calibration) run
    /// here. Returns the figures logged for the epoch (`<quantity>/<task>` names).
    fn end_epoch(&mut self, data: &Dataset) -> Result<BTreeMap<String, f64>, EngineError>;

    /// The model as evaluation and checkpoints see it, in validation mode.
    fn predictor(&self) -> Predictor;

    /// The per-task loss weights as they stand (learnt ones included), for the report; the
    /// validation loss uses fixed weights instead (`WeightingConfig::selection_weights`).
    fn eval_weights(&self) -> Vec<f64>;

    /// Adds everything later steps depend on (weights, optimizer, weighting, the scheme's
    /// own state) to `snapshot`, so that a killed run can resume exactly.
    fn save_state(&self, snapshot: &mut Snapshot) -> Result<(), EngineError>;

    /// Takes back what [`Trainer::save_state`] wrote (read from `file`), on a trainer built
    /// as the saved one was, in place of [`Trainer::prepare`] (`data` is the run's data).
    fn load_state(
        &mut self,
        snapshot: &Snapshot,
        file: &Path,
        data: &Dataset,
    ) -> Result<(), EngineError>;
}

/// The feature layout the model is built for: the data's, plus a scheme's extra outputs.
pub fn model_meta(scheme: &SchemeConfig, meta: &FeatureMeta) -> Result<FeatureMeta, EngineError> {
    match scheme {
        SchemeConfig::CrossDistil(c) => cross_distil::teacher_meta(c, meta),
        _ => Ok(meta.clone()),
    }
}

/// The trainer the config's `[scheme]` asks for, around `model` (built on the autodiff
/// device `device` for [`model_meta`]).
pub fn trainer(
    model: Model,
    cfg: &ExperimentConfig,
    data: &Dataset,
    device: &burn::prelude::Device,
) -> Result<Box<dyn Trainer>, EngineError> {
    let meta = data.meta();
    let per_task = matches!(cfg.weighting, WeightingConfig::MetaBalance { .. });
    if !matches!(cfg.scheme, SchemeConfig::None) && per_task {
        return Err(EngineError::Invalid(format!(
            "[weighting] kind = \"{}\" cannot be combined with [scheme] kind = \"{}\"",
            cfg.weighting.kind(),
            cfg.scheme.kind()
        )));
    }
    if cfg.train.lazy_embeddings && !matches!(cfg.scheme, SchemeConfig::None) {
        return Err(EngineError::Invalid(format!(
            "train.lazy_embeddings cannot be combined with [scheme] kind = \"{}\" (plain \
             training only)",
            cfg.scheme.kind()
        )));
    }
    // `check_tasks` says this with the schema's line before training; a program that skips
    // it must not get a CrossDistil that ranks masked labels as negatives.
    if matches!(cfg.scheme, SchemeConfig::CrossDistil(_))
        && data.preprocessor.schema.has_partial_labels()
    {
        return Err(EngineError::Invalid(
            "[scheme] kind = \"cross-distil\" needs every task labelled on every row with \
             weight 1; the schema has `missing = \"mask\"`, `given` or `weight` on a task"
                .into(),
        ));
    }
    Ok(match &cfg.scheme {
        SchemeConfig::None => Box::new(Stepper::new(
            model,
            cfg,
            meta.task_kinds.clone(),
            &meta.task_names,
            device,
        )?),
        SchemeConfig::CrossDistil(c) => Box::new(cross_distil::CrossDistil::new(
            model, c, cfg, &meta, device,
        )?),
        SchemeConfig::Lt4rec(c) => Box::new(lt4rec::Lt4rec::new(model, c, cfg, data, device)?),
        SchemeConfig::Csm(c) => Box::new(csm::Csm::new(model, c, cfg, data, device)?),
    })
}

/// Freshly initialised models in the shape a checkpoint of `cfg` stores (its weights are
/// loaded into them afterwards), on `device`.
pub fn blank_predictor(
    cfg: &ExperimentConfig,
    meta: &FeatureMeta,
    device: &burn::prelude::Device,
) -> Result<Predictor, EngineError> {
    let build = |m: &FeatureMeta| mtrec_arch::build(&cfg.model, &cfg.embedding, m, device);
    Ok(match &cfg.scheme {
        SchemeConfig::None => Predictor::Whole(build(meta)?),
        SchemeConfig::CrossDistil(_) => Predictor::Leading {
            model: build(&model_meta(&cfg.scheme, meta)?)?,
            n_tasks: meta.task_names.len(),
        },
        SchemeConfig::Lt4rec(_) | SchemeConfig::Csm(_) => Predictor::PerTask(
            (0..meta.task_names.len())
                .map(|_| build(meta))
                .collect::<Result<_, _>>()?,
        ),
    })
}
