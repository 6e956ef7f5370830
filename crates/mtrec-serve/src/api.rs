//! The wire format: request bodies in, JSON answers and errors out.
//!
//! `POST /predict` takes `{"rows": [{"column": value, ...}, ...]}` and answers
//! `{"model": {...}, "tasks": [...], "predictions": [{"task": value, ...}, ...]}`, one object
//! per row in request order. Every error is a JSON object whose `error` is one readable line;
//! errors about rows also list each bad row's 0-based index, field and message, so a client
//! can fix a whole request at once.
//!
//! The request is parsed with a seeded deserializer rather than into a plain `Value`: when
//! the JSON itself is broken inside a row (`"age": NaN`, which JSON cannot express), the
//! error still names the row and the field being read, not only a byte position.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// Rows listed in an error answer; the count says how many there were in all.
pub const MAX_LISTED_ERRORS: usize = 20;

/// One JSON row of a request: column name to raw value.
pub type JsonRow = Map<String, Value>;

/// A bad row: its 0-based index in `rows`, the field (column) at fault, and why.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct RowError {
    pub row: usize,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
    pub message: String,
}

/// One line, as an error's `error` must be: the field is the client's key, which may hold a
/// line break (`{"a\nb": 1}`); the message may quote it.
impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = one_line(&self.message);
        match self.field.as_str() {
            "" => write!(f, "row {}: {message}", self.row),
            field => write!(
                f,
                "row {}: field `{}`: {message}",
                self.row,
                one_line(field)
            ),
        }
    }
}

/// `text` with control characters escaped (`\n`, `\u{1b}`): request keys are echoed in error
/// messages (and in the server's log), where a line break would split the one line.
fn one_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

impl From<mtrec_data::RecordError> for RowError {
    fn from(e: mtrec_data::RecordError) -> Self {
        RowError {
            row: e.row,
            field: e.column,
            message: e.message,
        }
    }
}

/// An answer other than 200: a status and a JSON body naming the problem.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Bad rows, all of them (only the first [`MAX_LISTED_ERRORS`] are sent).
    pub rows: Vec<RowError>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            rows: Vec::new(),
        }
    }

    /// 422: the JSON is fine but some rows' values are not; `error` is the first one.
    pub fn bad_rows(rows: Vec<RowError>) -> Self {
        let message = match rows.len() {
            0 => "bad rows".to_string(),
            1 => rows[0].to_string(),
            n => format!("{} (and {} more bad rows)", rows[0], n - 1),
        };
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message,
            rows,
        }
    }
}

/// The body of an error answer, as clients read it back.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<RowError>,
    /// Bad rows in all, when more than the listed ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad_rows: Option<usize>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let n = self.rows.len();
        let body = ErrorBody {
            error: self.message,
            bad_rows: (n > MAX_LISTED_ERRORS).then_some(n),
            rows: self.rows.into_iter().take(MAX_LISTED_ERRORS).collect(),
        };
        json_response(self.status, &body)
    }
}

/// `value` as a JSON answer with `status`.
pub fn json_response(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut r = Response::new(Body::from(bytes));
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        // Only a map with non-string keys fails to serialise; none is sent.
        Err(e) => {
            let mut r = Response::new(Body::from(format!("{{\"error\":\"{e}\"}}")));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
    }
}

/// Parses a `/predict` body into its rows, or a 400 naming where the JSON broke.
pub fn parse_rows(body: &[u8]) -> Result<Vec<JsonRow>, ApiError> {
    let at = Position::default();
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = RequestSeed(&at)
        .deserialize(&mut de)
        .and_then(|rows| de.end().map(|()| rows));
    parsed.map_err(|e| {
        // serde quotes an unknown key as it is: "unknown field `a\nb`".
        let mut message = one_line(&e.to_string()).into_owned();
        if e.is_syntax() && message.starts_with("expected value") {
            message.push_str(
                " (JSON has no NaN or Infinity: send null for a missing value, or the value \
                 as a string)",
            );
        }
        let rows = match at.row.get() {
            Some(row) => vec![RowError {
                row,
                field: at.field.borrow().clone().unwrap_or_default(),
                message: message.clone(),
            }],
            None => Vec::new(),
        };
        let message = match rows.first() {
            Some(r) => format!("invalid JSON: {r}"),
            None => format!("invalid JSON: {message}"),
        };
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message,
            rows,
        }
    })
}

/// Where the parser is: the row and the field whose value it reads.
#[derive(Default)]
struct Position {
    row: Cell<Option<usize>>,
    field: RefCell<Option<String>>,
}

const SHAPE: &str = "an object {\"rows\": [{\"column\": value, ...}, ...]}";

struct RequestSeed<'a>(&'a Position);

impl<'de> DeserializeSeed<'de> for RequestSeed<'_> {
    type Value = Vec<JsonRow>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RequestSeed<'_> {
    type Value = Vec<JsonRow>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(SHAPE)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut rows = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "rows" if rows.is_none() => rows = Some(map.next_value_seed(RowsSeed(self.0))?),
                "rows" => return Err(de::Error::duplicate_field("rows")),
                other => return Err(de::Error::unknown_field(other, &["rows"])),
            }
        }
        rows.ok_or_else(|| de::Error::missing_field("rows"))
    }
}

struct RowsSeed<'a>(&'a Position);

