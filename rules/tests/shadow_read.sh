#!/usr/bin/env bash
# technique: T1003.008 OS Credential Dumping: /etc/passwd and /etc/shadow
# rules: vigil_shadow_file_accessed_commandline
# Acts out: a reader pointed at /etc/shadow. `head -c 0` opens the file and reads nothing,
# so no hash is ever read or copied.
source lib/common.sh
head -c 0 /etc/shadow
