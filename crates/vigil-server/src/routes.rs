//! Every route, once: its method, path and who may call it. The Router is built from
//! this table (each route behind the guard with its access), and tests walk the same
//! table, so a route cannot be added without being tested across organisations.

use crate::agents;
use crate::api;
use crate::auth::{self, Access, Role};
use crate::console;
use crate::content;
use crate::error::ApiError;
use crate::ingest;
use crate::response;
use crate::state::AppState;
use crate::triage;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

/// A route of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Its method.
    pub method: Method,
    /// Its path, with `{name}` parameters.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

fn route<H, T>(method: Method, path: &'static str, access: Access, handler: H) -> Entry
where
    H: Handler<T, AppState>,
    T: 'static,
{
    // Every method used below is one of the standard ones.
    let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
    (
        RouteSpec {
            method,
            path,
            access,
        },
        on(filter, handler),
    )
}

type Entry = (RouteSpec, MethodRouter<AppState>);

fn table() -> Vec<Entry> {
    use Access::{Agent, Org, Public, User};
    use Role::{Admin, Analyst, Viewer};
    let (get, post) = (Method::GET, Method::POST);
    vec![
        route(post.clone(), "/api/v1/login", Public, auth::login),
        route(post.clone(), "/api/v1/logout", User(Viewer), auth::logout),
        route(get.clone(), "/api/v1/me", User(Viewer), auth::me),
        route(
            post.clone(),
            "/api/v1/me/password",
            User(Viewer),
            auth::change_password,
        ),
        route(
            get.clone(),
            "/api/v1/orgs/{org}/users",
            Org(Admin),
            api::list_users,
        ),
        route(
            post.clone(),
            "/api/v1/orgs/{org}/users",
            Org(Admin),
            api::new_user,
        ),
        route(
            post.clone(),
            "/api/v1/orgs/{org}/users/{user}/disable",
            Org(Admin),
            api::disable_user,
        ),
        route(
            get.clone(),
            "/api/v1/orgs/{org}/host-groups",
            Org(Viewer),
            api::list_groups,
        ),
        route(
            post.clone(),
            "/api/v1/orgs/{org}/host-groups",
            Org(Admin),
            api::new_group,
        ),
        route(
            get.clone(),
            "/api/v1/orgs/{org}/enrolment-tokens",
            Org(Admin),
            api::list_enrolment_tokens,
        ),
        route(
            post.clone(),
            "/api/v1/orgs/{org}/enrolment-tokens",
            Org(Admin),
            api::new_enrolment_token,
        ),
        route(
            post.clone(),
            "/api/v1/orgs/{org}/enrolment-tokens/{token}/revoke",
            Org(Admin),
            api::revoke_enrolment_token,
        ),
        route(
            get.clone(),
            "/api/v1/orgs/{org}/api-tokens",
            Org(Viewer),
            api::list_api_tokens,
        ),
        route(
            post.clone(),
            "/api/v1/orgs/{org}/api-tokens",
            Org(Viewer),
            api::new_api_token,
        ),
        route(
            post.clone(),
            "/api/v1/orgs/{org}/api-tokens/{token}/revoke",
            Org(Viewer),
            api::revoke_api_token,
        ),
        route(
            get.clone(),
            "/api/v1/orgs/{org}/agents",
            Org(Viewer),
            api::list_agents,
        ),
        route(
            post.clone(),
            "/api/v1/orgs/{org}/agents/revoke-all",
            Org(Admin),
            api::revoke_org_agents,
        ),
        route(
            post.clone(),
            "/api/v1/orgs/{org}/agents/{agent}/revoke",
            Org(Admin),
            api::revoke_agent,
        ),
        route(
            get.clone(),
            "/api/v1/orgs/{org}/agents/{agent}/actions",
            Org(Viewer),
            response::list,
        ),
        route(
            post.clone(),
            "/api/v1/orgs/{org}/agents/{agent}/actions",
            Org(Analyst),
            response::request,
        ),
        route(post.clone(), "/agent/v1/actions", Agent, response::collect),
        route(
            get.clone(),
            "/api/v1/orgs/{org}/audit",
            Org(Admin),
            api::audit_log,
        ),
        route(post.clone(), "/agent/v1/enroll", Public, agents::enroll),
        route(
            post.clone(),
            "/agent/v1/heartbeat",
            Agent,
            agents::heartbeat,
        ),
        route(
            post.clone(),
            "/agent/v1/batches/{stream}/{first}",
            Agent,
            ingest::batch,
        ),
        route(
            get.clone(),
            "/api/v1/orgs/{org}/findings",
            Org(Viewer),
            api::list_findings,
        ),
        route(
            post.clone(),
            "/api/v1/orgs/{org}/findings/{uid}/status",
            Org(Analyst),
            api::set_finding_status,
        ),
        route(
            post.clone(),
            "/api/v1/orgs/{org}/findings/status",
            Org(Analyst),
            triage::bulk_status,
        ),
        route(
            post.clone(),
            "/api/v1/orgs/{org}/findings/{uid}/assign",
            Org(Analyst),
            triage::assign,
        ),
        route(
            get.clone(),
            "/api/v1/orgs/{org}/stories/{story}",
            Org(Viewer),
            api::story,
        ),
        route(
            get.clone(),
            "/api/v1/orgs/{org}/stories/{story}/notes",
            Org(Viewer),
            triage::notes,
        ),
        route(
            post.clone(),
            "/api/v1/orgs/{org}/stories/{story}/notes",
            Org(Analyst),
            triage::add_note,
        ),
        route(
            post.clone(),
            "/api/v1/orgs/{org}/search",
            Org(Viewer),
            api::search,
        ),
        route(
            get.clone(),
            "/api/v1/orgs/{org}/content",
            Org(Viewer),
            content::list,
        ),
        route(
            post.clone(),
            "/api/v1/orgs/{org}/content",
            Org(Admin),
            content::upload,
        ),
        route(
            get.clone(),
            "/api/v1/orgs/{org}/rollouts",
            Org(Viewer),
            content::rollouts,
        ),
        route(
            post.clone(),
            "/api/v1/orgs/{org}/rollouts",
            Org(Admin),
            content::start,
        ),
        route(
            post,
            "/api/v1/orgs/{org}/rollouts/{rollout}/halt",
            Org(Admin),
            content::halt_request,
        ),
        route(
            get.clone(),
            "/agent/v1/content/{version}",
            Agent,
            content::fetch,
        ),
        route(get.clone(), "/", Public, console::index),
        route(get.clone(), "/console/app.js", Public, console::app_js),
        route(get.clone(), "/console/app.css", Public, console::app_css),
        route(get, "/console/icon.svg", Public, console::icon),
    ]
}

/// Every route of the Router, as the table declares them.
pub fn routes() -> Vec<RouteSpec> {
    table().into_iter().map(|(spec, _)| spec).collect()
}

/// The security headers every response carries.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains",
    ),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
];

async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        h.insert(*name, HeaderValue::from_static(value));
    }
    if !h.contains_key(header::CONTENT_TYPE) {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    resp
}

async fn not_found() -> Response {
    ApiError::NotFound.into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::MethodNotAllowed.into_response()
}

/// The server's Router: the API and the agents' routes (which find the agent's
/// identity in the connection's `ConnInfo`, put there by `tls::serve`).
pub fn app(state: AppState) -> Router {
    let limit = state.settings().max_body;
    let mut router = Router::new();
    for (spec, method_router) in table() {
        let mut guarded = method_router.route_layer(axum::middleware::from_fn_with_state(
            (state.clone(), spec.access),
            auth::guard,
        ));
        if spec.path.starts_with("/agent/v1/batches/") {
            // Agents' batches: larger than any other body (the guard runs first).
            guarded = guarded.layer(DefaultBodyLimit::max(ingest::MAX_BODY));
        }
        if spec.path == "/api/v1/orgs/{org}/content" {
            // Content bundles: their files as JSON text, escapes included.
            guarded = guarded.layer(DefaultBodyLimit::max(content::MAX_BUNDLE * 2));
        }
        router = router.route(spec.path, guarded);
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}
