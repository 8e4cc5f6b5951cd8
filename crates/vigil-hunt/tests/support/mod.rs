//! Shared test helpers: scratch directories, rule files, a sink that keeps findings.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use vigil_hunt::{Detection, HuntConfig, InputFile, Report, Sink};

/// A rule that fires on `whoami.exe` being run (process creation, Windows).
pub const WHOAMI: &str = r#"
title: Whoami Execution
id: 00000000-0000-0000-0000-000000000001
level: medium
tags: [attack.discovery, attack.t1033]
logsource: {product: windows, category: process_creation}
detection:
    selection:
        Image|endswith: '\whoami.exe'
    condition: selection
"#;

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("vigil-hunt-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, bytes).expect("write");
        p
    }
    pub fn write_gz(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).expect("gz");
        self.write(name, &enc.finish().expect("gz"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One finding as the tests look at it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub rule: String,
    pub file: String,
    pub record: u64,
    pub time_ms: Option<i64>,
    pub group: Vec<(String, Option<String>)>,
    pub events: usize,
    pub ocsf: serde_json::Value,
}

/// Keeps every finding.
#[derive(Default)]
pub struct Keep {
    pub seen: Vec<Seen>,
}

impl Sink for Keep {
    fn detection(&mut self, d: &Detection<'_>) -> std::io::Result<()> {
        if let Some(r) = &d.rendered {
            // Rendered by the matching threads: the line is all there is.
            let ocsf: serde_json::Value = serde_json::from_slice(r).expect("rendered");
            assert_eq!(r.iter().filter(|b| **b == b'\n').count(), 1);
            let source = ocsf["metadata"]["source"].as_str().unwrap_or_default();
            let (path, record) = source.rsplit_once('#').unwrap_or_default();
            self.seen.push(Seen {
                rule: d.rule.id.clone().unwrap_or_else(|| d.rule.title.clone()),
                file: file_name(Path::new(path)),
                record: record.parse().unwrap_or(0),
                time_ms: d.time_ms,
                group: Vec::new(),
                events: 1,
                ocsf,
            });
            return Ok(());
        }
        let first = d.events.first();
        let built = serde_json::to_value(d.to_ocsf(0)).expect("json");
        // The streaming writer gives the same JSON.
        let mut line = Vec::new();
        d.write_ocsf(0, &mut Vec::new(), &mut line).expect("write");
        let streamed: serde_json::Value = serde_json::from_slice(&line).expect("line");
        assert_eq!(streamed, built);
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        self.seen.push(Seen {
            rule: d.rule.id.clone().unwrap_or_else(|| d.rule.title.clone()),
            file: first
                .and_then(|e| e.path.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            record: first.map_or(0, |e| e.record),
            time_ms: d.time_ms,
            group: d
                .correlation
                .as_ref()
                .map(|c| c.group.clone())
                .unwrap_or_default(),
            events: d.events.len(),
            ocsf: built,
        });
        Ok(())
    }
    fn finish(&mut self, _: &Report) -> std::io::Result<()> {
        Ok(())
    }
}

/// Loads rules from `rule_paths` and hunts `inputs` with `config`.
pub fn run(rule_paths: &[PathBuf], inputs: &[PathBuf], config: &HuntConfig) -> (Vec<Seen>, Report) {
    let rules = vigil_hunt::load_rules(rule_paths).expect("rules");
    for e in &rules.built.errors {
        eprintln!("rule error: {e}");
    }
    let (files, skipped) = vigil_hunt::discover(inputs).expect("discover");
    assert!(skipped.is_empty(), "{skipped:?}");
    run_files(&rules.built.engine, &files, config)
}

/// Hunts `files` with `config`, and again on one thread (everything on the calling
/// thread): both must find the same and report the same.
pub fn run_files(
    engine: &vigil_hunt::Engine,
    files: &[InputFile],
    config: &HuntConfig,
) -> (Vec<Seen>, Report) {
    let once = |config: &HuntConfig| {
        let mut keep = Keep::default();
        let report = vigil_hunt::hunt(engine, files, config, &mut keep, None).expect("hunt");
        (keep.seen, report)
    };
    let (seen, report) = once(config);
    if config.threads != 1 {
        let (alone, alone_report) = once(&HuntConfig {
            threads: 1,
            ..config.clone()
        });
        let key = |s: &Seen| {
            (
                s.file.clone(),
                s.record,
                s.rule.clone(),
                format!("{:?}", s.group),
            )
        };
        let sorted = |v: &[Seen]| {
            let mut v = v.to_vec();
            v.sort_by_key(key);
            v
        };
        assert_eq!(
            sorted(&alone),
            sorted(&seen),
            "one thread and {} differ",
            config.threads
        );
        let errors = |r: &Report| {
            let mut e: Vec<String> = r.errors.iter().map(ToString::to_string).collect();
            e.sort();
            e
        };
        // Errors past the per-file limit are counted, and which are kept in detail depends
        // on the order they came in.
        let counts = |r: &Report| -> Vec<(usize, bool)> {
            r.files.iter().map(|f| (f.errors, f.fatal)).collect()
        };
        assert_eq!(counts(&alone_report), counts(&report));
        if report
            .files
            .iter()
            .all(|f| f.errors <= config.max_errors_per_file)
        {
            assert_eq!(errors(&alone_report), errors(&report));
        }
        assert_eq!(alone_report.records, report.records);
        assert_eq!(alone_report.findings, report.findings);
        assert_eq!(alone_report.bytes, report.bytes);
    }
    (seen, report)
}

pub fn config() -> HuntConfig {
    HuntConfig {
        threads: 2,
        now_ms: 0,
        ..HuntConfig::default()
    }
}

pub fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Every file under `root`, recursively, in sorted order.
pub fn walk(root: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Hunts `files` twice, the sink getting findings with their events (`Render::None`, the
/// finding then built from the event as a `serde_json::Value`) and as lines the matching
/// threads wrote (`Render::Jsonl`, from each rule's template and the record's own text):
/// both must give the same OCSF findings. Returns how many there were.
pub fn rendered_as_built(
    engine: &vigil_hunt::Engine,
    files: &[InputFile],
    config: &HuntConfig,
) -> usize {
    let by_key = |render: vigil_hunt::Render| {
        let (seen, _) = run_files(
            engine,
            files,
            &HuntConfig {
                render,
                ..config.clone()
            },
        );
        let mut m = std::collections::BTreeMap::new();
        for s in seen {
            let key = (
                s.file.clone(),
                s.record,
                s.rule.clone(),
                s.ocsf["finding_info"]["uid"].to_string(),
            );
            assert!(m.insert(key, s.ocsf).is_none(), "two findings alike");
        }
        m
    };
    let built = by_key(vigil_hunt::Render::None);
    let rendered = by_key(vigil_hunt::Render::Jsonl);
    assert_eq!(built.len(), rendered.len());
    for (k, b) in &built {
        assert_eq!(Some(b), rendered.get(k), "{k:?}");
    }
    built.len()
}
