/* gateway/mail_request.c: raw messages in, a validated call or an error
 * naming the line or key out (text body, JSON part, encodings, charsets). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gateway.h"

#define NOW	1795000000000ULL	/* 2026-11-18 */

static const struct rq_tenant demo = { .name = "demo", .allow_sip = 1,
    .max_attempts = 3 };

#define HDRS	"From: a@example.com\r\nTo: calls+t@ringq.test\r\n" \
		"Subject: call\r\nMessage-ID: <m1@example.com>\r\n"

static int
parse(const char *msg, struct gw_call *call, char *msgid,
    struct gw_error *err)
{
	memset(err, 0, sizeof(*err));
	return gw_mail_request_parse(msg, strlen(msg), &demo, NOW, call,
	    msgid, 256, err);
}

static void
refused(const char *msg, int status, const char *part)
{
	struct gw_call call;
	struct gw_error err;
	char id[256];

	if (parse(msg, &call, id, &err) != -1) {
		gw_call_clear(&call);
		fail_msg("accepted: %s", msg);
	}
	if (err.status != status || strstr(err.message, part) == NULL)
		fail_msg("got %d '%s', want %d '...%s...'", err.status,
		    err.message, status, part);
}

static void
t_text(void **state)
{
	struct gw_call call;
	struct gw_error err;
	char id[256];

	assert_int_equal(parse(HDRS "\r\n"
	    "To: sip:bob@127.0.0.1:5060\r\n"
	    "say: Hello there,\r\n"
	    "  folded onto a second line\r\n"
	    "\r\n"
	    "Priority: 7\r\n"
	    "Caller-Id: +15551234567\r\n"
	    "When: 2026-11-19T10:00:00Z\r\n"
	    "Not-After: 2026-11-19T18:00:00\r\n"
	    "Time-Zone: Europe/Paris\r\n"
	    "X-Order: 1001\r\n"
	    "x-customer: ACME\r\n"
	    "-- \r\n"
	    "Signature: ignored\r\n", &call, id, &err), 0);
	assert_string_equal(id, "m1@example.com");
	/* the Message-ID is the intake's idempotency key */
	assert_non_null(call.idem_key);
	assert_string_equal(call.idem_key, "mail:m1@example.com");
	assert_string_equal(call.to, "sip:bob@127.0.0.1:5060");
	assert_string_equal(call.say, "Hello there, folded onto a second line");
	assert_int_equal(call.priority, 7);
	assert_string_equal(call.caller_id, "+15551234567");
	assert_true(call.not_before_ms > NOW);
	/* a local not_after, for the policy engine to place in time_zone */
	assert_true(call.not_after_local);
	assert_true(call.not_after_ms == call.not_before_ms + 8 * 3600000);
	assert_string_equal(call.time_zone, "Europe/Paris");
	assert_non_null(call.metadata);
	assert_non_null(strstr(call.metadata, "\"X-Order\":\"1001\""));
	assert_non_null(strstr(call.metadata, "\"X-customer\":\"ACME\""));
	gw_call_clear(&call);
}

static void
t_json_part(void **state)
{
	struct gw_call call;
	struct gw_error err;
	char id[256];

	assert_int_equal(parse(HDRS
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
	    "--b1\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n"
	    "--b1\r\nContent-Type: application/json\r\n"
	    "Content-Disposition: attachment; filename=r.json\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n"
	    /* {"to":"+15551234567","say":"json"} */
	    "eyJ0byI6IisxNTU1MTIzNDU2NyIsInNheSI6Impzb24ifQ==\r\n"
	    "--b1--\r\n", &call, id, &err), 0);
	assert_string_equal(call.to, "+15551234567");
	assert_string_equal(call.say, "json");
	gw_call_clear(&call);
}

static void
t_encodings(void **state)
{
	struct gw_call call;
	struct gw_error err;
	char id[256];

	/* quoted-printable in ISO-8859-1, soft line break */
	assert_int_equal(parse(HDRS
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=iso-8859-1\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	    "To: +15551234567\r\n"
	    "Say: caf=E9 =3D cr=\r\nème\r\n", &call, id, &err), 0);
	assert_string_equal(call.say, "caf\xc3\xa9 = cr\xc3\x83\xc2\xa8me");
	gw_call_clear(&call);

	/* base64 text inside multipart/alternative, with an HTML part and a
	 * binary attachment that are ignored */
	assert_int_equal(parse(HDRS
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=o\r\n\r\n"
	    "--o\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n"
	    "--i\r\nContent-Type: text/html\r\n\r\n<p>To: +1</p>\r\n"
	    "--i\r\nContent-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n"
	    /* "To: +15551234567\nSay: b64\n" */
	    "VG86ICsxNTU1MTIzNDU2NwpTYXk6IGI2NAo=\r\n"
	    "--i--\r\n"
	    "--o\r\nContent-Type: text/plain\r\n"
	    "Content-Disposition: attachment; filename=notes.txt\r\n\r\n"
	    "Not: a request\r\n"
	    "--o--\r\n", &call, id, &err), 0);
	assert_string_equal(call.say, "b64");
	gw_call_clear(&call);
}

