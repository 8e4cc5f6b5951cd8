#!/usr/bin/env bash
# technique: T1070.004 Indicator Removal: File Deletion
# rules: vigil_self_deleting_executable
# Acts out: a program that deletes its own executable once started (a copy of perl that
# unlinks $^X, the path of its running binary).
source lib/common.sh
cp /usr/bin/perl "$WORK/updater"
"$WORK/updater" -e 'unlink $^X or die "unlink $^X: $!"'
[ ! -e "$WORK/updater" ]
