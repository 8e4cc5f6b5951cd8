//! Bounded random testing of the input readers (runs on stable, in CI): JSON lines files,
//! `.json` files (plain and gzip) and EVTX files, made up and mutated, must be hunted with
//! no panic and no hang, on one thread and on several alike; every bad line or value is
//! reported with its file and line or offset, and every good one is matched (checked
//! against `serde_json` as the reference reader).
//!
//! `VIGIL_FUZZ_ITERS` sets the number of iterations (default 300; the EVTX test runs a
//! quarter as many); `VIGIL_FUZZ_SEED` the seed (default fixed, so failures reproduce).

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;
use support::{Scratch, Seen, WHOAMI};
use vigil_hunt::{Engine, HuntConfig, InputFile, Location, Report};

/// splitmix64: a small, seeded generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

fn iterations() -> usize {
    std::env::var("VIGIL_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

fn rng() -> Rng {
    Rng(std::env::var("VIGIL_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x1D_F00D))
}

/// The longest record the fuzzed hunts read.
const MAX: usize = 600;

fn config(threads: usize) -> HuntConfig {
    HuntConfig {
        threads,
        now_ms: 0,
        max_errors_per_file: usize::MAX,
        max_record: MAX,
        ..HuntConfig::default()
    }
}

/// Hunts `files` on one thread and on three (which must agree), each within a minute: a
/// hunt that takes longer has hung.
fn hunt(engine: &'static Engine, files: Vec<InputFile>) -> (Vec<Seen>, Report) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = support::run_files(engine, &files, &config(3));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the hunt hung"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the hunt panicked"),
    }
}

fn whoami_engine(s: &Scratch) -> &'static Engine {
    let rules =
        vigil_hunt::load_rules(&[s.write("rules/whoami.yml", WHOAMI.as_bytes())]).expect("rules");
    Box::leak(Box::new(rules.built.engine))
}

fn input(path: &Path) -> Vec<InputFile> {
    let (files, skipped) = vigil_hunt::discover(&[path.to_path_buf()]).expect("discover");
    assert!(skipped.is_empty(), "{skipped:?}");
    files
}

fn event(image: &str, nested: bool) -> String {
    if nested {
        serde_json::json!({"Event": {"System": {"Channel": "Microsoft-Windows-Sysmon/Operational",
            "EventID": 1, "TimeCreated": {"#attributes": {"SystemTime": "2024-05-01T10:00:00Z"}}},
            "EventData": {"Image": image, "CommandLine": format!("{image} /all")}}})
    } else {
        serde_json::json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": "1",
            "UtcTime": "2024-05-01 10:00:00.000", "Image": image, "Note": "tab\tquote\"é"})
    }
    .to_string()
}

/// Pieces of JSON that are wrong, or right but not an object.
const BAD: &[&str] = &[
    r#"{"a":01}"#,
    r#"{"a" 1}"#,
    r#"{"a":tru}"#,
    r#"{"a":"\x"}"#,
    r#"{"a":1,}"#,
    r#"{,}"#,
    r#"{"a":[1,]}"#,
    r#"{"a":"\ud800"}"#,
    r#"{"a":1e}"#,
    r#"{"a":-}"#,
    r#"[1,2]"#,
    r#""just a string""#,
    "17",
    "null",
    // Not one value: last, as `record` picks from the others for `.json` files.
    r#"{"a":"b"}}"#,
    r#"{"a":1} {"b":2}"#,
];

/// How many of [`BAD`] at its end are not one value with whole brackets.
const NOT_ONE_VALUE: usize = 2;

