//! [`JsonEvent`]: one JSON document (a log record, typically one line of a JSON lines
//! file) parsed once into a compact table of its values whose keys and strings borrow from
//! the text (strings holding escapes are unescaped into one buffer), for matching without
//! building a `serde_json::Value` (no map per object, no allocation per string). Buffers
//! can be reused from one record to the next ([`JsonBuffers`]).
//!
//! Field access answers like `serde_json::Value`'s, and like [`crate::WinRecord`]'s on
//! Windows records in the `evtx` shape (see `vigil_event::access`): objects
//! by key (a repeated key: the last one counts), arrays by collecting each element's
//! value, flat keys holding dots (`{"winlog.event_data.Image": ..}`), integers that fit
//! in an `i64` as integers and other numbers as floats. Keyword searches
//! (`Event::for_each_str`) see every string of the text, a repeated key's earlier values
//! too (`serde_json::Value` keeps only the last).

use crate::fxhash::FxBuild;
use std::borrow::Cow;
use std::hash::{BuildHasher, Hasher};
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

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Span),
    Array,
    Object,
}

/// A value in document order; a container's members follow it up to `end`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    /// The member's key in its object (empty for array elements and the root).
    key: Span,
    kind: Kind,
    /// Index of the node after this one's subtree.
    end: u32,
}

/// A member in [`JsonEvent`]'s table; a slot of an earlier event (another `epoch`) is
/// free, so the table is reused without clearing it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Slot {
    hash: u64,
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
}

/// A JSON document parsed for matching; borrows from the text it was parsed from.
#[derive(Debug)]
pub struct JsonEvent<'a> {
    text: &'a str,
    nodes: Vec<Node>,
    /// Every object member by (object, key): open addressing, a power of two long.
    table: Vec<Slot>,
    /// The epoch of this event's slots in `table`.
    epoch: u32,
    /// The strings that held escapes, unescaped.
    unescaped: String,
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

/// The hash of a member's key in its object.
fn member_hash(object: usize, key: &str) -> u64 {
    let mut h = FxBuild.build_hasher();
    h.write_usize(object);
    h.write(key.as_bytes());
    h.write_usize(key.len());
    h.finish()
}

/// The high bit of each byte of `w` that is `"`, `\\` or a control character (below
/// 0x20); the lowest one set is exact (higher ones may be spurious).
fn specials(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let q = w ^ (LO * u64::from(b'"'));
    let b = w ^ (LO * u64::from(b'\\'));
    (q.wrapping_sub(LO) & !q | b.wrapping_sub(LO) & !b | w.wrapping_sub(LO * 0x20) & !w) & HI
}

impl<'a> JsonEvent<'a> {
    /// Parses one JSON value (with optional surrounding whitespace) from `text`.
    pub fn parse(text: &'a str) -> Result<Self, JsonError> {
        Self::parse_with(text, &mut JsonBuffers::default())
    }

    /// Like [`JsonEvent::parse`], taking its allocations from `buffers` (give them back
    /// with [`JsonEvent::recycle`]).
    pub fn parse_with(text: &'a str, buffers: &mut JsonBuffers) -> Result<Self, JsonError> {
        let mut nodes = std::mem::take(&mut buffers.nodes);
        let mut unescaped = std::mem::take(&mut buffers.unescaped);
        nodes.clear();
        unescaped.clear();
        if u32::try_from(text.len()).is_err() {
            return Err(JsonError {
                offset: 0,
                reason: "document larger than 4 GiB",
            });
        }
        let mut p = Parser {
            text,
            b: text.as_bytes(),
            i: 0,
            depth: 0,
            nodes,
            unescaped,
        };
        let r = p.value(NO_KEY).and_then(|()| {
            p.ws();
            if p.i == p.b.len() {
                Ok(())
            } else {
                Err(p.err("trailing characters"))
            }
        });
        if let Err(e) = r {
            buffers.nodes = p.nodes;
            buffers.unescaped = p.unescaped;
            return Err(e);
        }
        let mut ev = JsonEvent {
            text,
            nodes: p.nodes,
            table: std::mem::take(&mut buffers.table),
            epoch: buffers.epoch,
            unescaped: p.unescaped,
        };
        ev.index();
        Ok(ev)
    }

    /// Gives this event's allocations back for the next [`JsonEvent::parse_with`].
    pub fn recycle(self, buffers: &mut JsonBuffers) {
        buffers.nodes = self.nodes;
        buffers.table = self.table;
        buffers.epoch = self.epoch;
        buffers.unescaped = self.unescaped;
    }

    fn str_of(&self, s: Span) -> &str {
        let (start, end) = (s.start as usize, s.start as usize + s.len as usize);
        let src = if s.unescaped {
            self.unescaped.as_str()
        } else {
            self.text
        };
        src.get(start..end).unwrap_or_default()
    }

