//! Host batches to device tensors.

use burn::prelude::*;
use mtrec_arch::ModelInput;
use mtrec_data::Batch;

pub fn input_of(batch: &Batch, device: &Device) -> ModelInput {
    ModelInput::from_host(
        batch.len,
        &batch.sparse,
        batch.n_sparse,
        &batch.dense,
        batch.n_dense,
        device,
    )
}

pub fn labels_of(batch: &Batch, device: &Device) -> Tensor<2> {
    Tensor::<2>::from_data(
        TensorData::new(batch.labels.clone(), [batch.len, batch.n_tasks]),
        device,
    )
}
