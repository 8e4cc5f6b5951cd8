//! SHA-256 of executables, computed in user space, cached by device, inode and mtime so
//! a busy binary is hashed once.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;

/// Files larger than this are not hashed (the event says so by carrying no hash).
pub const MAX_HASH_BYTES: u64 = 256 * 1024 * 1024;

/// Identity of one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    /// Device number, in user-space (`st_dev`) encoding.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Modification time, seconds.
    pub mtime_sec: u64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: u32,
}

/// Converts a kernel `s_dev` (major << 20 | minor) to the user-space `st_dev` encoding.
pub fn user_dev(kernel_dev: u32) -> u64 {
    let major = u64::from(kernel_dev >> 20);
    let minor = u64::from(kernel_dev & 0xf_ffff);
    ((major & 0xffff_f000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0xff)
}

/// The cache, bounded in entries.
#[derive(Debug)]
pub struct HashCache {
    map: HashMap<FileKey, Option<String>>,
    max_entries: usize,
    /// Files hashed (cache misses).
    pub computed: u64,
}

impl HashCache {
    /// A cache of at most `max_entries` files.
    pub fn new(max_entries: usize) -> Self {
        HashCache {
            map: HashMap::new(),
            max_entries,
            computed: 0,
        }
    }

    /// The SHA-256 (lower-case hex) of the file at one of `paths` whose identity is `key`;
    /// `None` when no such file can be read (gone, replaced, too big). `paths` is only
    /// called on a cache miss: a hit costs no path formatting.
    pub fn sha256<I, P>(&mut self, key: FileKey, paths: impl FnOnce() -> I) -> Option<String>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<str>,
    {
        if let Some(hit) = self.map.get(&key) {
            return hit.clone();
        }
        let value = paths()
            .into_iter()
            .find_map(|p| hash_if_same(p.as_ref(), &key));
        if self.map.len() >= self.max_entries {
            self.map.clear();
        }
        self.computed += 1;
        self.map.insert(key, value.clone());
        value
    }
}

fn hash_if_same(path: &str, key: &FileKey) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    if meta.ino() != key.ino || meta.dev() != key.dev || meta.len() > MAX_HASH_BYTES {
        return None;
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Some(
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_encoding_matches_stat() {
        // 8:1 (sda1) in the kernel's encoding, and 259:3 (nvme) with a large minor.
        assert_eq!(user_dev((8 << 20) | 1), 0x801);
        assert_eq!(user_dev((259 << 20) | 3), (259 << 8) | 3);
        assert_eq!(
            user_dev((1 << 20) | 0x1234),
            ((0x12 << 12) << 8) | (1 << 8) | 0x34
        );
    }

    #[test]
    fn hashes_once_per_identity() {
        let path = std::env::temp_dir().join(format!("vigil-hash-{}", std::process::id()));
        std::fs::write(&path, b"abc").expect("write");
        let m = std::fs::metadata(&path).expect("stat");
        let key = FileKey {
            dev: m.dev(),
            ino: m.ino(),
            mtime_sec: 0,
            mtime_nsec: 0,
        };
        let p = path.to_string_lossy().into_owned();
        let mut c = HashCache::new(8);
        let h = c.sha256(key, || [p.as_str()]).expect("hash");
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(c.sha256(key, || [p.as_str()]), Some(h));
        assert_eq!(c.computed, 1);
        let other = FileKey {
            ino: key.ino + 1,
            ..key
        };
        assert_eq!(
            c.sha256(other, || [p.as_str()]),
            None,
            "a different inode is not this file"
        );
        let _ = std::fs::remove_file(path);
    }
}
