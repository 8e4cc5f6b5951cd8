//! The quarantine vault: files moved out of reach, with what is needed to give them back
//! byte for byte, with their owner, mode and times.
//!
//! The vault is a root-only directory (0700). Each item is a directory named by its id
//! holding `content` (the file itself, made 0400: never runnable there) and `meta.json`
//! (its path, owner, group, mode, size, times, SHA-256 and why it was quarantined). On the
//! same filesystem a file is renamed into the vault (atomic, no space needed, the inode
//! kept); across filesystems it is copied, synced, checked against its hash, and only then
//! removed from its place. A copy that fails (a full disk) is removed and the file left
//! where it was: the error says so. Extended attributes and ACLs are not kept.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a vault operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The vault directory could not be made or is not safe to use.
    #[error("vault {}: {what}", dir.display())]
    Vault {
        /// The vault.
        dir: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The file to quarantine does not exist.
    #[error("{}: no such file (gone before it could be quarantined)", path.display())]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// The file is not one the vault takes (not a regular file, too large).
    #[error("{}: {why}", path.display())]
    Refused {
        /// The path.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// Reading, copying or moving failed; `left` says where the file is now.
    #[error("{}: {what}: {source}; {left}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What was being done.
        what: String,
        /// Where the file is now.
        left: String,
        /// The error.
        source: std::io::Error,
    },
    /// No item has this id.
    #[error("no quarantined item {id} in {}", dir.display())]
    NoItem {
        /// The id asked for.
        id: String,
        /// The vault.
        dir: PathBuf,
    },
    /// An item's metadata cannot be read.
    #[error("{}: unreadable item metadata: {what}", path.display())]
    BadItem {
        /// The metadata file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Restoring would overwrite a file.
    #[error("{}: exists; move it away or restore elsewhere (--to PATH)", path.display())]
    Exists {
        /// The path.
        path: PathBuf,
    },
    /// The restored file's hash differs from the one recorded (the vault copy changed).
    #[error("{}: restored content has SHA-256 {got}, the vault recorded {want}; the restored copy was removed", path.display())]
    Corrupt {
        /// The path.
        path: PathBuf,
        /// Recorded.
        want: String,
        /// Found.
        got: String,
    },
}

/// Why a file was quarantined.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The finding answered, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding_uid: Option<String>,
    /// The rule that fired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_uid: Option<String>,
    /// The story.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub story: Option<String>,
    /// The command line of a person's request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// One quarantined file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The item id.
    pub id: String,
    /// Where the file was.
    pub path: PathBuf,
    /// Owner uid.
    pub uid: u32,
    /// Group gid.
    pub gid: u32,
    /// Mode bits (permissions with set-uid, set-gid, sticky).
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// Modification time (ns since the epoch).
    pub mtime_ns: i128,
    /// Access time (ns since the epoch).
    pub atime_ns: i128,
    /// Device and inode it had.
    pub dev_ino: String,
    /// Other hard links the file had, left in place.
    pub other_links: u64,
    /// When it was quarantined (ms since the epoch).
    pub quarantined_ms: i64,
    /// Why.
    pub provenance: Provenance,
}

/// The vault.
#[derive(Debug, Clone)]
pub struct Vault {
    dir: PathBuf,
}

const CONTENT: &str = "content";
const META: &str = "meta.json";

/// SHA-256 of a reader, hex.
pub fn sha256_of(mut r: impl Read) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn ns(secs: i64, nsec: i64) -> i128 {
    i128::from(secs) * 1_000_000_000 + i128::from(nsec)
}

fn system_time(ns: i128) -> std::time::SystemTime {
    let d = std::time::Duration::from_nanos(ns.unsigned_abs() as u64);
    if ns >= 0 {
        std::time::UNIX_EPOCH + d
    } else {
        std::time::UNIX_EPOCH - d
    }
}

/// The owner, mode and times a restored file gets, and whether it is synced.
pub(crate) struct Restored {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub atime_ns: i128,
    pub mtime_ns: i128,
    pub sync: bool,
}

/// Writes `src` into a new file `tmp` (created 0600, never over an existing one) with
/// the owner, mode and times of `meta`; returns the SHA-256 of the bytes written. The
/// caller checks the digest and renames `tmp` into place (or removes it on error).
pub(crate) fn write_restored(
    src: &mut impl Read,
    tmp: &Path,
    meta: Restored,
) -> std::io::Result<String> {
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n])?;
    }
    // Owner first: chown clears set-uid and set-gid bits, the mode puts them back.
    std::os::unix::fs::fchown(&out, Some(meta.uid), Some(meta.gid))?;
    out.set_permissions(fs::Permissions::from_mode(meta.mode))?;
    out.set_times(
        fs::FileTimes::new()
            .set_accessed(system_time(meta.atime_ns))
            .set_modified(system_time(meta.mtime_ns)),
    )?;
    if meta.sync {
        out.sync_all()?;
    }
    Ok(hex(&h.finalize()))
}

