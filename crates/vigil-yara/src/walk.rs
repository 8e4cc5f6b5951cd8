//! Listing what to scan: files as named, directories recursively, without following
//! symlinks inside them (`/usr/bin/X11 -> .` would loop), without descending into
//! pseudo filesystems (/proc, /sys), leaving out excluded paths. Each file comes with its
//! `lstat` metadata, read once while listing.

use crate::scan::{io_skip, pseudo_fs, special_kind, Skip};
use std::path::{Path, PathBuf};

/// One thing found while listing.
#[derive(Debug)]
pub enum WalkItem {
    /// A regular file, with its `lstat`.
    File(PathBuf, std::fs::Metadata),
    /// Something not to scan, and why.
    Skipped(PathBuf, Skip),
}

/// The lister: exclusions, and counts of what it passed over.
#[derive(Debug, Default)]
pub struct Walk {
    excludes: Option<globset::GlobSet>,
    /// Symlinks inside directories, not followed.
    pub symlinks: u64,
    /// Paths left out by an exclusion.
    pub excluded: u64,
}

/// A bad exclusion pattern.
#[derive(Debug, thiserror::Error)]
#[error("exclude pattern {pattern:?}: {source}")]
pub struct ExcludeError {
    /// The pattern.
    pub pattern: String,
    /// What is wrong with it.
    pub source: globset::Error,
}

impl Walk {
    /// A lister leaving out paths that match any of `excludes` (globs over the whole
    /// path: `*` stays within a path component, `**` crosses them; a directory that
    /// matches is not entered).
    pub fn new(excludes: &[String]) -> Result<Walk, ExcludeError> {
        if excludes.is_empty() {
            return Ok(Walk::default());
        }
        let mut b = globset::GlobSetBuilder::new();
        for p in excludes {
            let g = globset::GlobBuilder::new(p)
                .literal_separator(true)
                .build()
                .map_err(|source| ExcludeError {
                    pattern: p.clone(),
                    source,
                })?;
            b.add(g);
        }
        let set = b.build().map_err(|source| ExcludeError {
            pattern: excludes.join(", "),
            source,
        })?;
        Ok(Walk {
            excludes: Some(set),
            ..Walk::default()
        })
    }

    /// Whether `path` matches an exclusion (not counted).
    pub fn is_excluded(&self, path: &Path) -> bool {
        self.excludes.as_ref().is_some_and(|s| s.is_match(path))
    }

    fn excluded(&mut self, path: &Path) -> bool {
        let hit = self.is_excluded(path);
        if hit {
            self.excluded += 1;
        }
        hit
    }

    /// Lists `root` into `out`. A root that is a symlink is followed (it was named); a
    /// file is listed as is; a directory recursively.
    pub fn walk(&mut self, root: &Path, out: &mut impl FnMut(WalkItem)) {
        if self.excluded(root) {
            return;
        }
        let meta = match std::fs::symlink_metadata(root) {
            Ok(m) => m,
            Err(e) => return out(WalkItem::Skipped(root.to_path_buf(), io_skip(&e))),
        };
        if meta.file_type().is_symlink() {
            match std::fs::canonicalize(root) {
                Ok(target) if target != root => return self.walk(&target, out),
                Ok(_) => return out(WalkItem::Skipped(root.to_path_buf(), Skip::Symlink)),
                Err(e) => return out(WalkItem::Skipped(root.to_path_buf(), io_skip(&e))),
            }
        }
        if meta.is_dir() {
            self.dir(root, out);
        } else {
            self.entry(root.to_path_buf(), meta, out);
        }
    }

    fn entry(&mut self, path: PathBuf, meta: std::fs::Metadata, out: &mut impl FnMut(WalkItem)) {
        let ft = meta.file_type();
        if let Some(kind) = special_kind(&ft) {
            out(WalkItem::Skipped(path, Skip::Special(kind)));
        } else if ft.is_file() {
            out(WalkItem::File(path, meta));
        } else if ft.is_symlink() {
            self.symlinks += 1;
        }
    }

