//! The shipped recommendation samples go through inspect -> guessed schema -> load.

use std::path::{Path, PathBuf};

use mtrec_data::{DataConfig, FilesConfig, SourceSpec, guess_schema, inspect, load};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn ali_ccp_sample_guess_and_load() {
    let dir = root().join("data/samples/ali-ccp");
    let ins =
        inspect(&SourceSpec::new(dir.join("ali_ccp_train_sample.csv")), None).expect("inspect");
    assert_eq!(ins.n_rows, 100);
    assert_eq!(ins.columns.len(), 33);
    let schema = guess_schema(&ins);
    assert_eq!(schema.task_names(), vec!["click", "purchase"]);
    // The 8 fractional columns are the numeric ones; the integer codes stay sparse.
    assert_eq!(schema.dense.len(), 8, "{:?}", schema.dense);
    assert!(schema.dense.iter().all(|f| f.name.starts_with('D')));
    assert_eq!(schema.sparse.len(), 23);

    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("schema.toml"), schema.to_toml_string()).expect("write");
    let cfg = DataConfig::Files(FilesConfig {
        valid: Some(dir.join("ali_ccp_val_sample.csv")),
        test: Some(dir.join("ali_ccp_test_sample.csv")),
        ..FilesConfig::new(
            tmp.path().join("schema.toml"),
            dir.join("ali_ccp_train_sample.csv"),
        )
    });
    let ds = load(&cfg, Path::new("/unused")).expect("loads (absolute paths)");
    assert_eq!(
        (ds.train.n_rows, ds.valid.n_rows, ds.test.n_rows),
        (100, 50, 50)
    );
    assert_eq!(ds.meta().n_sparse(), 23);
}

#[test]
fn kuairand_and_aliexpress_samples_inspect() {
    let k = inspect(
        &SourceSpec::new(root().join("data/samples/kuairand/kuairand_sample.csv")),
        None,
    )
    .expect("inspect");
    assert_eq!((k.n_rows, k.columns.len()), (200, 42));
    let s = guess_schema(&k);
    assert!(
        s.task_names().contains(&"is_click".to_string()),
        "{:?}",
        s.task_names()
    );
    assert!(s.sparse.iter().any(|f| f.name == "user_id"));

    let a = inspect(
        &SourceSpec::new(root().join("data/samples/aliexpress/aliexpress_train_sample.csv")),
        Some(20),
    )
    .expect("inspect");
    assert_eq!(a.n_rows, 20);
    let s = guess_schema(&a);
    assert!(
        s.task_names().contains(&"click".to_string()),
        "{:?}",
        s.task_names()
    );
}
