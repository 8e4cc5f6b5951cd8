//! Network namespaces the isolation tests make (never the host's own network): a
//! "host" namespace and a "peer" namespace joined by a veth pair, servers answering
//! `ok` on TCP in either, and a client that says whether an address is reached.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};

/// The two namespaces, removed (with the servers in them) when dropped.
pub struct Namespaces {
    /// The namespace the test isolates.
    pub host: String,
    /// The other end of the veth pair.
    pub peer: String,
    /// Servers started in either.
    pub servers: Vec<Child>,
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        for ns in [&self.host, &self.peer] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs `ip` with `args`; panics with its error when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A command run inside namespace `ns`.
pub fn in_ns(ns: &str, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]);
    c
}

/// Whether `ip`, `nft` and `python3` are here; a skip that says why when not.
pub fn tools_or_skip() -> bool {
    for tool in ["ip", "nft", "python3"] {
        if Command::new(tool).arg("--version").output().is_err() {
            vigil_testdata::skip(&format!(
                "{tool} is not installed (scripts/setup installs it)"
            ));
            return false;
        }
    }
    true
}

/// Two new namespaces `vigil-TAG-hN` and `vigil-TAG-pN` joined by a veth pair made
/// inside them: `host_addr` (with its prefix) on the host's end, each of `peer_addrs`
/// on the peer's; loopback up in both.
pub fn pair(tag: &str, host_addr: &str, peer_addrs: &[&str]) -> Namespaces {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n =
        (std::process::id() % 10_000) * 10 + N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ns = Namespaces {
        host: format!("vigil-{tag}-h{n}"),
        peer: format!("vigil-{tag}-p{n}"),
        servers: Vec::new(),
    };
    for space in [&ns.host, &ns.peer] {
        // Left by an earlier run with this number, if any.
        let _ = Command::new("ip")
            .args(["netns", "del", space])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", space]);
    }
    let (a, b) = (format!("v{n}h"), format!("v{n}p"));
    ip(&[
        "link", "add", &a, "netns", &ns.host, "type", "veth", "peer", "name", &b, "netns", &ns.peer,
    ]);
    ip(&["-n", &ns.host, "addr", "add", host_addr, "dev", &a]);
    for addr in peer_addrs {
        ip(&["-n", &ns.peer, "addr", "add", addr, "dev", &b]);
    }
    for (space, dev) in [(&ns.host, &a), (&ns.peer, &b)] {
        ip(&["-n", space, "link", "set", dev, "up"]);
        ip(&["-n", space, "link", "set", "lo", "up"]);
    }
    ns
}

/// A TCP server in `ns` answering `ok` on every connection to `addr:port`.
pub fn answering(ns: &str, addr: &str, port: u16) -> Child {
    let code = format!(
        "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('{addr}', {port})); s.listen(16)\nwhile True:\n    c,_=s.accept(); c.sendall(b'ok'); c.close()\n"
    );
    in_ns(ns, "python3")
        .args(["-c", &code])
        .stdout(Stdio::null())
        .spawn()
        .expect("python3 server")
}

/// Whether a TCP connection from `ns` to `addr:port` gets its `ok` within a second.
pub fn reaches(ns: &str, addr: &str, port: u16) -> bool {
    let code = format!(
        "import socket,sys\ntry:\n    s=socket.create_connection(('{addr}', {port}), timeout=1)\n    sys.exit(0 if s.recv(2)==b'ok' else 1)\nexcept Exception:\n    sys.exit(1)\n"
    );
    in_ns(ns, "python3")
        .args(["-c", &code])
        .status()
        .expect("python3 client")
        .success()
}
