//! [`JsonEvent`]: one JSON document (a log record, typically one line of a JSON lines
//! file) parsed once into a compact table of its values whose keys and strings borrow from
//! the text (strings holding escapes are unescaped into a buffer), for matching without
//! building a `serde_json::Value` (no map per object, no allocation per string). Buffers
//! can be reused from one record to the next ([`JsonBuffers`]).
//!
//! Field access answers like `serde_json::Value`'s, and like [`crate::WinRecord`]'s on
//! Windows records in the `evtx` shape (see `vigil_event::access`): objects
//! by key (a repeated key: the last one counts), arrays by collecting each element's
//! value, flat keys holding dots (`{"winlog.event_data.Image": ..}`), integers that fit
//! in an `i64` as integers and other numbers as floats. Keyword searches
//! (`Event::for_each_str`) see every string of the text, a repeated key's earlier values
//! too (`serde_json::Value` keeps only the last); the parser also copies them, joined with
//! NULs, as it reads them (`Event::joined_strs`), so a keyword search needs no pass over
//! the strings one by one.

use std::borrow::Cow;
use vigil_event::{Event, FieldPath, Value};

/// Containers nested deeper than this are refused (as `serde_json` does past 128).
const MAX_DEPTH: u32 = 128;

/// The most slots a member table insertion or lookup visits. The table's hash is not
/// keyed (a [`FieldPath`] brings its parts hashed), so a hostile text can make many keys
/// hash alike; past this many probes the record's members are found through
/// [`Fallback`], whose hash is keyed, instead: the cost per member stays bounded.
const PROBE_LIMIT: usize = 128;

/// A string: a range of the text, or of the buffer of unescaped strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
    unescaped: bool,
}

const NO_KEY: Span = Span {
    start: 0,
    len: 0,
    unescaped: false,
};

/// What a [`Node`] is (its `data` depends on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Tag {
    Null,
    False,
    True,
    Int,
    Float,
    Str,
    Array,
    Object,
}

/// In a node's `flags`: its string (`Tag::Str`) held escapes, and is unescaped in the
/// joined strings (`JsonEvent::strs`).
const STR_UNESCAPED: u8 = 1;
/// In a node's `flags`: its key is in the buffer of unescaped strings.
const KEY_UNESCAPED: u8 = 2;

/// A value in document order; a container's members follow it up to `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Node {
    /// `Int`: the value; `Float`: its bits; `Str`: the string's start, its length in the
    /// high half; `Object`: the [`key_bit`]s of its keys.
    data: u64,
    /// The member's key in its object (empty for array elements and the root).
    key_start: u32,
    key_len: u32,
    /// Index of the node after this one's subtree.
    end: u32,
    tag: Tag,
    /// [`STR_UNESCAPED`], [`KEY_UNESCAPED`].
    flags: u8,
}

impl Node {
    fn key(&self) -> Span {
        Span {
            start: self.key_start,
            len: self.key_len,
            unescaped: self.flags & KEY_UNESCAPED != 0,
        }
    }

    /// The string, if the node is one.
    fn str(&self) -> Option<Span> {
        (self.tag == Tag::Str).then_some(Span {
            start: self.data as u32,
            len: (self.data >> 32) as u32,
            unescaped: self.flags & STR_UNESCAPED != 0,
        })
    }
}

/// A member in [`JsonEvent`]'s table; a slot of an earlier event (another `epoch`) is
/// free, so the table is reused without clearing it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Slot {
    /// The high half of the member's [`key_hash`] (the low half chose the slot).
    check: u32,
    object: u32,
    node: u32,
    epoch: u32,
}

/// The allocations of a [`JsonEvent`], kept to parse the next record without allocating:
/// see [`JsonEvent::parse_with`] and [`JsonEvent::recycle`].
#[derive(Debug, Default)]
pub struct JsonBuffers {
    nodes: Vec<Node>,
    table: Vec<Slot>,
    epoch: u32,
    unescaped: String,
    strs: Vec<u8>,
}

/// A JSON document parsed for matching; borrows from the text it was parsed from.
#[derive(Debug)]
pub struct JsonEvent<'a> {
    text: &'a str,
    nodes: Vec<Node>,
    /// Every object member by (object, key), filled while parsing: open addressing, a
    /// power of two long, at most half full.
    table: Vec<Slot>,
    /// The epoch of this event's slots in `table`.
    epoch: u32,
    /// This event's part of `table`: its first `mask + 1` slots.
    mask: usize,
    /// The keys that held escapes, unescaped.
    unescaped: String,
    /// Every string value, unescaped, each followed by a NUL, in document order: its
    /// first `strs_len` bytes (see [`Event::joined_strs`]).
    strs: Vec<u8>,
    strs_len: usize,
    /// In a hostile record (an insertion passed [`PROBE_LIMIT`], so `table` is empty and
    /// every member lookup goes through `fallback`), the table's allocation, kept for
    /// [`JsonEvent::recycle`].
    spare_table: Vec<Slot>,
    /// Every member by a keyed hash, made on the first lookup that needs it.
    fallback: std::cell::OnceCell<Fallback>,
    /// Slots visited by the insertions into the member table (for tests).
    #[cfg_attr(not(test), allow(dead_code))]
    insert_probes: usize,
}

/// Every member of a record by (object, key), under std's randomly keyed hash: what
/// lookups use when the member table's unkeyed hash met keys that collide (see
/// [`PROBE_LIMIT`]).
#[derive(Debug)]
struct Fallback {
    hasher: std::collections::hash_map::RandomState,
    /// (object, keyed hash of the key) -> the members with that hash (the last of each
    /// key), in document order.
    members: std::collections::HashMap<(u32, u64), Vec<u32>>,
}

