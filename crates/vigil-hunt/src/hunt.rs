//! The hunt itself: readers cut files into units of work, workers match them against the
//! engine, and the calling thread collects the findings, writes them, and runs the
//! correlations over event time at the end.

use crate::correlate::{correlate, CorrBuffer, CorrInput};
use crate::detection::{level_rank, tactics, Detection, EventRef};
use crate::error::{HuntError, InputError, Location};
use crate::input::{self, InputFile, Pool, Work, EVTX_CHUNK};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vigil_event::time;
use vigil_event::{Event, FieldPath};
use vigil_sigma::{
    CorrelationState, Declared, Engine, Finding, JsonBuffers, JsonEvent, Level, Limits, LogSource,
    Scratch, Source, WinRecord,
};

/// How to hunt.
#[derive(Debug, Clone)]
pub struct HuntConfig {
    /// Matching threads (at least 1). Reader threads come on top: one per two workers.
    pub threads: usize,
    /// Report only findings of rules at this level or above.
    pub min_level: Option<Level>,
    /// The logsource of JSON records that do not say what they are (not EVTX-shaped, not
    /// OCSF): without one, only rules without a logsource see them.
    pub logsource: Option<LogSource>,
    /// The field holding the event time of JSON records (dotted path). Default: the first
    /// present of [`vigil_event::time::DEFAULT_TIME_FIELDS`].
    pub time_field: Option<String>,
    /// Bytes of base findings of correlation rules kept in memory before they are sorted
    /// and spilled to a temporary file (see the `correlate` module docs).
    pub correlation_buffer: usize,
    /// Bytes of recent events kept to attach to correlation findings.
    pub correlation_events: usize,
    /// Errors kept in detail per file (the rest are counted).
    pub max_errors_per_file: usize,
    /// Have the matching threads prepare each finding for the sink, in parallel
    /// ([`Detection::rendered`]). The sink then gets single-event findings with `events`
    /// empty: what it needs of them is in the rendering.
    pub render: Render,
    /// `finding_info.created_time` of the findings (ms since the epoch; default: now).
    pub now_ms: i64,
}

impl Default for HuntConfig {
    fn default() -> Self {
        HuntConfig {
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            min_level: None,
            logsource: None,
            time_field: None,
            correlation_buffer: 4 << 20,
            correlation_events: 4 << 20,
            max_errors_per_file: 20,
            render: Render::None,
            now_ms: time::now_ms(),
        }
    }
}

/// What the matching threads prepare of each finding for the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Render {
    /// Nothing: the sink gets the findings with their events.
    None,
    /// The OCSF JSON line, for [`crate::JsonlSink`].
    Jsonl,
    /// The timeline row, for [`crate::TableSink`] and [`crate::CsvSink`].
    Timeline,
}

/// Parses a `--logsource` declaration: `product=..,category=..,service=..` (any subset).
pub fn parse_logsource(s: &str) -> Result<LogSource, HuntError> {
    let (mut p, mut c, mut v) = (None, None, None);
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, val) = part
            .split_once('=')
            .ok_or_else(|| HuntError::LogSource(s.into()))?;
        let val = Some(val.trim()).filter(|v| !v.is_empty());
        match k.trim() {
            "product" => p = val,
            "category" => c = val,
            "service" => v = val,
            _ => return Err(HuntError::LogSource(s.into())),
        }
    }
    if p.is_none() && c.is_none() && v.is_none() {
        return Err(HuntError::LogSource(s.into()));
    }
    Ok(LogSource::new(p, c, v))
}

/// What a hunt reports as it goes, for a progress line.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Files finished.
    pub files_done: usize,
    /// Files in all.
    pub files_total: usize,
    /// Records matched so far.
    pub records: u64,
    /// Bytes of (decompressed) input so far.
    pub bytes: u64,
    /// Findings so far.
    pub findings: u64,
    /// Time since the hunt started.
    pub elapsed: Duration,
}

