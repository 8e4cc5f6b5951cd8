//! Syslog: RFC 5424 messages whose MSG is the OCSF event as JSON, to the local socket
//! (`unix:`: one datagram per message, or newline-ended messages when the socket is a
//! stream socket), over TCP with RFC 6587 octet counting, or over TLS (RFC 5425, the
//! same framing).
//!
//! What "sent" means here: syslog has no acknowledgement. A datagram on a local socket
//! is in the daemon's queue once `send` returns. On TCP and TLS an event counts as sent
//! once the kernel took all of its frame; a write cut part-way leaves the rest to retry
//! on a new connection, and a connection the server closed is noticed before a batch is
//! written. What the kernel held when the server died is lost without a word: TCP
//! syslog cannot promise more (HEC and the bulk API do: use them where that matters).

use crate::config::{Facility, SyslogConfig};
use crate::event::Head;
use crate::net::{Conn, Endpoint};
use crate::queue::{Deliver, Item, Outcome};
use std::io::Write;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

/// Where a syslog output sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Address {
    /// A local socket.
    Unix(PathBuf),
    /// TCP, octet counting.
    Tcp { host: String, port: u16 },
    /// TLS, octet counting.
    Tls { host: String, port: u16 },
}

impl Address {
    /// Parses `unix:PATH`, `tcp://HOST:PORT` or `tls://HOST:PORT`.
    pub fn parse(s: &str) -> Result<Address, String> {
        if let Some(p) = s.strip_prefix("unix:") {
            if !p.starts_with('/') {
                return Err(format!("`{s}`: the socket's path must be absolute"));
            }
            return Ok(Address::Unix(PathBuf::from(p)));
        }
        let (tls, rest) = if let Some(r) = s.strip_prefix("tcp://") {
            (false, r)
        } else if let Some(r) = s.strip_prefix("tls://") {
            (true, r)
        } else {
            return Err(format!(
                "`{s}` is not unix:/PATH, tcp://HOST:PORT or tls://HOST:PORT"
            ));
        };
        let (host, port) = crate::http::split_host_port(rest.trim_end_matches('/'))
            .map_err(|w| format!("`{s}`: {w}"))?;
        let port = port.ok_or_else(|| format!("`{s}` has no port (514 TCP, 6514 TLS)"))?;
        Ok(if tls {
            Address::Tls { host, port }
        } else {
            Address::Tcp { host, port }
        })
    }
}

/// The syslog severity of an OCSF severity id.
pub(crate) fn severity(ocsf: Option<i64>) -> u8 {
    match ocsf {
        Some(2) => 5, // Low: notice
        Some(3) => 4, // Medium: warning
        Some(4) => 3, // High: error
        Some(5) => 2, // Critical: critical
        Some(6) => 1, // Fatal: alert
        _ => 6,       // Informational, Unknown, Other: informational
    }
}

/// Appends one RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME vigil PROCID MSGID - MSG`,
/// with the event's time (UTC, ms), its class name as MSGID (spaces left out), no
/// structured data, and the event as MSG (UTF-8 JSON, no BOM).
pub(crate) fn format(
    out: &mut Vec<u8>,
    facility: Facility,
    hostname: &str,
    procid: &str,
    event: &[u8],
) {
    let head = Head::of(event);
    let pri = u32::from(facility.code()) * 8 + u32::from(severity(head.severity_id));
    let msgid: String = head
        .class_name
        .as_deref()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    let msgid = if msgid.is_empty() { "-" } else { &msgid };
    let _ = write!(
        out,
        "<{pri}>1 {} {hostname} vigil {procid} {msgid} - ",
        vigil_event::time::format_ms(head.time_ms())
    );
    out.extend_from_slice(event);
}

enum Link {
    Dgram(UnixDatagram),
    Stream(UnixStream),
    Net(Conn),
}

/// Sends to a syslog server.
pub(crate) struct SyslogDeliver {
    address: Address,
    endpoint: Option<Endpoint>,
    facility: Facility,
    hostname: String,
    procid: String,
    timeout: Duration,
    link: Option<Link>,
    buf: Vec<u8>,
}

