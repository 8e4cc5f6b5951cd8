#!/usr/bin/env bash
# technique: T1055.009 Process Injection: Proc Memory
# technique: T1055 Process Injection
# rules: vigil_process_memory_written
# Acts out: another process's memory (a `sleep` this script started) opened for writing
# through /proc/PID/mem, and written with process_vm_writev; both write zero bytes.
source lib/common.sh
start_victim
"$PY" "$LIB/procmem.py" write "$VICTIM"
