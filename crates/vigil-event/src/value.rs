//! The borrowed value a field lookup returns, and the pre-parsed path it is looked up by.

use std::borrow::Cow;
use std::fmt;

/// A field's value, borrowed from the event wherever the event stores it as such.
///
/// Strings are `Cow::Borrowed` for every field that exists verbatim in the event; only
/// derived fields (for example a number rendered for a string comparison by the caller)
/// would ever allocate, and the event model itself never does.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// JSON `null`, or an attribute explicitly present without a value.
    Null,
    /// A boolean.
    Bool(bool),
    /// Any integer (OCSF `integer_t`, `long_t`, `timestamp_t`, `port_t`).
    Int(i64),
    /// A floating point number (OCSF `float_t`).
    Float(f64),
    /// A string, borrowed from the event.
    Str(Cow<'a, str>),
    /// The values of an array, or the values one path reached through an array of objects.
    List(Vec<Value<'a>>),
    /// An object: the field exists but has no scalar value (useful for `exists` tests).
    Object,
}

impl<'a> Value<'a> {
    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an integer, or a string holding one (Windows logs store
    /// numbers as strings).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as a number, if it is one or a string holding one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// True for `Null` and for an empty list.
    pub fn is_null(&self) -> bool {
        match self {
            Value::Null => true,
            Value::List(l) => l.is_empty(),
            _ => false,
        }
    }

    /// Calls `f` on each scalar: the value itself, or each element of a list (recursively).
    pub fn for_each_scalar(&self, f: &mut dyn FnMut(&Value<'a>)) {
        match self {
            Value::List(items) => items.iter().for_each(|v| v.for_each_scalar(f)),
            other => f(other),
        }
    }

    /// Converts into a value that owns its strings.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(b),
            Value::Int(i) => Value::Int(i),
            Value::Float(f) => Value::Float(f),
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::List(l) => Value::List(l.into_iter().map(Value::into_owned).collect()),
            Value::Object => Value::Object,
        }
    }
}

impl fmt::Display for Value<'_> {
    /// Renders the value the way a string comparison sees it: strings bare, numbers in
    /// decimal, booleans as `true`/`false`, lists comma-separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
            Value::List(l) => {
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{v}")?;
                }
                Ok(())
            }
            Value::Object => f.write_str("{}"),
        }
    }
}

/// A field name, split once into its dotted parts so that lookups at match time never
/// parse or allocate.
///
/// `process.file.path` has the parts `process`, `file`, `path`. A lookup also tries, at
/// each level, the whole rest of the path as one key, so flat keys that contain dots
/// (`"winlog.event_data.Image": ...`) are found too.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    full: Box<str>,
    /// Byte offsets of the start of each part within `full`.
    starts: Box<[u32]>,
    /// [`key_hash`] of each part, then of each rest (parts `i..` joined): computed
    /// once, for readers that look keys up by that hash.
    hashes: Box<[u64]>,
    /// [`key_hash`] of the whole name (`rest(0)`), kept inline: the one a reader of
    /// flat records asks for, without reading `hashes`.
    full_hash: u64,
}

/// The multiplier of [`key_hash`] (FxHash's).
const KEY_K: u64 = 0x517c_c1b7_2722_0a95;

/// One step of [`key_hash`]: the state after one more little-endian word of key bytes.
#[inline(always)]
pub fn key_hash_step(h: u64, word: u64) -> u64 {
    (h.rotate_left(5) ^ word).wrapping_mul(KEY_K)
}

/// A key's bytes hashed eight at a time, as little-endian words from a state of 0, the
/// last one padded with zeros (none for an empty key or a multiple of eight bytes). A
/// JSON reader can compute it while scanning a key ([`key_hash_step`] per word) and
/// then look up a [`FieldPath`]'s parts by their [`FieldPath::part_hash`] without
/// hashing them again. Not a hash for hostile input on its own (readers mix in more).
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h = 0;
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = key_hash_step(h, u64::from_le_bytes(w));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = key_hash_step(h, u64::from_le_bytes(w));
    }
    h
}

