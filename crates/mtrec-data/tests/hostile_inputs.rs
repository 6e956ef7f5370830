//! Hostile data files and schemas (issue 15): whatever the bytes, reading never panics,
//! allocates what a value claims, or answers with more than one line; a refusal names the
//! file. The fuzz targets `csv_reader`, `parquet_reader` and `schema` search the same
//! surfaces for longer (see fuzz/README.md); what they found is pinned at the bottom.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, DictionaryArray, Float64Array, Int64Array, RecordBatch, StringArray};
use mtrec_data::{
    DataConfig, DataError, FilesConfig, Format, Schema, SourceReader, SourceSpec, load,
};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use proptest::prelude::*;

#[path = "support/largest_alloc.rs"]
mod largest_alloc;

/// Far above what these 8-row files need, far below what a believed hostile size asks for.
fn assert_no_huge_allocation() {
    let largest = largest_alloc::largest();
    assert!(
        largest < 64 << 20,
        "an allocation of {largest} bytes at once"
    );
}

/// One field of each kind the loader handles and a task for each label rule (the schema of
/// fuzz/fixtures/rich.schema.toml, shortened).
const SCHEMA: &str = r#"
[[sparse]]
name = "user"
[[sparse]]
name = "tags"
separator = "|"
max_values = 3
[[dense]]
name = "price"
[[dense]]
name = "age"
buckets = 2
[[tasks]]
name = "click"
kind = "binary"
[[tasks]]
name = "buy"
kind = "binary"
missing = "mask"
given = "click"
[[tasks]]
name = "finish"
kind = "binary"
derive = { left = "play", op = ">=", right = 10 }
"#;

const CSV: &str = "user,tags,price,age,click,buy,play
u1,a|b,3.5,20,1,0,10
u2,b,,35,0,,5
u3,a|c|d|e,7,51,1,1,30
u1,,2.25,17,0,0,0
u4,c,NA,64,1,0,12
u2,a,1e3,29,0,0,1
u5,b|b,0.5,41,1,1,9
u3,d,4,33,1,0,7
";

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Reads every row and every cell of `spec`, as the encoders do; the rows read.
fn read_all(spec: &SourceSpec) -> mtrec_data::Result<usize> {
    let mut reader = SourceReader::open(spec)?;
    let n = reader.columns().len();
    let mut buf = String::new();
    let mut rows = 0;
    while let Some(row) = reader.next_row()? {
        for i in 0..n {
            let _ = row.get(i).to_text(&mut buf).len();
        }
        rows += 1;
    }
    Ok(rows)
}

/// Loads `data` with [`SCHEMA`] as `[data] kind = "files"` does.
fn load_rich(dir: &Path, data: &Path, format: Format) -> mtrec_data::Result<mtrec_data::Dataset> {
    let schema = write(dir, "schema.toml", SCHEMA.as_bytes());
    let mut files = FilesConfig::new(schema, data);
    files.format = Some(format);
    load(&DataConfig::Files(files), dir)
}

/// The message of `e`, after checking it is one line naming `path`.
fn refusal(e: &DataError, path: &Path) -> String {
    let message = e.to_string();
    assert!(!message.contains('\n'), "several lines: {message}");
    assert!(
        message.contains(&*path.to_string_lossy()),
        "does not name {}: {message}",
        path.display()
    );
    message
}

/// [`CSV`]'s rows as Parquet, with a dictionary, a nullable float and an integer column, in
/// row groups of 3 so that readers cross batch boundaries.
fn parquet_bytes() -> Vec<u8> {
    let user: DictionaryArray<Int32Type> = ["u1", "u2", "u3", "u1", "u4", "u2", "u5", "u3"]
        .into_iter()
        .collect();
    let tags = StringArray::from(vec![
        Some("a|b"),
        Some("b"),
        Some("a|c|d|e"),
        None,
        Some("c"),
        Some("a"),
        Some("b|b"),
        Some("d"),
    ]);
    let price = Float64Array::from(vec![
        Some(3.5),
        None,
        Some(7.0),
        Some(2.25),
        None,
        Some(1e3),
        Some(0.5),
        Some(4.0),
    ]);
    let ints = |v: [i64; 8]| Arc::new(Int64Array::from(v.to_vec())) as ArrayRef;
    let buy = Int64Array::from(vec![
        Some(0),
        None,
        Some(1),
        Some(0),
        Some(0),
        Some(0),
        Some(1),
        Some(0),
    ]);
    let batch = RecordBatch::try_from_iter([
        ("user", Arc::new(user) as ArrayRef),
        ("tags", Arc::new(tags)),
        ("price", Arc::new(price)),
        ("age", ints([20, 35, 51, 17, 64, 29, 41, 33])),
        ("click", ints([1, 0, 1, 0, 1, 0, 1, 1])),
        ("buy", Arc::new(buy)),
        ("play", ints([10, 5, 30, 0, 12, 1, 9, 7])),
    ])
    .unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(3))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}

