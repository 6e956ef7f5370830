//! Cross-Task Knowledge Distillation (CrossDistil, Yang et al., AAAI 2022).
//!
//! Binary tasks of one data set are not independent: how a row ranks on task A given its
//! label on task B carries information neither task's own loss sees. For every pair of binary
//! tasks `(A, B)` the scheme adds two augmented tasks that rank the four label pairs
//! `(y_A, y_B)`:
//!
//! - `A>B` (the paper's A+): `++ > +- > -+ > --`, i.e. by A first, then by B;
//! - `B>A` (B+): `++ > -+ > +- > --`, by B first, then by A.
//!
//! They are trained with a pairwise ranking loss over every ordered pair of rows of a batch
//! whose levels differ ([`ranking_loss`]), and act as teachers: their scores are mapped to
//! probabilities of their first task's label by Platt scaling ([`Platt`], refitted after every
//! epoch on a fixed sample of training rows), and the original towers (students) learn from
//! those probabilities once a warm-up is over.
//!
//! Our choices (the paper leaves the exact weights and the correction rule open; defaults
//! meant to be tuned on validation data):
//!
//! - The teachers are extra outputs of the same model ([`teacher_meta`] appends them to the
//!   data's tasks before the engine builds it), so every architecture gives them their own
//!   towers (and gates) on the shared layers; no model knows about the scheme. Evaluation and
//!   checkpoints read only the data's outputs ([`Predictor::Leading`]).
//! - Teacher and student parameters are updated alternately with one Adam: even steps are
//!   teacher steps (the mean ranking loss of all teachers: only their towers and the shared
//!   layers get gradients), odd steps student steps (the data's task losses through the
//!   `[weighting]`, plus the model's auxiliary loss). A step's returned objective is the one it
//!   optimised, so the logged training loss averages both kinds.
//! - Student `k`'s binary loss is `(1-λ) BCE(z, y) + λ BCE(z, q)` (= BCE against the mixed
//!   target `(1-λ) y + λ q`), with `q` the calibrated probability of its own teachers: `A>B`
//!   teaches A, `B>A` teaches B; with several pairs a task's teachers' probabilities are
//!   averaged. The teachers' scores are detached: distillation never moves a teacher.
//! - Error correction: where `q` is on the wrong side of 0.5 for the true label, the label is
//!   distilled instead (the target becomes `y`), so a teacher's mistakes are not taught.
//! - The ranking loss averages over all ordered pairs of rows by default. When the first task
//!   is rare, most pairs then differ in the second task only (`-+ > --`), and the teacher
//!   learns the second task more than its own (Census: `income>marital` reaches an income AUC
//!   of about 0.70 against the students' 0.95). `balanced_pairs = true` weighs each pair of
//!   levels alike instead ([`balanced_ranking_loss`]; 0.88 there).
//! - Platt scaling keeps the map monotone increasing: a fit with a negative slope (a teacher
//!   ranking against its label) falls back to the base rate (`a = 0`).
//!
//! Per epoch the scheme logs `rank_loss/<teacher>` (mean over the epoch's teacher steps),
//! `platt_a/<teacher>`, `platt_b/<teacher>`, `teacher_auc/<teacher>` (raw scores against the
//! teacher's first task on the calibration sample), `distilled/<task>` (1 while distillation
//! is on) and `corrected/<task>` (share of the distilled rows whose target was the label),
//! besides the weighting's own figures.

use std::collections::BTreeMap;
use std::path::Path;

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::log_sigmoid;
use mtrec_arch::{Model, MultiTaskModel};
use mtrec_data::{
    Batch, Dataset, EncodedTable, FeatureMeta, TaskKind, TaskRequirement, TaskRule, batches,
};
use mtrec_weighting::{StepContext, Weighting};
use serde::{Deserialize, Serialize};

use crate::resume::Snapshot;
use crate::scheme::{Predictor, Trainer};
use crate::stepper::{adam, load_core, save_core, weighted_backward};
use crate::tensors::input_of;
use crate::{EngineError, ExperimentConfig};

/// The `[scheme] kind = "cross-distil"` settings. Defaults chosen on Census group 1's
/// validation split (MMoE, 12 epochs, one seed; mean AUC): among the distilling settings,
/// balanced pairs with λ = 0.25 did best (0.9662; λ = 0.5: 0.9635; all-pairs λ = 0.25:
/// 0.9630, λ = 0.5: 0.9590, without error correction 0.9496). Plain training reached 0.9701.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrossDistilConfig {
    /// Epochs in which the students learn from the labels only; distillation starts with the
    /// epoch after (the teachers train from the first epoch on).
    pub warmup_epochs: usize,
    /// λ: the students' weight of the calibrated teacher probability against the label.
    pub distill_weight: f64,
    /// Distil the label instead where the teacher's probability contradicts it.
    pub error_correction: bool,
    /// Training rows (a fixed seeded sample) Platt scaling is fitted on after each epoch.
    pub calibration_rows: usize,
    /// Teachers' ranking loss weighs every pair of levels the same
    /// ([`balanced_ranking_loss`]) instead of every pair of rows ([`ranking_loss`]).
    pub balanced_pairs: bool,
}

