#!/usr/bin/env python3
"""A DNS server for tests, on UDP: answers TXT queries from a table.

    dns_server.py ADDR PORT TABLE

TABLE holds lines "NAME TXT-TEXT" (NAME without the final dot), "NAME
SERVFAIL" (a query for NAME then gets that failure, as a resolver would
report a server it could not reach), "NAME NODATA" (the name is there
but has no TXT record), "NAME SILENT" (no answer at all: the resolver
times out), "NAME BIG TXT-TEXT" (on UDP a reply cut short, marked
truncated, so that a resolver asks again over TCP, where it gets the
answer), "NAME TRUNCATED" (the same, but on TCP no answer: a server
that holds a TCP query), "NAME TCPREFUSED" (on TCP, REFUSED), "NAME
TCPWRONGID" (on TCP, an answer to another query's id) or "NAME TCPSHORT"
(on TCP, a reply shorter than a DNS header).  Any other name gets
NXDOMAIN.  Each query's
name is printed, "tcp query NAME" for one on TCP (at the same address
and port).  The table is read again at each query, so a test can change
it.  Only what a resolver's TXT lookup needs: one question, its answer.
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


def answer(msg, path, tcp=False):
    qid, flags = struct.unpack("!HH", msg[:4])
    name, end = question(msg)
    value = lookup(path, name)
    print("tcp query" if tcp else "query", name, flush=True)
    if value == "SILENT" or (tcp and value == "TRUNCATED"):
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
    if not tcp and (value.startswith("TCP") or value == "TRUNCATED" or
                    value.startswith("BIG ")):
        return head(0x0200, 0) + msg[12:end]   # TC
    if value == "TCPREFUSED":
        return head(5, 0) + msg[12:end]
    if value == "TCPSHORT":
        return head(0, 1)[:8]
    if value == "TCPWRONGID":
        qid, value = qid ^ 0x5a5a, "v=DKIM1; p=" + "A" * 64
    if value.startswith("BIG "):
        value = value[4:]
    text = value.encode()
    strings = b"".join(bytes([len(text[i:i + 255])]) + text[i:i + 255]
                       for i in range(0, len(text), 255))
    rr = struct.pack("!HHHIH", 0xC00C, 16, 1, 60, len(strings)) + strings
    return head(0, 1) + msg[12:end] + rr


def recv_all(conn, n):
    data = b""
    while len(data) < n:
        part = conn.recv(n - len(data))
        if not part:
            raise EOFError
        data += part
    return data


def serve_tcp(conn, path):
    """One TCP query (RFC 1035 4.2.2: a length, then the message)."""
    try:
        msg = recv_all(conn, struct.unpack("!H", recv_all(conn, 2))[0])
        reply = answer(msg, path, tcp=True)
        if reply is None:
            conn.recv(1)                       # held until the client goes
        else:
            conn.sendall(struct.pack("!H", len(reply)) + reply)
    except (EOFError, OSError, IndexError, struct.error):
        pass
    conn.close()


def listen_tcp(t, path):
    while True:
        conn, _ = t.accept()
        threading.Thread(target=serve_tcp, args=(conn, path),
                         daemon=True).start()


def main():
    addr, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((addr, port))
    t.listen(16)
    threading.Thread(target=listen_tcp, args=(t, path), daemon=True).start()
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
