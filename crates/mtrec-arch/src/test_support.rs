//! Fixtures shared by the model files' unit tests.

use burn::prelude::*;
use mtrec_nn::{FeatureEmbeddingConfig, ModelInput};

/// Two sparse fields (vocabularies 5 and 3, embedded in 2 dimensions) and three dense ones.
pub fn emb_config() -> FeatureEmbeddingConfig {
    FeatureEmbeddingConfig {
        vocab_sizes: vec![5, 3],
        bags: Vec::new(),
        n_dense: 3,
        d_emb: 2,
        init_std: 0.5,
    }
}

/// Four rows in the layout of [`emb_config`].
pub fn sample_input(device: &Device) -> ModelInput {
    let sparse = [1i64, 2, 4, 0, 0, 1, 3, 2];
    let dense = [
        0.5f32, -1.0, 0.3, 1.2, 0.1, -0.7, -0.4, 0.9, 2.0, 0.0, -1.5, 0.8,
    ];
    ModelInput::from_host(4, &sparse, 2, &dense, 3, device)
}
