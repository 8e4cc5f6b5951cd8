#!/usr/bin/env bash
# technique: T1562.001 Impair Defenses: Disable or Modify Tools
# rules: vigil_agent_files_tampered
# Acts out: a file in Vigil's state directory overwritten, made world-writable and
# deleted. The file is a decoy of this script's own (the directory is created for the
# test if missing, and removed again).
source lib/common.sh
ensure_dir /var/lib/vigil
decoy=/var/lib/vigil/$TAG.state
undo "rm -f '$decoy'"
echo decoy > "$decoy"
chmod 0666 "$decoy"
rm "$decoy"
