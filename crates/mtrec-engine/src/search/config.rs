//! The `[search]` section: the PD-DARTS schedule, as a named preset plus overrides.
//!
//! Two presets. `paper` is the spec's settings from the authors' code (spec §4): on their million-row data sets 3 joint
//! epochs are thousands of architecture steps at learning rate 1e-3. `decide` (the default)
//! keeps the authors' schedule and adds the rule that makes the architecture decide on data of
//! any size (docs/automtl.md has the measurements behind it):
//!
//! - **Learning rate by reach.** Adam moves a parameter by at most about its learning rate per
//!   step, so over `S` joint-phase architecture steps a logit or op weight can move by about
//!   `lr * S`. The architecture learning rate is `max(arch_learning_rate, arch_reach / S)`:
//!   small data (Census: 75 steps) gets a larger rate, large data keeps the authors' one.
//! - **Regulariser** ([`mtrec_arch::automtl::ArchRegularisation`], applied by a decoupled
//!   gradient step at the architecture learning rate): a constant gate cost so that keeping an
//!   input has a price, and a sharpening term ramped linearly from 0 to its weight over the
//!   joint phase, so that what the data started is finished.
//!
//! A preset only supplies defaults: every key set in the file overrides it, and a written
//! config (a checkpoint's `config.toml`) lists every value, so it reads back identically.

use serde::{Deserialize, Serialize};

/// How gates are discretised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateSchedule {
    /// Binarise every gate (`p > 0.5`) at the end of phase 2 (the authors' code).
    #[default]
    End,
    /// Also fix the `gates_per_epoch` most decided gates (largest `|p - 0.5|`) after every
    /// phase-2 epoch (the paper's selection-probability criterion).
    Progressive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SearchPreset {
    /// The authors' schedule plus the rule that makes it decide on small data.
    #[default]
    Decide,
    /// The spec's settings from the authors' code: no regulariser, architecture learning rate
    /// 1e-3 (gates sampled, as the paper describes; `sample_gates = false` is their code).
    Paper,
}

/// The resolved `[search]` section; the finetune phase is the `[train]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawSearchConfig")]
pub struct SearchConfig {
    /// Where the defaults of every key below came from.
    pub preset: SearchPreset,
    /// Phase 1: weights only, every gate on.
    pub warmup_epochs: usize,
    /// Phase 2: weights and architecture parameters jointly, with discretisation.
    pub joint_epochs: usize,
    /// MoO blocks fixed after each phase-2 epoch (lowest normalised entropy first).
    pub blocks_per_epoch: usize,
    pub gates: GateSchedule,
    pub gates_per_epoch: usize,
    /// Bernoulli-sampled gates in phase 2 (the paper); `false` keeps their forward value at 1
    /// and trains them only through the straight-through gradient (the authors' code).
    pub sample_gates: bool,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// The floor of the architecture learning rate (the authors' 1e-3).
    pub arch_learning_rate: f64,
    pub arch_weight_decay: f64,
    /// How far (in logit units) a consistently pushed architecture parameter can move over the
    /// joint phase: the architecture learning rate is at least `arch_reach / joint steps`.
    /// 0 switches the rule off.
    pub arch_reach: f64,
    /// Per free gate element: `gate_cost * p` (the expected number of kept inputs), as a
    /// fraction of Adam's largest step.
    pub gate_cost: f64,
    /// At the end of the joint phase (ramped from 0): `-sharpen * |a|` per free gate logit and
    /// `-sharpen * log q_leader` per mixed block.
    pub sharpen: f64,
    /// Per mixed block: `op_cost * sum_i q_i h_i / h_max`, the expected hidden width.
    pub op_cost: f64,
    /// Fraction of the training split held out from the weights for the whole search and used
    /// only for architecture steps (first-order bilevel DARTS); 0 = single-level, every
    /// training batch steps both (the authors' code). Held-out rows cannot be memorised by the
    /// weights, so an input that only helps memorise (a high-cardinality id) earns no credit
    /// there. The finetune trains on the whole training split.
    pub arch_holdout: f64,
    /// Candidates of a mixed block whose weight falls below this are no longer evaluated
    /// (their products are the search's main cost; the leader always runs); 0 = every
    /// candidate always runs, as in the authors' code.
    pub prune_below: f64,
    /// Cap on the batches of a search epoch (quick runs); 0 = all.
    pub max_batches_per_epoch: usize,
}

