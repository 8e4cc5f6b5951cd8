//! Scanning one file: looked at with `lstat` first (special files are never opened, a
//! symlink is not followed), opened without following links and without blocking,
//! checked to be the file that was looked at, read whole (no memory map: a file
//! truncated under a map would kill the process), checked not to have changed while it
//! was read, then matched with the external variables set for it and a timeout.

use crate::cache::{CacheKey, VerdictCache};
use crate::externals::{extension, file_type, Owners, EXTERNALS};
use crate::rules::RuleSet;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How files are scanned.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    /// Files larger than this are skipped.
    pub max_size: u64,
    /// A file whose scan takes longer is reported as timed out.
    pub timeout: Duration,
    /// External variables fixed to a value for every file (`-d name=value`).
    pub fixed: Vec<(String, String)>,
    /// A read buffer larger than this is given back after its file, so one huge file
    /// does not keep its size in memory per thread. A caller scanning the largest files
    /// first keeps it (no file after needs more): every later file is read without
    /// allocating or faulting in fresh pages.
    pub keep_buffer: usize,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            max_size: 256 << 20,
            timeout: Duration::from_secs(60),
            fixed: Vec::new(),
            keep_buffer: 64 << 20,
        }
    }
}

/// Why a file was not scanned (or its scan not trusted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// A FIFO, socket or device: never opened.
    Special(&'static str),
    /// A symbolic link (not followed).
    Symlink,
    /// On a pseudo filesystem (/proc, /sys and the like), whose files are not content.
    PseudoFs(&'static str),
    /// Larger than the size bound.
    TooLarge(u64),
    /// Gone between listing and reading.
    Vanished,
    /// Replaced, grown or shrunk while it was being opened or read.
    Changed(&'static str),
    /// Could not be listed, opened or read.
    Unreadable(String),
    /// The rules took longer than the timeout on it.
    Timeout,
    /// The engine failed on it.
    Error(String),
}

impl Skip {
    /// The reason as a short fixed name, for counting.
    pub fn kind(&self) -> &'static str {
        match self {
            Skip::Special(_) => "special file",
            Skip::Symlink => "symlink",
            Skip::PseudoFs(_) => "pseudo filesystem",
            Skip::TooLarge(_) => "too large",
            Skip::Vanished => "vanished",
            Skip::Changed(_) => "changed while scanned",
            Skip::Unreadable(_) => "unreadable",
            Skip::Timeout => "timeout",
            Skip::Error(_) => "scan error",
        }
    }
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::Special(what) => write!(f, "special file ({what}), not opened"),
            Skip::Symlink => write!(f, "symlink, not followed"),
            Skip::PseudoFs(fs) => write!(f, "on {fs}, not scanned"),
            Skip::TooLarge(n) => write!(f, "too large ({n} bytes)"),
            Skip::Vanished => write!(f, "vanished before it was read"),
            Skip::Changed(how) => write!(f, "changed while scanned ({how})"),
            Skip::Unreadable(e) => write!(f, "unreadable: {e}"),
            Skip::Timeout => write!(f, "timeout: the rules took too long on it"),
            Skip::Error(e) => write!(f, "scan error: {e}"),
        }
    }
}

/// A rule that matched a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleHit {
    /// The rule's namespace (`f<index of its file>`).
    pub namespace: String,
    /// The rule's name.
    pub identifier: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its metadata, values as text.
    pub metadata: Vec<(String, String)>,
}

/// What a file was found to be: the rules it matched (none: clean) and, when it matched
/// any, the SHA-256 of the content they matched.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// Matching rules.
    pub hits: Vec<RuleHit>,
    /// Lower-case hex SHA-256 of the content, when something matched.
    pub sha256: Option<String>,
}

/// A scanned file, or why not.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Scanned (or found in the cache).
    Scanned {
        /// What it is.
        verdict: Arc<Verdict>,
        /// Its metadata (`lstat`).
        meta: std::fs::Metadata,
        /// Whether the verdict came from the cache.
        cached: bool,
    },
    /// Not scanned.
    Skipped(Skip),
}

/// The shared verdict cache type.
pub type Cache = Mutex<VerdictCache<Arc<Verdict>>>;

