#!/usr/bin/env bash
# technique: T1547.006 Boot or Logon Autostart Execution: Kernel Modules and Extensions
# rules: vigil_kernel_module_load vigil_module_autoload_config_written
# Acts out: finit_module on a file from /tmp that is not a module (the kernel refuses it:
# ENOEXEC, or ENOSYS on kernels without module support), and a module listed in
# /etc/modules-load.d (only a comment, removed at once).
source lib/common.sh
head -c 4096 /dev/zero > "$WORK/rootkit.ko"
"$PY" - "$WORK/rootkit.ko" <<'PYEOF'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(sys.argv[1], os.O_RDONLY)
SYS_finit_module = {"x86_64": 313, "aarch64": 273}[os.uname().machine]
if libc.syscall(SYS_finit_module, fd, b"", 0) == 0:
    sys.exit("the kernel accepted a file of zeros as a module")
PYEOF
ensure_dir /etc/modules-load.d
undo "rm -f '/etc/modules-load.d/$TAG.conf'"
echo "# $TAG: Vigil rule pack test, removed at once" > "/etc/modules-load.d/$TAG.conf"
