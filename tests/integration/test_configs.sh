#!/usr/bin/env bash
# The configurations deploy/ ships load as they are, once their
# placeholders are filled in as deploy/fleet/README.md says: each daemon
# that reads one answers "configuration OK" to -n.  And the systemd units
# let the daemons do what they do: systemd-analyze finds nothing wrong in
# them, and the telserver's and accounting's allow the netlink socket
# glibc's getifaddrs() needs (they refuse this host's own addresses with
# it).
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1
rq_need python3 systemd-analyze

D=$RQ_SOURCE/deploy

# check DAEMON CONF: DAEMON -n accepts CONF
check() {
	local out
	out=$("$RQ_BUILD/$1/ringq-$1" -f "$2" -n 2>&1) ||
	    rq_fail "ringq-$1 -n refused $(basename "$2"): $out"
	[ "$out" = "configuration OK" ] || rq_fail "ringq-$1 -n $2: $out"
}

for d in gateway scheduler dispatcher telserver accounting; do
	check "$d" "$D/ringq.conf.example"
done
echo "ok: ringq.conf.example"

# The fleet's placeholders: real keypairs from ringq-ctl keygen, made-up
# passwords.
keys() { "$RQ_BUILD/dispatcher/ringq-ctl" keygen | sed 's/^[a-z_]* = //'; }
{ keys; keys; keys; keys; } > "$T/keys"
python3 - "$T/keys" "$D/fleet" "$T" <<'EOF' || rq_fail "the fleet's placeholders"
import pathlib, re, sys
k = pathlib.Path(sys.argv[1]).read_text().split('\n')
fill = {
    '<server-public-key>': k[0], '<server-secret-key>': k[1],
    '<tel1-public-key>': k[2], '<tel1-secret-key>': k[3],
    '<tel2-public-key>': k[4], '<tel3-public-key>': k[6],
    '<redis-password>': 'redis-test-password',
    '<pg-password>': 'pg-test-password',
}
for conf in pathlib.Path(sys.argv[2]).glob('*.conf'):
    text = conf.read_text()
    # (Z85 keys may hold '<' and '>': looked for before they are in)
    left = set(re.findall(r'<[a-z0-9-]+>', text)) - fill.keys()
    if left:
        sys.exit(f'{conf.name}: a placeholder not filled: {sorted(left)}')
    for ph, value in fill.items():
        text = text.replace(ph, value)
    (pathlib.Path(sys.argv[3]) / conf.name).write_text(text)
EOF
for d in gateway scheduler accounting; do
	check "$d" "$T/core.conf"
done
check dispatcher "$T/dispatcher.conf"
check telserver "$T/telserver.conf"
echo "ok: deploy/fleet/*.conf with their placeholders filled in"

# The units, against the binaries where they would be installed: copies
# whose ExecStart points into the build, beside their target.
cp "$D/systemd/ringq.target" "$T/"
for u in "$D"/systemd/ringq-*.service; do
	name=$(basename "$u" .service)
	d=${name#ringq-}
	sed "s|/usr/local/bin/ringq-$d|$RQ_BUILD/$d/ringq-$d|g" "$u" \
	    > "$T/$name.service"
	out=$(systemd-analyze verify "$T/$name.service" 2>&1 || true)
	[ -z "$out" ] || rq_fail "systemd-analyze verify $name: $out"
done
# the two that look up this host's addresses (rq_addr_refusal)
for d in telserver accounting; do
	grep -Eq '^RestrictAddressFamilies=.*AF_NETLINK' \
	    "$D/systemd/ringq-$d.service" ||
	    rq_fail "ringq-$d: RestrictAddressFamilies has no AF_NETLINK (getifaddrs)"
done
echo "ok: the systemd units"
echo PASS
