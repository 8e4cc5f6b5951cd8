//! Output formats: OCSF JSON lines (streamed), a CSV timeline and a table for people (both
//! sorted by event time), each a [`Sink`].

use crate::detection::{windows_system, Detection};
use crate::report::{Report, Sink};
use crate::sort::{ExternalSort, Sortable};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{self, Write};
use vigil_detect::finding::{level_rank, LEVELS};
use vigil_event::time::format_ms;

/// One OCSF Detection Finding per line, written as findings are made.
pub struct JsonlSink<W: Write> {
    out: W,
    now: i64,
    buf: Vec<u8>,
}

impl<W: Write> JsonlSink<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        JsonlSink {
            out,
            now: vigil_event::time::now_ms(),
            buf: Vec::new(),
        }
    }
}

impl<W: Write> Sink for JsonlSink<W> {
    fn detection(&mut self, d: &Detection<'_>) -> io::Result<()> {
        match &d.rendered {
            Some(line) => self.out.write_all(line),
            None => d.write_ocsf(self.now, &mut self.buf, &mut self.out),
        }
    }
    fn finish(&mut self, _: &Report) -> io::Result<()> {
        self.out.flush()
    }
}

/// A finding as a timeline row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Row {
    pub(crate) time: Option<i64>,
    pub(crate) level: usize,
    pub(crate) title: String,
    pub(crate) id: String,
    pub(crate) computer: String,
    pub(crate) channel: String,
    pub(crate) event_id: String,
    pub(crate) file: String,
    pub(crate) record: u64,
    pub(crate) details: String,
}

const DETAILS_MAX: usize = 300;

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Object(o) => o.get("#text").and_then(scalar),
        _ => None,
    }
}

/// A short `key=value` rendering of the interesting part of an event.
fn details(d: &Detection<'_>) -> String {
    let mut s = String::new();
    if let Some(c) = &d.correlation {
        for (k, v) in &c.group {
            push_kv(&mut s, k, v.as_deref().unwrap_or("null"));
        }
        push_kv(&mut s, "value", &c.value.to_string());
        push_kv(&mut s, "events", &c.event_count.to_string());
        return s;
    }
    let Some(e) = d.events.first() else {
        return s;
    };
    let ev = &*e.event;
    if ev.get("class_uid").is_some() {
        // An OCSF event: what an analyst looks at first.
        for path in OCSF_DETAILS {
            if let Some(v) = path
                .split('.')
                .try_fold(ev, |v, k| v.get(k))
                .and_then(scalar)
            {
                push_kv(&mut s, path, &v);
            }
        }
        return clip_details(s);
    }
    let data = ev
        .get("Event")
        .and_then(|x| x.get("EventData").or_else(|| x.get("UserData")))
        .unwrap_or(ev);
    if let Some(o) = data.as_object() {
        for (k, v) in o {
            if s.len() >= DETAILS_MAX {
                break;
            }
            if k == "#attributes" || k == "Event" {
                continue;
            }
            if let Some(v) = scalar(v) {
                push_kv(&mut s, k, &v);
            }
        }
    }
    clip_details(s)
}

/// The OCSF attributes shown in a finding's details, when the event has them.
const OCSF_DETAILS: [&str; 10] = [
    "process.cmd_line",
    "process.file.path",
    "process.parent_process.file.path",
    "file.path",
    "module.file.path",
    "query.hostname",
    "dst_endpoint.ip",
    "dst_endpoint.port",
    "src_endpoint.ip",
    "user.name",
];

