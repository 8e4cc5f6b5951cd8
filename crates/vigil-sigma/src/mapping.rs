//! Logsource routing and field mapping as data: the Windows event log mapping
//! (`data/windows.yml`) and, for Linux, `vigil_event`'s Sigma-to-OCSF taxonomy.

use crate::error::ConfigError;
use crate::yaml::{self, Kind, Node};
use std::collections::HashMap;
use vigil_event::FieldPath;

/// The embedded Windows mapping.
pub const WINDOWS_MAP: &str = include_str!("../data/windows.yml");

/// One kind of Windows record that belongs to a logsource.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WinSource {
    /// Lowercased channel names.
    pub channels: Vec<String>,
    /// EventIDs; empty means any.
    pub event_ids: Vec<i64>,
    /// Lowercased provider name, when the source also requires one.
    pub provider: Option<String>,
    /// Sigma field -> the record's names for it, tried in order.
    pub rename: Vec<(String, Vec<String>)>,
}

/// Where a Windows record keeps what it is routed by: in nested records (`[0]`, those
/// with a `system` element) and in flat ones (`[1]`).
#[derive(Debug, Clone)]
pub(crate) struct RecordKeys {
    /// The `system` element, present in nested records only.
    pub system: FieldPath,
    pub channel: [FieldPath; 2],
    /// The paths of the `EventID` field (a record's EventID is the one its rules read).
    pub event_id: [Box<[FieldPath]>; 2],
    pub provider: [FieldPath; 2],
}

/// The Windows mapping.
#[derive(Debug, Clone)]
pub(crate) struct WindowsMap {
    pub system: String,
    pub event_data: Vec<String>,
    pub system_fields: Vec<(String, Vec<String>)>,
    /// System fields read under `system` alone in nested records (not first in the
    /// record's data).
    pub system_only: Vec<String>,
    pub time_nested: Vec<String>,
    pub time_flat: Vec<String>,
    pub services: HashMap<String, Vec<WinSource>>,
    pub categories: HashMap<String, Vec<WinSource>>,
}

fn err(line: usize, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        source_name: "windows.yml".into(),
        line,
        reason: reason.into(),
    }
}

fn strings(n: &Node) -> Result<Vec<String>, ConfigError> {
    match &n.kind {
        Kind::Seq(items) => items
            .iter()
            .map(|i| {
                i.as_scalar_str()
                    .ok_or_else(|| err(i.line, "expected a scalar"))
            })
            .collect(),
        _ => Ok(vec![n
            .as_scalar_str()
            .ok_or_else(|| err(n.line, "expected a scalar or a list"))?]),
    }
}

fn source(n: &Node) -> Result<WinSource, ConfigError> {
    if !matches!(n.kind, Kind::Map(_)) {
        return Err(err(n.line, "a source must be a mapping with `channel`"));
    }
    let channels: Vec<String> = strings(
        n.get("channel")
            .ok_or_else(|| err(n.line, "source without `channel`"))?,
    )?
    .into_iter()
    .map(|c| c.to_lowercase())
    .collect();
    let event_ids = match n.get("event_id") {
        None => Vec::new(),
        Some(e) => strings(e)?
            .iter()
            .map(|s| {
                s.parse::<i64>()
                    .map_err(|_| err(e.line, format!("event_id `{s}` is not a number")))
            })
            .collect::<Result<_, _>>()?,
    };
    let provider = n
        .get("provider")
        .and_then(Node::as_scalar_str)
        .map(|p| p.to_lowercase());
    let mut rename = Vec::new();
    if let Some(r) = n.get("rename") {
        let Kind::Map(entries) = &r.kind else {
            return Err(err(r.line, "`rename` must be a mapping"));
        };
        for (k, v) in entries {
            let Some(k) = k.as_scalar_str() else {
                return Err(err(k.line, "`rename` keys must be scalars"));
            };
            rename.push((k, strings(v)?));
        }
    }
    Ok(WinSource {
        channels,
        event_ids,
        provider,
        rename,
    })
}

fn sources_map(n: Option<&Node>) -> Result<HashMap<String, Vec<WinSource>>, ConfigError> {
    let mut out = HashMap::new();
    let Some(n) = n else { return Ok(out) };
    let Kind::Map(entries) = &n.kind else {
        return Err(err(n.line, "expected a mapping of names to sources"));
    };
    for (k, v) in entries {
        let name = k
            .as_scalar_str()
            .ok_or_else(|| err(k.line, "name must be a scalar"))?
            .to_ascii_lowercase();
        let list = match &v.kind {
            Kind::Seq(items) => items.iter().map(source).collect::<Result<_, _>>()?,
            _ => vec![source(v)?],
        };
        if out.insert(name.clone(), list).is_some() {
            return Err(err(k.line, format!("`{name}` defined twice")));
        }
    }
    Ok(out)
}

