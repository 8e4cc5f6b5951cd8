//! The agent's link to a Vigil server: enrolment (`vigil agent --enroll URL TOKEN`: a
//! key pair made here, a CSR and the token sent, a client certificate back), the
//! credentials kept under the state directory, and the heartbeat over mutual TLS.
//!
//! Blocking code on std threads: the agent has no async runtime. TLS is rustls on ring,
//! as the network outputs.

pub mod actions;
pub mod https;
pub mod rollout;
pub mod ship;
pub mod spool;

use https::BaseUrl;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The directory under the agent's state directory that holds its credentials.
pub const DIR: &str = "server";
/// The agent's private key (mode 0600).
pub const KEY: &str = "agent.key";
/// Its certificate.
pub const CERT: &str = "agent.pem";
/// The server's CA, pinned at enrolment.
pub const CA: &str = "ca.pem";
/// Where and who: the server's URL and the agent's ids.
pub const LINK: &str = "link.json";
/// Debian's bundle of trusted authorities (enrolment without `--enroll-ca`).
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// How long a request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why enrolment or a request to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// A bad argument (the URL, the token).
    #[error("{0}")]
    Invalid(String),
    /// A file of the credentials.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// TLS settings: certificates or keys that do not load.
    #[error("TLS: {0}")]
    Tls(String),
    /// The server could not be reached or the exchange failed.
    #[error("{url}: {source}")]
    Network {
        /// The server.
        url: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The server refused (its status; it gives no detail by design).
    #[error("{url}: the server refused the request (HTTP {status})")]
    Refused {
        /// The server.
        url: String,
        /// The status.
        status: u16,
    },
    /// The server's answer was not what the protocol says.
    #[error("{url}: unexpected answer: {reason}")]
    Protocol {
        /// The server.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LinkError + '_ {
    move |source| LinkError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What `link.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LinkInfo {
    /// The server (`https://host:port`).
    pub url: String,
    /// The agent's id, as the server issued it.
    pub agent_id: String,
    /// The organisation.
    pub org_id: i64,
    /// The host group.
    pub group_id: i64,
    /// Seconds between heartbeats, as the server asked.
    pub heartbeat_secs: u64,
}

#[derive(Debug, Deserialize)]
struct EnrollReply {
    agent_id: String,
    org_id: i64,
    group_id: i64,
    certificate: String,
    ca: String,
    heartbeat_secs: u64,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // ring, as the workspace chose (no cmake, no long C build).
    #[expect(deprecated, reason = "the ring provider is the workspace's choice")]
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(path: &Path) -> Result<RootCertStore, LinkError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| LinkError::Tls(format!("{}: {e}", path.display())))?;
        store
            .add(cert)
            .map_err(|e| LinkError::Tls(format!("{}: {e}", path.display())))?;
    }
    if store.is_empty() {
        return Err(LinkError::Tls(format!(
            "{}: no certificate in it",
            path.display()
        )));
    }
    Ok(store)
}

/// TLS settings that trust the authorities in `ca_file` and present no certificate
/// (enrolment; scripts calling the server's API).
pub fn trusting(ca_file: &Path) -> Result<Arc<ClientConfig>, LinkError> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| LinkError::Tls(e.to_string()))?
        .with_root_certificates(roots(ca_file)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Writes `contents` to `path` through a temporary file and a rename, with `mode`.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), LinkError> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// Enrols this host with the server at `url` using an enrolment `token`: makes a key