impl Default for CrossDistilConfig {
    fn default() -> Self {
        Self {
            warmup_epochs: 1,
            distill_weight: 0.25,
            error_correction: true,
            calibration_rows: 20_000,
            balanced_pairs: true,
        }
    }
}

impl CrossDistilConfig {
    /// What the scheme assumes about the tasks: its teachers rank pairs of binary labels.
    pub fn task_requirements() -> Vec<TaskRequirement> {
        const BY: &str = "[scheme] kind = \"cross-distil\"";
        vec![
            TaskRequirement {
                by: BY,
                rule: TaskRule::MinBinary(2),
                why: "its teachers rank the label pairs of two binary tasks",
            },
            TaskRequirement {
                by: BY,
                rule: TaskRule::FullLabels,
                why: "its teachers rank every row by the labels of two tasks and are \
                      calibrated on every row, so a row without a label (or weighing other \
                      than 1) has no place in their order",
            },
        ]
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.distill_weight.is_finite() && (0.0..=1.0).contains(&self.distill_weight)) {
            return Err(format!(
                "distill_weight must be in [0, 1], got {}",
                self.distill_weight
            ));
        }
        if self.calibration_rows < 2 {
            return Err(format!(
                "calibration_rows must be at least 2, got {}",
                self.calibration_rows
            ));
        }
        Ok(())
    }
}

/// One augmented ranking task: ranks rows by `primary`'s label, ties by `secondary`'s.
#[derive(Debug, Clone, PartialEq)]
pub struct Teacher {
    pub name: String,
    /// The data task it ranks first by and teaches.
    pub primary: usize,
    pub secondary: usize,
}

/// The teachers of every pair of binary tasks, in output order (after the data's tasks):
/// for the pair `(a, b)`, `a > b`, then `b > a`.
pub fn teachers(meta: &FeatureMeta) -> Vec<Teacher> {
    let binary: Vec<usize> = (0..meta.task_kinds.len())
        .filter(|&k| meta.task_kinds[k] == TaskKind::Binary)
        .collect();
    let mut out = Vec::new();
    for (i, &a) in binary.iter().enumerate() {
        for &b in &binary[i + 1..] {
            for (p, s) in [(a, b), (b, a)] {
                out.push(Teacher {
                    name: format!("{}>{}", meta.task_names[p], meta.task_names[s]),
                    primary: p,
                    secondary: s,
                });
            }
        }
    }
    out
}

/// The layout the model is built for: the data's, with the teachers appended as binary tasks.
pub fn teacher_meta(c: &CrossDistilConfig, meta: &FeatureMeta) -> Result<FeatureMeta, EngineError> {
    let _ = c;
    let extra = teachers(meta);
    if extra.is_empty() {
        return Err(EngineError::Invalid(format!(
            "[scheme] kind = \"cross-distil\" needs at least two binary tasks; the data has {}",
            meta.task_kinds
                .iter()
                .filter(|k| **k == TaskKind::Binary)
                .count()
        )));
    }
    let mut out = meta.clone();
    for t in extra {
        out.task_names.push(t.name);
        out.task_kinds.push(TaskKind::Binary);
    }
    Ok(out)
}

/// Ordinal level of a row for a teacher ranking by `primary` first, then `secondary`
/// (labels `> 0.5` are positive): `++` = 3, `+-` = 2, `-+` = 1, `--` = 0. For the pair
/// `(A, B)`, A+ is `level(y_A, y_B)` and B+ is `level(y_B, y_A)`.
pub fn level(primary: f32, secondary: f32) -> u8 {
    2 * u8::from(primary > 0.5) + u8::from(secondary > 0.5)
}

/// Pairwise ranking loss of scores `[B]` under ordinal `levels` (higher is better): the mean
/// over all ordered pairs `(i, j)` with `levels[i] > levels[j]` of
/// `softplus(s_j - s_i) = -log sigmoid(s_i - s_j)`; 0 when no pair differs. Returns `[1]`.
pub fn ranking_loss(scores: Tensor<1>, levels: &[u8]) -> Tensor<1> {
    let counts = level_counts(levels);
    let (mut below, mut pairs) = (0usize, 0usize);
    for c in counts {
        pairs += c * below;
        below += c;
    }
    pair_loss(
        scores,
        levels,
        vec![1.0; levels.len()],
        1.0 / pairs.max(1) as f64,
    )
}

/// [`ranking_loss`] with every pair of levels weighing the same: the mean over the level pairs
/// `h > l` present in the batch of the mean pair loss between rows at `h` and rows at `l`, so
/// large groups (the negatives of a rare task) do not outweigh the rest.
pub fn balanced_ranking_loss(scores: Tensor<1>, levels: &[u8]) -> Tensor<1> {
    let counts = level_counts(levels);
    let present = counts.iter().filter(|&&c| c > 0).count();
    let groups = present * present.saturating_sub(1) / 2;
    let weights = levels
        .iter()
        .map(|&l| 1.0 / counts[l as usize] as f32)
        .collect();
    pair_loss(scores, levels, weights, 1.0 / groups.max(1) as f64)
}

