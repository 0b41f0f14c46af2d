#!/usr/bin/env python3
"""tcp_proxy.py LISTEN_PORT TARGET_PORT: relays every TCP connection to
127.0.0.1:LISTEN_PORT to 127.0.0.1:TARGET_PORT, both ways, until it is
killed.  Killing it closes every relayed connection and refuses new ones:
the tests put it between one daemon and Redis to cut that daemon off while
the others still reach Redis (a network partition), and start it again on
the same port to heal it."""
import selectors
import socket
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

    def close(s):
        for x in (s, peer.pop(s, None)):
            if x is None:
                continue
            peer.pop(x, None)
            try:
                sel.unregister(x)
            except (KeyError, ValueError):
                pass
            x.close()

    while True:
        for key, _ in sel.select():
            s = key.fileobj
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
