//! Fixed per-task loss weights, the plain baseline every other scheme is compared with.

use std::collections::BTreeMap;

use burn::prelude::*;

use crate::{StepContext, Weighting, WeightingError};

#[derive(Debug, Clone)]
pub struct FixedWeights {
    task_names: Vec<String>,
    weights: Vec<f64>,
}

impl FixedWeights {
    /// `weights[k]` applies to `task_names[k]`.
    pub fn new(task_names: &[String], weights: Vec<f64>) -> Self {
        assert_eq!(task_names.len(), weights.len(), "one weight per task");
        Self {
            task_names: task_names.to_vec(),
            weights,
        }
    }

    /// Weights by task name; unnamed tasks get `1/T`.
    pub fn from_names(
        named: Option<&BTreeMap<String, f64>>,
        task_names: &[String],
    ) -> Result<Self, WeightingError> {
        let default = 1.0 / task_names.len().max(1) as f64;
        let mut weights = vec![default; task_names.len()];
        for (task, &value) in named.into_iter().flatten() {
            let Some(i) = task_names.iter().position(|t| t == task) else {
                return Err(WeightingError::UnknownTask {
                    task: task.clone(),
                    known: task_names.join(", "),
                });
            };
            if !value.is_finite() || value < 0.0 {
                return Err(WeightingError::BadWeight {
                    task: task.clone(),
                    value,
                });
            }
            weights[i] = value;
        }
        Ok(Self::new(task_names, weights))
    }
}

impl Weighting for FixedWeights {
    fn combine(&mut self, losses: Tensor<1>, _ctx: &StepContext) -> Tensor<1> {
        let w: Vec<f32> = self.weights.iter().map(|&w| w as f32).collect();
        let n = w.len();
        let w = Tensor::<1>::from_data(TensorData::new(w, [n]), &losses.device());
        (losses * w).sum()
    }

    fn weights(&self) -> Vec<f64> {
        self.weights.clone()
    }

    fn task_names(&self) -> &[String] {
        &self.task_names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    const CTX: StepContext = StepContext {
        step: 0,
        epoch: 1,
        learning_rate: 1e-3,
    };

    #[test]
    fn default_is_the_mean_of_the_task_losses() {
        let mut w = FixedWeights::from_names(None, &names()).unwrap();
        let device = Device::default();
        let losses = Tensor::<1>::from_floats([1.0, 3.0], &device);
        let total: f32 = w.combine(losses, &CTX).into_scalar();
        assert!((total - 2.0).abs() < 1e-6);
    }

    #[test]
    fn named_weights_apply_to_their_task() {
        let mut named = BTreeMap::new();
        named.insert("b".to_string(), 2.0);
        let mut w = FixedWeights::from_names(Some(&named), &names()).unwrap();
        assert_eq!(w.weights(), vec![0.5, 2.0]);
        assert_eq!(w.task_names(), names().as_slice());
        assert_eq!(w.stats().get("weight/b"), Some(&2.0));
        let device = Device::default();
        let total: f32 = w
            .combine(Tensor::<1>::from_floats([1.0, 3.0], &device), &CTX)
            .into_scalar();
        assert!((total - 6.5).abs() < 1e-6);
    }

    #[test]
    fn unknown_task_is_an_error_naming_it() {
        let mut named = BTreeMap::new();
        named.insert("c".to_string(), 1.0);
        let err = FixedWeights::from_names(Some(&named), &names()).unwrap_err();
        assert!(err.to_string().contains("`c`"), "{err}");
        named.clear();
        named.insert("a".to_string(), f64::NAN);
        assert!(FixedWeights::from_names(Some(&named), &names()).is_err());
    }
}
