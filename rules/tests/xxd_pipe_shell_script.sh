#!/usr/bin/env bash
# technique: T1140 Deobfuscate/Decode Files or Information
# technique: T1059.004 Command and Scripting Interpreter: Unix Shell
# rules: vigil_decode_into_shell
# Acts out: a hex payload decoded with `xxd -r -p` and piped into sh, from a script file
# (no command line shows the pipe). The payload only echoes.
source lib/common.sh
payload=$(printf 'echo vigil-rulepack decoded payload ran\n' | xxd -p | tr -d '\n')
printf 'echo %s | xxd -r -p | sh\n' "$payload" > run.sh
bash run.sh