/// Filesystem magic numbers of pseudo filesystems, whose files are not content (reads
/// of some block, like /proc/kmsg, or have side effects).
const PSEUDO_FS: [(i64, &str); 10] = [
    (0x9fa0, "procfs"),
    (0x6265_6572, "sysfs"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0x7363_6673, "securityfs"),
    (0x6367_7270, "cgroup2"),
    (0x0027_e0eb, "cgroup"),
    (0xcafe_4a11, "bpf"),
    (0x6263_6d73, "configfs"),
    (0xde5e_81e4, "efivarfs"),
];

/// The pseudo filesystem an open file or directory is on, if any.
pub fn pseudo_fs<Fd: std::os::fd::AsFd>(fd: Fd) -> Option<&'static str> {
    let st = nix::sys::statfs::fstatfs(fd).ok()?;
    #[allow(clippy::useless_conversion)]
    let magic = i64::from(st.filesystem_type().0);
    PSEUDO_FS.iter().find(|(m, _)| *m == magic).map(|(_, n)| *n)
}

/// The kind of a special file, if it is one.
pub fn special_kind(ft: &std::fs::FileType) -> Option<&'static str> {
    if ft.is_fifo() {
        Some("FIFO")
    } else if ft.is_socket() {
        Some("socket")
    } else if ft.is_char_device() {
        Some("character device")
    } else if ft.is_block_device() {
        Some("block device")
    } else {
        None
    }
}

/// The skip reason of an I/O error: gone, became a symlink, or unreadable.
pub fn io_skip(e: &std::io::Error) -> Skip {
    match e.kind() {
        std::io::ErrorKind::NotFound => Skip::Vanished,
        _ if e.raw_os_error() == Some(nix::libc::ELOOP) => Skip::Changed("became a symlink"),
        _ => Skip::Unreadable(e.to_string()),
    }
}

fn same_content(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.size() == b.size()
        && a.mtime() == b.mtime()
        && a.mtime_nsec() == b.mtime_nsec()
        && a.ctime() == b.ctime()
        && a.ctime_nsec() == b.ctime_nsec()
}

/// One thread's scanner: a `yara_x::Scanner`, a read buffer, the configuration.
pub struct FileScanner<'r> {
    scanner: yara_x::Scanner<'r>,
    config: &'r ScanConfig,
    owners: &'r Owners,
    cache: Option<&'r Cache>,
    buf: Vec<u8>,
}

