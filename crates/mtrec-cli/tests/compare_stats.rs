//! `mtrec compare` with statistics: confidence intervals, Δm against Single-Task and tests over
//! shared seeds, in the table, the JSON and the CSV. Runs are written by hand (metrics.json and
//! the saved config.toml that carries the seed), so the figures are known.

mod common;

use std::path::Path;

use common::{assert_clean_failure, mtrec, stdout};

/// A run folder as `mtrec train` leaves it, as far as `compare` reads it.
fn run(root: &Path, dir: &str, name: &str, model: &str, seed: u64, income: f64, age: f64) {
    let d = root.join(dir);
    std::fs::create_dir_all(&d).unwrap();
    let metrics = serde_json::json!({"name": name, "model": model, "wall_seconds": 10.0,
        "tasks": {"income": {"auc": income, "logloss": 0.2, "n": 100}, "age": {"mse": age, "n": 100}}});
    std::fs::write(d.join("metrics.json"), metrics.to_string()).unwrap();
    std::fs::write(
        d.join("config.toml"),
        format!("name = \"{name}\"\n\n[train]\nseed = {seed}\nepochs = 3\n"),
    )
    .unwrap();
}

/// Single-Task and MMoE on seeds 1-3, PLE on seeds 1-2. The AUCs are binary fractions, so
/// differences are exact: PLE is exactly 0.0625 below MMoE on both its seeds.
fn runs(root: &Path) -> Vec<String> {
    for (seed, st, mt, ple) in [
        (1, 0.75, 0.8125, 0.75),
        (2, 0.75, 0.875, 0.8125),
        (3, 0.75, 0.9375, 0.0),
    ] {
        run(
            root,
            &format!("st-s{seed}"),
            "st",
            "single-task",
            seed,
            st,
            2.0,
        );
        run(root, &format!("mt-s{seed}"), "mt", "mmoe", seed, mt, 1.8);
        if ple > 0.0 {
            run(root, &format!("ple-s{seed}"), "ple", "ple", seed, ple, 1.9);
        }
    }
    let mut dirs: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn table_shows_intervals_delta_m_and_tests() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = runs(tmp.path());
    let args: Vec<&str> = std::iter::once("compare")
        .chain(dirs.iter().map(String::as_str))
        .collect();
    let o = mtrec(&args);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let s = stdout(&o);
    // MMoE income: mean 0.875, std 0.0625, 95 % CI 0.875 ± 4.3027 · 0.0625 / √3 (scipy's
    // t.interval: 0.71974, 1.03026).
    assert!(s.contains("0.8750 ± 0.0625 [0.7197, 1.0303]"), "{s}");
    // Δm by hand: income 0.875 vs 0.75 is +16.667 %, age 1.8 vs 2.0 (lower is better) +10 %:
    // +13.333 %.
    assert!(s.contains("Δm %") && s.contains("+13.333"), "{s}");
    assert!(s.contains("reference"), "{s}");
    assert!(
        s.contains("Wilcoxon p") && s.contains("shared seeds"),
        "{s}"
    );
    assert!(s.contains("95 % confidence interval"), "{s}");
}

#[test]
fn json_and_csv_carry_the_statistics() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = runs(tmp.path());
    let csv = tmp.path().join("out.csv");
    let csv_arg = csv.display().to_string();
    let mut args = vec!["compare", "--json", "--csv", &csv_arg, "--baseline", "mt"];
    args.extend(dirs.iter().map(String::as_str));
    let o = mtrec(&args);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let groups: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let groups = groups.as_array().unwrap();
    let names: Vec<&str> = groups.iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["mt", "ple", "st"]);
    let mt = &groups[0];
    assert_eq!(mt["runs"], 3);
    assert_eq!(mt["seeds"], serde_json::json!([1, 2, 3]));
    assert_eq!(mt["metric"]["age"], "mse");
    assert_eq!(mt["tasks"]["income"]["n"], 3);
    assert!(mt["tasks"]["income"]["ci95"].as_array().unwrap().len() == 2);
    assert_eq!(mt["delta_m"]["reference"], "st");
    assert!((mt["delta_m"]["percent"].as_f64().unwrap() - 40.0 / 3.0).abs() < 1e-9);
    // The baseline is not tested against itself.
    assert!(mt["tests"].as_object().unwrap().is_empty());
    let ple = &groups[1]["tests"]["income"];
    assert_eq!(ple["reference"], "mt");
    // PLE ran seeds 1 and 2, both 0.0625 below MMoE: no spread, a paired t of -inf (null), p 0.
    assert_eq!(ple["shared_seeds"], 2);
    assert_eq!(ple["paired_t"]["p_value"], 0.0);
    // Wilcoxon over 2 pairs in one direction: p = 2 / 2^2.
    assert_eq!(ple["wilcoxon"]["p_value"], 0.5);
    assert_eq!(ple["wilcoxon"]["method"], "exact");
    assert_eq!(ple["welch"]["test"], "welch-t");

    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("run,model,runs,task,metric,mean,std,wall_seconds_mean,n,ci95_low"),
        "{header}"
    );
    let cols: Vec<&str> = header.split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 6, "{text}");
    let col =
        |row: &[&str], name: &str| row[cols.iter().position(|c| *c == name).unwrap()].to_string();
    let ple_income = rows
        .iter()
        .find(|r| r[0] == "ple" && r[3] == "income")
        .unwrap();
    assert_eq!(col(ple_income, "vs"), "mt");
    assert_eq!(col(ple_income, "wilcoxon_p"), "0.5");
    assert_eq!(col(ple_income, "delta_m_reference"), "st");
    let st_row = rows.iter().find(|r| r[0] == "st").unwrap();
    assert_eq!(col(st_row, "delta_m_percent"), "");
}