impl FieldPath {
    /// Parses a dotted field name. An empty name gives a path with one empty part.
    pub fn new(name: &str) -> Self {
        let mut starts = vec![0u32];
        for (i, b) in name.bytes().enumerate() {
            if b == b'.' {
                starts.push(u32::try_from(i + 1).unwrap_or(u32::MAX));
            }
        }
        let bytes = name.as_bytes();
        let mut hashes = Vec::with_capacity(2 * starts.len());
        for (i, &start) in starts.iter().enumerate() {
            let end = starts.get(i + 1).map_or(name.len(), |n| *n as usize - 1);
            hashes.push(key_hash(bytes.get(start as usize..end).unwrap_or_default()));
        }
        for &start in &starts {
            hashes.push(key_hash(bytes.get(start as usize..).unwrap_or_default()));
        }
        FieldPath {
            full: name.into(),
            starts: starts.into_boxed_slice(),
            hashes: hashes.into_boxed_slice(),
            full_hash: key_hash(bytes),
        }
    }

    /// [`key_hash`] of part `i` (0 past the last part).
    #[inline]
    pub fn part_hash(&self, i: usize) -> u64 {
        self.hashes.get(i).copied().unwrap_or_default()
    }

    /// [`key_hash`] of [`FieldPath::rest`]`(i)` (0 past the last part).
    #[inline]
    pub fn rest_hash(&self, i: usize) -> u64 {
        if i == 0 {
            return self.full_hash;
        }
        self.hashes.get(self.len() + i).copied().unwrap_or_default()
    }

    /// The name as written.
    #[inline]
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// Number of dotted parts.
    #[inline]
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Always false: a path has at least one part.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Part `i`, if there is one.
    #[inline]
    pub fn part(&self, i: usize) -> Option<&str> {
        let start = *self.starts.get(i)? as usize;
        let end = match self.starts.get(i + 1) {
            Some(next) => *next as usize - 1,
            None => self.full.len(),
        };
        self.full.get(start..end)
    }

    /// Parts `i..` joined by dots, as one key.
    #[inline]
    pub fn rest(&self, i: usize) -> Option<&str> {
        let start = *self.starts.get(i)? as usize;
        self.full.get(start..)
    }
}

impl fmt::Debug for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FieldPath({:?})", self.full)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl From<&str> for FieldPath {
    fn from(s: &str) -> Self {
        FieldPath::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_hashes_are_those_of_the_parts() {
        for name in [
            "Image",
            "a.b",
            "winlog.event_data.Image",
            "",
            "x.",
            ".y",
            "ParentCommandLine.k",
        ] {
            let p = FieldPath::new(name);
            for i in 0..p.len() {
                assert_eq!(
                    p.part_hash(i),
                    key_hash(p.part(i).unwrap_or("").as_bytes()),
                    "{name} {i}"
                );
                assert_eq!(
                    p.rest_hash(i),
                    key_hash(p.rest(i).unwrap_or("").as_bytes()),
                    "{name} {i}"
                );
            }
        }
        // Every length hashes differently from its neighbours, zero padding aside.
        assert_ne!(key_hash(b"abcdefgh"), key_hash(b"abcdefghi"));
        assert_eq!(key_hash(b""), 0);
    }

    #[test]
    fn path_parts_and_rest() {
        let p = FieldPath::new("process.file.path");
        assert_eq!(p.len(), 3);
        assert_eq!(p.part(0), Some("process"));
        assert_eq!(p.part(1), Some("file"));
        assert_eq!(p.part(2), Some("path"));
        assert_eq!(p.part(3), None);
        assert_eq!(p.rest(1), Some("file.path"));
        let single = FieldPath::new("Image");
        assert_eq!(single.len(), 1);
        assert_eq!(single.part(0), Some("Image"));
    }

    #[test]
    fn numbers_from_strings() {
        assert_eq!(Value::Str("4688".into()).as_i64(), Some(4688));
        assert_eq!(Value::Str("x".into()).as_i64(), None);
        assert_eq!(Value::Int(3).as_f64(), Some(3.0));
    }
}
