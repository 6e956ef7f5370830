//! From raw cells to model inputs: vocabularies, dense statistics and the
//! [`Preprocessor`] that owns both.
//!
//! Everything learned from data (which categorical values get an id, the mean
//! and std of each numeric field) is fitted on the training split only and
//! then frozen in the `Preprocessor`, which is saved as JSON beside every
//! checkpoint: evaluation and prediction on new files must encode exactly as
//! training did, and no statistic may leak from validation or test rows.
//!
//! Loading works in two steps so that a file is read once even when it is
//! split afterwards: rows are first read into a [`RawTable`] (categorical
//! values interned per field as small integer codes, numbers parsed, labels
//! derived), then the preprocessor is fitted on the training rows and maps
//! codes to vocabulary ids. Only the distinct strings of each field are held.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bag::{self, BagLayout, Splitter};
use crate::buckets::{self, Buckets};
use crate::derive::{Derived, ResolvedRule};
use crate::error::{DataError, Result};
use crate::schema::{MissingLabels, Schema, TaskKind, TaskSpec};
use crate::source::{Cell, Row, SourceReader, SourceSpec, is_missing_text};
use crate::table::EncodedTable;

/// Ids of one categorical field: id 0 is reserved for unknown and missing
/// values, known values get 1, 2, ... in sorted order, so the mapping does not
/// depend on row order and two fits on the same rows agree.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct Vocabulary {
    values: Vec<String>,
    index: HashMap<String, u32>,
}

impl PartialEq for Vocabulary {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values
    }
}

impl From<Vec<String>> for Vocabulary {
    /// Keeps the given order (ids 1, 2, ...); a repeated value keeps its first id.
    fn from(values: Vec<String>) -> Self {
        let mut v = Vocabulary::default();
        for s in values {
            if !v.index.contains_key(&s) {
                v.index.insert(s.clone(), v.values.len() as u32 + 1);
                v.values.push(s);
            }
        }
        v
    }
}

impl From<Vocabulary> for Vec<String> {
    fn from(v: Vocabulary) -> Self {
        v.values
    }
}

impl Vocabulary {
    /// A vocabulary with the given values, in that order.
    pub fn from_values<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Vocabulary::from(values.into_iter().map(Into::into).collect::<Vec<_>>())
    }

    /// The id of a value; 0 if it was not seen (often enough) in training.
    pub fn id(&self, v: &str) -> u32 {
        self.index.get(v).copied().unwrap_or(0)
    }

    /// The value behind an id (`None` for 0 and out-of-range ids).
    pub fn value(&self, id: u32) -> Option<&str> {
        let i = (id as usize).checked_sub(1)?;
        self.values.get(i).map(String::as_str)
    }

    /// Number of ids including the reserved 0: the embedding table's row count.
    pub fn len(&self) -> usize {
        self.values.len() + 1
    }

    /// True when no value is known (`len()` is then 1: only the unknown id).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Known values, in id order (the value of id `i` is at `i - 1`).
    pub fn values(&self) -> &[String] {
        &self.values
    }
}

/// Standardisation of one numeric field: `(x - mean) / std`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DenseStats {
    pub mean: f32,
    pub std: f32,
    /// The field had no real spread when fitted: every value encodes to 0. The model never
    /// saw it vary, so its weights for the field are untrained and a new value would only
    /// add noise. (Older checkpoints lack the key: std 1 then, `x - mean`.)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub constant: bool,
}

impl Default for DenseStats {
    fn default() -> Self {
        DenseStats {
            mean: 0.0,
            std: 1.0,
            constant: false,
        }
    }
}

