//! A hunt report for people: one self-contained HTML file.
//!
//! What a responder wants first, drawn by Rust into the page (it reads without
//! JavaScript): the totals by level, findings by level over time (an inline SVG chart,
//! one mark per level and time bucket with findings), the rules, the hosts, and the
//! ATT&CK tactics and techniques as a matrix (tactics in kill-chain order, from the
//! rules' `attack.*` tags; a technique sits under the tactics its rules name), each with
//! its first and last time. Then every finding in a table that inline JavaScript
//! searches, sorts and pages through, from JSON embedded in the page.
//!
//! Nothing is fetched: the CSS and the script are inline, and a Content-Security-Policy
//! allows those two (by their SHA-256) and nothing else, no connection, image, font or
//! frame. Rule titles and event data are the attacker's: Rust escapes everything it
//! writes as HTML, the JSON is embedded with `<`, `>` and `&` escaped (so no text in it
//! can end its `<script>` element), and the script puts text into the page with
//! `textContent` only.
//!
//! Size: the table holds at most [`MAX_TABLE_ROWS`] findings (the highest levels first
//! when there are more) and at most [`TABLE_BUDGET`] bytes of them, each finding's
//! details cut to [`TABLE_DETAILS`] characters, and the strings the rows repeat (rules,
//! hosts, files, channels) are written once (and counted in the budget); the rules and
//! computers tables list at most [`MAX_LISTED`] each. The summary counts every finding. Memory is
//! bounded as for the other timeline sinks: rows go through an external sort.

use crate::detection::Detection;
use crate::output::{row_of, RuleRow, ROW_BUFFER};
use crate::report::{Report, Sink};
use crate::sort::ExternalSort;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{self, Write};
use vigil_detect::finding::{level_rank, tactic_names, techniques, LEVELS};
use vigil_event::time::format_ms;

/// The most findings the report's table holds.
pub const MAX_TABLE_ROWS: usize = 20_000;
/// The most bytes of table rows (as embedded JSON) the report holds: with the summary,
/// the page stays under 5 MB.
pub const TABLE_BUDGET: usize = 3_500_000;
/// The most characters of a finding's details shown in the table.
pub const TABLE_DETAILS: usize = 200;
/// The most rules and computers listed in their tables (the most findings first); the
/// rest are counted.
pub const MAX_LISTED: usize = 1000;
/// The most time buckets of the chart.
const MAX_BUCKETS: i64 = 96;

const STYLE: &str = include_str!("../assets/report.css");
const SCRIPT: &str = include_str!("../assets/report.js");

/// ATT&CK technique names by ID (`data/attack-techniques.tsv`).
const TECHNIQUE_NAMES: &str = include_str!("../data/attack-techniques.tsv");

/// The name of an ATT&CK technique (`T1059`), if the table has it.
pub fn technique_name(id: &str) -> Option<&'static str> {
    TECHNIQUE_NAMES
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .find(|(k, _)| *k == id)
        .map(|(_, name)| name)
}

/// What the report says of the hunt besides its findings.
#[derive(Debug, Clone, Default)]
pub struct ReportMeta {
    /// The hunt, as the report's subtitle (the inputs and rules).
    pub description: String,
    /// When the report was made (ms since the epoch).
    pub generated_ms: i64,
}

/// How many findings, and the first and last event time among them.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    count: u64,
    first: Option<i64>,
    last: Option<i64>,
}

/// Windows' FILETIME zero (1601-01-01T00:00:00Z) and the Unix epoch: what a record
/// whose clock was never set says, not when anything happened.
const UNSET_TIMES: [i64; 2] = [-11_644_473_600_000, 0];

/// An event time, unless it is an unset clock ([`UNSET_TIMES`]): such findings are
/// counted in the summary but left out of first and last times and the chart.
fn usable(time: Option<i64>) -> Option<i64> {
    time.filter(|t| !UNSET_TIMES.contains(t))
}

impl Span {
    fn add(&mut self, time: Option<i64>) {
        self.count += 1;
        if let Some(t) = usable(time) {
            self.first = Some(self.first.map_or(t, |f| f.min(t)));
            self.last = Some(self.last.map_or(t, |l| l.max(t)));
        }
    }

    fn merge(&mut self, o: &Span) {
        self.count += o.count;
        for t in [o.first, o.last].into_iter().flatten() {
            self.first = Some(self.first.map_or(t, |f| f.min(t)));
            self.last = Some(self.last.map_or(t, |l| l.max(t)));
        }
    }
}

/// A rule that fired, as the report shows it.
#[derive(Debug)]
struct RuleAgg {
    title: String,
    id: String,
    level: usize,
    tags: String,
    tactics: Vec<String>,
    techniques: Vec<(String, Option<String>)>,
    span: Span,
}

/// The findings as an HTML report, written when the hunt ends.
pub struct HtmlSink<W: Write> {
    out: W,
    meta: ReportMeta,
    rows: ExternalSort<RuleRow>,
    rules: HashMap<usize, RuleAgg>,
    hosts: HashMap<String, Span>,
    all: Span,
    by_level: [u64; 5],
}

