#!/usr/bin/env bash
# Call requests by e-mail through the gateway's SMTP listener, with swaks as
# the client: plain text, JSON part, quoted-printable, base64 and an
# attachment each become a call that baresip answers; rejections get the
# right 5xx and leave no job; STARTTLS + AUTH; DKIM; and abuse (long lines,
# SIZE, 8-bit garbage, SMTP smuggling with bare LFs, a stalled client, a
# trickling client, the per-address cap).
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

rq_need swaks openssl jq dkimsign
/usr/bin/python3 -c 'import dkim' 2>/dev/null ||
    rq_fail "python3-dkim is not installed (deploy/install-packages installs it)"
swaks --support 2>&1 | grep -q '=== TLS supported' ||
    rq_fail "swaks lacks TLS (libnet-ssleay-perl, libio-socket-ssl-perl)"

# A self-signed certificate for STARTTLS, and a DKIM key pinned for a tenant.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ringq.localhost \
    -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1 ||
    rq_fail "openssl could not make a certificate"
mkdir -p "$T/dk"
DKIM_P=$(rq_dkim_key "$T/dk/sel.private")
rq_dkim_key "$T/dk/other.private" >/dev/null

AUTH_PASS=s3cret-$RANDOM
SIGNED_TOKEN=signedtok$RANDOM
LIMITED_TOKEN=limitedtok$RANDOM

rq_start_redis
rq_start_pg
rq_write_config <<EOF
[smtp]
tls_cert = $T/cert.pem
tls_key = $T/key.pem
max_message = 65536
timeout_s = 3
max_clients_per_ip = 4

[tenant authco]
key_sha256 = $(rq_sha256 authco-key)
allow_sip = yes
smtp_user = authco
smtp_password_sha256 = $(rq_sha256 "$AUTH_PASS")

[tenant signed]
key_sha256 = $(rq_sha256 signed-key)
allow_sip = yes
mail_token_sha256 = $(rq_sha256 "$SIGNED_TOKEN")
require_dkim = yes
dkim_domain = example.com
dkim_key = v=DKIM1; k=rsa; p=$DKIM_P

[tenant limited]
key_sha256 = $(rq_sha256 limited-key)
allow_sip = yes
mail_token_sha256 = $(rq_sha256 "$LIMITED_TOKEN")
rate_per_day = 1
EOF
# A certificate that cannot serve is refused by -n and at start, with why,
# not found at the first STARTTLS.
openssl genrsa -out "$T/other-key.pem" 2048 >/dev/null 2>&1
tls_conf() {
	sed -e "s|^tls_cert = .*|tls_cert = $1|" -e "s|^tls_key = .*|tls_key = $2|" \
	    "$RQ_CONF" > "$T/tls.conf"
	"$RQ_BUILD/gateway/ringq-gateway" -f "$T/tls.conf" -n 2>&1
}
out=$(tls_conf "$T/cert.pem" "$T/key.pem") ||
    rq_fail "-n refused the good certificate: $out"
out=$(tls_conf "$T/cert.pem" "$T/other-key.pem") &&
    rq_fail "-n took a key of another certificate"
grep -q 'key values mismatch' <<<"$out" || rq_fail "-n, wrong key: $out"
out=$(tls_conf "$T/missing.pem" "$T/key.pem") &&
    rq_fail "-n took a missing certificate"
grep -q "certificate $T/missing.pem: No such file" <<<"$out" ||
    rq_fail "-n, missing certificate: $out"
out=$(tls_conf "$T/cert.pem" "$T/cert.pem") &&
    rq_fail "-n took a certificate as its key"
timeout 10 "$RQ_BUILD/gateway/ringq-gateway" -f "$T/tls.conf" -d \
    > "$T/tls-start.out" 2>&1 && rq_fail "the gateway started with a bad key"
grep -q 'cannot load the TLS certificate' "$T/tls-start.out" ||
    rq_fail "the gateway's refusal: $(cat "$T/tls-start.out")"
echo "ok: -n and the start refuse a certificate that cannot serve"

rq_start_daemon accounting
rq_start_daemon gateway
rq_start_daemon scheduler
rq_start_daemon dispatcher
rq_start_daemon telserver
rq_start_baresip bob

SIGNED_TO="calls+$SIGNED_TOKEN@ringq.localhost"

