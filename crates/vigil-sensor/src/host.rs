//! Facts about the host: identity for `device`, and the clock that turns the kernel's
//! boot-relative times into wall-clock times.

use std::time::{SystemTime, UNIX_EPOCH};
use vigil_event::model::{device_type, os_type, Device, Os};

/// Clock ticks per second of `/proc/PID/stat` start times (USER_HZ, 100 on Linux).
pub const USER_HZ: u64 = 100;

/// What the sensor knows of its host.
#[derive(Debug, Clone)]
pub struct Host {
    /// Host name.
    pub hostname: String,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    /// `/etc/machine-id`, when present.
    pub machine_id: Option<String>,
    /// Kernel release.
    pub kernel_release: String,
    /// `PRETTY_NAME` of `/etc/os-release`.
    pub os_name: String,
    /// Wall-clock time of boot, ns since the epoch.
    pub boot_epoch_ns: u64,
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Nanoseconds since boot from `/proc/uptime` (`<seconds since boot> <idle seconds>`,
/// 10 ms resolution).
pub fn parse_uptime(text: &str) -> Result<u64, String> {
    let first = text.split_whitespace().next().unwrap_or_default();
    match first.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Ok((secs * 1e9) as u64),
        _ => Err(format!("`{first}` is not a number of seconds")),
    }
}

impl Host {
    /// Reads the host's identity from /proc and /etc; a /proc file that does not parse
    /// is logged (see [`Host::detect_with`] to count it).
    pub fn detect() -> Host {
        Host::detect_with(&mut |e| tracing::warn!("malformed /proc file: {e}"))
    }

    /// Reads the host's identity from /proc and /etc; a /proc file that does not parse
    /// is handed to `malformed` (an unreadable `/proc/uptime` puts boot at now).
    pub fn detect_with(malformed: &mut dyn FnMut(crate::proc::ProcError)) -> Host {
        let os_name = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_else(|| "Linux".to_string());
        // Seconds since boot (CLOCK_BOOTTIME, 10 ms resolution).
        let uptime_ns = read_trim("/proc/uptime").map_or(0, |text| {
            parse_uptime(&text).unwrap_or_else(|what| {
                malformed(crate::proc::ProcError {
                    path: "/proc/uptime".into(),
                    what,
                });
                0
            })
        });
        Host {
            hostname: read_trim("/proc/sys/kernel/hostname").unwrap_or_else(|| "localhost".into()),
            boot_id: read_trim("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
            machine_id: read_trim("/etc/machine-id"),
            kernel_release: read_trim("/proc/sys/kernel/osrelease").unwrap_or_default(),
            os_name,
            boot_epoch_ns: now_ns().saturating_sub(uptime_ns),
        }
    }

    /// Milliseconds since the epoch of a boot-relative time in ns (saturating: a time
    /// past what u64 ns since the epoch hold, about the year 2554, is that year's end).
    pub fn epoch_ms(&self, boot_ns: u64) -> i64 {
        i64::try_from(self.boot_epoch_ns.saturating_add(boot_ns) / 1_000_000).unwrap_or(i64::MAX)
    }

    /// Vigil's stable process uid: boot id, pid and start time (in clock ticks, as
    /// `/proc/PID/stat` gives it, so processes seen at start and later agree). Unique
    /// across pid reuse and reboots.
    pub fn process_uid(&self, pid: u32, start_ticks: u64) -> String {
        format!("{}-{pid}-{start_ticks}", self.boot_id)
    }

    /// The OCSF `device` for this host.
    pub fn device(&self) -> Device {
        Device {
            type_id: device_type::SERVER,
            kind: Some(device_type::name(device_type::SERVER).into()),
            hostname: Some(self.hostname.clone()),
            uid: self.machine_id.clone(),
            boot_uid: Some(self.boot_id.clone()),
            boot_time: Some(i64::try_from(self.boot_epoch_ns / 1_000_000).unwrap_or(0)),
            os: Some(Os {
                name: self.os_name.clone(),
                type_id: os_type::LINUX,
                kind: Some(os_type::name(os_type::LINUX).into()),
                kernel_release: Some(self.kernel_release.clone()),
                ..Os::default()
            }),
            ..Device::default()
        }
    }
}

/// Start time in clock ticks from ns since boot.
pub fn ticks(boot_ns: u64) -> u64 {
    boot_ns / (1_000_000_000 / USER_HZ)
}

/// Now, on the clock of the kernel's record times: ns since boot (`CLOCK_BOOTTIME`).
pub fn boot_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).map_or(0, |t| {
        u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000
            + u64::try_from(t.tv_nsec()).unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: boot time plus a record's time was added unchecked, which overflowed
    /// (a panic in debug builds) for a time near `u64::MAX`.
    #[test]
    fn uptime_parses_or_says_why() {
        assert_eq!(parse_uptime("12.34 56.78"), Ok(12_340_000_000));
        assert_eq!(parse_uptime("0.00 0.00\n"), Ok(0));
        for bad in ["", "x 1", "-1 2", "NaN 1", "inf 1"] {
            assert!(parse_uptime(bad).is_err(), "{bad}");
        }
        let real = std::fs::read_to_string("/proc/uptime").expect("uptime");
        assert!(parse_uptime(&real).is_ok_and(|ns| ns > 0), "{real}");
        let mut rng = crate::fuzz::Rng::for_test(10);
        for i in 0..crate::fuzz::iterations() {
            let bad = rng.mutate_text(&real);
            let _ = crate::fuzz::no_panic("parse_uptime", i, bad.as_bytes(), || parse_uptime(&bad));
        }
    }

    #[test]
    fn epoch_ms_of_a_time_past_u64_ns_saturates() {
        let host = Host::detect();
        let boot_ms = i64::try_from(host.boot_epoch_ns / 1_000_000).expect("ms fit");
        assert_eq!(host.epoch_ms(0), boot_ms);
        assert_eq!(host.epoch_ms(5_000_000), boot_ms + 5);
        let end = i64::try_from(u64::MAX / 1_000_000).expect("ms fit");
        assert_eq!(host.epoch_ms(u64::MAX), end);
        assert_eq!(host.epoch_ms(u64::MAX - host.boot_epoch_ns), end);
    }
}
