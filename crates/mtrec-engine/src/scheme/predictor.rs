//! What evaluation, prediction and checkpoints use: the trained model, or the part of it each
//! task reads when a scheme adds outputs (CrossDistil's teachers) or gives every task its own
//! sub-network (LT4Rec, CSM).

use mtrec_arch::ModelInput;
use mtrec_arch::{DerivedTask, Model, ModelOutput, MultiTaskModel};

#[derive(Debug, Clone)]
pub enum Predictor {
    /// The model's outputs as they are.
    Whole(Model),
    /// The first `n_tasks` outputs: the data's tasks, without a scheme's extra outputs.
    Leading { model: Model, n_tasks: usize },
    /// Task `k`'s output read from `models[k]` (one masked sub-network per task).
    PerTask(Vec<Model>),
}

impl Predictor {
    /// The models to store, in order (one file each in a checkpoint).
    pub fn models(&self) -> Vec<&Model> {
        match self {
            Predictor::Whole(m) | Predictor::Leading { model: m, .. } => vec![m],
            Predictor::PerTask(ms) => ms.iter().collect(),
        }
    }

    pub fn models_mut(&mut self) -> Vec<&mut Model> {
        match self {
            Predictor::Whole(m) | Predictor::Leading { model: m, .. } => vec![m],
            Predictor::PerTask(ms) => ms.iter_mut().collect(),
        }
    }
}

impl MultiTaskModel for Predictor {
    fn forward(&self, input: &ModelInput) -> ModelOutput {
        match self {
            Predictor::Whole(m) => m.forward(input),
            Predictor::Leading { model, n_tasks } => {
                let out = model.forward(input);
                ModelOutput {
                    outputs: out.outputs.narrow(1, 0, *n_tasks),
                    aux_loss: out.aux_loss,
                }
            }
            Predictor::PerTask(models) => {
                let columns: Vec<_> = models
                    .iter()
                    .enumerate()
                    .map(|(k, m)| m.forward(input).outputs.narrow(1, k, 1))
                    .collect();
                ModelOutput {
                    outputs: burn::tensor::Tensor::cat(columns, 1),
                    aux_loss: None,
                }
            }
        }
    }

    fn n_tasks(&self) -> usize {
        match self {
            Predictor::Whole(m) => m.n_tasks(),
            Predictor::Leading { n_tasks, .. } => *n_tasks,
            Predictor::PerTask(models) => models.len(),
        }
    }

    fn derived_tasks(&self) -> Vec<DerivedTask> {
        match self {
            Predictor::Whole(m) | Predictor::Leading { model: m, .. } => m.derived_tasks(),
            Predictor::PerTask(models) => models
                .first()
                .map(|m| m.derived_tasks())
                .unwrap_or_default(),
        }
    }
}
