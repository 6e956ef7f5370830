//! Bucketised dense fields: a number becomes the id of the interval it falls in.
//!
//! Spec section 1 lets a numeric field be standardised or bucketised. A
//! bucketised field is a categorical input: its bucket id is embedded like a
//! sparse field's vocabulary id. In the encoded table and in [`FeatureMeta`]
//! the bucketised fields come after the schema's sparse fields, in schema
//! order, and leave the dense block; so every model, which embeds each sparse
//! field and concatenates, handles them without knowing they were numbers.
//!
//! ```toml
//! [[dense]]
//! name = "register_days"
//! buckets = 4                      # quantiles of the training split
//! [[dense]]
//! name = "price"
//! boundaries = [10.0, 100.0]       # or fixed edges
//! ```
//!
//! With boundaries `b_1 < ... < b_k` the ids are
//! - 0 for a missing cell (the schema rejects a `fill` on such a field);
//! - `1 + #{i : b_i <= v}` otherwise: intervals are closed on the left, so a
//!   value equal to a boundary falls in the bucket above it
//!   (`numpy.digitize(v, b) + 1`). Vocabulary size: `k + 2`.
//!
//! `buckets = n` takes the `i/n` quantiles (`i = 1..n-1`) of the training
//! split's present values, interpolated linearly between order statistics
//! (numpy's default). Heavy ties make quantiles repeat: repeats are merged,
//! and a boundary not above the training minimum is dropped, because the
//! bucket below it would hold no training row and its embedding would never
//! be trained. So a field may get fewer than `n` buckets; a constant one gets
//! a single bucket. The fitted boundaries are saved in the preprocessor, so
//! evaluation and prediction cut exactly where training did.
//!
//! [`FeatureMeta`]: crate::FeatureMeta

use serde::{Deserialize, Serialize};

use crate::schema::{DenseField, Schema};
use crate::table::EncodedTable;

/// The most quantile buckets a schema may ask for: each may get its own boundary and
/// embedding row, so `buckets = 4294967295` would interpolate billions of boundaries on a
/// 10-row file (found by `fuzz/`'s `schema` target). Fixed `boundaries` are bounded by the
/// schema file itself.
pub const MAX_BUCKETS: u32 = 1 << 16;

/// The fitted edges of one bucketised dense field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Buckets {
    /// The dense field's name.
    pub field: String,
    /// Strictly increasing, finite.
    pub boundaries: Vec<f64>,
}

impl Buckets {
    /// Edges for `field`: its own `boundaries`, else quantiles of `train`
    /// (raw training values, NaN for a missing cell). `None` when the field
    /// is not bucketised.
    pub fn fit(field: &DenseField, train: impl IntoIterator<Item = f32>) -> Option<Buckets> {
        let boundaries = match (&field.boundaries, field.buckets) {
            (Some(b), _) => b.clone(),
            (None, Some(n)) => {
                let values: Vec<f64> = train
                    .into_iter()
                    .filter(|v| !v.is_nan())
                    .map(f64::from)
                    .collect();
                let edges = quantile_boundaries(values, n);
                if edges.len() + 1 < n as usize {
                    // Repeated quantiles merge: a field with a mass point (most values 0)
                    // gets fewer buckets than asked, possibly one, which carries nothing.
                    tracing::warn!(
                        "dense field `{}`: buckets = {n} gives {} bucket(s) on the training \
                         split, because many values are equal{}",
                        field.name,
                        edges.len() + 1,
                        if edges.is_empty() {
                            "; the field carries no information: set `boundaries = [...]`"
                        } else {
                            ""
                        }
                    );
                }
                edges
            }
            (None, None) => return None,
        };
        Some(Buckets {
            field: field.name.clone(),
            boundaries,
        })
    }

    /// The bucket id of a raw value: 0 for NaN (missing), else
    /// `1 + #{boundaries <= v}`.
    pub fn id(&self, v: f32) -> u32 {
        if v.is_nan() {
            return 0;
        }
        let v = f64::from(v);
        1 + self.boundaries.partition_point(|&b| b <= v) as u32
    }

    /// Ids in use, including the missing id 0: the embedding table's row count.
    pub fn n_ids(&self) -> usize {
        self.boundaries.len() + 2
    }

    /// Whether the edges can be used: finite and strictly increasing (a saved
    /// preprocessor may have been edited by hand).
    pub fn check(&self) -> std::result::Result<(), String> {
        check_boundaries(&self.boundaries)
    }
}

/// Finite and strictly increasing edges, or why not.
pub(crate) fn check_boundaries(b: &[f64]) -> std::result::Result<(), String> {
    if let Some(v) = b.iter().find(|v| !v.is_finite()) {
        return Err(format!("boundaries must be finite numbers, got {v}"));
    }
    if let Some(w) = b.windows(2).find(|w| w[0] >= w[1]) {
        return Err(format!(
            "boundaries must be strictly increasing, got {} then {}",
            w[0], w[1]
        ));
    }
    Ok(())
}

/// The `i/n` quantiles (`i = 1..n`) of `values`, linear interpolation
/// between order statistics, repeats merged, those not above the minimum
/// dropped (see the module doc).
pub fn quantile_boundaries(mut values: Vec<f64>, n: u32) -> Vec<f64> {
    if values.is_empty() || n < 2 {
        return Vec::new();
    }
    values.sort_unstable_by(f64::total_cmp);
    let last = (values.len() - 1) as f64;
    let min = values[0];
    let mut out: Vec<f64> = Vec::new();
    for i in 1..n {
        let h = last * f64::from(i) / f64::from(n);
        let lo = h.floor() as usize;
        let hi = (lo + 1).min(values.len() - 1);
        let q = values[lo] + (h - lo as f64) * (values[hi] - values[lo]);
        if q > min && out.last().is_none_or(|&p| q > p) {
            out.push(q);
        }
    }
    out
}

