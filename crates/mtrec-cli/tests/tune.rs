//! `mtrec tune` end to end on tiny synthetic trainings (one epoch of a few hundred rows):
//! trials, the log, resuming, a failing trial, best.toml, and bad space files.

mod common;

use std::path::Path;

use common::{assert_clean_failure, json_lines, mtrec, stderr, stdout};

/// Every trial trains one epoch on 256 rows with one thread.
const TINY: [&str; 10] = [
    "--set",
    "train.epochs=1",
    "--set",
    "data.n_train=256",
    "--set",
    "data.n_valid=128",
    "--set",
    "data.n_test=64",
    "--set",
    "train.batch_size=64",
];

const SPACE: &str = r#"
trials = 3
initial = 2
seed = 1

[objective]
metric = "valid.task1.mse"

[[param]]
key = "train.learning_rate"
min = 1e-3
max = 1e-1
log = true

[[param]]
key = "model.n_experts"
type = "int"
min = 2
max = 4

[[param]]
key = "model.expert"
type = "int"
min = 4
max = 8
layers = 1
"#;

fn tune(space: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    tune_config("configs/synthetic-mmoe.toml", space, out, extra)
}

fn tune_config(config: &str, space: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "--threads",
        "1",
        "tune",
        "--config",
        config,
        "--space",
        space.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(TINY);
    args.extend(extra);
    mtrec(&args)
}

fn log_lines(out: &Path) -> Vec<serde_json::Value> {
    json_lines(&out.join("trials.jsonl"))
}

