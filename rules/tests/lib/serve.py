"""A loopback HTTP server for the technique scripts and the benign workload.

Usage: serve.py PORT_FILE DIRECTORY

Serves DIRECTORY on 127.0.0.1 on a free port, writes the port to PORT_FILE, and stops after
60 s without a request (the scripts also stop it when they end).
"""
import functools
import http.server
import os
import sys

port_file, directory = sys.argv[1], sys.argv[2]


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Server(http.server.HTTPServer):
    timeout = 60
    idle = False

    def handle_timeout(self):
        self.idle = True


srv = Server(("127.0.0.1", 0), functools.partial(Quiet, directory=directory))
with open(port_file + ".tmp", "w") as f:
    f.write(f"{srv.server_address[1]}\n")
# Published whole, by rename, so a reader never sees a half-written port.
os.rename(port_file + ".tmp", port_file)
while not srv.idle:
    srv.handle_request()