    fn dir(&mut self, dir: &Path, out: &mut impl FnMut(WalkItem)) {
        let handle = match std::fs::File::open(dir) {
            Ok(h) => h,
            Err(e) => return out(WalkItem::Skipped(dir.to_path_buf(), io_skip(&e))),
        };
        if let Some(fs) = pseudo_fs(&handle) {
            return out(WalkItem::Skipped(dir.to_path_buf(), Skip::PseudoFs(fs)));
        }
        drop(handle);
        let entries = match std::fs::read_dir(dir) {
            Ok(r) => r,
            Err(e) => return out(WalkItem::Skipped(dir.to_path_buf(), io_skip(&e))),
        };
        let mut subdirs = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    out(WalkItem::Skipped(dir.to_path_buf(), io_skip(&e)));
                    break;
                }
            };
            let path = entry.path();
            if self.excluded(&path) {
                continue;
            }
            let ft = match entry.file_type() {
                Ok(t) => t,
                Err(e) => {
                    out(WalkItem::Skipped(path, io_skip(&e)));
                    continue;
                }
            };
            if ft.is_symlink() {
                self.symlinks += 1;
            } else if ft.is_dir() {
                subdirs.push(path);
            } else if let Some(kind) = special_kind(&ft) {
                // Known special from the directory entry: not even stat'ed.
                out(WalkItem::Skipped(path, Skip::Special(kind)));
            } else {
                match entry.metadata() {
                    Ok(meta) => self.entry(path, meta, out),
                    Err(e) => out(WalkItem::Skipped(path, io_skip(&e))),
                }
            }
        }
        subdirs.sort();
        for d in subdirs {
            self.dir(&d, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vigil-yara-walk-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    fn list(walk: &mut Walk, root: &Path) -> (Vec<PathBuf>, Vec<(PathBuf, &'static str)>) {
        let (mut files, mut skipped) = (Vec::new(), Vec::new());
        walk.walk(root, &mut |item| match item {
            WalkItem::File(p, _) => files.push(p),
            WalkItem::Skipped(p, s) => skipped.push((p, s.kind())),
        });
        files.sort();
        (files, skipped)
    }

    #[test]
    fn a_symlink_loop_is_not_followed() {
        let d = tmp("loop");
        std::fs::create_dir(d.join("sub")).expect("mkdir");
        std::fs::write(d.join("sub/a"), b"a").expect("write");
        std::os::unix::fs::symlink(".", d.join("sub/X11")).expect("symlink");
        std::os::unix::fs::symlink("a", d.join("sub/link-to-a")).expect("symlink");
        let mut w = Walk::new(&[]).expect("walk");
        let (files, skipped) = list(&mut w, &d);
        assert_eq!(files, vec![d.join("sub/a")]);
        assert!(skipped.is_empty());
        assert_eq!(w.symlinks, 2);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn excluded_paths_and_directories_are_left_out() {
        let d = tmp("excl");
        std::fs::create_dir_all(d.join("skip/deep")).expect("mkdir");
        std::fs::write(d.join("skip/deep/x"), b"x").expect("write");
        std::fs::write(d.join("keep.txt"), b"k").expect("write");
        std::fs::write(d.join("drop.log"), b"d").expect("write");
        let mut w = Walk::new(&["**/skip".into(), "**/*.log".into()]).expect("walk");
        let (files, _) = list(&mut w, &d);
        assert_eq!(files, vec![d.join("keep.txt")]);
        assert_eq!(w.excluded, 2);
        assert!(Walk::new(&["a[".into()]).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn proc_is_not_entered() {
        let mut w = Walk::new(&[]).expect("walk");
        let (files, skipped) = list(&mut w, Path::new("/proc/sys"));
        assert!(files.is_empty(), "{files:?}");
        assert_eq!(
            skipped,
            vec![(PathBuf::from("/proc/sys"), "pseudo filesystem")]
        );
    }

    #[test]
    fn a_missing_root_is_reported() {
        let mut w = Walk::new(&[]).expect("walk");
        let (_, skipped) = list(&mut w, Path::new("/nonexistent/vigil"));
        assert_eq!(
            skipped,
            vec![(PathBuf::from("/nonexistent/vigil"), "vanished")]
        );
    }
}
