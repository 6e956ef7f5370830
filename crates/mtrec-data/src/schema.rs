//! The schema file: which columns are categorical inputs, which are numeric
//! inputs, and how each task's label is derived from a column.
//!
//! A schema is TOML so that a user can write one by hand (or start from the one
//! `mtrec data inspect` guesses). Every table denies unknown keys: a typo such
//! as `min_cout` must fail loudly instead of silently using the default.
//!
//! ```toml
//! columns = ["user", "item", "price", "click"]   # only for header-less files
//! [[sparse]]
//! name = "user"
//! min_count = 2          # rarer values share the unknown id 0
//! # separator = "|"      # several values a cell (`a|b|c`), pooled; see `crate::bag`
//! # pooling = "mean"     #   or "sum"
//! # max_values = 16      #   the first 16 values of a cell are kept
//! [[dense]]
//! name = "price"
//! fill = 0.0             # raw value used where the cell is empty
//! # buckets = 8          # or: quantile buckets of the training split, embedded like
//! # boundaries = [1.0]   #     a sparse field (or fixed edges); see `crate::buckets`
//! [[tasks]]
//! name = "click"
//! kind = "binary"        # or "regression"
//! column = "click"       # defaults to the task name
//! # positive = ["yes"]   # label 1 if the value is in this set
//! # threshold = 30.0     # label 1 if the value is >= threshold
//! # derive = { left = "play_ms", op = ">=", right = "length_ms" }   # a rule over
//! #                      # two columns (or a column and a number); see `crate::derive`
//! # missing = "mask"     # an empty cell leaves the row out of this task (default "error")
//! # missing_values = ["-1"]   # cells that count as missing besides empty ones
//! # given = "view"       # trained and scored only on rows where task `view` is 1
//! # weight = "w"         # column of per-row example weights (finite, >= 0)
//! # scale = "none"       # regression only: train on the raw label (default "standard")
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bag::{self, DEFAULT_MAX_VALUES, Pooling};
use crate::derive::DeriveRule;
use crate::error::{DataError, Result};

/// What a task predicts; it decides the loss and the metrics downstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Labels 0/1, trained with binary cross-entropy, scored with AUC and logloss.
    Binary,
    /// Real-valued labels, trained and scored with MSE.
    Regression,
}

/// What a task's missing label means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingLabels {
    /// A missing label is an error naming the file, line and column.
    #[default]
    Error,
    /// The row does not enter this task's loss or metrics; the other tasks still use it.
    Mask,
}

impl MissingLabels {
    fn is_error(&self) -> bool {
        *self == MissingLabels::Error
    }
}

/// How a regression label is scaled for training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelScale {
    /// Standardised with the training split's mean and std (the default for regression):
    /// a target in milliseconds would otherwise swamp every binary loss.
    Standard,
    /// The raw label (the MMoE paper's synthetic protocol).
    None,
}

/// A data set's layout: inputs and tasks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// Names for the columns of header-less files; files with a header name
    /// their own columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// Categorical inputs, each looked up in its own vocabulary.
    #[serde(default)]
    pub sparse: Vec<SparseField>,
    /// Numeric inputs, standardised with the training split's mean and std.
    #[serde(default)]
    pub dense: Vec<DenseField>,
    /// The tasks, in the order the models output them.
    #[serde(default)]
    pub tasks: Vec<TaskSpec>,
}

/// A categorical input field.
///
/// Empty cells (and Parquet nulls) map to the unknown id 0. Spellings such as
/// `?` or `NA` are ordinary values here: for a categorical field they often
/// mean something (Census writes `?` for "not asked that year").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseField {
    pub name: String,
    /// The source column; the field name when absent, so most schemas need not repeat it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Values seen fewer times in the training split map to the unknown id 0,
    /// so rare values do not each get an embedding trained on a handful of rows.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub min_count: u32,
    /// Makes the field multi-valued: each cell is split here into values, and the field is
    /// embedded as the pooled embeddings of its values (see [`crate::bag`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    /// How a multi-valued field's values pool; `None` means [`Pooling::Mean`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooling: Option<Pooling>,
    /// Values kept per cell of a multi-valued field, the first ones in file order; `None`
    /// means [`DEFAULT_MAX_VALUES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_values: Option<u32>,
}

