#!/usr/bin/env bash
# technique: T1070.002 Indicator Removal: Clear Linux or Mac System Logs
# rules: vigil_system_log_wiped
# Acts out: an auth.log under /var/log truncated, moved away and deleted. The log is a
# scratch one in a directory of its own (/var/log/vigil-rulepack-PID/auth.log), removed
# at the end; the host's real logs are not touched.
source lib/common.sh
dir=/var/log/$TAG
mkdir "$dir"
undo "rm -rf '$dir'"
echo "Dec  6 10:00:00 host sshd[1]: Accepted password for intruder" > "$dir/auth.log"
: > "$dir/auth.log"
mv "$dir/auth.log" "$dir/auth.log.gone"
echo again > "$dir/auth.log"
rm "$dir/auth.log"
