//! [`WinRecord`]: a Windows event record in the `evtx` crate's JSON shape, with its
//! `System`, `EventData` and `UserData` elements located once, so that each field lookup
//! is one map access instead of a walk from the root.

use serde_json::{Map, Value as J};
use vigil_event::access::Fields;
use vigil_event::{Event, FieldPath, Value};

/// A Windows event record (`{"Event": {"System": .., "EventData": ..}}`, or flat) ready
/// for matching with [`crate::EventKind::Windows`]. Any JSON works; only nested records
/// gain from it.
#[derive(Debug, Clone, Copy)]
pub struct WinRecord<'a> {
    root: &'a J,
    system: Option<&'a Map<String, J>>,
    data: Option<&'a Map<String, J>>,
    user: Option<&'a Map<String, J>>,
}

impl<'a> WinRecord<'a> {
    /// Wraps a record.
    pub fn new(root: &'a J) -> Self {
        let event = root.get("Event").and_then(J::as_object);
        let obj = |k: &str| event.and_then(|e| e.get(k)).and_then(J::as_object);
        WinRecord {
            root,
            system: obj("System"),
            data: obj("EventData"),
            user: obj("UserData"),
        }
    }

    /// The wrapped JSON.
    pub fn json(&self) -> &'a J {
        self.root
    }
}

fn lookup<'a>(m: Option<&'a Map<String, J>>, path: &FieldPath) -> Option<Value<'a>> {
    let child = m?.get(path.part(2)?)?;
    child.field_at(path, 3)
}

/// UserData holds one wrapper element named after the event (`LogFileCleared`, ...):
/// a field is looked up in it when it is not directly under UserData.
fn user_lookup<'a>(m: Option<&'a Map<String, J>>, path: &FieldPath) -> Option<Value<'a>> {
    if let Some(v) = lookup(m, path) {
        return Some(v);
    }
    let key = path.part(2)?;
    m?.values()
        .filter_map(J::as_object)
        .find_map(|w| w.get(key))
        .and_then(|child| child.field_at(path, 3))
}

impl Event for WinRecord<'_> {
    fn field(&self, path: &FieldPath) -> Option<Value<'_>> {
        if path.len() >= 3 && path.part(0) == Some("Event") {
            match path.part(1) {
                Some("EventData") if self.data.is_some() => return lookup(self.data, path),
                Some("System") if self.system.is_some() => return lookup(self.system, path),
                Some("UserData") if self.user.is_some() => return user_lookup(self.user, path),
                Some("EventData" | "UserData") => return None,
                _ => {}
            }
        }
        self.root.field(path)
    }

    fn for_each_str<'b>(&'b self, f: &mut dyn FnMut(&'b str)) {
        self.root.for_each_str(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_answers_as_plain_json() {
        let v = serde_json::json!({"Event": {
            "System": {"EventID": {"#text": 4688}, "Channel": "Security"},
            "EventData": {"NewProcessName": "C:\\x.exe", "List": ["a", "b"]}}});
        let r = WinRecord::new(&v);
        let u = serde_json::json!({"Event": {"System": {"Channel": "System"},
            "UserData": {"LogFileCleared": {"Channel": "Security"}}}});
        let ur = WinRecord::new(&u);
        let ch = ur.field(&FieldPath::new("Event.UserData.Channel"));
        assert_eq!(ch.as_ref().and_then(Value::as_str), Some("Security"));
        for p in [
            "Event.System.EventID.#text",
            "Event.System.EventID",
            "Event.System.Channel",
            "Event.EventData.NewProcessName",
            "Event.EventData.List",
            "Event.EventData.Nope",
            "Event.UserData.X",
            "Event.UserData.LogFileCleared",
            "Event.System",
            "Nope",
        ] {
            let path = FieldPath::new(p);
            let plain = v.field(&path);
            assert_eq!(r.field(&path), plain, "{p}");
        }
    }
}
