//! What the fuzz targets share: scratch files (every mtrec reader takes a path, not bytes),
//! the fixtures inputs are loaded with, damaged copies of valid files, and the check every
//! rejection must pass.
//!
//! A finding is a panic, an abort, a sanitizer report, or an allocation beyond libFuzzer's
//! `-malloc_limit_mb`: every target turns a rejected input into an error and checks that the
//! error is one clean line, so a panic anywhere below is a bug of mtrec, not of the target.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BooleanArray, DictionaryArray, Float32Array, Float64Array, Int8Array, Int32Array,
    Int64Array, LargeStringArray, RecordBatch, StringArray, UInt16Array,
};
use mtrec_data::{SourceReader, SourceSpec};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

/// This process's own folder for the files inputs are written to, on a RAM disk where there
/// is one: every execution writes at least one file. (libFuzzer's `-fork`/`-jobs` workers
/// are processes, so they never share one.)
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("mtrec-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the scratch folder");
        dir
    })
}

/// Writes `bytes` to `name` in the scratch folder and returns its path.
pub fn write_scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch_dir().join(name);
    std::fs::write(&path, bytes).expect("write a scratch file");
    path
}

/// A file of `fuzz/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// Panics (a finding) unless `message` is one non-empty line: errors reach the terminal as
/// they are, so a debug dump or a multi-line message there is a bug.
pub fn assert_one_line(message: &str) {
    assert!(!message.trim().is_empty(), "empty error message");
    assert!(!message.contains('\n'), "multi-line error: {message:?}");
}

/// Reads every row of `spec` and every cell of each, as the encoders do; the rows read.
pub fn read_all(spec: &SourceSpec) -> mtrec_data::Result<usize> {
    let mut reader = SourceReader::open(spec)?;
    let n_cols = reader.columns().len();
    for name in reader.columns().to_vec() {
        // Refuses unreadable Parquet column types; a name twice was refused by `open`.
        let _ = reader.column_index(&name);
    }
    let mut buf = String::new();
    let mut rows = 0;
    while let Some(row) = reader.next_row()? {
        for i in 0..=n_cols {
            let cell = row.get(i);
            let _ = cell.is_missing();
            let _ = cell.to_text(&mut buf).len();
        }
        rows += 1;
    }
    Ok(rows)
}

