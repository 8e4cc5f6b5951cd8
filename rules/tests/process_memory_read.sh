#!/usr/bin/env bash
# technique: T1003.007 OS Credential Dumping: Proc Filesystem
# rules: vigil_process_memory_read
# not-rules: vigil_process_memory_written
# Acts out: another process's memory (a `sleep` this script started) read with
# process_vm_readv and through a read-only open of /proc/PID/mem (which is no write:
# regression, the write rule took every open of /proc/PID/mem for one).
source lib/common.sh
start_victim
"$PY" "$LIB/procmem.py" read "$VICTIM"
