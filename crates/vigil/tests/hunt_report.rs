//! `vigil hunt --report` and `--timeline`: the HTML report checked in headless chromium
//! (Debian's `chromium` under `chromedriver`, through WebDriver), the Timesketch
//! timeline's columns and escaping, and bad output paths.

mod webdriver;

use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("VIGIL_RULES")
        .output()
        .expect("vigil runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Scratch(PathBuf);
impl Scratch {
    fn new(name: &str) -> Self {
        let d =
            std::env::temp_dir().join(format!("vigil-hunt-report-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        Scratch(d)
    }
    fn write(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("dir");
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A rule title an attacker could write: markup, a script end, quotes, a comma and a
/// line end.
const HOSTILE_TITLE: &str = "Evil <img src=x onerror=\"window.__pwned=1\"> \
                             </script><script>window.__pwned=2</script>, \"quoted\"\nline 2";
/// A computer name that is markup.
const HOSTILE_HOST: &str = "ws-<b>03</b>";

/// Rules of three levels; one with the hostile title.
fn rules(s: &Scratch) -> String {
    s.write(
        "rules/whoami.yml",
        "title: Whoami Execution\nid: 00000000-0000-0000-0000-000000000001\nlevel: high\n\
         tags: [attack.discovery, attack.t1033]\n\
         logsource: {product: windows, category: process_creation}\n\
         detection: {sel: {Image|endswith: '\\whoami.exe'}, condition: sel}\n",
    );
    s.write(
        "rules/notepad.yml",
        "title: Notepad Seen\nid: 00000000-0000-0000-0000-000000000002\nlevel: low\n\
         tags: [attack.defense-evasion, attack.t1036.005]\n\
         logsource: {product: windows, category: process_creation}\n\
         detection: {sel: {Image|endswith: '\\notepad.exe'}, condition: sel}\n",
    );
    s.write(
        "rules/hostile.yml",
        &format!(
            "title: {}\nid: 00000000-0000-0000-0000-000000000003\nlevel: critical\n\
             tags: [attack.execution, attack.t1059.001]\n\
             logsource: {{product: windows, category: process_creation}}\n\
             detection: {{sel: {{CommandLine|contains: payload}}, condition: sel}}\n",
            serde_json::to_string(HOSTILE_TITLE).expect("json")
        ),
    );
    s.0.join("rules").display().to_string()
}

fn event(host: &str, image: &str, cmd: &str, time: Option<&str>) -> String {
    let mut e = serde_json::json!({"Channel": "Microsoft-Windows-Sysmon/Operational",
        "EventID": 1, "Computer": host, "Image": image, "CommandLine": cmd});
    if let Some(t) = time {
        e["UtcTime"] = t.into();
    }
    e.to_string()
}

/// Six findings on three computers over three days, one without a time, one hostile.
fn logs(s: &Scratch) -> String {
    let lines = [
        event("ws-01", r"C:\x\whoami.exe", "whoami /all", Some("2024-05-01 10:00:00.000")),
        event("ws-01", r"C:\x\notepad.exe", "notepad a,b \"c\"", Some("2024-05-01 10:00:01.000")),
        event("ws-01", r"C:\x\whoami.exe", "whoami", Some("2024-05-01 10:00:02.000")),
        event(
            HOSTILE_HOST,
            r"C:\x\cmd.exe",
            "payload <img src=x onerror=\"window.__pwned=3\"></script><script>window.__pwned=4</script>",
            Some("2024-05-02 12:00:00.000"),
        ),
        event("ws-02", r"C:\y\whoami.exe", "whoami", Some("2024-05-03 08:00:00.000")),
        event("ws-02", r"C:\y\whoami.exe", "whoami /priv", None),
        event("ws-02", r"C:\y\calc.exe", "calc", Some("2024-05-03 08:00:01.000")),
    ];
    s.write("logs/sysmon.jsonl", &(lines.join("\n") + "\n"))
}

/// The findings of a hunt, as its OCSF lines.
fn findings(path: &str) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("findings")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one finding per line"))
        .collect()
}

fn level_of(f: &Value) -> String {
    f["severity"]
        .as_str()
        .expect("severity")
        .to_ascii_lowercase()
}

/// Where screenshots of the report are kept: `target/test-artefacts/`.
fn artefacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artefacts");
    std::fs::create_dir_all(&dir).expect("artefact directory");
    dir
}

fn file_url(path: &str) -> String {
    let abs = std::fs::canonicalize(path).expect("report exists");
    format!("file://{}", abs.display())
}

/// Console messages at error level (chromium's SEVERE), which a clean page has none of.
fn console_errors(b: &webdriver::Browser) -> Vec<Value> {
    b.console()
        .into_iter()
        .filter(|m| m["level"] == "SEVERE")
        .collect()
}

/// What every report must show: no console errors, no request at all (and a policy that
/// forbids them), the hunt's own totals.
fn check_page(b: &webdriver::Browser, found: &[Value]) {
    let errors = console_errors(b);
    assert!(errors.is_empty(), "console errors: {errors:?}");
    assert_eq!(
        b.run("return performance.getEntriesByType('resource').length"),
        0,
        "the report fetched something: {}",
        b.run("return JSON.stringify(performance.getEntriesByType('resource').map(e => e.name))")
    );
    let csp = b.run(
        "const m = document.querySelector('meta[http-equiv=\"Content-Security-Policy\"]');\
         return m ? m.content : null",
    );
    let csp = csp.as_str().expect("a Content-Security-Policy meta tag");
    for d in [
        "default-src 'none'",
        "img-src 'none'",
        "connect-src 'none'",
        "font-src 'none'",
    ] {
        assert!(csp.contains(d), "{d} not in {csp}");
    }
    assert!(b.run("return document.documentElement.dataset.renderedMs !== undefined") == true);
    // The totals shown are the hunt's.
    let shown = b.run(
        "const o = {}; document.querySelectorAll('#totals [data-level]')\
         .forEach(e => { o[e.dataset.level] = Number(e.textContent); }); return o",
    );
    assert_eq!(shown["all"], found.len(), "{shown}");
    for level in ["informational", "low", "medium", "high", "critical"] {
        let n = found.iter().filter(|f| level_of(f) == level).count();
        assert_eq!(shown[level], n, "{level}: {shown}");
    }
}

/// The chart: one mark per level and time bucket with findings, holding exactly the
/// findings of that level whose time falls in it.
fn check_chart(b: &webdriver::Browser, found: &[Value]) {
    let marks = b.run(
        "return Array.from(document.querySelectorAll('#chart rect.mark')).map(r => ({\
         level: r.dataset.level, count: Number(r.dataset.count),\
         from: Number(r.dataset.from), to: Number(r.dataset.to)}))",
    );
    let marks = marks.as_array().expect("marks");
    let mut counted = vec![0u64; marks.len()];
    let timed: Vec<(i64, String)> = found
        .iter()
        .filter_map(|f| {
            let t = f["finding_info"]["first_seen_time"].as_i64()?;
            // Unset clocks are left out of the chart, as the report says.
            (t != 0 && t != -11_644_473_600_000).then(|| (t, level_of(f)))
        })
        .collect();
    for (t, level) in &timed {
        let hits: Vec<usize> = marks
            .iter()
            .enumerate()
            .filter(|(_, m)| {
                m["level"] == level.as_str()
                    && m["from"].as_i64() <= Some(*t)
                    && Some(*t) < m["to"].as_i64()
            })
            .map(|(i, _)| i)
            .collect();
        assert_eq!(hits.len(), 1, "finding at {t} ({level}) in marks {hits:?}");
        counted[hits[0]] += 1;
    }
    for (m, n) in marks.iter().zip(&counted) {
        assert!(*n > 0, "a mark without findings: {m}");
        assert_eq!(m["count"], *n, "{m}");
    }
}

#[test]
fn report_in_chromium_shows_the_hunt_searches_sorts_and_runs_no_hostile_text() {
    let s = Scratch::new("chromium");
    let (rules, log) = (rules(&s), logs(&s));
    let (report, jsonl) = (s.path("report.html"), s.path("findings.jsonl"));
    let out = vigil(&[
        "hunt", &log, "--rules", &rules, "-f", "jsonl", "-o", &jsonl, "--report", &report,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let found = findings(&jsonl);
    assert_eq!(found.len(), 6, "the fixture's findings");
    let Some(b) = webdriver::browser_or_skip() else {
        return;
    };
    b.open(&file_url(&report));
    check_page(&b, &found);
    check_chart(&b, &found);
    assert!(
        b.run("return document.getElementById('untimed').textContent")
            .as_str()
            .is_some_and(|t| t.starts_with("Not in the chart: 1 of the findings")),
        "the finding without a time is said to be out of the chart"
    );
    let png = b.screenshot();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG screenshot");
    std::fs::write(artefacts().join("hunt-report.png"), &png).expect("screenshot saved");

    // Hostile text is text: in the table the script fills, and in the tables Rust wrote.
    let has_text = |css: &str, want: &str| {
        b.run(&format!(
            "const want = {}; return Array.from(document.querySelectorAll({}))\
             .some(e => e.textContent === want)",
            serde_json::to_string(want).expect("json"),
            serde_json::to_string(css).expect("json"),
        ))
    };
    assert_eq!(has_text("#table tbody td", HOSTILE_TITLE), true);
    assert_eq!(has_text("#rules td", HOSTILE_TITLE), true);
    assert_eq!(has_text("#table tbody td", HOSTILE_HOST), true);
    assert_eq!(has_text("#hosts td", HOSTILE_HOST), true);
    assert_eq!(
        b.run("return document.querySelectorAll('img, b').length"),
        0
    );
    assert_eq!(
        b.run("return document.scripts.length"),
        2,
        "only the report's own scripts"
    );
    assert_eq!(b.run("return window.__pwned === undefined"), true);

    // The ATT&CK matrix: tactics in kill-chain order, techniques under them, with names.
    let columns = b.run(
        "return Array.from(document.querySelectorAll('#matrix thead th'))\
         .map(th => th.firstChild.textContent)",
    );
    assert_eq!(
        columns,
        serde_json::json!(["Execution", "Defense Evasion", "Discovery"])
    );
    let techniques = b.run(
        "return Array.from(document.querySelectorAll('#matrix .tech'))\
         .map(e => [e.dataset.technique, e.querySelector('.cnt').textContent])",
    );
    assert_eq!(
        techniques,
        serde_json::json!([["T1059", "1"], ["T1036", "1"], ["T1033", "4"]])
    );
    assert_eq!(
        has_text("#techniques td", "Command and Scripting Interpreter"),
        true
    );

    // Sorting: by level, then the other way.
    let levels = || {
        b.run(
            "return Array.from(document.querySelectorAll('#table tbody tr'))\
             .map(tr => tr.children[1].textContent)",
        )
    };
    let rank = |l: &Value| {
        ["informational", "low", "medium", "high", "critical"]
            .iter()
            .position(|x| l == x)
            .expect("a level")
    };
    b.click("#table th[data-key=level]");
    let up: Vec<usize> = levels()
        .as_array()
        .expect("rows")
        .iter()
        .map(rank)
        .collect();
    assert_eq!(up.len(), 6);
    assert!(up.windows(2).all(|w| w[0] <= w[1]), "{up:?}");
    b.click("#table th[data-key=level]");
    let down: Vec<usize> = levels()
        .as_array()
        .expect("rows")
        .iter()
        .map(rank)
        .collect();
    assert!(down.windows(2).all(|w| w[0] >= w[1]), "{down:?}");

    // Searching: typed into the box, the rows that hold the text and only those.
    let want = found
        .iter()
        .filter(|f| f.to_string().to_lowercase().contains("whoami"))
        .count();
    assert_eq!(want, 4);
    b.type_into("#search", "WHOami");
    let rows = b.run(
        "return Array.from(document.querySelectorAll('#table tbody tr')).map(tr => tr.textContent)",
    );
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len(), want, "{rows:?}");
    assert!(rows.iter().all(|r| r
        .as_str()
        .is_some_and(|t| t.to_lowercase().contains("whoami"))));
    b.type_into("#search", "-no-such-text");
    assert_eq!(
        b.run("return document.querySelectorAll('#table tbody tr').length"),
        0
    );
    let errors = console_errors(&b);
    assert!(errors.is_empty(), "console errors: {errors:?}");

    // The policy is enforced, not only written: an image added now is refused.
    b.run(
        "window.__violations = []; document.addEventListener('securitypolicyviolation',\
         e => window.__violations.push(e.violatedDirective));\
         const i = document.createElement('img'); i.src = 'http://127.0.0.1:9/x.png';\
         document.body.appendChild(i); return null",
    );
    let mut violations = Value::Null;
    for _ in 0..50 {
        violations = b.run("return window.__violations");
        if violations.as_array().is_some_and(|v| !v.is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(violations, serde_json::json!(["img-src"]));
}

#[test]
fn empty_hunt_report_says_so_in_chromium() {
    let s = Scratch::new("empty");
    let rules = rules(&s);
    let log = s.write(
        "logs/quiet.jsonl",
        &event(
            "ws-09",
            r"C:\x\calc.exe",
            "calc",
            Some("2024-05-01 10:00:00.000"),
        ),
    );
    let (report, jsonl) = (s.path("report.html"), s.path("findings.jsonl"));
    let out = vigil(&[
        "hunt", &log, "--rules", &rules, "-f", "jsonl", "-o", &jsonl, "--report", &report,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(findings(&jsonl).is_empty());
    let html = std::fs::read_to_string(&report).expect("report");
    assert!(html.contains("<h2>No findings</h2>"));
    let Some(b) = webdriver::browser_or_skip() else {
        return;
    };
    b.open(&file_url(&report));
    check_page(&b, &[]);
    assert_eq!(
        b.run("return document.getElementById('empty') !== null"),
        true
    );
    assert_eq!(
        b.run("return document.querySelectorAll('#table tbody tr, #chart').length"),
        0
    );
    assert_eq!(
        b.run("return document.getElementById('count').textContent"),
        "0 findings"
    );
}

#[test]
fn full_corpus_report_is_under_5_mb_and_opens_clean_in_chromium() {
    let evtx = vigil_testdata::corpus_or_skip!("evtx");
    let sigma = vigil_testdata::corpus_or_skip!("sigma/rules");
    let s = Scratch::new("corpus");
    let (report, jsonl) = (s.path("report.html"), s.path("findings.jsonl"));
    let out = vigil(&[
        "-q",
        "hunt",
        &evtx.display().to_string(),
        "--rules",
        &sigma.display().to_string(),
        "-f",
        "jsonl",
        "-o",
        &jsonl,
        "--report",
        &report,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let found = findings(&jsonl);
    assert!(found.len() > 1000, "{} findings", found.len());
    let size = std::fs::metadata(&report).expect("report").len();
    assert!(size < 5_000_000, "the report is {size} bytes");
    let Some(b) = webdriver::browser_or_skip() else {
        return;
    };
    b.open(&file_url(&report));
    check_page(&b, &found);
    check_chart(&b, &found);
    // Every finding is in the table (the corpus is under the table's cap).
    assert_eq!(
        b.run("return document.getElementById('count').textContent"),
        format!("{} findings", found.len())
    );
    let timing = b.run(
        "const n = performance.getEntriesByType('navigation')[0];\
         return {rendered: Number(document.documentElement.dataset.renderedMs),\
         load: n.loadEventEnd}",
    );
    eprintln!(
        "full corpus report: {size} bytes, {} findings, opened in {timing}",
        found.len()
    );
    let _ = std::fs::write(artefacts().join("hunt-report-corpus.png"), b.screenshot());
}

/// A CSV file's records (RFC 4180: quoted fields may hold commas, quotes and line ends).
fn csv_records(text: &str) -> Vec<Vec<String>> {
    let (mut records, mut record, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        !quoted && field.is_empty() && record.is_empty(),
        "CSV ends mid-record"
    );
    records
}

const COLUMNS: [&str; 14] = [
    "message",
    "datetime",
    "timestamp",
    "timestamp_desc",
    "rule_title",
    "rule_id",
    "level",
    "tags",
    "computer",
    "channel",
    "event_id",
    "file",
    "record",
    "details",
];

#[test]
fn timeline_has_timesketch_columns_escapes_csv_and_times_parse() {
    let s = Scratch::new("timeline");
    let (rules, log) = (rules(&s), logs(&s));
    let (csv, jsonl, ndjson) = (s.path("t.csv"), s.path("t.jsonl"), s.path("t.txt"));
    let out = vigil(&[
        "hunt",
        &log,
        "--rules",
        &rules,
        "-f",
        "jsonl",
        "-o",
        &s.path("findings.jsonl"),
        "--timeline",
        &csv,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("1 findings have no event time"),
        "the finding left out is told: {}",
        text(&out.stderr)
    );
    let found = findings(&s.path("findings.jsonl"));
    let timed = found
        .iter()
        .filter(|f| f["finding_info"]["first_seen_time"].is_i64())
        .count();
    assert_eq!(timed, 5);

    let records = csv_records(&std::fs::read_to_string(&csv).expect("csv"));
    assert_eq!(records[0], COLUMNS);
    let rows: Vec<HashMap<&str, &str>> = records[1..]
        .iter()
        .map(|r| {
            assert_eq!(r.len(), COLUMNS.len(), "{r:?}");
            COLUMNS
                .iter()
                .copied()
                .zip(r.iter().map(String::as_str))
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), timed);
    let mut last = i64::MIN;
    for r in &rows {
        // datetime is ISO 8601 and says what timestamp (µs) says; rows in time order.
        let ms = vigil_event::time::parse_timestamp(r["datetime"]).expect("datetime parses");
        assert!(r["datetime"].ends_with('Z') && r["datetime"].contains('T'));
        assert_eq!(r["timestamp"].parse::<i64>().expect("timestamp"), ms * 1000);
        assert!(ms >= last);
        last = ms;
        assert_eq!(r["timestamp_desc"], "Event Recorded");
        assert!(r["message"].contains(r["rule_title"]), "{r:?}");
        assert!(!r["computer"].is_empty() && !r["file"].is_empty(), "{r:?}");
        assert_eq!(r["channel"], "Microsoft-Windows-Sysmon/Operational");
        assert_eq!(r["event_id"], "1");
    }
    // The hostile title, with its comma, quotes and line end, comes back whole.
    let hostile: Vec<_> = rows
        .iter()
        .filter(|r| r["rule_title"] == HOSTILE_TITLE)
        .collect();
    assert_eq!(hostile.len(), 1);
    assert_eq!(hostile[0]["level"], "critical");
    assert_eq!(hostile[0]["tags"], "attack.execution,attack.t1059.001");
    assert_eq!(hostile[0]["computer"], HOSTILE_HOST);
    assert_eq!(hostile[0]["datetime"], "2024-05-02T12:00:00.000Z");
    let notepad = rows
        .iter()
        .find(|r| r["rule_title"] == "Notepad Seen")
        .expect("notepad");
    assert!(
        notepad["details"].contains("notepad a,b \"c\""),
        "{notepad:?}"
    );

    // JSON lines: the same rows, by extension or by --timeline-format.
    for (path, format) in [(&jsonl, None), (&ndjson, Some("jsonl"))] {
        let mut args = vec!["hunt", &log, "--rules", &rules, "-q", "--timeline", path];
        args.extend(format.iter().flat_map(|f| ["--timeline-format", f]));
        let out = vigil(&args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let lines: Vec<Value> = std::fs::read_to_string(path)
            .expect("jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(lines.len(), rows.len());
        for (l, r) in lines.iter().zip(&rows) {
            let keys: Vec<&str> = l
                .as_object()
                .expect("object")
                .keys()
                .map(String::as_str)
                .collect();
            let mut want = COLUMNS.to_vec();
            want.sort_unstable();
            let mut got = keys.clone();
            got.sort_unstable();
            assert_eq!(got, want);
            assert_eq!(l["datetime"], r["datetime"]);
            assert_eq!(l["rule_title"], r["rule_title"]);
            assert_eq!(l["timestamp"].to_string(), r["timestamp"]);
        }
    }
    // A file name that does not say the format, and no --timeline-format: a usage error.
    let out = vigil(&[
        "hunt",
        &log,
        "--rules",
        &rules,
        "--timeline",
        &s.path("t.out"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--timeline-format"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn report_to_an_unwritable_path_is_an_error_naming_it() {
    let s = Scratch::new("unwritable");
    let (rules, log) = (rules(&s), logs(&s));
    for (flag, path) in [
        ("--report", s.path("no/such/dir/report.html")),
        ("--report", s.0.display().to_string()),
        ("--timeline", s.path("no/such/dir/t.csv")),
    ] {
        let out = vigil(&["hunt", &log, "--rules", &rules, flag, &path]);
        let err = text(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{flag} {path}");
        assert!(err.contains(&path), "{flag} {path}: {err}");
        assert!(err.contains("cannot create"), "{err}");
        assert!(!Path::new(&path).is_file());
    }
}
