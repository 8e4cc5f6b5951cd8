//! What a hunt finds, and how a finding becomes an OCSF Detection Finding.

use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, LazyLock};
use vigil_event::model::{Evidences, RelatedEvent};
use vigil_event::OcsfEvent;
use vigil_event::{Event, FieldPath};
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
fn source(path: &Path, record: u64) -> String {
    format!("{}#{}", path.display(), record)
}

/// The paths [`windows_system`] reads, parsed once.
struct SystemPaths {
    system: FieldPath,
    nested: [(FieldPath, FieldPath); 3],
    flat: [(FieldPath, FieldPath); 3],
}

static SYSTEM_PATHS: LazyLock<SystemPaths> = LazyLock::new(|| {
    let pair = |p: &str| (FieldPath::new(p), FieldPath::new(&format!("{p}.#text")));
    SystemPaths {
        system: FieldPath::new("Event.System"),
        nested: [
            pair("Event.System.Channel"),
            pair("Event.System.EventID"),
            pair("Event.System.Computer"),
        ],
        flat: [pair("Channel"), pair("EventID"), pair("Computer")],
    }
});

/// A scalar as text: a string as it is, a number as JSON writes it.
fn scalar_text(v: vigil_event::Value<'_>) -> Option<String> {
    match v {
        vigil_event::Value::Str(s) => Some(s.into_owned()),
        vigil_event::Value::Int(i) => Some(i.to_string()),
        vigil_event::Value::Float(f) => serde_json::Number::from_f64(f).map(|n| n.to_string()),
        _ => None,
    }
}

/// The Windows channel, EventID and computer of an event (nested `evtx` JSON or flat),
/// when it has them: each a string, a number, or an object's `#text`.
pub fn windows_system(ev: &dyn Event) -> (Option<String>, Option<String>, Option<String>) {
    let p = &*SYSTEM_PATHS;
    let paths = if ev.field(&p.system).is_some() {
        &p.nested
    } else {
        &p.flat
    };
    let text = |(path, text): &(FieldPath, FieldPath)| match ev.field(path)? {
        vigil_event::Value::Object => ev.field(text).and_then(scalar_text),
        v => scalar_text(v),
    };
    (text(&paths[0]), text(&paths[1]), text(&paths[2]))
}

/// What a finding's OCSF form says of one of its events, besides the event itself.
pub(crate) struct EventMeta<'a> {
    /// The input file.
    pub(crate) path: &'a Path,
    /// The record in it (see [`EventRef::record`]).
    pub(crate) record: u64,
    /// The Windows channel, if the event has one.
    pub(crate) channel: Option<String>,
    /// The Windows EventID, if the event has one.
    pub(crate) event_code: Option<String>,
}

impl<'a> EventMeta<'a> {
    /// The event's part of a finding: where it is from, its channel and EventID.
    pub(crate) fn of(path: &'a Path, record: u64, event: &dyn Event) -> Self {
        let (channel, event_code, _) = windows_system(event);
        EventMeta {
            path,
            record,
            channel,
            event_code,
        }
    }
}

/// The parts of a finding besides its events: the rule and when.
struct Parts<'a, 'r> {
    rule: &'r RuleMeta,
    time_ms: Option<i64>,
    correlation: Option<&'a Correlated>,
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
        let metas = self.metas();
        let data: Vec<Value> = self.events.iter().map(|e| (*e.event).clone()).collect();
        build_ocsf(&self.parts(), &metas, now_ms, Some(&data))
    }

    /// The finding's `finding_info.uid`, the same every time the same input is hunted: the
    /// rule and the event (`file#record`), or for a correlation the rule, the window's last
    /// time and the group's values.
    pub fn uid(&self) -> String {
        let first = self.events.first().map(|e| (&*e.path, e.record));
        uid(self.rule, self.correlation.as_ref(), first)
    }

    /// Writes [`Detection::to_ocsf`] as one line of JSON, without copying the events: the
    /// finding is serialized with `null` in each evidence's `data`, and each `null` is
    /// replaced by its event as it is written.
    pub fn write_ocsf(
        &self,
        now_ms: i64,
        buf: &mut Vec<u8>,
        out: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        let metas = self.metas();
        write_with_events(&self.parts(), &metas, now_ms, buf, out, &mut |i, out| {
            serde_json::to_writer(out, &*self.events[i].event).map_err(std::io::Error::from)
        })
    }

    fn parts(&self) -> Parts<'_, '_> {
        Parts {
            rule: self.rule,
            time_ms: self.time_ms,
            correlation: self.correlation.as_ref(),
        }
    }

    fn metas(&self) -> Vec<EventMeta<'_>> {
        self.events
            .iter()
            .map(|e| EventMeta::of(&e.path, e.record, &*e.event))
            .collect()
    }
}

