//! The sensor's user-space cost per record, as a deterministic instruction count: decodes,
//! converts and serializes (as the agent writes them) a fixed stream of N processes' fork,
//! exec, openat (a file created), close and exit records, the ring buffer's bytes as the
//! kernel side writes them. For A/B comparisons that timing on a shared machine cannot
//! resolve:
//!
//! `cargo build --release -p vigil-sensor --example convert_cost`
//! `valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/convert_cost 5000`
//!
//! Run it with 0 too: that is the start (seeding the process table from /proc).

use vigil_sensor::{abi, host::Host, Converter, SensorConfig};

/// Offsets below are those of `bpf/vigil.h` (a change there fails `decode` here).
fn put(b: &mut [u8], off: usize, v: &[u8]) {
    b[off..off + v.len()].copy_from_slice(v);
}

/// A record header: `kind`, size, time, process, parent, start.
fn header(b: &mut [u8], kind: u32, pid: u32, ppid: u32, t: u64) {
    let size = b.len() as u32;
    put(b, 0, &kind.to_ne_bytes());
    put(b, 4, &size.to_ne_bytes());
    put(b, 8, &t.to_ne_bytes());
    put(b, 16, &pid.to_ne_bytes());
    put(b, 20, &pid.to_ne_bytes());
    put(b, 24, &ppid.to_ne_bytes());
    put(b, 32, &(t - 1000).to_ne_bytes());
    put(b, 56, b"true");
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5000);
    let config = SensorConfig {
        hash_executables: false,
        ..SensorConfig::default()
    };
    let mut conv = Converter::new(Host::detect(), config);
    let mut out = Vec::with_capacity(1 << 20);
    let mut events = 0u64;
    for i in 0..n {
        let pid = 5_000_000 + i;
        let t = 1_000_000_000 + u64::from(i) * 1000;
        let mut recs = Vec::new();
        let mut fork = vec![0u8; 136];
        header(&mut fork, 2, pid, 1, t);
        recs.push(fork);
        let argv = b"/usr/bin/true\0x\0";
        let mut exec = vec![0u8; 4840 + argv.len()];
        header(&mut exec, 1, pid, 1, t + 1);
        put(&mut exec, 136, &42u64.to_ne_bytes());
        put(&mut exec, 144, &1_700_000_000u64.to_ne_bytes());
        put(&mut exec, 160, &1u32.to_ne_bytes());
        put(&mut exec, 168, &pid.to_ne_bytes());
        put(&mut exec, 208, &13u16.to_ne_bytes());
        put(&mut exec, 210, &4u16.to_ne_bytes());
        put(&mut exec, 212, &14u16.to_ne_bytes());
        put(&mut exec, 214, &(argv.len() as u16).to_ne_bytes());
        put(&mut exec, 232, b"true\0bin\0usr\0");
        put(&mut exec, 2280, b"tmp\0");
        put(&mut exec, 4328, b"/usr/bin/true\0");
        put(&mut exec, 4840, argv);
        recs.push(exec);
        let syscalls = [
            // openat(AT_FDCWD, "/tmp/x.txt", O_WRONLY|O_CREAT) = 3, then close(3).
            (abi::nr::OPENAT, 9u32, 3i64, (-100i64) as u64),
            (abi::nr::CLOSE, 1, 0, 3),
        ];
        for (nr, flags, ret, a0) in syscalls {
            let nr = u32::try_from(nr).expect("a syscall of this architecture");
            let mut s = vec![0u8; 6984];
            header(&mut s, 4, pid, 1, t + 2);
            put(&mut s, 72, &nr.to_ne_bytes());
            put(&mut s, 76, &flags.to_ne_bytes());
            put(&mut s, 80, &ret.to_ne_bytes());
            put(&mut s, 88, &a0.to_ne_bytes());
            put(&mut s, 104, &0o101u64.to_ne_bytes());
            put(&mut s, 136, &10u16.to_ne_bytes());
            put(&mut s, 200, b"x.txt\0tmp\0");
            recs.push(s);
        }
        let mut exit = vec![0u8; 80];
        header(&mut exit, 3, pid, 1, t + 3);
        recs.push(exit);
        for r in recs {
            let rec = abi::decode(&r).expect("decodes");
            conv.convert(rec, &mut |ev| {
                out.clear();
                serde_json::to_writer(&mut out, &ev).expect("json");
                events += 1;
            });
        }
    }
    println!("records={} events={events}", n * 5);
}