impl SyslogDeliver {
    /// A sender for this output (TLS settings read already).
    pub fn new(c: &SyslogConfig) -> Result<Self, (&'static str, String)> {
        let address = Address::parse(&c.address).map_err(|m| ("address", m))?;
        let endpoint = match &address {
            Address::Unix(_) => None,
            Address::Tcp { host, port } => Some(Endpoint {
                host: host.clone(),
                port: *port,
                tls: None,
            }),
            Address::Tls { host, port } => Some(Endpoint {
                host: host.clone(),
                port: *port,
                tls: Some((
                    crate::tls::client_config(&c.common())?,
                    c.server_name.clone().unwrap_or_else(|| host.clone()),
                )),
            }),
        };
        Ok(SyslogDeliver {
            address,
            endpoint,
            facility: c.facility,
            hostname: c.hostname.clone().unwrap_or_else(crate::event::hostname),
            procid: std::process::id().to_string(),
            timeout: Duration::from_millis(c.timeout_ms),
            link: None,
            buf: Vec::new(),
        })
    }

    fn connect(&self) -> std::io::Result<Link> {
        match (&self.address, &self.endpoint) {
            (Address::Unix(path), _) => {
                let d = UnixDatagram::unbound()?;
                match d.connect(path) {
                    Ok(()) => {
                        d.set_write_timeout(Some(self.timeout))?;
                        Ok(Link::Dgram(d))
                    }
                    // A stream socket (syslog-ng's unix-stream, for one).
                    Err(e) if e.raw_os_error() == Some(EPROTOTYPE) => {
                        let s = UnixStream::connect(path)?;
                        s.set_write_timeout(Some(self.timeout))?;
                        Ok(Link::Stream(s))
                    }
                    Err(e) => Err(e),
                }
            }
            (_, Some(ep)) => ep.connect(self.timeout).map(Link::Net),
            (_, None) => Err(std::io::Error::other("no endpoint")),
        }
    }
}

