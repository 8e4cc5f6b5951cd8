//! The sensor the agent runs: eBPF where the kernel allows it, else the fallback.

use crate::config::{Mode, SensorConfig};
use crate::error::SensorError;
use crate::fallback::Fallback;
use crate::sensor::Sensor;
use crate::stats::Stats;
use std::time::Duration;
use vigil_event::OcsfEvent;

/// A running sensor of either backend: eBPF or the fallback (what the agent runs; the
/// backend is chosen by [`Mode`]).
#[derive(Debug)]
pub enum SensorBackend {
    /// The eBPF sensor.
    Ebpf(Box<Sensor>),
    /// The netlink proc connector and fanotify.
    Fallback(Box<Fallback>),
}

macro_rules! both {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            SensorBackend::Ebpf($s) => $e,
            SensorBackend::Fallback($s) => $e,
        }
    };
}

impl SensorBackend {
    /// Starts the sensor `config.mode` asks for. In `auto` mode a kernel that refuses
    /// eBPF (no BTF, a program that does not load or attach) gets the fallback, and the
    /// log says why.
    pub fn start(config: SensorConfig) -> Result<SensorBackend, SensorError> {
        config.validate()?;
        let uid = crate::proc::euid();
        if uid != 0 {
            return Err(SensorError::NotRoot(uid));
        }
        match config.mode {
            Mode::Ebpf => Ok(SensorBackend::Ebpf(Box::new(Sensor::start(config)?))),
            Mode::Fallback => Ok(SensorBackend::Fallback(Box::new(Fallback::start(config)?))),
            Mode::Auto => match Sensor::start(config.clone()) {
                Ok(s) => Ok(SensorBackend::Ebpf(Box::new(s))),
                Err(e) => {
                    tracing::warn!("eBPF sensor unavailable ({e}); running the fallback sensor");
                    Ok(SensorBackend::Fallback(Box::new(Fallback::start(config)?)))
                }
            },
        }
    }

    /// `ebpf` or `netlink+fanotify`.
    pub fn mode_name(&self) -> &'static str {
        match self {
            SensorBackend::Ebpf(_) => "ebpf",
            SensorBackend::Fallback(_) => "netlink+fanotify",
        }
    }

    /// Waits up to `timeout` and hands events to `sink`.
    pub fn poll(
        &mut self,
        timeout: Duration,
        sink: &mut dyn FnMut(OcsfEvent),
    ) -> Result<usize, SensorError> {
        both!(self, s => s.poll(timeout, sink))
    }

    /// Waits up to `timeout` and hands events to `sink` with the kernel's time of the
    /// record each came from (ns since boot, `CLOCK_BOOTTIME`; see [`boot_ns`](crate::host::boot_ns)), `None`
    /// for the sensor's own events.
    pub fn poll_timed(
        &mut self,
        timeout: Duration,
        sink: &mut dyn FnMut(OcsfEvent, Option<u64>),
    ) -> Result<usize, SensorError> {
        both!(self, s => s.poll_timed(timeout, sink))
    }

    /// Hands pending events to `sink` without waiting.
    pub fn drain(&mut self, sink: &mut dyn FnMut(OcsfEvent)) -> Result<usize, SensorError> {
        both!(self, s => s.drain(sink))
    }

    /// At stop: hands every pending event to `sink`, reports the forks still held back
    /// (fork coalescing), and reports losses a last time.
    pub fn finish(&mut self, sink: &mut dyn FnMut(OcsfEvent)) -> Result<usize, SensorError> {
        both!(self, s => s.finish(sink))
    }

    /// Reports losses since the last report.
    pub fn check_loss(&mut self, sink: &mut dyn FnMut(OcsfEvent)) -> Result<usize, SensorError> {
        both!(self, s => s.check_loss(sink))
    }

    /// The `Start` event.
    pub fn start_event(&self) -> OcsfEvent {
        both!(self, s => s.start_event())
    }

    /// The `Stop` event.
    pub fn stop_event(&self) -> OcsfEvent {
        both!(self, s => s.stop_event())
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        both!(self, s => s.stats())
    }

    /// Processes in the sensor's process table.
    pub fn processes(&self) -> usize {
        both!(self, s => s.processes())
    }
}
