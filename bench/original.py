#!/usr/bin/env python3
# The original chat server that obrol started from, written again from its description (the project does
# not carry the original's code), so that `npm run bench -- --target` has the original to measure:
# a client's first datagram is its name; a taken name gets "nama ini sudah diambil"; otherwise
# "<name> has joined the chat" goes to everyone, and every later datagram goes to everyone as
# "<name>: <text>", the sender included. No leave, no acks, any source address believed.
#
#   python3 bench/original.py [PORT]     (default 6789; listens on 127.0.0.1 only)
import socket
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 6789
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", port))
clients = {}  # address -> name
while True:
    data, addr = s.recvfrom(1024)
    text = data.decode("utf-8", errors="replace")
    if addr not in clients:
        if text in clients.values():
            s.sendto("nama ini sudah diambil".encode("utf-8"), addr)
            continue
        clients[addr] = text
        line = text + " has joined the chat"
    else:
        line = clients[addr] + ": " + text
    out = line.encode("utf-8")
    for a in list(clients):
        s.sendto(out, a)
