#!/usr/bin/env bash
# technique: T1486 Data Encrypted for Impact
# rules: vigil_mass_rename_with_new_extension vigil_mass_file_rewrite
# Acts out: ransomware on a scratch data directory: 60 files are made, then one process
# rewrites each in place (bytes reversed) and renames it to NAME.vigil-locked.
source lib/common.sh
mkdir data
for i in $(seq 1 60); do echo "quarterly report $i" > "data/report-$i.txt"; done
"$PY" - "$WORK/data" <<'PYEOF'
import os, sys
root = sys.argv[1]
for name in sorted(os.listdir(root)):
    path = os.path.join(root, name)
    with open(path, "r+b") as f:
        data = f.read()
        f.seek(0)
        f.write(data[::-1])
    os.rename(path, path + ".vigil-locked")
PYEOF