# mail ARGS...: swaks to the listener; prints the reply to the final dot (or
# the first 4xx/5xx that ended the session early).
mail() {
	swaks --server "$RQ_SMTP" --from requester@example.com \
	    --timeout 15 "$@" > "$T/swaks.out" 2>&1 || true
	awk '/^ [-~]> \.$/ { dot = 1; next }
	     dot && /^<[-~*]+ / { sub(/^<[-~*]+ +/, ""); print; done = 1; exit }
	     !dot && /^<(\*\*|~\*) / { sub(/^<[-~*]+ +/, ""); print; done = 1; exit }
	     END { if (!done) print "no reply" }' "$T/swaks.out"
}

# queued REPLY: prints the call id of a "250 ... queued as ID" reply.
queued_id() {
	local id
	id=$(sed -n 's/^250 2\.0\.0 Ok: \(already \)\{0,1\}queued as \(c_[0-9a-f]*\)$/\2/p' <<<"$1")
	[ -n "$id" ] || rq_fail "expected '250 2.0.0 Ok: queued as <id>', got: $1 ($(tail -n 20 "$T/swaks.out"))"
	echo "$id"
}

jobs() {
	rq_redis --scan --pattern 'rq:job:*' | wc -l
}

# crlf FILE: LF to CRLF in place.
crlf() {
	sed -i 's/$/\r/' "$1"
}

SAY="Hello from ringq by e-mail."
# far enough ahead that those calls stay queued while the test runs
WHEN=$(date -u -d "+300 days" +%Y-%m-%dT%H:%M:%SZ)

# --- 1. five shapes of request, each answered by baresip ----------------------
# one at a time: baresip answers one call and is busy for the others
ids=()
answered() {
	local id=$1 call
	ids+=("$id")
	call=$(rq_wait_call "$id" 90)
	[ "$(jq -r .status <<<"$call")" = completed ] ||
	    rq_fail "call $id ended $(jq -c '[.status, .reason, .sip_code]' <<<"$call")"
	echo "ok: call $id completed"
}

r=$(mail --to "$RQ_MAILTO" --body "$(printf 'To: %s\nSay: %s\nX-Order: 1001\n' "$BARESIP_URI" "$SAY")")
answered "$(queued_id "$r")"

jq -cn --arg to "$BARESIP_URI" --arg say "$SAY" \
    '{to: $to, say: $say, metadata: {shape: "json"}}' > "$T/req.json"
r=$(mail --to "$RQ_MAILTO" --body "Request attached." \
    --attach-type application/json --attach-name req.json --attach @"$T/req.json")
answered "$(queued_id "$r")"

cat > "$T/qp.eml" <<EOF
From: requester@example.com
To: $RQ_MAILTO
Subject: quoted-printable request
Message-ID: <qp-$RANDOM@example.com>
MIME-Version: 1.0
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

To: $BARESIP_URI
Say: Hello from ringq by e-mail, caf=E9 =3D quoted printable, a long line th=
at is soft broken.
X-Note: =E9t=E9
EOF
crlf "$T/qp.eml"
r=$(mail --to "$RQ_MAILTO" --data @"$T/qp.eml")
answered "$(queued_id "$r")"

b64=$(printf 'To: %s\nSay: %s\nPriority: 7\n' "$BARESIP_URI" "$SAY" | base64)
cat > "$T/b64.eml" <<EOF
From: requester@example.com
To: $RQ_MAILTO
Subject: base64 request
Message-ID: <b64-$RANDOM@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XyZ"

--XyZ
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

$b64
--XyZ--
EOF
crlf "$T/b64.eml"
r=$(mail --to "$RQ_MAILTO" --data @"$T/b64.eml")
answered "$(queued_id "$r")"

head -c 3000 /dev/urandom > "$T/blob.bin"
r=$(mail --to "$RQ_MAILTO" --body "$(printf 'To: %s\nSay: %s\n' "$BARESIP_URI" "$SAY")" \
    --attach-type application/octet-stream --attach-name blob.bin --attach @"$T/blob.bin")
answered "$(queued_id "$r")"

call=$(rq_api GET "/v1/calls/${ids[0]}")
jq -e '.metadata["X-Order"] == "1001"' <<<"$call" >/dev/null ||
    rq_fail "X- key not kept as metadata: $call"
call=$(rq_api GET "/v1/calls/${ids[2]}")
jq -e '.say | test("café = quoted printable, a long line that is soft broken")' \
    <<<"$call" >/dev/null || rq_fail "quoted-printable/charset not decoded: $call"
