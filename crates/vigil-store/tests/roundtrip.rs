//! Events through the store and back: every attribute of every class, and the example
//! intrusion's events, read back from Parquet (and from the log) as the same JSON.

use serde_json::{json, Map, Value as Json};
use std::path::Path;
use vigil_event::model::Shape;
use vigil_store::{compact, read_parquet, row_seq, row_to_json, snapshot, wal, Class, CLASSES};

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("vigil-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A value of `shape` with every attribute present, differing by `n`.
fn full(name: &str, shape: &Shape, n: i64) -> Json {
    match shape {
        Shape::Bool => json!(n % 2 == 0),
        Shape::I32 => json!(-(n as i32) - 7),
        Shape::I64 if name == "time" || name.ends_with("_time") => json!(1_709_300_700_000 + n),
        Shape::I64 => json!(-(1i64 << 40) - n),
        Shape::U32 => json!(4_000_000_000u32 - n as u32),
        Shape::U64 => json!(u64::MAX - n as u64),
        Shape::F64 => json!(0.5 + n as f64),
        Shape::Str => json!(format!("{name}-{n} \"quoted\" é")),
        Shape::Json => json!({"k": [1, "two", {"three": null}], "n": n}),
        Shape::List(inner) => json!([full(name, inner, n), full(name, inner, n + 1)]),
        Shape::Struct(fields) => Json::Object(
            fields
                .iter()
                .map(|f| (f.name.to_string(), full(f.name, &f.shape, n)))
                .collect(),
        ),
    }
}

fn full_event(class: &Class, n: i64) -> Map<String, Json> {
    let Json::Object(mut m) = full("", &class.shape(), n) else {
        panic!("an object")
    };
    m.insert("class_uid".into(), json!(class.uid));
    m
}

fn write_segment(root: &Path, lines: &[String]) -> wal::Segment {
    let (mut w, rec) = wal::Writer::open(root, 0, 0).expect("open");
    assert!(rec.problems.is_empty(), "{:?}", rec.problems);
    let mut text = lines.join("\n");
    text.push('\n');
    assert_eq!(
        w.append_lines(text.as_bytes()).expect("append"),
        lines.len() as u64
    );
    assert_eq!(w.sync().expect("sync"), lines.len() as u64);
    w.roll(0).expect("roll")
}

/// Every stored row of the lake, as (seq, JSON), ordered by seq.
fn lake_rows(root: &Path) -> Vec<(u64, Json)> {
    let snap = snapshot(root, None, None);
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    let mut rows = Vec::new();
    for files in snap.files.values() {
        for f in files {
            for b in read_parquet(&f.path).expect("readable") {
                for r in 0..b.num_rows() {
                    rows.push((row_seq(&b, r).expect("seq"), row_to_json(&b, r)));
                }
            }
        }
    }
    for batches in snap.log.values() {
        for b in batches {
            for r in 0..b.num_rows() {
                rows.push((row_seq(b, r).expect("seq"), row_to_json(b, r)));
            }
        }
    }
    rows.sort_by_key(|(s, _)| *s);
    rows
}

fn check_roundtrip(name: &str, events: Vec<Json>) {
    let root = tempdir(name);
    let lines: Vec<String> = events.iter().map(|e| e.to_string()).collect();
    let seg = write_segment(&root, &lines);
    // In the log: read back as batches already.
    let before = lake_rows(&root);
    assert_eq!(before.len(), events.len());
    for ((seq, got), (i, want)) in before.iter().zip(events.iter().enumerate()) {
        assert_eq!(*seq, i as u64 + 1);
        assert_eq!(got, want, "from the log, seq {seq}");
    }
    let done = compact::compact_segment(&root, &seg, 0).expect("compact");
    assert!(done.rejected.is_empty(), "{:?}", done.rejected);
    assert!(done.anomalies.is_empty(), "{:?}", done.anomalies);
    assert_eq!(done.events, events.len() as u64);
    compact::finish_segment(&root, &seg, done.last_seq.expect("records")).expect("finish");
    let after = lake_rows(&root);
    assert_eq!(after.len(), events.len());
    for ((seq, got), (i, want)) in after.iter().zip(events.iter().enumerate()) {
        assert_eq!(*seq, i as u64 + 1);
        assert_eq!(got, want, "from Parquet, seq {seq}");
    }
    std::fs::remove_dir_all(&root).expect("clean");
}

#[test]
fn every_attribute_of_every_class_reads_back_the_same() {
    let events: Vec<Json> = CLASSES
        .iter()
        .flat_map(|c| (0..3).map(move |n| Json::Object(full_event(c, n))))
        .collect();
    check_roundtrip("full", events);
}

#[test]
fn the_example_intrusion_reads_back_the_same() {
    let events: Vec<Json> = vigil_event::example::attack_story(1_709_300_700_000)
        .iter()
        .map(|e| serde_json::from_str(&serde_json::to_string(e).expect("json")).expect("json"))
        .collect();
    assert!(events.len() > 10);
    check_roundtrip("example", events);
}

#[test]
fn a_parents_parent_is_kept_as_json_text() {
    let mut ev = full_event(Class::by_table("process_activity").expect("class"), 0);
    ev["process"]["parent_process"]["parent_process"] =
        json!({"pid": 1, "name": "init", "parent_process": {"pid": 0}});
    check_roundtrip("deep", vec![Json::Object(ev)]);
}

#[test]
fn the_direct_path_and_the_tree_path_build_the_same_columns_and_report_the_same() {
    let mut events: Vec<Json> = CLASSES
        .iter()
        .map(|c| Json::Object(full_event(c, 1)))
        .collect();
    // What does not fit: a string for an integer, an unknown attribute, an object for a
    // string, a list for an object.
    let class = Class::by_table("process_activity").expect("class");
    let mut odd = full_event(class, 2);
    odd["process"]["pid"] = json!("seven");
    odd["process"]["no_such"] = json!(1);
    odd["process"]["name"] = json!({"a": 1});
    odd["actor"] = json!([1, 2]);
    events.push(Json::Object(odd));
    for ev in &events {
        let class = Class::by_uid(ev["class_uid"].as_i64().expect("uid")).expect("class");
        let mut tree = vigil_store::BatchBuilder::new(class);
        let mut direct = vigil_store::BatchBuilder::new(class);
        tree.push(9, ev.as_object().expect("object"));
        direct
            .push_json(9, ev.to_string().as_bytes())
            .expect("stored");
        let (ta, da) = (tree.anomalies().clone(), direct.anomalies().clone());
        assert_eq!((ta.unknown, ta.mistyped), (da.unknown, da.mistyped));
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        assert_eq!(sorted(ta.examples), sorted(da.examples), "{}", class.table);
        let (a, b) = (tree.finish(), direct.finish());
        assert_eq!(row_to_json(&a, 0), row_to_json(&b, 0), "{}", class.table);
        assert_eq!(a, b, "{}", class.table);
    }
    let mut direct = vigil_store::BatchBuilder::new(class);
    direct
        .push_json(1, events.last().expect("odd").to_string().as_bytes())
        .expect("stored");
    let a = direct.anomalies();
    assert_eq!((a.mistyped, a.unknown), (3, 1), "{a:?}");
    assert!(
        a.examples
            .contains(&"process.pid: not a 32-bit integer".to_string()),
        "{a:?}"
    );
    assert!(
        a.examples
            .contains(&"process.no_such: no such attribute".to_string()),
        "{a:?}"
    );
}

/// Every key path of a JSON value (through arrays, as field lookups go), each also with
/// a part that is not there.
fn key_paths(v: &Json, prefix: &str, out: &mut Vec<String>) {
    match v {
        Json::Object(m) => {
            for (k, child) in m {
                let p = match prefix {
                    "" => k.clone(),
                    _ => format!("{prefix}.{k}"),
                };
                out.push(format!("{p}.nope"));
                key_paths(child, &p, out);
                out.push(p);
            }
        }
        Json::Array(items) => items.iter().for_each(|i| key_paths(i, prefix, out)),
        _ => {}
    }
}

/// A stored row answers the rule engine exactly as its JSON does: every field lookup
/// (present, absent, into lists, into JSON text columns) and the keyword strings, with
/// and without the lineage context, for rows from the log's batches and from Parquet.
#[test]
fn a_stored_row_reads_as_an_event_exactly_as_its_json_does() {
    use vigil_event::{Event, FieldPath, OcsfJson};
    let mut events: Vec<Json> = CLASSES
        .iter()
        .flat_map(|c| (0..3).map(move |n| Json::Object(full_event(c, n))))
        .collect();
    events.extend(
        vigil_event::example::attack_story(1_709_300_700_000)
            .iter()
            .map(|e| serde_json::to_value(e).expect("json")),
    );
    // Sparse rows: members taken out at every depth, empty objects, lists with holes
    // and empty lists, text that is not JSON in a JSON column.
    let class = Class::by_table("process_activity").expect("class");
    let mut sparse = full_event(class, 4);
    sparse.remove("actor");
    sparse["process"]["parent_process"] = json!({});
    sparse["process"]["file"]["hashes"] = json!([null, {"algorithm": "MD5"}]);
    sparse["process"]["user"]["groups"] = json!([]);
    sparse["unmapped"] = json!({"ancestry": ["x"], "k": "v"});
    events.push(Json::Object(sparse));
    let mut odd = full_event(class, 5);
    odd["unmapped"] = json!("not json {");
    events.push(Json::Object(odd));
    let root = tempdir("row-event");
    let lines: Vec<String> = events.iter().map(|e| e.to_string()).collect();
    let seg = write_segment(&root, &lines);
    let check = |batch: &arrow_array::RecordBatch, from: &str| {
        let rows = vigil_store::RowBatch::new(batch.clone());
        for r in 0..batch.num_rows() {
            let json = row_to_json(batch, r);
            let mut paths = vec!["nope".to_string(), "vigil_seq".to_string()];
            key_paths(&json, "", &mut paths);
            for p in &paths {
                let path = FieldPath::new(p);
                assert_eq!(
                    rows.event(r, false).field(&path),
                    OcsfJson(&json).field(&path),
                    "{from}, row {r}: {p}"
                );
            }
            for lineage in [false, true] {
                let (mut got, mut want) = (Vec::new(), Vec::new());
                rows.event(r, lineage)
                    .for_each_str(&mut |s| got.push(s.to_string()));
                match lineage {
                    false => OcsfJson(&json).for_each_str(&mut |s| want.push(s.to_string())),
                    true => json.for_each_str(&mut |s| want.push(s.to_string())),
                }
                // In the order of the columns; a `Value` without `preserve_order` sorts
                // its keys, and the order does not change what a keyword finds.
                got.sort();
                want.sort();
                assert_eq!(got, want, "{from}, row {r}, lineage {lineage}");
            }
        }
        batch.num_rows()
    };
    // Batches of the example story alone: most columns hold nothing in any row.
    let mut by_class: std::collections::BTreeMap<i64, vigil_store::BatchBuilder> =
        Default::default();
    for e in vigil_event::example::attack_story(1_709_300_700_000) {
        let line = serde_json::to_string(&e).expect("json");
        let uid = serde_json::from_str::<Json>(&line).expect("json")["class_uid"]
            .as_i64()
            .expect("uid");
        let class = Class::by_uid(uid).expect("class");
        by_class
            .entry(uid)
            .or_insert_with(|| vigil_store::BatchBuilder::new(class))
            .push_json(1, line.as_bytes())
            .expect("stored");
    }
    assert!(by_class.len() > 2);
    for b in by_class.values_mut() {
        check(&b.finish(), "example story alone");
    }
    let mut seen = 0;
    for batches in snapshot(&root, None, None).log.values() {
        seen += batches.iter().map(|b| check(b, "log")).sum::<usize>();
    }
    assert_eq!(seen, events.len());
    let done = compact::compact_segment(&root, &seg, 0).expect("compact");
    compact::finish_segment(&root, &seg, done.last_seq.expect("records")).expect("finish");
    seen = 0;
    for f in snapshot(&root, None, None).files.values().flatten() {
        for b in read_parquet(&f.path).expect("readable") {
            seen += check(&b, "parquet");
        }
    }
    assert_eq!(seen, events.len());
    std::fs::remove_dir_all(&root).expect("clean");
}