/// A numeric input field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseField {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Raw value (before standardisation) used where the cell is missing; it
    /// counts towards the training mean and std like any other value.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fill: f32,
    /// Bucketise into this many quantile buckets of the training split instead
    /// of standardising (see [`crate::buckets`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<u32>,
    /// Bucketise at these fixed, strictly increasing edges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boundaries: Option<Vec<f64>>,
}

/// A task and the rule that turns its column into a label.
///
/// With `positive` the label is 1 when the trimmed value is in the set; with
/// `threshold` it is 1 when the number is `>= threshold`; with neither the
/// value is the label itself (0 or 1 for binary tasks). A missing label (an
/// empty cell, or one of `missing_values`) is an error unless `missing = "mask"`
/// says the log simply lacks it there: guessing a target would skew every metric.
///
/// `missing`, `given` and `weight` all act through one per-row, per-task example
/// weight (0 for a masked row or one where the `given` task is not positive, the
/// weight column's value otherwise, 1 by default): see
/// [`EncodedTable::label_weights`](crate::EncodedTable::label_weights).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "TaskSpecToml")]
pub struct TaskSpec {
    pub name: String,
    pub kind: TaskKind,
    pub column: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub positive: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// A rule over columns instead of one column's value (see [`crate::derive`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub derive: Option<DeriveRule>,
    #[serde(skip_serializing_if = "MissingLabels::is_error")]
    pub missing: MissingLabels,
    /// Cell values (trimmed) that mean "no label", besides empty cells and Parquet nulls.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_values: Vec<String>,
    /// A binary task this one is conditional on: trained and scored only on rows where
    /// that task's label is present and positive (conversion after click).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given: Option<String>,
    /// A column of per-row example weights for this task's loss and metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<String>,
    /// Regression only; `None` means the default, [`LabelScale::Standard`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<LabelScale>,
}

/// The on-disk form of a task, where `column` may be left out.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskSpecToml {
    name: String,
    kind: TaskKind,
    #[serde(default)]
    column: Option<String>,
    #[serde(default)]
    positive: Option<Vec<String>>,
    #[serde(default)]
    threshold: Option<f64>,
    #[serde(default)]
    derive: Option<DeriveRule>,
    #[serde(default)]
    missing: MissingLabels,
    #[serde(default)]
    missing_values: Vec<String>,
    #[serde(default)]
    given: Option<String>,
    #[serde(default)]
    weight: Option<String>,
    #[serde(default)]
    scale: Option<LabelScale>,
}

impl From<TaskSpecToml> for TaskSpec {
    fn from(t: TaskSpecToml) -> Self {
        let column = t.column.unwrap_or_else(|| t.name.clone());
        TaskSpec {
            name: t.name,
            kind: t.kind,
            column,
            positive: t.positive,
            threshold: t.threshold,
            derive: t.derive,
            missing: t.missing,
            missing_values: t.missing_values,
            given: t.given,
            weight: t.weight,
            scale: t.scale,
        }
    }
}

fn one() -> u32 {
    1
}

