//! The one error type of the crate.
//!
//! Every variant that comes from reading a file carries the path, and where it
//! is known the 1-based line (as a text editor shows it, the header line
//! counted) and the field, so that a user can jump straight to the bad value.
//! For Parquet files the "line" is the 1-based row number.

use std::path::PathBuf;

/// Errors of `mtrec-data`.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Opening, reading or writing a file failed. The OS error is part of the message and
    /// deliberately not a `source()`: error reporters that print the cause chain (anyhow's
    /// `{:#}`) would otherwise print it twice.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },

    /// A CSV row could not be read (wrong field count, invalid UTF-8, ...).
    #[error("{}:{line}: {message}", path.display())]
    Csv {
        path: PathBuf,
        line: u64,
        message: String,
    },

    /// A column named by the schema is not in the file. `hint` (empty, or a
    /// sentence starting with "; ") says why when the cause is likely a header
    /// setting, e.g. the first data row read as the header.
    #[error("{}: no column named `{}` (the file has: {}){hint}", path.display(), one_line(column), list_columns(available))]
    MissingColumn {
        path: PathBuf,
        column: String,
        available: Vec<String>,
        hint: String,
    },

    /// A column name appears twice (in a CSV header, a Parquet file, or the
    /// schema's `columns`); `first` and `second` are 1-based column numbers.
    #[error(
        "{}: column {column:?} appears twice in {place} (columns {first} and {second}){hint}",
        path.display()
    )]
    DuplicateColumn {
        path: PathBuf,
        column: String,
        /// "the header", "the file's columns", "`columns`", ...
        place: String,
        first: usize,
        second: usize,
        /// Empty, or the likely cause (a header-less file read with a header).
        hint: String,
    },

    /// A dense field or a numeric label does not parse as a number.
    #[error("{}:{line}: field `{field}`: cannot parse {value:?} as a number", path.display())]
    BadNumber {
        path: PathBuf,
        line: u64,
        field: String,
        value: String,
    },

    /// A numeric cell holds an infinite number, or one beyond the 32-bit range
    /// that inputs and labels are stored in.
    #[error("{}:{line}: field `{field}`: {value:?} is not a finite 32-bit number{}", path.display(), range_note(value))]
    NonFinite {
        path: PathBuf,
        line: u64,
        field: String,
        value: String,
    },

    /// A dense value standardised with the training statistics is not a finite
    /// 32-bit number: it lies too far outside the training range. `what`
    /// names the split or the file and line.
    #[error(
        "{what}: field `{field}`: the value {value:e} standardises to {encoded} \
         (training mean {mean:e}, std {std:e}); it is too far from the training values \
         for 32-bit floats"
    )]
    NonFiniteEncoded {
        what: String,
        field: String,
        value: f32,
        encoded: f32,
        mean: f32,
        std: f32,
    },

    /// A label is empty or NaN: we refuse to guess a target.
    #[error("{}:{line}: field `{field}`: label is missing or NaN (if some rows are unlabelled for this task, set `missing = \"mask\"` on it in the schema)", path.display())]
    NanLabel {
        path: PathBuf,
        line: u64,
        field: String,
    },

    /// A column a derived label is computed from has a missing cell.
    #[error(
        "{}:{line}: column `{column}` is missing or NaN, and task `{task}` derives its label \
         from it",
        path.display()
    )]
    DeriveMissing {
        path: PathBuf,
        line: u64,
        column: String,
        task: String,
    },

    /// A label parses but is not valid for its task (e.g. a binary label of 3).
    #[error("{}:{line}: field `{field}`: {message}, got {value:?}", path.display())]
    BadLabel {
        path: PathBuf,
        line: u64,
        field: String,
        value: String,
        message: String,
    },

    /// An example weight (a task's `weight` column) is empty, not a number, negative or not
    /// finite: a weight is how many times a row counts.
    #[error(
        "{}:{line}: field `{field}`: the weight of task `{task}` must be a finite number >= 0, \
         got {value:?}",
        path.display()
    )]
    BadWeight {
        path: PathBuf,
        line: u64,
        field: String,
        task: String,
        value: String,
    },

    /// A schema file is malformed or inconsistent.
    #[error("{}: {message}", path.display())]
    Schema { path: PathBuf, message: String },

    /// Reading or writing a Parquet file failed.
    #[error("{}: {message}", path.display())]
    Parquet { path: PathBuf, message: String },

    /// A saved preprocessor (JSON) could not be read or written.
    #[error("{}: {message}", path.display())]
    Json { path: PathBuf, message: String },

    /// A data configuration value is invalid (bad split fractions, unknown group, ...).
    #[error("invalid data config: {message}")]
    Config { message: String },

    /// A file or split that must hold rows holds none.
    #[error("{what}: no rows")]
    Empty { what: String },

    /// The tasks break what the model or the training scheme assumes about them: a kind or a
    /// count (no file to name), or rows (the file and the first offending line).
    #[error("{}{message}", place(path.as_deref(), *line))]
    TaskAssumption {
        path: Option<PathBuf>,
        line: Option<u64>,
        message: String,
    },
}

/// `path:line: `, `path: ` or nothing, as much of a place as the error has.
fn place(path: Option<&std::path::Path>, line: Option<u64>) -> String {
    match (path, line) {
        (Some(p), Some(l)) => format!("{}:{l}: ", p.display()),
        (Some(p), None) => format!("{}: ", p.display()),
        (None, _) => String::new(),
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, DataError>;

/// "1e39" is a number, just not one an f32 holds: say what the range is.
fn range_note(value: &str) -> &'static str {
    let v = value.trim_start_matches(['+', '-']).to_ascii_lowercase();
    if v.starts_with("inf") {
        ""
    } else {
        " (32-bit floats reach ±3.4e38)"
    }
}

/// `name` with control characters escaped (`\n`, `\u{2}`): a quoted CSV header may hold a
/// line break, which would split the one-line error listing it.
pub(crate) fn one_line(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Long headers would drown the message; the first few names are enough to spot a typo.
fn list_columns(cols: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut s = cols
        .iter()
        .take(SHOWN)
        .map(|c| format!("`{}`", one_line(c)))
        .collect::<Vec<_>>()
        .join(", ");
    if cols.len() > SHOWN {
        s.push_str(&format!(", ... ({} in all)", cols.len()));
    }
    if cols.is_empty() {
        s.push_str("no columns");
    }
    s
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            error,
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        DataError::Config {
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_number_names_file_line_and_field() {
        let e = DataError::BadNumber {
            path: "data/x.csv".into(),
            line: 17,
            field: "age".into(),
            value: "abc".into(),
        };
        assert_eq!(
            e.to_string(),
            "data/x.csv:17: field `age`: cannot parse \"abc\" as a number"
        );
    }

    #[test]
    fn missing_column_lists_a_few_available_columns() {
        let e = DataError::MissingColumn {
            path: "a.csv".into(),
            column: "clik".into(),
            available: (0..20).map(|i| format!("c{i}")).collect(),
            hint: String::new(),
        };
        let s = e.to_string();
        assert!(s.starts_with("a.csv: no column named `clik`"), "{s}");
        assert!(
            s.contains("`c11`") && !s.contains("`c12`") && s.contains("20 in all"),
            "{s}"
        );
    }
}
