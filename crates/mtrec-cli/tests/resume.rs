//! Resumable runs: `mtrec train`, `mtrec search` and `mtrec run` killed by SIGKILL at chosen
//! moments (inside an epoch, halfway through writing the run state, between search phases,
//! during a search's finetune; the runner itself from outside) and started again with the same
//! command end with exactly the figures of an uninterrupted run: every validation and test
//! metric of every epoch, compared as the JSON numbers they print, bit for bit.
//!
//! The kills are real: `MTREC_KILL_AT=<point>:<n>` makes the process raise SIGKILL on
//! itself the n-th time it reaches the point (see `mtrec_engine::resume::kill_point`).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{json_lines, project_root, stderr};
use serde_json::Value;

fn mtrec_env(args: &[&str], kill_at: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mtrec"));
    c.args(args).current_dir(project_root());
    if let Some(k) = kill_at {
        c.env("MTREC_KILL_AT", k);
    }
    c.output().expect("run mtrec")
}

fn killed(o: &Output) -> bool {
    o.status.signal() == Some(9)
}

fn json_of(o: &Output) -> Value {
    assert!(o.status.success(), "{}", stderr(o));
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text.lines().last().expect("a JSON line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// The figures a resumed run must reproduce exactly: test and validation metrics, the kept
/// epoch, and every epoch's training loss, validation report and weighting figures (timings
/// left out).
fn figures(report: &Value) -> Value {
    let history: Vec<Value> = report["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|e| {
            serde_json::json!({
                "epoch": e["epoch"],
                "train_loss": e["train_loss"],
                "valid": e["valid"],
                "stats": e["stats"],
            })
        })
        .collect();
    serde_json::json!({
        "tasks": report["tasks"],
        "test_loss": report["test_loss"],
        "valid": report["valid"],
        "best_epoch": report["best_epoch"],
        "history": history,
        "loss_weights": report["loss_weights"],
        "architecture": report["architecture"],
    })
}

fn state_of(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap().to_os_string();
    name.push(".state");
    out.with_file_name(name)
}

/// Trains `config` once straight through and once killed at each of `kills` in turn (each
/// restart resumes the previous one's state), and compares the two.
fn train_resumes_exactly(config: &str, extra: &[&str], kills: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, config).unwrap();
    let cfg = cfg.display().to_string();
    let reference_out = dir.path().join("reference").display().to_string();
    let mut args = vec!["train", "--config", &cfg, "--json", "--out"];
    let reference = {
        let mut a = args.clone();
        a.push(&reference_out);
        a.push("--no-state");
        json_of(&mtrec_env(&a, None))
    };
    let out = dir.path().join("run");
    let out_s = out.display().to_string();
    args.push(&out_s);
    args.extend_from_slice(extra);
    for kill in kills {
        let o = mtrec_env(&args, Some(kill));
        assert!(killed(&o), "{kill}: the run was not killed: {}", stderr(&o));
        assert!(state_of(&out).is_file(), "{kill}: no state was left");
    }
    let resumed = mtrec_env(&args, None);
    assert!(
        stderr(&resumed).contains("resuming from"),
        "{}",
        stderr(&resumed)
    );
    assert_eq!(figures(&json_of(&resumed)), figures(&reference));
    assert!(
        !state_of(&out).exists(),
        "the state is removed once the run is saved"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// 800 training rows in batches of 100: 8 steps per epoch, 3 epochs, no early stop.
fn synthetic(model: &str, weighting: &str) -> String {
    format!(
        "name = \"resume\"\n[data]\nkind = \"synthetic\"\ncorrelation = 0.5\nn_train = 800\n\
         n_valid = 200\nn_test = 200\nseed = 3\n[model]\n{model}\n[weighting]\n{weighting}\n\
         [train]\nbatch_size = 100\nepochs = 3\npatience = 0\nmonitor = \"loss\"\n\
         learning_rate = 3e-3\nseed = 5\n"
    )
}

const MMOE: &str = "kind = \"mmoe\"\nn_experts = 3\nexpert = [8]\ntower = [4]";

/// Killed at step 11 (epoch 2, batch 3), with a state every 3 steps: the resumed run starts
/// inside epoch 2 from step 9, with Adam's and the learnt loss weights' state.
#[test]
fn train_killed_inside_an_epoch_resumes_bit_for_bit() {
    train_resumes_exactly(
        &synthetic(MMOE, "kind = \"uncertainty\""),
        &["--state-every", "3"],
        &["step:11"],
    );
}

/// MetaBalance keeps moving averages per parameter: they, and which parameters are shared,
/// come back with the parameters' ids. Killed twice: at step 5 and, resumed, at step 20.
#[test]
fn metabalance_resumes_bit_for_bit_after_two_kills() {
    train_resumes_exactly(
        &synthetic(MMOE, "kind = \"meta-balance\""),
        &["--state-every", "2"],
        &["step:5", "step:13"],
    );
}

/// Killed halfway through the second state write (the end of epoch 1 is the first): the
/// previous state stays whole, the half-written file is never read, and nothing is left.
#[test]
fn a_kill_during_a_state_write_keeps_the_previous_state() {
    train_resumes_exactly(
        &synthetic(
            "kind = \"shared-bottom\"\nbottom = [8]\ntower = [4]",
            "kind = \"fixed\"",
        ),
        &["--state-every", "4"],
        &["state-write:2"],
    );
}

/// Generates 1,500 rows of the planted recommendation data (categorical fields, binary
/// tasks) into `dir`; returns the `[data]` section reading them.
fn recsys_data(dir: &Path) -> String {
    let data = dir.join("p.parquet");
    let o = common::mtrec(&[
        "data",
        "synth",
        "--kind",
        "recsys",
        "--rows",
        "1500",
        "--seed",
        "7",
        "--out",
        &data.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let schema = data.with_file_name("p.schema.toml");
    assert!(
        schema.is_file(),
        "the generator writes its schema beside the data"
    );
    format!(
        "[data]\nkind = \"files\"\nschema = \"{}\"\ntrain = \"{}\"\n",
        schema.display(),
        data.display()
    )
}

/// Lazy embedding tables (the table and its moments on the host) on data with categorical
/// fields, killed inside epoch 2 (1,200 training rows in batches of 200: 6 steps an epoch).
#[test]
fn lazy_embeddings_resume_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "name = \"resume-lazy\"\n{}[embedding]\ndim = 4\n[model]\nkind = \"mmoe\"\n\
         n_experts = 2\nexpert = [8]\ntower = [4]\n[train]\nbatch_size = 200\nepochs = 2\n\
         patience = 0\nlazy_embeddings = true\nseed = 9\n",
        recsys_data(dir.path())
    );
    train_resumes_exactly(&config, &["--state-every", "2"], &["step:9"]);
}

/// CrossDistil: teachers' calibration, alternating teacher and student steps and the epoch's
/// figures so far come back; killed in the warm-up epoch and inside the first distilling one.
#[test]
fn cross_distil_resumes_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "name = \"resume-distil\"\n{}[embedding]\ndim = 4\n[model]\nkind = \"mmoe\"\n\
         n_experts = 2\nexpert = [8]\ntower = [4]\n[scheme]\nkind = \"cross-distil\"\n\
         warmup_epochs = 1\n[train]\nbatch_size = 200\nepochs = 3\npatience = 0\nseed = 9\n",
        recsys_data(dir.path())
    );
    train_resumes_exactly(&config, &["--state-every", "2"], &["step:3", "step:9"]);
}

