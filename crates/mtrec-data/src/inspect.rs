//! `mtrec data inspect FILE`: per-column statistics and a first guess at a
//! schema, so that a user starts from a schema file instead of a blank page.
//!
//! The guess is a heuristic to be edited, not a decision:
//! - a column with two values (0/1, or any two) is a possible task. It is
//!   proposed as a binary task (`guessed = "task"`) when its name also reads
//!   like feedback ([`LABEL_WORDS`]: `click`, `like`, `purchase`, ...); a 0/1
//!   column is its own label, otherwise `positive` is the value spelled like a
//!   positive (`1`, `yes`, `true`, ...) or else the rarer one, the event. Other
//!   two-valued columns (flags such as `is_video_author`, binary categorical
//!   codes) stay inputs, flagged `task_candidate`, because a log holds far more
//!   binary features than labels;
//! - a numeric column becomes dense if it has fractional values, or more than
//!   [`DENSE_MIN_DISTINCT`] distinct integers and a name that does not look like
//!   an id (`id`, `*_id`, `*id`); integer codes and ids stay sparse;
//! - everything else is sparse. A sparse column is flagged `id_like` when its
//!   values are mostly distinct ([`ID_MIN_SHARE`] of its non-missing cells, at
//!   least [`ID_MIN_ROWS`] of them), or it is named like an id and has more
//!   than [`DENSE_MIN_DISTINCT`] values, or it reaches [`MAX_DISTINCT`]: each
//!   value then has a few rows at most, its embedding learns little, and an id
//!   fits the training rows it was seen on. It is kept as a sparse field; the
//!   flag says to think about `min_count` or dropping it;
//! - a text column where more than half of the non-missing cells contain `|`
//!   (or else `;`, see [`SEPARATORS`]) is multi-valued (tags, `a|b|c`): a sparse
//!   field with that `separator`. Its distinct values, top values and ID-likeness
//!   are then those of the values, not of the cells (counted over the
//!   [`MAX_DISTINCT`] distinct cells kept), and it is never a task.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::bag::{DEFAULT_MAX_VALUES, members};
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

/// Parts of a column name that say "this is a user's feedback", i.e. a label.
pub const LABEL_WORDS: [&str; 13] = [
    "label",
    "target",
    "click",
    "like",
    "follow",
    "share",
    "comment",
    "forward",
    "conversion",
    "convert",
    "purchase",
    "buy",
    "finish",
];

/// A sparse column whose distinct values are at least this share of its
/// non-missing cells is ID-like.
pub const ID_MIN_SHARE: f64 = 0.5;

/// ... provided it has at least this many non-missing cells: in a 6-row file
/// every column is mostly distinct.
pub const ID_MIN_ROWS: usize = 20;

/// Separators of multi-valued cells that are recognised, in order of preference: `,` is left
/// out because it is the usual file delimiter, so it only appears in quoted free text.
pub const SEPARATORS: [&str; 2] = ["|", ";"];

/// A column is multi-valued when more than this share of its non-missing cells contain a
/// separator.
pub const MULTI_MIN_SHARE: f64 = 0.5;

/// Spellings of the positive value of a two-valued label column.
const POSITIVE_SPELLINGS: [&str; 6] = ["1", "yes", "y", "true", "t", "positive"];

