//! `vigil hunt` as a user runs it: exit codes, output formats, the table summary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
        let d = std::env::temp_dir().join(format!("vigil-cli-hunt-{}-{name}", std::process::id()));
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
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const RULE: &str = r#"
title: Whoami Execution
id: 00000000-0000-0000-0000-000000000001
level: high
tags: [attack.discovery, attack.t1033]
logsource: {product: windows, category: process_creation}
detection:
    selection:
        Image|endswith: '\whoami.exe'
    condition: selection
"#;

fn event(image: &str, time: &str) -> String {
    serde_json::json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1,
        "Computer": "ws-01", "UtcTime": time, "Image": image})
    .to_string()
}

fn fixture(s: &Scratch) -> (String, String) {
    let rules = s.write("rules/whoami.yml", RULE);
    let log = s.write(
        "logs/a.jsonl",
        &format!(
            "{}\n{}\n{}\n",
            event(r"C:\x\whoami.exe", "2024-05-01 10:00:02.000"),
            event(r"C:\x\notepad.exe", "2024-05-01 10:00:01.000"),
            event(r"C:\y\whoami.exe", "2024-05-01 10:00:00.000"),
        ),
    );
    (rules, log)
}

#[test]
fn exit_codes() {
    let s = Scratch::new("exit");
    let (rules, log) = fixture(&s);
    let empty = s.write("logs/empty.jsonl", "");
    // Found or not: 0.
    assert_eq!(
        vigil(&["hunt", &log, "--rules", &rules]).status.code(),
        Some(0)
    );
    assert_eq!(
        vigil(&["hunt", &empty, "--rules", &rules]).status.code(),
        Some(0)
    );
    // Usage errors: 2.
    assert_eq!(vigil(&["hunt", &log]).status.code(), Some(2), "no --rules");
    assert_eq!(
        vigil(&["hunt", "--rules", &rules]).status.code(),
        Some(2),
        "no path"
    );
    let nowhere = s.0.join("nowhere").display().to_string();
    assert_eq!(
        vigil(&["hunt", &log, "--rules", &nowhere]).status.code(),
        Some(2)
    );
    let out = vigil(&["hunt", &log, "--rules", &rules, "--format", "xml"]);
    assert_eq!(out.status.code(), Some(2));
    let out = vigil(&["hunt", &log, "--rules", &rules, "--logsource", "vendor=x"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        vigil(&["hunt", &log, "--rules", &rules, "--threads", "0"])
            .status
            .code(),
        Some(2)
    );
    // Nothing readable at all: 3; one readable input among unreadable ones: 0.
    let bad = s.write("bad/x.evtx", "not an evtx file");
    let out = vigil(&["hunt", &bad, &nowhere, "--rules", &rules]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("x.evtx"),
        "{}",
        text(&out.stderr)
    );
    let out = vigil(&["hunt", &bad, &nowhere, &log, "--rules", &rules]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not an EVTX file"),
        "{}",
        text(&out.stderr)
    );
    // $VIGIL_RULES stands in for --rules.
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["hunt", &log, "-f", "jsonl"])
        .env("VIGIL_RULES", &rules)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout).lines().count(), 2);
}

#[test]
fn table_has_rows_in_time_order_and_a_summary() {
    let s = Scratch::new("table");
    let (rules, log) = fixture(&s);
    let bad = s.write("logs/b.evtx", "garbage");
    let out = vigil(&["hunt", &log, &bad, "--rules", &rules]);
    assert!(out.status.success());
    let t = text(&out.stdout);
    assert!(!t.contains("\x1b["), "no colour when not a terminal");
    let rows: Vec<&str> = t
        .lines()
        .filter(|l| l.contains("Whoami Execution") && l.starts_with("20"))
        .collect();
    assert_eq!(rows.len(), 2, "{t}");
    assert!(
        rows[0].starts_with("2024-05-01T10:00:00.000Z") && rows[0].contains("a.jsonl#3"),
        "{t}"
    );
    assert!(
        rows[1].starts_with("2024-05-01T10:00:02.000Z") && rows[1].contains("a.jsonl#1"),
        "{t}"
    );
    assert!(
        t.contains("Summary: 2 findings in 3 records from 2 files"),
        "{t}"
    );
    assert!(t.contains("by level: critical 0, high 2, medium 0"), "{t}");
    assert!(t.contains("top rules:"), "{t}");
    assert!(t.contains("ATT&CK tactics: Discovery 2"), "{t}");
    assert!(
        t.contains("files with errors: 1") && t.contains("b.evtx (1 error, not read to the end)"),
        "{t}"
    );
}

