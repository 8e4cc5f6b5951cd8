#!/usr/bin/env bash
# technique: T1070.006 Indicator Removal: Timestomp
# rules: vigil_timestomp_system_file
# Acts out: an "implant" in /usr/local/bin (a copy of /bin/true) given the timestamps of
# /bin/ls with `touch -r`, then an explicit date with `touch -d`; removed at once.
source lib/common.sh
implant=/usr/local/bin/$TAG
undo "rm -f '$implant'"
stand_in "$implant"
touch -r /bin/ls "$implant"
touch -d '2021-03-04 05:06:07' "$implant"
