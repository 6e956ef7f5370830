//! The server over loopback: predictions equal `mtrec predict`'s, bad input is a 4xx naming
//! the row and field, limits hold, `/health` and `/model` describe the model, reloads swap
//! models under load, and shutdown finishes the requests in flight.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use mtrec_data::{DataConfig, FilesConfig};
use mtrec_serve::api::{ApiError, parse_rows};
use mtrec_serve::decode::RowDecoder;
use mtrec_serve::{ErrorBody, Limits, PredictAnswer};
use serde_json::{Value, json};

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictions_over_http_equal_mtrec_predict_on_the_same_rows() {
    let (dir, ck) = checkpoint_dir(7);
    let csv = dir.path().join("new.csv");
    std::fs::write(&csv, NEW_CSV).unwrap();
    let expected = predict_file(&ck, &csv);
    assert_eq!(expected.len(), 2);
    assert_eq!(expected[0].len(), 6);
    // The regression task comes back on the label's scale (watch minutes up to ~22), not
    // the standardised one.
    assert!(expected[1].iter().any(|v| v.abs() > 3.0), "{expected:?}");

    let server = start(options(&ck)).await;
    let mut client = server.client();
    for rows in [new_rows_json(), new_rows_typed_json()] {
        let a = client.post("/predict", body(&rows)).await.unwrap();
        assert_eq!(a.status, 200, "{:?}", a.body);
        let answer: PredictAnswer = a.json().unwrap();
        assert_eq!(answer.tasks, ["click", "minutes"]);
        assert_eq!(answer.model.generation, 1);
        assert_eq!(answer.columns(), expected, "rows {rows}");
    }

    // One row per request, all at once: the inference thread joins them into shared
    // batches, which must not change any row's prediction.
    let rows = new_rows_typed_json()["rows"].as_array().unwrap().clone();
    let mut tasks = Vec::new();
    for round in 0..5 {
        for (r, row) in rows.iter().enumerate() {
            let mut client = server.client();
            let payload = body(&json!({ "rows": [row] }));
            tasks.push(tokio::spawn(async move {
                let a = client.post("/predict", payload).await.unwrap();
                assert_eq!(a.status, 200, "{:?}", a.body);
                (round, r, a.json::<PredictAnswer>().unwrap().columns())
            }));
        }
    }
    for task in tasks {
        let (round, r, got) = task.await.unwrap();
        let want: Vec<Vec<f32>> = expected.iter().map(|t| vec![t[r]]).collect();
        assert_eq!(got, want, "round {round}, row {r}");
    }

    // No rows, no work: an empty answer.
    let a = client.post("/predict", r#"{"rows": []}"#).await.unwrap();
    assert_eq!(a.status, 200);
    assert!(a.json::<PredictAnswer>().unwrap().predictions.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_are_4xx_naming_the_row_and_field_and_never_500() {
    let (_dir, ck) = checkpoint_dir(7);
    let server = start(options(&ck)).await;
    let mut client = server.client();
    let good = json!({"user": "u1", "tags": "sport", "age": 30, "score": 1});
    let with = |field: &str, value: Value| {
        let mut row = good.clone();
        row[field] = value;
        row
    };
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("age");
    let cases = [
        (missing, "age", "missing"),
        (with("age", json!(true)), "age", "expected a number"),
        (with("age", json!("abc")), "age", "cannot parse \"abc\""),
        (with("age", json!("inf")), "age", "not a finite"),
        (with("age", json!(1e300)), "age", "not a finite"),
        (with("user", json!({"id": 1})), "user", "got an object"),
        (with("user", json!(["a"])), "user", "got an array"),
        (with("tags", json!(["a", false])), "tags", "array holding"),
        (
            with("agee", json!(3)),
            "agee",
            "unknown field; the model reads `user`",
        ),
    ];
    for (row, field, needle) in cases {
        // The bad row second, between good ones: the answer names row 1.
        let request = json!({ "rows": [good, row, good] });
        let a = client.post("/predict", body(&request)).await.unwrap();
        assert_eq!(a.status, 422, "{request}: {:?}", a.body);
        let e: ErrorBody = a.json().unwrap();
        assert_eq!(e.rows.len(), 1, "{e:?}");
        assert_eq!(
            (e.rows[0].row, e.rows[0].field.as_str()),
            (1, field),
            "{e:?}"
        );
        assert!(e.rows[0].message.contains(needle), "{needle}: {e:?}");
        assert!(
            e.error.starts_with(&format!("row 1: field `{field}`")),
            "{e:?}"
        );
    }

    // Every bad row is listed, in row order, whichever check found it.
    let request = json!({"rows": [with("age", json!("x")), good, with("score", json!(false)), with("age", json!(-1e39))]});
    let e: ErrorBody = client
        .post("/predict", body(&request))
        .await
        .unwrap()
        .json()
        .unwrap();
    let named: Vec<(usize, &str)> = e.rows.iter().map(|r| (r.row, r.field.as_str())).collect();
    assert_eq!(named, [(0, "age"), (2, "score"), (3, "age")], "{e:?}");
    assert!(e.error.ends_with("(and 2 more bad rows)"), "{e:?}");

    // Broken JSON inside a row still names the row and field; other shapes are a 400.
    let a = client
        .post(
            "/predict",
            r#"{"rows": [{"user": "u1", "tags": "", "age": 3, "score": 1}, {"user": "u1", "age": NaN}]}"#,
        )
        .await
        .unwrap();
    assert_eq!(a.status, 400);
    let e: ErrorBody = a.json().unwrap();
    assert_eq!(
        (e.rows[0].row, e.rows[0].field.as_str()),
        (1, "age"),
        "{e:?}"
    );
    assert!(e.error.contains("JSON has no NaN"), "{e:?}");
    for bad in [
        "not json",
        "[]",
        r#"{"rows": {"user": "u1"}}"#,
        r#"{"rows": [1]}"#,
        r#"{"rows": []"#,
    ] {
        let a = client.post("/predict", bad).await.unwrap();
        assert_eq!(a.status, 400, "{bad}");
        let e: ErrorBody = a.json().unwrap();
        assert!(e.error.starts_with("invalid JSON: "), "{bad}: {e:?}");
    }

    // Wrong paths and methods are JSON too.
    let a = client.get("/predict").await.unwrap();
    assert_eq!(a.status, 405);
    assert!(a.json::<ErrorBody>().unwrap().error.contains("use POST"));
    let a = client.get("/nowhere").await.unwrap();
    assert_eq!(a.status, 404);
    assert!(
        a.json::<ErrorBody>()
            .unwrap()
            .error
            .contains("POST /predict")
    );

    // After all that, the server answers as before and counted the errors.
    let a = client
        .post("/predict", body(&json!({ "rows": [good] })))
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    let health: Value = client.get("/health").await.unwrap().json().unwrap();
    assert_eq!(health["server_errors"], 0, "{health}");
    assert!(health["client_errors"].as_u64().unwrap() >= 15, "{health}");
    server.stop().await;
}

/// Found by `fuzz/fuzz_targets/request_decoder.rs` (its seeds `regression-*`): request keys
/// are echoed in errors, so a key holding a line break made a multi-line `error`, and an
/// empty key gave a row error that named no field.
#[test]
fn odd_request_keys_give_one_line_errors_that_name_them() {
    let e = parse_rows(b"{\"\\n\"\"ro\x7fs\": []}").unwrap_err();
    assert_eq!(e.status, 400);
    assert_eq!(
        e.message,
        r"invalid JSON: unknown field `\n`, expected `rows` at line 1 column 5"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.toml"), SCHEMA).unwrap();
    std::fs::write(dir.path().join("train.csv"), train_rows(100)).unwrap();
    let files = FilesConfig::new("schema.toml", "train.csv");
    let pre = mtrec_data::load(&DataConfig::Files(files), dir.path())
        .unwrap()
        .preprocessor;
    let rows = parse_rows(
        br#"{"rows": [{"user": "u1", "tags": "", "age": 1, "score": 2, "": 3},
                      {"user": "u1", "tags": "", "age": 1, "score": 2, "a\nb": 3}]}"#,
    )
    .unwrap();
    let e = ApiError::bad_rows(RowDecoder::new(&pre).encode(&pre, &rows).unwrap_err());
    let reads = "the model reads `user`, `tags`, `age`, `score`";
    assert_eq!(
        e.message,
        format!("row 0: an empty key is no field; {reads} (and 1 more bad rows)")
    );
    // The field stays the client's key; the error's text escapes it.
    assert_eq!(e.rows[1].field, "a\nb");
    assert_eq!(
        e.rows[1].to_string(),
        format!(r"row 1: field `a\nb`: unknown field; {reads}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_and_row_counts_over_the_limits_are_413() {
    let (_dir, ck) = checkpoint_dir(7);
    let mut opts = options(&ck);
    opts.limits = Limits {
        max_body_bytes: 4096,
        max_rows: 3,
    };
    let server = start(opts).await;
    let mut client = server.client();
    let row = json!({"user": "u1", "tags": "sport", "age": 30, "score": 1});
    let a = client
        .post("/predict", body(&json!({ "rows": [row, row, row] })))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);

    let a = client
        .post("/predict", body(&json!({ "rows": [row, row, row, row] })))
        .await
        .unwrap();
    assert_eq!(a.status, 413);
    let e: ErrorBody = a.json().unwrap();
    assert!(
        e.error.contains("4 rows in one request; the limit is 3"),
        "{e:?}"
    );

    let big = json!({ "rows": [{"user": "u".repeat(5000), "tags": "", "age": 1, "score": 1}] });
    let a = client.post("/predict", body(&big)).await.unwrap();
    assert_eq!(a.status, 413);
    let e: ErrorBody = a.json().unwrap();
    assert!(e.error.contains("over the limit of 4096 bytes"), "{e:?}");

    // The limits are part of the model's description, and the server still answers.
    let mut client = server.client();
    let info: Value = client.get("/model").await.unwrap().json().unwrap();
    assert_eq!(
        info["limits"],
        json!({"max_body_bytes": 4096, "max_rows": 3})
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_model_describe_the_served_checkpoint() {
    let (_dir, ck) = checkpoint_dir(7);
    let server = start(options(&ck)).await;
    let mut client = server.client();
    let health: Value = client.get("/health").await.unwrap().json().unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(
        health["model"],
        json!({"name": "serve-test", "generation": 1})
    );
    assert_eq!(health["last_reload_error"], Value::Null);

    let info: Value = client.get("/model").await.unwrap().json().unwrap();
    assert_eq!(info["name"], "serve-test");
    assert_eq!(
        info["tasks"],
        json!([
            {"name": "click", "kind": "binary", "output": "probability"},
            {"name": "minutes", "kind": "regression", "output": "value on the label's scale"},
        ])
    );
    // The inputs a row gives, in schema order: 17 users seen, u0..u16, each >= 2 times.
    let inputs = info["inputs"].as_array().unwrap();
    let columns: Vec<&str> = inputs
        .iter()
        .map(|f| f["column"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["user", "tags", "age", "score"]);
    assert_eq!(
        inputs[0],
        json!({"column": "user", "type": "categorical", "known_values": 17})
    );
    assert_eq!(inputs[1]["separator"], "|");
    assert_eq!(
        inputs[2],
        json!({"column": "age", "type": "numeric", "fill": 35.0})
    );
    assert_eq!(inputs[3], json!({"column": "score", "type": "numeric"}));
    assert_eq!(info["ignored_columns"], json!(["click", "watch"]));
    assert_eq!(info["architecture"]["kind"], "shared-bottom");
    assert_eq!(info["architecture"]["model"]["bottom"], json!([8]));
    assert_eq!(info["metrics"]["seed"], 7);
    assert!(
        info["metrics"]["test"]["tasks"]["click"]["auc"].is_number(),
        "{info}"
    );
    assert_eq!(info["schema"]["dense"][1]["boundaries"], json!([0.0, 5.0]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_checkpoint_is_swapped_in_while_requests_keep_succeeding() {
    let (dir, ck) = checkpoint_dir(7);
    let csv = dir.path().join("new.csv");
    std::fs::write(&csv, NEW_CSV).unwrap();
    let before = predict_file(&ck, &csv);
    // The next checkpoint, trained apart (another seed) and saved over the served one.
    let other = dir.path().join("other");
    train_checkpoint(dir.path(), &other, 8);
    let after = predict_file(&other, &csv);
    assert_ne!(before, after);

    let mut opts = options(&ck);
    opts.watch = Some(std::time::Duration::from_millis(20));
    let server = start(opts).await;

    // Clients asking all along: every answer succeeds and is exactly one model's.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (stop, mut client) = (stop.clone(), server.client());
        let (before, after) = (before.clone(), after.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = [0usize; 2];
            while !stop.load(Ordering::Relaxed) {
                let a = client
                    .post("/predict", body(&new_rows_json()))
                    .await
                    .unwrap();
                assert_eq!(a.status, 200, "{:?}", a.body);
                let answer: PredictAnswer = a.json().unwrap();
                let g = answer.model.generation as usize;
                let want = if g == 1 { &before } else { &after };
                assert_eq!(&answer.columns(), want, "generation {g}");
                seen[g.min(2) - 1] += 1;
            }
            seen
        }));
    }
    let mut client = server.client();
    eventually(async || {
        client
            .get("/health")
            .await
            .unwrap()
            .json::<Value>()
            .unwrap()["requests"]
            .as_u64()
            .unwrap()
            > 3
    })
    .await;
    copy_checkpoint(&other, &ck);
    eventually(async || server.handle.generation() == 2).await;
    // A few more answers from generation 2 before stopping the clients.
    let served = client
        .get("/health")
        .await
        .unwrap()
        .json::<Value>()
        .unwrap()["requests"]
        .as_u64()
        .unwrap();
    eventually(async || {
        client
            .get("/health")
            .await
            .unwrap()
            .json::<Value>()
            .unwrap()["requests"]
            .as_u64()
            .unwrap()
            > served + 3
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut total = [0, 0];
    for c in clients {
        let seen = c.await.unwrap();
        total[0] += seen[0];
        total[1] += seen[1];
    }
    assert!(total[0] > 0 && total[1] > 0, "{total:?}");

    // A broken checkpoint is refused: the old model keeps serving and /health says why.
    std::fs::write(ck.join("model.safetensors"), b"not weights").unwrap();
    assert!(server.handle.reload().await.is_err());
    assert_eq!(server.handle.generation(), 2);
    let health: Value = client.get("/health").await.unwrap().json().unwrap();
    let error = health["last_reload_error"].as_str().unwrap();
    assert!(error.contains("model.safetensors"), "{error}");
    let answer: PredictAnswer = client
        .post("/predict", body(&new_rows_json()))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(answer.columns(), after);

    // A reload on request (SIGHUP's path) once the checkpoint is whole again.
    copy_checkpoint(&other, &ck);
    // (The watcher may see the new folder first: then this reload is generation 4.)
    let reloaded = server.handle.reload().await.unwrap();
    assert!(
        matches!(reloaded, mtrec_serve::Reloaded::Swapped(g) if g >= 3),
        "{reloaded:?}"
    );
    let health: Value = client.get("/health").await.unwrap().json().unwrap();
    assert_eq!(health["last_reload_error"], Value::Null);
    server.stop().await;
}

/// Saves `from` over `to` the way `mtrec train` does: a complete folder renamed into place.
fn copy_checkpoint(from: &std::path::Path, to: &std::path::Path) {
    let staging = to.with_extension("staging");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), staging.join(entry.file_name())).unwrap();
    }
    // A new manifest time even on file systems with coarse timestamps.
    let manifest = staging.join("mtrec.json");
    let file = std::fs::File::options()
        .write(true)
        .open(&manifest)
        .unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(1);
    file.set_modified(later).unwrap();
    let old = to.with_extension("old");
    let _ = std::fs::remove_dir_all(&old);
    std::fs::rename(to, &old).unwrap();
    std::fs::rename(&staging, to).unwrap();
    std::fs::remove_dir_all(&old).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_a_request_in_flight_and_then_refuses_connections() {
    let (_dir, ck) = checkpoint_dir(7);
    let mut server = start(options(&ck)).await;
    let addr = server.addr();
    let payload = body(&json!({"rows": [{"user": "u1", "tags": "sport", "age": 30, "score": 1}]}));

    // `Expect: 100-continue`: the server answers "100 Continue" only once its handler reads
    // the body, so when the client sees it the request is surely in flight.
    let in_flight = std::thread::spawn(move || {
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        write!(
            tcp,
            "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            payload.len()
        )
        .unwrap();
        let mut interim = [0u8; 25];
        tcp.read_exact(&mut interim).unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        (tcp, payload)
    });
    let (mut tcp, payload) = tokio::task::spawn_blocking(move || in_flight.join().unwrap())
        .await
        .unwrap();

    // Shut down while the request waits for its body; then send the body.
    let _ = server.stop.take().unwrap().send(());
    let mut probe = server.client();
    eventually(async || probe.get("/health").await.is_err()).await;
    let answer = tokio::task::spawn_blocking(move || {
        tcp.write_all(&payload).unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let json_start = answer.find("\r\n\r\n").unwrap() + 4;
    let a: PredictAnswer = serde_json::from_str(&answer[json_start..]).unwrap();
    assert_eq!(a.predictions.len(), 1);
    server.served.await.unwrap().unwrap();
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[test]
fn requests_joined_into_one_forward_pass_get_their_own_rows_predictions_exactly() {
    let (dir, ck) = checkpoint_dir(7);
    let csv = dir.path().join("new.csv");
    std::fs::write(&csv, NEW_CSV).unwrap();
    let expected = predict_file(&ck, &csv);
    let device = mtrec_engine::default_device();
    let model = mtrec_serve::LoadedModel::load(&ck, 1, &device).unwrap();
    let rows: Vec<mtrec_serve::api::JsonRow> =
        serde_json::from_value(new_rows_typed_json()["rows"].clone()).unwrap();
    // Three requests of 1, 3 and 2 rows, in one pass.
    let parts = [0..1, 1..4, 4..6];
    let tables = parts
        .iter()
        .map(|p| {
            model
                .decoder
                .encode(&model.preprocessor, &rows[p.clone()])
                .unwrap()
        })
        .collect();
    let outputs = mtrec_serve::worker::predict_together(&model, tables, &device);
    assert_eq!(outputs.len(), 3);
    for (p, got) in parts.iter().zip(outputs) {
        let want: Vec<Vec<f32>> = expected.iter().map(|t| t[p.clone()].to_vec()).collect();
        assert_eq!(got.unwrap(), want, "rows {p:?}");
    }
}
