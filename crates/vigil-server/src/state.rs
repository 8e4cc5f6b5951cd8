//! What every request shares: the database, the CA, settings, the failed-login limiter
//! and the revocation channel that closes agents' open connections.

use crate::ca::Ca;
use crate::db::{self, Audit};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tokio_postgres::Client;

/// Settings of a running server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a session lasts from login (absolute, not extended by use).
    pub session_ttl: Duration,
    /// Failed logins allowed per account and per address within `login_window`.
    pub login_failures: u32,
    /// The window of `login_failures`.
    pub login_window: Duration,
    /// How often agents are asked to send a heartbeat.
    pub heartbeat_secs: u64,
    /// The largest request body accepted, in bytes (agents' batches have their own
    /// limit, `ingest::MAX_BODY`).
    pub max_body: usize,
    /// Where the organisations' lakes are (`DATA/lake`); `None`: no events are stored
    /// and agents' batches are answered 503.
    pub lake: Option<std::path::PathBuf>,
    /// The engine behind event search (`crate::search`); `None`: searches are answered
    /// 503.
    pub search: Option<std::sync::Arc<dyn crate::search::Search>>,
    /// NATS (`nats://HOST:PORT`): agents' batches go through JetStream to the process
    /// that holds their organisation's lake, and revocations and wake-ups reach every
    /// process (`crate::bus`); `None`: this process stores what it receives itself.
    pub nats: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            session_ttl: Duration::from_secs(8 * 3600),
            login_failures: 5,
            login_window: Duration::from_secs(15 * 60),
            heartbeat_secs: 30,
            max_body: 64 * 1024,
            lake: None,
            search: None,
            nats: None,
        }
    }
}

/// Agents whose connections must close now.
#[derive(Debug, Clone)]
pub enum Revocation {
    /// These agents.
    Agents(Vec<String>),
    /// Every agent of this organisation.
    Org(i64),
}

/// An agent, as its client certificate identified it at the TLS handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentIdentity {
    /// The agent id (the certificate's common name).
    pub id: String,
    /// Its organisation.
    pub org: i64,
    /// Its host group.
    pub group: i64,
}

impl Revocation {
    /// Whether this revocation covers `agent`.
    pub fn covers(&self, agent: &AgentIdentity) -> bool {
        match self {
            Revocation::Agents(ids) => ids.contains(&agent.id),
            Revocation::Org(org) => *org == agent.org,
        }
    }
}

/// What the connection tells each request: the peer's address and, over mutual TLS,
/// the agent its certificate names. Absent in tests that call the Router directly.
#[derive(Debug, Clone, Default)]
pub struct ConnInfo {
    /// The peer's address.
    pub peer: Option<SocketAddr>,
    /// The agent, when a valid, unrevoked client certificate was presented.
    pub agent: Option<AgentIdentity>,
}

impl ConnInfo {
    /// The peer's address for the audit log.
    pub fn source(&self) -> String {
        match self.peer {
            Some(p) => p.ip().to_string(),
            None => "unknown".to_string(),
        }
    }
}

/// Failed logins counted per key (`user:NAME`, `addr:IP`) in a fixed window.
#[derive(Debug, Default)]
pub struct Limiter {
    failures: HashMap<String, (u32, Instant)>,
}

impl Limiter {
    /// Whether any of `keys` has used up its failures in the current window.
    pub fn blocked(&mut self, keys: &[&str], max: u32, window: Duration) -> bool {
        let now = Instant::now();
        keys.iter().any(|k| match self.failures.get(*k) {
            Some((n, start)) => now.duration_since(*start) < window && *n >= max,
            None => false,
        })
    }

    /// Counts a failure against each of `keys`.
    pub fn fail(&mut self, keys: &[&str], window: Duration) {
        let now = Instant::now();
        if self.failures.len() > 100_000 {
            // Bounded memory under a spray of names: forget windows already over.
            self.failures
                .retain(|_, (_, start)| now.duration_since(*start) < window);
        }
        for k in keys {
            let e = self.failures.entry((*k).to_string()).or_insert((0, now));
            if now.duration_since(e.1) >= window {
                *e = (0, now);
            }
            e.0 += 1;
        }
    }

    /// Forgets the failures of `key` (after a successful login).
    pub fn clear(&mut self, key: &str) {
        self.failures.remove(key);
    }
}

/// The server's shared state (cheap to clone).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