/// Where findings go.
pub trait Sink {
    /// One finding, as it is made (in no particular order across files).
    fn detection(&mut self, d: &Detection<'_>) -> std::io::Result<()>;
    /// The hunt is over.
    fn finish(&mut self, report: &Report) -> std::io::Result<()>;
}

/// Per-file outcome.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The file.
    pub path: Arc<Path>,
    /// Records read from it.
    pub records: u64,
    /// Problems found in it.
    pub errors: usize,
    /// Whether reading it stopped early (unreadable, cut short).
    pub fatal: bool,
}

/// Findings of one rule.
#[derive(Debug, Clone)]
pub struct RuleCount {
    /// Rule title.
    pub title: String,
    /// Rule id.
    pub id: Option<String>,
    /// Level rank (see [`crate::LEVELS`]).
    pub level: usize,
    /// Findings.
    pub count: u64,
}

/// What a hunt did and found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every input file.
    pub files: Vec<FileReport>,
    /// Records matched.
    pub records: u64,
    /// Bytes of (decompressed) input.
    pub bytes: u64,
    /// Findings reported.
    pub findings: u64,
    /// Findings by level rank (informational ..= critical).
    pub by_level: [u64; 5],
    /// Findings by rule, most first.
    pub by_rule: Vec<RuleCount>,
    /// Findings by ATT&CK tactic, most first.
    pub tactics: Vec<(String, u64)>,
    /// Problems with the input, in detail (at most [`HuntConfig::max_errors_per_file`] per
    /// file; [`FileReport::errors`] counts them all).
    pub errors: Vec<InputError>,
    /// JSON records with no logsource of their own while none was declared.
    pub unrouted: u64,
    /// Base findings of correlation rules that went through a temporary file.
    pub correlation_spilled: u64,
    /// Wall time of the hunt.
    pub elapsed: Duration,
}

impl Report {
    /// Whether any input could be read at all: some file gave records or was read
    /// through without a fatal error.
    pub fn any_input_read(&self) -> bool {
        self.files.iter().any(|f| f.records > 0 || !f.fatal)
    }
}

/// What workers and readers tell the collecting thread.
enum Msg<'r> {
    Batch {
        file: u32,
        records: u64,
        bytes: u64,
        detections: Vec<Detection<'r>>,
        corr: Vec<CorrInput>,
        errors: Vec<InputError>,
    },
    Error(u32, InputError),
    FileDone,
    /// A worker's count of records with no logsource, sent when it ends.
    Unrouted(u64),
}

/// Runs a hunt with `engine` over `files`, handing findings to `sink` and progress to
/// `progress` (about four times a second). Input problems are in the report; only a
/// failing sink or a crashed worker is an error.
pub fn hunt(
    engine: &Engine,
    files: &[InputFile],
    config: &HuntConfig,
    sink: &mut dyn Sink,
    progress: Option<&mut dyn FnMut(&Progress)>,
) -> Result<Report, HuntError> {
    let start = Instant::now();
    let workers = config.threads.max(1);
    let readers = workers.div_ceil(2).min(files.len().max(1));
    let declared = config.logsource.as_ref().map(|l| engine.declare(l));
    let undeclared = engine.declare(&LogSource::default());
    let time_path = config.time_field.as_deref().map(FieldPath::new);
    let ctx = MatchCtx {
        engine,
        declared: declared.as_ref(),
        undeclared: &undeclared,
        time_path: time_path.as_ref(),
        min_rank: level_rank(config.min_level),
        render: config.render,
        now_ms: config.now_ms,
    };
    let stop = AtomicBool::new(false);
    let next_file = AtomicUsize::new(0);
    let (work_tx, work_rx) = sync_channel::<Work>(workers * 8);
    let work_rx = Mutex::new(work_rx);
    let (msg_tx, msg_rx) = sync_channel::<Msg<'_>>(workers * 2);
    let pool = Pool::default();

    let mut collector = Collector::new(engine, files, config, start);
    let result = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for _ in 0..readers {
            let work_tx = work_tx.clone();
            let msg_tx = msg_tx.clone();
            let (stop, next_file, pool) = (&stop, &next_file, &pool);
            handles.push(s.spawn(move || reader(files, next_file, stop, pool, &work_tx, &msg_tx)));
        }
        drop(work_tx);
        for _ in 0..workers {
            let msg_tx = msg_tx.clone();
            let (work_rx, ctx, stop, pool) = (&work_rx, &ctx, &stop, &pool);
            handles.push(s.spawn(move || worker(ctx, files, pool, work_rx, &msg_tx, stop)));
        }
        drop(msg_tx);
        let r = collector.collect(&msg_rx, sink, progress);
        if r.is_err() {
            stop.store(true, Ordering::Relaxed);
            // Let blocked threads finish.
            while msg_rx.recv().is_ok() {}
        }
        for h in handles {
            if let Err(p) = h.join() {
                let what = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                return Err(HuntError::Worker(what));
            }
        }
        r
    });
    result?;
    collector.correlate(sink)?;
    let mut report = collector.report();
    report.elapsed = start.elapsed();
    sink.finish(&report)?;
    Ok(report)
}

