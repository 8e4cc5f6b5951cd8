//! [`JsonEvent`]: one JSON document (a log record, typically one line of a JSON lines
//! file) parsed once into a compact table that borrows its keys and strings from the text,
//! for matching without building a `serde_json::Value` (no map per object, no string copy
//! unless the string holds escapes).
//!
//! Field access answers like `serde_json::Value`'s (see `vigil_event::access`): objects
//! by key (a repeated key: the last one counts), arrays by collecting each element's
//! value, flat keys holding dots (`{"winlog.event_data.Image": ..}`), integers that fit
//! in an `i64` as integers and other numbers as floats.

use std::borrow::Cow;
use vigil_event::{Event, FieldPath, Value};

/// Containers nested deeper than this are refused (as `serde_json` does past 128).
const MAX_DEPTH: u32 = 128;

#[derive(Debug, Clone, PartialEq)]
enum Kind<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Array,
    Object,
}

/// A value in document order; a container's members follow it up to `end`.
#[derive(Debug, Clone, PartialEq)]
struct Node<'a> {
    /// The member's key in its object (empty for array elements and the root).
    key: Cow<'a, str>,
    kind: Kind<'a>,
    /// Index of the node after this one's subtree.
    end: u32,
}

/// A JSON document parsed for matching; borrows from the text it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonEvent<'a> {
    nodes: Vec<Node<'a>>,
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

impl<'a> JsonEvent<'a> {
    /// Parses one JSON value (with optional surrounding whitespace) from `text`.
    pub fn parse(text: &'a str) -> Result<Self, JsonError> {
        let mut p = Parser {
            text,
            b: text.as_bytes(),
            i: 0,
            depth: 0,
            nodes: Vec::with_capacity(32),
        };
        p.value(Cow::Borrowed(""))?;
        p.ws();
        if p.i != p.b.len() {
            return Err(p.err("trailing characters"));
        }
        Ok(JsonEvent { nodes: p.nodes })
    }

    fn leaf(&self, j: usize) -> Value<'_> {
        match &self.nodes[j].kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::Int(*i),
            Kind::Float(f) => Value::Float(*f),
            Kind::Str(s) => Value::Str(Cow::Borrowed(s)),
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
        self.children(j)
            .filter(|&c| self.nodes[c].key == key)
            .last()
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
        self.at(0, path, 0)
    }

    fn for_each_str<'b>(&'b self, f: &mut dyn FnMut(&'b str)) {
        for n in &self.nodes {
            if let Kind::Str(s) = &n.kind {
                f(s);
            }
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
    depth: u32,
    nodes: Vec<Node<'a>>,
}

impl<'a> Parser<'a> {
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

    fn push(&mut self, key: Cow<'a, str>, kind: Kind<'a>) -> usize {
        let at = self.nodes.len();
        self.nodes.push(Node {
            key,
            kind,
            end: (at + 1) as u32,
        });
        at
    }

    fn value(&mut self, key: Cow<'a, str>) -> Result<(), JsonError> {
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
                            self.value(Cow::Borrowed(""))?;
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

    fn word(&mut self, w: &str, key: Cow<'a, str>, kind: Kind<'a>) -> Result<(), JsonError> {
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

    fn number(&mut self) -> Result<Kind<'a>, JsonError> {
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

    /// A string whose opening quote was consumed.
    fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        let start = self.i;
        loop {
            match self.b.get(self.i) {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    let s = &self.text[start..self.i];
                    self.i += 1;
                    return Ok(Cow::Borrowed(s));
                }
                Some(b'\\') => break,
                Some(&c) if c < 0x20 => return Err(self.err("control character in string")),
                Some(_) => self.i += 1,
            }
        }
        let mut out = String::with_capacity(self.i - start + 16);
        out.push_str(&self.text[start..self.i]);
        loop {
            let run = self.i;
            while let Some(&c) = self.b.get(self.i) {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.i += 1;
            }
            out.push_str(&self.text[run..self.i]);
            match self.b.get(self.i) {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.i += 1;
                    let Some(&e) = self.b.get(self.i) else {
                        return Err(self.err("unterminated string"));
                    };
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode()?),
                        _ => return Err(self.err("invalid escape")),
                    }
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
        for d in docs {
            let ours = JsonEvent::parse(d).unwrap_or_else(|e| panic!("{d}: {e}"));
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
    fn strings_without_escapes_are_borrowed() {
        let text = r#"{"a":"plain","b":"C:\\x"}"#;
        let ev = JsonEvent::parse(text).expect("json");
        assert!(matches!(
            &ev.nodes[1].kind,
            Kind::Str(Cow::Borrowed("plain"))
        ));
        assert!(matches!(&ev.nodes[2].kind, Kind::Str(Cow::Owned(s)) if s == "C:\\x"));
    }
}
