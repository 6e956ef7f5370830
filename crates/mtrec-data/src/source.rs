//! Streaming rows out of CSV and Parquet files.
//!
//! Files are never loaded whole: a [`SourceReader`] hands out one [`Row`] at a
//! time, borrowed from its internal buffer, so encoding a 100 MB CSV file holds
//! one record in memory besides the encoded output. Both formats expose the
//! same row view, so everything above this module is format-agnostic.
//!
//! CSV files may be gzip-compressed (recognised by their first bytes, so a
//! `.gz` name is not required) and may lack a header; values are trimmed,
//! because the Census files separate fields with `", "`.
//!
//! Line numbers in errors are those a text editor shows, whatever the line
//! ending (`\n`, `\r\n` or a lone `\r`, see [`lines`]); a record whose quoted
//! field spans several lines is reported at the line where it starts.
//!
//! Column names must be unique: with a name twice, "the column `price`" would
//! silently mean the first one, and a stale copy of a label column placed
//! first would train every model on the wrong target.
//!
//! A damaged Parquet file is a user's problem, not a bug: the `parquet` crate
//! asserts on some malformed metadata instead of returning an error, so every
//! call into it runs under [`parquet_guard`], which turns such a panic into a
//! [`DataError::Parquet`] naming the file (found by `fuzz/`'s `parquet_reader`).

mod lines;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Once;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use lines::LineCounting;

/// On-disk layout of a data file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Delimited text, plain or gzip-compressed.
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// Guesses the format from the file name: `.parquet` and `.pq` are Parquet,
    /// anything else (`.csv`, `.tsv`, `.txt`, `.data`, `.test`, `.gz`, ...) is
    /// delimited text, the layout of nearly every public recommendation log.
    pub fn from_path(path: &Path) -> Format {
        match extension(path).as_str() {
            "parquet" | "pq" => Format::Parquet,
            _ => Format::Csv,
        }
    }
}

/// The last extension of a file, lowercased, looking through a trailing `.gz`.
fn extension(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    match name.rsplit_once('.') {
        Some((_, ext)) => ext.to_string(),
        None => String::new(),
    }
}

/// Where and how to read one data file.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceSpec {
    pub path: PathBuf,
    /// `None` guesses from the file name (see [`Format::from_path`]).
    pub format: Option<Format>,
    /// CSV field separator (one byte).
    pub separator: u8,
    /// Whether the first CSV line names the columns.
    pub header: bool,
    /// Column names; they replace the header's names when the file has one.
    /// A header-less file without names gets `c0`, `c1`, ...
    pub columns: Option<Vec<String>>,
}

impl Default for SourceSpec {
    fn default() -> Self {
        SourceSpec {
            path: PathBuf::new(),
            format: None,
            separator: b',',
            header: true,
            columns: None,
        }
    }
}

impl SourceSpec {
    /// A spec with the defaults: a header, `,` as separator (tab for `.tsv`),
    /// format guessed from the name.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let separator = if extension(&path) == "tsv" {
            b'\t'
        } else {
            b','
        };
        SourceSpec {
            path,
            separator,
            ..SourceSpec::default()
        }
    }

    pub fn with_format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }

    pub fn with_separator(mut self, separator: u8) -> Self {
        self.separator = separator;
        self
    }

    pub fn with_header(mut self, header: bool) -> Self {
        self.header = header;
        self
    }

    pub fn with_columns(mut self, columns: Vec<String>) -> Self {
        self.columns = Some(columns);
        self
    }

    /// The format to read with: the given one, else the guess from the name.
    pub fn resolved_format(&self) -> Format {
        self.format.unwrap_or_else(|| Format::from_path(&self.path))
    }
}

/// One cell of a row, as the file stores it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell<'a> {
    /// Text (CSV, or a Parquet string column), already trimmed.
    Text(&'a str),
    /// A Parquet numeric or boolean column.
    Number(f64),
    /// A Parquet null.
    Null,
}

