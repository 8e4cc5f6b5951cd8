//! What a hunt finds, and how a finding becomes an OCSF Detection Finding.

use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use vigil_event::model::{Evidences, RelatedEvent};
use vigil_event::OcsfEvent;
use vigil_sigma::RuleMeta;

/// One event a finding was made from.
#[derive(Debug, Clone)]
pub struct EventRef {
    /// The input file.
    pub path: Arc<Path>,
    /// The EVTX `EventRecordID`, the 1-based line of a JSON lines file, or the 1-based
    /// index of the value in a `.json` file.
    pub record: u64,
    /// Event time (ms since the epoch), when the event has one.
    pub time_ms: Option<i64>,
    /// The event itself, all its fields.
    pub event: Arc<Value>,
}

/// The correlation part of a correlation finding.
#[derive(Debug, Clone)]
pub struct Correlated {
    /// The group-by fields and this group's values.
    pub group: Vec<(String, Option<String>)>,
    /// The measured value (count, distinct count, sum, ...).
    pub value: f64,
    /// Time of the first event of the window (ms since the epoch).
    pub first_ms: i64,
    /// Time of the last event of the window.
    pub last_ms: i64,
    /// How many events made it (`events` may hold fewer: see [`crate::HuntConfig`]).
    pub event_count: usize,
}

/// A rule that fired: on one event, or (a correlation rule) on several.
#[derive(Debug, Clone)]
pub struct Detection<'r> {
    /// The rule.
    pub rule: &'r RuleMeta,
    /// The rule's index in [`vigil_sigma::Engine::rules`].
    pub rule_index: usize,
    /// Event time (the last event's, for a correlation).
    pub time_ms: Option<i64>,
    /// The event(s): one for a detection rule, the window's events for a correlation.
    pub events: Vec<EventRef>,
    /// For correlation rules.
    pub correlation: Option<Correlated>,
    /// The finding already rendered for the sink by a matching thread (see
    /// [`crate::HuntConfig::render`]): its OCSF JSON line, or its timeline row.
    pub rendered: Option<Vec<u8>>,
}

/// Where an event came from, as `file#record`.
pub fn source_of(e: &EventRef) -> String {
    format!("{}#{}", e.path.display(), e.record)
}

fn string_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// The Windows channel, EventID and computer of an event (nested `evtx` JSON or flat),
/// when it has them.
pub fn windows_system(v: &Value) -> (Option<String>, Option<String>, Option<String>) {
    let system = string_at(v, &["Event", "System"]).unwrap_or(v);
    let text = |x: Option<&Value>| -> Option<String> {
        match x? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Object(o) => match o.get("#text")? {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            },
            _ => None,
        }
    };
    (
        text(system.get("Channel")),
        text(system.get("EventID")),
        text(system.get("Computer")),
    )
}

impl Detection<'_> {
    /// The finding as an OCSF Detection Finding (class 2004), sealed.
    ///
    /// `finding_info.analytic.uid` is the Sigma rule id, `finding_info.title` its title,
    /// `severity_id` its level, `finding_info.attacks[]` its ATT&CK tags; `time` is the
    /// event time; `metadata.source` names the file and record; each event is an
    /// `evidences[]` entry whose `data` is the whole event. A correlation finding adds an
    /// evidence named `group_by` holding its group-by values, and one per event.
    pub fn to_ocsf(&self, now_ms: i64) -> OcsfEvent {
        self.build_ocsf(now_ms, true)
    }

    /// The finding's `finding_info.uid`, the same every time the same input is hunted: the
    /// rule and the event (`file#record`), or for a correlation the rule, the window's last
    /// time and the group's values.
    pub fn uid(&self) -> String {
        let rule = self.rule.id.as_deref().unwrap_or(&self.rule.title);
        match &self.correlation {
            None => match self.events.first() {
                Some(e) => format!("{rule}@{}", source_of(e)),
                None => rule.to_string(),
            },
            Some(c) => {
                let mut s = format!("{rule}@{}", c.last_ms);
                for (_, v) in &c.group {
                    s.push('/');
                    s.push_str(v.as_deref().unwrap_or(""));
                }
                s
            }
        }
    }

    /// Writes [`Detection::to_ocsf`] as one line of JSON, without copying the events: the
    /// finding is serialized with `null` in each evidence's `data`, and each `null` is
    /// replaced by its event as it is written. (`"data":null}` cannot occur inside a JSON
    /// string, where its quotes would be escaped, so only the evidences match.)
    pub fn write_ocsf(
        &self,
        now_ms: i64,
        buf: &mut Vec<u8>,
        out: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        const HOLE: &[u8] = b"\"data\":null}";
        buf.clear();
        serde_json::to_writer(&mut *buf, &self.build_ocsf(now_ms, false))?;
        let mut rest = &buf[..];
        let mut events = self.events.iter();
        while let Some(at) = rest.windows(HOLE.len()).position(|w| w == HOLE) {
            let head = at + HOLE.len() - "null}".len();
            out.write_all(&rest[..head])?;
            match events.next() {
                Some(e) => serde_json::to_writer(&mut *out, &*e.event)?,
                None => out.write_all(b"null")?,
            }
            out.write_all(b"}")?;
            rest = &rest[at + HOLE.len()..];
        }
        out.write_all(rest)?;
        out.write_all(b"\n")
    }

    fn build_ocsf(&self, now_ms: i64, with_events: bool) -> OcsfEvent {
        let rule = self.rule;
        let time = self.time_ms.unwrap_or(now_ms);
        let mut sources: Vec<String> = Vec::new();
        for e in &self.events {
            let p = e.path.display().to_string();
            if !sources.contains(&p) {
                sources.push(p);
            }
        }
        let mut f =
            vigil_detect::finding::detection_finding(rule, self.uid(), time, now_ms, "hunt");
        let info = &mut f.finding_info;
        info.first_seen_time = self
            .correlation
            .as_ref()
            .map(|c| c.first_ms)
            .or(self.time_ms);
        info.last_seen_time = self
            .correlation
            .as_ref()
            .map(|c| c.last_ms)
            .or(self.time_ms);
        info.data_sources = sources;
        info.related_events = self
            .events
            .iter()
            .map(|e| RelatedEvent {
                uid: source_of(e),
                ..RelatedEvent::default()
            })
            .collect();
        info.related_events_count = self
            .correlation
            .as_ref()
            .map(|c| i32::try_from(c.event_count).unwrap_or(i32::MAX));
        if let Some(first) = self.events.first() {
            f.metadata.source = Some(source_of(first));
            let (channel, eid, _) = windows_system(&first.event);
            f.metadata.log_name = channel.or_else(|| Some(first.path.display().to_string()));
            f.metadata.event_code = eid;
        }
        let mut evidences = Vec::with_capacity(self.events.len() + 1);
        if let Some(c) = &self.correlation {
            let group: serde_json::Map<String, Value> = c
                .group
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().map_or(Value::Null, Value::String)))
                .collect();
            evidences.push(Evidences {
                name: Some("group_by".into()),
                data: Some(Value::Object(group)),
                ..Evidences::default()
            });
        }
        for e in &self.events {
            evidences.push(Evidences {
                name: Some(e.path.display().to_string()),
                uid: Some(e.record.to_string()),
                data: Some(if with_events {
                    (*e.event).clone()
                } else {
                    Value::Null
                }),
                ..Evidences::default()
            });
        }
        f.evidences = evidences;
        OcsfEvent::from(f)
    }
}
