//! HTTP/1.1 POST with keep-alive over [`Conn`]: what the HEC and bulk outputs need, no
//! more. Responses are read by `Content-Length`, chunked, or to the end of the
//! connection, with the head and the body bounded in size.

use crate::net::{Conn, Endpoint};
use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

/// A parsed `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The path, without a trailing `/` ("" for the root).
    pub path: String,
}

impl Url {
    /// Parses `scheme://host[:port][/path]`; a query, fragment or user info is refused.
    pub fn parse(s: &str) -> Result<Url, String> {
        let bad = |why: &str| format!("`{s}` is not a usable URL: {why}");
        let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("it must start with http:// or https://"));
        };
        if rest.contains(['?', '#', '@', ' ']) {
            return Err(bad("a query, fragment, user info or space is not allowed"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = split_host_port(authority).map_err(|w| bad(&w))?;
        let port = port.unwrap_or(if tls { 443 } else { 80 });
        Ok(Url {
            tls,
            host,
            port,
            path: path.to_string(),
        })
    }

    /// The value of the `Host` header.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// `host[:port]` or `[v6][:port]`.
pub(crate) fn split_host_port(a: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(r) = a.strip_prefix('[') {
        let end = r.find(']').ok_or("an IPv6 address lacks its `]`")?;
        let after = &r[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err("junk after the IPv6 address".into()),
        };
        (r[..end].to_string(), port)
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (a.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("`{p}` is not a port")),
        },
    };
    Ok((host, port))
}

/// A response: status and body.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    /// Connecting, writing or reading failed (timeouts included).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server's answer is not HTTP/1.x as expected.
    #[error("bad response: {0}")]
    Protocol(String),
}

/// Largest response head (status line and headers) read.
const MAX_HEAD: usize = 64 * 1024;
/// Largest response body read (a bulk response names every item: a few hundred bytes each).
const MAX_BODY: usize = 32 << 20;

/// One server, one kept-alive connection at a time.
pub(crate) struct Client {
    endpoint: Endpoint,
    host_header: String,
    timeout: Duration,
    conn: Option<BufReader<Timed>>,
}

impl Client {
    /// A client of `endpoint`, whose requests name `host_header`.
    pub fn new(endpoint: Endpoint, host_header: String, timeout: Duration) -> Self {
        Client {
            endpoint,
            host_header,
            timeout,
            conn: None,
        }
    }

    /// POSTs `body` to `path` with these extra headers. A kept-alive connection the
    /// server had closed is replaced once, at once; any failure closes the connection.
    pub fn post(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, HttpError> {
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: keep-alive\r\nUser-Agent: vigil/{}\r\n",
            self.host_header,
            body.len(),
            env!("CARGO_PKG_VERSION")
        );
        for (k, v) in headers {
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let reused = self.conn.is_some();
        match self.exchange(head.as_bytes(), body) {
            Ok(r) => Ok(r),
            // A kept-alive connection may have been closed by the server meanwhile:
            // nothing of this request was answered, so one fresh try is safe.
            Err(HttpError::Io(e)) if reused && is_stale(&e) => {
                self.conn = None;
                self.exchange(head.as_bytes(), body)
            }
            Err(e) => Err(e),
        }
    }

    fn exchange(&mut self, head: &[u8], body: &[u8]) -> Result<Response, HttpError> {
        let r = self.try_exchange(head, body);
        match &r {
            Ok((_, keep)) if *keep => {}
            _ => self.conn = None,
        }
        r.map(|(resp, _)| resp)
    }

    fn try_exchange(&mut self, head: &[u8], body: &[u8]) -> Result<(Response, bool), HttpError> {
        if self.conn.is_none() {
            let c = self.endpoint.connect(self.timeout)?;
            self.conn = Some(BufReader::with_capacity(
                16 * 1024,
                Timed {
                    conn: c,
                    deadline: Instant::now(),
                },
            ));
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(HttpError::Protocol("no connection".into()));
        };
        // Sending the request, then the answer, each within the timeout in all: a server
        // that reads or answers a byte at a time is given up on too.
        let w = conn.get_mut();
        w.deadline = Instant::now() + self.timeout;
        w.write_all(head)?;
        w.write_all(body)?;
        w.flush()?;
        conn.get_mut().deadline = Instant::now() + self.timeout;
        read_response(conn)
    }
}

/// A connection whose reads and writes fail once a deadline has passed (each call is
/// bounded by the socket's timeouts besides).
struct Timed {
    conn: Conn,
    deadline: Instant,
}

impl Timed {
    fn check(&self) -> std::io::Result<()> {
        if Instant::now() > self.deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the server is too slow (timeout_ms)",
            ));
        }
        Ok(())
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.check()?;
        self.conn.read(buf)
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.check()?;
        self.conn.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.conn.flush()
    }
}

