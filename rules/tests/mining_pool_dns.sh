#!/usr/bin/env bash
# technique: T1496 Resource Hijacking
# rules: vigil_mining_pool_dns_query
# Acts out: a DNS query for a public mining pool, sent to 127.0.0.1:53 (loopback; whether
# anything answers does not matter).
source lib/common.sh
"$PY" - <<'PYEOF'
import socket, struct
name = b"".join(bytes([len(p)]) + p for p in b"pool.supportxmr.com".split(b"."))
query = struct.pack(">HHHHHH", 0x5652, 0x0100, 1, 0, 0, 0) + name + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(query, ("127.0.0.1", 53))
s.close()
PYEOF
