//! The per-record path: the records of a unit of work parsed, routed by what they are,
//! matched, and what fired made ready for the sink, on the thread that matches them (a
//! matching thread, or the calling thread when the hunt runs on one).
//!
//! A JSON record (a line, a value of a `.json` file, an EVTX record as the `evtx` crate
//! renders it) is parsed once into a borrowed table ([`JsonEvent`]) for routing and
//! matching; most records match nothing and are done with then. When a rule fires, the
//! finding is written from the record's own text, not from a parsed copy of it. Vigil's
//! OCSF events are matched through the same table, their keyword searches leaving out
//! their lineage context (`OcsfView`); only sinks that want the event as a
//! `serde_json::Value`, and indicators on an OCSF event, get one. Records already parsed
//! (the store's rows: [`Rows`]) are matched as they are, their text written for findings.

use crate::config::{HuntConfig, Render};
use crate::correlate::CorrInput;
use crate::detection::{Detection, EventMeta, EventRef};
use crate::discover::{InputFile, Rows};
use crate::error::{InputError, Location};
use crate::input::{too_long, Pool, ValueAt, Work, EVTX_CHUNK};
use crate::intel::HuntIntel;
use crate::render::Renderer;
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, LazyLock};
use vigil_detect::finding::level_rank;
use vigil_event::{time, Event, FieldPath};
use vigil_sigma::{
    CorrelationState, Declared, Engine, EventKind, Finding, JsonBuffers, JsonEvent, Limits,
    LogSource, Scratch,
};

/// What every matching thread shares: the engine and how to use it.
pub(crate) struct Matcher<'e> {
    pub(crate) engine: &'e Engine,
    files: &'e [InputFile],
    declared: Option<Declared>,
    undeclared: Declared,
    time_path: Option<FieldPath>,
    min_rank: usize,
    render: Render,
    now_ms: i64,
    max_record: usize,
    /// Indicators matched beside the rules; their rules' indexes follow the engine's.
    intel: Option<&'e HuntIntel>,
}

/// How a JSON record is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An EVTX record, or JSON in its shape (`Event.System`, or flat `Channel` and
    /// `EventID`).
    Windows,
    /// One of Vigil's OCSF events (an integer `class_uid` and an `activity_id`).
    Ocsf,
    /// Anything else: the declared logsource.
    Other,
}

/// The field paths routing and event times read, parsed once.
struct Paths {
    event_system: FieldPath,
    class_uid: FieldPath,
    activity_id: FieldPath,
    channel: FieldPath,
    event_id: FieldPath,
    /// OCSF's `time`.
    time: FieldPath,
    /// An EVTX record's `TimeCreated`, and its `SystemTime` attribute.
    windows_time: (FieldPath, FieldPath),
    /// [`time::DEFAULT_TIME_FIELDS`], each with its `SystemTime` attribute.
    default_times: Vec<(FieldPath, FieldPath)>,
}

static PATHS: LazyLock<Paths> = LazyLock::new(|| {
    let with_attr = |p: &str| {
        (
            FieldPath::new(p),
            FieldPath::new(&format!("{p}.#attributes.SystemTime")),
        )
    };
    Paths {
        event_system: FieldPath::new("Event.System"),
        class_uid: FieldPath::new("class_uid"),
        activity_id: FieldPath::new("activity_id"),
        channel: FieldPath::new("Channel"),
        event_id: FieldPath::new("EventID"),
        time: FieldPath::new("time"),
        windows_time: with_attr("Event.System.TimeCreated"),
        default_times: time::DEFAULT_TIME_FIELDS
            .iter()
            .map(|f| with_attr(f))
            .collect(),
    }
});

