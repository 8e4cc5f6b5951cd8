//! The rollback journal: a file's bytes, owner, mode and times as they were before an
//! untrusted process first opened it for writing, so a story's damage can be undone.
//!
//! The exec and write guard (the `guard` module) holds each open of a journaled file
//! (fanotify `FAN_OPEN_PERM`) until the journal has decided: an open for reading, by a
//! trusted program, or of a file this process already journaled passes at once; an open
//! for writing (or truncating) is let through only after the file's content is copied
//! here (through the event's own descriptor, which raises no event). Each copy names the
//! writing process and its ancestors (process uids, as the sensor's): a story id is the
//! uid of its first process, so `vigil rollback STORY` finds the story's copies. The
//! agent adds the renames the sensor reports in journaled directories, so a file
//! rewritten and renamed (`x` -> `x.locked`) comes back under its own name.
//!
//! Bounded: at most `max_bytes` of copies, none older than `max_age_secs`, no file over
//! `max_file_bytes` (noted as skipped). Not covered: a file replaced by a rename over it
//! or deleted without being opened for writing first (the story's renames are undone,
//! but what a rename replaced is gone), appends (`O_APPEND` opens cannot overwrite, so
//! they are not copied; a `ftruncate` through one is a gap), writes by trusted programs.

use crate::config::RollbackConfig;
use crate::vault::{hex, private_dir, write_restored, Restored};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, Write};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why the journal could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The journal directory is unusable.
    #[error("journal {}: {what}", dir.display())]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// An entry could not be written or read.
    #[error("journal entry {}: {source}", path.display())]
    Io {
        /// The entry file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The process that opened a file for writing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Writer {
    /// Its pid.
    pub pid: i32,
    /// Its process uid (`boot_id-pid-start_ticks`).
    pub uid: String,
    /// Its `comm`.
    pub comm: String,
    /// Its executable.
    pub exe: Option<PathBuf>,
    /// Its ancestors' process uids, nearest first, as /proc showed them.
    pub ancestors: Vec<String>,
}

/// One journaled file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The entry id (sorts by time).
    pub id: String,
    /// Where the file was.
    pub path: PathBuf,
    /// Its device and inode.
    pub dev_ino: String,
    /// Owner uid.
    pub uid: u32,
    /// Group gid.
    pub gid: u32,
    /// Mode bits.
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (ns since the epoch).
    pub mtime_ns: i128,
    /// Access time (ns since the epoch).
    pub atime_ns: i128,
    /// SHA-256 of the content kept.
    pub sha256: String,
    /// The file was just created by the writer (nothing to restore: it did not exist).
    pub new: bool,
    /// When it was journaled (ms since the epoch).
    pub time_ms: i64,
    /// Who was about to write it.
    pub writer: Writer,
}

impl Entry {
    /// Whether the entry belongs to `story` (the writer or one of its ancestors is the
    /// story's first process) or to one of `members` (process uids).
    pub fn in_story(&self, story: &str, members: &HashSet<String>) -> bool {
        self.writer.uid == story
            || self.writer.ancestors.iter().any(|a| a == story)
            || members.contains(&self.writer.uid)
    }
}

/// A rename the sensor reported in a journaled directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rename {
    /// When (ms since the epoch).
    pub time_ms: i64,
    /// The story it happened in.
    pub story: Option<String>,
    /// The renaming process's uid.
    pub process_uid: Option<String>,
    /// The old path.
    pub from: PathBuf,
    /// The new path.
    pub to: PathBuf,
}

/// What the journal did about one open for writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Noted {
    /// The content was copied (bytes).
    Copied(u64),
    /// The file was new: nothing to copy.
    New,
    /// Already journaled for this writer.
    Known,
    /// Not copied, and why (too large, not a regular file, an error).
    Skipped(String),
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Files copied.
    pub copied: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// New files noted.
    pub new: u64,
    /// Files not copied (too large, errors).
    pub skipped: u64,
    /// Entries dropped for the budget (size or age).
    pub evicted: u64,
    /// Bytes held now.
    pub held: u64,
}

/// The journal.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    entries_dir: PathBuf,
    config: RollbackConfig,
    /// Oldest first: (id, bytes, time_ms, key).
    index: VecDeque<(String, u64, i64, String)>,
    keys: HashSet<String>,
    seq: u64,
    stats: JournalStats,
}