impl WindowsMap {
    /// Parses a mapping in the `windows.yml` format.
    pub(crate) fn parse(text: &str) -> Result<Self, ConfigError> {
        let docs = yaml::parse_documents(text).map_err(|e| err(e.line, e.reason))?;
        let Some(doc) = docs.first() else {
            return Err(err(1, "empty mapping"));
        };
        let system = doc
            .get("system")
            .and_then(Node::as_scalar_str)
            .ok_or_else(|| err(doc.line, "missing `system`"))?;
        let event_data = strings(
            doc.get("event_data")
                .ok_or_else(|| err(doc.line, "missing `event_data`"))?,
        )?;
        let mut system_fields = Vec::new();
        if let Some(sf) = doc.get("system_fields") {
            let Kind::Map(entries) = &sf.kind else {
                return Err(err(sf.line, "`system_fields` must be a mapping"));
            };
            for (k, v) in entries {
                let name = k
                    .as_scalar_str()
                    .ok_or_else(|| err(k.line, "field name must be a scalar"))?;
                system_fields.push((name, strings(v)?));
            }
        }
        let list = |key: &str| -> Result<Vec<String>, ConfigError> {
            doc.get(key)
                .map(strings)
                .transpose()
                .map(Option::unwrap_or_default)
        };
        Ok(WindowsMap {
            system,
            event_data,
            system_fields,
            system_only: list("system_only")?,
            time_nested: list("time_nested")?,
            time_flat: list("time_flat")?,
            services: sources_map(doc.get("services"))?,
            categories: sources_map(doc.get("categories"))?,
        })
    }

    /// The record paths of a Sigma field in a source, nested or flat, tried in order.
    pub(crate) fn paths(&self, sigma: &str, src: Option<&WinSource>, nested: bool) -> Vec<String> {
        let names: Vec<&str> = src
            .and_then(|s| s.rename.iter().find(|(k, _)| k == sigma))
            .map_or(vec![sigma], |(_, v)| v.iter().map(String::as_str).collect());
        names
            .into_iter()
            .flat_map(|n| self.paths_of(n, nested))
            .collect()
    }

    fn paths_of(&self, name: &str, nested: bool) -> Vec<String> {
        if let Some((_, sys)) = self.system_fields.iter().find(|(k, _)| k == name) {
            // The record's own data first (an event about another channel names it in
            // its data), then the system element.
            let system = sys.iter().map(|p| format!("{}.{p}", self.system));
            return if nested && self.system_only.iter().any(|f| f == name) {
                system.collect()
            } else if nested {
                self.event_data
                    .iter()
                    .map(|prefix| format!("{prefix}.{name}"))
                    .chain(system)
                    .collect()
            } else {
                let mut v = vec![name.to_string()];
                v.extend(sys.iter().filter(|p| *p != name).cloned());
                v
            };
        }
        if nested {
            self.event_data
                .iter()
                .map(|prefix| format!("{prefix}.{name}"))
                .collect()
        } else {
            vec![name.to_string()]
        }
    }

    /// Where a record keeps what it is routed by.
    pub(crate) fn record_keys(&self) -> RecordKeys {
        let system = |p: &str| FieldPath::new(&format!("{}.{p}", self.system));
        RecordKeys {
            system: FieldPath::new(&self.system),
            channel: [system("Channel"), FieldPath::new("Channel")],
            event_id: [true, false].map(|nested| {
                self.paths("EventID", None, nested)
                    .iter()
                    .map(|p| FieldPath::new(p))
                    .collect()
            }),
            provider: [
                system("Provider.#attributes.Name"),
                FieldPath::new("Provider_Name"),
            ],
        }
    }

    /// Where the event time is, nested or flat.
    pub(crate) fn time_paths(&self, nested: bool) -> Vec<String> {
        if nested {
            self.time_nested
                .iter()
                .map(|p| format!("{}.{p}", self.system))
                .collect()
        } else {
            self.time_flat.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_windows_map() {
        let m = WindowsMap::parse(WINDOWS_MAP).expect("embedded map parses");
        let pc = &m.categories["process_creation"];
        assert_eq!(pc.len(), 2);
        assert_eq!(pc[1].event_ids, vec![4688]);
        assert_eq!(
            m.paths("Image", Some(&pc[1]), true),
            vec![
                "Event.EventData.NewProcessName",
                "Event.UserData.NewProcessName"
            ]
        );
        assert_eq!(
            m.paths("Image", Some(&pc[1]), false),
            vec!["NewProcessName"]
        );
        assert_eq!(
            m.paths("EventID", None, true),
            vec!["Event.System.EventID.#text", "Event.System.EventID"]
        );
        assert_eq!(
            m.paths("Channel", None, true),
            vec![
                "Event.EventData.Channel",
                "Event.UserData.Channel",
                "Event.System.Channel"
            ]
        );
        assert_eq!(
            m.paths("EventID", None, false),
            vec!["EventID", "EventID.#text"]
        );
        assert_eq!(m.services["security"][0].channels, vec!["security"]);
    }

    #[test]
    fn bad_map_names_line() {
        let e = WindowsMap::parse("system: S\nevent_data: E\ncategories:\n  x: {event_id: [1]}\n")
            .unwrap_err();
        assert_eq!(e.line, 4);
    }
}