call=$(rq_api GET "/v1/calls/${ids[3]}")
jq -e '.priority == 7' <<<"$call" >/dev/null || rq_fail "base64 body: $call"

# --- 2. the same Message-ID is queued once ------------------------------------
n0=$(jobs)
r=$(mail --to "$RQ_MAILTO" --header "Message-Id: <dup-1@example.com>" \
    --body "$(printf 'To: sip:nobody@127.0.0.1:9\nSay: once\nWhen: '"$WHEN"'\n')")
first=$(queued_id "$r")
r=$(mail --to "$RQ_MAILTO" --header "Message-Id: <dup-1@example.com>" \
    --body "$(printf 'To: sip:nobody@127.0.0.1:9\nSay: once\nWhen: '"$WHEN"'\n')")
rq_expect_reply "^250 2\.0\.0 Ok: already queued as $first\$" "$r" "same Message-ID"
[ "$(jobs)" = $((n0 + 1)) ] || rq_fail "a repeated Message-ID made a second job"
# Mail servers retry for days: a Message-ID is kept a week or two (in
# the tenant's hash of the week, which expires at the end of the next),
# an HTTP Idempotency-Key a day or two.
week=0
for k in $(rq_redis --scan --pattern 'rq:idem:demo:604800:*'); do
	rq_idem_hash_ok "$k"
	[ "$(rq_redis HLEN "$k")" -ge 1 ] && week=1
done
[ "$week" = 1 ] || rq_fail "the Message-ID is not remembered for a week"

# --- 3. rejections: the right 5xx, and no job ---------------------------------
n0=$(jobs)
r=$(mail --to "calls+wrongtoken@ringq.localhost" --body "To: $BARESIP_URI")
rq_expect_reply '^550 5\.1\.1 .*token' "$r" "unknown token"
r=$(mail --to "someone@elsewhere.example" --body "To: $BARESIP_URI")
rq_expect_reply '^550 5\.7\.1 Relaying denied' "$r" "foreign domain"
r=$(mail --to "$RQ_MAILTO" --body "$(printf 'To: %s\nColour: blue\n' "$BARESIP_URI")")
rq_expect_reply "^550 5\.6\.0 .*Line 2: unknown key 'Colour'" "$r" "unknown key"
r=$(mail --to "$RQ_MAILTO" --body "$(printf 'Say: no destination\n')")
rq_expect_reply '^550 5\.6\.0 \(to\) ' "$r" "missing To"
r=$(mail --to "$RQ_MAILTO" --body "$(printf 'To: +1555\nSay: x\n')")
rq_expect_reply '^550 5\.[67]\.[01] ' "$r" "bad number"
r=$(mail --to "$RQ_MAILTO" --body "$(printf 'To: %s\nSay: x\nPriority: high\n' "$BARESIP_URI")")
rq_expect_reply '^550 5\.6\.0 \(priority\) Line 3' "$r" "bad priority"
r=$(mail --to "$RQ_MAILTO" --body "Request attached." --attach-type application/json \
    --attach-name bad.json --attach @<(printf '{"to": ')) 
rq_expect_reply '^550 5\.6\.0 .*not valid JSON' "$r" "broken JSON part"
[ "$(jobs)" = "$n0" ] || rq_fail "a rejected request left a job"

# one tenant per transaction: the second tenant's RCPT gets 452
swaks --server "$RQ_SMTP" --from r@example.com --to "$RQ_MAILTO,$SIGNED_TO" \
    --body "$(printf 'To: sip:nobody@127.0.0.1:9\nSay: x\nWhen: '"$WHEN"'\n')" \
    > "$T/swaks.out" 2>&1 || true
grep -q '^<\*\* *452 4\.5\.3 One tenant per message' "$T/swaks.out" ||
    rq_fail "two tenants in one transaction: $(cat "$T/swaks.out")"
echo "ok: one tenant per transaction (452 4.5.3)"
n0=$(jobs)

# --- 4. STARTTLS and AUTH ----------------------------------------------------
# (swaks will not AUTH where AUTH is not offered: 530 is checked in 6.)
r=$(mail --tls --to "calls@ringq.localhost" --auth LOGIN --auth-user authco \
    --auth-password wrong --body "To: $BARESIP_URI")
