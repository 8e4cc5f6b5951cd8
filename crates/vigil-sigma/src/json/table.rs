//! The member table of a [`JsonEvent`]: every object member by (object, key), filled
//! while parsing ([`Parser::insert`]) and read by field lookups
//! ([`JsonEvent::member_hashed`]). Open addressing in a part of a table reused from
//! record to record (slots of another record's epoch are free), at most half full. Its
//! hash is not keyed (a [`FieldPath`] brings its parts hashed), so the cost of keys
//! crafted to collide is bounded ([`PROBE_LIMIT`]) and the record then answers through a
//! keyed [`Fallback`].

use super::parser::Parser;
use super::words::same_bytes;
use super::{bytes_of, JsonEvent, Node, Tag, NO_KEY};
#[cfg(doc)]
use vigil_event::FieldPath;

/// The most slots a member table insertion or lookup visits. The table's hash is not
/// keyed (a [`FieldPath`] brings its parts hashed), so a hostile text can make many keys
/// hash alike; past this many probes the record's members are found through
/// [`Fallback`], whose hash is keyed, instead: the cost per member stays bounded.
pub(super) const PROBE_LIMIT: usize = 128;

/// A member in [`JsonEvent`]'s table; a slot of an earlier event (another `epoch`) is
/// free, so the table is reused without clearing it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct Slot {
    /// The high half of the member's [`key_hash`] (the low half chose the slot).
    pub(super) check: u32,
    pub(super) object: u32,
    pub(super) node: u32,
    pub(super) epoch: u32,
}

/// Every member of a record by (object, key), under std's randomly keyed hash: what
/// lookups use when the member table's unkeyed hash met keys that collide (see
/// [`PROBE_LIMIT`]).
#[derive(Debug)]
pub(super) struct Fallback {
    hasher: std::collections::hash_map::RandomState,
    /// (object, keyed hash of the key) -> the members with that hash (the last of each
    /// key), in document order.
    members: std::collections::HashMap<(u32, u64), Vec<u32>>,
}

impl Fallback {
    pub(super) fn new(ev: &JsonEvent<'_>) -> Self {
        use std::hash::BuildHasher;
        let hasher = std::collections::hash_map::RandomState::new();
        let mut members: std::collections::HashMap<(u32, u64), Vec<u32>> = Default::default();
        for (j, n) in ev.nodes.iter().enumerate() {
            if n.tag != Tag::Object {
                continue;
            }
            for c in ev.children(j) {
                let key = ev.key_bytes(c);
                let list = members.entry((j as u32, hasher.hash_one(key))).or_default();
                // A repeated key: the later member counts.
                match list.iter_mut().find(|m| ev.key_bytes(**m as usize) == key) {
                    Some(m) => *m = c as u32,
                    None => list.push(c as u32),
                }
            }
        }
        Fallback { hasher, members }
    }

    pub(super) fn member(&self, ev: &JsonEvent<'_>, j: usize, key: &[u8]) -> Option<usize> {
        use std::hash::BuildHasher;
        let list = self.members.get(&(j as u32, self.hasher.hash_one(key)))?;
        list.iter()
            .map(|m| *m as usize)
            .find(|m| ev.key_bytes(*m) == key)
    }
}

/// One step of the key hash over a key's bytes (`vigil_event::key_hash`'s, so that a
/// [`FieldPath`]'s parts come hashed).
pub(super) use vigil_event::key_hash_step as mix;

/// The hash of a member's key in its object, from the key's bytes hashed
/// (`vigil_event::key_hash`): then its length and the object.
#[inline(always)]
pub(super) fn hash_end(h: u64, len: usize, object: u32) -> u64 {
    let h = mix(mix(h, len as u64), u64::from(object));
    h ^ (h >> 32)
}

/// The hash of a member's key in its object: its bytes eight at a time (the last word
/// padded with zeros), then its length and the object. [`scan_key`](super::parser::scan_key) computes the same
/// while scanning.
#[inline]
pub(super) fn key_hash(object: u32, key: &[u8]) -> u64 {
    hash_end(vigil_event::key_hash(key), key.len(), object)
}

/// A key's bit in its object's filter (`Node::data`), from its length: a key whose bit
/// the filter lacks is not a member, found without hashing it (a flat key holding dots
/// tried in an object of short keys, say).
#[inline(always)]
pub(super) fn key_bit(len: usize) -> u64 {
    1 << (len % 64)
}

