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

use crate::error::{DataError, Result};
use crate::schema::{Schema, TaskKind, TaskSpec};
use crate::source::{Cell, SourceReader, SourceSpec, is_missing_text};
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
}

impl Default for DenseStats {
    fn default() -> Self {
        DenseStats {
            mean: 0.0,
            std: 1.0,
        }
    }
}

impl DenseStats {
    /// Mean and population std (as scikit-learn's `StandardScaler`), summed in
    /// f64. A constant field gets std 1 so that it encodes to 0 instead of NaN.
    pub fn fit(values: impl IntoIterator<Item = f32>) -> DenseStats {
        let (mut n, mut sum, mut sum_sq) = (0u64, 0.0f64, 0.0f64);
        let values: Vec<f64> = values.into_iter().map(f64::from).collect();
        for &v in &values {
            n += 1;
            sum += v;
        }
        if n == 0 {
            return DenseStats::default();
        }
        let mean = sum / n as f64;
        for &v in &values {
            sum_sq += (v - mean) * (v - mean);
        }
        let std = (sum_sq / n as f64).sqrt();
        let std = if std > 0.0 && std.is_finite() {
            std
        } else {
            1.0
        };
        DenseStats {
            mean: mean as f32,
            std: std as f32,
        }
    }

    pub fn apply(&self, v: f32) -> f32 {
        (v - self.mean) / self.std
    }
}

/// What a model needs to know about its inputs and outputs to be built.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FeatureMeta {
    pub sparse_names: Vec<String>,
    /// Embedding table sizes, including the unknown id 0.
    pub vocab_sizes: Vec<usize>,
    pub dense_names: Vec<String>,
    pub task_names: Vec<String>,
    pub task_kinds: Vec<TaskKind>,
}

impl FeatureMeta {
    pub fn n_sparse(&self) -> usize {
        self.sparse_names.len()
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
    /// One per dense field, in schema order.
    pub dense_stats: Vec<DenseStats>,
}

impl Preprocessor {
    pub fn meta(&self) -> FeatureMeta {
        FeatureMeta {
            sparse_names: self.schema.sparse.iter().map(|f| f.name.clone()).collect(),
            vocab_sizes: self.vocabs.iter().map(Vocabulary::len).collect(),
            dense_names: self.schema.dense.iter().map(|f| f.name.clone()).collect(),
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
            self.schema.sparse.len(),
            self.schema.dense.len(),
            if with_labels {
                self.schema.tasks.len()
            } else {
                0
            },
        );
        let vocabs = &self.vocabs;
        let mut lookup = |f: usize, v: &str| vocabs.get(f).map_or(0, |voc| voc.id(v));
        read_rows(&self.schema, src, with_labels, &mut table, &mut lookup)?;
        self.standardise(&mut table.dense);
        Ok(table)
    }

    fn standardise(&self, dense: &mut [f32]) {
        let n = self.dense_stats.len();
        if n == 0 {
            return;
        }
        for row in dense.chunks_exact_mut(n) {
            for (v, s) in row.iter_mut().zip(&self.dense_stats) {
                *v = s.apply(*v);
            }
        }
    }