/// pair (ECDSA P-256) here, sends a CSR with the token over TLS (the server's
/// certificate checked against `ca_file`, or the system's authorities), and keeps the
/// key (0600), the certificate, the server's CA and `link.json` in `state_dir/server`.
pub fn enroll(
    url: &str,
    token: &str,
    ca_file: Option<&Path>,
    state_dir: &Path,
    hostname: &str,
) -> Result<LinkInfo, LinkError> {
    let base = BaseUrl::parse(url).map_err(LinkError::Invalid)?;
    if token.is_empty() || token.len() > 128 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(LinkError::Invalid(
            "the enrolment token is empty, too long or not printable".into(),
        ));
    }
    let key = rcgen::KeyPair::generate()
        .map_err(|e| LinkError::Tls(format!("cannot make a key pair: {e}")))?;
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, hostname);
    params.distinguished_name = dn;
    let csr = params
        .serialize_request(&key)
        .and_then(|c| c.pem())
        .map_err(|e| LinkError::Tls(format!("cannot make the CSR: {e}")))?;
    let config = trusting(ca_file.unwrap_or(Path::new(SYSTEM_BUNDLE)))?;
    let body = serde_json::json!({ "token": token, "csr": csr, "hostname": hostname });
    let url = base.to_url();
    let resp = https::request(
        &config,
        &base,
        "POST",
        "/agent/v1/enroll",
        &[],
        body.to_string().as_bytes(),
        TIMEOUT,
    )
    .map_err(|source| LinkError::Network {
        url: url.clone(),
        source,
    })?;
    if resp.status != 200 {
        return Err(LinkError::Refused {
            url,
            status: resp.status,
        });
    }
    let reply: EnrollReply =
        serde_json::from_slice(&resp.body).map_err(|e| LinkError::Protocol {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    let dir = state_dir.join(DIR);
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(io_err(&dir))?;
    let info = LinkInfo {
        url,
        agent_id: reply.agent_id,
        org_id: reply.org_id,
        group_id: reply.group_id,
        heartbeat_secs: reply.heartbeat_secs.clamp(1, 3600),
    };
    write_file(&dir.join(KEY), key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&dir.join(CERT), reply.certificate.as_bytes(), 0o644)?;
    write_file(&dir.join(CA), reply.ca.as_bytes(), 0o644)?;
    let json = serde_json::to_vec_pretty(&info).map_err(|e| LinkError::Protocol {
        url: info.url.clone(),
        reason: e.to_string(),
    })?;
    write_file(&dir.join(LINK), &json, 0o644)?;
    Ok(info)
}

/// An enrolled agent's link: mutual TLS to its server, the CA pinned.
#[derive(Debug, Clone)]
pub struct Link {
    /// Where and who.
    pub info: LinkInfo,
    base: BaseUrl,
    config: Arc<ClientConfig>,
}

impl Link {
    /// The link kept in `state_dir/server`, or `None` when the agent is not enrolled.
    pub fn load(state_dir: &Path) -> Result<Option<Link>, LinkError> {
        let dir = state_dir.join(DIR);
        let link = dir.join(LINK);
        if !link.exists() {
            return Ok(None);
        }
        let text = std::fs::read(&link).map_err(io_err(&link))?;
        let info: LinkInfo = serde_json::from_slice(&text)
            .map_err(|e| LinkError::Invalid(format!("{}: {e}", link.display())))?;
        let base = BaseUrl::parse(&info.url).map_err(LinkError::Invalid)?;
        let cert_path = dir.join(CERT);
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| LinkError::Tls(format!("{}: {e}", cert_path.display())))?;
        let key_path = dir.join(KEY);
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .map_err(|e| LinkError::Tls(format!("{}: {e}", key_path.display())))?;
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| LinkError::Tls(e.to_string()))?
            .with_root_certificates(roots(&dir.join(CA))?)
            .with_client_auth_cert(chain, key)
            .map_err(|e| LinkError::Tls(format!("{}: {e}", key_path.display())))?;
        Ok(Some(Link {
            info,
            base,
            config: Arc::new(config),
        }))
    }

    /// The TLS settings (client certificate, pinned CA).
    pub fn client_config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// The server.
    pub fn base(&self) -> &BaseUrl {
        &self.base
    }

    /// Posts `body` as JSON to `path` and reads the JSON answer, within `timeout`.
    pub fn post_json(
        &self,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, LinkError> {
        self.json("POST", path, body.to_string().as_bytes(), timeout)
    }

    /// Gets `path` and reads the JSON answer, within `timeout`.
    pub fn get_json(&self, path: &str, timeout: Duration) -> Result<Value, LinkError> {
        self.json("GET", path, b"", timeout)
    }

    /// One request and its JSON answer (a status other than 200 is a refusal).
    fn json(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Value, LinkError> {
        let resp = https::request(&self.config, &self.base, method, path, &[], body, timeout)
            .map_err(|source| LinkError::Network {
                url: self.info.url.clone(),
                source,
            })?;
        if resp.status != 200 {
            return Err(LinkError::Refused {
                url: self.info.url.clone(),
                status: resp.status,
            });
        }
        serde_json::from_slice(&resp.body).map_err(|e| LinkError::Protocol {
            url: self.info.url.clone(),
            reason: e.to_string(),
        })
    }

    /// Sends one heartbeat: host name, version, the sensor's statistics, and whether
    /// the host is isolated. Returns the server's answer.
    pub fn heartbeat(
        &self,
        hostname: &str,
        stats: &Map<String, Value>,
        isolated: bool,
    ) -> Result<Value, LinkError> {
        let body = serde_json::json!({
            "hostname": hostname,
            "version": env!("CARGO_PKG_VERSION"),
            "stats": stats,
            "isolated": isolated,
        });
        self.post_json("/agent/v1/heartbeat", &body, TIMEOUT)
    }

    /// The server's address as an isolation management endpoint (`ADDR:PORT`), so an
    /// isolated host still reaches its server (and hears that the isolation is
    /// lifted); `None` when the host name does not resolve now.
    pub fn management_endpoint(&self) -> Option<String> {
        use std::net::ToSocketAddrs;
        let addr = (self.base.host.as_str(), self.base.port)
            .to_socket_addrs()
            .ok()?
            .next()?;
        Some(match addr {
            std::net::SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
            std::net::SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        })
    }
}

/// The latest statistics counters, shared by the run loop (which writes them with each
/// Statistics event) and the heartbeat thread (which sends them).
pub type StatsBoard = Arc<Mutex<Map<String, Value>>>;

/// Sends a heartbeat every `link.info.heartbeat_secs` until `stop` is set, on a thread
/// of its own; a failure is logged and retried at the next beat.
///
/// Each beat also carries the agent's start time, the time it is sent and the process's
/// CPU time (what a content rollout's health is judged by), and the answer's `content`
/// goes to `rollouts` (a staged rollout's bundle to run, or to leave).
pub fn spawn_heartbeat(
    link: Link,
    hostname: String,
    board: StatsBoard,
    isolation: vigil_respond::isolate::Isolation,
    rollouts: Option<rollout::Rollouts>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("vigil-heartbeat".into())
        .spawn(move || {
            let every = Duration::from_secs(link.info.heartbeat_secs.max(1));
            // The first beat as soon as the pipeline has counters (a second after it
            // starts), so the server sees a running agent's health without waiting a
            // whole interval; at the latest after one interval.
            let mut next = Instant::now() + every;
            let mut first = true;
            let started_ms = vigil_event::time::now_ms();
            while !stop.load(Ordering::Relaxed) {
                let ready = first && board.lock().map(|m| !m.is_empty()).unwrap_or(false);
                if ready || Instant::now() >= next {
                    first = false;
                    let mut stats = board.lock().map(|m| m.clone()).unwrap_or_default();
                    stats.insert("agent_started_ms".into(), Value::from(started_ms));
                    stats.insert("sent_ms".into(), Value::from(vigil_event::time::now_ms()));
                    if let Some(cpu) = rollout::cpu_ms() {
                        stats.insert("cpu_ms".into(), Value::from(cpu));
                    }
                    if let Some(r) = &rollouts {
                        r.report(&mut stats);
                    }
                    match link.heartbeat(&hostname, &stats, isolation.asked()) {
                        Ok(answer) => {
                            tracing::debug!("heartbeat sent");
                            if let (Some(r), Some(c)) = (&rollouts, answer.get("content")) {
                                r.act(&link, c);
                            }
                        }
                        Err(e) => tracing::warn!("heartbeat: {e}"),
                    }
                    next = Instant::now() + every;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
}