impl Cell<'_> {
    /// Empty text, a null, or one of the usual spellings of "not available"
    /// (`?`, `NA`, `NaN`, `null`, any case).
    pub fn is_missing(&self) -> bool {
        match *self {
            Cell::Text(s) => is_missing_text(s),
            Cell::Number(v) => v.is_nan(),
            Cell::Null => true,
        }
    }

    /// The cell as text; numbers are written without a trailing `.0` when
    /// integral, so a Parquet id column `7` and a CSV id column `7` give the same key.
    pub fn to_text<'b>(&'b self, buf: &'b mut String) -> &'b str {
        match *self {
            Cell::Text(s) => s,
            Cell::Number(v) => {
                buf.clear();
                if v.fract() == 0.0 && v.abs() < 1e15 {
                    let _ = write!(buf, "{}", v as i64);
                } else {
                    let _ = write!(buf, "{v}");
                }
                buf
            }
            Cell::Null => "",
        }
    }
}

pub(crate) fn is_missing_text(s: &str) -> bool {
    s.is_empty()
        || s == "?"
        || s.eq_ignore_ascii_case("na")
        || s.eq_ignore_ascii_case("nan")
        || s.eq_ignore_ascii_case("null")
}

/// A row borrowed from a [`SourceReader`]; valid until the next call to `next_row`.
pub struct Row<'a> {
    line: u64,
    data: RowData<'a>,
}

enum RowData<'a> {
    Csv(&'a csv::StringRecord),
    Parquet(&'a [ParquetColumn], &'a [Kind], usize),
}

impl<'a> Row<'a> {
    /// 1-based line in the file as an editor shows it (header counted; for a
    /// record spanning lines, the line it starts on), or 1-based row for Parquet.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The cell of column `i` (an index from [`SourceReader::column_index`]).
    pub fn get(&self, i: usize) -> Cell<'a> {
        match self.data {
            RowData::Csv(rec) => rec.get(i).map_or(Cell::Null, |s| Cell::Text(s.trim())),
            RowData::Parquet(cols, kinds, r) => match (cols.get(i), kinds.get(i)) {
                (Some(col), Some(kind)) => col.cell(kind, r),
                _ => Cell::Null,
            },
        }
    }
}

/// How a Parquet column's values are turned into cells.
#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Utf8,
    LargeUtf8,
    Utf8View,
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
    Dict(Box<Kind>),
    Unsupported(DataType),
}

impl Kind {
    fn of(dt: &DataType) -> Kind {
        match dt {
            DataType::Utf8 => Kind::Utf8,
            DataType::LargeUtf8 => Kind::LargeUtf8,
            DataType::Utf8View => Kind::Utf8View,
            DataType::Boolean => Kind::Bool,
            DataType::Int8 => Kind::I8,
            DataType::Int16 => Kind::I16,
            DataType::Int32 => Kind::I32,
            DataType::Int64 => Kind::I64,
            DataType::UInt8 => Kind::U8,
            DataType::UInt16 => Kind::U16,
            DataType::UInt32 => Kind::U32,
            DataType::UInt64 => Kind::U64,
            DataType::Float32 => Kind::F32,
            DataType::Float64 => Kind::F64,
            DataType::Dictionary(_, values) => match Kind::of(values) {
                Kind::Unsupported(_) | Kind::Dict(_) => Kind::Unsupported(dt.clone()),
                k => Kind::Dict(Box::new(k)),
            },
            other => Kind::Unsupported(other.clone()),
        }
    }
}

/// One column of the current record batch.
struct ParquetColumn {
    array: ArrayRef,
    /// For dictionary columns: the key of every row, resolved once per batch.
    keys: Vec<usize>,
}

impl ParquetColumn {
    fn cell(&self, kind: &Kind, r: usize) -> Cell<'_> {
        if self.array.is_null(r) {
            return Cell::Null;
        }
        match kind {
            Kind::Dict(inner) => match (self.array.as_any_dictionary_opt(), self.keys.get(r)) {
                (Some(dict), Some(&k)) => value_cell(dict.values().as_ref(), inner, k),
                _ => Cell::Null,
            },
            k => value_cell(self.array.as_ref(), k, r),
        }
    }
}