/// A JSON record (an object most of the time; `hit` says whether the rule fires on it).
/// With `one_value`, the record is one value with whole brackets and strings.
fn record(rng: &mut Rng, one_value: bool) -> (String, bool) {
    let bad = if one_value {
        &BAD[..BAD.len() - NOT_ONE_VALUE]
    } else {
        BAD
    };
    match rng.below(10) {
        0 => (bad[rng.below(bad.len())].to_string(), false),
        1 => {
            // Deep nesting, past the readers' limit sometimes.
            let d = 100 + rng.below(60);
            (format!("{}{}", "[".repeat(d), "]".repeat(d)), false)
        }
        2 => {
            // Long: past MAX sometimes.
            let n = MAX - 200 + rng.below(400);
            (
                event(&format!(r"C:\{}\whoami.exe", "x".repeat(n)), false),
                true,
            )
        }
        _ => {
            let hit = rng.chance(3);
            let image = if hit {
                r"C:\Windows\whoami.exe"
            } else {
                r"C:\Windows\notepad.exe"
            };
            (event(image, rng.chance(2)), hit)
        }
    }
}

/// Flips, drops, inserts or truncates bytes of `b` (never making a newline: lines stay
/// lines).
fn mutate(b: &mut Vec<u8>, rng: &mut Rng) {
    const BYTES: &[u8] = b"{}[]\",:\\ 0a-\x00\x1f\xff\xc3\xa9\r\t";
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            return;
        }
        let at = rng.below(b.len());
        match rng.below(5) {
            0 => b[at] = BYTES[rng.below(BYTES.len())],
            1 => {
                b.remove(at);
            }
            2 => b.insert(at, BYTES[rng.below(BYTES.len())]),
            3 => b.truncate(at),
            _ => b[at] = rng.next() as u8,
        }
    }
    for x in b.iter_mut().filter(|x| **x == b'\n') {
        *x = b' ';
    }
}

/// What reading one line or value should give, by the reference reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Blank: nothing.
    Nothing,
    /// A record; a finding if the rule fires on it (`None`: mutated, either way).
    Record { hit: Option<bool> },
    /// An error about it.
    Error,
}

/// `hit`: whether the rule fires on the record (`None` if it was mutated).
fn want(text: &[u8], hit: Option<bool>) -> Want {
    if text.iter().all(u8::is_ascii_whitespace) {
        return Want::Nothing;
    }
    if text.len() > MAX {
        return Want::Error;
    }
    match serde_json::from_slice::<serde_json::Value>(text) {
        Ok(v) if v.is_object() => Want::Record { hit },
        _ => Want::Error,
    }
}

#[test]
fn json_lines_fuzzed_are_read_line_by_line() {
    let s = Scratch::new("fuzz-lines");
    let engine = whoami_engine(&s);
    let mut rng = rng();
    for iter in 0..iterations() {
        let mut text = Vec::new();
        let mut wants = Vec::new();
        for _ in 0..1 + rng.below(60) {
            let (r, hit) = record(&mut rng, false);
            let mut line = r.into_bytes();
            let mut hit = Some(hit);
            if rng.chance(6) {
                mutate(&mut line, &mut rng);
                hit = None;
            }
            if rng.chance(15) {
                line = b"  \t ".to_vec();
            }
            text.extend_from_slice(&line);
            // The reader takes off one `\r` before the newline.
            text.extend_from_slice(if rng.chance(5) { b"\r\n" } else { b"\n" });
            wants.push(want(&line, hit));
            if line.len() > MAX {
                // The rule may fire on a long line, but it is not read.
                wants.pop();
                wants.push(Want::Error);
            }
        }
        if rng.chance(4) {
            // No newline after the last line.
            text.pop();
            if text.last() == Some(&b'\r') {
                text.pop();
            }
        }
        let gz = rng.chance(4);
        let name = format!("in{iter}/l.jsonl{}", if gz { ".gz" } else { "" });
        let path = if gz {
            s.write_gz(&name, &text)
        } else {
            s.write(&name, &text)
        };
        let (seen, report) = hunt(engine, input(&path));
        check_lines(&wants, &seen, &report, &path);
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }
}