const DATA: &str = "data";
const META: &str = "json";

fn ns(secs: i64, nsec: i64) -> i128 {
    i128::from(secs) * 1_000_000_000 + i128::from(nsec)
}

impl Journal {
    /// Opens (or makes, root-only) the journal, reading what it holds.
    pub fn open(config: &RollbackConfig) -> Result<Journal, JournalError> {
        let dir = config.journal_dir.clone();
        let entries_dir = dir.join("entries");
        private_dir(&entries_dir).map_err(|what| JournalError::Dir {
            dir: dir.clone(),
            what,
        })?;
        let mut j = Journal {
            dir,
            entries_dir,
            config: config.clone(),
            index: VecDeque::new(),
            keys: HashSet::new(),
            seq: 0,
            stats: JournalStats::default(),
        };
        let (mut entries, _) = j.entries();
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        for e in entries {
            let key = format!("{}|{}", e.dev_ino, e.writer.uid);
            let bytes = if e.new { 0 } else { e.size };
            j.stats.held += bytes;
            j.keys.insert(key.clone());
            j.index.push_back((e.id, bytes, e.time_ms, key));
        }
        Ok(j)
    }

    /// Executable prefixes whose writes are not journaled.
    pub fn trusted(&self) -> &[PathBuf] {
        &self.config.trusted
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The counters.
    pub fn stats(&self) -> JournalStats {
        self.stats
    }

    /// Whether this file (device and inode) is journaled for this writer already.
    pub fn known(&self, dev: u64, ino: u64, writer_uid: &str) -> bool {
        self.keys.contains(&format!("{dev}:{ino}|{writer_uid}"))
    }

    /// Copies the file open as `fd` (the permission event's descriptor: reading it
    /// raises no event) before `writer` writes it. `created`: the open creates files
    /// (`O_CREAT`), so an empty file just made is noted as new.
    pub fn snapshot(
        &mut self,
        fd: BorrowedFd<'_>,
        path: &Path,
        writer: &Writer,
        created: bool,
        now_ms: i64,
    ) -> Noted {
        let meta = match nix::sys::stat::fstat(fd) {
            Ok(m) => m,
            Err(e) => return self.skip(format!("cannot stat: {e}")),
        };
        if meta.st_mode & nix::libc::S_IFMT != nix::libc::S_IFREG {
            return self.skip("not a regular file".into());
        }
        let key = format!("{}:{}|{}", meta.st_dev, meta.st_ino, writer.uid);
        if self.keys.contains(&key) {
            return Noted::Known;
        }
        let size = meta.st_size.max(0) as u64;
        if size > self.config.max_file_bytes {
            return self.skip(format!(
                "{}: {size} bytes, over respond.rollback.max_file_bytes",
                path.display()
            ));
        }
        // A file this open just created: empty, born within the last two seconds.
        let born_now = created
            && size == 0
            && fs::metadata(path)
                .ok()
                .and_then(|m| m.created().ok())
                .and_then(|c| c.elapsed().ok())
                .is_some_and(|age| age.as_secs() < 2);
        self.seq += 1;
        let id = format!("{now_ms:013x}-{:08x}", self.seq);
        let mut entry = Entry {
            id: id.clone(),
            path: path.to_path_buf(),
            dev_ino: format!("{}:{}", meta.st_dev, meta.st_ino),
            uid: meta.st_uid,
            gid: meta.st_gid,
            mode: meta.st_mode & 0o7777,
            size,
            mtime_ns: ns(meta.st_mtime, meta.st_mtime_nsec),
            atime_ns: ns(meta.st_atime, meta.st_atime_nsec),
            sha256: String::new(),
            new: born_now,
            time_ms: now_ms,
            writer: writer.clone(),
        };
        let data = self.entries_dir.join(format!("{id}.{DATA}"));
        let mut copied = 0;
        if !born_now {
            match copy_fd(fd, &data, size) {
                Ok((n, sha)) => {
                    copied = n;
                    entry.size = n;
                    entry.sha256 = sha;
                }
                Err(e) => {
                    let _ = fs::remove_file(&data);
                    return self.skip(format!("{}: cannot copy: {e}", path.display()));
                }
            }
        }
        if let Err(e) = write_json(&self.entries_dir.join(format!("{id}.{META}")), &entry) {
            let _ = fs::remove_file(&data);
            return self.skip(format!("{}: cannot write the entry: {e}", path.display()));
        }
        self.keys.insert(key.clone());
        self.index.push_back((id, copied, now_ms, key));
        self.stats.held += copied;
        if born_now {
            self.stats.new += 1;
        } else {
            self.stats.copied += 1;
            self.stats.bytes += copied;
        }
        self.enforce(now_ms);
        if born_now {
            Noted::New
        } else {
            Noted::Copied(copied)
        }
    }

    fn skip(&mut self, why: String) -> Noted {
        self.stats.skipped += 1;
        Noted::Skipped(why)
    }

    /// Drops the oldest entries past the size budget and those past the age budget.
    pub fn enforce(&mut self, now_ms: i64) {
        let max_age_ms =
            i64::try_from(self.config.max_age_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        while let Some((id, bytes, time, key)) = self.index.front().cloned() {
            let old = now_ms.saturating_sub(time) > max_age_ms;
            if !old && self.stats.held <= self.config.max_bytes {
                break;
            }
            self.index.pop_front();
            self.keys.remove(&key);
            self.stats.held = self.stats.held.saturating_sub(bytes);
            self.stats.evicted += 1;
            let _ = fs::remove_file(self.entries_dir.join(format!("{id}.{DATA}")));
            let _ = fs::remove_file(self.entries_dir.join(format!("{id}.{META}")));
        }
    }

    /// Every entry, and the entry files that could not be read.
    pub fn entries(&self) -> (Vec<Entry>, Vec<String>) {
        read_entries(&self.entries_dir)
    }

    /// Every rename recorded, and the lines that could not be read.
    pub fn renames(&self) -> (Vec<Rename>, Vec<String>) {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        let path = self.dir.join("renames.jsonl");
        if let Ok(f) = File::open(&path) {
            for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
                match line
                    .map_err(|e| e.to_string())
                    .and_then(|l| serde_json::from_str::<Rename>(&l).map_err(|e| e.to_string()))
                {
                    Ok(r) => out.push(r),
                    Err(e) => bad.push(format!("{}:{}: {e}", path.display(), i + 1)),
                }
            }
        }
        (out, bad)
    }
}

/// Appends a rename the sensor reported to the journal in `journal_dir`.
pub fn append_rename(journal_dir: &Path, r: &Rename) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(journal_dir.join("renames.jsonl"))?;
    let mut line = serde_json::to_vec(r)?;
    line.push(b'\n');
    f.write_all(&line)
}

