//! End to end on the bundled Census-Income data: the demo's code path reaches the AUC
//! targets on the held-out test split, and the saved checkpoint reproduces its figures.

mod common;

use common::{mtrec, project_root, stderr, stdout};
use mtrec_data::{DataConfig, TaskKind};
use mtrec_engine::{evaluate, load_checkpoint};

#[test]
fn demo_reaches_target_aucs_and_its_checkpoint_reproduces_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = mtrec(&[
        "demo",
        "--epochs",
        "8",
        "--json",
        "--out",
        &out.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let income = report["tasks"]["income"]["auc"].as_f64().unwrap();
    let marital = report["tasks"]["marital"]["auc"].as_f64().unwrap();
    assert!(income >= 0.90, "income test AUC {income}");
    assert!(marital >= 0.95, "marital test AUC {marital}");
    assert_eq!(report["tasks"]["income"]["n"], 24941);

    // Load the checkpoint, rebuild the same test split, and recompute the metrics.
    let device = mtrec_engine::default_device();
    let ck = load_checkpoint(&out, &device).unwrap();
    let data = mtrec_data::load(&ck.config.data, &project_root()).unwrap();
    assert!(matches!(ck.config.data, DataConfig::Census(_)));
    let meta = ck.preprocessor.meta();
    assert_eq!(meta, data.meta());
    let weights = vec![0.5, 0.5];
    let again = evaluate(
        &ck.model,
        &data.test,
        &meta.task_names,
        &meta.task_kinds,
        &weights,
        4096,
        &device,
    )
    .unwrap();
    // Equal up to the last bit serde_json's default float parsing may round differently.
    let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-12;
    assert!(close(again.task("income").unwrap().auc, income));
    assert!(close(again.task("marital").unwrap().auc, marital));

    // `mtrec predict` on the raw file: one probability per task for every row.
    let preds = dir.path().join("p.csv");
    let o = mtrec(&[
        "predict",
        "--checkpoint",
        &out.display().to_string(),
        "--data",
        "data/census-income/census-income.test.gz",
        "--out",
        &preds.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&preds).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("income,marital"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 99_762);
    assert!(rows.iter().all(|r| {
        r.split(',')
            .all(|v| (0.0..=1.0).contains(&v.parse::<f64>().unwrap()))
    }));
    assert!(meta.task_kinds.iter().all(|k| *k == TaskKind::Binary));

    // `mtrec eval --json` on the same file gives the documented shape.
    let o = mtrec(&[
        "eval",
        "--checkpoint",
        &out.display().to_string(),
        "--data",
        "data/census-income/census-income.test.gz",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let eval: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert!(eval["tasks"]["income"]["auc"].as_f64().unwrap() > 0.9);
}
