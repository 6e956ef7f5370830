//! The encoded, in-memory form of a split that every model consumes.
//!
//! Row-major flat buffers rather than per-row structs: a batch is then a few
//! contiguous copies, and the buffers map one-to-one onto `[rows, fields]` tensors.

use crate::encode::DenseStats;

/// Encoded rows: sparse ids, standardised dense values and labels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EncodedTable {
    pub n_rows: usize,
    /// Id slots per row: one per sparse field, except a multi-valued field, which takes its
    /// `max_values` (see [`crate::bag`] and [`FeatureMeta::n_sparse_slots`]).
    ///
    /// [`FeatureMeta::n_sparse_slots`]: crate::FeatureMeta::n_sparse_slots
    pub n_sparse: usize,
    pub n_dense: usize,
    pub n_tasks: usize,
    /// `n_rows * n_sparse` vocabulary ids; 0 means unknown or missing (or, in a
    /// multi-valued field's slots, no value).
    pub sparse: Vec<u32>,
    /// `n_rows * n_dense` standardised values.
    pub dense: Vec<f32>,
    /// `n_rows * n_tasks` labels as in the file (0/1 for binary tasks, regression labels
    /// unscaled); 0 where a label is missing.
    pub labels: Vec<f32>,
    /// `n_rows * n_tasks` example weights `w[r, t] >= 0`: 0 where task `t`'s label is missing
    /// (`missing = "mask"`) or its `given` task is not positive, the weight column's value
    /// otherwise, 1 by default. `None` when every weight is 1 (no task has partial labels),
    /// so the common path carries and computes nothing extra. Losses and metrics of task `t`
    /// are `sum_r w[r, t] l[r, t] / sum_r w[r, t]`: a row of weight 0 takes no part.
    pub label_weights: Option<Vec<f32>>,
    /// Per task, the map from labels to the scale the model trains on, `(y - mean) / std`
    /// (identity for binary tasks and `scale = "none"`); empty means identity for all.
    pub label_scales: Vec<DenseStats>,
}

