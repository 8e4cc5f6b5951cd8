//! EVTX inputs: corrupt and truncated files (made at test time from copies of corpus
//! files) are reported and everything else is still hunted.

mod support;

use support::{config, run, walk, Scratch};
use vigil_hunt::Location;

/// Counts every Security or Sysmon record by its EventID being present.
const ANY: &str = r#"
title: Any Sysmon Event
id: 00000000-0000-0000-0000-0000000000aa
level: informational
logsource: {product: windows, service: sysmon}
detection:
    selection:
        EventID|gte: 0
    condition: selection
"#;

/// A deterministic pseudo-random sequence (no dependency for a test).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[test]
fn corrupt_and_truncated_files_are_reported_and_the_rest_is_hunted() {
    let corpus = vigil_testdata::corpus_or_skip!("evtx");
    let mut all = Vec::new();
    walk(&corpus, &mut all);
    all.retain(|p| p.extension().is_some_and(|e| e == "evtx"));
    // A Sysmon log of at least three chunks.
    let src = all
        .iter()
        .find(|p| {
            let name = p.to_string_lossy().to_lowercase();
            name.contains("sysmon")
                && std::fs::metadata(p).is_ok_and(|m| m.len() >= 4096 + 3 * 65536)
        })
        .expect("a multi-chunk sysmon sample");
    let bytes = std::fs::read(src).expect("read");
    let s = Scratch::new("corrupt");
    let rules = vec![s.write("any.yml", ANY.as_bytes())];

    let good = s.write("in/good.evtx", &bytes);
    let (_, alone) = run(&rules, std::slice::from_ref(&good), &config());
    let good_records = alone.records;
    assert!(good_records > 0);
    assert!(alone.errors.is_empty(), "{:?}", alone.errors);

    let cut = 4096 + 65536 + 30_000;
    s.write("in/truncated.evtx", &bytes[..cut]);
    let mut flipped = bytes.clone();
    flipped[4096 + 65536] ^= 0xff; // chunk 1 signature
    s.write("in/badchunk.evtx", &flipped);
    let mut noisy = bytes.clone();
    let mut rng = Lcg(42);
    for _ in 0..2000 {
        let at = 4096 + (rng.next() as usize % (noisy.len() - 4096));
        noisy[at] ^= 1 << (rng.next() % 8);
    }
    s.write("in/bitflipped.evtx", &noisy);
    s.write("in/notevtx.evtx", &[0x55; 8192]);
    s.write("in/short.evtx", &bytes[..100]);
    s.write("in/empty.evtx", b"");
    s.write_gz("in/good.evtx.gz", &bytes);

    let (_, report) = run(&rules, &[s.path("in")], &config());
    let file = |name: &str| {
        report
            .files
            .iter()
            .find(|f| f.path.file_name().is_some_and(|n| n == name))
            .unwrap_or_else(|| panic!("{name} not hunted"))
    };
    let errors = |name: &str| -> Vec<String> {
        report
            .errors
            .iter()
            .filter(|e| e.path.file_name().is_some_and(|n| n == name))
            .map(ToString::to_string)
            .collect()
    };
    // Intact files, plain and gzip, read whole.
    assert_eq!(file("good.evtx").records, good_records);
    assert_eq!(file("good.evtx.gz").records, good_records);
    assert!(errors("good.evtx").is_empty() && errors("good.evtx.gz").is_empty());
    // Truncated: the whole records before the cut are hunted; the cut is reported with
    // its offset.
    let t = file("truncated.evtx");
    assert!(
        t.fatal && t.records > 0 && t.records < good_records,
        "{t:?}"
    );
    let te = errors("truncated.evtx");
    assert!(
        te.iter()
            .any(|e| e.contains(&format!("offset {cut}")) && e.contains("truncated EVTX file")),
        "{te:?}"
    );
    // A broken chunk signature: that chunk skipped, the others hunted.
    let b = file("badchunk.evtx");
    assert!(
        !b.fatal && b.records > 0 && b.records < good_records,
        "{b:?}"
    );
    let be = errors("badchunk.evtx");
    assert!(
        be.iter()
            .any(|e| e.contains("offset 69632") && e.contains("chunk 1")),
        "{be:?}"
    );
    // Random bit flips: no panic, whatever can be read is read.
    assert!(file("bitflipped.evtx").records > 0);
    // Not EVTX at all, too short, empty.
    let ne = errors("notevtx.evtx");
    assert!(ne.iter().any(|e| e.contains("not an EVTX file")), "{ne:?}");
    assert!(file("notevtx.evtx").fatal && file("notevtx.evtx").records == 0);
    let se = errors("short.evtx");
    assert!(
        se.iter().any(|e| e.contains("truncated EVTX file")),
        "{se:?}"
    );
    assert!(report
        .errors
        .iter()
        .all(|e| !matches!(e.location, Location::File) || e.fatal));
    assert!(report.any_input_read());
}

#[test]
fn nothing_readable_is_told_apart() {
    let s = Scratch::new("unreadable");
    let rules = vec![s.write("any.yml", ANY.as_bytes())];
    s.write("in/a.evtx", b"garbage");
    s.write("in/b.evtx", b"");
    let (_, report) = run(&rules, &[s.path("in")], &config());
    assert!(!report.any_input_read(), "{report:?}");
}
