//! `vigil hunt`: Sigma rules over EVTX and JSON logs, offline.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::cell::Cell;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use vigil_hunt::{
    CsvSink, HtmlSink, HuntConfig, InputFile, JsonlSink, Level, LogSource, Progress, Render,
    ReportMeta, Sink, TableSink, Tee, TimelineFormat, TimelineSink,
};

/// Exit code for a usage error (bad arguments, rules that cannot be read).
const EXIT_USAGE: u8 = 2;
/// Exit code when no input could be read at all.
const EXIT_NO_INPUT: u8 = 3;
/// Bytes of output written at a time. Findings with their events run to kilobytes each:
/// large writes of whole pages cost the kernel far less than the default 8 KiB (measured:
/// a third less system time over the flat corpus).
const OUTPUT_BUFFER: usize = 1 << 20;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned, coloured on a terminal, sorted by event time, then a summary.
    Table,
    /// One OCSF Detection Finding (class 2004) per line.
    Jsonl,
    /// A timeline sorted by event time.
    Csv,
}

/// Timeline formats (Timesketch's importers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TimelineArg {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// Minimum rule levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MinLevel {
    /// Everything.
    Informational,
    /// Low and above.
    Low,
    /// Medium and above.
    Medium,
    /// High and above.
    High,
    /// Critical only.
    Critical,
}

impl From<MinLevel> for Level {
    fn from(l: MinLevel) -> Level {
        match l {
            MinLevel::Informational => Level::Informational,
            MinLevel::Low => Level::Low,
            MinLevel::Medium => Level::Medium,
            MinLevel::High => Level::High,
            MinLevel::Critical => Level::Critical,
        }
    }
}

/// `vigil hunt` arguments.
#[derive(Debug, Args)]
#[command(after_help = "\
Inputs: .evtx, .json (an object, an array, or objects one after another), .jsonl and
.ndjson (one object per line), and the .gz form of each; directories are searched
recursively. EVTX records and EVTX-shaped JSON (Channel, EventID) and Vigil's OCSF
events are routed to the rules of their logsource; other JSON takes --logsource.

Exit codes: 0 whether or not anything was found; 2 usage error (bad arguments,
unreadable rules); 3 no input could be read at all. Unreadable or corrupt files are
reported on stderr (file, offset, reason) and the rest is still hunted.

A progress line (files, records, MB/s, findings) is shown on stderr when it is a
terminal; -q/--quiet hides it.")]
pub struct HuntArgs {
    /// Log files or directories to hunt through.
    #[arg(required_unless_present = "store", value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Hunt through the stored history of a store directory (the agent's `[store] dir`):
    /// its Parquet files, read back as the agent's JSON lines (the retro-hunt).
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// With --store: only events of the last DURATION (`30m`, `12h`, `7d`).
    #[arg(long, value_name = "DURATION", requires = "store", conflicts_with = "from", value_parser = parse_duration_ms)]
    since: Option<i64>,
    /// With --store: only events at or after TIME (RFC 3339 or a date).
    #[arg(long, value_name = "TIME", requires = "store", value_parser = parse_time_ms)]
    from: Option<i64>,
    /// With --store: only events at or before TIME (RFC 3339 or a date).
    #[arg(long, value_name = "TIME", requires = "store", visible_alias = "until", value_parser = parse_time_ms)]
    to: Option<i64>,
    /// Sigma rule files or directories (recursive); may be repeated. Default: the paths in
    /// $VIGIL_RULES, separated by ':'.
    #[arg(
        short,
        long,
        required = true,
        value_name = "DIR_OR_FILE",
        env = "VIGIL_RULES",
        value_delimiter = ':'
    )]
    rules: Vec<PathBuf>,
    /// Values of an `expand` placeholder: `NAME=VALUE[,VALUE...]` (`%NAME%` in rules);
    /// may be repeated.
    #[arg(long = "placeholder", value_name = "NAME=VALUES", value_parser = crate::cmd::rules::parse_placeholder)]
    placeholders: Vec<(String, Vec<String>)>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
    /// Write findings to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Also write a self-contained HTML report to FILE: totals by level, findings by
    /// level over time, rules, computers, ATT&CK tactics and techniques, and a searchable
    /// table of the findings. It fetches nothing when opened.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Also write a timeline that Timesketch imports to FILE (columns message, datetime,
    /// timestamp_desc, and the finding's fields), sorted by event time; its format by the
    /// extension (.csv, .jsonl) or --timeline-format.
    #[arg(long, value_name = "FILE")]
    timeline: Option<PathBuf>,
    /// The format of the --timeline file (default: by its extension).
    #[arg(long, value_enum, value_name = "FORMAT", requires = "timeline")]
    timeline_format: Option<TimelineArg>,
    /// Report only rules of this level or above.
    #[arg(long, value_enum, value_name = "LEVEL")]
    min_level: Option<MinLevel>,
    /// Threat-intelligence indicators matched too: lists of hashes, addresses, networks
    /// and domains, STIX 2.1 bundles, MISP events (files or directories; repeatable).
    /// Windows records are matched by their Sysmon fields (Hashes, SourceIp,
    /// DestinationIp, QueryName, DestinationHostname, QueryResults), Vigil's events as the
    /// agent matches them.
    #[arg(long, value_name = "DIR_OR_FILE")]
    intel: Vec<PathBuf>,
    /// The level of indicators' findings.
    #[arg(long, value_enum, value_name = "LEVEL", default_value = "high")]
    intel_level: MinLevel,
    /// The logsource of JSON records that do not say what they are, e.g.
    /// `product=linux,service=auditd`.
    #[arg(long, value_name = "product=..,category=..,service=..", value_parser = parse_logsource)]
    logsource: Option<LogSource>,
    /// The field holding the event time of JSON records (dotted path). Default: the first
    /// present of @timestamp, timestamp, time, UtcTime, TimeCreated, EventTime.
    #[arg(long, value_name = "NAME")]
    time_field: Option<String>,
    /// The longest record read: a JSON line, or a value of a `.json` file (bytes, or with a
    /// K, M or G suffix). A longer one is reported (file, line or offset) and skipped, and
    /// the rest of the file is read.
    #[arg(long, value_name = "SIZE", default_value = "16M", value_parser = parse_size)]
    max_record: usize,
    /// Matching threads (default: one per CPU).
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
}