fn kind_of(ev: &dyn Event) -> Kind {
    let p = &*PATHS;
    let ocsf = || {
        matches!(ev.field(&p.class_uid), Some(vigil_event::Value::Int(_)))
            && ev.field(&p.activity_id).is_some()
    };
    // In order: `Event.System` makes a Windows record, then an integer `class_uid` with an
    // `activity_id` an OCSF event, then `Channel` with `EventID` a Windows record. Flat
    // Windows records, the most common, are told with three lookups.
    if ev.field(&p.channel).is_some() && ev.field(&p.event_id).is_some() {
        return if ocsf() && ev.field(&p.event_system).is_none() {
            Kind::Ocsf
        } else {
            Kind::Windows
        };
    }
    if ev.field(&p.event_system).is_some() {
        Kind::Windows
    } else if ocsf() {
        Kind::Ocsf
    } else {
        Kind::Other
    }
}

/// The time of a field: a string or number, or an object's `#attributes.SystemTime` (an
/// EVTX record's `TimeCreated` as the `evtx` crate renders it); `None` if it is absent.
fn time_at(ev: &dyn Event, (path, attr): &(FieldPath, FieldPath)) -> Option<Option<i64>> {
    Some(match ev.field(path)? {
        vigil_event::Value::Object => ev.field(attr).as_ref().and_then(time::value_time),
        v => time::value_time(&v),
    })
}

/// Where a JSON record is, for its findings and errors.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// A line of a JSON lines file.
    Line(u64),
    /// A value of a `.json` file: its index and byte offset.
    Value(u64, u64),
}

impl Place {
    /// The record number findings name: the line, or the value's index.
    fn record(self) -> u64 {
        match self {
            Place::Line(n) | Place::Value(n, _) => n,
        }
    }

    /// An error about the record; `at` is the byte of its text the error is at.
    fn error(self, path: &Path, at: Option<usize>, what: &str) -> InputError {
        let (location, reason) = match self {
            Place::Line(n) => (
                Location::Line(n),
                match at {
                    Some(at) => format!("invalid JSON (column {}): {what}", at + 1),
                    None => what.to_string(),
                },
            ),
            Place::Value(i, offset) => (
                Location::Offset(offset + at.unwrap_or(0) as u64),
                match at {
                    Some(_) => format!("value {i}: invalid JSON: {what}"),
                    None => format!("value {i}: {what}"),
                },
            ),
        };
        InputError {
            path: path.to_path_buf(),
            location,
            reason,
            fatal: false,
        }
    }
}

/// One of Vigil's OCSF events as the JSON parser read it: its fields, and a keyword
/// search that leaves out its lineage context (`parent_process`, `ancestry`), as
/// [`vigil_event::OcsfJson`] does over a `serde_json::Value`.
struct OcsfView<'a, 't>(&'a JsonEvent<'t>);

impl Event for OcsfView<'_, '_> {
    fn field(&self, path: &FieldPath) -> Option<vigil_event::Value<'_>> {
        self.0.field(path)
    }

    fn for_each_str<'b>(&'b self, f: &mut dyn FnMut(&'b str)) {
        self.0
            .for_each_str_except(&vigil_event::access::is_lineage, f)
    }
}

/// A block of records (whole lines, or values), checked once.
struct Block<'a> {
    /// The block as text, or its bytes if it is not all UTF-8.
    text: Result<&'a str, &'a [u8]>,
}

impl<'a> Block<'a> {
    fn of(data: &'a [u8]) -> Self {
        Block {
            text: std::str::from_utf8(data).map_err(|_| data),
        }
    }

    fn bytes(&self, range: std::ops::Range<usize>) -> &'a [u8] {
        match self.text {
            Ok(t) => &t.as_bytes()[range],
            Err(b) => &b[range],
        }
    }
}

/// What a worker made of its units since it was last asked.
#[derive(Default)]
pub(crate) struct Batch<'e> {
    /// Records matched, by file: (file, records) for each run of units of one file.
    pub(crate) records: Vec<(u32, u64)>,
    /// Bytes of input covered.
    pub(crate) bytes: u64,
    /// Findings to report.
    pub(crate) detections: Vec<Detection<'e>>,
    /// Base findings of correlation rules.
    pub(crate) corr: Vec<CorrInput>,
    /// Problems with the input, by file.
    pub(crate) errors: Vec<(u32, InputError)>,
    /// JSON records with no logsource of their own while none was declared.
    pub(crate) unrouted: u64,
}

