#!/usr/bin/env bash
# technique: T1572 Protocol Tunneling
# technique: T1090 Proxy
# rules: vigil_tunnel_tool_run
# Acts out: chisel started as a reverse SOCKS client. The binary is a stand-in (a copy of
# /bin/true named chisel): the rule keys on the program and its arguments.
source lib/common.sh
stand_in "$WORK/chisel"
"$WORK/chisel" client 127.0.0.1:9 R:socks
