# Shared helpers of the rule pack's technique scripts (sourced, never run on its own).
#
# The harness (crates/vigil/tests/rulepack.rs) runs each script as `/bin/bash NAME.sh` from
# this directory, as root, under a running `vigil agent`, with VIGIL_RP_WORK set to a fresh
# empty directory that it removes afterwards. That exact command line is the case's marker:
# every event of the case carries it in its process, parent or ancestry. A script acts its
# technique out harmlessly and undoes every change it makes outside VIGIL_RP_WORK.
set -euo pipefail

WORK=${VIGIL_RP_WORK:?the harness sets VIGIL_RP_WORK}
LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Debian's interpreter, whatever PATH says (a pyenv shim would add its own processes).
PY=/usr/bin/python3
# Loopback only: no proxy in between.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
# A name no real file, user or service on the host has.
TAG=vigil-rulepack-$$
cd "$WORK"

# Undo steps, run in reverse order when the script exits, whatever happens.
_undo=()
undo() { _undo+=("$1"); }
_run_undo() {
  local i
  for ((i = ${#_undo[@]} - 1; i >= 0; i--)); do eval "${_undo[i]}" || true; done
}
trap _run_undo EXIT
# Undo also when the harness stops a script that overran its time (SIGTERM first).
trap 'exit 143' TERM
trap 'exit 130' INT

# Creates directory $1 if it is missing, and at exit removes every directory level this
# script created for it.
ensure_dir() {
  local d=$1 created=() i
  while [ ! -d "$d" ]; do
    created+=("$d")
    d=$(dirname "$d")
  done
  mkdir -p "$1"
  # Undo steps run last-registered first: register the outermost level first.
  for ((i = ${#created[@]} - 1; i >= 0; i--)); do undo "rmdir '${created[i]}'"; done
}

# Waits for file $1 to hold a line, for 10 s at most, and prints it.
_wait_line() {
  local i
  for ((i = 0; i < 200; i++)); do
    [ -s "$1" ] && { head -n1 "$1"; return 0; }
    sleep 0.05
  done
  echo "timed out waiting for $1" >&2
  return 1
}

# Starts a one-shot TCP listener on 127.0.0.1 that sends $1 to its first client and keeps
# what the client sends in $WORK/received; sets PORT.
listen_once() {
  rm -f "$WORK/port"
  "$PY" "$LIB/listen.py" "$WORK/port" "$1" "$WORK/received" &
  undo "kill $! 2>/dev/null"
  PORT=$(_wait_line "$WORK/port")
}

# Serves directory $1 over HTTP on 127.0.0.1; sets PORT.
serve_dir() {
  rm -f "$WORK/port"
  "$PY" "$LIB/serve.py" "$WORK/port" "$1" &
  undo "kill $! 2>/dev/null"
  PORT=$(_wait_line "$WORK/port")
}

# Starts a harmless process for a technique to target (`sleep 30`); sets VICTIM.
start_victim() {
  sleep 30 &
  VICTIM=$!
  undo "kill $VICTIM 2>/dev/null"
}

# A copy of /bin/true named $1 (a harmless stand-in for a tool the technique uses).
stand_in() {
  cp /bin/true "$1"
  chmod 755 "$1"
}
