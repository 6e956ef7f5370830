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

fn shipped(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs")
        .join(name)
}

fn set(text: &str) -> mtrec_engine::config::Override {
    text.parse().unwrap()
}

#[test]
fn set_overrides_change_typed_values_and_plain_words() {
    let base = ExperimentConfig::from_toml_file(&shipped("census-g1-mmoe.toml")).unwrap();
    let cfg = ExperimentConfig::from_toml_file_with(
        &shipped("census-g1-mmoe.toml"),
        &[
            set("train.learning_rate=3e-3"),
            set("train.epochs = 7"),
            set("name=renamed"),
            set("train.monitor=loss"),
        ],
    )
    .unwrap();
    assert_eq!(cfg.train.learning_rate, 3e-3);
    assert_eq!(cfg.train.epochs, 7);
    assert_eq!(cfg.name, "renamed");
    assert_eq!(cfg.train.monitor, mtrec_engine::Monitor::Loss);
    // Everything not overridden is as in the file.
    assert_eq!(cfg.train.batch_size, base.train.batch_size);
    assert_eq!(cfg.model, base.model);
}

#[test]
fn set_overrides_are_checked_like_file_keys() {
    let path = shipped("census-g1-mmoe.toml");
    let typo = ExperimentConfig::from_toml_file_with(&path, &[set("train.learnin_rate=1e-2")])
        .unwrap_err()
        .to_string();
    assert!(typo.contains("learnin_rate"), "{typo}");
    assert!(typo.contains("--set"), "{typo}");
    let wrong_type = ExperimentConfig::from_toml_file_with(&path, &[set("train.epochs=many")])
        .unwrap_err()
        .to_string();
    assert!(wrong_type.contains("epochs"), "{wrong_type}");
    let range = ExperimentConfig::from_toml_file_with(&path, &[set("train.learning_rate=-1")])
        .unwrap_err()
        .to_string();
    assert!(range.contains("learning_rate must be > 0"), "{range}");
    let into_value = ExperimentConfig::from_toml_file_with(&path, &[set("name.x=1")])
        .unwrap_err()
        .to_string();
    assert!(into_value.contains("`name` is a value"), "{into_value}");
    assert!(
        "no-equals-sign"
            .parse::<mtrec_engine::config::Override>()
            .is_err()
    );
    assert!(
        "train..epochs=3"
            .parse::<mtrec_engine::config::Override>()
            .is_err()
    );
}

#[test]
fn a_set_error_names_only_the_override_at_fault() {
    let path = shipped("census-g1-mmoe.toml");
    let shown = path.display().to_string();
    let err = |sets: &[&str]| {
        let sets: Vec<_> = sets.iter().map(|s| set(s)).collect();
        ExperimentConfig::from_toml_file_with(&path, &sets)
            .unwrap_err()
            .to_string()
    };
    // A typo among good overrides: only the typo is named, in front of the message.
    let typo = err(&[
        "train.epochs=2",
        "train.learning_rat=0.003",
        "model.n_experts=4",
    ]);
    assert!(
        typo.starts_with(&format!("{shown} with --set train.learning_rat=0.003: ")),
        "{typo}"
    );
    assert!(typo.contains("unknown field `learning_rat`"), "{typo}");
    assert!(
        !typo.contains("train.epochs") && !typo.contains("n_experts"),
        "{typo}"
    );
    // A range check and a wrong type are blamed the same way.
    let range = err(&["train.epochs=2", "train.learning_rate=-1"]);
    assert!(
        range.starts_with(&format!("{shown} with --set train.learning_rate=-1: ")),
        "{range}"
    );
    let wrong_type = err(&["train.epochs=many", "name=x"]);
    assert!(
        wrong_type.starts_with(&format!("{shown} with --set train.epochs=\"many\": ")),
        "{wrong_type}"
    );
    // An override into a value names itself once.
    let into_value = err(&["train.epochs=2", "name.x=1"]);
    assert_eq!(
        into_value,
        format!("{shown} with --set name.x=1: `name` is a value, not a section")
    );
    // The same mistake twice: neither alone is at fault, both are named.
    let twice = err(&["train.learning_rat=1", "train.learning_rat=2"]);
    assert!(
        twice.contains("with --set train.learning_rat=1 --set train.learning_rat=2: "),
        "{twice}"
    );
}