/// Makes `dir` (and its parents) a root-only directory: created 0700, and an existing
/// one made 0700 if it was looser. Refuses a symbolic link or a non-directory.
pub fn private_dir(dir: &Path) -> Result<(), String> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => return Err("is a symbolic link".into()),
        Ok(m) if !m.is_dir() => return Err("is not a directory".into()),
        Ok(_) => {}
        Err(_) => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create: {e}"))?,
    }
    let m = fs::metadata(dir).map_err(|e| format!("cannot read: {e}"))?;
    if m.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make it root-only: {e}"))?;
    }
    Ok(())
}

use std::os::unix::fs::DirBuilderExt;

impl Vault {
    /// Opens the vault, making it (root-only) if it does not exist.
    pub fn open(dir: &Path) -> Result<Vault, VaultError> {
        private_dir(dir).map_err(|what| VaultError::Vault {
            dir: dir.to_path_buf(),
            what,
        })?;
        Ok(Vault {
            dir: dir.to_path_buf(),
        })
    }

    /// The vault's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn new_item_dir(&self, sha: &str, now_ms: i64) -> Result<(String, PathBuf), std::io::Error> {
        for n in 0..1000 {
            let id = if n == 0 {
                format!("{now_ms:x}-{}", &sha[..12])
            } else {
                format!("{now_ms:x}-{}-{n}", &sha[..12])
            };
            let d = self.dir.join(&id);
            match fs::DirBuilder::new().mode(0o700).create(&d) {
                Ok(()) => return Ok((id, d)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other("no free item id"))
    }

    /// Moves `path` into the vault. The file is either in the vault with its metadata
    /// (Ok) or where it was (an error saying so).
    pub fn quarantine(
        &self,
        path: &Path,
        provenance: Provenance,
        max_bytes: u64,
        now_ms: i64,
    ) -> Result<Item, VaultError> {
        let io = |what: &str, left: &str, source| VaultError::Io {
            path: path.to_path_buf(),
            what: what.to_string(),
            left: left.to_string(),
            source,
        };
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VaultError::Missing {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(io("cannot read its metadata", "the file is in place", e)),
        };
        if !meta.file_type().is_file() {
            return Err(VaultError::Refused {
                path: path.to_path_buf(),
                why: "not a regular file (the vault takes regular files only)".into(),
            });
        }
        if meta.len() > max_bytes {
            return Err(VaultError::Refused {
                path: path.to_path_buf(),
                why: format!(
                    "{} bytes, more than the vault takes ({max_bytes})",
                    meta.len()
                ),
            });
        }
        let mut src = OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(path)
            .map_err(|e| io("cannot open", "the file is in place", e))?;
        let sha = sha256_of(&mut src).map_err(|e| io("cannot read", "the file is in place", e))?;
        let (id, item_dir) = self
            .new_item_dir(&sha, now_ms)
            .map_err(|e| io("cannot make the vault item", "the file is in place", e))?;
        let content = item_dir.join(CONTENT);
        let item = Item {
            id: id.clone(),
            path: path.to_path_buf(),
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
            size: meta.len(),
            sha256: sha.clone(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            atime_ns: ns(meta.atime(), meta.atime_nsec()),
            dev_ino: format!("{}:{}", meta.dev(), meta.ino()),
            other_links: meta.nlink().saturating_sub(1),
            quarantined_ms: now_ms,
            provenance,
        };
        // The metadata first: an item without it would be a file nobody can give back.
        if let Err(e) = write_meta(&item_dir, &item) {
            let _ = fs::remove_dir_all(&item_dir);
            return Err(io(
                "cannot write the item's metadata",
                "the file is in place",
                e,
            ));
        }
        let mut item = item;
        match fs::rename(path, &content) {
            Ok(()) => {
                // Written to between the hash and the move: the metadata follows the
                // bytes the vault holds.
                let now = File::open(&content).and_then(sha256_of);
                if let Ok(got) = now {
                    if got != item.sha256 {
                        item.sha256 = got;
                        item.size = fs::metadata(&content).map_or(item.size, |m| m.len());
                        let _ = fs::remove_file(item_dir.join(META));
                        if let Err(e) = write_meta(&item_dir, &item) {
                            tracing::warn!(
                                "{}: cannot rewrite the metadata of a file changed while quarantined: {e}",
                                item_dir.display()
                            );
                        }
                    }
                }
            }
            Err(e) if e.raw_os_error() == Some(nix::libc::EXDEV) => {
                if let Err(e) = copy_into(&mut src, &content, &sha) {
                    let _ = fs::remove_dir_all(&item_dir);
                    return Err(io("cannot copy into the vault", "the file is in place", e));
                }
                if let Err(e) = fs::remove_file(path) {
                    let _ = fs::remove_dir_all(&item_dir);
                    return Err(io(
                        "copied, but cannot remove the original",
                        "the file is in place, the copy was dropped",
                        e,
                    ));
                }
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&item_dir);
                return Err(io("cannot move into the vault", "the file is in place", e));
            }
        }
        // Never runnable, never writable in the vault.
        let _ = fs::set_permissions(&content, fs::Permissions::from_mode(0o400));
        Ok(item)
    }

    /// Every item, oldest first; items whose metadata cannot be read are reported apart.
    pub fn list(&self) -> Result<(Vec<Item>, Vec<VaultError>), VaultError> {
        let rd = fs::read_dir(&self.dir).map_err(|e| VaultError::Vault {
            dir: self.dir.clone(),
            what: format!("cannot list: {e}"),
        })?;
        let mut items = Vec::new();
        let mut bad = Vec::new();
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            match read_meta(&e.path()) {
                Ok(i) => items.push(i),
                Err(err) => bad.push(err),
            }
        }
        items.sort_by(|a, b| (a.quarantined_ms, &a.id).cmp(&(b.quarantined_ms, &b.id)));
        Ok((items, bad))
    }

