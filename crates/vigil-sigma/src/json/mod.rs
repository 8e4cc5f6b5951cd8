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

mod parser;
mod table;
mod words;

use parser::Parser;
use std::borrow::Cow;
use table::{Fallback, Slot};
use vigil_event::{Event, FieldPath, Value};

/// Containers nested deeper than this are refused (as `serde_json` does past 128).
const MAX_DEPTH: u32 = 128;

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
    /// high half; `Object`: the [`key_bit`](table::key_bit)s of its keys.
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
    /// In a hostile record (an insertion passed [`PROBE_LIMIT`](table::PROBE_LIMIT), so `table` is empty and
    /// every member lookup goes through `fallback`), the table's allocation, kept for
    /// [`JsonEvent::recycle`].
    spare_table: Vec<Slot>,
    /// Every member by a keyed hash, made on the first lookup that needs it.
    fallback: std::cell::OnceCell<Fallback>,
    /// Slots visited by the insertions into the member table (for tests).
    #[cfg_attr(not(test), allow(dead_code))]
    insert_probes: usize,
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
    /// Calls `f` with every string value in document order, as [`Event::for_each_str`]
    /// does, except those anywhere inside a member whose key `skip` is true of (Vigil's
    /// OCSF events leave their lineage context out of keyword searches this way).
    pub fn for_each_str_except<'b>(
        &'b self,
        skip: &dyn Fn(&str) -> bool,
        f: &mut dyn FnMut(&'b str),
    ) {
        let mut j = 0;
        while let Some(n) = self.nodes.get(j) {
            let key = n.key();
            if key.len > 0 {
                let k = bytes_of(self.text.as_bytes(), self.unescaped.as_bytes(), key);
                if std::str::from_utf8(k).is_ok_and(skip) {
                    // Past the member's whole subtree (`end` is always past `j`).
                    j = (n.end as usize).max(j + 1);
                    continue;
                }
            }
            if let Some(s) = n.str() {
                f(self.str_of(s));
            }
            j += 1;
        }
    }

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

    /// What `OcsfJson` over a `serde_json::Value` sees: the same strings, a skipped
    /// member's whole subtree (objects, arrays, escaped keys) left out at any depth.
    #[test]
    fn strings_except_skipped_members_are_the_values_strings_without_them() {
        let skip = |k: &str| k == "parent_process" || k == "ancestry";
        let docs = [
            r#"{"a":"1","parent_process":{"cmd_line":"x","file":{"path":"/p"}},"b":["2",{"ancestry":[{"c":"3"}],"d":"4"}]}"#,
            r#"{"parent_process":"escaped key","ancestry":[],"z":{"parent_process":null},"y":"5"}"#,
            r#"{"process":{"name":"n","parent_process":{"name":"pn","parent_process":{"name":"ppn"}},"ancestry":[{"name":"a1"},{"name":"a2"}],"uid":"u"}}"#,
            r#"["parent_process",{"k":"parent_process"}]"#,
            r#""parent_process""#,
        ];
        for d in docs {
            let e = JsonEvent::parse(d).expect("json");
            let mut got = Vec::new();
            e.for_each_str_except(&skip, &mut |s| got.push(s.to_string()));
            let v: serde_json::Value = serde_json::from_str(d).expect("json");
            let mut want = Vec::new();
            vigil_event::OcsfJson(&v).for_each_str(&mut |s| want.push(s.to_string()));
            got.sort();
            want.sort();
            assert_eq!(got, want, "{d}");
        }
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
