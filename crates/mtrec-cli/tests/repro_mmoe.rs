//! `mtrec repro mmoe-synthetic` end to end on a reduced setting (the hidden flags shrink the
//! steps and data): the files it writes, figures that decode, a report that names every
//! observation, JSON and CSV that agree with the runs, and resuming.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{assert_clean_failure, json_lines, mtrec, stderr, stdout};
use serde_json::Value;

const OBSERVATIONS: [&str; 4] = [
    "mmoe-degrades-least",
    "omoe-equals-mmoe-at-1",
    "moe-beats-shared-bottom",
    "shared-bottom-widest-spread",
];

fn study(out: &Path, runs: usize, extra: &[&str]) -> std::process::Output {
    let out = out.to_str().unwrap();
    let runs = runs.to_string();
    let mut args = vec![
        "repro",
        "mmoe-synthetic",
        "--runs",
        &runs,
        "--pilots",
        "1",
        "--steps",
        "30",
        "--every",
        "10",
        "--train-rows",
        "400",
        "--eval-rows",
        "100",
        "--batch-size",
        "64",
        "--jobs",
        "2",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    mtrec(&args)
}

/// Decodes a PNG fully and returns its size.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    // A drawn figure, not a blank canvas.
    assert!(pixels.iter().any(|&p| p < 128), "{}", path.display());
    (info.width, info.height)
}

/// Equal up to float parsing: serde_json's default parser may miss the last bit.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(1.0)
}

