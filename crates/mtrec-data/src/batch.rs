//! Mini-batches cut from an [`EncodedTable`].
//!
//! Ids are handed out as `i64` because that is what embedding lookups take as
//! indices; converting once here keeps the model code free of casts.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::table::EncodedTable;

/// A mini-batch, row-major like the table it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub len: usize,
    /// `len * n_sparse` vocabulary ids, `n_sparse` id slots per row (a multi-valued field
    /// takes several, see [`EncodedTable::n_sparse`]).
    pub sparse: Vec<i64>,
    /// `len * n_dense` standardised values.
    pub dense: Vec<f32>,
    /// `len * n_tasks` labels on the scale the model trains on: regression labels
    /// standardised with the table's `label_scales`, and 0 where a row's weight for the task
    /// is 0 (so a masked row's stored label never reaches a loss, even times 0).
    pub labels: Vec<f32>,
    /// `len * n_tasks` example weights (see [`EncodedTable::label_weights`]); `None` when
    /// every weight is 1.
    pub weights: Option<Vec<f32>>,
    pub n_sparse: usize,
    pub n_dense: usize,
    pub n_tasks: usize,
}

/// Iterator over the batches of one pass (epoch) through a table.
#[derive(Clone, Debug)]
pub struct BatchIter<'a> {
    table: &'a EncodedTable,
    order: Vec<usize>,
    pos: usize,
    batch_size: usize,
}

/// Batches of `batch_size` rows; the last one may be smaller (no row is
/// dropped, so evaluation sees every row). With a seed the rows are shuffled
/// by that seed alone: pass a different seed per epoch (e.g. `seed + epoch`)
/// for a fresh but reproducible order. A `batch_size` of 0 is treated as 1.
pub fn batches(
    table: &EncodedTable,
    batch_size: usize,
    shuffle_seed: Option<u64>,
) -> BatchIter<'_> {
    let mut order: Vec<usize> = (0..table.n_rows).collect();
    if let Some(seed) = shuffle_seed {
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    }
    BatchIter {
        table,
        order,
        pos: 0,
        batch_size: batch_size.max(1),
    }
}

impl BatchIter<'_> {
    /// Skips the first `n` batches without building them (a resumed epoch).
    pub fn advance(mut self, n: usize) -> Self {
        self.pos = self
            .pos
            .saturating_add(n.saturating_mul(self.batch_size))
            .min(self.order.len());
        self
    }

    /// The table rows in the order the batches visit them, so predictions can
    /// be mapped back to rows.
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}

impl Iterator for BatchIter<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.pos >= self.order.len() {
            return None;
        }
        let end = (self.pos + self.batch_size).min(self.order.len());
        let rows = &self.order[self.pos..end];
        self.pos = end;
        let t = self.table;
        let mut b = Batch {
            len: rows.len(),
            sparse: Vec::with_capacity(rows.len() * t.n_sparse),
            dense: Vec::with_capacity(rows.len() * t.n_dense),
            labels: Vec::with_capacity(rows.len() * t.n_tasks),
            weights: t
                .label_weights
                .as_ref()
                .map(|_| Vec::with_capacity(rows.len() * t.n_tasks)),
            n_sparse: t.n_sparse,
            n_dense: t.n_dense,
            n_tasks: t.n_tasks,
        };
        let scaled = !t.label_scales.is_empty();
        for &r in rows {
            b.sparse
                .extend(t.sparse_row(r).iter().map(|&id| i64::from(id)));
            b.dense.extend_from_slice(t.dense_row(r));
            let weights = t.label_weight_row(r);
            if !scaled && weights.is_none() {
                b.labels.extend_from_slice(t.label_row(r));
                continue;
            }
            for (k, &y) in t.label_row(r).iter().enumerate() {
                let w = weights.map_or(1.0, |w| w[k]);
                b.labels.push(if w > 0.0 {
                    t.label_scale(k).apply(y)
                } else {
                    0.0
                });
            }
            if let (Some(out), Some(w)) = (b.weights.as_mut(), weights) {
                out.extend_from_slice(w);
            }
        }
        Some(b)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.order.len() - self.pos;
        let n = left.div_ceil(self.batch_size);
        (n, Some(n))
    }
}

impl ExactSizeIterator for BatchIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Row `r` has sparse ids `[r, r]`, dense `[r]` and label `[r]`, so a
    /// batch's content identifies its rows.
    fn table(n: usize) -> EncodedTable {
        EncodedTable {
            n_rows: n,
            n_sparse: 2,
            n_dense: 1,
            n_tasks: 1,
            sparse: (0..n).flat_map(|r| [r as u32, r as u32]).collect(),
            dense: (0..n).map(|r| r as f32).collect(),
            labels: (0..n).map(|r| r as f32).collect(),
            ..EncodedTable::default()
        }
    }

    #[test]
    fn labels_come_on_the_model_scale_with_their_weights() {
        let mut t = table(3);
        t.label_scales = vec![crate::DenseStats {
            mean: 1.0,
            std: 2.0,
            constant: false,
        }];
        t.label_weights = Some(vec![1.0, 0.0, 0.5]);
        let b = batches(&t, 3, None).next().unwrap();
        // (0 - 1) / 2, masked -> 0, (2 - 1) / 2.
        assert_eq!(b.labels, vec![-0.5, 0.0, 0.5]);
        assert_eq!(b.weights, Some(vec![1.0, 0.0, 0.5]));
        assert_eq!(table(3).select(&[0]).label_weights, None);
        assert_eq!(batches(&table(3), 3, None).next().unwrap().weights, None);
    }

    #[test]
    fn covers_every_row_once_and_keeps_the_last_partial_batch() {
        let t = table(10);
        let it = batches(&t, 4, Some(3));
        assert_eq!(it.len(), 3);
        let bs: Vec<Batch> = it.collect();
        assert_eq!(bs.iter().map(|b| b.len).collect::<Vec<_>>(), vec![4, 4, 2]);
        let mut seen: Vec<f32> = bs.iter().flat_map(|b| b.dense.clone()).collect();
        for b in &bs {
            for (i, &d) in b.dense.iter().enumerate() {
                assert_eq!(b.sparse[2 * i], d as i64);
                assert_eq!(b.labels[i], d);
            }
        }
        seen.sort_by(f32::total_cmp);
        assert_eq!(seen, (0..10).map(|r| r as f32).collect::<Vec<_>>());
    }

    #[test]
    fn seeded_shuffle_is_reproducible_and_unshuffled_is_in_order() {
        let t = table(50);
        let a: Vec<Batch> = batches(&t, 8, Some(1)).collect();
        let b: Vec<Batch> = batches(&t, 8, Some(1)).collect();
        let c: Vec<Batch> = batches(&t, 8, Some(2)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let plain: Vec<f32> = batches(&t, 8, None).flat_map(|b| b.dense).collect();
        assert_eq!(plain, (0..50).map(|r| r as f32).collect::<Vec<_>>());
        assert_eq!(batches(&t, 0, None).count(), 50);
    }
}