/// One matching thread's state, reused from record to record.
pub(crate) struct Worker<'e> {
    scratch: Scratch,
    findings: Vec<Finding<'e>>,
    corr: CorrelationState,
    json: JsonBuffers,
    renderer: Renderer,
    settings: Arc<evtx::ParserSettings>,
    /// The file of the unit being matched.
    file: u32,
    /// What the units matched so far made.
    pub(crate) out: Batch<'e>,
}

impl<'e> Matcher<'e> {
    pub(crate) fn new(engine: &'e Engine, files: &'e [InputFile], config: &'e HuntConfig) -> Self {
        Matcher {
            engine,
            files,
            declared: config.logsource.as_ref().map(|l| engine.declare(l)),
            undeclared: engine.declare(&LogSource::default()),
            time_path: config.time_field.as_deref().map(FieldPath::new),
            min_rank: level_rank(config.min_level),
            render: config.render,
            now_ms: config.now_ms,
            max_record: config.max_record.max(1),
            intel: config.intel.as_deref(),
        }
    }

    /// Adds to `findings` one finding per indicator rule an event names (a Windows
    /// record by its fields, an OCSF event as the agent matches it).
    fn indicators(
        &self,
        ev: &dyn Event,
        value: Option<&Value>,
        kind: Kind,
        findings: &mut Vec<Finding<'e>>,
    ) {
        let Some(intel) = self.intel else { return };
        let mut hits = Vec::new();
        match (kind, value) {
            (Kind::Windows, _) => intel.windows_hits(ev, &mut hits),
            (Kind::Ocsf, Some(v)) => {
                if let Ok(e) = vigil_event::OcsfEvent::from_json(v.clone()) {
                    intel.set().match_event(&e, &mut hits);
                }
            }
            _ => {}
        }
        let base = self.engine.rules().len();
        for h in &hits {
            let Some(i) = intel.rule_of(h) else { continue };
            if findings.iter().any(|f| f.rule_index == base + i) {
                continue;
            }
            findings.push(Finding {
                rule: &intel.rules()[i],
                rule_index: base + i,
                selections: Vec::new(),
                silent: false,
                time_ms: None,
                fields: Vec::new(),
            });
        }
    }

    /// Whether [`Matcher::indicators`] reads an event of `kind` from a `Value`: an OCSF
    /// event, matched through the model, when indicators are loaded.
    fn indicators_want_value(&self, kind: Kind) -> bool {
        self.intel.is_some() && kind == Kind::Ocsf
    }

    /// A worker's fresh state.
    pub(crate) fn worker(&self) -> Worker<'e> {
        Worker {
            scratch: self.engine.scratch(),
            findings: Vec::new(),
            corr: CorrelationState::new(self.engine, Limits::default()),
            json: JsonBuffers::default(),
            renderer: Renderer::default(),
            settings: Arc::new(evtx::ParserSettings::new().num_threads(1)),
            file: 0,
            out: Batch::default(),
        }
    }

    fn source(&self, kind: Kind, unrouted: &mut u64) -> EventKind<'_> {
        match kind {
            Kind::Windows => EventKind::Windows,
            Kind::Ocsf => EventKind::Ocsf,
            Kind::Other => match &self.declared {
                Some(d) => EventKind::Declared(d),
                None => {
                    *unrouted += 1;
                    EventKind::Declared(&self.undeclared)
                }
            },
        }
    }

    /// The event time of a JSON record: the declared time field, else by its kind (an
    /// EVTX record's `TimeCreated`, OCSF's `time`), else the first present of
    /// [`time::DEFAULT_TIME_FIELDS`].
    fn record_time(&self, ev: &dyn Event, kind: Kind) -> Option<i64> {
        let p = &*PATHS;
        if let Some(path) = &self.time_path {
            return ev.field(path).as_ref().and_then(time::value_time);
        }
        let default = || {
            p.default_times
                .iter()
                .find_map(|t| time_at(ev, t))
                .flatten()
        };
        match kind {
            Kind::Ocsf => ev.field(&p.time).as_ref().and_then(time::value_time),
            Kind::Windows => time_at(ev, &p.windows_time).flatten().or_else(default),
            Kind::Other => default(),
        }
    }
}

