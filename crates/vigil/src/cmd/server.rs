//! `vigil server`: the fleet server. `init` sets one up (CA, server certificate, schema,
//! the first organisation and admin); `run` serves the API over HTTPS and the agents
//! over mutual TLS.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// `vigil server` subcommands.
#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Set a server up: the CA (its key mode 0600) and the server's TLS certificate in
    /// DIR, the database schema, the first organisation and its admin, whose one-time
    /// password and TOTP key are printed once (there is no default password).
    Init(InitArgs),
    /// Serve the API (HTTPS with the server's certificate) and the agents' routes
    /// (mutual TLS: client certificates from the server's CA) until SIGINT or SIGTERM.
    Run(RunArgs),
    /// Make an enrolment token for an organisation's host group (made if missing), or
    /// with --api-user an API token, from the server's host, without the console: for
    /// provisioning scripts. The token is printed once; the database keeps only its
    /// hash; the audit log records it.
    Token(TokenArgs),
}

/// `vigil server token` arguments.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    db: Db,
    /// The organisation's name.
    #[arg(long, default_value = "default")]
    org: String,
    /// The host group's name.
    #[arg(long, default_value = "servers")]
    group: String,
    /// Enrolments the token allows.
    #[arg(long, default_value_t = 1)]
    uses: i32,
    /// Seconds until the token expires.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    expires_secs: u64,
    /// Make an API token of this user instead (with the user's role), for scripts that
    /// call the API.
    #[arg(long, value_name = "USER")]
    api_user: Option<String>,
}

/// Where the server keeps its files and state.
#[derive(Debug, Args)]
pub struct Common {
    /// The data directory (CA and server certificate and keys).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    #[command(flatten)]
    db: Db,
}

/// The server's database.
#[derive(Debug, Args)]
pub struct Db {
    /// The PostgreSQL database: a URL (postgresql://user@host/db) or key=value pairs
    /// (host=/run/postgresql dbname=vigil). Environment: VIGIL_SERVER_DB.
    #[arg(
        long,
        value_name = "URL",
        env = "VIGIL_SERVER_DB",
        hide_env_values = true
    )]
    db: String,
}

/// `vigil server init` arguments.
#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    common: Common,
    /// The first organisation's name.
    #[arg(long, default_value = "default")]
    org: String,
    /// The first admin's user name.
    #[arg(long, default_value = "admin")]
    admin: String,
    /// A name (DNS) or address the server's certificate is valid for (repeatable;
    /// default: localhost, 127.0.0.1, ::1 and this host's name).
    #[arg(long = "name", value_name = "NAME")]
    names: Vec<String>,
}

/// `vigil server run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// The address to listen on (HTTPS; agents and people alike).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Seconds a session lasts from login.
    #[arg(long, value_name = "SECS", default_value_t = 8 * 3600)]
    session_secs: u64,
    /// Seconds between agents' heartbeats.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    heartbeat_secs: u64,
    /// NATS with JetStream (`nats://HOST:PORT`): server processes on the same database
    /// and data directory share the work through it (any takes agents' batches, the one
    /// holding an organisation's lake stores them), and revocations and wake-ups reach
    /// them all. Without it, this process stores what it receives itself.
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
}

/// Runs `vigil server`.
pub fn run(cmd: ServerCommand) -> Result<ExitCode> {
    match cmd {
        ServerCommand::Init(a) => init(a),
        ServerCommand::Run(a) => serve(a),
        ServerCommand::Token(a) => token(a),
    }
}

fn token(a: TokenArgs) -> Result<ExitCode> {
    let opts = vigil_server::server::TokenOptions {
        db: a.db.db,
        org: a.org,
        group: a.group,
        uses: a.uses,
        expires_secs: a.expires_secs,
        api_user: a.api_user,
    };
    let token = vigil_server::server::block_on(vigil_server::server::enrolment_token(&opts))?
        .context("vigil server token")?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

fn init(a: InitArgs) -> Result<ExitCode> {
    let mut names = a.names;
    if names.is_empty() {
        names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            let h = h.trim();
            if !h.is_empty() && h != "localhost" {
                names.push(h.to_string());
            }
        }
    }
    let opts = vigil_server::server::InitOptions {
        data: a.common.data.clone(),
        db: a.common.db.db,
        org: a.org,
        admin: a.admin,
        names,
    };
    let report = vigil_server::server::block_on(vigil_server::server::init(&opts))?
        .with_context(|| format!("vigil server init --data {}", a.common.data.display()))?;
    println!("organisation: {} (id {})", opts.org, report.org);
    println!("admin: {}", report.admin);
    println!("one-time password: {}", report.password);
    println!("totp: {}", report.totp_uri);
    println!("agents trust: {}", report.ca_cert.display());
    println!("The password and TOTP key are shown only now; the password must be changed at first login.");
    Ok(ExitCode::SUCCESS)
}

fn serve(a: RunArgs) -> Result<ExitCode> {
    let settings = vigil_server::Settings {
        session_ttl: std::time::Duration::from_secs(a.session_secs.max(60)),
        heartbeat_secs: a.heartbeat_secs.clamp(1, 3600),
        search: Some(std::sync::Arc::new(crate::cmd::server_search::LakeSearch)),
        nats: a.nats,
        ..vigil_server::Settings::default()
    };
    vigil_server::server::run(&a.common.data, &a.common.db.db, a.listen, settings)
        .with_context(|| format!("vigil server run --listen {}", a.listen))?;
    Ok(ExitCode::SUCCESS)
}
