//! The indicator set: what was loaded, indexed for matching.

use crate::error::IntelError;
use crate::value::{normalize_domain, parse_hash, Collect, Meta, Value};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What kind of thing an indicator names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndicatorKind {
    /// A SHA-256 of a file.
    Sha256,
    /// A SHA-1 of a file.
    Sha1,
    /// An MD5 of a file.
    Md5,
    /// An IPv4 or IPv6 address, or a network (CIDR).
    Ip,
    /// A domain and every name below it.
    Domain,
}

impl IndicatorKind {
    /// A short name (`sha256`, `ip`, `domain`, ...).
    pub fn name(self) -> &'static str {
        match self {
            IndicatorKind::Sha256 => "sha256",
            IndicatorKind::Sha1 => "sha1",
            IndicatorKind::Md5 => "md5",
            IndicatorKind::Ip => "ip",
            IndicatorKind::Domain => "domain",
        }
    }
}

/// The format of an indicator source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Recognised from the text: JSON with `"type": "bundle"` or `objects` is STIX, JSON
    /// with `Event` or `response` is MISP, anything else a plain list.
    Auto,
    /// One indicator per line.
    List,
    /// A STIX 2.1 bundle.
    Stix,
    /// A MISP event (or a list of them, or a `response` of them).
    Misp,
}

/// An indicator an event matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit<'s> {
    /// What kind of indicator.
    pub kind: IndicatorKind,
    /// The indicator as listed, normalised: lower-case hex, an address, a network
    /// (`10.0.0.0/8`), a domain.
    pub indicator: String,
    /// What in the event matched it (the hash, address or name seen).
    pub observed: String,
    /// Where the indicator comes from.
    pub meta: &'s Meta,
}

/// What loading one source did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Indicators added.
    pub added: usize,
    /// Indicators already in the set (from this or an earlier source): the first one
    /// is kept.
    pub duplicates: usize,
    /// Lines or objects left out, each with where and why.
    pub problems: Vec<IntelError>,
    /// Problems past the first 100, counted only.
    pub more_problems: usize,
}

impl LoadReport {
    /// Notes a problem (the first 100 are kept, the rest counted).
    fn problem(&mut self, e: IntelError) {
        if self.problems.len() < 100 {
            self.problems.push(e);
        } else {
            self.more_problems += 1;
        }
    }

    /// Every problem, counted.
    pub fn problem_count(&self) -> usize {
        self.problems.len() + self.more_problems
    }
}

/// Every indicator loaded, indexed for matching.
#[derive(Debug, Default)]
pub struct IntelSet {
    metas: Vec<Meta>,
    sha256: HashMap<[u8; 32], u32>,
    sha1: HashMap<[u8; 20], u32>,
    md5: HashMap<[u8; 16], u32>,
    v4: HashMap<u32, u32>,
    v6: HashMap<u128, u32>,
    /// Networks by prefix length (index), then by network address.
    nets4: Vec<HashMap<u32, u32>>,
    nets6: Vec<HashMap<u128, u32>>,
    /// Prefix lengths that have networks, longest first.
    lens4: Vec<u8>,
    lens6: Vec<u8>,
    domains: HashMap<Box<str>, u32>,
}

impl IntelSet {
    /// An empty set.
    pub fn new() -> Self {
        IntelSet::default()
    }

    /// Indicators in the set.
    pub fn len(&self) -> usize {
        self.sha256.len()
            + self.sha1.len()
            + self.md5.len()
            + self.v4.len()
            + self.v6.len()
            + self.nets4.iter().map(HashMap::len).sum::<usize>()
            + self.nets6.iter().map(HashMap::len).sum::<usize>()
            + self.domains.len()
    }

    /// Whether the set has no indicator.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the indicators of one source, `text`, named `source` (its file name) in
    /// errors and matches.
    pub fn add(&mut self, source: &str, text: &str, format: Format) -> LoadReport {
        let mut report = LoadReport::default();
        let format = match format {
            Format::Auto => detect(text),
            f => f,
        };
        let mut into = Into {
            set: self,
            report: &mut report,
        };
        match format {
            Format::List | Format::Auto => crate::list::load(&mut into, source, text),
            Format::Stix => crate::stix::load(&mut into, source, text),
            Format::Misp => crate::misp::load(&mut into, source, text),
        }
        report
    }

