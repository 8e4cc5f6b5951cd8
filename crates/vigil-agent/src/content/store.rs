//! Where applied bundles live, and the switch between them.
//!
//! ```text
//!  DIR/                      (root-only, 0700)
//!    versions/<version>/     each bundle applied, as checked
//!    current -> versions/V   what the agent runs
//!    previous -> versions/U  what ran before, for `rollback`
//! ```
//!
//! A switch writes the new link beside the old one and renames it over (rename(2) is
//! atomic): a reader sees the old target or the new one, never none. The agent follows
//! `current` ([`super::watch`]).

use super::{load, verify, Content, Refused, Settings, MANIFEST};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The link to what runs.
pub const CURRENT: &str = "current";
/// The link to what ran before.
pub const PREVIOUS: &str = "previous";
/// The directory of applied bundles.
pub const VERSIONS: &str = "versions";

/// Why a bundle could not be applied or rolled back to.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The bundle failed its check: nothing changed.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The version is applied already with other content.
    #[error(
        "version {version} is already applied with other content ({}); give the new \
         bundle a version of its own",
        .dir.display()
    )]
    VersionTaken {
        /// The version.
        version: String,
        /// Where the applied one is.
        dir: PathBuf,
    },
    /// There is nothing to roll back to.
    #[error("no previous content to roll back to in {}", .0.display())]
    NoPrevious(PathBuf),
    /// A file operation failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What an apply or a rollback did.
#[derive(Debug)]
pub struct Switched {
    /// The content that now runs (checked).
    pub content: Content,
    /// The version that ran before, if any.
    pub previous: Option<String>,
}

/// The version a link of `dir` points at (`versions/<version>`), if any.
pub fn linked(dir: &Path, link: &str) -> Option<String> {
    let target = std::fs::read_link(dir.join(link)).ok()?;
    let name = target.file_name()?.to_str()?.to_string();
    Some(name)
}

/// The directory of an applied version.
pub fn version_dir(dir: &Path, version: &str) -> PathBuf {
    dir.join(VERSIONS).join(version)
}