fn is_one(v: &u32) -> bool {
    *v == 1
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

/// A derived label is binary and computed by its rule alone: `column`,
/// `positive` and `threshold` would be silently ignored, so they are refused.
fn check_derive(t: &TaskSpec) -> std::result::Result<(), String> {
    let Some(rule) = &t.derive else {
        return Ok(());
    };
    if t.kind != TaskKind::Binary {
        return Err("`derive` makes binary labels; use kind = \"binary\"".into());
    }
    if t.positive.is_some() || t.threshold.is_some() {
        return Err("`derive` computes the label itself; drop `positive` and `threshold`".into());
    }
    if t.column != t.name {
        return Err(format!(
            "`derive` reads its own columns; drop `column = \"{}\"`",
            t.column
        ));
    }
    rule.check()
}

/// `buckets` or `boundaries`, not both; at least 2 buckets; usable edges; no
/// `fill`, since a missing cell of a bucketised field gets the id 0.
fn check_bucketing(f: &DenseField) -> std::result::Result<(), String> {
    if f.is_bucketised() && f.fill != 0.0 {
        return Err(
            "`fill` does not apply to a bucketised field: a missing cell gets bucket id 0".into(),
        );
    }
    match (f.buckets, &f.boundaries) {
        (Some(_), Some(_)) => Err("give either `buckets` or `boundaries`, not both".into()),
        (Some(n), None) if n < 2 => Err(format!("`buckets` must be at least 2, got {n}")),
        (Some(n), None) if n > crate::buckets::MAX_BUCKETS => Err(format!(
            "`buckets` must be at most {}, got {n}",
            crate::buckets::MAX_BUCKETS
        )),
        (None, Some(b)) if b.is_empty() => Err("`boundaries` is empty".into()),
        (None, Some(b)) => crate::buckets::check_boundaries(b),
        _ => Ok(()),
    }
}

impl SparseField {
    /// A field read from the column of the same name, keeping every value.
    pub fn new(name: impl Into<String>) -> Self {
        SparseField {
            name: name.into(),
            column: None,
            min_count: 1,
            separator: None,
            pooling: None,
            max_values: None,
        }
    }

    /// A multi-valued field split at `separator`, with the default pooling and cap.
    pub fn multi_valued(name: impl Into<String>, separator: impl Into<String>) -> Self {
        SparseField {
            separator: Some(separator.into()),
            ..SparseField::new(name)
        }
    }

    /// The source column this field reads.
    pub fn column(&self) -> &str {
        self.column.as_deref().unwrap_or(&self.name)
    }

    /// Whether cells hold several values (a `separator` is set).
    pub fn is_multi_valued(&self) -> bool {
        self.separator.is_some()
    }

    /// Id slots the field takes in an encoded row: 1, or `max_values` when multi-valued.
    pub fn slots(&self) -> usize {
        match self.separator {
            None => 1,
            Some(_) => self.max_values.unwrap_or(DEFAULT_MAX_VALUES).max(1) as usize,
        }
    }

    /// How the values of a multi-valued field pool.
    pub fn pooling(&self) -> Pooling {
        self.pooling.unwrap_or_default()
    }
}

impl DenseField {
    /// A field read from the column of the same name, missing values filled with 0.
    pub fn new(name: impl Into<String>) -> Self {
        DenseField {
            name: name.into(),
            column: None,
            fill: 0.0,
            buckets: None,
            boundaries: None,
        }
    }

    /// Whether the field enters the model as a bucket id instead of a number.
    pub fn is_bucketised(&self) -> bool {
        self.buckets.is_some() || self.boundaries.is_some()
    }

    /// The raw value of a missing cell: `fill`, or NaN for a bucketised field,
    /// which [`crate::buckets`] maps to the reserved id 0.
    pub fn missing_value(&self) -> f32 {
        if self.is_bucketised() {
            f32::NAN
        } else {
            self.fill
        }
    }

    /// The source column this field reads.
    pub fn column(&self) -> &str {
        self.column.as_deref().unwrap_or(&self.name)
    }
}

impl TaskSpec {
    /// A task whose label is the column's own value.
    pub fn new(name: impl Into<String>, kind: TaskKind, column: impl Into<String>) -> Self {
        TaskSpec {
            name: name.into(),
            kind,
            column: column.into(),
            positive: None,
            threshold: None,
            derive: None,
            missing: MissingLabels::Error,
            missing_values: Vec::new(),
            given: None,
            weight: None,
            scale: None,
        }
    }

    /// The columns the label is computed from: `derive`'s, else `column`.
    pub fn source_columns(&self) -> Vec<&str> {
        match &self.derive {
            Some(rule) => rule.columns(),
            None => vec![self.column.as_str()],
        }
    }

    /// Whether some rows may lack this task's label or weigh other than 1: then the encoded
    /// table carries per-row weights.
    pub fn is_partial(&self) -> bool {
        self.missing == MissingLabels::Mask || self.given.is_some() || self.weight.is_some()
    }

    /// Whether the label is standardised for training (regression tasks, unless
    /// `scale = "none"`).
    pub fn is_standardised(&self) -> bool {
        self.kind == TaskKind::Regression && self.scale != Some(LabelScale::None)
    }
}

impl Schema {
    /// Reads and validates a schema file.
    pub fn from_toml_file(path: &Path) -> Result<Schema> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        Schema::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses and validates a schema; `origin` names the text in error messages.
    pub fn from_toml_str(s: &str, origin: &str) -> Result<Schema> {
        let schema: Schema = toml::from_str(s).map_err(|e| {
            let message = match e.span() {
                Some(span) => {
                    let line = s[..span.start.min(s.len())].matches('\n').count() + 1;
                    format!("line {line}: {}", e.message())
                }
                None => e.message().to_string(),
            };
            DataError::Schema {
                path: PathBuf::from(origin),
                message,
            }
        })?;
        schema.validate(origin)?;
        Ok(schema)
    }

    /// The schema as TOML, in the layout [`Schema::from_toml_str`] reads.
    ///
    /// Every schema value has a TOML form, so this cannot fail in practice;
    /// should it, the text is a TOML comment carrying the error, which the
    /// reader then rejects for lack of tasks instead of silently misreading.
    pub fn to_toml_string(&self) -> String {
        self.try_to_toml_string()
            .unwrap_or_else(|e| format!("# could not write the schema as TOML: {e}\n"))
    }

    /// [`Schema::to_toml_string`] with the serialiser's error.
    pub fn try_to_toml_string(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| DataError::Schema {
            path: PathBuf::from("<schema>"),
            message: e.to_string(),
        })
    }

    /// Task names in model output order.
    pub fn task_names(&self) -> Vec<String> {
        self.tasks.iter().map(|t| t.name.clone()).collect()
    }

    /// Task kinds in model output order.
    pub fn task_kinds(&self) -> Vec<TaskKind> {
        self.tasks.iter().map(|t| t.kind).collect()
    }

    /// Whether any task has partial labels ([`TaskSpec::is_partial`]).
    pub fn has_partial_labels(&self) -> bool {
        self.tasks.iter().any(TaskSpec::is_partial)
    }

    /// Checks the consistency that TOML alone cannot express; `origin` names
    /// the schema in the error.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let fail = |message: String| {
            Err(DataError::Schema {
                path: PathBuf::from(origin),
                message,
            })
        };
        if self.tasks.is_empty() {
            return fail("the schema has no [[tasks]]".into());
        }
        if self.sparse.is_empty() && self.dense.is_empty() {
            return fail("the schema has no input fields ([[sparse]] or [[dense]])".into());
        }

        // Names reach one-line error messages as they are, so a line break in one (TOML
        // allows "a\nb") would split them; no column of a real file needs one (found by
        // `fuzz/`'s `schema` target).
        let named = self
            .sparse
            .iter()
            .flat_map(|f| [Some(f.name.as_str()), f.column.as_deref()])
            .chain(
                self.dense
                    .iter()
                    .flat_map(|f| [Some(f.name.as_str()), f.column.as_deref()]),
            )
            .chain(self.tasks.iter().flat_map(|t| {
                [
                    Some(t.name.as_str()),
                    t.given.as_deref(),
                    t.weight.as_deref(),
                ]
                .into_iter()
                .chain(t.source_columns().into_iter().map(Some))
            }))
            .chain(self.columns.iter().flatten().map(|c| Some(c.as_str())))
            .flatten();
        for name in named {
            if name.chars().any(char::is_control) {
                return fail(format!(
                    "the name {name:?} holds a control character (a line break, a tab); \
                     names must be printable"
                ));
            }
        }

        let mut names = HashSet::new();
        let inputs = self
            .sparse
            .iter()
            .map(|f| (f.name.as_str(), f.column()))
            .chain(self.dense.iter().map(|f| (f.name.as_str(), f.column())));
        for (name, _) in inputs.clone() {
            if name.is_empty() {
                return fail("a field has an empty name".into());
            }
            if !names.insert(name) {
                return fail(format!("field name `{name}` is used twice"));
            }
        }
        for f in &self.sparse {
            if let Err(message) = bag::check(f) {
                return fail(format!("field `{}`: {message}", f.name));
            }
        }
        for f in &self.dense {
            if !f.fill.is_finite() {
                return fail(format!("field `{}`: fill must be a finite number", f.name));
            }
            if let Err(message) = check_bucketing(f) {
                return fail(format!("field `{}`: {message}", f.name));
            }
        }

        let mut task_names = HashSet::new();
        for t in &self.tasks {
            if t.name.is_empty() {
                return fail("a task has an empty name".into());
            }
            if !task_names.insert(t.name.as_str()) {
                return fail(format!("task name `{}` is used twice", t.name));
            }
            for source in t.source_columns() {
                if let Some((field, _)) = inputs.clone().find(|(_, col)| *col == source) {
                    return fail(format!(
                        "column `{source}` is the label of task `{}` and also the input field \
                         `{field}`: the model would see its own target",
                        t.name
                    ));
                }
            }
            if let Err(message) = check_derive(t) {
                return fail(format!("task `{}`: {message}", t.name));
            }
            match (t.kind, &t.positive, t.threshold) {
                (_, Some(_), Some(_)) => {
                    return fail(format!(
                        "task `{}`: give either `positive` or `threshold`, not both",
                        t.name
                    ));
                }
                (TaskKind::Regression, Some(_), _) | (TaskKind::Regression, _, Some(_)) => {
                    return fail(format!(
                        "task `{}`: `positive` and `threshold` make binary labels; \
                         use kind = \"binary\"",
                        t.name
                    ));
                }
                (_, Some(p), _) if p.is_empty() => {
                    return fail(format!(
                        "task `{}`: the `positive` set is empty, every label would be 0",
                        t.name
                    ));
                }
                (_, _, Some(th)) if !th.is_finite() => {
                    return fail(format!("task `{}`: threshold must be finite", t.name));
                }
                _ => {}
            }
            if let Err(message) = self.check_partial_labels(t) {
                return fail(message);
            }
        }

        if let Some(cols) = &self.columns {
            crate::source::check_unique(Path::new(origin), cols, "`columns`")?;
            let seen: HashSet<&str> = cols.iter().map(String::as_str).collect();
            let used = inputs
                .map(|(_, c)| c)
                .chain(self.tasks.iter().flat_map(|t| t.source_columns()))
                .chain(self.tasks.iter().filter_map(|t| t.weight.as_deref()));
            for c in used {
                if !seen.contains(c) {
                    return fail(format!("column `{c}` is used but not listed in `columns`"));
                }
            }
        }
        Ok(())
    }

    /// `given`, `weight` and `scale` of task `t`, as a sentence naming the task when wrong.
    fn check_partial_labels(&self, t: &TaskSpec) -> std::result::Result<(), String> {
        if let Some(g) = &t.given {
            match self.tasks.iter().find(|o| &o.name == g) {
                None => {
                    return Err(format!(
                        "task `{}`: `given = \"{g}\"` names no task (tasks: {})",
                        t.name,
                        self.task_names().join(", ")
                    ));
                }
                Some(o) if o.name == t.name => {
                    return Err(format!("task `{}`: a task cannot be given itself", t.name));
                }
                Some(o) if o.kind != TaskKind::Binary => {
                    return Err(format!(
                        "task `{}`: `given = \"{g}\"` must name a binary task; `{g}` is a \
                         regression task, which has no positive rows",
                        t.name
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(w) = &t.weight {
            if *w == t.column {
                return Err(format!(
                    "task `{}`: the weight column `{w}` is the task's own label column",
                    t.name
                ));
            }
            let input = self.sparse.iter().map(|f| (f.name.as_str(), f.column()));
            let mut input = input.chain(self.dense.iter().map(|f| (f.name.as_str(), f.column())));
            if let Some((field, _)) = input.find(|(_, c)| c == w) {
                return Err(format!(
                    "task `{}`: the weight column `{w}` is also the input field `{field}`",
                    t.name
                ));
            }
        }
        if t.kind == TaskKind::Binary && t.scale.is_some() {
            return Err(format!(
                "task `{}`: `scale` applies to regression labels; binary labels are 0/1",
                t.name
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[sparse]]
name = "user"
min_count = 2
[[sparse]]
name = "item_field"
column = "item"
[[dense]]
name = "price"
fill = -1.0
[[tasks]]
name = "click"
kind = "binary"
[[tasks]]
name = "buy"
kind = "binary"
column = "purchase"
positive = ["yes"]
[[tasks]]
name = "watch"
kind = "regression"
column = "seconds"
"#;

    #[test]
    fn parses_defaults_and_round_trips_through_toml() {
        let s = Schema::from_toml_str(GOOD, "good.toml").expect("valid schema");
        assert_eq!(s.sparse[0].min_count, 2);
        assert_eq!(s.sparse[1].min_count, 1);
        assert_eq!(s.sparse[1].column(), "item");
        assert_eq!(s.dense[0].fill, -1.0);
        assert_eq!(s.tasks[0].column, "click");
        assert_eq!(s.tasks[2].kind, TaskKind::Regression);
        assert_eq!(s.task_names(), vec!["click", "buy", "watch"]);
        let text = s.try_to_toml_string().expect("serialisable");
        let back = Schema::from_toml_str(&text, "back.toml").expect("re-read");
        assert_eq!(back, s);
    }

    #[test]
    fn unknown_key_is_an_error_naming_key_file_and_line() {
        let bad = GOOD.replace("min_count = 2", "min_cout = 2");
        let e = Schema::from_toml_str(&bad, "s.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.toml: line "), "{e}");
        assert!(e.contains("min_cout"), "{e}");
    }

    #[test]
    fn label_column_that_is_also_an_input_is_rejected() {
        let bad = GOOD.replace("column = \"purchase\"", "column = \"item\"");
        let e = Schema::from_toml_str(&bad, "s.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("column `item` is the label of task `buy`"),
            "{e}"
        );
    }

    #[test]
    fn inconsistent_schemas_are_rejected() {
        let cases = [
            (
                GOOD.replace("name = \"item_field\"", "name = \"user\""),
                "used twice",
            ),
            (
                GOOD.replace("name = \"buy\"", "name = \"click\""),
                "task name `click`",
            ),
            (
                GOOD.replace(
                    "positive = [\"yes\"]",
                    "positive = [\"yes\"]\nthreshold = 1.0",
                ),
                "not both",
            ),
            (
                GOOD.replace(
                    "column = \"seconds\"",
                    "column = \"seconds\"\nthreshold = 1.0",
                ),
                "binary",
            ),
            (
                GOOD.replace("positive = [\"yes\"]", "positive = []"),
                "empty",
            ),
            (
                format!("columns = [\"user\", \"item\"]\n{GOOD}"),
                "not listed in `columns`",
            ),
            ("[[sparse]]\nname = \"a\"\n".to_string(), "no [[tasks]]"),
        ];
        for (text, needle) in cases {
            let e = Schema::from_toml_str(&text, "s.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "expected {needle:?} in {e}");
        }
    }

    #[test]
    fn missing_schema_file_is_an_io_error_naming_it() {
        let e = Schema::from_toml_file(Path::new("/nonexistent/schema.toml")).unwrap_err();
        assert!(matches!(e, DataError::Io { .. }));
        assert!(e.to_string().contains("/nonexistent/schema.toml"));
    }
}
