//! The verdict cache: what a file was found to be, keyed by what identifies its content
//! without reading it (device, inode, modification and change times in nanoseconds,
//! size) and by the values of the external variables it was scanned with (a rule may
//! test `filename` or `owner`, so a hard link under another name is another key).
//! Bounded: a CLOCK (second-chance) replacement over a fixed number of entries, so a
//! hit costs a hash lookup and setting a bit, and a miss evicts an entry not used since
//! the hand last passed it.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// What identifies a file's content and the variables it was scanned with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheKey {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status change time (chmod, chown, rename, writes), nanoseconds since the epoch.
    pub ctime_ns: i128,
    /// Size in bytes.
    pub size: u64,
    /// A hash of the external variables' values.
    pub externals: u64,
}

impl CacheKey {
    /// The key of a file from its metadata and the external values it is scanned with.
    pub fn new(meta: &std::fs::Metadata, externals: &[&str]) -> CacheKey {
        use std::os::unix::fs::MetadataExt;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        externals.hash(&mut h);
        CacheKey {
            dev: meta.dev(),
            ino: meta.ino(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            size: meta.size(),
            externals: h.finish(),
        }
    }
}

impl Hash for CacheKey {
    /// The fields folded into one word first (multiply and rotate), then given to the
    /// map's keyed hasher once: a lookup costs one short hash, not six (measured in the
    /// agent, where every exec looks its program up: 585 instructions down to about
    /// 150), and the map's random key still keeps bucket choice out of a file's hands.
    fn hash<H: Hasher>(&self, state: &mut H) {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut h: u64 = 0;
        for w in [
            self.dev,
            self.ino,
            self.mtime_ns as u64,
            (self.mtime_ns >> 64) as u64,
            self.ctime_ns as u64,
            (self.ctime_ns >> 64) as u64,
            self.size,
            self.externals,
        ] {
            h = (h.rotate_left(23) ^ w).wrapping_mul(K);
        }
        state.write_u64(h);
    }
}

struct Slot<V> {
    key: CacheKey,
    value: V,
    referenced: bool,
}

/// A bounded map from [`CacheKey`] to a verdict `V` with CLOCK replacement.
pub struct VerdictCache<V> {
    index: HashMap<CacheKey, usize>,
    slots: Vec<Slot<V>>,
    hand: usize,
    capacity: usize,
    hits: u64,
    misses: u64,
}

impl<V> std::fmt::Debug for VerdictCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerdictCache")
            .field("len", &self.slots.len())
            .field("capacity", &self.capacity)
            .field("hits", &self.hits)
            .field("misses", &self.misses)
            .finish()
    }
}

impl<V: Clone> VerdictCache<V> {
    /// A cache of at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> VerdictCache<V> {
        let capacity = capacity.max(1);
        VerdictCache {
            index: HashMap::with_capacity(capacity.min(1 << 16)),
            slots: Vec::new(),
            hand: 0,
            capacity,
            hits: 0,
            misses: 0,
        }
    }

    /// The verdict for `key`, if cached (and marks it used).
    pub fn get(&mut self, key: &CacheKey) -> Option<V> {
        match self.index.get(key) {
            Some(&i) => {
                self.hits += 1;
                let slot = &mut self.slots[i];
                slot.referenced = true;
                Some(slot.value.clone())
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Stores the verdict for `key`, evicting an entry when full.
    pub fn insert(&mut self, key: CacheKey, value: V) {
        if let Some(&i) = self.index.get(&key) {
            self.slots[i].value = value;
            self.slots[i].referenced = true;
            return;
        }
        if self.slots.len() < self.capacity {
            self.index.insert(key, self.slots.len());
            self.slots.push(Slot {
                key,
                value,
                referenced: false,
            });
            return;
        }
        // Second chance: clear referenced bits until an unreferenced slot comes by.
        loop {
            let slot = &mut self.slots[self.hand];
            if slot.referenced {
                slot.referenced = false;
                self.hand = (self.hand + 1) % self.capacity;
                continue;
            }
            self.index.remove(&slot.key);
            self.index.insert(key, self.hand);
            *slot = Slot {
                key,
                value,
                referenced: false,
            };
            self.hand = (self.hand + 1) % self.capacity;
            return;
        }
    }

    /// Forgets everything (a new rule set makes every verdict stale).
    pub fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.hand = 0;
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

/// A cache shared between scanning threads.
pub type SharedCache<V> = Arc<std::sync::Mutex<VerdictCache<V>>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn key(ino: u64) -> CacheKey {
        CacheKey {
            dev: 1,
            ino,
            mtime_ns: 5,
            ctime_ns: 5,
            size: 10,
            externals: 0,
        }
    }

    #[test]
    fn hit_after_insert_and_miss_before() {
        let mut c = VerdictCache::new(4);
        assert_eq!(c.get(&key(1)), None);
        c.insert(key(1), vec!["r1".to_string()]);
        assert_eq!(c.get(&key(1)), Some(vec!["r1".to_string()]));
        assert_eq!(c.stats(), (1, 1));
    }

    #[test]
    fn a_changed_file_misses() {
        let dir = std::env::temp_dir().join(format!("vigil-yara-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("f");
        std::fs::write(&path, b"one").expect("write");
        let k1 = CacheKey::new(&std::fs::symlink_metadata(&path).expect("stat"), &["f"]);
        let mut c = VerdictCache::new(8);
        c.insert(k1, "clean");
        // Unchanged: the same key, a hit.
        let again = CacheKey::new(&std::fs::symlink_metadata(&path).expect("stat"), &["f"]);
        assert_eq!(c.get(&again), Some("clean"));
        // Rewritten (another size, a later mtime): a miss.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b" two"))
            .expect("append");
        let k2 = CacheKey::new(&std::fs::symlink_metadata(&path).expect("stat"), &["f"]);
        assert_ne!(k1, k2);
        assert_eq!(c.get(&k2), None);
        // The same content under other external values (another name): a miss.
        let k3 = CacheKey::new(&std::fs::symlink_metadata(&path).expect("stat"), &["g"]);
        assert_ne!(k2, k3);
        // Same size, same mtime set back, but chmod: ctime moves, a miss.
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        c.insert(k2, "clean");
        let mut perms = meta.permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::set_permissions(&path, perms).expect("chmod");
        let k4 = CacheKey::new(&std::fs::symlink_metadata(&path).expect("stat"), &["f"]);
        assert_eq!(k4.mtime_ns, k2.mtime_ns);
        assert_ne!(k4.ctime_ns, k2.ctime_ns);
        assert_eq!(c.get(&k4), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bounded_and_a_used_entry_gets_a_second_chance() {
        let mut c = VerdictCache::new(3);
        for i in 0..3 {
            c.insert(key(i), i);
        }
        assert_eq!(c.len(), 3);
        // Entry 0 is used; inserting a fourth evicts the first unreferenced one: 1.
        assert_eq!(c.get(&key(0)), Some(0));
        c.insert(key(3), 3);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&key(1)), None);
        assert_eq!(c.get(&key(0)), Some(0));
        assert_eq!(c.get(&key(3)), Some(3));
        // Many more: never more than the bound.
        for i in 10..1000 {
            c.insert(key(i), i);
            assert!(c.len() <= 3);
        }
        assert_eq!(c.get(&key(999)), Some(999));
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.get(&key(999)), None);
    }
}
