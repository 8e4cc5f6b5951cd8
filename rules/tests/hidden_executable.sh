#!/usr/bin/env bash
# technique: T1564.001 Hide Artifacts: Hidden Files and Directories
# rules: vigil_hidden_executable_run
# Acts out: a program with a dot name inside a dot directory under /tmp (a copy of
# /bin/true) run.
source lib/common.sh
mkdir .cache
stand_in "$WORK/.cache/.kworker"
"$WORK/.cache/.kworker"
