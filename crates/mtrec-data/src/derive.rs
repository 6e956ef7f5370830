//! Labels derived from a rule over columns, such as KuaiRand's long view,
//! `play_time_ms >= duration_ms`.
//!
//! Public recommendation logs record quantities (watch time, video length,
//! seconds on a profile page), while the tasks trained on are comparisons of
//! them; computing those labels inside the loader keeps one file for every
//! experiment and fits nothing: each row's label depends on that row only.
//!
//! ```toml
//! [[tasks]]
//! name = "long_view"
//! kind = "binary"
//! derive = { left = "play_time_ms", op = ">=", right = "duration_ms" }
//! # right may be a number: derive = { left = "comment_stay_time", op = ">", right = 0 }
//! ```
//!
//! The label is 1 when the comparison holds, else 0; both sides are compared
//! as 64-bit floats. The schema rejects a rule whose columns are also input
//! fields: a model that sees `play_time_ms` reads `long_view` off its input.
//!
//! A missing cell (empty, `NA`, `?`, NaN, a Parquet null) on either side
//! gives [`Derived::Missing`] naming the column, not a guess; the loader turns
//! it into an error naming the file, line and column. Keeping "missing" a
//! result of its own leaves room for a schema option that masks such labels
//! instead.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::source::{Cell, Row, SourceReader};

/// A comparison, written in the schema as the operator itself (`">="`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl CompareOp {
    /// Whether `left op right` holds; a NaN side never gets here (it is missing).
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            CompareOp::Ge => left >= right,
            CompareOp::Gt => left > right,
            CompareOp::Le => left <= right,
            CompareOp::Lt => left < right,
            CompareOp::Eq => left == right,
            CompareOp::Ne => left != right,
        }
    }
}

/// The right-hand side of a rule: another column, or a constant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Operand {
    Number(f64),
    Column(String),
}

/// `left op right`: a binary label computed from one row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeriveRule {
    /// The column on the left of the comparison.
    pub left: String,
    pub op: CompareOp,
    /// A column name, or a number (TOML integer or float).
    pub right: Operand,
}

impl DeriveRule {
    /// The columns the rule reads: `left`, and `right` when it names a column.
    pub fn columns(&self) -> Vec<&str> {
        let mut cols = vec![self.left.as_str()];
        if let Operand::Column(c) = &self.right {
            cols.push(c.as_str());
        }
        cols
    }

    /// What TOML cannot check: a finite constant, a non-empty column name, and
    /// two different columns (`x >= x` is the same label on every row).
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.left.is_empty() {
            return Err("`derive.left` is an empty column name".into());
        }
        match &self.right {
            Operand::Number(v) if !v.is_finite() => {
                Err(format!("`derive.right` must be finite, got {v}"))
            }
            Operand::Column(c) if c.is_empty() => {
                Err("`derive.right` is an empty column name".into())
            }
            Operand::Column(c) if *c == self.left => Err(format!(
                "`derive` compares column `{c}` with itself: the label would be the same on \
                 every row"
            )),
            _ => Ok(()),
        }
    }

    /// The rule with its columns looked up in `reader`'s header.
    pub(crate) fn resolve<'a>(&'a self, reader: &SourceReader) -> Result<ResolvedRule<'a>> {
        let right = match &self.right {
            Operand::Number(v) => Side::Number(*v),
            Operand::Column(c) => Side::Column(reader.column_index(c)?, c),
        };
        Ok(ResolvedRule {
            left: (reader.column_index(&self.left)?, &self.left),
            op: self.op,
            right,
        })
    }
}

/// One row's outcome of a rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Derived<'a> {
    /// 1 when the rule holds, else 0.
    Label(f32),
    /// The cell of this column is missing: there is no label to compute.
    Missing(&'a str),
}

enum Side<'a> {
    Column(usize, &'a str),
    Number(f64),
}

/// A [`DeriveRule`] whose columns are indices of one file.
pub(crate) struct ResolvedRule<'a> {
    left: (usize, &'a str),
    op: CompareOp,
    right: Side<'a>,
}

impl<'a> ResolvedRule<'a> {
    /// The index of the left column (the column a task's errors name first).
    pub(crate) fn left_col(&self) -> usize {
        self.left.0
    }

