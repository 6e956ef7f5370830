//! In-memory rows, such as the rows of a prediction request, encoded exactly as
//! [`Preprocessor::encode_file_unlabelled`] encodes a file's rows.
//!
//! A server must not keep a second copy of the encoding rules: a value that a file and a
//! request spell alike has to reach the model as the same ids and numbers, or served
//! predictions drift from `mtrec predict`'s. So a record is handed over as [`Cell`]s, the
//! form a file's reader produces, and goes through the same per-row code as a file
//! (`push_features` in `encode.rs`): unknown and empty categories get id 0, multi-valued
//! cells split at the field's separator, missing numbers take the field's fill, numbers are
//! standardised or bucketised with the training statistics, and regression outputs carry
//! the label scales back. Only the error reporting differs: a record's errors name its
//! position in the request and the column instead of a file and a line.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use crate::bag::{self, Splitter};
use crate::buckets;
use crate::encode::{Preprocessor, push_features};
use crate::error::DataError;
use crate::source::Cell;
use crate::table::EncodedTable;

/// One value a record must give: where it sits in a record and how it is read.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordField {
    /// The value's key in a record: the schema field's source column, as a file's header
    /// names it.
    pub column: String,
    #[serde(flatten)]
    pub kind: RecordFieldKind,
}

/// How a record's value is read.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum RecordFieldKind {
    /// A category, looked up in the field's vocabulary (unknown values: id 0).
    Categorical {
        /// For a multi-valued field, the separator of its values (`a|b|c`).
        #[serde(skip_serializing_if = "Option::is_none")]
        separator: Option<String>,
        /// Known values (the vocabulary's size without the unknown id).
        known_values: usize,
    },
    /// A number, standardised or bucketised with the training statistics.
    Numeric {
        /// What a missing value becomes before standardising (`None`: bucketised, where a
        /// missing value has a bucket of its own).
        #[serde(skip_serializing_if = "Option::is_none")]
        fill: Option<f32>,
    },
}

/// A record that cannot be encoded: which one (0-based), which column, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordError {
    pub row: usize,
    pub column: String,
    pub message: String,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "row {}: field `{}`: {}",
            self.row, self.column, self.message
        )
    }
}

impl Preprocessor {
    /// The values a record gives, in the order [`Preprocessor::encode_records`] reads
    /// them: each sparse field, then each dense field (bucketised ones included), in
    /// schema order. Two fields reading one column appear twice.
    pub fn record_fields(&self) -> Vec<RecordField> {
        let sparse = self
            .schema
            .sparse
            .iter()
            .zip(&self.vocabs)
            .map(|(f, vocab)| RecordField {
                column: f.column().to_string(),
                kind: RecordFieldKind::Categorical {
                    separator: f.separator.clone(),
                    known_values: vocab.values().len(),
                },
            });
        let dense = self.schema.dense.iter().map(|f| RecordField {
            column: f.column().to_string(),
            kind: RecordFieldKind::Numeric {
                fill: (!f.is_bucketised()).then_some(f.fill),
            },
        });
        sparse.chain(dense).collect()
    }

    /// Columns the schema names that encoding does not read (labels, example weights, the
    /// columns of label rules, the other columns of a header-less layout): a record may
    /// carry them, as a file may, and they are ignored.
    pub fn ignored_record_columns(&self) -> BTreeSet<String> {
        let inputs: BTreeSet<String> = self.record_fields().into_iter().map(|f| f.column).collect();
        let schema = &self.schema;
        let mut named: BTreeSet<String> = schema.columns.iter().flatten().cloned().collect();
        for task in &schema.tasks {
            named.insert(task.column.clone());
            named.extend(task.weight.iter().cloned());
            if let Some(rule) = &task.derive {
                named.extend(rule.columns().into_iter().map(str::to_string));
            }
        }
        named.retain(|c| !c.is_empty() && !inputs.contains(c));
        named
    }

