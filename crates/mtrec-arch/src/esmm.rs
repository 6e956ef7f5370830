//! ESMM, the Entire Space Multi-task Model (Ma et al., SIGIR 2018).
//!
//! Two towers over shared embeddings give `pCTR = sigma(a)` and `pCVR = sigma(b)`;
//! `pCTCVR = pCTR * pCVR`. The loss over all impressions is
//! `BCE(pCTR, click) + BCE(pCTCVR, click AND conversion)`, so `pCVR` is never trained on
//! clicked rows alone (no sample-selection bias) and still gets a gradient from every row.
//!
//! Tasks: exactly two, in order: the click task and the conversion task, whose label must be
//! "clicked and converted" (in the public Ali-CCP and AliExpress layouts a conversion is only
//! ever recorded on a click, so the conversion column is that label). The engine checks all of
//! this against the data before training ([`EsmmConfig::task_requirements`]): a wrong count,
//! kind or order, or a conversion without a click, would otherwise train silently.
//! Output `[B, 2]`: column 0 the CTR logit, column 1 the *logit of pCTCVR*,
//! `log p - log(1 - p)` with `log p = log sigma(a) + log sigma(b)`. Returning a logit keeps
//! the engine's one loss (BCE on logits) exact for ESMM too. `pCVR` is recovered as
//! `pCTCVR / pCTR`, which is how the CVR AUC on clicked rows is computed
//! ([`MultiTaskModel::derived_tasks`](crate::MultiTaskModel::derived_tasks)).
//! Defaults: towers [360, 200, 80] as in the paper's network (Fig. 2: 360-200-80-2).

use burn::module::Module;
use burn::prelude::*;
use burn::tensor::activation::log_sigmoid;
use mtrec_data::{TaskRequirement, TaskRule};
use mtrec_nn::{FeatureEmbedding, FeatureEmbeddingConfig, ModelInput, TowerBank, TowerBankConfig};
use serde::{Deserialize, Serialize};

use crate::{ArchError, ModelOutput};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EsmmConfig {
    /// Hidden widths of the CTR and of the CVR tower.
    pub tower: Vec<usize>,
}

impl Default for EsmmConfig {
    fn default() -> Self {
        Self {
            tower: vec![360, 200, 80],
        }
    }
}

impl EsmmConfig {
    pub fn validate(&self, n_tasks: usize) -> Result<(), ArchError> {
        let bad = |message: String| ArchError::Invalid {
            model: "esmm",
            message,
        };
        if n_tasks != 2 {
            return Err(bad(format!(
                "needs exactly two tasks (click, then conversion), the data has {n_tasks}"
            )));
        }
        ArchError::check_layers("esmm", "tower", &self.tower, false)?;
        Ok(())
    }

    /// What ESMM assumes about the tasks, checked against the data before training: with
    /// any of it broken the model still trains, into CTCVR and CVR figures that mean nothing.
    pub fn task_requirements() -> Vec<TaskRequirement> {
        const BY: &str = "model `esmm`";
        const ORDER: &str = "ESMM's tasks are the click, then the conversion";
        vec![
            TaskRequirement {
                by: BY,
                rule: TaskRule::Count(2),
                why: ORDER,
            },
            TaskRequirement {
                by: BY,
                rule: TaskRule::Binary(0),
                why: "its first output is the click probability pCTR",
            },
            TaskRequirement {
                by: BY,
                rule: TaskRule::Binary(1),
                why: "its second output is the probability pCTR * pCVR that a row is \
                      clicked and converted, and its CVR is scored by AUC on clicked rows",
            },
            TaskRequirement {
                by: BY,
                rule: TaskRule::Implies { from: 1, to: 0 },
                why: "ESMM reads the first task as the click and the second as the conversion, \
                      its CTCVR label (click AND conversion), so a conversion must never be \
                      recorded without a click",
            },
            TaskRequirement {
                by: BY,
                rule: TaskRule::Unconditional,
                why: "its loss is over every impression (the entire space); the CVR on \
                      clicked rows is derived from pCTCVR / pCTR, not trained on them",
            },
        ]
    }
}

