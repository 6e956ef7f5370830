//! JSON rows to model input, through the checkpoint's [`Preprocessor`].
//!
//! A JSON value becomes the [`Cell`] a file reader would have produced for the same value,
//! and the preprocessor encodes the cells exactly as `mtrec predict` encodes a file
//! ([`Preprocessor::encode_records`]): unknown categories get the unknown id, `null` is a
//! missing value (the field's fill, or the empty category), `"NA"`/`"?"` mean what they mean
//! in a file. What a file cannot get wrong but JSON can is checked here: a missing key, a
//! key no field reads, a boolean or an object where a value belongs.
//!
//! Numbers: a JSON number for a numeric field is read from its decimal text, as a CSV cell
//! is (`0.1` gives the same `f32` as the text `0.1`); for a categorical field an integer
//! keeps its digits (`7`, and 64-bit ids exactly) and any other number is written as a
//! Parquet number cell is (`7.0` is the category `7`). Send categories as strings to be
//! sure of the key.

use std::collections::{BTreeSet, HashSet};

use mtrec_data::{Cell, EncodedTable, Preprocessor, RecordField, RecordFieldKind};
use serde_json::Value;

use crate::api::{JsonRow, RowError};

/// The fields of one loaded checkpoint, resolved once so that a request only looks keys up.
#[derive(Debug, Clone)]
pub struct RowDecoder {
    fields: Vec<RecordField>,
    /// Keys a row may carry: the fields' columns and the schema's other columns.
    known: HashSet<String>,
    /// The fields' columns, distinct, in field order: the keys every row must have.
    required: Vec<String>,
}

/// A cell whose text had to be made (a number written out, a list joined).
enum Made<'a> {
    Cell(Cell<'a>),
    Text(String),
}

impl RowDecoder {
    pub fn new(pre: &Preprocessor) -> RowDecoder {
        let fields = pre.record_fields();
        let mut required: Vec<String> = Vec::new();
        for f in &fields {
            if !required.contains(&f.column) {
                required.push(f.column.clone());
            }
        }
        let known = required
            .iter()
            .cloned()
            .chain(pre.ignored_record_columns())
            .collect();
        RowDecoder {
            fields,
            known,
            required,
        }
    }

    /// The keys every row must have, in schema order.
    pub fn required(&self) -> &[String] {
        &self.required
    }

    pub fn fields(&self) -> &[RecordField] {
        &self.fields
    }

    /// Columns a row may carry that no field reads (labels, weights, ids of the layout).
    pub fn ignored(&self) -> BTreeSet<&str> {
        self.known
            .iter()
            .filter(|k| !self.required.contains(k))
            .map(String::as_str)
            .collect()
    }

    /// Encodes `rows`, or lists every bad row (the first problem of each).
    pub fn encode(
        &self,
        pre: &Preprocessor,
        rows: &[JsonRow],
    ) -> Result<EncodedTable, Vec<RowError>> {
        let mut made: Vec<Made<'_>> = Vec::with_capacity(rows.len() * self.fields.len());
        let mut errors = Vec::new();
        // Rows that reach the encoder, to map its record numbers back to request rows.
        let mut kept: Vec<usize> = Vec::with_capacity(rows.len());
        for (r, row) in rows.iter().enumerate() {
            let start = made.len();
            match self.row_cells(row, &mut made) {
                Ok(()) => kept.push(r),
                Err((field, message)) => {
                    made.truncate(start);
                    errors.push(RowError {
                        row: r,
                        field,
                        message,
                    });
                }
            }
        }
        let cells: Vec<Cell<'_>> = made
            .iter()
            .map(|m| match m {
                Made::Cell(c) => *c,
                Made::Text(s) => Cell::Text(s.as_str()),
            })
            .collect();
        match pre.encode_records(&cells) {
            Ok(table) if errors.is_empty() => Ok(table),
            Ok(_) => Err(errors),
            Err(more) => {
                errors.extend(more.into_iter().map(|e| {
                    let mut e = RowError::from(e);
                    e.row = kept.get(e.row).copied().unwrap_or(e.row);
                    e
                }));
                errors.sort_by_key(|e| e.row);
                Err(errors)
            }
        }
    }

