//! `vigil server init` and `vigil server run`: setting a server up, and starting it.

use crate::api;
use crate::auth::Role;
use crate::ca::{self, Ca};
use crate::db;
use crate::error::ServerError;
use crate::routes;
use crate::state::{AppState, Settings};
use crate::tls;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tokio::sync::oneshot;

/// What `init` needs.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The data directory (CA, server certificate).
    pub data: PathBuf,
    /// The database URL.
    pub db: String,
    /// The first organisation's name.
    pub org: String,
    /// The first admin's user name.
    pub admin: String,
    /// Names (DNS or IP) the server certificate is valid for.
    pub names: Vec<String>,
}

/// What `init` made: the admin's one-time credentials, shown once.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// The organisation's id.
    pub org: i64,
    /// The admin's user name.
    pub admin: String,
    /// The admin's one-time password.
    pub password: String,
    /// The admin's TOTP key as an `otpauth://` URI.
    pub totp_uri: String,
    /// The admin's TOTP key.
    pub totp_key: Vec<u8>,
    /// The CA certificate agents are given to trust (`--enroll-ca`).
    pub ca_cert: PathBuf,
}

/// Sets a server up: the data directory with the CA (key mode 0600) and the server's
/// certificate, the schema, the first organisation and its admin. Refuses a data
/// directory that has a CA or a database that has an organisation.
pub async fn init(opts: &InitOptions) -> Result<InitReport, ServerError> {
    crate::body::text(&opts.org, 128)
        .map_err(|_| ServerError::Invalid(format!("organisation name {:?}", opts.org)))?;
    crate::body::text(&opts.admin, 128)
        .map_err(|_| ServerError::Invalid(format!("admin name {:?}", opts.admin)))?;
    let mut client = db::connect(&opts.db).await?;
    db::migrate(&mut client).await?;
    let row = client
        .query_one("SELECT count(*) FROM organisations", &[])
        .await
        .map_err(ServerError::db("cannot count organisations"))?;
    if row.get::<_, i64>(0) > 0 {
        return Err(ServerError::AlreadyInitialised(
            "the database has an organisation".into(),
        ));
    }
    std::fs::create_dir_all(&opts.data).map_err(ServerError::io(&opts.data))?;
    std::fs::set_permissions(&opts.data, std::fs::Permissions::from_mode(0o700))
        .map_err(ServerError::io(&opts.data))?;
    ca::create(&opts.data, &opts.names)?;
    let row = client
        .query_one(
            "INSERT INTO organisations (name) VALUES ($1) RETURNING id",
            &[&opts.org],
        )
        .await
        .map_err(ServerError::db("cannot create the organisation"))?;
    let org: i64 = row.get(0);
    let cred = api::create_user(&client, org, &opts.admin, Role::Admin)
        .await
        .map_err(|e| ServerError::Invalid(format!("cannot create the admin: {e}")))?;
    db::audit(
        &client,
        &db::Audit {
            org: Some(org),
            actor: "vigil server init",
            action: "server.init",
            target: &format!("organisation {}, admin {}", opts.org, opts.admin),
            source: "local",
            result: "ok",
        },
    )
    .await;
    Ok(InitReport {
        org,
        admin: opts.admin.clone(),
        password: cred.password,
        totp_uri: cred.totp_uri,
        totp_key: cred.totp_key,
        ca_cert: opts.data.join(ca::CA_CERT),
    })
}

/// What `token` needs: an enrolment token made by the operator on the server's host
/// (provisioning without the console).
#[derive(Debug, Clone)]
pub struct TokenOptions {
    /// The database URL.
    pub db: String,
    /// The organisation's name.
    pub org: String,
    /// The host group's name (made when the organisation has none of that name).
    pub group: String,
    /// How many enrolments the token allows.
    pub uses: i32,
    /// Seconds until it expires.
    pub expires_secs: u64,
    /// Instead of an enrolment token, an API token of this user (with the user's role),
    /// for scripts that call the API.
    pub api_user: Option<String>,
}

