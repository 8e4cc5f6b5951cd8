//! The `vigil` binary as a user runs it: help, version, exit codes, logging, `ocsf`.

use std::io::Write;
use std::process::{Command, Output, Stdio};
mod support;

fn vigil(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG")
        .spawn()
        .expect("vigil starts");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(bytes) = stdin {
            input.write_all(bytes).expect("write stdin");
        }
    }
    child.wait_with_output().expect("vigil runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn version_and_help_tell_the_truth() {
    let v = vigil(&["--version"], None);
    assert!(v.status.success());
    assert_eq!(
        text(&v.stdout).trim(),
        format!("vigil {}", env!("CARGO_PKG_VERSION"))
    );
    let h = vigil(&["--help"], None);
    assert!(h.status.success());
    let help = text(&h.stdout);
    assert!(help.contains("Exit codes:"), "{help}");
    // Every command listed in the help must run its own --help successfully.
    let commands = support::help_commands(&help);
    assert!(commands.contains(&"ocsf"), "{commands:?}");
    for c in commands {
        assert!(vigil(&[c, "--help"], None).status.success(), "{c} --help");
    }
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(vigil(&["no-such-command"], None).status.code(), Some(2));
    assert_eq!(
        vigil(&["ocsf", "example", "--start", "soon"], None)
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn runtime_errors_exit_3_with_a_clear_message() {
    let out = vigil(
        &["ocsf", "validate", "--schema", "/nonexistent/schema"],
        Some(b""),
    );
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot read /nonexistent/schema/dictionary.json"),
        "{err}"
    );
}

#[test]
fn example_is_deterministic_jsonl_and_logs_as_json_when_asked() {
    let a = vigil(
        &[
            "--log-format",
            "json",
            "ocsf",
            "example",
            "--start",
            "1700000000000",
        ],
        None,
    );
    let b = vigil(&["-q", "ocsf", "example", "--start", "1700000000000"], None);
    assert!(a.status.success() && b.status.success());
    assert_eq!(a.stdout, b.stdout);
    let lines: Vec<serde_json::Value> = text(&a.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 17);
    assert_eq!(lines[0]["time"], 1_700_000_000_000_i64);
    let log: serde_json::Value =
        serde_json::from_str(text(&a.stderr).lines().next().expect("a log line"))
            .expect("JSON log");
    assert_eq!(log["level"], "INFO");
    assert!(
        text(&b.stderr).is_empty(),
        "-q silences info: {}",
        text(&b.stderr)
    );
}

#[test]
fn validate_accepts_the_example_and_rejects_a_broken_event() {
    let Some(schema) = vigil_testdata::corpus("ocsf-schema") else {
        return;
    };
    let schema = schema.to_string_lossy().into_owned();
    let events = vigil(&["ocsf", "example"], None).stdout;
    let ok = vigil(&["ocsf", "validate", "--schema", &schema], Some(&events));
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stdout));
    assert!(text(&ok.stdout).contains("checked 17 events against OCSF 1.8.0, 0 invalid"));

    let mut broken = text(&events);
    broken.push_str("{\"class_uid\": 1007, \"activity_id\": 1}\nnot json\n");
    let bad = vigil(
        &["ocsf", "validate", "--schema", &schema, "-"],
        Some(broken.as_bytes()),
    );
    assert_eq!(bad.status.code(), Some(1));
    let out = text(&bad.stdout);
    assert!(
        out.contains("<stdin>:18: process: required by `process_activity` but missing"),
        "{out}"
    );
    assert!(out.contains("<stdin>:19: not JSON"), "{out}");
    assert!(
        out.contains("checked 19 events against OCSF 1.8.0, 2 invalid"),
        "{out}"
    );
}