impl Fallback {
    fn new(ev: &JsonEvent<'_>) -> Self {
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

    fn member(&self, ev: &JsonEvent<'_>, j: usize, key: &[u8]) -> Option<usize> {
        use std::hash::BuildHasher;
        let list = self.members.get(&(j as u32, self.hasher.hash_one(key)))?;
        list.iter()
            .map(|m| *m as usize)
            .find(|m| ev.key_bytes(*m) == key)
    }
}

/// Why a text is not one JSON document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON at byte {offset}: {reason}")]
pub struct JsonError {
    /// Byte offset in the text.
    pub offset: usize,
    /// What was wrong there.
    pub reason: &'static str,
}

/// One step of the key hash over a key's bytes (`vigil_event::key_hash`'s, so that a
/// [`FieldPath`]'s parts come hashed).
use vigil_event::key_hash_step as mix;

/// The hash of a member's key in its object, from the key's bytes hashed
/// (`vigil_event::key_hash`): then its length and the object.
#[inline(always)]
fn hash_end(h: u64, len: usize, object: u32) -> u64 {
    let h = mix(mix(h, len as u64), u64::from(object));
    h ^ (h >> 32)
}

/// Eight bytes as a little-endian word.
#[inline(always)]
fn word(c: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(c);
    u64::from_le_bytes(w)
}

/// The hash of a member's key in its object: its bytes eight at a time (the last word
/// padded with zeros), then its length and the object. [`scan_key`] computes the same
/// while scanning.
#[inline]
fn key_hash(object: u32, key: &[u8]) -> u64 {
    hash_end(vigil_event::key_hash(key), key.len(), object)
}

/// A key's bit in its object's filter (`Node::data`), from its length: a key whose bit
/// the filter lacks is not a member, found without hashing it (a flat key holding dots
/// tried in an object of short keys, say).
#[inline(always)]
fn key_bit(len: usize) -> u64 {
    1 << (len % 64)
}

/// Up to eight bytes as a little-endian word, padded with zeros (without a call to
/// `memcpy`: two overlapping loads, or three bytes).
#[inline(always)]
fn tail(b: &[u8]) -> u64 {
    let n = b.len();
    if n >= 4 {
        let lo = u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let hi = u64::from(u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]));
        lo | hi << (8 * (n - 4))
    } else if n > 0 {
        u64::from(b[0])
            | u64::from(b[n / 2]) << (8 * (n / 2))
            | u64::from(b[n - 1]) << (8 * (n - 1))
    } else {
        0
    }
}

/// The high bit of each byte of `w` that is `"`, `\\` or a control character (below
/// 0x20); the lowest one set is exact (higher ones may be spurious).
#[inline(always)]
fn specials(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // The bytes of `x` below 0x21 are those of `w` below 0x20 and its `"` (0x22 ^ 2);
    // the zero bytes of `b` its `\\`. (The high bits of `!x` and `!b` are those of `!w`.)
    let x = w ^ (LO * 2);
    let b = w ^ (LO * u64::from(b'\\'));
    (x.wrapping_sub(LO * 0x21) | b.wrapping_sub(LO)) & !w & HI
}

/// Whether `a` and `b` hold the same bytes: keys of up to 16 bytes in one or two
/// (overlapping) words, without a call to `memcmp`.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match (
        a.get(..8),
        b.get(..8),
        a.get(n.wrapping_sub(8)..),
        b.get(n.wrapping_sub(8)..),
    ) {
        _ if n <= 8 => tail(a) == tail(b),
        (Some(a0), Some(b0), Some(a1), Some(b1)) if n <= 16 => {
            word(a0) == word(b0) && word(a1) == word(b1)
        }
        _ => a == b,
    }
}

/// The bytes of `s` in `text` or, if it was unescaped, in `unescaped`.
#[inline]
fn bytes_of<'t>(text: &'t [u8], unescaped: &'t [u8], s: Span) -> &'t [u8] {
    let (start, end) = (s.start as usize, s.start as usize + s.len as usize);
    let src = if s.unescaped { unescaped } else { text };
    src.get(start..end).unwrap_or_default()
}

impl<'a> JsonEvent<'a> {
    /// Parses one JSON value (with optional surrounding whitespace) from `text`.
    pub fn parse(text: &'a str) -> Result<Self, JsonError> {
        Self::parse_with(text, &mut JsonBuffers::default())
    }

    /// Like [`JsonEvent::parse`], taking its allocations from `buffers` (give them back
    /// with [`JsonEvent::recycle`]).
    #[inline(never)]
    pub fn parse_with(text: &'a str, buffers: &mut JsonBuffers) -> Result<Self, JsonError> {
        if u32::try_from(text.len()).is_err() {
            return Err(JsonError {
                offset: 0,
                reason: "document larger than 4 GiB",
            });
        }
        let mut nodes = std::mem::take(&mut buffers.nodes);
        let mut unescaped = std::mem::take(&mut buffers.unescaped);
        nodes.clear();
        unescaped.clear();
        // A first guess (a node takes at least two bytes, and usually many more), to grow
        // fresh buffers once rather than step by step.
        nodes.reserve(text.len() / 16);
        let mut table = std::mem::take(&mut buffers.table);
        let mut epoch = buffers.epoch;
        // The strings with their NULs take at most the text's length (each has two
        // quotes there, and unescaping only shortens); a word more for whole-word stores.
        let mut strs = std::mem::take(&mut buffers.strs);
        if strs.len() < text.len() + 8 {
            strs.resize(text.len() + 8, 0);
        }
        // The part of the member table this record uses: a slot per four bytes of text
        // (a member takes at least five, `"":0,`, and usually many more; the table is
        // kept at most half full), grown while parsing if the text holds more members.
        // Sized per record, not at the largest record seen, so that one huge record does
        // not spread every later record's members over a table out of cache.
        let size = (text.len() / 4).next_power_of_two().max(8);
        if table.len() < size || epoch == u32::MAX {
            table.clear();
            table.resize(size, Slot::default());
            epoch = 0;
        }
        let mut p = Parser {
            text,
            b: text.as_bytes(),
            i: 0,
            depth: 0,
            nodes,
            unescaped,
            table,
            mask: 0,
            epoch: epoch + 1,
            members: 0,
            strs,
            sat: 0,
            hostile: false,
            probes: 0,
            error: JsonError {
                offset: 0,
                reason: "",
            },
        };
        // This record's part of the table: its first `size` slots (a larger table, kept
        // from a larger record, is not spread over: the record's slots stay in cache).
        p.mask = size - 1;
        p.ws();
        let r = p.value(NO_KEY).and_then(|()| {
            p.ws();
            if p.i == p.b.len() {
                Ok(())
            } else {
                Err(p.fail("trailing characters"))
            }
        });
        if r.is_err() {
            buffers.nodes = p.nodes;
            buffers.unescaped = p.unescaped;
            buffers.table = p.table;
            buffers.epoch = p.epoch;
            buffers.strs = p.strs;
            return Err(p.error);
        }
        let (table, spare_table) = if p.hostile {
            (Vec::new(), p.table)
        } else {
            (p.table, Vec::new())
        };
        Ok(JsonEvent {
            text,
            nodes: p.nodes,
            table,
            epoch: p.epoch,
            mask: p.mask,
            unescaped: p.unescaped,
            strs: p.strs,
            strs_len: p.sat,
            spare_table,
            fallback: std::cell::OnceCell::new(),
            insert_probes: p.probes,
        })
    }

