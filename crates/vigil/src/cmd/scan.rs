//! `vigil scan`: files and folders matched against YARA rules (yara-x), offline and in
//! parallel.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::collections::BTreeMap;
use std::io::{BufWriter, IsTerminal, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vigil_yara::scan::Cache;
use vigil_yara::{
    FileScanner, Outcome, Owners, RuleSet, ScanConfig, Skip, Verdict, VerdictCache, Walk, WalkItem,
    EXTERNALS,
};

/// Exit code for a usage error (bad arguments, no rule that loads).
const EXIT_USAGE: u8 = 2;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScanFormat {
    /// One line per (rule, file) match, aligned.
    Table,
    /// One OCSF Detection Finding (class 2004) per match and line.
    Jsonl,
    /// A header, then one row per match.
    Csv,
}

/// `vigil scan` arguments.
#[derive(Debug, Args)]
#[command(after_help = "\
Rules: .yar and .yara files, or directories of them (recursive), compiled into one set
with one namespace per file. A rule file that does not compile is reported with
file:line:column and the reason and left out; the rest is used.

External variables, set per file: filename (the name), filepath (the whole path),
extension (`.jpg`: the last suffix with its dot, lower-cased), filetype (from the first
bytes: ELF, EXE, MACH-O, ZIP, GZIP, PDF, RTF, MDMP, PHP, Python, SHELL, script, TEXT,
data), owner (the file owner's user name). -d NAME=VALUE fixes one for every file.

Files are read, never memory-mapped; FIFOs, sockets and devices are never opened;
symlinks inside folders are not followed; /proc, /sys and other pseudo filesystems are
not entered. Every file not scanned is reported on stderr with the reason, and counted
in the summary.

Exit codes: 0 whether or not anything matched; 1 some rule file was refused (the rest
still scanned); 2 usage error (bad arguments, no rule file loads); 3 runtime error.")]
pub struct ScanArgs {
    /// Files or folders to scan.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// YARA rule files or folders of them; may be repeated.
    #[arg(short = 'y', long = "yara", required = true, value_name = "RULES", num_args = 1..)]
    yara: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = ScanFormat::Table)]
    format: ScanFormat,
    /// Write matches to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Scanning threads (default: one per CPU).
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// Skip files larger than this (bytes, or with K, M or G).
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = crate::cmd::hunt::parse_size)]
    max_size: usize,
    /// Leave out paths matching this glob (`**/node_modules`, `*.log`: `*` stays in one
    /// path component, `**` crosses them); may be repeated.
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Give up on a file after this many seconds of matching (reported as a timeout).
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Fix an external variable for every file: NAME=VALUE (NAME one of filename,
    /// filepath, extension, filetype, owner); may be repeated.
    #[arg(short = 'd', long = "define", value_name = "NAME=VALUE", value_parser = parse_define)]
    define: Vec<(String, String)>,
    /// Verdicts kept in the cache (a file seen again under the same name and unchanged,
    /// such as a hard link named twice, is not scanned again).
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    cache_entries: usize,
}

