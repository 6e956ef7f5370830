//! Multi-valued sparse fields: a cell holding several values (tags, categories, recently
//! watched items written `a|b|c`), embedded as one pooled vector, an embedding bag.
//!
//! ```toml
//! [[sparse]]
//! name = "tags"
//! separator = "|"
//! pooling = "mean"       # or "sum"
//! max_values = 16        # the default
//! ```
//!
//! How a cell becomes ids:
//! - the cell is split at `separator`, each value trimmed; empty values (`a||b`, a trailing
//!   `|`) are no values, and an empty or missing cell has none;
//! - only the first `max_values` values in file order are kept, known or not (so training,
//!   evaluation and prediction cut at the same place whatever the vocabulary);
//! - the vocabulary is built over the values, not the cells: `min_count` counts every
//!   occurrence of a value in the training split, and a value repeated in a cell counts each
//!   time (and weighs twice in its bag);
//! - the field takes `max_values` consecutive id slots of the encoded row, the values' ids
//!   first, then 0 as padding. An unknown value (unseen, or rarer than `min_count`) also
//!   gets 0, so it is excluded from the pool exactly like padding: the bag is pooled over
//!   its known values only.
//!
//! The model embeds every slot and pools each bag: `mean` divides the sum of the known
//! values' embeddings by their number, `sum` does not divide; a bag without known values
//! (empty cell, all unknown) is the zero vector, never NaN. Each multi-valued field is then
//! one field of `d_emb` numbers like any other, so the models do not know bags exist.
//!
//! A multi-valued field is a categorical input among the `[[sparse]]` ones: the field order
//! of [`FeatureMeta`](crate::FeatureMeta) is unchanged, only the slot counts differ (see
//! [`FeatureMeta::slot_counts`](crate::FeatureMeta::slot_counts)).

use serde::{Deserialize, Serialize};

use crate::schema::{Schema, SparseField};

/// `max_values` when the schema does not give it: long enough for a handful of tags, short
/// enough that a bag costs at most 16 lookups per row.
pub const DEFAULT_MAX_VALUES: u32 = 16;

/// The most `max_values` a schema may ask for. Every row of the encoded table keeps that
/// many id slots for the field, used or not, so `max_values = 4294967295` would ask for
/// 16 GB for the first row (found by `fuzz/`'s `schema` target); a thousand values is
/// already a long history.
pub const MAX_VALUES_LIMIT: u32 = 1024;

/// How a bag's value embeddings become one vector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The average over the known values: the scale does not grow with the number of tags.
    #[default]
    Mean,
    /// The sum: the number of values is part of the signal (how many items were watched).
    Sum,
}

/// Where a multi-valued field sits in the model input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BagLayout {
    /// Index of the field among [`FeatureMeta::sparse_names`](crate::FeatureMeta::sparse_names).
    pub field: usize,
    /// Id slots the field takes in every row: its `max_values`.
    pub slots: usize,
    pub pooling: Pooling,
}

/// Id slots per row of the schema's `[[sparse]]` fields (bucketised dense fields, one slot
/// each, come after them).
pub(crate) fn slot_count(schema: &Schema) -> usize {
    schema.sparse.iter().map(SparseField::slots).sum()
}

/// The values of a multi-valued cell: split at `separator`, trimmed, empty ones dropped.
pub fn members<'a>(cell: &'a str, separator: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    cell.split(separator)
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// How the reader turns one multi-valued cell into its slots.
#[derive(Clone, Debug)]
pub(crate) struct Splitter {
    separator: String,
    max_values: usize,
    /// Rows whose cell had more than `max_values` values (reported once per file).
    pub truncated: usize,
}

impl Splitter {
    /// The splitter of `field`; `None` for a single-valued field.
    pub fn of(field: &SparseField) -> Option<Splitter> {
        Some(Splitter {
            separator: field.separator.clone()?,
            max_values: field.slots(),
            truncated: 0,
        })
    }

    /// Pushes exactly `max_values` ids for `cell` (`None` when missing): the first values'
    /// ids through `id`, then zeros.
    pub fn push(
        &mut self,
        cell: Option<&str>,
        out: &mut Vec<u32>,
        id: &mut dyn FnMut(&str) -> u32,
    ) {
        let start = out.len();
        if let Some(cell) = cell {
            let mut values = members(cell, &self.separator);
            out.extend(values.by_ref().take(self.max_values).map(&mut *id));
            if values.next().is_some() {
                self.truncated += 1;
            }
        }
        out.resize(start + self.max_values, 0);
    }

    pub fn max_values(&self) -> usize {
        self.max_values
    }
}

/// `separator`, `pooling` and `max_values` of `f`, or why they are unusable.
pub(crate) fn check(f: &SparseField) -> std::result::Result<(), String> {
    match &f.separator {
        None if f.pooling.is_some() || f.max_values.is_some() => Err(
            "`pooling` and `max_values` apply to a multi-valued field; add `separator = \"|\"`"
                .into(),
        ),
        Some(s) if s.is_empty() => Err("`separator` is empty".into()),
        _ if f.max_values == Some(0) => Err("`max_values` must be at least 1".into()),
        _ if f.max_values > Some(MAX_VALUES_LIMIT) => Err(format!(
            "`max_values` must be at most {MAX_VALUES_LIMIT}, got {}",
            f.max_values.unwrap_or_default()
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_split_trim_drop_empty_values_and_cap_in_file_order() {
        let field = SparseField {
            separator: Some("|".into()),
            max_values: Some(2),
            ..SparseField::new("tags")
        };
        let mut s = Splitter::of(&field).expect("multi-valued");
        let mut out = Vec::new();
        let mut id = |v: &str| u32::from(v.as_bytes()[0] - b'a' + 1);
        s.push(Some(" c | a |b"), &mut out, &mut id);
        s.push(Some("||b|"), &mut out, &mut id);
        s.push(Some(""), &mut out, &mut id);
        s.push(None, &mut out, &mut id);
        // "c a" kept (b dropped: the third value); "b" alone; nothing; nothing.
        assert_eq!(out, vec![3, 1, 2, 0, 0, 0, 0, 0]);
        assert_eq!(s.truncated, 1);
        assert!(Splitter::of(&SparseField::new("user")).is_none());
    }
}
