//! Support for the bounded random tests of the decoders (stable Rust, part of `cargo
//! test`): a seeded generator, and mutations of valid inputs. `VIGIL_FUZZ_ITERS` sets
//! the iterations of each test (default 2000), `VIGIL_FUZZ_SEED` the seed (default
//! fixed, so a failure reproduces): the knobs of vigil-sigma's fuzz test.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// xorshift64*: small, deterministic, good enough to drive mutations.
pub(crate) struct Rng(u64);

impl Rng {
    /// The generator of one test: the seed (`VIGIL_FUZZ_SEED` or the default) mixed with
    /// `salt`, so that tests do not all draw the same numbers.
    pub(crate) fn for_test(salt: u64) -> Rng {
        // splitmix64's finalizer: neighbouring seeds give unrelated streams.
        let mut z = seed() ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (0 for `n` = 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True one time in `n`.
    pub(crate) fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n.max(1))
    }

    /// An element of `xs`.
    pub(crate) fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    /// `len` random bytes.
    pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// A value that often sits at a boundary: 0, 1, all ones, a sign bit, or random.
    pub(crate) fn edgy(&mut self) -> u64 {
        match self.below(8) {
            0 => 0,
            1 => 1,
            2 => u64::MAX,
            3 => u64::from(u32::MAX),
            4 => 1 << self.below(64),
            5 => (1 << self.below(64)) - 1,
            _ => self.next(),
        }
    }

    /// `input` changed a little: bytes flipped, set to boundary values, inserted or
    /// removed, words overwritten, the end cut or extended.
    pub(crate) fn mutate(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..=self.below(4) {
            let at = self.below(out.len() + 1);
            match self.below(7) {
                0 if at < out.len() => out[at] ^= 1 << self.below(8),
                1 if at < out.len() => out[at] = self.pick(&[0, 0xff, 0x7f, 0x80, b')', b' ']),
                2 => out.insert(at, self.next() as u8),
                3 if at < out.len() => {
                    out.remove(at);
                }
                4 => {
                    let word = self.edgy().to_ne_bytes();
                    let n = self.pick(&[2, 4, 8]);
                    for (i, b) in word.iter().take(n).enumerate() {
                        if let Some(slot) = out.get_mut(at + i) {
                            *slot = *b;
                        }
                    }
                }
                5 => out.truncate(at),
                _ => {
                    let more = self.below(64);
                    let tail = self.bytes(more);
                    out.extend(tail);
                }
            }
        }
        out
    }

    /// `text` mutated as bytes, read back as text (invalid UTF-8 replaced).
    pub(crate) fn mutate_text(&mut self, text: &str) -> String {
        String::from_utf8_lossy(&self.mutate(text.as_bytes())).into_owned()
    }
}

fn seed() -> u64 {
    std::env::var("VIGIL_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_CAFE)
}

/// Iterations per test: `VIGIL_FUZZ_ITERS`, default 2000.
pub(crate) fn iterations() -> usize {
    std::env::var("VIGIL_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// Runs `f` on `input`; a panic fails the test with the input (in hex) and how to
/// repeat the run, instead of a bare backtrace.
pub(crate) fn no_panic<T>(what: &str, i: usize, input: &[u8], f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| e.downcast_ref::<&str>().copied())
                .unwrap_or("?");
            let hex: String = input.iter().take(512).map(|b| format!("{b:02x}")).collect();
            panic!(
                "{what} panicked ({msg}) at iteration {i} (VIGIL_FUZZ_SEED={}) on {} bytes \
                 (the first 512 in hex): {hex}",
                seed(),
                input.len()
            )
        }
    }
}