/// LT4Rec after its pruning rounds: the tasks' masks, the shared weights `W` and Adam come
/// back, the shared weights found again on the restored model.
#[test]
fn lt4rec_resumes_bit_for_bit() {
    train_resumes_exactly(
        &synthetic(MMOE, "kind = \"fixed\"").replace(
            "[train]",
            "[scheme]\nkind = \"lt4rec\"\nrounds = 1\nround_epochs = 1\n[train]",
        ),
        &["--state-every", "3"],
        &["step:13"],
    );
}

/// CSM: contribution scores, ownership, update masks and the negatives' random stream
/// position come back; killed inside epoch 2 after the first epoch's pruning.
#[test]
fn csm_resumes_bit_for_bit() {
    train_resumes_exactly(
        &synthetic(MMOE, "kind = \"fixed\"").replace(
            "[train]",
            "[scheme]\nkind = \"csm\"\nprune_epochs = 2\n[train]",
        ),
        &["--state-every", "3"],
        &["step:5", "step:13"],
    );
}

const SEARCH: &str = r#"
name = "resume-search"
[data]
kind = "synthetic"
correlation = 0.5
n_train = 600
n_valid = 200
n_test = 200
seed = 3
[model]
kind = "automtl"
n_layers = 2
n_experts = 2
n_blocks = 2
block_width = 8
candidates = ["identity", "mlp-8", "mlp-16"]
tower = [8]
dropout = 0.2
[search]
warmup_epochs = 1
joint_epochs = 2
blocks_per_epoch = 4
batch_size = 100
[train]
batch_size = 100
epochs = 2
patience = 0
monitor = "loss"
"#;