fn read_entries(dir: &Path) -> (Vec<Entry>, Vec<String>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some(META) {
            continue;
        }
        match fs::read_to_string(&p)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Entry>(&t).map_err(|e| e.to_string()))
        {
            Ok(entry) => out.push(entry),
            Err(err) => bad.push(format!("{}: {err}", p.display())),
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    (out, bad)
}

/// Copies `size` bytes (at most) of `fd` from offset 0 into a new file `dest`; returns
/// the bytes copied and their SHA-256.
fn copy_fd(fd: BorrowedFd<'_>, dest: &Path, size: u64) -> std::io::Result<(u64, String)> {
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(dest)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 128 * 1024];
    let mut off: u64 = 0;
    loop {
        let n = nix::sys::uio::pread(fd, &mut buf, off as i64)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        off += n as u64;
        if off > size.saturating_add(1 << 20) {
            // Growing while read: what is read is what is kept.
            break;
        }
    }
    Ok((off, hex(&h.finalize())))
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    serde_json::to_writer(&mut f, v)?;
    f.write_all(b"\n")
}

/// What rolling a story back will do.
#[derive(Debug, Clone, Default)]
pub struct RollbackPlan {
    /// Files to put back: the entry (the story's earliest for the file) and where the
    /// file is now (after the story's renames).
    pub restores: Vec<(Entry, PathBuf)>,
    /// Renames to undo, latest first: (where it is, where it was).
    pub unrename: Vec<(PathBuf, PathBuf)>,
    /// Files the story created (left in place unless asked to remove them).
    pub created: Vec<PathBuf>,
    /// Entry files or rename lines that could not be read.
    pub unreadable: Vec<String>,
}