impl EncodedTable {
    /// An empty table with the given widths, ready to be filled row by row.
    pub fn with_widths(n_sparse: usize, n_dense: usize, n_tasks: usize) -> Self {
        EncodedTable {
            n_sparse,
            n_dense,
            n_tasks,
            ..EncodedTable::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.n_rows == 0
    }

    /// The given rows, in the given order (indices may repeat). Out-of-range
    /// indices are skipped rather than panicking; callers pass indices from
    /// [`crate::split_indices`] or a permutation, which are always in range.
    pub fn select(&self, rows: &[usize]) -> EncodedTable {
        let mut out = EncodedTable::with_widths(self.n_sparse, self.n_dense, self.n_tasks);
        out.sparse.reserve(rows.len() * self.n_sparse);
        out.dense.reserve(rows.len() * self.n_dense);
        out.labels.reserve(rows.len() * self.n_tasks);
        out.label_weights = self
            .label_weights
            .as_ref()
            .map(|_| Vec::with_capacity(rows.len() * self.n_tasks));
        out.label_scales = self.label_scales.clone();
        for &r in rows.iter().filter(|&&r| r < self.n_rows) {
            out.push_row_from(self, r);
        }
        out
    }

    /// The first `n` rows (all of them if there are fewer).
    pub fn head(&self, n: usize) -> EncodedTable {
        let n = n.min(self.n_rows);
        EncodedTable {
            n_rows: n,
            n_sparse: self.n_sparse,
            n_dense: self.n_dense,
            n_tasks: self.n_tasks,
            sparse: prefix(&self.sparse, n * self.n_sparse),
            dense: prefix(&self.dense, n * self.n_dense),
            labels: prefix(&self.labels, n * self.n_tasks),
            label_weights: self
                .label_weights
                .as_ref()
                .map(|w| prefix(w, n * self.n_tasks)),
            label_scales: self.label_scales.clone(),
        }
    }

    /// The example weights of task `t` for every row; `None` when every weight is 1.
    pub fn weights_of_task(&self, t: usize) -> Option<Vec<f32>> {
        let w = self.label_weights.as_ref()?;
        (t < self.n_tasks).then(|| w.iter().skip(t).step_by(self.n_tasks).copied().collect())
    }

    /// The example weights of row `r`, one per task; `None` when every weight is 1.
    pub fn label_weight_row(&self, r: usize) -> Option<&[f32]> {
        let w = self.label_weights.as_ref()?;
        w.get(r * self.n_tasks..(r + 1) * self.n_tasks)
    }

    /// How task `t`'s labels map to the model's scale (identity when not standardised).
    pub fn label_scale(&self, t: usize) -> DenseStats {
        self.label_scales.get(t).copied().unwrap_or_default()
    }

    /// Rows labelled for task `t` (weight above 0): every row without partial labels.
    pub fn labelled_rows(&self, t: usize) -> usize {
        match self.weights_of_task(t) {
            Some(w) => w.iter().filter(|&&w| w > 0.0).count(),
            None if t < self.n_tasks => self.n_rows,
            None => 0,
        }
    }

    /// The labels of task `t` for every row (empty if there is no such task).
    pub fn labels_of_task(&self, t: usize) -> Vec<f32> {
        if t >= self.n_tasks {
            return Vec::new();
        }
        self.labels
            .iter()
            .skip(t)
            .step_by(self.n_tasks)
            .copied()
            .collect()
    }

    pub fn sparse_row(&self, r: usize) -> &[u32] {
        &self.sparse[r * self.n_sparse..(r + 1) * self.n_sparse]
    }

    pub fn dense_row(&self, r: usize) -> &[f32] {
        &self.dense[r * self.n_dense..(r + 1) * self.n_dense]
    }

    pub fn label_row(&self, r: usize) -> &[f32] {
        &self.labels[r * self.n_tasks..(r + 1) * self.n_tasks]
    }

    fn push_row_from(&mut self, other: &EncodedTable, r: usize) {
        self.sparse.extend_from_slice(other.sparse_row(r));
        self.dense.extend_from_slice(other.dense_row(r));
        self.labels.extend_from_slice(other.label_row(r));
        if let (Some(out), Some(w)) = (self.label_weights.as_mut(), other.label_weight_row(r)) {
            out.extend_from_slice(w);
        }
        self.n_rows += 1;
    }
}

/// The first `len` elements, or all of them: a table whose buffers disagree
/// with its counts yields a short copy instead of a panic.
fn prefix<T: Copy>(v: &[T], len: usize) -> Vec<T> {
    v[..len.min(v.len())].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> EncodedTable {
        EncodedTable {
            n_rows: 3,
            n_sparse: 2,
            n_dense: 1,
            n_tasks: 2,
            sparse: vec![1, 2, 3, 4, 5, 6],
            dense: vec![0.1, 0.2, 0.3],
            labels: vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0],
            ..EncodedTable::default()
        }
    }

    #[test]
    fn weights_follow_their_rows() {
        let mut t = table();
        assert_eq!(t.weights_of_task(0), None);
        assert_eq!(t.labelled_rows(1), 3);
        t.label_weights = Some(vec![1.0, 0.0, 2.0, 1.0, 0.0, 0.5]);
        let s = t.select(&[2, 0]);
        assert_eq!(s.label_weights, Some(vec![0.0, 0.5, 1.0, 0.0]));
        assert_eq!(s.weights_of_task(1), Some(vec![0.5, 0.0]));
        assert_eq!(t.head(2).label_weights, Some(vec![1.0, 0.0, 2.0, 1.0]));
        assert_eq!(t.labelled_rows(0), 2);
        assert_eq!(t.labelled_rows(1), 2);
        assert_eq!(t.label_scale(1), DenseStats::default());
    }

    #[test]
    fn select_keeps_order_and_repeats() {
        let t = table().select(&[2, 0, 2]);
        assert_eq!(t.n_rows, 3);
        assert_eq!(t.sparse, vec![5, 6, 1, 2, 5, 6]);
        assert_eq!(t.dense, vec![0.3, 0.1, 0.3]);
        assert_eq!(t.labels, vec![1.0, 1.0, 1.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn head_and_labels_of_task() {
        let t = table();
        assert_eq!(t.head(2), t.select(&[0, 1]));
        assert_eq!(t.head(10), t);
        assert_eq!(t.labels_of_task(1), vec![0.0, 1.0, 1.0]);
        assert!(t.labels_of_task(2).is_empty());
    }
}
