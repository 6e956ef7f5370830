//! Host batches to device tensors.

use burn::prelude::*;
use mtrec_arch::ModelInput;
use mtrec_data::Batch;

/// The batch's inputs. Sparse ids go as the table's id slots, `[B, batch.n_sparse]`: a
/// multi-valued field's bag takes several and the model's embedding pools them back to one
/// vector per field, so nothing here depends on which fields are bags.
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

/// The batch's example weights `[B, T]`; `None` when every weight is 1 (the losses then take
/// plain means, as they always did).
pub fn weights_of(batch: &Batch, device: &Device) -> Option<Tensor<2>> {
    let w = batch.weights.as_ref()?;
    Some(Tensor::<2>::from_data(
        TensorData::new(w.clone(), [batch.len, batch.n_tasks]),
        device,
    ))
}