/// `original` damaged as `edits` say: the first two bytes (big-endian) cut the file to that
/// length when shorter than it, then each (offset: 2 bytes, mask: 1 byte) triple XORs one
/// byte (offset modulo the length). An edit list keeps every input a near-copy of a valid
/// file, which is what reaches the decoders' deep paths; raw bytes seldom get past a magic
/// number and a checksum.
pub fn damage(original: &[u8], edits: &[u8]) -> Vec<u8> {
    let mut out = original.to_vec();
    let (cut, rest) = match edits {
        [a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
        _ => (usize::MAX, edits),
    };
    out.truncate(cut);
    if !out.is_empty() {
        for e in rest.chunks_exact(3) {
            let at = usize::from(u16::from_be_bytes([e[0], e[1]])) % out.len();
            out[at] ^= e[2];
        }
    }
    out
}

/// The files of `fixtures/checkpoint` (a real one: see `fixtures/tiny.toml`).
pub const CHECKPOINT_FILES: [&str; 5] = [
    "mtrec.json",
    "config.toml",
    "preprocessor.json",
    "metrics.json",
    "model.safetensors",
];

/// `fs::copy`, again when a signal interrupts it: libFuzzer's timers interrupt system calls,
/// and a harness that panicked on EINTR reported a crash of its own (the first 10-minute run
/// of `checkpoint_files`, 2026-11-29), not one of mtrec.
fn copy_retrying(from: &Path, to: &Path) {
    loop {
        match std::fs::copy(from, to) {
            Ok(_) => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("copy a fixture {}: {e}", from.display()),
        }
    }
}

/// A copy of `fixtures/checkpoint` in the scratch folder whose file `name` holds `bytes`.
pub fn checkpoint_with(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = scratch_dir().join("checkpoint");
    std::fs::create_dir_all(&dir).expect("create the checkpoint folder");
    for file in CHECKPOINT_FILES {
        let path = dir.join(file);
        if file == name {
            std::fs::write(&path, bytes).expect("write a checkpoint file");
        } else {
            copy_retrying(&fixture("checkpoint").join(file), &path);
        }
    }
    dir
}

/// Loads the checkpoint in `dir` and predicts `fixtures/rich.csv` with it as `mtrec predict`
/// does: a rejection must be one line naming the checkpoint, and whatever is accepted must
/// predict without a panic.
pub fn load_and_predict(dir: &Path) {
    let device = mtrec_engine::default_device();
    let ck = match mtrec_engine::load_checkpoint(dir, &device) {
        Ok(ck) => ck,
        Err(e) => {
            let message = e.to_string();
            assert_one_line(&message);
            assert!(
                message.contains(&*dir.to_string_lossy()),
                "names no checkpoint file: {message}"
            );
            return;
        }
    };
    let spec = SourceSpec::new(fixture("rich.csv"));
    let table = match ck.preprocessor.encode_file_unlabelled(&spec) {
        Ok(table) => table,
        Err(e) => return assert_one_line(&e.to_string()),
    };
    let meta = ck.preprocessor.meta();
    let out = mtrec_engine::predict(
        &ck.model,
        &table,
        &meta.task_kinds,
        ck.config.train.eval_batch_size,
        &device,
    );
    assert_eq!(out.len(), meta.task_kinds.len());
}

/// `fixtures/rich.csv` as Parquet, each column in another Arrow type (dictionary, large
/// strings, narrow integers, booleans, nulls), in row groups of 4 rows so that readers cross
/// batch boundaries.
pub fn rich_parquet() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let users = ["u1", "u2", "u3", "u1", "u4", "u2", "u5", "u3", "u6", "u1"];
        let user: DictionaryArray<Int32Type> = users.into_iter().collect();
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("user", Arc::new(user)),
            (
                "tags",
                Arc::new(StringArray::from(vec![
                    Some("a|b"),
                    Some("b"),
                    Some("a|c|d|e"),
                    None,
                    Some("c"),
                    Some("a"),
                    Some("b|b"),
                    Some("d"),
                    Some("e|a"),
                    Some("a"),
                ])),
            ),
            (
                "price",
                Arc::new(Float64Array::from(vec![
                    Some(3.5),
                    None,
                    Some(7.0),
                    Some(2.25),
                    Some(f64::NAN),
                    Some(1e3),
                    Some(0.5),
                    Some(4.0),
                    Some(6.0),
                    Some(8.0),
                ])),
            ),
            (
                "age",
                Arc::new(Int64Array::from(vec![20, 35, 51, 17, 64, 29, 41, 33, 22, 45])),
            ),
            (
                "score",
                Arc::new(Float32Array::from(vec![
                    0.1, 0.7, 0.2, 0.9, 0.4, 0.3, 0.8, 0.6, 0.5, 0.05,
                ])),
            ),
            (
                "click",
                Arc::new(BooleanArray::from(vec![
                    true, false, true, false, true, false, true, true, false, true,
                ])),
            ),
            (
                "buy",
                Arc::new(Int32Array::from(vec![
                    Some(0),
                    None,
                    Some(1),
                    Some(-1),
                    Some(0),
                    Some(0),
                    Some(1),
                    Some(0),
                    None,
                    Some(1),
                ])),
            ),
            (
                "play",
                Arc::new(UInt16Array::from(vec![10, 5, 30, 0, 12, 1, 9, 7, 2, 11])),
            ),
            (
                "length",
                Arc::new(Int8Array::from(vec![20, 5, 20, 1, 12, 2, 3, 8, 9, 10])),
            ),
            (
                "stay",
                Arc::new(LargeStringArray::from(vec![
                    Some("1.5"),
                    Some("2.0"),
                    None,
                    Some("3.25"),
                    Some("0.0"),
                    Some("1.0"),
                    Some("4.5"),
                    Some("2.5"),
                    Some("1.75"),
                    Some("0.5"),
                ])),
            ),
            (
                "w",
                Arc::new(Float64Array::from(vec![
                    1.0, 1.0, 0.5, 2.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0,
                ])),
            ),
        ];
        let batch = RecordBatch::try_from_iter(columns).expect("a valid record batch");
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(4))
            .build();
        let mut out = Vec::new();
        let mut writer =
            ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).expect("a writer");
        writer.write(&batch).expect("write the batch");
        writer.close().expect("close the writer");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_cuts_then_flips_bytes_modulo_the_length() {
        let original = [0u8, 1, 2, 3, 4, 5];
        assert_eq!(damage(&original, &[]), original);
        assert_eq!(damage(&original, &[0, 4]), [0, 1, 2, 3]);
        assert_eq!(damage(&original, &[0xff, 0xff, 0, 1, 0xff]), [0, 0xfe, 2, 3, 4, 5]);
        // Offset 7 of a 4-byte file is offset 3.
        assert_eq!(damage(&original, &[0, 4, 0, 7, 1]), [0, 1, 2, 2]);
        assert!(damage(&original, &[0, 0, 0, 1, 1]).is_empty());
    }

    #[test]
    fn the_rich_parquet_file_reads_back_whole() {
        let path = write_scratch("rich.parquet", rich_parquet());
        assert_eq!(read_all(&SourceSpec::new(&path)).expect("readable"), 10);
    }
}
