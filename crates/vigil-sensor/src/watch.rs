//! The watch list (`sensor.watched_reads`): the files whose read-only opens the sensor
//! reports.
//!
//! Read-only opens are by far the most frequent file events (every program reads its
//! libraries, locale and configuration), so the kernel side drops them, except those of
//! the files on this list: credential stores, private keys, other processes' memory.
//!
//! A pattern is an absolute path (`/etc/shadow`), or `*/` followed by a path that may
//! start at any depth (`*/.ssh/id_*`: an `.ssh` directory anywhere, at least one level
//! down). Each component is literal, or holds one `*` that stands for any characters but
//! `/` (`id_*`, `ssh_host_*_key`, `*` alone for any one component). The file name (the
//! last component) may not be a bare `*`.
//!
//! The kernel side checks each open against the list cheaply and with a bound: first the
//! name's first byte and length against a table of the pairs some pattern takes (one
//! load: most opens stop there), then the opened file's name (its first 16 and last 8
//! bytes, and its length) and its parent directory's name, as masked word compares, for
//! at most [`WATCH_MAX`] patterns; it walks the path of a file that passes only. User space then matches the whole path
//! ([`WatchList::matches`]) and drops what the kernel's check let through by its name
//! alone.

use crate::abi::{Watch, WatchRule, WATCH_MAX};
use std::mem::{offset_of, size_of};

/// The default list (`SensorConfig::default().watched_reads`): credential stores, private
/// keys, other processes' memory.
pub const DEFAULT_WATCHED_READS: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/security/opasswd",
    "*/.ssh/id_*",
    "/etc/ssh/ssh_host_*_key",
    "/proc/*/mem",
    "/proc/*/task/*/mem",
];

/// A watch list that cannot be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// A pattern the kernel side cannot check.
    #[error("`{}`: {reason}", pattern.escape_debug())]
    Pattern {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// More patterns than the kernel side checks.
    #[error("{0} patterns; the kernel side checks {WATCH_MAX} at most")]
    TooMany(usize),
}

/// One component of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Exactly this name.
    Literal(String),
    /// A name that starts with `prefix` and ends with `suffix` (both may be empty: any).
    Glob { prefix: String, suffix: String },
}

impl Part {
    fn parse(text: &str) -> Result<Part, &'static str> {
        match text {
            "" => Err("an empty path component (`//`, or a trailing `/`)"),
            "." | ".." => Err("a `.` or `..` component (the sensor reports resolved paths)"),
            _ => match text.split_once('*') {
                None => Ok(Part::Literal(text.to_string())),
                Some((_, rest)) if rest.contains('*') => Err("more than one `*` in a component"),
                Some((prefix, suffix)) => Ok(Part::Glob {
                    prefix: prefix.to_string(),
                    suffix: suffix.to_string(),
                }),
            },
        }
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Part::Literal(l) => name == l,
            Part::Glob { prefix, suffix } => {
                name.len() >= prefix.len() + suffix.len()
                    && name.starts_with(prefix.as_str())
                    && name.ends_with(suffix.as_str())
            }
        }
    }
}

/// One pattern of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// `*/...`: the rest may start at any depth (one directory down at least).
    anywhere: bool,
    /// The components, root first; the last is the file name.
    parts: Vec<Part>,
}

