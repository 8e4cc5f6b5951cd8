#!/usr/bin/env bash
# technique: T1136.001 Create Account: Local Account
# rules: vigil_local_account_created
# Acts out: a local account created with useradd (no home, no password, no login shell)
# and deleted at once.
source lib/common.sh
user=vigilrp$$
undo "userdel '$user'"
useradd -M -N -s /usr/sbin/nologin "$user"
