//! Scanning real files: externals per file, files that vanish or change between listing
//! and reading, special files, pseudo filesystems, a rule slow enough to time out, the
//! verdict cache, and the shared signature-base set loading whole.

use std::path::{Path, PathBuf};
use std::time::Duration;
use vigil_yara::scan::Cache;
use vigil_yara::{FileScanner, Outcome, Owners, RuleSet, ScanConfig, Skip, VerdictCache};

struct Scratch(PathBuf);
impl Scratch {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("vigil-yara-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        Scratch(d)
    }
    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("dir");
        std::fs::write(&p, data).expect("write");
        p
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rules(text: &str) -> RuleSet {
    let (set, report) =
        RuleSet::compile_sources(&[(PathBuf::from("test.yar"), text.as_bytes().to_vec())])
            .expect("compiles");
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    set
}

fn owners() -> Owners {
    Owners::from_passwd("root:x:0:0::/root:/bin/sh\nalice:x:4242:4242::/h:/bin/sh\n")
}

fn matched(outcome: &Outcome) -> Vec<String> {
    match outcome {
        Outcome::Scanned { verdict, .. } => {
            verdict.hits.iter().map(|h| h.identifier.clone()).collect()
        }
        Outcome::Skipped(s) => panic!("skipped: {s}"),
    }
}

fn skipped(outcome: &Outcome) -> Skip {
    match outcome {
        Outcome::Skipped(s) => s.clone(),
        Outcome::Scanned { .. } => panic!("scanned, expected a skip"),
    }
}

#[test]
fn externals_are_set_per_file() {
    let set = rules(
        r#"
        rule by_name { condition: filename == "target.bin" and extension == ".bin" }
        rule by_path { condition: filepath endswith "/sub/target.bin" }
        rule by_type { condition: filetype == "ELF" }
        rule by_owner { condition: owner == "alice" }
        rule script { condition: filetype == "SHELL" and extension == "" }
        "#,
    );
    let config = ScanConfig::default();
    let owners = owners();
    let mut scanner = FileScanner::new(&set, &config, &owners, None);
    let s = Scratch::new("externals");
    let elf = s.write("sub/target.bin", b"\x7fELF\x02\x01\x01 rest");
    assert_eq!(
        matched(&scanner.scan_path(&elf, None)),
        ["by_name", "by_path", "by_type"]
    );
    let other = s.write("sub/TARGET.BIN", b"plain text\n");
    assert_eq!(
        matched(&scanner.scan_path(&other, None)),
        Vec::<String>::new()
    );
    let sh = s.write("run", b"#!/bin/sh\necho hi\n");
    assert_eq!(matched(&scanner.scan_path(&sh, None)), ["script"]);
    if vigil_testdata::root_or_skip() {
        std::os::unix::fs::chown(&other, Some(4242), None).expect("chown");
        assert_eq!(matched(&scanner.scan_path(&other, None)), ["by_owner"]);
    }
}

#[test]
fn fixed_externals_override_per_file_values() {
    let set = rules(r#"rule n { condition: filename == "" and filetype == "" }"#);
    let config = ScanConfig {
        fixed: vec![
            ("filename".into(), String::new()),
            ("filetype".into(), String::new()),
        ],
        ..ScanConfig::default()
    };
    let owners = owners();
    let mut scanner = FileScanner::new(&set, &config, &owners, None);
    let s = Scratch::new("fixed");
    let f = s.write("x.bin", b"\x7fELF");
    assert_eq!(matched(&scanner.scan_path(&f, None)), ["n"]);
}

#[test]
fn files_that_vanish_or_are_replaced_after_listing_are_skipped() {
    let set = rules("rule everything { condition: true }");
    let config = ScanConfig::default();
    let owners = owners();
    let mut scanner = FileScanner::new(&set, &config, &owners, None);
    let s = Scratch::new("vanish");
    let f = s.write("gone", b"data");
    let listed = std::fs::symlink_metadata(&f).expect("stat");
    std::fs::remove_file(&f).expect("rm");
    assert_eq!(
        skipped(&scanner.scan_path(&f, Some(listed))),
        Skip::Vanished
    );
    // Replaced by another file (another inode) between listing and opening.
    let f = s.write("swapped", b"data");
    let listed = std::fs::symlink_metadata(&f).expect("stat");
    let keep = s.write("keep", b"hold the inode");
    std::fs::remove_file(&f).expect("rm");
    std::fs::write(&f, b"other").expect("write");
    // (The new file may even reuse the inode: its size and times still differ.)
    assert_eq!(
        skipped(&scanner.scan_path(&f, Some(listed))).kind(),
        "changed while scanned"
    );
    // Replaced by a FIFO: never opened for reading (the open does not block).
    let listed = std::fs::symlink_metadata(&keep).expect("stat");
    std::fs::remove_file(&keep).expect("rm");
    mkfifo(&keep);
    assert_eq!(
        skipped(&scanner.scan_path(&keep, Some(listed))).kind(),
        "changed while scanned"
    );
    // Replaced by a symlink: not followed.
    let listed = std::fs::symlink_metadata(&f).expect("stat");
    std::fs::remove_file(&f).expect("rm");
    std::os::unix::fs::symlink("/etc/passwd", &f).expect("symlink");
    assert_eq!(
        skipped(&scanner.scan_path(&f, Some(listed))).kind(),
        "changed while scanned"
    );
}

fn mkfifo(p: &Path) {
    let st = std::process::Command::new("mkfifo")
        .arg(p)
        .status()
        .expect("mkfifo runs");
    assert!(st.success());
}

#[test]
fn special_files_and_pseudo_filesystems_are_skipped() {
    let set = rules("rule everything { condition: true }");
    let config = ScanConfig::default();
    let owners = owners();
    let mut scanner = FileScanner::new(&set, &config, &owners, None);
    let s = Scratch::new("special");
    let fifo = s.0.join("fifo");
    mkfifo(&fifo);
    assert_eq!(
        skipped(&scanner.scan_path(&fifo, None)),
        Skip::Special("FIFO")
    );
    assert_eq!(
        skipped(&scanner.scan_path(Path::new("/dev/null"), None)),
        Skip::Special("character device")
    );
    assert_eq!(
        skipped(&scanner.scan_path(Path::new("/proc/self/status"), None)),
        Skip::PseudoFs("procfs")
    );
    // /proc/kmsg blocks on read: it must be refused before reading.
    if Path::new("/proc/kmsg").exists() {
        assert_eq!(
            skipped(&scanner.scan_path(Path::new("/proc/kmsg"), None)).kind(),
            "pseudo filesystem"
        );
    }
    let link = s.0.join("link");
    std::os::unix::fs::symlink("/etc/passwd", &link).expect("symlink");
    assert_eq!(skipped(&scanner.scan_path(&link, None)), Skip::Symlink);
    let big = s.write("big", &[0u8; 100]);
    let small = ScanConfig {
        max_size: 99,
        ..ScanConfig::default()
    };
    let mut scanner = FileScanner::new(&set, &small, &owners, None);
    assert_eq!(skipped(&scanner.scan_path(&big, None)), Skip::TooLarge(100));
}

#[test]
fn a_rule_slow_on_a_file_times_out_instead_of_hanging() {
    let set = rules(
        "rule slow { condition: for all i in (0..filesize) : \
         ( for all j in (0..filesize) : ( uint8(i) != 0xff or uint8(j) != 0xfe ) ) }\n\
         rule fast { condition: filesize > 0 }",
    );
    let config = ScanConfig {
        timeout: Duration::from_secs(1),
        ..ScanConfig::default()
    };
    let owners = owners();
    let mut scanner = FileScanner::new(&set, &config, &owners, None);
    let s = Scratch::new("slow");
    let f = s.write("big", &vec![0u8; 1 << 20]);
    let started = std::time::Instant::now();
    assert_eq!(skipped(&scanner.scan_path(&f, None)), Skip::Timeout);
    // Not a timing assertion on speed: only that the timeout, not the loop, ended it
    // (the loop is 10^12 steps).
    assert!(started.elapsed() < Duration::from_secs(120));
    // The scanner is usable again afterwards.
    let g = s.write("small", b"x");
    assert_eq!(matched(&scanner.scan_path(&g, None)), ["fast"]);
}

#[test]
fn the_cache_answers_for_an_unchanged_file_and_not_for_a_changed_one() {
    let set = rules(r#"rule m { strings: $a = "needle" condition: $a }"#);
    let config = ScanConfig::default();
    let owners = owners();
    let cache: Cache = std::sync::Mutex::new(VerdictCache::new(16));
    let mut scanner = FileScanner::new(&set, &config, &owners, Some(&cache));
    let s = Scratch::new("cache");
    let f = s.write("f", b"a needle here");
    let first = scanner.scan_path(&f, None);
    assert!(matches!(&first, Outcome::Scanned { cached: false, .. }));
    assert_eq!(matched(&first), ["m"]);
    let second = scanner.scan_path(&f, None);
    assert!(matches!(&second, Outcome::Scanned { cached: true, .. }));
    assert_eq!(matched(&second), ["m"]);
    // Rewritten with the same size: mtime/ctime move, the cache misses, the new content
    // is clean.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&f, b"a noodle here").expect("write");
    let third = scanner.scan_path(&f, None);
    assert!(matches!(&third, Outcome::Scanned { cached: false, .. }));
    assert!(matched(&third).is_empty());
}

#[test]
fn a_match_carries_the_sha256_of_the_content() {
    let set = rules(r#"rule m { strings: $a = "abc" condition: $a }"#);
    let config = ScanConfig::default();
    let owners = owners();
    let mut scanner = FileScanner::new(&set, &config, &owners, None);
    let s = Scratch::new("sha");
    let f = s.write("f", b"abc");
    let Outcome::Scanned { verdict, .. } = scanner.scan_path(&f, None) else {
        panic!("not scanned");
    };
    assert_eq!(
        verdict.sha256.as_deref(),
        Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
}

#[test]
fn signature_base_loads_whole() {
    let dir = vigil_testdata::corpus_or_skip!("yara/signature-base/yara");
    let (set, report) = RuleSet::load(&[dir]).expect("loads");
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert_eq!(report.loaded.len(), 741);
    assert_eq!(report.rules, 5_883);
    // Every rule file is its own namespace.
    assert!(set.file_of("f740").is_some());
}