fn value_cell<'a>(a: &'a dyn Array, kind: &Kind, r: usize) -> Cell<'a> {
    if a.is_null(r) {
        return Cell::Null;
    }
    macro_rules! num {
        ($t:ty) => {
            a.as_primitive_opt::<$t>()
                .map_or(Cell::Null, |p| Cell::Number(p.value(r) as f64))
        };
    }
    match kind {
        Kind::Utf8 => a
            .as_string_opt::<i32>()
            .map_or(Cell::Null, |s| Cell::Text(s.value(r).trim())),
        Kind::LargeUtf8 => a
            .as_string_opt::<i64>()
            .map_or(Cell::Null, |s| Cell::Text(s.value(r).trim())),
        Kind::Utf8View => a
            .as_string_view_opt()
            .map_or(Cell::Null, |s| Cell::Text(s.value(r).trim())),
        Kind::Bool => a.as_boolean_opt().map_or(Cell::Null, |b| {
            Cell::Number(if b.value(r) { 1.0 } else { 0.0 })
        }),
        Kind::I8 => num!(Int8Type),
        Kind::I16 => num!(Int16Type),
        Kind::I32 => num!(Int32Type),
        Kind::I64 => num!(Int64Type),
        Kind::U8 => num!(UInt8Type),
        Kind::U16 => num!(UInt16Type),
        Kind::U32 => num!(UInt32Type),
        Kind::U64 => num!(UInt64Type),
        Kind::F32 => num!(Float32Type),
        Kind::F64 => num!(Float64Type),
        Kind::Dict(_) | Kind::Unsupported(_) => Cell::Null,
    }
}

/// Rows per Parquet record batch: enough to amortise decoding, small enough
/// to keep memory flat on wide files.
const PARQUET_BATCH: usize = 8192;

/// A streaming reader over one file.
pub struct SourceReader {
    path: PathBuf,
    columns: Vec<String>,
    /// A cell of the CSV header line that reads as a number, hinting that the
    /// "header" is really the first data row (`None` unless `header_read`).
    numeric_header_cell: Option<String>,
    header_read: bool,
    inner: Inner,
}

enum Inner {
    Csv {
        reader: Box<csv::Reader<LineCounting<Box<dyn Read>>>>,
        record: csv::StringRecord,
    },
    Parquet {
        batches: ParquetRecordBatchReader,
        kinds: Vec<Kind>,
        columns: Vec<ParquetColumn>,
        batch_rows: usize,
        pos: usize,
        rows_before: u64,
    },
}

