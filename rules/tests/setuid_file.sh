#!/usr/bin/env bash
# technique: T1548.001 Abuse Elevation Control Mechanism: Setuid and Setgid
# rules: vigil_setuid_bit_set
# Acts out: the set-uid bit put on a program in /tmp (a copy of /bin/true, so the "root
# shell" does nothing); the harness removes it with the scratch directory.
source lib/common.sh
stand_in "$WORK/rootshell"
chmod u+s "$WORK/rootshell"
