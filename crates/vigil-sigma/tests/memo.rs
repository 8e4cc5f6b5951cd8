//! The scan memo changes nothing but speed: a scratch that has seen a text before gives
//! the same findings as a fresh one.

use vigil_sigma::{Engine, EventKind, Loader, LogSource, Scratch};

const RULES: &str = r#"
title: Substrings
logsource: {product: test}
detection:
  s:
    CommandLine|contains: [' -enc ', 'downloadstring', 'tool']
  condition: s
---
title: Anchored ends
logsource: {product: test}
detection:
  s:
    Image|endswith: ['\cmd.exe', '\powershell.exe']
    ParentImage|startswith: 'C:\Windows\'
  condition: s
---
title: Cased
logsource: {product: test}
detection:
  s:
    CommandLine|contains|cased: 'Tool'
  condition: s
---
title: Not from explorer
logsource: {product: test}
detection:
  s:
    Image|endswith: '\cmd.exe'
  f:
    ParentImage|endswith: '\explorer.exe'
  condition: s and not f
---
title: Many literals
logsource: {product: test}
detection:
  s:
    CommandLine|contains:
LITERALS
  condition: s
"#;

fn engine() -> Engine {
    let mut lits = String::new();
    for i in 0..120 {
        lits.push_str(&format!("      - 'lit{i:03}x'\n"));
    }
    let mut loader = Loader::new();
    loader.add("memo.yml", &RULES.replace("LITERALS\n", &lits));
    let built = loader.build();
    assert!(built.errors.is_empty(), "{:?}", built.errors);
    built.engine
}

fn events() -> Vec<serde_json::Value> {
    let images = [
        r"C:\Windows\System32\cmd.exe",
        r"C:\Windows\System32\CMD.EXE",
        r"C:\Tools\powershell.exe",
        r"C:\Windows\explorer.exe",
    ];
    let commands = [
        "cmd /c tool lit007x",
        "powershell -enc AAAA",
        "powershell -ENC AAAA",
        "IEX (New-Object Net.WebClient).DownloadString('x')",
        "Tool run",
        "nothing",
        "lit119x lit000x lit050X",
    ];
    let mut out = Vec::new();
    // Every text comes back many times, in changing company, as log values do.
    for i in 0..200usize {
        let mut e = serde_json::json!({
            "Image": images[i % images.len()],
            "ParentImage": images[(i / 3) % images.len()],
            "CommandLine": commands[(i * 5) % commands.len()],
        });
        if i % 11 == 0 {
            // A list value, and a number, are scanned without the memo.
            e["CommandLine"] = serde_json::json!([commands[i % commands.len()], "tool"]);
        }
        if i % 13 == 0 {
            e["Image"] = serde_json::json!(42);
        }
        out.push(e);
    }
    out
}

fn run(engine: &Engine, scratch: &mut Scratch, e: &serde_json::Value) -> Vec<String> {
    let declared = engine.declare(&LogSource::new(Some("test"), None, None));
    let mut out = Vec::new();
    engine.match_event(scratch, e, EventKind::Declared(&declared), &mut out);
    out.iter()
        .map(|f| format!("{} {:?}", f.rule.title, f.selections))
        .collect()
}

#[test]
fn a_remembered_scan_finds_what_a_fresh_one_does() {
    let engine = engine();
    let mut warm = engine.scratch();
    let mut fired = 0;
    for e in events() {
        let cold = run(&engine, &mut engine.scratch(), &e);
        assert_eq!(run(&engine, &mut warm, &e), cold, "event {e}");
        fired += cold.len();
    }
    let (hits, scans) = warm.memo_stats();
    assert!(fired > 100, "the rules fire: {fired}");
    assert!(
        hits > scans / 2,
        "repeated texts are answered from the memo: {hits} of {scans}"
    );
}