    /// Fills the member table (a repeated key: the last one stays).
    fn index(&mut self) {
        let size = (self.nodes.len() * 2).next_power_of_two().max(8);
        if self.table.len() < size || self.epoch == u32::MAX {
            self.table.clear();
            self.table.resize(size, Slot::default());
            self.epoch = 0;
        }
        self.epoch += 1;
        let epoch = self.epoch;
        let mask = self.table.len() - 1;
        for j in 0..self.nodes.len() {
            if self.nodes[j].kind != Kind::Object {
                continue;
            }
            let end = self.nodes[j].end as usize;
            let mut c = j + 1;
            while c < end {
                let key = self.str_of(self.nodes[c].key);
                let hash = member_hash(j, key);
                let mut at = hash as usize & mask;
                loop {
                    let slot = self.table[at];
                    if slot.epoch != epoch {
                        self.table[at] = Slot {
                            hash,
                            object: j as u32,
                            node: c as u32,
                            epoch,
                        };
                        break;
                    }
                    if slot.hash == hash
                        && slot.object == j as u32
                        && self.str_of(self.nodes[slot.node as usize].key) == key
                    {
                        self.table[at].node = c as u32;
                        break;
                    }
                    at = (at + 1) & mask;
                }
                c = self.nodes[c].end as usize;
            }
        }
    }

