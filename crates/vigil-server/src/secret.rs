//! Secrets: random tokens from the OS generator, their stored form (SHA-256), hex.

use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

/// `N` random bytes from the operating system's generator.
pub fn random<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS generator fails only when the kernel cannot give entropy at all; nothing
    // secret can be made then, so it is a fatal condition, not a recoverable error.
    #[expect(
        clippy::expect_used,
        reason = "no secret can be made without the OS generator"
    )]
    SystemRandom::new()
        .fill(&mut buf)
        .expect("the operating system's random generator failed");
    buf
}

/// A new token: `prefix` and 32 random bytes in hex (256 bits).
pub fn token(prefix: &str) -> String {
    format!("{prefix}{}", hex(&random::<32>()))
}

/// The stored form of a token: its SHA-256.
pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// SHA-256 of bytes (a certificate's fingerprint).
pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Compares two byte strings in time independent of where they differ.
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A one-time password for a new user: 20 characters from an alphabet without look-alikes
/// (about 113 bits).
pub fn password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    random::<20>()
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_distinct_and_hex() {
        let a = token("vet_");
        let b = token("vet_");
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 64);
        assert!(a[4..].bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }

    #[test]
    fn equal_compares_whole_strings() {
        assert!(equal(b"abc", b"abc"));
        assert!(!equal(b"abc", b"abd"));
        assert!(!equal(b"abc", b"ab"));
    }

    #[test]
    fn passwords_use_the_alphabet() {
        let p = password();
        assert_eq!(p.chars().count(), 20);
        assert!(p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() && !"0O1lI".contains(c)));
    }
}