fn clip_details(mut s: String) -> String {
    if s.len() > DETAILS_MAX {
        let mut cut = DETAILS_MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn push_kv(s: &mut String, k: &str, v: &str) {
    if !s.is_empty() {
        s.push_str(" ¦ ");
    }
    s.push_str(k);
    s.push('=');
    s.extend(v.chars().map(|c| if c.is_control() { ' ' } else { c }));
}

/// The timeline row of a finding, serialized, for [`crate::Render::Timeline`].
pub(crate) fn row_bytes(d: &Detection<'_>) -> Option<Vec<u8>> {
    serde_json::to_vec(&row(d)).ok()
}

/// The timeline row of a finding: prepared by a matching thread, or made here.
pub(crate) fn row_of(d: &Detection<'_>) -> io::Result<Row> {
    match &d.rendered {
        Some(bytes) => serde_json::from_slice(bytes).map_err(io::Error::other),
        None => Ok(row(d)),
    }
}

fn row(d: &Detection<'_>) -> Row {
    let first = d.events.last();
    let (mut channel, mut eid, mut computer) =
        first.map(|e| windows_system(&*e.event)).unwrap_or_default();
    if let Some(ev) = first
        .map(|e| &*e.event)
        .filter(|v| v.get("class_uid").is_some())
    {
        // One of Vigil's OCSF events: its class, activity and host.
        let text = |p: &[&str]| p.iter().try_fold(ev, |v, k| v.get(k)).and_then(scalar);
        channel = channel.or_else(|| text(&["class_name"]));
        eid = eid.or_else(|| text(&["activity_name"]));
        computer = computer.or_else(|| text(&["device", "hostname"]));
    }
    Row {
        time: d.time_ms,
        level: level_rank(d.rule.level),
        title: d.rule.title.clone(),
        id: d.rule.id.clone().unwrap_or_default(),
        computer: computer.unwrap_or_default(),
        channel: channel.unwrap_or_default(),
        event_id: eid.unwrap_or_default(),
        file: first
            .map(|e| e.path.display().to_string())
            .unwrap_or_default(),
        record: first.map_or(0, |e| e.record),
        details: details(d),
    }
}

impl Sortable for Row {
    type Key = (Option<i64>, String, u64, String);
    fn key(&self) -> Self::Key {
        (
            self.time,
            self.file.clone(),
            self.record,
            self.title.clone(),
        )
    }
    fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.title.len()
            + self.id.len()
            + self.computer.len()
            + self.channel.len()
            + self.event_id.len()
            + self.file.len()
            + self.details.len()
    }
}

/// A timeline row with the index of its rule (in [`vigil_sigma::Engine::rules`]), for the
/// sinks that show more of the rule than the row holds (its ATT&CK tags).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RuleRow {
    pub(crate) rule: usize,
    pub(crate) row: Row,
}

impl Sortable for RuleRow {
    type Key = <Row as Sortable>::Key;
    fn key(&self) -> Self::Key {
        self.row.key()
    }
    fn bytes(&self) -> usize {
        self.row.bytes() + std::mem::size_of::<usize>()
    }
}

/// Several sinks fed the same findings, in order: the main output, a report, a timeline.
/// Each sees every finding; the first error stops the hunt. The sinks that read timeline
/// rows ([`CsvSink`], [`TableSink`], [`crate::HtmlSink`], [`crate::TimelineSink`]) need
/// the findings rendered as [`crate::Render::Timeline`] or not at all
/// ([`crate::Render::None`]), not as OCSF lines.
pub struct Tee(pub Vec<Box<dyn Sink>>);

impl Sink for Tee {
    fn detection(&mut self, d: &Detection<'_>) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.detection(d))
    }
    fn finish(&mut self, report: &Report) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.finish(report))
    }
}

/// Bytes of timeline rows kept in memory before they are sorted into a temporary file.
pub const ROW_BUFFER: usize = 4 << 20;

/// A CSV timeline (RFC 4180 quoting), sorted by event time.
pub struct CsvSink<W: Write> {
    out: W,
    rows: ExternalSort<Row>,
}

impl<W: Write> CsvSink<W> {
    /// Writes to `out` when the hunt ends. Rows past [`ROW_BUFFER`] bytes are sorted
    /// through temporary files, so memory does not grow with the number of findings.
    pub fn new(out: W) -> Self {
        CsvSink {
            out,
            rows: ExternalSort::new(ROW_BUFFER),
        }
    }
}

pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl<W: Write> Sink for CsvSink<W> {
    fn detection(&mut self, d: &Detection<'_>) -> io::Result<()> {
        self.rows.push(row_of(d)?)
    }
    fn finish(&mut self, _: &Report) -> io::Result<()> {
        writeln!(
            self.out,
            "time,level,rule,rule_id,computer,channel,event_id,file,record,details"
        )?;
        for r in self.rows.sorted()? {
            let r = r?;
            let fields = [
                r.time.map(format_ms).unwrap_or_default(),
                LEVELS[r.level].to_string(),
                r.title.clone(),
                r.id.clone(),
                r.computer.clone(),
                r.channel.clone(),
                r.event_id.clone(),
                r.file.clone(),
                r.record.to_string(),
                r.details.clone(),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            writeln!(self.out, "{}", line.join(","))?;
        }
        self.out.flush()
    }
}

/// An aligned table for people, sorted by event time, then a summary.
pub struct TableSink<W: Write> {
    out: W,
    color: bool,
    rows: ExternalSort<Row>,
    width: [usize; 6],
}

impl<W: Write> TableSink<W> {
    /// Writes to `out` when the hunt ends; `color` adds ANSI colours by level.
    pub fn new(out: W, color: bool) -> Self {
        TableSink {
            out,
            color,
            rows: ExternalSort::new(ROW_BUFFER),
            width: HEAD.map(str::len),
        }
    }

    fn paint(&self, level: usize, s: &str) -> String {
        if !self.color {
            return s.to_string();
        }
        let code = match level {
            4 => "1;31",
            3 => "31",
            2 => "33",
            1 => "32",
            _ => "2",
        };
        format!("\x1b[{code}m{s}\x1b[0m")
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn file_name(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

const HEAD: [&str; 6] = [
    "TIME",
    "LEVEL",
    "RULE",
    "COMPUTER",
    "CHANNEL EID",
    "FILE#RECORD",
];

fn cells(r: &Row) -> [String; 6] {
    [
        r.time.map(format_ms).unwrap_or_else(|| "-".into()),
        LEVELS[r.level].to_string(),
        clip(&r.title, 70),
        clip(&r.computer, 24),
        if r.event_id.is_empty() {
            String::new()
        } else {
            format!("{} {}", clip(&r.channel, 28), r.event_id)
        },
        format!("{}#{}", clip(file_name(&r.file), 40), r.record),
    ]
}

fn aligned(c: &[String; 6], width: &[usize; 6]) -> String {
    let mut s = String::new();
    for (i, (cell, w)) in c.iter().zip(width).enumerate() {
        if i > 0 {
            s.push_str("  ");
        }
        s.push_str(cell);
        if i + 1 < c.len() {
            s.extend(std::iter::repeat_n(
                ' ',
                w.saturating_sub(cell.chars().count()),
            ));
        }
    }
    s
}

impl<W: Write> Sink for TableSink<W> {
    fn detection(&mut self, d: &Detection<'_>) -> io::Result<()> {
        let r = row_of(d)?;
        for (w, c) in self.width.iter_mut().zip(cells(&r)) {
            *w = (*w).max(c.chars().count());
        }
        self.rows.push(r)
    }

    fn finish(&mut self, report: &Report) -> io::Result<()> {
        if !self.rows.is_empty() {
            let h = aligned(&HEAD.map(String::from), &self.width);
            let h = if self.color {
                format!("\x1b[1m{h}\x1b[0m")
            } else {
                h
            };
            writeln!(self.out, "{h}")?;
            for r in self.rows.sorted()? {
                let r = r?;
                let text = aligned(&cells(&r), &self.width);
                let line = self.paint(r.level, &text);
                writeln!(self.out, "{line}")?;
            }
            writeln!(self.out)?;
        }
        self.summary(report)?;
        self.out.flush()
    }
}

impl<W: Write> TableSink<W> {
    fn summary(&mut self, r: &Report) -> io::Result<()> {
        let mib = r.bytes as f64 / (1024.0 * 1024.0);
        writeln!(
            self.out,
            "Summary: {} findings in {} records from {} files ({mib:.1} MiB) in {:.2} s",
            r.findings,
            r.records,
            r.files.len(),
            r.elapsed.as_secs_f64()
        )?;
        let levels: Vec<String> = (0..5)
            .rev()
            .map(|i| self.paint(i, &format!("{} {}", LEVELS[i], r.by_level[i])))
            .collect();
        writeln!(self.out, "  by level: {}", levels.join(", "))?;
        if !r.by_rule.is_empty() {
            writeln!(self.out, "  top rules:")?;
            for rc in r.by_rule.iter().take(10) {
                let text = format!("{:>8}  {:<13}  {}", rc.count, LEVELS[rc.level], rc.title);
                writeln!(self.out, "    {}", self.paint(rc.level, &text))?;
            }
        }
        if !r.tactics.is_empty() {
            let t: Vec<String> = r.tactics.iter().map(|(k, v)| format!("{k} {v}")).collect();
            writeln!(self.out, "  ATT&CK tactics: {}", t.join(", "))?;
        }
        let bad: Vec<_> = r.files.iter().filter(|f| f.errors > 0).collect();
        if !bad.is_empty() {
            writeln!(self.out, "  files with errors: {}", bad.len())?;
            for f in bad {
                let first = r
                    .errors
                    .iter()
                    .find(|e| e.path.as_path() == &*f.path)
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                writeln!(
                    self.out,
                    "    {} ({} error{}{}): {first}",
                    f.path.display(),
                    f.errors,
                    if f.errors == 1 { "" } else { "s" },
                    if f.fatal { ", not read to the end" } else { "" },
                )?;
            }
        }
        if r.unrouted > 0 {
            writeln!(
                self.out,
                "  note: {} JSON records have no logsource of their own (not EVTX-shaped, not \
                 OCSF); only rules without a logsource saw them: declare one with --logsource",
                r.unrouted
            )?;
        }

        Ok(())
    }
}