impl JsonEvent<'_> {
    /// The last member of object `j` named `key`.
    pub(super) fn member(&self, j: usize, key: &str) -> Option<usize> {
        self.member_hashed(j, key, vigil_event::key_hash(key.as_bytes()))
    }

    /// [`JsonEvent::member`], the key's bytes already hashed (`vigil_event::key_hash`,
    /// as a [`FieldPath`] keeps its parts).
    #[inline(always)]
    pub(super) fn member_hashed(&self, j: usize, key: &str, bytes_hash: u64) -> Option<usize> {
        let key = key.as_bytes();
        if self.nodes.get(j)?.data & key_bit(key.len()) == 0 {
            return None;
        }
        let hash = hash_end(bytes_hash, key.len(), j as u32);
        let check = (hash >> 32) as u32;
        let mask = self.mask;
        let mut at = hash as usize & mask;
        // Where the walk gives up: `PROBE_LIMIT` slots on (in a smaller table, back where
        // it started, never reached: a table is at most half full).
        let stop = (at + PROBE_LIMIT) & mask;
        loop {
            // A hostile record's table is empty: its members are in the fallback.
            let Some(&slot) = self.table.get(at) else {
                return self.fallback_member(j, key);
            };
            if slot.epoch != self.epoch {
                return None;
            }
            if slot.check == check && slot.object == j as u32 {
                let node = slot.node as usize;
                let k = self.nodes.get(node)?.key();
                if k.len as usize == key.len()
                    && same_bytes(
                        bytes_of(self.text.as_bytes(), self.unescaped.as_bytes(), k),
                        key,
                    )
                {
                    return Some(node);
                }
            }
            at = (at + 1) & mask;
            if at == stop {
                // A run of slots too long to walk (keys crafted to collide).
                return self.fallback_member(j, key);
            }
        }
    }

    /// The last member of object `j` with key `key`, through the keyed [`Fallback`].
    #[cold]
    #[inline(never)]
    pub(super) fn fallback_member(&self, j: usize, key: &[u8]) -> Option<usize> {
        self.fallback
            .get_or_init(|| Fallback::new(self))
            .member(self, j, key)
    }

    /// The key of node `j` (empty for array elements and the root).
    pub(super) fn key_bytes(&self, j: usize) -> &[u8] {
        let k = self.nodes.get(j).map_or(NO_KEY, Node::key);
        bytes_of(self.text.as_bytes(), self.unescaped.as_bytes(), k)
    }
}

