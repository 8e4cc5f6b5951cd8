//! Errors: what a client is told (`ApiError`: a status and a stable code, nothing more)
//! and what the operator is told (`ServerError`: the full context, for `init` and `run`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::path::PathBuf;

/// An API failure as the client sees it: a status and a stable code in a JSON body
/// (`{"error":"not_found"}`). Internal causes are logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: bad JSON, an unknown field, an invalid value.
    #[error("bad request")]
    BadRequest,
    /// No valid credentials.
    #[error("unauthorized")]
    Unauthorized,
    /// Credentials valid, access refused (role, CSRF, a password to change first).
    #[error("forbidden")]
    Forbidden,
    /// The password must be changed before anything else.
    #[error("password change required")]
    PasswordChangeRequired,
    /// No such object in the caller's organisation (or no such route).
    #[error("not found")]
    NotFound,
    /// The method is not allowed on this route.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The object exists already (a unique name).
    #[error("conflict")]
    Conflict,
    /// The body exceeds the limit.
    #[error("payload too large")]
    TooLarge,
    /// Too many failed attempts: try later.
    #[error("too many requests")]
    TooManyRequests,
    /// Storage cannot take the request now (the lake or the database); try again.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A failure of the server's own (database, signing); the cause is logged here.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::PasswordChangeRequired => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict => StatusCode::CONFLICT,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code in the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest => "bad_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::PasswordChangeRequired => "password_change_required",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict => "conflict",
            ApiError::TooLarge => "payload_too_large",
            ApiError::TooManyRequests => "too_many_requests",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(cause) => tracing::error!("internal error: {cause}"),
            ApiError::Unavailable(cause) => tracing::warn!("unavailable: {cause}"),
            _ => {}
        }
        let body = format!("{{\"error\":\"{}\"}}", self.code());
        (
            self.status(),
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
            return ApiError::Conflict;
        }
        // Lost, or ended by the server (class 08: connection exception; class 57:
        // operator intervention, as a restart): being replaced (`db::Db`), so the
        // client may try again.
        let ended = e
            .code()
            .is_some_and(|c| c.code().starts_with("08") || c.code().starts_with("57"));
        if e.is_closed() || ended {
            return ApiError::Unavailable(format!("database: {e}"));
        }
        ApiError::Internal(format!("database: {e}"))
    }
}

/// A failure to set up or start the server, with its context.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A file or directory of the data directory.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The database refused or failed.
    #[error("database: {context}: {source}")]
    Db {
        /// What was being done.
        context: String,
        /// The cause.
        source: tokio_postgres::Error,
    },
    /// The database's schema is newer than this binary knows.
    #[error("the database's schema is version {database}, newer than this server's {binary}: upgrade the server")]
    NewerSchema {
        /// The database's version.
        database: i32,
        /// The newest version this binary knows.
        binary: i32,
    },
    /// `init` on a data directory or database already initialised.
    #[error("already initialised: {0}")]
    AlreadyInitialised(String),
    /// Certificates and keys: generating, reading or signing.
    #[error("certificate: {0}")]
    Cert(String),
    /// TLS settings.
    #[error("TLS: {0}")]
    Tls(String),
    /// A bad argument.
    #[error("{0}")]
    Invalid(String),
}

impl ServerError {
    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let context = context.into();
        move |source| ServerError::Db { context, source }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ServerError::Io { path, source }
    }
}