    fn leaf(&self, j: usize) -> Value<'_> {
        match self.nodes[j].kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(b),
            Kind::Int(i) => Value::Int(i),
            Kind::Float(f) => Value::Float(f),
            Kind::Str(s) => Value::Str(Cow::Borrowed(self.str_of(s))),
            Kind::Array => Value::List(self.children(j).map(|c| self.leaf(c)).collect()),
            Kind::Object => Value::Object,
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
        let hash = member_hash(j, key);
        let mask = self.table.len() - 1;
        let mut at = hash as usize & mask;
        loop {
            let slot = self.table[at];
            if slot.epoch != self.epoch {
                return None;
            }
            if slot.hash == hash
                && slot.object == j as u32
                && self.str_of(self.nodes[slot.node as usize].key) == key
            {
                return Some(slot.node as usize);
            }
            at = (at + 1) & mask;
        }
    }

    fn at(&self, j: usize, path: &FieldPath, i: usize) -> Option<Value<'_>> {
        if i == path.len() {
            return Some(self.leaf(j));
        }
        match self.nodes[j].kind {
            Kind::Object => {
                if let Some(c) = self.member(j, path.part(i)?) {
                    if let Some(found) = self.at(c, path, i + 1) {
                        return Some(found);
                    }
                }
                // A flat key holding dots.
                if i + 1 < path.len() {
                    if let Some(c) = self.member(j, path.rest(i)?) {
                        return Some(self.leaf(c));
                    }
                }
                None
            }
            Kind::Array => {
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
        if let Some(v) = self.at(0, path, 0) {
            return Some(v);
        }
        // The `evtx` shape, as `WinRecord` reads it: `UserData` holds one element named
        // after the event (`LogFileCleared`, ...), in which `Event.UserData.X` is found.
        if path.len() >= 3 && path.part(0) == Some("Event") && path.part(1) == Some("UserData") {
            let event = self.member(0, "Event")?;
            let user = self.member(event, "UserData")?;
            if self.nodes[user].kind == Kind::Object {
                let key = path.part(2)?;
                return self
                    .children(user)
                    .filter(|&w| self.nodes[w].kind == Kind::Object)
                    .find_map(|w| self.at(self.member(w, key)?, path, 3));
            }
        }
        None
    }

    fn for_each_str<'b>(&'b self, f: &mut dyn FnMut(&'b str)) {
        for n in &self.nodes {
            if let Kind::Str(s) = n.kind {
                f(self.str_of(s));
            }
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
    depth: u32,
    nodes: Vec<Node>,
    unescaped: String,
}

impl Parser<'_> {
    fn err(&self, reason: &'static str) -> JsonError {
        JsonError {
            offset: self.i,
            reason,
        }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8, reason: &'static str) -> Result<(), JsonError> {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(reason))
        }
    }

    fn push(&mut self, key: Span, kind: Kind) -> usize {
        let at = self.nodes.len();
        self.nodes.push(Node {
            key,
            kind,
            end: (at + 1) as u32,
        });
        at
    }

    fn value(&mut self, key: Span) -> Result<(), JsonError> {
        self.ws();
        let Some(&c) = self.b.get(self.i) else {
            return Err(self.err("expected a value"));
        };
        match c {
            b'{' | b'[' => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(self.err("nested too deeply"));
                }
                self.i += 1;
                let object = c == b'{';
                let at = self.push(key, if object { Kind::Object } else { Kind::Array });
                let close = if object { b'}' } else { b']' };
                self.ws();
                if self.b.get(self.i) == Some(&close) {
                    self.i += 1;
                } else {
                    loop {
                        if object {
                            self.expect(b'"', "expected a key")?;
                            let k = self.string()?;
                            self.expect(b':', "expected `:`")?;
                            self.value(k)?;
                        } else {
                            self.value(NO_KEY)?;
                        }
                        self.ws();
                        match self.b.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(&x) if x == close => {
                                self.i += 1;
                                break;
                            }
                            _ => return Err(self.err("expected `,` or the container's end")),
                        }
                    }
                }
                self.nodes[at].end = self.nodes.len() as u32;
                self.depth -= 1;
            }
            b'"' => {
                self.i += 1;
                let s = self.string()?;
                self.push(key, Kind::Str(s));
            }
            b't' => self.word("true", key, Kind::Bool(true))?,
            b'f' => self.word("false", key, Kind::Bool(false))?,
            b'n' => self.word("null", key, Kind::Null)?,
            b'-' | b'0'..=b'9' => {
                let kind = self.number()?;
                self.push(key, kind);
            }
            _ => return Err(self.err("expected a value")),
        }
        Ok(())
    }

    fn word(&mut self, w: &str, key: Span, kind: Kind) -> Result<(), JsonError> {
        if self.b[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            self.push(key, kind);
            Ok(())
        } else {
            Err(self.err("expected a value"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<Kind, JsonError> {
        let start = self.i;
        if self.b[self.i] == b'-' {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'0') => {
                self.i += 1;
                if self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                    return Err(self.err("invalid number"));
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        let mut integer = true;
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            integer = false;
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            integer = false;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        let t = &self.text[start..self.i];
        // `-0` is a float, as `serde_json` reads it.
        if integer && t != "-0" {
            if let Ok(n) = t.parse::<i64>() {
                return Ok(Kind::Int(n));
            }
        }
        match t.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Kind::Float(f)),
            _ => Err(JsonError {
                offset: start,
                reason: "number out of range",
            }),
        }
    }

    /// Advances to the next `"`, `\\` or control character (or the end), eight bytes at
    /// a time.
    fn skip_plain(&mut self) {
        while let Some(chunk) = self.b.get(self.i..self.i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let m = specials(u64::from_le_bytes(w));
            if m != 0 {
                self.i += (m.trailing_zeros() / 8) as usize;
                return;
            }
            self.i += 8;
        }
        while let Some(&c) = self.b.get(self.i) {
            if c == b'"' || c == b'\\' || c < 0x20 {
                return;
            }
            self.i += 1;
        }
    }

    /// A string whose opening quote was consumed.
    fn string(&mut self) -> Result<Span, JsonError> {
        let start = self.i;
        self.skip_plain();
        match self.b.get(self.i) {
            None => return Err(self.err("unterminated string")),
            Some(b'"') => {
                let len = self.i - start;
                self.i += 1;
                return Ok(Span {
                    start: start as u32,
                    len: len as u32,
                    unescaped: false,
                });
            }
            Some(b'\\') => {}
            Some(_) => return Err(self.err("control character in string")),
        }
        let from = self.unescaped.len();
        self.unescaped.push_str(&self.text[start..self.i]);
        loop {
            let run = self.i;
            self.skip_plain();
            self.unescaped.push_str(&self.text[run..self.i]);
            match self.b.get(self.i) {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    let len = self.unescaped.len() - from;
                    return u32::try_from(self.unescaped.len())
                        .map(|_| Span {
                            start: from as u32,
                            len: len as u32,
                            unescaped: true,
                        })
                        .map_err(|_| self.err("document larger than 4 GiB"));
                }
                Some(b'\\') => {
                    self.i += 1;
                    let Some(&e) = self.b.get(self.i) else {
                        return Err(self.err("unterminated string"));
                    };
                    self.i += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode()?,
                        _ => return Err(self.err("invalid escape")),
                    };
                    self.unescaped.push(c);
                }
                Some(_) => return Err(self.err("control character in string")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let h = self
            .text
            .get(self.i..self.i + 4)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.err("invalid \\u escape"))?;
        self.i += 4;
        u32::from_str_radix(h, 16).map_err(|_| self.err("invalid \\u escape"))
    }

    /// The character of a `\u` escape whose `\u` was consumed (a surrogate pair takes two).
    fn unicode(&mut self) -> Result<char, JsonError> {
        let hi = self.hex4()?;
        let code = match hi {
            0xD800..=0xDBFF => {
                if !self.b[self.i..].starts_with(b"\\u") {
                    return Err(self.err("lone leading surrogate"));
                }
                self.i += 2;
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return Err(self.err("invalid surrogate pair"));
                }
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.err("lone trailing surrogate")),
            c => c,
        };
        char::from_u32(code).ok_or_else(|| self.err("invalid \\u escape"))
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
    fn error_names_the_offset() {
        let e = JsonEvent::parse("{\"a\": tru}").expect_err("bad");
        assert_eq!(e.offset, 6);
        assert_eq!(e.to_string(), "invalid JSON at byte 6: expected a value");
    }

    #[test]
    fn strings_without_escapes_are_not_copied() {
        let text = r#"{"a":"plain","b":"C:\\x"}"#;
        let ev = JsonEvent::parse(text).expect("json");
        assert!(matches!(ev.nodes[1].kind, Kind::Str(s) if !s.unescaped));
        assert!(matches!(ev.nodes[2].kind, Kind::Str(s) if s.unescaped));
        assert_eq!(ev.unescaped, "C:\\x");
    }
}
