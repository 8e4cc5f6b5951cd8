//! Network isolation: the host cut off with nftables, but for loopback and the
//! management endpoints; lifted only when asked. The table lives in the kernel, so it
//! outlasts the agent; a state file (`state_dir/isolation.json`) remembers it, so an
//! agent starting after a reboot puts it back until it is lifted.
//!
//! The ruleset is one table, `inet vigil_isolate`, with input, output and forward
//! chains whose policy is drop. It is written whole with `nft -f -`, replacing any
//! earlier one in the same transaction. Neighbour discovery (ICMPv6) stays allowed so
//! IPv6 management endpoints remain reachable (IPv4's ARP is not filtered by an `inet`
//! table). DHCP and DNS are not allowed unless a management endpoint covers them.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The nftables table Vigil's isolation lives in.
pub const TABLE: &str = "vigil_isolate";

/// A management endpoint: an address or network, and perhaps the port it serves on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length (32 or 128 for one address).
    pub prefix: u8,
    /// The endpoint's port (TCP and UDP), if only that port is allowed.
    pub port: Option<u16>,
}

impl Endpoint {
    /// Parses `192.0.2.10`, `192.0.2.0/24`, `192.0.2.10:8443`, `2001:db8::10`,
    /// `2001:db8::/32`, `[2001:db8::10]:8443`, `[2001:db8::/32]:8443`.
    pub fn parse(s: &str) -> Result<Endpoint, String> {
        let s = s.trim();
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or("`[` without `]`")?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or("expected `:PORT` after `]`")?),
            };
            (h, port)
        } else if s.matches(':').count() == 1 {
            let (h, p) = s.split_once(':').ok_or("bad port")?;
            (h, Some(p))
        } else {
            (s, None)
        };
        let (addr, prefix) = match host.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (host, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("`/{p}` is not a prefix length of 0 to {max}")),
            },
        };
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(format!("`{p}` is not a port (1 to 65535)")),
            },
        };
        Ok(Endpoint { addr, prefix, port })
    }

    fn nft_addr(&self) -> String {
        let max = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == max {
            self.addr.to_string()
        } else {
            format!("{}/{}", self.addr, self.prefix)
        }
    }

    /// The rules that let this endpoint's traffic through, for one direction:
    /// `remote` is `saddr`/`sport` on input and `daddr`/`dport` on output.
    fn rules(&self, input: bool) -> Vec<String> {
        let family = if self.addr.is_ipv4() { "ip" } else { "ip6" };
        let (addr, port) = if input {
            ("saddr", "sport")
        } else {
            ("daddr", "dport")
        };
        let a = self.nft_addr();
        match self.port {
            None => vec![format!("{family} {addr} {a} accept")],
            Some(p) => vec![
                format!("{family} {addr} {a} tcp {port} {p} accept"),
                format!("{family} {addr} {a} udp {port} {p} accept"),
            ],
        }
    }
}

/// The whole ruleset: the table replaced in one transaction.
pub fn ruleset(management: &[Endpoint]) -> String {
    let mut s =
        format!("add table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n");
    let nd = "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept";
    for (chain, hook, lo, input) in [
        ("input", "input", "iif", true),
        ("output", "output", "oif", false),
    ] {
        s += &format!(
            "  chain {chain} {{\n    type filter hook {hook} priority -300; policy drop;\n    {lo} \"lo\" accept\n    {nd}\n"
        );
        for m in management {
            for r in m.rules(input) {
                s += &format!("    {r}\n");
            }
        }
        s += "  }\n";
    }
    s += "  chain forward {\n    type filter hook forward priority -300; policy drop;\n  }\n}\n";
    s
}

/// Why isolation could not be changed or read.
#[derive(Debug, thiserror::Error)]
pub enum IsolateError {
    /// nft could not be run.
    #[error("cannot run {}: {source} (install nftables)", nft.display())]
    NoNft {
        /// The program.
        nft: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// nft refused the ruleset or the command.
    #[error("{} failed ({status}): {stderr}", nft.display())]
    Nft {
        /// The program.
        nft: PathBuf,
        /// Its exit status.
        status: String,
        /// What it said.
        stderr: String,
    },
    /// The state file could not be written or read.
    #[error("{}: {what}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A management endpoint does not parse.
    #[error("management endpoint `{text}`: {why}")]
    Endpoint {
        /// The text.
        text: String,
        /// Why.
        why: String,
    },
}

/// What the state file remembers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsolationState {
    /// Since when (ms since the epoch).
    pub since_ms: i64,
    /// The management endpoints left reachable.
    pub management: Vec<String>,
    /// Why: the finding or the command.
    pub reason: String,
}

/// The host's isolation: nft and the state file.
#[derive(Debug, Clone)]
pub struct Isolation {
    nft: PathBuf,
    state: PathBuf,
}

/// What `status` finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The state file's record, if isolation was asked for.
    pub state: Option<IsolationState>,
    /// Whether the kernel has the table.
    pub in_kernel: bool,
}

