//! The external variables a rule may test, set per file: `filename` (the last path
//! component), `filepath` (the whole path), `extension` (the last `.suffix` of the name,
//! with its dot, lower-cased: `.jpg`), `filetype` (from the first bytes: [`file_type`])
//! and `owner` (the user name of the file's uid, or the uid as a number). These follow
//! the convention of the THOR and LOKI scanners that signature-base's rules are
//! written for (`extension == ".jpg"`, `filetype == "EXE"`).

use std::collections::HashMap;
use std::path::Path;

/// The external variables, all strings.
pub const EXTERNALS: [&str; 5] = ["filename", "filepath", "extension", "filetype", "owner"];

/// The file type its first bytes say: `ELF`, `EXE` (an MZ executable: PE or DOS),
/// `MACH-O`, `ZIP`, `GZIP`, `PDF`, `RTF`, `MDMP` (a minidump), `PHP`, `Python`,
/// `SHELL` (a `#!` script run by a shell), `script` (another `#!` script), `TEXT`
/// (printable text), else `data`.
pub fn file_type(head: &[u8]) -> &'static str {
    const MACHO: [[u8; 4]; 6] = [
        [0xfe, 0xed, 0xfa, 0xce],
        [0xce, 0xfa, 0xed, 0xfe],
        [0xfe, 0xed, 0xfa, 0xcf],
        [0xcf, 0xfa, 0xed, 0xfe],
        [0xca, 0xfe, 0xba, 0xbe],
        [0xbe, 0xba, 0xfe, 0xca],
    ];
    if head.starts_with(b"\x7fELF") {
        "ELF"
    } else if head.starts_with(b"MZ") {
        "EXE"
    } else if head.len() >= 4 && MACHO.iter().any(|m| head[..4] == m[..]) {
        "MACH-O"
    } else if head.starts_with(b"PK\x03\x04") {
        "ZIP"
    } else if head.starts_with(b"\x1f\x8b") {
        "GZIP"
    } else if head.starts_with(b"%PDF") {
        "PDF"
    } else if head.starts_with(b"{\\rtf") {
        "RTF"
    } else if head.starts_with(b"MDMP") {
        "MDMP"
    } else if head.starts_with(b"<?php") {
        "PHP"
    } else if let Some(rest) = head.strip_prefix(b"#!") {
        let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let mut words = line.split_whitespace();
        let prog = words.next().unwrap_or_default();
        // `#!/usr/bin/env python3`: the program is the word after env.
        let prog = if prog.ends_with("/env") {
            words.find(|w| !w.starts_with('-')).unwrap_or_default()
        } else {
            prog
        };
        let base = prog.rsplit('/').next().unwrap_or_default();
        if base.starts_with("python") {
            "Python"
        } else if base.starts_with("php") {
            "PHP"
        } else if matches!(
            base,
            "sh" | "bash" | "dash" | "zsh" | "ksh" | "ash" | "busybox"
        ) {
            "SHELL"
        } else {
            "script"
        }
    } else if !head.is_empty()
        && head
            .iter()
            .all(|&b| b >= 0x20 && b != 0x7f || matches!(b, b'\n' | b'\r' | b'\t') || b >= 0x80)
        && std::str::from_utf8(head).is_ok_and(|_| true)
    {
        "TEXT"
    } else {
        "data"
    }
}

/// The `extension` of a path: its last `.suffix`, with the dot, lower-cased; empty when
/// the name has none (a leading dot, as in `.bashrc`, is no extension).
pub fn extension(path: &Path) -> String {
    path.extension()
        .map(|e| format!(".{}", e.to_string_lossy().to_lowercase()))
        .unwrap_or_default()
}

/// User names by uid, read once (from `/etc/passwd`).
#[derive(Debug, Clone, Default)]
pub struct Owners {
    names: HashMap<u32, String>,
}

impl Owners {
    /// Parses passwd-format text (`name:x:uid:...`); lines that do not parse are ignored
    /// (the file is the system's, not the user's input).
    pub fn from_passwd(text: &str) -> Owners {
        let mut names = HashMap::new();
        for line in text.lines() {
            let mut parts = line.split(':');
            let (Some(name), Some(_), Some(uid)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if let Ok(uid) = uid.parse::<u32>() {
                // The first entry for a uid wins, as getpwuid does.
                names.entry(uid).or_insert_with(|| name.to_string());
            }
        }
        Owners { names }
    }

    /// The system's users (`/etc/passwd`; none if it cannot be read).
    pub fn system() -> Owners {
        std::fs::read_to_string("/etc/passwd")
            .map(|t| Owners::from_passwd(&t))
            .unwrap_or_default()
    }

    /// The user name of `uid`, or the uid as a number when it has none.
    pub fn name(&self, uid: u32) -> std::borrow::Cow<'_, str> {
        match self.names.get(&uid) {
            Some(n) => std::borrow::Cow::Borrowed(n),
            None => std::borrow::Cow::Owned(uid.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_types_from_magic() {
        assert_eq!(file_type(b"\x7fELF\x02\x01"), "ELF");
        assert_eq!(file_type(b"MZ\x90\x00"), "EXE");
        assert_eq!(file_type(b"\xcf\xfa\xed\xfe\x07"), "MACH-O");
        assert_eq!(file_type(b"PK\x03\x04xx"), "ZIP");
        assert_eq!(file_type(b"#!/bin/sh\necho"), "SHELL");
        assert_eq!(file_type(b"#!/usr/bin/env -S python3 -u\n"), "Python");
        assert_eq!(file_type(b"#!/usr/bin/perl -w\n"), "script");
        assert_eq!(file_type(b"<?php echo 1;"), "PHP");
        assert_eq!(file_type(b"hello world\n"), "TEXT");
        assert_eq!(file_type(b"\x00\x01\x02"), "data");
        assert_eq!(file_type(b""), "data");
    }

    #[test]
    fn extensions_keep_the_dot_and_lower_case() {
        assert_eq!(extension(Path::new("/a/b.JPG")), ".jpg");
        assert_eq!(extension(Path::new("/a/b.tar.gz")), ".gz");
        assert_eq!(extension(Path::new("/a/.bashrc")), "");
        assert_eq!(extension(Path::new("/a/noext")), "");
    }

    #[test]
    fn owners_from_passwd() {
        let o = Owners::from_passwd(
            "root:x:0:0:root:/root:/bin/bash\nbad line\nbob:x:1000:1000::/h:/s\nbob2:x:1000:1:::\n",
        );
        assert_eq!(o.name(0), "root");
        assert_eq!(o.name(1000), "bob");
        assert_eq!(o.name(4242), "4242");
    }
}
