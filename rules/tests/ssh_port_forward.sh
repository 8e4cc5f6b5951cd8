#!/usr/bin/env bash
# technique: T1572 Protocol Tunneling
# technique: T1021.004 Remote Services: SSH
# rules: vigil_ssh_port_forwarding
# Acts out: an ssh client started with a remote forward (-R) and with a dynamic SOCKS
# forward (-D), to a loopback port where nothing listens, so no session ever opens.
source lib/common.sh
opts=(-N -o BatchMode=yes -o ConnectTimeout=3 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -p 9)
ssh "${opts[@]}" -R 127.0.0.1:0:127.0.0.1:22 intruder@127.0.0.1 2>/dev/null || true
ssh "${opts[@]}" -fND 127.0.0.1:0 intruder@127.0.0.1 2>/dev/null || true
