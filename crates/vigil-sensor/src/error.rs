//! Why the sensor could not start or run (either backend).

use crate::config::ConfigError;

/// Why the sensor could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    /// The sensor needs root (eBPF: CAP_BPF and CAP_PERFMON; fallback: CAP_NET_ADMIN and
    /// CAP_SYS_ADMIN).
    #[error("the sensor needs root (CAP_BPF and CAP_PERFMON for eBPF, CAP_NET_ADMIN and CAP_SYS_ADMIN for the fallback); running as uid {0}")]
    NotRoot(u32),
    /// The kernel has no BTF, so CO-RE programs cannot be relocated.
    #[error("this kernel has no BTF (/sys/kernel/btf/vmlinux); the eBPF sensor cannot load")]
    NoBtf,
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The fallback sensor could not open or read its kernel interfaces.
    #[error("fallback sensor: cannot {what}")]
    Fallback {
        /// What was being done.
        what: String,
        /// The system error.
        source: std::io::Error,
    },
    /// libbpf refused the object or a program.
    #[error("cannot {what}")]
    Bpf {
        /// What was being done.
        what: String,
        /// libbpf's error.
        source: libbpf_rs::Error,
    },
}
