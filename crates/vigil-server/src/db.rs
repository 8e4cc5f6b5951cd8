//! PostgreSQL: connecting, the versioned migrations, and the audit log's one writer.
//!
//! Every query in the crate is parameterised (`$1`, never text pasted into SQL), and
//! every row that belongs to an organisation is read and written with its organisation
//! in the WHERE clause.

use crate::error::ServerError;
use tokio_postgres::{Client, NoTls};

/// The migrations, in order: version `i + 1` is `MIGRATIONS[i]`. Append only.
pub const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_ingest.sql"),
    include_str!("../migrations/0003_response.sql"),
    include_str!("../migrations/0004_triage.sql"),
    include_str!("../migrations/0005_content.sql"),
];

/// The newest schema version this binary knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.len() as i32
}

/// Connects to `url` (a `postgresql://` URL or `key=value` pairs) and drives the
/// connection on the runtime.
pub async fn connect(url: &str) -> Result<Client, ServerError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(ServerError::db("cannot connect"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!("database connection lost: {e}");
        }
    });
    Ok(client)
}

/// The server's database connection, replaced by a new one when it is lost (a
/// PostgreSQL restart, a network cut, a killed backend): requests while it is down fail
/// (agents retry, people see an error), and the next ones after the reconnection work.
#[derive(Debug)]
pub struct Db {
    client: std::sync::RwLock<std::sync::Arc<Client>>,
}

impl Db {
    /// A connection that is not replaced when lost (tests that build a state by hand).
    pub fn fixed(client: Client) -> std::sync::Arc<Db> {
        std::sync::Arc::new(Db {
            client: std::sync::RwLock::new(std::sync::Arc::new(client)),
        })
    }

    /// Connects to `url`; when the connection is lost, reconnects (100 ms, doubling to
    /// 5 s between tries) for as long as the `Db` lives.
    pub async fn connect(url: &str) -> Result<std::sync::Arc<Db>, ServerError> {
        let (client, mut conn) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(ServerError::db("cannot connect"))?;
        let db = std::sync::Arc::new(Db {
            client: std::sync::RwLock::new(std::sync::Arc::new(client)),
        });
        let weak = std::sync::Arc::downgrade(&db);
        let url = url.to_string();
        tokio::spawn(async move {
            loop {
                match conn.await {
                    Err(e) => tracing::error!("database connection lost: {e}"),
                    Ok(()) => tracing::warn!("database connection closed"),
                }
                let mut wait = std::time::Duration::from_millis(100);
                loop {
                    if weak.strong_count() == 0 {
                        return;
                    }
                    match tokio_postgres::connect(&url, NoTls).await {
                        Ok((client, next)) => {
                            let Some(db) = weak.upgrade() else { return };
                            *db.client.write().unwrap_or_else(|p| p.into_inner()) =
                                std::sync::Arc::new(client);
                            tracing::info!("database connection restored");
                            conn = next;
                            break;
                        }
                        Err(e) => {
                            tracing::warn!("database: cannot reconnect yet: {e}");
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(std::time::Duration::from_secs(5));
                        }
                    }
                }
            }
        });
        Ok(db)
    }

    /// The current connection.
    pub fn client(&self) -> std::sync::Arc<Client> {
        std::sync::Arc::clone(&self.client.read().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Applies the migrations the database lacks, all in one transaction (another server
/// starting at the same time waits on the lock); refuses a database whose schema is
/// newer than this binary. Returns the version now in place.
pub async fn migrate(client: &mut Client) -> Result<i32, ServerError> {
    let tx = client
        .transaction()
        .await
        .map_err(ServerError::db("cannot begin the migration"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS vigil_schema (
             version     INTEGER PRIMARY KEY,
             applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
         );
         LOCK TABLE vigil_schema IN EXCLUSIVE MODE;",
    )
    .await
    .map_err(ServerError::db("cannot lock the schema table"))?;
    let row = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM vigil_schema", &[])
        .await
        .map_err(ServerError::db("cannot read the schema version"))?;
    let current: i32 = row.get(0);
    let latest = latest_version();
    if current > latest {
        return Err(ServerError::NewerSchema {
            database: current,
            binary: latest,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i32 + 1;
        tx.batch_execute(sql)
            .await
            .map_err(ServerError::db(format!("migration {version} failed")))?;
        tx.execute(
            "INSERT INTO vigil_schema (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(ServerError::db(format!(
            "cannot record migration {version}"
        )))?;
        tracing::info!(version, "schema migration applied");
    }
    tx.commit()
        .await
        .map_err(ServerError::db("cannot commit the migration"))?;
    Ok(latest)
}

/// One entry of the audit log.
#[derive(Debug, Clone)]
pub struct Audit<'a> {
    /// The organisation, when known.
    pub org: Option<i64>,
    /// Who: `user:NAME`, `token:ID`, `agent:ID`, `anonymous`.
    pub actor: &'a str,
    /// What: the action (`agent.revoke`) or the route refused (`POST /api/v1/...`).
    pub action: &'a str,
    /// On what: an id or a name.
    pub target: &'a str,
    /// From where: the peer's address.
    pub source: &'a str,
    /// The result: `ok`, `denied`, `not_found`, `invalid`, `failed`.
    pub result: &'a str,
}

/// Writes an audit entry. A failure is logged: the request it records has been decided.
pub async fn audit(client: &Client, a: &Audit<'_>) {
    let r = client
        .execute(
            "INSERT INTO audit_log (org_id, actor, action, target, source, result)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&a.org, &a.actor, &a.action, &a.target, &a.source, &a.result],
        )
        .await;
    if let Err(e) = r {
        tracing::error!(action = a.action, "cannot write the audit log: {e}");
    }
}
