#!/usr/bin/env bash
# technique: T1053.003 Scheduled Task/Job: Cron
# rules: vigil_cron_file_written
# Acts out: a job dropped into /etc/cron.d. The file holds only a comment (cron runs
# nothing) and is removed at once.
source lib/common.sh
undo "rm -f '/etc/cron.d/$TAG'"
echo "# $TAG: Vigil rule pack test, removed at once" > "/etc/cron.d/$TAG"