impl SourceReader {
    /// Opens the file and reads its column names.
    pub fn open(spec: &SourceSpec) -> Result<SourceReader> {
        match spec.resolved_format() {
            Format::Csv => open_csv(spec),
            Format::Parquet => open_parquet(spec),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Column names, in file order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Whether the column names come from the file's first line (a CSV file
    /// read with a header and no names given in its place).
    pub(crate) fn header_was_read(&self) -> bool {
        self.header_read
    }

    /// A cell of the header line that reads as a number, if any: column names
    /// rarely do, data rows often do.
    pub(crate) fn numeric_header_cell(&self) -> Option<&str> {
        self.numeric_header_cell.as_deref()
    }

    /// The index of a named column, or an error naming the column and the file.
    /// For Parquet it also refuses column types we cannot turn into text or
    /// numbers (dates, lists, ...), so that they fail here and not as silent nulls.
    pub fn column_index(&self, name: &str) -> Result<usize> {
        let i = self.columns.iter().position(|c| c == name).ok_or_else(|| {
            DataError::MissingColumn {
                path: self.path.clone(),
                column: name.to_string(),
                available: self.columns.clone(),
                hint: String::new(),
            }
        })?;
        if let Inner::Parquet { kinds, .. } = &self.inner
            && let Some(Kind::Unsupported(dt)) = kinds.get(i)
        {
            return Err(DataError::Parquet {
                path: self.path.clone(),
                message: format!("column `{name}` has type {dt}, which mtrec cannot read"),
            });
        }
        Ok(i)
    }

    /// The next row, or `None` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<Row<'_>>> {
        let n_cols = self.columns.len();
        match &mut self.inner {
            Inner::Csv { reader, record } => {
                let more = match reader.read_record(record) {
                    Ok(more) => more,
                    Err(e) => return Err(csv_error(&self.path, e, reader.get_mut())),
                };
                if !more {
                    return Ok(None);
                }
                let line = record_line(record.position(), reader.get_mut());
                if record.len() != n_cols {
                    return Err(DataError::Csv {
                        path: self.path.clone(),
                        line,
                        message: format!("expected {n_cols} fields, found {}", record.len()),
                    });
                }
                Ok(Some(Row {
                    line,
                    data: RowData::Csv(record),
                }))
            }
            Inner::Parquet {
                batches,
                kinds,
                columns,
                batch_rows,
                pos,
                rows_before,
            } => {
                while *pos >= *batch_rows {
                    let Some(batch) = parquet_guard(&self.path, || batches.next())? else {
                        return Ok(None);
                    };
                    let batch = batch.map_err(|e| DataError::Parquet {
                        path: self.path.clone(),
                        message: e.to_string(),
                    })?;
                    *rows_before += *batch_rows as u64;
                    *batch_rows = batch.num_rows();
                    *pos = 0;
                    *columns = batch_columns(&batch, kinds);
                }
                let r = *pos;
                *pos += 1;
                Ok(Some(Row {
                    line: *rows_before + r as u64 + 1,
                    data: RowData::Parquet(columns, kinds, r),
                }))
            }
        }
    }
}

fn batch_columns(batch: &RecordBatch, kinds: &[Kind]) -> Vec<ParquetColumn> {
    batch
        .columns()
        .iter()
        .zip(kinds)
        .map(|(array, kind)| {
            let keys = match (kind, array.as_any_dictionary_opt()) {
                (Kind::Dict(_), Some(dict)) => dict.normalized_keys(),
                _ => Vec::new(),
            };
            ParquetColumn {
                array: array.clone(),
                keys,
            }
        })
        .collect()
}

/// The editor line of a record, from the byte offset the csv crate gives (its
/// own line count is wrong for CRLF files, see [`lines`]).
fn record_line<R: Read>(pos: Option<&csv::Position>, lines: &mut LineCounting<R>) -> u64 {
    pos.map_or(0, |p| lines.line_at(p.byte()))
}

fn csv_error<R: Read>(path: &Path, e: csv::Error, lines: &mut LineCounting<R>) -> DataError {
    let line = record_line(e.position(), lines);
    let message = e.to_string();
    match e.into_kind() {
        csv::ErrorKind::Io(source) => DataError::io(path, source),
        csv::ErrorKind::Utf8 { pos, err } => DataError::Csv {
            path: path.to_path_buf(),
            line: pos.map_or(line, |p| lines.line_at(p.byte())),
            message: format!("invalid UTF-8 in field {}", err.field() + 1),
        },
        _ => DataError::Csv {
            path: path.to_path_buf(),
            line,
            message,
        },
    }
}

/// Refuses a list of column names with a name twice, naming both 1-based positions.
pub(crate) fn check_unique(path: &Path, names: &[String], place: &str) -> Result<()> {
    let mut first_at: HashMap<&str, usize> = HashMap::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        if let Some(&first) = first_at.get(name.as_str()) {
            return Err(DataError::DuplicateColumn {
                path: path.to_path_buf(),
                column: name.clone(),
                place: place.to_string(),
                first: first + 1,
                second: i + 1,
                hint: String::new(),
            });
        }
        first_at.insert(name, i);
    }
    Ok(())
}

/// Opens a file for reading, decompressing it when it starts with the gzip magic bytes.
pub(crate) fn open_maybe_gz(path: &Path) -> Result<Box<dyn Read>> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut buf = BufReader::with_capacity(1 << 16, file);
    let head = buf.fill_buf().map_err(|e| DataError::io(path, e))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(buf)))
    } else {
        Ok(Box::new(buf))
    }
}