rq_expect_reply '^535 5\.7\.8' "$r" "AUTH with a bad password"
r=$(mail --tls --to "calls@ringq.localhost" --body "To: $BARESIP_URI")
rq_expect_reply '^550 5\.1\.1 No request token' "$r" "no token, no AUTH"
for mech in PLAIN LOGIN; do
	r=$(mail --tls --to "calls@ringq.localhost" --auth "$mech" --auth-user authco \
	    --auth-password "$AUTH_PASS" \
	    --body "$(printf 'To: sip:nobody@127.0.0.1:9\nSay: by %s\nWhen: '"$WHEN"'\n' "$mech")")
	id=$(queued_id "$r")
	grep -q '^<~ *235 2\.7\.0' "$T/swaks.out" || rq_fail "AUTH $mech: no 235 under TLS"
	[ "$(rq_redis HGET "rq:job:$id" tenant)" = authco ] ||
	    rq_fail "AUTH $mech: job $id not for tenant authco"
	echo "ok: STARTTLS + AUTH $mech queued $id for authco"
done
n0=$(jobs)

# --- 5. DKIM -----------------------------------------------------------------
dkim_msg() {
	printf 'From: requester@example.com\r\nTo: %s\r\nSubject: signed\r\nMessage-ID: <%s@example.com>\r\n\r\nTo: sip:nobody@127.0.0.1:9\r\nSay: signed request\r\nWhen: '"$WHEN"'\r\n' \
	    "$SIGNED_TO" "$1"
}
dkim_msg "unsigned-$RANDOM" > "$T/unsigned.eml"
r=$(mail --to "$SIGNED_TO" --data @"$T/unsigned.eml")
rq_expect_reply '^550 5\.7\.20 .*has none' "$r" "DKIM required and missing"
dkim_msg "other-$RANDOM" | dkimsign sel other.example "$T/dk/other.private" > "$T/other.eml"
r=$(mail --to "$SIGNED_TO" --data @"$T/other.eml")
rq_expect_reply '^550 5\.7\.20 .*signed by other\.example' "$r" "DKIM from the wrong domain"
dkim_msg "forged-$RANDOM" | dkimsign sel example.com "$T/dk/other.private" > "$T/forged.eml"
r=$(mail --to "$SIGNED_TO" --data @"$T/forged.eml")
rq_expect_reply '^550 5\.7\.20 .*does not verify' "$r" "DKIM with the wrong key"
[ "$(jobs)" = "$n0" ] || rq_fail "a DKIM rejection left a job"
dkim_msg "good-$RANDOM" | dkimsign sel example.com "$T/dk/sel.private" > "$T/good.eml"
r=$(mail --to "$SIGNED_TO" --data @"$T/good.eml")
id=$(queued_id "$r")
[ "$(rq_redis HGET "rq:job:$id" tenant)" = signed ] || rq_fail "signed job $id"
echo "ok: DKIM signed by example.com queued $id"
n0=$(jobs)

# --- 6. abuse: raw sockets --------------------------------------------------
/usr/bin/python3 - "$RQ_SMTP_PORT" "$RQ_MAILTO" <<'EOF' || rq_fail "abuse checks failed"
import select, socket, sys, time
port, rcpt = int(sys.argv[1]), sys.argv[2]

def conn():
    s = socket.create_connection(("127.0.0.1", port), 5)
    f = s.makefile("rb")
    assert f.readline().startswith(b"220"), "no banner"
    return s, f

def reply(f):
    lines = []
    while True:
        l = f.readline()
        if not l:
            return b"".join(lines) or b"EOF"
        lines.append(l)
        if l[3:4] != b"-":
            return b"".join(lines)

def cmd(s, f, c):
    s.sendall(c + b"\r\n")
    return reply(f)

def check(what, got, want):
    if not got.startswith(want):
        print("FAIL %s: expected %r, got %r" % (what, want, got))
        sys.exit(1)
    print("ok: %s: %s" % (what, got.decode(errors="replace").strip().splitlines()[-1]))

