#!/usr/bin/env bash
# technique: T1611 Escape to Host
# rules: vigil_nsenter_host_namespaces
# Acts out: `nsenter -t 1 -m` into the namespaces of PID 1, running only `true` there (it
# may be refused, as on a host where this already runs in PID 1's namespaces).
source lib/common.sh
nsenter -t 1 -m -u -i -n -p -- true 2>/dev/null || true
