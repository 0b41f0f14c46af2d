#!/usr/bin/env python3
"""HTTP server for test_fetch: prints its port on stdout, exits when stdin
closes.  Paths:
  /doc/NAME?cc=..&etag=..&lm=1&age=N&expires=S&size=N  a document with those
        headers; answers 304 to a matching If-None-Match/If-Modified-Since;
        body "NAME n" where n counts the requests to NAME (padded to size)
  /count/NAME       "requests=R notmodified=M" for /doc/NAME
  /delay?ms=N       answers after N ms
  /redirect?to=P    302 to P
  /ua               the User-Agent it was sent
  /echo             GET: the query; POST: the decoded body, one line a field
                    (urlencoded: name=value; multipart: name|filename|type|hex)
anything else is 404."""
import email.parser
import email.policy
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LM = "Mon, 02 Jan 2023 10:00:00 GMT"
lock = threading.Lock()
counts = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 304:
            self.wfile.write(body)

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        if u.path.startswith("/doc/"):
            self.doc(u.path[5:], q)
        elif u.path.startswith("/count/"):
            with lock:
                r, m = counts.get(u.path[7:], (0, 0))
            self.reply(200, b"requests=%d notmodified=%d" % (r, m),
                       [("Content-Type", "text/plain")])
        elif u.path == "/delay":
            time.sleep(int(q.get("ms", "0")) / 1000)
            self.reply(200, b"slept " + q.get("i", "").encode(),
                       [("Content-Type", "text/plain")])
        elif u.path == "/ua":
            self.reply(200, self.headers.get("User-Agent", "").encode(),
                       [("Content-Type", "text/plain")])
        elif u.path == "/redirect":
            self.reply(302, b"", [("Location", q["to"])])
        elif u.path == "/echo":
            lines = "".join("%s=%s\n" % kv for kv in
                            urllib.parse.parse_qsl(u.query,
                                                   keep_blank_values=True))
            self.reply(200, lines.encode(), [("Content-Type", "text/plain")])
        else:
            self.reply(404, b"not here", [("Content-Type", "text/plain")])

    def doc(self, name, q):
        hdrs = [("Content-Type", q.get("ct", "application/voicexml+xml"))]
        if "cc" in q:
            hdrs.append(("Cache-Control", q["cc"]))
        if "etag" in q:
            hdrs.append(("ETag", q["etag"]))
        if "lm" in q:
            hdrs.append(("Last-Modified", LM))
        if "age" in q:
            hdrs.append(("Age", q["age"]))
        if "expires" in q:
            t = time.time() + int(q["expires"])
            hdrs.append(("Expires", time.strftime(
                "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(t))))
        inm = self.headers.get("If-None-Match")
        ims = self.headers.get("If-Modified-Since")
        with lock:
            r, m = counts.get(name, (0, 0))
            r += 1
            fresh = (("etag" in q and inm == q["etag"]) or
                     ("lm" in q and inm is None and ims == LM))
            if fresh:
                m += 1
            counts[name] = (r, m)
        if fresh:
            self.reply(304, b"", hdrs)
            return
        body = ("%s %d" % (name, r)).encode()
        size = int(q.get("size", "0"))
        body += b"." * max(0, size - len(body))
        self.reply(200, body, hdrs)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(n)
        ct = self.headers.get("Content-Type", "")
        if urllib.parse.urlsplit(self.path).path != "/echo":
            self.reply(404, b"not here")
            return
        out = "ct=%s\n" % ct.split(";")[0]
        if ct.startswith("application/x-www-form-urlencoded"):
            for k, v in urllib.parse.parse_qsl(data.decode(),
                                               keep_blank_values=True):
                out += "%s=%s\n" % (k, v)
        elif ct.startswith("multipart/form-data"):
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + ct.encode() + b"\r\n\r\n" + data)
            for part in msg.iter_parts():
                out += "%s|%s|%s|%s\n" % (
                    part.get_param("name", header="content-disposition"),
                    part.get_filename() or "",
                    part.get("Content-Type", "-"),
                    part.get_payload(decode=True).hex())
        self.reply(200, out.encode(), [("Content-Type", "text/plain")])


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128	# 5 drops SYNs of concurrent fetches


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    print(srv.server_address[1], flush=True)

    def watch_stdin():
        sys.stdin.read()
        os._exit(0)
    threading.Thread(target=watch_stdin, daemon=True).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
