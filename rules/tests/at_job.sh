#!/usr/bin/env bash
# technique: T1053.002 Scheduled Task/Job: At
# rules: vigil_at_job_scheduled
# Acts out: a job queued with at ten hours from now (it would only run `true`), removed at
# once with atrm.
source lib/common.sh
out=$(echo true | at now + 10 hours 2>&1)
job=$(sed -n 's/^job \([0-9][0-9]*\) .*/\1/p' <<<"$out")
[ -n "$job" ] || { echo "at did not queue a job: $out" >&2; exit 1; }
atrm "$job"