    /// Gives this event's allocations back for the next [`JsonEvent::parse_with`].
    pub fn recycle(self, buffers: &mut JsonBuffers) {
        buffers.nodes = self.nodes;
        buffers.table = if self.spare_table.is_empty() {
            self.table
        } else {
            self.spare_table
        };
        buffers.epoch = self.epoch;
        buffers.unescaped = self.unescaped;
        buffers.strs = self.strs;
    }

    /// A string value: a range of the text, or (if it held escapes) of the joined
    /// strings, which are bytes: checked as UTF-8 here, which they are by construction
    /// (copies of the text's, and characters encoded by `char`).
    fn str_of(&self, s: Span) -> &str {
        let (start, end) = (s.start as usize, s.start as usize + s.len as usize);
        if s.unescaped {
            std::str::from_utf8(self.strs.get(start..end).unwrap_or_default()).unwrap_or_default()
        } else {
            self.text.get(start..end).unwrap_or_default()
        }
    }

    fn leaf(&self, j: usize) -> Value<'_> {
        let n = &self.nodes[j];
        match n.tag {
            Tag::Null => Value::Null,
            Tag::False => Value::Bool(false),
            Tag::True => Value::Bool(true),
            Tag::Int => Value::Int(n.data as i64),
            Tag::Float => Value::Float(f64::from_bits(n.data)),
            Tag::Str => Value::Str(Cow::Borrowed(self.str_of(n.str().unwrap_or(NO_KEY)))),
            Tag::Array => Value::List(self.children(j).map(|c| self.leaf(c)).collect()),
            Tag::Object => Value::Object,
        }
    }

    fn children(&self, j: usize) -> impl Iterator<Item = usize> + '_ {
        let end = self.nodes[j].end as usize;
        let mut c = j + 1;
        std::iter::from_fn(move || {
            (c < end).then(|| {
                let this = c;
                c = self.nodes[c].end as usize;
                this
            })
        })
    }

    /// The last member of object `j` named `key`.
    fn member(&self, j: usize, key: &str) -> Option<usize> {
        self.member_hashed(j, key, vigil_event::key_hash(key.as_bytes()))
    }

    /// [`JsonEvent::member`], the key's bytes already hashed (`vigil_event::key_hash`,
    /// as a [`FieldPath`] keeps its parts).
    #[inline(always)]
    fn member_hashed(&self, j: usize, key: &str, bytes_hash: u64) -> Option<usize> {
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
    fn fallback_member(&self, j: usize, key: &[u8]) -> Option<usize> {
        self.fallback
            .get_or_init(|| Fallback::new(self))
            .member(self, j, key)
    }

    /// The key of node `j` (empty for array elements and the root).
    fn key_bytes(&self, j: usize) -> &[u8] {
        let k = self.nodes.get(j).map_or(NO_KEY, Node::key);
        bytes_of(self.text.as_bytes(), self.unescaped.as_bytes(), k)
    }

    /// `self.at(0, path, 0)`, without recursion while the path runs through objects.
    fn walk(&self, path: &FieldPath) -> Option<Value<'_>> {
        const MAX: usize = 8;
        let len = path.len();
        if len > MAX {
            return self.at(0, path, 0);
        }
        // The objects met, one per part: `objects[i]` is the one part `i` was looked up in.
        let mut objects = [0u32; MAX];
        let mut met = 0;
        let (mut i, mut j) = (0, 0);
        loop {
            if i == len {
                return Some(self.leaf(j));
            }
            match self.nodes.get(j)?.tag {
                Tag::Object => {
                    objects[i] = j as u32;
                    met = i + 1;
                    match self.member_hashed(j, path.part(i)?, path.part_hash(i)) {
                        Some(c) => (i, j) = (i + 1, c),
                        None => break,
                    }
                }
                Tag::Array => {
                    if let Some(v) = self.at(j, path, i) {
                        return Some(v);
                    }
                    break;
                }
                _ => break,
            }
        }
        // Not found along the parts: flat keys holding dots, the deepest object first, as
        // `at` tries them when its recursion returns.
        for i in (0..met).rev() {
            if i + 1 < len {
                let c = self.member_hashed(objects[i] as usize, path.rest(i)?, path.rest_hash(i));
                if let Some(c) = c {
                    return Some(self.leaf(c));
                }
            }
        }
        None
    }

    fn at(&self, j: usize, path: &FieldPath, i: usize) -> Option<Value<'_>> {
        if i == path.len() {
            return Some(self.leaf(j));
        }
        match self.nodes[j].tag {
            Tag::Object => {
                if let Some(c) = self.member_hashed(j, path.part(i)?, path.part_hash(i)) {
                    if let Some(found) = self.at(c, path, i + 1) {
                        return Some(found);
                    }
                }
                // A flat key holding dots.
                if i + 1 < path.len() {
                    if let Some(c) = self.member_hashed(j, path.rest(i)?, path.rest_hash(i)) {
                        return Some(self.leaf(c));
                    }
                }
                None
            }
            Tag::Array => {
                let found: Vec<Value<'_>> = self
                    .children(j)
                    .filter_map(|c| self.at(c, path, i))
                    .collect();
                (!found.is_empty()).then_some(Value::List(found))
            }
            _ => None,
        }
    }
}

impl Event for JsonEvent<'_> {
    fn field(&self, path: &FieldPath) -> Option<Value<'_>> {
        if path.len() == 1 {
            // One part: a member of the root object, without the recursion of `at` (no
            // flat key or `UserData` to try after it).
            let root = self.nodes.first()?;
            return match root.tag {
                Tag::Object => {
                    Some(self.leaf(self.member_hashed(0, path.as_str(), path.rest_hash(0))?))
                }
                _ => self.at(0, path, 0),
            };
        }
        if let Some(v) = self.walk(path) {
            return Some(v);
        }
        // The `evtx` shape, as `WinRecord` reads it: `UserData` holds one element named
        // after the event (`LogFileCleared`, ...), in which `Event.UserData.X` is found.
        if path.len() >= 3 && path.part(0) == Some("Event") && path.part(1) == Some("UserData") {
            let event = self.member(0, "Event")?;
            let user = self.member(event, "UserData")?;
            if self.nodes[user].tag == Tag::Object {
                let key = path.part(2)?;
                return self
                    .children(user)
                    .filter(|&w| self.nodes[w].tag == Tag::Object)
                    .find_map(|w| self.at(self.member(w, key)?, path, 3));
            }
        }
        None
    }

    fn for_each_str<'b>(&'b self, f: &mut dyn FnMut(&'b str)) {
        for n in &self.nodes {
            if let Some(s) = n.str() {
                f(self.str_of(s));
            }
        }
    }

    fn joined_strs(&self) -> Option<&[u8]> {
        self.strs.get(..self.strs_len)
    }
}

