use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{FixedWeights, Weighting, WeightingError};

/// The `[weighting]` section of an experiment config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum WeightingConfig {
    /// `sum_k w_k L_k` with fixed weights by task name; tasks not named get `1/T`, and with
    /// no weights at all the objective is the mean of the task losses (spec §3).
    Fixed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weights: Option<BTreeMap<String, f64>>,
    },
    /// Kendall et al.: `sum_k L_k / (2 exp(s_k)) + s_k / 2` with learnable log-variances
    /// `s_k`, all starting at `init`.
    Uncertainty {
        #[serde(default = "default_log_variance")]
        init: f64,
    },
    /// MetaBalance (He et al.): auxiliary tasks' gradients of shared parameters rescaled
    /// towards the target task's magnitude.
    MetaBalance {
        /// The target task; default the first task.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        /// Relax factor `r`: 0 leaves gradients unchanged, 1 equalises their magnitudes.
        #[serde(default = "default_relax")]
        relax: f64,
        /// Moving-average factor of the gradient norms.
        #[serde(default = "default_beta")]
        beta: f64,
    },
}

fn default_log_variance() -> f64 {
    -0.5
}

fn default_relax() -> f64 {
    0.7
}

fn default_beta() -> f64 {
    0.9
}

impl Default for WeightingConfig {
    fn default() -> Self {
        WeightingConfig::Fixed { weights: None }
    }
}

impl WeightingConfig {
    /// The config's `kind`, as written in TOML.
    pub fn kind(&self) -> &'static str {
        match self {
            WeightingConfig::Fixed { .. } => "fixed",
            WeightingConfig::Uncertainty { .. } => "uncertainty",
            WeightingConfig::MetaBalance { .. } => "meta-balance",
        }
    }

    /// The per-task weights of the validation loss that model selection compares across
    /// epochs: a fixed weighting's own weights (`1/T` each unless named), for every other
    /// weighting `1/T` each. Never a learnt or adaptive weighting's current weights: those move
    /// during training, so the same task losses would score better or worse depending on the
    /// epoch, and selection would follow the weights rather than the model.
    pub fn selection_weights(&self, task_names: &[String]) -> Result<Vec<f64>, WeightingError> {
        match self {
            WeightingConfig::Fixed { weights } => {
                Ok(FixedWeights::from_names(weights.as_ref(), task_names)?.weights())
            }
            WeightingConfig::Uncertainty { .. } | WeightingConfig::MetaBalance { .. } => {
                Ok(vec![1.0 / task_names.len().max(1) as f64; task_names.len()])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["click".into(), "watch".into()]
    }

    #[test]
    fn selection_weights_are_the_fixed_weights_or_the_plain_mean() {
        let fixed = WeightingConfig::Fixed {
            weights: Some(BTreeMap::from([("watch".to_string(), 2.0)])),
        };
        assert_eq!(fixed.selection_weights(&names()).unwrap(), vec![0.5, 2.0]);
        // Learnt and adaptive weightings: whatever their parameters, the plain mean.
        for cfg in [
            WeightingConfig::Uncertainty { init: -0.5 },
            WeightingConfig::Uncertainty { init: 3.0 },
            WeightingConfig::MetaBalance {
                target: Some("watch".into()),
                relax: 1.0,
                beta: 0.5,
            },
        ] {
            assert_eq!(
                cfg.selection_weights(&names()).unwrap(),
                vec![0.5, 0.5],
                "{cfg:?}"
            );
        }
    }
}