/// Erases the progress line, if one is shown.
fn clear_progress(shown: &Cell<bool>) {
    if shown.replace(false) {
        eprint!("\r\x1b[2K");
    }
}

/// A sink that erases the progress line before output reaches the terminal it shares.
struct ClearProgress<'a> {
    inner: Box<dyn Sink>,
    shown: &'a Cell<bool>,
    to_terminal: bool,
}

impl Sink for ClearProgress<'_> {
    fn detection(&mut self, d: &vigil_hunt::Detection<'_>) -> std::io::Result<()> {
        if self.to_terminal {
            clear_progress(self.shown);
        }
        self.inner.detection(d)
    }
    fn finish(&mut self, report: &vigil_hunt::Report) -> std::io::Result<()> {
        clear_progress(self.shown);
        self.inner.finish(report)
    }
}

/// A size in bytes: a number, with an optional K, M or G suffix (powers of 1024).
pub(crate) fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (digits, shift) = match t.as_bytes().last() {
        Some(b'k' | b'K') => (&t[..t.len() - 1], 10),
        Some(b'm' | b'M') => (&t[..t.len() - 1], 20),
        Some(b'g' | b'G') => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size (bytes, or with K, M or G)"))?;
    n.checked_mul(1 << shift).filter(|n| *n > 0).ok_or_else(|| {
        format!(
            "`{s}` is not a size between 1 byte and {} bytes",
            usize::MAX
        )
    })
}

/// A duration (`30s`, `15m`, `12h`, `7d`) in milliseconds.
fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let bad = || format!("`{s}` is not a duration: a whole number and s, m, h or d (30m, 12h, 7d)");
    let unit = t.chars().last().ok_or_else(bad)?;
    let n: i64 = t[..t.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let ms = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(ms).filter(|v| *v >= 0).ok_or_else(bad)
}

/// A time (RFC 3339, a date, or epoch milliseconds) in milliseconds since the epoch.
fn parse_time_ms(s: &str) -> Result<i64, String> {
    vigil_event::time::parse_timestamp(s)
        .ok_or_else(|| format!("`{s}` is not a time (2026-01-02T12:00:00Z, 2026-01-02, epoch ms)"))
}

/// The time range of a retro-hunt, if bounded (epoch ms, inclusive).
fn hunt_range(args: &HuntArgs) -> Option<(i64, i64)> {
    let from = args
        .since
        .map(|d| vigil_event::time::now_ms() - d)
        .or(args.from);
    match (from, args.to) {
        (None, None) => None,
        (f, t) => Some((f.unwrap_or(i64::MIN), t.unwrap_or(i64::MAX))),
    }
}