impl Pattern {
    fn parse(text: &str) -> Result<Pattern, &'static str> {
        if text.contains('\0') {
            return Err("a NUL character");
        }
        let (anywhere, rest) = if let Some(rest) = text.strip_prefix("*/") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix('/') {
            (false, rest)
        } else {
            return Err("neither an absolute path nor `*/` and a path");
        };
        let parts = rest
            .split('/')
            .map(Part::parse)
            .collect::<Result<Vec<_>, _>>()?;
        match parts.last() {
            Some(Part::Glob { prefix, suffix }) if prefix.is_empty() && suffix.is_empty() => {
                Err("the file name is a bare `*` (it would check every open in the kernel)")
            }
            _ => Ok(Pattern { anywhere, parts }),
        }
    }

    fn matches(&self, path: &str) -> bool {
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let n = self.parts.len();
        let fits = if self.anywhere {
            comps.len() > n
        } else {
            comps.len() == n
        };
        fits && comps[comps.len() - n..]
            .iter()
            .zip(&self.parts)
            .all(|(c, p)| p.matches(c))
    }

    /// The (first byte, length) pairs of file names this pattern may take, as bits of
    /// the kernel's `first_len` table (length 63 stands for 63 and longer).
    fn first_len(&self, table: &mut [u64; 256]) {
        let (first, lens): (Option<u8>, u64) = match self.parts.last() {
            Some(Part::Literal(name)) => {
                (name.as_bytes().first().copied(), 1u64 << name.len().min(63))
            }
            Some(Part::Glob { prefix, suffix }) => {
                let min = (prefix.len() + suffix.len()).min(63);
                (prefix.as_bytes().first().copied(), u64::MAX << min)
            }
            None => (None, 0),
        };
        match first {
            Some(b) => table[usize::from(b)] |= lens,
            None => table.iter_mut().for_each(|t| *t |= lens),
        }
    }

    /// The kernel side's check: the file name and, when it is a short literal, the
    /// parent directory's name.
    fn rule(&self) -> WatchRule {
        let mut rule = WatchRule {
            prefix: [0; 2],
            prefix_mask: [0; 2],
            suffix: 0,
            suffix_mask: 0,
            min_len: 0,
            max_len: u32::MAX,
            parent: [0; 2],
            parent_mask: [0; 2],
        };
        let Some(leaf) = self.parts.last() else {
            return rule;
        };
        let (prefix, suffix) = match leaf {
            Part::Literal(name) => {
                let len = u32::try_from(name.len()).unwrap_or(u32::MAX);
                rule.min_len = len;
                rule.max_len = len;
                // The NUL too, when it is within the 16 bytes: an exact name. A longer
                // one is checked by its last 8 bytes too.
                let tail = if name.len() >= 16 { name.as_str() } else { "" };
                (format!("{name}\0"), tail)
            }
            Part::Glob { prefix, suffix } => {
                rule.min_len = u32::try_from(prefix.len() + suffix.len()).unwrap_or(u32::MAX);
                (prefix.clone(), suffix.as_str())
            }
        };
        (rule.prefix, rule.prefix_mask) = words16(prefix.as_bytes());
        let tail = &suffix.as_bytes()[suffix.len().saturating_sub(8)..];
        let mut value = [0u8; 8];
        let mut mask = [0u8; 8];
        value[8 - tail.len()..].copy_from_slice(tail);
        mask[8 - tail.len()..].fill(0xff);
        rule.suffix = u64::from_ne_bytes(value);
        rule.suffix_mask = u64::from_ne_bytes(mask);
        let parent = match self.parts.len() {
            // Directly under the root, whose directory entry is named `/`.
            1 if !self.anywhere => Some("/"),
            1 => None,
            n => match &self.parts[n - 2] {
                Part::Literal(p) if p.len() < 16 => Some(p.as_str()),
                _ => None,
            },
        };
        if let Some(p) = parent {
            (rule.parent, rule.parent_mask) = words16(format!("{p}\0").as_bytes());
        }
        rule
    }
}

/// The first 16 bytes of `bytes` as two words, and the mask of the bytes given.
fn words16(bytes: &[u8]) -> ([u64; 2], [u64; 2]) {
    let mut value = [0u8; 16];
    let mut mask = [0u8; 16];
    let n = bytes.len().min(16);
    value[..n].copy_from_slice(&bytes[..n]);
    mask[..n].fill(0xff);
    let word = |b: &[u8; 16], i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[8 * i..8 * i + 8]);
        u64::from_ne_bytes(w)
    };
    (
        [word(&value, 0), word(&value, 1)],
        [word(&mask, 0), word(&mask, 1)],
    )
}