impl DenseStats {
    /// Mean and population std (as scikit-learn's `StandardScaler`), summed in
    /// f64.
    ///
    /// A field without a real spread gets std 1, so that it encodes to about 0
    /// instead of to huge or non-finite values:
    /// - a constant field (std 0);
    /// - a std below the smallest normal f32 (1.2e-38), e.g. a column of 0 and
    ///   2e-38: such a std has lost precision, its reciprocal may overflow, and
    ///   hardware that flushes subnormals to zero turns the division into NaN;
    /// - a std below one f32 rounding step at the field's magnitude (`max |x|`
    ///   times `f32::EPSILON`): values stored as f32 cannot differ by less, so
    ///   the spread is rounding noise and dividing by it would amplify noise.
    pub fn fit(values: impl IntoIterator<Item = f32>) -> DenseStats {
        let values: Vec<f64> = values.into_iter().map(f64::from).collect();
        if values.is_empty() {
            return DenseStats::default();
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let std = var.sqrt();
        let scale = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let noise = scale * f64::from(f32::EPSILON);
        let real_spread = std.is_finite() && std >= f64::from(f32::MIN_POSITIVE) && std > noise;
        DenseStats {
            mean: mean as f32,
            std: if real_spread { std as f32 } else { 1.0 },
            constant: !real_spread,
        }
    }

    /// `(v - mean) / std`, computed in f64 so that the difference of two large
    /// f32 values (3e38 and -3e38) does not overflow before the division. The
    /// result is not finite only when `v` is far outside the fitted values.
    pub fn apply(&self, v: f32) -> f32 {
        if self.constant {
            return 0.0;
        }
        ((f64::from(v) - f64::from(self.mean)) / f64::from(self.std)) as f32
    }

    /// The inverse of [`DenseStats::apply`], `v * std + mean` (in f64): maps a model's output
    /// on a standardised label's scale back to the label's own.
    pub fn invert(&self, v: f32) -> f32 {
        (f64::from(v) * f64::from(self.std) + f64::from(self.mean)) as f32
    }

    /// Whether `apply` can be trusted: a saved preprocessor edited by hand may
    /// hold a zero or non-finite std, which would encode every value to NaN or inf.
    fn is_usable(&self) -> bool {
        self.mean.is_finite() && self.std.is_finite() && self.std > 0.0
    }
}

/// What a model needs to know about its inputs and outputs to be built.
///
/// A sparse *field* is one embedding in the model input; a *slot* is one id of an encoded
/// row. They are the same until a field is multi-valued: such a field takes `slots` ids
/// (see [`crate::bag`]), so [`FeatureMeta::n_sparse`] counts fields and
/// [`FeatureMeta::n_sparse_slots`] the width of [`EncodedTable::sparse`] rows.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FeatureMeta {
    pub sparse_names: Vec<String>,
    /// Embedding table sizes, including the unknown id 0.
    pub vocab_sizes: Vec<usize>,
    /// The multi-valued fields, in field order; empty when every sparse field takes one
    /// slot, as in everything saved before such fields existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bags: Vec<BagLayout>,
    pub dense_names: Vec<String>,
    pub task_names: Vec<String>,
    pub task_kinds: Vec<TaskKind>,
}

impl FeatureMeta {
    /// Sparse fields (bucketised dense fields included): the embeddings of a row.
    pub fn n_sparse(&self) -> usize {
        self.sparse_names.len()
    }

    /// Id slots per sparse field: 1, or a multi-valued field's `slots`.
    pub fn slot_counts(&self) -> Vec<usize> {
        let mut counts = vec![1; self.n_sparse()];
        for b in &self.bags {
            if let Some(c) = counts.get_mut(b.field) {
                *c = b.slots;
            }
        }
        counts
    }

    /// Ids per encoded row ([`EncodedTable::n_sparse`]); [`FeatureMeta::n_sparse`] unless a
    /// field is multi-valued.
    pub fn n_sparse_slots(&self) -> usize {
        if self.bags.is_empty() {
            return self.n_sparse();
        }
        self.slot_counts().iter().sum()
    }

    pub fn n_dense(&self) -> usize {
        self.dense_names.len()
    }

    pub fn n_tasks(&self) -> usize {
        self.task_names.len()
    }
}

/// The schema plus everything fitted on the training split; it turns any
/// file with the schema's columns into an [`EncodedTable`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    pub schema: Schema,
    /// One per sparse field, in schema order.
    pub vocabs: Vec<Vocabulary>,
    /// One per dense field, in schema order (mean 0, std 1 for a bucketised
    /// field, which is not standardised).
    pub dense_stats: Vec<DenseStats>,
    /// One per bucketised dense field, in schema order; absent from
    /// preprocessors saved before bucketisation existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<Buckets>,
    /// One per task, in schema order: the training split's mean and std of a standardised
    /// regression label (over its labelled rows), identity for the other tasks. Empty in
    /// checkpoints written before labels were scaled, which trained on raw labels: identity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub label_stats: Vec<DenseStats>,
}

impl Preprocessor {
    /// Bucketised dense fields count as sparse fields, after the schema's
    /// sparse ones (see [`crate::buckets`]).
    pub fn meta(&self) -> FeatureMeta {
        let bucketised = self.schema.dense.iter().filter(|f| f.is_bucketised());
        let plain = self.schema.dense.iter().filter(|f| !f.is_bucketised());
        FeatureMeta {
            sparse_names: self
                .schema
                .sparse
                .iter()
                .map(|f| f.name.clone())
                .chain(bucketised.map(|f| f.name.clone()))
                .collect(),
            vocab_sizes: self
                .vocabs
                .iter()
                .map(Vocabulary::len)
                .chain(self.buckets.iter().map(Buckets::n_ids))
                .collect(),
            bags: self
                .schema
                .sparse
                .iter()
                .enumerate()
                .filter(|(_, f)| f.is_multi_valued())
                .map(|(field, f)| BagLayout {
                    field,
                    slots: f.slots(),
                    pooling: f.pooling(),
                })
                .collect(),
            dense_names: plain.map(|f| f.name.clone()).collect(),
            task_names: self.schema.task_names(),
            task_kinds: self.schema.task_kinds(),
        }
    }

