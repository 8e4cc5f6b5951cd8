#!/usr/bin/env bash
# technique: T1485 Data Destruction
# technique: T1561.001 Disk Wipe: Disk Content Wipe
# rules: vigil_disk_wipe
# Acts out: a block device zeroed with dd and its signatures wiped with wipefs -a. The
# device is a loop device over a 4 MiB scratch file, detached at the end.
source lib/common.sh
truncate -s 4M disk.img
mkfs.ext4 -q -F disk.img
loop=$(losetup -f --show "$WORK/disk.img")
undo "losetup -d '$loop'"
dd if=/dev/zero of="$loop" bs=4k count=16 status=none
wipefs -a "$loop" >/dev/null
