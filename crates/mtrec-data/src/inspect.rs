//! `mtrec data inspect FILE`: per-column statistics and a first guess at a
//! schema, so that a user starts from a schema file instead of a blank page.
//!
//! The guess is a heuristic to be edited, not a decision:
//! - a column named like a label (`label`, `click`, `conversion`, `purchase`,
//!   `buy`, or `is_*`) whose values are all 0/1 becomes a binary task;
//! - a numeric column becomes dense if it has fractional values, or more than
//!   [`DENSE_MIN_DISTINCT`] distinct integers and a name that does not look like
//!   an id (`id`, `*_id`, `*id`); integer codes and ids stay sparse;
//! - everything else is sparse.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::Result;
use crate::schema::{DenseField, Schema, SparseField, TaskKind, TaskSpec};
use crate::source::{Cell, SourceReader, SourceSpec};

/// Distinct values are counted up to this many per column, so that an id
/// column of millions of values does not exhaust memory.
pub const MAX_DISTINCT: usize = 10_000;

/// Integer columns with more distinct values than this are guessed dense.
pub const DENSE_MIN_DISTINCT: usize = 100;

/// How many of the most frequent values are reported.
const TOP: usize = 5;

/// Statistics of one column.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ColumnStats {
    pub name: String,
    /// `"dense"`, `"sparse"` or `"label?"`.
    pub guessed: String,
    pub n_missing: usize,
    /// Distinct non-missing values, counted up to [`MAX_DISTINCT`].
    pub n_distinct: usize,
    /// Numeric summaries, present when every non-missing value is a number.
    pub mean: Option<f64>,
    pub std: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The most frequent values with their counts (among counted values).
    pub top: Vec<(String, usize)>,
}

/// Statistics of a whole file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Inspection {
    pub path: PathBuf,
    pub n_rows: usize,
    pub columns: Vec<ColumnStats>,
}

#[derive(Default)]
struct Acc {
    counts: HashMap<String, usize>,
    n_missing: usize,
    numeric: bool,
    integer: bool,
    binary: bool,
    n: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

impl Acc {
    fn new() -> Acc {
        Acc {
            numeric: true,
            integer: true,
            binary: true,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            ..Acc::default()
        }
    }

    fn add(&mut self, cell: Cell<'_>, buf: &mut String) {
        if cell.is_missing() {
            self.n_missing += 1;
            return;
        }
        let text = cell.to_text(buf);
        if let Some(c) = self.counts.get_mut(text) {
            *c += 1;
        } else if self.counts.len() < MAX_DISTINCT {
            self.counts.insert(text.to_string(), 1);
        }
        let v = match cell {
            Cell::Number(v) => Some(v),
            _ => text.parse::<f64>().ok().filter(|v| v.is_finite()),
        };
        match v {
            Some(v) if self.numeric => {
                self.integer &= v.fract() == 0.0;
                self.binary &= v == 0.0 || v == 1.0;
                // Welford: stable for long columns with a large mean.
                self.n += 1;
                let d = v - self.mean;
                self.mean += d / self.n as f64;
                self.m2 += d * (v - self.mean);
                self.min = self.min.min(v);
                self.max = self.max.max(v);
            }
            Some(_) => {}
            None => {
                self.numeric = false;
                self.binary = false;
            }
        }
    }

    fn finish(self, name: String) -> ColumnStats {
        let numeric = self.numeric && self.n > 0;
        let n_distinct = self.counts.len();
        let guessed = if numeric && self.binary && label_like(&name) {
            "label?"
        } else if numeric && (!self.integer || (n_distinct > DENSE_MIN_DISTINCT && !id_like(&name)))
        {
            "dense"
        } else {
            "sparse"
        };
        let mut top: Vec<(String, usize)> = self.counts.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(TOP);
        let num = |v: f64| numeric.then_some(v);
        ColumnStats {
            name,
            guessed: guessed.to_string(),
            n_missing: self.n_missing,
            n_distinct,
            mean: num(self.mean),
            std: num((self.m2 / self.n.max(1) as f64).sqrt()),
            min: num(self.min),
            max: num(self.max),
            top,
        }
    }
}

fn label_like(name: &str) -> bool {
    let n = name.to_lowercase();
    n.starts_with("is_")
        || ["label", "click", "conversion", "purchase", "buy"]
            .iter()
            .any(|k| n.contains(k))
}

fn id_like(name: &str) -> bool {
    let n = name.to_lowercase();
    n == "id" || n.ends_with("_id") || n.ends_with("id")
}

/// Reads the file (its first `max_rows` rows when given) and summarises every column.
pub fn inspect(src: &SourceSpec, max_rows: Option<usize>) -> Result<Inspection> {
    let mut reader = SourceReader::open(src)?;
    let names = reader.columns().to_vec();
    let mut accs: Vec<Acc> = names.iter().map(|_| Acc::new()).collect();
    let mut buf = String::new();
    let mut n_rows = 0usize;
    while max_rows.is_none_or(|m| n_rows < m) {
        let Some(row) = reader.next_row()? else {
            break;
        };
        for (i, acc) in accs.iter_mut().enumerate() {
            acc.add(row.get(i), &mut buf);
        }
        n_rows += 1;
    }
    Ok(Inspection {
        path: src.path.clone(),
        n_rows,
        columns: names
            .into_iter()
            .zip(accs)
            .map(|(name, acc)| acc.finish(name))
            .collect(),
    })
}

/// A schema following each column's guess; label columns become binary tasks.
/// It may have no tasks (nothing looked like a label): the user must add them.
pub fn guess_schema(ins: &Inspection) -> Schema {
    let mut schema = Schema::default();
    for c in &ins.columns {
        match c.guessed.as_str() {
            "dense" => schema.dense.push(DenseField::new(&c.name)),
            "label?" => schema
                .tasks
                .push(TaskSpec::new(&c.name, TaskKind::Binary, &c.name)),
            _ => schema.sparse.push(SparseField::new(&c.name)),
        }
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn guesses_labels_dense_and_sparse_columns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.csv");
        let mut f = std::fs::File::create(&p).expect("create");
        writeln!(f, "user_id,price,city,click,is_new").expect("write");
        for i in 0..300 {
            let city = if i % 3 == 0 { "" } else { "paris" };
            writeln!(f, "{},{}.5,{city},{},{}", i, i % 7, i % 2, i % 5).expect("write");
        }
        drop(f);
        let ins = inspect(&SourceSpec::new(&p), None).expect("inspect");
        assert_eq!(ins.n_rows, 300);
        let g: Vec<&str> = ins.columns.iter().map(|c| c.guessed.as_str()).collect();
        // user_id: many integers but an id; is_new: values up to 4, not a label.
        assert_eq!(g, vec!["sparse", "dense", "sparse", "label?", "sparse"]);
        let city = &ins.columns[2];
        assert_eq!(city.n_missing, 100);
        assert_eq!(city.top, vec![("paris".to_string(), 200)]);
        assert_eq!(city.mean, None);
        let price = &ins.columns[1];
        assert_eq!((price.min, price.max), (Some(0.5), Some(6.5)));
        let click = &ins.columns[3];
        assert!((click.mean.expect("numeric") - 0.5).abs() < 1e-12);

        let s = guess_schema(&ins);
        assert_eq!(s.task_names(), vec!["click"]);
        s.validate("guessed").expect("valid");
        let text = s.to_toml_string();
        assert_eq!(Schema::from_toml_str(&text, "g").expect("re-read"), s);

        let few = inspect(&SourceSpec::new(&p), Some(10)).expect("inspect");
        assert_eq!(few.n_rows, 10);
    }
}
