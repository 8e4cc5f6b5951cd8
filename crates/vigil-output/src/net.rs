//! A TCP connection, plain or TLS, every step of it bounded by a timeout.

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// A connected stream.
pub(crate) enum Conn {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

/// Where to connect and how.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub host: String,
    pub port: u16,
    /// TLS settings and the name the certificate must carry.
    pub tls: Option<(Arc<ClientConfig>, String)>,
}

impl Endpoint {
    /// Connects (resolving the host: the system resolver is not bounded by `timeout`),
    /// and for TLS completes the handshake.
    pub fn connect(&self, timeout: Duration) -> std::io::Result<Conn> {
        let addrs = (self.host.as_str(), self.port).to_socket_addrs()?;
        let mut last = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} resolves to no address", self.host),
        );
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => {
                    s.set_read_timeout(Some(timeout))?;
                    s.set_write_timeout(Some(timeout))?;
                    s.set_nodelay(true)?;
                    return self.wrap(s);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn wrap(&self, sock: TcpStream) -> std::io::Result<Conn> {
        let Some((config, name)) = &self.tls else {
            return Ok(Conn::Plain(sock));
        };
        let server = ServerName::try_from(name.clone())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let conn = ClientConnection::new(Arc::clone(config), server)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut s = StreamOwned::new(conn, sock);
        // The handshake now, so a certificate problem shows as a connection failure.
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock)?;
        }
        Ok(Conn::Tls(Box::new(s)))
    }
}

impl Conn {
    /// Whether the server closed the connection (or said anything: the protocols here
    /// have the server speak only when asked), seen without waiting. A syslog server that
    /// restarted is noticed before a batch is written into a dead connection.
    pub fn closed_by_peer(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self {
            Conn::Plain(s) => {
                if s.set_nonblocking(true).is_err() {
                    return true;
                }
                let r = s.peek(&mut byte);
                let _ = s.set_nonblocking(false);
                !matches!(r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            }
            Conn::Tls(s) => {
                if s.sock.set_nonblocking(true).is_err() {
                    return true;
                }
                // Through TLS: session tickets and the like are consumed, only data,
                // close_notify or the end of the stream count.
                let r = s.read(&mut byte);
                let _ = s.sock.set_nonblocking(false);
                !matches!(r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            }
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}