/// The text is not JSON: the parser's `error` says why.
struct Fail;

struct Parser<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
    depth: u32,
    nodes: Vec<Node>,
    unescaped: String,
    /// The member table being filled (see [`JsonEvent`]); `mask` is its length less one.
    table: Vec<Slot>,
    mask: usize,
    epoch: u32,
    /// Members in `table`.
    members: usize,
    /// The string values joined (see [`JsonEvent`]), long enough for whole-word stores;
    /// `sat` is where the next one goes.
    strs: Vec<u8>,
    sat: usize,
    /// Whether an insertion or a move in the member table passed [`PROBE_LIMIT`]: the
    /// table is left incomplete and no longer filled (lookups use [`Fallback`]).
    hostile: bool,
    /// Slots visited past the first by insertions and moves (for tests).
    probes: usize,
    /// Why parsing failed, once it has.
    error: JsonError,
}

/// The position of the first byte at or after `i` that is not JSON whitespace.
#[inline(always)]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(&c) = b.get(i) {
        if c > b' ' || !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        i += 1;
    }
    i
}

/// The position of the first `"`, `\\` or control character at or after `i` (or the
/// text's end), eight bytes at a time.
#[inline(always)]
fn plain_end(b: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        let m = specials(word(chunk));
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

/// [`plain_end`], copying the bytes it passes to `out` from `at` (whole words: some bytes
/// after them too, which the caller overwrites or leaves past the strings' end).
#[inline(always)]
fn plain_end_copy(b: &[u8], mut i: usize, out: &mut [u8], mut at: usize) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        let w = word(chunk);
        if let Some(to) = out.get_mut(at..at + 8) {
            to.copy_from_slice(chunk);
        }
        let m = specials(w);
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
        at += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        if let Some(to) = out.get_mut(at) {
            *to = c;
        }
        i += 1;
        at += 1;
    }
    i
}

/// A key starting at `start` (after its opening quote), hashed while it is scanned: the
/// position of its closing quote and its [`key_hash`] in `object`. `None` if it holds an
/// escape or a control character, or ends in the text's last eight bytes (see
/// [`Parser::key_slow`]).
#[inline(always)]
fn scan_key(b: &[u8], start: usize, object: u32) -> Option<(usize, u64)> {
    let mut h = 0;
    let mut i = start;
    while let Some(chunk) = b.get(i..i + 8) {
        let w = word(chunk);
        let m = specials(w);
        if m == 0 {
            h = mix(h, w);
            i += 8;
            continue;
        }
        let n = (m.trailing_zeros() / 8) as usize;
        if chunk.get(n) != Some(&b'"') {
            return None;
        }
        if n > 0 {
            h = mix(h, w & (u64::MAX >> (64 - 8 * n)));
        }
        return Some((i + n, hash_end(h, i + n - start, object)));
    }
    None
}

