#!/usr/bin/env bash
# technique: T1070.004 Indicator Removal: File Deletion
# technique: T1620 Reflective Code Loading
# rules: vigil_exec_deleted_file
# Acts out: a dropper that opens its payload (a copy of /bin/true), deletes it, and
# executes the open descriptor.
source lib/common.sh
stand_in "$WORK/payload"
"$PY" "$LIB/exec_fd.py" deleted "$WORK/payload"
