#!/usr/bin/env python3
"""Gateway stand-ins for the health benchmark: one listening socket per port.

Usage: gateways.py --healthy PORT,PORT,... --hung PORT,PORT,...
Healthy ports answer every request with 200 {"ok":true,"status":"live"}, as
OpenClaw's /health does. Hung ports accept connections (the kernel completes
the handshake from the backlog) and never answer. Prints "ready" when all
sockets listen, then serves until killed.
"""
import argparse
import asyncio
import socket
import sys

BODY = b'{"ok":true,"status":"live"}'
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % len(BODY)) + BODY


async def answer(reader, writer):
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(RESPONSE)
        await writer.drain()
    except Exception:
        pass
    finally:
        writer.close()


def ports(text):
    return [int(p) for p in text.split(",") if p]


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--healthy", default="")
    parser.add_argument("--hung", default="")
    args = parser.parse_args()
    servers = [await asyncio.start_server(answer, "127.0.0.1", port) for port in ports(args.healthy)]
    hung = []
    for port in ports(args.hung):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)  # never accepted: connects succeed, nothing is ever said
        hung.append(sock)
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