s, f = conn()
check("EHLO", cmd(s, f, b"EHLO test"), b"250-")
check("VRFY", cmd(s, f, b"VRFY bob"), b"252")
check("AUTH before STARTTLS", cmd(s, f, b"AUTH PLAIN AGF1dGhjbwB4"), b"530 5.7.0")
check("NOOP", cmd(s, f, b"NOOP"), b"250")
check("long command line", cmd(s, f, b"NOOP " + b"x" * 2000), b"500 5.5.2")
check("8-bit garbage command", cmd(s, f, bytes(range(128, 256))), b"500 5.5.1")
check("SIZE over the limit", cmd(s, f, b"MAIL FROM:<a@b> SIZE=999999999"), b"552 5.3.4")
check("MAIL", cmd(s, f, b"MAIL FROM:<a@b> BODY=8BITMIME"), b"250")
check("RCPT", cmd(s, f, b"RCPT TO:<" + rcpt.encode() + b">"), b"250")
check("DATA", cmd(s, f, b"DATA"), b"354")
s.sendall(b"Subject: x\r\n\r\nTo: sip:a@127.0.0.1\r\nSay: " + b"y" * 1200 + b"\r\n.\r\n")
check("long DATA line", reply(f), b"500 5.5.2")
check("MAIL", cmd(s, f, b"MAIL FROM:<a@b>"), b"250")
check("RCPT", cmd(s, f, b"RCPT TO:<" + rcpt.encode() + b">"), b"250")
check("DATA", cmd(s, f, b"DATA"), b"354")
s.sendall(b"Subject: x\r\n\r\n" + (b"z" * 900 + b"\r\n") * 100 + b".\r\n")
check("message over max_message", reply(f), b"552 5.3.4")
check("MAIL", cmd(s, f, b"MAIL FROM:<a@b>"), b"250")
check("RCPT", cmd(s, f, b"RCPT TO:<" + rcpt.encode() + b">"), b"250")
check("DATA", cmd(s, f, b"DATA"), b"354")
s.sendall(b"Subject: \xff\xfe\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\xc3\x28\xa0\xa1: \xfe\xff\r\n.\r\n")
check("8-bit garbage message", reply(f), b"550 5.6.0")
# pipelined commands get their replies in order
s.sendall(b"RSET\r\nMAIL FROM:<a@b>\r\nRCPT TO:<nobody@ringq.localhost>\r\nRSET\r\n")
check("pipelined RSET", reply(f), b"250")
check("pipelined MAIL", reply(f), b"250")
check("pipelined RCPT", reply(f), b"550")
check("pipelined RSET 2", reply(f), b"250")
# SMTP smuggling: LF "." LF does not end DATA, so the second message is
# body, and the bare LFs get the whole thing refused (no job: checked below)
check("bare LF command", cmd(s, f, b"NOOP\nRSET"), b"500 5.5.2")
check("RSET after the bare LF", reply(f), b"250")
check("MAIL", cmd(s, f, b"MAIL FROM:<a@b>"), b"250")
check("RCPT", cmd(s, f, b"RCPT TO:<" + rcpt.encode() + b">"), b"250")
check("DATA", cmd(s, f, b"DATA"), b"354")
s.sendall(b"Subject: x\r\n\r\nTo: sip:nobody@127.0.0.1:9\r\nSay: first\n.\n"
    b"MAIL FROM:<a@b>\r\nRCPT TO:<" + rcpt.encode() + b">\r\nDATA\r\n"
    b"Subject: smuggled\r\n\r\nTo: sip:nobody@127.0.0.1:9\r\nSay: smuggled\r\n"
    b".\r\n")
check("smuggled message (bare LF)", reply(f), b"500 5.5.2")
check("nothing else after the smuggling attempt", cmd(s, f, b"NOOP"), b"250")
check("QUIT", cmd(s, f, b"QUIT"), b"221")
s.close()

# a client that stalls is closed with 421 after timeout_s (3 s)
s, f = conn()
t0 = time.time()
check("stalled client", reply(f), b"421 4.4.2")
if not 2 <= time.time() - t0 <= 8:
    print("FAIL: timeout after %.1f s" % (time.time() - t0)); sys.exit(1)
s.close()

# more connections than max_clients_per_ip (4) from one address
held = [conn() for _ in range(4)]
s, f = socket.create_connection(("127.0.0.1", port), 5), None
f = s.makefile("rb")
check("connection over the per-address cap", reply(f), b"421 4.7.0")
s.close()
for s, f in held:
    f.close()	# the socket stays open while its file is
    s.close()
time.sleep(0.3)
s, f = conn()
check("a connection after the others left", cmd(s, f, b"QUIT"), b"221")

