//! Event search: an analyst's query (the `vigil query` languages: the pipe language or
//! SQL) over the organisation's own lake. The engine is not in this crate (it would
//! bring DataFusion into every build of the server's library and its tests): the binary
//! that runs the server plugs one in ([`Search`]; `vigil server run` gives vigil-query's,
//! read only). The lake a query reads is chosen here, from the caller's organisation,
//! never from the request.

use crate::auth::Caller;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// The most rows a search returns.
pub const MAX_ROWS: usize = 1000;
/// How long a search may run.
pub const TIMEOUT: Duration = Duration::from_secs(20);
/// The longest query text.
pub const MAX_QUERY: usize = 4096;

/// A search's rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    /// The column names (nested fields as dotted paths).
    pub columns: Vec<String>,
    /// The rows, one value per column.
    pub rows: Vec<Vec<Value>>,
    /// Whether rows were left out (the row limit or the time limit).
    pub truncated: bool,
    /// What ran (the SQL a pipe query compiled to).
    pub sql: String,
}

/// A query engine over a lake directory.
pub trait Search: Send + Sync + std::fmt::Debug {
    /// Runs `query` over the lake in `dir`: at most `max_rows` rows, for at most
    /// `timeout`; blocking (called on a thread of its own). `Err`: what is wrong with
    /// the query, in a sentence the analyst can act on (no path of the server's).
    fn search(
        &self,
        dir: &Path,
        query: &str,
        max_rows: usize,
        timeout: Duration,
    ) -> Result<Found, String>;
}

/// `POST /api/v1/orgs/{org}/search`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The query: the pipe language (`process_activity | where ...`) or SQL.
    pub query: String,
    /// At most this many rows (1 to [`MAX_ROWS`], default 200).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Runs a search over the caller's organisation's lake; audited (`search`, with the
/// query's start). A query the engine refuses is a 400 with its reason.
pub async fn search(
    State(state): State<AppState>,
    Extension(c): Extension<Caller>,
    JsonBody(body): JsonBody<SearchRequest>,
) -> Result<Response, ApiError> {
    let shown: String = body.query.chars().take(200).collect();
    let limit = body.limit.unwrap_or(200);
    let bad = body.query.trim().is_empty()
        || body.query.chars().count() > MAX_QUERY
        || body
            .query
            .chars()
            .any(|ch| ch.is_control() && ch != '\n' && ch != '\t')
        || !(1..=MAX_ROWS).contains(&limit);
    if bad {
        c.audit(&state, "search", &shown, "invalid").await;
        return Err(ApiError::BadRequest);
    }
    let Some(engine) = state.settings().search.clone() else {
        return Err(ApiError::Unavailable(
            "no search engine in this server".into(),
        ));
    };
    let Some(dir) = state.lakes().org_dir(c.org) else {
        return Err(ApiError::Unavailable("no lake configured".into()));
    };
    let query = body.query.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A thread of its own: the engine runs its own runtime, which may not start inside
    // this one's workers.
    std::thread::Builder::new()
        .name("vigil-search".into())
        .spawn(move || {
            let found = if dir.is_dir() {
                engine.search(&dir, &query, limit, TIMEOUT)
            } else {
                // Nothing shipped yet: no rows, not an error.
                Ok(Found::default())
            };
            let _ = tx.send(found);
        })
        .map_err(|e| ApiError::Internal(format!("search thread: {e}")))?;
    let found = rx
        .await
        .map_err(|_| ApiError::Internal("the search thread ended without an answer".into()))?;
    match found {
        Ok(f) => {
            c.audit(&state, "search", &shown, "ok").await;
            Ok(Json(json!({
                "columns": f.columns,
                "rows": f.rows,
                "truncated": f.truncated,
                "sql": f.sql,
            }))
            .into_response())
        }
        Err(reason) => {
            c.audit(&state, "search", &shown, "invalid: query").await;
            let reason: String = reason.chars().take(2000).collect();
            Ok((
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": "bad_query", "message": reason })),
            )
                .into_response())
        }
    }
}
