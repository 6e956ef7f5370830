//! CSM / contrastive sharing (Bai et al., WWW 2022; spec §3): sparse sharing (one binary
//! mask per task over the shared weights, tasks trained alternately batch by batch) in which
//! the parameters several masks keep (*conflicting* ones) are updated mainly by the task
//! they matter most to, as decided by a contrastive measure of each parameter's contribution.
//!
//! The paper's formulas are not public; what follows is our design.
//!
//! - **Contribution** (the learnt mask score). At each step of task `t`,
//!   `c_t <- decay * c_t + (1 - decay) * |W * dL_t/dW_eff|` over *all* shared positions,
//!   `W_eff = W * m_t`: the first-order loss change when the weight is removed from (or put
//!   back into) task `t`'s sub-network. The gradient exists where `m_t` is 0 too, so a pruned
//!   weight can come back: the masks are learnt, not only pruned. `dL_t` is the task loss
//!   alone (the contrastive term's constant factor is divided out).
//! - **Masks.** After each of the first `prune_epochs` epochs, `m_t` = the top-`k` positions
//!   of `c_t`, the density falling linearly from 1 to `keep`; later epochs re-select at
//!   `keep`.
//! - **Ownership.** A position kept by several masks is conflicting; its owner is the keeping
//!   task with the largest contribution divided by that task's mean contribution over the
//!   shared weights (tasks with different loss scales compare). A step of task `t` scales the
//!   gradient by 1 where it keeps a position that is not conflicting or that it owns, by
//!   `conflict_scale` where another task owns it. One Adam serves all tasks, so its per-weight
//!   normalisation mixes both tasks' gradients and the ratio survives. Ownership is
//!   recomputed after the first `10 * T` steps and at every epoch end.
//! - **Contrast.** Each step draws a negative sub-network: a random mask of `m_t`'s density
//!   (seeded). Its loss `L_neg` (no gradient) enters the objective
//!   `L_own + contrast_weight * relu(margin + L_own - L_neg)`: the task's sub-network must beat
//!   random sub-networks of its size by `margin`.
//!
//! Figures per epoch: [`mask_stats`] (its `shared/kept` is the share of kept positions that
//! are conflicting), `owned/<task>` (share of conflicting positions the task owns) and
//! `contrast/<task>` (mean `L_neg - L_own` over the epoch's steps).

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use mtrec_arch::Model;
use mtrec_data::{Batch, Dataset, TaskKind};
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};

use super::lt4rec::probe_batch;
use super::masks::{Mask, SharedWeights, mask_stats};
use super::subnet::{SubNetworks, device_parts, host_parts};
use super::{Predictor, Trainer};
use crate::resume::Snapshot;
use crate::stepper::state_damage;
use crate::{EngineError, ExperimentConfig, Observer};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CsmConfig {
    /// Final fraction of the shared weights each task keeps.
    pub keep: f64,
    /// Epochs over which the masks shrink (linearly in density from 1 to `keep`).
    pub prune_epochs: usize,
    /// EMA factor of the contributions.
    pub score_decay: f64,
    /// How much a task updates a conflicting weight another task owns.
    pub conflict_scale: f64,
    /// Weight of the contrastive term against negative sub-networks.
    pub contrast_weight: f64,
    /// Loss margin the own sub-network must beat negatives by.
    pub margin: f64,
}

impl Default for CsmConfig {
    fn default() -> Self {
        Self {
            keep: 0.5,
            prune_epochs: 3,
            score_decay: 0.9,
            conflict_scale: 0.1,
            contrast_weight: 0.1,
            margin: 0.05,
        }
    }
}

impl CsmConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.keep > 0.0 && self.keep <= 1.0) {
            return Err(format!("keep must be in (0, 1], got {}", self.keep));
        }
        if self.prune_epochs == 0 {
            return Err("prune_epochs must be >= 1".into());
        }
        if !(0.0..1.0).contains(&self.score_decay) {
            return Err(format!(
                "score_decay must be in [0, 1), got {}",
                self.score_decay
            ));
        }
        if !(0.0..=1.0).contains(&self.conflict_scale) {
            return Err(format!(
                "conflict_scale must be in [0, 1], got {}",
                self.conflict_scale
            ));
        }
        for (name, v) in [
            ("contrast_weight", self.contrast_weight),
            ("margin", self.margin),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name} must be finite and >= 0, got {v}"));
            }
        }
        Ok(())
    }
}