impl SearchPreset {
    pub fn defaults(self) -> SearchConfig {
        let paper = SearchConfig {
            preset: SearchPreset::Paper,
            warmup_epochs: 2,
            joint_epochs: 3,
            blocks_per_epoch: 10,
            gates: GateSchedule::End,
            gates_per_epoch: 0,
            sample_gates: true,
            batch_size: 2048,
            learning_rate: 1e-3,
            weight_decay: 1e-5,
            arch_learning_rate: 1e-3,
            arch_weight_decay: 1e-6,
            arch_reach: 0.0,
            gate_cost: 0.0,
            sharpen: 0.0,
            op_cost: 0.0,
            arch_holdout: 0.0,
            prune_below: 0.0,
            max_batches_per_epoch: 0,
        };
        match self {
            SearchPreset::Paper => paper,
            // docs/automtl.md says how each value was chosen and measured.
            SearchPreset::Decide => SearchConfig {
                preset: SearchPreset::Decide,
                arch_reach: 4.0,
                gate_cost: 0.5,
                sharpen: 10.0,
                op_cost: 2.0,
                prune_below: 1e-3,
                ..paper
            },
        }
    }
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchPreset::default().defaults()
    }
}

/// What a file may say: every key optional, filled from the preset.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSearchConfig {
    preset: Option<SearchPreset>,
    warmup_epochs: Option<usize>,
    joint_epochs: Option<usize>,
    blocks_per_epoch: Option<usize>,
    gates: Option<GateSchedule>,
    gates_per_epoch: Option<usize>,
    sample_gates: Option<bool>,
    batch_size: Option<usize>,
    learning_rate: Option<f64>,
    weight_decay: Option<f64>,
    arch_learning_rate: Option<f64>,
    arch_weight_decay: Option<f64>,
    arch_reach: Option<f64>,
    gate_cost: Option<f64>,
    sharpen: Option<f64>,
    op_cost: Option<f64>,
    arch_holdout: Option<f64>,
    prune_below: Option<f64>,
    max_batches_per_epoch: Option<usize>,
}

impl From<RawSearchConfig> for SearchConfig {
    fn from(r: RawSearchConfig) -> Self {
        let d = r.preset.unwrap_or_default().defaults();
        SearchConfig {
            preset: d.preset,
            warmup_epochs: r.warmup_epochs.unwrap_or(d.warmup_epochs),
            joint_epochs: r.joint_epochs.unwrap_or(d.joint_epochs),
            blocks_per_epoch: r.blocks_per_epoch.unwrap_or(d.blocks_per_epoch),
            gates: r.gates.unwrap_or(d.gates),
            gates_per_epoch: r.gates_per_epoch.unwrap_or(d.gates_per_epoch),
            sample_gates: r.sample_gates.unwrap_or(d.sample_gates),
            batch_size: r.batch_size.unwrap_or(d.batch_size),
            learning_rate: r.learning_rate.unwrap_or(d.learning_rate),
            weight_decay: r.weight_decay.unwrap_or(d.weight_decay),
            arch_learning_rate: r.arch_learning_rate.unwrap_or(d.arch_learning_rate),
            arch_weight_decay: r.arch_weight_decay.unwrap_or(d.arch_weight_decay),
            arch_reach: r.arch_reach.unwrap_or(d.arch_reach),
            gate_cost: r.gate_cost.unwrap_or(d.gate_cost),
            sharpen: r.sharpen.unwrap_or(d.sharpen),
            op_cost: r.op_cost.unwrap_or(d.op_cost),
            arch_holdout: r.arch_holdout.unwrap_or(d.arch_holdout),
            prune_below: r.prune_below.unwrap_or(d.prune_below),
            max_batches_per_epoch: r.max_batches_per_epoch.unwrap_or(d.max_batches_per_epoch),
        }
    }
}

