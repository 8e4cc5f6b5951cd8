//! Real loopback servers for the outputs' tests: TCP (optionally TLS) servers that can be
//! stopped and started again on the same port, a CA and server certificate made with the
//! openssl command, and a small HTTP/1.1 request reader.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A connection the handler reads and writes.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// Handles one connection until it ends (or the server stops: reads then fail).
pub type Handler = Arc<dyn Fn(&mut dyn Stream) + Send + Sync>;

/// A TCP server on 127.0.0.1 that can stop (closing its connections) and start again on
/// its port.
pub struct Server {
    pub port: u16,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: Handler,
    running: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Server {
    pub fn start(tls: Option<Arc<rustls::ServerConfig>>, handler: Handler) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut s = Server {
            port,
            tls,
            handler,
            running: None,
            conns: Arc::default(),
        };
        s.run(listener);
        s
    }

    fn run(&mut self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, tls, handler, conns) = (
            Arc::clone(&stop),
            self.tls.clone(),
            Arc::clone(&self.handler),
            Arc::clone(&self.conns),
        );
        let t = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((sock, _)) => {
                        sock.set_nonblocking(false).unwrap();
                        conns.lock().unwrap().push(sock.try_clone().unwrap());
                        let (tls, handler) = (tls.clone(), Arc::clone(&handler));
                        std::thread::spawn(move || match tls {
                            None => {
                                let mut sock = sock;
                                handler(&mut sock);
                            }
                            Some(cfg) => {
                                let conn = rustls::ServerConnection::new(cfg).unwrap();
                                let mut s = rustls::StreamOwned::new(conn, sock);
                                handler(&mut s);
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        self.running = Some((stop, t));
    }

    /// Stops listening and closes every connection.
    pub fn stop(&mut self) {
        if let Some((stop, t)) = self.running.take() {
            stop.store(true, Ordering::Relaxed);
            t.join().unwrap();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Listens again on the same port.
    pub fn restart(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => return self.run(l),
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.port),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads octet-counted syslog frames (RFC 6587) until the connection ends, each into
/// `got`. A frame whose length is not digits and a space is a test failure.
pub fn octet_frames(got: Arc<Mutex<Vec<String>>>) -> Handler {
    Arc::new(move |s: &mut dyn Stream| {
        let mut r = BufReader::new(s);
        loop {
            let mut len = Vec::new();
            match r.read_until(b' ', &mut len) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let digits = std::str::from_utf8(&len[..len.len() - 1]).unwrap();
            let n: usize = digits
                .parse()
                .unwrap_or_else(|_| panic!("frame length `{digits}`"));
            let mut msg = vec![0; n];
            if r.read_exact(&mut msg).is_err() {
                return;
            }
            got.lock().unwrap().push(String::from_utf8(msg).unwrap());
        }
    })
}

/// One HTTP request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the HTTP server does with a request.
pub enum Answer {
    /// This status and body.
    Reply(u16, String),
    /// Close the connection without a word.
    Close,
    /// Never answer (hold the connection until the server stops).
    Silence,
    /// Answer 200, a byte every 100 ms.
    Trickle,
}

/// An HTTP/1.1 server with keep-alive: each request goes to `answer`.
pub fn http(answer: Arc<dyn Fn(&Request) -> Answer + Send + Sync>) -> Handler {
    Arc::new(move |s: &mut dyn Stream| {
        let mut r = BufReader::new(s);
        loop {
            let Some(req) = read_request(&mut r) else {
                return;
            };
            match answer(&req) {
                Answer::Reply(status, body) => {
                    let text = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let w = r.get_mut();
                    if w.write_all(text.as_bytes()).is_err() || w.flush().is_err() {
                        return;
                    }
                }
                Answer::Close => return,
                Answer::Trickle => {
                    let text = "HTTP/1.1 200 OK\r\nContent-Length: 27\r\n\r\n{\"text\":\"Success\",\"code\":0}";
                    for b in text.bytes() {
                        let w = r.get_mut();
                        if w.write_all(&[b]).is_err() || w.flush().is_err() {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                Answer::Silence => {
                    // Until the client gives up or the server stops.
                    let mut sink = Vec::new();
                    let _ = r.read_to_end(&mut sink);
                    return;
                }
            }
        }
    })
}

fn read_request(r: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    assert_eq!(parts.next(), Some("HTTP/1.1"), "request line `{line}`");
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').expect("header");
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .expect("Content-Length");
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// A test CA and a server certificate for localhost and 127.0.0.1 signed by it, made with
/// the openssl command into `dir`: (CA file, server config).
pub fn tls_server(dir: &Path) -> (PathBuf, Arc<rustls::ServerConfig>) {
    use rustls::pki_types::pem::PemObject;
    std::fs::create_dir_all(dir).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=vigil test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=localhost",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(dir.join("srv.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join("srv.key")).unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    (dir.join("ca.pem"), Arc::new(cfg))
}

/// A fresh temporary directory, removed when dropped.
pub fn tmp(name: &str) -> vigil_testdata::TempDir {
    vigil_testdata::TempDir::new("output", name)
}

/// Waits until `f` holds, for `secs` at most.
pub fn wait_for(secs: u64, what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "waited {secs} s for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How long the outage tests keep the server down: `VIGIL_OUTPUT_OUTAGE_SECS` (the
/// issue's minute: 60), else 3.
pub fn outage() -> Duration {
    Duration::from_secs(
        std::env::var("VIGIL_OUTPUT_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    )
}

/// A made-up OCSF event: number `n`, of this severity.
pub fn event(n: usize, severity: i64) -> Vec<u8> {
    format!(
        r#"{{"class_uid":2004,"class_name":"Detection Finding","severity_id":{severity},"time":{},"message":"finding {n}","n":{n}}}"#,
        1_714_564_800_000i64 + n as i64
    )
    .into_bytes()
}

/// The counter `k` of an output.
pub fn counter(out: &vigil_output::Output, k: &str) -> u64 {
    out.counters()
        .iter()
        .find(|(n, _)| *n == k)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no counter {k}"))
}
