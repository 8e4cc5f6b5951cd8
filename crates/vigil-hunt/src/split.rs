//! Cutting a `.json` file into its values without parsing them: where each value of the
//! top-level array (or each top-level value, for values one after another) starts and
//! ends, found from brackets and strings alone as the bytes stream by. Each value's text
//! is then parsed on its own by a matching thread, so a bad value is reported alone and
//! the rest of the file is still read; a file whose structure breaks (a stray byte
//! between the values of the array, a cut inside a value) is reported where it breaks.

/// What [`Splitter::scan`] found, at a position in the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// A value starts at this byte.
    Start(usize),
    /// The value ends before this byte.
    End(usize),
    /// The structure breaks here; nothing after it is read.
    Error(usize, &'static str),
}

/// Where the scan is, between values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Before the first byte that is not whitespace.
    #[default]
    Start,
    /// Between top-level values (values one after another).
    Between,
    /// Just inside the top-level array: a value or `]`.
    ArrayOpen,
    /// After a `,` of the top-level array: a value.
    ArrayNext,
    /// After a value of the top-level array: `,` or `]`.
    ArrayAfter,
    /// After the top-level array: only whitespace.
    Done,
    /// In a value.
    Value,
    /// The structure broke; nothing more is read.
    Failed,
}

/// What the value being read is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Kind {
    /// An object or array.
    #[default]
    Container,
    /// A string.
    Str,
    /// A number, `true`, `false`, `null` (or anything else not starting with a bracket or
    /// a quote: the parser tells what is wrong with it).
    Scalar,
}

/// The scan of one file (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Splitter {
    state: State,
    /// The values are the elements of a top-level array.
    array: bool,
    kind: Kind,
    /// Brackets open in the value.
    depth: u64,
    /// In a string of the value.
    in_str: bool,
    /// After a backslash in that string.
    escaped: bool,
    /// Bytes scanned before this chunk.
    seen: u64,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Ends a scalar: whitespace or a byte of JSON's structure.
fn ends_scalar(b: u8) -> bool {
    is_ws(b) || matches!(b, b',' | b']' | b'}' | b'[' | b'{' | b'"' | b':')
}

impl Splitter {
    /// Scans the next bytes of the file, pushing what it finds to `marks` (positions in
    /// `chunk`).
    pub(crate) fn scan(&mut self, chunk: &[u8], marks: &mut Vec<Mark>) {
        let mut i = 0;
        if self.seen == 0 && self.state == State::Start && chunk.starts_with(b"\xEF\xBB\xBF") {
            i = 3;
        }
        self.seen += chunk.len() as u64;
        while i < chunk.len() {
            if self.state == State::Value {
                i = self.in_value(chunk, i, marks);
                continue;
            }
            let b = chunk[i];
            if is_ws(b) {
                i += 1;
                continue;
            }
            match self.state {
                State::Start if b == b'[' => {
                    self.array = true;
                    self.state = State::ArrayOpen;
                    i += 1;
                }
                State::Start => self.state = State::Between,
                State::ArrayOpen if b == b']' => {
                    self.state = State::Done;
                    i += 1;
                }
                State::Between | State::ArrayOpen | State::ArrayNext => {
                    if matches!(b, b',' | b']' | b'}' | b':') {
                        return self.fail(marks, i, "expected a value");
                    }
                    marks.push(Mark::Start(i));
                    self.state = State::Value;
                    self.kind = match b {
                        b'{' | b'[' => Kind::Container,
                        b'"' => Kind::Str,
                        _ => Kind::Scalar,
                    };
                    self.depth = u64::from(self.kind == Kind::Container);
                    self.in_str = self.kind == Kind::Str;
                    self.escaped = false;
                    if self.kind != Kind::Scalar {
                        i += 1;
                    }
                }
                State::ArrayAfter => match b {
                    b',' => {
                        self.state = State::ArrayNext;
                        i += 1;
                    }
                    b']' => {
                        self.state = State::Done;
                        i += 1;
                    }
                    _ => {
                        return self.fail(
                            marks,
                            i,
                            "expected `,` or `]` after a value of the top-level array",
                        )
                    }
                },
                State::Done => {
                    return self.fail(marks, i, "trailing characters after the top-level array")
                }
                State::Value | State::Failed => return,
            }
        }
    }

    fn fail(&mut self, marks: &mut Vec<Mark>, at: usize, reason: &'static str) {
        self.state = State::Failed;
        marks.push(Mark::Error(at, reason));
    }

