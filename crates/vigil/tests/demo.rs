//! `vigil demo`: the README's first command ends with it. The real agent watches the
//! scripted intrusion on this host and prints the incident. Needs root; with `CI=true`
//! not being root fails the run.

use std::process::Command;

#[test]
fn the_demo_shows_the_incident_of_its_intrusion() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vigil-demo-test-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["demo", "--keep"])
        .arg(&dir)
        .output()
        .expect("vigil demo runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{log}");
    assert!(text.contains("[5/5] command and control"), "{text}");
    let incident = text
        .lines()
        .find(|l| l.starts_with("incident "))
        .unwrap_or_else(|| panic!("an incident in:\n{text}"));
    assert!(incident.contains(": high, "), "{incident}");
    for title in [
        "Download From an IP Address Piped Into a Shell (high)",
        "Program Run From a Temporary Directory (medium)",
        "Burst of Reconnaissance Commands (medium)",
        "Cron Table Written (medium)",
        "Reverse Shell Command Line (high)",
    ] {
        assert!(text.contains(title), "{title} in:\n{text}");
    }
    assert!(
        text.contains("/work/intrusion.sh"),
        "the script's branch:\n{text}"
    );
    assert!(
        !std::path::Path::new("/etc/cron.d")
            .read_dir()
            .expect("/etc/cron.d")
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("vigil-demo-")),
        "the demo's cron file is gone"
    );
    // The kept output reads back the same.
    let again = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("incidents")
        .arg(dir.join("findings.jsonl"))
        .output()
        .expect("vigil incidents");
    assert!(String::from_utf8_lossy(&again.stdout).contains(incident));
    let _ = std::fs::remove_dir_all(dir);
}