/// The store's Parquet files (within the range's hour partitions) and the events still in
/// its log as inputs whose rows the hunt matches straight from their columns, rows
/// outside the range left out.
fn store_inputs(dir: &std::path::Path, range: Option<(i64, i64)>) -> Result<Vec<InputFile>> {
    let snap = crate::cmd::query_store::snapshot(dir, range)?;
    let mut out = Vec::new();
    for (table, f) in snap
        .files
        .iter()
        .flat_map(|(t, files)| files.iter().map(move |f| (t, f)))
    {
        let p = f.path.clone();
        let schema = vigil_store::schema_of(table);
        let opener = vigil_hunt::Opener(std::sync::Arc::new(move || {
            vigil_query::retro::parquet(&p, range, schema.clone())
        }));
        out.push(InputFile {
            path: f.path.clone().into(),
            format: vigil_hunt::Format::JsonLines,
            gzip: false,
            size: f.bytes,
            opener: Some(opener),
        });
    }
    for (table, batches) in snap.log {
        if batches.is_empty() {
            continue;
        }
        let size = batches
            .iter()
            .map(|b| b.get_array_memory_size() as u64)
            .sum();
        let opener = vigil_hunt::Opener(std::sync::Arc::new(move || {
            Ok(vigil_query::retro::batches(batches.clone(), range, size))
        }));
        // Named after the log and the table, so a finding's source says where it came from.
        out.push(InputFile {
            path: dir.join("wal").join(format!("{table}.log")).into(),
            format: vigil_hunt::Format::JsonLines,
            gzip: false,
            size,
            opener: Some(opener),
        });
    }
    Ok(out)
}

fn parse_logsource(s: &str) -> Result<LogSource, String> {
    vigil_hunt::parse_logsource(s).map_err(|e| e.to_string())
}

/// Creates an output file the hunt writes (`what`: report, timeline), with an error
/// naming it.
fn create(path: &std::path::Path, what: &str) -> Result<BufWriter<std::fs::File>> {
    let file = std::fs::File::create(path)
        .with_context(|| format!("cannot create the {what} file {}", path.display()))?;
    Ok(BufWriter::with_capacity(OUTPUT_BUFFER, file))
}

