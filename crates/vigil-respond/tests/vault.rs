//! The quarantine vault on real files: a file goes in and comes back byte for byte with
//! its owner, group, mode (set-uid included) and times; across filesystems it is copied
//! and checked; a full vault leaves the file where it was and says so; missing files,
//! symbolic links and changed vault copies are reported, never half done.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use vigil_respond::vault::{sha256_of, Provenance, Vault, VaultError};

fn tmp(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("vigil-vault-{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn provenance() -> Provenance {
    Provenance {
        finding_uid: Some("finding-1".into()),
        rule_uid: Some("rule-1".into()),
        story: Some("story-1".into()),
        requested_by: None,
    }
}

/// A file with awkward bytes, an owner that is not root, set-uid and an old mtime.
fn victim(dir: &Path, name: &str, size: usize) -> (PathBuf, Vec<u8>) {
    let p = dir.join(name);
    let bytes: Vec<u8> = (0..size).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(&p, &bytes).expect("write");
    std::os::unix::fs::chown(&p, Some(65534), Some(65533)).expect("chown");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o4751)).expect("chmod");
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    let f = std::fs::File::options().write(true).open(&p).expect("open");
    f.set_times(
        std::fs::FileTimes::new()
            .set_modified(old)
            .set_accessed(old),
    )
    .expect("times");
    (p, bytes)
}

