#!/usr/bin/env bash
# technique: T1496 Resource Hijacking
# rules: vigil_cryptominer_commandline
# Acts out: xmrig started against a stratum pool. The binary is a stand-in (a copy of
# /bin/true named xmrig) and the pool is a loopback address.
source lib/common.sh
stand_in "$WORK/xmrig"
"$WORK/xmrig" -o stratum+tcp://127.0.0.1:3333 -u intruder --donate-level 1