/// Runs `vigil hunt`; `quiet` (the global `-q`/`--quiet`) silences the progress line.
pub fn run(args: HuntArgs, quiet: bool) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    // The files asked for are created first: a path that cannot be written is told before
    // the hunt, not after it.
    let timeline_format = match (&args.timeline, args.timeline_format) {
        (None, _) => None,
        (Some(_), Some(TimelineArg::Csv)) => Some(TimelineFormat::Csv),
        (Some(_), Some(TimelineArg::Jsonl)) => Some(TimelineFormat::Jsonl),
        (Some(p), None) => match TimelineFormat::of_name(p) {
            Some(f) => Some(f),
            None => {
                tracing::error!(
                    "--timeline {}: the format is not told by the extension (.csv, .jsonl): \
                     give --timeline-format",
                    p.display()
                );
                return Ok(ExitCode::from(EXIT_USAGE));
            }
        },
    };
    let report_file = args
        .report
        .as_ref()
        .map(|p| create(p, "report"))
        .transpose()?;
    let timeline_file = args
        .timeline
        .as_ref()
        .map(|p| create(p, "timeline"))
        .transpose()?;
    let config = crate::cmd::rules::engine_config(args.placeholders.clone());
    let rules = match vigil_hunt::load_rules_with(&args.rules, config) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{e}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let engine = &rules.built.engine;
    tracing::info!(
        files = rules.files,
        loaded = rules.built.loaded,
        failed = rules.built.errors.len(),
        seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
        "rules loaded"
    );
    tracing::debug!(
        read = format!("{:.3}", rules.timing.read.as_secs_f64()),
        parse = format!("{:.3}", rules.timing.parse.as_secs_f64()),
        build = format!("{:.3}", rules.timing.build.as_secs_f64()),
        "rule loading time (s)"
    );
    // What loading said of the rules, as every command that loads rules prints it; on
    // stderr, as stdout holds the findings.
    let mut notes = Vec::new();
    crate::cmd::rules::report_built(&rules.built, &mut notes)?;
    for line in String::from_utf8_lossy(&notes).lines() {
        tracing::warn!("{line}");
    }

    let mut files: Vec<InputFile> = Vec::new();
    let mut unreadable = 0usize;
    for p in &args.paths {
        match vigil_hunt::discover(std::slice::from_ref(p)) {
            Ok((found, skipped)) => {
                files.extend(found);
                for s in skipped {
                    unreadable += 1;
                    tracing::warn!("{s}");
                }
            }
            Err(e) => {
                unreadable += 1;
                tracing::error!("{e}");
            }
        }
    }
    if let Some(dir) = &args.store {
        let range = hunt_range(&args);
        match store_inputs(dir, range) {
            Ok(found) => {
                tracing::info!(files = found.len(), "store files in range");
                files.extend(found);
            }
            Err(e) => {
                unreadable += 1;
                tracing::error!("{e:#}");
            }
        }
    }
    if files.is_empty() {
        tracing::error!(
            "no input could be read ({unreadable} path(s) unreadable or not logs Vigil reads)"
        );
        return Ok(ExitCode::from(EXIT_NO_INPUT));
    }

    let intel = if args.intel.is_empty() {
        None
    } else {
        let (set, report) = vigil_agent::intel::load(&vigil_agent::IntelConfig {
            paths: args.intel.clone(),
            ..vigil_agent::IntelConfig::default()
        });
        report.log();
        Some(std::sync::Arc::new(vigil_hunt::HuntIntel::new(
            set,
            &report.sources,
            Level::from(args.intel_level),
        )))
    };
    let config = HuntConfig {
        intel,
        threads: args
            .threads
            .map(usize::from)
            .unwrap_or_else(|| HuntConfig::default().threads),
        min_level: args.min_level.map(Level::from),
        logsource: args.logsource,
        time_field: args.time_field,
        max_record: args.max_record,
        // Findings are rendered by the matching threads, in parallel.
        // The report and the timeline read timeline rows: with them, OCSF lines are
        // written by the collecting thread from the events.
        render: match args.format {
            OutputFormat::Jsonl if report_file.is_some() || timeline_file.is_some() => Render::None,
            OutputFormat::Jsonl => Render::Jsonl,
            OutputFormat::Table | OutputFormat::Csv => Render::Timeline,
        },
        ..HuntConfig::default()
    };
    let to_terminal = args.output.is_none() && std::io::stdout().is_terminal();
    let out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(BufWriter::with_capacity(
            OUTPUT_BUFFER,
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(BufWriter::with_capacity(
            OUTPUT_BUFFER,
            std::io::stdout().lock(),
        )),
    };
    let main: Box<dyn Sink> = match args.format {
        OutputFormat::Table => Box::new(TableSink::new(out, to_terminal)),
        OutputFormat::Jsonl => Box::new(JsonlSink::new(out)),
        OutputFormat::Csv => Box::new(CsvSink::new(out)),
    };
    let mut sinks = vec![main];
    if let Some(file) = report_file {
        let meta = ReportMeta {
            description: format!(
                "vigil hunt over {} input files with {} rules from {}",
                files.len(),
                rules.built.loaded,
                args.rules
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            generated_ms: vigil_event::time::now_ms(),
        };
        sinks.push(Box::new(HtmlSink::new(file, meta)));
    }
    let mut untimed = None;
    if let (Some(file), Some(format)) = (timeline_file, timeline_format) {
        let sink = TimelineSink::new(file, format);
        untimed = Some(sink.untimed());
        sinks.push(Box::new(sink));
    }
    let inner: Box<dyn Sink> = if sinks.len() == 1 {
        sinks.remove(0)
    } else {
        Box::new(Tee(sinks))
    };
    let show_progress = !quiet && std::io::stderr().is_terminal();
    let shown = Cell::new(false);
    let mut sink = ClearProgress {
        inner,
        shown: &shown,
        to_terminal,
    };
    let mut progress = |p: &Progress| {
        let secs = p.elapsed.as_secs_f64().max(0.001);
        eprint!(
            "\r\x1b[2K{}/{} files  {} records  {:.1} MB/s  {} findings",
            p.files_done,
            p.files_total,
            p.records,
            p.bytes as f64 / 1e6 / secs,
            p.findings
        );
        shown.set(true);
    };
    let report = vigil_hunt::hunt(
        engine,
        &files,
        &config,
        &mut sink,
        if show_progress {
            Some(&mut progress)
        } else {
            None
        },
    );
    clear_progress(&shown);
    let report = report.context("hunt failed")?;
    if let Some(n) = untimed.map(|n| n.load(std::sync::atomic::Ordering::Relaxed)) {
        if n > 0 {
            tracing::warn!(
                "{n} findings have no event time and are not in the timeline (Timesketch \
                 needs one); they are in the other outputs"
            );
        }
    }
    for e in &report.errors {
        tracing::warn!("{e}");
    }
    for f in report
        .files
        .iter()
        .filter(|f| f.errors > config.max_errors_per_file)
    {
        tracing::warn!(
            "{}: {} more errors not shown",
            f.path.display(),
            f.errors - config.max_errors_per_file
        );
    }
    tracing::info!(
        files = report.files.len(),
        records = report.records,
        findings = report.findings,
        seconds = format!("{:.2}", report.elapsed.as_secs_f64()),
        "hunt done"
    );
    if !report.any_input_read() {
        tracing::error!("no input could be read");
        return Ok(ExitCode::from(EXIT_NO_INPUT));
    }
    Ok(ExitCode::SUCCESS)
}