fn level_counts(levels: &[u8]) -> [usize; 256] {
    let mut counts = [0usize; 256];
    for &l in levels {
        counts[l as usize] += 1;
    }
    counts
}

/// `scale * sum_{l_i > l_j} w_i w_j softplus(s_j - s_i)` with [B, B] masks.
fn pair_loss(scores: Tensor<1>, levels: &[u8], weights: Vec<f32>, scale: f64) -> Tensor<1> {
    let b = levels.len();
    let device = scores.device();
    let lv = Tensor::<1>::from_data(
        TensorData::new(levels.iter().map(|&l| l as f32).collect::<Vec<_>>(), [b]),
        &device,
    );
    let w = Tensor::<1>::from_data(TensorData::new(weights, [b]), &device);
    let above = lv
        .clone()
        .reshape([b, 1])
        .expand([b, b])
        .greater(lv.reshape([1, b]).expand([b, b]))
        .float();
    let pair_weights =
        above * w.clone().reshape([b, 1]).expand([b, b]) * w.reshape([1, b]).expand([b, b]);
    // diff[i, j] = s_i - s_j.
    let diff =
        scores.clone().reshape([b, 1]).expand([b, b]) - scores.reshape([1, b]).expand([b, b]);
    (log_sigmoid(diff).neg() * pair_weights).sum() * scale
}

/// Platt scaling: `p = sigmoid(a * s + b)`, a monotone (`a >= 0`) map from scores to
/// probabilities fitted by maximum likelihood.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Platt {
    pub a: f64,
    pub b: f64,
}

