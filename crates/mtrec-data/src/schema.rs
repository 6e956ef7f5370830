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
//! [[dense]]
//! name = "price"
//! fill = 0.0             # raw value used where the cell is empty
//! [[tasks]]
//! name = "click"
//! kind = "binary"        # or "regression"
//! column = "click"       # defaults to the task name
//! # positive = ["yes"]   # label 1 if the value is in this set
//! # threshold = 30.0     # label 1 if the value is >= threshold
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
}

/// A task and the rule that turns its column into a label.
///
/// With `positive` the label is 1 when the trimmed value is in the set; with
/// `threshold` it is 1 when the number is `>= threshold`; with neither the
/// value is the label itself (0 or 1 for binary tasks). A missing label is
/// always an error: silently dropping or guessing targets skews every metric.
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

impl SparseField {
    /// A field read from the column of the same name, keeping every value.
    pub fn new(name: impl Into<String>) -> Self {
        SparseField {
            name: name.into(),
            column: None,
            min_count: 1,
        }
    }

    /// The source column this field reads.
    pub fn column(&self) -> &str {
        self.column.as_deref().unwrap_or(&self.name)
    }
}

impl DenseField {
    /// A field read from the column of the same name, missing values filled with 0.
    pub fn new(name: impl Into<String>) -> Self {
        DenseField {
            name: name.into(),
            column: None,
            fill: 0.0,
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
        }
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
        for f in &self.dense {
            if !f.fill.is_finite() {
                return fail(format!("field `{}`: fill must be a finite number", f.name));
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
            if let Some((field, _)) = inputs.clone().find(|(_, col)| *col == t.column) {
                return fail(format!(
                    "column `{}` is the label of task `{}` and also the input field `{field}`: \
                     the model would see its own target",
                    t.column, t.name
                ));
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
        }

        if let Some(cols) = &self.columns {
            crate::source::check_unique(Path::new(origin), cols, "`columns`")?;
            let seen: HashSet<&str> = cols.iter().map(String::as_str).collect();
            let used = inputs
                .map(|(_, c)| c)
                .chain(self.tasks.iter().map(|t| t.column.as_str()));
            for c in used {
                if !seen.contains(c) {
                    return fail(format!("column `{c}` is used but not listed in `columns`"));
                }
            }
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
