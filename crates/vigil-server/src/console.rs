//! The web console: static files compiled into the binary and served by the server
//! itself (no build step, nothing fetched from elsewhere: the Content-Security-Policy
//! `default-src 'self'` holds, no inline script or style). It is a client of the same API
//! as any other, with the session cookie and the CSRF token. Today: sign-in with TOTP and
//! the incident queue (findings and incidents, filter, triage status, keyboard).

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../console/index.html");
const APP_JS: &str = include_str!("../console/app.js");
const APP_CSS: &str = include_str!("../console/app.css");
const ICON: &str = include_str!("../console/icon.svg");

fn file(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// `GET /`: the console's page.
pub async fn index() -> Response {
    file("text/html; charset=utf-8", INDEX)
}

/// `GET /console/app.js`.
pub async fn app_js() -> Response {
    file("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /console/app.css`.
pub async fn app_css() -> Response {
    file("text/css; charset=utf-8", APP_CSS)
}

/// `GET /console/icon.svg`.
pub async fn icon() -> Response {
    file("image/svg+xml", ICON)
}
