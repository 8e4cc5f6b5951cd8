#!/usr/bin/env bash
# technique: T1055.008 Process Injection: Ptrace System Calls
# technique: T1003.007 OS Credential Dumping: Proc Filesystem
# rules: vigil_ptrace_attach_by_non_debugger
# Acts out: PTRACE_ATTACH to another process (a `sleep` this script started), then
# PTRACE_DETACH, from a program that is no debugger.
source lib/common.sh
start_victim
"$PY" - "$VICTIM" <<'PYEOF'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
pid = int(sys.argv[1])
PTRACE_ATTACH, PTRACE_DETACH = 16, 17
if libc.ptrace(PTRACE_ATTACH, pid, None, None) != 0:
    sys.exit(f"PTRACE_ATTACH: errno {ctypes.get_errno()}")
os.waitpid(pid, 0)
libc.ptrace(PTRACE_DETACH, pid, None, None)
PYEOF
