#!/usr/bin/env bash
# benign: everyday server work that must raise no high or critical finding.
# Builds (cc, make), git, package queries, archives, key generation, administrator checks,
# web fetches from a loopback server, and a /dev/tcp health check, in a scratch directory.
source lib/common.sh

# A build and a run of what was built.
cat > hello.c <<'C'
#include <stdio.h>
int main(void) { puts("hello"); return 0; }
C
printf 'hello: hello.c\n\tcc -O2 -o hello hello.c\n' > Makefile
make -s
./hello > /dev/null

# Version control.
git init -q repo
git -C repo config user.email ops@example.com
git -C repo config user.name Ops
cp hello.c repo/
git -C repo add hello.c
git -C repo commit -q -m 'Add hello'
git -C repo log --oneline > /dev/null
sed -i 's/hello/hi/' repo/hello.c
git -C repo diff --stat > /dev/null

# Package queries.
dpkg -l > /dev/null
apt-cache policy bash > /dev/null

# Archives.
tar czf src.tgz hello.c Makefile repo
mkdir unpacked
tar xzf src.tgz -C unpacked
gzip -k hello.c
gunzip -c hello.c.gz > /dev/null

# Key generation.
ssh-keygen -q -t ed25519 -N '' -C ops -f deploy_key
ssh-keygen -l -f deploy_key.pub > /dev/null

# Administrator checks.
ps aux > /dev/null
ss -tln > /dev/null
df -h > /dev/null
systemctl status --no-pager > /dev/null 2>&1 || true
free -m > /dev/null
uptime > /dev/null

# A web fetch from a loopback server, to a file and to a pipe.
mkdir www
echo '{"status": "ok"}' > www/health.json
serve_dir www
curl -fsS -o health.json "http://127.0.0.1:$PORT/health.json"
wget -q -O health2.json "http://127.0.0.1:$PORT/health.json"
curl -fsS "http://127.0.0.1:$PORT/health.json" | "$PY" -c 'import json, sys; json.load(sys.stdin)'
# The container health check that needs no client: HTTP through bash's /dev/tcp.
timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; printf 'GET /health.json HTTP/1.0\r\n\r\n' >&3; cat <&3" > /dev/null