/// A search killed between its warm-up and joint phases, then again inside the finetune of
/// the found architecture (dropout and sampled gates draw from the device's generator, which
/// every step reseeds), ends with the same architecture and figures.
#[test]
fn search_killed_between_phases_and_in_the_finetune_resumes_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("s.toml");
    std::fs::write(&cfg, SEARCH).unwrap();
    let cfg = cfg.display().to_string();
    let run = |out: &str, kill: Option<&str>, extra: &[&str]| {
        let mut a = vec!["search", "--config", &cfg, "--json", "--out", out];
        a.extend_from_slice(extra);
        mtrec_env(&a, kill)
    };
    let reference_out = dir.path().join("reference").display().to_string();
    let reference = json_of(&run(&reference_out, None, &["--no-state"]));
    let out = dir.path().join("run");
    let out_s = out.display().to_string();
    let o = run(&out_s, Some("search-epoch:1"), &[]);
    assert!(killed(&o), "not killed: {}", stderr(&o));
    let o = run(&out_s, Some("step:8"), &[]);
    assert!(killed(&o), "not killed in the finetune: {}", stderr(&o));
    assert!(stderr(&o).contains("resuming the search"), "{}", stderr(&o));
    let resumed = run(&out_s, None, &[]);
    let report = json_of(&resumed);
    assert_eq!(figures(&report), figures(&reference));
    assert_eq!(report["decidedness"], reference["decidedness"]);
    assert!(!state_of(&out).exists());
}

/// A state written for another config is refused with a line naming the difference, and
/// `--restart` discards it.
#[test]
fn a_state_of_another_config_is_refused_and_restart_discards_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, synthetic(MMOE, "kind = \"fixed\"")).unwrap();
    let cfg = cfg.display().to_string();
    let out = dir.path().join("run").display().to_string();
    let o = mtrec_env(&["train", "--config", &cfg, "--out", &out], Some("step:10"));
    assert!(killed(&o));
    let o = mtrec_env(
        &[
            "train",
            "--config",
            &cfg,
            "--out",
            &out,
            "--set",
            "train.learning_rate=0.01",
        ],
        None,
    );
    common::assert_clean_failure(
        &o,
        &["run.state", "another config", "learning_rate", "--restart"],
    );
    let o = mtrec_env(
        &[
            "train",
            "--config",
            &cfg,
            "--out",
            &out,
            "--set",
            "train.learning_rate=0.01",
            "--restart",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("resuming"));
}

