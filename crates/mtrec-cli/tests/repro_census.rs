//! `mtrec repro census`: the quick study runs end to end, its table agrees with the runs'
//! own metrics, a second invocation redoes nothing, and bad inputs stop it before any work.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{assert_clean_failure, mtime, mtrec, project_root, stderr, stdout};

const QUICK_MODELS: [&str; 3] = ["single-task", "shared-bottom", "mmoe"];
const QUICK_RUNS: usize = 3;
/// t(0.975, 2), the textbook two-sided 95 % quantile for 3 runs (e.g. NIST's t table: 4.303).
const T_975_DF2: f64 = 4.302_652_729_911_275;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// CSV rows keyed by (model, task), as field name -> value.
fn csv_rows(text: &str) -> BTreeMap<(String, String), BTreeMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|line| {
            let row: BTreeMap<String, String> = header
                .iter()
                .zip(line.split(','))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            ((row["model"].clone(), row["task"].clone()), row)
        })
        .collect()
}

fn num(row: &BTreeMap<String, String>, key: &str) -> f64 {
    row[key]
        .parse()
        .unwrap_or_else(|e| panic!("{key} = {:?}: {e}", row[key]))
}

#[test]
fn quick_study_runs_end_to_end_matches_its_runs_and_resumes_without_redoing_work() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("census");
    let out_s = out.to_str().unwrap();
    let args = [
        "--threads",
        "2",
        "repro",
        "census",
        "--quick",
        "--out",
        out_s,
    ];
    let o = mtrec(&args);
    assert!(o.status.success(), "{}", stderr(&o));

    // Outputs exist: the report, the tunings, the tuned configs, the grid and its runs.
    for f in [
        "census.md",
        "census.csv",
        "census.json",
        "grid.toml",
        "settings.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    for m in QUICK_MODELS {
        let id = format!("census-g1-{m}");
        assert!(out.join("tune").join(&id).join("best.toml").is_file());
        assert_eq!(
            read(&out.join("tune").join(&id).join("trials.jsonl"))
                .lines()
                .count(),
            3,
            "{id}: the quick budget is 3 trials"
        );
        assert_eq!(
            read(&out.join("configs").join(format!("{id}.toml"))),
            read(&out.join("tune").join(&id).join("best.toml")),
            "{id}: the runs train the tuned config"
        );
    }

    // One row per model and task, n = R, and the statistics recomputed here from the runs'
    // own metrics.json files: mean, sample std and the t interval.
    let rows = csv_rows(&read(&out.join("census.csv")));
    assert_eq!(rows.len(), QUICK_MODELS.len() * 2, "{rows:?}");
    for m in QUICK_MODELS {
        for task in ["income", "marital"] {
            let row = &rows[&(m.to_string(), task.to_string())];
            assert_eq!(row["group"], "1");
            assert_eq!(row["main_task"], (task == "income").to_string());
            assert_eq!(row["n"], QUICK_RUNS.to_string(), "{m} {task}");
            let values: Vec<f64> = (1..=QUICK_RUNS)
                .map(|seed| {
                    let dir = out.join("runs").join(format!("census-g1-{m}-s{seed}"));
                    let metrics: serde_json::Value =
                        serde_json::from_str(&read(&dir.join("metrics.json"))).unwrap();
                    let config: toml::Table = read(&dir.join("config.toml")).parse().unwrap();
                    assert_eq!(
                        config["train"]["seed"].as_integer(),
                        Some(seed as i64),
                        "{m} s{seed}"
                    );
                    metrics["tasks"][task]["auc"].as_f64().unwrap()
                })
                .collect();
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
            let half = T_975_DF2 * std / n.sqrt();
            for (key, expected) in [
                ("mean", mean),
                ("std", std),
                ("ci95_low", mean - half),
                ("ci95_high", mean + half),
                ("ci95_half_width", half),
            ] {
                let got = num(row, key);
                assert!(
                    (got - expected).abs() < 1e-9,
                    "{m} {task} {key}: table {got}, recomputed {expected}"
                );
            }
        }
    }

    // The markdown states the protocol and has a row per model; the terminal shows the table.
    let md = read(&out.join("census.md"));
    for needle in [
        "Our protocol",
        "split 50/25/25",
        "2048 hidden units",
        "`--set train.epochs=1`",
        "| Single-Task |",
        "| Shared-Bottom |",
        "| MMoE |",
        "## Tuned values",
        "model.n_experts=",
    ] {
        assert!(md.contains(needle), "census.md lacks {needle:?}:\n{md}");
    }
    let shown = stdout(&o);
    assert!(
        shown.contains("MMoE") && shown.contains("mean ± 95% CI"),
        "{shown}"
    );
    // The study's own table, not the inner grid's hint to compare its runs.
    assert!(!shown.contains("compare them:"), "{shown}");

    // The same command again: no trial and no run is repeated, the table is the same.
    let trials_before: Vec<String> = QUICK_MODELS
        .iter()
        .map(|m| read(&out.join(format!("tune/census-g1-{m}/trials.jsonl"))))
        .collect();
    let results_before = read(&out.join("runs/results.jsonl"));
    let metrics = out.join("runs/census-g1-mmoe-s2/metrics.json");
    let metrics_time = mtime(&metrics);
    let csv_before = read(&out.join("census.csv"));
    let o = mtrec(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let trials_after: Vec<String> = QUICK_MODELS
        .iter()
        .map(|m| read(&out.join(format!("tune/census-g1-{m}/trials.jsonl"))))
        .collect();
    assert_eq!(trials_before, trials_after, "a finished tuning ran again");
    assert_eq!(
        results_before,
        read(&out.join("runs/results.jsonl")),
        "a finished run ran again"
    );
    assert_eq!(metrics_time, mtime(&metrics), "a run folder was rewritten");
    assert_eq!(csv_before, read(&out.join("census.csv")));

    // Other settings into the same folder are refused rather than pooled.
    let mut other = args.to_vec();
    other.extend(["--set", "train.epochs=2"]);
    let o = mtrec(&other);
    assert_clean_failure(&o, &["made with other settings", "another --out"]);
}