impl Default for Platt {
    /// The identity on logits, used until a first fit.
    fn default() -> Self {
        Self { a: 1.0, b: 0.0 }
    }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `log(1 + e^z)` without overflow.
fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

impl Platt {
    /// Maximum-likelihood fit on `scores` against 0/1 `labels` (`> 0.5` positive): Newton's
    /// method with step halving on standardised scores, with a tiny ridge on the slope so
    /// separable data stays finite. A negative slope, constant scores or a single class give
    /// the base rate (`a = 0`); no data gives the identity.
    pub fn fit(scores: &[f32], labels: &[f32]) -> Platt {
        let n = scores.len().min(labels.len());
        if n == 0 {
            return Platt::default();
        }
        let y: Vec<f64> = labels[..n]
            .iter()
            .map(|&v| if v > 0.5 { 1.0 } else { 0.0 })
            .collect();
        let rate = (y.iter().sum::<f64>() / n as f64).clamp(1e-6, 1.0 - 1e-6);
        let base = Platt {
            a: 0.0,
            b: (rate / (1.0 - rate)).ln(),
        };
        let mean = scores[..n].iter().map(|&s| s as f64).sum::<f64>() / n as f64;
        let var = scores[..n]
            .iter()
            .map(|&s| (s as f64 - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        if !var.is_finite() || var <= 1e-24 || rate <= 1e-6 || rate >= 1.0 - 1e-6 {
            return base;
        }
        let sd = var.sqrt();
        let x: Vec<f64> = scores[..n]
            .iter()
            .map(|&s| (s as f64 - mean) / sd)
            .collect();
        const RIDGE: f64 = 1e-5;
        let objective = |a: f64, b: f64| {
            x.iter()
                .zip(&y)
                .map(|(&x, &y)| {
                    let z = a * x + b;
                    softplus(z) - y * z
                })
                .sum::<f64>()
                / n as f64
                + 0.5 * RIDGE * a * a
        };
        let (mut a, mut b) = (0.0, base.b);
        let mut f = objective(a, b);
        for _ in 0..100 {
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for (&x, &y) in x.iter().zip(&y) {
                let p = sigmoid(a * x + b);
                let w = p * (1.0 - p);
                ga += (p - y) * x;
                gb += p - y;
                haa += w * x * x;
                hab += w * x;
                hbb += w;
            }
            let nf = n as f64;
            let (ga, gb) = (ga / nf + RIDGE * a, gb / nf);
            let (haa, hab, hbb) = (haa / nf + RIDGE, hab / nf, hbb / nf + 1e-12);
            let det = haa * hbb - hab * hab;
            if det.is_nan() || det <= 0.0 {
                break;
            }
            let da = (hbb * ga - hab * gb) / det;
            let db = (haa * gb - hab * ga) / det;
            let mut t = 1.0;
            let mut improved = false;
            for _ in 0..40 {
                let (na, nb) = (a - t * da, b - t * db);
                let nf = objective(na, nb);
                if nf <= f {
                    (a, b, f) = (na, nb, nf);
                    improved = true;
                    break;
                }
                t *= 0.5;
            }
            if !improved || (t * da).abs().max((t * db).abs()) < 1e-10 {
                break;
            }
        }
        if !a.is_finite() || !b.is_finite() || a <= 0.0 {
            return base;
        }
        // sigmoid(a (s - mean) / sd + b) = sigmoid((a / sd) s + (b - a mean / sd)).
        Platt {
            a: a / sd,
            b: b - a * mean / sd,
        }
    }

    /// The calibrated probability of `score`.
    pub fn apply(&self, score: f64) -> f64 {
        sigmoid(self.a * score + self.b)
    }
}

/// The CrossDistil trainer: teachers and students of one model, stepped alternately.
pub struct CrossDistil {
    model: Option<Model>,
    optim: ModuleOptimizer,
    weighting: Box<dyn Weighting>,
    cfg: CrossDistilConfig,
    kinds: Vec<TaskKind>,
    task_names: Vec<String>,
    teachers: Vec<Teacher>,
    /// Per data task, the indices of the teachers that teach it.
    taught_by: Vec<Vec<usize>>,
    calibration: Vec<Platt>,
    ctx: StepContext,
    learning_rate: f64,
    seed: u64,
    eval_batch_size: usize,
    device: Device,
    steps: usize,
    distilling: bool,
    // The epoch's figures.
    rank_sums: Vec<f64>,
    teacher_steps: usize,
    distilled_rows: Vec<usize>,
    corrected_rows: Vec<usize>,
}

impl CrossDistil {
    /// `model` must be built for [`teacher_meta`] of the data's `meta`, on the autodiff device
    /// `device`.
    pub fn new(
        model: Model,
        c: &CrossDistilConfig,
        cfg: &ExperimentConfig,
        meta: &FeatureMeta,
        device: &Device,
    ) -> Result<Self, EngineError> {
        c.validate()
            .map_err(|m| EngineError::Invalid(format!("[scheme] {m}")))?;
        let teachers = teachers(meta);
        let t = meta.task_names.len();
        if teachers.is_empty() {
            teacher_meta(c, meta)?;
        }
        if model.n_tasks() != t + teachers.len() {
            return Err(EngineError::Invalid(format!(
                "cross-distil: the model has {} outputs, expected {} tasks + {} teachers",
                model.n_tasks(),
                t,
                teachers.len()
            )));
        }
        let mut taught_by = vec![Vec::new(); t];
        for (j, teacher) in teachers.iter().enumerate() {
            taught_by[teacher.primary].push(j);
        }
        let n_teachers = teachers.len();
        Ok(Self {
            model: Some(model),
            optim: adam(cfg),
            weighting: mtrec_weighting::build(&cfg.weighting, &meta.task_names, device)?,
            cfg: c.clone(),
            kinds: meta.task_kinds.clone(),
            task_names: meta.task_names.clone(),
            teachers,
            taught_by,
            calibration: vec![Platt::default(); n_teachers],
            ctx: StepContext {
                step: 0,
                epoch: 1,
                learning_rate: cfg.train.learning_rate,
            },
            learning_rate: cfg.train.learning_rate,
            seed: cfg.train.seed,
            eval_batch_size: cfg.train.eval_batch_size.max(1),
            device: device.clone(),
            steps: 0,
            distilling: c.warmup_epochs == 0,
            rank_sums: vec![0.0; n_teachers],
            teacher_steps: 0,
            distilled_rows: vec![0; t],
            corrected_rows: vec![0; t],
        })
    }

    pub fn model(&self) -> &Model {
        self.model.as_ref().expect("model present between steps")
    }

    /// The teachers, in output order.
    pub fn teachers(&self) -> &[Teacher] {
        &self.teachers
    }

    /// The current Platt maps, one per teacher.
    pub fn calibration(&self) -> &[Platt] {
        &self.calibration
    }

    fn n_tasks(&self) -> usize {
        self.kinds.len()
    }

    /// Mean ranking loss of all teachers; only teacher towers and shared layers are reached.
    fn teacher_step(&mut self, model: &Model, batch: &Batch) -> (f64, GradientsParams) {
        let (t, b) = (self.n_tasks(), batch.len);
        let out = model.forward(&input_of(batch, &self.device));
        let scores = out.outputs.narrow(1, t, self.teachers.len());
        let losses: Vec<Tensor<1>> = self
            .teachers
            .iter()
            .enumerate()
            .map(|(j, teacher)| {
                let levels: Vec<u8> = (0..b)
                    .map(|r| {
                        let row = &batch.labels[r * t..(r + 1) * t];
                        level(row[teacher.primary], row[teacher.secondary])
                    })
                    .collect();
                let s = scores.clone().narrow(1, j, 1).reshape([b]);
                if self.cfg.balanced_pairs {
                    balanced_ranking_loss(s, &levels)
                } else {
                    ranking_loss(s, &levels)
                }
            })
            .collect();
        let stacked = Tensor::cat(losses, 0);
        let values: Vec<f32> = stacked
            .clone()
            .detach()
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 losses");
        for (sum, v) in self.rank_sums.iter_mut().zip(&values) {
            *sum += *v as f64;
        }
        self.teacher_steps += 1;
        let loss = values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64;
        let grads = stacked.mean().backward();
        (loss, GradientsParams::from_grads(grads, model))
    }

    /// The data's tasks through the weighting, against labels mixed with the calibrated
    /// teacher probabilities once distillation is on.
    fn student_step(&mut self, model: &Model, batch: &Batch) -> (f64, GradientsParams) {
        let (t, b) = (self.n_tasks(), batch.len);
        let out = model.forward(&input_of(batch, &self.device));
        let mut targets = batch.labels.clone();
        if self.distilling && self.cfg.distill_weight > 0.0 {
            let m = self.teachers.len();
            let scores: Vec<f32> = out
                .outputs
                .clone()
                .narrow(1, t, m)
                .detach()
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32 scores");
            let lambda = self.cfg.distill_weight;
            for (k, teachers) in self.taught_by.iter().enumerate() {
                if teachers.is_empty() {
                    continue;
                }
                for r in 0..b {
                    let q = teachers
                        .iter()
                        .map(|&j| self.calibration[j].apply(scores[r * m + j] as f64))
                        .sum::<f64>()
                        / teachers.len() as f64;
                    let y = batch.labels[r * t + k] as f64;
                    let wrong = if y > 0.5 { q < 0.5 } else { q > 0.5 };
                    self.distilled_rows[k] += 1;
                    if self.cfg.error_correction && wrong {
                        self.corrected_rows[k] += 1;
                    } else {
                        targets[r * t + k] = ((1.0 - lambda) * y + lambda * q) as f32;
                    }
                }
            }
        }
        let targets = Tensor::<2>::from_data(TensorData::new(targets, [b, t]), &self.device);
        let losses = crate::task_losses(out.outputs.narrow(1, 0, t), targets, &self.kinds);
        let (loss, raw) =
            weighted_backward(self.weighting.as_mut(), &self.ctx, losses, out.aux_loss);
        self.ctx.step += 1;
        (loss, GradientsParams::from_grads(raw, model))
    }

    /// Refits every teacher's Platt map on the calibration sample; returns the teachers' AUCs
    /// there (`None` where the sample has a single class).
    fn calibrate(&mut self, train: &EncodedTable) -> Vec<Option<f64>> {
        let (t, m) = (self.n_tasks(), self.teachers.len());
        let n = self.cfg.calibration_rows.min(train.n_rows);
        // A fixed seeded sample: the first rows of one shuffled order.
        let order = batches(train, 1, Some(self.seed ^ 0xC0FF_EE5C)).order()[..n].to_vec();
        let sample = train.select(&order);
        let model = self.model().valid();
        let inner = self.device.clone().inner();
        let mut scores = vec![Vec::with_capacity(n); m];
        for batch in batches(&sample, self.eval_batch_size, None) {
            let out = model.forward(&input_of(&batch, &inner));
            let s: Vec<f32> = out
                .outputs
                .narrow(1, t, m)
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32 scores");
            for r in 0..batch.len {
                for (j, col) in scores.iter_mut().enumerate() {
                    col.push(s[r * m + j]);
                }
            }
        }
        self.teachers
            .iter()
            .zip(&scores)
            .zip(self.calibration.iter_mut())
            .map(|((teacher, s), platt)| {
                let labels = sample.labels_of_task(teacher.primary);
                *platt = Platt::fit(s, &labels);
                mtrec_metrics::auc(s, &labels).ok()
            })
            .collect()
    }
}

impl Trainer for CrossDistil {
    fn prepare(
        &mut self,
        data: &Dataset,
        _observer: &mut dyn crate::Observer,
    ) -> Result<Vec<serde_json::Value>, EngineError> {
        // Without a warm-up the first epoch already distils: calibrate the fresh teachers.
        if self.cfg.warmup_epochs == 0 {
            self.calibrate(&data.train);
        }
        Ok(Vec::new())
    }

    fn begin_epoch(&mut self, epoch: usize) {
        self.ctx.epoch = epoch;
        self.distilling = epoch > self.cfg.warmup_epochs;
        self.rank_sums.iter_mut().for_each(|s| *s = 0.0);
        self.teacher_steps = 0;
        self.distilled_rows.iter_mut().for_each(|c| *c = 0);
        self.corrected_rows.iter_mut().for_each(|c| *c = 0);
    }

    fn step(&mut self, batch: &Batch) -> f64 {
        let model = self.model.take().expect("model present between steps");
        let (loss, grads) = if self.steps.is_multiple_of(2) {
            self.teacher_step(&model, batch)
        } else {
            self.student_step(&model, batch)
        };
        self.model = Some(self.optim.step(self.learning_rate, model, grads));
        self.steps += 1;
        loss
    }

    fn end_epoch(&mut self, data: &Dataset) -> Result<BTreeMap<String, f64>, EngineError> {
        let mut stats = self.weighting.stats();
        if self.teacher_steps > 0 {
            for (teacher, sum) in self.teachers.iter().zip(&self.rank_sums) {
                stats.insert(
                    format!("rank_loss/{}", teacher.name),
                    sum / self.teacher_steps as f64,
                );
            }
        }
        for (k, name) in self.task_names.iter().enumerate() {
            if self.taught_by[k].is_empty() {
                continue;
            }
            let distilled = self.distilling && self.cfg.distill_weight > 0.0;
            stats.insert(format!("distilled/{name}"), f64::from(u8::from(distilled)));
            let corrected = if self.distilled_rows[k] > 0 {
                self.corrected_rows[k] as f64 / self.distilled_rows[k] as f64
            } else {
                0.0
            };
            stats.insert(format!("corrected/{name}"), corrected);
        }
        if data.train.n_rows > 0 {
            let aucs = self.calibrate(&data.train);
            for ((teacher, platt), auc) in self.teachers.iter().zip(&self.calibration).zip(aucs) {
                stats.insert(format!("platt_a/{}", teacher.name), platt.a);
                stats.insert(format!("platt_b/{}", teacher.name), platt.b);
                if let Some(auc) = auc {
                    stats.insert(format!("teacher_auc/{}", teacher.name), auc);
                }
            }
        }
        Ok(stats)
    }

    fn predictor(&self) -> Predictor {
        Predictor::Leading {
            model: self.model().valid(),
            n_tasks: self.n_tasks(),
        }
    }

    fn eval_weights(&self) -> Vec<f64> {
        self.weighting.weights()
    }

    fn save_state(&self, snapshot: &mut Snapshot) -> Result<(), EngineError> {
        save_core(snapshot, self.model(), &self.optim, self.weighting.as_ref())?;
        snapshot.put(
            "cross_distil",
            &SavedState {
                calibration: self.calibration.iter().map(|p| (p.a, p.b)).collect(),
                context_step: self.ctx.step,
                steps: self.steps,
                rank_sums: self.rank_sums.clone(),
                teacher_steps: self.teacher_steps,
                distilled_rows: self.distilled_rows.clone(),
                corrected_rows: self.corrected_rows.clone(),
            },
        )
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
        let s: SavedState = snapshot.get(file, "cross_distil")?;
        let (m, t) = (self.teachers.len(), self.n_tasks());
        if s.calibration.len() != m
            || s.rank_sums.len() != m
            || s.distilled_rows.len() != t
            || s.corrected_rows.len() != t
        {
            return Err(crate::stepper::state_damage(
                file,
                "cross-distil",
                format!("not for {t} tasks and {m} teachers"),
            ));
        }
        self.calibration = s
            .calibration
            .into_iter()
            .map(|(a, b)| Platt { a, b })
            .collect();
        self.ctx.step = s.context_step;
        self.steps = s.steps;
        self.rank_sums = s.rank_sums;
        self.teacher_steps = s.teacher_steps;
        self.distilled_rows = s.distilled_rows;
        self.corrected_rows = s.corrected_rows;
        Ok(())
    }
}

/// What [`CrossDistil`] keeps besides its model, optimizer and weighting: the teachers'
/// calibration, the step counters and the epoch's figures so far.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedState {
    calibration: Vec<(f64, f64)>,
    context_step: usize,
    steps: usize,
    rank_sums: Vec<f64>,
    teacher_steps: usize,
    distilled_rows: Vec<usize>,
    corrected_rows: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss_of(scores: &[f32], levels: &[u8]) -> f64 {
        let device = Device::default();
        let s = Tensor::<1>::from_data(TensorData::new(scores.to_vec(), [scores.len()]), &device);
        ranking_loss(s, levels).into_scalar::<f32>() as f64
    }

    fn sp(z: f64) -> f64 {
        (1.0 + z.exp()).ln()
    }

    #[test]
    fn levels_follow_both_orders() {
        // (y_A, y_B) = ++, +-, -+, --.
        let pairs = [(1.0, 1.0), (1.0, 0.0), (0.0, 1.0), (0.0, 0.0)];
        let a_plus: Vec<u8> = pairs.iter().map(|&(a, b)| level(a, b)).collect();
        let b_plus: Vec<u8> = pairs.iter().map(|&(a, b)| level(b, a)).collect();
        // A+: ++ > +- > -+ > --.
        assert_eq!(a_plus, vec![3, 2, 1, 0]);
        // B+: ++ > -+ > +- > --, so +- is below -+.
        assert_eq!(b_plus, vec![3, 1, 2, 0]);
    }

    #[test]
    fn ranking_loss_matches_a_hand_computed_batch() {
        // Rows ++, +-, -+, -- with A+ levels 3, 2, 1, 0 and scores 2, 0, 1, -1 (row +- is
        // scored below -+, against the order). The 6 ordered pairs (i above j), each adding
        // softplus(s_j - s_i):
        //   ++ > +-: sp(0 - 2)  = sp(-2)     ++ > -+: sp(1 - 2) = sp(-1)
        //   ++ > --: sp(-1 - 2) = sp(-3)     +- > -+: sp(1 - 0) = sp(1)
        //   +- > --: sp(-1 - 0) = sp(-1)     -+ > --: sp(-1 - 1) = sp(-2)
        // sp(-3) = 0.048587, sp(-2) = 0.126928, sp(-1) = 0.313262, sp(1) = 1.313262:
        // mean = (0.048587 + 2 * 0.126928 + 2 * 0.313262 + 1.313262) / 6 = 0.373705.
        let scores = [2.0, 0.0, 1.0, -1.0];
        let got = loss_of(&scores, &[3, 2, 1, 0]);
        let want = (sp(-3.0) + 2.0 * sp(-2.0) + 2.0 * sp(-1.0) + sp(1.0)) / 6.0;
        assert!((want - 0.373705).abs() < 1e-6, "{want}");
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        // The same rows under B+ (levels 3, 1, 2, 0): now -+ above +-, which the scores
        // respect: the +-/-+ pair adds sp(0 - 1) = sp(-1) instead of sp(1).
        let got_b = loss_of(&scores, &[3, 1, 2, 0]);
        let want_b = (sp(-2.0) + sp(-1.0) + sp(-3.0) + sp(-1.0) + sp(-2.0) + sp(-1.0)) / 6.0;
        assert!((got_b - want_b).abs() < 1e-5, "{got_b} vs {want_b}");
        // Row order does not matter.
        let got_perm = loss_of(&[-1.0, 1.0, 2.0, 0.0], &[0, 1, 3, 2]);
        assert!((got_perm - want).abs() < 1e-5);
    }

    #[test]
    fn balanced_ranking_loss_weighs_each_pair_of_levels_alike() {
        let device = Device::default();
        let scores = [1.0f32, 0.0, 0.0, 2.0];
        let levels = [2, 1, 0, 0];
        // Pairs: (r0 > r1) sp(-1); (r0 > r2) sp(-1); (r0 > r3) sp(1); (r1 > r2) sp(0);
        // (r1 > r3) sp(2). All rows: their mean over 5 pairs. Balanced: the mean of the level
        // pairs 2>1 (one pair), 2>0 and 1>0 (two pairs each).
        let plain = (2.0 * sp(-1.0) + sp(1.0) + sp(0.0) + sp(2.0)) / 5.0;
        let balanced = (sp(-1.0) + (sp(-1.0) + sp(1.0)) / 2.0 + (sp(0.0) + sp(2.0)) / 2.0) / 3.0;
        assert!((loss_of(&scores, &levels) - plain).abs() < 1e-5);
        let s = Tensor::<1>::from_data(TensorData::new(scores.to_vec(), [4]), &device);
        let got = balanced_ranking_loss(s, &levels).into_scalar::<f32>() as f64;
        assert!((got - balanced).abs() < 1e-5, "{got} vs {balanced}");
        // One row per level: both weightings agree (the hand-built A+ batch).
        let s = Tensor::<1>::from_data(TensorData::new(vec![2.0f32, 0.0, 1.0, -1.0], [4]), &device);
        let got = balanced_ranking_loss(s, &[3, 2, 1, 0]).into_scalar::<f32>() as f64;
        assert!((got - 0.373705).abs() < 1e-5, "{got}");
    }

    #[test]
    fn ranking_loss_vanishes_on_a_perfect_order_and_without_pairs() {
        let perfect = loss_of(&[30.0, 10.0, -10.0, -30.0], &[3, 2, 1, 0]);
        assert!(perfect < 1e-6, "{perfect}");
        let reversed = loss_of(&[-30.0, -10.0, 10.0, 30.0], &[3, 2, 1, 0]);
        assert!(reversed > 19.0, "{reversed}");
        // Ties in level are not pairs: equal levels only -> 0.
        assert_eq!(loss_of(&[1.0, -4.0, 2.0], &[2, 2, 2]), 0.0);
        // Duplicated levels: 2 rows at 1 over 2 rows at 0 give 4 pairs, all with margin 0.
        let flat = loss_of(&[0.0; 4], &[1, 1, 0, 0]);
        assert!((flat - 2f64.ln()).abs() < 1e-5, "{flat}");
    }

    #[test]
    fn ranking_loss_gradient_pushes_scores_into_order() {
        let device = Device::default().autodiff();
        let s =
            Tensor::<1>::from_data(TensorData::new(vec![0.0f32, 0.0], [2]), &device).require_grad();
        let grads = ranking_loss(s.clone(), &[1, 0]).backward();
        let g: Vec<f32> = s.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
        // d/ds_0 softplus(s_1 - s_0) = -sigmoid(0) = -0.5, and +0.5 for s_1.
        assert!(
            (g[0] + 0.5).abs() < 1e-6 && (g[1] - 0.5).abs() < 1e-6,
            "{g:?}"
        );
    }

    fn logistic_sample(a: f64, b: f64, n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                // Box-Muller: a standard normal from two uniforms.
                let u: f64 = rng.random::<f64>().max(1e-300);
                let normal = (-2.0 * u.ln()).sqrt()
                    * (2.0 * std::f64::consts::PI * rng.random::<f64>()).cos();
                let s = 3.0 * normal + 1.0;
                let y = rng.random::<f64>() < sigmoid(a * s + b);
                (s as f32, if y { 1.0 } else { 0.0 })
            })
            .unzip()
    }

