//! A fast, non-cryptographic hasher for the engine's lookup tables (literal values,
//! EventIDs, channels). Their keys come from the rules; events only look them up, so no
//! event can lengthen a probe sequence, and SipHash's protection is not needed.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// A `HashMap` hashed with [`FxBuild`].
pub(crate) type FxMap<K, V> = HashMap<K, V, FxBuild>;

/// Builds [`Fx`] hashers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FxBuild;

impl BuildHasher for FxBuild {
    type Hasher = Fx;
    fn build_hasher(&self) -> Fx {
        Fx(0)
    }
}

/// Multiply-rotate hashing, eight bytes at a time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fx(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl Fx {
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
    }
}

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        // Fold the high bits down: hashbrown takes its bucket index from the low bits.
        self.0 ^ (self.0 >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_hash_alike_and_lookups_work() {
        let mut m: FxMap<Box<str>, u32> = FxMap::default();
        for (i, k) in ["", "a", "abcdefgh", "abcdefghi", "cmd.exe", "CMD.EXE"]
            .iter()
            .enumerate()
        {
            m.insert((*k).into(), i as u32);
        }
        assert_eq!(m.get("abcdefghi"), Some(&3));
        assert_eq!(m.get("CMD.EXE"), Some(&5));
        assert_eq!(m.get("abcdefg"), None);
        let mut n: FxMap<i64, u32> = FxMap::default();
        n.insert(4688, 1);
        n.insert(-1, 2);
        assert_eq!(
            (n.get(&4688), n.get(&-1), n.get(&0)),
            (Some(&1), Some(&2), None)
        );
    }
}