impl<'e> Worker<'e> {
    /// Matches a unit of work; its buffers go back to `pool`. A panic while matching (a
    /// bug in Vigil, or in the EVTX parser on hostile input) is reported against this part
    /// of the input, and the worker goes on.
    pub(crate) fn unit(&mut self, m: &Matcher<'e>, unit: Work, pool: &Pool) {
        let file = unit.file();
        let location = unit.location();
        self.file = file;
        self.out.bytes += unit.bytes();
        let path = &m.files[file as usize].path;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match unit {
            Work::Evtx {
                number,
                offset,
                data,
                ..
            } => {
                if let Some(buf) = self.evtx_chunk(m, path, number, offset, data) {
                    pool.put(buf);
                }
            }
            Work::Lines {
                first_line,
                offset,
                data,
                ..
            } => {
                self.lines(m, path, first_line, offset, &data);
                pool.put(data);
            }
            Work::Values { data, values, .. } => {
                self.values(m, path, &data, &values);
                pool.put(data);
            }
            Work::Rows { first, rows, .. } => self.rows(m, path, first, &*rows),
        }));
        if let Err(p) = outcome {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            self.scratch = m.engine.scratch();
            self.error(InputError {
                path: path.to_path_buf(),
                location,
                reason: format!("internal error while hunting this part (please report): {what}"),
                fatal: false,
            });
        }
    }

    fn error(&mut self, e: InputError) {
        self.out.errors.push((self.file, e));
    }

    /// Counts a record matched.
    fn counted(&mut self) {
        match self.out.records.last_mut() {
            Some((f, n)) if *f == self.file => *n += 1,
            _ => self.out.records.push((self.file, 1)),
        }
    }

    fn lines(&mut self, m: &Matcher<'e>, path: &Arc<Path>, first: u64, offset: u64, data: &[u8]) {
        // One check of the block for UTF-8 and for OCSF events, not one per line.
        let block = Block::of(data);
        let mut n = first;
        let mut at = 0;
        while at < data.len() {
            let end = memchr::memchr(b'\n', &data[at..]).map_or(data.len(), |i| at + i);
            let mut start = at;
            if offset == 0 && at == 0 && data.starts_with(b"\xEF\xBB\xBF") {
                start += 3;
            }
            let line_end = if end > start && data[end - 1] == b'\r' {
                end - 1
            } else {
                end
            };
            let line = &data[start..line_end];
            let blank = match line.first() {
                Some(b'{') => false,
                _ => line.iter().all(u8::is_ascii_whitespace),
            };
            if line.len() > m.max_record {
                let reason = too_long(&format!("line {n}"), offset + at as u64, m.max_record);
                self.error(Place::Line(n).error(path, None, &reason));
            } else if !blank {
                self.record(m, path, &block, start..line_end, Place::Line(n));
            }
            at = end + 1;
            n += 1;
        }
    }

    fn values(&mut self, m: &Matcher<'e>, path: &Arc<Path>, data: &[u8], values: &[ValueAt]) {
        let block = Block::of(data);
        let mut start = 0;
        for v in values {
            let end = v.end as usize;
            self.record(m, path, &block, start..end, Place::Value(v.index, v.offset));
            start = end;
        }
    }

    /// Matches records already parsed, numbered from `first`. Each is routed as its JSON
    /// text would be; one that is not one of Vigil's OCSF events is matched again as a
    /// whole (its keyword search seeing every string, as for such a JSON record).
    fn rows(&mut self, m: &Matcher<'e>, path: &Arc<Path>, first: u64, rows: &dyn Rows) {
        let mut text = Vec::new();
        for i in 0..rows.len() {
            let place = Place::Line(first + i as u64);
            let mut kind = Kind::Ocsf;
            rows.with_event(i, false, &mut |ev| {
                kind = kind_of(ev);
                if kind == Kind::Ocsf {
                    self.row(m, path, (rows, i), ev, kind, place, &mut text);
                }
            });
            if kind != Kind::Ocsf {
                rows.with_event(i, true, &mut |ev| {
                    self.row(m, path, (rows, i), ev, kind, place, &mut text)
                });
            }
        }
    }

    /// Matches record `i` of `rows`, `ev`, of `kind`; its JSON text is written into `text`
    /// only when a rule fires on it (or indicators need it as a `Value`).
    #[allow(clippy::too_many_arguments)]
    fn row(
        &mut self,
        m: &Matcher<'e>,
        path: &Arc<Path>,
        (rows, i): (&dyn Rows, usize),
        ev: &dyn Event,
        kind: Kind,
        place: Place,
        text: &mut Vec<u8>,
    ) {
        self.counted();
        let source = m.source(kind, &mut self.out.unrouted);
        self.findings.clear();
        m.engine
            .match_event(&mut self.scratch, ev, source, &mut self.findings);
        text.clear();
        let value: Option<Value> = match m.indicators_want_value(kind) {
            true => {
                rows.write_json(i, text);
                serde_json::from_slice(text).ok()
            }
            false => None,
        };
        m.indicators(ev, value.as_ref(), kind, &mut self.findings);
        if self.findings.is_empty() {
            return;
        }
        if text.is_empty() {
            rows.write_json(i, text);
        }
        let Ok(json) = std::str::from_utf8(text) else {
            self.findings.clear();
            return self.error(place.error(path, None, "not UTF-8"));
        };
        let time = m.record_time(ev, kind);
        if let Err(e) = self.keep(m, path, place.record(), json, ev, value.as_ref(), time) {
            self.error(place.error(path, None, &e));
        }
    }

    /// Matches the JSON record at `range` of a block.
    fn record(
        &mut self,
        m: &Matcher<'e>,
        path: &Arc<Path>,
        block: &Block<'_>,
        range: std::ops::Range<usize>,
        place: Place,
    ) {
        let text = match block.text {
            Ok(t) => t.get(range.clone()),
            Err(bytes) => std::str::from_utf8(&bytes[range.clone()]).ok(),
        };
        let Some(text) = text else {
            let bytes = block.bytes(range);
            let at = std::str::from_utf8(bytes)
                .err()
                .map_or(0, |e| e.valid_up_to());
            return self.error(place.error(path, Some(at), "not UTF-8"));
        };
        self.text(m, path, text, place);
    }

    /// Matches one JSON record given as text.
    fn text(&mut self, m: &Matcher<'e>, path: &Arc<Path>, text: &str, place: Place) {
        let mut json = std::mem::take(&mut self.json);
        let event = match JsonEvent::parse_with(text, &mut json) {
            Ok(e) => e,
            Err(e) => {
                self.json = json;
                return self.error(place.error(path, Some(e.offset), e.reason));
            }
        };
        if text.trim_ascii_start().as_bytes().first() != Some(&b'{') {
            event.recycle(&mut json);
            self.json = json;
            return self.error(place.error(path, None, "not a JSON object"));
        }
        let kind = kind_of(&event);
        self.counted();
        let source = m.source(kind, &mut self.out.unrouted);
        self.findings.clear();
        let ocsf = OcsfView(&event);
        let ev: &dyn Event = match kind {
            Kind::Ocsf => &ocsf,
            _ => &event,
        };
        m.engine
            .match_event(&mut self.scratch, ev, source, &mut self.findings);
        let value: Option<Value> = match m.indicators_want_value(kind) {
            true => serde_json::from_str(text).ok(),
            false => None,
        };
        m.indicators(ev, value.as_ref(), kind, &mut self.findings);
        let kept = match self.findings.is_empty() {
            true => Ok(()),
            false => {
                let time = m.record_time(ev, kind);
                self.keep(m, path, place.record(), text, ev, value.as_ref(), time)
            }
        };
        event.recycle(&mut json);
        self.json = json;
        if let Err(e) = kept {
            self.error(place.error(path, None, &e));
        }
    }

    /// What becomes of the findings in `self.findings` on a record: detections to report
    /// (rendered for the sink as [`HuntConfig::render`] says), inputs to correlations.
    /// `value` is the record as a `Value`, if it was read as one. An error if a sink
    /// wants the event as a `Value` and its text cannot be read as one.
    #[allow(clippy::too_many_arguments)]
    fn keep(
        &mut self,
        m: &Matcher<'e>,
        path: &Arc<Path>,
        record: u64,
        text: &str,
        event: &dyn Event,
        value: Option<&Value>,
        time_ms: Option<i64>,
    ) -> Result<(), String> {
        let mut shared: Option<Arc<Value>> = None;
        // What the OCSF lines say of the event, the same for each finding on it.
        let meta = (m.render == Render::Jsonl).then(|| EventMeta::of(path, record, event));
        let mut failed = None;
        let mut findings = std::mem::take(&mut self.findings);
        for f in findings.drain(..) {
            if self.corr.wants(&f) {
                self.out.corr.push(CorrInput {
                    time: time_ms,
                    file: self.file,
                    record,
                    rule: f.rule_index as u32,
                    fields: f
                        .fields
                        .iter()
                        .map(|(k, v)| ((*k).to_string(), v.clone()))
                        .collect(),
                    event: text.into(),
                });
            }
            if f.silent || level_rank(f.rule.level) < m.min_rank {
                continue;
            }
            let mut d = Detection {
                rule: f.rule,
                rule_index: f.rule_index,
                time_ms,
                events: Vec::new(),
                correlation: None,
                rendered: None,
            };
            if let Some(meta) = &meta {
                let mut line = Vec::with_capacity(text.len() + 2048);
                self.renderer.line(
                    f.rule,
                    f.rule_index,
                    time_ms,
                    path,
                    meta,
                    text.as_bytes(),
                    m.now_ms,
                    &mut line,
                );
                d.rendered = Some(line);
                self.out.detections.push(d);
                continue;
            }
            // The sink (or the timeline row) wants the event as a `Value`.
            let event = match (&shared, value) {
                (Some(v), _) => v.clone(),
                (None, Some(v)) => shared.insert(Arc::new(v.clone())).clone(),
                (None, None) => match serde_json::from_str(text) {
                    Ok(v) => shared.insert(Arc::new(v)).clone(),
                    Err(e) => {
                        failed = Some(format!("cannot be read as JSON: {e}"));
                        break;
                    }
                },
            };
            d.events.push(EventRef {
                path: path.clone(),
                record,
                time_ms,
                event,
            });
            if m.render == Render::Timeline {
                if let Some(row) = crate::output::row_bytes(&d) {
                    d.rendered = Some(row);
                    // What the sink needs of the event is rendered; freeing the event
                    // here, on the thread that made it, is cheaper than on the collector.
                    d.events.clear();
                }
            }
            self.out.detections.push(d);
        }
        findings.clear();
        self.findings = findings;
        failed.map_or(Ok(()), Err)
    }

    fn evtx_chunk(
        &mut self,
        m: &Matcher<'e>,
        path: &Arc<Path>,
        number: u64,
        offset: u64,
        mut data: Vec<u8>,
    ) -> Option<Vec<u8>> {
        data.resize(EVTX_CHUNK, 0);
        // The parser is not ours: a panic in it on hostile input is turned into an error
        // about this chunk, and the hunt goes on.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut chunk_data = match evtx::EvtxChunkData::new(data, false) {
                Ok(c) => c,
                Err(e) => {
                    self.chunk_error(path, offset, format!("chunk {number}: {e}, chunk skipped"));
                    return None;
                }
            };
            chunk_data.number = Some(number);
            self.evtx_records(m, path, number, offset, &mut chunk_data);
            Some(std::mem::take(&mut chunk_data.data))
        }));
        outcome.unwrap_or_else(|_| {
            let reason =
                format!("chunk {number}: the EVTX parser failed on this chunk, chunk skipped");
            self.chunk_error(path, offset, reason);
            None
        })
    }

    fn chunk_error(&mut self, path: &Path, offset: u64, reason: String) {
        self.error(InputError {
            path: path.to_path_buf(),
            location: Location::Offset(offset),
            reason,
            fatal: false,
        });
    }

    /// Matches the records of one chunk.
    fn evtx_records(
        &mut self,
        m: &Matcher<'e>,
        path: &Arc<Path>,
        number: u64,
        offset: u64,
        chunk_data: &mut evtx::EvtxChunkData,
    ) {
        let mut chunk = match chunk_data.parse(self.settings.clone()) {
            Ok(c) => c,
            Err(e) => {
                return self.chunk_error(
                    path,
                    offset,
                    format!("chunk {number}: {e}, chunk skipped"),
                )
            }
        };
        for record in chunk.iter() {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    self.chunk_error(path, offset, format!("chunk {number}: {e}"));
                    continue;
                }
            };
            let id = record.event_record_id;
            let ts = record.timestamp.as_millisecond();
            let record_error = |reason: String| InputError {
                path: path.to_path_buf(),
                location: Location::Record { offset, record: id },
                reason,
                fatal: false,
            };
            let rendered = match record.into_json_bytes() {
                Ok(r) => r,
                Err(e) => {
                    self.error(record_error(format!("cannot render record: {e}")));
                    continue;
                }
            };
            if let Err(e) = self.evtx_record(m, path, &rendered.data, ts, id) {
                self.error(record_error(format!(
                    "record rendered as invalid JSON: {e}"
                )));
            }
        }
    }

    /// Matches one rendered EVTX record (JSON text in the `evtx` shape).
    fn evtx_record(
        &mut self,
        m: &Matcher<'e>,
        path: &Arc<Path>,
        text: &[u8],
        time_ms: i64,
        record: u64,
    ) -> Result<(), String> {
        let text = std::str::from_utf8(text).map_err(|e| e.to_string())?;
        let mut json = std::mem::take(&mut self.json);
        let event = match JsonEvent::parse_with(text, &mut json) {
            Ok(e) => e,
            Err(e) => {
                self.json = json;
                return Err(e.to_string());
            }
        };
        self.counted();
        self.findings.clear();
        m.engine.match_event(
            &mut self.scratch,
            &event,
            EventKind::Windows,
            &mut self.findings,
        );
        let kept = match self.findings.is_empty() {
            true => Ok(()),
            false => self.keep(m, path, record, text, &event, None, Some(time_ms)),
        };
        event.recycle(&mut json);
        self.json = json;
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_routed_by_what_they_are() {
        let cases = [
            (
                r#"{"Event":{"System":{"Channel":"Security"}}}"#,
                Kind::Windows,
            ),
            (r#"{"Channel":"Security","EventID":4688}"#, Kind::Windows),
            (r#"{"class_uid":1007,"activity_id":1}"#, Kind::Ocsf),
            // OCSF before flat Windows; `Event.System` before both.
            (
                r#"{"class_uid":1007,"activity_id":1,"Channel":"x","EventID":1}"#,
                Kind::Ocsf,
            ),
            (
                r#"{"class_uid":1007,"activity_id":1,"Channel":"x","EventID":1,"Event":{"System":{}}}"#,
                Kind::Windows,
            ),
            (r#"{"class_uid":"1007","activity_id":1}"#, Kind::Other),
            (r#"{"class_uid":1007}"#, Kind::Other),
            (r#"{"Channel":"Security"}"#, Kind::Other),
            (r#"{"message":"x"}"#, Kind::Other),
        ];
        for (text, kind) in cases {
            let value: Value = serde_json::from_str(text).expect("json");
            assert_eq!(kind_of(&value), kind, "{text}");
            let event = JsonEvent::parse(text).expect("json");
            assert_eq!(kind_of(&event), kind, "{text}");
        }
    }
}
