#!/usr/bin/env bash
# DKIM keys from DNS (a tenant with require_dkim and no pinned dkim_key):
# the gateway looks the key up through libopendkim's resolver.  While the
# DNS server fails (SERVFAIL) a signed message is deferred, 451 4.4.3, so
# that the sending server tries it again rather than bouncing the
# request, even beside a signature whose key does not exist (the other
# may pass later); once the key is published the same message is queued;
# a selector that has no key (NXDOMAIN, or a name without a TXT record)
# is refused, 550 5.7.20; a reply cut short is asked again over TCP, with
# a timeout (a TCP reply to another id, or shorter than a header, is a
# failure for now; one longer than any key is the sender's).  While a key lookup waits for a DNS server that
# does not answer, the gateway still answers HTTP (the check runs in a
# thread), and the message is deferred; a client that leaves meanwhile,
# and a stop meanwhile, are handled.  The gateway runs in a
# network namespace whose resolv.conf (ip netns exec's /etc/netns/NAME/)
# names this test's DNS server on the namespace's loopback; it reaches
# Redis through Redis's Unix socket.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

rq_need ip swaks dkimsign openssl python3 curl
mkdir -p "$T/dk"
DKIM_P=$(rq_dkim_key "$T/dk/sel.private")

rq_start_redis
[ -n "$REDIS_SOCK" ] ||
    rq_fail "Redis has no Unix socket here (TMPDIR too long), which the gateway in its namespace needs"
TOKEN=dnstok$RANDOM
rq_write_config <<EOC
[tenant dnsco]
key_sha256 = $(rq_sha256 dnsco-key)
allow_sip = yes
mail_token_sha256 = $(rq_sha256 "$TOKEN")
require_dkim = yes
dkim_domain = example.test
EOC
TO="calls+$TOKEN@ringq.localhost"

NS=rqdkim$$
rq_netns_add "$NS"
mkdir -p "/etc/netns/$NS"
echo "nameserver 127.0.0.1" > "/etc/netns/$NS/resolv.conf"
echo "sel._domainkey.example.test SERVFAIL" > "$T/dns.table"
ip netns exec "$NS" python3 "$here/dns_server.py" 127.0.0.1 53 \
    "$T/dns.table" > "$T/dns.log" 2>&1 &
rq_track dns $!
rq_wait_for 5 grep -q listening "$T/dns.log"
RQ_DAEMON_NETNS=$NS rq_start_daemon gateway

# mail FILE: swaks in the namespace; prints the reply to the final dot.
mail() {
	ip netns exec "$NS" swaks --server "127.0.0.1:$RQ_SMTP_PORT" \
	    --from requester@example.test --to "$TO" --timeout 15 \
	    --data @"$1" > "$T/swaks.out" 2>&1 || true
	awk '/^ [-~]> \.$/ { dot = 1; next }
	     dot && /^<[-~*]+ / { sub(/^<[-~*]+ +/, ""); print; done = 1; exit }
	     END { if (!done) print "no reply" }' "$T/swaks.out"
}
jobs() { rq_redis --scan --pattern 'rq:job:*' | wc -l; }
signed() {
	printf 'From: requester@example.test\r\nTo: %s\r\nSubject: call\r\nMessage-ID: <%s@example.test>\r\n\r\nTo: sip:nobody@127.0.0.1:9\r\nSay: a request signed with a key in DNS\r\n' \
	    "$TO" "$2" | dkimsign "$1" example.test "$T/dk/sel.private"
}

signed sel "dns-$RANDOM" > "$T/good.eml"
r=$(mail "$T/good.eml")
rq_expect_reply '^451 4\.4\.3 .*DNS lookup of the DKIM key of example\.test failed' \
    "$r" "key lookup failing (SERVFAIL)"
[ "$(jobs)" = 0 ] || rq_fail "a deferred message left a job"
rq_logged "$T/gateway.log" "tenant dnsco: deferred: the DNS lookup" ||
    rq_fail "the deferral is not in the gateway's log"
signed nokey "two-$RANDOM" | dkimsign sel example.test "$T/dk/sel.private" > "$T/two.eml"
r=$(mail "$T/two.eml")
rq_expect_reply '^451 4\.4\.3 ' "$r" "a signature without a key beside one whose lookup fails"

