//! The server's certificate authority: created by `vigil server init`, it signs the
//! server's own TLS certificate and each enrolled agent's client certificate (from the
//! agent's CSR: the key never leaves the host).

use crate::error::ServerError;
use crate::secret;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The CA's key file in the data directory (mode 0600).
pub const CA_KEY: &str = "ca.key";
/// The CA's certificate (what agents and clients trust).
pub const CA_CERT: &str = "ca.pem";
/// The server's TLS key (mode 0600).
pub const SERVER_KEY: &str = "server.key";
/// The server's TLS certificate.
pub const SERVER_CERT: &str = "server.pem";

/// How long an agent's certificate is valid.
pub const AGENT_CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// The CA, loaded: it signs agent certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ca")
    }
}

/// An agent certificate just issued.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate (PEM).
    pub pem: String,
    /// Its serial number in hex.
    pub serial: String,
    /// SHA-256 of its DER: how a connection's certificate is looked up.
    pub sha256: Vec<u8>,
}

fn cert_err(what: &str) -> impl FnOnce(rcgen::Error) -> ServerError + '_ {
    move |e| ServerError::Cert(format!("{what}: {e}"))
}

fn validity(params: &mut CertificateParams, length: Duration) {
    let now = time::OffsetDateTime::now_utc();
    // An hour back: agents whose clocks run a little late still accept it.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + length;
}

fn random_serial() -> (SerialNumber, String) {
    let mut bytes = secret::random::<16>();
    bytes[0] &= 0x7f; // positive, as RFC 5280 wants
    bytes[0] |= 0x01; // and 16 bytes long (no leading zero to strip)
    (SerialNumber::from_slice(&bytes), secret::hex(&bytes))
}

/// Writes a file readable by its owner only (created with mode 0600, never widened).
pub fn write_private(path: &Path, contents: &str) -> Result<(), ServerError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(ServerError::io(path))?;
    f.write_all(contents.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(ServerError::io(path))
}

fn write_public(path: &Path, contents: &str) -> Result<(), ServerError> {
    std::fs::write(path, contents).map_err(ServerError::io(path))
}

/// Creates the CA and the server's certificate in `dir` (for the names `names`: DNS
/// names or IP addresses). Refuses to overwrite an existing CA.
pub fn create(dir: &Path, names: &[String]) -> Result<(), ServerError> {
    let ca_key_path = dir.join(CA_KEY);
    if ca_key_path.exists() {
        return Err(ServerError::AlreadyInitialised(format!(
            "{} exists",
            ca_key_path.display()
        )));
    }
    let ca_key = KeyPair::generate().map_err(cert_err("cannot generate the CA key"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Vigil server CA");
    dn.push(DnType::OrganizationName, "Vigil");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(random_serial().0);
    validity(&mut params, Duration::from_secs(10 * 365 * 24 * 3600));
    let ca_cert = params
        .self_signed(&ca_key)
        .map_err(cert_err("cannot sign the CA certificate"))?;
    write_private(&ca_key_path, &ca_key.serialize_pem())?;
    write_public(&dir.join(CA_CERT), &ca_cert.pem())?;

    let issuer = Issuer::new(params, ca_key);
    let server_key = KeyPair::generate().map_err(cert_err("cannot generate the server key"))?;
    let mut sp = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Vigil server");
    sp.distinguished_name = dn;
    for name in names {
        sp.subject_alt_names
            .push(match name.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    name.clone()
                        .try_into()
                        .map_err(|e| ServerError::Invalid(format!("server name {name:?}: {e}")))?,
                ),
            });
    }
    sp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    sp.serial_number = Some(random_serial().0);
    sp.use_authority_key_identifier_extension = true;
    validity(&mut sp, Duration::from_secs(2 * 365 * 24 * 3600));
    let server_cert = sp
        .signed_by(&server_key, &issuer)
        .map_err(cert_err("cannot sign the server certificate"))?;
    write_private(&dir.join(SERVER_KEY), &server_key.serialize_pem())?;
    write_public(&dir.join(SERVER_CERT), &server_cert.pem())?;
    Ok(())
}

fn read(path: PathBuf) -> Result<String, ServerError> {
    std::fs::read_to_string(&path).map_err(ServerError::io(path))
}

impl Ca {
    /// Loads the CA of a data directory.
    pub fn load(dir: &Path) -> Result<Ca, ServerError> {
        let key = KeyPair::from_pem(&read(dir.join(CA_KEY))?)
            .map_err(cert_err("cannot read the CA key"))?;
        let cert_pem = read(dir.join(CA_CERT))?;
        let issuer =
            Issuer::from_ca_cert_pem(&cert_pem, key).map_err(cert_err("cannot read the CA"))?;
        Ok(Ca { issuer, cert_pem })
    }

    /// The CA's certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Signs an agent's certificate for the key of `csr_pem` (its signature checked):
    /// the subject and names are the server's choice, never the request's: common name
    /// the agent id, organisation `org-ID`, and the URI `urn:vigil:org:ID:agent:ID`.
    /// `None` for a CSR that does not parse or whose signature is wrong.
    pub fn sign_agent(&self, csr_pem: &str, agent_id: &str, org: i64) -> Option<Issued> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).ok()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, agent_id);
        dn.push(DnType::OrganizationName, format!("org-{org}"));
        params.distinguished_name = dn;
        let uri = format!("urn:vigil:org:{org}:agent:{agent_id}");
        params.subject_alt_names = vec![SanType::URI(uri.try_into().ok()?)];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let (serial, serial_hex) = random_serial();
        params.serial_number = Some(serial);
        validity(&mut params, AGENT_CERT_VALIDITY);
        let cert = params.signed_by(&csr.public_key, &self.issuer).ok()?;
        Some(Issued {
            sha256: secret::sha256(cert.der()),
            pem: cert.pem(),
            serial: serial_hex,
        })
    }
}
