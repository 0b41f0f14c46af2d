#!/usr/bin/env python3
"""The third party's web server in the VoiceXML tests: serves the documents
of a directory over HTTP on 127.0.0.1 and logs every request (method, path,
query, form fields, content type) as one JSON line, so a test can check what
an application submitted.  POST /submit answers a small document that says
what it got and goes to next= (or exits); GET /slow?s=N answers an empty XML
document N seconds later (an application's server that hangs).

    vxml_server.py DIR LOGFILE PORTFILE
"""
import email.parser
import email.policy
import json
import os
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT, LOG, PORTFILE = sys.argv[1], sys.argv[2], sys.argv[3]


def form_fields(handler, body):
    ctype = handler.headers.get('Content-Type', '')
    if ctype.startswith('multipart/form-data'):
        # The body is a MIME multipart (RFC 7578): the email package parses
        # it (the cgi module that did is deprecated, gone in Python 3.13).
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b'Content-Type: ' + ctype.encode('latin-1') + b'\r\n\r\n' + body)
        out = {}
        for part in msg.iter_parts():
            name = part.get_param('name', header='content-disposition')
            if name is None or name in out:
                continue        # the first of repeated fields, as before
            data = part.get_payload(decode=True) or b''
            if part.get_filename() is not None:
                out[name] = {'filename': part.get_filename(),
                             'type': part.get_content_type(),
                             'bytes': len(data)}
            else:
                out[name] = data.decode(
                    part.get_content_charset() or 'utf-8', 'replace')
        return out
    return {k: v[0] for k, v in urllib.parse.parse_qs(
        body.decode('utf-8', 'replace'), keep_blank_values=True).items()}


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):
        pass

    def record(self, fields):
        u = urllib.parse.urlsplit(self.path)
        entry = {'method': self.command, 'path': u.path,
                 'query': {k: v[0] for k, v in
                           urllib.parse.parse_qs(u.query).items()},
                 'fields': fields,
                 'content_type': self.headers.get('Content-Type', '')}
        with open(LOG, 'a') as f:
            f.write(json.dumps(entry) + '\n')
        return u

    def send(self, code, body, ctype='application/voicexml+xml'):
        self.send_response(code)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Cache-Control', 'no-cache')
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = self.record({})
        if u.path == '/slow':
            time.sleep(float(urllib.parse.parse_qs(u.query).get(
                's', ['0'])[0]))
            self.send(200, b'<?xml version="1.0"?>\n<ok/>\n',
                      'application/xml')
            return
        path = os.path.normpath(urllib.parse.unquote(u.path)).lstrip('/')
        full = os.path.join(ROOT, path)
        if '..' in path.split('/') or not os.path.isfile(full):
            self.send(404, b'not found', 'text/plain')
            return
        with open(full, 'rb') as f:
            body = f.read()
        ctype = 'audio/x-wav' if full.endswith('.wav') else \
            'application/voicexml+xml'
        self.send(200, body, ctype)

    def do_POST(self):
        n = int(self.headers.get('Content-Length', '0'))
        body = self.rfile.read(n)
        fields = form_fields(self, body)
        u = self.record(fields)
        if u.path != '/submit':
            self.send(404, b'not found', 'text/plain')
            return
        q = urllib.parse.parse_qs(u.query)
        nxt = q.get('next', [''])[0]
        # short: what was sent is in the log, not worth a caller's time
        said = '%d field%s' % (len(fields), '' if len(fields) == 1 else 's')
        goto = '<goto next="%s"/>' % nxt if nxt else '<exit/>'
        doc = ('<?xml version="1.0"?>\n<vxml version="2.1" '
               'xmlns="http://www.w3.org/2001/vxml"><form><block>'
               '<prompt>Thank you. We got %s.</prompt>%s</block></form>'
               '</vxml>\n' % (said, goto))
        self.send(200, doc.encode())


srv = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
with open(PORTFILE + '.tmp', 'w') as f:
    f.write(str(srv.server_address[1]))
os.rename(PORTFILE + '.tmp', PORTFILE)
srv.serve_forever()