fn reader(
    files: &[InputFile],
    next: &AtomicUsize,
    stop: &AtomicBool,
    pool: &Pool,
    work: &SyncSender<Work>,
    msgs: &SyncSender<Msg<'_>>,
) {
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(file) = files.get(i) else {
            return;
        };
        let id = i as u32;
        input::read_file(
            id,
            file,
            pool,
            &mut |w| !stop.load(Ordering::Relaxed) && work.send(w).is_ok(),
            &mut |e| {
                let _ = msgs.send(Msg::Error(id, e));
            },
        );
        let _ = msgs.send(Msg::FileDone);
    }
}

/// What every worker shares.
struct MatchCtx<'e> {
    engine: &'e Engine,
    declared: Option<&'e Declared>,
    undeclared: &'e Declared,
    time_path: Option<&'e FieldPath>,
    min_rank: usize,
    render: Render,
    now_ms: i64,
}

/// How a JSON record is routed.
enum Kind {
    Windows,
    Ocsf,
    Other,
}

fn kind_of(v: &Value) -> Kind {
    let Some(o) = v.as_object() else {
        return Kind::Other;
    };
    if o.get("Event").is_some_and(|e| e.get("System").is_some()) {
        return Kind::Windows;
    }
    if o.get("class_uid").is_some_and(Value::is_i64) && o.contains_key("activity_id") {
        return Kind::Ocsf;
    }
    if o.contains_key("Channel") && o.contains_key("EventID") {
        return Kind::Windows;
    }
    Kind::Other
}

struct WorkerState<'e> {
    /// The file of the unit being matched.
    file: u32,
    scratch: Scratch,
    findings: Vec<Finding<'e>>,
    corr: CorrelationState<'e>,
    records: u64,
    unrouted: u64,
    detections: Vec<Detection<'e>>,
    corr_inputs: Vec<CorrInput>,
    errors: Vec<InputError>,
    render_buf: Vec<u8>,
    /// Reused by the one-pass parser of rendered EVTX records.
    json: JsonBuffers,
}

impl<'e> MatchCtx<'e> {
    fn json_time(&self, v: &Value, kind: &Kind) -> Option<i64> {
        if let Some(p) = self.time_path {
            return v.field(p).as_ref().and_then(time::value_time);
        }
        let default = || {
            time::DEFAULT_TIME_FIELDS
                .iter()
                .find_map(|k| v.get(*k))
                .and_then(time::json_time)
        };
        match kind {
            Kind::Ocsf => v.get("time").and_then(time::json_time),
            Kind::Windows => v
                .get("Event")
                .and_then(|e| e.get("System"))
                .and_then(|s| s.get("TimeCreated"))
                .and_then(time::json_time)
                .or_else(default),
            Kind::Other => default(),
        }
    }