/// Whether the daemon closed a local stream socket (it never writes to it: anything
/// readable is the end of the stream or an error), seen without waiting.
fn unix_closed(s: &mut UnixStream) -> bool {
    use std::io::Read;
    if s.set_nonblocking(true).is_err() {
        return true;
    }
    let r = s.read(&mut [0u8; 1]);
    let _ = s.set_nonblocking(false);
    !matches!(r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// EPROTOTYPE on Linux: connecting a datagram socket to a stream socket.
const EPROTOTYPE: i32 = 91;

/// EMSGSIZE on Linux: a datagram larger than the socket takes.
const EMSGSIZE: i32 = 90;

impl Deliver for SyslogDeliver {
    fn deliver(&mut self, batch: &[Vec<u8>]) -> Outcome {
        let closed = match &mut self.link {
            Some(Link::Net(c)) => c.closed_by_peer(),
            Some(Link::Stream(s)) => unix_closed(s),
            _ => false,
        };
        if closed {
            self.link = None;
        }
        let mut link = match self.link.take() {
            Some(l) => l,
            None => match self.connect() {
                Ok(l) => l,
                Err(e) => return Outcome::Failed(format!("cannot connect: {e}")),
            },
        };
        let mut items = Vec::with_capacity(batch.len());
        let (facility, host, pid) = (self.facility, self.hostname.as_str(), self.procid.as_str());
        match &mut link {
            Link::Dgram(d) => {
                let mut failed = None;
                for e in batch {
                    if let Some(why) = &failed {
                        items.push(Item::Retry(String::clone(why)));
                        continue;
                    }
                    self.buf.clear();
                    format(&mut self.buf, facility, host, pid, e);
                    match d.send(&self.buf) {
                        Ok(_) => items.push(Item::Sent),
                        Err(err) if err.raw_os_error() == Some(EMSGSIZE) => {
                            items.push(Item::Reject(format!(
                                "a message of {} bytes is larger than the socket takes",
                                self.buf.len()
                            )))
                        }
                        Err(err) => {
                            let why = format!("cannot send: {err}");
                            items.push(Item::Retry(why.clone()));
                            failed = Some(why);
                        }
                    }
                }
                if failed.is_none() {
                    self.link = Some(link);
                }
            }
            Link::Stream(_) | Link::Net(_) => {
                // Every frame into one buffer, one write: `ends` says where each ends.
                self.buf.clear();
                let mut ends = Vec::with_capacity(batch.len());
                let mut msg = Vec::new();
                let octet_counting = matches!(link, Link::Net(_));
                for e in batch {
                    msg.clear();
                    format(&mut msg, facility, host, pid, e);
                    if octet_counting {
                        let _ = write!(self.buf, "{} ", msg.len());
                        self.buf.extend_from_slice(&msg);
                    } else {
                        self.buf.extend_from_slice(&msg);
                        self.buf.push(b'\n');
                    }
                    ends.push(self.buf.len());
                }
                let tls = matches!(link, Link::Net(Conn::Tls(_)));
                let deadline = std::time::Instant::now() + self.timeout;
                let (written, err) = write_counted(&mut link, &self.buf, deadline);
                match err {
                    None => {
                        items.resize(batch.len(), Item::Sent);
                        self.link = Some(link);
                    }
                    Some(err) => {
                        let why = format!("cannot write: {err}");
                        // Over TLS, bytes taken are not yet on the wire: retry them all.
                        let written = if tls { 0 } else { written };
                        items.extend(ends.iter().map(|&end| {
                            if end <= written {
                                Item::Sent
                            } else {
                                Item::Retry(why.clone())
                            }
                        }));
                    }
                }
            }
        }
        if items.iter().all(|i| *i == Item::Sent) {
            Outcome::Sent
        } else {
            Outcome::Items(items)
        }
    }
}

/// Writes `buf` by `deadline` (a server reading slowly is given up on), saying how
/// much was taken before an error.
fn write_counted(
    link: &mut Link,
    buf: &[u8],
    deadline: std::time::Instant,
) -> (usize, Option<std::io::Error>) {
    let w: &mut dyn Write = match link {
        Link::Stream(s) => s,
        Link::Net(c) => c,
        Link::Dgram(_) => return (0, Some(std::io::Error::other("not a stream"))),
    };
    let mut done = 0;
    while done < buf.len() {
        if std::time::Instant::now() > deadline {
            return (
                done,
                Some(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the server reads too slowly (timeout_ms)",
                )),
            );
        }
        match w.write(&buf[done..]) {
            Ok(0) => return (done, Some(std::io::ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (done, Some(e)),
        }
    }
    match w.flush() {
        Ok(()) => (done, None),
        Err(e) => (done, Some(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_parsed_or_refused() {
        assert_eq!(
            Address::parse("unix:/dev/log"),
            Ok(Address::Unix("/dev/log".into()))
        );
        assert_eq!(
            Address::parse("tls://[::1]:6514"),
            Ok(Address::Tls {
                host: "::1".into(),
                port: 6514
            })
        );
        for bad in [
            "unix:dev/log",
            "udp://h:514",
            "tcp://h",
            "tcp://:514",
            "tls://h:x",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_finding_is_an_rfc5424_message_with_its_severity_and_time() {
        let ev = br#"{"class_name":"Detection Finding","severity_id":4,"time":1714564800123,"message":"x"}"#;
        let mut out = Vec::new();
        format(&mut out, Facility::Local0, "web-01", "42", ev);
        // local0 (16) * 8 + error (3) = 131.
        let want = format!(
            "<131>1 2024-05-01T12:00:00.123Z web-01 vigil 42 DetectionFinding - {}",
            std::str::from_utf8(ev).expect("utf8")
        );
        assert_eq!(String::from_utf8(out).expect("utf8"), want);
        let mut out = Vec::new();
        format(&mut out, Facility::Auth, "h", "1", br#"{"time":0}"#);
        assert!(
            out.starts_with(b"<38>1 1970-01-01T00:00:00.000Z h vigil 1 - - {"),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
}