/// How one step of a rollback went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The file (its final path).
    pub path: PathBuf,
    /// What was done, or why not.
    pub outcome: Result<String, String>,
    /// The content's SHA-256 after the step, for a restored file.
    pub sha256: Option<String>,
    /// The entry, for a restored file.
    pub entry: Option<Entry>,
}

impl Journal {
    /// The plan to undo `story` (and the processes `members`, known from events).
    pub fn plan(&self, story: &str, members: &HashSet<String>) -> RollbackPlan {
        let (entries, mut unreadable) = self.entries();
        let (renames, bad) = self.renames();
        unreadable.extend(bad);
        let mut plan = RollbackPlan {
            unreadable,
            ..RollbackPlan::default()
        };
        let in_story = |r: &Rename| {
            r.story.as_deref() == Some(story)
                || r.process_uid
                    .as_ref()
                    .is_some_and(|u| members.contains(u) || u == story)
        };
        let mut story_renames: Vec<&Rename> = renames.iter().filter(|r| in_story(r)).collect();
        story_renames.sort_by_key(|r| r.time_ms);
        let mut first: HashMap<&str, &Entry> = HashMap::new();
        for e in entries.iter().filter(|e| e.in_story(story, members)) {
            first.entry(e.dev_ino.as_str()).or_insert(e);
        }
        let mut chosen: Vec<&Entry> = first.into_values().collect();
        chosen.sort_by(|a, b| a.id.cmp(&b.id));
        for e in chosen {
            // Follow the story's renames after the copy: where the file is now.
            let mut cur = e.path.clone();
            for r in story_renames
                .iter()
                .filter(|r| r.time_ms >= e.time_ms - 1000)
            {
                if r.from == cur {
                    cur = r.to.clone();
                }
            }
            if e.new {
                plan.created.push(cur);
            } else {
                plan.restores.push((e.clone(), cur));
            }
        }
        for r in story_renames.iter().rev() {
            plan.unrename.push((r.to.clone(), r.from.clone()));
        }
        plan
    }

    /// Carries a plan out: each file's bytes put back where it is now, with its owner,
    /// mode and times, checked against its hash; then the renames undone, latest first
    /// (never over an existing file); then, if asked, the created files removed.
    pub fn rollback(&self, plan: &RollbackPlan, remove_created: bool) -> Vec<Step> {
        let mut steps = Vec::new();
        for (entry, cur) in &plan.restores {
            let data = self.entries_dir.join(format!("{}.{DATA}", entry.id));
            let target = if cur.exists() || !entry.path.exists() {
                cur.clone()
            } else {
                entry.path.clone()
            };
            let outcome = restore_file(&data, &target, entry);
            let (outcome, sha256) = match outcome {
                Ok(sha) => (Ok(format!("restored {} bytes", entry.size)), Some(sha)),
                Err(e) => (Err(e), None),
            };
            steps.push(Step {
                path: target,
                outcome,
                sha256,
                entry: Some(entry.clone()),
            });
        }
        for (now, was) in &plan.unrename {
            let outcome = if !now.exists() {
                Err(format!("{} is gone: cannot rename it back", now.display()))
            } else {
                nix::fcntl::renameat2(
                    nix::fcntl::AT_FDCWD,
                    now,
                    nix::fcntl::AT_FDCWD,
                    was,
                    nix::fcntl::RenameFlags::RENAME_NOREPLACE,
                )
                .map(|()| format!("renamed back from {}", now.display()))
                .map_err(|e| format!("cannot rename {} back: {e}", now.display()))
            };
            // A restored file's step follows it to its own name.
            if outcome.is_ok() {
                for s in steps.iter_mut() {
                    if &s.path == now {
                        s.path = was.clone();
                    }
                }
            }
            steps.push(Step {
                path: was.clone(),
                outcome,
                sha256: None,
                entry: None,
            });
        }
        // One flush per filesystem at the end, not one per file.
        let mut devs = std::collections::HashSet::new();
        for s in &steps {
            let Some(dir) = s.path.parent() else { continue };
            let Ok(d) = File::open(dir) else { continue };
            let Ok(m) = d.metadata() else { continue };
            if devs.insert(std::os::unix::fs::MetadataExt::dev(&m)) {
                let _ = nix::unistd::syncfs(&d);
            }
        }
        for c in &plan.created {
            let outcome = if !remove_created {
                Ok("created by the story; left in place (--remove-created removes it)".to_string())
            } else {
                match fs::remove_file(c) {
                    Ok(()) => Ok("created by the story; removed".to_string()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        Ok("created by the story; already gone".to_string())
                    }
                    Err(e) => Err(format!("cannot remove: {e}")),
                }
            };
            steps.push(Step {
                path: c.clone(),
                outcome,
                sha256: None,
                entry: None,
            });
        }
        steps
    }
}

