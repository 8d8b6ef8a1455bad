#!/usr/bin/env python3
"""Opens N /api/events streams to the dashboard and holds them until stdin closes.

The server allows 64 streams per client address (docs/api.md, "Limits"), so the
connections come from 127.0.0.2, 127.0.0.3, ... (all of 127/8 is this host), 60 each.
Prints "open <n>" once every stream has its response header (n: the ones answered 200),
then reads the streams as a browser would.
Usage: streams.py PORT COUNT"""
import selectors
import socket
import sys

port, count = int(sys.argv[1]), int(sys.argv[2])
streams = []
for number in range(count):
    source = f"127.0.0.{2 + number // 60}"
    connection = socket.socket()
    connection.bind((source, 0))
    connection.connect(("127.0.0.1", port))
    connection.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
    streams.append(connection)
answered = 0
for connection in streams:
    head = b""
    while b"\r\n" not in head:
        part = connection.recv(4096)
        if not part:
            break
        head += part
    answered += head.startswith(b"HTTP/1.1 200")
print(f"open {answered}", flush=True)
# Read what the server sends, as a browser would (a client that never reads makes the server
# hold its writes), until stdin closes.
selector = selectors.DefaultSelector()
for connection in streams:
    connection.setblocking(False)
    selector.register(connection, selectors.EVENT_READ)
selector.register(sys.stdin, selectors.EVENT_READ)
while True:
    for key, _ in selector.select():
        if key.fileobj is sys.stdin:
            if not sys.stdin.buffer.read1(4096):
                sys.exit(0)
            continue
        try:
            if not key.fileobj.recv(65536):
                selector.unregister(key.fileobj)
        except BlockingIOError:
            pass
