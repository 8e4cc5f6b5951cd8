//! `vigil scan` as a user runs it: rule files refused with file:line, the output formats
//! (CSV quoting, OCSF Detection Findings valid against the schema), files skipped with
//! their reasons in the summary, the exit codes.

use std::path::PathBuf;
use std::process::{Command, Output};

fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("vigil runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Scratch(PathBuf);
impl Scratch {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("vigil-cli-scan-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        Scratch(d)
    }
    fn write(&self, name: &str, data: &[u8]) -> String {
        let p = self.0.join(name);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("dir");
        std::fs::write(&p, data).expect("write");
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

const RULES: &str = r#"
rule Needle : demo test {
  meta:
    description = "finds the needle"
    author = "vigil tests"
    score = 75
  strings:
    $a = "NEEDLE-4242"
  condition:
    $a
}
"#;

/// A tree with two matching files (one with a comma and a quote in its name), a clean
/// one and a FIFO; the rules in their own folder.
fn fixture(s: &Scratch) -> (String, String) {
    let rules = s.write("rules/needle.yar", RULES.as_bytes());
    s.write("tree/a.txt", b"xx NEEDLE-4242 xx");
    s.write("tree/odd, \"name\".bin", b"NEEDLE-4242");
    s.write("tree/clean.txt", b"nothing here");
    let fifo = s.path("tree/pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    (rules, s.path("tree"))
}

#[test]
fn table_lists_matches_and_the_summary_counts_skips() {
    let s = Scratch::new("table");
    let (rules, tree) = fixture(&s);
    let out = vigil(&["scan", &tree, "--yara", &rules, "-j", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout,
        format!("Needle  {tree}/a.txt\nNeedle  {tree}/odd, \"name\".bin\n")
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "skipped {tree}/pipe: special file (FIFO), not opened"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("scanned 3 files")
            && stderr.contains("2 matched (2 matches); skipped 1 (1 special file)"),
        "{stderr}"
    );
}

#[test]
fn csv_quotes_fields_with_commas_and_quotes() {
    let s = Scratch::new("csv");
    let (rules, tree) = fixture(&s);
    let out = vigil(&["scan", &tree, "--yara", &rules, "-f", "csv"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    assert_eq!(lines[0], "rule,rule_file,tags,path,size,sha256");
    assert_eq!(
        lines[2],
        format!(
            "Needle,{rules},demo test,\"{tree}/odd, \"\"name\"\".bin\",11,\
             151e191a45ffa0fee6a017e167591b77fa6c891c5b19e5787c3b4f5ff202783b"
        )
    );
    assert_eq!(lines.len(), 3);
}

#[test]
fn jsonl_is_ocsf_detection_findings() {
    let s = Scratch::new("jsonl");
    let (rules, tree) = fixture(&s);
    let out = vigil(&["scan", &tree, "--yara", &rules, "-f", "jsonl"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let findings: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(findings.len(), 2);
    let f = &findings[0];
    assert_eq!(f["class_uid"], 2004);
    assert_eq!(f["severity_id"], 4, "score 75 is high");
    let info = &f["finding_info"];
    assert_eq!(info["types"][0], "YARA");
    assert_eq!(info["analytic"]["name"], "Needle");
    assert_eq!(info["analytic"]["type_id"], 1);
    assert_eq!(info["analytic"]["uid"], format!("{rules}:Needle"));
    assert_eq!(info["desc"], "finds the needle");
    assert_eq!(info["tags"][0]["name"], "yara.tags");
    assert_eq!(
        info["tags"][0]["values"],
        serde_json::json!(["demo", "test"])
    );
    assert!(info["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .any(|t| t["name"] == "yara.meta.author" && t["value"] == "vigil tests"));
    let file = &f["evidences"][0]["file"];
    assert_eq!(file["path"], format!("{tree}/a.txt"));
    assert_eq!(file["size"], 17);
    assert_eq!(file["hashes"][0]["algorithm_id"], 3);
    assert_eq!(
        file["hashes"][0]["value"],
        "61e1159fec0b94593214259461fb57f4c17c18c1b253f97e1d724729992ddc79"
    );
    let Some(schema) = vigil_testdata::corpus("ocsf-schema") else {
        return;
    };
    let file = s.write("findings.jsonl", stdout.as_bytes());
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
fn a_refused_rule_file_is_named_with_its_line_and_the_rest_still_scans() {
    let s = Scratch::new("refused");
    let (_, tree) = fixture(&s);
    s.write("rules/needle.yar", RULES.as_bytes());
    s.write(
        "rules/broken.yar",
        b"rule fine { condition: true }\n\nrule broken {\n  condition:\n    nosuch\n}\n",
    );
    let rules = s.path("rules");
    let out = vigil(&["scan", &tree, "--yara", &rules]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "rule file refused: {rules}/broken.yar:5:5: E009 unknown identifier `nosuch`"
        )),
        "{stderr}"
    );
    assert_eq!(text(&out.stdout).lines().count(), 2);
    // Nothing loads: a usage error, nothing scanned.
    let only = s.write("bad/only.yar", b"rule {");
    let out = vigil(&["scan", &tree, "--yara", &only]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(&format!("{only}:1:6: E001 syntax error")),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn proc_and_missing_paths_are_reported_not_scanned() {
    let s = Scratch::new("proc");
    let (rules, _) = fixture(&s);
    let missing = s.path("missing");
    let out = vigil(&[
        "scan",
        "/proc/self/status",
        "/proc/sys",
        &missing,
        "--yara",
        &rules,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("skipped /proc/sys: on procfs, not scanned"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("skipped {missing}: vanished")),
        "{stderr}"
    );
    assert!(
        stderr.contains("scanned 0 files")
            && stderr.contains("skipped 3 (2 pseudo filesystem, 1 vanished)"),
        "{stderr}"
    );
}

#[test]
fn exclude_and_max_size() {
    let s = Scratch::new("exclude");
    let (rules, tree) = fixture(&s);
    let out = vigil(&[
        "scan",
        &tree,
        "--yara",
        &rules,
        "--exclude",
        "**/a.txt",
        "--max-size",
        "12",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("Needle  {tree}/odd, \"name\".bin\n")
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("1 excluded"), "{stderr}");
    // clean.txt is 12 bytes: kept; nothing else is larger once a.txt is excluded.
    assert!(stderr.contains("scanned 2 files"), "{stderr}");
    let out = vigil(&["scan", &tree, "--yara", &rules, "--max-size", "11"]);
    assert!(
        text(&out.stderr).contains("2 too large"),
        "{}",
        text(&out.stderr)
    );
    let out = vigil(&["scan", &tree, "--yara", &rules, "-d", "nosuch=1"]);
    assert_eq!(out.status.code(), Some(2));
}