/// A second run on an output folder in use is refused (it would resume from the first
/// one's live state); `--no-state` discards a leftover state instead of leaving it to be
/// resumed over its checkpoint later; a killed run resumed with more epochs ends as an
/// uninterrupted run of that many.
#[test]
fn one_run_per_folder_no_state_discards_and_epochs_can_grow() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, synthetic(MMOE, "kind = \"fixed\"")).unwrap();
    let cfg = cfg.display().to_string();
    let out = dir.path().join("run");
    let out_s = out.display().to_string();

    let lock = std::fs::File::create(dir.path().join(".run.lock")).unwrap();
    lock.try_lock().unwrap();
    let o = mtrec_env(&["train", "--config", &cfg, "--out", &out_s], None);
    common::assert_clean_failure(&o, &["another mtrec is already writing to", ".run.lock"]);
    drop(lock);

    let o = mtrec_env(
        &["train", "--config", &cfg, "--out", &out_s],
        Some("step:10"),
    );
    assert!(killed(&o) && state_of(&out).is_file());
    let o = mtrec_env(
        &["train", "--config", &cfg, "--out", &out_s, "--no-state"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("discarding the run state"),
        "{}",
        stderr(&o)
    );
    assert!(!state_of(&out).exists());

    let longer = |out: &str, kill: Option<&str>, epochs: &str| {
        mtrec_env(
            &[
                "train", "--config", &cfg, "--out", out, "--json", "--epochs", epochs,
            ],
            kill,
        )
    };
    let reference = json_of(&longer(
        &dir.path().join("ref").display().to_string(),
        None,
        "4",
    ));
    assert!(killed(&longer(&out_s, Some("step:10"), "3")));
    let resumed = longer(&out_s, None, "4");
    assert!(
        stderr(&resumed).contains("resuming from"),
        "{}",
        stderr(&resumed)
    );
    assert_eq!(figures(&json_of(&resumed)), figures(&reference));
}

/// `mtrec run` killed from outside while its first run trains: its children die with it
/// (none goes on writing unowned), and the same command again resumes that run from its state
/// and records exactly the figures of an uninterrupted grid.
#[test]
fn a_killed_runner_resumes_its_runs() {
    let dir = tempfile::tempdir().unwrap();
    let slow = dir.path().join("slow.toml");
    // Long enough (about a second per epoch) for the kill to land inside the run.
    std::fs::write(
        &slow,
        synthetic(MMOE, "kind = \"fixed\"")
            .replace("n_train = 800", "n_train = 20000")
            .replace("epochs = 3", "epochs = 4"),
    )
    .unwrap();
    let grid = |name: &str| -> (PathBuf, PathBuf) {
        let out = dir.path().join(name);
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "[grid]\nout = \"{}\"\nconfigs = [\"{}\"]\nseeds = [1, 2]\n",
                out.display(),
                slow.display()
            ),
        )
        .unwrap();
        (path, out)
    };
    let (reference_grid, reference_out) = grid("reference");
    let o = common::mtrec(&["run", &reference_grid.display().to_string(), "--jobs", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let (grid_file, out) = grid("killed");
    let mut runner = Command::new(env!("CARGO_BIN_EXE_mtrec"))
        .args(["run", &grid_file.display().to_string(), "--jobs", "1"])
        .current_dir(project_root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state = out.join("slow-s1.state");
    let start = Instant::now();
    while !state.is_file() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no state appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    runner.kill().unwrap();
    runner.wait().unwrap();
    // The orphaned child, if any, would go on writing: wait and see that nothing changes.
    std::thread::sleep(Duration::from_millis(1500));
    let before = std::fs::metadata(&state).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        std::fs::metadata(&state).unwrap().modified().unwrap(),
        before,
        "a child of the killed runner is still training"
    );
    let o = common::mtrec(&["run", &grid_file.display().to_string(), "--jobs", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = std::fs::read_to_string(out.join("slow-s1.log")).unwrap();
    assert!(log.contains("resuming from"), "{log}");
    let figures_of = |out: &Path| -> Vec<Value> {
        let mut records = json_lines(&out.join("results.jsonl"));
        records.sort_by_key(|r| r["id"].as_str().unwrap().to_string());
        records
            .iter()
            .map(|r| {
                let metrics: Value = serde_json::from_str(
                    &std::fs::read_to_string(
                        out.join(r["id"].as_str().unwrap()).join("metrics.json"),
                    )
                    .unwrap(),
                )
                .unwrap();
                figures(&metrics)
            })
            .collect()
    };
    assert_eq!(figures_of(&out), figures_of(&reference_out));
}