/// Makes an enrolment token for `opts.org`'s host group `opts.group` (made if missing)
/// (or, with `api_user`, an API token of that user),
/// recorded as made by the organisation's first admin through `vigil server token`, and
/// audited. Returns the token (shown once; only its hash is kept).
pub async fn enrolment_token(opts: &TokenOptions) -> Result<String, ServerError> {
    crate::body::text(&opts.group, 128)
        .map_err(|_| ServerError::Invalid(format!("host group name {:?}", opts.group)))?;
    if !(1..=100_000).contains(&opts.uses) || !(1..=30 * 86_400).contains(&opts.expires_secs) {
        return Err(ServerError::Invalid(
            "uses must be 1 to 100000 and the expiry 1 s to 30 days".into(),
        ));
    }
    let mut client = db::connect(&opts.db).await?;
    db::migrate(&mut client).await?;
    let row = client
        .query_opt(
            "SELECT o.id, (SELECT u.id FROM users u WHERE u.org_id = o.id AND u.role = 'admin'
                           AND NOT u.disabled ORDER BY u.id LIMIT 1)
             FROM organisations o WHERE o.name = $1",
            &[&opts.org],
        )
        .await
        .map_err(ServerError::db("cannot find the organisation"))?
        .ok_or_else(|| ServerError::Invalid(format!("no organisation {:?}", opts.org)))?;
    let org: i64 = row.get(0);
    let admin: Option<i64> = row.get(1);
    let admin =
        admin.ok_or_else(|| ServerError::Invalid(format!("{:?} has no admin", opts.org)))?;
    if let Some(user) = &opts.api_user {
        let row = client
            .query_opt(
                "SELECT id, must_change_password FROM users
                 WHERE org_id = $1 AND name = $2 AND NOT disabled",
                &[&org, user],
            )
            .await
            .map_err(ServerError::db("cannot find the user"))?
            .ok_or_else(|| ServerError::Invalid(format!("no user {user:?} in {:?}", opts.org)))?;
        let user_id: i64 = row.get(0);
        if row.get::<_, bool>(1) {
            return Err(ServerError::Invalid(format!(
                "{user:?} must sign in and change the one-time password first"
            )));
        }
        let token = crate::secret::token("vat_");
        let expires =
            std::time::SystemTime::now() + std::time::Duration::from_secs(opts.expires_secs);
        let id: i64 = client
            .query_one(
                "INSERT INTO api_tokens (org_id, user_id, name, token_hash, expires_at)
                 VALUES ($1, $2, 'vigil server token', $3, $4) RETURNING id",
                &[&org, &user_id, &crate::secret::digest(&token), &expires],
            )
            .await
            .map_err(ServerError::db("cannot make the token"))?
            .get(0);
        token_audit(
            &client,
            org,
            "api_token.create",
            &format!("{id} (user {user})"),
        )
        .await;
        return Ok(token);
    }
    let group: i64 = client
        .query_one(
            "WITH made AS (
                 INSERT INTO host_groups (org_id, name) VALUES ($1, $2)
                 ON CONFLICT (org_id, name) DO NOTHING RETURNING id)
             SELECT id FROM made UNION ALL
             SELECT id FROM host_groups WHERE org_id = $1 AND name = $2 LIMIT 1",
            &[&org, &opts.group],
        )
        .await
        .map_err(ServerError::db("cannot make the host group"))?
        .get(0);
    let token = crate::secret::token("vet_");
    let expires = std::time::SystemTime::now() + std::time::Duration::from_secs(opts.expires_secs);
    let id: i64 = client
        .query_one(
            "INSERT INTO enrolment_tokens (org_id, group_id, token_hash, expires_at, uses_left, created_by)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[&org, &group, &crate::secret::digest(&token), &expires, &opts.uses, &admin],
        )
        .await
        .map_err(ServerError::db("cannot make the token"))?
        .get(0);
    let target = format!("{id} (group {group}, {} uses)", opts.uses);
    token_audit(&client, org, "enrolment_token.create", &target).await;
    Ok(token)
}

/// The audit entry of a token made by `vigil server token`.
async fn token_audit(client: &tokio_postgres::Client, org: i64, action: &str, target: &str) {
    let entry = db::Audit {
        org: Some(org),
        actor: "vigil server token",
        action,
        target,
        source: "local",
        result: "ok",
    };
    db::audit(client, &entry).await;
}

/// A server running on the current runtime.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its state (tests read the database through it).
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    /// The NATS tasks (control, ingest), when the server runs with NATS.
    bus_tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
        // A batch being stored when its worker is stopped is left unacknowledged: NATS
        // delivers it again, and the lake's bookkeeping stores it once.
        for t in self.bus_tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        self.state.lakes().close().await;
    }
}

/// Starts a server: connects and migrates the database, loads the CA and the TLS
/// settings of `data`, listens on `listen` and serves on the current runtime.
pub async fn start(
    data: &Path,
    db_url: &str,
    listen: SocketAddr,
    settings: Settings,
) -> Result<Running, ServerError> {
    let mut client = db::connect(db_url).await?;
    db::migrate(&mut client).await?;
    drop(client);
    let db = db::Db::connect(db_url).await?;
    let ca = Ca::load(data)?;
    let config = tls::server_config(data)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| ServerError::Invalid(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::Invalid(format!("{listen}: {e}")))?;
    let mut settings = settings;
    if settings.lake.is_none() {
        settings.lake = Some(data.join("lake"));
    }
    let nats = settings.nats.clone();
    let state = AppState::with_db(db, ca, settings);
    let mut bus_tasks = Vec::new();
    if let Some(url) = nats {
        let bus = crate::bus::Bus::connect(&url).await?;
        bus_tasks = crate::relay::start(&state, &bus).await?;
        state.set_bus(bus);
        tracing::info!(%url, "NATS: batches go through JetStream; this process stores the lakes it holds");
    }
    let router = routes::app(state.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(tls::serve(
        listener,
        config,
        state.clone(),
        router,
        async move {
            let _ = stopped.await;
        },
    ));
    Ok(Running {
        addr,
        state,
        stop: Some(stop),
        task,
        bus_tasks,
    })
}

/// Runs a future on a new multi-threaded runtime (the CLI has none of its own).
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, ServerError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ServerError::Invalid(format!("cannot start the runtime: {e}")))?;
    Ok(rt.block_on(f))
}

/// Runs a server until SIGINT or SIGTERM (`vigil server run`).
pub fn run(
    data: &Path,
    db_url: &str,
    listen: SocketAddr,
    settings: Settings,
) -> Result<(), ServerError> {
    block_on(async {
        let running = start(data, db_url, listen, settings).await?;
        tracing::info!(addr = %running.addr, "vigil server listening (HTTPS; agents over mutual TLS)");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| ServerError::Invalid(format!("cannot handle SIGTERM: {e}")))?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("vigil server stopping");
        running.stop().await;
        Ok(())
    })?
}