/// Indices of the schema's bucketised dense fields, in schema order.
pub(crate) fn bucketised(schema: &Schema) -> Vec<usize> {
    schema
        .dense
        .iter()
        .enumerate()
        .filter(|(_, f)| f.is_bucketised())
        .map(|(j, _)| j)
        .collect()
}

/// Moves the bucketised dense columns of `table` (raw values, NaN where
/// missing) to the end of its sparse block as bucket ids. `buckets` holds one
/// entry per bucketised field, in schema order.
/// Labels and everything else of the table are kept as they are.
pub(crate) fn apply(mut table: EncodedTable, schema: &Schema, buckets: &[Buckets]) -> EncodedTable {
    let cols = bucketised(schema);
    if cols.is_empty() || table.n_dense != schema.dense.len() {
        return table;
    }
    let n_sparse = table.n_sparse + cols.len();
    let n_dense = table.n_dense - cols.len();
    let mut sparse = Vec::with_capacity(table.n_rows * n_sparse);
    let mut dense = Vec::with_capacity(table.n_rows * n_dense);
    for r in 0..table.n_rows {
        sparse.extend_from_slice(table.sparse_row(r));
        let row = table.dense_row(r);
        for (&j, b) in cols.iter().zip(buckets) {
            sparse.push(b.id(row[j]));
        }
        let kept = row
            .iter()
            .enumerate()
            .filter(|(j, _)| !cols.contains(j))
            .map(|(_, &v)| v);
        dense.extend(kept);
    }
    table.sparse = sparse;
    table.dense = dense;
    table.n_sparse = n_sparse;
    table.n_dense = n_dense;
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(buckets: Option<u32>, boundaries: Option<Vec<f64>>) -> DenseField {
        DenseField {
            buckets,
            boundaries,
            ..DenseField::new("x")
        }
    }

    #[test]
    fn quantiles_match_a_hand_computation() {
        // Sorted: 1 2 3 4 5 6 7 8 9 10 (n = 10, last index 9). Quartiles at h = 9 * i / 4:
        // h = 2.25 -> 3 + 0.25 * (4 - 3) = 3.25; h = 4.5 -> 5.5; h = 6.75 -> 7.75.
        let values = [7.0, 1.0, 10.0, 3.0, 5.0, 2.0, 9.0, 4.0, 8.0, 6.0, f32::NAN];
        let b = Buckets::fit(&field(Some(4), None), values).expect("bucketised");
        assert_eq!(b.boundaries, vec![3.25, 5.5, 7.75]);
        assert_eq!(b.n_ids(), 5);
        // Left-closed: 3.25 itself is in bucket 2; below every edge is bucket 1.
        let ids: Vec<u32> = [f32::NAN, -100.0, 3.0, 3.25, 5.5, 7.7, 7.75, 1e6]
            .iter()
            .map(|&v| b.id(v))
            .collect();
        assert_eq!(ids, vec![0, 1, 1, 2, 3, 3, 4, 4]);
    }

    #[test]
    fn tied_quantiles_are_merged_and_the_minimum_dropped() {
        // Six zeros then 1 2 3 4: h = 2.25 -> 0, h = 4.5 -> 0, h = 6.75 -> 1 + 0.75 = 1.75.
        // The two zeros merge, and 0 (the minimum) would open an empty bucket: only 1.75 stays.
        let v = vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_boundaries(v, 4), vec![1.75]);
        assert!(quantile_boundaries(vec![5.0; 8], 4).is_empty());
        assert!(quantile_boundaries(Vec::new(), 4).is_empty());
        let constant = Buckets::fit(&field(Some(3), None), [5.0, 5.0]).expect("bucketised");
        assert_eq!((constant.id(5.0), constant.n_ids()), (1, 2));
    }

    #[test]
    fn explicit_boundaries_are_kept_and_plain_fields_are_not_bucketised() {
        let b = Buckets::fit(&field(None, Some(vec![0.0, 10.0])), [50.0]).expect("bucketised");
        assert_eq!(b.boundaries, vec![0.0, 10.0]);
        assert_eq!([b.id(-1.0), b.id(0.0), b.id(9.9), b.id(10.0)], [1, 2, 2, 3]);
        assert!(Buckets::fit(&field(None, None), [1.0]).is_none());
        assert!(
            check_boundaries(&[1.0, 1.0])
                .unwrap_err()
                .contains("strictly")
        );
        assert!(
            check_boundaries(&[f64::INFINITY])
                .unwrap_err()
                .contains("finite")
        );
    }

    #[test]
    fn apply_moves_bucketised_columns_after_the_sparse_ones() {
        let schema = Schema {
            dense: vec![
                DenseField::new("a"),
                field(None, Some(vec![1.0])),
                DenseField::new("c"),
            ],
            ..Schema::default()
        };
        let table = EncodedTable {
            n_rows: 2,
            n_sparse: 1,
            n_dense: 3,
            n_tasks: 1,
            sparse: vec![7, 8],
            dense: vec![0.1, 0.5, 0.3, 0.4, f32::NAN, 0.6],
            labels: vec![1.0, 0.0],
            ..EncodedTable::default()
        };
        let b = Buckets::fit(&schema.dense[1], []).expect("bucketised");
        let out = apply(table, &schema, &[b]);
        assert_eq!((out.n_sparse, out.n_dense, out.n_rows), (2, 2, 2));
        assert_eq!(out.sparse, vec![7, 1, 8, 0]);
        assert_eq!(out.dense, vec![0.1, 0.3, 0.4, 0.6]);
        assert_eq!(out.labels, vec![1.0, 0.0]);
    }
}
