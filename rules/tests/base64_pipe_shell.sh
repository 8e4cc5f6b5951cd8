#!/usr/bin/env bash
# technique: T1140 Deobfuscate/Decode Files or Information
# technique: T1059.004 Command and Scripting Interpreter: Unix Shell
# rules: vigil_decode_piped_to_shell vigil_decode_into_shell
# Acts out: `echo BASE64 | base64 -d | sh` in a `bash -c` one-liner. The payload only echoes.
source lib/common.sh
payload=$(printf 'echo vigil-rulepack decoded payload ran\n' | base64 -w0)
bash -c "echo $payload | base64 -d | sh"
