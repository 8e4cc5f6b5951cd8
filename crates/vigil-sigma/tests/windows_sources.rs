//! Regression (found by the differential test): when a record fits several sources of
//! one logsource (the same channel listed with and without EventIDs), the source listed
//! without EventIDs decided how the rules read the record, whatever the order of the
//! mapping's list. The first listed source the record fits decides.

use vigil_sigma::{Config, EventKind, Loader, WINDOWS_MAP};

fn titles(map: &str, record: &serde_json::Value) -> Vec<String> {
    let mut loader = Loader::with_config(Config {
        windows_map: Some(map.to_string()),
        ..Config::default()
    })
    .expect("map");
    loader.add(
        "r.yml",
        "title: Renamed image\nlogsource: {product: windows, service: custom}\n\
         detection:\n  s:\n    Image|endswith: '\\x.exe'\n  condition: s\n",
    );
    let built = loader.build();
    assert!(built.errors.is_empty(), "{:?}", built.errors);
    let engine = built.engine;
    let mut out = Vec::new();
    engine.match_event(&mut engine.scratch(), record, EventKind::Windows, &mut out);
    out.iter().map(|f| f.rule.title.clone()).collect()
}

#[test]
fn first_listed_windows_source_decides_field_names() {
    let with = |sources: &str| {
        WINDOWS_MAP.replacen(
            "\nservices:\n",
            &format!("\nservices:\n  custom:\n{sources}"),
            1,
        )
    };
    // EventID 1 of the channel renames Image; any other EventID does not.
    let renaming_first = with(
        "    - {channel: Custom, event_id: [1], rename: {Image: NewProcessName}}\n    \
         - {channel: Custom}\n",
    );
    let plain_first = with(
        "    - {channel: Custom}\n    \
         - {channel: Custom, event_id: [1], rename: {Image: NewProcessName}}\n",
    );
    let renamed =
        serde_json::json!({"Channel": "Custom", "EventID": 1, "NewProcessName": "C:\\x.exe"});
    let plain = serde_json::json!({"Channel": "Custom", "EventID": 1, "Image": "C:\\x.exe"});
    let other = serde_json::json!({"Channel": "Custom", "EventID": 2, "Image": "C:\\x.exe"});
    assert_eq!(titles(&renaming_first, &renamed), ["Renamed image"]);
    assert!(titles(&renaming_first, &plain).is_empty());
    assert_eq!(titles(&renaming_first, &other), ["Renamed image"]);
    assert!(titles(&plain_first, &renamed).is_empty());
    assert_eq!(titles(&plain_first, &plain), ["Renamed image"]);
    assert_eq!(titles(&plain_first, &other), ["Renamed image"]);
}