fn parse_define(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))?;
    if !EXTERNALS.contains(&name) {
        return Err(format!(
            "`{name}` is not an external variable (one of {})",
            EXTERNALS.join(", ")
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

/// What the run found, for the summary.
#[derive(Default)]
struct Tally {
    scanned: u64,
    matched: u64,
    matches: u64,
    bytes: u64,
    cached: u64,
    skipped: BTreeMap<&'static str, u64>,
}

/// One matched file.
struct Matched {
    path: PathBuf,
    meta: std::fs::Metadata,
    verdict: Arc<Verdict>,
}

/// Quotes a CSV field when it holds a comma, a quote or a line break (RFC 4180).
pub fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        std::borrow::Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Runs `vigil scan`; `quiet` (the global `-q`) hides the progress line.
pub fn run(args: ScanArgs, quiet: bool) -> Result<ExitCode> {
    let started = Instant::now();
    let mut walk = Walk::new(&args.exclude).map_err(|e| anyhow::anyhow!("{e}"))?;
    // The listing runs while the rules compile (compiling is mostly one thread); then
    // the largest files are scanned first: a 100 MB binary met last would keep one
    // thread busy while the others idle.
    let (loaded, (mut files, skips)) = std::thread::scope(|s| {
        let lister = s.spawn(|| {
            let mut files: Vec<(PathBuf, std::fs::Metadata)> = Vec::new();
            let mut skips: Vec<(PathBuf, Skip)> = Vec::new();
            for root in &args.paths {
                walk.walk(root, &mut |item| match item {
                    WalkItem::File(p, m) => files.push((p, m)),
                    WalkItem::Skipped(p, why) => skips.push((p, why)),
                });
            }
            (files, skips)
        });
        let loaded = RuleSet::load(&args.yara);
        (loaded, lister.join().unwrap_or_default())
    });
    let (set, report) = match loaded {
        Ok(r) => r,
        Err(e) => {
            if let vigil_yara::LoadError::NothingLoaded(errors) = &e {
                for err in errors {
                    tracing::error!("{err}");
                }
            }
            tracing::error!("{e}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    for err in &report.refused {
        tracing::error!("rule file refused: {err}");
    }
    tracing::info!(
        files = report.loaded.len(),
        refused = report.refused.len(),
        rules = report.rules,
        warnings = report.warnings,
        seconds = format!("{:.2}", report.seconds),
        "YARA rules loaded"
    );
    let config = ScanConfig {
        max_size: args.max_size as u64,
        timeout: Duration::from_secs(args.timeout),
        fixed: args.define.clone(),
        // The largest files come first: the first buffer fits every later file.
        keep_buffer: args.max_size,
    };
    let owners = Owners::system();
    let cache: Cache = Mutex::new(VerdictCache::new(args.cache_entries));
    let show_progress = !quiet && std::io::stderr().is_terminal();

    let mut tally = Tally::default();
    let skip = |tally: &mut Tally, path: &Path, why: &Skip| {
        *tally.skipped.entry(why.kind()).or_default() += 1;
        tracing::warn!("skipped {}: {why}", path.display());
    };
    for (p, why) in &skips {
        skip(&mut tally, p, why);
    }
    files.sort_by(|a, b| b.1.size().cmp(&a.1.size()).then_with(|| a.0.cmp(&b.0)));
    let total_files = files.len();
    let total_bytes: u64 = files.iter().map(|f| f.1.size()).sum();

    let threads = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    let next = AtomicUsize::new(0);
    let done_files = AtomicU64::new(0);
    let done_bytes = AtomicU64::new(0);
    let found = AtomicU64::new(0);
    let finished = AtomicBool::new(false);
    let outcomes: Mutex<Vec<(usize, Outcome)>> = Mutex::new(Vec::with_capacity(total_files));
    let scan_started = Instant::now();
    std::thread::scope(|s| {
        let mut workers = Vec::new();
        for _ in 0..threads.min(total_files.max(1)) {
            workers.push(s.spawn(|| {
                let mut scanner = FileScanner::new(&set, &config, &owners, Some(&cache));
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((path, meta)) = files.get(i) else {
                        break;
                    };
                    let outcome = scanner.scan_path(path, Some(meta.clone()));
                    if let Outcome::Scanned { verdict, .. } = &outcome {
                        if !verdict.hits.is_empty() {
                            found.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    done_files.fetch_add(1, Ordering::Relaxed);
                    done_bytes.fetch_add(meta.size(), Ordering::Relaxed);
                    mine.push((i, outcome));
                }
                if let Ok(mut all) = outcomes.lock() {
                    all.append(&mut mine);
                }
            }));
        }
        if show_progress {
            s.spawn(|| {
                while !finished.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    let secs = scan_started.elapsed().as_secs_f64().max(1e-3);
                    let bytes = done_bytes.load(Ordering::Relaxed);
                    eprint!(
                        "\r\x1b[2Kscanning: {}/{} files, {:.0}/{:.0} MB ({:.0} MB/s), {} matched",
                        done_files.load(Ordering::Relaxed),
                        total_files,
                        bytes as f64 / 1e6,
                        total_bytes as f64 / 1e6,
                        bytes as f64 / 1e6 / secs,
                        found.load(Ordering::Relaxed)
                    );
                }
                eprint!("\r\x1b[2K");
            });
        }
        for w in workers {
            if w.join().is_err() {
                tracing::error!("a scanning thread failed");
            }
        }
        finished.store(true, Ordering::Relaxed);
    });
    let scan_secs = scan_started.elapsed().as_secs_f64();

    let mut outcomes = outcomes
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a scanning thread failed"))?;
    outcomes.sort_by_key(|(i, _)| *i);
    let mut matched = Vec::new();
    for (i, outcome) in outcomes {
        let (path, _) = &files[i];
        match outcome {
            Outcome::Scanned {
                verdict,
                meta,
                cached,
            } => {
                tally.scanned += 1;
                tally.bytes += meta.size();
                tally.cached += u64::from(cached);
                if !verdict.hits.is_empty() {
                    tally.matched += 1;
                    tally.matches += verdict.hits.len() as u64;
                    matched.push(Matched {
                        path: path.clone(),
                        meta,
                        verdict,
                    });
                }
            }
            Outcome::Skipped(why) => skip(&mut tally, path, &why),
        }
    }
    matched.sort_by(|a, b| a.path.cmp(&b.path));

    let out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::new(out);
    write_matches(&mut out, args.format, &matched, &set, &owners)
        .context("cannot write the matches")?;
    out.flush().context("cannot write the matches")?;

    let skipped: u64 = tally.skipped.values().sum();
    let reasons: Vec<String> = tally
        .skipped
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    eprintln!(
        "scanned {} files ({:.1} MB) in {:.2} s ({:.2} s rules, {:.2} s scan, {} threads): \
         {} matched ({} matches); skipped {}{}; {} symlinks not followed, {} excluded, {} from cache",
        tally.scanned,
        tally.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        report.seconds,
        scan_secs,
        threads,
        tally.matched,
        tally.matches,
        skipped,
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        },
        walk.symlinks,
        walk.excluded,
        tally.cached,
    );
    Ok(if report.refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_CHECK_FAILED)
    })
}

fn write_matches(
    out: &mut impl Write,
    format: ScanFormat,
    matched: &[Matched],
    set: &RuleSet,
    owners: &Owners,
) -> std::io::Result<()> {
    let rule_file = |ns: &str| set.file_of(ns).map(Path::to_path_buf);
    match format {
        ScanFormat::Table => {
            let width = matched
                .iter()
                .flat_map(|m| m.verdict.hits.iter().map(|h| h.identifier.len()))
                .max()
                .unwrap_or(0);
            for m in matched {
                for h in &m.verdict.hits {
                    writeln!(out, "{:width$}  {}", h.identifier, m.path.display())?;
                }
            }
        }
        ScanFormat::Csv => {
            writeln!(out, "rule,rule_file,tags,path,size,sha256")?;
            for m in matched {
                for h in &m.verdict.hits {
                    let rf = rule_file(&h.namespace)
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    writeln!(
                        out,
                        "{},{},{},{},{},{}",
                        csv_field(&h.identifier),
                        csv_field(&rf),
                        csv_field(&h.tags.join(" ")),
                        csv_field(&m.path.to_string_lossy()),
                        m.meta.size(),
                        m.verdict.sha256.as_deref().unwrap_or_default()
                    )?;
                }
            }
        }
        ScanFormat::Jsonl => {
            let now = vigil_event::time::now_ms();
            for m in matched {
                let owner = owners.name(m.meta.uid());
                for mut f in vigil_yara::finding::findings(
                    &m.verdict, &m.path, &m.meta, &owner, rule_file, now,
                ) {
                    vigil_event::model::OcsfClass::seal(&mut f);
                    serde_json::to_writer(&mut *out, &f)?;
                    out.write_all(b"\n")?;
                }
            }
        }
    }
    Ok(())
}