impl SearchConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_size == 0 {
            return Err("search.batch_size must be >= 1".into());
        }
        for (name, v) in [
            ("learning_rate", self.learning_rate),
            ("arch_learning_rate", self.arch_learning_rate),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("search.{name} must be > 0, got {v}"));
            }
        }
        for (name, v) in [
            ("weight_decay", self.weight_decay),
            ("arch_weight_decay", self.arch_weight_decay),
            ("arch_reach", self.arch_reach),
            ("gate_cost", self.gate_cost),
            ("sharpen", self.sharpen),
            ("op_cost", self.op_cost),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("search.{name} must be >= 0, got {v}"));
            }
        }
        if !(self.arch_holdout.is_finite() && (0.0..=0.5).contains(&self.arch_holdout)) {
            return Err(format!(
                "search.arch_holdout must be in [0, 0.5], got {}",
                self.arch_holdout
            ));
        }
        if !(self.prune_below.is_finite() && (0.0..0.5).contains(&self.prune_below)) {
            return Err(format!(
                "search.prune_below must be in [0, 0.5), got {}",
                self.prune_below
            ));
        }
        if self.warmup_epochs + self.joint_epochs == 0 {
            return Err("search.warmup_epochs + joint_epochs must be >= 1".into());
        }
        Ok(())
    }

    /// The architecture learning rate for a joint phase of `joint_steps` architecture steps.
    pub fn effective_arch_learning_rate(&self, joint_steps: usize) -> f64 {
        if self.arch_reach > 0.0 && joint_steps > 0 {
            self.arch_learning_rate
                .max(self.arch_reach / joint_steps as f64)
        } else {
            self.arch_learning_rate
        }
    }

    /// The regulariser weights after `done` of `total` joint-phase steps: the gate cost is
    /// constant, sharpening ramps linearly from 0.
    pub fn regularisation(
        &self,
        done: usize,
        total: usize,
    ) -> mtrec_arch::automtl::ArchRegularisation {
        let ramp = if total == 0 {
            1.0
        } else {
            (done as f64 / total as f64).min(1.0)
        };
        mtrec_arch::automtl::ArchRegularisation {
            gate_cost: self.gate_cost,
            sharpen: self.sharpen * ramp,
            op_cost: self.op_cost,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preset_fills_what_the_file_leaves_out_and_reads_back_identically() {
        let paper: SearchConfig = toml::from_str("preset = \"paper\"\njoint_epochs = 6").unwrap();
        assert_eq!(paper.preset, SearchPreset::Paper);
        assert_eq!(paper.joint_epochs, 6);
        assert_eq!(paper.sharpen, 0.0);
        assert_eq!(paper.arch_learning_rate, 1e-3);
        assert_eq!((paper.prune_below, paper.arch_holdout), (0.0, 0.0));
        let decide: SearchConfig = toml::from_str("gate_cost = 0.5").unwrap();
        assert_eq!(decide.preset, SearchPreset::Decide);
        assert_eq!(decide.gate_cost, 0.5);
        assert_eq!(decide.sharpen, SearchPreset::Decide.defaults().sharpen);
        for cfg in [paper, decide] {
            let text = toml::to_string(&cfg).unwrap();
            let back: SearchConfig = toml::from_str(&text).unwrap();
            assert_eq!(back, cfg);
        }
        assert!(toml::from_str::<SearchConfig>("preset = \"fast\"").is_err());
        assert!(toml::from_str::<SearchConfig>("gate_kost = 1.0").is_err());
        let bad: SearchConfig = toml::from_str("prune_below = 0.5").unwrap();
        assert_eq!(
            bad.validate().unwrap_err(),
            "search.prune_below must be in [0, 0.5), got 0.5"
        );
    }

    #[test]
    fn the_learning_rate_reaches_and_the_amplifiers_ramp() {
        let cfg = SearchPreset::Decide.defaults();
        // 75 steps (Census): reach / steps; 30,000 steps (large data): the floor.
        assert!((cfg.effective_arch_learning_rate(75) - cfg.arch_reach / 75.0).abs() < 1e-12);
        assert_eq!(
            cfg.effective_arch_learning_rate(30_000),
            cfg.arch_learning_rate
        );
        let paper = SearchPreset::Paper.defaults();
        assert_eq!(paper.effective_arch_learning_rate(75), 1e-3);
        let start = cfg.regularisation(0, 100);
        let mid = cfg.regularisation(50, 100);
        assert_eq!(start.sharpen, 0.0);
        assert_eq!(start.gate_cost, cfg.gate_cost);
        assert!((mid.sharpen - cfg.sharpen / 2.0).abs() < 1e-12);
        assert!(paper.regularisation(50, 100).is_off());
    }
}
