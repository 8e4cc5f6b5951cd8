#!/usr/bin/env bash
# technique: T1546.004 Event Triggered Execution: Unix Shell Configuration Modification
# rules: vigil_shell_profile_written
# Acts out: a script dropped into /etc/profile.d (only a comment, removed at once) and a
# line appended to a user's .bashrc (in a scratch home).
source lib/common.sh
undo "rm -f '/etc/profile.d/$TAG.sh'"
echo "# $TAG: Vigil rule pack test, removed at once" > "/etc/profile.d/$TAG.sh"
mkdir -p home
echo "# $TAG" >> home/.bashrc