impl<W: Write> HtmlSink<W> {
    /// Writes to `out` when the hunt ends.
    pub fn new(out: W, meta: ReportMeta) -> Self {
        HtmlSink {
            out,
            meta,
            rows: ExternalSort::new(ROW_BUFFER),
            rules: HashMap::new(),
            hosts: HashMap::new(),
            all: Span::default(),
            by_level: [0; 5],
        }
    }
}

impl<W: Write> Sink for HtmlSink<W> {
    fn detection(&mut self, d: &Detection<'_>) -> io::Result<()> {
        let row = row_of(d)?;
        let rule = self.rules.entry(d.rule_index).or_insert_with(|| RuleAgg {
            title: d.rule.title.clone(),
            id: d.rule.id.clone().unwrap_or_default(),
            level: level_rank(d.rule.level),
            tags: d.rule.tags.join(", "),
            tactics: dedup(rule_tactics(&d.rule.tags)),
            techniques: dedup(techniques(d.rule).collect()),
            span: Span::default(),
        });
        rule.span.add(row.time);
        match self.hosts.get_mut(row.computer.as_str()) {
            Some(s) => s.add(row.time),
            None => {
                let mut s = Span::default();
                s.add(row.time);
                self.hosts.insert(row.computer.clone(), s);
            }
        }
        self.all.add(row.time);
        self.by_level[row.level.min(4)] += 1;
        self.rows.push(RuleRow {
            rule: d.rule_index,
            row,
        })
    }

    fn finish(&mut self, report: &Report) -> io::Result<()> {
        let page = self.page(report)?;
        self.out.write_all(page.as_bytes())?;
        self.out.flush()
    }
}

/// Tactics ATT&CK added after Vigil's table of tactics was written, placed in kill-chain
/// order after the tactic named before them (ATT&CK v18 split Defense Evasion into
/// Stealth and Defense Impairment; SigmaHQ's rules tag both).
const LATER_TACTICS: [(&str, &str); 2] = [
    ("Defense Evasion", "Stealth"),
    ("Stealth", "Defense Impairment"),
];

/// The report's tactic columns in kill-chain order.
fn tactic_order() -> Vec<String> {
    let mut order: Vec<String> = tactic_names().map(String::from).collect();
    for (after, name) in LATER_TACTICS {
        let at = order
            .iter()
            .position(|t| t == after)
            .map_or(order.len(), |i| i + 1);
        order.insert(at, name.to_string());
    }
    order
}

