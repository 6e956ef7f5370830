//! Regression tests for faults found by replaying peers' reports on training: what a run says
//! when it ends on its best epoch, and what loading a checkpoint says when its weights no
//! longer fit the model its config and vocabularies describe.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_clean_failure, mtrec, stderr};

/// 200 rows of `user,item,price,click,watch` with 5 users and 4 items, all in the training
/// split, so the embedding table has (5 + 1) + (4 + 1) = 11 rows (id 0 of each field is
/// "unknown"). Returns the config path; `train` is appended as the `[train]` section.
fn write_experiment(dir: &Path, train: &str) -> PathBuf {
    let mut csv = String::from("user,item,price,click,watch\n");
    for i in 0..200 {
        let (user, item) = (i % 5, (i * 7) % 4);
        let click = u8::from((user + item) % 3 == 0);
        let watch = 0.1 * user as f64 + 0.3 * click as f64 + 0.01 * (i % 9) as f64;
        csv.push_str(&format!(
            "u{user},i{item},{}.5,{click},{watch:.3}\n",
            (i * 37) % 100
        ));
    }
    std::fs::write(dir.join("rows.csv"), csv).unwrap();
    std::fs::write(
        dir.join("schema.toml"),
        "[[sparse]]\nname = \"user\"\n[[sparse]]\nname = \"item\"\n[[dense]]\nname = \"price\"\n\
         [[tasks]]\nname = \"click\"\nkind = \"binary\"\ncolumn = \"click\"\n\
         [[tasks]]\nname = \"watch\"\nkind = \"regression\"\ncolumn = \"watch\"\n",
    )
    .unwrap();
    let config = dir.join("experiment.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"faults\"\n[data]\nkind = \"files\"\nschema = \"{}\"\ntrain = \"{}\"\n\
             [embedding]\ndim = 4\n[model]\nkind = \"mmoe\"\nn_experts = 2\nexpert = [8]\ntower = [4]\n\
             [train]\nbatch_size = 32\n{train}\n",
            dir.join("schema.toml").display(),
            dir.join("rows.csv").display()
        ),
    )
    .unwrap();
    config
}

fn train(config: &Path, out: &Path) -> std::process::Output {
    let o = mtrec(&[
        "train",
        "--config",
        &config.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

fn metrics(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap()
}

/// A run cut off by `train.epochs` while still improving used to look like any other: now the
/// output warns and `metrics.json` records it, with a hint to raise the cap.
#[test]
fn a_run_whose_best_epoch_is_its_last_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_experiment(dir.path(), "epochs = 1");
    let out = dir.path().join("cut");
    let o = train(&config, &out);
    let err = stderr(&o);
    assert!(
        err.contains("the best epoch is the last one (1 of 1)")
            && err.contains("raise train.epochs"),
        "no warning in: {err}"
    );
    let m = metrics(&out);
    assert_eq!(
        m["best_epoch_is_last"],
        serde_json::Value::Bool(true),
        "{m}"
    );
    assert!(
        m["hint"].as_str().unwrap().contains("raise train.epochs"),
        "{m}"
    );
}

/// A run ended by early stopping kept an earlier epoch: no warning, no hint.
#[test]
fn a_run_stopped_early_has_no_undertraining_hint() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_experiment(
        dir.path(),
        "epochs = 60\npatience = 1\nlearning_rate = 0.1\nseed = 3",
    );
    let out = dir.path().join("early");
    let o = train(&config, &out);
    let m = metrics(&out);
    let (best, run) = (
        m["best_epoch"].as_u64().unwrap(),
        m["epochs_run"].as_u64().unwrap(),
    );
    assert_eq!(
        run,
        best + 1,
        "patience 1 stops one epoch after the best: {m}"
    );
    assert_eq!(
        m["best_epoch_is_last"],
        serde_json::Value::Bool(false),
        "{m}"
    );
    assert!(m.get("hint").is_none(), "{m}");
    assert!(
        !stderr(&o).contains("best epoch is the last"),
        "{}",
        stderr(&o)
    );
}

/// Rewrites a safetensors file through `edit`, which changes the JSON header (keeping each
/// tensor's byte size) and may cut the data to a new length.
fn edit_safetensors(path: &Path, edit: impl FnOnce(&mut serde_json::Value) -> Option<usize>) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data_len = edit(&mut header).unwrap_or(bytes.len() - 8 - n);
    let mut text = serde_json::to_vec(&header).unwrap();
    // Keep the data 8-byte aligned, as writers do.
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..8 + n + data_len]);
    std::fs::write(path, out).unwrap();
}

