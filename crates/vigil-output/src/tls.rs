//! TLS client settings (rustls with the ring provider): the server's certificate must
//! chain to the configured authorities (a PEM file, or the system's bundle), optionally
//! with a client certificate.

use crate::config::Common;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;

/// Debian's bundle of the system's trusted authorities.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The client configuration of an output's `ca_file`, `client_cert` and `client_key`;
/// an error names the setting at fault and why.
pub(crate) fn client_config(c: &Common) -> Result<Arc<ClientConfig>, (&'static str, String)> {
    let (key, path) = match &c.ca_file {
        Some(p) => ("ca_file", p.as_path()),
        None => ("ca_file", Path::new(SYSTEM_BUNDLE)),
    };
    let certs = read_certs(path).map_err(|m| (key, m))?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| {
            (
                key,
                format!("{}: a certificate is refused: {e}", path.display()),
            )
        })?;
    }
    // ring, as the workspace chose (no cmake or long C build): it lacks the post-quantum
    // key exchange rustls now prefers, which is why rustls marks it deprecated.
    #[expect(deprecated, reason = "the ring provider is chosen; see above")]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| (key, e.to_string()))?
        .with_root_certificates(roots);
    let config = match (&c.client_cert, &c.client_key) {
        (Some(cert), Some(keyfile)) => {
            let chain = read_certs(cert).map_err(|m| ("client_cert", m))?;
            let pk = PrivateKeyDer::from_pem_file(keyfile).map_err(|e| {
                (
                    "client_key",
                    format!("{}: no private key read: {e}", keyfile.display()),
                )
            })?;
            builder
                .with_client_auth_cert(chain, pk)
                .map_err(|e| ("client_key", format!("{}: {e}", keyfile.display())))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The certificates of a PEM file (at least one).
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    // Read first: a missing or unreadable file is said so, not as a PEM error.
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: holds no PEM certificate", path.display()));
    }
    Ok(certs)
}