#[test]
fn the_intact_files_load() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "d.csv", CSV.as_bytes());
    let data = load_rich(dir.path(), &csv, Format::Csv).unwrap();
    assert_eq!(data.train.n_rows + data.valid.n_rows + data.test.n_rows, 8);
    let pq = write(dir.path(), "d.parquet", &parquet_bytes());
    assert_eq!(read_all(&SourceSpec::new(&pq)).unwrap(), 8);
    let data = load_rich(dir.path(), &pq, Format::Parquet).unwrap();
    assert_eq!(data.train.n_rows + data.valid.n_rows + data.test.n_rows, 8);
}

#[test]
fn a_gzip_file_cut_short_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(CSV.repeat(50).as_bytes()).unwrap();
    let bytes = gz.finish().unwrap();
    let path = write(dir.path(), "d.csv.gz", &bytes[..bytes.len() / 2]);
    let e = read_all(&SourceSpec::new(&path)).unwrap_err();
    refusal(&e, &path);
}

#[test]
fn a_parquet_file_cut_anywhere_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = parquet_bytes();
    for cut in [0, 4, 8, bytes.len() / 2, bytes.len() - 8, bytes.len() - 1] {
        let path = write(dir.path(), "cut.parquet", &bytes[..cut]);
        let e = read_all(&SourceSpec::new(&path)).unwrap_err();
        refusal(&e, &path);
    }
}

/// Keys of the schema's tables and values to set them to: valid ones, and the edge values
/// and mistakes a hand edit or a generator could make (as TOML).
const SCHEMA_EDITS: &[(&str, &[&str])] = &[
    ("name", &["\"user\"", "\"click\"", "\"\"", "\"a\\nb\"", "3"]),
    ("column", &["\"play\"", "\"click\"", "\"nope\"", "\"\""]),
    ("kind", &["\"binary\"", "\"regression\"", "\"ordinal\""]),
    ("min_count", &["0", "4294967295", "-1"]),
    ("separator", &["\"|\"", "\"\"", "\",\"", "\"a|\""]),
    ("max_values", &["0", "1", "1024", "1025", "4294967295"]),
    ("pooling", &["\"sum\"", "\"max\""]),
    ("fill", &["1e39", "nan", "-0.0", "inf", "3"]),
    ("buckets", &["0", "1", "2", "65536", "65537", "4294967295"]),
    (
        "boundaries",
        &[
            "[]",
            "[2.0, 1.0]",
            "[nan]",
            "[-inf, 1e308]",
            "[30.0]",
            "[1.0, 1.0]",
        ],
    ),
    ("threshold", &["nan", "5", "inf"]),
    ("positive", &["[\"1\"]", "[]"]),
    ("missing", &["\"mask\"", "\"error\"", "\"drop\""]),
    ("missing_values", &["[\"-1\", \"\"]", "[]"]),
    ("given", &["\"click\"", "\"buy\"", "\"finish\"", "\"nope\""]),
    ("weight", &["\"price\"", "\"play\""]),
    ("scale", &["\"none\"", "\"standard\""]),
    (
        "derive",
        &[
            "{ left = \"play\", op = \">=\", right = 10 }",
            "{ left = \"play\", op = \"~\", right = \"play\" }",
            "{ left = \"play\", op = \"<\", right = \"play\" }",
        ],
    ),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Any bytes, any separator, with or without a header: rows or a refusal naming the file.
    #[test]
    fn any_bytes_read_as_csv_or_are_refused(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        separator in prop::sample::select(vec![b',', b'\t', b';', b'|']),
        header in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "any.csv", &bytes);
        let spec = SourceSpec::new(&path).with_separator(separator).with_header(header);
        if let Err(e) = read_all(&spec) {
            refusal(&e, &path);
        }
    }

    /// The valid file with a few bytes changed and maybe cut: loaded through the schema, or
    /// refused with one line.
    #[test]
    fn an_edited_csv_loads_or_is_refused(
        edits in prop::collection::vec(
            (any::<prop::sample::Index>(), prop::sample::select(b",|\"\n\r\t ?-.e9x\xff".to_vec())),
            0..6,
        ),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = CSV.as_bytes().to_vec();
        for (at, b) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *b;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        let path = write(dir.path(), "d.csv", &bytes);
        if let Err(e) = read_all(&SourceSpec::new(&path)) {
            refusal(&e, &path);
        }
        if let Err(e) = load_rich(dir.path(), &path, Format::Csv) {
            let m = e.to_string();
            prop_assert!(!m.is_empty() && !m.contains('\n'), "{:?}", m);
        }
    }

    /// The valid Parquet file with bytes flipped and maybe cut: its rows, or a refusal
    /// naming the file; never a panic inside the decoder.
    #[test]
    fn a_damaged_parquet_file_reads_or_is_refused(
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..4),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = parquet_bytes();
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        for (at, mask) in &flips {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] ^= mask;
            }
        }
        let path = write(dir.path(), "d.parquet", &bytes);
        if let Err(e) = read_all(&SourceSpec::new(&path)) {
            refusal(&e, &path);
        }
        if let Err(e) = load_rich(dir.path(), &path, Format::Parquet) {
            let m = e.to_string();
            prop_assert!(!m.is_empty() && !m.contains('\n'), "{:?}", m);
        }
    }

    /// [`SCHEMA`] with a few keys set to valid or hostile values: refused with one line
    /// naming it, or valid, written back to the same schema, and usable to load the data.
    #[test]
    fn an_edited_schema_is_refused_or_round_trips(
        edits in prop::collection::vec(
            (
                prop::sample::select(vec!["sparse", "dense", "tasks"]),
                any::<prop::sample::Index>(),
                any::<prop::sample::Index>(),
                any::<prop::sample::Index>(),
            ),
            1..4,
        ),
    ) {
        let mut table: toml::Table = toml::from_str(SCHEMA).unwrap();
        for (section, entry, key, value) in &edits {
            let (key, values) = SCHEMA_EDITS[key.index(SCHEMA_EDITS.len())];
            let value = values[value.index(values.len())];
            let value = toml::from_str::<toml::Table>(&format!("v = {value}")).unwrap()["v"].clone();
            let entries = table[*section].as_array_mut().unwrap();
            let i = entry.index(entries.len());
            entries[i].as_table_mut().unwrap().insert(key.to_string(), value);
        }
        let text = toml::to_string(&table).unwrap();
        let origin = "edited.toml";
        let schema = match Schema::from_toml_str(&text, origin) {
            Ok(schema) => schema,
            Err(e) => {
                refusal(&e, Path::new(origin));
                return Ok(());
            }
        };
        let written = schema.to_toml_string();
        prop_assert_eq!(Schema::from_toml_str(&written, "written").unwrap(), schema);
        let dir = tempfile::tempdir().unwrap();
        let schema = write(dir.path(), "s.toml", text.as_bytes());
        let csv = write(dir.path(), "d.csv", CSV.as_bytes());
        if let Err(e) = load(&DataConfig::Files(FilesConfig::new(schema, csv)), dir.path()) {
            let m = e.to_string();
            prop_assert!(!m.is_empty() && !m.contains('\n'), "{:?}", m);
        }
        assert_no_huge_allocation();
    }
}

