"""A one-shot loopback TCP listener for the technique scripts.

Usage: listen.py PORT_FILE PAYLOAD RECEIVED_FILE

Binds 127.0.0.1 on a free port and writes the port to PORT_FILE; accepts one client within
20 s, sends PAYLOAD (with `\\n` escapes turned into newlines), keeps everything the client
sends until it closes (at most 10 s) in RECEIVED_FILE, then exits.
"""
import os
import socket
import sys

port_file, payload, received = sys.argv[1], sys.argv[2], sys.argv[3]
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(1)
srv.settimeout(20)
with open(port_file + ".tmp", "w") as f:
    f.write(f"{srv.getsockname()[1]}\n")
# Published whole, by rename, so a reader never sees a half-written port.
os.rename(port_file + ".tmp", port_file)
conn, _ = srv.accept()
conn.settimeout(10)
conn.sendall(payload.replace("\\n", "\n").encode())
got = b""
try:
    while True:
        chunk = conn.recv(4096)
        if not chunk:
            break
        got += chunk
except socket.timeout:
    pass
with open(received, "wb") as f:
    f.write(got)
