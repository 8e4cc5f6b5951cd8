#!/usr/bin/env bash
# technique: T1546.017 Event Triggered Execution: Udev Rules
# rules: vigil_udev_rule_written
# Acts out: a rules file dropped into /etc/udev/rules.d (only a comment), removed at once;
# no reload is triggered.
source lib/common.sh
ensure_dir /etc/udev/rules.d
undo "rm -f '/etc/udev/rules.d/99-$TAG.rules'"
echo "# $TAG: Vigil rule pack test, removed at once" > "/etc/udev/rules.d/99-$TAG.rules"