    /// Scans value bytes from `i`; the position after what it scanned.
    fn in_value(&mut self, chunk: &[u8], mut i: usize, marks: &mut Vec<Mark>) -> usize {
        if self.kind == Kind::Scalar {
            while i < chunk.len() && !ends_scalar(chunk[i]) {
                i += 1;
            }
            if i < chunk.len() {
                self.end(marks, i);
            }
            return i;
        }
        while i < chunk.len() {
            if self.in_str {
                if self.escaped {
                    self.escaped = false;
                    i += 1;
                    continue;
                }
                match memchr::memchr2(b'"', b'\\', &chunk[i..]) {
                    None => return chunk.len(),
                    Some(j) if chunk[i + j] == b'\\' => {
                        self.escaped = true;
                        i += j + 1;
                    }
                    Some(j) => {
                        self.in_str = false;
                        i += j + 1;
                        if self.kind == Kind::Str {
                            self.end(marks, i);
                            return i;
                        }
                    }
                }
                continue;
            }
            match chunk[i] {
                b'"' => self.in_str = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        self.end(marks, i + 1);
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        i
    }

    fn end(&mut self, marks: &mut Vec<Mark>, at: usize) {
        marks.push(Mark::End(at));
        self.state = if self.array {
            State::ArrayAfter
        } else {
            State::Between
        };
    }

    /// The file ended: `Ok(true)` if that ends the value being read (a scalar), an error
    /// if the file was cut inside the structure.
    pub(crate) fn finish(&mut self) -> Result<bool, &'static str> {
        match self.state {
            State::Value if self.kind == Kind::Scalar => {
                self.state = State::Between;
                Ok(true)
            }
            State::Value => Err("the file ends inside a value"),
            State::ArrayOpen | State::ArrayNext | State::ArrayAfter => {
                Err("the file ends inside the top-level array")
            }
            State::Start | State::Between | State::Done | State::Failed => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values of `text` scanned in chunks of `n` bytes, and the error.
    fn split(text: &[u8], n: usize) -> (Vec<String>, Option<(usize, &'static str)>) {
        let mut s = Splitter::default();
        let (mut values, mut start, mut error) = (Vec::new(), 0, None);
        let mut marks = Vec::new();
        for (c, chunk) in text.chunks(n).enumerate() {
            marks.clear();
            s.scan(chunk, &mut marks);
            for m in &marks {
                match *m {
                    Mark::Start(i) => start = c * n + i,
                    Mark::End(i) => values.push(text[start..c * n + i].to_vec()),
                    Mark::Error(i, r) => error = Some((c * n + i, r)),
                }
            }
        }
        match s.finish() {
            Ok(true) => values.push(text[start..].to_vec()),
            Ok(false) => {}
            Err(r) => error = error.or(Some((text.len(), r))),
        }
        let values = values
            .into_iter()
            .map(|v| String::from_utf8(v).expect("utf8"))
            .collect();
        (values, error)
    }

    #[test]
    fn values_found_whatever_the_chunks() {
        let text = br#"[ {"a":"x]}\"\\","b":[1,{"c":null}]}, 12 ,-3.5e2,"s\"]",true, [] ,{}]"#;
        for n in 1..text.len() + 1 {
            let (values, error) = split(text, n);
            assert_eq!(error, None, "chunks of {n}");
            assert_eq!(
                values,
                [
                    r#"{"a":"x]}\"\\","b":[1,{"c":null}]}"#,
                    "12",
                    "-3.5e2",
                    r#""s\"]""#,
                    "true",
                    "[]",
                    "{}"
                ],
                "chunks of {n}"
            );
        }
        let (values, error) = split(b"\xEF\xBB\xBF{\"a\":1}\n{\"b\":2} 7", 3);
        assert_eq!(error, None);
        assert_eq!(values, ["{\"a\":1}", "{\"b\":2}", "7"]);
    }

    #[test]
    fn broken_structure_is_reported_where_it_breaks() {
        assert_eq!(
            split(b"[{\"a\":1} x]", 4).1,
            Some((
                9,
                "expected `,` or `]` after a value of the top-level array"
            ))
        );
        assert_eq!(split(b"[1,]", 2).1, Some((3, "expected a value")));
        assert_eq!(
            split(b"[1] [2]", 2).1,
            Some((4, "trailing characters after the top-level array"))
        );
        assert_eq!(
            split(b"{\"a\":[1,2}", 5).1,
            Some((10, "the file ends inside a value"))
        );
        assert_eq!(
            split(b"[{\"a\":1},", 5).1,
            Some((9, "the file ends inside the top-level array"))
        );
        assert_eq!(split(b"", 5), (vec![], None));
        assert_eq!(split(b" [ ] ", 5), (vec![], None));
    }
}
