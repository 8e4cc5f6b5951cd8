//! `Engine::match_json` (keyword rules prefiltered on the record's JSON text) finds what
//! `Engine::match_event` finds, whatever the text escapes or its case.

use vigil_sigma::{JsonEvent, Loader, LogSource, Source};

#[test]
fn match_json_finds_what_match_event_finds() {
    let mut loader = Loader::new();
    loader.add(
        "k.yml",
        r#"title: Keywords
logsource: {product: test}
detection:
    keywords:
        - 'mimikatz'
        - 'c:\temp\x'
        - 'say "hi"'
        - 'kelvin'
        - '/evil'
    condition: keywords
---
title: Field
logsource: {product: test}
detection:
    selection:
        a|contains: 'zz'
    condition: selection
"#,
    );
    let built = loader.build();
    assert!(built.errors.is_empty(), "{:?}", built.errors);
    let engine = built.engine;
    let declared = engine.declare(&LogSource::new(Some("test"), None, None));
    let src = Source::Declared(&declared);
    let mut scratch = engine.scratch();
    // (JSON text, whether the keyword rule matches)
    let cases = [
        (r#"{"a": "xx MIMIKATZ yy"}"#, true),
        (r#"{"a": "C:\\TEMP\\X\\y"}"#, true),
        (r#"{"a": "they say \"hi\" there"}"#, true),
        (r#"{"a": "mimi\u006batz"}"#, true),
        (r#"{"a": "\u212Aelvin"}"#, true),
        ("{\"a\": \"\u{212A}elvin\"}", true),
        (r#"{"a": "x:\/evil"}"#, true),
        (r#"{"a": "/EVIL", "b": 1}"#, true),
        (r#"{"a": "nothing here", "n": [1, "zz"]}"#, false),
        (r#"{"mimikatz": "only the key"}"#, false),
        (r#"{"a": "c:\\temp\\y", "b": "say hi"}"#, false),
        (r#"{"a": "mimi\nkatz zz"}"#, false),
    ];
    for (text, keyword) in cases {
        let value: serde_json::Value = serde_json::from_str(text).expect("json");
        let mut expected = Vec::new();
        engine.match_event(&mut scratch, &value, src, &mut expected);
        let event = JsonEvent::parse(text).expect("json");
        let mut found = Vec::new();
        engine.match_json(&mut scratch, &event, src, &mut found);
        assert_eq!(found, expected, "{text}");
        assert_eq!(
            found.iter().any(|f| f.rule.title == "Keywords"),
            keyword,
            "{text}"
        );
    }
}