/// The contents of [`AppState`].
#[derive(Debug)]
pub struct Inner {
    /// The database (reconnected when lost).
    pub db: Arc<crate::db::Db>,
    /// The CA.
    pub ca: Ca,
    /// Settings.
    pub settings: Settings,
    /// Failed logins.
    pub limiter: Mutex<Limiter>,
    /// Revocations, to every open agent connection.
    pub revocations: broadcast::Sender<Revocation>,
    /// The organisations' lakes.
    pub lakes: crate::lake::Lakes,
    /// Per agent: wakes its waiting action collection when an action is queued.
    pub wakers: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
    /// Event searches running now, at most `crate::search::CONCURRENT`.
    pub searches: Arc<tokio::sync::Semaphore>,
    /// NATS, when the server runs with it (set once at start).
    pub bus: std::sync::OnceLock<crate::bus::Bus>,
}

impl AppState {
    /// The state of a server on `db` (migrated) with `ca`; a connection lost is not
    /// replaced (see [`AppState::with_db`]).
    pub fn new(db: Client, ca: Ca, settings: Settings) -> AppState {
        AppState::with_db(crate::db::Db::fixed(db), ca, settings)
    }

    /// The state of a server on `db` (migrated, reconnected when lost) with `ca`.
    pub fn with_db(db: Arc<crate::db::Db>, ca: Ca, settings: Settings) -> AppState {
        let (revocations, _) = broadcast::channel(1024);
        let lakes = crate::lake::Lakes::new(settings.lake.clone());
        AppState(Arc::new(Inner {
            db,
            ca,
            lakes,
            settings,
            limiter: Mutex::new(Limiter::default()),
            revocations,
            wakers: Mutex::new(HashMap::new()),
            searches: Arc::new(tokio::sync::Semaphore::new(crate::search::CONCURRENT)),
            bus: std::sync::OnceLock::new(),
        }))
    }

    /// The database's current connection.
    pub fn db(&self) -> Arc<Client> {
        self.0.db.client()
    }

    /// The CA.
    pub fn ca(&self) -> &Ca {
        &self.0.ca
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// The organisations' lakes.
    pub fn lakes(&self) -> &crate::lake::Lakes {
        &self.0.lakes
    }

    /// The failed-login limiter.
    pub fn limiter(&self) -> std::sync::MutexGuard<'_, Limiter> {
        self.0.limiter.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// NATS, when the server runs with it.
    pub fn bus(&self) -> Option<&crate::bus::Bus> {
        self.0.bus.get()
    }

    /// Sets the server's NATS connection (once; later calls are ignored).
    pub fn set_bus(&self, bus: crate::bus::Bus) {
        let _ = self.0.bus.set(bus);
    }

    /// Closes the open connections a revocation covers, in this process and, through
    /// NATS, in every other (the database says revoked already: new connections are
    /// refused at the handshake).
    pub fn revoke(&self, r: Revocation) {
        if let Some(bus) = self.bus() {
            bus.control(&match &r {
                Revocation::Agents(ids) => crate::bus::Control::RevokeAgents(ids.clone()),
                Revocation::Org(org) => crate::bus::Control::RevokeOrg(*org),
            });
        }
        self.revoke_here(r);
    }

    /// Closes the open connections of this process a revocation covers.
    pub fn revoke_here(&self, r: Revocation) {
        // No receiver (no agent connected) is not an error.
        let _ = self.0.revocations.send(r);
    }

    /// A receiver of revocations.
    pub fn revocations(&self) -> broadcast::Receiver<Revocation> {
        self.0.revocations.subscribe()
    }

    /// What wakes `agent`'s waiting action collection (one per agent, kept while the
    /// server runs: bounded by the number of agents).
    pub fn agent_waker(&self, agent: &str) -> Arc<tokio::sync::Notify> {
        let mut map = self.0.wakers.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(agent.to_string()).or_default().clone()
    }

    /// Wakes `agent`'s waiting action collection, in this process and, through NATS, in
    /// every other.
    pub fn wake_agent(&self, agent: &str) {
        if let Some(bus) = self.bus() {
            bus.control(&crate::bus::Control::Wake(agent.to_string()));
        }
        self.wake_here(agent);
    }

    /// Wakes `agent`'s waiting action collection, if one waits in this process.
    pub fn wake_here(&self, agent: &str) {
        let map = self.0.wakers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get(agent) {
            n.notify_waiters();
        }
    }

    /// The permits of event searches running at once.
    pub fn searches(&self) -> Arc<tokio::sync::Semaphore> {
        Arc::clone(&self.0.searches)
    }

    /// Writes an audit entry.
    pub async fn audit(&self, a: Audit<'_>) {
        db::audit(&self.db(), &a).await;
    }
}