fn check_lines(wants: &[Want], seen: &[Seen], report: &Report, path: &Path) {
    let lines = |f: &dyn Fn(Want) -> bool| -> BTreeSet<u64> {
        (1..)
            .zip(wants)
            .filter(|(_, w)| f(**w))
            .map(|(n, _)| n)
            .collect()
    };
    let hits = lines(&|w| w == Want::Record { hit: Some(true) });
    let maybe = lines(&|w| w == Want::Record { hit: None });
    let bad = lines(&|w| w == Want::Error);
    let records = lines(&|w| matches!(w, Want::Record { .. })).len() as u64;
    let got_hits: BTreeSet<u64> = seen.iter().map(|x| x.record).collect();
    let ctx = || format!("{}: {wants:?}\n{:?}", path.display(), report.errors);
    let sure: BTreeSet<u64> = got_hits.difference(&maybe).copied().collect();
    assert_eq!(sure, hits, "{}", ctx());
    assert_eq!(report.records, records, "{}", ctx());
    let mut got_bad = BTreeSet::new();
    for e in &report.errors {
        assert_eq!(e.path, path, "{e}");
        assert!(!e.fatal, "{e}: {}", ctx());
        assert!(!e.reason.contains("internal error"), "{e}");
        match e.location {
            Location::Line(n) => assert!(got_bad.insert(n), "two errors for line {n}: {}", ctx()),
            _ => panic!("{e}: not located by line"),
        }
    }
    assert_eq!(got_bad, bad, "{}", ctx());
}

#[test]
fn json_files_fuzzed_are_read_value_by_value() {
    let s = Scratch::new("fuzz-values");
    let engine = whoami_engine(&s);
    let mut rng = rng();
    for iter in 0..iterations() {
        // Values whose brackets and strings are whole, in an array or one after another.
        let array = rng.chance(2);
        let mut text = Vec::new();
        let mut values = Vec::new();
        text.extend_from_slice(if array { b" [\n" } else { b"\n" });
        let n = rng.below(30);
        for i in 0..n {
            let (mut r, mut hit) = record(&mut rng, true);
            if !array && !r.starts_with('{') {
                // Values one after another: keep to objects, whose ends are plain.
                (r, hit) = (event(r"C:\whoami.exe", false), true);
            }
            if rng.chance(10) {
                // Pretty-printed: line ends inside the value.
                r = r.replacen(',', ",\n  ", 3);
            }
            values.push((text.len() as u64, r.len(), want(r.as_bytes(), Some(hit))));
            text.extend_from_slice(r.as_bytes());
            if array && i + 1 < n {
                text.extend_from_slice(if rng.chance(2) { b",\n" } else { b" , " });
            } else if !array {
                text.extend_from_slice(b"\n");
            }
        }
        if array {
            text.extend_from_slice(b"]\n");
        }
        let gz = rng.chance(4);
        let name = format!("in{iter}/v.json{}", if gz { ".gz" } else { "" });
        let path = if gz {
            s.write_gz(&name, &text)
        } else {
            s.write(&name, &text)
        };
        let (seen, report) = hunt(engine, input(&path));
        let ctx = || format!("{}\n{:?}", String::from_utf8_lossy(&text), report.errors);
        let hits: BTreeSet<u64> = (1..)
            .zip(&values)
            .filter(|(_, v)| v.2 == Want::Record { hit: Some(true) })
            .map(|(i, _)| i)
            .collect();
        let got: BTreeSet<u64> = seen.iter().map(|x| x.record).collect();
        assert_eq!(got, hits, "{}", ctx());
        let records = values
            .iter()
            .filter(|v| matches!(v.2, Want::Record { .. }))
            .count() as u64;
        assert_eq!(report.records, records, "{}", ctx());
        // One error for each bad value, located inside it.
        let bad: Vec<_> = values.iter().filter(|v| v.2 == Want::Error).collect();
        assert_eq!(report.errors.len(), bad.len(), "{}", ctx());
        let mut errors = report.errors.clone();
        errors.sort_by_key(|e| match e.location {
            Location::Offset(o) => o,
            _ => u64::MAX,
        });
        for (e, (offset, len, _)) in errors.iter().zip(&bad) {
            assert!(!e.fatal && !e.reason.contains("internal error"), "{e}");
            match e.location {
                Location::Offset(o) => {
                    assert!(o >= *offset && o <= offset + *len as u64, "{e}: {}", ctx())
                }
                _ => panic!("{e}: not located by offset"),
            }
        }

        // The same file mutated anywhere, brackets and all: read as far as it goes, every
        // problem located inside the file.
        let mut broken = text.clone();
        mutate(&mut broken, &mut rng);
        let path = s.write(&format!("in{iter}/broken.json"), &broken);
        let (_, report) = hunt(engine, input(&path));
        for e in &report.errors {
            assert!(!e.reason.contains("internal error"), "{e}");
            match e.location {
                Location::Offset(o) => assert!(o <= broken.len() as u64, "{e}"),
                _ => panic!("{e}: not located by offset"),
            }
        }
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }
}