    /// Adds one indicator; false if it was there already.
    fn insert(&mut self, value: Value, meta: u32) -> bool {
        fn put<K: std::hash::Hash + Eq>(m: &mut HashMap<K, u32>, k: K, meta: u32) -> bool {
            match m.entry(k) {
                std::collections::hash_map::Entry::Occupied(_) => false,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(meta);
                    true
                }
            }
        }
        match value {
            Value::Sha256(h) => put(&mut self.sha256, h, meta),
            Value::Sha1(h) => put(&mut self.sha1, h, meta),
            Value::Md5(h) => put(&mut self.md5, h, meta),
            Value::V4(a, 32) => put(&mut self.v4, a, meta),
            Value::V6(a, 128) => put(&mut self.v6, a, meta),
            Value::V4(a, len) => {
                if self.nets4.len() <= usize::from(len) {
                    self.nets4.resize_with(usize::from(len) + 1, HashMap::new);
                }
                if !self.lens4.contains(&len) {
                    self.lens4.push(len);
                    self.lens4.sort_unstable_by(|a, b| b.cmp(a));
                }
                put(&mut self.nets4[usize::from(len)], mask4(a, len), meta)
            }
            Value::V6(a, len) => {
                if self.nets6.len() <= usize::from(len) {
                    self.nets6.resize_with(usize::from(len) + 1, HashMap::new);
                }
                if !self.lens6.contains(&len) {
                    self.lens6.push(len);
                    self.lens6.sort_unstable_by(|a, b| b.cmp(a));
                }
                put(&mut self.nets6[usize::from(len)], mask6(a, len), meta)
            }
            Value::Domain(d) => put(&mut self.domains, d.into_boxed_str(), meta),
        }
    }

    /// The indicator for a hash (hex, either case), if any.
    pub fn match_hash(&self, hex: &str) -> Option<Hit<'_>> {
        // Hex digits of either case decode alike: nothing is allocated unless it matches.
        let hex = hex.trim();
        let (kind, meta) = match parse_hash(hex)? {
            Value::Sha256(h) => (IndicatorKind::Sha256, *self.sha256.get(&h)?),
            Value::Sha1(h) => (IndicatorKind::Sha1, *self.sha1.get(&h)?),
            Value::Md5(h) => (IndicatorKind::Md5, *self.md5.get(&h)?),
            _ => return None,
        };
        let observed = hex.to_ascii_lowercase();
        Some(Hit {
            kind,
            indicator: observed.clone(),
            observed,
            meta: &self.metas[meta as usize],
        })
    }

    /// The indicator for an address: the address itself, else the most specific
    /// network holding it.
    pub fn match_ip(&self, ip: IpAddr) -> Option<Hit<'_>> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        let (indicator, meta) = match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                match self.v4.get(&a) {
                    Some(m) => (ip.to_string(), *m),
                    None => self.lens4.iter().find_map(|&len| {
                        let net = mask4(a, len);
                        let m = self.nets4[usize::from(len)].get(&net)?;
                        Some((format!("{}/{len}", Ipv4Addr::from(net)), *m))
                    })?,
                }
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                match self.v6.get(&a) {
                    Some(m) => (ip.to_string(), *m),
                    None => self.lens6.iter().find_map(|&len| {
                        let net = mask6(a, len);
                        let m = self.nets6[usize::from(len)].get(&net)?;
                        Some((format!("{}/{len}", Ipv6Addr::from(net)), *m))
                    })?,
                }
            }
        };
        Some(Hit {
            kind: IndicatorKind::Ip,
            indicator,
            observed: ip.to_string(),
            meta: &self.metas[meta as usize],
        })
    }

    /// The indicator for a name: the name itself or a domain above it (`a.b.example`
    /// is checked as `a.b.example`, `b.example`, `example`).
    pub fn match_domain(&self, name: &str) -> Option<Hit<'_>> {
        if self.domains.is_empty() {
            return None;
        }
        let name = normalize_domain(name)?;
        let mut rest = name.as_str();
        loop {
            if let Some(&m) = self.domains.get(rest) {
                return Some(Hit {
                    kind: IndicatorKind::Domain,
                    indicator: rest.to_string(),
                    observed: name.clone(),
                    meta: &self.metas[m as usize],
                });
            }
            rest = rest.split_once('.')?.1;
        }
    }
}

/// A source's indicators going into a set, counted in its report.
struct Into<'a> {
    set: &'a mut IntelSet,
    report: &'a mut LoadReport,
}

impl Collect for Into<'_> {
    fn meta(&mut self, meta: Meta) -> u32 {
        self.set.metas.push(meta);
        u32::try_from(self.set.metas.len() - 1).unwrap_or(u32::MAX)
    }

    fn value(&mut self, value: Value, meta: u32) {
        if self.set.insert(value, meta) {
            self.report.added += 1;
        } else {
            self.report.duplicates += 1;
        }
    }

    fn problem(&mut self, e: IntelError) {
        self.report.problem(e);
    }
}