impl<'r> FileScanner<'r> {
    /// A scanner for `set`; `cache`, when given, is consulted before reading a file and
    /// filled after.
    pub fn new(
        set: &'r RuleSet,
        config: &'r ScanConfig,
        owners: &'r Owners,
        cache: Option<&'r Cache>,
    ) -> FileScanner<'r> {
        let mut scanner = yara_x::Scanner::new(set.rules());
        scanner.set_timeout(config.timeout);
        // Only which rules match is reported, never each occurrence of a pattern: the
        // scanner may stop looking for a pattern once it has found it.
        scanner.fast_scan(true);
        for (name, value) in &config.fixed {
            // Fixed values are validated by the caller against EXTERNALS.
            let _ = scanner.set_global(name, value.as_str());
        }
        FileScanner {
            scanner,
            config,
            owners,
            cache,
            buf: Vec::new(),
        }
    }

    fn fixed(&self, name: &str) -> bool {
        self.config.fixed.iter().any(|(n, _)| n == name)
    }

    /// Scans the file at `path`; `lstat` is its metadata when the caller already has it
    /// (from listing its directory).
    pub fn scan_path(&mut self, path: &Path, lstat: Option<std::fs::Metadata>) -> Outcome {
        match self.scan_inner(path, lstat) {
            Ok(o) => o,
            Err(skip) => Outcome::Skipped(skip),
        }
    }

    fn scan_inner(
        &mut self,
        path: &Path,
        lstat: Option<std::fs::Metadata>,
    ) -> Result<Outcome, Skip> {
        let meta = match lstat {
            Some(m) => m,
            None => std::fs::symlink_metadata(path).map_err(|e| io_skip(&e))?,
        };
        let ft = meta.file_type();
        if ft.is_symlink() {
            return Err(Skip::Symlink);
        }
        if let Some(kind) = special_kind(&ft) {
            return Err(Skip::Special(kind));
        }
        if !ft.is_file() {
            return Err(Skip::Unreadable("not a regular file".into()));
        }
        if meta.size() > self.config.max_size {
            return Err(Skip::TooLarge(meta.size()));
        }
        // No blocking (a FIFO put in its place), no following a link put in its place,
        // no controlling terminal taken.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOFOLLOW | nix::libc::O_NOCTTY)
            .open(path)
            .map_err(|e| io_skip(&e))?;
        let fmeta = file.metadata().map_err(|e| io_skip(&e))?;
        if !fmeta.file_type().is_file() || fmeta.dev() != meta.dev() || fmeta.ino() != meta.ino() {
            return Err(Skip::Changed("replaced before it was opened"));
        }
        if !same_content(&meta, &fmeta) {
            return Err(Skip::Changed("written to since it was listed"));
        }
        self.scan_opened(&file, fmeta, path)
    }

    /// Scans the executable process `pid` runs, through `/proc/PID/exe`: the program
    /// even when no path names it any more (deleted after its exec, or a `memfd`: a
    /// fileless payload). `name` is the path the process was started from (the
    /// external variables' file name and path). A process gone is [`Skip::Vanished`].
    pub fn scan_process_exe(&mut self, pid: i32, name: &Path) -> Outcome {
        let mut run = || -> Result<Outcome, Skip> {
            // The kernel's link to the open executable, followed on purpose; no blocking,
            // no controlling terminal taken.
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
                .open(format!("/proc/{pid}/exe"))
                .map_err(|e| io_skip(&e))?;
            let fmeta = file.metadata().map_err(|e| io_skip(&e))?;
            if !fmeta.file_type().is_file() {
                return Err(Skip::Unreadable("not a regular file".into()));
            }
            self.scan_opened(&file, fmeta, name)
        };
        run().unwrap_or_else(Outcome::Skipped)
    }

    /// The part of a scan after the file is open and known to be the one asked for:
    /// not on a pseudo filesystem, within the size bound, not judged already, read whole
    /// and unchanged while read, matched.
    fn scan_opened(
        &mut self,
        file: &std::fs::File,
        fmeta: std::fs::Metadata,
        path: &Path,
    ) -> Result<Outcome, Skip> {
        if let Some(fs) = pseudo_fs(file) {
            return Err(Skip::PseudoFs(fs));
        }
        if fmeta.size() > self.config.max_size {
            return Err(Skip::TooLarge(fmeta.size()));
        }
        let (key, [filename, filepath, ext, owner]) = key_of(path, &fmeta, self.owners);
        if let Some(cache) = self.cache {
            let hit = cache.lock().ok().and_then(|mut c| c.get(&key));
            if let Some(verdict) = hit {
                return Ok(Outcome::Scanned {
                    verdict,
                    meta: fmeta,
                    cached: true,
                });
            }
        }
        self.buf.clear();
        // Room for the whole file at once: growing by doubling would copy a large file
        // several times over.
        self.buf.reserve_exact(
            usize::try_from(fmeta.size())
                .unwrap_or(usize::MAX)
                .saturating_add(1),
        );
        // One byte more than the size: a file that grew is noticed.
        file.take(fmeta.size() + 1)
            .read_to_end(&mut self.buf)
            .map_err(|e| io_skip(&e))?;
        let after = file.metadata().map_err(|e| io_skip(&e))?;
        if self.buf.len() as u64 != fmeta.size() || !same_content(&fmeta, &after) {
            return Err(Skip::Changed("written to while read"));
        }
        let ftype = file_type(&self.buf[..self.buf.len().min(512)]);
        for (name, value) in EXTERNALS.iter().zip([
            filename.as_str(),
            filepath.as_str(),
            ext.as_str(),
            ftype,
            owner.as_str(),
        ]) {
            if !self.fixed(name) {
                // Every name in EXTERNALS is declared as a string when the set compiles.
                let _ = self.scanner.set_global(name, value);
            }
        }
        let verdict = match self.scanner.scan(&self.buf) {
            Ok(results) => {
                let hits: Vec<RuleHit> = results
                    .matching_rules()
                    .map(|r| RuleHit {
                        namespace: r.namespace().to_string(),
                        identifier: r.identifier().to_string(),
                        tags: r.tags().map(|t| t.identifier().to_string()).collect(),
                        metadata: r
                            .metadata()
                            .map(|(k, v)| (k.to_string(), meta_text(&v)))
                            .collect(),
                    })
                    .collect();
                let sha256 = (!hits.is_empty()).then(|| sha256_hex(&self.buf));
                Verdict { hits, sha256 }
            }
            Err(yara_x::ScanError::Timeout) => {
                self.release();
                return Err(Skip::Timeout);
            }
            Err(e) => {
                self.release();
                return Err(Skip::Error(e.to_string()));
            }
        };
        self.release();
        let verdict = Arc::new(verdict);
        if let Some(cache) = self.cache {
            if let Ok(mut c) = cache.lock() {
                c.insert(key, Arc::clone(&verdict));
            }
        }
        Ok(Outcome::Scanned {
            verdict,
            meta: fmeta,
            cached: false,
        })
    }

    fn release(&mut self) {
        if self.buf.capacity() > self.config.keep_buffer {
            self.buf = Vec::new();
        }
    }
}

