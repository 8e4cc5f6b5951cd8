//! Vigil's Linux sensor.
//!
//! eBPF programs written in C (`src/bpf/`, one probe per file under `probes/`) attach
//! to BTF-enabled tracepoints (`tp_btf`): no kprobes. They are compiled with clang
//! against CO-RE relocations at build time (`build.rs`) and loaded with libbpf-rs.
//! They write fixed-layout records ([`abi`]) to one ring buffer; records that do not
//! fit are counted per CPU and per kind in the kernel, and user space reports every loss
//! as an event. [`Converter`] turns records into OCSF events with process lineage from a
//! [`proc::ProcTable`] seeded from /proc.
//!
//! What it sees today: process exec (path, argv, cwd, credentials and capabilities,
//! tty, session, cgroup, the executable's device, inode and mtime and its SHA-256),
//! fork and exit (code or signal); file, network, DNS, ptrace, process memory access, memfd,
//! identity, BPF and module events from syscalls; read-only opens of the files on the
//! watch list ([`watch`]). The agent's own process and configured
//! commands are filtered out in the kernel.
//!
//! [`SensorBackend`] is the sensor the agent runs: this eBPF [`Sensor`] or, without
//! eBPF, the [`Fallback`] (the netlink proc connector and fanotify), as [`Mode`] says.

pub mod abi;
mod backend;
pub mod config;
pub mod container;
mod error;
mod fallback;
#[cfg(test)]
mod fuzz;
pub mod hash;
pub mod host;
pub mod ocsf;
pub mod proc;
mod sensor;
mod stats;
pub mod watch;

pub use backend::SensorBackend;
pub use config::{ConfigError, Mode, SensorConfig};
pub use error::SensorError;
pub use fallback::Fallback;
pub use host::boot_ns;
pub use ocsf::Converter;
pub use sensor::{Features, Sensor};
pub use stats::Stats;