/// Writes the journaled bytes `data` to `target` (a new file renamed over it), with the
/// entry's owner, mode and times; returns the SHA-256 written, which must be the
/// entry's.
fn restore_file(data: &Path, target: &Path, e: &Entry) -> Result<String, String> {
    let parent = target.parent().unwrap_or(Path::new("/"));
    let tmp = parent.join(format!(".vigil-rollback-{}-{}", std::process::id(), e.id));
    let result = File::open(data).and_then(|mut src| {
        write_restored(
            &mut src,
            &tmp,
            Restored {
                uid: e.uid,
                gid: e.gid,
                mode: e.mode,
                atime_ns: e.atime_ns,
                mtime_ns: e.mtime_ns,
                sync: false,
            },
        )
    });
    let sha = match result {
        Ok(s) => s,
        Err(err) => {
            let _ = fs::remove_file(&tmp);
            return Err(format!("cannot write the journaled bytes: {err}"));
        }
    };
    if sha != e.sha256 {
        let _ = fs::remove_file(&tmp);
        return Err(format!(
            "the journal's copy has SHA-256 {sha}, not {}: changed since it was taken; not restored",
            e.sha256
        ));
    }
    fs::rename(&tmp, target).map_err(|err| {
        let _ = fs::remove_file(&tmp);
        format!("cannot put the file in place: {err}")
    })?;
    Ok(sha)
}

/// What /proc says of an open a thread is blocked in: whether it may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenKind {
    /// Read only.
    Read,
    /// Appending (`O_APPEND` without `O_TRUNC`): what is there cannot be overwritten
    /// through it, only added to (a later `ftruncate` through it is the gap).
    Append,
    /// For writing or truncating; `creat`: `O_CREAT` too.
    Write {
        /// `O_CREAT` is set.
        creat: bool,
    },
}

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const OPEN: u64 = 2;
    pub const CREAT: u64 = 85;
    pub const OPENAT: u64 = 257;
    pub const OPENAT2: u64 = 437;
    pub const EXECVE: u64 = 59;
    pub const EXECVEAT: u64 = 322;
}
#[cfg(target_arch = "aarch64")]
mod nr {
    pub const OPEN: u64 = u64::MAX;
    pub const CREAT: u64 = u64::MAX;
    pub const OPENAT: u64 = 56;
    pub const OPENAT2: u64 = 437;
    pub const EXECVE: u64 = 221;
    pub const EXECVEAT: u64 = 281;
}

const O_ACCMODE: u64 = 3;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;
const O_APPEND: u64 = 0o2000;

/// Reads what thread `tid` is opening from `/proc/TID/syscall` (the thread waits in the
/// open for the verdict). An open the journal cannot read the flags of counts as a
/// write: a copy too many is better than one missing.
pub fn open_kind(tid: i32) -> OpenKind {
    let Ok(text) = fs::read_to_string(format!("/proc/{tid}/syscall")) else {
        return OpenKind::Write { creat: false };
    };
    let mut parts = text.split_whitespace();
    let Some(nr) = parts.next().and_then(|n| n.parse::<u64>().ok()) else {
        return OpenKind::Write { creat: false };
    };
    let args: Vec<u64> = parts
        .take(6)
        .filter_map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
        .collect();
    let flags = match nr {
        n if n == nr::EXECVE || n == nr::EXECVEAT => return OpenKind::Read,
        n if n == nr::CREAT => return OpenKind::Write { creat: true },
        n if n == nr::OPEN => args.get(1).copied(),
        n if n == nr::OPENAT => args.get(2).copied(),
        n if n == nr::OPENAT2 => args.get(2).and_then(|&ptr| openat2_flags(tid, ptr)),
        _ => None,
    };
    match flags {
        Some(f) if f & O_ACCMODE == 0 && f & O_TRUNC == 0 => OpenKind::Read,
        Some(f) if f & O_APPEND != 0 && f & O_TRUNC == 0 => OpenKind::Append,
        Some(f) => OpenKind::Write {
            creat: f & O_CREAT != 0,
        },
        None => OpenKind::Write { creat: false },
    }
}