#[test]
fn csv_is_a_timeline_and_jsonl_is_valid_ocsf() {
    let s = Scratch::new("formats");
    let (rules, log) = fixture(&s);
    let csv = s.0.join("out.csv").display().to_string();
    let out = vigil(&[
        "hunt", &log, "--rules", &rules, "--format", "csv", "--output", &csv,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let c = std::fs::read_to_string(&csv).expect("csv");
    let lines: Vec<&str> = c.lines().collect();
    assert_eq!(
        lines[0],
        "time,level,rule,rule_id,computer,channel,event_id,file,record,details"
    );
    assert_eq!(lines.len(), 3);
    assert!(
        lines[1].starts_with("2024-05-01T10:00:00.000Z,high,Whoami Execution,"),
        "{c}"
    );
    assert!(
        lines[2].starts_with("2024-05-01T10:00:02.000Z,high,"),
        "{c}"
    );

    let out = vigil(&[
        "hunt",
        &log,
        "--rules",
        &rules,
        "-f",
        "jsonl",
        "--min-level",
        "critical",
    ]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let out = vigil(&["hunt", &log, "--rules", &rules, "-f", "jsonl"]);
    assert!(out.status.success());
    let jsonl = text(&out.stdout);
    assert_eq!(jsonl.lines().count(), 2);
    let Some(schema) = vigil_testdata::corpus("ocsf-schema") else {
        return;
    };
    let file = s.write("findings.jsonl", &jsonl);
    let v = vigil(&[
        "ocsf",
        "validate",
        "--schema",
        &schema.display().to_string(),
        &file,
    ]);
    assert!(v.status.success(), "{}{}", text(&v.stdout), text(&v.stderr));
}

#[test]
fn example_story_hunt() {
    let Some(sigma) = vigil_testdata::corpus("sigma") else {
        return;
    };
    let s = Scratch::new("story");
    let story = s.0.join("example.jsonl").display().to_string();
    assert!(vigil(&[
        "ocsf",
        "example",
        "--output",
        &story,
        "--start",
        "1700000000000"
    ])
    .status
    .success());
    let rules = Path::new(&sigma).join("rules/linux").display().to_string();
    let out = vigil(&["hunt", &story, "--rules", &rules, "-f", "jsonl"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let titles: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["finding_info"]["title"]
                .to_string()
        })
        .collect();
    assert!(
        titles.iter().any(|t| t.contains("Reverse Shell")),
        "{titles:?}"
    );
}

#[test]
fn a_record_over_max_record_is_reported_and_the_rest_hunted() {
    let s = Scratch::new("maxrecord");
    let rules = s.write("rules/whoami.yml", RULE);
    let long = event(
        &format!(r"C:\{}\whoami.exe", "x".repeat(3000)),
        "2024-05-01 10:00:01.000",
    );
    let log = s.write(
        "logs/a.jsonl",
        &format!(
            "{}\n{long}\n{}\n",
            event(r"C:\x\whoami.exe", "2024-05-01 10:00:00.000"),
            event(r"C:\y\whoami.exe", "2024-05-01 10:00:02.000"),
        ),
    );
    for threads in ["1", "2"] {
        let out = vigil(&[
            "hunt",
            &log,
            "--rules",
            &rules,
            "-f",
            "jsonl",
            "--max-record",
            "1K",
            "-j",
            threads,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let sources: Vec<String> = text(&out.stdout)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("json");
                v["metadata"]["source"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert_eq!(sources.len(), 2, "{sources:?}");
        assert!(sources[0].ends_with("a.jsonl#1") && sources[1].ends_with("a.jsonl#3"));
        let err = text(&out.stderr);
        let offset = event(r"C:\x\whoami.exe", "2024-05-01 10:00:00.000").len() + 1;
        let want = format!(
            "a.jsonl:2: line 2 at offset {offset} is longer than the limit of 1024 bytes, skipped"
        );
        assert!(err.contains(&want), "{err}");
    }
    // Without the flag the default (16 MiB) lets it through.
    let out = vigil(&["hunt", &log, "--rules", &rules, "-f", "jsonl"]);
    assert_eq!(text(&out.stdout).lines().count(), 3);
    for bad in ["0", "1X", "-5", ""] {
        let out = vigil(&["hunt", &log, "--rules", &rules, "--max-record", bad]);
        assert_eq!(out.status.code(), Some(2), "--max-record {bad:?}");
    }
}

#[test]
fn load_warnings_are_printed_as_rules_check_prints_them() {
    let s = Scratch::new("warnings");
    let (_, log) = fixture(&s);
    let rules = s.0.join("rules").display().to_string();
    s.write(
        "rules/placeholder.yml",
        "title: Placeholder\nlogsource: {product: windows, category: process_creation}\n\
         detection:\n    sel:\n        Image|expand: '%admins%'\n    condition: sel\n",
    );
    s.write(
        "rules/nowhere.yml",
        "title: No Such Source\nlogsource: {product: linux, service: nosuchservice}\n\
         detection:\n    sel:\n        a: b\n    condition: sel\n",
    );
    let hunt = vigil(&["hunt", &log, "--rules", &rules, "-f", "jsonl"]);
    assert!(hunt.status.success(), "{}", text(&hunt.stderr));
    let check = vigil(&["rules", "check", &rules]);
    let (hunt_err, check_err) = (text(&hunt.stderr), text(&check.stderr));
    // The same lines from both commands: on stdout from `rules check`, on stderr from
    // `hunt` (whose stdout holds the findings).
    let check_out = text(&check.stdout);
    let note =
        "nowhere.yml:1: warning: logsource linux/*/nosuchservice is not in the linux mapping";
    let placeholder = "placeholder `%admins%` has no values";
    for want in [note, placeholder] {
        assert!(hunt_err.contains(want), "{want}: {hunt_err}");
        assert!(check_out.contains(want), "{want}: {check_out}");
    }
    assert!(!check_err.contains(note), "{check_err}");
    // -q keeps the notes out.
    let quiet = vigil(&["-q", "hunt", &log, "--rules", &rules, "-f", "jsonl"]);
    assert!(!text(&quiet.stderr).contains(note));
}

#[test]
fn indicators_are_hunted_in_windows_records_and_vigils_events() {
    let s = Scratch::new("intel");
    let (rules, _) = fixture(&s);
    let story = s.0.join("logs/example.jsonl").display().to_string();
    assert!(vigil(&[
        "ocsf",
        "example",
        "--output",
        &story,
        "--start",
        "1700000000000"
    ])
    .status
    .success());
    let md5 = "0123456789abcdef0123456789abcdef";
    let sysmon = |id: u32, fields: serde_json::Value| {
        let mut e = serde_json::json!({"Channel": "Microsoft-Windows-Sysmon/Operational",
            "EventID": id, "Computer": "ws-02", "UtcTime": "2024-05-01 11:00:00.000"});
        for (k, v) in fields.as_object().expect("object") {
            e[k] = v.clone();
        }
        e.to_string()
    };
    s.write(
        "logs/sysmon.jsonl",
        &[
            sysmon(1, serde_json::json!({"Image": r"C:\x\a.exe",
                "Hashes": format!("SHA1=0000000000000000000000000000000000000000,MD5={},IMPHASH=ffffffffffffffffffffffffffffffff", md5.to_uppercase())})),
            sysmon(3, serde_json::json!({"SourceIp": "10.1.1.1", "DestinationIp": "203.0.113.77"})),
            sysmon(3, serde_json::json!({"SourceIp": "10.1.1.1", "DestinationIp": "198.51.100.1"})),
        ]
        .join("\n"),
    );
    // The example story's curl asks for updates.example-cdn.net.
    let feed = s.write(
        "intel/feed.txt",
        &format!("{md5}\n203.0.113.0/24\nexample-cdn.net\nffffffffffffffffffffffffffffffff\nnot an indicator!\n"),
    );
    let logs = s.0.join("logs").display().to_string();
    let out = vigil(&[
        "hunt", &logs, "--rules", &rules, "--intel", &feed, "-f", "jsonl",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut found: Vec<(String, String)> = text(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            (
                v["finding_info"]["title"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                v["severity"].as_str().unwrap_or_default().to_string(),
            )
        })
        .filter(|(t, _)| t.starts_with("Known-bad"))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            (format!("Known-bad MD5 ({feed})"), "High".to_string()),
            (format!("Known-bad address ({feed})"), "High".to_string()),
            (format!("Known-bad domain ({feed})"), "High".to_string()),
        ],
        "the import hash is not a file hash; 198.51.100.1 is listed nowhere"
    );
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{feed}:5: \"not\" is not a hash")),
        "the bad line is named: {err}"
    );
    // The table's summary counts them with the rules' findings.
    let table = vigil(&[
        "hunt",
        &logs,
        "--rules",
        &rules,
        "--intel",
        &feed,
        "--intel-level",
        "critical",
    ]);
    let t = text(&table.stdout);
    assert!(t.contains(&format!("Known-bad domain ({feed})")), "{t}");
}