#[derive(Module, Debug)]
pub struct Esmm {
    pub embedding: FeatureEmbedding,
    /// Task 0 is the CTR tower, task 1 the CVR tower.
    pub towers: TowerBank,
}

/// Keeps `log(1 - p)` finite when both probabilities round to one.
const MAX_LOG_P: f32 = -1e-7;

impl Esmm {
    pub fn new(cfg: &EsmmConfig, emb: FeatureEmbeddingConfig, device: &Device) -> Self {
        let towers = TowerBankConfig {
            n_tasks: 2,
            d_input: emb.d_out(),
            hidden: cfg.tower.clone(),
        };
        Self {
            embedding: emb.init(device),
            towers: towers.init(device),
        }
    }

    /// `[B, 2]` raw tower logits `(a, b)`: pCTR = sigma(a), pCVR = sigma(b).
    pub fn tower_logits(&self, input: &ModelInput) -> Tensor<2> {
        self.towers.forward_shared(self.embedding.forward(input))
    }

    pub fn forward(&self, input: &ModelInput) -> ModelOutput {
        let ab = self.tower_logits(input);
        let [b, _] = ab.dims();
        let ctr = ab.clone().slice([0..b, 0..1]);
        let log_p = log_sigmoid(ab).sum_dim(1).clamp_max(MAX_LOG_P); // log pCTCVR
        let log_not_p = (log_p.clone().exp().neg() + 1.0).log();
        ModelOutput {
            outputs: Tensor::cat(vec![ctr, log_p - log_not_p], 1),
            aux_loss: None,
        }
    }

    pub fn n_tasks(&self) -> usize {
        2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::sigmoid;

    fn model(device: &Device) -> Esmm {
        device.seed(3);
        let emb = FeatureEmbeddingConfig {
            vocab_sizes: vec![4, 3],
            bags: Vec::new(),
            n_dense: 2,
            d_emb: 3,
            init_std: 0.5,
        };
        Esmm::new(&EsmmConfig { tower: vec![5, 4] }, emb, device)
    }

    fn input(device: &Device) -> ModelInput {
        ModelInput::from_host(
            3,
            &[1, 2, 3, 0, 0, 1],
            2,
            &[0.5, -1.0, 2.0, 0.1, -0.3, 0.7],
            2,
            device,
        )
    }

    #[test]
    fn ctcvr_output_is_the_logit_of_the_product_of_both_towers() {
        let device = Device::default();
        let m = model(&device);
        let ab: Vec<f32> = sigmoid(m.tower_logits(&input(&device)))
            .into_data()
            .try_to_vec()
            .unwrap();
        let out: Vec<f32> = sigmoid(m.forward(&input(&device)).outputs)
            .into_data()
            .try_to_vec()
            .unwrap();
        for row in 0..3 {
            let (ctr, cvr) = (ab[2 * row], ab[2 * row + 1]);
            assert!((out[2 * row] - ctr).abs() < 1e-6);
            assert!(
                (out[2 * row + 1] - ctr * cvr).abs() < 1e-5,
                "row {row}: {} vs {}",
                out[2 * row + 1],
                ctr * cvr
            );
        }
    }

    #[test]
    fn declares_two_binary_tasks_with_no_conversion_without_a_click() {
        let rules: Vec<TaskRule> = EsmmConfig::task_requirements()
            .iter()
            .map(|r| r.rule)
            .collect();
        assert_eq!(
            rules,
            [
                TaskRule::Count(2),
                TaskRule::Binary(0),
                TaskRule::Binary(1),
                TaskRule::Implies { from: 1, to: 0 },
                TaskRule::Unconditional,
            ]
        );
    }

    #[test]
    fn needs_exactly_two_tasks() {
        assert!(EsmmConfig::default().validate(2).is_ok());
        assert!(EsmmConfig::default().validate(3).is_err());
        assert!(EsmmConfig { tower: vec![0] }.validate(2).is_err());
    }
}
