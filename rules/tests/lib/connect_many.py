"""Tries TCP connections from one process, as a scanner does.

Usage: connect_many.py HOSTS PORTS

HOSTS is an IPv4 address whose last byte may be a range (`127.0.0.1-40` is 127.0.0.1 to
127.0.0.40); PORTS is a port or a range (`1-40`). Every combination is tried once, with
a short timeout; refusals are the point.
"""
import socket
import sys


def span(text):
    first, _, last = text.partition("-")
    return range(int(first), int(last or first) + 1)


net, _, last_byte = sys.argv[1].rpartition(".")
for host in span(last_byte):
    for port in span(sys.argv[2]):
        s = socket.socket()
        s.settimeout(0.5)
        try:
            s.connect((f"{net}.{host}", port))
        except OSError:
            pass
        s.close()
