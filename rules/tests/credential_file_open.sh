#!/usr/bin/env bash
# technique: T1003.008 OS Credential Dumping: /etc/passwd and /etc/shadow
# technique: T1552.004 Unsecured Credentials: Private Keys
# rules: vigil_credential_file_opened
# Acts out: a program that opens /etc/shadow and a private key without naming them on
# its command line. It reads nothing from /etc/shadow; the key is one made for the test.
source lib/common.sh
mkdir -p home/.ssh
ssh-keygen -q -t ed25519 -N '' -C "$TAG" -f home/.ssh/id_ed25519
"$PY" - "$WORK/home/.ssh/id_ed25519" <<'PYEOF'
import sys
open("/etc/shadow", "rb").close()
open(sys.argv[1], "rb").read()
PYEOF
