//! Indicators in a hunt: the records' hashes, addresses and names matched against a set
//! of indicators ([`vigil_intel::IntelSet`]). Each indicator source and kind is reported
//! as a rule of its own (`Known-bad SHA-256 (feed.txt)`), so that findings of indicators
//! go through the same outputs, counts and reports as the rules' findings.
//!
//! What a record names: Vigil's OCSF events as the agent matches them
//! ([`vigil_intel::IntelSet::match_event`]); Windows records by their Sysmon fields:
//! `Hashes` (`SHA256=...,MD5=...`, the labelled SHA-256, SHA-1 and MD5; an import hash
//! is no file hash), `SourceIp`, `DestinationIp`, `QueryName`, `DestinationHostname`, and
//! the addresses of `QueryResults`, in `Event.EventData` or at the top level.

use std::collections::HashMap;
use std::sync::Arc;
use vigil_event::{Event, FieldPath};
use vigil_intel::{Hit, IndicatorKind, IntelSet};
use vigil_sigma::{Level, LogSource, RuleKind, RuleMeta};

/// The kinds of indicators, in the order their rules are made.
const KINDS: [IndicatorKind; 5] = [
    IndicatorKind::Sha256,
    IndicatorKind::Sha1,
    IndicatorKind::Md5,
    IndicatorKind::Ip,
    IndicatorKind::Domain,
];

/// Indicators for a hunt, with a rule for each source and kind.
#[derive(Debug)]
pub struct HuntIntel {
    set: IntelSet,
    rules: Vec<RuleMeta>,
    index: HashMap<(String, IndicatorKind), usize>,
    paths: Paths,
}

#[derive(Debug)]
struct Paths {
    hashes: [FieldPath; 2],
    ips: [FieldPath; 4],
    names: [FieldPath; 4],
    results: [FieldPath; 2],
}

impl HuntIntel {
    /// The indicators of `set`, loaded from `sources` (the names given to
    /// [`IntelSet::add`]); their findings are at `level`.
    pub fn new(set: IntelSet, sources: &[String], level: Level) -> Self {
        let mut rules = Vec::new();
        let mut index = HashMap::new();
        for source in sources {
            for kind in KINDS {
                let what = match kind {
                    IndicatorKind::Sha256 => "SHA-256",
                    IndicatorKind::Sha1 => "SHA-1",
                    IndicatorKind::Md5 => "MD5",
                    IndicatorKind::Ip => "address",
                    IndicatorKind::Domain => "domain",
                };
                index.insert((source.clone(), kind), rules.len());
                rules.push(RuleMeta {
                    title: format!("Known-bad {what} ({source})"),
                    id: None,
                    name: Some(format!("intel:{}:{source}", kind.name())),
                    level: Some(level),
                    status: None,
                    tags: Vec::new(),
                    logsource: LogSource::default(),
                    source: Arc::from(source.as_str()),
                    line: 0,
                    kind: RuleKind::Detection,
                });
            }
        }
        let both = |f: &str| {
            [
                FieldPath::new(&format!("Event.EventData.{f}")),
                FieldPath::new(f),
            ]
        };
        let [a, b] = both("SourceIp");
        let [c, d] = both("DestinationIp");
        let [e, f] = both("QueryName");
        let [g, h] = both("DestinationHostname");
        HuntIntel {
            set,
            rules,
            index,
            paths: Paths {
                hashes: both("Hashes"),
                ips: [a, b, c, d],
                names: [e, f, g, h],
                results: both("QueryResults"),
            },
        }
    }

    /// The indicators.
    pub fn set(&self) -> &IntelSet {
        &self.set
    }

    /// The rules findings of indicators are reported as, one per source and kind.
    pub fn rules(&self) -> &[RuleMeta] {
        &self.rules
    }

    /// The index in [`HuntIntel::rules`] of a hit's rule.
    pub(crate) fn rule_of(&self, hit: &Hit<'_>) -> Option<usize> {
        self.index
            .get(&(hit.meta.source.clone(), hit.kind))
            .copied()
    }

    /// The indicators a Windows record names.
    pub(crate) fn windows_hits<'s>(&'s self, ev: &dyn Event, hits: &mut Vec<Hit<'s>>) {
        let strs = |paths: &[FieldPath], f: &mut dyn FnMut(&str)| {
            for p in paths {
                if let Some(v) = ev.field(p) {
                    if let Some(s) = v.as_str() {
                        f(s);
                    }
                }
            }
        };
        strs(&self.paths.hashes, &mut |s| {
            for part in s.split(',') {
                let hex = match part.split_once('=') {
                    Some((alg, hex)) => match alg.trim().to_ascii_uppercase().as_str() {
                        "SHA256" | "SHA1" | "MD5" => hex,
                        _ => continue,
                    },
                    None => part,
                };
                hits.extend(self.set.match_hash(hex));
            }
        });
        strs(&self.paths.ips, &mut |s| {
            if let Ok(ip) = s.trim().parse() {
                hits.extend(self.set.match_ip(ip));
            }
        });
        strs(&self.paths.names, &mut |s| {
            hits.extend(self.set.match_domain(s))
        });
        strs(&self.paths.results, &mut |s| {
            for part in s.split(';') {
                if let Ok(ip) = part.trim().parse() {
                    hits.extend(self.set.match_ip(ip));
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysmon_fields_are_matched_and_an_import_hash_is_not_a_file_hash() {
        let md5 = "d41d8cd98f00b204e9800998ecf8427e";
        let mut set = IntelSet::new();
        let r = set.add(
            "feed.txt",
            &format!("{md5}\n203.0.113.9\nevil.example\n198.51.100.4\n"),
            vigil_intel::Format::List,
        );
        assert!(r.problems.is_empty());
        let intel = HuntIntel::new(set, &["feed.txt".to_string()], Level::High);
        assert_eq!(intel.rules().len(), 5);
        let record = serde_json::json!({"Event": {"System": {"EventID": 1}, "EventData": {
            "Hashes": format!("SHA1=00,MD5={},IMPHASH={md5}", md5.to_uppercase()),
            "DestinationIp": "203.0.113.9",
            "QueryName": "www.evil.example",
            "QueryResults": "type:  5 cdn.example;::ffff:198.51.100.4;"
        }}});
        let mut hits = Vec::new();
        intel.windows_hits(&record, &mut hits);
        let got: Vec<(&str, &str)> = hits
            .iter()
            .map(|h| (h.kind.name(), h.indicator.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("md5", md5),
                ("ip", "203.0.113.9"),
                ("domain", "evil.example"),
                ("ip", "198.51.100.4")
            ]
        );
        let rule = &intel.rules()[intel.rule_of(&hits[0]).expect("rule")];
        assert_eq!(rule.title, "Known-bad MD5 (feed.txt)");
        // A flat record (fields at the top level) is read the same way.
        let flat = serde_json::json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 3, "SourceIp": "203.0.113.9"});
        hits.clear();
        intel.windows_hits(&flat, &mut hits);
        assert_eq!(hits.len(), 1);
    }
}
