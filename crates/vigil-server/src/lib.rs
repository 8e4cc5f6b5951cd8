//! Vigil's fleet server: agents enrol with a token and a CSR and get a client
//! certificate from the server's CA; from then on they connect over mutual TLS: a
//! heartbeat, and the batches of events and findings they ship ([`ingest`]: stored once
//! each in the organisation's lake, findings also in PostgreSQL). People sign in with a
//! password and TOTP (a session cookie with CSRF protection) or use API tokens; roles
//! admin, analyst and viewer; organisations isolated from each other; every state change
//! and every refusal in the audit log. State lives in PostgreSQL. The web console
//! ([`console`]) is served from the binary. With NATS ([`bus`]), several server
//! processes share the work: any takes batches, the one holding an organisation's lake
//! stores them.
//!
//! [`routes::app`] is the Router (tests call it without a socket); [`server::start`]
//! serves it over TLS; [`server::init`] sets a server up.

pub mod agents;
pub mod api;
pub mod auth;
pub mod body;
pub mod bus;
pub mod ca;
pub mod console;
pub mod content;
pub mod db;
pub mod error;
pub mod ingest;
pub mod lake;
pub mod relay;
pub mod response;
pub mod routes;
pub mod search;
pub mod secret;
pub mod server;
pub mod state;
#[doc(hidden)]
pub mod testing;
pub mod tls;
pub mod totp;
pub mod triage;

pub use error::{ApiError, ServerError};
pub use routes::{app, routes, RouteSpec};
pub use state::{AppState, Settings};