/// A few EVTX files of the corpus, small ones.
fn evtx_samples() -> Option<Vec<PathBuf>> {
    let root = vigil_testdata::corpus("evtx")?;
    let mut all = Vec::new();
    support::walk(&root, &mut all);
    let mut small: Vec<PathBuf> = all
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "evtx"))
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() <= 4096 + 3 * 65536))
        .collect();
    small.truncate(12);
    Some(small)
}

#[test]
fn evtx_files_fuzzed_are_reported_not_fatal_to_the_hunt() {
    let Some(samples) = evtx_samples() else {
        return;
    };
    assert!(!samples.is_empty());
    let s = Scratch::new("fuzz-evtx");
    // Rules that see every Windows record: the readers and the parser are what is fuzzed.
    let rules = vigil_hunt::load_rules(&[s.write(
        "rules/any.yml",
        b"title: Any\nlogsource: {product: windows}\ndetection:\n    sel:\n        EventID|gte: 0\n    condition: sel\n",
    )])
    .expect("rules");
    let engine: &'static Engine = Box::leak(Box::new(rules.built.engine));
    let mut rng = rng();
    for iter in 0..iterations().div_ceil(4) {
        let sample = &samples[rng.below(samples.len())];
        let mut bytes = std::fs::read(sample).expect("read");
        for _ in 0..1 + rng.below(6) {
            let at = rng.below(bytes.len());
            match rng.below(6) {
                // Anywhere, or in a chunk header, or in the records.
                0 => bytes[at] = rng.next() as u8,
                1 => {
                    let chunk =
                        4096 + 65536 * rng.below(bytes.len().saturating_sub(4096) / 65536 + 1);
                    if let Some(b) = bytes.get_mut(chunk + rng.below(512)) {
                        *b = rng.next() as u8;
                    }
                }
                2 => bytes.truncate(at),
                3 => {
                    let end = (at + rng.below(2048)).min(bytes.len());
                    bytes[at..end].fill(0);
                }
                _ => {
                    let n = rng.below(4).max(1);
                    for b in bytes.iter_mut().skip(at).take(n) {
                        *b ^= 1 << rng.below(8);
                    }
                }
            }
        }
        let gz = rng.chance(5);
        let name = format!("in{iter}/e.evtx{}", if gz { ".gz" } else { "" });
        let path = if gz {
            s.write_gz(&name, &bytes)
        } else {
            s.write(&name, &bytes)
        };
        let (_, report) = hunt(engine, input(&path));
        for e in &report.errors {
            assert_eq!(e.path, path, "{e}");
            // The EVTX parser may panic on hostile input (reported as its failure);
            // Vigil's own code must not.
            assert!(!e.reason.contains("internal error"), "{e}");
            match e.location {
                Location::Offset(o) | Location::Record { offset: o, .. } => {
                    assert!(o <= bytes.len() as u64, "{e}")
                }
                Location::File => assert!(e.fatal, "{e}"),
                Location::Line(_) => panic!("{e}: an EVTX error by line"),
            }
        }
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }
}