    /// Encodes a labelled file (evaluation); every task column must be present.
    pub fn encode_file(&self, src: &SourceSpec) -> Result<EncodedTable> {
        self.encode_source(src, true)
    }

    /// Encodes a file for prediction: task columns are not read (and need not
    /// exist); the table has `n_tasks == 0` and no labels.
    pub fn encode_file_unlabelled(&self, src: &SourceSpec) -> Result<EncodedTable> {
        self.encode_source(src, false)
    }

    fn encode_source(&self, src: &SourceSpec, with_labels: bool) -> Result<EncodedTable> {
        let mut table = EncodedTable::with_widths(
            bag::slot_count(&self.schema),
            self.schema.dense.len(),
            if with_labels {
                self.schema.tasks.len()
            } else {
                0
            },
        );
        let vocabs = &self.vocabs;
        let mut lookup = |f: usize, v: &str| vocabs.get(f).map_or(0, |voc| voc.id(v));
        read_rows(
            &self.schema,
            src,
            with_labels,
            Some(&self.dense_stats),
            &mut table,
            &mut lookup,
        )?;
        // An unlabelled table carries them too: prediction maps outputs back with them.
        table.label_scales = self.label_scales();
        Ok(buckets::apply(table, &self.schema, &self.buckets))
    }

    /// The label scales an encoded table carries: [`Preprocessor::label_stats`], or nothing
    /// when every one is the identity (the batches then copy labels as they are).
    pub fn label_scales(&self) -> Vec<DenseStats> {
        if self.label_stats.iter().all(|s| *s == DenseStats::default()) {
            Vec::new()
        } else {
            self.label_stats.clone()
        }
    }