/* App: runs a VoiceXML application instead of speaking a text. */
static void
t_app(void **state)
{
	struct gw_call call;
	struct gw_error err;
	char id[256];

	assert_int_equal(parse(HDRS "\r\n"
	    "To: +15551234567\r\n"
	    "App: https://apps.example.com/order.vxml?id=42\r\n"
	    "X-Order: 42\r\n", &call, id, &err), 0);
	assert_string_equal(call.app_url,
	    "https://apps.example.com/order.vxml?id=42");
	assert_null(call.say);
	assert_string_equal(call.metadata, "{\"X-Order\":\"42\"}");
	gw_call_clear(&call);
}

static void
t_errors(void **state)
{
	refused(HDRS "\r\nTo: +15551234567\r\nColour: blue\r\n", 400,
	    "Line 2: unknown key 'Colour'");
	refused(HDRS "\r\nTo: +15551234567\r\nno colon here\r\n", 400,
	    "Line 2: expected 'Key: value'");
	refused(HDRS "\r\nTo: +15551234567\r\nTo: +15551234568\r\n", 400,
	    "Line 2: key 'To' given twice");
	refused(HDRS "\r\nTo: +15551234567\r\nSay: x\r\nPriority: high\r\n",
	    400, "Line 3: Priority");
	refused(HDRS "\r\nSay: x\r\n", 400, "'to' is required");
	/* App: is app_url: one or the other of Say: and App:, a URL */
	refused(HDRS "\r\nTo: +15551234567\r\nSay: x\r\n"
	    "App: http://x/app.xml\r\n", 422, "not both");
	refused(HDRS "\r\nTo: +15551234567\r\nApp: ftp://x/app.xml\r\n",
	    422, "http://");
	refused(HDRS "\r\nTo: +15551234567\r\n", 400, "'app_url'");
	refused(HDRS "\r\n\r\n\r\n", 400, "no request");
	refused(HDRS "Content-Type: image/png\r\n\r\nxx\r\n", 400,
	    "no text/plain body");
	refused(HDRS "Content-Type: application/json\r\n\r\n{\"to\": \r\n",
	    400, "not valid JSON");
	refused(HDRS "Content-Type: text/plain; charset=x-no-such\r\n\r\n"
	    "To: +15551234567\r\n", 400, "Unknown charset");
	refused(HDRS "Content-Type: text/plain; charset=utf-8\r\n\r\n"
	    "To: +15551234567\r\nSay: \xc3\x28\r\n", 400, "UTF-8");
	refused("", 400, "");
	/* an empty part (GMime gives no data at all) */
	refused(HDRS "Content-Type: text/plain\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n", 400, "");
}

/* Found by fuzz_mail_request: a NUL in an X- value became metadata that
 * JSON readers refuse.  Control characters are refused on every line. */
static void
t_controls(void **state)
{
	static const char nul[] = HDRS "\r\nTo: +15551234567\r\nSay: hi\r\n"
	    "X-Order: 4\0002\r\n";
	struct gw_call call;
	struct gw_error err;
	char id[256];

	memset(&err, 0, sizeof(err));
	assert_int_equal(gw_mail_request_parse(nul, sizeof(nul) - 1, &demo,
	    NOW, &call, id, sizeof(id), &err), -1);
	assert_int_equal(err.status, 400);
	assert_non_null(strstr(err.message, "Line 3: control characters"));
	refused(HDRS "\r\nTo: +15551234567\r\nSay: h\x1bi\r\n", 400,
	    "Line 2: control characters");
	refused(HDRS "\r\nTo: +15551234567\r\nSay: hi\r\nX-\x01: v\r\n", 400,
	    "control characters");
}

static void
t_no_message_id(void **state)
{
	struct gw_call call;
	struct gw_error err;
	char id[256];

	assert_int_equal(parse("Subject: x\r\n\r\nTo: +15551234567\r\n"
	    "Say: hi\r\n", &call, id, &err), 0);
	assert_string_equal(id, "");
	assert_null(call.idem_key);
	gw_call_clear(&call);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_text),
		cmocka_unit_test(t_json_part),
		cmocka_unit_test(t_encodings),
		cmocka_unit_test(t_app),
		cmocka_unit_test(t_errors),
		cmocka_unit_test(t_controls),
		cmocka_unit_test(t_no_message_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