    /// Matches one event; keeps it only if some rule fired.
    fn match_one(
        &self,
        st: &mut WorkerState<'e>,
        event: Value,
        evtx_time: Option<i64>,
        path: &Arc<Path>,
        record: u64,
    ) {
        st.records += 1;
        let kind = if evtx_time.is_some() {
            Kind::Windows
        } else {
            kind_of(&event)
        };
        let source = match kind {
            Kind::Windows => Source::Windows,
            Kind::Ocsf => Source::Ocsf,
            Kind::Other => match self.declared {
                Some(d) => Source::Declared(d),
                None => {
                    st.unrouted += 1;
                    Source::Declared(self.undeclared)
                }
            },
        };
        st.findings.clear();
        if let Kind::Windows = kind {
            // Locates System and EventData once, so each field is one map lookup.
            let record = WinRecord::new(&event);
            self.engine
                .match_event(&mut st.scratch, &record, source, &mut st.findings);
        } else if let Kind::Ocsf = kind {
            // Keyword rules see the event's own strings, not its lineage context.
            let ocsf = vigil_event::OcsfJson(&event);
            self.engine
                .match_event(&mut st.scratch, &ocsf, source, &mut st.findings);
        } else {
            self.engine
                .match_event(&mut st.scratch, &event, source, &mut st.findings);
        }
        if st.findings.is_empty() {
            return;
        }
        let time_ms = evtx_time.or_else(|| self.json_time(&event, &kind));
        self.keep_findings(st, event, time_ms, path, record);
    }

    /// Matches one rendered EVTX record (JSON text in the `evtx` shape): parsed once
    /// into a borrowed table for matching, and into a `serde_json::Value` only when a
    /// rule fired (most records match nothing).
    fn match_evtx(
        &self,
        st: &mut WorkerState<'e>,
        text: &[u8],
        time_ms: i64,
        path: &Arc<Path>,
        record: u64,
    ) -> Result<(), String> {
        let text = std::str::from_utf8(text).map_err(|e| e.to_string())?;
        let mut json = std::mem::take(&mut st.json);
        let event = JsonEvent::parse_with(text, &mut json).map_err(|e| e.to_string())?;
        st.records += 1;
        st.findings.clear();
        self.engine
            .match_event(&mut st.scratch, &event, Source::Windows, &mut st.findings);
        event.recycle(&mut json);
        st.json = json;
        if st.findings.is_empty() {
            return Ok(());
        }
        let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        self.keep_findings(st, value, Some(time_ms), path, record);
        Ok(())
    }

    /// What becomes of the findings in `st.findings` on `event`: detections to report,
    /// inputs to correlations.
    fn keep_findings(
        &self,
        st: &mut WorkerState<'e>,
        event: Value,
        time_ms: Option<i64>,
        path: &Arc<Path>,
        record: u64,
    ) {
        let event_ref = EventRef {
            path: path.clone(),
            record,
            time_ms,
            event: Arc::new(event),
        };
        for f in st.findings.drain(..) {
            if st.corr.wants(&f) {
                st.corr_inputs.push(CorrInput {
                    time: time_ms,
                    file: st.file,
                    record,
                    rule: f.rule_index as u32,
                    fields: f
                        .fields
                        .iter()
                        .map(|(k, v)| ((*k).to_string(), v.clone()))
                        .collect(),
                    event: event_ref.event.to_string().into_boxed_str(),
                });
            }
            if f.silent || level_rank(f.rule.level) < self.min_rank {
                continue;
            }
            let mut d = Detection {
                rule: f.rule,
                rule_index: f.rule_index,
                time_ms,
                events: vec![event_ref.clone()],
                correlation: None,
                rendered: None,
            };
            let rendered = match self.render {
                Render::None => None,
                Render::Jsonl => {
                    let mut line = Vec::with_capacity(4096);
                    // Writing to memory cannot fail; if it did, the sink renders it.
                    d.write_ocsf(self.now_ms, &mut st.render_buf, &mut line)
                        .is_ok()
                        .then_some(line)
                }
                Render::Timeline => crate::output::row_bytes(&d),
            };
            if rendered.is_some() {
                d.rendered = rendered;
                // What the sink needs of the event is rendered; freeing the event here, on
                // the thread that made it, is cheaper than on the collecting thread.
                d.events.clear();
            }
            st.detections.push(d);
        }
    }
}

