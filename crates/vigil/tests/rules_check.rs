//! `vigil rules check` on a fixture directory of good and bad rules: golden output and
//! exit codes.

use std::path::PathBuf;
use std::process::Command;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../vigil-sigma/tests/fixtures/rules_check")
}

#[test]
fn rules_check_reports_every_failure_and_the_totals() {
    let dir = fixtures();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["rules", "check", "."])
        .current_dir(&dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("vigil runs");
    let expected = std::fs::read_to_string(dir.join("expected.txt")).expect("golden");
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn rules_check_succeeds_on_good_rules() {
    let dir = fixtures();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["rules", "check", "good.yml", "sub"])
        .current_dir(&dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("vigil runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "loaded 2, failed 0\n");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn rules_check_needs_a_path() {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["rules", "check"])
        .output()
        .expect("vigil runs");
    assert_eq!(out.status.code(), Some(2));
}
