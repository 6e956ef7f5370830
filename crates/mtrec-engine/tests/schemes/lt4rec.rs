//! LT4Rec / sparse sharing on a Census subsample: each pruning round keeps `keep^(r/rounds)`
//! of the shared weights, a task's step moves only its own positions, pruned positions stay
//! zero, and the per-task sub-networks survive a checkpoint.

use std::path::Path;

use crate::common;

use burn::prelude::*;
use mtrec_data::batches;
use mtrec_engine::scheme::lt4rec::Lt4rec;
use mtrec_engine::scheme::{SchemeConfig, Trainer};
use mtrec_engine::{ExperimentConfig, NullObserver, Predictor, default_device, train};

fn config(epochs: usize) -> ExperimentConfig {
    common::census_scheme_config("kind = \"lt4rec\"\nkeep = 0.2\nrounds = 3", epochs)
}

fn host(t: &Tensor<1>) -> Vec<f32> {
    t.clone().into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn rounds_prune_to_schedule_and_steps_touch_only_own_positions() {
    let cfg = config(1);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = mtrec_data::load(&cfg.data, &root).unwrap();
    let device = default_device().autodiff();
    let model = mtrec_arch::build(&cfg.model, &cfg.embedding, &data.meta(), &device).unwrap();
    let SchemeConfig::Lt4rec(c) = &cfg.scheme else {
        unreachable!()
    };
    let mut lt = Lt4rec::new(model, c, &cfg, &data, &device).unwrap();
    let log = lt.prepare(&data, &mut NullObserver).unwrap();

    // 2 tasks x 3 rounds; round r keeps 0.2^(r/3) of the shared weights.
    let total = lt.nets().shared.len() as f64;
    assert!(total > 100.0, "{total} shared weights");
    let prunes: Vec<_> = log.iter().filter(|r| r["phase"] == "prune").collect();
    assert_eq!(prunes.len(), 6);
    for record in prunes {
        let r = record["round"].as_f64().unwrap();
        let want = 0.2f64.powf(r / 3.0);
        let got = record["density"].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 1.0 / total,
            "round {r}: {got} vs {want}"
        );
    }
    let masks: Vec<Vec<Vec<f32>>> = lt
        .masks()
        .iter()
        .map(|m| m.parts.iter().map(host).collect())
        .collect();
    assert_ne!(masks[0], masks[1], "the two tasks found the same ticket");

    // Positions no task keeps are zero; one step of task 0 (the first) changes only its own.
    let before: Vec<Vec<f32>> = lt.nets().full.iter().map(host).collect();
    for (p, part) in before.iter().enumerate() {
        for (i, &w) in part.iter().enumerate() {
            if masks[0][p][i] == 0.0 && masks[1][p][i] == 0.0 {
                assert_eq!(w, 0.0, "pruned weight {p}/{i} is {w}");
            }
        }
    }
    lt.begin_epoch(1);
    let batch = batches(&data.train, 256, Some(1)).next().unwrap();
    lt.step(&batch);
    let after: Vec<Vec<f32>> = lt.nets().full.iter().map(host).collect();
    let mut moved = 0;
    for p in 0..before.len() {
        for i in 0..before[p].len() {
            if before[p][i] != after[p][i] {
                assert_eq!(masks[0][p][i], 1.0, "task 0 moved {p}/{i} outside its mask");
                moved += 1;
            }
        }
    }
    assert!(moved > 0, "the step changed nothing");
}

#[test]
fn lt4rec_trains_logs_densities_and_reloads_per_task_models() {
    let cfg = config(2);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = mtrec_data::load(&cfg.data, &root).unwrap();
    let device = default_device();
    let outcome = train(&cfg, &data, &device, &mut NullObserver).unwrap();
    for record in &outcome.history {
        for task in ["income", "marital"] {
            let d = record.stats[&format!("density/{task}")];
            assert!((d - 0.2).abs() < 1e-3, "{task}: density {d}");
        }
        let shared = record.stats["shared/kept"];
        assert!((0.0..1.0).contains(&shared), "{shared}");
    }
    assert_eq!(outcome.prepare_log.len(), 6);
    assert!(matches!(outcome.model, Predictor::PerTask(ref m) if m.len() == 2));
    for t in &outcome.test.tasks {
        assert!(t.metrics.auc.unwrap() > 0.6, "{}: {:?}", t.name, t.metrics);
    }

    let dir = tempfile::tempdir().unwrap();
    common::assert_checkpoint_round_trip(dir.path(), &cfg, &data, &outcome.model);
    assert!(dir.path().join("ck/model.task1.safetensors").is_file());
}
