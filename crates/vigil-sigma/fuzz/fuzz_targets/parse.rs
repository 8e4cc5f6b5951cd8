//! Any bytes as a rule file: loading must not panic, and whatever loads must match a
//! few events without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_sigma::{Loader, LogSource, EventKind};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut loader = Loader::new();
    loader.add("fuzz.yml", &text);
    let built = loader.build();
    let engine = built.engine;
    let mut scratch = engine.scratch();
    let declared = engine.declare(&LogSource::new(Some("test"), None, None));
    let event = serde_json::json!({"Image": "C:\\x.exe", "EventID": 1, "a": ["b", 2]});
    let mut out = Vec::new();
    engine.match_event(&mut scratch, &event, EventKind::Declared(&declared), &mut out);
    engine.match_event(&mut scratch, &event, EventKind::Windows, &mut out);
});