impl Parser<'_> {
    /// Puts member `node` of `object`, whose key hashes to `hash`, in the table (a
    /// repeated key: the later member replaces the earlier). In a hostile record (see
    /// [`PROBE_LIMIT`]) a member whose slot is free still takes it, but none is probed
    /// for or moved: the table is no longer read.
    #[inline(always)]
    pub(super) fn insert(&mut self, hash: u64, object: u32, node: u32) {
        let at = hash as usize & self.mask;
        if let Some(slot) = self.table.get_mut(at) {
            if slot.epoch != self.epoch {
                *slot = Slot {
                    check: (hash >> 32) as u32,
                    object,
                    node,
                    epoch: self.epoch,
                };
                self.added();
                return;
            }
        }
        self.insert_probing(hash, object, node);
    }

    /// [`Parser::insert`] past a taken first slot (or in a hostile record, where it does
    /// nothing).
    #[inline(never)]
    pub(super) fn insert_probing(&mut self, hash: u64, object: u32, node: u32) {
        if self.hostile {
            return;
        }
        let check = (hash >> 32) as u32;
        let mut at = hash as usize & self.mask;
        for probe in 0.. {
            if probe == PROBE_LIMIT {
                self.hostile = true;
                return;
            }
            #[cfg(test)]
            {
                self.probes += usize::from(probe > 0);
            }
            let Some(slot) = self.table.get(at).copied() else {
                return;
            };
            if slot.epoch != self.epoch {
                self.table[at] = Slot {
                    check,
                    object,
                    node,
                    epoch: self.epoch,
                };
                self.added();
                return;
            }
            if slot.check == check && slot.object == object && self.same_key(slot.node, node) {
                self.table[at].node = node;
                return;
            }
            at = (at + 1) & self.mask;
        }
    }

    /// Counts a member put in a free slot, keeping the table at most half full.
    #[inline(always)]
    fn added(&mut self) {
        self.members += 1;
        if self.members * 2 > self.mask + 1 {
            self.grow();
        }
    }

    fn same_key(&self, a: u32, b: u32) -> bool {
        let (text, unescaped) = (self.b, self.unescaped.as_bytes());
        match (self.nodes.get(a as usize), self.nodes.get(b as usize)) {
            (Some(x), Some(y)) => {
                bytes_of(text, unescaped, x.key()) == bytes_of(text, unescaped, y.key())
            }
            _ => false,
        }
    }

    /// Doubles the record's part of the table, keeping its members: they move to a new
    /// epoch, which frees their old slots.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        if self.hostile {
            // The table is no longer read: no need to move its members.
            return;
        }
        let hashes: Vec<(u64, Slot)> = self
            .table
            .iter()
            .take(self.mask + 1)
            .filter(|s| s.epoch == self.epoch)
            .map(|s| {
                let key = self.nodes.get(s.node as usize).map_or(NO_KEY, |n| n.key());
                let key = bytes_of(self.b, self.unescaped.as_bytes(), key);
                (key_hash(s.object, key), *s)
            })
            .collect();
        let size = (self.mask + 1) * 2;
        if self.table.len() < size || self.epoch == u32::MAX {
            self.table.clear();
            self.table.resize(size, Slot::default());
            self.epoch = 0;
        }
        self.mask = size - 1;
        self.epoch += 1;
        for (hash, s) in hashes {
            let mut at = hash as usize & self.mask;
            let mut probes = 0;
            while self.table[at].epoch == self.epoch {
                at = (at + 1) & self.mask;
                probes += 1;
                if probes == PROBE_LIMIT {
                    self.hostile = true;
                    return;
                }
            }
            #[cfg(test)]
            {
                self.probes += probes;
            }
            self.table[at] = Slot {
                epoch: self.epoch,
                ..s
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::JsonBuffers;
    use std::borrow::Cow;
    use vigil_event::{Event, FieldPath, Value};

    /// Each record uses the part of the member table its length calls for, growing it
    /// when members are dense, whatever size an earlier record left the table at.
    #[test]
    fn member_table_part_per_record() {
        // `#`: one-digit values (dense: about 10 bytes a member, fewer than the first
        // guess at the part of the table allows, which then grows).
        let doc = |n: usize, pad: &str| {
            let members: Vec<String> = (0..n)
                .map(|i| match pad {
                    "#" => format!(r#""k{i}":{}"#, i % 10),
                    _ => format!(r#""k{i}":"{pad}{i}""#),
                })
                .collect();
            format!("{{{}}}", members.join(","))
        };
        let mut buffers = JsonBuffers::default();
        // Large and sparse, then small, then dense (short values: the first guess at the
        // part is too small and grows while parsing), then large again.
        let cases = [
            (2000, "xxxxxxxxxxxxxxxx"),
            (3, ""),
            (900, "#"),
            (50, "#"),
            (3000, "y"),
            (5000, "#"),
        ];
        for (n, pad) in cases {
            let text = doc(n, pad);
            let ev = JsonEvent::parse_with(&text, &mut buffers).expect("json");
            for i in (0..n).step_by(7).chain([n - 1]) {
                let v = ev.field(&FieldPath::new(&format!("k{i}")));
                let want = match pad {
                    "#" => Value::Int((i % 10) as i64),
                    _ => Value::Str(Cow::Owned(format!("{pad}{i}"))),
                };
                assert_eq!(v, Some(want), "{n} k{i}");
            }
            assert_eq!(ev.field(&FieldPath::new(&format!("k{n}"))), None);
            ev.recycle(&mut buffers);
        }
    }

    /// Keys of 8 printable bytes, none in `taken`, whose members in a document of `n` of
    /// them (`{"key":0,...}`, see [`doc_of`]) hash to the root object's slots `slots` of
    /// the member table, in that order: found by trying keys in turn, as an attacker
    /// would.
    fn crafted_keys(n: usize, slots: &[usize], taken: &[String]) -> Vec<String> {
        const ALPHABET: &[u8; 64] =
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
        // `"xxxxxxxx":0,` per member: the part of the table parse_with takes for it.
        let mask = ((13 * n + 1) / 4).next_power_of_two().max(8) - 1;
        let mut by_slot: std::collections::HashMap<usize, Vec<String>> = Default::default();
        for &s in slots {
            by_slot.entry(s).or_default();
        }
        let mut wanted: std::collections::HashMap<usize, usize> = Default::default();
        for &s in slots {
            *wanted.entry(s).or_default() += 1;
        }
        let mut missing = slots.len();
        let mut i = 0u64;
        while missing > 0 {
            let key: Vec<u8> = (0..8)
                .map(|b| ALPHABET[(i >> (6 * b)) as usize % 64])
                .collect();
            i += 1;
            let slot = key_hash(0, &key) as usize & mask;
            let key = String::from_utf8(key).expect("ascii");
            if let Some(found) = by_slot.get_mut(&slot) {
                if found.len() < wanted[&slot] && !taken.contains(&key) {
                    found.push(key);
                    missing -= 1;
                }
            }
        }
        slots
            .iter()
            .map(|s| by_slot.get_mut(s).and_then(Vec::pop).expect("found"))
            .collect()
    }

    fn doc_of(keys: &[String]) -> String {
        let members: Vec<String> = keys.iter().map(|k| format!("\"{k}\":0")).collect();
        format!("{{{}}}", members.join(","))
    }

    /// Regression: the member table's hash is not keyed, so keys crafted to share a slot
    /// made each insertion walk every earlier one (quadratic in the record). Insertions
    /// now stop at `PROBE_LIMIT` slots and the record's members are then found through
    /// the keyed fallback: the slots visited grow linearly, and every member is found.
    #[test]
    fn colliding_keys_cost_a_bounded_number_of_probes() {
        let n = 600;
        // Every key in the same slot: without the bound, insertion `i` visits `i` slots
        // (n² / 2 in all).
        let keys = crafted_keys(n, &[0; 600], &[]);
        let text = doc_of(&keys);
        assert_eq!(text.len(), 13 * n + 1);
        let ev = JsonEvent::parse(&text).expect("json");
        assert!(ev.table.is_empty() && !ev.spare_table.is_empty());
        // At most PROBE_LIMIT slots per insertion, and none once the table is given up.
        assert!(
            ev.insert_probes <= PROBE_LIMIT * n && ev.insert_probes <= PROBE_LIMIT * PROBE_LIMIT,
            "{} slots visited by {n} insertions",
            ev.insert_probes
        );
        let theirs: serde_json::Value = serde_json::from_str(&text).expect("serde");
        for k in keys
            .iter()
            .map(String::as_str)
            .chain(["absent", "abcdefgh"])
        {
            let path = FieldPath::new(k);
            assert_eq!(ev.field(&path), theirs.field(&path), "{k}");
        }
        assert!(ev.fallback.get().is_some());
        // Buffers given back by a hostile record serve the next one.
        let mut buffers = JsonBuffers::default();
        let ev = JsonEvent::parse_with(&text, &mut buffers).expect("json");
        ev.recycle(&mut buffers);
        let ev = JsonEvent::parse_with(r#"{"a":{"b":1}}"#, &mut buffers).expect("json");
        assert!(!ev.table.is_empty());
        assert_eq!(ev.field(&FieldPath::new("a.b")), Some(Value::Int(1)));
    }

    /// Keys whose slots follow one another cost their insertions nothing, but make one
    /// run of slots a lookup of an absent key (whose slot starts the run) would walk to
    /// its end: such a lookup stops at `PROBE_LIMIT` slots and asks the keyed fallback.
    #[test]
    fn a_long_run_of_slots_is_not_walked() {
        let n = 1000;
        let slots: Vec<usize> = (0..n).collect();
        let keys = crafted_keys(n, &slots, &[]);
        let text = doc_of(&keys);
        let ev = JsonEvent::parse(&text).expect("json");
        assert!(!ev.table.is_empty());
        assert!(ev.insert_probes < n, "{}", ev.insert_probes);
        assert!(ev.fallback.get().is_none());
        // Absent keys whose slot starts the run.
        let absent = crafted_keys(n, &[0; 4], &keys);
        let theirs: serde_json::Value = serde_json::from_str(&text).expect("serde");
        for k in keys.iter().chain(&absent) {
            let path = FieldPath::new(k);
            assert_eq!(ev.field(&path), theirs.field(&path), "{k}");
        }
        assert!(ev.fallback.get().is_some());
    }
}
