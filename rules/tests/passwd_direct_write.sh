#!/usr/bin/env bash
# technique: T1136.001 Create Account: Local Account
# technique: T1098 Account Manipulation
# rules: vigil_account_database_written_directly
# Acts out: `echo ... >> /etc/passwd` with an empty string: the file is opened for
# appending and closed after a write of nothing, so its content never changes.
source lib/common.sh
printf '' >> /etc/passwd
