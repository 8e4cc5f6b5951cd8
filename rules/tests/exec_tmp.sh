#!/usr/bin/env bash
# technique: T1059.004 Command and Scripting Interpreter: Unix Shell
# technique: T1036 Masquerading
# rules: vigil_exec_from_tmp
# Acts out: a dropped program run from /tmp (a copy of /bin/true).
source lib/common.sh
stand_in "$WORK/kworker-update"
"$WORK/kworker-update"