fn worker<'e>(
    ctx: &MatchCtx<'e>,
    files: &[InputFile],
    pool: &Pool,
    work: &Mutex<Receiver<Work>>,
    msgs: &SyncSender<Msg<'e>>,
    stop: &AtomicBool,
) {
    let settings = Arc::new(evtx::ParserSettings::new().num_threads(1));
    let mut st = WorkerState {
        file: 0,
        scratch: ctx.engine.scratch(),
        findings: Vec::new(),
        corr: CorrelationState::new(ctx.engine, Limits::default()),
        records: 0,
        unrouted: 0,
        detections: Vec::new(),
        corr_inputs: Vec::new(),
        errors: Vec::new(),
        render_buf: Vec::new(),
        json: JsonBuffers::default(),
    };
    loop {
        let unit = {
            // Poisoning is no reason to stop: the receiver itself is consistent.
            let rx = work
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            rx.recv()
        };
        let Ok(unit) = unit else {
            break;
        };
        if stop.load(Ordering::Relaxed) {
            continue;
        }
        let bytes = unit.bytes();
        let file = match &unit {
            Work::Evtx { file, .. } | Work::Lines { file, .. } | Work::Values { file, .. } => *file,
        };
        let path = &files[file as usize].path;
        st.file = file;
        let location = match &unit {
            Work::Evtx { offset, .. } => Location::Offset(*offset),
            Work::Lines { first_line, .. } => Location::Line(*first_line),
            Work::Values { first, .. } => Location::Offset(*first),
        };
        // A panic here is a bug in Vigil: it is reported against this part of the input,
        // and the hunt goes on (a dead worker could stall the readers).
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match unit {
            Work::Evtx {
                number,
                offset,
                data,
                ..
            } => {
                if let Some(buf) = evtx_chunk(ctx, &mut st, &settings, path, number, offset, data) {
                    pool.put(buf);
                }
            }
            Work::Lines {
                first_line, data, ..
            } => lines(ctx, &mut st, path, first_line, &data),
            Work::Values { first, values, .. } => {
                for (i, v) in values.into_iter().enumerate() {
                    if v.is_object() {
                        ctx.match_one(&mut st, v, None, path, first + i as u64);
                    } else {
                        st.errors.push(InputError {
                            path: path.to_path_buf(),
                            location: Location::Offset(first + i as u64),
                            reason: format!("value {} is not a JSON object", first + i as u64),
                            fatal: false,
                        });
                    }
                }
            }
        }));
        if let Err(p) = outcome {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            st.scratch = ctx.engine.scratch();
            st.errors.push(InputError {
                path: path.to_path_buf(),
                location,
                reason: format!("internal error while hunting this part (please report): {what}"),
                fatal: false,
            });
        }
        let msg = Msg::Batch {
            file,
            records: std::mem::take(&mut st.records),
            bytes,
            detections: std::mem::take(&mut st.detections),
            corr: std::mem::take(&mut st.corr_inputs),
            errors: std::mem::take(&mut st.errors),
        };
        if msgs.send(msg).is_err() {
            return;
        }
    }
    let _ = msgs.send(Msg::Unrouted(st.unrouted));
}

fn lines<'e>(
    ctx: &MatchCtx<'e>,
    st: &mut WorkerState<'e>,
    path: &Arc<Path>,
    first: u64,
    data: &[u8],
) {
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = if first == 1 && i == 0 {
            line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
        } else {
            line
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let n = first + i as u64;
        match serde_json::from_slice::<Value>(line) {
            Ok(v) if v.is_object() => ctx.match_one(st, v, None, path, n),
            Ok(_) => st.errors.push(InputError {
                path: path.to_path_buf(),
                location: Location::Line(n),
                reason: "not a JSON object".into(),
                fatal: false,
            }),
            Err(e) => st.errors.push(InputError {
                path: path.to_path_buf(),
                location: Location::Line(n),
                reason: format!("invalid JSON (column {}): {e}", e.column()),
                fatal: false,
            }),
        }
    }
}

