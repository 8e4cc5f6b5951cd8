#!/usr/bin/env bash
# technique: T1552.004 Unsecured Credentials: Private Keys
# rules: vigil_ssh_private_key_accessed_commandline
# Acts out: a user's SSH private key read and copied away, in a scratch home with a key
# made for the test (no real key is touched).
source lib/common.sh
mkdir -p home/.ssh
ssh-keygen -q -t ed25519 -N '' -C "$TAG" -f home/.ssh/id_ed25519
cat "$WORK/home/.ssh/id_ed25519" > /dev/null
cp "$WORK/home/.ssh/id_ed25519" "$WORK/loot"
