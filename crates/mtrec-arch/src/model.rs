//! The model trait the engine trains, and the enum that holds any architecture.

use burn::module::Module;
use burn::prelude::*;
use mtrec_data::FeatureMeta;
use mtrec_nn::{FeatureEmbeddingConfig, ModelInput};

use crate::automtl::AutoMtl;
use crate::moe::MoeKind;
use crate::{
    AdaTT, ArchConfig, ArchError, CrossStitch, EmbeddingConfig, Esmm, L2Constrained, Moe, Ple,
    PleConfig, SharedBottom, SingleTask, TensorFactorization,
};

/// What a forward pass returns.
#[derive(Debug, Clone)]
pub struct ModelOutput {
    /// `[B, T]`: a logit per binary task, a value per regression task.
    pub outputs: Tensor<2>,
    /// An architecture's own penalty added to the training loss (e.g. L2-Constrained's
    /// parameter distance); `None` for most models.
    pub aux_loss: Option<Tensor<1>>,
}

/// The contract between architectures and the engine: the model returns raw outputs, the
/// engine owns the losses (torchrec's split), so weighting schemes combine with any model.
pub trait MultiTaskModel {
    fn forward(&self, input: &ModelInput) -> ModelOutput;
    fn n_tasks(&self) -> usize;

    /// Figures the model defines beyond its trained outputs (ESMM's CVR); none by default.
    fn derived_tasks(&self) -> Vec<DerivedTask> {
        Vec::new()
    }
}

/// A probability derived as a ratio of two task outputs and scored only on the rows where
/// another task's label is positive: ESMM's `pCVR = pCTCVR / pCTR`, judged on clicked rows
/// against the conversion label.
#[derive(Debug, Clone, PartialEq)]
pub struct DerivedTask {
    pub name: String,
    /// Task whose probability is the numerator, and whose label is the target.
    pub numerator: usize,
    pub denominator: usize,
    /// Only rows where this task's label is positive count.
    pub given: usize,
}

/// Any architecture of the zoo, as one burn module (so one save/load path).
#[derive(Module, Debug)]
pub enum Model {
    SingleTask(SingleTask),
    SharedBottom(SharedBottom),
    Moe(Moe),
    Ple(Ple),
    AdaTT(AdaTT),
    CrossStitch(CrossStitch),
    L2Constrained(L2Constrained),
    TensorFactorization(TensorFactorization),
    Esmm(Esmm),
    AutoMtl(AutoMtl),
}

/// Calls the same method on whichever architecture the enum holds.
macro_rules! dispatch {
    ($self:ident, $m:ident => $call:expr) => {
        match $self {
            Model::SingleTask($m) => $call,
            Model::SharedBottom($m) => $call,
            Model::Moe($m) => $call,
            Model::Ple($m) => $call,
            Model::AdaTT($m) => $call,
            Model::CrossStitch($m) => $call,
            Model::L2Constrained($m) => $call,
            Model::TensorFactorization($m) => $call,
            Model::Esmm($m) => $call,
            Model::AutoMtl($m) => $call,
        }
    };
}

impl MultiTaskModel for Model {
    fn forward(&self, input: &ModelInput) -> ModelOutput {
        dispatch!(self, m => m.forward(input))
    }

    fn n_tasks(&self) -> usize {
        dispatch!(self, m => m.n_tasks())
    }

    fn derived_tasks(&self) -> Vec<DerivedTask> {
        match self {
            Model::Esmm(_) => vec![DerivedTask {
                name: "cvr".into(),
                numerator: 1,
                denominator: 0,
                given: 0,
            }],
            _ => Vec::new(),
        }
    }
}

impl Model {
    /// The model's one embedding of every input field; `None` for Single-Task, which gives
    /// each task its own.
    pub fn embedding(&self) -> Option<&mtrec_nn::FeatureEmbedding> {
        match self {
            Model::SingleTask(_) => None,
            Model::SharedBottom(m) => Some(&m.embedding),
            Model::Moe(m) => Some(&m.embedding),
            Model::Ple(m) => Some(&m.embedding),
            Model::AdaTT(m) => Some(&m.embedding),
            Model::CrossStitch(m) => Some(&m.embedding),
            Model::L2Constrained(m) => Some(&m.embedding),
            Model::TensorFactorization(m) => Some(&m.embedding),
            Model::Esmm(m) => Some(&m.embedding),
            Model::AutoMtl(m) => Some(&m.embedding),
        }
    }

    pub fn embedding_mut(&mut self) -> Option<&mut mtrec_nn::FeatureEmbedding> {
        match self {
            Model::SingleTask(_) => None,
            Model::SharedBottom(m) => Some(&mut m.embedding),
            Model::Moe(m) => Some(&mut m.embedding),
            Model::Ple(m) => Some(&mut m.embedding),
            Model::AdaTT(m) => Some(&mut m.embedding),
            Model::CrossStitch(m) => Some(&mut m.embedding),
            Model::L2Constrained(m) => Some(&mut m.embedding),
            Model::TensorFactorization(m) => Some(&mut m.embedding),
            Model::Esmm(m) => Some(&mut m.embedding),
            Model::AutoMtl(m) => Some(&mut m.embedding),
        }
    }
}