/// Who owns the conflicting positions.
#[derive(Debug, Clone)]
pub struct Ownership {
    /// 1 where several masks keep the position.
    pub conflict: Vec<Tensor<1>>,
    /// Per task: 1 where the position is conflicting and the task owns it.
    pub owner: Vec<Vec<Tensor<1>>>,
}

impl Ownership {
    /// The owner of each conflicting position: the keeping task with the largest
    /// contribution over its mean contribution (`scores[t]` per shared tensor).
    pub fn compute(masks: &[Mask], scores: &[Vec<Tensor<1>>]) -> Self {
        let total = masks.first().map(|m| m.len()).unwrap_or(0).max(1) as f64;
        let means: Vec<f64> = scores
            .iter()
            .map(|s| {
                let sum: f64 = s
                    .iter()
                    .map(|p| p.clone().sum().into_scalar::<f32>() as f64)
                    .sum();
                (sum / total).max(1e-30)
            })
            .collect();
        let n_parts = masks.first().map(|m| m.parts.len()).unwrap_or(0);
        let mut conflict = Vec::with_capacity(n_parts);
        let mut owner: Vec<Vec<Tensor<1>>> = vec![Vec::with_capacity(n_parts); masks.len()];
        for p in 0..n_parts {
            let count = masks
                .iter()
                .map(|m| m.parts[p].clone())
                .reduce(|a, b| a + b)
                .expect("at least one task");
            let c = count.greater_equal_elem(2.0).float();
            // Normalised contributions, -1 where the task does not keep the position.
            let norms: Vec<Tensor<1>> = masks
                .iter()
                .zip(scores)
                .zip(&means)
                .map(|((m, s), &mean)| {
                    let m = m.parts[p].clone();
                    s[p].clone() / mean * m.clone() + (m - 1.0)
                })
                .collect();
            let n = c.dims()[0];
            let best = Tensor::stack::<2>(norms, 0).argmax(0).reshape([n]);
            for (t, o) in owner.iter_mut().enumerate() {
                o.push(best.clone().equal_elem(t as i64).float() * c.clone());
            }
            conflict.push(c);
        }
        Self { conflict, owner }
    }

    /// Task `t`'s gradient scale: `m_t`, times `conflict_scale` where another task owns.
    pub fn update_mask(&self, mask: &Mask, t: usize, conflict_scale: f64) -> Mask {
        Mask {
            parts: mask
                .parts
                .iter()
                .zip(&self.conflict)
                .zip(&self.owner[t])
                .map(|((m, c), o)| {
                    let foreign = c.clone() * (o.clone().neg() + 1.0);
                    m.clone() * (foreign * (conflict_scale - 1.0) + 1.0)
                })
                .collect(),
        }
    }

    fn count(parts: &[Tensor<1>]) -> f64 {
        parts
            .iter()
            .map(|p| p.clone().sum().into_scalar::<f32>() as f64)
            .sum()
    }
}

pub struct Csm {
    /// `None` until `prepare` has found the shared weights (it needs a batch).
    nets: Option<SubNetworks>,
    initial: Option<Model>,
    config: CsmConfig,
    experiment: ExperimentConfig,
    names: Vec<String>,
    kinds: Vec<TaskKind>,
    device: Device,
    /// Per task, per shared tensor: the EMA contributions.
    scores: Vec<Vec<Tensor<1>>>,
    ownership: Option<Ownership>,
    /// Per task: the gradient scales of its steps (from `ownership`).
    updates: Vec<Mask>,
    kept: Vec<usize>,
    /// The negatives' draws: ChaCha12 (what `StdRng` is), named so that its position in the
    /// stream can be saved and set back.
    rng: ChaCha12Rng,
    step: usize,
    epoch: usize,
    /// Per task: sum of `L_neg - L_own` and steps this epoch.
    contrast: Vec<(f64, usize)>,
}

impl Csm {
    pub fn new(
        model: Model,
        config: &CsmConfig,
        cfg: &ExperimentConfig,
        data: &Dataset,
        device: &Device,
    ) -> Result<Self, EngineError> {
        config.validate().map_err(EngineError::Invalid)?;
        let meta = data.meta();
        let n = meta.task_kinds.len();
        Ok(Self {
            nets: None,
            initial: Some(model),
            config: config.clone(),
            experiment: cfg.clone(),
            names: meta.task_names,
            kinds: meta.task_kinds,
            device: device.clone(),
            scores: Vec::new(),
            ownership: None,
            updates: Vec::new(),
            kept: Vec::new(),
            rng: ChaCha12Rng::seed_from_u64(cfg.train.seed ^ 0xC5A1_C5A1),
            step: 0,
            epoch: 0,
            contrast: vec![(0.0, 0); n],
        })
    }