/// The `flags` of the `struct open_how` an `openat2` call points to.
fn openat2_flags(tid: i32, ptr: u64) -> Option<u64> {
    let mut buf = [0u8; 8];
    let remote = [nix::sys::uio::RemoteIoVec {
        base: usize::try_from(ptr).ok()?,
        len: 8,
    }];
    let mut local = [std::io::IoSliceMut::new(&mut buf)];
    let n = nix::sys::uio::process_vm_readv(nix::unistd::Pid::from_raw(tid), &mut local, &remote)
        .ok()?;
    (n == 8).then(|| u64::from_ne_bytes(buf))
}

/// The writer: a thread's process, with its ancestors' uids from /proc.
pub fn writer_of(tid: i32, boot_id: &str) -> Writer {
    let tgid = fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(tid);
    let info = crate::procs::ProcInfo::read(tgid);
    let mut w = Writer {
        pid: tgid,
        uid: info
            .as_ref()
            .map(|i| crate::procs::process_uid(boot_id, tgid, i.start_ticks))
            .unwrap_or_default(),
        comm: info.as_ref().map(|i| i.comm.clone()).unwrap_or_default(),
        exe: crate::procs::exe(tgid),
        ancestors: Vec::new(),
    };
    let mut ppid = info.map_or(0, |i| i.ppid);
    while ppid > 0 && w.ancestors.len() < 64 {
        let Some(p) = crate::procs::ProcInfo::read(ppid) else {
            break;
        };
        w.ancestors
            .push(crate::procs::process_uid(boot_id, ppid, p.start_ticks));
        ppid = p.ppid;
    }
    w
}

/// The directories under `roots` (each root too), at most `max`.
pub fn dirs_under(roots: &[PathBuf], max: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = roots.to_vec();
    while let Some(d) = stack.pop() {
        if out.len() >= max {
            break;
        }
        let Ok(m) = fs::symlink_metadata(&d) else {
            continue;
        };
        if !m.is_dir() {
            continue;
        }
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
        out.push(d);
    }
    out
}

/// Reads the journal at `config.journal_dir` without making or changing anything
/// (for `vigil rollback`, which may run beside the agent).
pub fn open_existing(config: &RollbackConfig) -> Result<Journal, JournalError> {
    if !config.journal_dir.join("entries").is_dir() {
        return Err(JournalError::Dir {
            dir: config.journal_dir.clone(),
            what: "no journal here (respond.rollback.paths empty, or the agent never ran with it)"
                .into(),
        });
    }
    let (entries, _) = read_entries(&config.journal_dir.join("entries"));
    let mut j = Journal {
        dir: config.journal_dir.clone(),
        entries_dir: config.journal_dir.join("entries"),
        config: config.clone(),
        index: VecDeque::new(),
        keys: HashSet::new(),
        seq: 0,
        stats: JournalStats::default(),
    };
    for e in entries {
        j.stats.held += e.size;
        j.index.push_back((e.id, e.size, e.time_ms, String::new()));
    }
    Ok(j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_whose_flags_cannot_be_read_counts_as_a_write() {
        assert_eq!(open_kind(i32::MAX), OpenKind::Write { creat: false });
    }

    #[test]
    fn a_stories_entries_are_found_by_writer_ancestors_or_members() {
        let e = Entry {
            id: "1".into(),
            path: "/x".into(),
            dev_ino: "1:2".into(),
            uid: 0,
            gid: 0,
            mode: 0o644,
            size: 0,
            mtime_ns: 0,
            atime_ns: 0,
            sha256: String::new(),
            new: false,
            time_ms: 0,
            writer: Writer {
                uid: "b-10-1".into(),
                ancestors: vec!["b-9-1".into(), "b-1-1".into()],
                ..Writer::default()
            },
        };
        let none = HashSet::new();
        assert!(e.in_story("b-9-1", &none));
        assert!(e.in_story("b-10-1", &none));
        assert!(!e.in_story("b-8-1", &none));
        assert!(e.in_story("b-8-1", &HashSet::from(["b-10-1".to_string()])));
    }
}
