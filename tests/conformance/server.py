#!/usr/bin/env python3
"""Serves the converted W3C VoiceXML tests (convert.py's output) over HTTP
on 127.0.0.1 and records their verdicts.

  GET|POST /run/TEST/FILE       FILE of the converted directory; run test
                                TEST as http://HOST:PORT/run/TEST/TEST.vxml
                                so that every document it loads, and every
                                verdict, stays under /run/TEST/
  GET|POST /vxml/FILE           the same without a test id (a verdict then
                                names the document that gave it)
  .../_score/pass/DOC           a verdict: recorded, answered with a tiny
  .../_score/fail/DOC?reason=R  VoiceXML document that says the word and
                                exits (the caller hears it too)
  GET|POST /_ended/TEST?how=H   the harness (not the interpreter) says how
                                TEST's session ended: exit, hangup, error,
                                disconnect (scores the manual tests)
  GET|POST .../_echo            a VoiceXML document returning what was
                                submitted: <return namelist> of 'method',
                                'content_type' and 'fields' (name=value&...)

Each verdict is one JSON line in --scores: {"test", "verdict" ("pass",
"fail" or "ended"), "reason", "doc", "how", "time"}.  Every request is one
JSON line in --log when given.  Prints "port N" on stdout when ready (the
port is free, chosen by the kernel unless --port says).

Usage: server.py --dir DIR --scores FILE [--port N] [--log FILE]
"""
import argparse
import json
import os
import posixpath
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape, quoteattr

TYPES = {
    ".vxml": "application/voicexml+xml", ".txml": "application/xml",
    ".xml": "application/xml", ".grxml": "application/srgs+xml",
    ".js": "application/javascript", ".wav": "audio/wav",
    ".au": "audio/basic", ".txt": "text/plain",
}

VERDICT_DOC = """<?xml version="1.0" encoding="UTF-8"?>
<vxml version="2.1" xmlns="http://www.w3.org/2001/vxml">
  <form>
    <block>
      <prompt>%s</prompt>
      <exit/>
    </block>
  </form>
</vxml>
"""

ECHO_DOC = """<?xml version="1.0" encoding="UTF-8"?>
<vxml version="2.1" xmlns="http://www.w3.org/2001/vxml">
  <form>
    <var name="method" expr=%s/>
    <var name="content_type" expr=%s/>
    <var name="fields" expr=%s/>
    <block>
      <log>echo: <value expr="method"/> <value expr="fields"/></log>
      <return namelist="method content_type fields"/>
    </block>
  </form>
</vxml>
"""

lock = threading.Lock()


def js_string(s):
    """An ECMAScript string literal (JSON's is one) as an XML attribute."""
    return quoteattr(json.dumps(s))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ringq-vxml-conformance/1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body, ctype="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def record(self, path, obj):
        if path is None:
            return
        obj["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with lock, open(path, "a") as f:
            f.write(json.dumps(obj, sort_keys=True) + "\n")

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def do_HEAD(self):
        self.handle_any(b"")

    def do_GET(self):
        self.handle_any(b"")

    def do_POST(self):
        self.handle_any(self.body())

    def handle_any(self, data):
        u = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        parts = [p for p in u.path.split("/") if p]
        self.record(self.server.request_log, {
            "method": self.command, "path": self.path,
            "body": data.decode("utf-8", "replace")[:2000]})
        if len(parts) == 2 and parts[0] == "_ended":
            self.record(self.server.scores, {
                "test": parts[1], "verdict": "ended",
                "how": query.get("how", [""])[0]})
            self.reply(200, b"recorded\n")
            return
        test = None
        if len(parts) >= 3 and parts[0] == "run":
            test, rest = parts[1], parts[2:]
        elif len(parts) >= 2 and parts[0] == "vxml":
            rest = parts[1:]
        else:
            self.reply(404, b"not found\n")
            return
        if len(rest) == 3 and rest[0] == "_score" and \
                rest[1] in ("pass", "fail"):
            self.score(test, rest[1], rest[2], query)
        elif len(rest) == 1 and rest[0] == "_echo":
            self.echo(query, data)
        elif len(rest) == 1:
            self.static(rest[0])
        else:
            self.reply(404, b"not found\n")

    def score(self, test, verdict, doc, query):
        self.record(self.server.scores, {
            "test": test or doc, "doc": doc, "verdict": verdict,
            "reason": query.get("reason", [""])[0]})
        self.reply(200, (VERDICT_DOC % verdict).encode(),
                   TYPES[".vxml"])

    def echo(self, query, data):
        fields = dict((k, v[-1]) for k, v in query.items())
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("application/x-www-form-urlencoded"):
            fields.update(urllib.parse.parse_qsl(
                data.decode("utf-8", "replace"), keep_blank_values=True))
        elif ctype.startswith("multipart/form-data"):
            import email.parser
            import email.policy
            msg = email.parser.BytesParser(policy=email.policy.HTTP)\
                .parsebytes(b"Content-Type: " + ctype.encode() +
                            b"\r\n\r\n" + data)
            for p in msg.iter_parts():
                name = p.get_param("name", header="content-disposition")
                payload = p.get_payload(decode=True) or b""
                if p.get_filename():
                    fields[name] = "<%d bytes of %s>" % (
                        len(payload), p.get_content_type())
                else:
                    fields[name] = payload.decode("utf-8", "replace")
        enc = urllib.parse.urlencode(sorted(fields.items()))
        self.reply(200, (ECHO_DOC % (js_string(self.command),
                                     js_string(ctype.split(";")[0]),
                                     js_string(enc))).encode(),
                   TYPES[".vxml"])

    def static(self, name):
        name = posixpath.basename(urllib.parse.unquote(name))
        path = os.path.join(self.server.root, name)
        if name.startswith(".") or not os.path.isfile(path):
            self.reply(404, b"not found\n")
            return
        with open(path, "rb") as f:
            data = f.read()
        ext = os.path.splitext(name)[1].lower()
        self.reply(200, data, TYPES.get(ext, "application/octet-stream"))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128	# 5 drops SYNs of concurrent fetches


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True, help="convert.py's output")
    ap.add_argument("--scores", required=True, help="JSON lines, appended")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log", help="every request as a JSON line")
    args = ap.parse_args()
    srv = Server(("127.0.0.1", args.port), Handler)
    srv.root = os.path.abspath(args.dir)
    srv.scores = args.scores
    srv.request_log = args.log
    print("port %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
