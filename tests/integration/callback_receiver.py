#!/usr/bin/env python3
"""The third party's status-callback receiver in the integration tests:
every POST saved as N.path, N.sig (X-Ringq-Signature), N.code (what it
answered) and N.body (raw bytes) in DIR; /flaky/* answers 500 to its first
two requests, everything else 200.

    callback_receiver.py PORT DIR
"""
import http.server, os, sys, threading
port, out = int(sys.argv[1]), sys.argv[2]
lock, n, flaky = threading.Lock(), [0], {}
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            n[0] += 1
            i = n[0]
            code = 200
            if self.path.startswith("/flaky"):
                flaky[self.path] = flaky.get(self.path, 0) + 1
                code = 500 if flaky[self.path] <= 2 else 200
            for ext, data in (("path", self.path.encode()),
                              ("sig", (self.headers.get("X-Ringq-Signature") or "").encode()),
                              ("code", str(code).encode()), ("body", body)):
                with open(os.path.join(out, "%04d.%s" % (i, ext)), "wb") as f:
                    f.write(data)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