/// Writes the OCSF line of a finding on one event given as JSON text (the record as it was
/// read, or as the EVTX parser rendered it), without parsing it again: the line holds the
/// text as it is, but for line ends (whitespace between its tokens), written as spaces.
/// (The matching threads' finding templates are made from this.)
pub(crate) fn write_ocsf_text(
    rule: &RuleMeta,
    time_ms: Option<i64>,
    meta: &EventMeta<'_>,
    text: &[u8],
    now_ms: i64,
    buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    let parts = Parts {
        rule,
        time_ms,
        correlation: None,
    };
    let mut line = std::mem::take(out);
    let r = write_with_events(
        &parts,
        std::slice::from_ref(meta),
        now_ms,
        buf,
        &mut line,
        &mut |_, o| {
            let mut event = Vec::with_capacity(text.len());
            write_event(&mut event, text);
            o.write_all(&event)
        },
    );
    *out = line;
    r
}

/// Writes an event's JSON text on the finding's one line: line ends (whitespace between
/// its tokens: JSON strings cannot hold them) become spaces.
pub(crate) fn write_event(out: &mut Vec<u8>, text: &[u8]) {
    let mut rest = text;
    while let Some(i) = memchr::memchr2(b'\n', b'\r', rest) {
        out.extend_from_slice(&rest[..i]);
        out.push(b' ');
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}

fn uid(rule: &RuleMeta, correlation: Option<&Correlated>, first: Option<(&Path, u64)>) -> String {
    let name = rule.id.as_deref().unwrap_or(&rule.title);
    match correlation {
        None => match first {
            Some((path, record)) => format!("{name}@{}", source(path, record)),
            None => name.to_string(),
        },
        Some(c) => {
            let mut s = format!("{name}@{}", c.last_ms);
            for (_, v) in &c.group {
                s.push('/');
                s.push_str(v.as_deref().unwrap_or(""));
            }
            s
        }
    }
}

/// Writes a finding as one line, its events by `event` (the `i`th into the writer): the
/// finding is serialized with `null` in each evidence's `data`, and each `null` is
/// replaced by its event. (`"data":null}` cannot occur inside a JSON string, where its
/// quotes would be escaped, so only the evidences match.)
fn write_with_events(
    parts: &Parts<'_, '_>,
    metas: &[EventMeta<'_>],
    now_ms: i64,
    buf: &mut Vec<u8>,
    out: &mut dyn std::io::Write,
    event: &mut dyn FnMut(usize, &mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    const HOLE: &[u8] = b"\"data\":null}";
    buf.clear();
    serde_json::to_writer(&mut *buf, &build_ocsf(parts, metas, now_ms, None))?;
    let mut rest = &buf[..];
    let mut i = 0;
    while let Some(at) = memchr::memmem::find(rest, HOLE) {
        let head = at + HOLE.len() - "null}".len();
        out.write_all(&rest[..head])?;
        if i < metas.len() {
            event(i, out)?;
        } else {
            out.write_all(b"null")?;
        }
        i += 1;
        out.write_all(b"}")?;
        rest = &rest[at + HOLE.len()..];
    }
    out.write_all(rest)?;
    out.write_all(b"\n")
}

/// The finding as an OCSF event; each evidence's `data` from `data`, or `null`.
fn build_ocsf(
    parts: &Parts<'_, '_>,
    metas: &[EventMeta<'_>],
    now_ms: i64,
    data: Option<&[Value]>,
) -> OcsfEvent {
    let rule = parts.rule;
    let time = parts.time_ms.unwrap_or(now_ms);
    let mut sources: Vec<String> = Vec::new();
    for m in metas {
        let p = m.path.display().to_string();
        if !sources.contains(&p) {
            sources.push(p);
        }
    }
    let first = metas.first().map(|m| (m.path, m.record));
    let uid = uid(rule, parts.correlation, first);
    let mut f = vigil_detect::finding::detection_finding(rule, uid, time, now_ms, "hunt");
    let info = &mut f.finding_info;
    info.first_seen_time = parts.correlation.map(|c| c.first_ms).or(parts.time_ms);
    info.last_seen_time = parts.correlation.map(|c| c.last_ms).or(parts.time_ms);
    info.data_sources = sources;
    info.related_events = metas
        .iter()
        .map(|m| RelatedEvent {
            uid: source(m.path, m.record),
            ..RelatedEvent::default()
        })
        .collect();
    info.related_events_count = parts
        .correlation
        .map(|c| i32::try_from(c.event_count).unwrap_or(i32::MAX));
    if let Some(first) = metas.first() {
        f.metadata.source = Some(source(first.path, first.record));
        f.metadata.log_name = first
            .channel
            .clone()
            .or_else(|| Some(first.path.display().to_string()));
        f.metadata.event_code = first.event_code.clone();
    }
    let mut evidences = Vec::with_capacity(metas.len() + 1);
    if let Some(c) = parts.correlation {
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
    for (i, m) in metas.iter().enumerate() {
        evidences.push(Evidences {
            name: Some(m.path.display().to_string()),
            uid: Some(m.record.to_string()),
            data: Some(data.and_then(|d| d.get(i)).cloned().unwrap_or(Value::Null)),
            ..Evidences::default()
        });
    }
    f.evidences = evidences;
    OcsfEvent::from(f)
}
