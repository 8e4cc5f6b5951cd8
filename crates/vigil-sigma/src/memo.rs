//! A per-thread memo of field scans. Logs repeat themselves: the same `Image`, parent,
//! user, hashes and, often, command line come back event after event. The literals a
//! field's automata find in a text depend on nothing but the text, so a scan's hits are
//! kept, by field group and text, and given back when the same text comes again instead
//! of scanning it. A hit is checked on the whole text (not only its hash), so the answer
//! is always the scan's own.
//!
//! Bounded: each memoized group has [`SLOTS`] entries (direct-mapped: a new text takes
//! its slot from the one before), texts over [`MAX_TEXT`] bytes are not kept, and the
//! kept texts of a scratch total at most [`BUDGET`] bytes.

use crate::fxhash::FxBuild;
use std::hash::{BuildHasher, Hasher};

/// Entries per memoized field group.
pub(crate) const SLOTS: usize = 64;
/// Entries per memoized keyword group: its texts are each of an event's strings (tens
/// per event, most of them the same from event to event: host, user, program, parent),
/// so its table is larger.
pub(crate) const KEYWORD_SLOTS: usize = 1024;
/// Longest text kept.
pub(crate) const MAX_TEXT: usize = 16 * 1024;
/// Most text bytes kept by one scratch over all groups.
pub(crate) const BUDGET: usize = 4 << 20;

#[derive(Debug, Default, Clone)]
struct Entry {
    hash: u64,
    text: String,
    pats: Vec<u32>,
}

/// The memo of one [`crate::Scratch`]: a table per memoized group, made on first use.
#[derive(Debug, Default)]
pub(crate) struct Memo {
    tables: Vec<Vec<Entry>>,
    bytes: usize,
    /// Entries per table.
    slots: usize,
}

/// The hash a text is kept under.
pub(crate) fn hash(text: &str) -> u64 {
    let mut h = FxBuild.build_hasher();
    h.write(text.as_bytes());
    h.write_usize(text.len());
    h.finish()
}

impl Memo {
    /// A memo for `groups` memoized field groups ([`SLOTS`] entries each).
    pub(crate) fn new(groups: usize) -> Self {
        Memo::with_slots(groups, SLOTS)
    }

    /// A memo for `groups` groups of `slots` entries each.
    pub(crate) fn with_slots(groups: usize, slots: usize) -> Self {
        Memo {
            tables: vec![Vec::new(); groups],
            bytes: 0,
            slots: slots.max(1),
        }
    }

    fn slot(&self, hash: u64) -> usize {
        (hash >> 7) as usize % self.slots
    }

    /// How many groups this memo was made for.
    pub(crate) fn groups(&self) -> usize {
        self.tables.len()
    }

    /// The hits kept for `text` in `group`, if any.
    pub(crate) fn get(&self, group: u32, hash: u64, text: &str) -> Option<&[u32]> {
        let e = self.tables.get(group as usize)?.get(self.slot(hash))?;
        (e.hash == hash && e.text == text).then_some(e.pats.as_slice())
    }

    /// Keeps the hits of `text` in `group` (unless the text is too long or the budget
    /// spent).
    pub(crate) fn put(&mut self, group: u32, hash: u64, text: &str, pats: &[u32]) {
        if text.len() > MAX_TEXT {
            return;
        }
        let slot = self.slot(hash);
        let Some(table) = self.tables.get_mut(group as usize) else {
            return;
        };
        if table.is_empty() {
            table.resize(self.slots, Entry::default());
        }
        let e = &mut table[slot];
        let bytes = self.bytes - e.text.len() + text.len();
        if bytes > BUDGET {
            return;
        }
        self.bytes = bytes;
        e.hash = hash;
        e.text.clear();
        e.text.push_str(text);
        e.pats.clear();
        e.pats.extend_from_slice(pats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_back_only_what_was_kept_for_the_same_text() {
        let mut m = Memo::new(2);
        let t = "C:\\Windows\\System32\\cmd.exe";
        assert_eq!(m.get(0, hash(t), t), None);
        m.put(0, hash(t), t, &[3, 1]);
        assert_eq!(m.get(0, hash(t), t), Some(&[3, 1][..]));
        // Another group, another text, the same hash with another text: nothing.
        assert_eq!(m.get(1, hash(t), t), None);
        assert_eq!(m.get(0, hash("x"), "x"), None);
        assert_eq!(m.get(0, hash(t), "C:\\Windows\\System32\\cmd.exE"), None);
        // Nothing kept is also an answer.
        m.put(1, hash("x"), "x", &[]);
        assert_eq!(m.get(1, hash("x"), "x"), Some(&[][..]));
        // A group the memo was not made for is ignored.
        m.put(7, hash(t), t, &[1]);
        assert_eq!(m.get(7, hash(t), t), None);
    }

    #[test]
    fn stays_within_its_bounds() {
        let mut m = Memo::new(1);
        let long = "a".repeat(MAX_TEXT + 1);
        m.put(0, hash(&long), &long, &[1]);
        assert_eq!(m.get(0, hash(&long), &long), None);
        let mut kept = 0;
        for i in 0..(BUDGET / MAX_TEXT) * 4 {
            let t = format!("{i:0>width$}", width = MAX_TEXT);
            m.put(0, hash(&t), &t, &[1]);
            kept += usize::from(m.get(0, hash(&t), &t).is_some());
            assert!(m.bytes <= BUDGET);
        }
        assert!(kept > 0);
        assert!(m.tables[0].len() == SLOTS);
    }
}