/// Points `dir/link` at `versions/<version>`, atomically.
fn set_link(dir: &Path, link: &str, version: &str) -> Result<(), StoreError> {
    let tmp = dir.join(format!(".{link}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let target = Path::new(VERSIONS).join(version);
    std::os::unix::fs::symlink(&target, &tmp).map_err(io(&tmp))?;
    let path = dir.join(link);
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

fn make_private_dir(path: &Path) -> Result<(), StoreError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io(path))
}

/// Checks the bundle at `src`, copies it into `dir/versions/<version>/`, checks the
/// copy completely (what runs is what was checked), then switches `current` to it and
/// `previous` to what ran. A refused bundle changes nothing.
pub fn apply(src: &Path, dir: &Path, settings: &Settings) -> Result<Switched, StoreError> {
    let manifest = verify(src)?;
    // Directories it creates are root-only; one that exists keeps its mode (a content
    // directory given by mistake, /tmp say, is not changed).
    make_private_dir(&dir.join(VERSIONS))?;
    let target = version_dir(dir, &manifest.version);
    let fresh = if target.exists() {
        let applied = std::fs::read(target.join(MANIFEST)).unwrap_or_default();
        let given = std::fs::read(src.join(MANIFEST)).map_err(io(src))?;
        if applied != given {
            return Err(StoreError::VersionTaken {
                version: manifest.version,
                dir: target,
            });
        }
        false
    } else {
        // Copied aside, renamed into place once whole.
        let tmp =
            dir.join(VERSIONS)
                .join(format!(".{}.tmp-{}", manifest.version, std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        make_private_dir(&tmp)?;
        for name in manifest.files.keys().map(String::as_str).chain([MANIFEST]) {
            let to = tmp.join(name);
            if let Some(parent) = to.parent() {
                make_private_dir(parent)?;
            }
            std::fs::copy(src.join(name), &to).map_err(io(&to))?;
        }
        std::fs::rename(&tmp, &target).map_err(io(&target))?;
        true
    };
    let content = match load(&target, settings) {
        Ok(c) => c,
        Err(refused) => {
            if fresh {
                let _ = std::fs::remove_dir_all(&target);
            }
            return Err(Refused {
                dir: src.to_path_buf(),
                ..refused
            }
            .into());
        }
    };
    let previous = linked(dir, CURRENT).filter(|v| *v != content.version);
    if let Some(p) = &previous {
        set_link(dir, PREVIOUS, p)?;
    }
    set_link(dir, CURRENT, &content.version)?;
    Ok(Switched { content, previous })
}

/// Switches back to the previous content (checked again first: a bundle that no longer
/// passes is not switched to), making the current one the previous.
pub fn rollback(dir: &Path, settings: &Settings) -> Result<Switched, StoreError> {
    let prev = linked(dir, PREVIOUS).ok_or_else(|| StoreError::NoPrevious(dir.to_path_buf()))?;
    let content = load(&version_dir(dir, &prev), settings)?;
    let current = linked(dir, CURRENT);
    if let Some(c) = &current {
        set_link(dir, PREVIOUS, c)?;
    }
    set_link(dir, CURRENT, &prev)?;
    Ok(Switched {
        content,
        previous: current,
    })
}

/// What the store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The version `current` names.
    pub current: Option<String>,
    /// The version `previous` names.
    pub previous: Option<String>,
    /// Every applied version, sorted.
    pub versions: Vec<String>,
}

/// What `dir` holds.
pub fn status(dir: &Path) -> Status {
    let mut versions: Vec<String> = std::fs::read_dir(dir.join(VERSIONS))
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    Status {
        current: linked(dir, CURRENT),
        previous: linked(dir, PREVIOUS),
        versions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::tests::{good, settings, tmp};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn apply_switches_current_and_previous_and_rollback_switches_back() {
        let root = tmp("store");
        let (b1, b2, store) = (root.join("b1"), root.join("b2"), root.join("store"));
        good(&b1, "1");
        good(&b2, "2");
        let s = settings();
        let first = apply(&b1, &store, &s).expect("applies");
        assert_eq!(
            (first.content.version.as_str(), first.previous),
            ("1", None)
        );
        let second = apply(&b2, &store, &s).expect("applies");
        assert_eq!(second.previous.as_deref(), Some("1"));
        let st = status(&store);
        assert_eq!(
            st,
            Status {
                current: Some("2".into()),
                previous: Some("1".into()),
                versions: vec!["1".into(), "2".into()],
            }
        );
        // The applied copy is what runs: the source may change afterwards.
        std::fs::write(b2.join("intel/list.txt"), "changed\n").expect("write");
        assert!(verify(&version_dir(&store, "2")).is_ok());
        let mode = std::fs::metadata(&store)
            .expect("store")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let back = rollback(&store, &s).expect("rolls back");
        assert_eq!(back.content.version, "1");
        assert_eq!(back.previous.as_deref(), Some("2"));
        assert_eq!(linked(&store, CURRENT).as_deref(), Some("1"));
        assert_eq!(linked(&store, PREVIOUS).as_deref(), Some("2"));
        // Applying a version again with the same content is a switch; with other
        // content, a refusal.
        apply(&b1, &store, &s).expect("same content again");
        let e = apply(&b2, &store, &s).expect_err("version 2 changed");
        assert!(matches!(e, StoreError::Refused(_)), "{e}");
        seal(&b2, "2");
        let e = apply(&b2, &store, &s).expect_err("version 2 taken");
        assert!(matches!(e, StoreError::VersionTaken { .. }), "{e}");
        let _ = std::fs::remove_dir_all(root);
    }

    fn seal(dir: &Path, version: &str) {
        crate::content::seal(dir, version, "").expect("seals");
    }

    #[test]
    fn a_refused_bundle_changes_nothing() {
        let root = tmp("store-refused");
        let (b1, bad, store) = (root.join("b1"), root.join("bad"), root.join("store"));
        good(&b1, "1");
        good(&bad, "2");
        std::fs::write(bad.join("yara/bad.yar"), "rule bad { condition: $x }\n").expect("w");
        seal(&bad, "2");
        let s = settings();
        apply(&b1, &store, &s).expect("applies");
        let e = apply(&bad, &store, &s).expect_err("refused");
        let StoreError::Refused(r) = e else {
            panic!("{e}")
        };
        assert!(
            r.problems[0].starts_with("yara/bad.yar:1:"),
            "{:?}",
            r.problems
        );
        assert_eq!(r.dir, bad, "named as given");
        assert_eq!(
            status(&store),
            Status {
                current: Some("1".into()),
                previous: None,
                versions: vec!["1".into()],
            },
            "no copy left behind, nothing switched"
        );
        let e = rollback(&store, &s).expect_err("nothing to roll back to");
        assert!(matches!(e, StoreError::NoPrevious(_)), "{e}");
        let _ = std::fs::remove_dir_all(root);
    }
}
