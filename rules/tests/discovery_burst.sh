#!/usr/bin/env bash
# technique: T1082 System Information Discovery
# technique: T1033 System Owner/User Discovery
# technique: T1016 System Network Configuration Discovery
# technique: T1057 Process Discovery
# technique: T1087.001 Account Discovery: Local Account
# rules: vigil_discovery_burst
# Acts out: the first minute on a fresh foothold: who am I, what is this host, its
# network, its users, its processes, from one shell within seconds.
source lib/common.sh
{
  id
  whoami
  uname -a
  hostname
  cat /etc/os-release
  ip addr
  ss -tanp
  ps aux
  w
  getent passwd root
  df -h
} > /dev/null 2>&1 || true