    /// The label of `row`; a cell that is present but not a number is an
    /// error naming the file, line and column.
    pub(crate) fn derive(
        &self,
        row: &Row<'_>,
        path: &Path,
        buf: &mut String,
    ) -> Result<Derived<'a>> {
        let line = row.line();
        let (l_col, l_name) = self.left;
        let Some(l) = number(row.get(l_col), path, line, l_name, buf)? else {
            return Ok(Derived::Missing(l_name));
        };
        let r = match self.right {
            Side::Number(v) => v,
            Side::Column(c, name) => match number(row.get(c), path, line, name, buf)? {
                Some(v) => v,
                None => return Ok(Derived::Missing(name)),
            },
        };
        Ok(Derived::Label(if self.op.holds(l, r) { 1.0 } else { 0.0 }))
    }
}

/// The cell as a number; `None` when it is missing (NaN counts as missing).
fn number(
    cell: Cell<'_>,
    path: &Path,
    line: u64,
    column: &str,
    buf: &mut String,
) -> Result<Option<f64>> {
    if cell.is_missing() {
        return Ok(None);
    }
    let v = match cell {
        Cell::Number(v) => v,
        _ => {
            let text = cell.to_text(buf);
            text.parse::<f64>().map_err(|_| DataError::BadNumber {
                path: path.to_path_buf(),
                line,
                field: column.to_string(),
                value: text.to_string(),
            })?
        }
    };
    Ok((!v.is_nan()).then_some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceSpec;

    #[derive(Deserialize)]
    struct Wrap {
        derive: DeriveRule,
    }

    fn rule(text: &str) -> DeriveRule {
        toml::from_str::<Wrap>(&format!("derive = {text}"))
            .expect("valid rule")
            .derive
    }

    #[test]
    fn operators_and_operands_parse_from_toml() {
        let r = rule(r#"{ left = "play", op = ">=", right = "duration" }"#);
        assert_eq!(r.op, CompareOp::Ge);
        assert_eq!(r.right, Operand::Column("duration".into()));
        assert_eq!(r.columns(), vec!["play", "duration"]);
        let r = rule(r#"{ left = "stay", op = ">", right = 0 }"#);
        assert_eq!(r.right, Operand::Number(0.0));
        assert_eq!(r.columns(), vec!["stay"]);
        assert_eq!(
            rule(r#"{ left = "a", op = "!=", right = 2.5 }"#).op,
            CompareOp::Ne
        );
        let e = toml::from_str::<Wrap>(r#"derive = { left = "a", op = "=>", right = 1 }"#)
            .err()
            .expect("unknown operator");
        assert!(e.to_string().contains("=>"), "{e}");
        let e = rule(r#"{ left = "a", op = "<", right = "a" }"#)
            .check()
            .unwrap_err();
        assert!(e.contains("with itself"), "{e}");
    }

    #[test]
    fn each_operator_compares_as_written() {
        // (left, right) pairs below, equal to and above: the truth table by hand.
        let table = [
            (CompareOp::Ge, [false, true, true]),
            (CompareOp::Gt, [false, false, true]),
            (CompareOp::Le, [true, true, false]),
            (CompareOp::Lt, [true, false, false]),
            (CompareOp::Eq, [false, true, false]),
            (CompareOp::Ne, [true, false, true]),
        ];
        for (op, want) in table {
            let got = [op.holds(1.0, 2.0), op.holds(2.0, 2.0), op.holds(3.0, 2.0)];
            assert_eq!(got, want, "{op:?}");
        }
    }

    #[test]
    fn rows_give_labels_missing_cells_and_bad_numbers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("v.csv");
        std::fs::write(&p, "play,dur\n900,800\n700,800\n,800\n900,NA\n9x,800\n").expect("write");
        let r = rule(r#"{ left = "play", op = ">=", right = "dur" }"#);
        let mut reader = SourceReader::open(&SourceSpec::new(&p)).expect("open");
        let resolved = r.resolve(&reader).expect("columns exist");
        let mut buf = String::new();
        let mut got = Vec::new();
        while let Some(row) = reader.next_row().expect("row") {
            got.push(
                resolved
                    .derive(&row, &p, &mut buf)
                    .map_err(|e| e.to_string()),
            );
        }
        assert_eq!(got[0], Ok(Derived::Label(1.0)));
        assert_eq!(got[1], Ok(Derived::Label(0.0)));
        assert_eq!(got[2], Ok(Derived::Missing("play")));
        assert_eq!(got[3], Ok(Derived::Missing("dur")));
        let e = got[4].clone().unwrap_err();
        assert!(
            e.ends_with("v.csv:6: field `play`: cannot parse \"9x\" as a number"),
            "{e}"
        );

        let bad = rule(r#"{ left = "play", op = ">=", right = "length" }"#);
        let e = bad
            .resolve(&reader)
            .err()
            .expect("no such column")
            .to_string();
        assert!(e.contains("no column named `length`"), "{e}");
    }
}
