#!/usr/bin/env bash
# technique: T1611 Escape to Host
# rules: vigil_cgroup_release_agent
# Acts out: the cgroup v1 release_agent escape, minus the escape: in a private mount
# namespace, a new named cgroup v1 hierarchy (no controllers) is mounted on a scratch
# directory and /bin/true is written to its release_agent. notify_on_release stays off,
# so the kernel never runs it; the mount disappears with the namespace.
source lib/common.sh
mkdir cg
unshare -m sh -c "mount -t cgroup -o none,name=$TAG cgroup '$WORK/cg' && echo /bin/true > '$WORK/cg/release_agent'; umount '$WORK/cg' 2>/dev/null; true"