    fn nets(&self) -> &SubNetworks {
        self.nets.as_ref().expect("prepare() runs before training")
    }

    /// The tasks' masks (after `prepare`).
    pub fn masks(&self) -> &[Mask] {
        &self.nets().masks
    }

    /// The current ownership of conflicting positions (once computed).
    pub fn ownership(&self) -> Option<&Ownership> {
        self.ownership.as_ref()
    }

    fn refresh_ownership(&mut self) {
        let nets = self.nets.as_ref().expect("prepare() runs before training");
        let own = Ownership::compute(&nets.masks, &self.scores);
        self.updates = (0..self.kinds.len())
            .map(|t| own.update_mask(&nets.masks[t], t, self.config.conflict_scale))
            .collect();
        self.ownership = Some(own);
    }

    /// A random mask keeping `k` of the shared positions.
    fn negative(&mut self, k: usize) -> Mask {
        let nets = self.nets.as_ref().expect("prepare() runs before training");
        let sizes: Vec<usize> = nets.full.iter().map(|w| w.dims()[0]).collect();
        let total: usize = sizes.iter().sum();
        let mut flat = vec![0.0f32; total];
        for i in rand::seq::index::sample(&mut self.rng, total, k.min(total)) {
            flat[i] = 1.0;
        }
        let device = nets.full[0].device();
        let mut start = 0;
        let parts = sizes
            .iter()
            .map(|&n| {
                let part = flat[start..start + n].to_vec();
                start += n;
                Tensor::<1>::from_data(TensorData::new(part, [n]), &device)
            })
            .collect();
        Mask { parts }
    }
}

impl Trainer for Csm {
    fn prepare(
        &mut self,
        data: &Dataset,
        _observer: &mut dyn Observer,
    ) -> Result<Vec<serde_json::Value>, EngineError> {
        let model = self.initial.take().expect("prepare() runs once");
        let probe = probe_batch(data, &self.experiment)?;
        let shared = SharedWeights::discover(&model, &probe, &self.kinds, &self.device)?;
        let nets = SubNetworks::new(
            model,
            shared,
            &self.experiment,
            self.kinds.clone(),
            &self.device,
        );
        let zeros: Vec<Tensor<1>> = nets.full.iter().map(|w| w.zeros_like()).collect();
        self.scores = vec![zeros; self.kinds.len()];
        self.kept = vec![nets.shared.len(); self.kinds.len()];
        let log = vec![serde_json::json!({
            "phase": "csm", "shared": nets.shared.names(), "weights": nets.shared.len(),
        })];
        self.nets = Some(nets);
        self.refresh_ownership();
        Ok(log)
    }

    fn begin_epoch(&mut self, epoch: usize) {
        self.epoch = epoch;
        self.contrast = vec![(0.0, 0); self.kinds.len()];
    }

    fn step(&mut self, batch: &Batch) -> f64 {
        let t = self.step % self.kinds.len();
        self.step += 1;
        let negative = self.negative(self.kept[t]);
        let (weight, margin) = (self.config.contrast_weight, self.config.margin);
        let nets = self.nets.as_mut().expect("prepare() runs before training");
        let l_neg = nets.loss_with(batch, t, &negative);
        let before = nets.full.clone();
        let mut own = 0.0;
        let mut factor = 1.0;
        let step = nets.step_task(
            batch,
            t,
            |l| {
                own = l.clone().into_scalar::<f32>() as f64;
                if weight > 0.0 && margin + own - l_neg > 0.0 {
                    // relu(margin + L_own - L_neg) is active: d/dL_own = 1 + weight.
                    factor = 1.0 + weight;
                    l.clone() + (l * weight + weight * (margin - l_neg))
                } else {
                    l
                }
            },
            Some(&self.updates[t]),
        );
        let decay = self.config.score_decay;
        for ((c, g), w) in self.scores[t].iter_mut().zip(&step.grads).zip(&before) {
            if let Some(g) = g {
                let contribution = (w.clone() * g.clone()).abs() / factor;
                *c = c.clone() * decay + contribution * (1.0 - decay);
            }
        }
        let entry = &mut self.contrast[t];
        entry.0 += l_neg - own;
        entry.1 += 1;
        if self.step == 10 * self.kinds.len() {
            self.refresh_ownership();
        }
        step.loss
    }

