//! The sensor's settings, as the `[sensor]` table of the agent's TOML config file.

use serde::Deserialize;

/// Which sensor to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// eBPF where the kernel allows it, else the fallback (and the agent says why).
    #[default]
    Auto,
    /// eBPF only: fail when it cannot load.
    Ebpf,
    /// The fallback only: netlink proc connector for processes, fanotify for files.
    Fallback,
}

/// Sensor settings. Every field has a default; unknown fields are an error.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SensorConfig {
    /// `auto` (eBPF, else the fallback), `ebpf` or `fallback` (netlink proc connector and
    /// fanotify: processes and written files only, no lineage from the kernel).
    pub mode: Mode,
    /// Size of the kernel-to-user ring buffer in MiB (a power of two, 1 to 1024). A
    /// larger buffer absorbs longer bursts before records are lost.
    pub ring_buffer_mib: u32,
    /// Commands (`comm`, at most 15 bytes) whose events are dropped in the kernel, before
    /// they cost anything (for example noisy monitoring daemons).
    pub exclude_comms: Vec<String>,
    /// Executable path prefixes whose exec events are not reported (user space).
    pub exclude_exe_prefixes: Vec<String>,
    /// File path prefixes whose file events are not reported (user space, before the
    /// event is built): noisy directories such as a build tree or a database's files. A
    /// rename is reported unless both its paths are excluded.
    pub exclude_file_prefixes: Vec<String>,
    /// Ancestors carried in each event's lineage (`process.parent_process` chain and
    /// `process.ancestry`).
    pub lineage_depth: usize,
    /// Processes kept in the process table at most.
    pub process_table_max: usize,
    /// Seconds an exited process stays in the table for late events; one whose children
    /// still run stays until they exit, for their lineage.
    pub process_linger_secs: u64,
    /// Executables whose SHA-256 is cached at most.
    pub hash_cache_max: usize,
    /// Whether to hash executables (SHA-256, cached by device, inode and mtime).
    pub hash_executables: bool,
    /// Milliseconds between reads of the kernel's loss counters.
    pub loss_check_ms: u64,
    /// Seconds between the sensor's `Statistics` events (records received, lost by kind,
    /// malformed, events written, processes tracked): its health as a metric. 0: none.
    pub stats_interval_secs: u64,
    /// Fork coalescing: a fork whose child execs before doing anything else is reported
    /// once, by the exec's event with launch type `Spawn`; a fork is held back at most
    /// this many milliseconds for that, then reported as `Fork` (so is one whose child
    /// first does anything else). 0 reports every fork and every exec on its own.
    pub coalesce_fork_ms: u64,
    /// Microseconds an exec may wait for the agent (eBPF sensor): an exec wakes it
    /// unless it was awake within this time, and while execs come the agent looks again
    /// after this time, so a finding on an exec is due within about this long. Longer
    /// costs less CPU on a host running thousands of programs a second; 0 lets execs
    /// wait with the other records for a batch (up to 25 ms). Default 500: at 1,600
    /// execs a second the median exec to finding is 0.73-0.77 ms (in bursts) and
    /// 0.22-0.43 ms (evenly spaced) against 0.83-1.09 ms at 1000, for up to 1.7 points
    /// of a core more (BENCHMARKS.md, "Live detection").
    pub exec_wakeup_us: u32,
    /// Files whose read-only opens are reported (File System Activity `Open`); every
    /// other read-only open is dropped in the kernel. At most 16 patterns, each an
    /// absolute path or `*/` and a path at any depth; a component is literal or holds one
    /// `*` (any characters but `/`), and the file name is not a bare `*`.
    pub watched_reads: Vec<String>,
}

impl Default for SensorConfig {
    fn default() -> Self {
        SensorConfig {
            mode: Mode::Auto,
            ring_buffer_mib: 8,
            exclude_comms: Vec::new(),
            exclude_exe_prefixes: Vec::new(),
            exclude_file_prefixes: Vec::new(),
            lineage_depth: 8,
            process_table_max: 65_536,
            process_linger_secs: 10,
            hash_cache_max: 4096,
            hash_executables: true,
            loss_check_ms: 1000,
            stats_interval_secs: 60,
            coalesce_fork_ms: 100,
            exec_wakeup_us: 500,
            watched_reads: crate::watch::DEFAULT_WATCHED_READS
                .iter()
                .map(|p| p.to_string())
                .collect(),
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The ring buffer size is not a power of two in range.
    #[error("sensor.ring_buffer_mib = {0}: must be a power of two from 1 to 1024")]
    RingBuffer(u32),
    /// A comm longer than the kernel keeps.
    #[error("sensor.exclude_comms: `{0}` is longer than 15 bytes, the kernel's comm length")]
    CommTooLong(String),
    /// A watch list that cannot be checked.
    #[error("sensor.watched_reads: {0}")]
    Watched(#[from] crate::watch::WatchError),
}

impl SensorConfig {
    /// Checks the settings that types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=1024).contains(&self.ring_buffer_mib) || !self.ring_buffer_mib.is_power_of_two() {
            return Err(ConfigError::RingBuffer(self.ring_buffer_mib));
        }
        if let Some(c) = self.exclude_comms.iter().find(|c| c.len() > 15) {
            return Err(ConfigError::CommTooLong(c.clone()));
        }
        crate::watch::WatchList::parse(&self.watched_reads)?;
        Ok(())
    }
}
