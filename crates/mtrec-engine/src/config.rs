//! The experiment config: one TOML file whose sections mirror the crates
//! (`[data]`, `[embedding]`, `[model]`, `[weighting]`, `[scheme]`, `[train]`). Unknown keys are errors, so a
//! typo never silently falls back to a default. The resolved config is written beside every
//! checkpoint, which is how a checkpoint rebuilds its model.

use std::path::Path;

use mtrec_arch::{ArchConfig, EmbeddingConfig};
use mtrec_data::DataConfig;
use mtrec_weighting::WeightingConfig;
use serde::{Deserialize, Serialize};

use crate::{EngineError, SchemeConfig, SearchConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// A short name used for output folders and reports.
    #[serde(default = "default_name")]
    pub name: String,
    pub data: DataConfig,
    #[serde(default)]
    pub embedding: EmbeddingConfig,
    #[serde(default)]
    pub model: ArchConfig,
    #[serde(default)]
    pub weighting: WeightingConfig,
    /// How training proceeds (plain, or one of the survey's sharing schemes).
    #[serde(default, skip_serializing_if = "SchemeConfig::is_none")]
    pub scheme: SchemeConfig,
    /// The training, or for a search the finetune of the found architecture.
    #[serde(default)]
    pub train: TrainConfig,
    /// PD-DARTS schedule, read by `mtrec search` only.
    #[serde(default)]
    pub search: SearchConfig,
}

fn default_name() -> String {
    "experiment".into()
}

/// Which validation figure early stopping and model selection follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Monitor {
    /// Mean AUC over binary tasks when every task is binary, else the validation loss.
    #[default]
    Auto,
    /// Mean AUC over the binary tasks.
    MeanAuc,
    /// The validation loss: `sum_k w_k L_k` over the tasks, `L_k` the logloss of a binary
    /// task or the MSE of a regression, with fixed weights `w_k`: those of
    /// `[weighting] kind = "fixed"` (default `1/T` each), or `1/T` each under a learnt or
    /// adaptive weighting (uncertainty, MetaBalance). Never the weights learnt so far: they
    /// change from epoch to epoch, so the same model would score differently at different
    /// epochs and selection would follow the weights instead of the model.
    Loss,
    /// One task's AUC (the MMoE paper tunes on the main task's AUC).
    TaskAuc(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub learning_rate: f64,
    pub batch_size: usize,
    /// A cap: runs normally end by early stopping (`patience`), so the default is set high
    /// enough for small data sets to converge, and a run that reaches it on its best epoch
    /// is reported as likely undertrained.
    pub epochs: usize,
    /// L2 penalty added to the gradient by Adam (PyTorch's `weight_decay`).
    pub weight_decay: f64,
    /// Stop after this many epochs without improvement of `monitor`; 0 disables.
    pub patience: usize,
    pub monitor: Monitor,
    /// Seeds initialisation and batch order; same seed, same result on CPU.
    pub seed: u64,
    pub eval_batch_size: usize,
    /// Cap on the training batches of an epoch (for quick runs); 0 = all.
    pub max_batches_per_epoch: usize,
    /// Update the embedding table by lazy (row-wise) Adam: a step touches only the rows of
    /// its batch's ids (see `lazy_adam`). Much faster with large vocabularies; rows a batch
    /// misses keep still instead of drifting on their momentum, so results differ slightly
    /// from dense Adam. Plain training only (no `[scheme]`, no per-task-gradient weighting).
    /// Left out of saved configs when off, so they read as before.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lazy_embeddings: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            batch_size: 1024,
            epochs: 100,
            weight_decay: 0.0,
            // The validation figure creeps up noisily on a long plateau: on Census-Income
            // (MMoE, these defaults) patience 3 stopped at epoch 18 keeping epoch 15, patience 5
            // reached the run's best, epoch 34.
            patience: 5,
            monitor: Monitor::Auto,
            seed: 2018,
            eval_batch_size: 8192,
            max_batches_per_epoch: 0,
            lazy_embeddings: false,
        }
    }
}

impl ExperimentConfig {
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Self, EngineError> {
        toml::from_str(text).map_err(|e| EngineError::Config {
            path: origin.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })
    }

    pub fn from_toml_file(path: &Path) -> Result<Self, EngineError> {
        Self::from_toml_file_with(path, &[])
    }