    /// Fits vocabularies and dense statistics on `rows` of `raw` (the training split).
    pub(crate) fn fit(schema: &Schema, raw: &RawTable, rows: &[usize]) -> Preprocessor {
        let t = &raw.table;
        let mut start = 0;
        let vocabs = schema
            .sparse
            .iter()
            .enumerate()
            .map(|(f, field)| {
                let interner = &raw.interners[f];
                let mut counts = vec![0u32; interner.values.len() + 1];
                // A multi-valued field's values all count, whichever slot they sit in.
                let slots = start..start + field.slots();
                start = slots.end;
                for &r in rows {
                    let row = &t.sparse[r * t.n_sparse..(r + 1) * t.n_sparse];
                    for &code in &row[slots.clone()] {
                        let code = code as usize;
                        counts[code] = counts[code].saturating_add(1);
                    }
                }
                let min = field.min_count.max(1);
                let mut kept: Vec<&str> = interner
                    .values
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| counts[i + 1] >= min)
                    .map(|(_, v)| v.as_ref())
                    .collect();
                kept.sort_unstable();
                Vocabulary::from_values(kept)
            })
            .collect();
        let column = |j: usize| rows.iter().map(move |&r| t.dense[r * t.n_dense + j]);
        let dense_stats = schema
            .dense
            .iter()
            .enumerate()
            .map(|(j, f)| match f.is_bucketised() {
                true => DenseStats::default(),
                false => {
                    let stats = DenseStats::fit(column(j));
                    if stats.constant && !rows.is_empty() {
                        tracing::warn!(
                            "dense field `{}` has no spread on the training split (mean {}): \
                             it carries no information and every value encodes to 0",
                            f.name,
                            stats.mean
                        );
                    }
                    stats
                }
            })
            .collect();
        let buckets = schema
            .dense
            .iter()
            .enumerate()
            .filter_map(|(j, f)| Buckets::fit(f, column(j)))
            .collect();
        let n = t.n_tasks;
        let labelled =
            |r: usize, k: usize| t.label_weights.as_ref().is_none_or(|w| w[r * n + k] > 0.0);
        let label_stats = schema
            .tasks
            .iter()
            .enumerate()
            .map(|(k, task)| {
                if !task.is_standardised() || k >= n {
                    return DenseStats::default();
                }
                DenseStats::fit(
                    rows.iter()
                        .filter(|&&r| labelled(r, k))
                        .map(|&r| t.labels[r * n + k]),
                )
            })
            .collect();
        Preprocessor {
            schema: schema.clone(),
            vocabs,
            dense_stats,
            buckets,
            label_stats,
        }
    }

    /// Encodes `rows` of `raw` with the fitted vocabularies and statistics;
    /// `what` names the rows (e.g. "the validation split") in errors.
    pub(crate) fn encode_raw(
        &self,
        raw: &RawTable,
        rows: &[usize],
        what: &str,
    ) -> Result<EncodedTable> {
        let remaps: Vec<Vec<u32>> = raw
            .interners
            .iter()
            .zip(&self.vocabs)
            .map(|(interner, vocab)| {
                std::iter::once(0)
                    .chain(interner.values.iter().map(|v| vocab.id(v)))
                    .collect()
            })
            .collect();
        // One remap per slot: a multi-valued field's slots share its field's.
        let slot_remaps: Vec<&Vec<u32>> = remaps
            .iter()
            .zip(&self.schema.sparse)
            .flat_map(|(remap, field)| std::iter::repeat_n(remap, field.slots()))
            .collect();
        let mut out = raw.table.select(rows);
        out.label_scales = self.label_scales();
        let n = out.n_sparse;
        if n > 0 {
            for row in out.sparse.chunks_exact_mut(n) {
                for (code, remap) in row.iter_mut().zip(&slot_remaps) {
                    *code = remap.get(*code as usize).copied().unwrap_or(0);
                }
            }
        }
        let n = out.n_dense;
        if n > 0 {
            for row in out.dense.chunks_exact_mut(n) {
                let fields = self.dense_stats.iter().zip(&self.schema.dense);
                for (v, (s, field)) in row.iter_mut().zip(fields) {
                    *v = standardise(*v, s, field.column(), || what.to_string())?;
                }
            }
        }
        Ok(buckets::apply(out, &self.schema, &self.buckets))
    }

    /// Writes the preprocessor as JSON (atomically: readers never see half a file).
    pub fn save_json(&self, path: &Path) -> Result<()> {
        crate::atomic::write_atomically(path, |w| {
            serde_json::to_writer_pretty(w, self).map_err(|e| DataError::Json {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        })
    }

    /// Reads a preprocessor written by [`Preprocessor::save_json`].
    pub fn load_json(path: &Path) -> Result<Preprocessor> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let p: Preprocessor = serde_json::from_str(&text).map_err(|e| DataError::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let bad =
            p.vocabs.len() != p.schema.sparse.len() || p.dense_stats.len() != p.schema.dense.len();
        if bad {
            return Err(DataError::Json {
                path: path.to_path_buf(),
                message: "vocabularies or dense statistics do not match the schema".into(),
            });
        }
        for f in &p.schema.sparse {
            if let Err(message) = bag::check(f) {
                return Err(DataError::Json {
                    path: path.to_path_buf(),
                    message: format!("field `{}`: {message}", f.name),
                });
            }
        }
        if let Err(message) = p.check_buckets() {
            return Err(DataError::Json {
                path: path.to_path_buf(),
                message,
            });
        }
        for (s, field) in p.dense_stats.iter().zip(&p.schema.dense) {
            if !s.is_usable() {
                return Err(DataError::Json {
                    path: path.to_path_buf(),
                    message: format!(
                        "field `{}`: dense statistics need a finite mean and a positive \
                         finite std, got mean {} and std {}",
                        field.name, s.mean, s.std
                    ),
                });
            }
        }
        if let Err(message) = p.check_label_stats() {
            return Err(DataError::Json {
                path: path.to_path_buf(),
                message,
            });
        }
        Ok(p)
    }

    /// None (a checkpoint from before label scaling) or one usable set per task: a
    /// hand-edited std of 0 would map every prediction to the mean.
    fn check_label_stats(&self) -> std::result::Result<(), String> {
        let (n, t) = (self.label_stats.len(), self.schema.tasks.len());
        if n != 0 && n != t {
            return Err(format!("{n} sets of label statistics for {t} tasks"));
        }
        for (s, task) in self.label_stats.iter().zip(&self.schema.tasks) {
            if !s.is_usable() {
                return Err(format!(
                    "task `{}`: label statistics need a finite mean and a positive finite \
                     std, got mean {} and std {}",
                    task.name, s.mean, s.std
                ));
            }
        }
        Ok(())
    }
}

impl Preprocessor {
    /// One set of edges per bucketised field, in schema order, each usable:
    /// a hand-edited preprocessor must not cut at other places than training did.
    fn check_buckets(&self) -> std::result::Result<(), String> {
        let fields: Vec<&str> = buckets::bucketised(&self.schema)
            .into_iter()
            .map(|j| self.schema.dense[j].name.as_str())
            .collect();
        let saved: Vec<&str> = self.buckets.iter().map(|b| b.field.as_str()).collect();
        if fields != saved {
            return Err(format!(
                "bucket boundaries are saved for fields {saved:?}, the schema bucketises {fields:?}"
            ));
        }
        for b in &self.buckets {
            b.check().map_err(|e| format!("field `{}`: {e}", b.field))?;
        }
        Ok(())
    }
}

/// One standardised value, or an error when it is not a finite f32; `what`
/// (the file and line, or the split) is only formatted on failure. NaN is the
/// missing cell of a bucketised field and passes through to become bucket 0.
fn standardise(v: f32, s: &DenseStats, field: &str, what: impl FnOnce() -> String) -> Result<f32> {
    if v.is_nan() {
        return Ok(v);
    }
    let encoded = s.apply(v);
    if encoded.is_finite() {
        return Ok(encoded);
    }
    Err(DataError::NonFiniteEncoded {
        what: what(),
        field: field.to_string(),
        value: v,
        encoded,
        mean: s.mean,
        std: s.std,
    })
}

/// Distinct values of one field, in first-seen order; code `i + 1` is `values[i]`.
#[derive(Default)]
pub(crate) struct Interner {
    index: HashMap<Box<str>, u32>,
    values: Vec<Box<str>>,
}

impl Interner {
    fn code(&mut self, v: &str) -> u32 {
        if let Some(&c) = self.index.get(v) {
            return c;
        }
        let c = self.values.len() as u32 + 1;
        self.values.push(v.into());
        self.index.insert(v.into(), c);
        c
    }
}

/// Rows read but not yet encoded: `table.sparse` holds interned codes (0 =
/// missing), `table.dense` raw values with fills applied, labels final.
pub(crate) struct RawTable {
    pub table: EncodedTable,
    pub interners: Vec<Interner>,
}

impl RawTable {
    pub fn new(schema: &Schema) -> RawTable {
        RawTable {
            table: EncodedTable::with_widths(
                bag::slot_count(schema),
                schema.dense.len(),
                schema.tasks.len(),
            ),
            interners: schema.sparse.iter().map(|_| Interner::default()).collect(),
        }
    }

    /// Appends every row of `src`; returns the indices of the new rows.
    pub fn append(&mut self, schema: &Schema, src: &SourceSpec) -> Result<Vec<usize>> {
        let start = self.table.n_rows;
        let interners = &mut self.interners;
        let mut intern = |f: usize, v: &str| interners.get_mut(f).map_or(0, |i| i.code(v));
        read_rows(schema, src, true, None, &mut self.table, &mut intern)?;
        Ok((start..self.table.n_rows).collect())
    }
}

/// How one task's column becomes a label.
pub(crate) struct LabelRule<'a> {
    task: &'a TaskSpec,
    /// The label column; for a derived label, the rule's left column.
    pub(crate) col: usize,
    positive: Option<Vec<&'a str>>,
    derive: Option<ResolvedRule<'a>>,
    /// The task's `missing_values`, trimmed.
    missing_values: Vec<&'a str>,
}

