#!/usr/bin/env bash
# A VoiceXML application that fails: an unreachable URL, a malformed
# document, a script error and an application that asks again and again
# while nobody answers.  Each time the caller (baresip, recording what it
# hears) hears a short apology, the call ends cleanly, and its status says
# which error and where: failed, reason app_error, the event, the URL and
# the line in its detail and its result.  Last, a telserver that may not
# fetch from loopback (the default: application URLs come from tenants)
# refuses to connect to the test's own web server.
. "${RQ_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh" || exit 1

rq_start_all

mkdir -p "$T/www"
cat > "$T/www/malformed.vxml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<vxml version="2.1" xmlns="http://www.w3.org/2001/vxml">
  <form>
    <block>Hello
  </form>
</vxml>
EOF
cat > "$T/www/script.vxml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<vxml version="2.1" xmlns="http://www.w3.org/2001/vxml">
  <form>
    <block>
      <script>no_such_function();</script>
    </block>
  </form>
</vxml>
EOF
cat > "$T/www/silence.vxml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<vxml version="2.1" xmlns="http://www.w3.org/2001/vxml">
  <form>
    <field name="x" type="digits">
      <property name="timeout" value="1s"/>
      <prompt>Your number.</prompt>
      <noinput><reprompt/></noinput>
    </field>
  </form>
</vxml>
EOF
rq_start_www "$T/www"
# a port nothing listens on
DEAD=http://127.0.0.1:$(rq_free_port)/app.vxml

# case NAME URL EVENT LINE: a call of URL to a new baresip; the call must
# fail with app_error naming EVENT, the URL (and LINE unless empty), and
# the phone must have heard something (the apology).
case_() {
	local name=$1 url=$2 event=$3 line=$4 body resp id call f
	rq_start_baresip "$name"
	body=$(jq -cn --arg to "$BARESIP_URI" --arg app "$url" \
	    '{to: $to, app_url: $app}')
	resp=$(rq_api POST /v1/calls -H 'Content-Type: application/json' -d "$body")
	[ "$(rq_last_code)" = 202 ] || rq_fail "POST /v1/calls: $(rq_last_code) $resp"
	id=$(jq -er .id <<<"$resp")
	call=$(rq_wait_call "$id" 60)
	detail=$(jq -r '[.events[] | select(.status == "failed")][-1].detail // ""' <<<"$call")
	echo "$name: $(jq -c '[.status, .reason]' <<<"$call") $detail"
	[ "$(jq -r '[.status, .reason] | join(" ")' <<<"$call")" = "failed app_error" ] ||
	    rq_fail "$name: call $id ended $(jq -c '[.status, .reason]' <<<"$call")"
	grep -qF "$event" <<<"$detail" || rq_fail "$name: detail lacks $event"
	grep -qF "$url" <<<"$detail" || rq_fail "$name: detail lacks the URL"
	jq -e --arg e "$event" --arg u "$url" \
	    '.result.end == "error" and .result.event == $e and .result.url == $u' \
	    <<<"$call" >/dev/null || rq_fail "$name: result $(jq -c .result <<<"$call")"
	if [ -n "$line" ]; then
		grep -qF "line $line" <<<"$detail" ||
		    rq_fail "$name: detail lacks line $line"
		jq -e --argjson l "$line" '.result.line == $l' <<<"$call" \
		    >/dev/null || rq_fail "$name: result line $(jq .result.line <<<"$call")"
	fi
	# the apology: baresip wrote what it heard when the call ended
	heard() {
		f=$(ls "$T/$name/rec/"*-dec.wav 2>/dev/null | head -n 1)
		[ -n "$f" ] && sox "$f" -n stat 2> "$T/$name.stat"
	}
	rq_wait_for 15 heard
	awk '/^RMS +amplitude/ { exit !($3 > 0.01) }' "$T/$name.stat" ||
	    rq_fail "$name: the caller heard silence, no apology"
}

case_ unreachable "$DEAD" error.badfetch ""
# a token in the URL: the tenant sees its URL whole, the log does not
case_ malformed "$WWW/malformed.vxml?token=vx-sekrit" error.badfetch 5
rq_logged "$T/telserver.log" "running $WWW/malformed.vxml?\.\.\." ||
    rq_fail "the log does not show where the application came from"
! grep -q vx-sekrit "$T/telserver.log" ||
    rq_fail "a URL's token was logged: $(grep vx-sekrit "$T/telserver.log")"
case_ script "$WWW/script.vxml" error.semantic 5
case_ silence "$WWW/silence.vxml" error.noresource ""

# The same telserver with the production default: no fetches from loopback
# (nor private addresses, this host's own, or link-local metadata).
rq_stop_daemon telserver
cp "$RQ_CONF" "$T/strict.conf"
printf '\n[telserver]\nfetch_allow_loopback = no\n' >> "$T/strict.conf"
RQ_CONF=$T/strict.conf rq_start_daemon telserver
cat > "$T/www/hello.vxml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<vxml version="2.1" xmlns="http://www.w3.org/2001/vxml">
  <form><block>Hello.</block></form>
</vxml>
EOF
case_ loopback "$WWW/hello.vxml" error.badfetch ""
grep -qF "refused to connect to 127.0.0.1: this host (loopback)" \
    <<<"$detail" || rq_fail "loopback: detail does not say why: $detail"
! grep -q hello.vxml "$T/www.log" ||
    rq_fail "loopback: the web server was reached: $(grep hello.vxml "$T/www.log")"
rq_logged "$T/telserver.log" 'refused to connect to 127.0.0.1' ||
    rq_fail "loopback: the telserver log does not say why"
rq_check_sanitizers
echo PASS
