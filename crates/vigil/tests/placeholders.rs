//! `--placeholder NAME=VALUES` gives `expand` placeholders their values, for
//! `vigil rules check` and `vigil hunt` alike; without it such a rule loads with a warning
//! naming file and line, and its placeholder matches nothing.

use std::process::Command;

const RULE: &str = "title: Admin tool\nid: 0b4d7e0a-5f59-4f8a-9c3e-2a1b0c9d8e7f\nlevel: medium\n\
logsource: {product: linux, category: process_creation}\ndetection:\n    sel:\n        \
Image|expand: '%admin_tools%'\n    condition: sel\n";

fn vigil(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .env_remove("VIGIL_RULES")
        .output()
        .expect("vigil runs")
}

#[test]
fn placeholders_load_expand_rules_and_make_them_match() {
    let dir = std::env::temp_dir().join(format!("vigil-placeholders-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let rule = dir.join("admin.yml");
    std::fs::write(&rule, RULE).expect("rule");
    let rule = rule.to_string_lossy().into_owned();

    let without = vigil(&["rules", "check", &rule]);
    assert_eq!(without.status.code(), Some(0));
    let out = String::from_utf8_lossy(&without.stdout);
    assert!(
        out.contains(&format!(
            "{rule}:7: warning: placeholder `%admin_tools%` has no values (give them with \
             --placeholder admin_tools=VALUE,...): it matches nothing"
        )),
        "{out}"
    );
    assert!(out.contains("loaded 1, failed 0"), "{out}");

    let with = vigil(&[
        "rules",
        "check",
        &rule,
        "--placeholder",
        "admin_tools=/usr/bin/curl,/usr/bin/wget",
    ]);
    assert_eq!(
        with.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&with.stdout)
    );
    assert!(String::from_utf8_lossy(&with.stdout).contains("loaded 1, failed 0"));

    let bad = vigil(&["rules", "check", &rule, "--placeholder", "no-equals-sign"]);
    assert_eq!(bad.status.code(), Some(2));

    // The example intrusion runs curl: the rule fires on it once, with the placeholder.
    let events = dir.join("example.jsonl");
    let events = events.to_string_lossy().into_owned();
    assert!(vigil(&["ocsf", "example", "--output", &events])
        .status
        .success());
    // Without its values the rule loads, says so, and finds nothing.
    let unset = vigil(&["hunt", &events, "--rules", &rule, "-f", "jsonl"]);
    assert!(unset.status.success());
    assert!(String::from_utf8_lossy(&unset.stderr).contains("`%admin_tools%` has no values"));
    assert_eq!(String::from_utf8_lossy(&unset.stdout).lines().count(), 0);
    let hunt = vigil(&[
        "-q",
        "hunt",
        &events,
        "--rules",
        &rule,
        "--placeholder",
        "%admin_tools%=/usr/bin/curl",
        "-f",
        "jsonl",
    ]);
    assert!(hunt.status.success());
    let findings: Vec<serde_json::Value> = String::from_utf8_lossy(&hunt.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0]["finding_info"]["title"], "Admin tool");
    let _ = std::fs::remove_dir_all(dir);
}