    fn end_epoch(&mut self, _data: &Dataset) -> Result<BTreeMap<String, f64>, EngineError> {
        let total = self.nets().shared.len();
        let progress = (self.epoch as f64 / self.config.prune_epochs as f64).min(1.0);
        let density = 1.0 - (1.0 - self.config.keep) * progress;
        let k = (density * total as f64).round() as usize;
        let nets = self.nets.as_mut().expect("prepare() runs before training");
        for (t, scores) in self.scores.iter().enumerate() {
            nets.masks[t] = Mask::top(scores, None, k);
        }
        self.kept = vec![k.min(total); self.kinds.len()];
        self.refresh_ownership();

        let mut stats = mask_stats(self.masks(), &self.names);
        let own = self.ownership.as_ref().expect("just computed");
        // The share of kept positions that conflict is `mask_stats`' `shared/kept`.
        let conflicting = Ownership::count(&own.conflict);
        for (t, name) in self.names.iter().enumerate() {
            let owned = Ownership::count(&own.owner[t]);
            stats.insert(format!("owned/{name}"), owned / conflicting.max(1.0));
            let (sum, n) = self.contrast[t];
            stats.insert(format!("contrast/{name}"), sum / n.max(1) as f64);
        }
        Ok(stats)
    }

    fn predictor(&self) -> Predictor {
        self.nets().predictor()
    }

    fn eval_weights(&self) -> Vec<f64> {
        vec![1.0 / self.kinds.len() as f64; self.kinds.len()]
    }

    fn save_state(&self, snapshot: &mut Snapshot) -> Result<(), EngineError> {
        self.nets().save_state(snapshot)?;
        let own = self.ownership.as_ref().expect("computed in prepare");
        snapshot.put(
            "csm",
            &SavedState {
                scores: self.scores.iter().map(|s| host_parts(s)).collect(),
                conflict: host_parts(&own.conflict),
                owner: own.owner.iter().map(|o| host_parts(o)).collect(),
                updates: self.updates.iter().map(|u| host_parts(&u.parts)).collect(),
                kept: self.kept.clone(),
                rng_word: self.rng.get_word_pos(),
                step: self.step,
                epoch: self.epoch,
                contrast: self.contrast.clone(),
            },
        )
    }

    fn load_state(
        &mut self,
        snapshot: &Snapshot,
        file: &Path,
        data: &Dataset,
    ) -> Result<(), EngineError> {
        let model = self.initial.take().expect("a fresh trainer has its model");
        let probe = probe_batch(data, &self.experiment)?;
        let nets = SubNetworks::restore(
            model,
            snapshot,
            file,
            &probe,
            &self.experiment,
            self.kinds.clone(),
            &self.device,
        )?;
        let s: SavedState = snapshot.get(file, "csm")?;
        let n = self.kinds.len();
        if s.scores.len() != n
            || s.owner.len() != n
            || s.updates.len() != n
            || s.kept.len() != n
            || s.contrast.len() != n
        {
            return Err(state_damage(file, "csm", format!("not for {n} tasks")));
        }
        let parts = |v: Vec<Vec<f32>>| device_parts(file, v, &nets.full);
        self.scores = s.scores.into_iter().map(parts).collect::<Result<_, _>>()?;
        self.ownership = Some(Ownership {
            conflict: parts(s.conflict)?,
            owner: s.owner.into_iter().map(parts).collect::<Result<_, _>>()?,
        });
        self.updates = s
            .updates
            .into_iter()
            .map(|u| Ok(Mask { parts: parts(u)? }))
            .collect::<Result<_, EngineError>>()?;
        self.kept = s.kept;
        self.rng.set_word_pos(s.rng_word);
        self.step = s.step;
        self.epoch = s.epoch;
        self.contrast = s.contrast;
        self.nets = Some(nets);
        Ok(())
    }
}

