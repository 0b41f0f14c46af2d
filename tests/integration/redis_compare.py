#!/usr/bin/env python3
"""Compares everything two Redis servers hold, for test_redis_module.sh:
every key, its type, its value (hashes, sorted sets with scores, sets,
lists, strings, streams entry by entry without their ids, ordered by
call, attempt and status) and whether it
has a TTL.  The two ran the same steps a moment apart, so times may
differ by a little: numbers of 13 digits (ms since 1970), ISO 8601 UTC
times, TTLs and stream ids are equal within TOLERANCE_MS.

    redis_compare.py [--exact] PORT-A PORT-B

--exact: for a replica, or an AOF loaded again: no tolerance at all,
stream ids too, and each key's expire time (PEXPIRETIME) where it has one.

Prints each difference; exits 0 when there is none, else 1."""
import re
import socket
import sys

# The two sides' retries are a second or two away, with jitter of a
# quarter of that: 1.5 s covers it, and an ISO time's rounding to the
# second one more.
TOLERANCE_MS = 1500
EXACT = False
TIME_RE = re.compile(r'(\d{13})|(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)')


class Redis:
    def __init__(self, port):
        self.sock = socket.create_connection(('127.0.0.1', port))
        self.f = self.sock.makefile('rb')

    def call(self, *args):
        out = [b'*%d\r\n' % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b'$%d\r\n%s\r\n' % (len(a), a))
        self.sock.sendall(b''.join(out))
        return self.read()

    def read(self):
        line = self.f.readline()[:-2]
        kind, rest = line[:1], line[1:]
        if kind == b'+':
            return rest.decode()
        if kind == b'-':
            raise RuntimeError(rest.decode())
        if kind == b':':
            return int(rest)
        if kind == b'$':
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data.decode('utf-8', 'surrogateescape')
        if kind == b'*':
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError('unexpected reply %r' % line)


class TTL:
    """A key's PTTL (-1: none), equal to another within TOLERANCE_MS."""

    def __init__(self, ms):
        self.ms = ms

    def __eq__(self, other):
        if (self.ms < 0) != (other.ms < 0):
            return False
        return abs(self.ms - other.ms) <= TOLERANCE_MS

    def __repr__(self):
        return 'no ttl' if self.ms < 0 else 'ttl %d ms' % self.ms


class ExpireTime:
    """A key's PEXPIRETIME (-1: none), exactly."""

    def __init__(self, ms):
        self.ms = ms

    def __eq__(self, other):
        return self.ms == other.ms

    def __repr__(self):
        return 'no expire' if self.ms < 0 else 'expires at %d' % self.ms


def event_key(entry):
    f = dict(zip(entry[1][::2], entry[1][1::2]))
    return (f.get('call_id', ''), f.get('attempt', ''), f.get('status', ''))


def dump(r):
    keys, cursor = set(), '0'
    while True:
        cursor, batch = r.call('SCAN', cursor, 'COUNT', 1000)
        keys.update(batch)
        if cursor == '0':
            break
    out = {}
    for k in sorted(keys):
        t = r.call('TYPE', k)
        if t == 'hash':
            v = r.call('HGETALL', k)
            v = sorted(zip(v[::2], v[1::2]))
        elif t == 'zset':
            v = r.call('ZRANGE', k, 0, -1, 'WITHSCORES')
            v = sorted(zip(v[::2], v[1::2]))
        elif t == 'set':
            v = sorted(r.call('SMEMBERS', k))
        elif t == 'list':
            v = r.call('LRANGE', k, 0, -1)
        elif t == 'string':
            v = r.call('GET', k)
        elif t == 'stream' and EXACT:
            v = r.call('XRANGE', k, '-', '+')
        elif t == 'stream':
            # in the order of the calls they are about: steps that walk a
            # set (an interrupt) meet its members in either server's order
            v = sorted(((e[0].split('-')[0], e[1]) for e in
                        r.call('XRANGE', k, '-', '+')), key=event_key)
        else:
            v = None
        if EXACT:
            out[k] = (t, v, ExpireTime(r.call('PEXPIRETIME', k)))
        else:
            out[k] = (t, v, TTL(r.call('PTTL', k)))
    return out


def iso_ms(s):
    import calendar
    import time
    return calendar.timegm(time.strptime(s, '%Y-%m-%dT%H:%M:%SZ')) * 1000


def same_text(a, b):
    """a and b equal but for times a little apart."""
    ta, tb = TIME_RE.split(a), TIME_RE.split(b)
    if len(ta) != len(tb):
        return False
    # split() gives text, ms, iso, text, ms, iso, ...
    for i, (x, y) in enumerate(zip(ta, tb)):
        if (x is None) != (y is None):
            return False
        if x is None or x == y:
            continue
        if i % 3 == 1:
            if abs(int(x) - int(y)) > TOLERANCE_MS:
                return False
        elif i % 3 == 2:
            rounding = 0 if EXACT else 1000
            if abs(iso_ms(x) - iso_ms(y)) > TOLERANCE_MS + rounding:
                return False
        else:
            return False
    return True


def same(a, b):
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, str) and isinstance(b, str):
        return same_text(a, b)
    return a == b


def main():
    global EXACT, TOLERANCE_MS
    args = sys.argv[1:]
    if args[:1] == ['--exact']:
        EXACT, TOLERANCE_MS = True, 0
        args = args[1:]
    a = dump(Redis(int(args[0])))
    b = dump(Redis(int(args[1])))
    diffs = 0
    for k in sorted(set(a) | set(b)):
        if k not in a or k not in b:
            print('key %s only in %s' % (k, 'A' if k in a else 'B'))
            diffs += 1
        elif not same(a[k], b[k]):
            print('key %s differs:\n  A %r\n  B %r' % (k, a[k], b[k]))
            diffs += 1
    print('%d keys compared, %d differ' % (len(set(a) | set(b)), diffs))
    return 1 if diffs else 0


if __name__ == '__main__':
    sys.exit(main())
