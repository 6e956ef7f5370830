//! The HTTP routes: `POST /predict`, `GET /health`, `GET /model`.
//!
//! Every answer is JSON. Bad input is a 4xx naming what is wrong, never a 500: 400 for a
//! body that is not the request's JSON shape, 422 for rows whose values are wrong (each bad
//! row listed with its field), 413 for a body or a row count over the limits, 404/405 for
//! other paths and methods. A 500 means the server or the checkpoint is at fault.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::json;

use crate::api::{ApiError, ModelStamp, PredictResponse, Predictions, json_response, parse_rows};
use crate::model::ModelSlot;
use crate::worker::Inference;

/// What one request may hold.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Limits {
    /// Bytes of a request body.
    pub max_body_bytes: usize,
    /// Rows of one `/predict` request.
    pub max_rows: usize,
}

impl Default for Limits {
    /// 16 MiB and 10,000 rows: a 10,000-row request of a few dozen fields fits, and one
    /// request cannot hold the inference thread for long.
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 << 20,
            max_rows: 10_000,
        }
    }
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub models: Arc<ModelSlot>,
    pub inference: Inference,
    pub limits: Limits,
    pub counters: Arc<Counters>,
    pub started: Instant,
}

/// Running totals for `/health`.
#[derive(Default, Debug)]
pub struct Counters {
    pub requests: AtomicU64,
    pub rows: AtomicU64,
    pub client_errors: AtomicU64,
    pub server_errors: AtomicU64,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/predict", post(predict))
        .route("/health", get(health))
        .route("/model", get(model_info))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn predict(State(state): State<AppState>, request: Request) -> Response {
    state.counters.requests.fetch_add(1, Ordering::Relaxed);
    let answer = answer_predict(&state, request).await;
    if let Err(e) = &answer {
        let counter = match e.status.is_server_error() {
            true => &state.counters.server_errors,
            false => &state.counters.client_errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if e.status.is_server_error() {
            tracing::error!("/predict: {}", e.message);
        } else {
            tracing::debug!("/predict: {} {}", e.status, e.message);
        }
    }
    answer.unwrap_or_else(IntoResponse::into_response)
}

async fn answer_predict(state: &AppState, request: Request) -> Result<Response, ApiError> {
    let limits = state.limits;
    let t0 = Instant::now();
    let body = to_bytes(request.into_body(), limits.max_body_bytes)
        .await
        .map_err(|e| body_error(e, limits))?;
    let rows = parse_rows(&body)?;
    drop(body);
    let t_parse = t0.elapsed();
    if rows.len() > limits.max_rows {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} rows in one request; the limit is {} (send them in several requests, or \
                 raise --max-rows)",
                rows.len(),
                limits.max_rows
            ),
        ));
    }
    // One model for the whole request, even if a reload swaps it meanwhile.
    let model = state.models.current();
    let table = model
        .decoder
        .encode(&model.preprocessor, &rows)
        .map_err(ApiError::bad_rows)?;
    drop(rows);
    let t_encode = t0.elapsed();
    let n_rows = table.n_rows;
    let outputs = if n_rows == 0 {
        vec![Vec::new(); model.task_names.len()]
    } else {
        state
            .inference
            .predict(model.clone(), table)
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?
    };
    let t_predict = t0.elapsed();
    state
        .counters
        .rows
        .fetch_add(n_rows as u64, Ordering::Relaxed);
    let response = json_response(
        StatusCode::OK,
        &PredictResponse {
            model: ModelStamp {
                name: model.name.as_str().into(),
                generation: model.generation,
            },
            tasks: &model.task_names,
            predictions: Predictions {
                tasks: &model.task_names,
                values: &outputs,
            },
        },
    );
    tracing::debug!(
        "/predict: {n_rows} rows: read and parsed {:?}, encoded {:?}, predicted {:?}, \
         answered {:?}",
        t_parse,
        t_encode - t_parse,
        t_predict - t_encode,
        t0.elapsed() - t_predict
    );
    Ok(response)
}

/// A body over the limit is a 413; one that broke off is the client's 400.
fn body_error(e: axum::Error, limits: Limits) -> ApiError {
    let too_large = std::error::Error::source(&e)
        .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        || e.to_string().contains("length limit");
    if too_large {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is over the limit of {} bytes (send fewer rows per request, \
                 or raise --max-body-bytes)",
                limits.max_body_bytes
            ),
        )
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("cannot read the request body: {e}"),
        )
    }
}

async fn health(State(state): State<AppState>) -> Response {
    let model = state.models.current();
    let c = &state.counters;
    json_response(
        StatusCode::OK,
        &json!({
            "status": "ok",
            "model": ModelStamp { name: model.name.as_str().into(), generation: model.generation },
            "checkpoint": model.checkpoint.display().to_string(),
            "uptime_seconds": state.started.elapsed().as_secs_f64(),
            "requests": c.requests.load(Ordering::Relaxed),
            "rows": c.rows.load(Ordering::Relaxed),
            "client_errors": c.client_errors.load(Ordering::Relaxed),
            "server_errors": c.server_errors.load(Ordering::Relaxed),
            "last_reload_error": state.models.last_error(),
        }),
    )
}

async fn model_info(State(state): State<AppState>) -> Response {
    let model = state.models.current();
    let mut info = model.info.clone();
    info["limits"] = json!(state.limits);
    json_response(StatusCode::OK, &info)
}

async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {method} {uri}; the routes are POST /predict, GET /health, GET /model"),
    )
    .into_response()
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Response {
    let allowed = if uri.path() == "/predict" {
        "POST"
    } else {
        "GET"
    };
    let mut r = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}; use {allowed}", uri.path()),
    )
    .into_response();
    r.headers_mut().insert(
        axum::http::header::ALLOW,
        axum::http::HeaderValue::from_static(allowed),
    );
    r
}