/// Statistics of one column.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ColumnStats {
    pub name: String,
    /// `"dense"`, `"sparse"` or `"task"` (proposed as a binary task).
    pub guessed: String,
    /// For a proposed task whose values are not 0/1: the value that is label 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub positive: Option<String>,
    /// Two values, but kept as an input: it could be a task (see the module doc).
    pub task_candidate: bool,
    /// Mostly distinct values: an id or a near-unique key (see the module doc).
    pub id_like: bool,
    /// For a multi-valued column: the separator its cells are split at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    /// For a multi-valued column: the most values one cell holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub most_values: Option<usize>,
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
    /// Per separator in [`SEPARATORS`]: the cells containing it, the most values in one.
    with_separator: [usize; SEPARATORS.len()],
    most_values: [usize; SEPARATORS.len()],
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
        for (i, sep) in SEPARATORS.iter().enumerate() {
            if text.contains(sep) {
                self.with_separator[i] += 1;
                self.most_values[i] = self.most_values[i].max(members(text, sep).count());
            }
        }
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

    /// The separator of a multi-valued column (see the module doc), with its index.
    fn separator(&self, present: usize) -> Option<usize> {
        let (i, &n) = self
            .with_separator
            .iter()
            .enumerate()
            .max_by_key(|&(i, &n)| (n, std::cmp::Reverse(i)))?;
        (n as f64 > MULTI_MIN_SHARE * present as f64).then_some(i)
    }

    fn finish(self, name: String, n_rows: usize) -> ColumnStats {
        let present = n_rows - self.n_missing;
        if let Some(i) = self.separator(present) {
            return self.finish_multi_valued(name, i);
        }
        let numeric = self.numeric && self.n > 0;
        let n_distinct = self.counts.len();
        // A 0/1 label may show one value only in a short sample (no conversion in 20 rows).
        let zero_one = numeric && self.binary;
        let mut top: Vec<(String, usize)> = self.counts.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let is_task = (zero_one || n_distinct == 2) && label_like(&name);
        let positive = (is_task && !zero_one).then(|| positive_value(&top));
        let guessed = if is_task {
            "task"
        } else if numeric && (!self.integer || (n_distinct > DENSE_MIN_DISTINCT && !id_like(&name)))
        {
            "dense"
        } else {
            "sparse"
        };
        let looks_like_id = guessed == "sparse"
            && present >= ID_MIN_ROWS
            && (n_distinct as f64 >= ID_MIN_SHARE * present as f64
                || (id_like(&name) && n_distinct > DENSE_MIN_DISTINCT)
                || n_distinct >= MAX_DISTINCT);
        top.truncate(TOP);
        let num = |v: f64| numeric.then_some(v);
        ColumnStats {
            name,
            guessed: guessed.to_string(),
            positive,
            task_candidate: n_distinct == 2 && !is_task,
            id_like: looks_like_id,
            separator: None,
            most_values: None,
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

impl Acc {
    /// The statistics of a column whose cells are split at `SEPARATORS[i]`: of its values.
    fn finish_multi_valued(self, name: String, i: usize) -> ColumnStats {
        let sep = SEPARATORS[i];
        let mut values: HashMap<&str, usize> = HashMap::new();
        for (cell, &n) in &self.counts {
            for v in members(cell, sep) {
                *values.entry(v).or_default() += n;
            }
        }
        let occurrences: usize = values.values().sum();
        let n_distinct = values.len();
        let mut top: Vec<(String, usize)> = values
            .into_iter()
            .map(|(v, n)| (v.to_string(), n))
            .collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(TOP);
        let id_like = occurrences >= ID_MIN_ROWS
            && (n_distinct as f64 >= ID_MIN_SHARE * occurrences as f64
                || n_distinct >= MAX_DISTINCT);
        ColumnStats {
            name,
            guessed: "sparse".to_string(),
            positive: None,
            task_candidate: false,
            id_like,
            separator: Some(sep.to_string()),
            most_values: Some(self.most_values[i]),
            n_missing: self.n_missing,
            n_distinct,
            mean: None,
            std: None,
            min: None,
            max: None,
            top,
        }
    }
}

fn label_like(name: &str) -> bool {
    let n = name.to_lowercase();
    LABEL_WORDS.iter().any(|k| n.contains(k))
}

/// The positive value of a two-valued column, `top` being its values by
/// falling count: one spelled like a positive, else the rarer one.
fn positive_value(top: &[(String, usize)]) -> String {
    let spelled = top
        .iter()
        .find(|(v, _)| POSITIVE_SPELLINGS.iter().any(|p| v.eq_ignore_ascii_case(p)));
    spelled
        .or(top.last())
        .map(|(v, _)| v.clone())
        .unwrap_or_default()
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
            .map(|(name, acc)| acc.finish(name, n_rows))
            .collect(),
    })
}

/// A schema following each column's guess; proposed tasks become binary
/// tasks, not inputs. It may have no tasks (nothing looked like a label): the
/// user must add them.
pub fn guess_schema(ins: &Inspection) -> Schema {
    let mut schema = Schema::default();
    for c in &ins.columns {
        match c.guessed.as_str() {
            "dense" => schema.dense.push(DenseField::new(&c.name)),
            "task" => {
                let mut task = TaskSpec::new(&c.name, TaskKind::Binary, &c.name);
                task.positive = c.positive.clone().map(|p| vec![p]);
                schema.tasks.push(task);
            }
            _ => schema.sparse.push(SparseField {
                separator: c.separator.clone(),
                ..SparseField::new(&c.name)
            }),
        }
    }
    schema
}

