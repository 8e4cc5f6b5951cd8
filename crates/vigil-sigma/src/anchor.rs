//! An anchor-hash index of many substring literals: each literal of 4 bytes or more is
//! found through one of its 4-byte pieces (its *anchor*, the piece fewest other literals
//! share), looked up in a hash table for every 4-byte window of the text and verified
//! in place; literals of 2 or 3 bytes are found in the same pass, through a bitmap of
//! their first two bytes and the same hash table, and 1-byte ones by `memchr` before
//! it (they are few, and would cost a test at every position of the scan). It
//! reports every literal that occurs in the text (at least once), as an overlapping
//! automaton scan would, and is faster to scan than the large automaton it replaces.

use std::collections::HashMap;

/// The multiplier of the window hash (Fibonacci hashing).
const MUL: u32 = 0x9e37_79b1;

/// One literal in a hash bucket: an anchored literal in the bucket of its anchor, or a
/// literal shorter than 4 bytes in the bucket of its first two bytes (its byte, for a
/// 1-byte literal).
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The anchor, or the whole of a short literal (upper bytes zero), as a
    /// little-endian `u32`.
    key: u32,
    /// The literal's index.
    lit: u32,
    /// The anchor's offset within the literal, or `SHORT_LIT | length` for a short
    /// literal.
    off: u32,
}

/// The flag of a short literal's [`Entry::off`].
const SHORT_LIT: u32 = 1 << 31;

/// The bytes of a `u32` window that a short literal of each length covers.
const MASK: [u32; 4] = [0, 0xff, 0xffff, 0xff_ffff];

/// The index: literals by anchor (or by first bytes, if shorter than 4 bytes).
#[derive(Debug, Clone)]
pub(crate) struct Anchored {
    /// `32 - log2(filter bits)`: a window's filter bit is the top bits of its hash, and
    /// its bucket the top 4 bits fewer.
    fshift: u32,
    /// A bit per anchor hash of 4 more bits than the bucket (16 bits per anchor, so
    /// that it stays in the first-level cache where the buckets would not): most
    /// windows are dismissed by it. Its length is a power of two.
    filter: Box<[u64]>,
    /// Bucket `b` holds `entries[starts[b]..starts[b + 1]]`.
    starts: Box<[u32]>,
    entries: Box<[Entry]>,
    /// The literals' bytes, concatenated; literal `i` is `bytes[ends[i - 1]..ends[i]]`.
    bytes: Box<[u8]>,
    ends: Box<[u32]>,
    /// If there are literals shorter than 4 bytes, a bit per pair of bytes (first byte
    /// low) that a literal of 2 or 3 bytes starts with.
    pairs: Option<Box<[u64; 1024]>>,
    /// The 1-byte literals: (byte, literal), each found by `memchr` before the scan of
    /// the windows (not tested at every position: they are few).
    ones: Box<[(u8, u32)]>,
    /// The empty literal, if one of them (it occurs in every text).
    empty: Option<u32>,
}

/// How often a byte is expected in event text (command lines, paths): a tie-break between
/// anchors that as many literals share, preferring pieces of rarer bytes.
fn commonness(b: u8) -> u32 {
    match b {
        b' ' | b'\\' | b'.' | b'e' | b'/' | b'-' => 4,
        b'a' | b'i' | b'o' | b's' | b't' | b'r' | b'n' | b'c' | b'x' | b'l' | b':' | b'"' => 2,
        b'0'..=b'9' => 2,
        _ => 1,
    }
}

fn window(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Eight bytes as a little-endian word.
#[inline(always)]
fn word8(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(b);
    u64::from_le_bytes(w)
}

/// Whether `a` and `b` hold the same bytes (those of 4 bytes or more
/// compared eight at a time in place, without a call to `memcmp`: a verification is
/// usually of a short literal, where the call costs more than the comparison.
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 4 {
        return a == b;
    }
    if n < 8 {
        // Two overlapping 4-byte windows cover 4 to 7 bytes.
        return window(a) == window(b) && window(&a[n - 4..]) == window(&b[n - 4..]);
    }
    let mut i = 0;
    while i + 8 < n {
        if word8(&a[i..i + 8]) != word8(&b[i..i + 8]) {
            return false;
        }
        i += 8;
    }
    // The last eight bytes, overlapping those compared.
    word8(&a[n - 8..]) == word8(&b[n - 8..])
}

