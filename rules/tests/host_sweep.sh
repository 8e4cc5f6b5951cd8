#!/usr/bin/env bash
# technique: T1046 Network Service Discovery
# technique: T1018 Remote System Discovery
# rules: vigil_host_sweep
# Acts out: a sweep of 40 addresses (127.0.0.1 to 127.0.0.40, all loopback) for one
# service port, from one process.
source lib/common.sh
"$PY" "$LIB/connect_many.py" 127.0.0.1-40 9
