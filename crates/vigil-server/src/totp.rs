//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP, HMAC-SHA1, 30-second
//! steps, 6 digits: what authenticator apps use), the key in base32 (RFC 4648) and the
//! `otpauth://` URI an app reads from a QR code.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Seconds per step.
pub const STEP: u64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;

/// HOTP (RFC 4226 section 5.3): the code of `counter` under `key`, `digits` long.
pub fn hotp(key: &[u8], counter: u64, digits: u32) -> u32 {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(key) else {
        return 0;
    };
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = (h[h.len() - 1] & 0x0f) as usize;
    let bin = (u32::from(h[offset]) & 0x7f) << 24
        | u32::from(h[offset + 1]) << 16
        | u32::from(h[offset + 2]) << 8
        | u32::from(h[offset + 3]);
    bin % 10u32.pow(digits)
}

/// The step a Unix time falls in.
pub fn step_of(unix_secs: u64) -> u64 {
    unix_secs / STEP
}

/// The 6-digit code of a step, zero-padded.
pub fn code(key: &[u8], step: u64) -> String {
    format!(
        "{:0width$}",
        hotp(key, step, DIGITS),
        width = DIGITS as usize
    )
}

/// Checks `given` against the steps around `now` (one step either side, for clocks
/// that drift) that are later than `last_step` (a code is accepted once). Returns the
/// step it matched.
pub fn verify(key: &[u8], given: &str, unix_secs: u64, last_step: u64) -> Option<u64> {
    if given.len() != DIGITS as usize || !given.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_of(unix_secs);
    let mut found = None;
    // Every candidate is computed and compared (no early exit on a match).
    for step in [now.saturating_sub(1), now, now + 1] {
        let ok = crate::secret::equal(code(key, step).as_bytes(), given.as_bytes());
        if ok && step > last_step && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// Base32 (RFC 4648, upper case, no padding), as authenticator apps take keys.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decodes base32 (RFC 4648; either case, padding ignored); `None` on any other
/// character.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.bytes().filter(|b| *b != b'=') {
        let v = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The key of an `otpauth://` URI's `secret` parameter.
pub fn key_of_uri(uri: &str) -> Option<Vec<u8>> {
    let query = uri.split_once('?')?.1;
    let secret = query.split('&').find_map(|kv| kv.strip_prefix("secret="))?;
    base32_decode(secret)
}

/// The `otpauth://totp/` URI of a key (Google Authenticator's key URI format).
pub fn uri(issuer: &str, account: &str, key: &[u8]) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP}",
        percent(issuer),
        percent(account),
        base32(key),
        percent(issuer)
    )
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn percent(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, the SHA-1 rows (8 digits, key "12345678901234567890").
    #[test]
    fn rfc6238_sha1_vectors() {
        let key = b"12345678901234567890";
        for (time, want) in [
            (59u64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(hotp(key, step_of(time), 8), want, "time {time}");
        }
    }

    /// RFC 4226 appendix D: HOTP values for counters 0..9 (6 digits).
    #[test]
    fn rfc4226_hotp_vectors() {
        let key = b"12345678901234567890";
        let want = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in want.iter().enumerate() {
            assert_eq!(hotp(key, counter as u64, 6), *want, "counter {counter}");
        }
    }

    #[test]
    fn verify_accepts_neighbouring_steps_once() {
        let key = b"12345678901234567890";
        let t = 1_700_000_000;
        let now = step_of(t);
        assert_eq!(verify(key, &code(key, now), t, 0), Some(now));
        assert_eq!(verify(key, &code(key, now - 1), t, 0), Some(now - 1));
        assert_eq!(verify(key, &code(key, now + 1), t, 0), Some(now + 1));
        assert_eq!(verify(key, &code(key, now - 2), t, 0), None);
        // Used once: the same step is refused after.
        assert_eq!(verify(key, &code(key, now), t, now), None);
        assert_eq!(verify(key, "12345", t, 0), None);
        assert_eq!(verify(key, "12345a", t, 0), None);
    }

    /// RFC 4648 section 10 test vectors.
    #[test]
    fn base32_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(input.as_bytes()), want);
            assert_eq!(base32_decode(want).as_deref(), Some(input.as_bytes()));
        }
        assert_eq!(base32_decode("MZXW6==="), Some(b"foo".to_vec()));
        assert_eq!(base32_decode("mzxw6"), Some(b"foo".to_vec()));
        assert_eq!(base32_decode("MZ1W6"), None);
    }

    #[test]
    fn uri_escapes_names() {
        let u = uri("Vigil", "a b@c", b"foo");
        assert_eq!(
            u,
            "otpauth://totp/Vigil:a%20b%40c?secret=MZXW6&issuer=Vigil&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(key_of_uri(&u), Some(b"foo".to_vec()));
    }
}
