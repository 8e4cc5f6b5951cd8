//! Indicator values as parsed from any format, what a source says of them, and how a
//! format hands them over ([`Collect`]): the parts the formats share with the set.

use crate::error::IntelError;
use std::net::IpAddr;

/// What an indicator says about itself, beyond its value: where it comes from, and,
/// from STIX and MISP, its id, name and pattern. Indicators of a plain list share one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// The source (a file name, as given to [`IntelSet::add`]).
    pub source: String,
    /// The indicator's id in its source (a STIX `id`, a MISP attribute `uuid`).
    pub uid: Option<String>,
    /// Its name (a STIX `name`, a MISP event's `info`).
    pub name: Option<String>,
    /// The STIX pattern it came from.
    pub pattern: Option<String>,
}

/// A parsed indicator value, ready to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Sha256([u8; 32]),
    Sha1([u8; 20]),
    Md5([u8; 16]),
    V4(u32, u8),
    V6(u128, u8),
    Domain(String),
}

/// A JSON source parsed whole (a leading byte-order mark skipped); `None`, with the
/// problem noted where it is, if it is not JSON.
pub(crate) fn parse_json(
    into: &mut dyn Collect,
    source: &str,
    text: &str,
) -> Option<serde_json::Value> {
    match serde_json::from_str(text.strip_prefix('\u{feff}').unwrap_or(text)) {
        Ok(v) => Some(v),
        Err(e) => {
            into.problem(IntelError::Json {
                source_name: source.to_string(),
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            });
            None
        }
    }
}

/// Where a format puts what it parses.
pub(crate) trait Collect {
    /// Registers what a group of indicators says about itself; returns its index.
    fn meta(&mut self, meta: Meta) -> u32;
    /// Adds one indicator of the group `meta`.
    fn value(&mut self, value: Value, meta: u32);
    /// Notes a line or object left out.
    fn problem(&mut self, e: IntelError);
}

fn hex_bytes<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// A hash by its length: 64, 40 or 32 hex digits.
pub(crate) fn parse_hash(s: &str) -> Option<Value> {
    match s.len() {
        64 => hex_bytes::<32>(s).map(Value::Sha256),
        40 => hex_bytes::<20>(s).map(Value::Sha1),
        32 => hex_bytes::<16>(s).map(Value::Md5),
        _ => None,
    }
}

/// An address or a network (`a.b.c.d/n`, `x::/n`); host bits of a network are ignored.
pub(crate) fn parse_ip(s: &str) -> Result<Option<Value>, String> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let Ok(ip) = addr.parse::<IpAddr>() else {
        return Ok(None);
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => return Err(format!("bad prefix length /{l} for {addr} (0 to {max})")),
        },
    };
    Ok(Some(match ip {
        IpAddr::V4(a) => Value::V4(u32::from(a), len),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) if len >= 96 => Value::V4(u32::from(v4), len - 96),
            _ => Value::V6(u128::from(a), len),
        },
    }))
}

/// A domain name, lower-case, without a trailing dot or a leading `*.`; `None` if it is
/// not a name (empty labels, characters no name has, too long).
pub(crate) fn normalize_domain(s: &str) -> Option<String> {
    let s = s.trim();
    let s = s.strip_prefix("*.").unwrap_or(s);
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() || s.len() > 253 {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let ok = lower.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    ok.then_some(lower)
}

/// A domain indicator: a name with at least one dot, or else refused (a bare `com`
/// would match half the internet), and not an address.
pub(crate) fn parse_domain(s: &str) -> Result<Value, String> {
    let d = normalize_domain(s).ok_or_else(|| format!("{s:?} is not a domain name"))?;
    if !d.contains('.') {
        return Err(format!(
            "{s:?} is a single label: as a domain indicator it would match every name under it"
        ));
    }
    if d.split('.').all(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        return Err(format!(
            "{s:?} looks like a truncated address, not a domain"
        ));
    }
    Ok(Value::Domain(d))
}
