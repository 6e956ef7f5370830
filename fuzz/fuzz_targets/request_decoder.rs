//! `POST /predict` of `mtrec serve`: the input is the request body, sent through the
//! server's own router in-process (body limit, JSON parsing, row decoding, the inference
//! thread, the answer), with `fixtures/checkpoint` loaded as `mtrec serve` loads it.
//!
//! Checks what the server promises (see `crates/mtrec-serve/src/http.rs` and `api.rs`):
//! bad input is a 400, 413 or 422, never a 500 (the fixture's weights are finite, so a 500
//! would be a bug); every error is a JSON `ErrorBody` whose `error` is one line; a 422 lists
//! each bad row once, in order, with the field at fault, and a row that exists; a 200 has
//! one prediction per row, for every task, finite (a probability for a binary task).

#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use mtrec_data::TaskKind;
use mtrec_fuzz::{assert_one_line, fixture};
use mtrec_serve::http::{AppState, Counters, router};
use mtrec_serve::{ErrorBody, ModelSlot, PredictAnswer, ServeOptions, worker};
use serde_json::Value;
use tower::ServiceExt;

/// The server of `fixtures/checkpoint`, built once per process.
struct Served {
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
    tasks: Vec<String>,
    kinds: Vec<TaskKind>,
    max_rows: usize,
}

/// What [`mtrec_serve::Server::bind`] builds, without the socket: the same options, model
/// slot, inference thread and router.
fn served() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let options = ServeOptions::new(fixture("checkpoint"), ([127, 0, 0, 1], 0).into());
        let device = mtrec_engine::default_device();
        let models =
            ModelSlot::load(&options.checkpoint, device.clone()).expect("the fixture loads");
        let model = models.current();
        let (inference, _thread) = worker::spawn(device, options.max_batch_rows, options.queue)
            .expect("start the inference thread");
        let state = AppState {
            models: Arc::new(models),
            inference,
            limits: options.limits,
            counters: Arc::new(Counters::default()),
            started: Instant::now(),
        };
        Served {
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime"),
            app: router(state),
            tasks: model.task_names.clone(),
            kinds: model.task_kinds.clone(),
            max_rows: options.limits.max_rows,
        }
    })
}

/// The rows of a body the server accepted as JSON (it has exactly the key `rows`).
fn request_rows(body: &[u8]) -> usize {
    let value: Value = serde_json::from_slice(body).expect("an accepted body is JSON");
    value["rows"].as_array().expect("`rows` is an array").len()
}

fn check_predictions(s: &Served, body: &[u8], answer: &[u8]) {
    let answer: PredictAnswer = serde_json::from_slice(answer).expect("a 200 is PredictAnswer");
    assert_eq!(answer.tasks, s.tasks);
    assert_eq!(
        answer.predictions.len(),
        request_rows(body),
        "one prediction per row"
    );
    for row in &answer.predictions {
        assert_eq!(row.len(), s.tasks.len(), "every task predicted: {row:?}");
        for (task, kind) in s.tasks.iter().zip(&s.kinds) {
            let v = row[task];
            assert!(v.is_finite(), "task {task}: {v}");
            if *kind == TaskKind::Binary {
                assert!((0.0..=1.0).contains(&v), "task {task}: probability {v}");
            }
        }
    }
}

fn check_error(s: &Served, status: StatusCode, body: &[u8], answer: &[u8]) {
    let e: ErrorBody = serde_json::from_slice(answer).expect("an error answer is an ErrorBody");
    assert_one_line(&e.error);
    for r in &e.rows {
        assert_one_line(&r.message);
        assert_one_line(&r.to_string());
    }
    match status {
        StatusCode::UNPROCESSABLE_ENTITY => {
            let n_rows = request_rows(body);
            assert!(n_rows <= s.max_rows, "over the row limit but not a 413");
            let first = e.rows.first().expect("a 422 lists its bad rows");
            assert!(e.error.starts_with(&first.to_string()), "{}", e.error);
            assert!(e.rows.len() <= mtrec_serve::api::MAX_LISTED_ERRORS);
            let listed = e.bad_rows.unwrap_or(e.rows.len());
            assert!(
                listed >= e.rows.len() && listed <= n_rows,
                "{listed} of {n_rows}"
            );
            for (i, r) in e.rows.iter().enumerate() {
                // A key `""` is named by the message.
                let named = !r.field.is_empty() || r.message.starts_with("an empty key");
                assert!(named, "names no field: {r}");
                assert!(r.row < n_rows, "row {} of {n_rows}", r.row);
                assert!(i == 0 || e.rows[i - 1].row < r.row, "rows out of order");
            }
        }
        StatusCode::BAD_REQUEST => {
            assert!(e.error.starts_with("invalid JSON: "), "{}", e.error);
            assert!(e.rows.len() <= 1 && e.bad_rows.is_none());
            if let Some(r) = e.rows.first() {
                assert_eq!(e.error, format!("invalid JSON: {r}"));
            }
        }
        _ => assert!(e.rows.is_empty(), "{status} lists rows"),
    }
}

fuzz_target!(|body: &[u8]| {
    let s = served();
    let request = Request::builder()
        .method(Method::POST)
        .uri("/predict")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_vec()))
        .expect("a request");
    let (status, answer) = s.runtime.block_on(async {
        let response = s.app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let answer = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("the answer's body");
        (status, answer)
    });
    match status {
        StatusCode::OK => check_predictions(s, body, &answer),
        StatusCode::BAD_REQUEST
        | StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNPROCESSABLE_ENTITY => check_error(s, status, body, &answer),
        other => panic!(
            "{other} for a request body: {}",
            String::from_utf8_lossy(&answer)
        ),
    }
});
