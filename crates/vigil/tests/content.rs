//! `vigil content seal|check|apply|rollback|status` on bundles the test builds: a good
//! one passes and is applied; a corrupt YARA file, a truncated STIX bundle, a YARA set
//! that takes seconds per file, a policy naming an unknown rule and a file changed after
//! sealing are each refused with the file, line and reason, and change nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
mod support;

use support::tmp;

const RULE_ID: &str = "0c0ffee0-1111-4222-8333-444455556666";

fn vigil(args: &[&str], paths: &[&Path]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.arg("content")
        .args(args)
        .args(paths)
        .env_remove("RUST_LOG");
    c.output().expect("vigil runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A good bundle: a Sigma rule, a YARA rule, indicators, a policy naming the rule.
fn bundle(dir: &Path, version: &str) -> PathBuf {
    for d in ["sigma", "yara", "intel"] {
        std::fs::create_dir_all(dir.join(d)).expect("dir");
    }
    std::fs::write(
        dir.join("sigma/marker.yml"),
        format!(
            "title: Content marker\nid: {RULE_ID}\nlevel: high\n\
             logsource: {{product: linux, category: process_creation}}\n\
             detection:\n    selection:\n        CommandLine|contains: 'content-marker'\n    condition: selection\n"
        ),
    )
    .expect("rule");
    std::fs::write(
        dir.join("yara/marker.yar"),
        "rule marker { strings: $a = \"vigil-content-marker\" condition: $a }\n",
    )
    .expect("yara");
    std::fs::write(
        dir.join("intel/feed.json"),
        r#"{"type": "bundle", "id": "bundle--1", "objects": [{"type": "indicator", "id": "indicator--1", "pattern_type": "stix", "pattern": "[domain-name:value = 'c2.example']"}]}"#,
    )
    .expect("intel");
    std::fs::write(
        dir.join("policy.toml"),
        format!("policy = [\n  {{ rules = [\"{RULE_ID}\"], actions = [\"kill\"] }},\n]\n"),
    )
    .expect("policy");
    seal(dir, version);
    dir.to_path_buf()
}

fn seal(dir: &Path, version: &str) {
    let o = vigil(&["seal"], &[dir, Path::new(version)]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}

fn status(store: &Path) -> String {
    stdout(&vigil(&["status", "--content-dir"], &[store]))
}

/// A good bundle with `name` written (and sealed again unless `after_seal`).
fn bad(root: &Path, tag: &str, name: &str, text: &[u8], after_seal: bool) -> PathBuf {
    let dir = bundle(&root.join(tag), "9");
    std::fs::write(dir.join(name), text).expect("write");
    if !after_seal {
        seal(&dir, "9");
    }
    dir
}

#[test]
fn content_check_apply_and_rollback_refuse_every_bad_bundle_with_its_place() {
    let root = tmp("content-cli", "all");
    let store = root.join("store");
    let good = bundle(&root.join("good"), "1");
    let o = vigil(&["check"], &[&good]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let line = stdout(&o);
    assert!(line.contains(": content 1 passes: "), "{line}");
    assert!(line.contains("1 indicators, 1 YARA files"), "{line}");
    assert!(line.contains("a policy of 1 rules"), "{line}");
    let o = vigil(&["apply", "--content-dir"], &[&store, &good]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        stdout(&o).contains("content 1 applied in"),
        "{}",
        stdout(&o)
    );
    let before = status(&store);
    assert!(before.contains("current: 1\n"), "{before}");

    let cases: Vec<(PathBuf, &str)> = vec![
        (
            bad(&root, "yara", "yara/bad.yar", b"rule fine { condition: true }\nrule bad {\n  condition:\n    $nothing\n}\n", false),
            "yara/bad.yar:4:5: E",
        ),
        (
            bad(&root, "stix", "intel/feed.json", br#"{"type": "bundle", "objects": [{"type": "indicator", "pattern": "[ipv4-addr:value = '203.0"#, false),
            "intel/feed.json:1:",
        ),
        (
            bad(
                &root,
                "slow",
                "yara/slow.yar",
                b"rule slow { condition: for any i in (0..filesize) : ( for any j in (0..filesize) : ( uint8(i) + uint8(j) == 600 ) ) }\n",
                false,
            ),
            "yara/: refused: scanning the executable sample",
        ),
        (
            bad(&root, "policy", "policy.toml", b"policy = [\n  { rules = [\"no-such-rule\"], actions = [\"kill\"] },\n]\n", false),
            "policy.toml:2: the policy names rule `no-such-rule`",
        ),
        (
            bad(&root, "changed", "sigma/marker.yml", b"title: changed\n", true),
            "sigma/marker.yml: changed: its SHA-256 is ",
        ),
    ];
    for (dir, want) in &cases {
        for cmd in ["check", "apply"] {
            let o = if cmd == "check" {
                vigil(&["check"], &[dir])
            } else {
                vigil(&["apply", "--content-dir"], &[&store, dir])
            };
            assert_eq!(o.status.code(), Some(1), "{cmd} {}: {o:?}", dir.display());
            let out = stdout(&o);
            assert!(
                out.lines().any(|l| l.starts_with(want)),
                "{cmd} {}: no line starts with `{want}`:\n{out}",
                dir.display()
            );
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains("(version 9) refused"), "{err}");
            assert!(!err.contains("panicked"), "{err}");
        }
        assert_eq!(status(&store), before, "a refused bundle changes nothing");
    }

    // A second good bundle, then back.
    let second = bundle(&root.join("second"), "2");
    let o = vigil(&["apply", "--content-dir"], &[&store, &second]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(stdout(&o).contains("content 2 applied in"), "{o:?}");
    assert!(stdout(&o).contains("(was 1)"), "{o:?}");
    assert_eq!(
        status(&store),
        format!(
            "content directory: {}\ncurrent: 2\nprevious: 1\napplied: 1 2\n",
            store.display()
        )
    );
    let o = vigil(&["rollback", "--content-dir"], &[&store]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(stdout(&o).contains("content 1 runs again"), "{o:?}");
    assert!(status(&store).contains("current: 1\nprevious: 2\n"));
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn content_rollback_without_a_previous_bundle_is_an_error() {
    let root = tmp("content-cli", "none");
    let o = vigil(&["rollback", "--content-dir"], &[&root.join("store")]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no previous content to roll back to"), "{err}");
    let _ = std::fs::remove_dir_all(root);
}
