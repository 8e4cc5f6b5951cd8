//! An anchor-hash index of many substring literals: each literal of 4 bytes or more is
//! found through one of its 4-byte pieces (its *anchor*, the piece fewest other literals
//! share), looked up in a hash table for every 4-byte window of the text and verified
//! in place; shorter literals go to a small Aho-Corasick DFA. It reports every literal
//! that occurs in the text (at least once), as an overlapping automaton scan would, and
//! is faster to scan than the large automaton it replaces.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use std::collections::HashMap;

/// The multiplier of the window hash (Fibonacci hashing).
const MUL: u32 = 0x9e37_79b1;

/// One anchored literal in a hash bucket.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The anchor, as a little-endian `u32`.
    key: u32,
    /// The literal's index.
    lit: u32,
    /// The anchor's offset within the literal.
    off: u32,
}

/// The index: literals of 4 bytes or more by anchor, shorter ones in an automaton.
#[derive(Debug, Clone)]
pub(crate) struct Anchored {
    /// `64 - log2(buckets)`: a window's bucket is the top bits of its hash.
    shift: u32,
    /// A bit per anchor hash of 4 more bits than the bucket (16 bits per anchor, so
    /// that it stays in the first-level cache where the buckets would not): most
    /// windows are dismissed by it.
    filter: Box<[u64]>,
    /// Bucket `b` holds `entries[starts[b]..starts[b + 1]]`.
    starts: Box<[u32]>,
    entries: Box<[Entry]>,
    /// The literals' bytes, concatenated; literal `i` is `bytes[ends[i - 1]..ends[i]]`.
    bytes: Box<[u8]>,
    ends: Box<[u32]>,
    /// Literals shorter than 4 bytes, in a small automaton, and their indices.
    short: Option<(AhoCorasick, Box<[u32]>)>,
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
        let mut anchored: Vec<Entry> = Vec::new();
        let mut short: Vec<u32> = Vec::new();
        let mut bytes = Vec::new();
        let mut ends = Vec::with_capacity(lits.len());
        for (i, l) in lits.iter().enumerate() {
            let l = l.as_ref();
            bytes.extend_from_slice(l);
            ends.push(bytes.len() as u32);
            if l.len() < 4 {
                short.push(i as u32);
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
            anchored.push(Entry {
                key,
                lit: i as u32,
                off: off as u32,
            });
        }
        // About one bucket per anchor and 16 filter bits, at least 2^6 and 2^10.
        let bits = anchored.len().max(64).next_power_of_two().trailing_zeros();
        let shift = 64 - bits;
        let bucket = |key: u32| (u64::from(key.wrapping_mul(MUL)) << 32 >> shift) as usize;
        anchored.sort_by_key(|e| (bucket(e.key), e.lit));
        let mut filter = vec![0u64; (1usize << (bits + 4)) / 64];
        for e in &anchored {
            let f = (u64::from(e.key.wrapping_mul(MUL)) << 32 >> (shift - 4)) as usize;
            filter[f / 64] |= 1 << (f % 64);
        }
        let mut starts = vec![0u32; (1usize << bits) + 1];
        for e in &anchored {
            starts[bucket(e.key) + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        let short = if short.is_empty() {
            None
        } else {
            let pats: Vec<&[u8]> = short.iter().map(|i| lits[*i as usize].as_ref()).collect();
            let ac = AhoCorasickBuilder::new()
                .match_kind(MatchKind::Standard)
                .prefilter(false)
                .kind(Some(AhoCorasickKind::DFA))
                .build(pats)
                .map_err(|e| e.to_string())?;
            Some((ac, short.into_boxed_slice()))
        };
        Ok(Anchored {
            shift,
            filter: filter.into_boxed_slice(),
            starts: starts.into_boxed_slice(),
            entries: anchored.into_boxed_slice(),
            bytes: bytes.into_boxed_slice(),
            ends: ends.into_boxed_slice(),
            short,
        })
    }

    fn lit(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    /// Calls `hit` with the index of every literal that occurs in `hay` (some more than
    /// once).
    pub(crate) fn scan(&self, hay: &[u8], hit: &mut impl FnMut(u32)) {
        if let Some((ac, idx)) = &self.short {
            let input = aho_corasick::Input::new(hay);
            let mut state = aho_corasick::automaton::OverlappingState::start();
            loop {
                ac.find_overlapping(input.clone(), &mut state);
                let Some(m) = state.get_match() else { break };
                hit(idx[m.pattern().as_usize()]);
            }
        }
        if hay.len() < 4 {
            return;
        }
        let mut w = window(hay);
        for pos in 0..=hay.len() - 4 {
            if pos > 0 {
                w = (w >> 8) | (u32::from(hay[pos + 3]) << 24);
            }
            let f = (u64::from(w.wrapping_mul(MUL)) << 32 >> (self.shift - 4)) as usize;
            if self.filter[f / 64] & (1 << (f % 64)) == 0 {
                continue;
            }
            let b = f >> 4;
            let (s, e) = (self.starts[b] as usize, self.starts[b + 1] as usize);
            for en in self.entries.get(s..e).unwrap_or_default() {
                if en.key != w {
                    continue;
                }
                let Some(start) = pos.checked_sub(en.off as usize) else {
                    continue;
                };
                let lit = self.lit(en.lit as usize);
                if hay.get(start..start + lit.len()) == Some(lit) {
                    hit(en.lit);
                }
            }
        }
    }

    /// The heap bytes the index holds (not counting the short literals' automaton).
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        self.starts.len() * 4
            + self.filter.len() * 8
            + self.entries.len() * std::mem::size_of::<Entry>()
            + self.bytes.len()
            + self.ends.len() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

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
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
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
}