/// The tactics a rule's tags name (`attack.defense-evasion` -> `Defense Evasion`): the
/// known ones by their names, any other `attack.<words>` tag (not a technique, group or
/// software ID) title-cased, so that a tactic newer than this table still gets a column.
fn rule_tactics(tags: &[String]) -> Vec<String> {
    let known = tactic_order();
    let mut out = Vec::new();
    for tag in tags {
        let Some(t) = tag.strip_prefix("attack.") else {
            continue;
        };
        let id_like = t.len() >= 5
            && t.starts_with(['t', 'T', 'g', 'G', 's', 'S'])
            && t[1..5].bytes().all(|b| b.is_ascii_digit());
        if id_like
            || t.is_empty()
            || !t
                .bytes()
                .all(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_')
        {
            continue;
        }
        let slug = t.to_ascii_lowercase().replace('-', "_");
        let name = known
            .iter()
            .find(|k| k.to_ascii_lowercase().replace(' ', "_") == slug)
            .cloned()
            .unwrap_or_else(|| {
                slug.split('_')
                    .map(|w| {
                        let mut c = w.chars();
                        c.next()
                            .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                            .unwrap_or_default()
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            });
        out.push(name);
    }
    out
}

fn dedup<T: PartialEq>(v: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(v.len());
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// `s` escaped for HTML text and attribute values.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// JSON made safe inside a `<script>` element: `<`, `>` and `&` (which JSON holds only
/// inside strings) as `\u` escapes, so nothing in it can close the element or open a
/// comment.
fn script_json(json: &[u8]) -> String {
    let mut o = Vec::with_capacity(json.len() + json.len() / 16);
    for &b in json {
        match b {
            b'<' => o.extend_from_slice(b"\\u003c"),
            b'>' => o.extend_from_slice(b"\\u003e"),
            b'&' => o.extend_from_slice(b"\\u0026"),
            _ => o.push(b),
        }
    }
    // serde_json writes UTF-8, and only ASCII was replaced: nothing is lossy here.
    String::from_utf8_lossy(&o).into_owned()
}

fn csp_hash(text: &str) -> String {
    format!(
        "'sha256-{}'",
        vigil_event::encode::base64(&Sha256::digest(text.as_bytes()))
    )
}

/// The Content-Security-Policy of the page: its own style and script, nothing else.
pub fn content_security_policy() -> String {
    format!(
        "default-src 'none'; style-src {}; script-src {}; img-src 'none'; font-src 'none'; \
         connect-src 'none'; media-src 'none'; object-src 'none'; frame-src 'none'; \
         worker-src 'none'; manifest-src 'none'; base-uri 'none'; form-action 'none'",
        csp_hash(STYLE),
        csp_hash(SCRIPT)
    )
}

fn time_text(t: Option<i64>) -> String {
    t.map(format_ms).unwrap_or_else(|| "-".into())
}

/// A table's cell with a time, sortable by its value.
fn time_cell(t: Option<i64>) -> String {
    format!("<td class=\"t\">{}</td>", esc(&time_text(t)))
}

/// Time buckets of the chart: a width from a ladder of round spans, so that the hunt's
/// time range takes at most [`MAX_BUCKETS`] of them.
struct Buckets {
    start: i64,
    width: i64,
    counts: Vec<[u64; 5]>,
}

impl Buckets {
    fn new(first: i64, last: i64) -> Self {
        const MIN: i64 = 60_000;
        const HOUR: i64 = 60 * MIN;
        const DAY: i64 = 24 * HOUR;
        let ladder = [
            MIN,
            5 * MIN,
            15 * MIN,
            HOUR,
            3 * HOUR,
            6 * HOUR,
            12 * HOUR,
            DAY,
            7 * DAY,
            30 * DAY,
            91 * DAY,
            365 * DAY,
        ];
        let n_for = |w: i64| last.div_euclid(w) - first.div_euclid(w) + 1;
        let width = ladder
            .iter()
            .copied()
            .find(|&w| n_for(w) <= MAX_BUCKETS)
            .unwrap_or_else(|| {
                let span = last.saturating_sub(first).max(1);
                (span / (MAX_BUCKETS - 1) / DAY + 1) * DAY
            });
        let start = first.div_euclid(width) * width;
        let n = usize::try_from(n_for(width)).unwrap_or(1).max(1);
        Buckets {
            start,
            width,
            counts: vec![[0; 5]; n],
        }
    }

    fn add(&mut self, t: i64, level: usize) {
        let i = (t - self.start).div_euclid(self.width);
        if let Some(b) = usize::try_from(i).ok().and_then(|i| self.counts.get_mut(i)) {
            b[level.min(4)] += 1;
        }
    }

    fn width_text(&self) -> String {
        let w = self.width;
        match w {
            w if w % (86_400_000) == 0 => {
                format!("{} day{}", w / 86_400_000, plural(w / 86_400_000))
            }
            w if w % 3_600_000 == 0 => format!("{} hour{}", w / 3_600_000, plural(w / 3_600_000)),
            w => format!("{} minute{}", w / 60_000, plural(w / 60_000)),
        }
    }

    /// The chart: stacked bars by level, one `rect` per level and bucket with findings.
    fn svg(&self) -> String {
        const W: f64 = 960.0;
        const H: f64 = 200.0;
        const LEFT: f64 = 48.0;
        const BOTTOM: f64 = 22.0;
        let max = self
            .counts
            .iter()
            .map(|b| b.iter().sum::<u64>())
            .max()
            .unwrap_or(0)
            .max(1);
        let n = self.counts.len() as f64;
        let bar = (W - LEFT) / n;
        let plot = H - BOTTOM - 6.0;
        let mut s = String::new();
        let _ = write!(
            s,
            "<svg id=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" \
             aria-label=\"findings by level over time\" xmlns=\"http://www.w3.org/2000/svg\">"
        );
        let _ = write!(
            s,
            "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{y}\" x2=\"{W}\" y2=\"{y}\"/>\
             <text class=\"tick\" x=\"{x}\" y=\"12\" text-anchor=\"end\">{max}</text>\
             <text class=\"tick\" x=\"{x}\" y=\"{y}\" text-anchor=\"end\">0</text>",
            y = H - BOTTOM,
            x = LEFT - 6.0,
        );
        for (i, b) in self.counts.iter().enumerate() {
            let from = self.start + self.width * i as i64;
            let to = from + self.width;
            let x = LEFT + bar * i as f64;
            let mut y = H - BOTTOM;
            for (level, &count) in b.iter().enumerate() {
                if count == 0 {
                    continue;
                }
                // Linear in the count, one pixel at least so that a single finding shows.
                let h = (count as f64 / max as f64 * plot).max(1.0);
                y -= h;
                let _ = write!(
                    s,
                    "<rect class=\"mark l{level}\" x=\"{x:.2}\" y=\"{y:.2}\" width=\"{w:.2}\" \
                     height=\"{h:.2}\" data-level=\"{name}\" data-count=\"{count}\" \
                     data-from=\"{from}\" data-to=\"{to}\"><title>{count} {name} from {} \
                     to {}</title></rect>",
                    esc(&format_ms(from)),
                    esc(&format_ms(to)),
                    w = (bar - 1.0).max(0.5),
                    name = LEVELS[level],
                );
            }
        }
        let ticks = 4.min(self.counts.len());
        for k in 0..=ticks {
            let i = (k * self.counts.len()).checked_div(ticks).unwrap_or(0);
            let t = self.start + self.width * i as i64;
            let x = LEFT + bar * i as f64;
            let anchor = match k {
                0 => "start",
                k if k == ticks => "end",
                _ => "middle",
            };
            let _ = write!(
                s,
                "<text class=\"tick\" x=\"{x:.2}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
                H - 6.0,
                esc(&format_ms(t)[..16].replace('T', " "))
            );
        }
        s.push_str("</svg>");
        s
    }
}

fn plural(n: i64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Strings the table's rows repeat, each written once and referred to by index.
#[derive(Default)]
struct Interner {
    index: HashMap<String, usize>,
    list: Vec<String>,
    /// Bytes of the strings (as they are; JSON adds a little).
    bytes: usize,
}

impl Interner {
    fn id(&mut self, s: &str) -> usize {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        self.bytes += s.len() + 3;
        self.list.push(s.to_string());
        self.index.insert(s.to_string(), self.list.len() - 1);
        self.list.len() - 1
    }
}

fn cut(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A technique under one tactic of the matrix.
#[derive(Default)]
struct Cell {
    span: Span,
    subs: BTreeMap<String, u64>,
}

impl<W: Write> HtmlSink<W> {
    /// The whole page.
    fn page(&mut self, report: &Report) -> io::Result<String> {
        // How many findings of each level the table holds: the highest levels first.
        let mut quota = [0u64; 5];
        let mut left = MAX_TABLE_ROWS as u64;
        for l in (0..5).rev() {
            quota[l] = self.by_level[l].min(left);
            left -= quota[l];
        }
        let mut buckets = match (self.all.first, self.all.last) {
            (Some(f), Some(l)) => Some(Buckets::new(f, l)),
            _ => None,
        };
        // The table: rows in time order, strings interned.
        let mut rule_ids: HashMap<usize, usize> = HashMap::new();
        let mut rule_list: Vec<usize> = Vec::new();
        let (mut hosts, mut files, mut channels) = (
            Interner::default(),
            Interner::default(),
            Interner::default(),
        );
        let mut table = Vec::new();
        let mut table_rows = 0u64;
        let mut untimed = 0u64;
        for r in self.rows.sorted()? {
            let RuleRow { rule, row } = r?;
            let level = row.level.min(4);
            match (usable(row.time), buckets.as_mut()) {
                (Some(t), Some(b)) => b.add(t, level),
                _ => untimed += 1,
            }
            let bytes = table.len() + hosts.bytes + files.bytes + channels.bytes;
            if quota[level] == 0 || bytes >= TABLE_BUDGET {
                continue;
            }
            quota[level] -= 1;
            table_rows += 1;
            let next = rule_list.len();
            let r_id = *rule_ids.entry(rule).or_insert(next);
            if r_id == next {
                rule_list.push(rule);
            }
            table.push(if table.is_empty() { b'[' } else { b',' });
            serde_json::to_writer(
                &mut table,
                &(
                    row.time,
                    r_id,
                    hosts.id(&row.computer),
                    channels.id(&row.channel),
                    &row.event_id,
                    files.id(&row.file),
                    row.record,
                    cut(&row.details, TABLE_DETAILS),
                ),
            )?;
        }
        if table.is_empty() {
            table.push(b'[');
        }
        table.push(b']');
        let rules_json: Vec<(&str, &str, usize, &str)> = rule_list
            .iter()
            .filter_map(|i| self.rules.get(i))
            .map(|r| (r.title.as_str(), r.id.as_str(), r.level, r.tags.as_str()))
            .collect();
        let mut data = Vec::with_capacity(table.len() + 4096);
        data.extend_from_slice(b"{\"levels\":");
        serde_json::to_writer(&mut data, &LEVELS)?;
        data.extend_from_slice(b",\"total\":");
        serde_json::to_writer(&mut data, &self.all.count)?;
        data.extend_from_slice(b",\"rules\":");
        serde_json::to_writer(&mut data, &rules_json)?;
        data.extend_from_slice(b",\"hosts\":");
        serde_json::to_writer(&mut data, &hosts.list)?;
        data.extend_from_slice(b",\"channels\":");
        serde_json::to_writer(&mut data, &channels.list)?;
        data.extend_from_slice(b",\"files\":");
        serde_json::to_writer(&mut data, &files.list)?;
        data.extend_from_slice(b",\"rows\":");
        data.extend_from_slice(&table);
        data.push(b'}');

        let mut p = String::with_capacity(data.len() + 64 * 1024);
        let title = "Vigil hunt report";
        let _ = write!(
            p,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <meta name=\"referrer\" content=\"no-referrer\">\
             <title>{title}</title><style>{STYLE}</style></head><body>\n",
            esc(&content_security_policy())
        );
        let _ = write!(
            p,
            "<header><h1>{title}</h1><p class=\"sub\">{}</p><p class=\"sub\">{} input \
             files, {} records, {:.1} MiB; generated {}</p></header>\n<main>\n",
            esc(&self.meta.description),
            report.files.len(),
            report.records,
            report.bytes as f64 / (1024.0 * 1024.0),
            esc(&format_ms(self.meta.generated_ms)),
        );
        self.totals(&mut p, report);
        if report.findings == 0 {
            p.push_str(
                "<section id=\"empty\"><h2>No findings</h2><p>The rules matched nothing in \
                 these inputs.</p></section>\n",
            );
        }
        self.errors(&mut p, report);
        if report.findings > 0 {
            p.push_str("<section id=\"timeline\"><h2>Findings by level over time</h2>");
            match &buckets {
                Some(b) => {
                    let _ = write!(
                        p,
                        "<p class=\"note\">Each bar is {} (UTC), its parts the levels; \
                         hover a part for its count.</p>{}",
                        esc(&b.width_text()),
                        b.svg()
                    );
                    p.push_str(&legend());
                }
                None => p.push_str("<p class=\"note\">No finding has an event time.</p>"),
            }
            if untimed > 0 && buckets.is_some() {
                let _ = write!(
                    p,
                    "<p class=\"note\" id=\"untimed\">Not in the chart: {untimed} of the \
                     findings, without an event time or with an unset one (1601-01-01 or \
                     1970-01-01 at midnight).</p>"
                );
            }
            p.push_str("</section>\n");
            self.rule_table(&mut p);
            self.host_table(&mut p);
            self.matrix(&mut p);
        }
        let omitted = self.all.count - table_rows;
        let _ = write!(
            p,
            "<section id=\"findings\"><h2>Findings</h2><p class=\"note\" id=\"table-note\">{}</p>\
             <div class=\"controls\"><label>Search <input id=\"search\" type=\"search\" \
             autocomplete=\"off\" placeholder=\"rule, host, file, details…\"></label>\
             <span id=\"count\"></span><button id=\"prev\" type=\"button\">◀</button>\
             <span id=\"page\"></span><button id=\"next\" type=\"button\">▶</button></div>\
             <table id=\"table\" class=\"data\"><thead><tr>\
             <th data-key=\"time\">time (UTC)</th><th data-key=\"level\">level</th>\
             <th data-key=\"rule\">rule</th><th data-key=\"host\">computer</th>\
             <th data-key=\"channel\">channel</th><th data-key=\"eid\">event</th>\
             <th data-key=\"file\">file#record</th><th data-key=\"details\">details</th>\
             </tr></thead><tbody></tbody></table></section>",
            if omitted > 0 {
                format!(
                    "The table holds {table_rows} of the {} findings (the highest levels \
                     first; details cut to {TABLE_DETAILS} characters): use --timeline or \
                     --format csv for all of them.",
                    self.all.count
                )
            } else {
                format!(
                    "All {} findings, details cut to {TABLE_DETAILS} characters. Click a \
                     column to sort.",
                    self.all.count
                )
            }
        );
        p.push_str("</main>\n<script type=\"application/json\" id=\"vigil-data\">");
        p.push_str(&script_json(&data));
        p.push_str("</script>\n<script>");
        p.push_str(SCRIPT);
        p.push_str("</script>\n</body></html>\n");
        Ok(p)
    }

    fn totals(&self, p: &mut String, report: &Report) {
        let _ = write!(
            p,
            "<section id=\"totals\"><div class=\"total\"><span class=\"n\" \
             data-level=\"all\">{}</span><span>findings</span></div>",
            report.findings
        );
        for l in (0..5).rev() {
            let _ = write!(
                p,
                "<div class=\"total l{l}\"><span class=\"n\" data-level=\"{name}\">{}</span>\
                 <span>{name}</span></div>",
                report.by_level[l],
                name = LEVELS[l]
            );
        }
        let _ = write!(
            p,
            "<div class=\"total\"><span class=\"n\" id=\"rule-count\">{}</span><span>rules \
             fired</span></div><div class=\"total\"><span class=\"n\" id=\"host-count\">{}\
             </span><span>computers</span></div>",
            self.rules.len(),
            self.hosts.len()
        );
        let _ = write!(
            p,
            "<p class=\"note\">first finding {}, last {} (event time, UTC)</p></section>",
            esc(&time_text(self.all.first)),
            esc(&time_text(self.all.last))
        );
    }

    fn errors(&self, p: &mut String, report: &Report) {
        let bad: Vec<_> = report.files.iter().filter(|f| f.errors > 0).collect();
        if bad.is_empty() && report.unrouted == 0 {
            return;
        }
        p.push_str("<section id=\"input-problems\"><h2>Input problems</h2><ul>");
        for f in bad {
            let first = report
                .errors
                .iter()
                .find(|e| e.path.as_path() == &*f.path)
                .map(|e| e.to_string())
                .unwrap_or_default();
            let _ = write!(
                p,
                "<li>{} ({} error{}{}): {}</li>",
                esc(&f.path.display().to_string()),
                f.errors,
                if f.errors == 1 { "" } else { "s" },
                if f.fatal { ", not read to the end" } else { "" },
                esc(&first)
            );
        }
        if report.unrouted > 0 {
            let _ = write!(
                p,
                "<li>{} JSON records have no logsource of their own; only rules without a \
                 logsource saw them (declare one with --logsource)</li>",
                report.unrouted
            );
        }
        p.push_str("</ul></section>\n");
    }

    fn rule_table(&self, p: &mut String) {
        let mut rules: Vec<&RuleAgg> = self.rules.values().collect();
        rules.sort_by(|a, b| {
            b.span
                .count
                .cmp(&a.span.count)
                .then(b.level.cmp(&a.level))
                .then(a.title.cmp(&b.title))
        });
        p.push_str(
            "<section id=\"rules\"><h2>Rules</h2><div class=\"scroll\"><table class=\"data\">\
             <thead><tr><th>findings</th><th>level</th><th>rule</th><th>ATT&amp;CK and other \
             tags</th><th>first</th><th>last</th></tr></thead><tbody>",
        );
        let more = rules.len().saturating_sub(MAX_LISTED);
        for r in rules.into_iter().take(MAX_LISTED) {
            let _ = write!(
                p,
                "<tr><td class=\"num\">{}</td><td class=\"lvl l{}\">{}</td><td title=\"{}\">{}</td>\
                 <td class=\"tags\">{}</td>{}{}</tr>",
                r.span.count,
                r.level,
                LEVELS[r.level],
                esc(&r.id),
                esc(&r.title),
                esc(&r.tags),
                time_cell(r.span.first),
                time_cell(r.span.last)
            );
        }
        p.push_str("</tbody></table></div>");
        more_note(p, more, "rules");
        p.push_str("</section>\n");
    }

    fn host_table(&self, p: &mut String) {
        let mut hosts: Vec<(&String, &Span)> = self.hosts.iter().collect();
        hosts.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
        p.push_str(
            "<section id=\"hosts\"><h2>Computers</h2><div class=\"scroll\"><table \
             class=\"data\"><thead><tr><th>findings</th><th>computer</th><th>first</th>\
             <th>last</th></tr></thead><tbody>",
        );
        let more = hosts.len().saturating_sub(MAX_LISTED);
        for (h, s) in hosts.into_iter().take(MAX_LISTED) {
            let name = if h.is_empty() {
                "<span class=\"none\">(none)</span>".to_string()
            } else {
                esc(h)
            };
            let _ = write!(
                p,
                "<tr><td class=\"num\">{}</td><td>{name}</td>{}{}</tr>",
                s.count,
                time_cell(s.first),
                time_cell(s.last)
            );
        }
        p.push_str("</tbody></table></div>");
        more_note(p, more, "computers");
        p.push_str("</section>\n");
    }

    /// The ATT&CK matrix: tactics as columns in kill-chain order, the techniques their
    /// rules name under them, with counts; then the techniques with first and last times.
    fn matrix(&self, p: &mut String) {
        const NO_TACTIC: &str = "(no tactic tag)";
        let order = tactic_order();
        let mut cells: BTreeMap<&str, BTreeMap<String, Cell>> = BTreeMap::new();
        let mut tactic_spans: HashMap<&str, Span> = HashMap::new();
        let mut technique_spans: BTreeMap<String, (Span, Vec<&str>)> = BTreeMap::new();
        for r in self.rules.values() {
            for t in &r.tactics {
                tactic_spans.entry(t.as_str()).or_default().merge(&r.span);
            }
            if r.techniques.is_empty() {
                continue;
            }
            let under: Vec<&str> = if r.tactics.is_empty() {
                vec![NO_TACTIC]
            } else {
                r.tactics.iter().map(String::as_str).collect()
            };
            // A rule tagged with a technique twice (T1059 and T1059.001) counts once.
            let mut seen: Vec<&str> = Vec::new();
            for (tech, sub) in &r.techniques {
                for &t in &under {
                    let cell = cells.entry(t).or_default().entry(tech.clone()).or_default();
                    if !seen.contains(&tech.as_str()) {
                        cell.span.merge(&r.span);
                    }
                    if let Some(s) = sub {
                        *cell.subs.entry(s.clone()).or_default() += r.span.count;
                    }
                }
                if !seen.contains(&tech.as_str()) {
                    let e = technique_spans.entry(tech.clone()).or_default();
                    e.0.merge(&r.span);
                    for t in &under {
                        if !e.1.contains(t) {
                            e.1.push(t);
                        }
                    }
                    seen.push(tech);
                }
            }
        }
        // Known tactics in kill-chain order, then any others by name, then techniques
        // whose rules name no tactic.
        let mut others: Vec<&str> = tactic_spans
            .keys()
            .copied()
            .filter(|t| !order.iter().any(|o| o == t))
            .collect();
        others.sort_unstable();
        let columns: Vec<&str> = order
            .iter()
            .map(String::as_str)
            .chain(others)
            .chain([NO_TACTIC])
            .filter(|t| tactic_spans.contains_key(t) || cells.contains_key(t))
            .collect();
        p.push_str(
            "<section id=\"attack\"><h2>ATT&amp;CK tactics and techniques</h2><p class=\"note\">\
             From the rules' attack.* tags: tactics in kill-chain order, each technique under \
             the tactics its rules name, with the findings of those rules; sub-techniques by \
             ID.</p>",
        );
        if columns.is_empty() {
            p.push_str("<p>No rule that fired has an ATT&amp;CK tag.</p></section>\n");
            return;
        }
        p.push_str("<div class=\"scroll\"><table id=\"matrix\"><thead><tr>");
        for t in &columns {
            let s = tactic_spans.get(t).copied().unwrap_or_default();
            let _ = write!(
                p,
                "<th title=\"first {} last {}\">{}<span class=\"cnt\">{}</span></th>",
                esc(&time_text(s.first)),
                esc(&time_text(s.last)),
                esc(t),
                s.count
            );
        }
        p.push_str("</tr></thead><tbody><tr>");
        for t in &columns {
            p.push_str("<td>");
            let mut list: Vec<(&String, &Cell)> =
                cells.get(t).map(|m| m.iter().collect()).unwrap_or_default();
            list.sort_by(|a, b| b.1.span.count.cmp(&a.1.span.count).then(a.0.cmp(b.0)));
            for (id, c) in list {
                let _ = write!(
                    p,
                    "<div class=\"tech\" data-technique=\"{}\" title=\"first {} last {}\">\
                     <span class=\"id\">{}</span> {}<span class=\"cnt\">{}</span>",
                    esc(id),
                    esc(&time_text(c.span.first)),
                    esc(&time_text(c.span.last)),
                    esc(id),
                    esc(technique_name(id).unwrap_or("")),
                    c.span.count
                );
                if !c.subs.is_empty() {
                    let subs: Vec<String> = c
                        .subs
                        .iter()
                        .map(|(s, n)| format!("{} ({n})", esc(s)))
                        .collect();
                    let _ = write!(p, "<div class=\"subs\">{}</div>", subs.join(", "));
                }
                p.push_str("</div>");
            }
            p.push_str("</td>");
        }
        p.push_str("</tr></tbody></table></div>");
        p.push_str(
            "<h3>Techniques</h3><div class=\"scroll\"><table class=\"data\" id=\"techniques\">\
             <thead><tr><th>findings</th><th>technique</th><th>name</th><th>tactics</th>\
             <th>first</th><th>last</th></tr></thead><tbody>",
        );
        let mut techs: Vec<_> = technique_spans.iter().collect();
        techs.sort_by(|a, b| b.1 .0.count.cmp(&a.1 .0.count).then(a.0.cmp(b.0)));
        for (id, (s, under)) in techs {
            let _ = write!(
                p,
                "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td>{}{}</tr>",
                s.count,
                esc(id),
                esc(technique_name(id).unwrap_or("")),
                esc(&under.join(", ")),
                time_cell(s.first),
                time_cell(s.last)
            );
        }
        p.push_str("</tbody></table></div></section>\n");
    }
}

/// Says how many entries a list leaves out, if any.
fn more_note(p: &mut String, more: usize, what: &str) {
    if more > 0 {
        let _ = write!(
            p,
            "<p class=\"note more\">and {more} more {what} with fewer findings, not listed</p>"
        );
    }
}

fn legend() -> String {
    let mut s = String::from("<div class=\"legend\">");
    for l in (0..5).rev() {
        let _ = write!(s, "<span><i class=\"sw l{l}\"></i>{}</span>", LEVELS[l]);
    }
    s.push_str("</div>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::Detection;
    use crate::output::Row;

    /// Rules of the given levels, built.
    fn engine(levels: &[&str], title_len: usize) -> vigil_sigma::Engine {
        let mut loader = vigil_sigma::Loader::new();
        for (i, level) in levels.iter().enumerate() {
            loader.add(
                &format!("r{i}.yml"),
                &format!(
                    "title: Rule {i} {}\nlevel: {level}\ntags: [attack.execution, attack.t1059]\n\
                     logsource: {{product: windows, category: process_creation}}\n\
                     detection: {{sel: {{Image: x{i}}}, condition: sel}}\n",
                    "x".repeat(title_len)
                ),
            );
        }
        let built = loader.build();
        assert!(built.errors.is_empty(), "{:?}", built.errors);
        built.engine
    }

    /// Feeds findings (rule index, host, file, details) to a report; the page.
    fn page_of(
        engine: &vigil_sigma::Engine,
        findings: impl Iterator<Item = (usize, String, String, String)>,
    ) -> String {
        let mut sink = HtmlSink::new(Vec::new(), ReportMeta::default());
        let mut report = Report::default();
        for (n, (rule, computer, file, details)) in findings.enumerate() {
            let meta = &engine.rules()[rule];
            let row = Row {
                time: Some(1_700_000_000_000 + n as i64 * 1000),
                level: level_rank(meta.level),
                title: meta.title.clone(),
                id: String::new(),
                computer,
                channel: "Security".into(),
                event_id: "4688".into(),
                file,
                record: n as u64,
                details,
            };
            let d = Detection {
                rule: meta,
                rule_index: rule,
                time_ms: row.time,
                events: Vec::new(),
                correlation: None,
                rendered: Some(serde_json::to_vec(&row).expect("row")),
            };
            sink.detection(&d).expect("detection");
            report.findings += 1;
            report.by_level[row.level] += 1;
        }
        sink.finish(&report).expect("finish");
        String::from_utf8(sink.out).expect("utf-8")
    }

    /// The JSON the page embeds.
    fn data_of(page: &str) -> serde_json::Value {
        let start = page.find("id=\"vigil-data\">").expect("data") + "id=\"vigil-data\">".len();
        let end = start + page[start..].find("</script>").expect("end");
        serde_json::from_str(&page[start..end]).expect("JSON")
    }

    #[test]
    fn table_keeps_the_highest_levels_when_capped() {
        let engine = engine(&["critical", "high", "low"], 0);
        let rule_of = |n: usize| match n {
            0..10 => 0,
            10..20 => 1,
            _ => 2,
        };
        let total = MAX_TABLE_ROWS + 20;
        // The low ones first in time: the cap still keeps the higher levels.
        let page = page_of(
            &engine,
            (0..total).map(|n| {
                let n = total - 1 - n;
                (rule_of(n), "h".into(), "/f".into(), "d".into())
            }),
        );
        let data = data_of(&page);
        let rows = data["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), MAX_TABLE_ROWS);
        let mut by_level = [0usize; 5];
        for r in rows {
            let rule = &data["rules"][r[1].as_u64().expect("rule") as usize];
            by_level[rule[2].as_u64().expect("level") as usize] += 1;
        }
        assert_eq!(by_level, [0, MAX_TABLE_ROWS - 20, 0, 10, 10]);
        assert!(page.contains(&format!(
            "The table holds {MAX_TABLE_ROWS} of the {total} findings"
        )));
    }

    #[test]
    fn page_stays_under_5_mb_whatever_the_findings() {
        // Long titles, every finding on its own computer and file, long details.
        let levels: Vec<&str> = (0..300).map(|i| ["low", "high"][i % 2]).collect();
        let engine = engine(&levels, 200);
        let page = page_of(
            &engine,
            (0..40_000).map(|n| {
                (
                    n % 300,
                    format!("host-{n}-{}", "h".repeat(60)),
                    format!("/logs/{n}/{}.evtx", "f".repeat(120)),
                    format!("{n} {}", "d".repeat(400)),
                )
            }),
        );
        assert!(page.len() < 5_000_000, "{} bytes", page.len());
        let data = data_of(&page);
        let rows = data["rows"].as_array().expect("rows").len();
        assert!(rows > 1000 && rows < 40_000, "{rows}");
        assert!(page.contains("more computers with fewer findings, not listed"));
        assert!(page.contains(&format!("The table holds {rows} of the 40000 findings")));
    }

    #[test]
    fn script_json_cannot_close_the_script_and_stays_json() {
        let hostile = "</script><script>alert(1)</script><!-- & é 🦀 \u{2028}";
        let json = serde_json::to_vec(&serde_json::json!({ "t": hostile })).expect("json");
        let safe = script_json(&json);
        assert!(!safe.contains('<') && !safe.contains('>') && !safe.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&safe).expect("still JSON");
        assert_eq!(back["t"], hostile);
    }

    #[test]
    fn html_escape_leaves_no_markup() {
        assert_eq!(
            esc("<img src=x onerror=\"a('b')\">&"),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
        );
    }

    #[test]
    fn buckets_cover_the_range_in_at_most_max_buckets() {
        for (first, last) in [
            (0, 0),
            (1_500_000_000_000, 1_500_000_000_500),
            (1_500_000_000_000, 1_500_000_000_000 + 3_600_000 * 30),
            (1_400_000_000_000, 1_700_000_000_000),
            (-86_400_000 * 365 * 60, 86_400_000 * 365 * 400),
        ] {
            let mut b = Buckets::new(first, last);
            assert!(b.counts.len() as i64 <= MAX_BUCKETS, "{first} {last}");
            b.add(first, 4);
            b.add(last, 0);
            assert_eq!(b.counts[0][4], 1);
            assert_eq!(b.counts[b.counts.len() - 1][0], 1);
        }
    }

    #[test]
    fn tactics_in_kill_chain_order_and_newer_ones_by_name() {
        let order = tactic_order();
        let at = |n: &str| order.iter().position(|t| t == n).expect(n);
        assert!(at("Reconnaissance") < at("Execution") && at("Execution") < at("Impact"));
        assert_eq!(at("Stealth"), at("Defense Evasion") + 1);
        assert_eq!(at("Defense Impairment"), at("Stealth") + 1);
        let tags: Vec<String> = [
            "attack.defense-evasion",
            "attack.command_and_control",
            "attack.t1059.001",
            "attack.g0016",
            "attack.s0002",
            "attack.stealth",
            "attack.some-new-tactic",
            "cve.2021-44228",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            rule_tactics(&tags),
            [
                "Defense Evasion",
                "Command and Control",
                "Stealth",
                "Some New Tactic"
            ]
        );
    }

    #[test]
    fn technique_names_come_from_the_table() {
        assert_eq!(
            technique_name("T1059"),
            Some("Command and Scripting Interpreter")
        );
        assert_eq!(technique_name("T9999"), None);
        for line in TECHNIQUE_NAMES.lines().filter(|l| !l.starts_with('#')) {
            let (id, name) = line.split_once('\t').expect("ID<TAB>name");
            assert!(id.len() == 5 && id.starts_with('T'), "{line}");
            assert!(!name.trim().is_empty(), "{line}");
        }
    }
}