#[test]
fn a_file_goes_into_the_vault_and_comes_back_byte_for_byte_with_owner_mode_and_times() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let dir = tmp("roundtrip");
    let vault = Vault::open(&dir.join("vault")).expect("vault");
    let vmode = std::fs::metadata(dir.join("vault"))
        .expect("vault dir")
        .mode()
        & 0o777;
    assert_eq!(vmode, 0o700, "root-only");
    let (path, bytes) = victim(&dir, "payload.bin", 300_000);
    let before = std::fs::metadata(&path).expect("meta");
    let item = vault
        .quarantine(&path, provenance(), 1 << 30, 1_700_000_000_000)
        .expect("quarantined");
    assert!(!path.exists(), "the file left its place");
    assert_eq!(item.uid, 65534);
    assert_eq!(item.gid, 65533);
    assert_eq!(item.mode, 0o4751);
    assert_eq!(item.size, 300_000);
    assert_eq!(item.sha256, sha256_of(&bytes[..]).expect("hash"));
    let content = dir.join("vault").join(&item.id).join("content");
    let m = std::fs::metadata(&content).expect("in the vault");
    assert_eq!(m.mode() & 0o7777, 0o400, "never runnable in the vault");
    let (items, bad) = vault.list().expect("list");
    assert!(bad.is_empty());
    assert_eq!(items, vec![item.clone()]);
    // Back, byte for byte, with owner, group, mode (set-uid kept) and times.
    let back = vault.restore(&item.id, None).expect("restored");
    assert_eq!(back.path, path);
    assert_eq!(std::fs::read(&path).expect("read"), bytes);
    let after = std::fs::metadata(&path).expect("meta");
    assert_eq!(
        (after.uid(), after.gid(), after.mode() & 0o7777),
        (65534, 65533, 0o4751)
    );
    assert_eq!(after.mtime(), before.mtime());
    assert_eq!(after.mtime_nsec(), before.mtime_nsec());
    assert!(
        vault.list().expect("list").0.is_empty(),
        "the item left the vault"
    );
    // A second restore of the same id: no such item.
    assert!(matches!(
        vault.restore(&item.id, None),
        Err(VaultError::NoItem { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn restore_never_overwrites_and_can_go_elsewhere() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let dir = tmp("elsewhere");
    let vault = Vault::open(&dir.join("vault")).expect("vault");
    let (path, bytes) = victim(&dir, "x", 1000);
    let item = vault
        .quarantine(&path, provenance(), 1 << 20, 1)
        .expect("in");
    std::fs::write(&path, b"a new file in its place").expect("write");
    let e = vault.restore(&item.id, None).expect_err("exists");
    assert!(e.to_string().contains("exists; move it away"), "{e}");
    assert_eq!(
        std::fs::read(&path).expect("kept"),
        b"a new file in its place"
    );
    let to = dir.join("restored-copy");
    vault
        .restore(&item.id, Some(&to))
        .expect("restored elsewhere");
    assert_eq!(std::fs::read(&to).expect("read"), bytes);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_files_links_and_large_files_are_refused_and_left_alone() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let dir = tmp("refused");
    let vault = Vault::open(&dir.join("vault")).expect("vault");
    let e = vault
        .quarantine(&dir.join("gone"), provenance(), 1 << 20, 1)
        .expect_err("missing");
    assert!(matches!(e, VaultError::Missing { .. }), "{e}");
    assert!(e
        .to_string()
        .ends_with("no such file (gone before it could be quarantined)"));
    let (target, _) = victim(&dir, "target", 10);
    let link = dir.join("link");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let e = vault
        .quarantine(&link, provenance(), 1 << 20, 1)
        .expect_err("symlink");
    assert!(e.to_string().contains("not a regular file"), "{e}");
    assert!(link.exists() && target.exists());
    let e = vault
        .quarantine(&target, provenance(), 5, 1)
        .expect_err("too big");
    assert!(
        e.to_string()
            .contains("10 bytes, more than the vault takes (5)"),
        "{e}"
    );
    assert!(target.exists());
    assert!(
        vault.list().expect("list").0.is_empty(),
        "nothing half done"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);
impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "vigil-test"])
            .arg(dir)
            .status()
            .ok()?
            .success();
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_vault_leaves_the_file_in_place_and_says_so() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let dir = tmp("full");
    let Some(small) = Tmpfs::mount(&dir.join("small"), "64k") else {
        vigil_testdata::skip("cannot mount a tmpfs");
        return;
    };
    let vault = Vault::open(&small.0.join("vault")).expect("vault");
    // On another filesystem than the vault: copied, and the copy does not fit.
    let (path, bytes) = victim(&dir, "big.bin", 512 * 1024);
    let e = vault
        .quarantine(&path, provenance(), 1 << 30, 1)
        .expect_err("no space");
    let msg = e.to_string();
    assert!(msg.contains("cannot copy into the vault"), "{msg}");
    assert!(msg.contains("the file is in place"), "{msg}");
    assert_eq!(std::fs::read(&path).expect("in place"), bytes);
    assert!(vault.list().expect("list").0.is_empty(), "no partial item");
    // A file that fits crosses filesystems by copy, checked, and comes back.
    let (path, bytes) = victim(&dir, "small.bin", 8 * 1024);
    let item = vault
        .quarantine(&path, provenance(), 1 << 30, 2)
        .expect("copied in");
    assert!(!path.exists());
    vault.restore(&item.id, None).expect("back");
    assert_eq!(std::fs::read(&path).expect("read"), bytes);
    drop(small);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_vault_copy_changed_behind_its_back_is_not_restored() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let dir = tmp("corrupt");
    let vault = Vault::open(&dir.join("vault")).expect("vault");
    let (path, _) = victim(&dir, "f", 4096);
    let item = vault
        .quarantine(&path, provenance(), 1 << 20, 1)
        .expect("in");
    let content = dir.join("vault").join(&item.id).join("content");
    std::fs::set_permissions(&content, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(&content, b"tampered").expect("tamper");
    let e = vault.restore(&item.id, None).expect_err("corrupt");
    assert!(matches!(e, VaultError::Corrupt { .. }), "{e}");
    assert!(!path.exists(), "nothing half restored");
    assert!(vault.get(&item.id).is_ok(), "the item stays");
    // Bad ids never escape the vault.
    for bad in ["../x", "", "a/b", "."] {
        assert!(
            matches!(vault.get(bad), Err(VaultError::NoItem { .. })),
            "{bad}"
        );
    }
    vault.purge(&item.id).expect("purged");
    assert!(vault.list().expect("list").0.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
