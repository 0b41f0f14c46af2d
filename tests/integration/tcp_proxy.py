#!/usr/bin/env python3
"""tcp_proxy.py LISTEN_PORT TARGET_PORT: relays every TCP connection to
127.0.0.1:LISTEN_PORT to 127.0.0.1:TARGET_PORT, both ways, until it is
killed.  Killing it closes every relayed connection and refuses new ones:
the tests put it between one daemon and Redis to cut that daemon off while
the others still reach Redis (a network partition), and start it again on
the same port to heal it.

SIGUSR1 makes every relayed connection half-open: the client's side is
reset, the target's side stays open and silent for good (as when a
firewall or NAT drops a connection's state, or a partition outlasts the
client's retransmissions, and the server never learns it).  New
connections are relayed as before."""
import selectors
import signal
import socket
import struct
import sys


def main():
    listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", listen_port))
    lsock.listen(64)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)
    peer = {}
    clients = set()
    silent = []     # target sides of half-open connections, kept open
    half_open = []  # a flag set by SIGUSR1, acted on in the loop

    def on_usr1(signum, frame):
        half_open.append(1)

    signal.signal(signal.SIGUSR1, on_usr1)
    # wakes select() at once (PEP 475 would restart it otherwise)
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno())
    sel.register(wake_r, selectors.EVENT_READ, None)

    def close(s):
        for x in (s, peer.pop(s, None)):
            if x is None:
                continue
            peer.pop(x, None)
            clients.discard(x)
            try:
                sel.unregister(x)
            except (KeyError, ValueError):
                pass
            x.close()

    while True:
        if half_open:
            half_open.clear()
            for c in list(clients):
                server = peer.pop(c, None)
                if server is not None:
                    peer.pop(server, None)
                    sel.unregister(server)
                    silent.append(server)
                sel.unregister(c)
                clients.discard(c)
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
                c.close()
        for key, _ in sel.select():
            s = key.fileobj
            if s is wake_r:
                try:
                    wake_r.recv(64)
                except OSError:
                    pass
                continue
            if s is lsock:
                try:
                    client, _ = lsock.accept()
                except OSError:
                    continue
                try:
                    server = socket.create_connection(
                        ("127.0.0.1", target_port), 5)
                except OSError:
                    client.close()
                    continue
                server.settimeout(None)  # the 5 s were for the connect
                peer[client], peer[server] = server, client
                clients.add(client)
                sel.register(client, selectors.EVENT_READ, None)
                sel.register(server, selectors.EVENT_READ, None)
                continue
            if s not in peer:
                continue
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                close(s)
                continue
            try:
                peer[s].sendall(data)
            except OSError:
                close(s)


if __name__ == "__main__":
    main()