/// `schema` as TOML, headed by comments that name what the guess could not
/// decide: ID-like columns and two-valued inputs that could be tasks.
pub fn schema_toml(ins: &Inspection, schema: &Schema) -> String {
    let names = |keep: fn(&ColumnStats) -> bool| {
        ins.columns
            .iter()
            .filter(|c| keep(c))
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = format!(
        "# Guessed by `mtrec data inspect` from {} ({} rows): edit before use.\n",
        ins.path.display(),
        ins.n_rows
    );
    let ids = names(|c| c.id_like);
    if !ids.is_empty() {
        out.push_str(&format!(
            "# ID-like (mostly distinct values; consider min_count or dropping them): {ids}\n"
        ));
    }
    let candidates = names(|c| c.task_candidate);
    if !candidates.is_empty() {
        out.push_str(&format!(
            "# Two-valued inputs that could be tasks instead: {candidates}\n"
        ));
    }
    let multi: Vec<String> = ins
        .columns
        .iter()
        .filter_map(|c| Some(format!("{} ({})", c.name, c.most_values?)))
        .collect();
    if !multi.is_empty() {
        out.push_str(&format!(
            "# Multi-valued, split at `separator` and pooled (the most values in a cell; the \
             first max_values = {DEFAULT_MAX_VALUES} are kept unless you set it): {}\n",
            multi.join(", ")
        ));
    }
    out.push('\n');
    out.push_str(&schema.to_toml_string());
    out
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
        assert_eq!(g, vec!["sparse", "dense", "sparse", "task", "sparse"]);
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

    #[test]
    fn two_valued_columns_become_tasks_or_candidates_and_ids_are_flagged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("log.csv");
        let mut f = std::fs::File::create(&p).expect("create");
        writeln!(
            f,
            "uid,item_id,code,city,price,is_author,gender,liked,purchase"
        )
        .expect("w");
        for i in 0..300 {
            let liked = if i % 4 == 0 { "no" } else { "yes" };
            let purchase = if i % 10 == 0 { "B" } else { "A" };
            let (author, gender) = (i % 2, if i % 3 == 0 { "f" } else { "m" });
            let (item, code, city) = (i % 120, i % 120, ["x", "y", "z"][i % 3]);
            writeln!(
                f,
                "u{i},{item},{code},{city},{i}.25,{author},{gender},{liked},{purchase}"
            )
            .expect("w");
        }
        drop(f);
        let ins = inspect(&SourceSpec::new(&p), None).expect("inspect");
        let col = |n: &str| ins.columns.iter().find(|c| c.name == n).expect("column");
        // Tasks: label-like names with two values; `positive` is "yes" by its spelling,
        // though it is the commoner value (225 of 300), and "B" as the rarer (30 of 300).
        assert_eq!(
            (
                col("liked").guessed.as_str(),
                col("liked").positive.as_deref()
            ),
            ("task", Some("yes"))
        );
        assert_eq!(col("purchase").positive.as_deref(), Some("B"));
        // Two-valued inputs: flagged, kept sparse.
        for c in ["is_author", "gender"] {
            assert!(col(c).task_candidate && col(c).guessed == "sparse", "{c}");
        }
        assert!(!col("city").task_candidate && !col("liked").task_candidate);
        // ID-like: 300 distinct of 300 (uid); 120 distinct (40%) but named as an id and
        // above 100 (item_id). The same values under another name are a dense number (code);
        // a fractional all-distinct column is dense too, not an id.
        let flagged: Vec<&str> = ins
            .columns
            .iter()
            .filter(|c| c.id_like)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(flagged, vec!["uid", "item_id"]);
        assert_eq!(
            (col("code").guessed.as_str(), col("price").guessed.as_str()),
            ("dense", "dense")
        );

        let schema = guess_schema(&ins);
        assert_eq!(schema.task_names(), vec!["liked", "purchase"]);
        let inputs: Vec<&str> = schema.sparse.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            inputs,
            vec!["uid", "item_id", "city", "is_author", "gender"]
        );
        let text = schema_toml(&ins, &schema);
        assert!(text.contains("# ID-like (mostly distinct values; consider min_count or dropping them): uid, item_id\n"), "{text}");
        assert!(
            text.contains("# Two-valued inputs that could be tasks instead: is_author, gender\n"),
            "{text}"
        );
        assert_eq!(Schema::from_toml_str(&text, "g").expect("re-read"), schema);

        // The written schema loads, and `positive` makes "yes" the 1: i % 4 != 0, 225 rows.
        let schema_path = dir.path().join("s.toml");
        std::fs::write(&schema_path, &text).expect("write");
        let cfg = crate::DataConfig::Files(crate::FilesConfig::new(&schema_path, &p));
        let ds = crate::load(&cfg, dir.path()).expect("loads");
        let liked: f32 = [&ds.train, &ds.valid, &ds.test]
            .iter()
            .flat_map(|t| t.labels_of_task(0))
            .sum();
        assert_eq!(liked, 225.0);
    }
}