#[test]
fn a_small_study_writes_consistent_figures_report_and_data_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("study");
    let o = study(&out, 2, &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));

    for f in [
        "figure4.png",
        "figure4.svg",
        "figure5.png",
        "figure5.svg",
        "curves.csv",
        "final_losses.csv",
        "summary.json",
        "report.md",
        "runs.jsonl",
        "settings.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // Figure 4: 3 x 2 panels of 520 x 380; figure 5: 3 x 1.
    assert_eq!(png_size(&out.join("figure4.png")), (1560, 760));
    assert_eq!(png_size(&out.join("figure5.png")), (1560, 380));
    for f in ["figure4.svg", "figure5.svg"] {
        let svg = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("MMoE"), "{f}");
    }

    // --json prints what summary.json holds.
    let summary: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary, saved);

    // 27 pilots (3 models x 3 rates x 3 correlations) and 18 main runs, all recorded.
    let records = json_lines(&out.join("runs.jsonl"));
    let phase = |p: &str| records.iter().filter(|r| r["phase"] == p).count();
    assert_eq!((phase("pilot"), phase("main")), (27, 18));

    // Each cell's statistics, recomputed from the runs: the final loss is the last curve
    // point, and the curve's mean at every step is the mean of the runs' test losses there.
    let cells = summary["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 9);
    for cell in cells {
        let (model, corr, lr) = (&cell["model"], &cell["correlation"], &cell["learning_rate"]);
        let chosen = &summary["learning_rates"][model.as_str().unwrap()]["chosen"];
        assert_eq!(lr, chosen);
        // In run order (the file has them in the order they finished).
        let mut runs: Vec<&Value> = records
            .iter()
            .filter(|r| {
                r["phase"] == "main"
                    && &r["model"] == model
                    && &r["correlation"] == corr
                    && &r["learning_rate"] == lr
            })
            .collect();
        runs.sort_by_key(|r| r["run"].as_u64());
        assert_eq!(runs.len(), 2);
        let curve = &cell["curve"];
        let steps: Vec<u64> = curve["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_u64().unwrap())
            .collect();
        assert_eq!(steps, [0, 10, 20, 30]);
        for i in 0..steps.len() {
            let mean = runs
                .iter()
                .map(|r| r["test_loss"][i].as_f64().unwrap())
                .sum::<f64>()
                / 2.0;
            assert!(close(curve["mean"][i].as_f64().unwrap(), mean), "{cell}");
        }
        let last = curve["mean"].as_array().unwrap().last().unwrap();
        assert!(close(
            cell["final"]["mean"].as_f64().unwrap(),
            last.as_f64().unwrap()
        ));
        let finals: Vec<f64> = runs
            .iter()
            .map(|r| {
                r["test_loss"]
                    .as_array()
                    .unwrap()
                    .last()
                    .unwrap()
                    .as_f64()
                    .unwrap()
            })
            .collect();
        let values: Vec<f64> = cell["final"]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(values.len(), finals.len());
        for (v, f) in values.iter().zip(&finals) {
            assert!(close(*v, *f), "{values:?} vs {finals:?}");
        }
    }

    // The chosen rate has the lowest mean pilot validation loss of its model.
    for (model, choice) in summary["learning_rates"].as_object().unwrap() {
        let best = choice["pilots"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["mean_valid_loss"].is_number())
            .min_by(|a, b| {
                a["mean_valid_loss"]
                    .as_f64()
                    .unwrap()
                    .total_cmp(&b["mean_valid_loss"].as_f64().unwrap())
            })
            .unwrap();
        assert_eq!(best["learning_rate"], choice["chosen"], "{model}");
    }

    // The CSVs hold the same numbers: a final_losses.csv row per run, curves.csv a row per
    // cell and step.
    let csv = std::fs::read_to_string(out.join("final_losses.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 27 + 18);
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let mut from_csv: BTreeMap<String, f64> = BTreeMap::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f[col("phase")] == "main" {
            let key = format!(
                "{}/{}/{}",
                f[col("model")],
                f[col("correlation")],
                f[col("run")]
            );
            from_csv.insert(key, f[col("final_test_loss")].parse().unwrap());
        }
    }
    for r in records.iter().filter(|r| r["phase"] == "main") {
        let key = format!(
            "{}/{}/{}",
            r["model"].as_str().unwrap(),
            r["correlation"],
            r["run"]
        );
        let last = r["test_loss"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_f64()
            .unwrap();
        assert!(close(from_csv[&key], last), "{key}");
    }
    let curves = std::fs::read_to_string(out.join("curves.csv")).unwrap();
    assert_eq!(curves.lines().count(), 1 + 9 * 4);

    // The report states a verdict for every observation, with its test.
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    let observations = summary["observations"].as_array().unwrap();
    for id in OBSERVATIONS {
        let o = observations.iter().find(|o| o["id"] == id).unwrap();
        let verdict = o["verdict"].as_str().unwrap();
        assert!(!verdict.is_empty());
        let heading = report
            .lines()
            .find(|l| l.starts_with("### ") && l.contains(id))
            .unwrap_or_else(|| panic!("no section for {id}"));
        assert!(heading.contains("**"), "{heading}");
        assert!(report.contains("Test: "));
    }
    assert!(report.contains("figure4.png") && report.contains("figure5.png"));
    assert!(report.contains("Welch"));
    // Two runs per cell: the report warns, before any verdict, that they mean nothing.
    let warning = report
        .find("**Warning.** Smoke test: 2 run(s) per cell")
        .expect("no caveat in report.md");
    assert!(warning < report.find("## The paper's observations").unwrap());
    assert!(
        summary["caveat"]
            .as_str()
            .unwrap()
            .contains("say nothing about the models")
    );

    // Again: nothing to run, nothing appended, the same numbers.
    let again = study(&out, 2, &["--json"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(json_lines(&out.join("runs.jsonl")).len(), 45);
    let summary_again: Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(summary_again["cells"], summary["cells"]);
    assert_eq!(summary_again["timing"]["session"]["ran"], 0);

    // More runs per cell add exactly the missing ones.
    let more = study(&out, 3, &[]);
    assert!(more.status.success(), "{}", stderr(&more));
    assert_eq!(json_lines(&out.join("runs.jsonl")).len(), 45 + 9);
    let shown = stdout(&more);
    assert!(shown.contains("report:"));
    assert!(
        shown.contains("NOTE: Smoke test: 3 run(s) per cell"),
        "{shown}"
    );
    // The full study's cost is projected at its own 10,000 steps, not these runs' 30.
    assert!(
        shown.contains("at 30 steps; the full study (200 runs per cell")
            && shown.contains("scaled from 30 to 10000 steps"),
        "{shown}"
    );

    // Other settings in the same folder are refused, naming the difference.
    let other = mtrec(&[
        "repro",
        "mmoe-synthetic",
        "--runs",
        "2",
        "--pilots",
        "1",
        "--steps",
        "40",
        "--every",
        "10",
        "--train-rows",
        "400",
        "--eval-rows",
        "100",
        "--batch-size",
        "64",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_clean_failure(&other, &["other settings", "`steps` is 40 now but was 30"]);
}

#[test]
fn bad_arguments_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    let o = study(&out, 0, &[]);
    assert_clean_failure(&o, &["--runs must be between 1"]);
    let o = mtrec(&[
        "repro",
        "mmoe-synthetic",
        "--steps",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, &["steps must be at least 1"]);
}