impl<'a> LabelRule<'a> {
    /// The rule of `task`, reading its column (or its `derive` rule's columns) of `reader`.
    pub(crate) fn new(task: &'a TaskSpec, reader: &SourceReader) -> Result<Self> {
        let derive = task
            .derive
            .as_ref()
            .map(|d| d.resolve(reader))
            .transpose()?;
        let col = match &derive {
            Some(d) => d.left_col(),
            None => reader.column_index(&task.column)?,
        };
        Ok(LabelRule {
            task,
            col,
            positive: task
                .positive
                .as_ref()
                .map(|p| p.iter().map(|s| s.trim()).collect()),
            derive,
            missing_values: task.missing_values.iter().map(|s| s.trim()).collect(),
        })
    }

    /// The label of `row`: from its column, or computed by the `derive` rule; a masked
    /// label reads as 0, what the encoded table stores for it.
    pub(crate) fn label_of(
        &self,
        row: &Row<'_>,
        path: &Path,
        line: u64,
        buf: &mut String,
    ) -> Result<f32> {
        Ok(self.label_or_missing(row, path, line, buf)?.unwrap_or(0.0))
    }

    /// The label of `row`; `None` when it is missing (an empty, null or NaN cell, one of the
    /// task's `missing_values`, a derive rule's missing side) and the task has
    /// `missing = "mask"`. With `missing = "error"` a missing label is the error.
    pub(crate) fn label_or_missing(
        &self,
        row: &Row<'_>,
        path: &Path,
        line: u64,
        buf: &mut String,
    ) -> Result<Option<f32>> {
        let Some(rule) = &self.derive else {
            return self.label(row.get(self.col), path, line, buf);
        };
        match rule.derive(row, path, buf)? {
            Derived::Label(y) => Ok(Some(y)),
            Derived::Missing(_) if self.task.missing == MissingLabels::Mask => Ok(None),
            Derived::Missing(column) => Err(DataError::DeriveMissing {
                path: path.to_path_buf(),
                line,
                column: column.to_string(),
                task: self.task.name.clone(),
            }),
        }
    }

