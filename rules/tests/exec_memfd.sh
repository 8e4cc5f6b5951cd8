#!/usr/bin/env bash
# technique: T1620 Reflective Code Loading
# technique: T1027.011 Fileless Storage
# rules: vigil_exec_memfd
# Acts out: a fileless loader: memfd_create, copy a program (/bin/true) into it, execute
# the descriptor.
source lib/common.sh
"$PY" "$LIB/exec_fd.py" memfd /bin/true