fn open_csv(spec: &SourceSpec) -> Result<SourceReader> {
    let path = spec.path.clone();
    let input = LineCounting::new(open_maybe_gz(&path)?);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(spec.separator)
        .has_headers(spec.header)
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(input);
    // Without a header this peeks at the first record, which is still returned as a row.
    let first = match reader.headers() {
        Ok(first) => first.clone(),
        Err(e) => return Err(csv_error(&path, e, reader.get_mut())),
    };
    let header_line = record_line(first.position(), reader.get_mut()).max(1);
    let columns: Vec<String> = match (&spec.columns, spec.header) {
        (Some(names), true) if !first.is_empty() && names.len() != first.len() => {
            return Err(DataError::Csv {
                path,
                line: header_line,
                message: format!(
                    "the header has {} fields but {} column names were given",
                    first.len(),
                    names.len()
                ),
            });
        }
        (Some(names), _) => names.clone(),
        (None, true) => first.iter().map(|s| s.trim().to_string()).collect(),
        (None, false) => (0..first.len()).map(|i| format!("c{i}")).collect(),
    };
    let header_read = spec.header && spec.columns.is_none();
    let place = if header_read {
        "the header"
    } else {
        "the given column names"
    };
    let numeric_header_cell = header_read
        .then(|| {
            columns
                .iter()
                .find(|c| c.parse::<f64>().is_ok_and(f64::is_finite))
                .cloned()
        })
        .flatten();
    check_unique(&path, &columns, place).map_err(|e| match (e, &numeric_header_cell) {
        // A data row read as the header repeats its values far more often than real names do.
        (
            DataError::DuplicateColumn {
                path,
                column,
                place,
                first,
                second,
                ..
            },
            Some(cell),
        ) => DataError::DuplicateColumn {
            hint: format!(
                "; the file may have no header row (its first line holds the number {cell:?}, \
                     as data rows do). If so, set `header = false` in the [data] section of the \
                     experiment config and name the columns with `columns = [...]` in the schema \
                     (`mtrec data inspect --no-header` for a guess)"
            ),
            path,
            column,
            place,
            first,
            second,
        },
        (e, _) => e,
    })?;
    Ok(SourceReader {
        path,
        columns,
        numeric_header_cell,
        header_read,
        inner: Inner::Csv {
            reader: Box::new(reader),
            record: csv::StringRecord::new(),
        },
    })
}

fn open_parquet(spec: &SourceSpec) -> Result<SourceReader> {
    let path = spec.path.clone();
    let file = File::open(&path).map_err(|e| DataError::io(&path, e))?;
    let perr = |e: parquet::errors::ParquetError| DataError::Parquet {
        path: path.clone(),
        message: e.to_string(),
    };
    let builder =
        parquet_guard(&path, || ParquetRecordBatchReaderBuilder::try_new(file))?.map_err(perr)?;
    let schema = builder.schema().clone();
    let batches =
        parquet_guard(&path, || builder.with_batch_size(PARQUET_BATCH).build())?.map_err(perr)?;
    let file_names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let columns = match &spec.columns {
        Some(names) if names.len() != file_names.len() => {
            return Err(DataError::Parquet {
                path,
                message: format!(
                    "the file has {} columns but {} column names were given",
                    file_names.len(),
                    names.len()
                ),
            });
        }
        Some(names) => {
            check_unique(&path, names, "the given column names")?;
            names.clone()
        }
        None => {
            check_unique(&path, &file_names, "the file's columns")?;
            file_names
        }
    };
    let kinds = schema
        .fields()
        .iter()
        .map(|f| Kind::of(f.data_type()))
        .collect();
    Ok(SourceReader {
        path,
        columns,
        numeric_header_cell: None,
        header_read: false,
        inner: Inner::Parquet {
            batches,
            kinds,
            columns: Vec::new(),
            batch_rows: 0,
            pos: 0,
            rows_before: 0,
        },
    })
}