fn evtx_chunk<'e>(
    ctx: &MatchCtx<'e>,
    st: &mut WorkerState<'e>,
    settings: &Arc<evtx::ParserSettings>,
    path: &Arc<Path>,
    number: u64,
    offset: u64,
    mut data: Vec<u8>,
) -> Option<Vec<u8>> {
    data.resize(EVTX_CHUNK, 0);
    let err = |location: Location, reason: String| InputError {
        path: path.to_path_buf(),
        location,
        reason,
        fatal: false,
    };
    // The parser is not ours: a panic in it on hostile input is turned into an error
    // about this chunk, and the hunt goes on.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut chunk_data = match evtx::EvtxChunkData::new(data, false) {
            Ok(c) => c,
            Err(e) => {
                st.errors.push(err(
                    Location::Offset(offset),
                    format!("chunk {number}: {e}, chunk skipped"),
                ));
                return None;
            }
        };
        chunk_data.number = Some(number);
        records(ctx, st, settings, path, number, offset, &mut chunk_data);
        Some(std::mem::take(&mut chunk_data.data))
    }));
    match outcome {
        Ok(buf) => buf,
        Err(_) => {
            st.errors.push(err(
                Location::Offset(offset),
                format!("chunk {number}: the EVTX parser failed on this chunk, chunk skipped"),
            ));
            None
        }
    }
}

/// Matches the records of one chunk.
fn records<'e>(
    ctx: &MatchCtx<'e>,
    st: &mut WorkerState<'e>,
    settings: &Arc<evtx::ParserSettings>,
    path: &Arc<Path>,
    number: u64,
    offset: u64,
    chunk_data: &mut evtx::EvtxChunkData,
) {
    let err = |location: Location, reason: String| InputError {
        path: path.to_path_buf(),
        location,
        reason,
        fatal: false,
    };
    {
        let mut chunk = match chunk_data.parse(settings.clone()) {
            Ok(c) => c,
            Err(e) => {
                st.errors.push(err(
                    Location::Offset(offset),
                    format!("chunk {number}: {e}, chunk skipped"),
                ));
                return;
            }
        };
        for record in chunk.iter() {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    st.errors.push(err(
                        Location::Offset(offset),
                        format!("chunk {number}: {e}"),
                    ));
                    continue;
                }
            };
            let id = record.event_record_id;
            let ts = record.timestamp.as_millisecond();
            let rendered = match record.into_json_bytes() {
                Ok(r) => r,
                Err(e) => {
                    st.errors.push(err(
                        Location::Record { offset, record: id },
                        format!("cannot render record: {e}"),
                    ));
                    continue;
                }
            };
            if let Err(e) = ctx.match_evtx(st, &rendered.data, ts, path, id) {
                st.errors.push(err(
                    Location::Record { offset, record: id },
                    format!("record rendered as invalid JSON: {e}"),
                ));
            }
        }
    }
}

/// The collecting side: counts, findings to the sink, correlation inputs.
struct Collector<'e, 'f> {
    engine: &'e Engine,
    files: &'f [InputFile],
    config: &'f HuntConfig,
    start: Instant,
    file_reports: Vec<FileReport>,
    errors: Vec<InputError>,
    records: u64,
    bytes: u64,
    findings: u64,
    by_level: [u64; 5],
    by_rule: HashMap<usize, u64>,
    tactics: HashMap<&'static str, u64>,
    unrouted: u64,
    corr: CorrBuffer,
    files_done: usize,
    corr_spilled: u64,
}

impl<'e, 'f> Collector<'e, 'f> {
    fn new(
        engine: &'e Engine,
        files: &'f [InputFile],
        config: &'f HuntConfig,
        start: Instant,
    ) -> Self {
        Collector {
            engine,
            files,
            config,
            start,
            file_reports: files
                .iter()
                .map(|f| FileReport {
                    path: f.path.clone(),
                    records: 0,
                    errors: 0,
                    fatal: false,
                })
                .collect(),
            errors: Vec::new(),
            records: 0,
            bytes: 0,
            findings: 0,
            by_level: [0; 5],
            by_rule: HashMap::new(),
            tactics: HashMap::new(),
            unrouted: 0,
            corr: CorrBuffer::new(config.correlation_buffer),
            files_done: 0,
            corr_spilled: 0,
        }
    }