    /// What a missing label becomes: `None` for a task that masks them, else the error.
    fn missing(&self, path: &Path, line: u64) -> Result<Option<f32>> {
        match self.task.missing {
            MissingLabels::Mask => Ok(None),
            MissingLabels::Error => Err(nan_label(path, line, &self.task.column)),
        }
    }

    fn label(
        &self,
        cell: Cell<'_>,
        path: &Path,
        line: u64,
        buf: &mut String,
    ) -> Result<Option<f32>> {
        let declared = !self.missing_values.is_empty() && {
            let text = cell.to_text(buf).trim();
            self.missing_values.contains(&text)
        };
        if declared {
            return self.missing(path, line);
        }
        let field = &self.task.column;
        let text = cell.to_text(buf);
        if let Some(pos) = &self.positive {
            if pos.contains(&text) {
                return Ok(Some(1.0));
            }
            if cell.is_missing() {
                return self.missing(path, line);
            }
            return Ok(Some(0.0));
        }
        if cell.is_missing() {
            return self.missing(path, line);
        }
        let v = match cell {
            Cell::Number(v) => v,
            _ => text.parse::<f64>().map_err(|_| DataError::BadNumber {
                path: path.to_path_buf(),
                line,
                field: field.clone(),
                value: text.to_string(),
            })?,
        };
        if v.is_nan() {
            return self.missing(path, line);
        }
        if let Some(th) = self.task.threshold {
            return Ok(Some(if v >= th { 1.0 } else { 0.0 }));
        }
        let bad = |message: &str| DataError::BadLabel {
            path: path.to_path_buf(),
            line,
            field: field.clone(),
            value: text.to_string(),
            message: message.to_string(),
        };
        match self.task.kind {
            TaskKind::Binary if v == 0.0 || v == 1.0 => Ok(Some(v as f32)),
            TaskKind::Binary => Err(bad("a binary label must be 0 or 1")),
            // Labels are stored as f32: 1e39 is finite as f64 but not here.
            TaskKind::Regression if (v as f32).is_finite() => Ok(Some(v as f32)),
            TaskKind::Regression => Err(bad(
                "a regression label must be a finite 32-bit number (at most ±3.4e38)",
            )),
        }
    }
}

/// Task `task`'s example weight in `cell`: a finite number >= 0, else an error naming the
/// file, line, column and task.
fn example_weight(cell: Cell<'_>, task: &TaskSpec, path: &Path, line: u64) -> Result<f32> {
    let v = match cell {
        Cell::Number(v) => Some(v),
        Cell::Text(s) => s.trim().parse::<f64>().ok(),
        Cell::Null => None,
    };
    match v.map(|v| v as f32) {
        Some(w) if w.is_finite() && w >= 0.0 => Ok(w),
        _ => {
            let mut buf = String::new();
            Err(DataError::BadWeight {
                path: path.to_path_buf(),
                line,
                field: task.weight.clone().unwrap_or_default(),
                task: task.name.clone(),
                value: cell.to_text(&mut buf).to_string(),
            })
        }
    }
}

fn nan_label(path: &Path, line: u64, field: &str) -> DataError {
    DataError::NanLabel {
        path: path.to_path_buf(),
        line,
        field: field.to_string(),
    }
}

/// Opens `src`; a header-less file without its own column names takes the schema's.
pub(crate) fn open_source(schema: &Schema, src: &SourceSpec) -> Result<SourceReader> {
    let mut spec = src.clone();
    if spec.columns.is_none() && !spec.header {
        spec.columns = schema.columns.clone();
    }
    SourceReader::open(&spec)
}

