#!/usr/bin/env bash
# technique: T1556.003 Modify Authentication Process: Pluggable Authentication Modules
# rules: vigil_pam_config_written vigil_pam_module_dropped
# Acts out: a PAM service file written to /etc/pam.d (only a comment; no program uses that
# service name) and an empty "module" dropped beside pam_unix.so (no configuration loads
# it). Both are removed at once.
source lib/common.sh
undo "rm -f '/etc/pam.d/$TAG'"
echo "# $TAG: Vigil rule pack test, removed at once" > "/etc/pam.d/$TAG"
moddir=$(dirname "$(find /lib /usr/lib /lib64 /usr/lib64 -name pam_unix.so -print -quit 2>/dev/null)")
[ -d "$moddir" ] || { echo "no PAM module directory found" >&2; exit 1; }
undo "rm -f '$moddir/pam_$TAG.so'"
: > "$moddir/pam_$TAG.so"