    fn error(&mut self, file: u32, e: InputError) {
        let Some(fr) = self.file_reports.get_mut(file as usize) else {
            return;
        };
        fr.errors += 1;
        fr.fatal |= e.fatal;
        if fr.errors <= self.config.max_errors_per_file {
            self.errors.push(e);
        }
    }

    fn emit(&mut self, d: &Detection<'e>, sink: &mut dyn Sink) -> Result<(), HuntError> {
        if level_rank(d.rule.level) < level_rank(self.config.min_level) {
            return Ok(());
        }
        self.findings += 1;
        self.by_level[level_rank(d.rule.level)] += 1;
        *self.by_rule.entry(d.rule_index).or_default() += 1;
        for t in tactics(d.rule) {
            *self.tactics.entry(t).or_default() += 1;
        }
        sink.detection(d)?;
        Ok(())
    }

    fn collect(
        &mut self,
        rx: &Receiver<Msg<'e>>,
        sink: &mut dyn Sink,
        mut progress: Option<&mut dyn FnMut(&Progress)>,
    ) -> Result<(), HuntError> {
        let tick = Duration::from_millis(250);
        let mut last = Instant::now();
        loop {
            let msg = match rx.recv_timeout(tick) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            match msg {
                None => {}
                Some(Msg::FileDone) => self.files_done += 1,
                Some(Msg::Unrouted(n)) => self.unrouted += n,
                Some(Msg::Error(file, e)) => self.error(file, e),
                Some(Msg::Batch {
                    file,
                    records,
                    bytes,
                    detections,
                    corr,
                    errors,
                }) => {
                    self.records += records;
                    self.bytes += bytes;
                    if let Some(fr) = self.file_reports.get_mut(file as usize) {
                        fr.records += records;
                    }
                    for e in errors {
                        self.error(file, e);
                    }
                    for d in &detections {
                        self.emit(d, sink)?;
                    }
                    for c in corr {
                        self.corr.push(c).map_err(HuntError::Spill)?;
                    }
                }
            }
            if let Some(p) = progress.as_deref_mut() {
                if last.elapsed() >= tick {
                    last = Instant::now();
                    p(&Progress {
                        files_done: self.files_done,
                        files_total: self.files.len(),
                        records: self.records,
                        bytes: self.bytes,
                        findings: self.findings,
                        elapsed: self.start.elapsed(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Feeds the base findings to the correlations in event-time order.
    fn correlate(&mut self, sink: &mut dyn Sink) -> Result<(), HuntError> {
        if self.corr.is_empty() {
            return Ok(());
        }
        let mut corr = std::mem::replace(&mut self.corr, CorrBuffer::new(1));
        let mut failed = None;
        let engine = self.engine;
        let files = self.files;
        let window = self.config.correlation_events;
        let r = correlate(&mut corr, engine, files, window, &mut |d| {
            self.emit(&d, sink).map_err(|e| {
                let msg = e.to_string();
                failed = Some(e);
                std::io::Error::other(msg)
            })
        });
        self.corr_spilled = corr.spilled;
        if let Some(e) = failed {
            return Err(e);
        }
        r.map_err(HuntError::Spill)
    }

    fn report(&self) -> Report {
        let mut by_rule: Vec<RuleCount> = self
            .by_rule
            .iter()
            .filter_map(|(i, n)| {
                let r = self.engine.rules().get(*i)?;
                Some(RuleCount {
                    title: r.title.clone(),
                    id: r.id.clone(),
                    level: level_rank(r.level),
                    count: *n,
                })
            })
            .collect();
        by_rule.sort_by(|a, b| b.count.cmp(&a.count).then(a.title.cmp(&b.title)));
        let mut tactics: Vec<(String, u64)> = self
            .tactics
            .iter()
            .map(|(k, v)| ((*k).to_string(), *v))
            .collect();
        tactics.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Report {
            files: self.file_reports.clone(),
            records: self.records,
            bytes: self.bytes,
            findings: self.findings,
            by_level: self.by_level,
            by_rule,
            tactics,
            errors: self.errors.clone(),
            unrouted: self.unrouted,
            correlation_spilled: self.corr_spilled,
            elapsed: Duration::ZERO,
        }
    }
}