#[test]
fn bad_inputs_fail_with_the_file_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = runs(tmp.path());
    let o = mtrec(&["compare", &dirs[0], "--baseline", "nope"]);
    assert_clean_failure(&o, &["--baseline `nope`"]);

    let log = tmp.path().join("mmoe-s2.err");
    std::fs::write(&log, "2026-11-29T15:03:49Z WARN something\n").unwrap();
    let o = mtrec(&["compare", &dirs[0], &log.display().to_string()]);
    assert_clean_failure(&o, &["mmoe-s2.err", "metrics.json"]);
}

/// A run with extra config lines (another setting under the same name).
fn run_with(root: &Path, dir: &str, name: &str, seed: u64, income: f64, extra: &str) {
    run(root, dir, name, "mmoe", seed, income, 1.8);
    let config = root.join(dir).join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(extra);
    std::fs::write(config, text).unwrap();
}

/// Two configs named alike but with 2 and 8 experts, seeds 1-2 each: two rows labelled with
/// the expert count and a note; one pooled row of n = 4 would hide the difference.
#[test]
fn one_name_with_two_settings_is_two_rows_and_a_note() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for (seed, two, eight) in [(1, 0.8125, 0.75), (2, 0.875, 0.8125)] {
        let cell = |n| format!("[model]\nkind = \"mmoe\"\nn_experts = {n}\n");
        run_with(root, &format!("two-s{seed}"), "mm", seed, two, &cell(2));
        run_with(root, &format!("eight-s{seed}"), "mm", seed, eight, &cell(8));
    }
    let root_arg = root.display().to_string();
    let o = mtrec(&["compare", &root_arg]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let s = stdout(&o);
    assert!(
        s.contains("mm [model.n_experts=2]") && s.contains("mm [model.n_experts=8]"),
        "{s}"
    );
    assert!(
        s.contains("Note: `mm`: its runs have 2 different settings (differing in model.n_experts)"),
        "{s}"
    );
    let o = mtrec(&["compare", &root_arg, "--json"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let groups: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert!(groups.iter().all(|g| g["runs"] == 2 && g["config"] == "mm"));
    assert_eq!(groups[0]["settings"]["model.n_experts"], "2");
    // Means 0.84375 (2 experts) and 0.78125 (8): the pooled mean 0.8125 is neither.
    assert_eq!(groups[0]["tasks"]["income"]["mean"], 0.84375);
    assert_eq!(groups[1]["tasks"]["income"]["mean"], 0.78125);
    // The note goes to stderr beside the JSON.
    assert!(common::stderr(&o).contains("2 different settings"));
}

/// `mtrec run` leaves `<id>.log` beside every run folder and results.jsonl in the grid's
/// folder: a glob over the folder, or the folder itself, compares its runs.
#[test]
fn a_grid_folder_or_a_glob_over_it_compares_its_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = runs(tmp.path());
    for d in &dirs {
        std::fs::write(format!("{d}.log"), "INFO training\n").unwrap();
    }
    std::fs::write(tmp.path().join("results.jsonl"), "{}\n").unwrap();
    let mut entries: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 2 * dirs.len() + 1);
    let mut args = vec!["compare"];
    args.extend(entries.iter().map(String::as_str));
    let globbed = mtrec(&args);
    assert!(globbed.status.success(), "{}", common::stderr(&globbed));
    let s = stdout(&globbed);
    assert!(s.contains("+13.333"), "{s}");
    assert!(s.contains("skipped 9 file(s) that are not runs"), "{s}");
    let folder = mtrec(&["compare", &tmp.path().display().to_string()]);
    assert!(folder.status.success(), "{}", common::stderr(&folder));
    assert!(stdout(&folder).contains("+13.333"));
    // Only logs alone: nothing to compare, said plainly.
    let o = mtrec(&["compare", &format!("{}.log", dirs[0])]);
    assert_clean_failure(&o, &["no run given", "logs or results"]);
}

#[test]
fn json_help_says_it_prints_an_array() {
    let o = mtrec(&["compare", "--help"]);
    assert!(o.status.success());
    let help = stdout(&o);
    assert!(help.contains("JSON array"), "{help}");
    assert!(!help.contains("one JSON object on stdout"), "{help}");
}
