//! Where rules read their fields: a *slot* is the list of record paths a field is found
//! at (tried in order), shared by every rule and bucket that reads the same; a
//! bucket's *variant* maps its fields to slots for one kind of event. Matching reads
//! each slot once per event.

use std::collections::HashMap;
use vigil_event::{Event, FieldPath, Value};

/// A bucket's field mapping for one kind of event: local field -> slot, and the slot of
/// the event time.
#[derive(Debug)]
pub(crate) struct Variant {
    pub slots: Box<[u32]>,
    pub time: Option<u32>,
}

/// One path a field is read from, and the path of that element's text.
pub(crate) struct SlotPath {
    path: FieldPath,
    /// `path.#text`.
    text: FieldPath,
}

impl SlotPath {
    fn new(path: &str) -> Self {
        SlotPath {
            path: FieldPath::new(path),
            text: FieldPath::new(&format!("{path}.#text")),
        }
    }

    /// The value at this path. An object holding `#text` reads as that text: an XML
    /// element with attributes, or a run of unnamed ones, as `evtx` renders them
    /// (`<Data>a</Data><Data>b</Data>` is `"Data": {"#text": ["a", "b"]}`, the
    /// MSSQL and Application log records).
    #[inline]
    pub(crate) fn read<'e>(&self, event: &'e dyn Event) -> Option<Value<'e>> {
        match event.field(&self.path)? {
            Value::Object => Some(event.field(&self.text).unwrap_or(Value::Object)),
            v => Some(v),
        }
    }
}

/// The slots of an engine being built, each list of paths once.
#[derive(Default)]
pub(crate) struct SlotTable {
    pub slots: Vec<Box<[SlotPath]>>,
    index: HashMap<Vec<String>, u32>,
}

impl SlotTable {
    /// The slot of `paths`, made if new.
    pub(crate) fn slot(&mut self, paths: Vec<String>) -> u32 {
        if let Some(i) = self.index.get(&paths) {
            return *i;
        }
        let i = self.slots.len() as u32;
        self.slots
            .push(paths.iter().map(|p| SlotPath::new(p)).collect());
        self.index.insert(paths, i);
        i
    }
}
