#!/usr/bin/env bash
# technique: T1574.006 Hijack Execution Flow: Dynamic Linker Hijacking
# rules: vigil_ld_preload_from_writable_dir
# Acts out: `env LD_PRELOAD=/tmp/.../hook.so program`. The "library" is an empty file, so
# the dynamic linker reports it cannot preload it and runs /bin/true unchanged.
source lib/common.sh
: > "$WORK/libhook.so"
env "LD_PRELOAD=$WORK/libhook.so" /bin/true 2>/dev/null