// Regressions: what `fuzz/` found, each pinned by the input that showed it (the fuzz seeds
// `regression-*` in fuzz/corpus hold the same inputs).

/// csv_reader: a quoted header name holding a line break split the one-line error that
/// lists the file's columns.
#[test]
fn a_header_name_with_a_line_break_is_listed_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "d.csv", b"user;\"b\nut\x02\";price\n1;2;3\n");
    let reader = SourceReader::open(&SourceSpec::new(&path).with_separator(b';')).unwrap();
    let e = reader.column_index("tags").unwrap_err();
    let m = refusal(&e, &path);
    assert!(m.contains(r"`b\nut\u{2}`"), "{m}");
}

/// parquet_reader: column chunk metadata with a negative offset made the `parquet` crate
/// panic ("column start and length should not be negative") instead of returning an error.
/// Whether a later `parquet` returns an error or still panics, the file must be refused.
#[test]
fn a_parquet_file_that_made_the_decoder_panic_is_refused_naming_it() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile/negative-column-offset.parquet");
    let e = read_all(&SourceSpec::new(&path)).unwrap_err();
    refusal(&e, &path);
    // Refused again, not left poisoned by the first panic.
    assert!(read_all(&SourceSpec::new(&path)).is_err());
}

/// schema: `max_values = 4294967295` asked for 16 GB of id slots on the first row, and
/// `buckets = 4294967295` interpolated billions of boundaries out of 8 rows.
#[test]
fn max_values_and_buckets_beyond_their_limits_are_refused() {
    for (from, to, expected) in [
        (
            "max_values = 3",
            "max_values = 4294967295",
            "field `tags`: `max_values` must be at most 1024, got 4294967295",
        ),
        (
            "buckets = 2",
            "buckets = 4294967295",
            "field `age`: `buckets` must be at most 65536, got 4294967295",
        ),
    ] {
        let text = SCHEMA.replace(from, to);
        let e = Schema::from_toml_str(&text, "s.toml").unwrap_err();
        let m = refusal(&e, Path::new("s.toml"));
        assert!(m.contains(expected), "{m}");
    }
    let at_limits = SCHEMA
        .replace("max_values = 3", "max_values = 1024")
        .replace("buckets = 2", "buckets = 65536");
    let dir = tempfile::tempdir().unwrap();
    let schema = write(dir.path(), "s.toml", at_limits.as_bytes());
    let csv = write(dir.path(), "d.csv", CSV.as_bytes());
    let data = load(
        &DataConfig::Files(FilesConfig::new(schema, csv)),
        dir.path(),
    )
    .unwrap();
    assert_eq!(data.meta().slot_counts()[1], 1024);
}

/// schema: a name holding a line break (`name = "a\nb"`, twice) split the one-line
/// "is used twice" error.
#[test]
fn a_name_with_a_control_character_is_refused_on_one_line() {
    let text = SCHEMA.replace("name = \"user\"", "name = \"us\\ner\"");
    let e = Schema::from_toml_str(&text, "s.toml").unwrap_err();
    let m = refusal(&e, Path::new("s.toml"));
    assert!(
        m.contains(r#"the name "us\ner" holds a control character"#),
        "{m}"
    );
}