/// The format a text is in, from its first bytes and top-level keys.
fn detect(text: &str) -> Format {
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if !(t.starts_with('{') || t.starts_with('[')) {
        return Format::List;
    }
    // A cheap look at the top level: STIX bundles say what they are near the start.
    let head: String = t.chars().take(4096).collect();
    if head.contains("\"bundle\"")
        || head.contains("\"objects\"")
        || head.contains("\"spec_version\"")
    {
        Format::Stix
    } else {
        Format::Misp
    }
}

fn mask4(a: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        a & (u32::MAX << (32 - u32::from(len)))
    }
}

fn mask6(a: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        a & (u128::MAX << (128 - u32::from(len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(list: &str) -> IntelSet {
        let mut s = IntelSet::new();
        let r = s.add("t.txt", list, Format::List);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        s
    }

    #[test]
    fn hashes_match_in_either_case_and_name_their_kind() {
        let sha256 = "a".repeat(64);
        let s = set(&format!(
            "{sha256}\n{}\n{}\n",
            "B".repeat(40),
            "c".repeat(32)
        ));
        assert_eq!(s.len(), 3);
        let h = s.match_hash(&"A".repeat(64)).expect("sha256");
        assert_eq!(
            (h.kind, h.indicator.as_str()),
            (IndicatorKind::Sha256, sha256.as_str())
        );
        assert_eq!(h.meta.source, "t.txt");
        assert_eq!(
            s.match_hash(&"b".repeat(40)).map(|h| h.kind),
            Some(IndicatorKind::Sha1)
        );
        assert_eq!(
            s.match_hash(&"c".repeat(32)).map(|h| h.kind),
            Some(IndicatorKind::Md5)
        );
        assert!(s.match_hash(&"d".repeat(64)).is_none());
        assert!(s.match_hash("not hex").is_none());
    }

    #[test]
    fn addresses_match_exactly_then_by_the_most_specific_network() {
        let s = set("203.0.113.7\n10.0.0.0/8\n10.1.0.0/16\n2001:db8::/32\n::ffff:198.51.100.9\n");
        let ip = |t: &str| s.match_ip(t.parse().expect("ip")).map(|h| h.indicator);
        assert_eq!(ip("203.0.113.7").as_deref(), Some("203.0.113.7"));
        assert_eq!(ip("203.0.113.8"), None);
        assert_eq!(ip("10.1.2.3").as_deref(), Some("10.1.0.0/16"));
        assert_eq!(ip("10.2.2.3").as_deref(), Some("10.0.0.0/8"));
        assert_eq!(ip("11.0.0.1"), None);
        assert_eq!(ip("2001:db8:1::5").as_deref(), Some("2001:db8::/32"));
        assert_eq!(ip("2001:db9::5"), None);
        // A v4-mapped address is its v4 address, both as indicator and as observed.
        assert_eq!(ip("198.51.100.9").as_deref(), Some("198.51.100.9"));
        assert_eq!(ip("::ffff:10.9.9.9").as_deref(), Some("10.0.0.0/8"));
    }

    #[test]
    fn domains_match_themselves_and_names_below_them_on_label_boundaries() {
        let s = set("Evil.Example.\n*.bad.test\n");
        let d = |t: &str| s.match_domain(t).map(|h| h.indicator);
        assert_eq!(d("evil.example").as_deref(), Some("evil.example"));
        assert_eq!(d("A.B.EVIL.example.").as_deref(), Some("evil.example"));
        assert_eq!(
            d("notevil.example"),
            None,
            "suffix on a label boundary only"
        );
        assert_eq!(d("example"), None);
        assert_eq!(d("x.bad.test").as_deref(), Some("bad.test"));
        assert_eq!(d("bad..test"), None);
    }

    #[test]
    fn the_first_source_of_an_indicator_is_kept() {
        let mut s = IntelSet::new();
        assert_eq!(s.add("one.txt", "1.2.3.4\n", Format::List).added, 1);
        let r = s.add("two.txt", "1.2.3.4\n5.6.7.8\n", Format::List);
        assert_eq!((r.added, r.duplicates), (1, 1));
        let h = s.match_ip("1.2.3.4".parse().expect("ip")).expect("hit");
        assert_eq!(h.meta.source, "one.txt");
    }

    #[test]
    fn formats_are_recognised_from_the_text() {
        assert_eq!(detect("# list\n1.2.3.4\n"), Format::List);
        assert_eq!(
            detect(" {\"type\": \"bundle\", \"objects\": []}"),
            Format::Stix
        );
        assert_eq!(detect("{\"Event\": {}}"), Format::Misp);
        assert_eq!(detect("[{\"Event\": {}}]"), Format::Misp);
    }
}