#[test]
fn tunes_writes_best_config_and_resumes_to_a_larger_budget() {
    let dir = tempfile::tempdir().unwrap();
    let space = dir.path().join("space.toml");
    std::fs::write(&space, SPACE).unwrap();
    let out = dir.path().join("tune");

    let o = tune(&space, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = log_lines(&out);
    assert_eq!(lines.len(), 3);
    for (k, line) in lines.iter().enumerate() {
        assert_eq!(line["trial"], k + 1);
        assert_eq!(line["status"], "ok", "{line}");
        assert_eq!(line["metric"], "valid.task1.mse");
        assert!(line["objective"].as_f64().unwrap() > 0.0);
        assert!(line["wall_seconds"].as_f64().unwrap() > 0.0);
        let metrics =
            std::fs::read_to_string(out.join(format!("trials/{}/metrics.json", k + 1))).unwrap();
        let metrics: serde_json::Value = serde_json::from_str(&metrics).unwrap();
        // Each trial's run is named apart, so compare and report never pool trials.
        assert_eq!(metrics["name"], format!("synthetic-mmoe-trial-{}", k + 1));
        assert!(line["command"].as_str().unwrap().contains("train --config"));
    }
    let sources: Vec<&str> = lines
        .iter()
        .map(|l| l["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["design", "design", "gp"]);

    // The table ranks trials by the objective (an MSE: smallest first).
    let table = stdout(&o);
    assert!(
        table.contains("valid.task1.mse") && table.contains("model.n_experts"),
        "{table}"
    );
    let best = lines
        .iter()
        .min_by(|a, b| {
            a["objective"]
                .as_f64()
                .partial_cmp(&b["objective"].as_f64())
                .unwrap()
        })
        .unwrap();
    assert!(
        table.contains(&format!("best: trial {}", best["trial"])),
        "{table}"
    );

    // best.toml is a full config with the best trial's values, under its own name.
    let cfg = mtrec_engine::ExperimentConfig::from_toml_file(&out.join("best.toml")).unwrap();
    assert_eq!(cfg.name, "synthetic-mmoe-tuned");
    assert_eq!(cfg.train.epochs, 1, "the fixed --set values are kept");
    // Its header's command line pastes into a shell: a list value is quoted.
    let text = std::fs::read_to_string(out.join("best.toml")).unwrap();
    let header: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).collect();
    assert!(
        header[1].starts_with(
            "# Equivalent to: mtrec train --config configs/synthetic-mmoe.toml --set train.epochs=1"
        ) && header[1].contains(" --set 'model.expert=["),
        "{text}"
    );
    // The shortened budget is kept, and said so, with the way back to the config's own (30).
    assert!(
        header[2].contains("shortened budget")
            && header[2].contains("best.toml --set train.epochs=30"),
        "{text}"
    );
    let err = stderr(&o);
    assert!(
        err.contains("keeps this tuning's shortcuts (--set train.epochs=1)")
            && err.contains("best.toml --set train.epochs=30"),
        "{err}"
    );
    assert_eq!(
        cfg.train.learning_rate,
        best["params"]["train.learning_rate"].as_f64().unwrap()
    );
    let model = toml::Value::try_from(&cfg.model).unwrap();
    assert_eq!(
        model["n_experts"].as_integer(),
        best["params"]["model.n_experts"].as_i64()
    );
    assert_eq!(
        model["expert"][0].as_integer(),
        best["params"]["model.expert"][0].as_i64()
    );
    let svg = std::fs::read_to_string(out.join("objective.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("best so far"));

    // A larger budget continues from the log: the first three lines stay as they were.
    let o = tune(&space, &out, &["--trials", "4", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let again = log_lines(&out);
    assert_eq!(again.len(), 4);
    assert_eq!(&again[..3], &lines[..]);
    let summary: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(summary["trials"].as_array().unwrap().len(), 4);
    assert_eq!(summary["metric"], "valid.task1.mse");
    assert_eq!(summary["shortcuts"], serde_json::json!(["train.epochs=1"]));
    assert!(
        summary["retrain"]
            .as_str()
            .unwrap()
            .ends_with("best.toml --set train.epochs=30"),
        "{summary}"
    );

    // A finished budget runs nothing more.
    let o = tune(&space, &out, &["--trials", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(log_lines(&out).len(), 4);
}

#[test]
fn a_failing_trial_is_logged_and_the_tuning_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let space = dir.path().join("space.toml");
    // An empty validation split fails at training time, after the config is accepted; the
    // design gives each of the two values one of the two first trials.
    std::fs::write(
        &space,
        "trials = 3\ninitial = 2\n[objective]\nmetric = \"valid.loss\"\n\
         [[param]]\nkey = \"data.n_valid\"\nvalues = [0, 128]\n",
    )
    .unwrap();
    let out = dir.path().join("tune");
    // TINY less its data.n_valid, which the space tunes here (a --set of it is refused).
    let mut args = vec![
        "--threads",
        "1",
        "tune",
        "--config",
        "configs/synthetic-mmoe.toml",
        "--space",
        space.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    for pair in TINY
        .chunks(2)
        .filter(|p| !p[1].starts_with("data.n_valid="))
    {
        args.extend(pair);
    }
    let o = common::mtrec(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = log_lines(&out);
    assert_eq!(lines.len(), 3);
    let failed: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["status"] == "failed").collect();
    assert!(!failed.is_empty());
    for f in &failed {
        assert_eq!(f["params"]["data.n_valid"], 0);
        assert!(f["objective"].is_null());
        let e = f["error"].as_str().unwrap();
        assert!(e.contains("must not be empty"), "{e}");
    }
    assert!(lines.iter().any(|l| l["status"] == "ok"));
    // The failed config is not proposed twice: the third trial is the other value.
    assert_eq!(failed.len(), 1, "{lines:?}");
    assert!(out.join("best.toml").exists());
    assert!(stdout(&o).contains("failed: "), "{}", stdout(&o));
}

#[test]
fn bad_space_files_stop_before_any_trial() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[objective]\nmetric = \"valid.loss\"\n[[param]]\nkey = \"model.n_expert\"\ntype = \"int\"\nmin = 2\nmax = 4\n",
            vec![
                "space.toml line 4",
                "param `model.n_expert`",
                "unknown field `n_expert`",
            ],
        ),
        (
            "[objective]\nmetric = \"valid.loss\"\n[[param]]\nkey = \"model.n_experts\"\nmin = 2\nmax = 4\n",
            vec!["param `model.n_experts`", "type = \"int\""],
        ),
        (
            "[objective]\nmetric = \"valid.loss\"\n[[param]]\nkey = \"train.learning_rate\"\nmin = 0.1\nmax = 0.01\n",
            vec!["space.toml line 4", "min (0.1) must be below max (0.01)"],
        ),
        (
            "[objective]\nmetric = \"valid.loss\"\n[[param]]\nkey = \"train.weight_decay\"\nmin = 0.0\nmax = 0.01\nlog = true\n",
            vec!["log scale needs min > 0"],
        ),
        (
            "[objective]\nmetric = \"test.task1.mse\"\n[[param]]\nkey = \"train.learning_rate\"\nmin = 0.01\nmax = 0.1\n",
            vec!["space.toml line 2", "validation figures only"],
        ),
    ];
    for (text, needles) in cases {
        let space = dir.path().join("space.toml");
        std::fs::write(&space, text).unwrap();
        let out = dir.path().join("never");
        let o = tune(&space, &out, &[]);
        assert_clean_failure(&o, &needles);
        assert!(!out.join("trials.jsonl").exists(), "{text}");
    }
}

#[test]
fn an_objective_the_runs_cannot_report_stops_without_logging() {
    let dir = tempfile::tempdir().unwrap();
    let space = dir.path().join("space.toml");
    std::fs::write(
        &space,
        "trials = 2\n[objective]\nmetric = \"valid.income.auc\"\n[[param]]\nkey = \"train.learning_rate\"\nmin = 0.001\nmax = 0.01\n",
    )
    .unwrap();
    let out = dir.path().join("tune");
    let o = tune(&space, &out, &[]);
    assert_clean_failure(&o, &["no task `income` (tasks: task1, task2)"]);
    let log = out.join("trials.jsonl");
    assert!(!log.exists() || std::fs::read_to_string(&log).unwrap().is_empty());
    // Known before any trial trains: none has a folder.
    assert!(!out.join("trials/1").exists());
    for (metric, needle) in [
        ("valid.task1.auc", "task `task1` has no auc"),
        ("valid.mean-auc", "no task has a validation AUC"),
    ] {
        std::fs::write(
            &space,
            format!("trials = 2\n[objective]\nmetric = \"{metric}\"\n[[param]]\nkey = \"train.learning_rate\"\nmin = 0.001\nmax = 0.01\n"),
        )
        .unwrap();
        let o = tune(&space, &out, &[]);
        assert_clean_failure(&o, &["space.toml: objective", needle]);
        assert!(!out.join("trials/1").exists());
    }
}

#[test]
fn a_resume_with_other_settings_is_refused_naming_the_difference() {
    let dir = tempfile::tempdir().unwrap();
    let space = dir.path().join("space.toml");
    std::fs::write(&space, SPACE).unwrap();
    let out = dir.path().join("tune");
    let o = tune(&space, &out, &["--trials", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("settings.json")).unwrap()).unwrap();
    assert_eq!(saved["config"], "configs/synthetic-mmoe.toml");
    assert_eq!(saved["config_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(saved["objective"], "valid.task1.mse");
    assert!(
        saved["sets"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("train.epochs=1")),
        "{saved}"
    );

    // Each would run a second trial under other settings and rank it with the first.
    let cases: [(&str, Vec<&str>, &str); 3] = [
        (
            "configs/synthetic-mmoe.toml",
            vec!["--set", "train.epochs=2"],
            "--set train.epochs=2 now, but they had --set train.epochs=1",
        ),
        (
            "configs/synthetic-mmoe.toml",
            vec!["--set", "train.weight_decay=0.01"],
            "--set train.weight_decay=0.01 now, which they did not have",
        ),
        (
            "configs/synthetic-omoe.toml",
            vec![],
            "--config configs/synthetic-omoe.toml now, but they were made with configs/synthetic-mmoe.toml",
        ),
    ];
    for (config, sets, needle) in cases {
        let mut extra = vec!["--trials", "2"];
        extra.extend(sets);
        let o = tune_config(config, &space, &out, &extra);
        assert_clean_failure(
            &o,
            &["were made with other settings", needle, "another --out"],
        );
        assert_eq!(log_lines(&out).len(), 1, "{config}");
        assert!(!out.join("trials/2").exists());
    }

    // The same settings in another order resume (the budget is spent: nothing runs).
    let mut reordered: Vec<&str> = vec![
        "--threads",
        "1",
        "tune",
        "--config",
        "configs/synthetic-mmoe.toml",
        "--space",
        space.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--trials",
        "1",
    ];
    for pair in TINY.chunks(2).rev() {
        reordered.extend(pair);
    }
    let o = common::mtrec(&reordered);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(log_lines(&out).len(), 1);

    // A folder from before settings were saved resumes, with a warning, and gets them.
    std::fs::remove_file(out.join("settings.json")).unwrap();
    let o = common::mtrec(&reordered);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("no settings.json"), "{}", stderr(&o));
    assert!(out.join("settings.json").exists());
}

#[test]
fn a_second_tuning_of_the_same_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let space = dir.path().join("space.toml");
    std::fs::write(&space, SPACE).unwrap();
    let out = dir.path().join("tune");
    std::fs::create_dir_all(&out).unwrap();
    // This test holds the lock a running tuning would hold.
    let held = std::fs::File::create(out.join(".tune.lock")).unwrap();
    held.try_lock().unwrap();
    let o = tune(&space, &out, &[]);
    assert_clean_failure(
        &o,
        &[&format!(
            "another `mtrec tune` is working on {}",
            out.display()
        )],
    );
    assert!(!out.join("trials.jsonl").exists());
    assert!(!out.join("trials/1").exists());
}

#[test]
fn a_fixed_value_for_a_tuned_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let space = dir.path().join("space.toml");
    std::fs::write(&space, SPACE).unwrap();
    let out = dir.path().join("tune");
    let o = tune(&space, &out, &["--set", "model.n_experts=3"]);
    assert_clean_failure(
        &o,
        &[
            "--set model.n_experts=3",
            "`model.n_experts` is tuned",
            "space.toml line 16",
        ],
    );
    assert!(!out.join("trials.jsonl").exists());
}

#[test]
fn a_failure_every_design_trial_shares_stops_the_tuning() {
    let dir = tempfile::tempdir().unwrap();
    let space = dir.path().join("space.toml");
    std::fs::write(&space, SPACE.replace("trials = 3", "trials = 5")).unwrap();
    let out = dir.path().join("tune");
    // An empty validation split fails every trial in training, whatever its values.
    let o = tune(&space, &out, &["--set", "data.n_valid=0"]);
    assert_clean_failure(
        &o,
        &[
            "the first 2 trials all failed with the same error",
            "must not be empty",
        ],
    );
    let lines = log_lines(&out);
    assert_eq!(
        lines.len(),
        2,
        "the other 3 trials of the budget are not run"
    );
    assert!(lines.iter().all(|l| l["status"] == "failed"));
}

#[test]
fn help_shows_examples_and_the_space_format() {
    let o = mtrec(&["tune", "--help"]);
    assert!(o.status.success());
    let s = stdout(&o);
    assert!(s.contains("mtrec tune --config"), "{s}");
    assert!(
        s.contains("[[param]]") && s.contains("valid.mean-auc"),
        "{s}"
    );
}

#[test]
fn the_shipped_census_space_fits_its_config() {
    let text =
        std::fs::read_to_string(common::project_root().join("configs/tune/census-g1-mmoe.toml"))
            .unwrap();
    let space = mtrec_tune::Space::from_toml_str(&text, Path::new("census-g1-mmoe.toml")).unwrap();
    assert_eq!(space.objective.metric.to_string(), "valid.income.auc");
    let keys: Vec<&str> = space.params.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["train.learning_rate", "model.n_experts", "model.expert"]
    );
    // Each extreme applies to the config it is written for.
    let config = common::project_root().join("configs/census-g1-mmoe.toml");
    for p in &space.params {
        for value in p.extremes() {
            let set = mtrec_engine::config::Override {
                path: p.key.split('.').map(str::to_string).collect(),
                value,
            };
            mtrec_engine::ExperimentConfig::from_toml_file_with(&config, &[set]).unwrap();
        }
    }
}
