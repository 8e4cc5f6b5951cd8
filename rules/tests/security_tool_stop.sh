#!/usr/bin/env bash
# technique: T1562.001 Impair Defenses: Disable or Modify Tools
# rules: vigil_security_tool_stopped
# Acts out: `systemctl stop` and `systemctl disable` of security services. The unit names
# do not exist (vigil-rulepack-PID-decoy...), so nothing is stopped.
source lib/common.sh
systemctl stop "vigil-$TAG-decoy.service" >/dev/null 2>&1 || true
systemctl disable "auditd-$TAG-decoy.service" >/dev/null 2>&1 || true
