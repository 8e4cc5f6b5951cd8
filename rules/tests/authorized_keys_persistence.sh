#!/usr/bin/env bash
# technique: T1098.004 Account Manipulation: SSH Authorized Keys
# rules: vigil_authorized_keys_written
# Acts out: a fresh public key appended to a user's authorized_keys (in a scratch home).
source lib/common.sh
mkdir -p home/.ssh
ssh-keygen -q -t ed25519 -N '' -C "$TAG" -f intruder_key
cat intruder_key.pub >> home/.ssh/authorized_keys
