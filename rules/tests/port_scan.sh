#!/usr/bin/env bash
# technique: T1046 Network Service Discovery
# rules: vigil_port_scan
# Acts out: a TCP connect scan of 40 ports of 127.0.0.1 from one process.
source lib/common.sh
"$PY" "$LIB/connect_many.py" 127.0.0.1 1-40
