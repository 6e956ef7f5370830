//! Every shipped experiment config parses (unknown keys are errors) and builds its model.

use std::path::Path;

use burn::prelude::*;
use mtrec_data::{FeatureMeta, TaskKind};
use mtrec_engine::ExperimentConfig;

#[test]
fn every_shipped_config_parses_and_builds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let meta = FeatureMeta {
        sparse_names: vec!["a".into()],
        vocab_sizes: vec![4],
        bags: Vec::new(),
        dense_names: vec!["x".into()],
        task_names: vec!["t1".into(), "t2".into()],
        task_kinds: vec![TaskKind::Binary, TaskKind::Binary],
    };
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let cfg = ExperimentConfig::from_toml_file(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        assert_eq!(cfg.name, stem, "name should match the file name");
        mtrec_arch::build(&cfg.model, &cfg.embedding, &meta, &Device::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        n += 1;
    }
    assert!(n >= 25, "only {n} configs found");
}