    /// Appends one row's cells in field order, or says which field is wrong and why.
    fn row_cells<'a>(
        &self,
        row: &'a JsonRow,
        out: &mut Vec<Made<'a>>,
    ) -> Result<(), (String, String)> {
        if let Some(unknown) = row.keys().find(|k| !self.known.contains(*k)) {
            // An error with an empty field names none: say what the key was.
            let what = match unknown.is_empty() {
                true => "an empty key is no field",
                false => "unknown field",
            };
            return Err((
                unknown.clone(),
                format!(
                    "{what}; the model reads {}",
                    self.required
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        for field in &self.fields {
            let column = &field.column;
            let Some(value) = row.get(column) else {
                return Err((
                    column.clone(),
                    "missing; every row gives every field (null for a missing value)".into(),
                ));
            };
            let wrong = |got: &str| {
                let want = match &field.kind {
                    RecordFieldKind::Categorical {
                        separator: Some(_), ..
                    } => "a string, a number, an array of them, or null",
                    RecordFieldKind::Categorical { .. } => "a string, a number or null",
                    RecordFieldKind::Numeric { .. } => "a number, a numeric string or null",
                };
                (column.clone(), format!("expected {want}, got {got}"))
            };
            let cell = match (value, &field.kind) {
                (Value::Null, _) => Made::Cell(Cell::Null),
                (Value::String(s), _) => Made::Cell(Cell::Text(s.trim())),
                (Value::Number(n), RecordFieldKind::Numeric { .. }) => Made::Text(n.to_string()),
                (Value::Number(n), RecordFieldKind::Categorical { .. }) => category_of(n),
                (
                    Value::Array(values),
                    RecordFieldKind::Categorical {
                        separator: Some(sep),
                        ..
                    },
                ) => Made::Text(join_values(values, sep).map_err(wrong)?),
                (Value::Bool(_), _) => return Err(wrong("a boolean")),
                (Value::Array(_), _) => return Err(wrong("an array")),
                (Value::Object(_), _) => return Err(wrong("an object")),
            };
            out.push(cell);
        }
        Ok(())
    }
}

/// A JSON number as a category: integers keep their digits, other numbers read as a
/// Parquet number cell does.
fn category_of(n: &serde_json::Number) -> Made<'static> {
    if n.is_i64() || n.is_u64() {
        Made::Text(n.to_string())
    } else {
        Made::Cell(Cell::Number(n.as_f64().unwrap_or(f64::NAN)))
    }
}

/// A multi-valued field's values, given as an array, as the one cell a file would hold.
fn join_values(values: &[Value], sep: &str) -> Result<String, &'static str> {
    let mut text = String::new();
    let mut buf = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            text.push_str(sep);
        }
        match v {
            Value::String(s) => text.push_str(s),
            Value::Number(n) => match category_of(n) {
                Made::Text(s) => text.push_str(&s),
                Made::Cell(c) => text.push_str(c.to_text(&mut buf)),
            },
            Value::Null => {}
            _ => return Err("an array holding something other than strings and numbers"),
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_a_file_reads_them() {
        let cell = |n: &str| match category_of(&serde_json::from_str(n).unwrap()) {
            Made::Text(s) => s,
            Made::Cell(c) => c.to_text(&mut String::new()).to_string(),
        };
        assert_eq!(cell("7"), "7");
        assert_eq!(cell("-3"), "-3");
        assert_eq!(cell("1234567890123456789"), "1234567890123456789");
        assert_eq!(cell("7.0"), "7");
        assert_eq!(cell("2.5"), "2.5");
        // A numeric field's number is parsed from its text, as a CSV cell: the same f32.
        let n: serde_json::Number = serde_json::from_str("0.1").unwrap();
        assert_eq!(
            n.to_string().parse::<f32>().unwrap(),
            "0.1".parse::<f32>().unwrap()
        );
    }

    #[test]
    fn arrays_join_with_the_separator() {
        let values: Vec<Value> = serde_json::from_str(r#"["a", 3, null, "b c"]"#).unwrap();
        assert_eq!(join_values(&values, "|").unwrap(), "a|3||b c");
        let values: Vec<Value> = serde_json::from_str(r#"["a", true]"#).unwrap();
        assert!(join_values(&values, "|").is_err());
    }
}