/// The decimal digits at `i` read as a number (wrapping past `u64`; callers count the
/// digits) and the position after them.
#[inline(always)]
fn digits_value(b: &[u8], mut i: usize) -> (u64, usize) {
    let mut n: u64 = 0;
    while let Some(&c) = b.get(i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        n = n.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    (n, i)
}

/// A positive integer of at most 18 digits at `i` (no fraction or exponent) and the
/// position after it; `None` for any other value (see [`Parser::number`]).
#[inline(always)]
fn small_int(b: &[u8], i: usize) -> Option<(u64, usize)> {
    if !matches!(b.get(i), Some(b'1'..=b'9')) {
        return None;
    }
    let (n, j) = digits_value(b, i);
    match b.get(j) {
        _ if j - i > 18 => None,
        Some(b'.' | b'e' | b'E') => None,
        _ => Some((n, j)),
    }
}

impl Parser<'_> {
    #[cold]
    #[inline(never)]
    fn fail_at(&mut self, offset: usize, reason: &'static str) -> Fail {
        self.i = offset;
        self.error = JsonError { offset, reason };
        Fail
    }

    #[inline(always)]
    fn fail(&mut self, reason: &'static str) -> Fail {
        self.fail_at(self.i, reason)
    }

    #[inline(always)]
    fn ws(&mut self) {
        self.i = skip_ws(self.b, self.i);
    }

    #[inline(always)]
    fn push(&mut self, key: Span, tag: Tag, data: u64, flags: u8) -> usize {
        let at = self.nodes.len();
        self.nodes.push(Node {
            data,
            key_start: key.start,
            key_len: key.len,
            end: (at + 1) as u32,
            tag,
            flags: flags | if key.unescaped { KEY_UNESCAPED } else { 0 },
        });
        at
    }

    /// Pushes the string node of `s`.
    #[inline(always)]
    fn push_str(&mut self, key: Span, s: Span) {
        let flags = if s.unescaped { STR_UNESCAPED } else { 0 };
        self.push(
            key,
            Tag::Str,
            u64::from(s.start) | u64::from(s.len) << 32,
            flags,
        );
    }

    /// Ends the joined copy of string `s` (at `sat`, where [`plain_end_copy`] or
    /// [`Parser::escaped_value`] put its bytes) with a NUL.
    #[inline(always)]
    fn joined(&mut self, s: Span) {
        let at = self.sat;
        let len = s.len as usize;
        if let Some(z) = self.strs.get_mut(at + len) {
            *z = 0;
        }
        self.sat = at + len + 1;
    }

    /// Puts member `node` of `object`, whose key hashes to `hash`, in the table (a
    /// repeated key: the later member replaces the earlier). In a hostile record (see
    /// [`PROBE_LIMIT`]) a member whose slot is free still takes it, but none is probed
    /// for or moved: the table is no longer read.
    #[inline(always)]
    fn insert(&mut self, hash: u64, object: u32, node: u32) {
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
    fn insert_probing(&mut self, hash: u64, object: u32, node: u32) {
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

    /// A value, at its first byte (whitespace skipped).
    #[inline(always)]
    fn value(&mut self, key: Span) -> Result<(), Fail> {
        match self.b.get(self.i) {
            Some(b'"') => {
                let start = self.i + 1;
                let end = plain_end_copy(self.b, start, &mut self.strs, self.sat);
                let s = if self.b.get(end) == Some(&b'"') {
                    self.i = end + 1;
                    Span {
                        start: start as u32,
                        len: (end - start) as u32,
                        unescaped: false,
                    }
                } else {
                    self.i = end;
                    self.escaped_value(start)?
                };
                self.push_str(key, s);
                self.joined(s);
            }
            Some(b'{') => self.container(key, true)?,
            Some(b'[') => self.container(key, false)?,
            Some(b't') => self.word("true", key, Tag::True)?,
            Some(b'f') => self.word("false", key, Tag::False)?,
            Some(b'n') => self.word("null", key, Tag::Null)?,
            Some(b'-' | b'0'..=b'9') => {
                let (tag, data) = self.number()?;
                self.push(key, tag, data, 0);
            }
            _ => return Err(self.fail("expected a value")),
        }
        Ok(())
    }

    /// An object or array, at its opening bracket.
    #[inline(never)]
    fn container(&mut self, key: Span, object: bool) -> Result<(), Fail> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.fail("nested too deeply"));
        }
        let at = self.push(key, if object { Tag::Object } else { Tag::Array }, 0, 0);
        let b = self.b;
        let mut i = skip_ws(b, self.i + 1);
        let close = if object { b'}' } else { b']' };
        // The object's key filter (see `key_bit`).
        let mut filter = 0;
        if b.get(i) == Some(&close) {
            i += 1;
        } else if object {
            loop {
                if b.get(i) != Some(&b'"') {
                    return Err(self.fail_at(i, "expected a key"));
                }
                i += 1;
                let (k, hash) = match scan_key(b, i, at as u32) {
                    Some((end, hash)) => {
                        let k = Span {
                            start: i as u32,
                            len: (end - i) as u32,
                            unescaped: false,
                        };
                        i = end + 1;
                        (k, hash)
                    }
                    None => {
                        self.i = i;
                        let r = self.key_slow(at as u32)?;
                        i = self.i;
                        r
                    }
                };
                filter |= key_bit(k.len as usize);
                i = skip_ws(b, i);
                if b.get(i) != Some(&b':') {
                    return Err(self.fail_at(i, "expected `:`"));
                }
                i = skip_ws(b, i + 1);
                let node = self.nodes.len() as u32;
                // The common case first: a string.
                if b.get(i) == Some(&b'"') {
                    let start = i + 1;
                    let end = plain_end_copy(b, start, &mut self.strs, self.sat);
                    let s = if b.get(end) == Some(&b'"') {
                        i = end + 1;
                        Span {
                            start: start as u32,
                            len: (end - start) as u32,
                            unescaped: false,
                        }
                    } else {
                        self.i = end;
                        let s = self.escaped_value(start)?;
                        i = self.i;
                        s
                    };
                    self.push_str(k, s);
                    self.joined(s);
                } else if let Some((n, end)) = small_int(b, i) {
                    self.push(k, Tag::Int, n, 0);
                    i = end;
                } else {
                    self.i = i;
                    self.value(k)?;
                    i = self.i;
                }
                self.insert(hash, at as u32, node);
                i = skip_ws(b, i);
                match b.get(i) {
                    Some(b',') => i = skip_ws(b, i + 1),
                    Some(b'}') => {
                        i += 1;
                        break;
                    }
                    _ => return Err(self.fail_at(i, "expected `,` or the container's end")),
                }
            }
        } else {
            loop {
                self.i = i;
                self.value(NO_KEY)?;
                i = skip_ws(b, self.i);
                match b.get(i) {
                    Some(b',') => i = skip_ws(b, i + 1),
                    Some(b']') => {
                        i += 1;
                        break;
                    }
                    _ => return Err(self.fail_at(i, "expected `,` or the container's end")),
                }
            }
        }
        self.i = i;
        let end = self.nodes.len() as u32;
        if let Some(n) = self.nodes.get_mut(at) {
            n.end = end;
            n.data = filter;
        }
        self.depth -= 1;
        Ok(())
    }

    fn word(&mut self, w: &str, key: Span, tag: Tag) -> Result<(), Fail> {
        if self.b[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            self.push(key, tag, 0, 0);
            Ok(())
        } else {
            Err(self.fail("expected a value"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    /// A number: `Int` or `Float`, and its `data`.
    fn number(&mut self) -> Result<(Tag, u64), Fail> {
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let negative = b.get(i) == Some(&b'-');
        if negative {
            i += 1;
        }
        // The integer part's value, exact up to 18 digits.
        let mut n: u64 = 0;
        let first = i;
        match b.get(i) {
            Some(b'0') => {
                i += 1;
                if b.get(i).is_some_and(u8::is_ascii_digit) {
                    return Err(self.fail_at(i, "invalid number"));
                }
            }
            Some(b'1'..=b'9') => (n, i) = digits_value(b, i),
            _ => return Err(self.fail_at(i, "invalid number")),
        }
        self.i = i;
        let int_digits = i - first;
        let mut integer = true;
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            integer = false;
            if self.digits() == 0 {
                return Err(self.fail("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            integer = false;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(self.fail("invalid number"));
            }
        }
        // `-0` is a float, as `serde_json` reads it.
        if integer && int_digits <= 18 && !(negative && n == 0) {
            let v = n as i64;
            return Ok((Tag::Int, (if negative { -v } else { v }) as u64));
        }
        let t = &self.text[start..self.i];
        if integer && t != "-0" {
            if let Ok(n) = t.parse::<i64>() {
                return Ok((Tag::Int, n as u64));
            }
        }
        match t.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok((Tag::Float, f.to_bits())),
            _ => Err(self.fail_at(start, "number out of range")),
        }
    }

    /// A key that [`scan_key`] left, at its first byte (after the opening quote), and its
    /// [`key_hash`] in `object`.
    #[cold]
    #[inline(never)]
    fn key_slow(&mut self, object: u32) -> Result<(Span, u64), Fail> {
        let start = self.i;
        self.i = plain_end(self.b, start);
        let span = if self.b.get(self.i) == Some(&b'"') {
            let len = self.i - start;
            self.i += 1;
            Span {
                start: start as u32,
                len: len as u32,
                unescaped: false,
            }
        } else {
            self.escaped(start)?
        };
        let hash = key_hash(object, bytes_of(self.b, self.unescaped.as_bytes(), span));
        Ok((span, hash))
    }

    /// The rest of a string value starting at `start` that holds an escape (or is
    /// invalid), `self.i` at the first `\\` (or control character, or the end),
    /// unescaped into the joined strings at `sat`, where [`plain_end_copy`] put the
    /// bytes before it: runs between escapes are copied a word at a time as they are
    /// scanned (the output never passes the input: an escape is longer than what it
    /// stands for).
    #[inline(never)]
    fn escaped_value(&mut self, start: usize) -> Result<Span, Fail> {
        let b = self.b;
        let mut i = self.i;
        let mut out = self.sat + (i - start);
        loop {
            match b.get(i) {
                None => return Err(self.fail_at(i, "unterminated string")),
                Some(b'"') => {
                    self.i = i + 1;
                    return Ok(Span {
                        start: self.sat as u32,
                        len: (out - self.sat) as u32,
                        unescaped: true,
                    });
                }
                Some(b'\\') => {
                    let Some(&e) = b.get(i + 1) else {
                        return Err(self.fail_at(i + 1, "unterminated string"));
                    };
                    i += 2;
                    let byte = match e {
                        b'"' | b'\\' | b'/' => e,
                        b'b' => 8,
                        b'f' => 0xc,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            self.i = i;
                            let c = self.unicode()?;
                            i = self.i;
                            let mut buf = [0u8; 4];
                            let c = c.encode_utf8(&mut buf).as_bytes();
                            if let Some(to) = self.strs.get_mut(out..out + c.len()) {
                                to.copy_from_slice(c);
                            }
                            out += c.len();
                            let end = plain_end_copy(b, i, &mut self.strs, out);
                            out += end - i;
                            i = end;
                            continue;
                        }
                        _ => return Err(self.fail_at(i, "invalid escape")),
                    };
                    if let Some(to) = self.strs.get_mut(out) {
                        *to = byte;
                    }
                    out += 1;
                    let end = plain_end_copy(b, i, &mut self.strs, out);
                    out += end - i;
                    i = end;
                }
                Some(_) => return Err(self.fail_at(i, "control character in string")),
            }
        }
    }

    /// The rest of a key starting at `start` that holds an escape (or is invalid),
    /// `self.i` at the first `\\` (or control character, or the end), unescaped into
    /// `unescaped`.
    #[inline(never)]
    fn escaped(&mut self, start: usize) -> Result<Span, Fail> {
        let (b, text) = (self.b, self.text);
        let mut i = self.i;
        let from = self.unescaped.len();
        // Unescaping shortens: the rest of the text bounds what the document still needs.
        self.unescaped.reserve(b.len() - start);
        // The text still to copy runs from `run` to `i` (each end after an ASCII byte,
        // or at one).
        let mut run = start;
        loop {
            match b.get(i) {
                None => return Err(self.fail_at(i, "unterminated string")),
                Some(b'"') => {
                    self.unescaped
                        .push_str(text.get(run..i).unwrap_or_default());
                    self.i = i + 1;
                    let len = self.unescaped.len() - from;
                    if u32::try_from(self.unescaped.len()).is_err() {
                        return Err(self.fail("document larger than 4 GiB"));
                    }
                    return Ok(Span {
                        start: from as u32,
                        len: len as u32,
                        unescaped: true,
                    });
                }
                Some(b'\\') => {
                    // Escapes in a row (`\r\n`, ...) leave nothing to copy between them.
                    if run < i {
                        self.unescaped
                            .push_str(text.get(run..i).unwrap_or_default());
                    }
                    let Some(&e) = b.get(i + 1) else {
                        return Err(self.fail_at(i + 1, "unterminated string"));
                    };
                    i += 2;
                    run = i;
                    let c = match e {
                        // The escaped character itself starts the next run.
                        b'"' | b'\\' | b'/' => {
                            run = i - 1;
                            i = plain_end(b, i);
                            continue;
                        }
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            self.i = i;
                            let c = self.unicode()?;
                            i = self.i;
                            run = i;
                            c
                        }
                        _ => return Err(self.fail_at(i, "invalid escape")),
                    };
                    self.unescaped.push(c);
                    i = plain_end(b, i);
                }
                Some(_) => return Err(self.fail_at(i, "control character in string")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, Fail> {
        let h = self
            .text
            .get(self.i..self.i + 4)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
        let Some(h) = h else {
            return Err(self.fail("invalid \\u escape"));
        };
        let Ok(code) = u32::from_str_radix(h, 16) else {
            return Err(self.fail("invalid \\u escape"));
        };
        self.i += 4;
        Ok(code)
    }

    /// The character of a `\u` escape whose `\u` was consumed (a surrogate pair takes two).
    fn unicode(&mut self) -> Result<char, Fail> {
        let hi = self.hex4()?;
        let code = match hi {
            0xD800..=0xDBFF => {
                if !self.b[self.i..].starts_with(b"\\u") {
                    return Err(self.fail("lone leading surrogate"));
                }
                self.i += 2;
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return Err(self.fail("invalid surrogate pair"));
                }
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.fail("lone trailing surrogate")),
            c => c,
        };
        match char::from_u32(code) {
            Some(c) => Ok(c),
            None => Err(self.fail("invalid \\u escape")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(e: &dyn Event) -> Vec<String> {
        let mut v = Vec::new();
        e.for_each_str(&mut |s| v.push(s.to_string()));
        v.sort();
        v
    }

    #[test]
    fn same_answers_as_serde_json() {
        let docs = [
            r#"{"Image":"C:\\Windows\\cmd.exe","EventID":4688,"n":-3,"big":18446744073709551615,
               "f":1.5e3,"z":-0,"t":true,"nul":null,"e":"","u":"\u00e9\ud83d\ude00 \"q\" \/ \t",
               "List":["a",1,null,{"x":"in"},[2,"b"]],"o":{"p":{"q":"deep"},"arr":[{"k":1},{"k":"2"},{}]},
               "winlog.event_data.Image":"flat","dup":"first","dup":"second"}"#,
            r##"{"Event":{"System":{"EventID":{"#text":1},"Channel":"Security"},"EventData":null}}"##,
            r#"[{"a":1},{"a":[true,false]}]"#,
            r#"  "just a string"  "#,
            r#"{"long":"abcdefghijklmnop\\qrstuvwxyz0123456789\"é€😀 and more text","k8":"12345678","k16":"1234567890abcdef"}"#,
            "12",
            "{}",
            "[]",
        ];
        let paths = [
            "Image",
            "EventID",
            "n",
            "big",
            "f",
            "z",
            "t",
            "nul",
            "e",
            "u",
            "List",
            "List.x",
            "o",
            "o.p.q",
            "o.arr.k",
            "o.arr",
            "winlog.event_data.Image",
            "dup",
            "Event.System.EventID.#text",
            "Event.System.Channel",
            "Event.EventData",
            "Event.EventData.X",
            "a",
            "nope",
            "",
        ];
        let mut buffers = JsonBuffers::default();
        for d in docs {
            let ours = JsonEvent::parse(d).unwrap_or_else(|e| panic!("{d}: {e}"));
            // Buffers reused from the previous documents give the same event.
            let reused = JsonEvent::parse_with(d, &mut buffers).expect("reparse");
            for p in paths {
                let path = FieldPath::new(p);
                assert_eq!(reused.field(&path), ours.field(&path), "{d} {p}");
            }
            assert_eq!(strs(&reused), strs(&ours));
            reused.recycle(&mut buffers);
            let theirs: serde_json::Value = serde_json::from_str(d).expect("serde");
            for p in paths {
                let path = FieldPath::new(p);
                assert_eq!(ours.field(&path), theirs.field(&path), "{d} {p}");
            }
            // Both see every string; the overwritten duplicate is still a string of the text.
            let mut expected = strs(&theirs);
            if d.contains("\"dup\":\"first\"") {
                expected.push("first".into());
                expected.sort();
            }
            assert_eq!(strs(&ours), expected, "{d}");
        }
    }

    /// What `joined_strs` must hold: `for_each_str`'s strings in its order, each with a NUL.
    fn joined_by_visit(e: &dyn Event) -> Vec<u8> {
        let mut v = Vec::new();
        e.for_each_str(&mut |s| {
            v.extend_from_slice(s.as_bytes());
            v.push(0);
        });
        v
    }

    #[test]
    fn joined_strs_are_the_visited_strings() {
        let mut docs: Vec<String> = [
            r#"{"Image":"C:\\Windows\\cmd.exe","u":"\u00e9\ud83d\ude00 \"q\" \/ \t","e":"","n":1,
               "List":["a",1,null,{"x":"in"},[2,"bcdefghijklmnopq"]],"dup":"first","dup":"second"}"#,
            r#"  "just a string"  "#,
            r#"["\\\\", "x\n", "12345678", "1234567", "123456789"]"#,
            "12",
            "{}",
        ]
        .iter()
        .map(|d| d.to_string())
        .collect();
        // Strings of every length up to 40, plain and with an escape at each position.
        for n in 0..40 {
            let plain: String = (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            docs.push(format!(r#"{{"k":"{plain}","after":"z"}}"#));
            for at in 0..n {
                let (a, b) = plain.split_at(at);
                docs.push(format!(r#"["{a}\\{b}","{b}"]"#));
            }
        }
        let mut buffers = JsonBuffers::default();
        // A long document first, so that later ones reuse a buffer holding old bytes.
        let long = format!(r#"{{"big":"{}"}}"#, "Q".repeat(5000));
        JsonEvent::parse_with(&long, &mut buffers)
            .expect("long")
            .recycle(&mut buffers);
        for d in &docs {
            let ev = JsonEvent::parse_with(d, &mut buffers).unwrap_or_else(|e| panic!("{d}: {e}"));
            assert_eq!(ev.joined_strs(), Some(&joined_by_visit(&ev)[..]), "{d}");
            ev.recycle(&mut buffers);
        }
    }

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

    #[test]
    fn evtx_user_data_as_win_record_reads_it() {
        let text = r#"{"Event":{"System":{"Channel":"System","EventID":104},
            "UserData":{"LogFileCleared":{"Channel":"Security","SubjectUserName":"bob"}}}}"#;
        let ours = JsonEvent::parse(text).expect("json");
        let json: serde_json::Value = serde_json::from_str(text).expect("serde");
        let theirs = crate::WinRecord::new(&json);
        for p in [
            "Event.UserData.Channel",
            "Event.UserData.SubjectUserName",
            "Event.UserData.LogFileCleared.Channel",
            "Event.UserData.Nope",
            "Event.System.Channel",
        ] {
            let path = FieldPath::new(p);
            assert_eq!(ours.field(&path), theirs.field(&path), "{p}");
        }
        let ch = ours.field(&FieldPath::new("Event.UserData.Channel"));
        assert_eq!(ch.as_ref().and_then(Value::as_str), Some("Security"));
    }

    #[test]
    fn refuses_what_serde_json_refuses() {
        let deep = "[".repeat(200) + &"]".repeat(200);
        for bad in [
            "",
            "{",
            "{\"a\"}",
            "{\"a\":1,}",
            "[1,]",
            "[1 2]",
            "{\"a\":1} x",
            "01",
            "1.",
            "-",
            "1e",
            "1e999",
            "\"abc",
            "\"a\\x\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"\\u12\"",
            "\"tab\there\"",
            "\"a long string with a tab\tafter its first words\"",
            "\"escape \\n then\u{1} a control character\"",
            "tru",
            "nul",
            "{1:2}",
            deep.as_str(),
        ] {
            assert!(
                serde_json::from_str::<serde_json::Value>(bad).is_err(),
                "{bad}"
            );
            let e = JsonEvent::parse(bad);
            assert!(e.is_err(), "{bad:?} parsed: {e:?}");
        }
    }

    #[test]
    fn keys_of_every_length_are_found() {
        // Keys of 0 to 40 bytes, each also with one byte changed, hashed while scanned
        // (or, near the text's end or holding escapes, after), looked up by their bytes.
        let mut keys: Vec<String> = Vec::new();
        for n in 0..=40usize {
            let k: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            for at in [0, n / 2, n.saturating_sub(1)] {
                if at < n {
                    let mut v = k.clone().into_bytes();
                    v[at] = b'Z';
                    keys.push(String::from_utf8(v).expect("ascii"));
                }
            }
            keys.push(k);
        }
        let mut text = String::from("{");
        for (i, k) in keys.iter().enumerate() {
            text += &format!("\"{k}\":{i},");
        }
        // The same key escaped (the later member counts), and a short key at the very end.
        text += "\"ab\\u0063\":\"escaped\",\"x\":\"last\"}";
        let ours = JsonEvent::parse(&text).expect("json");
        let theirs: serde_json::Value = serde_json::from_str(&text).expect("serde");
        for k in keys
            .iter()
            .map(String::as_str)
            .chain(["abc", "x", "y", "abd"])
        {
            let path = FieldPath::new(k);
            assert_eq!(ours.field(&path), theirs.field(&path), "{k}");
        }
        assert_eq!(
            ours.field(&FieldPath::new("abc")),
            Some(Value::Str(Cow::Borrowed("escaped")))
        );
    }

    #[test]
    fn one_part_paths_on_every_root() {
        // A one-part path reads the root object's member directly; other roots as before.
        let docs = [
            r#"{"Image":"a","Imagf":"b","x.y":"flat","Event":{"Image":"nested"},"e":{}}"#,
            r#"[{"Image":"a"},{"Image":["b",{"Image":"c"}]},{"Imagf":1},3]"#,
            r#"[[{"Image":"deep"}]]"#,
            r#""Image""#,
            "null",
        ];
        for d in docs {
            let ours = JsonEvent::parse(d).expect("json");
            let theirs: serde_json::Value = serde_json::from_str(d).expect("serde");
            for p in [
                "Image", "Imagf", "Imagd", "image", "x", "x.y", "Event", "e", "", "Image.",
            ] {
                let path = FieldPath::new(p);
                assert_eq!(ours.field(&path), theirs.field(&path), "{d} {p}");
            }
        }
    }

    #[test]
    fn nested_paths_answer_as_the_recursion_does() {
        // `walk` gives what `at` gives: through objects, arrays, scalars, flat keys holding
        // dots at every level, absent keys and keys differing in one byte, long paths.
        let docs = [
            r#"{"Event":{"System":{"EventID":4688,"Channel":"Security"},"EventData":{"Image":"a","Imagf":"b"},
                "EventData.Image":"flat1","EventData.Nope":"flat2"},"Event.EventData.Nope":"flat3",
                "Event.X.Y":"flat4","a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":"deep"}}}}}}}},
                "arr":[{"k":{"v":1}},{"k":[{"v":2}]},{"k.v":3},5],"s":"str","n":{"x.y.z":1,"x":{"y.z":2}}}"#,
            r#"[{"Event":{"EventData":{"Image":"in array"}}},{"Event.EventData.Image":"flat"}]"#,
            r#"{"Event":[{"EventData":{"Image":"x"}},{"EventData.Image":"y"}],"Event.EventData.Image":"z"}"#,
            r#""scalar""#,
        ];
        let paths = [
            "Event.System.EventID",
            "Event.System.Channel",
            "Event.System.Channem",
            "Event.EventData.Image",
            "Event.EventData.Imagf",
            "Event.EventData.Imagg",
            "Event.EventData.Nope",
            "Event.X.Y",
            "Event.Y",
            "Event.System.EventID.x",
            "a.b.c.d.e.f.g.h",
            "a.b.c.d.e.f.g.h.i",
            "a.b.c.d.e.f.g.x.i",
            "arr.k.v",
            "arr.k",
            "s.x",
            "n.x.y.z",
            "n.x.y",
            "x.y",
        ];
        for d in docs {
            let ours = JsonEvent::parse(d).expect("json");
            let theirs: serde_json::Value = serde_json::from_str(d).expect("serde");
            for p in paths {
                let path = FieldPath::new(p);
                assert_eq!(ours.walk(&path), ours.at(0, &path, 0), "{d} {p}");
                assert_eq!(ours.field(&path), theirs.field(&path), "{d} {p}");
            }
        }
    }

    #[test]
    fn key_filter_keeps_every_member() {
        // Lengths that share a filter bit (0, 64 and 128; 1 and 65), escaped keys (the
        // filter holds the unescaped length), nested objects and empty ones.
        let long = |n: usize| "k".repeat(n);
        let text = format!(
            r#"{{"":0,"{}":64,"x":1,"{}":65,"{}":128,"a\u0062":"ab","o":{{"{}":"in","":"e"}},"e":{{}}}}"#,
            long(64),
            long(65),
            long(128),
            long(63)
        );
        let ours = JsonEvent::parse(&text).expect("json");
        let theirs: serde_json::Value = serde_json::from_str(&text).expect("serde");
        let mut paths: Vec<String> = [0, 1, 2, 63, 64, 65, 66, 127, 128, 129]
            .iter()
            .flat_map(|&n| [long(n), format!("o.{}", long(n)), format!("e.{}", long(n))])
            .collect();
        paths.extend(["x", "y", "ab", "a\\u0062", "o", "e", "o.", "e."].map(String::from));
        for p in &paths {
            let path = FieldPath::new(p);
            assert_eq!(ours.field(&path), theirs.field(&path), "{p}");
        }
    }

    #[test]
    fn plain_end_finds_the_first_special_byte() {
        // Every start and every position of the first (and a second) special byte, in texts
        // that end within, after or without the eight-byte steps.
        for len in 0..48usize {
            for at in 0..=len {
                for c in [b'"', b'\\', 0x1f, b'\n'] {
                    let mut t = vec![b'a'; len];
                    if at < len {
                        t[at] = c;
                        if at + 9 < len {
                            t[at + 9] = b'"';
                        }
                    }
                    for start in 0..=at {
                        assert_eq!(plain_end(&t, start), at, "{len} {at} {c} {start}");
                    }
                }
            }
        }
    }

    #[test]
    fn specials_finds_the_first_special_byte() {
        let special = |c: u8| c == b'"' || c == b'\\' || c < 0x20;
        for c in 0..=255u8 {
            for at in 0..8 {
                for fill in [b'a', 0x7f, 0x80, 0xff, b'!', b'#', b' ', b'[', b']'] {
                    let mut w = [fill; 8];
                    w[at] = c;
                    let first = w.iter().position(|&x| special(x));
                    let m = specials(u64::from_le_bytes(w));
                    let found = (m != 0).then(|| (m.trailing_zeros() / 8) as usize);
                    assert_eq!(found, first, "{w:?}");
                    // Specials after the first one do not hide it.
                    w[7] = b'"';
                    let first = w.iter().position(|&x| special(x));
                    let m = specials(u64::from_le_bytes(w));
                    assert_eq!(Some((m.trailing_zeros() / 8) as usize), first, "{w:?}");
                }
            }
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

    #[test]
    fn error_names_the_offset() {
        let e = JsonEvent::parse("{\"a\": tru}").expect_err("bad");
        assert_eq!(e.offset, 6);
        assert_eq!(e.to_string(), "invalid JSON at byte 6: expected a value");
    }

    #[test]
    fn strings_without_escapes_are_not_copied() {
        let text = r#"{"a":"plain","b":"C:\\x"}"#;
        let ev = JsonEvent::parse(text).expect("json");
        assert!(ev.nodes[1].str().is_some_and(|s| !s.unescaped));
        assert!(ev.nodes[2].str().is_some_and(|s| s.unescaped));
        assert_eq!(ev.joined_strs(), Some(&b"plain\0C:\\x\0"[..]));
    }
}