/// Runs `eval` (or `predict`) on `checkpoint` and returns its error, checked to be one clean
/// line naming the weights file, with no Rust debug output in it.
fn load_error(command: &str, checkpoint: &Path, data: &Path) -> String {
    let mut args = vec![
        command.to_string(),
        "--checkpoint".into(),
        checkpoint.display().to_string(),
        "--data".into(),
        data.display().to_string(),
    ];
    if command == "predict" {
        args.extend([
            "--out".into(),
            checkpoint.join("p.csv").display().to_string(),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = mtrec(&args);
    let weights = checkpoint.join("model.safetensors").display().to_string();
    assert_clean_failure(&o, &[&format!("error: checkpoint {weights}: ")]);
    let err = stderr(&o);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(
        !err.contains('{') && !err.contains("Shape") && !err.contains("dims"),
        "debug output: {err}"
    );
    err
}

/// The peer saw `ShapeMismatch { path: ..., expected: Shape { dims: [10, 24] } ... }`. Every
/// kind of disagreement now reads as one line: which tensor, what was expected and found,
/// and the likely cause.
#[test]
fn checkpoint_mismatches_are_one_line_naming_tensor_shapes_and_cause() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_experiment(dir.path(), "epochs = 1");
    let trained = dir.path().join("trained");
    train(&config, &trained);
    let data = dir.path().join("rows.csv");
    let copy = |name: &str| {
        let to = dir.path().join(name);
        std::fs::create_dir(&to).unwrap();
        for entry in std::fs::read_dir(&trained).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
        to
    };
    let changed = "config.toml (e.g. the embedding dim or layer sizes) or a vocabulary in \
                   preprocessor.json was likely changed since training";

    // The config's embedding dim changed: the 11-row table was 4 wide, the model wants 6.
    let ck = copy("dim");
    let text = std::fs::read_to_string(ck.join("config.toml")).unwrap();
    std::fs::write(ck.join("config.toml"), text.replace("dim = 4", "dim = 6")).unwrap();
    let err = load_error("eval", &ck, &data);
    assert!(
        err.contains("tensor `Moe.embedding.table.weight` expected shape [11, 6], found [11, 4]"),
        "{err}"
    );
    assert!(err.contains(changed), "{err}");

    // A vocabulary grew by one value: one more embedding row expected.
    let ck = copy("vocab");
    let path = ck.join("preprocessor.json");
    let mut pre: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    pre["vocabs"][0].as_array_mut().unwrap().push("u99".into());
    std::fs::write(&path, pre.to_string()).unwrap();
    let err = load_error("predict", &ck, &data);
    assert!(
        err.contains("tensor `Moe.embedding.table.weight` expected shape [12, 4], found [11, 4];"),
        "{err}"
    );
    assert!(err.contains(changed), "{err}");

    // A tensor missing from the file: drop the one stored last and cut its bytes.
    let ck = copy("missing");
    let mut dropped = String::new();
    edit_safetensors(&ck.join("model.safetensors"), |h| {
        let map = h.as_object_mut().unwrap();
        let (name, end) = map
            .iter()
            .filter(|(k, _)| *k != "__metadata__")
            .map(|(k, v)| (k.clone(), v["data_offsets"][1].as_u64().unwrap()))
            .max_by_key(|(_, end)| *end)
            .unwrap();
        let start = map[&name]["data_offsets"][0].as_u64().unwrap();
        map.remove(&name);
        dropped = name;
        assert!(start < end);
        Some(start as usize)
    });
    let err = load_error("eval", &ck, &data);
    assert!(
        err.contains(&format!("tensor `{dropped}` is missing from the file;")),
        "{err}"
    );
    assert!(err.contains(changed), "{err}");

    // The right shape but the wrong kind of number (i32 is as wide as f32, so offsets hold).
    let ck = copy("dtype");
    edit_safetensors(&ck.join("model.safetensors"), |h| {
        h["Moe.embedding.table.weight"]["dtype"] = "I32".into();
        None
    });
    let err = load_error("eval", &ck, &data);
    assert!(
        err.contains(
            "tensor `Moe.embedding.table.weight` expected f32 values, found i32; the file was \
             likely written by another program, or modified"
        ),
        "{err}"
    );

    // A file cut short is not a weights file at all.
    let ck = copy("truncated");
    let path = ck.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_error("eval", &ck, &data);
    assert!(
        err.contains(&format!(
            "the header declares {} bytes in all, the file has {}",
            bytes.len(),
            bytes.len() / 2
        )) && err.contains("likely damaged or truncated"),
        "{err}"
    );
}

/// A checkpoint whose weights hold NaN (a diverged run saved by an older version, or a damaged
/// file) used to make `predict` write `NaN` for every row with exit 0, and `eval` fail with
/// "non-finite prediction or label at index 0". Now `predict` writes nothing and says why,
/// and `eval` names the data, the task, the row and that the prediction is the bad one.
#[test]
fn non_finite_predictions_are_refused_naming_data_task_and_cause() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_experiment(dir.path(), "epochs = 1");
    let trained = dir.path().join("trained");
    train(&config, &trained);
    let weights = trained.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut poisoned = bytes[..8 + n].to_vec();
    for _ in (8 + n..bytes.len()).step_by(4) {
        poisoned.extend_from_slice(&f32::NAN.to_le_bytes());
    }
    std::fs::write(&weights, poisoned).unwrap();
    let data = dir.path().join("rows.csv");
    let (data_s, ck) = (data.display().to_string(), trained.display().to_string());

    let out = dir.path().join("p.csv");
    let o = mtrec(&[
        "predict",
        "--checkpoint",
        &ck,
        "--data",
        &data_s,
        "--out",
        &out.display().to_string(),
    ]);
    assert_clean_failure(
        &o,
        &[
            &format!("{data_s}: the prediction for task `click` is NaN on data row 1 (200 of 200"),
            "checkpoint's weights are non-finite",
            "no predictions written",
        ],
    );
    assert!(!out.exists(), "a predictions file was written");

    let o = mtrec(&["eval", "--checkpoint", &ck, "--data", &data_s]);
    assert_clean_failure(
        &o,
        &[&format!(
            "{data_s}: task `click`: the prediction of row 1 is not finite (NaN or infinite)"
        )],
    );
}