/// Reads every row of `src` into `out`: categorical cells through `sparse_id`
/// (0 for missing cells; a multi-valued cell's values one by one, into its
/// field's slots, see [`crate::bag`]), numeric cells parsed with fills (and standardised
/// with `stats` when given), labels derived. Shared by fitting (which interns
/// and keeps raw numbers) and encoding (which looks up a vocabulary).
pub(crate) fn read_rows(
    schema: &Schema,
    src: &SourceSpec,
    with_labels: bool,
    stats: Option<&[DenseStats]>,
    out: &mut EncodedTable,
    sparse_id: &mut dyn FnMut(usize, &str) -> u32,
) -> Result<usize> {
    let mut reader = open_source(schema, src)?;
    let path: PathBuf = reader.path().to_path_buf();
    let hint = |e| with_header_hint(e, &reader, schema);

    let sparse_cols = schema
        .sparse
        .iter()
        .map(|f| reader.column_index(f.column()).map_err(hint))
        .collect::<Result<Vec<_>>>()?;
    let dense_cols = schema
        .dense
        .iter()
        .map(|f| reader.column_index(f.column()).map_err(hint))
        .collect::<Result<Vec<_>>>()?;
    let rules = if with_labels {
        schema
            .tasks
            .iter()
            .map(|t| LabelRule::new(t, &reader).map_err(hint))
            .collect::<Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    let mut splitters: Vec<Option<Splitter>> = schema.sparse.iter().map(Splitter::of).collect();
    let partial = PartialLabels::new(schema, &reader, with_labels).map_err(hint)?;
    if partial.is_some() {
        out.label_weights.get_or_insert_with(Vec::new);
    }

    let mut buf = String::new();
    let mut n = 0usize;
    let mut present = Vec::with_capacity(rules.len());
    while let Some(row) = reader.next_row()? {
        let line = row.line();
        push_features(
            schema,
            stats,
            |f| row.get(sparse_cols[f]),
            |j| row.get(dense_cols[j]),
            (&path, line),
            &mut splitters,
            &mut buf,
            out,
            sparse_id,
        )?;
        present.clear();
        for rule in &rules {
            let y = rule.label_or_missing(&row, &path, line, &mut buf)?;
            present.push(y.is_some());
            out.labels.push(y.unwrap_or(0.0));
        }
        if let (Some(p), Some(weights)) = (&partial, out.label_weights.as_mut()) {
            let labels = &out.labels[out.labels.len() - rules.len()..];
            for (k, task) in schema.tasks.iter().enumerate() {
                let given = p.given[k].is_none_or(|g| present[g] && labels[g] > 0.5);
                weights.push(match p.weight_cols[k] {
                    _ if !(present[k] && given) => 0.0,
                    Some(c) => example_weight(row.get(c), task, &path, line)?,
                    None => 1.0,
                });
            }
        }
        out.n_rows += 1;
        n += 1;
    }
    // A cap the schema set is a choice (info); the default one may drop values unnoticed.
    for (field, s) in schema.sparse.iter().zip(&splitters) {
        let Some(s) = s.as_ref().filter(|s| s.truncated > 0) else {
            continue;
        };
        let (n, max) = (s.truncated, s.max_values());
        let what = format!(
            "{}: field `{}`: {n} rows hold more than {max} values; the first {max} of each \
             were kept",
            path.display(),
            field.name
        );
        match field.max_values {
            Some(_) => tracing::info!("{what}"),
            None => tracing::warn!("{what} (the default; set `max_values` to keep more)"),
        }
    }
    Ok(n)
}

/// Pushes one row's sparse ids and dense numbers onto `out`: `sparse_cell(f)` and
/// `dense_cell(j)` give the row's cell of sparse field `f` and dense field `j`; `at` (file,
/// line) names the row in errors. Files ([`read_rows`]) and in-memory records
/// ([`crate::records`]) both go through here, so a value encodes alike from either.
#[allow(clippy::too_many_arguments)]
pub(crate) fn push_features<'c>(
    schema: &Schema,
    stats: Option<&[DenseStats]>,
    sparse_cell: impl Fn(usize) -> Cell<'c>,
    dense_cell: impl Fn(usize) -> Cell<'c>,
    at: (&Path, u64),
    splitters: &mut [Option<Splitter>],
    buf: &mut String,
    out: &mut EncodedTable,
    sparse_id: &mut dyn FnMut(usize, &str) -> u32,
) -> Result<()> {
    let (path, line) = at;
    for (f, splitter) in splitters.iter_mut().enumerate() {
        let cell = sparse_cell(f);
        if let Some(splitter) = splitter {
            let text = (!matches!(cell, Cell::Null)).then(|| cell.to_text(buf));
            splitter.push(text, &mut out.sparse, &mut |v| sparse_id(f, v));
            continue;
        }
        let id = match cell {
            Cell::Null => 0,
            Cell::Text("") => 0,
            _ => sparse_id(f, cell.to_text(buf)),
        };
        out.sparse.push(id);
    }
    for (j, field) in schema.dense.iter().enumerate() {
        let not_finite = |value: String| DataError::NonFinite {
            path: path.to_path_buf(),
            line,
            field: field.column().to_string(),
            value,
        };
        let v = match dense_cell(j) {
            Cell::Null => field.missing_value(),
            Cell::Number(v) if v.is_nan() => field.missing_value(),
            // A Parquet f64 of 1e300 is finite but becomes inf as f32.
            Cell::Number(v) if (v as f32).is_finite() => v as f32,
            Cell::Number(v) => return Err(not_finite(format!("{v:e}"))),
            Cell::Text(s) if is_missing_text(s) => field.missing_value(),
            Cell::Text(s) => match s.parse::<f32>() {
                Ok(v) if v.is_nan() => field.missing_value(),
                Ok(v) if v.is_finite() => v,
                // "inf", "-infinity", or a number beyond the f32 range.
                Ok(_) => return Err(not_finite(s.to_string())),
                Err(_) => {
                    return Err(DataError::BadNumber {
                        path: path.to_path_buf(),
                        line,
                        field: field.column().to_string(),
                        value: s.to_string(),
                    });
                }
            },
        };
        let v = match stats.and_then(|st| st.get(j)) {
            Some(s) => standardise(v, s, field.column(), || {
                format!("{}:{line}", path.display())
            })?,
            None => v,
        };
        out.dense.push(v);
    }
    Ok(())
}