    #[test]
    fn platt_recovers_a_logistic_model() {
        for (a, b) in [(1.5, -0.7), (0.4, -2.5), (3.0, 1.0)] {
            let (s, y) = logistic_sample(a, b, 100_000, 7);
            let fit = Platt::fit(&s, &y);
            assert!((fit.a - a).abs() < 0.05 * a, "a: {fit:?} vs {a}");
            assert!((fit.b - b).abs() < 0.06, "b: {fit:?} vs {b}");
        }
    }

    #[test]
    fn platt_is_monotone_and_falls_back_to_the_base_rate() {
        let (s, y) = logistic_sample(0.8, 0.2, 5000, 3);
        let fit = Platt::fit(&s, &y);
        assert!(fit.a > 0.0);
        let mut prev = 0.0;
        for i in -100..=100 {
            let p = fit.apply(i as f64 / 5.0);
            assert!(p >= prev && (0.0..=1.0).contains(&p));
            prev = p;
        }
        // Scores ranking against the labels: slope clamped to 0, the base rate predicted.
        let flipped: Vec<f32> = s.iter().map(|v| -v).collect();
        let fit = Platt::fit(&flipped, &y);
        let rate = y.iter().map(|&v| v as f64).sum::<f64>() / y.len() as f64;
        assert_eq!(fit.a, 0.0);
        assert!((fit.apply(123.0) - rate).abs() < 1e-9);
        // A single class, or constant scores: the base rate as well.
        let one = Platt::fit(&s, &vec![1.0; s.len()]);
        assert_eq!(one.a, 0.0);
        assert!(one.apply(0.0) > 0.99);
        let flat = Platt::fit(&vec![2.0; 100], &y[..100]);
        assert_eq!(flat.a, 0.0);
        // Separable data stays finite and sharp.
        let sep = Platt::fit(&[-2.0, -1.0, 1.0, 2.0], &[0.0, 0.0, 1.0, 1.0]);
        assert!(
            sep.a.is_finite() && sep.a > 1.0 && sep.apply(1.0) > 0.9,
            "{sep:?}"
        );
    }

