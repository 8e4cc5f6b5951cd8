//! The validator's rules, each shown on a tiny schema the project ships
//! (`tests/fixtures/mini-schema`): class 9001 `widget_activity` extends `demo` extends
//! `base_event`, which includes profile `hosted`; object `widget` extends `_entity`.

use serde_json::{json, Value};
use std::path::Path;
use vigil_ocsf_schema::Schema;

fn schema() -> Schema {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mini-schema");
    Schema::load(&dir).expect("fixture schema loads")
}

fn good() -> Value {
    json!({
        "activity_id": 1, "activity_name": "Spin", "category_uid": 9, "class_uid": 9001,
        "type_uid": 900101, "time": 1_700_000_000_000_i64,
        "metadata": {"version": "0.0.1-test"},
        "widget": {"name": "w", "ip": "10.1.2.3", "port": 443, "tags": ["a"], "extra": {"any": [1]}}
    })
}

/// The violations of `event`, as `path: message` lines.
fn check(event: &Value) -> Vec<String> {
    schema()
        .validate(event)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn assert_one(event: Value, path: &str, needle: &str) {
    let v = check(&event);
    assert_eq!(v.len(), 1, "expected one violation at {path}, got {v:?}");
    assert!(
        v[0].starts_with(&format!("{path}: ")) && v[0].contains(needle),
        "{v:?}"
    );
}

#[test]
fn resolves_classes_through_extends_and_categories() {
    let s = schema();
    assert_eq!(s.version, "0.0.1-test");
    let c = s.class(9001).expect("class 9001");
    assert_eq!(c.category_uid, 9);
    assert!(
        c.def.attributes.contains_key("time"),
        "inherited from base_event"
    );
    let w = s.object("widget").expect("widget");
    assert_eq!(
        w.constraints.at_least_one,
        ["name", "uid"],
        "inherited from _entity"
    );
}

#[test]
fn a_good_event_passes() {
    assert_eq!(check(&good()), Vec::<String>::new());
}

#[test]
fn missing_required_attribute() {
    let mut e = good();
    e.as_object_mut().unwrap().remove("time");
    assert_one(e, "time", "required");
    let mut e = good();
    e["widget"].as_object_mut().unwrap().remove("ip");
    assert_one(e, "widget.ip", "required");
}

#[test]
fn type_uid_must_be_class_times_100_plus_activity() {
    let mut e = good();
    e["type_uid"] = json!(900102);
    assert_one(e, "type_uid", "900101");
}

#[test]
fn wrong_category_and_unknown_class() {
    let mut e = good();
    e["category_uid"] = json!(1);
    assert_one(
        e,
        "category_uid",
        "1 is not a defined enum value (defined: 9)",
    );
    let mut e = good();
    e["class_uid"] = json!(4242);
    assert_one(e, "class_uid", "not an OCSF class");
}

#[test]
fn undefined_enum_value_and_wrong_caption() {
    let mut e = good();
    e["activity_id"] = json!(7);
    e["type_uid"] = json!(900107);
    e.as_object_mut().unwrap().remove("activity_name");
    assert_one(e, "activity_id", "not a defined enum value");
    let mut e = good();
    e["activity_name"] = json!("Stop");
    assert_one(e, "activity_name", "caption");
}

#[test]
fn wrong_types() {
    let mut e = good();
    e["time"] = json!("yesterday");
    assert_one(e, "time", "timestamp_t");
    let mut e = good();
    e["widget"]["ip"] = json!("10.1.2.300");
    assert_one(e, "widget.ip", "not an IP address");
    let mut e = good();
    e["widget"]["port"] = json!(70000);
    assert_one(e, "widget.port", "not a port");
    let mut e = good();
    e["widget"]["tags"] = json!("a");
    assert_one(e, "widget.tags", "expected an array");
    let mut e = good();
    e["widget"]["tags"] = json!(["a", 2]);
    assert_one(e, "widget.tags[1]", "string_t");
    let mut e = good();
    e["widget"] = json!([1]);
    assert_one(e, "widget", "expected a `widget` object");
    let mut e = good();
    e["activity_id"] = json!(1i64 << 40);
    let v = check(&e);
    assert!(
        v.iter()
            .any(|l| l.starts_with("activity_id: expected integer_t")),
        "{v:?}"
    );
}

#[test]
fn unknown_attributes_and_nulls_are_rejected() {
    let mut e = good();
    e["colour"] = json!("red");
    assert_one(e, "colour", "unknown attribute");
    let mut e = good();
    e["widget"]["port"] = Value::Null;
    assert_one(e, "widget.port", "null");
}

#[test]
fn object_constraints() {
    let mut e = good();
    e["widget"].as_object_mut().unwrap().remove("name");
    assert_one(e, "widget", "at least one of: name, uid");
}

#[test]
fn profile_attributes_need_their_profile() {
    let mut e = good();
    e["owner_host"] = json!("h");
    assert_one(e.clone(), "owner_host", "profile `hosted`");
    // Listing the profile makes the attribute legal, and its requirement binding.
    e["metadata"]["profiles"] = json!(["hosted"]);
    assert_eq!(check(&e), Vec::<String>::new());
    e.as_object_mut().unwrap().remove("owner_host");
    assert_one(e, "owner_host", "required");
}

#[test]
fn hostile_nesting_is_reported_not_followed() {
    let mut deep = json!({});
    for _ in 0..200 {
        deep = json!({ "extra": deep });
    }
    // `extra` is a free-form object, so nesting inside it is not walked at all...
    let mut e = good();
    e["widget"]["extra"] = deep;
    assert_eq!(check(&e), Vec::<String>::new());
    // ...and the validator never recurses more than its bound on schema objects.
    assert!(check(&json!([]))
        .iter()
        .any(|l| l.contains("not a JSON object")));
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempdir_with_broken_dictionary();
    let err = Schema::load(&dir).unwrap_err().to_string();
    assert!(
        err.contains("dictionary.json:1:") && err.contains("invalid JSON"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir_with_broken_dictionary() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-ocsf-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("dictionary.json"), "{ not json").expect("write fixture");
    dir
}
