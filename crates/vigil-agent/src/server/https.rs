//! A blocking HTTPS/1.1 client, enough for the server's JSON routes: rustls over std's
//! TcpStream, one request per connection (`Connection: close`), bounded reads and
//! deadlines. The agent has no async runtime, and a client crate would bring one (or a
//! second HTTP stack beside vigil-output's); a request and its answer are a page here.

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// The largest answer read (bytes).
const MAX_RESPONSE: u64 = 48 * 1024 * 1024;

/// An `https://host[:port]` base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// The host (a name or an address; IPv6 without brackets).
    pub host: String,
    /// The port (443 by default).
    pub port: u16,
}

impl BaseUrl {
    /// Parses `https://host[:port][/]`; anything else (http, a path, user info) is an
    /// error saying what is wrong.
    pub fn parse(url: &str) -> Result<BaseUrl, String> {
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| format!("{url}: the server URL must start with https://"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '@', '?', '#']) {
            return Err(format!("{url}: expected https://HOST[:PORT] with no path"));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url}: unclosed [ in the host"))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("{url}: bad port {p:?}"))?,
            None => 443,
        };
        Ok(BaseUrl { host, port })
    }

    /// The URL again.
    pub fn to_url(&self) -> String {
        if self.host.contains(':') {
            format!("https://[{}]:{}", self.host, self.port)
        } else {
            format!("https://{}:{}", self.host, self.port)
        }
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers (names in lower case).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Opens a TLS connection to `base` with `config` (a deadline on each read and write).
pub fn connect(
    config: &Arc<ClientConfig>,
    base: &BaseUrl,
    timeout: Duration,
) -> std::io::Result<StreamOwned<ClientConnection, TcpStream>> {
    let addr = (base.host.as_str(), base.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{}: no address", base.host)))?;
    let tcp = TcpStream::connect_timeout(&addr, timeout)?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(base.host.clone())
        .map_err(|e| std::io::Error::other(format!("{}: {e}", base.host)))?;
    let conn = ClientConnection::new(Arc::clone(config), name).map_err(std::io::Error::other)?;
    let mut stream = StreamOwned::new(conn, tcp);
    // The handshake now, so that a refused certificate is an error here.
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .map_err(|e| std::io::Error::new(e.kind(), format!("TLS: {e}")))?;
    }
    Ok(stream)
}

/// Writes a request on `stream` (`keep_alive`: whether to ask for the connection to stay
/// open).
pub fn write_request(
    stream: &mut impl Write,
    base: &BaseUrl,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    keep_alive: bool,
) -> std::io::Result<()> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
        base.host,
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut buf = head.into_bytes();
    buf.extend_from_slice(body);
    stream.write_all(&buf)?;
    stream.flush()
}

/// Reads one answer (its head, then `Content-Length` bytes of body, or up to the end of
/// the stream without one).
pub fn read_response(stream: &mut impl Read) -> std::io::Result<Response> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut limited = stream.take(MAX_RESPONSE);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        // A signal may interrupt the read (EINTR): read again.
        let n = loop {
            match limited.read(&mut byte) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r?,
            }
        };
        if n == 0 {
            return Err(bad("the connection closed before an answer"));
        }
        head.push(byte[0]);
        if head.len() > 64 * 1024 {
            return Err(bad("an answer's head over 64 KiB"));
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("no status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<u64>().ok());
    let mut body = Vec::new();
    match length {
        Some(n) => {
            (&mut limited).take(n).read_to_end(&mut body)?;
            if (body.len() as u64) < n {
                return Err(bad("the answer's body was cut short"));
            }
        }
        None => match limited.read_to_end(&mut body) {
            Ok(_) => {}
            // A peer that closes without TLS close_notify: the body is what came.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => return Err(e),
        },
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// One request on a new connection.
pub fn request(
    config: &Arc<ClientConfig>,
    base: &BaseUrl,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> std::io::Result<Response> {
    let mut stream = connect(config, base, timeout)?;
    write_request(&mut stream, base, method, path, headers, body, false)?;
    read_response(&mut stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_parse_or_say_why_not() {
        assert_eq!(
            BaseUrl::parse("https://vigil.example:8443/").ok(),
            Some(BaseUrl {
                host: "vigil.example".into(),
                port: 8443
            })
        );
        assert_eq!(BaseUrl::parse("https://h").map(|b| b.port).ok(), Some(443));
        assert_eq!(
            BaseUrl::parse("https://[::1]:9000")
                .map(|b| b.to_url())
                .ok(),
            Some("https://[::1]:9000".into())
        );
        for bad in [
            "http://h",
            "https://",
            "https://h/x",
            "https://u@h",
            "https://h:x",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_are_read_by_length() {
        let raw = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-A: b\r\n\r\n{}trailing";
        let r = read_response(&mut &raw[..]).expect("parses");
        assert_eq!(r.status, 201);
        assert_eq!(r.body, b"{}");
        assert_eq!(r.header("x-a"), Some("b"));
        let cut = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab";
        assert!(read_response(&mut &cut[..]).is_err());
    }
}