/// The watch list, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchList {
    patterns: Vec<Pattern>,
}

impl WatchList {
    /// Parses `sensor.watched_reads`: at most [`WATCH_MAX`] patterns.
    pub fn parse(patterns: &[String]) -> Result<WatchList, WatchError> {
        if patterns.len() > WATCH_MAX {
            return Err(WatchError::TooMany(patterns.len()));
        }
        let patterns = patterns
            .iter()
            .map(|p| {
                Pattern::parse(p).map_err(|reason| WatchError::Pattern {
                    pattern: p.clone(),
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(WatchList { patterns })
    }

    /// The kernel's first check: which (first byte, length) pairs any pattern takes.
    fn first_len(&self) -> [u64; 256] {
        let mut table = [0u64; 256];
        for p in &self.patterns {
            p.first_len(&mut table);
        }
        table
    }

    /// Whether `path` (absolute, resolved) is on the list.
    pub fn matches(&self, path: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(path))
    }

    /// The list as the kernel side reads it: `struct vigil_watch`.
    pub fn kernel_bytes(&self) -> Vec<u8> {
        let mut buf = vec![0u8; size_of::<Watch>()];
        let count = u32::try_from(self.patterns.len()).unwrap_or(0);
        buf[..4].copy_from_slice(&count.to_ne_bytes());
        for (b, bits) in self.first_len().iter().enumerate() {
            let at = offset_of!(Watch, first_len) + 8 * b;
            buf[at..at + 8].copy_from_slice(&bits.to_ne_bytes());
        }
        for (i, p) in self.patterns.iter().enumerate() {
            let r = p.rule();
            let base = offset_of!(Watch, rules) + i * size_of::<WatchRule>();
            let mut put = |off: usize, bytes: &[u8]| {
                buf[base + off..base + off + bytes.len()].copy_from_slice(bytes);
            };
            for k in 0..2 {
                put(
                    offset_of!(WatchRule, prefix) + 8 * k,
                    &r.prefix[k].to_ne_bytes(),
                );
                let m = r.prefix_mask[k].to_ne_bytes();
                put(offset_of!(WatchRule, prefix_mask) + 8 * k, &m);
                put(
                    offset_of!(WatchRule, parent) + 8 * k,
                    &r.parent[k].to_ne_bytes(),
                );
                let m = r.parent_mask[k].to_ne_bytes();
                put(offset_of!(WatchRule, parent_mask) + 8 * k, &m);
            }
            put(offset_of!(WatchRule, suffix), &r.suffix.to_ne_bytes());
            put(
                offset_of!(WatchRule, suffix_mask),
                &r.suffix_mask.to_ne_bytes(),
            );
            put(offset_of!(WatchRule, min_len), &r.min_len.to_ne_bytes());
            put(offset_of!(WatchRule, max_len), &r.max_len.to_ne_bytes());
        }
        buf
    }
}

/// The kernel side's first check, in Rust: the name's first byte and length in `table`.
#[cfg(test)]
fn first_check(table: &[u64; 256], name: &str) -> bool {
    let first = name.as_bytes().first().copied().unwrap_or(0);
    (table[usize::from(first)] >> name.len().min(63)) & 1 == 1
}

/// The kernel side's check of one pattern, done in Rust on a file's name and its
/// parent's, as the eBPF program does it: for the tests, which hold it to the whole-path
/// match (it may let more through, never less).
#[cfg(test)]
fn kernel_check(rule: &WatchRule, name: &str, parent: &str) -> bool {
    let bytes = name.as_bytes();
    let len = bytes.len();
    if (len as u64) < u64::from(rule.min_len) || (len as u64) > u64::from(rule.max_len) {
        return false;
    }
    // The kernel reads 16 bytes from the name: its NUL, then whatever follows.
    let mut first = [0xaau8; 16];
    let n = len.min(16);
    first[..n].copy_from_slice(&bytes[..n]);
    if len < 16 {
        first[len] = 0;
    }
    let (w, _) = words16(&first);
    if (w[0] & rule.prefix_mask[0]) != rule.prefix[0]
        || (w[1] & rule.prefix_mask[1]) != rule.prefix[1]
    {
        return false;
    }
    if rule.suffix_mask != 0 {
        let mut last = [0u8; 8];
        let tail = &bytes[len.saturating_sub(8)..];
        last[8 - tail.len()..].copy_from_slice(tail);
        if u64::from_ne_bytes(last) & rule.suffix_mask != rule.suffix {
            return false;
        }
    }
    if rule.parent_mask != [0, 0] {
        let mut p = [0xaau8; 16];
        let pb = parent.as_bytes();
        let n = pb.len().min(16);
        p[..n].copy_from_slice(&pb[..n]);
        if pb.len() < 16 {
            p[pb.len()] = 0;
        }
        let (w, _) = words16(&p);
        if (w[0] & rule.parent_mask[0]) != rule.parent[0]
            || (w[1] & rule.parent_mask[1]) != rule.parent[1]
        {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> WatchList {
        list(DEFAULT_WATCHED_READS)
    }

    fn list(patterns: &[&str]) -> WatchList {
        WatchList::parse(&patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>())
            .expect("patterns parse")
    }

    /// The name and parent-directory name of a path, as the kernel sees them.
    fn leaf_and_parent(path: &str) -> (&str, &str) {
        let (dir, name) = path.rsplit_once('/').expect("absolute");
        let parent = dir
            .rsplit('/')
            .next()
            .filter(|p| !p.is_empty())
            .unwrap_or("/");
        (name, parent)
    }

    #[test]
    fn the_default_list_matches_credential_files_keys_and_process_memory_only() {
        let l = defaults();
        for yes in [
            "/etc/shadow",
            "/etc/shadow-",
            "/etc/gshadow",
            "/etc/security/opasswd",
            "/root/.ssh/id_rsa",
            "/home/alice/.ssh/id_ed25519",
            "/home/alice/.ssh/id_ecdsa_sk",
            "/etc/ssh/ssh_host_ed25519_key",
            "/proc/1234/mem",
            "/proc/1234/task/1235/mem",
        ] {
            assert!(l.matches(yes), "{yes}");
        }
        for no in [
            "/etc/passwd",
            "/etc/shadowsocks",
            "/var/etc/shadow",
            "/etc/shadow/x",
            "/.ssh/id_rsa",
            "/home/alice/ssh/id_rsa",
            "/home/alice/.ssh/known_hosts",
            "/etc/ssh/ssh_host_ed25519_key.pub",
            "/etc/ssh/sshd_config",
            "/proc/1234/maps",
            "/dev/mem",
            "/proc/1234/task/mem",
        ] {
            assert!(!l.matches(no), "{no}");
        }
    }

    /// The kernel side's cheap check lets through every path the whole-path match
    /// accepts (it may let more through: user space drops those), and rejects most of
    /// what a host opens.
    #[test]
    fn the_kernel_check_lets_every_match_through_and_stops_most_other_files() {
        let l = defaults();
        let table = l.first_len();
        let kernel = |path: &str| {
            let (name, parent) = leaf_and_parent(path);
            first_check(&table, name)
                && l.patterns
                    .iter()
                    .any(|p| kernel_check(&p.rule(), name, parent))
        };
        for path in [
            "/etc/shadow",
            "/etc/gshadow-",
            "/etc/security/opasswd",
            "/home/a-very-long-user-name/.ssh/id_ed25519_sk",
            "/etc/ssh/ssh_host_ecdsa_key",
            "/proc/1/mem",
            "/proc/77/task/78/mem",
        ] {
            assert!(l.matches(path) && kernel(path), "{path}");
        }
        for path in [
            "/etc/passwd",
            "/etc/ld.so.cache",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "/etc/shadowsocks",
            "/usr/share/doc/shadow",
            "/etc/ssh/ssh_host_ed25519_key.pub",
            "/etc/ssh/ssh_config",
            "/home/alice/.ssh/known_hosts",
            "/home/alice/id_rsa",
            "/proc/1/maps",
            "/proc/meminfo",
            "/sys/fs/cgroup/memory.max",
        ] {
            assert!(!kernel(path), "{path} passes the kernel check");
        }
        // What only user space tells apart: the same name and parent elsewhere.
        assert!(kernel("/var/backup/etc/shadow") && !l.matches("/var/backup/etc/shadow"));
        assert!(kernel("/dev/mem") && !l.matches("/dev/mem"));
    }

    #[test]
    fn patterns_match_by_component() {
        let l = list(&["/a/b*c/*/z", "*/k/v_*"]);
        assert!(l.matches("/a/bc/x/z"));
        assert!(l.matches("/a/b--c/y/z"));
        assert!(!l.matches("/a/b/x/z"), "b* needs its suffix");
        assert!(!l.matches("/a/bc/z"), "* is one component");
        assert!(!l.matches("/a/bc/x/y/z"));
        assert!(l.matches("/x/k/v_1"));
        assert!(l.matches("/x/y/z/k/v_"));
        assert!(!l.matches("/k/v_1"), "*/ is one directory at least");
        assert!(!l.matches("/x/k/w_1"));
        // `ab*ba` does not match `aba`: prefix and suffix may not overlap.
        assert!(!list(&["/ab*ba"]).matches("/aba"));
        assert!(list(&["/ab*ba"]).matches("/abba"));
    }

    #[test]
    fn bad_patterns_are_refused_with_the_reason() {
        for (p, reason) in [
            ("etc/shadow", "neither an absolute path"),
            ("", "neither an absolute path"),
            ("/etc//shadow", "empty path component"),
            ("/etc/", "empty path component"),
            ("/etc/../shadow", "`..`"),
            ("/etc/*sha*dow", "more than one `*`"),
            ("/etc/*", "bare `*`"),
            ("/etc/sha\0dow", "NUL"),
        ] {
            let err = WatchList::parse(&[p.to_string()]).expect_err(p).to_string();
            assert!(
                err.contains(reason) && err.contains(p.escape_debug().to_string().as_str()),
                "{p:?}: {err}"
            );
        }
        let many: Vec<String> = (0..17).map(|i| format!("/etc/f{i}")).collect();
        let err = WatchList::parse(&many)
            .expect_err("17 patterns")
            .to_string();
        assert!(err.contains("17") && err.contains("16"), "{err}");
    }

    /// A random component: literal or with one `*`, short or past the 16 bytes the
    /// kernel compares, often sharing letters so that near misses are common.
    fn random_part(rng: &mut crate::fuzz::Rng) -> String {
        let word = |rng: &mut crate::fuzz::Rng| {
            let w = rng.pick(&["a", "ab", "id_", ".ssh", "mem", "key", "shadow", "x-y"]);
            let n = rng.pick(&[1, 1, 2, 6]);
            w.repeat(n)
        };
        match rng.below(4) {
            0 => format!("{}*{}", word(rng), word(rng)),
            1 => format!("{}*", word(rng)),
            2 => format!("*{}", word(rng)),
            _ => word(rng),
        }
    }

    /// A path `p` matches: each `*` filled with random letters, `*/` with directories.
    fn instance(rng: &mut crate::fuzz::Rng, p: &Pattern) -> String {
        let mut path = String::new();
        if p.anywhere {
            for _ in 0..=rng.below(2) {
                path.push_str(&format!("/d{}", rng.below(3)));
            }
        }
        for part in &p.parts {
            path.push('/');
            match part {
                Part::Literal(l) => path.push_str(l),
                Part::Glob { prefix, suffix } => {
                    let fill = "ab_".repeat(rng.below(8));
                    path.push_str(&format!(
                        "{prefix}{}{suffix}",
                        &fill[..rng.below(fill.len() + 1)]
                    ));
                }
            }
        }
        path
    }

    /// Random patterns and paths (instances of a pattern, changed or not): the kernel's
    /// check lets every path the whole-path match accepts through; parsing and matching
    /// any text returns, never panics.
    #[test]
    fn random_patterns_the_kernel_check_never_stops_a_match() {
        let mut rng = crate::fuzz::Rng::for_test(0x3a7c);
        let mut matched = 0;
        for i in 0..crate::fuzz::iterations() {
            let parts: Vec<String> = (0..=rng.below(3)).map(|_| random_part(&mut rng)).collect();
            let text = format!("{}{}", rng.pick(&["/", "*/"]), parts.join("/"));
            let Ok(p) = Pattern::parse(&text) else {
                assert!(text.ends_with("/*"), "{text} refused");
                continue;
            };
            let rule = p.rule();
            for _ in 0..8 {
                let mut path = instance(&mut rng, &p);
                if rng.one_in(2) {
                    path = rng.mutate_text(&path);
                }
                if !path.starts_with('/') || path.ends_with('/') || path.contains("//") {
                    continue;
                }
                if p.matches(&path) {
                    matched += 1;
                    let (name, parent) = leaf_and_parent(&path);
                    let mut table = [0u64; 256];
                    p.first_len(&mut table);
                    assert!(
                        first_check(&table, name) && kernel_check(&rule, name, parent),
                        "{text} matches {path} but the kernel check stops it"
                    );
                }
            }
            let bad = rng.mutate_text(&text);
            let parsed = crate::fuzz::no_panic("watch pattern", i, bad.as_bytes(), || {
                WatchList::parse(std::slice::from_ref(&bad))
            });
            if let Ok(l) = parsed {
                let _ = l.matches(&rng.mutate_text(&text));
                assert_eq!(l.kernel_bytes().len(), size_of::<Watch>());
            }
        }
        // Unchanged instances match: the property was put to the test.
        assert!(
            matched >= 2 * crate::fuzz::iterations(),
            "{matched} paths matched"
        );
    }

    /// The bytes written to the kernel: the count, then each rule at its offset.
    #[test]
    fn kernel_bytes_are_the_c_struct() {
        let l = list(&["/etc/shadow", "*/.ssh/id_*"]);
        let b = l.kernel_bytes();
        assert_eq!(b.len(), size_of::<Watch>());
        assert_eq!(&b[..4], &2u32.to_ne_bytes());
        let rule1 = offset_of!(Watch, rules) + size_of::<WatchRule>();
        let min = rule1 + offset_of!(WatchRule, min_len);
        assert_eq!(
            &b[min..min + 4],
            &3u32.to_ne_bytes(),
            "id_: 3 bytes at least"
        );
        let parent = rule1 + offset_of!(WatchRule, parent);
        assert_eq!(&b[parent..parent + 5], b".ssh\0");
        // First byte and length: `shadow` (s, 6) only; `id_*` (i, 3 and longer).
        let first = |byte: u8| {
            let at = offset_of!(Watch, first_len) + 8 * usize::from(byte);
            u64::from_ne_bytes(b[at..at + 8].try_into().expect("8 bytes"))
        };
        assert_eq!(first(b's'), 1 << 6);
        assert_eq!(first(b'i'), u64::MAX << 3);
        assert_eq!(first(b'x'), 0);
        let unused = offset_of!(Watch, rules) + 2 * size_of::<WatchRule>();
        assert!(b[unused..].iter().all(|&x| x == 0));
    }
}