/// What [`Csm`] keeps besides its sub-networks: the contribution scores, the ownership of
/// conflicting positions and the update masks drawn from it, the random stream's position,
/// the counters and the epoch's contrast figures.
#[derive(Serialize, Deserialize)]
struct SavedState {
    scores: Vec<Vec<Vec<f32>>>,
    conflict: Vec<Vec<f32>>,
    owner: Vec<Vec<Vec<f32>>>,
    updates: Vec<Vec<Vec<f32>>>,
    kept: Vec<usize>,
    rng_word: u128,
    step: usize,
    epoch: usize,
    contrast: Vec<(f64, usize)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32]) -> Tensor<1> {
        Tensor::<1>::from_floats(v, &Device::default())
    }

    fn host(p: &Tensor<1>) -> Vec<f32> {
        p.clone().into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn owner_is_the_keeping_task_with_the_largest_normalised_contribution() {
        // Four positions. Task a keeps 0, 1, 2; task b keeps 1, 2, 3: 1 and 2 conflict.
        let a = Mask {
            parts: vec![t(&[1.0, 1.0, 1.0, 0.0])],
        };
        let b = Mask {
            parts: vec![t(&[0.0, 1.0, 1.0, 1.0])],
        };
        // Task b's losses are 100x larger: raw, b would own both; normalised by the means
        // (a: 1.0, b: 100.0), a owns position 1 (2.0 vs 1.0) and b position 2 (0.5 vs 2.0).
        let scores = vec![
            vec![t(&[1.0, 2.0, 0.5, 0.5])],
            vec![t(&[100.0, 100.0, 200.0, 0.0])],
        ];
        let own = Ownership::compute(&[a.clone(), b.clone()], &scores);
        assert_eq!(host(&own.conflict[0]), vec![0.0, 1.0, 1.0, 0.0]);
        assert_eq!(host(&own.owner[0][0]), vec![0.0, 1.0, 0.0, 0.0]);
        assert_eq!(host(&own.owner[1][0]), vec![0.0, 0.0, 1.0, 0.0]);
        // Task a moves its unconflicted and owned positions fully, b's at 0.1, nothing else.
        let ua = host(&own.update_mask(&a, 0, 0.1).parts[0]);
        let ub = host(&own.update_mask(&b, 1, 0.1).parts[0]);
        for (got, want) in ua.iter().zip([1.0, 1.0, 0.1, 0.0]) {
            assert!((got - want).abs() < 1e-6, "{ua:?}");
        }
        for (got, want) in ub.iter().zip([0.0, 0.1, 1.0, 1.0]) {
            assert!((got - want).abs() < 1e-6, "{ub:?}");
        }
    }

    #[test]
    fn a_task_that_does_not_keep_a_position_never_owns_it() {
        // Position 0 is kept by b and c only; a's huge score there does not count.
        let masks = [
            Mask {
                parts: vec![t(&[0.0, 1.0])],
            },
            Mask {
                parts: vec![t(&[1.0, 1.0])],
            },
            Mask {
                parts: vec![t(&[1.0, 0.0])],
            },
        ];
        let scores = vec![
            vec![t(&[50.0, 1.0])],
            vec![t(&[1.0, 3.0])],
            vec![t(&[2.0, 1.0])],
        ];
        let own = Ownership::compute(&masks, &scores);
        assert_eq!(host(&own.owner[0][0]), vec![0.0, 0.0]);
        assert_eq!(host(&own.owner[1][0]), vec![0.0, 1.0]);
        assert_eq!(host(&own.owner[2][0]), vec![1.0, 0.0]);
    }

    #[test]
    fn config_ranges_are_checked() {
        assert!(CsmConfig::default().validate().is_ok());
        let bad = [
            CsmConfig {
                keep: 0.0,
                ..Default::default()
            },
            CsmConfig {
                keep: 1.5,
                ..Default::default()
            },
            CsmConfig {
                prune_epochs: 0,
                ..Default::default()
            },
            CsmConfig {
                score_decay: 1.0,
                ..Default::default()
            },
            CsmConfig {
                conflict_scale: -0.1,
                ..Default::default()
            },
            CsmConfig {
                contrast_weight: f64::NAN,
                ..Default::default()
            },
            CsmConfig {
                margin: -1.0,
                ..Default::default()
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
        let parsed: CsmConfig = toml::from_str("keep = 0.3\nprune_epochs = 2\n").unwrap();
        assert_eq!(parsed.keep, 0.3);
        assert_eq!(parsed.margin, CsmConfig::default().margin);
        assert!(toml::from_str::<CsmConfig>("kep = 0.3\n").is_err());
    }
}
