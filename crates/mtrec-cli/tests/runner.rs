//! `mtrec run GRID.toml`: every run once, one JSON line each, a restart repeats nothing
//! finished, a failing run is recorded and stops nothing, `--print-commands` lines run as
//! they are and their results are picked up, and a bad grid is refused before anything runs.

mod common;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use common::{assert_clean_failure, json_lines, mtime, mtrec, project_root, stderr, stdout};
use serde_json::Value;

/// Overrides that make a synthetic run take a fraction of a second.
const TINY: &str = r#"set = ["data.n_train=256", "data.n_valid=128", "data.n_test=128", "train.batch_size=128", "train.epochs=1"]"#;

/// Writes a grid into `dir` whose runs land in `dir/out`; `body` goes under `[grid]` after
/// `out`, `TINY` and `extra` after it (variants).
fn grid(dir: &Path, file: &str, body: &str, extra: &str) -> (PathBuf, PathBuf) {
    let out = dir.join("out");
    let path = dir.join(file);
    let text = format!(
        "[grid]\nout = \"{}\"\n{body}\n{TINY}\n{extra}\n",
        out.display()
    );
    std::fs::write(&path, text).unwrap();
    (path, out)
}

fn run(args: &[&str]) -> std::process::Output {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    mtrec(&all)
}

fn records(out: &Path) -> Vec<Value> {
    json_lines(&out.join("results.jsonl"))
}

/// Modification times of every run's metrics and log, which a rerun would replace.
fn stamps(out: &Path, ids: &[&str]) -> Vec<SystemTime> {
    ids.iter()
        .flat_map(|id| {
            [
                mtime(&out.join(id).join("metrics.json")),
                mtime(&out.join(format!("{id}.log"))),
            ]
        })
        .collect()
}

fn ids_of(records: &[Value]) -> Vec<&str> {
    records.iter().map(|r| r["id"].as_str().unwrap()).collect()
}

const TWO_BY_TWO: &str = r#"configs = ["configs/synthetic-mmoe.toml", "configs/synthetic-omoe.toml"]
seeds = [1, 2]"#;
const IDS: [&str; 4] = [
    "synthetic-mmoe-s1",
    "synthetic-omoe-s1",
    "synthetic-mmoe-s2",
    "synthetic-omoe-s2",
];