/// The per-file external values a cache key is made from (`filename`, `filepath`,
/// `extension`, `owner`), borrowed where they can be.
fn key_values<'a>(
    path: &'a Path,
    meta: &std::fs::Metadata,
    owners: &'a Owners,
) -> [std::borrow::Cow<'a, str>; 4] {
    [
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        path.to_string_lossy(),
        std::borrow::Cow::Owned(extension(path)),
        owners.name(meta.uid()),
    ]
}

/// The cache key of the file at `path` with metadata `meta`, and the per-file external
/// values it is keyed by (`filename`, `filepath`, `extension`, `owner`): what a caller
/// checking the cache before asking for a scan computes, as the scanner does.
pub fn key_of(path: &Path, meta: &std::fs::Metadata, owners: &Owners) -> (CacheKey, [String; 4]) {
    let values = key_values(path, meta, owners);
    let key = CacheKey::new(meta, &values.each_ref().map(|v| v.as_ref()));
    (key, values.map(std::borrow::Cow::into_owned))
}

/// [`key_of`] without the values (the same key): for a caller on a hot path that only
/// looks the verdict up, so nothing is copied but the lower-cased extension.
pub fn cache_key(path: &Path, meta: &std::fs::Metadata, owners: &Owners) -> CacheKey {
    let values = key_values(path, meta, owners);
    CacheKey::new(meta, &values.each_ref().map(|v| v.as_ref()))
}

fn meta_text(v: &yara_x::MetaValue<'_>) -> String {
    match v {
        yara_x::MetaValue::Integer(i) => i.to_string(),
        yara_x::MetaValue::Float(f) => f.to_string(),
        yara_x::MetaValue::Bool(b) => b.to_string(),
        yara_x::MetaValue::String(s) => (*s).to_string(),
        yara_x::MetaValue::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(data);
    let mut s = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write;
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hot_path_key_is_the_scanners_key() {
        let dir = std::env::temp_dir().join(format!("vigil-yara-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("Payload.BIN");
        std::fs::write(&path, b"content").expect("write");
        let meta = std::fs::symlink_metadata(&path).expect("lstat");
        let owners = Owners::from_passwd("root:x:0:0::/root:/bin/sh\n");
        let (key, values) = key_of(&path, &meta, &owners);
        assert_eq!(cache_key(&path, &meta, &owners), key);
        assert_eq!(values[2], ".bin");
        // Another name for the same content is another key (a rule may test it).
        let other = dir.join("payload.exe");
        std::fs::hard_link(&path, &other).expect("link");
        let (m1, m2) = (
            std::fs::symlink_metadata(&path).expect("lstat"),
            std::fs::symlink_metadata(&other).expect("lstat"),
        );
        assert_ne!(
            cache_key(&other, &m2, &owners),
            cache_key(&path, &m1, &owners)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
