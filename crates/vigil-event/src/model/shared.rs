//! [`Shared`]: one immutable part of many events (a process as its children's parent, an
//! ancestor, the host), built once, cloned by reference count, rendered to JSON once.
//!
//! An agent writes thousands of events a second that repeat the same lineage and host
//! objects. Building those objects per event (string copies) and serializing them per
//! event (escaping every byte) was most of the agent's CPU; a `Shared` part costs one
//! reference-count increment to put in an event and one copy of its cached JSON text to
//! write.

use crate::access::Fields;
use crate::value::{FieldPath, Value};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// An immutable, reference-counted part of an event whose JSON form is computed once.
///
/// It reads like `T` (through `Deref`), serializes exactly like `T`, and compares by
/// value. The cached JSON is used by `serde_json` serializers; any other serializer sees
/// `T` serialized afresh.
pub struct Shared<T>(Arc<Inner<T>>);

struct Inner<T> {
    value: T,
    /// Set once written: the second writing renders and caches the JSON.
    written: AtomicBool,
    json: OnceLock<Option<Box<RawValue>>>,
}

impl<T> Shared<T> {
    /// Wraps a finished value.
    pub fn new(value: T) -> Self {
        Shared(Arc::new(Inner {
            value,
            written: AtomicBool::new(false),
            json: OnceLock::new(),
        }))
    }

    /// Whether two handles share one value (not a comparison of contents).
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl<T> From<T> for Shared<T> {
    fn from(value: T) -> Self {
        Shared::new(value)
    }
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0.value
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(Arc::clone(&self.0))
    }
}

impl<T: Default> Default for Shared<T> {
    fn default() -> Self {
        Shared::new(T::default())
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Shared::ptr_eq(self, other) || self.0.value == other.0.value
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.value.fmt(f)
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The first writing is direct: many values (an exiting process as its own actor)
        // are written once, and caching them would cost a copy and save nothing.
        if self.0.json.get().is_none() && !self.0.written.swap(true, Ordering::Relaxed) {
            return self.0.value.serialize(s);
        }
        let json = self
            .0
            .json
            .get_or_init(|| serde_json::value::to_raw_value(&self.0.value).ok());
        match json {
            // `RawValue` splices its text into serde_json's output; other serializers get
            // it as a string, so they are given the value itself below.
            Some(raw) if s.is_human_readable() => raw.serialize(s),
            _ => self.0.value.serialize(s),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shared<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Shared::new)
    }
}

impl<T: Fields> Fields for Shared<T> {
    fn field_at<'a>(&'a self, path: &FieldPath, i: usize) -> Option<Value<'a>> {
        self.0.value.field_at(path, i)
    }
    fn visit_strs<'a>(&'a self, f: &mut dyn FnMut(&'a str)) {
        self.0.value.visit_strs(f)
    }
}

impl<T: super::Omit> super::Omit for Shared<T> {
    fn omit(&self) -> bool {
        self.0.value.omit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Process, ProcessEntity};

    fn entity() -> ProcessEntity {
        ProcessEntity {
            pid: Some(7),
            name: Some("sh \"x\"".into()),
            cmd_line: Some("sh -c 'echo \\ hi'".into()),
            ..ProcessEntity::default()
        }
    }

    #[test]
    fn serializes_exactly_like_the_value_every_time() {
        let plain = Process {
            ancestry: vec![entity().into()],
            ..Process::default()
        };
        let shared = Shared::new(plain.clone());
        let want = serde_json::to_string(&plain).unwrap();
        // First (direct), second (renders and caches), third (from the cache), and
        // through to_value.
        for _ in 0..3 {
            assert_eq!(serde_json::to_string(&shared).unwrap(), want);
        }
        assert!(shared.0.json.get().is_some_and(Option::is_some), "cached");
        assert_eq!(
            serde_json::to_value(&shared).unwrap(),
            serde_json::to_value(&plain).unwrap()
        );
        let back: Shared<Process> = serde_json::from_str(&want).unwrap();
        assert_eq!(back, shared);
    }

    #[test]
    fn clones_share_and_fields_read_through() {
        let a = Shared::new(entity());
        let b = a.clone();
        assert!(Shared::ptr_eq(&a, &b));
        assert_eq!(
            a.field_at(&FieldPath::new("cmd_line"), 0),
            Some(Value::Str("sh -c 'echo \\ hi'".into()))
        );
        let mut seen = Vec::new();
        b.visit_strs(&mut |s| seen.push(s.to_string()));
        assert_eq!(seen, ["sh \"x\"", "sh -c 'echo \\ hi'"]);
    }
}
