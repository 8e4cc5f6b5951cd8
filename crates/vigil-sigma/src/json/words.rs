//! Word-at-a-time helpers of the JSON reader: eight bytes as one word, the first byte of
//! a string that needs attention, short keys compared without `memcmp`, digits read as
//! a number.

/// Eight bytes as a little-endian word.
#[inline(always)]
pub(super) fn word(c: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(c);
    u64::from_le_bytes(w)
}

/// Up to eight bytes as a little-endian word, padded with zeros (without a call to
/// `memcpy`: two overlapping loads, or three bytes).
#[inline(always)]
pub(super) fn tail(b: &[u8]) -> u64 {
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
pub(super) fn specials(w: u64) -> u64 {
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
pub(super) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
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

/// The position of the first byte at or after `i` that is not JSON whitespace.
#[inline(always)]
pub(super) fn skip_ws(b: &[u8], mut i: usize) -> usize {
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
pub(super) fn plain_end(b: &[u8], mut i: usize) -> usize {
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
pub(super) fn plain_end_copy(b: &[u8], mut i: usize, out: &mut [u8], mut at: usize) -> usize {
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

/// The decimal digits at `i` read as a number (wrapping past `u64`; callers count the
/// digits) and the position after them.
#[inline(always)]
pub(super) fn digits_value(b: &[u8], mut i: usize) -> (u64, usize) {
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
/// position after it; `None` for any other value (see [`Parser::number`](super::parser::Parser::number)).
#[inline(always)]
pub(super) fn small_int(b: &[u8], i: usize) -> Option<(u64, usize)> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
