//! Bucketised dense fields through the loader: edges fitted on the training file only, ids by
//! the left-closed rule, missing cells in bucket 0, and the same cuts after a JSON round trip.

use mtrec_data::{DataConfig, FilesConfig, Preprocessor, Schema, SourceSpec, load};

mod common;
use common::write;

const SCHEMA: &str = r#"
[[sparse]]
name = "user"
[[dense]]
name = "age"
buckets = 4
[[dense]]
name = "price"
[[dense]]
name = "score"
boundaries = [0.0, 0.5]
[[tasks]]
name = "click"
kind = "binary"
"#;

fn csv(values: &[(&str, &str, &str)]) -> String {
    let mut s = String::from("user,age,price,score,click\n");
    for (i, (age, price, score)) in values.iter().enumerate() {
        s.push_str(&format!("u{},{age},{price},{score},{}\n", i % 3, i % 2));
    }
    s
}

#[test]
fn edges_come_from_the_training_file_and_ids_follow_the_rule() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Training ages 1..10 (and one missing): quartiles 3.25, 5.5, 7.75 (numpy's
    // np.quantile([1..10], [.25, .5, .75])). The test file's extreme ages must not move them.
    let ages = ["7", "1", "10", "3", "5", "2", "9", "4", "8", "6", ""];
    let train: Vec<(&str, &str, &str)> = ages.iter().map(|a| (*a, "1.5", "0.2")).collect();
    let test = [
        ("-1000", "2", "-1"),
        ("3.25", "2", "0"),
        ("5.5", "2", "0.5"),
        ("", "2", ""),
        ("1e6", "2", "9"),
    ];
    let s = write(dir.path(), "s.toml", SCHEMA);
    let tr = write(dir.path(), "train.csv", &csv(&train));
    let te = write(dir.path(), "test.csv", &csv(&test));
    let mut cfg = FilesConfig::new(&s, &tr);
    cfg.valid = Some(te.clone());
    cfg.test = Some(te.clone());
    let ds = load(&DataConfig::Files(cfg), dir.path()).expect("loads");
    let pre = &ds.preprocessor;
    assert_eq!(pre.buckets.len(), 2);
    assert_eq!(pre.buckets[0].field, "age");
    assert_eq!(pre.buckets[0].boundaries, vec![3.25, 5.5, 7.75]);
    assert_eq!(pre.buckets[1].boundaries, vec![0.0, 0.5]);

    // Inputs: user, then age and score as bucket ids; price alone stays dense.
    let meta = ds.meta();
    assert_eq!(meta.sparse_names, vec!["user", "age", "score"]);
    assert_eq!(meta.vocab_sizes[1..], [5, 4]);
    assert_eq!(meta.dense_names, vec!["price"]);
    let t = &ds.test;
    assert_eq!((t.n_sparse, t.n_dense), (3, 1));
    let ids: Vec<[u32; 2]> = (0..t.n_rows)
        .map(|r| [t.sparse_row(r)[1], t.sparse_row(r)[2]])
        .collect();
    // Age: below every edge -> 1; an edge belongs to the bucket above it (3.25 -> 2,
    // 5.5 -> 3); missing -> 0; above every edge -> 4. Score edges 0 and 0.5 likewise.
    assert_eq!(ids, vec![[1, 1], [2, 2], [3, 3], [0, 0], [4, 3]]);
    // Price is constant (1.5) on the training split: it carries nothing, so every value,
    // the test file's 2 included, encodes to 0.
    assert!(t.dense.iter().all(|&v| v == 0.0), "{:?}", t.dense);

    // Saved and read back, the preprocessor cuts the test file at the same edges.
    let json = dir.path().join("pre.json");
    pre.save_json(&json).expect("save");
    let back = Preprocessor::load_json(&json).expect("load");
    assert_eq!(&back, pre);
    let again = back.encode_file(&SourceSpec::new(&te)).expect("encode");
    assert_eq!(again.sparse, ds.test.sparse);
    assert_eq!(again.dense, ds.test.dense);
    assert_eq!(again.labels, ds.test.labels);
    let unlabelled = back
        .encode_file_unlabelled(&SourceSpec::new(&te))
        .expect("encode");
    assert_eq!(unlabelled.sparse, ds.test.sparse);
    assert_eq!(unlabelled.dense, ds.test.dense);

    // A hand-edited preprocessor with edges out of order is refused, naming the field.
    let text = std::fs::read_to_string(&json).expect("read");
    let edited = text.replacen("3.25", "6.0", 1);
    std::fs::write(&json, edited).expect("write");
    let e = Preprocessor::load_json(&json).unwrap_err().to_string();
    assert!(
        e.contains("field `age`: boundaries must be strictly increasing, got 6 then 5.5"),
        "{e}"
    );
}

#[test]
fn bucketing_options_are_checked_in_the_schema() {
    let cases = [
        (
            SCHEMA.replace("buckets = 4", "buckets = 4\nboundaries = [1.0]"),
            "field `age`: give either `buckets` or `boundaries`, not both",
        ),
        (
            SCHEMA.replace("buckets = 4", "buckets = 1"),
            "`buckets` must be at least 2, got 1",
        ),
        (
            SCHEMA.replace("boundaries = [0.0, 0.5]", "boundaries = [0.5, 0.5]"),
            "field `score`: boundaries must be strictly increasing",
        ),
        (
            SCHEMA.replace("boundaries = [0.0, 0.5]", "boundaries = []"),
            "`boundaries` is empty",
        ),
        (
            SCHEMA.replace("buckets = 4", "buckets = 4\nfill = 3.0"),
            "`fill` does not apply to a bucketised field",
        ),
    ];
    for (text, needle) in cases {
        let e = Schema::from_toml_str(&text, "s.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "expected {needle:?} in {e}");
    }
    let s = Schema::from_toml_str(SCHEMA, "s.toml").expect("valid");
    assert_eq!(s.dense[0].buckets, Some(4));
    let again = Schema::from_toml_str(&s.to_toml_string(), "again").expect("round trip");
    assert_eq!(again, s);
}
