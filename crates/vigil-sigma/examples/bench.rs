//! Throughput benchmark: load rule directories, match a file of JSON-lines events on one
//! core, report load time, memory and events per second. See BENCHMARKS.md.
//!
//! ```text
//! cargo run --release -p vigil-sigma --example bench -- \
//!     --rules DIR [--rules DIR ...] --events FILE.jsonl \
//!     [--source windows|ocsf|declared:PRODUCT/CATEGORY/SERVICE] [--flat] [--repeat N] \
//!     [--findings OUT.tsv] [--write-flat OUT.jsonl]
//! ```
//!
//! `--flat` turns nested `evtx` records into flat ones (System and EventData fields at top
//! level, `EventID` unwrapped, `Provider_Name`) before matching, as other engines read
//! them; `--write-flat` writes those flat events out. `--findings` writes one line per
//! finding: event index, rule id (or title), `silent` for correlation-only base rules.

use std::io::{BufRead, Write};
use std::time::Instant;
use vigil_event::Event;
use vigil_sigma::{EventKind, JsonBuffers, JsonEvent, Loader, LogSource};

fn rss_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut v: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    v.sort();
    for p in v {
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
            out.push(p);
        }
    }
}

/// Flattens an `evtx` JSON record: `Event.System` and `Event.EventData` (or the child of
/// `Event.UserData`) fields at top level.
fn flatten(ev: &serde_json::Value) -> serde_json::Value {
    use serde_json::{Map, Value};
    let mut out = Map::new();
    let Some(e) = ev.get("Event") else {
        return ev.clone();
    };
    if let Some(Value::Object(sys)) = e.get("System") {
        for (k, v) in sys {
            match (k.as_str(), v) {
                ("EventID", Value::Object(o)) => {
                    if let Some(t) = o.get("#text") {
                        out.insert(k.clone(), t.clone());
                    }
                }
                ("Provider", Value::Object(o)) => {
                    if let Some(n) = o.get("#attributes").and_then(|a| a.get("Name")) {
                        out.insert("Provider_Name".into(), n.clone());
                    }
                }
                ("TimeCreated", Value::Object(o)) => {
                    if let Some(t) = o.get("#attributes").and_then(|a| a.get("SystemTime")) {
                        out.insert("TimeCreated".into(), t.clone());
                    }
                }
                (_, Value::Object(_)) => {}
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
    }
    let mut data = |d: &Value| {
        if let Value::Object(m) = d {
            for (k, v) in m {
                if k != "#attributes" {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
    };
    if let Some(d) = e.get("EventData") {
        data(d);
    }
    if let Some(Value::Object(u)) = e.get("UserData") {
        for v in u.values() {
            data(v);
        }
    }
    Value::Object(out)
}

/// Vigil's own Linux events: the example attack story, `copies` times (an hour apart),
/// matched as typed OCSF events with `EventKind::Ocsf`.
fn ocsf_bench(engine: &vigil_sigma::Engine, copies: usize, out: Option<&str>, repeat: usize) {
    let mut events = Vec::new();
    for i in 0..copies {
        events.extend(vigil_event::example::attack_story(
            1_700_000_000_000 + i as i64 * 3_600_000,
        ));
    }
    if let Some(path) = out {
        let mut w = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
        for e in &events {
            serde_json::to_writer(&mut w, &e.to_json()).expect("write");
            w.write_all(b"\n").expect("write");
        }
    }
    let mut scratch = engine.scratch();
    let mut found = Vec::new();
    let mut best = f64::MAX;
    let mut n = 0;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        n = 0;
        for e in &events {
            found.clear();
            engine.match_event(&mut scratch, e, EventKind::Ocsf, &mut found);
            n += found.len();
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    let mut titles: Vec<&str> = Vec::new();
    for e in events.iter().take(events.len() / copies.max(1)) {
        found.clear();
        engine.match_event(&mut scratch, e, EventKind::Ocsf, &mut found);
        titles.extend(found.iter().map(|f| f.rule.title.as_str()));
    }
    eprintln!(
        "OCSF events: {}, findings: {n}, best of {repeat}: {best:.3} s = {:.0} events/s on one core",
        events.len(),
        events.len() as f64 / best
    );
    eprintln!("rules firing on one copy of the story: {titles:?}");
}

/// Runs `f` `repeat` times; the shortest time and what the last run returned. The first
/// run's time goes to `first` (it includes warming caches: regular expressions build
/// their DFAs lazily).
fn best_of(repeat: usize, first: &mut f64, mut f: impl FnMut() -> usize) -> (f64, usize) {
    let mut best = f64::MAX;
    let mut n = 0;
    for round in 0..repeat {
        let t = Instant::now();
        n = f();
        let s = t.elapsed().as_secs_f64();
        if round == 0 {
            *first = s;
        }
        best = best.min(s);
    }
    (best, n)
}

fn main() {
    let mut rules = Vec::new();
    let mut events_path = None;
    let mut source = "windows".to_string();
    let mut flat = false;
    let mut repeat = 5usize;
    let mut findings_out = None;
    let mut story = 0usize;
    let mut story_out: Option<String> = None;
    let mut flat_out = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rules" => rules.push(args.next().expect("--rules DIR")),
            "--events" => events_path = Some(args.next().expect("--events FILE")),
            "--source" => source = args.next().expect("--source KIND"),
            "--flat" => flat = true,
            "--repeat" => repeat = args.next().and_then(|n| n.parse().ok()).expect("N"),
            "--findings" => findings_out = Some(args.next().expect("--findings OUT")),
            "--write-flat" => flat_out = Some(args.next().expect("--write-flat OUT")),
            "--ocsf-story" => story = args.next().and_then(|n| n.parse().ok()).expect("N"),
            "--write-ocsf" => story_out = Some(args.next().expect("--write-ocsf OUT")),
            other => panic!("unknown argument {other}"),
        }
    }
    let rss0 = rss_kib("VmRSS:");
    let t0 = Instant::now();
    let mut loader = Loader::new();
    let mut n_files = 0;
    for r in &rules {
        let mut fs = Vec::new();
        files(std::path::Path::new(r), &mut fs);
        for f in fs {
            n_files += 1;
            let text = std::fs::read_to_string(&f).expect("read rule");
            loader.add(&f.display().to_string(), &text);
        }
    }
    let parse_s = t0.elapsed().as_secs_f64();
    let built = loader.build();
    let load_s = t0.elapsed().as_secs_f64();
    eprintln!(
        "load phases: read + parse {:.3} s, compile + index {:.3} s",
        parse_s,
        load_s - parse_s
    );
    let rss1 = rss_kib("VmRSS:");
    let engine = built.engine;
    eprintln!(
        "rules: {n_files} files, loaded {}, failed {}, detection rules {}; load {:.3} s, RSS +{:.1} MiB (peak {:.1} MiB)",
        built.loaded,
        built.errors.len(),
        engine.detection_count(),
        load_s,
        (rss1.saturating_sub(rss0)) as f64 / 1024.0,
        rss_kib("VmHWM:") as f64 / 1024.0
    );
    if std::env::var_os("BENCH_DESCRIBE").is_some() {
        for l in engine.describe() {
            eprintln!("  {l}");
        }
    }
    if story > 0 {
        ocsf_bench(&engine, story, story_out.as_deref(), repeat);
        return;
    }
    let Some(events_path) = events_path else {
        return;
    };
    let reader = std::io::BufReader::new(std::fs::File::open(&events_path).expect("events"));
    let mut events: Vec<serde_json::Value> = Vec::new();
    for line in reader.lines() {
        let line = line.expect("read");
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        events.push(if flat { flatten(&v) } else { v });
    }
    if let Some(out) = flat_out {
        let mut w = std::io::BufWriter::new(std::fs::File::create(out).expect("create"));
        for e in &events {
            serde_json::to_writer(&mut w, e).expect("write");
            w.write_all(b"\n").expect("write");
        }
    }
    let declared;
    let src = match source.as_str() {
        "windows" => EventKind::Windows,
        "ocsf" => EventKind::Ocsf,
        d => {
            let parts: Vec<&str> = d.trim_start_matches("declared:").split('/').collect();
            let get = |i: usize| parts.get(i).copied().filter(|s| !s.is_empty() && *s != "*");
            declared = engine.declare(&LogSource::new(get(0), get(1), get(2)));
            EventKind::Declared(&declared)
        }
    };
    let mut scratch = engine.scratch();
    let mut out = Vec::new();
    let mut total_findings = 0usize;
    let mut best = f64::MAX;
    // BENCH_JSON_ONLY: only the `JsonEvent` runs (`e2e`: only end to end), for profiling.
    let json_only = std::env::var_os("BENCH_JSON_ONLY").is_some() && !flat;
    for round in 0..if json_only { 0 } else { repeat.max(1) } {
        // Each pass with a fresh scratch (an empty memo), as the end-to-end ones below.
        scratch = engine.scratch();
        let t = Instant::now();
        let mut n = 0usize;
        for e in &events {
            out.clear();
            let rec = vigil_sigma::WinRecord::new(e);
            engine.match_event(&mut scratch, &rec, src, &mut out);
            n += out.len();
        }
        let s = t.elapsed().as_secs_f64();
        best = best.min(s);
        if round == 0 {
            total_findings = n;
        }
    }
    if !json_only {
        eprintln!(
            "events: {}, findings: {total_findings}, best of {repeat}: {:.3} s = {:.0} events/s on one core; {:.1} rule conditions evaluated per event",
            events.len(),
            best,
            events.len() as f64 / best,
            scratch.rules_evaluated() as f64 / events.len() as f64
        );
    }
    // End to end, as a command-line tool runs: read each line, parse the JSON, match.
    if !json_only {
        let text = std::fs::read_to_string(&events_path).expect("events");
        let t = Instant::now();
        let mut n = 0usize;
        let mut count = 0usize;
        for line in text.lines() {
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            let v = if flat { flatten(&v) } else { v };
            out.clear();
            engine.match_event(
                &mut scratch,
                &vigil_sigma::WinRecord::new(&v),
                src,
                &mut out,
            );
            n += out.len();
            count += 1;
        }
        let s = t.elapsed().as_secs_f64();
        eprintln!(
            "end to end (parse JSON + match): {count} events, {n} findings, {:.3} s = {:.0} events/s on one core",
            s,
            count as f64 / s
        );
    }
    // The same, with each line parsed by `JsonEvent` (no `serde_json::Value`).
    let text = std::fs::read_to_string(&events_path).expect("events");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if !flat {
        let time_path = vigil_event::FieldPath::new("TimeCreated");
        let mut buffers = JsonBuffers::default();
        let parsed: Vec<JsonEvent<'_>> = lines
            .iter()
            .map(|l| JsonEvent::parse(l).expect("json"))
            .collect();
        let e2e_only = std::env::var_os("BENCH_JSON_ONLY").is_some_and(|v| v == "e2e");
        let (best, n) = best_of(if e2e_only { 0 } else { repeat.max(1) }, &mut 0.0, || {
            let mut n = 0;
            scratch = engine.scratch();
            for e in &parsed {
                out.clear();
                engine.match_event(&mut scratch, e, src, &mut out);
                n += out.len();
            }
            n
        });
        if best < f64::MAX {
            eprintln!(
            "JsonEvent, match only: {} events, {n} findings, best of {repeat}: {best:.3} s = {:.0} events/s on one core",
            parsed.len(),
            parsed.len() as f64 / best
        );
        }
        let (best, _) = best_of(if e2e_only { 0 } else { repeat.max(1) }, &mut 0.0, || {
            let mut n = 0;
            for l in &lines {
                let e = JsonEvent::parse_with(l, &mut buffers).expect("json");
                n += usize::from(e.field(&time_path).is_some());
                e.recycle(&mut buffers);
            }
            n
        });
        if best < f64::MAX {
            eprintln!(
                "JsonEvent, parse only: {:.3} s = {:.0} events/s on one core",
                best,
                lines.len() as f64 / best
            );
        }
        let mut first = 0.0;
        // A fresh scratch for each pass: its memo of recent texts starts empty, as in a
        // new process, so no pass profits from the one before.
        let mut memo = (0, 0);
        let (best, n) = best_of(repeat.max(1), &mut first, || {
            let mut n = 0;
            scratch = engine.scratch();
            for l in &lines {
                let e = JsonEvent::parse_with(l, &mut buffers).expect("json");
                out.clear();
                engine.match_event(&mut scratch, &e, src, &mut out);
                n += out.len();
                e.recycle(&mut buffers);
            }
            memo = scratch.memo_stats();
            n
        });
        eprintln!(
            "memo: {} of {} field scans answered from the memo ({:.0}%)",
            memo.0,
            memo.1,
            memo.0 as f64 * 100.0 / memo.1.max(1) as f64
        );
        eprintln!(
            "JsonEvent, end to end (parse JSON + match): {} events, {n} findings, best of {repeat}: {best:.3} s = {:.0} events/s on one core (first pass {first:.3} s = {:.0} events/s)",
            lines.len(),
            lines.len() as f64 / best,
            lines.len() as f64 / first
        );
    }
    if std::env::var_os("BENCH_PROFILE").is_some() {
        let mut by: std::collections::HashMap<String, (usize, f64, usize)> = Default::default();
        for e in &events {
            let rec = vigil_sigma::WinRecord::new(e);
            let t = Instant::now();
            out.clear();
            engine.match_event(&mut scratch, &rec, src, &mut out);
            let dt = t.elapsed().as_secs_f64();
            let sys = e.get("Event").map_or(e, |x| &x["System"]);
            let eid = sys["EventID"]
                .get("#text")
                .unwrap_or(&sys["EventID"])
                .to_string();
            let key = format!("{} {}", sys["Channel"].as_str().unwrap_or("-"), eid);
            let ent = by.entry(key).or_default();
            ent.0 += 1;
            ent.1 += dt;
            ent.2 += e.to_string().len();
        }
        let mut v: Vec<_> = by.into_iter().collect();
        v.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
        for (k, (n, t, bytes)) in v.iter().take(25) {
            eprintln!(
                "  {k}: {n} events, {:.1} ms, {:.1} us/event, {} bytes/event",
                t * 1e3,
                t * 1e6 / *n as f64,
                bytes / n
            );
        }
    }
    if let Some(path) = findings_out {
        let mut w = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
        for (i, e) in events.iter().enumerate() {
            out.clear();
            if flat {
                engine.match_event(&mut scratch, &vigil_sigma::WinRecord::new(e), src, &mut out);
            } else {
                // The findings of `JsonEvent`, checked against `serde_json::Value`'s.
                let mut check = Vec::new();
                engine.match_event(
                    &mut scratch,
                    &vigil_sigma::WinRecord::new(e),
                    src,
                    &mut check,
                );
                let j = JsonEvent::parse(lines[i]).expect("json");
                engine.match_event(&mut scratch, &j, src, &mut out);
                assert_eq!(
                    out, check,
                    "event {i}: JsonEvent and serde_json::Value disagree"
                );
            }
            for f in &out {
                writeln!(
                    w,
                    "{i}\t{}{}",
                    f.rule.id.as_deref().unwrap_or(&f.rule.title),
                    if f.silent { "\tsilent" } else { "" }
                )
                .expect("write");
            }
        }
    }
}