    /// Fits vocabularies and dense statistics on `rows` of `raw` (the training split).
    pub(crate) fn fit(schema: &Schema, raw: &RawTable, rows: &[usize]) -> Preprocessor {
        let t = &raw.table;
        let vocabs = schema
            .sparse
            .iter()
            .enumerate()
            .map(|(f, field)| {
                let interner = &raw.interners[f];
                let mut counts = vec![0u32; interner.values.len() + 1];
                for &r in rows {
                    let code = t.sparse[r * t.n_sparse + f] as usize;
                    counts[code] = counts[code].saturating_add(1);
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
        let dense_stats = (0..t.n_dense)
            .map(|j| DenseStats::fit(rows.iter().map(|&r| t.dense[r * t.n_dense + j])))
            .collect();
        Preprocessor {
            schema: schema.clone(),
            vocabs,
            dense_stats,
        }
    }

    /// Encodes `rows` of `raw` with the fitted vocabularies and statistics.
    pub(crate) fn encode_raw(&self, raw: &RawTable, rows: &[usize]) -> EncodedTable {
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
        let mut out = raw.table.select(rows);
        let n = out.n_sparse;
        if n > 0 {
            for row in out.sparse.chunks_exact_mut(n) {
                for (code, remap) in row.iter_mut().zip(&remaps) {
                    *code = remap.get(*code as usize).copied().unwrap_or(0);
                }
            }
        }
        self.standardise(&mut out.dense);
        out
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
        Ok(p)
    }
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
                schema.sparse.len(),
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
        read_rows(schema, src, true, &mut self.table, &mut intern)?;
        Ok((start..self.table.n_rows).collect())
    }
}

/// How one task's column becomes a label.
struct LabelRule<'a> {
    task: &'a TaskSpec,
    col: usize,
    positive: Option<Vec<&'a str>>,
}

impl LabelRule<'_> {
    fn label(&self, cell: Cell<'_>, path: &Path, line: u64, buf: &mut String) -> Result<f32> {
        let field = &self.task.column;
        let text = cell.to_text(buf);
        if let Some(pos) = &self.positive {
            if pos.contains(&text) {
                return Ok(1.0);
            }
            if cell.is_missing() {
                return Err(nan_label(path, line, field));
            }
            return Ok(0.0);
        }
        if cell.is_missing() {
            return Err(nan_label(path, line, field));
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
            return Err(nan_label(path, line, field));
        }
        if let Some(th) = self.task.threshold {
            return Ok(if v >= th { 1.0 } else { 0.0 });
        }
        let bad = |message: &str| DataError::BadLabel {
            path: path.to_path_buf(),
            line,
            field: field.clone(),
            value: text.to_string(),
            message: message.to_string(),
        };
        match self.task.kind {
            TaskKind::Binary if v == 0.0 || v == 1.0 => Ok(v as f32),
            TaskKind::Binary => Err(bad("a binary label must be 0 or 1")),
            TaskKind::Regression if v.is_finite() => Ok(v as f32),
            TaskKind::Regression => Err(bad("a regression label must be finite")),
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

/// Reads every row of `src` into `out`: categorical cells through `sparse_id`
/// (0 for missing cells), numeric cells parsed with fills, labels derived.
/// Shared by fitting (which interns) and encoding (which looks up a vocabulary).
pub(crate) fn read_rows(
    schema: &Schema,
    src: &SourceSpec,
    with_labels: bool,
    out: &mut EncodedTable,
    sparse_id: &mut dyn FnMut(usize, &str) -> u32,
) -> Result<usize> {
    let mut spec = src.clone();
    if spec.columns.is_none() && !spec.header {
        spec.columns = schema.columns.clone();
    }
    let mut reader = SourceReader::open(&spec)?;
    let path: PathBuf = reader.path().to_path_buf();

    let sparse_cols = schema
        .sparse
        .iter()
        .map(|f| reader.column_index(f.column()))
        .collect::<Result<Vec<_>>>()?;
    let dense_cols = schema
        .dense
        .iter()
        .map(|f| reader.column_index(f.column()))
        .collect::<Result<Vec<_>>>()?;
    let rules = if with_labels {
        schema
            .tasks
            .iter()
            .map(|t| {
                Ok(LabelRule {
                    task: t,
                    col: reader.column_index(&t.column)?,
                    positive: t
                        .positive
                        .as_ref()
                        .map(|p| p.iter().map(|s| s.trim()).collect()),
                })
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        Vec::new()
    };

    let mut buf = String::new();
    let mut n = 0usize;
    while let Some(row) = reader.next_row()? {
        let line = row.line();
        for (f, &c) in sparse_cols.iter().enumerate() {
            let cell = row.get(c);
            let id = match cell {
                Cell::Null => 0,
                Cell::Text("") => 0,
                _ => sparse_id(f, cell.to_text(&mut buf)),
            };
            out.sparse.push(id);
        }
        for (field, &c) in schema.dense.iter().zip(&dense_cols) {
            let v = match row.get(c) {
                Cell::Null => field.fill,
                Cell::Number(v) if v.is_nan() => field.fill,
                Cell::Number(v) => v as f32,
                Cell::Text(s) if is_missing_text(s) => field.fill,
                Cell::Text(s) => match s.parse::<f32>() {
                    Ok(v) if v.is_nan() => field.fill,
                    Ok(v) if v.is_finite() => v,
                    _ => {
                        return Err(DataError::BadNumber {
                            path,
                            line,
                            field: field.column().to_string(),
                            value: s.to_string(),
                        });
                    }
                },
            };
            out.dense.push(v);
        }
        for rule in &rules {
            let y = rule.label(row.get(rule.col), &path, line, &mut buf)?;
            out.labels.push(y);
        }
        out.n_rows += 1;
        n += 1;
    }
    Ok(n)
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
        assert_eq!(DenseStats::fit(std::iter::empty()), DenseStats::default());
    }
}
