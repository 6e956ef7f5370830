//! Embedding tables trained by lazy (row-wise) Adam: a step reads and updates only the rows
//! of the ids in its batch.
//!
//! Through autodiff, an embedding lookup's gradient is scattered into a zero matrix of the
//! whole table, and Adam then moves every row and both of its moments: with 26 fields of 100k
//! ids and 16 dimensions, that is 42M values written three times per step for the ~50k rows a
//! batch of 2048 actually touches. Here the table lives on the host with its moments, the
//! batch's rows are gathered into a leaf tensor the model starts from (`ModelInput::slots`),
//! and after the backward pass the leaf's gradient is summed per row and applied to those
//! rows only. burn's optimizers have no sparse gradient type, hence this module.
//!
//! The rule is TensorFlow's `LazyAdam` and PyTorch's `SparseAdam`: for each row in the batch,
//! `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`, `w -= lr * m_hat / (sqrt(v_hat) + eps)`
//! with the bias corrections of the global step count `t`; rows not in the batch keep their
//! values and moments. Dense Adam would keep moving such a row on its decaying momentum, so
//! the two differ for rows a batch misses and agree exactly on rows every batch contains
//! (tested). Weight decay is the L2 term `g += wd * w` of burn's Adam, on the batch's rows.

use burn::prelude::*;
use mtrec_arch::Model;

use crate::EngineError;

/// Adam's constants as burn's `AdamConfig` defaults them, so the lazy and dense paths agree.
const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;
const EPSILON: f32 = 1e-5;

/// A model's embedding table, its Adam moments and the step count, on the host.
#[derive(Debug)]
pub struct LazyTable {
    weights: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    dim: usize,
    /// Each id slot's first row in the table.
    offsets: Vec<i64>,
    weight_decay: f32,
    step: i32,
    /// Per table row, 1 + its index among this step's distinct rows; 0 when not in the batch.
    /// Kept between steps (and reset on the rows a step used) so finding a batch's distinct
    /// rows costs one lookup per slot, not a sort or a hash map.
    position: Vec<u32>,
}

/// Zeros written out now: `vec![0; n]` maps untouched pages that the kernel faults in and
/// zeroes one at a time when first written, so with a table of 26M rows the first steps
/// would pay a page fault for nearly every row they update (measured: mmoe-large-1m ran at
/// about 0.6x of PyTorch's SparseAdam, whose state is filled up front).
fn touched_zeros<T: Copy + Default>(n: usize) -> Vec<T> {
    let mut v = vec![T::default(); n];
    let per_page = (4096 / std::mem::size_of::<T>().max(1)).max(1);
    for i in (0..n).step_by(per_page) {
        // SAFETY: `i < n == v.len()`. Volatile, because a plain store of the value already
        // there may be optimised away, and the store is the point: it faults the page in.
        unsafe { std::ptr::write_volatile(v.as_mut_ptr().add(i), T::default()) };
    }
    v
}

/// A batch's rows: one per id slot and, summed per distinct row, where their gradients go.
#[derive(Debug)]
pub struct Gathered {
    /// `[B * S]` table row of each slot.
    rows: Vec<usize>,
    /// `[B, S, dim]` the slots' embedding rows, the tensor the model starts from.
    pub slots: Tensor<3>,
}

impl LazyTable {
    /// Takes the table's current values from `model` (the trained model keeps its own copy,
    /// which [`LazyTable::write_into`] refreshes for evaluation and checkpoints).
    pub fn from_model(model: &Model, weight_decay: f64) -> Result<Self, EngineError> {
        let embedding = model.embedding().ok_or_else(|| {
            EngineError::Invalid(
                "train.lazy_embeddings needs one embedding of all fields; single-task gives \
                 each task its own: set train.lazy_embeddings = false"
                    .into(),
            )
        })?;
        let Some(table) = embedding.table_weights() else {
            return Err(EngineError::Invalid(
                "train.lazy_embeddings: the data has no categorical field, so there is no \
                 embedding table to update lazily; set train.lazy_embeddings = false"
                    .into(),
            ));
        };
        let [rows, dim] = table.dims();
        let weights = table
            .into_data()
            .try_to_vec_as::<f32>()
            .map_err(|e| EngineError::Invalid(format!("reading the embedding table: {e:?}")))?;
        Ok(Self {
            m: touched_zeros(weights.len()),
            v: touched_zeros(weights.len()),
            weights,
            dim,
            offsets: embedding.slot_offsets(),
            weight_decay: weight_decay as f32,
            step: 0,
            position: touched_zeros(rows),
        })
    }