/// A folder with the zoo's MMoE config and a space of our own, for `--configs`.
fn configs_with_space(dir: &Path, space: &str) -> String {
    std::fs::create_dir_all(dir.join("tune")).unwrap();
    std::fs::copy(
        project_root().join("configs/census-g1-mmoe.toml"),
        dir.join("census-g1-mmoe.toml"),
    )
    .unwrap();
    std::fs::write(dir.join("tune/census-g1-mmoe.toml"), space).unwrap();
    dir.to_str().unwrap().to_string()
}

#[test]
fn bad_inputs_stop_the_study_before_any_work_with_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out_s = out.to_str().unwrap();
    let base = ["repro", "census", "--quick", "--out", out_s];
    let with = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        mtrec(&a)
    };

    assert_clean_failure(
        &with(&["--models", "mmoe,mmeo"]),
        &["unknown model `mmeo`", "single-task", "adatt-sp"],
    );
    assert_clean_failure(&with(&["--groups", "3"]), &["task groups 1", "not 3"]);
    assert_clean_failure(&with(&["--runs", "0"]), &["--runs must be at least 1"]);

    // A train file that is not the official one: its hash is named against the official.
    let fake = tmp.path().join("census-income.data");
    std::fs::write(&fake, "not, the, census\n").unwrap();
    assert_clean_failure(
        &with(&["--train-file", fake.to_str().unwrap()]),
        &[
            "is not that of the official census-income.data",
            "3676a81db7d3528f3f8b9f3c699d0f0aa28db45e6e994fa0b8ed38327539ee86",
            fake.to_str().unwrap(),
        ],
    );
    assert_clean_failure(
        &with(&["--train-file", "/no/such/census-income.data"]),
        &["/no/such/census-income.data"],
    );

    // A space wider than the cap (32 experts of up to 128 units) is refused, at its line.
    let space = read(&project_root().join("configs/tune/census-g1-mmoe.toml"));
    let wide = configs_with_space(
        &tmp.path().join("wide"),
        &space.replace("max = 16", "max = 32"),
    );
    assert_clean_failure(
        &with(&["--models", "mmoe", "--configs", &wide]),
        &[
            "census-g1-mmoe.toml line",
            "4096 hidden units, above the cap of 2048",
        ],
    );
    // A space tuned on another figure than the main task's validation AUC.
    let marital = configs_with_space(
        &tmp.path().join("marital"),
        &space.replace("valid.income.auc", "valid.marital.auc"),
    );
    assert_clean_failure(
        &with(&["--models", "mmoe", "--configs", &marital]),
        &["objective must be metric = \"valid.income.auc\""],
    );
    // A missing config names where it was looked for.
    assert_clean_failure(
        &with(&["--models", "ple", "--configs", &marital]),
        &["census-g1-ple.toml: no such zoo config"],
    );
    assert!(
        !out.exists(),
        "nothing may be written before the checks pass"
    );
}

#[test]
fn help_shows_examples_and_the_models() {
    let o = mtrec(&["repro", "census", "--help"]);
    assert!(o.status.success());
    let s = stdout(&o);
    for needle in [
        "mtrec repro census --quick",
        "--train-file",
        "tensor-factorization",
    ] {
        assert!(s.contains(needle), "{needle}: {s}");
    }
}
