#!/usr/bin/env bash
# technique: T1548 Abuse Elevation Control Mechanism
# rules: vigil_file_capability_granted
# Acts out: `setcap cap_setuid+ep` on a program in /tmp (a copy of /bin/true).
source lib/common.sh
stand_in "$WORK/python3"
setcap cap_setuid+ep "$WORK/python3"