impl<'de> DeserializeSeed<'de> for RowsSeed<'_> {
    type Value = Vec<JsonRow>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_> {
    type Value = Vec<JsonRow>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("`rows` as an array of objects")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut rows = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        loop {
            self.0.row.set(Some(rows.len()));
            match seq.next_element_seed(RowSeed(self.0))? {
                Some(row) => rows.push(row),
                None => break,
            }
        }
        self.0.row.set(None);
        Ok(rows)
    }
}

struct RowSeed<'a>(&'a Position);

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = JsonRow;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = JsonRow;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a row: an object of column: value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut row = JsonRow::new();
        *self.0.field.borrow_mut() = None;
        while let Some(key) = map.next_key::<String>()? {
            *self.0.field.borrow_mut() = Some(key.clone());
            let value: Value = map.next_value()?;
            if row.contains_key(&key) {
                return Err(de::Error::custom("the field is given twice"));
            }
            row.insert(key, value);
        }
        *self.0.field.borrow_mut() = None;
        Ok(row)
    }
}

/// The answer to `/predict`.
#[derive(Serialize)]
pub struct PredictResponse<'a> {
    pub model: ModelStamp<'a>,
    pub tasks: &'a [String],
    pub predictions: Predictions<'a>,
}

/// Which model answered: a reload changes `generation`.
#[derive(Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct ModelStamp<'a> {
    pub name: std::borrow::Cow<'a, str>,
    pub generation: u64,
}

/// Per-task columns written as one `{task: value}` object per row, without building maps.
pub struct Predictions<'a> {
    pub tasks: &'a [String],
    /// `[task][row]`.
    pub values: &'a [Vec<f32>],
}

impl Serialize for Predictions<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.values.first().map_or(0, Vec::len);
        let mut seq = s.serialize_seq(Some(n))?;
        for r in 0..n {
            seq.serialize_element(&RowPrediction { of: self, row: r })?;
        }
        seq.end()
    }
}

struct RowPrediction<'a> {
    of: &'a Predictions<'a>,
    row: usize,
}

impl Serialize for RowPrediction<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.of.tasks.len()))?;
        for (task, values) in self.of.tasks.iter().zip(self.of.values) {
            map.serialize_entry(task, &values[self.row])?;
        }
        map.end()
    }
}

/// `/predict`'s answer as a client reads it back.
#[derive(Debug, serde::Deserialize)]
pub struct PredictAnswer {
    pub model: ModelStamp<'static>,
    pub tasks: Vec<String>,
    pub predictions: Vec<std::collections::BTreeMap<String, f32>>,
}

impl PredictAnswer {
    /// `[task][row]`, tasks in the answer's order.
    pub fn columns(&self) -> Vec<Vec<f32>> {
        self.tasks
            .iter()
            .map(|t| {
                self.predictions
                    .iter()
                    .map(|row| row.get(t).copied().unwrap_or(f32::NAN))
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_parse_and_broken_json_inside_a_row_names_the_row_and_field() {
        let rows = parse_rows(br#"{"rows": [{"a": 1, "b": "x"}, {"a": null}]}"#).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1]["a"], Value::Null);

        let e = parse_rows(br#"{"rows": [{"a": 1}, {"b": "x", "age": NaN}]}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!((e.rows[0].row, e.rows[0].field.as_str()), (1, "age"));
        assert!(
            e.message
                .starts_with("invalid JSON: row 1: field `age`: expected value")
        );
        assert!(e.message.contains("JSON has no NaN"), "{}", e.message);

        let e = parse_rows(br#"{"rows": [{"a": 1}, 7]}"#).unwrap_err();
        assert_eq!((e.rows[0].row, e.rows[0].field.as_str()), (1, ""));
        assert!(e.message.contains("expected a row"), "{}", e.message);

        let e = parse_rows(br#"{"rows": [{"a": 1, "a": 2}]}"#).unwrap_err();
        assert!(
            e.message.contains("field `a`: the field is given twice"),
            "{}",
            e.message
        );

        for (body, needle) in [
            (&br#"[{"a": 1}]"#[..], "expected an object {\"rows\""),
            (br#"{"row": []}"#, "unknown field `row`"),
            (br#"{}"#, "missing field `rows`"),
            (br#"{"rows": []} x"#, "trailing characters"),
            (b"", "EOF"),
        ] {
            let e = parse_rows(body).unwrap_err();
            assert!(
                e.rows.is_empty() && e.message.contains(needle),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn predictions_are_one_object_per_row() {
        let tasks = vec!["click".to_string(), "watch".to_string()];
        let values = vec![vec![0.25, 0.5], vec![3.0, -1.5]];
        let json = serde_json::to_string(&Predictions {
            tasks: &tasks,
            values: &values,
        })
        .unwrap();
        assert_eq!(
            json,
            r#"[{"click":0.25,"watch":3.0},{"click":0.5,"watch":-1.5}]"#
        );
    }

    #[test]
    fn error_answers_list_at_most_the_first_rows_and_count_all() {
        let rows: Vec<RowError> = (0..25)
            .map(|row| RowError {
                row,
                field: "age".into(),
                message: "bad".into(),
            })
            .collect();
        let e = ApiError::bad_rows(rows);
        assert_eq!(e.message, "row 0: field `age`: bad (and 24 more bad rows)");
        let body = ErrorBody {
            error: e.message.clone(),
            bad_rows: Some(25),
            rows: e.rows[..MAX_LISTED_ERRORS].to_vec(),
        };
        let text = serde_json::to_string(&body).unwrap();
        assert!(text.contains("\"bad_rows\":25"), "{text}");
    }
}