impl Isolation {
    /// Isolation run with `nft`, its state kept in `state_dir`.
    pub fn new(nft: &Path, state_dir: &Path) -> Isolation {
        Isolation {
            nft: nft.to_path_buf(),
            state: state_dir.join("isolation.json"),
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, IsolateError> {
        let mut child = Command::new(&self.nft)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| IsolateError::NoNft {
                nft: self.nft.clone(),
                source,
            })?;
        if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
            w.write_all(text.as_bytes())
                .map_err(|source| IsolateError::NoNft {
                    nft: self.nft.clone(),
                    source,
                })?;
        }
        let out = child
            .wait_with_output()
            .map_err(|source| IsolateError::NoNft {
                nft: self.nft.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(IsolateError::Nft {
                nft: self.nft.clone(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Isolates the host (or replaces the isolation's endpoints). The state is written
    /// first, so an isolation the agent dies in the middle of is put back at its start.
    pub fn on(&self, management: &[String], reason: &str, now_ms: i64) -> Result<(), IsolateError> {
        let endpoints = management
            .iter()
            .map(|m| {
                Endpoint::parse(m).map_err(|why| IsolateError::Endpoint {
                    text: m.clone(),
                    why,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let state = IsolationState {
            since_ms: now_ms,
            management: management.to_vec(),
            reason: reason.to_string(),
        };
        self.write_state(&state)?;
        self.run(&["-f", "-"], Some(&ruleset(&endpoints)))?;
        Ok(())
    }

    /// Lifts the isolation: the table and the state go.
    pub fn off(&self) -> Result<bool, IsolateError> {
        let was = self.in_kernel()?;
        if was {
            self.run(&["delete", "table", "inet", TABLE], None)?;
        }
        match std::fs::remove_file(&self.state) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(was),
            Err(e) => Err(IsolateError::State {
                path: self.state.clone(),
                what: format!("cannot remove: {e}"),
            }),
        }
    }

    /// Whether the kernel has the isolation table.
    pub fn in_kernel(&self) -> Result<bool, IsolateError> {
        let tables = self.run(&["list", "tables", "inet"], None)?;
        Ok(tables
            .lines()
            .any(|l| l.trim() == format!("table inet {TABLE}")))
    }

    /// The state file's record and the kernel's table.
    pub fn status(&self) -> Result<Status, IsolateError> {
        Ok(Status {
            state: self.read_state()?,
            in_kernel: self.in_kernel()?,
        })
    }

    /// Whether isolation was asked for and not lifted (the state file: no `nft` run).
    pub fn asked(&self) -> bool {
        self.state.exists()
    }

    /// Puts back an isolation the state file remembers but the kernel lost (a reboot);
    /// returns whether it did.
    pub fn restore_if_lost(&self) -> Result<Option<IsolationState>, IsolateError> {
        let Some(state) = self.read_state()? else {
            return Ok(None);
        };
        if self.in_kernel()? {
            return Ok(None);
        }
        let endpoints = state
            .management
            .iter()
            .filter_map(|m| Endpoint::parse(m).ok())
            .collect::<Vec<_>>();
        self.run(&["-f", "-"], Some(&ruleset(&endpoints)))?;
        Ok(Some(state))
    }

    fn write_state(&self, s: &IsolationState) -> Result<(), IsolateError> {
        let err = |what: String| IsolateError::State {
            path: self.state.clone(),
            what,
        };
        if let Some(dir) = self.state.parent() {
            crate::vault::private_dir(dir).map_err(err)?;
        }
        let tmp = self.state.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(s).map_err(|e| err(e.to_string()))?;
        std::fs::write(&tmp, text + "\n").map_err(|e| err(format!("cannot write: {e}")))?;
        std::fs::rename(&tmp, &self.state).map_err(|e| err(format!("cannot write: {e}")))
    }

    fn read_state(&self) -> Result<Option<IsolationState>, IsolateError> {
        match std::fs::read_to_string(&self.state) {
            Ok(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| IsolateError::State {
                    path: self.state.clone(),
                    what: format!("unreadable: {e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(IsolateError::State {
                path: self.state.clone(),
                what: format!("cannot read: {e}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_networks_and_ports() {
        let e = Endpoint::parse("192.0.2.10:8443").expect("v4 with port");
        assert_eq!((e.prefix, e.port), (32, Some(8443)));
        let e = Endpoint::parse("192.0.2.0/24").expect("v4 network");
        assert_eq!((e.prefix, e.port), (24, None));
        let e = Endpoint::parse("[2001:db8::10]:443").expect("v6 with port");
        assert_eq!((e.prefix, e.port), (128, Some(443)));
        let e = Endpoint::parse("2001:db8::/32").expect("v6 network");
        assert_eq!((e.prefix, e.port), (32, None));
        for (bad, why) in [
            ("192.0.2.10:0", "not a port"),
            ("192.0.2.10:99999", "not a port"),
            ("192.0.2.0/33", "prefix length"),
            ("mgmt.example:443", "not an IP address"),
            ("[2001:db8::1", "without `]`"),
            ("", "not an IP address"),
        ] {
            let e = Endpoint::parse(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn the_ruleset_drops_all_but_loopback_and_management() {
        let m = [
            Endpoint::parse("10.9.0.2:8443").expect("ep"),
            Endpoint::parse("fd00::/64").expect("ep"),
        ];
        let r = ruleset(&m);
        assert!(r.starts_with("add table inet vigil_isolate\ndelete table inet vigil_isolate\n"));
        assert_eq!(r.matches("policy drop;").count(), 3, "{r}");
        assert!(r.contains("iif \"lo\" accept") && r.contains("oif \"lo\" accept"));
        assert!(r.contains("ip saddr 10.9.0.2 tcp sport 8443 accept"));
        assert!(r.contains("ip daddr 10.9.0.2 udp dport 8443 accept"));
        assert!(r.contains("ip6 saddr fd00::/64 accept"));
        assert!(r.contains("ip6 daddr fd00::/64 accept"));
    }
}