/// Where a schema with partial labels finds each task's `given` task and weight column.
struct PartialLabels {
    /// Per task, the index of its `given` task.
    given: Vec<Option<usize>>,
    /// Per task, the file column of its weights.
    weight_cols: Vec<Option<usize>>,
}

impl PartialLabels {
    /// `None` when no task has partial labels, or labels are not read.
    fn new(schema: &Schema, reader: &SourceReader, with_labels: bool) -> Result<Option<Self>> {
        if !with_labels || !schema.has_partial_labels() {
            return Ok(None);
        }
        let tasks = &schema.tasks;
        let given = tasks
            .iter()
            .map(|t| {
                let g = t.given.as_ref()?;
                tasks.iter().position(|o| &o.name == g)
            })
            .collect();
        let weight_cols = tasks
            .iter()
            .map(|t| {
                t.weight
                    .as_ref()
                    .map(|w| reader.column_index(w))
                    .transpose()
            })
            .collect::<Result<_>>()?;
        Ok(Some(PartialLabels { given, weight_cols }))
    }
}

/// Adds to a missing-column error the likely cause when the file was read
/// with a header it may not have: the schema lists `columns` (which only name
/// header-less files), or the "header" holds a number, as data rows do.
fn with_header_hint(e: DataError, reader: &SourceReader, schema: &Schema) -> DataError {
    let DataError::MissingColumn {
        path,
        column,
        available,
        ..
    } = e
    else {
        return e;
    };
    let why = if !reader.header_was_read() {
        None
    } else if schema.columns.is_some() {
        Some("the schema lists `columns`, which name the columns of files without one".to_string())
    } else {
        reader
            .numeric_header_cell()
            .map(|cell| format!("its first line holds the number {cell:?}, as data rows do"))
    };
    let hint = why.map_or_else(String::new, |why| {
        let name_them = if schema.columns.is_none() {
            " and name the columns with `columns = [...]` in the schema"
        } else {
            ""
        };
        format!(
            "; the file may have no header row ({why}). If so, set `header = false` \
             in the [data] section of the experiment config{name_them}"
        )
    });
    DataError::MissingColumn {
        path,
        column,
        available,
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_reserves_zero_for_unknown() {
        let v = Vocabulary::from_values(["b", "a", "b"]);
        assert_eq!(v.len(), 3);
        assert_eq!(v.id("b"), 1);
        assert_eq!(v.id("a"), 2);
        assert_eq!(v.id("zzz"), 0);
        assert_eq!(v.value(2), Some("a"));
        assert_eq!(v.value(0), None);
        let json = serde_json::to_string(&v).expect("json");
        assert_eq!(json, r#"["b","a"]"#);
        let back: Vocabulary = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.id("a"), 2);
    }

    #[test]
    fn dense_stats_are_population_and_guard_constant_fields() {
        let s = DenseStats::fit([1.0, 2.0, 3.0, 4.0]);
        assert!((s.mean - 2.5).abs() < 1e-7);
        assert!((s.std - 1.118_034).abs() < 1e-6);
        assert_eq!(DenseStats::fit([5.0, 5.0]).std, 1.0);
        assert_eq!(DenseStats::fit([5.0, 5.0]).apply(5.0), 0.0);
        // Found by a fresh user: a value the training split never showed used to enter as
        // `x - 5`, through weights that never learnt anything from this field.
        let constant = DenseStats::fit([5.0, 5.0]);
        assert!(constant.constant);
        assert_eq!((constant.apply(1e6), constant.apply(-3.0)), (0.0, 0.0));
        assert!(!DenseStats::fit([1.0, 2.0]).constant);
        // Saved with the flag, read back with it; a file without the key is not constant.
        let json = serde_json::to_string(&constant).unwrap();
        assert_eq!(serde_json::from_str::<DenseStats>(&json).unwrap(), constant);
        let old: DenseStats = serde_json::from_str(r#"{"mean":5.0,"std":1.0}"#).unwrap();
        assert_eq!(old.apply(6.0), 1.0);
        assert_eq!(DenseStats::fit(std::iter::empty()), DenseStats::default());
    }
}
