//! `mtrec serve` end to end: the binary's answers equal `mtrec predict`'s CSV for the same
//! rows, and SIGTERM stops it cleanly (issue 15).

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{mtrec, stderr};
use mtrec_serve::{Client, PredictAnswer};
use serde_json::json;

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn served_predictions_equal_mtrec_predict_sighup_reloads_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    // A small synthetic model saved to `run` (seeded by `extra`'s --seed when given).
    let train = |extra: &[&str]| {
        let run = s(&run);
        let mut args = vec![
            "train",
            "--config",
            "configs/synthetic-mmoe.toml",
            "--out",
            &run,
            "--set",
            "data.n_train=600",
            "--set",
            "data.n_valid=100",
            "--set",
            "data.n_test=100",
            "--epochs",
            "1",
        ];
        args.extend_from_slice(extra);
        mtrec(&args)
    };
    let o = train(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pre: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("preprocessor.json")).unwrap())
            .unwrap();
    let columns: Vec<String> = pre["schema"]["dense"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    assert!(!columns.is_empty());

    // Rows of numbers, written to a CSV for `predict` and as JSON for the server.
    let n_rows = 40;
    let value = |r: usize, c: usize| ((r * 31 + c * 17) % 23) as f64 / 7.0 - 1.5;
    let mut csv = columns.join(",") + "\n";
    let mut rows = Vec::new();
    for r in 0..n_rows {
        let cells: Vec<String> = (0..columns.len())
            .map(|c| value(r, c).to_string())
            .collect();
        csv += &(cells.join(",") + "\n");
        let row: serde_json::Map<String, serde_json::Value> = columns
            .iter()
            .enumerate()
            .map(|(c, name)| (name.clone(), json!(value(r, c))))
            .collect();
        rows.push(row);
    }
    let data = dir.path().join("rows.csv");
    std::fs::write(&data, csv).unwrap();
    let out = dir.path().join("p.csv");
    let o = mtrec(&[
        "predict",
        "--checkpoint",
        &s(&run),
        "--data",
        &s(&data),
        "--out",
        &s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (header, from_csv) = read_predictions(&out);
    assert_eq!(from_csv.len(), n_rows);

    let mut server = Reaped(Some(
        Command::new(env!("CARGO_BIN_EXE_mtrec"))
            .args([
                "--threads",
                "1",
                "serve",
                "--checkpoint",
                &s(&run),
                "--addr",
                "127.0.0.1:0",
            ])
            .current_dir(common::project_root())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let mut line = String::new();
    BufReader::new(server.child().stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{line:?}"))
        .parse()
        .unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer: PredictAnswer = runtime.block_on(async {
        let mut client = Client::new(addr);
        let body = serde_json::to_vec(&json!({ "rows": rows })).unwrap();
        let a = client.post("/predict", body).await.unwrap();
        assert_eq!(a.status, 200, "{:?}", a.body);
        a.json().unwrap()
    });
    assert_eq!(answer.tasks, header);
    assert_eq!(rows_of(&answer, &header), from_csv);

    // A new checkpoint saved over the served one, then SIGHUP: the server answers with it,
    // again exactly as `mtrec predict` does.
    let o = train(&["--seed", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = mtrec(&[
        "predict",
        "--checkpoint",
        &s(&run),
        "--data",
        &s(&data),
        "--out",
        &s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let retrained = read_predictions(&out).1;
    assert_ne!(retrained, from_csv);
    // SAFETY: kill(2) on our own child, not yet waited for.
    unsafe {
        libc::kill(server.child().id() as i32, libc::SIGHUP);
    }
    let answer: PredictAnswer = runtime.block_on(async {
        let mut client = Client::new(addr);
        let body = serde_json::to_vec(&json!({ "rows": rows })).unwrap();
        // The reload runs beside the requests: poll until generation 2 answers (a minute at
        // most; no request may fail meanwhile).
        for _ in 0..6000 {
            let a = client.post("/predict", body.clone()).await.unwrap();
            assert_eq!(a.status, 200, "{:?}", a.body);
            let answer: PredictAnswer = a.json().unwrap();
            if answer.model.generation == 2 {
                return answer;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("SIGHUP did not reload the checkpoint within a minute");
    });
    assert_eq!(rows_of(&answer, &header), retrained);

    // SIGTERM: a clean stop, exit status 0, no panic.
    // SAFETY: kill(2) on our own child, not yet waited for.
    unsafe {
        libc::kill(server.child().id() as i32, libc::SIGTERM);
    }
    let o = server.0.take().unwrap().wait_with_output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("stopped") && !err.contains("panicked"),
        "{err}"
    );
}

/// A predictions CSV: its header (the tasks) and its rows.
fn read_predictions(path: &Path) -> (Vec<String>, Vec<Vec<f32>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    (header, rows)
}

/// An answer's predictions as rows of `tasks`, as a predictions CSV holds them.
fn rows_of(answer: &PredictAnswer, tasks: &[String]) -> Vec<Vec<f32>> {
    answer
        .predictions
        .iter()
        .map(|row| tasks.iter().map(|t| row[t]).collect())
        .collect()
}

/// The server process, killed if the test fails before stopping it.
struct Reaped(Option<std::process::Child>);

impl Reaped {
    fn child(&mut self) -> &mut std::process::Child {
        self.0.as_mut().unwrap()
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