# a client that trickles a byte every 2 s never goes idle, but its
# transaction must end within 10 x timeout_s (30 s): 421 4.4.2
s, f = conn()
check("EHLO", cmd(s, f, b"EHLO test"), b"250")
t0 = time.time()
check("MAIL", cmd(s, f, b"MAIL FROM:<a@b>"), b"250")
check("RCPT", cmd(s, f, b"RCPT TO:<" + rcpt.encode() + b">"), b"250")
check("DATA", cmd(s, f, b"DATA"), b"354")
got = None
while got is None and time.time() - t0 < 45:
    try:
        s.sendall(b"x")
    except OSError:
        pass
    if select.select([s], [], [], 2)[0]:
        got = reply(f)
if got is None:
    print("FAIL: a trickling client was never closed"); sys.exit(1)
check("trickling client", got, b"421 4.4.2")
if not 29 <= time.time() - t0 <= 40:
    print("FAIL: transaction deadline after %.1f s" % (time.time() - t0)); sys.exit(1)
s.close()
EOF
[ "$(jobs)" = "$n0" ] || rq_fail "the abuse checks left a job"

# --- 7. a rate limit is a temporary failure: the sender's server retries ------
LIMITED_TO="calls+$LIMITED_TOKEN@ringq.localhost"
r=$(mail --to "$LIMITED_TO" \
    --body "$(printf 'To: sip:nobody@127.0.0.1:9\nSay: first\nWhen: '"$WHEN"'\n')")
queued_id "$r" >/dev/null
n1=$(jobs)
r=$(mail --to "$LIMITED_TO" \
    --body "$(printf 'To: sip:nobody@127.0.0.1:9\nSay: second\nWhen: '"$WHEN"'\n')")
rq_expect_reply "^451 4\.7\.1 " "$r" "over the tenant's daily limit"
[ "$(jobs)" = "$n1" ] || rq_fail "a rate-limited message made a job"

# --- 8. the call store silent past the gateway's 5 s watchdog ----------------
# A message with a Message-ID gets 451 (a retry is answered with this
# call's id if it was stored); one without gets 554: a mail server's retry
# would be a new request, a second call if this one was stored.
printf 'From: requester@example.com\nTo: %s\nSubject: no Message-ID\n\nTo: sip:nobody@127.0.0.1:9\nSay: unkeyed\nWhen: %s\n' \
    "$RQ_MAILTO" "$WHEN" > "$T/nokey.eml"
crlf "$T/nokey.eml"
# keyed_mail TAG: a message with a Message-ID, in the background (MAILER):
# its reply in $T/TAG.reply, swaks's output in $T/TAG/swaks.out
keyed_mail() {
	(T=$T/$1; mkdir -p "$T"; mail --to "$RQ_MAILTO" \
	    --header "Message-Id: <$1-$RANDOM@example.com>" --body \
	    "$(printf 'To: sip:nobody@127.0.0.1:9\nSay: %s\nWhen: %s\n' "$1" "$WHEN")") \
	    > "$T/$1.reply" &
	MAILER=$!
}
rq_redis CLIENT PAUSE 8000 WRITE >/dev/null
keyed_mail keyed
sleep 0.2
r=$(mail --to "$RQ_MAILTO" --data @"$T/nokey.eml")
wait "$MAILER"
rq_redis CLIENT UNPAUSE >/dev/null
rq_expect_reply "^451 4\.3\.0 The call store went away" "$(cat "$T/keyed.reply")" \
    "store silent, a message with a Message-ID"
rq_expect_reply "^554 5\.3\.0 .*without a Message-ID a retry could call twice" \
    "$r" "store silent, a message without a Message-ID"
sleep 2		# the daemons back on Redis before they stop

# --- 9. a stop: the message Redis has gets its 250, then 421 -----------------
rq_redis CLIENT PAUSE 5000 WRITE >/dev/null
keyed_mail stopping
rq_wait_for 10 rq_create_held
kill -TERM "$(rq_pid gateway)"
sleep 0.5
rq_redis CLIENT UNPAUSE >/dev/null
wait "$MAILER"
rq_expect_reply "^250 2\.0\.0 Ok: queued as c_" "$(cat "$T/stopping.reply")" \
    "a message Redis has at a stop"
grep -q '^<\*\* *421 4\.3\.2 Service shutting down' "$T/stopping/swaks.out" ||
    rq_fail "no 421 after the answer at a stop: $(tail -n 5 "$T/stopping/swaks.out")"
sleep 2		# the daemons back on Redis before they stop

for d in telserver dispatcher scheduler gateway accounting; do
	rq_stop_daemon "$d"
done
echo "PASS"