    /// The rows of a batch's ids (`[B * S]`, row-major, `S` slots per row) as a leaf tensor
    /// on the autodiff `device`, whose gradient [`LazyTable::step`] reads back.
    pub fn gather(&self, ids: &[i64], batch_size: usize, device: &Device) -> Gathered {
        let s = self.offsets.len();
        let d = self.dim;
        let rows: Vec<usize> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (id + self.offsets[i % s]) as usize)
            .collect();
        let mut values = Vec::with_capacity(rows.len() * d);
        for &r in &rows {
            values.extend_from_slice(&self.weights[r * d..(r + 1) * d]);
        }
        let slots = Tensor::<3>::from_data(TensorData::new(values, [batch_size, s, d]), device)
            .require_grad();
        Gathered { rows, slots }
    }

    /// One Adam step on the rows of `gathered`, whose gradient `grad` (`[B * S * dim]`, the
    /// slots' in order) is summed per distinct row first: a row that appears twice in a batch
    /// takes one update with the sum, as the dense gradient would have it.
    pub fn step(&mut self, gathered: &Gathered, grad: &[f32], learning_rate: f64) {
        let d = self.dim;
        debug_assert_eq!(grad.len(), gathered.rows.len() * d);
        let mut distinct: Vec<usize> = Vec::new();
        let mut sums: Vec<f32> = Vec::new();
        for (slot, &r) in gathered.rows.iter().enumerate() {
            let g = &grad[slot * d..(slot + 1) * d];
            match self.position[r] {
                0 => {
                    distinct.push(r);
                    self.position[r] = distinct.len() as u32;
                    sums.extend_from_slice(g);
                }
                p => {
                    let at = (p as usize - 1) * d;
                    for (s, x) in sums[at..at + d].iter_mut().zip(g) {
                        *s += x;
                    }
                }
            }
        }
        self.step += 1;
        let lr = learning_rate as f32;
        // burn's Adam's arithmetic, so both paths round alike: `m_hat / (sqrt(v_hat) + eps)`
        // written as `m * sqrt(c2) / c1 / (sqrt(v) + eps * sqrt(c2))`.
        let correction_2_sqrt = (1.0 - BETA_2.powi(self.step)).sqrt();
        let factor = correction_2_sqrt / (1.0 - BETA_1.powi(self.step));
        let epsilon = EPSILON * correction_2_sqrt;
        for (k, &r) in distinct.iter().enumerate() {
            self.position[r] = 0;
            let g = &sums[k * d..(k + 1) * d];
            let range = r * d..(r + 1) * d;
            let (w, m, v) = (
                &mut self.weights[range.clone()],
                &mut self.m[range.clone()],
                &mut self.v[range],
            );
            for j in 0..d {
                let g = g[j] + self.weight_decay * w[j];
                m[j] = BETA_1 * m[j] + (1.0 - BETA_1) * g;
                v[j] = BETA_2 * v[j] + (1.0 - BETA_2) * g * g;
                w[j] -= lr * (m[j] * factor / (v[j].sqrt() + epsilon));
            }
        }
    }

    /// Writes the current table into `model` (on any device), for evaluation or a checkpoint.
    pub fn write_into(&self, model: &mut Model, device: &Device) {
        let rows = self.weights.len() / self.dim;
        let table = Tensor::<2>::from_data(
            TensorData::new(self.weights.clone(), [rows, self.dim]),
            device,
        );
        if let Some(embedding) = model.embedding_mut() {
            embedding.set_table_weights(table);
        }
    }

    /// The table's values, row-major `[rows, dim]`.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// The step count, then the table and both moments, little-endian (a resumable run's
    /// state).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 12 * self.weights.len());
        out.extend_from_slice(&self.step.to_le_bytes());
        for part in [&self.weights, &self.m, &self.v] {
            for x in part.iter() {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out
    }

    /// Takes back [`LazyTable::to_bytes`] of a table of the same size.
    pub fn load_bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        let n = self.weights.len();
        if bytes.len() != 4 + 12 * n {
            return Err(format!(
                "the saved embedding table has {} bytes, a table of {n} values needs {}",
                bytes.len(),
                4 + 12 * n
            ));
        }
        self.step = i32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
        let floats = bytes[4..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")));
        for (dst, x) in self
            .weights
            .iter_mut()
            .chain(self.m.iter_mut())
            .chain(self.v.iter_mut())
            .zip(floats)
        {
            *dst = x;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of 3 rows x 2 built by hand, one slot per row of the batch.
    fn table(weights: Vec<f32>, weight_decay: f32) -> LazyTable {
        LazyTable {
            m: vec![0.0; weights.len()],
            v: vec![0.0; weights.len()],
            position: vec![0; weights.len() / 2],
            weights,
            dim: 2,
            offsets: vec![0],
            weight_decay,
            step: 0,
        }
    }

    /// Adam written out from Kingma & Ba's algorithm 1 (bias-corrected moments), in f64.
    fn adam_by_hand(w: f64, grads: &[f64], lr: f64, wd: f64) -> f64 {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-5f64);
        let (mut w, mut m, mut v) = (w, 0.0, 0.0);
        for (t, g) in grads.iter().enumerate() {
            let g = g + wd * w;
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let t = t as i32 + 1;
            w -= lr * (m / (1.0 - b1.powi(t))) / ((v / (1.0 - b2.powi(t))).sqrt() + eps);
        }
        w
    }

    /// Two steps: the batch holds row 0 twice (its gradients add up) and row 2 once, then row
    /// 2 alone. Row 1 is never in a batch and must not move; row 0 sits out the second step
    /// and keeps the value of the first.
    #[test]
    fn updates_only_the_batch_rows_with_summed_gradients() {
        let device = Device::default().autodiff();
        let mut t = table(vec![0.5, -0.25, 1.0, 2.0, -1.5, 0.75], 0.01);
        let g1 = t.gather(&[0, 0, 2], 3, &device);
        let first: Vec<f32> = g1.slots.clone().into_data().try_to_vec_as().unwrap();
        assert_eq!(first, vec![0.5, -0.25, 0.5, -0.25, -1.5, 0.75]);
        t.step(&g1, &[0.2, -0.1, 0.3, 0.4, -0.6, 0.05], 0.01);
        let g2 = t.gather(&[2], 1, &device);
        t.step(&g2, &[0.1, -0.3], 0.01);
        let lr = 0.01;
        let expected = [
            adam_by_hand(0.5, &[0.5], lr, 0.01),
            adam_by_hand(-0.25, &[0.3], lr, 0.01),
            1.0,
            2.0,
            adam_by_hand(-1.5, &[-0.6, 0.1], lr, 0.01),
            adam_by_hand(0.75, &[0.05, -0.3], lr, 0.01),
        ];
        for (i, (got, want)) in t.weights().iter().zip(expected).enumerate() {
            assert!(
                (*got as f64 - want).abs() < 1e-6,
                "value {i}: {got} vs {want}"
            );
        }
        assert_eq!(t.position, vec![0, 0, 0], "positions reset after each step");
        assert_eq!(t.step, 2);
    }

    /// Slot offsets: the second field's ids start after the first field's rows.
    #[test]
    fn gathers_each_slot_from_its_field_rows() {
        let device = Device::default().autodiff();
        let mut t = table(vec![0.0, 0.0, 1.0, 1.0, 2.0, 2.0], 0.0);
        t.offsets = vec![0, 1];
        let g = t.gather(&[0, 1, 0, 0], 2, &device);
        assert_eq!(g.rows, vec![0, 2, 0, 1]);
        let values: Vec<f32> = g.slots.into_data().try_to_vec_as().unwrap();
        assert_eq!(values, vec![0.0, 0.0, 2.0, 2.0, 0.0, 0.0, 1.0, 1.0]);
    }
}
