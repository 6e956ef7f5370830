//! Multi-valued sparse fields (`tags = "a|b|c"`) through the loader: a vocabulary over the
//! values, the cap on values per cell, empty cells and unknown values, the slot layout beside
//! single-valued and bucketised fields, the preprocessor's JSON round trip, the schema's
//! refusals, and `data inspect` proposing the separator.

use std::path::{Path, PathBuf};

use mtrec_data::{
    BagLayout, DataConfig, FilesConfig, Pooling, Preprocessor, Schema, SourceSpec, guess_schema,
    inspect, load,
};

mod common;
use common::write;

const SCHEMA: &str = r#"
[[sparse]]
name = "user"
[[sparse]]
name = "tags"
separator = "|"
max_values = 3
min_count = 2
[[dense]]
name = "age"
boundaries = [30.0]
[[tasks]]
name = "click"
kind = "binary"
"#;

/// Values kept (the first 3 of a cell, trimmed, empty ones dropped): a b | a c b (d is the
/// fourth) | none | d e | a. Counts: a 3, b 2, c 1, d 1, e 1; with min_count 2 the vocabulary
/// is a = 1, b = 2. The dropped d would have made d's count 2.
const TRAIN: &str = "user,tags,age,click\n\
                     u1,\"b|a\",20,1\n\
                     u2,a | c |b|d,40,0\n\
                     u1,,25,1\n\
                     u2,d|||e,35,0\n\
                     u1,a,50,1\n";

const TEST: &str = "user,tags,age,click\n\
                    u3,z|a|b|a,10,0\n\
                    u2,b,,1\n";

fn dataset(dir: &Path) -> (mtrec_data::Dataset, PathBuf) {
    let s = write(dir, "s.toml", SCHEMA);
    let tr = write(dir, "train.csv", TRAIN);
    let te = write(dir, "test.csv", TEST);
    let mut cfg = FilesConfig::new(&s, &tr);
    cfg.valid = Some(te.clone());
    cfg.test = Some(te.clone());
    (load(&DataConfig::Files(cfg), dir).expect("loads"), te)
}

#[test]
fn values_get_one_vocabulary_and_each_cell_its_capped_slots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ds, _) = dataset(dir.path());
    assert_eq!(ds.preprocessor.vocabs[1].values(), ["a", "b"]);

    // Fields: user, tags, then the bucketised age; slots: 1 + 3 + 1.
    let meta = ds.meta();
    assert_eq!(meta.sparse_names, vec!["user", "tags", "age"]);
    assert_eq!(meta.vocab_sizes, vec![3, 3, 3]);
    assert_eq!(
        meta.bags,
        vec![BagLayout {
            field: 1,
            slots: 3,
            pooling: Pooling::Mean,
        }]
    );
    assert_eq!((meta.n_sparse(), meta.n_sparse_slots()), (3, 5));
    assert_eq!(meta.slot_counts(), vec![1, 3, 1]);

    let t = &ds.train;
    assert_eq!(t.n_sparse, 5);
    let rows: Vec<&[u32]> = (0..t.n_rows).map(|r| t.sparse_row(r)).collect();
    // user u1 = 1, u2 = 2; tags in cell order, unknown c and padding 0; age < 30 -> 1.
    assert_eq!(
        rows,
        vec![
            &[1, 2, 1, 0, 1][..],
            &[2, 1, 0, 2, 2],
            &[1, 0, 0, 0, 1],
            &[2, 0, 0, 0, 2],
            &[1, 1, 0, 0, 2],
        ]
    );
    // Test rows: unknown user and z; the first 3 values z a b (the second a is the fourth).
    // A missing age is bucket 0.
    assert_eq!(ds.test.sparse, vec![0, 0, 1, 2, 1, 2, 2, 0, 0, 0]);
}

#[test]
fn the_preprocessor_round_trips_and_encodes_new_files_alike() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ds, te) = dataset(dir.path());
    let json = dir.path().join("pre.json");
    ds.preprocessor.save_json(&json).expect("save");
    let text = std::fs::read_to_string(&json).expect("read");
    assert!(text.contains("\"separator\": \"|\""), "{text}");
    assert!(text.contains("\"max_values\": 3"), "{text}");
    let back = Preprocessor::load_json(&json).expect("load");
    assert_eq!(back, ds.preprocessor);
    assert_eq!(back.meta(), ds.meta());
    let again = back.encode_file(&SourceSpec::new(&te)).expect("encode");
    assert_eq!(again.sparse, ds.test.sparse);
    let unlabelled = back
        .encode_file_unlabelled(&SourceSpec::new(&te))
        .expect("encode");
    assert_eq!((unlabelled.n_sparse, unlabelled.n_tasks), (5, 0));
    assert_eq!(unlabelled.sparse, ds.test.sparse);

    // A hand-edited preprocessor with no slots for the bag is refused, naming the field.
    std::fs::write(
        &json,
        text.replace("\"max_values\": 3", "\"max_values\": 0"),
    )
    .unwrap();
    let e = Preprocessor::load_json(&json).unwrap_err().to_string();
    assert!(
        e.contains("field `tags`: `max_values` must be at least 1"),
        "{e}"
    );
}

