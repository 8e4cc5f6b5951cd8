#!/usr/bin/env bash
# technique: T1548.003 Abuse Elevation Control Mechanism: Sudo and Sudo Caching
# rules: vigil_sudoers_written vigil_sudoers_nopasswd_commandline
# Acts out: `echo '... NOPASSWD: ALL' > /etc/sudoers.d/x` from a shell one-liner. The line
# is written as a comment, so sudo grants nothing, and the file is removed at once.
source lib/common.sh
ensure_dir /etc/sudoers.d
undo "rm -f '/etc/sudoers.d/$TAG'"
sh -c "echo '# $TAG ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/$TAG"
chmod 0440 "/etc/sudoers.d/$TAG"
