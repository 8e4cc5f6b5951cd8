"""Executes a program from an open file descriptor, the way fileless loaders do.

Usage: exec_fd.py memfd PROGRAM   copy PROGRAM into a memfd and execute that
       exec_fd.py deleted FILE    open FILE, delete it, execute the descriptor

The child runs the descriptor through /proc/self/fd/N; this exits with its status.
"""
import os
import sys

mode, path = sys.argv[1], sys.argv[2]
if mode == "memfd":
    fd = os.memfd_create("kworker")
    with open(path, "rb") as f:
        os.write(fd, f.read())
elif mode == "deleted":
    fd = os.open(path, os.O_RDONLY)
    os.unlink(path)
else:
    sys.exit(f"unknown mode {mode}")
pid = os.fork()
if pid == 0:
    os.execv(f"/proc/self/fd/{fd}", ["kworker"])
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
