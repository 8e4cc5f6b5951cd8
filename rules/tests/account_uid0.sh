#!/usr/bin/env bash
# technique: T1136.001 Create Account: Local Account
# technique: T1078.003 Valid Accounts: Local Accounts
# rules: vigil_uid0_account_created
# Acts out: `useradd -o -u 0` for a second root account. The account name is invalid on
# purpose, so useradd refuses before it touches any file: the attempt is what the rule
# sees, and the host never has a second uid 0, not even for a moment.
source lib/common.sh
if useradd -o -u 0 -M -N -s /usr/sbin/nologin "bad:name$$" 2>/dev/null; then
  userdel -f "bad:name$$" || true
  echo "useradd accepted an invalid name" >&2
  exit 1
fi
