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
        }
    }

    /// `(v - mean) / std`, computed in f64 so that the difference of two large
    /// f32 values (3e38 and -3e38) does not overflow before the division. The
    /// result is not finite only when `v` is far outside the fitted values.
    pub fn apply(&self, v: f32) -> f32 {
        ((f64::from(v) - f64::from(self.mean)) / f64::from(self.std)) as f32
    }

    /// Whether `apply` can be trusted: a saved preprocessor edited by hand may
    /// hold a zero or non-finite std, which would encode every value to NaN or inf.
    fn is_usable(&self) -> bool {
        self.mean.is_finite() && self.std.is_finite() && self.std > 0.0
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
        read_rows(
            &self.schema,
            src,
            with_labels,
            Some(&self.dense_stats),
            &mut table,
            &mut lookup,
        )?;
        Ok(table)
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
        let mut out = raw.table.select(rows);
        let n = out.n_sparse;
        if n > 0 {
            for row in out.sparse.chunks_exact_mut(n) {
                for (code, remap) in row.iter_mut().zip(&remaps) {
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
        Ok(out)
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
        Ok(p)
    }
}

/// One standardised value, or an error when it is not a finite f32; `what`
/// (the file and line, or the split) is only formatted on failure.
fn standardise(v: f32, s: &DenseStats, field: &str, what: impl FnOnce() -> String) -> Result<f32> {
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
        read_rows(schema, src, true, None, &mut self.table, &mut intern)?;
        Ok((start..self.table.n_rows).collect())
    }
}

/// How one task's column becomes a label.
pub(crate) struct LabelRule<'a> {
    task: &'a TaskSpec,
    pub(crate) col: usize,
    positive: Option<Vec<&'a str>>,
}

impl<'a> LabelRule<'a> {
    /// The rule of `task`, reading its column of `reader`.
    pub(crate) fn new(task: &'a TaskSpec, reader: &SourceReader) -> Result<Self> {
        Ok(LabelRule {
            task,
            col: reader.column_index(&task.column)?,
            positive: task
                .positive
                .as_ref()
                .map(|p| p.iter().map(|s| s.trim()).collect()),
        })
    }

    pub(crate) fn label(
        &self,
        cell: Cell<'_>,
        path: &Path,
        line: u64,
        buf: &mut String,
    ) -> Result<f32> {
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
            // Labels are stored as f32: 1e39 is finite as f64 but not here.
            TaskKind::Regression if (v as f32).is_finite() => Ok(v as f32),
            TaskKind::Regression => Err(bad(
                "a regression label must be a finite 32-bit number (at most ±3.4e38)",
            )),
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
/// (0 for missing cells), numeric cells parsed with fills (and standardised
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
        for (j, (field, &c)) in schema.dense.iter().zip(&dense_cols).enumerate() {
            let not_finite = |value: String| DataError::NonFinite {
                path: path.clone(),
                line,
                field: field.column().to_string(),
                value,
            };
            let v = match row.get(c) {
                Cell::Null => field.fill,
                Cell::Number(v) if v.is_nan() => field.fill,
                // A Parquet f64 of 1e300 is finite but becomes inf as f32.
                Cell::Number(v) if (v as f32).is_finite() => v as f32,
                Cell::Number(v) => return Err(not_finite(format!("{v:e}"))),
                Cell::Text(s) if is_missing_text(s) => field.fill,
                Cell::Text(s) => match s.parse::<f32>() {
                    Ok(v) if v.is_nan() => field.fill,
                    Ok(v) if v.is_finite() => v,
                    // "inf", "-infinity", or a number beyond the f32 range.
                    Ok(_) => return Err(not_finite(s.to_string())),
                    Err(_) => {
                        return Err(DataError::BadNumber {
                            path,
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
        for rule in &rules {
            let y = rule.label(row.get(rule.col), &path, line, &mut buf)?;
            out.labels.push(y);
        }
        out.n_rows += 1;
        n += 1;
    }
    Ok(n)
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
        assert_eq!(DenseStats::fit(std::iter::empty()), DenseStats::default());
    }
}