/// Whether an error is what a kept-alive connection the server closed gives.
fn is_stale(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        UnexpectedEof | ConnectionReset | BrokenPipe | ConnectionAborted
    )
}

/// Reads one response (skipping 1xx ones); also says whether the connection stays open.
fn read_response<R: BufRead>(r: &mut R) -> Result<(Response, bool), HttpError> {
    loop {
        let mut budget = MAX_HEAD;
        let status_line = read_line(r, &mut budget)?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        if !version.starts_with("HTTP/1.") {
            return Err(HttpError::Protocol(format!(
                "status line `{}`",
                status_line.chars().take(80).collect::<String>()
            )));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| HttpError::Protocol(format!("status line `{status_line}`")))?;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        let mut keep = version != "HTTP/1.0";
        loop {
            let line = read_line(r, &mut budget)?;
            if line.is_empty() {
                break;
            }
            let Some((k, v)) = line.split_once(':') else {
                return Err(HttpError::Protocol(format!("header line `{line}`")));
            };
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => {
                    length = Some(
                        v.parse()
                            .map_err(|_| HttpError::Protocol(format!("Content-Length `{v}`")))?,
                    )
                }
                "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
                "connection" => {
                    let v = v.to_ascii_lowercase();
                    if v.contains("close") {
                        keep = false;
                    } else if v.contains("keep-alive") {
                        keep = true;
                    }
                }
                _ => {}
            }
        }
        if (100..200).contains(&status) {
            continue;
        }
        let body = if chunked {
            read_chunked(r)?
        } else if let Some(n) = length {
            if n > MAX_BODY {
                return Err(HttpError::Protocol(format!("a body of {n} bytes")));
            }
            let mut b = vec![0; n];
            r.read_exact(&mut b)?;
            b
        } else if status == 204 || status == 304 {
            Vec::new()
        } else {
            // Until the server closes.
            keep = false;
            let mut b = Vec::new();
            r.take(MAX_BODY as u64 + 1).read_to_end(&mut b)?;
            if b.len() > MAX_BODY {
                return Err(HttpError::Protocol("an endless body".into()));
            }
            b
        };
        return Ok((Response { status, body }, keep));
    }
}

fn read_line<R: BufRead>(r: &mut R, budget: &mut usize) -> Result<String, HttpError> {
    let mut line = Vec::new();
    let n = r.take(*budget as u64 + 1).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(HttpError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the server closed the connection before answering",
        )));
    }
    if n > *budget || !line.ends_with(b"\n") {
        return Err(HttpError::Protocol(
            "a response head that is too long or cut off".into(),
        ));
    }
    *budget -= n;
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| HttpError::Protocol("a head that is not text".into()))
}

fn read_chunked<R: BufRead>(r: &mut R) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    let mut budget = MAX_HEAD;
    loop {
        let line = read_line(r, &mut budget)?;
        let size = line.split(';').next().unwrap_or("").trim();
        let n = usize::from_str_radix(size, 16)
            .map_err(|_| HttpError::Protocol(format!("chunk size `{size}`")))?;
        if n == 0 {
            // Trailers, up to the blank line.
            while !read_line(r, &mut budget)?.is_empty() {}
            return Ok(body);
        }
        if body.len() + n > MAX_BODY {
            return Err(HttpError::Protocol("a chunked body too long".into()));
        }
        let start = body.len();
        body.resize(start + n, 0);
        r.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(HttpError::Protocol("a chunk not ended by CRLF".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_or_refused_with_why() {
        let u = Url::parse("https://splunk.example:8088").expect("ok");
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (true, "splunk.example", 8088, "")
        );
        let u = Url::parse("http://[::1]/es/").expect("ok");
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 80, "/es")
        );
        assert_eq!(u.host_header(), "[::1]");
        for bad in [
            "htp://x",
            "https://",
            "http://h:0",
            "http://h:99999",
            "http://u@h",
            "http://h/?q",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn responses_by_length_chunked_and_to_the_end() {
        let text =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let (r, keep) = read_response(&mut &text[..]).expect("ok");
        assert_eq!(
            (r.status, r.body.as_slice(), keep),
            (200, &b"hello"[..], true)
        );
        let text = b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n";
        let (r, _) = read_response(&mut &text[..]).expect("ok");
        assert_eq!((r.status, r.body.as_slice()), (400, &b"abcde"[..]));
        let text = b"HTTP/1.0 503 Busy\r\n\r\nbye";
        let (r, keep) = read_response(&mut &text[..]).expect("ok");
        assert_eq!(
            (r.status, r.body.as_slice(), keep),
            (503, &b"bye"[..], false)
        );
        assert!(read_response(&mut &b"SSH-2.0-x\r\n"[..]).is_err());
        assert!(
            read_response(&mut &b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"[..]).is_err()
        );
    }
}