echo "sel._domainkey.example.test v=DKIM1; k=rsa; p=$DKIM_P" > "$T/dns.table"
r=$(mail "$T/good.eml")
rq_expect_reply '^250 2\.0\.0 Ok: queued as c_' "$r" "the same message, key published"
id=${r##* }
[ "$(rq_redis HGET "rq:job:$id" tenant)" = dnsco ] || rq_fail "job $id not dnsco's"

signed nokey "nokey-$RANDOM" > "$T/nokey.eml"
r=$(mail "$T/nokey.eml")
rq_expect_reply '^550 5\.7\.20 .*example\.test publishes no DKIM key for the selector nokey' "$r" "a selector with no key (NXDOMAIN)"
echo "nodata._domainkey.example.test NODATA" >> "$T/dns.table"
signed nodata "nodata-$RANDOM" > "$T/nodata.eml"
r=$(mail "$T/nodata.eml")
rq_expect_reply '^550 5\.7\.20 .*publishes no DKIM key for the selector nodata' "$r" "a selector's name without a TXT record"
[ "$(jobs)" = 1 ] || rq_fail "a refused message left a job"

# A DNS server that does not answer: the key lookup waits for its
# timeout (3 s), seconds in which the gateway's other clients are served.
echo "silent._domainkey.example.test SILENT" >> "$T/dns.table"
signed silent "silent-$RANDOM" > "$T/silent.eml"
mail "$T/silent.eml" > "$T/silent.reply" &
sender=$!
rq_wait_for 10 grep -q "query silent._domainkey.example.test" "$T/dns.log"
code=$(ip netns exec "$NS" curl -s -o /dev/null -w '%{http_code}' \
    --max-time 2 "http://127.0.0.1:$RQ_HTTP_PORT/healthz") || true
kill -0 "$sender" 2>/dev/null ||
    rq_fail "the DKIM lookup ended before the HTTP request: nothing shown"
[ "$code" = 200 ] ||
    rq_fail "the gateway did not answer HTTP (got '$code') while a DKIM key lookup waited"
echo "ok: HTTP answered while a DKIM key lookup waited for DNS"
wait "$sender"
rq_expect_reply '^451 4\.4\.3 .*DNS lookup of the DKIM key' \
    "$(cat "$T/silent.reply")" "a DNS server that does not answer"

# A reply cut short (TC, as for a key too big for UDP) is asked again
# over TCP, where the key is, and the message is queued; a TCP server
# that then holds the query defers the message within the lookup's
# timeout (glibc's own TCP would wait for good).
echo "big._domainkey.example.test BIG v=DKIM1; k=rsa; p=$DKIM_P" \
    >> "$T/dns.table"
signed big "big-$RANDOM" > "$T/big.eml"
r=$(mail "$T/big.eml")
rq_expect_reply '^250 2\.0\.0 Ok: queued as c_' "$r" \
    "a key asked again over TCP"
grep -q "tcp query big._domainkey.example.test" "$T/dns.log" ||
    rq_fail "the key was not asked for over TCP"
echo "trunc._domainkey.example.test TRUNCATED" >> "$T/dns.table"
signed trunc "trunc-$RANDOM" > "$T/trunc.eml"
start=$(date +%s)
r=$(mail "$T/trunc.eml")
rq_expect_reply '^451 4\.4\.3 .*DNS lookup of the DKIM key' "$r" \
    "a TCP server that holds the query"
(( $(date +%s) - start <= 10 )) ||
    rq_fail "the TCP query was not given up within its timeout"
# a resolver that refuses TCP: its trouble, not the domain's
echo "refused._domainkey.example.test TCPREFUSED" >> "$T/dns.table"
signed refused "refused-$RANDOM" > "$T/refused.eml"
r=$(mail "$T/refused.eml")
rq_expect_reply '^451 4\.4\.3 .*DNS lookup of the DKIM key' "$r" \
    "a name server that refuses the TCP query"
# a TCP reply to another query (its id) is no answer; nor is one shorter
# than a DNS header; one longer than any key is the sender's record
for sel in tcpwrongid tcpshort; do
	echo "$sel._domainkey.example.test ${sel^^}" >> "$T/dns.table"
	signed "$sel" "$sel-$RANDOM" > "$T/$sel.eml"
	r=$(mail "$T/$sel.eml")
	rq_expect_reply '^451 4\.4\.3 .*DNS lookup of the DKIM key' "$r" \
	    "a TCP reply: $sel"
done
printf 'huge._domainkey.example.test BIG v=DKIM1; k=rsa; p=%s\n' \
    "$(head -c 9000 /dev/zero | tr '\0' A)" >> "$T/dns.table"
signed huge "huge-$RANDOM" > "$T/huge.eml"
r=$(mail "$T/huge.eml")
rq_expect_reply '^550 5\.7\.20 .*selector huge cannot be read' "$r" \
    "a TCP reply longer than any key"

# The client goes away while its message is checked: the check ends
# (one more message deferred, or "the client gone" if the gateway saw it
# leave first), its answer goes nowhere, the gateway serves on.  Then it is stopped while
# another check runs: it waits for that one and exits cleanly (under
# ASan: no use after free, nothing leaked).
printf '%s SILENT\n' gone._domainkey.example.test \
    stop._domainkey.example.test >> "$T/dns.table"
signed gone "gone-$RANDOM" > "$T/gone.eml"
ended() {
	grep -cE "tenant dnsco: deferred: the DNS lookup|the client gone" \
	    "$T/gateway.log" || true
}
ended_over() { [ "$(ended)" -gt "$1" ]; }
# every check before this one has ended and been logged (deferred 5 times)
rq_wait_for 10 ended_over 4
before=$(ended)
ip netns exec "$NS" swaks --server "127.0.0.1:$RQ_SMTP_PORT" \
    --from requester@example.test --to "$TO" --timeout 15 \
    --data @"$T/gone.eml" > "$T/gone.out" 2>&1 &
gone=$!
rq_wait_for 10 grep -q "query gone._domainkey" "$T/dns.log"
kill "$gone"
wait "$gone" 2>/dev/null || true
rq_wait_for 10 ended_over "$before"
code=$(ip netns exec "$NS" curl -s -o /dev/null -w '%{http_code}' \
    --max-time 2 "http://127.0.0.1:$RQ_HTTP_PORT/healthz") || true
[ "$code" = 200 ] || rq_fail "the gateway after a client left mid-check: '$code'"
echo "ok: a client gone while its message was checked"
signed stop "stop-$RANDOM" > "$T/stop.eml"
mail "$T/stop.eml" > /dev/null &
sender=$!
rq_wait_for 10 grep -q "query stop._domainkey" "$T/dns.log"
rq_stop_daemon gateway
wait "$sender" || true
rq_logged "$T/gateway.log" "smtp: waiting for 1 DKIM checks" &&
    ! grep -q "still running at stop" "$T/gateway.log" ||
    rq_fail "the gateway did not wait for the check under way"
echo "ok: stopped while a check ran: waited for it, exited cleanly"
echo "PASS"