    fn item_dir(&self, id: &str) -> Result<PathBuf, VaultError> {
        let ok = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let d = self.dir.join(id);
        if !ok || !d.is_dir() {
            return Err(VaultError::NoItem {
                id: id.to_string(),
                dir: self.dir.clone(),
            });
        }
        Ok(d)
    }

    /// One item by id.
    pub fn get(&self, id: &str) -> Result<Item, VaultError> {
        read_meta(&self.item_dir(id)?)
    }

    /// Gives an item back: its bytes at its path (or `to`), with its owner, group,
    /// mode and times, checked against its hash; the item then leaves the vault.
    pub fn restore(&self, id: &str, to: Option<&Path>) -> Result<Item, VaultError> {
        let dir = self.item_dir(id)?;
        let item = read_meta(&dir)?;
        let dest = to.unwrap_or(&item.path).to_path_buf();
        let io = |what: &str, source| VaultError::Io {
            path: dest.clone(),
            what: what.to_string(),
            left: format!("the item stays in the vault ({id})"),
            source,
        };
        if fs::symlink_metadata(&dest).is_ok() {
            return Err(VaultError::Exists { path: dest });
        }
        let parent = dest.parent().unwrap_or(Path::new("/"));
        let tmp = parent.join(format!(".vigil-restore-{}-{id}", std::process::id()));
        let mut src =
            File::open(dir.join(CONTENT)).map_err(|e| io("cannot open the vault copy", e))?;
        let written = write_restored(
            &mut src,
            &tmp,
            Restored {
                uid: item.uid,
                gid: item.gid,
                mode: item.mode,
                atime_ns: item.atime_ns,
                mtime_ns: item.mtime_ns,
                sync: true,
            },
        );
        let got = match written {
            Ok(g) => g,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(io("cannot write the restored file", e));
            }
        };
        if got != item.sha256 {
            let _ = fs::remove_file(&tmp);
            return Err(VaultError::Corrupt {
                path: dest,
                want: item.sha256,
                got,
            });
        }
        // No overwrite: a file that appeared meanwhile is kept.
        if let Err(e) = nix::fcntl::renameat2(
            nix::fcntl::AT_FDCWD,
            &tmp,
            nix::fcntl::AT_FDCWD,
            &dest,
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        ) {
            let _ = fs::remove_file(&tmp);
            if e == nix::errno::Errno::EEXIST {
                return Err(VaultError::Exists { path: dest });
            }
            return Err(io("cannot put the file in place", e.into()));
        }
        let _ = fs::remove_dir_all(&dir);
        Ok(Item { path: dest, ..item })
    }

    /// Deletes an item for good.
    pub fn purge(&self, id: &str) -> Result<Item, VaultError> {
        let dir = self.item_dir(id)?;
        let item = read_meta(&dir)?;
        fs::remove_dir_all(&dir).map_err(|e| VaultError::Io {
            path: dir.clone(),
            what: "cannot delete the item".into(),
            left: "the item may be partly deleted".into(),
            source: e,
        })?;
        Ok(item)
    }
}

/// Copies the open source (rewound) into `dest`, synced, and checks its hash.
fn copy_into(src: &mut File, dest: &Path, sha: &str) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    src.seek(SeekFrom::Start(0))?;
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(dest)?;
    std::io::copy(src, &mut out)?;
    out.sync_all()?;
    drop(out);
    let got = sha256_of(File::open(dest)?)?;
    if got != sha {
        return Err(std::io::Error::other(format!(
            "the copy's SHA-256 {got} differs from the file's {sha} (changed while copied)"
        )));
    }
    Ok(())
}

fn write_meta(dir: &Path, item: &Item) -> std::io::Result<()> {
    let tmp = dir.join(".meta.json.tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    serde_json::to_writer_pretty(&mut f, item)?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(META))
}

fn read_meta(dir: &Path) -> Result<Item, VaultError> {
    let path = dir.join(META);
    let text = fs::read_to_string(&path).map_err(|e| VaultError::BadItem {
        path: path.clone(),
        what: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| VaultError::BadItem {
        path,
        what: e.to_string(),
    })
}
