#!/bin/sh
# Checks the conformance tools without an interpreter: convert.py's output
# is well-formed VoiceXML without conf: elements; server.py serves it under
# /run/TEST/ (relative references resolve as an interpreter resolves them)
# and records verdicts; score.py counts them.  curl plays the interpreter.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
corpus=${VXML_W3C:-$here/../../../shared/corpora/vxml-w3c}
for tool in python3 curl xmllint; do
	# deploy/packages installs them: missing is a failure, not a skip
	command -v $tool >/dev/null || { echo "selftest: needs $tool"; exit 1; }
done
[ -f "$corpus/ENTRY-NO-ASR.txt" ] || {
	echo "selftest: no corpus at $corpus (set VXML_W3C)"; exit 77; }

tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "selftest: FAIL: $*"; exit 1; }

python3 "$here/convert.py" --src "$corpus" --out "$tmp/out" \
    --features "$tmp/features.json" 2>"$tmp/convert.log" ||
	{ cat "$tmp/convert.log"; fail "convert.py failed"; }
n=0
for f in "$tmp"/out/*.vxml; do
	xmllint --noout "$f" || fail "$f is not well-formed"
	c=$(xmllint --xpath \
	    'count(//*[namespace-uri()="http://www.w3.org/2002/vxml-conformance"])' "$f")
	[ "$c" = 0 ] || fail "$f keeps $c conf: elements"
	grep -q 'vxml-conformance' "$f" && fail "$f names the conf namespace"
	n=$((n + 1))
done
[ $n -ge 206 ] || fail "only $n documents converted"
for t in $(cat "$corpus/ENTRY-NO-ASR.txt"); do
	[ -f "$tmp/out/${t%.txml}.vxml" ] || fail "entry test $t not converted"
done
echo "selftest: $n documents well-formed, no conf: element"
# every document, script and audio file a test names is there, but for
# those the tests expect to be missing (error.badfetch) or never reach
python3 - "$tmp/out" <<'PY' || fail "dangling references"
import os, re, sys
out = sys.argv[1]
expected_missing = {"notExist.vxml", "a.wav", "b.wav", "assertion-561.js",
                    "appRootDoc.vxml", "assert185-b.vxml"}
bad = 0
for name in sorted(os.listdir(out)):
    if not name.endswith(".vxml"):
        continue
    text = open(os.path.join(out, name)).read()
    if ".txml" in text or "localhost/vxml" in text:
        print("selftest: %s still names .txml or localhost" % name)
        bad += 1
    for ref in re.findall(r"([A-Za-z0-9_.-]+\.(?:vxml|wav|au|js))\b", text):
        if ref not in expected_missing and \
                not os.path.exists(os.path.join(out, ref)):
            print("selftest: %s names %s, which is not there" % (name, ref))
            bad += 1
sys.exit(1 if bad else 0)
PY

mkfifo "$tmp/port"
python3 "$here/server.py" --dir "$tmp/out" --scores "$tmp/scores.jsonl" \
    --log "$tmp/requests.jsonl" >"$tmp/port" &
pid=$!
port=$(head -1 "$tmp/port" | sed 's/^port //')
base=http://127.0.0.1:$port

# 526: its goto names http://localhost/vxml/526b.txml, now relative.
curl -sf "$base/run/526/526.vxml" >"$tmp/526.vxml"
grep -q '<goto next="526b.vxml"/>' "$tmp/526.vxml" || fail "526's goto"
curl -sf "$base/run/526/526b.vxml" | grep -q 'next="_score/pass/526b"' ||
	fail "526b's pass"
# curl resolves the relative score URL against 526b's URL, as the
# interpreter does (tel_url_resolve): it lands under /run/526/.
curl -sf "$base/run/526/526b.vxml" >/dev/null
verdict=$(curl -sf "$base/run/526/_score/pass/526b")
echo "$verdict" | grep -q '<prompt>pass</prompt>' || fail "pass document"
echo "$verdict" | xmllint --noout - || fail "pass document not well-formed"

# a failure with a reason, as a conf:fail expr builds it
curl -sf "$base/run/432/_score/fail/432?reason=second%20block" |
	grep -q '<prompt>fail</prompt>' || fail "fail document"
# a manual test ended by <exit>, as the harness reports it
curl -sf "$base/_ended/assert113?how=exit" >/dev/null
curl -sf -X POST "$base/_ended/216?how=hangup" >/dev/null
# the echo of a submitted namelist
curl -sf -d 'a=1&b=x+y' "$base/run/1/_echo" | grep -q 'a=1&amp;b=x+y' ||
	fail "echo"
curl -s -o /dev/null -w '%{http_code}' "$base/run/1/notExist.vxml" |
	grep -q 404 || fail "a missing document is not a 404"
curl -s -o /dev/null -w '%{http_code}' "$base/run/1/..%2fserver.py" |
	grep -q 404 || fail "a path outside the directory was served"
curl -sf -o /dev/null -w '%{content_type}' "$base/vxml/369.wav" |
	grep -q audio/wav || fail "369.wav's type"

out=$(python3 "$here/score.py" --tests "$corpus/ENTRY-NO-ASR.txt" \
    --scores "$tmp/scores.jsonl" --features "$tmp/features.json")
echo "$out"
echo "$out" | head -1 | grep -qx 'vxml-w3c: 2/123 passed' ||
	fail "score line"
echo "$out" | grep -qx '  432: second block' || fail "432's reason"
echo "$out" | grep -qx '  1026: no verdict' || fail "1026 without verdict"
echo "$out" | grep -qx '  216: no verdict (session ended: hangup)' ||
	fail "216 hung up"
echo "$out" | grep -q '^manual tests passed on their exit alone (1): assert113$' ||
	fail "manual assert113"
python3 "$here/score.py" --tests "$corpus/ENTRY-NO-ASR.txt" \
    --scores "$tmp/scores.jsonl" --min 90 >/dev/null &&
	fail "--min 90 did not fail"
echo "selftest: server and score OK"