    fn meta_without_tasks() -> FeatureMeta {
        FeatureMeta {
            sparse_names: vec!["cat".into()],
            vocab_sizes: vec![4],
            bags: Vec::new(),
            dense_names: vec!["x".into()],
            task_names: Vec::new(),
            task_kinds: Vec::new(),
        }
    }

    #[test]
    fn teacher_meta_appends_two_outputs_per_pair_of_binary_tasks() {
        let meta = FeatureMeta {
            task_names: vec!["ctr".into(), "dwell".into(), "cvr".into(), "like".into()],
            task_kinds: vec![
                TaskKind::Binary,
                TaskKind::Regression,
                TaskKind::Binary,
                TaskKind::Binary,
            ],
            ..meta_without_tasks()
        };
        let c = CrossDistilConfig::default();
        let out = teacher_meta(&c, &meta).unwrap();
        assert_eq!(
            out.task_names[4..],
            [
                "ctr>cvr", "cvr>ctr", "ctr>like", "like>ctr", "cvr>like", "like>cvr"
            ]
        );
        assert_eq!(out.task_kinds.len(), 10);
        assert!(out.task_kinds[4..].iter().all(|k| *k == TaskKind::Binary));
        let t = teachers(&meta);
        assert_eq!((t[1].primary, t[1].secondary), (2, 0));
        let single = FeatureMeta {
            task_names: vec!["ctr".into(), "dwell".into()],
            task_kinds: vec![TaskKind::Binary, TaskKind::Regression],
            ..meta_without_tasks()
        };
        assert!(matches!(
            teacher_meta(&c, &single),
            Err(EngineError::Invalid(_))
        ));
    }

    #[test]
    fn config_defaults_and_ranges() {
        let c: CrossDistilConfig = toml::from_str("").unwrap();
        assert_eq!(c, CrossDistilConfig::default());
        assert!(c.validate().is_ok());
        let c: CrossDistilConfig = toml::from_str("distill_weight = 1.5").unwrap();
        assert!(c.validate().is_err());
        let c: CrossDistilConfig = toml::from_str("calibration_rows = 0").unwrap();
        assert!(c.validate().is_err());
        assert!(toml::from_str::<CrossDistilConfig>("lambda = 0.3").is_err());
    }
}