    /// Encodes records for prediction, as [`Preprocessor::encode_file_unlabelled`] encodes
    /// a file: `cells` holds [`Preprocessor::record_fields`]`().len()` cells per record,
    /// record after record, in that order (a [`Cell::Null`] for a missing value).
    ///
    /// Every bad record is reported (the first bad field of each), so that a client fixes
    /// a request at once; the table is returned only when every record encodes.
    pub fn encode_records(&self, cells: &[Cell<'_>]) -> Result<EncodedTable, Vec<RecordError>> {
        let schema = &self.schema;
        let (n_sparse, width) = (
            schema.sparse.len(),
            schema.sparse.len() + schema.dense.len(),
        );
        let mut table = EncodedTable::with_widths(bag::slot_count(schema), schema.dense.len(), 0);
        if width == 0 || !cells.len().is_multiple_of(width) {
            return Err(vec![RecordError {
                row: 0,
                column: String::new(),
                message: format!(
                    "{} cells do not make whole records of {width} fields",
                    cells.len()
                ),
            }]);
        }
        let mut splitters: Vec<Option<Splitter>> = schema.sparse.iter().map(Splitter::of).collect();
        let vocabs = &self.vocabs;
        let mut lookup = |f: usize, v: &str| vocabs.get(f).map_or(0, |voc| voc.id(v));
        let mut buf = String::new();
        let mut errors = Vec::new();
        let place = Path::new("record");
        for (r, row) in cells.chunks_exact(width).enumerate() {
            let (sparse_len, dense_len) = (table.sparse.len(), table.dense.len());
            let pushed = push_features(
                schema,
                Some(&self.dense_stats),
                |f| row[f],
                |j| row[n_sparse + j],
                (place, r as u64),
                &mut splitters,
                &mut buf,
                &mut table,
                &mut lookup,
            );
            match pushed {
                Ok(()) => table.n_rows += 1,
                Err(e) => {
                    // The row's ids and numbers so far are dropped with it.
                    table.sparse.truncate(sparse_len);
                    table.dense.truncate(dense_len);
                    errors.push(record_error(r, e));
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        table.label_scales = self.label_scales();
        Ok(buckets::apply(table, schema, &self.buckets))
    }
}

/// A file error of `push_features`, reworded for record `row`: a record has no file or
/// line, so only the field and the reason are kept.
fn record_error(row: usize, e: DataError) -> RecordError {
    let (column, message) = match e {
        DataError::BadNumber { field, value, .. } => {
            (field, format!("cannot parse {value:?} as a number"))
        }
        DataError::NonFinite { field, value, .. } => (
            field,
            format!("{value} is not a finite 32-bit number (at most ±3.4e38)"),
        ),
        DataError::NonFiniteEncoded {
            field,
            value,
            encoded,
            mean,
            std,
            ..
        } => (
            field,
            format!(
                "{value} standardises to {encoded} with the training mean {mean} and std \
                 {std}: it lies too far outside the training values"
            ),
        ),
        other => (String::new(), other.to_string()),
    };
    RecordError {
        row,
        column,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceSpec;
    use crate::schema::Schema;

    /// A preprocessor fitted on a small file: `user` (categorical, `u2` rare), `tags`
    /// (multi-valued), `age` (numeric, fill 30), `score` (bucketised at 0 and 10).
    fn fitted() -> (tempfile::TempDir, Preprocessor) {
        let dir = tempfile::tempdir().unwrap();
        let schema: Schema = toml::from_str(
            r#"
            [[sparse]]
            name = "user"
            min_count = 2
            [[sparse]]
            name = "tags"
            separator = "|"
            max_values = 2
            [[dense]]
            name = "age"
            fill = 30.0
            [[dense]]
            name = "score"
            boundaries = [0.0, 10.0]
            [[tasks]]
            name = "click"
            kind = "binary"
            [[tasks]]
            name = "minutes"
            kind = "regression"
            column = "watch"
            "#,
        )
        .unwrap();
        let path = dir.path().join("train.csv");
        std::fs::write(
            &path,
            "user,tags,age,score,click,watch\nu1,a|b,20,-1,1,2\nu1,b,40,5,0,4\nu2,a,30,20,1,6\n",
        )
        .unwrap();
        let mut raw = crate::encode::RawTable::new(&schema);
        let rows = raw.append(&schema, &SourceSpec::new(&path)).unwrap();
        let pre = Preprocessor::fit(&schema, &raw, &rows);
        (dir, pre)
    }

    #[test]
    fn records_encode_as_the_same_rows_of_a_file() {
        let (dir, pre) = fitted();
        let columns: Vec<String> = pre.record_fields().into_iter().map(|f| f.column).collect();
        assert_eq!(columns, ["user", "tags", "age", "score"]);
        // Unknown user, unknown tag among known ones, missing and NA numbers, a text number.
        let file = dir.path().join("new.csv");
        std::fs::write(
            &file,
            "user,tags,age,score\nzzz,b|zzz|a,,NA\nu1,,55.5,3\nu2,a,NaN,12\n",
        )
        .unwrap();
        let from_file = pre.encode_file_unlabelled(&SourceSpec::new(&file)).unwrap();
        let cells = [
            Cell::Text("zzz"),
            Cell::Text("b|zzz|a"),
            Cell::Null,
            Cell::Text("NA"),
            Cell::Text("u1"),
            Cell::Text(""),
            Cell::Number(55.5),
            Cell::Text("3"),
            Cell::Text("u2"),
            Cell::Text("a"),
            Cell::Number(f64::NAN),
            Cell::Number(12.0),
        ];
        let from_records = pre.encode_records(&cells).unwrap();
        assert_eq!(from_records, from_file);
        assert_eq!(from_records.n_rows, 3);
        // Worked out by hand: vocab user = [u1] (u2 seen once, below min_count 2), tags =
        // [a, b] sorted; age mean 30, std sqrt(200/3); score buckets (<0, [0,10), >=10).
        assert_eq!(from_records.sparse_row(1)[..3], [1, 0, 0]);
        assert_eq!(from_records.sparse_row(0)[..3], [0, 2, 0]);
        let std = (200.0f64 / 3.0).sqrt();
        assert!((f64::from(from_records.dense_row(1)[0]) - 25.5 / std).abs() < 1e-6);
        assert_eq!(from_records.dense_row(0)[0], 0.0);
        // The regression task's scale travels with the table: mean 4, std sqrt(8/3).
        let scale = from_records.label_scale(1);
        assert!(
            (scale.mean - 4.0).abs() < 1e-6 && (scale.std - (8.0f32 / 3.0).sqrt()).abs() < 1e-6
        );
    }

    #[test]
    fn every_bad_record_is_named_with_its_column_and_the_good_ones_are_not() {
        let (_dir, pre) = fitted();
        let cells = [
            Cell::Text("u1"),
            Cell::Null,
            Cell::Text("old"),
            Cell::Null,
            Cell::Text("u1"),
            Cell::Null,
            Cell::Number(1.0),
            Cell::Null,
            Cell::Text("u1"),
            Cell::Null,
            Cell::Number(1e300),
            Cell::Null,
        ];
        let errors = pre.encode_records(&cells).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!((errors[0].row, errors[0].column.as_str()), (0, "age"));
        assert!(
            errors[0].message.contains("cannot parse \"old\""),
            "{errors:?}"
        );
        assert_eq!((errors[1].row, errors[1].column.as_str()), (2, "age"));
        assert!(errors[1].message.contains("not a finite"), "{errors:?}");
        assert_eq!(
            errors[0].to_string(),
            "row 0: field `age`: cannot parse \"old\" as a number"
        );
        let ragged = pre.encode_records(&cells[..3]).unwrap_err();
        assert!(ragged[0].message.contains("whole records"), "{ragged:?}");
    }

    #[test]
    fn label_columns_are_ignored_columns_and_inputs_are_not() {
        let (_dir, pre) = fitted();
        let ignored: Vec<String> = pre.ignored_record_columns().into_iter().collect();
        assert_eq!(ignored, ["click", "watch"]);
    }
}
