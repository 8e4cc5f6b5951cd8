#!/usr/bin/env bash
# technique: T1059.004 Command and Scripting Interpreter: Unix Shell
# technique: T1036 Masquerading
# rules: vigil_exec_from_dev_shm
# Acts out: a dropped program run from /dev/shm (a copy of /bin/true), then removed.
source lib/common.sh
stand_in "/dev/shm/$TAG"
undo "rm -f '/dev/shm/$TAG'"
"/dev/shm/$TAG"