    /// Reads a config file and applies `--set` overrides (`train.learning_rate=3e-3`) to its
    /// TOML before the typed parse, so an override is checked exactly like a key written in
    /// the file (unknown keys and wrong types are errors naming the key). An error names the
    /// override(s) at fault rather than the file's own text, which was checked alone first.
    pub fn from_toml_file_with(path: &Path, overrides: &[Override]) -> Result<Self, EngineError> {
        let text = std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))?;
        // The file alone first, so its own mistakes are reported at their line.
        let cfg = Self::from_toml_str(&text, path)?;
        if overrides.is_empty() {
            cfg.validate(path)?;
            return Ok(cfg);
        }
        let table: toml::Table = toml::from_str(&text).map_err(|e| EngineError::Config {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })?;
        let fault = |at_fault: &[&Override], message: String| EngineError::Override {
            path: path.to_path_buf(),
            overrides: at_fault
                .iter()
                .map(|o| format!("--set {o}"))
                .collect::<Vec<_>>()
                .join(" "),
            message,
        };
        let mut merged = table.clone();
        for o in overrides {
            o.apply(&mut merged).map_err(|m| fault(&[o], m))?;
        }
        Self::typed(merged).map_err(|message| {
            let at_fault = overrides_at_fault(&table, overrides, &message);
            fault(&at_fault, message)
        })
    }

    /// The typed parse and range checks of a merged table; the message carries no path.
    fn typed(table: toml::Table) -> Result<Self, String> {
        let cfg: Self = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| e.message().to_string())?;
        cfg.check()?;
        Ok(cfg)
    }

    pub fn to_toml_string(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }

    /// Checks what serde cannot: ranges of the training hyper-parameters.
    pub fn validate(&self, origin: &Path) -> Result<(), EngineError> {
        self.check().map_err(|message| EngineError::Config {
            path: origin.to_path_buf(),
            message,
        })
    }

    fn check(&self) -> Result<(), String> {
        let t = &self.train;
        if !(t.learning_rate.is_finite() && t.learning_rate > 0.0) {
            return Err(format!(
                "train.learning_rate must be > 0, got {}",
                t.learning_rate
            ));
        }
        if t.batch_size == 0 || t.eval_batch_size == 0 {
            return Err("train.batch_size and eval_batch_size must be >= 1".into());
        }
        if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
            return Err(format!(
                "train.weight_decay must be >= 0, got {}",
                t.weight_decay
            ));
        }
        self.search.validate()?;
        self.scheme
            .validate()
            .map_err(|m| format!("[scheme] {m}"))?;
        Ok(())
    }
}

/// The overrides without which the merged config fails otherwise or not at all: leaving each
/// out in turn and checking again finds the one at fault among many (a typo, a value of the
/// wrong type, a `model.kind` whose fields the file does not have). All of them when none
/// stands out (the same mistake given twice).
fn overrides_at_fault<'a>(
    table: &toml::Table,
    overrides: &'a [Override],
    message: &str,
) -> Vec<&'a Override> {
    if overrides.len() == 1 {
        return overrides.iter().collect();
    }
    let without = |skip: usize| -> Result<ExperimentConfig, String> {
        let mut merged = table.clone();
        for (i, o) in overrides.iter().enumerate() {
            if i != skip {
                o.apply(&mut merged)?;
            }
        }
        ExperimentConfig::typed(merged)
    };
    let at_fault: Vec<&Override> = (0..overrides.len())
        .filter(|&i| without(i).err().as_deref() != Some(message))
        .map(|i| &overrides[i])
        .collect();
    if at_fault.is_empty() {
        overrides.iter().collect()
    } else {
        at_fault
    }
}

/// One `--set KEY=VALUE` override of a config file: a dotted key path (`model.n_experts`,
/// `search.preset`) and a TOML value. A value that does not parse as TOML (`mmoe`,
/// `data/x.csv`) is taken as a string, so users need not quote plain words.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub path: Vec<String>,
    pub value: toml::Value,
}

impl std::str::FromStr for Override {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (key, raw) = text.split_once('=').ok_or_else(|| {
            format!("`{text}`: expected KEY=VALUE, e.g. train.learning_rate=3e-3")
        })?;
        let path: Vec<String> = key
            .trim()
            .split('.')
            .map(|p| p.trim().to_string())
            .collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(format!("`{text}`: empty part in key `{key}`"));
        }
        let raw = raw.trim();
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        Ok(Self { path, value })
    }
}

impl std::fmt::Display for Override {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.path.join("."), self.value)
    }
}

impl Override {
    /// Sets the value, creating missing sections; refuses to descend into a non-table.
    pub fn apply(&self, table: &mut toml::Table) -> Result<(), String> {
        let (last, parents) = self.path.split_last().expect("non-empty by construction");
        let mut here = table;
        for (i, part) in parents.iter().enumerate() {
            let entry = here
                .entry(part.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            here = entry.as_table_mut().ok_or_else(|| {
                format!("`{}` is a value, not a section", self.path[..=i].join("."))
            })?;
        }
        here.insert(last.clone(), self.value.clone());
        Ok(())
    }
}
