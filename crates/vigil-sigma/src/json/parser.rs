//! The JSON parser of [`JsonEvent`](super::JsonEvent): one pass over the text into nodes
//! in document order, each member put in the member table as its key is scanned (and
//! hashed), each string value copied, unescaped, into the joined strings.

use super::table::{hash_end, key_bit, key_hash, mix, Slot};
use super::words::{digits_value, plain_end, plain_end_copy, skip_ws, small_int, specials, word};
use super::{
    bytes_of, JsonError, Node, Span, Tag, KEY_UNESCAPED, MAX_DEPTH, NO_KEY, STR_UNESCAPED,
};

/// The text is not JSON: the parser's `error` says why.
pub(super) struct Fail;

pub(super) struct Parser<'a> {
    pub(super) text: &'a str,
    pub(super) b: &'a [u8],
    pub(super) i: usize,
    pub(super) depth: u32,
    pub(super) nodes: Vec<Node>,
    pub(super) unescaped: String,
    /// The member table being filled (see [`JsonEvent`](super::JsonEvent)); `mask` is its length less one.
    pub(super) table: Vec<Slot>,
    pub(super) mask: usize,
    pub(super) epoch: u32,
    /// Members in `table`.
    pub(super) members: usize,
    /// The string values joined (see [`JsonEvent`](super::JsonEvent)), long enough for whole-word stores;
    /// `sat` is where the next one goes.
    pub(super) strs: Vec<u8>,
    pub(super) sat: usize,
    /// Whether an insertion or a move in the member table passed [`PROBE_LIMIT`](super::table::PROBE_LIMIT): the
    /// table is left incomplete and no longer filled (lookups use [`Fallback`](super::table::Fallback)).
    pub(super) hostile: bool,
    /// Slots visited past the first by insertions and moves (for tests).
    pub(super) probes: usize,
    /// Why parsing failed, once it has.
    pub(super) error: JsonError,
}

/// A key starting at `start` (after its opening quote), hashed while it is scanned: the
/// position of its closing quote and its [`key_hash`] in `object`. `None` if it holds an
/// escape or a control character, or ends in the text's last eight bytes (see
/// [`Parser::key_slow`]).
#[inline(always)]
pub(super) fn scan_key(b: &[u8], start: usize, object: u32) -> Option<(usize, u64)> {
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

impl Parser<'_> {
    #[cold]
    #[inline(never)]
    pub(super) fn fail_at(&mut self, offset: usize, reason: &'static str) -> Fail {
        self.i = offset;
        self.error = JsonError { offset, reason };
        Fail
    }

    #[inline(always)]
    pub(super) fn fail(&mut self, reason: &'static str) -> Fail {
        self.fail_at(self.i, reason)
    }

    #[inline(always)]
    pub(super) fn ws(&mut self) {
        self.i = skip_ws(self.b, self.i);
    }

    #[inline(always)]
    pub(super) fn push(&mut self, key: Span, tag: Tag, data: u64, flags: u8) -> usize {
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
    pub(super) fn push_str(&mut self, key: Span, s: Span) {
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
    pub(super) fn joined(&mut self, s: Span) {
        let at = self.sat;
        let len = s.len as usize;
        if let Some(z) = self.strs.get_mut(at + len) {
            *z = 0;
        }
        self.sat = at + len + 1;
    }

    /// A value, at its first byte (whitespace skipped).
    #[inline(always)]
    pub(super) fn value(&mut self, key: Span) -> Result<(), Fail> {
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
    pub(super) fn container(&mut self, key: Span, object: bool) -> Result<(), Fail> {
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

    pub(super) fn word(&mut self, w: &str, key: Span, tag: Tag) -> Result<(), Fail> {
        if self.b[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            self.push(key, tag, 0, 0);
            Ok(())
        } else {
            Err(self.fail("expected a value"))
        }
    }

    pub(super) fn digits(&mut self) -> usize {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    /// A number: `Int` or `Float`, and its `data`.
    pub(super) fn number(&mut self) -> Result<(Tag, u64), Fail> {
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
    pub(super) fn key_slow(&mut self, object: u32) -> Result<(Span, u64), Fail> {
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
    pub(super) fn escaped_value(&mut self, start: usize) -> Result<Span, Fail> {
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
    pub(super) fn escaped(&mut self, start: usize) -> Result<Span, Fail> {
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

    pub(super) fn hex4(&mut self) -> Result<u32, Fail> {
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
    pub(super) fn unicode(&mut self) -> Result<char, Fail> {
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
