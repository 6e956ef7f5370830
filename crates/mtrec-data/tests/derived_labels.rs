//! Labels derived by a rule over columns (`derive = { left, op, right }`), on small files and
//! on the bundled KuaiRand sample with its shipped schema.

use std::path::{Path, PathBuf};

use mtrec_data::{DataConfig, FilesConfig, Schema, load};

mod common;
use common::write;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const SCHEMA: &str = r#"
[[sparse]]
name = "user"
[[tasks]]
name = "long_view"
kind = "binary"
derive = { left = "play", op = ">=", right = "length" }
[[tasks]]
name = "commented"
kind = "binary"
derive = { left = "comment_s", op = ">", right = 0 }
"#;

fn files(dir: &Path, schema: &str, rows: &str) -> DataConfig {
    let s = write(dir, "s.toml", schema);
    let t = write(dir, "t.csv", &format!("user,play,length,comment_s\n{rows}"));
    let mut cfg = FilesConfig::new(s, &t);
    cfg.valid = Some(t.clone());
    cfg.test = Some(t);
    DataConfig::Files(cfg)
}

#[test]
fn labels_follow_the_rule_row_by_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    // play >= length: 1, 1 (equal), 0; comment_s > 0: 0, 1, 0 (0.0 is not > 0).
    let rows = "a,900,800,0\nb,800,800,3.5\na,10,800,0.0\n";
    let ds = load(&files(dir.path(), SCHEMA, rows), dir.path()).expect("loads");
    assert_eq!(ds.train.labels_of_task(0), vec![1.0, 1.0, 0.0]);
    assert_eq!(ds.train.labels_of_task(1), vec![0.0, 1.0, 0.0]);
    // Only `user` is an input: the rule's columns are read for the labels alone.
    assert_eq!((ds.train.n_sparse, ds.train.n_dense), (1, 0));
}

/// A missing cell on either side: an error naming file, line and column (no guessed label).
#[test]
fn a_missing_cell_names_file_line_column_and_task() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = "a,900,800,0\nb,800,,1\n";
    let e = load(&files(dir.path(), SCHEMA, rows), dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with(
            "t.csv:3: column `length` is missing or NaN, and task `long_view` derives its label \
             from it"
        ),
        "{e}"
    );
    let e = load(&files(dir.path(), SCHEMA, "a,NA,800,0\n"), dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("t.csv:2: column `play` is missing"), "{e}");
    let e = load(&files(dir.path(), SCHEMA, "a,9s,800,0\n"), dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t.csv:2: field `play`: cannot parse \"9s\" as a number"),
        "{e}"
    );
}

#[test]
fn a_rule_column_that_is_also_an_input_or_misused_keys_are_refused() {
    let leak = SCHEMA.replace(
        "name = \"user\"",
        "name = \"user\"\n[[dense]]\nname = \"play\"",
    );
    let e = Schema::from_toml_str(&leak, "s.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "s.toml: column `play` is the label of task `long_view` and also the input field \
         `play`: the model would see its own target"
    );
    let cases = [
        (
            SCHEMA.replacen("kind = \"binary\"", "kind = \"regression\"", 1),
            "task `long_view`: `derive` makes binary labels",
        ),
        (
            SCHEMA.replacen("kind = \"binary\"", "kind = \"binary\"\nthreshold = 1.0", 1),
            "task `long_view`: `derive` computes the label itself",
        ),
        (
            SCHEMA.replacen(
                "kind = \"binary\"",
                "kind = \"binary\"\ncolumn = \"play\"",
                1,
            ),
            "task `long_view`: `derive` reads its own columns; drop `column = \"play\"`",
        ),
        (
            SCHEMA.replace("right = \"length\"", "right = \"play\""),
            "compares column `play` with itself",
        ),
        (
            format!("columns = [\"user\", \"play\", \"comment_s\"]\n{SCHEMA}"),
            "column `length` is used but not listed in `columns`",
        ),
        (SCHEMA.replace("op = \">\"", "op = \"=>\""), "line 11"),
    ];
    for (text, needle) in cases {
        let e = Schema::from_toml_str(&text, "s.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "expected {needle:?} in {e}");
    }
    let back = Schema::from_toml_str(SCHEMA, "s.toml").expect("valid");
    let again = Schema::from_toml_str(&back.to_toml_string(), "again").expect("round trip");
    assert_eq!(again, back);
}

/// The shipped KuaiRand config: three tasks with positives in every split, no feedback column
/// among the inputs. Counts by hand (awk over the 200 rows): is_click 32, play_time_ms >=
/// duration_ms 23, play_time_ms >= 3000 58.
#[test]
fn kuairand_config_has_three_tasks_with_positives_in_every_split() {
    let text = std::fs::read_to_string(root().join("configs/kuairand-mtl.toml")).expect("read");
    let table: toml::Table = toml::from_str(&text).expect("toml");
    let cfg: DataConfig = table["data"].clone().try_into().expect("data section");
    let ds = load(&cfg, &root()).expect("loads");
    let meta = ds.meta();
    assert_eq!(
        meta.task_names,
        vec!["is_click", "long_view", "effective_view"]
    );
    assert_eq!(
        (ds.train.n_rows, ds.valid.n_rows, ds.test.n_rows),
        (120, 40, 40)
    );
    for (t, total) in [(0, 32.0), (1, 23.0), (2, 58.0)] {
        let per_split: Vec<f32> = [&ds.train, &ds.valid, &ds.test]
            .iter()
            .map(|s| s.labels_of_task(t).iter().sum())
            .collect();
        assert!(
            per_split.iter().all(|&p| p > 0.0),
            "task {t}: {per_split:?}"
        );
        assert_eq!(per_split.iter().sum::<f32>(), total, "task {t}");
    }
    let inputs: Vec<&String> = meta.sparse_names.iter().chain(&meta.dense_names).collect();
    for gone in [
        "is_click",
        "play_time_ms",
        "duration_ms",
        "profile_stay_time",
        "comment_stay_time",
    ] {
        assert!(!inputs.iter().any(|n| *n == gone), "{gone} is an input");
    }
    // 33 sparse columns, then the two bucketised fields; two dense fields stay numbers.
    assert_eq!(meta.n_sparse(), 35);
    assert_eq!(&meta.sparse_names[33..], ["fans_user_num", "register_days"]);
    assert_eq!(meta.dense_names, vec!["follow_user_num", "friend_user_num"]);
    // fans_user_num: 3 edges -> ids 0..=4; register_days: 3 quartiles at most -> 5 ids.
    assert_eq!(meta.vocab_sizes[33], 5);
    assert!(
        meta.vocab_sizes[34] <= 5 && meta.vocab_sizes[34] >= 3,
        "{:?}",
        meta.vocab_sizes
    );
}