#[test]
fn sum_pooling_and_the_default_cap_are_read_from_the_schema() {
    let text = SCHEMA
        .replace("max_values = 3\n", "pooling = \"sum\"\n")
        .replace("separator = \"|\"", "separator = \";\"");
    let s = Schema::from_toml_str(&text, "s.toml").expect("valid");
    assert_eq!(s.sparse[1].pooling(), Pooling::Sum);
    assert_eq!(s.sparse[1].slots(), 16);
    assert_eq!(s.sparse[0].slots(), 1);
    let back = Schema::from_toml_str(&s.to_toml_string(), "back.toml").expect("re-read");
    assert_eq!(back, s);
}

#[test]
fn bag_options_without_a_separator_or_out_of_range_are_refused() {
    let cases = [
        (
            SCHEMA.replace("separator = \"|\"\n", ""),
            "s.toml: field `tags`: `pooling` and `max_values` apply to a multi-valued field; \
             add `separator = \"|\"`",
        ),
        (
            SCHEMA.replace("max_values = 3", "max_values = 0"),
            "s.toml: field `tags`: `max_values` must be at least 1",
        ),
        (
            SCHEMA.replace("separator = \"|\"", "separator = \"\""),
            "s.toml: field `tags`: `separator` is empty",
        ),
        (
            SCHEMA.replace("max_values = 3", "pooling = \"max\""),
            "unknown variant `max`",
        ),
    ];
    for (text, needle) in cases {
        let e = Schema::from_toml_str(&text, "s.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "expected {needle:?} in {e}");
    }
}

#[test]
fn inspect_proposes_a_separator_for_mostly_multi_valued_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::from("user,tags,genres,title,click\n");
    for i in 0..40 {
        // tags: 3 of 4 cells hold several values, up to 4; genres: `;` in every cell but
        // the empty ones; title: a `|` in 1 cell of 4, too few.
        let tags = match i % 4 {
            0 => "news".to_string(),
            1 => "news|sport".to_string(),
            2 => "sport|tech|news".to_string(),
            _ => format!("t{}|news|a|b", i % 3),
        };
        let genres = if i % 5 == 0 { "" } else { "drama;comedy" };
        let title = if i % 4 == 0 { "a|b" } else { "plain" };
        text.push_str(&format!("u{},{tags},{genres},{title},{}\n", i % 7, i % 2));
    }
    let p = write(dir.path(), "log.csv", &text);
    let ins = inspect(&SourceSpec::new(&p), None).expect("inspect");
    let col = |n: &str| ins.columns.iter().find(|c| c.name == n).expect("column");
    assert_eq!(col("tags").separator.as_deref(), Some("|"));
    assert_eq!(col("tags").most_values, Some(4));
    assert_eq!(col("genres").separator.as_deref(), Some(";"));
    assert_eq!(col("title").separator, None);
    assert_eq!(col("user").separator, None);
    // Values, not cells: news is in every tags cell (40 times); 8 distinct values, news
    // sport tech a b and t0 t1 t2 (i % 3 over the rows with i % 4 = 3).
    assert_eq!(col("tags").top[0], ("news".to_string(), 40));
    assert_eq!(col("tags").n_distinct, 8);
    assert!(!col("tags").id_like && !col("genres").task_candidate);
    assert_eq!(col("genres").n_distinct, 2);

    let schema = guess_schema(&ins);
    let sep = |n: &str| {
        let f = schema.sparse.iter().find(|f| f.name == n).expect("field");
        f.separator.clone()
    };
    assert_eq!(sep("tags").as_deref(), Some("|"));
    assert_eq!(sep("genres").as_deref(), Some(";"));
    assert_eq!(sep("title"), None);
    let toml = mtrec_data::schema_toml(&ins, &schema);
    assert!(
        toml.contains(
            "the first max_values = 16 are kept unless you set it): tags (4), genres (2)"
        ),
        "{toml}"
    );
    // The guessed schema loads the file.
    let s = write(dir.path(), "s.toml", &toml);
    let ds = load(&DataConfig::Files(FilesConfig::new(&s, &p)), dir.path()).expect("loads");
    assert_eq!(ds.meta().n_sparse_slots(), 1 + 16 + 16 + 1);
}
