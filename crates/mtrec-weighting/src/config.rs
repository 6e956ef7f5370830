use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
}

impl Default for WeightingConfig {
    fn default() -> Self {
        WeightingConfig::Fixed { weights: None }
    }
}
