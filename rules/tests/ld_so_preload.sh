#!/usr/bin/env bash
# technique: T1574.006 Hijack Execution Flow: Dynamic Linker Hijacking
# rules: vigil_ld_so_preload_written
# Acts out: writing /etc/ld.so.preload. The file gets no content (an empty preload list
# changes nothing) and is removed again if it did not exist before.
source lib/common.sh
if [ ! -e /etc/ld.so.preload ]; then
  undo "rm -f /etc/ld.so.preload"
fi
printf '' >> /etc/ld.so.preload
