//! HTTPS with the server's certificate; client certificates issued by the CA are
//! verified when presented (required by the agents' routes, through the guard). Each
//! connection learns its agent at the handshake; a revoked or unknown certificate is
//! refused there, and a revocation closes the agent's open connections.

use crate::ca;
use crate::error::ServerError;
use crate::secret;
use crate::state::{AgentIdentity, AppState, ConnInfo};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;
use tower::ServiceExt;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // ring, as the workspace chose (no cmake, no long C build).
    #[expect(deprecated, reason = "the ring provider is the workspace's choice")]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS settings of a data directory: its server certificate, and client
/// certificates verified against its CA (optional at the handshake).
pub fn server_config(dir: &Path) -> Result<Arc<ServerConfig>, ServerError> {
    let read_certs = |name: &str| -> Result<Vec<CertificateDer<'static>>, ServerError> {
        let path = dir.join(name);
        CertificateDer::pem_file_iter(&path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| ServerError::Tls(format!("{}: {e}", path.display())))
    };
    let chain = read_certs(ca::SERVER_CERT)?;
    let key_path = dir.join(ca::SERVER_KEY);
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| ServerError::Tls(format!("{}: {e}", key_path.display())))?;
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca::CA_CERT)? {
        roots
            .add(cert)
            .map_err(|e| ServerError::Tls(format!("the CA certificate: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| ServerError::Tls(format!("client verifier: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| ServerError::Tls(format!("the server certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What a verified client certificate is to the server.
enum Known {
    /// An enrolled agent in good standing.
    Allowed(AgentIdentity),
    /// An agent that was revoked (its organisation and id, for the audit log).
    Revoked(i64, String),
    /// Not an agent's certificate (or the database failed: refused alike).
    Unknown,
}

/// The agent a verified client certificate belongs to.
async fn agent_of(state: &AppState, cert: &CertificateDer<'_>) -> Known {
    let row = state
        .db()
        .query_opt(
            "SELECT id, org_id, group_id, revoked FROM agents WHERE cert_sha256 = $1",
            &[&secret::sha256(cert.as_ref())],
        )
        .await;
    match row {
        Ok(Some(r)) if r.get::<_, bool>(3) => Known::Revoked(r.get(1), r.get(0)),
        Ok(Some(r)) => Known::Allowed(AgentIdentity {
            id: r.get(0),
            org: r.get(1),
            group: r.get(2),
        }),
        Ok(None) => Known::Unknown,
        Err(e) => {
            tracing::error!("cannot look an agent up: {e}");
            Known::Unknown
        }
    }
}

/// Whether `agent` is still allowed (after a lagging revocation channel).
async fn still_allowed(state: &AppState, agent: &AgentIdentity) -> bool {
    matches!(
        state
            .db()
            .query_opt(
                "SELECT 1 FROM agents WHERE id = $1 AND org_id = $2 AND NOT revoked",
                &[&agent.id, &agent.org],
            )
            .await,
        Ok(Some(_))
    )
}

/// Serves `router` over TLS on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    state: AppState,
    router: Router,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors and the like: wait a little, keep serving.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        let router = router.clone();
        tokio::spawn(async move {
            connection(acceptor, tcp, peer, state, router).await;
        });
    }
}

/// Audits a connection refused at the handshake.
async fn refuse(state: &AppState, peer: SocketAddr, org: Option<i64>, target: &str, result: &str) {
    state
        .audit(crate::db::Audit {
            org,
            actor: "anonymous",
            action: "agent.connect",
            target,
            source: &peer.ip().to_string(),
            result,
        })
        .await;
}

async fn connection(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    state: AppState,
    router: Router,
) {
    // Subscribed before the certificate is looked up: a revocation between the two is
    // seen.
    let mut revocations = state.revocations();
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => return,
    };
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned();
    let agent = match cert {
        Some(cert) => match agent_of(&state, &cert).await {
            Known::Allowed(a) => Some(a),
            Known::Revoked(org, id) => {
                refuse(
                    &state,
                    peer,
                    Some(org),
                    &format!("agent {id}"),
                    "denied: revoked",
                )
                .await;
                return;
            }
            Known::Unknown => {
                let fp = secret::hex(&secret::sha256(cert.as_ref()));
                refuse(&state, peer, None, &fp, "denied: unknown certificate").await;
                return;
            }
        },
        None => None,
    };
    let info = ConnInfo {
        peer: Some(peer),
        agent: agent.clone(),
    };
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(info.clone());
            router.clone().oneshot(req.map(axum::body::Body::new))
        });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let Some(agent) = agent else {
        if let Err(e) = conn.await {
            tracing::debug!(%peer, "connection: {e}");
        }
        return;
    };
    loop {
        tokio::select! {
            r = &mut conn => {
                if let Err(e) = r {
                    tracing::debug!(%peer, "agent connection: {e}");
                }
                return;
            }
            r = revocations.recv() => match r {
                Ok(rev) if rev.covers(&agent) => break,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    if !still_allowed(&state, &agent).await {
                        break;
                    }
                }
                Err(RecvError::Closed) => break,
            },
        }
    }
    tracing::info!(agent = %agent.id, %peer, "agent revoked: connection closed");
    // Returning drops the connection, which closes the socket.
}
