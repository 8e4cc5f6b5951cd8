#!/usr/bin/env bash
# technique: T1014 Rootkit
# technique: T1562.001 Impair Defenses: Disable or Modify Tools
# rules: vigil_bpf_program_loaded
# Acts out: bpf(BPF_PROG_LOAD) of a two-instruction socket filter (`return 0`) from a
# script; the program is attached to nothing and freed when the process exits.
source lib/common.sh
"$PY" - <<'PYEOF'
import ctypes, os, struct
libc = ctypes.CDLL(None, use_errno=True)
# BPF_MOV64_IMM(r0, 0); BPF_EXIT_INSN()
insns = ctypes.create_string_buffer(struct.pack("<BBhiBBhi", 0xB7, 0, 0, 0, 0x95, 0, 0, 0))
license = ctypes.create_string_buffer(b"GPL")
# union bpf_attr for BPF_PROG_LOAD: prog_type, insn_cnt, insns, license, log_level,
# log_size, log_buf, kern_version, prog_flags, prog_name[16].
attr = struct.pack("<IIQQIIQII16s", 1, 2, ctypes.addressof(insns), ctypes.addressof(license),
                   0, 0, 0, 0, 0, b"vigil_rulepack")
buf = ctypes.create_string_buffer(attr, 128)
SYS_bpf = {"x86_64": 321, "aarch64": 280}[os.uname().machine]
fd = libc.syscall(SYS_bpf, 5, buf, 128)
if fd >= 0:
    os.close(fd)
PYEOF