/// The data's multi-valued fields as the embedding's bags.
pub(crate) fn embedding_bags(meta: &FeatureMeta) -> Vec<mtrec_nn::Bag> {
    meta.bags
        .iter()
        .map(|b| mtrec_nn::Bag {
            field: b.field,
            len: b.slots,
            pooling: match b.pooling {
                mtrec_data::Pooling::Mean => mtrec_nn::Pooling::Mean,
                mtrec_data::Pooling::Sum => mtrec_nn::Pooling::Sum,
            },
        })
        .collect()
}

/// Builds a freshly initialised model for data with the given feature layout. Loading a
/// checkpoint builds the same model and then overwrites its weights, so the two share this path.
pub fn build(
    arch: &ArchConfig,
    embedding: &EmbeddingConfig,
    meta: &FeatureMeta,
    device: &Device,
) -> Result<Model, ArchError> {
    let n_tasks = meta.task_names.len();
    if n_tasks == 0 {
        return Err(ArchError::NoTasks);
    }
    if meta.vocab_sizes.is_empty() && meta.dense_names.is_empty() {
        return Err(ArchError::NoInputs);
    }
    if embedding.dim == 0 && !meta.vocab_sizes.is_empty() {
        return Err(ArchError::Invalid {
            model: arch.kind(),
            message: "embedding.dim must be at least 1".into(),
        });
    }
    let emb = FeatureEmbeddingConfig {
        vocab_sizes: meta.vocab_sizes.clone(),
        bags: embedding_bags(meta),
        n_dense: meta.dense_names.len(),
        d_emb: embedding.dim,
        init_std: embedding.init_std,
    };
    let kind = arch.kind();
    Ok(match arch {
        ArchConfig::SingleTask(c) => {
            ArchError::check_layers(kind, "bottom", &c.bottom, true)?;
            ArchError::check_layers(kind, "tower", &c.tower, false)?;
            Model::SingleTask(SingleTask::new(c, emb, n_tasks, device))
        }
        ArchConfig::SharedBottom(c) => {
            ArchError::check_layers(kind, "bottom", &c.bottom, false)?;
            ArchError::check_layers(kind, "tower", &c.tower, false)?;
            Model::SharedBottom(SharedBottom::new(c, emb, n_tasks, device))
        }
        ArchConfig::Omoe(c) | ArchConfig::Mmoe(c) => {
            ArchError::check_layers(kind, "expert", &c.expert, true)?;
            ArchError::check_layers(kind, "tower", &c.tower, false)?;
            if c.n_experts == 0 {
                return Err(ArchError::Invalid {
                    model: kind,
                    message: "n_experts must be at least 1".into(),
                });
            }
            let gates = if matches!(arch, ArchConfig::Omoe(_)) {
                MoeKind::OneGate
            } else {
                MoeKind::GatePerTask
            };
            Model::Moe(Moe::new(c, gates, emb, n_tasks, device))
        }
        ArchConfig::Cgc(c) => {
            let c = PleConfig {
                n_levels: 1,
                ..c.clone()
            };
            c.validate(n_tasks)?;
            Model::Ple(Ple::new(&c, emb, n_tasks, device))
        }
        ArchConfig::Ple(c) => {
            c.validate(n_tasks)?;
            Model::Ple(Ple::new(c, emb, n_tasks, device))
        }
        ArchConfig::Adatt(c) => {
            c.validate(n_tasks)?;
            Model::AdaTT(AdaTT::new(c, emb, n_tasks, device))
        }
        ArchConfig::CrossStitch(c) => {
            c.validate(n_tasks)?;
            Model::CrossStitch(CrossStitch::new(c, emb, n_tasks, device))
        }
        ArchConfig::L2Constrained(c) => {
            c.validate(n_tasks)?;
            Model::L2Constrained(L2Constrained::new(c, emb, n_tasks, device))
        }
        ArchConfig::TensorFactorization(c) => {
            c.validate(n_tasks)?;
            Model::TensorFactorization(TensorFactorization::new(c, emb, n_tasks, device))
        }
        ArchConfig::Esmm(c) => {
            c.validate(n_tasks)?;
            Model::Esmm(Esmm::new(c, emb, device))
        }
        ArchConfig::Automtl(space) => {
            space.validate()?;
            Model::AutoMtl(AutoMtl::supernet(
                space,
                embedding.dim,
                embedding.init_std,
                meta,
                device,
            ))
        }
        ArchConfig::Searched(genotype) => {
            genotype.validate(meta)?;
            Model::AutoMtl(AutoMtl::from_genotype(
                genotype,
                embedding.dim,
                embedding.init_std,
                meta,
                device,
            ))
        }
    })
}