/// Whether bit `i` of `bits` is set.
fn bit(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

/// Calls `hit` with `lit`, out of line: the look-ups stay small (most find nothing).
#[inline(never)]
fn report(hit: &mut impl FnMut(u32), lit: u32) {
    hit(lit);
}

fn set_bit(bits: &mut [u64], i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

impl Anchored {
    /// Indexes `lits`, all different (their positions are the indices the scan reports).
    pub(crate) fn new<S: AsRef<[u8]>>(lits: &[S]) -> Result<Self, String> {
        // How many literals contain each 4-byte piece.
        let mut shared: HashMap<u32, u32> = HashMap::new();
        let mut seen = Vec::new();
        for l in lits {
            let l = l.as_ref();
            seen.clear();
            seen.extend(l.windows(4).map(window));
            seen.sort_unstable();
            seen.dedup();
            for w in &seen {
                *shared.entry(*w).or_default() += 1;
            }
        }
        let mut entries: Vec<Entry> = Vec::new();
        let mut anchors = 0usize;
        let mut bytes = Vec::new();
        let mut ends = Vec::with_capacity(lits.len());
        let mut pairs: Option<Box<[u64; 1024]>> = None;
        let mut ones = Vec::new();
        let mut empty = None;
        for (i, l) in lits.iter().enumerate() {
            let l = l.as_ref();
            bytes.extend_from_slice(l);
            ends.push(
                u32::try_from(bytes.len())
                    .map_err(|_| format!("{} literals hold more than 4 GiB", lits.len()))?,
            );
            if l.len() < 4 {
                let Some(&first) = l.first() else {
                    empty = Some(i as u32);
                    continue;
                };
                let Some(&second) = l.get(1) else {
                    ones.push((first, i as u32));
                    continue;
                };
                let p = pairs.get_or_insert_with(|| Box::new([0; 1024]));
                set_bit(&mut p[..], usize::from(first) | usize::from(second) << 8);
                let mut key = [0u8; 4];
                key[..l.len()].copy_from_slice(l);
                entries.push(Entry {
                    key: u32::from_le_bytes(key),
                    lit: i as u32,
                    off: SHORT_LIT | l.len() as u32,
                });
                continue;
            }
            let (off, key) = l
                .windows(4)
                .enumerate()
                .map(|(off, w)| (off, window(w)))
                .min_by_key(|(off, w)| {
                    let rare: u32 = l[*off..*off + 4].iter().map(|b| commonness(*b)).sum();
                    (shared[w], rare)
                })
                .unwrap_or_default();
            anchors += 1;
            entries.push(Entry {
                key,
                lit: i as u32,
                off: off as u32,
            });
        }
        // About one bucket per anchor and 16 filter bits, at least 2^6 and 2^10.
        let bits = anchors.max(64).next_power_of_two().trailing_zeros();
        let fshift = 32 - (bits + 4);
        // A short literal's bucket is that of its first two bytes.
        let bucket = |e: &Entry| {
            let key = if e.off & SHORT_LIT != 0 {
                e.key & 0xffff
            } else {
                e.key
            };
            (key.wrapping_mul(MUL) >> (fshift + 4)) as usize
        };
        entries.sort_by_key(|e| (bucket(e), e.lit));
        let mut filter = vec![0u64; (1usize << (bits + 4)) / 64];
        for e in &entries {
            if e.off & SHORT_LIT == 0 {
                set_bit(&mut filter, (e.key.wrapping_mul(MUL) >> fshift) as usize);
            }
        }
        let mut starts = vec![0u32; (1usize << bits) + 1];
        for e in &entries {
            starts[bucket(e) + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        Ok(Anchored {
            fshift,
            filter: filter.into_boxed_slice(),
            starts: starts.into_boxed_slice(),
            entries: entries.into_boxed_slice(),
            bytes: bytes.into_boxed_slice(),
            ends: ends.into_boxed_slice(),
            pairs,
            ones: ones.into_boxed_slice(),
            empty,
        })
    }

    fn lit(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    /// Calls `hit` with the index of every literal that occurs in `hay` (some more than
    /// once).
    pub(crate) fn scan(&self, hay: &[u8], hit: &mut impl FnMut(u32)) {
        if let Some(e) = self.empty {
            hit(e);
        }
        for &(byte, lit) in self.ones.iter() {
            if memchr::memchr(byte, hay).is_some() {
                report(hit, lit);
            }
        }
        match &self.pairs {
            Some(pairs) => self.scan_with::<true>(hay, pairs, hit),
            None => self.scan_with::<false>(hay, &[0; 1024], hit),
        }
    }

    /// The scan, testing `pairs` (for literals shorter than 4 bytes) if `SHORT`.
    fn scan_with<const SHORT: bool>(
        &self,
        hay: &[u8],
        pairs: &[u64; 1024],
        hit: &mut impl FnMut(u32),
    ) {
        let filter = &self.filter[..];
        if filter.is_empty() {
            return;
        }
        let fmask = filter.len() - 1;
        let fshift = self.fshift % 32;
        for (pos, win) in hay.windows(4).enumerate() {
            let w = u32::from_le_bytes(win.try_into().unwrap_or_default());
            let f = (w.wrapping_mul(MUL) >> fshift) as usize;
            if filter[(f / 64) & fmask] & (1 << (f % 64)) != 0 {
                self.lookup(f >> 4, w, pos, hay, hit);
            }
            if SHORT {
                let k = (w & 0xffff) as usize;
                if pairs[k / 64] & (1 << (k % 64)) != 0 {
                    self.short_in(self.bucket(w & 0xffff), w, 4, hit);
                }
            }
        }
        if SHORT {
            // The last 3 positions (or fewer), with what is left of a window.
            let tail = hay.len().saturating_sub(3);
            for pos in tail..hay.len() {
                let mut w = [0u8; 4];
                let rest = hay.get(pos..).unwrap_or_default();
                w[..rest.len().min(4)].copy_from_slice(&rest[..rest.len().min(4)]);
                let w = u32::from_le_bytes(w);
                let k = (w & 0xffff) as usize;
                if bit(pairs, k) {
                    self.short_in(self.bucket(w & 0xffff), w, rest.len(), hit);
                }
            }
        }
    }

    /// Reports the short literals of bucket `b` that the text `w` (`avail` bytes) starts
    /// with.
    fn short_in(&self, b: usize, w: u32, avail: usize, hit: &mut impl FnMut(u32)) {
        let (s, e) = (self.starts[b] as usize, self.starts[b + 1] as usize);
        for en in self.entries.get(s..e).unwrap_or_default() {
            if en.off & SHORT_LIT != 0 {
                let len = (en.off & 3) as usize;
                if len <= avail && w & MASK[len] == en.key {
                    report(hit, en.lit);
                }
            }
        }
    }

    fn bucket(&self, key: u32) -> usize {
        (key.wrapping_mul(MUL) >> (self.fshift + 4)) as usize
    }

    /// Reports the literals of bucket `b` anchored at `pos` by the window `w` that occur
    /// there (verified in place, but for 4-byte literals), and the short literals that
    /// are the start of `w`.
    fn lookup(&self, b: usize, w: u32, pos: usize, hay: &[u8], hit: &mut impl FnMut(u32)) {
        let (s, e) = (self.starts[b] as usize, self.starts[b + 1] as usize);
        for en in self.entries.get(s..e).unwrap_or_default() {
            if en.key != w {
                continue;
            }
            if en.off & SHORT_LIT == 0 {
                let lit = self.lit(en.lit as usize);
                if lit.len() > 4 {
                    let Some(start) = pos.checked_sub(en.off as usize) else {
                        continue;
                    };
                    match hay.get(start..start + lit.len()) {
                        Some(there) if same(there, lit) => {}
                        _ => continue,
                    }
                }
            }
            report(hit, en.lit);
        }
    }

    /// The heap bytes the index holds.
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        self.starts.len() * 4
            + self.filter.len() * 8
            + self.entries.len() * std::mem::size_of::<Entry>()
            + self.bytes.len()
            + self.ends.len() * 4
            + self.pairs.as_ref().map_or(0, |_| 1024 * 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aho_corasick::AhoCorasick;
    use std::collections::BTreeSet;

    /// A small deterministic generator (xorshift64) for the randomized tests.
    fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    fn automaton_hits(lits: &[&str], hay: &str) -> BTreeSet<u32> {
        let ac = AhoCorasick::new(lits).expect("automaton");
        ac.find_overlapping_iter(hay)
            .map(|m| m.pattern().as_u32())
            .collect()
    }

    fn anchored_hits(a: &Anchored, hay: &str) -> BTreeSet<u32> {
        let mut out = BTreeSet::new();
        a.scan(hay.as_bytes(), &mut |i| {
            out.insert(i);
        });
        out
    }

    #[test]
    fn finds_what_the_automaton_finds() {
        let lits = [
            "a",
            "ab",
            "abc",
            "abcd",
            "bcde",
            "cmd.exe",
            "cmd",
            "/c ",
            " -enc ",
            "-e",
            "é",
            "café",
            "aaaa",
            "aaaaa",
            "exe",
            ".exe",
            "powershell",
            "shell",
            "ll",
            "xyz\0q",
        ];
        let a = Anchored::new(&lits).expect("index");
        assert!(a.heap_bytes() > 0);
        for hay in [
            "",
            "a",
            "abc",
            "abcd",
            "abcde",
            "cmd.exe /c powershell -enc AAAA",
            "aaaaaaaa",
            "café crème",
            "xyz\0q",
            "ppowershelll.exe",
            "nothing",
        ] {
            assert_eq!(
                anchored_hits(&a, hay),
                automaton_hits(&lits, hay),
                "{hay:?}"
            );
        }
    }

    #[test]
    fn many_literals_sharing_pieces() {
        // Literals from a small alphabet share many pieces; texts from the same alphabet.
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let mut lits = Vec::new();
        for _ in 0..3000 {
            let n = 1 + (next() % 9) as usize;
            lits.push(
                (0..n)
                    .map(|_| b"abc d"[(next() % 5) as usize] as char)
                    .collect::<String>(),
            );
        }
        lits.sort();
        lits.dedup();
        let refs: Vec<&str> = lits.iter().map(String::as_str).collect();
        let a = Anchored::new(&refs).expect("index");
        for _ in 0..200 {
            let n = (next() % 60) as usize;
            let hay: String = (0..n)
                .map(|_| b"abc de"[(next() % 6) as usize] as char)
                .collect();
            assert_eq!(
                anchored_hits(&a, &hay),
                automaton_hits(&refs, &hay),
                "{hay:?}"
            );
        }
    }

    #[test]
    fn same_answers_as_slice_equality() {
        let base: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        for n in 0..base.len() {
            let a = &base[..n];
            assert!(same(a, a), "{n}");
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same(a, &b), "{n} {at}");
            }
            assert!(!same(a, &base[..n + 1]), "{n}");
        }
    }

    #[test]
    fn empty_literal_occurs_everywhere() {
        let lits = ["", "a", "abcd"];
        let a = Anchored::new(&lits).expect("index");
        for hay in ["", "a", "xabcd"] {
            assert_eq!(
                anchored_hits(&a, hay),
                automaton_hits(&lits, hay),
                "{hay:?}"
            );
        }
    }

    /// Random literals (1 to 12 bytes, from small alphabets with repeats, NUL and
    /// non-ASCII bytes) and texts; the hit sets must be the automaton's.
    #[test]
    fn random_literals_and_texts() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let alphabets: [&[u8]; 4] = [
            b"ab",
            b"abc -/\\.e",
            &[0, 1, b'a', 0xc3, 0xa9, 0xff, b' '],
            &[b'x', b'y', b'z', 0x80, 0xe2, 0x82, 0xac, b'q', b'0', b'9'],
        ];
        for round in 0..60 {
            let alpha = alphabets[round % alphabets.len()];
            let count = 1 + (next() % 400) as usize;
            let mut lits: Vec<Vec<u8>> = (0..count)
                .map(|_| {
                    let n = match next() % 4 {
                        0 => 1 + (next() % 3) as usize,
                        1 => 4,
                        _ => 1 + (next() % 12) as usize,
                    };
                    (0..n)
                        .map(|_| alpha[(next() % alpha.len() as u64) as usize])
                        .collect()
                })
                .collect();
            lits.sort();
            lits.dedup();
            let a = Anchored::new(&lits).expect("index");
            let ac = AhoCorasick::new(&lits).expect("automaton");
            for _ in 0..40 {
                let n = (next() % 80) as usize;
                let hay: Vec<u8> = (0..n)
                    .map(|_| alpha[(next() % alpha.len() as u64) as usize])
                    .collect();
                let want: BTreeSet<u32> = ac
                    .find_overlapping_iter(&hay)
                    .map(|m| m.pattern().as_u32())
                    .collect();
                let mut got = BTreeSet::new();
                a.scan(&hay, &mut |i| {
                    got.insert(i);
                });
                assert_eq!(got, want, "round {round}, text {hay:?}");
            }
        }
    }
}
