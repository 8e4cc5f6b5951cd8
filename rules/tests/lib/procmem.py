"""Touches another process's memory the two ways injectors and memory dumpers do.

Usage: procmem.py read|write PID

Opens /proc/PID/mem (read-only, or for writing) and calls process_vm_readv or
process_vm_writev on PID. Both move zero bytes: the target is never changed and nothing
is read from it.
"""
import ctypes
import os
import sys

mode, pid = sys.argv[1], int(sys.argv[2])
with open(f"/proc/{pid}/mem", "rb" if mode == "read" else "r+b", buffering=0):
    pass


class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(1)
local = IoVec(ctypes.addressof(buf), 0)
remote = IoVec(ctypes.addressof(buf), 0)
numbers = {
    ("x86_64", "read"): 310,
    ("x86_64", "write"): 311,
    ("aarch64", "read"): 270,
    ("aarch64", "write"): 271,
}
nr = numbers[(os.uname().machine, mode)]
if libc.syscall(nr, pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) < 0:
    sys.exit(f"process_vm_{mode}v: errno {ctypes.get_errno()}")
