#!/usr/bin/env python3
"""A DNS server for tests, on UDP: answers TXT queries from a table.

    dns_server.py ADDR PORT TABLE

TABLE holds lines "NAME TXT-TEXT" (NAME without the final dot), "NAME
SERVFAIL" (a query for NAME then gets that failure, as a resolver would
report a server it could not reach), "NAME NODATA" (the name is there
but has no TXT record), "NAME SILENT" (no answer at all: the resolver
times out) or "NAME TRUNCATED" (a reply without its answer, marked
truncated: a resolver asks again over TCP).  Any other name gets
NXDOMAIN.  Each query's name is printed.  On TCP, at the same address
and port, it takes connections, prints "tcp connection", and never
answers (a server that stalls a resolver's TCP query).  The table is
read again at each query, so a test can change it.  Only what a
resolver's TXT lookup needs: one question, its answer.
"""
import socket
import struct
import sys
import threading


def question(msg):
    """The question's name (lower case) and where the question ends."""
    labels, i = [], 12
    while msg[i]:
        n = msg[i]
        labels.append(msg[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    return ".".join(labels).lower(), i + 5     # the 0, QTYPE, QCLASS


def lookup(path, name):
    with open(path) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition(" ")
            if key.lower() == name:
                return value
    return None


def answer(msg, path):
    qid, flags = struct.unpack("!HH", msg[:4])
    name, end = question(msg)
    value = lookup(path, name)
    print("query", name, flush=True)
    if value == "SILENT":
        return None
    rd = flags & 0x0100
    head = lambda rcode, an: struct.pack("!HHHHHH", qid, 0x8080 | rd | rcode,
                                         1, an, 0, 0)
    if value is None:
        return head(3, 0) + msg[12:end]        # NXDOMAIN
    if value == "SERVFAIL":
        return head(2, 0) + msg[12:end]
    if value == "NODATA":
        return head(0, 0) + msg[12:end]
    if value == "TRUNCATED":
        return head(0x0200, 0) + msg[12:end]   # TC
    text = value.encode()
    strings = b"".join(bytes([len(text[i:i + 255])]) + text[i:i + 255]
                       for i in range(0, len(text), 255))
    rr = struct.pack("!HHHIH", 0xC00C, 16, 1, 60, len(strings)) + strings
    return head(0, 1) + msg[12:end] + rr


def stall_tcp(t):
    held = []                                  # open, never answered
    while True:
        conn, _ = t.accept()
        held.append(conn)
        print("tcp connection", flush=True)


def main():
    addr, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((addr, port))
    t.listen(16)
    threading.Thread(target=stall_tcp, args=(t,), daemon=True).start()
    print("listening", flush=True)
    while True:
        msg, peer = s.recvfrom(4096)
        try:
            reply = answer(msg, path)
            if reply is not None:
                s.sendto(reply, peer)
        except (IndexError, struct.error):
            pass                               # not a query: no answer


if __name__ == "__main__":
    main()