#[test]
fn every_run_runs_once_and_a_restart_repeats_none() {
    let dir = tempfile::tempdir().unwrap();
    let (g, out) = grid(dir.path(), "g.toml", TWO_BY_TWO, "");
    let g = g.to_str().unwrap();
    let o = run(&[g, "--jobs", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("4 of 4 runs ok"), "{}", stdout(&o));

    let first = records(&out);
    let mut ids = ids_of(&first);
    ids.sort();
    let mut want = IDS.to_vec();
    want.sort();
    assert_eq!(ids, want);
    for r in &first {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["source"], "ran");
        assert_eq!(r["exit_code"], 0);
        let id = r["id"].as_str().unwrap();
        assert_eq!(
            r["out"].as_str().unwrap(),
            out.join(id).display().to_string()
        );
        // The record carries the run's metrics.json as it is on disk.
        let saved: Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(id).join("metrics.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(r["metrics"], saved);
        assert!(r["metrics"]["tasks"]["task1"]["mse"].is_number());
        let seed = r["seed"].as_u64().unwrap();
        assert!(id.ends_with(&format!("-s{seed}")));
        let argv: Vec<&str> = r["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(argv[1..5], ["--threads", "1", "train", "--config"]);
        assert!(argv.contains(&"train.epochs=1"));
    }
    // The seed reached the run: same config, different seeds, different results.
    let metric = |id: &str| {
        first.iter().find(|r| r["id"] == id).unwrap()["metrics"]["test_loss"]
            .as_f64()
            .unwrap()
    };
    assert_ne!(metric("synthetic-mmoe-s1"), metric("synthetic-mmoe-s2"));

    let before = stamps(&out, &IDS);
    let log_before = std::fs::read(out.join("results.jsonl")).unwrap();
    let o = run(&[g]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("0 ran now, 0 found on disk, 4 finished before"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        std::fs::read(out.join("results.jsonl")).unwrap(),
        log_before
    );
    assert_eq!(stamps(&out, &IDS), before, "a finished run ran again");

    // A crash after a run finished but before its line was whole: one line lost, the next
    // cut short. Both runs are found in their folders and recorded, not run again.
    let text = String::from_utf8(log_before).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let torn = format!(
        "{}\n{}\n{}",
        lines[0],
        lines[1],
        &lines[3][..lines[3].len() / 2]
    );
    std::fs::write(out.join("results.jsonl"), torn).unwrap();
    let o = run(&[g]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("0 ran now, 2 found on disk, 2 finished before"),
        "{}",
        stdout(&o)
    );
    assert_eq!(stamps(&out, &IDS), before, "a finished run ran again");
    let text = std::fs::read_to_string(out.join("results.jsonl")).unwrap();
    let good: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(
        text.lines().count(),
        5,
        "the torn line stays a line of its own"
    );
    assert_eq!(good.len(), 4);
    for r in &good[2..] {
        assert_eq!(r["source"], "found");
        assert_eq!(r["status"], "ok");
        assert!(r["metrics"]["tasks"].is_object());
    }

    // A seed more: only its runs run.
    let (g3, _) = grid(
        dir.path(),
        "g.toml",
        &TWO_BY_TWO.replace("[1, 2]", "[1, 2, 3]"),
        "",
    );
    let o = run(&[g3.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let all: Vec<Value> = std::fs::read_to_string(out.join("results.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["source"] == "ran")
        .collect();
    assert_eq!(
        all.len(),
        4,
        "two ran first, two lines lost in the crash, two new"
    );
    let new = ids_of(&all[all.len() - 2..]);
    assert_eq!(new.len(), 2);
    assert!(new.iter().all(|id| id.ends_with("-s3")), "{new:?}");
    assert_eq!(stamps(&out, &IDS), before, "a finished run ran again");
}

#[test]
fn a_failing_run_is_recorded_and_the_others_finish() {
    let dir = tempfile::tempdir().unwrap();
    let variants = "[[grid.variant]]\nlabel = \"good\"\n[[grid.variant]]\nlabel = \"bad\"\nset = [\"data.correlation=3\"]";
    let (g, out) = grid(
        dir.path(),
        "g.toml",
        "configs = [\"configs/synthetic-mmoe.toml\"]\nseeds = [1, 2]",
        variants,
    );
    let g = g.to_str().unwrap();
    let o = run(&[g]);
    assert_clean_failure(&o, &["2 of 4 runs failed"]);
    let table = stdout(&o);
    for id in ["synthetic-mmoe-bad-s1", "synthetic-mmoe-bad-s2"] {
        assert!(table.contains(id), "{table}");
    }
    assert!(table.contains("correlation must be in [-1, 1]"), "{table}");
    assert!(!table.contains("synthetic-mmoe-good-s1 "), "{table}");

    let first = records(&out);
    assert_eq!(first.len(), 4);
    for r in &first {
        let id = r["id"].as_str().unwrap();
        if id.contains("-bad-") {
            assert_eq!(r["status"], "failed", "{r}");
            assert_eq!(r["exit_code"], 1);
            assert!(
                r["error"].as_str().unwrap().contains("correlation must be"),
                "{r}"
            );
            assert!(r["metrics"].is_null());
            let log = std::fs::read_to_string(r["log"].as_str().unwrap()).unwrap();
            assert!(log.contains("correlation must be"));
            assert_eq!(r["variant"], "bad");
        } else {
            assert_eq!(r["status"], "ok", "{r}");
            assert_eq!(r["metrics"]["name"], "synthetic-mmoe-good");
        }
    }

    // A restart retries the failures only.
    let good = ["synthetic-mmoe-good-s1", "synthetic-mmoe-good-s2"];
    let before = stamps(&out, &good);
    let o = run(&[g]);
    assert_clean_failure(&o, &["2 of 4 runs failed"]);
    let second = records(&out);
    assert_eq!(second.len(), 6);
    for r in &second[4..] {
        assert!(r["id"].as_str().unwrap().contains("-bad-"), "{r}");
        assert_eq!(r["status"], "failed");
    }
    assert_eq!(stamps(&out, &good), before);

    // --skip-failed keeps them failed: nothing runs, the exit code still says so.
    let o = run(&[g, "--skip-failed"]);
    assert_clean_failure(&o, &["2 of 4 runs failed", "without --skip-failed"]);
    assert!(stdout(&o).contains("--skip-failed"), "{}", stdout(&o));
    assert_eq!(records(&out).len(), 6);
}

#[test]
fn printed_commands_run_as_they_are_and_are_then_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let variants = "[[grid.variant]]\nlabel = \"quoted\"\nset = ['train.monitor={ task-auc = \"x y\" }', \"train.monitor=loss\"]";
    let (g, out) = grid(
        dir.path(),
        "g.toml",
        "configs = [\"configs/synthetic-mmoe.toml\"]\nseeds = [1, 2]",
        variants,
    );
    let g = g.to_str().unwrap();
    // The global --threads is the runs' threads, unless --threads-per-run says otherwise.
    let o = mtrec(&["--threads", "3", "run", g, "--print-commands"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o)
            .lines()
            .all(|l| l.contains(" --threads 3 train ")),
        "{}",
        stdout(&o)
    );
    let o = mtrec(&[
        "--threads",
        "3",
        "run",
        g,
        "--print-commands",
        "--threads-per-run",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        !out.join("results.jsonl").exists(),
        "printing ran something"
    );
    for line in &lines {
        assert!(line.contains(" --threads 2 train "), "{line}");
        // A value with spaces and quotes survives the shell as one argument.
        assert!(
            line.contains(r#"'train.monitor={ task-auc = "x y" }'"#),
            "{line}"
        );
        let o = std::process::Command::new("sh")
            .args(["-c", line])
            .current_dir(project_root())
            .output()
            .unwrap();
        assert!(o.status.success(), "{line}: {}", stderr(&o));
    }
    let ids = ["synthetic-mmoe-quoted-s1", "synthetic-mmoe-quoted-s2"];
    let made: Vec<SystemTime> = ids
        .iter()
        .map(|id| mtime(&out.join(id).join("metrics.json")))
        .collect();

    let o = run(&[g, "--print-commands"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "", "finished runs are not pending");
    assert!(
        stderr(&o).contains("nothing pending: 0 of 2 runs are recorded in")
            && stderr(&o).contains("2 finished on disk"),
        "{}",
        stderr(&o)
    );

    let o = run(&[g]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[g, "--print-commands"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains(&format!(
            "nothing pending: all 2 runs are recorded in {}",
            out.join("results.jsonl").display()
        )),
        "{}",
        stderr(&o)
    );
    let recs = records(&out);
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r["source"], "found", "{r}");
        assert_eq!(r["status"], "ok");
        assert!(r["metrics"]["tasks"].is_object());
    }
    let after: Vec<SystemTime> = ids
        .iter()
        .map(|id| mtime(&out.join(id).join("metrics.json")))
        .collect();
    assert_eq!(made, after, "found runs ran again");
    assert!(!out.join(format!("{}.log", ids[0])).exists());
}

#[test]
fn finished_runs_of_other_settings_are_never_mixed_or_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let body = "configs = [\"configs/synthetic-mmoe.toml\"]\nseeds = [1]";
    let (g, out) = grid(dir.path(), "g.toml", body, "");
    let o = run(&[g.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let metrics = out.join("synthetic-mmoe-s1").join("metrics.json");
    let made = mtime(&metrics);

    // The same override written with spaces is the same setting: nothing to refuse or rerun.
    let spaced = dir.path().join("spaced.toml");
    let text = std::fs::read_to_string(&g)
        .unwrap()
        .replace("train.epochs=1", "train.epochs = 1");
    std::fs::write(&spaced, text).unwrap();
    let o = run(&[spaced.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("1 finished before"), "{}", stdout(&o));
    assert_eq!(mtime(&metrics), made);

    // The grid changes a setting of a recorded run: refused before anything runs.
    let changed = dir.path().join("changed.toml");
    let text = std::fs::read_to_string(&g)
        .unwrap()
        .replace("train.epochs=1", "train.epochs=2");
    std::fs::write(&changed, text).unwrap();
    let changed = changed.to_str().unwrap();
    let o = run(&[changed]);
    assert_clean_failure(
        &o,
        &[
            "results.jsonl",
            "synthetic-mmoe-s1",
            "adds `--set train.epochs=2`",
            "another `out`",
        ],
    );

    // Without its line, the folder of other settings is refused, not overwritten.
    std::fs::remove_file(out.join("results.jsonl")).unwrap();
    let o = run(&[changed]);
    assert_clean_failure(&o, &["1 of 1 runs failed"]);
    assert!(
        stdout(&o).contains("`train.epochs`: saved 1, grid 2"),
        "{}",
        stdout(&o)
    );
    assert_eq!(mtime(&metrics), made);
    let recs = records(&out);
    assert_eq!(recs[0]["status"], "failed");
    let o = run(&[changed, "--print-commands"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "");
    assert!(stderr(&o).contains("not listed"), "{}", stderr(&o));
}

#[test]
fn bad_grid_files_are_refused_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let mmoe = "configs = [\"configs/synthetic-mmoe.toml\"]\nseeds = [1]";
    let variant = |set: &str| format!("[[grid.variant]]\nlabel = \"v\"\nset = [\"{set}\"]");
    // (under [grid], after the grid's overrides, what stderr must name)
    let cases: Vec<(String, String, Vec<&str>)> = vec![
        (
            "configs = [\"configs/synthetic-mmoe.toml\"]\nseedz = [1]".into(),
            String::new(),
            vec!["unknown field `seedz`"],
        ),
        (
            "configs = [\"configs/synthetic-mmoe.toml\"]".into(),
            String::new(),
            vec!["missing field `seeds`"],
        ),
        (
            "configs = [\"configs/nope.toml\"]\nseeds = [1]".into(),
            String::new(),
            vec!["configs/nope.toml"],
        ),
        (
            mmoe.into(),
            variant("model.n_expertz=2"),
            vec!["variant `v`", "n_expertz"],
        ),
        (
            mmoe.into(),
            variant("train.epochs"),
            vec!["variant `v`", "expected KEY=VALUE"],
        ),
        (
            mmoe.into(),
            variant("train.seed=3"),
            vec!["train.seed is set by grid.seeds"],
        ),
        (
            mmoe.into(),
            "[[grid.variant]]\nlabel = \"a/b\"".into(),
            vec!["variant label `a/b`"],
        ),
        (
            mmoe.into(),
            "[[grid.variant]]\nlabel = \"v\"\nsett = []".into(),
            vec!["unknown field `sett`"],
        ),
    ];
    for (i, (body, extra, needles)) in cases.iter().enumerate() {
        let name = format!("bad{i}.toml");
        let (g, out) = grid(dir.path(), &name, body, extra);
        let mut all = vec![name.as_str()];
        all.extend_from_slice(needles);
        let o = run(&[g.to_str().unwrap()]);
        assert_clean_failure(&o, &all);
        assert!(!out.exists(), "case {i} created {}", out.display());
    }
    let o = run(&["configs/grids/missing.toml"]);
    assert_clean_failure(&o, &["configs/grids/missing.toml"]);
}

#[test]
fn the_shipped_grids_load() {
    let dir = project_root().join("configs/grids");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let rel = path.strip_prefix(project_root()).unwrap().to_owned();
        let o = run(&[rel.to_str().unwrap(), "--print-commands"]);
        assert!(o.status.success(), "{}: {}", rel.display(), stderr(&o));
        for line in stdout(&o).lines() {
            assert!(
                line.contains(" train ") || line.contains(" search "),
                "{line}"
            );
        }
        n += 1;
    }
    assert!(n >= 2, "only {n} grids in {}", dir.display());
}

#[test]
fn help_shows_examples_and_the_grid_format() {
    let o = mtrec(&["run", "--help"]);
    assert!(o.status.success());
    let text = stdout(&o);
    for needle in [
        "Examples:",
        "--print-commands",
        "[[grid.variant]]",
        "no set: the configs as written (with variants, only the",
        "--jobs",
        "default: the global --threads",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
}
