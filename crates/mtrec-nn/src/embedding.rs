//! The model input of spec §1: per-field embeddings of the sparse ids, concatenated with the
//! standardised dense values.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer};
use burn::prelude::*;

/// A batch as tensors. Sparse ids are per-field vocabulary ids (0 = unknown).
#[derive(Debug, Clone)]
pub struct ModelInput {
    /// `[B, F]`, absent when the data has no sparse field.
    pub sparse: Option<Tensor<2, Int>>,
    /// `[B, D]`, absent when the data has no dense field.
    pub dense: Option<Tensor<2>>,
    pub batch_size: usize,
}

impl ModelInput {
    /// Builds tensors from row-major host buffers (`sparse.len() == B * F`, `dense.len() == B * D`).
    pub fn from_host(
        batch_size: usize,
        sparse: &[i64],
        n_sparse: usize,
        dense: &[f32],
        n_dense: usize,
        device: &Device,
    ) -> Self {
        let sparse = (n_sparse > 0).then(|| {
            Tensor::<2, Int>::from_data(
                TensorData::new(sparse.to_vec(), [batch_size, n_sparse]),
                device,
            )
        });
        let dense = (n_dense > 0).then(|| {
            Tensor::<2>::from_data(
                TensorData::new(dense.to_vec(), [batch_size, n_dense]),
                device,
            )
        });
        Self {
            sparse,
            dense,
            batch_size,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FeatureEmbeddingConfig {
    /// Vocabulary size of each sparse field, id 0 included.
    pub vocab_sizes: Vec<usize>,
    pub n_dense: usize,
    pub d_emb: usize,
    /// Standard deviation of the normal initialisation of the embeddings.
    pub init_std: f64,
}

/// All fields' tables live in one `[sum(vocab), d_emb]` matrix and each field's ids are shifted
/// by the field's offset, so a batch is one gather instead of `F` small ones; the rows of two
/// fields never overlap, which makes it exactly "one table per field".
#[derive(Module, Debug)]
pub struct FeatureEmbedding {
    pub table: Option<Embedding>,
    offsets: Option<Tensor<2, Int>>,
    n_fields: usize,
    n_dense: usize,
    d_emb: usize,
}

impl FeatureEmbeddingConfig {
    pub fn init(&self, device: &Device) -> FeatureEmbedding {
        let n_fields = self.vocab_sizes.len();
        let (table, offsets) = if n_fields == 0 {
            (None, None)
        } else {
            let mut offsets = Vec::with_capacity(n_fields);
            let mut total = 0i64;
            for &v in &self.vocab_sizes {
                offsets.push(total);
                total += v.max(1) as i64;
            }
            let table = EmbeddingConfig::new(total as usize, self.d_emb)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: self.init_std,
                })
                .init(device);
            let offsets =
                Tensor::<2, Int>::from_data(TensorData::new(offsets, [1, n_fields]), device);
            (Some(table), Some(offsets))
        };
        FeatureEmbedding {
            table,
            offsets,
            n_fields,
            n_dense: self.n_dense,
            d_emb: self.d_emb,
        }
    }

    /// Width of the flat model input `x`.
    pub fn d_out(&self) -> usize {
        self.vocab_sizes.len() * self.d_emb + self.n_dense
    }
}

impl FeatureEmbedding {
    /// Per-field embeddings `[B, F, d_emb]`, for models that treat fields separately.
    pub fn fields(&self, input: &ModelInput) -> Option<Tensor<3>> {
        match (&self.table, &self.offsets, &input.sparse) {
            (Some(table), Some(offsets), Some(ids)) => {
                Some(table.forward(ids.clone() + offsets.clone()))
            }
            _ => None,
        }
    }

    /// The flat input `x = [emb_1, ..., emb_F, dense]`, `[B, F*d_emb + D]`.
    pub fn forward(&self, input: &ModelInput) -> Tensor<2> {
        let b = input.batch_size;
        let mut parts = Vec::with_capacity(2);
        if let Some(e) = self.fields(input) {
            parts.push(e.reshape([b, self.n_fields * self.d_emb]));
        }
        if let Some(d) = &input.dense {
            if self.n_dense > 0 {
                parts.push(d.clone());
            }
        }
        if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Tensor::cat(parts, 1)
        }
    }

    pub fn d_out(&self) -> usize {
        self.n_fields * self.d_emb + self.n_dense
    }
}