thread_local! {
    /// Whether this thread is inside [`parquet_guard`], whose panics are reported as errors.
    static IN_PARQUET_GUARD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs a call into the `parquet` crate, turning a panic inside it (an assertion on damaged
/// metadata, such as a negative column offset) into an error naming the file.
///
/// The panic hook is wrapped once so that it stays silent for such a panic: the user gets
/// the error's one line instead of a panic message above it. Panics elsewhere, on any
/// thread, still reach the previous hook unchanged.
fn parquet_guard<T>(path: &Path, f: impl FnOnce() -> T) -> Result<T> {
    static QUIET_HOOK: Once = Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_PARQUET_GUARD.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    let outer = IN_PARQUET_GUARD.with(|g| g.replace(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    IN_PARQUET_GUARD.with(|g| g.set(outer));
    result.map_err(|payload| {
        let cause = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        DataError::Parquet {
            path: path.to_path_buf(),
            message: format!(
                "the file is damaged: the Parquet reader gave up ({})",
                cause.escape_debug()
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        let mut f = File::create(&p).expect("create");
        f.write_all(text.as_bytes()).expect("write");
        p
    }

    /// Column names and `(line, values)` of every row.
    type Rows = (Vec<String>, Vec<(u64, Vec<String>)>);

    fn collect(spec: &SourceSpec) -> Result<Rows> {
        let mut r = SourceReader::open(spec)?;
        let cols = r.columns().to_vec();
        let mut rows = Vec::new();
        let mut buf = String::new();
        while let Some(row) = r.next_row()? {
            let vals = (0..cols.len())
                .map(|i| row.get(i).to_text(&mut buf).to_string())
                .collect();
            rows.push((row.line(), vals));
        }
        Ok((cols, rows))
    }

    #[test]
    fn format_is_guessed_from_the_name() {
        for (name, f) in [
            ("a.csv", Format::Csv),
            ("a.csv.gz", Format::Csv),
            ("census-income.test", Format::Csv),
            ("a.parquet", Format::Parquet),
            ("A.PQ", Format::Parquet),
        ] {
            assert_eq!(Format::from_path(Path::new(name)), f, "{name}");
        }
        assert_eq!(SourceSpec::new("x.tsv").separator, b'\t');
        assert_eq!(SourceSpec::new("x.tsv.gz").separator, b'\t');
        assert_eq!(SourceSpec::new("x.csv").separator, b',');
    }

    #[test]
    fn header_lines_are_counted_and_values_trimmed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(dir.path(), "a.csv", "a, b\n1, x \n2,y\n");
        let (cols, rows) = collect(&SourceSpec::new(&p)).expect("read");
        assert_eq!(cols, vec!["a", "b"]);
        assert_eq!(rows[0], (2, vec!["1".into(), "x".into()]));
        assert_eq!(rows[1], (3, vec!["2".into(), "y".into()]));
    }

    #[test]
    fn headerless_files_get_given_or_generated_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(dir.path(), "a.txt", "1;x\n2;y\n");
        let spec = SourceSpec::new(&p).with_header(false).with_separator(b';');
        let (cols, rows) = collect(&spec).expect("read");
        assert_eq!(cols, vec!["c0", "c1"]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, 1);
        let (cols, _) = collect(&spec.with_columns(vec!["n".into(), "s".into()])).expect("read");
        assert_eq!(cols, vec!["n", "s"]);
    }

    #[test]
    fn wrong_field_count_names_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(dir.path(), "bad.csv", "a,b\n1,2\n3\n");
        let e = collect(&SourceSpec::new(&p)).unwrap_err();
        assert!(matches!(e, DataError::Csv { line: 3, .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("bad.csv:3: expected 2 fields, found 1"),
            "{msg}"
        );
    }

    #[test]
    fn missing_column_names_column_and_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(dir.path(), "a.csv", "a,b\n1,2\n");
        let r = SourceReader::open(&SourceSpec::new(&p)).expect("open");
        assert_eq!(r.column_index("b").expect("b exists"), 1);
        let msg = r.column_index("click").unwrap_err().to_string();
        assert!(msg.contains("a.csv") && msg.contains("`click`"), "{msg}");
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let e = SourceReader::open(&SourceSpec::new("/nonexistent/a.csv")).err();
        assert!(matches!(e, Some(DataError::Io { .. })));
    }

    #[test]
    fn a_panic_inside_the_parquet_guard_is_an_error_naming_the_file() {
        let path = Path::new("damaged.parquet");
        let e = parquet_guard(path, || -> u8 { panic!("offset\nnegative") }).unwrap_err();
        assert_eq!(
            e.to_string(),
            r"damaged.parquet: the file is damaged: the Parquet reader gave up (offset\nnegative)"
        );
        assert_eq!(parquet_guard(path, || 7).unwrap(), 7);
        // The guard does not stay on: a later panic elsewhere reaches the previous hook.
        assert!(!IN_PARQUET_GUARD.with(std::cell::Cell::get));
    }

    #[test]
    fn numbers_become_keys_without_trailing_zero() {
        let mut buf = String::new();
        assert_eq!(Cell::Number(7.0).to_text(&mut buf), "7");
        assert_eq!(Cell::Number(-2.5).to_text(&mut buf), "-2.5");
        assert!(Cell::Text("NaN").is_missing() && Cell::Text("").is_missing());
        assert!(!Cell::Text("0").is_missing());
    }
}
