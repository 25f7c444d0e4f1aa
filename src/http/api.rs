//! `/api`: runs other systems ask for and follow, and the operator's actions, for machines.
//!
//! Off unless `API_TOKEN` is set (every `/api` path then answers `404` saying so). Every request
//! needs `Authorization: Bearer <API_TOKEN>`, compared in constant time; none or a wrong one is a
//! `401` with a JSON error (the token is never logged). Errors are JSON: `{"error": ...}`, plus
//! `"field"` for a `400`. The endpoints are described by `GET /api/openapi.json`.
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::ledger::{Action, ActionError, ActionRefused, Actor};
use crate::runs::{coordinator::RunError, RunRequest, Runs};

/// The API's parts, set once the loader is up.
#[derive(Clone)]
pub struct Api {
    pub runs: Runs,
}

/// Where the API is: on when `API_TOKEN` is set (`token`); `api` fills once the loader is up.
#[derive(Default)]
pub struct ApiSlot {
    pub token: Option<Secret>,
    pub api: OnceLock<Api>,
}

impl ApiSlot {
    /// The API, on with `token` (`API_TOKEN`), off without.
    pub fn new(token: Option<Secret>) -> Arc<Self> {
        Arc::new(ApiSlot {
            token,
            api: OnceLock::new(),
        })
    }
}

/// The OpenAPI 3 document of the HTTP server.
pub const OPENAPI: &str = include_str!("openapi.json");

#[derive(Clone)]
struct ApiState {
    slot: Arc<ApiSlot>,
}

/// An error answer: its status and JSON body (`{"error": ...}`, `"field"` for a 400).
struct ApiError {
    status: StatusCode,
    body: serde_json::Value,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::UNAUTHORIZED {
            return (
                self.status,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(self.body),
            )
                .into_response();
        }
        (self.status, Json(self.body)).into_response()
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        body: json!({ "error": message.into() }),
    }
}

/// [`error`] as a response.
fn err(status: StatusCode, message: impl Into<String>) -> Response {
    error(status, message).into_response()
}

/// [`bad_request`] as a response.
fn bad(field: &str, message: impl Into<String>) -> Response {
    bad_request(field, message).into_response()
}

fn bad_request(field: &str, message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        body: json!({ "error": message.into(), "field": field }),
    }
}

/// The API if it is on and the request carries its token.
fn authorized(state: &ApiState, headers: &HeaderMap) -> Result<Api, ApiError> {
    let Some(token) = &state.slot.token else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "the API is off: set API_TOKEN to turn it on",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = token.expose().as_bytes();
    // Constant time over the expected token's length whatever is given.
    let same: bool = given.as_bytes().ct_eq(expected).into();
    if given.is_empty() || !same {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <API_TOKEN>)",
        ));
    }
    match state.slot.api.get() {
        Some(api) => Ok(api.clone()),
        None => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the loader is starting (Postgres not reached yet)",
        )),
    }
}

async fn openapi(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    match authorized(&state, &headers) {
        Ok(api) => Json(document(&api.runs.tables())).into_response(),
        Err(r) => r.into_response(),
    }
}

/// The OpenAPI document with this database's replicated tables as the `tables` and `{table}`
/// values.
pub fn document(tables: &std::collections::BTreeSet<String>) -> serde_json::Value {
    let mut doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json parses");
    let names: Vec<serde_json::Value> = tables.iter().map(|t| json!(t)).collect();
    doc["components"]["schemas"]["RunRequest"]["properties"]["tables"]["items"]["enum"] =
        json!(names);
    for action in ["retry", "skip"] {
        doc["paths"][format!("/api/streams/{{table}}/{action}")]["post"]["parameters"][0]
            ["schema"]["enum"] = json!(names);
    }
    doc
}

async fn start_run(State(state): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    let api = match authorized(&state, &headers) {
        Ok(api) => api,
        Err(r) => return r.into_response(),
    };
    let request = match RunRequest::parse(&body, &api.runs.tables()) {
        Ok(r) => r,
        Err(e) => return bad(e.field, e.to_string()),
    };
    match api.runs.start(request, None).await {
        Ok(run) => (StatusCode::ACCEPTED, Json(run)).into_response(),
        Err(RunError::BadRequest(e)) => bad(e.field, e.to_string()),
        Err(e) => err(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn list_runs(
    State(state): State<ApiState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let api = match authorized(&state, &headers) {
        Ok(api) => api,
        Err(r) => return r.into_response(),
    };
    // The first `limit=` of the query string, if any.
    let limit = query.as_deref().unwrap_or("").split('&').find_map(|pair| {
        pair.strip_prefix("limit=").map(|v| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    });
    let limit = match limit.as_deref().map(str::parse::<i64>) {
        None => 50,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => return bad("limit", "limit: a whole number from 1 to 1000"),
    };
    match api.runs.target().runs(limit).await {
        Ok(runs) => Json(runs).into_response(),
        Err(e) => err(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn get_run(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(run_id): Path<String>,
) -> Response {
    let api = match authorized(&state, &headers) {
        Ok(api) => api,
        Err(r) => return r.into_response(),
    };
    match api.runs.target().run(&run_id).await {
        Ok(Some(run)) => Json(run).into_response(),
        Ok(None) => err(StatusCode::NOT_FOUND, format!("no run {run_id:?}")),
        Err(e) => err(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `{"key": ..., "reason": ...}` of a retry or a skip.
fn action_body(body: &[u8]) -> Result<(String, String), ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| bad_request("body", format!("body: not valid JSON: {e}")))?;
    let key = match value.get("key") {
        Some(serde_json::Value::String(k)) if !k.is_empty() => k.clone(),
        _ => {
            return Err(bad_request(
                "key",
                "key: the object key (a string) is required",
            ))
        }
    };
    let reason = match value.get("reason") {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(r)) => r.clone(),
        Some(_) => return Err(bad_request("reason", "reason: must be a string")),
    };
    Ok((key, reason))
}

async fn act(
    state: ApiState,
    headers: HeaderMap,
    table: String,
    body: Bytes,
    action: Action,
) -> Response {
    let api = match authorized(&state, &headers) {
        Ok(api) => api,
        Err(r) => return r.into_response(),
    };
    if !api.runs.tables().contains(&table) {
        return err(
            StatusCode::NOT_FOUND,
            format!("no replicated table {table:?}"),
        );
    }
    let (key, reason) = match action_body(&body) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let actor = Actor {
        name: "api".into(),
        via: "api",
    };
    match api.runs.target().act(action, &key, &reason, &actor).await {
        Ok(done) if done.table != table => {
            // Recorded already: say so rather than pretend nothing happened.
            err(
                StatusCode::CONFLICT,
                format!(
                    "{key} belongs to table {}, not {table}; the {} was recorded for {}",
                    done.table,
                    action.verb(),
                    done.table
                ),
            )
        }
        Ok(done) => {
            // The loop attempts the file (retry) or goes on (skip) at once.
            api.runs.wake();
            Json(done).into_response()
        }
        Err(ActionError::Refused(ActionRefused::NoReason)) => {
            bad("reason", ActionRefused::NoReason.to_string())
        }
        Err(ActionError::Refused(r)) => err(StatusCode::CONFLICT, r.to_string()),
        Err(ActionError::Target(e)) => err(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn retry(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(table): Path<String>,
    body: Bytes,
) -> Response {
    act(state, headers, table, body, Action::Retry).await
}

async fn skip(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(table): Path<String>,
    body: Bytes,
) -> Response {
    act(state, headers, table, body, Action::Skip).await
}

async fn not_found(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&state, &headers) {
        return r.into_response();
    }
    err(
        StatusCode::NOT_FOUND,
        "no such API endpoint (see /api/openapi.json)",
    )
}

/// The `/api` routes.
pub fn router(slot: Arc<ApiSlot>) -> Router {
    let api = Router::new()
        .route("/openapi.json", get(openapi))
        .route("/runs", post(start_run).get(list_runs))
        .route("/runs/{run_id}", get(get_run))
        .route("/streams/{table}/retry", post(retry))
        .route("/streams/{table}/skip", post(skip))
        .fallback(not_found)
        .with_state(ApiState { slot });
    Router::new().nest("/api", api)
}
