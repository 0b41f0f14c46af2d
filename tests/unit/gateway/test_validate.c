/* gateway/validate.c: every rule of a POST /v1/calls body, through
 * gw_call_parse (bytes in, a call or an API error out). */
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
#define MAXB	65536

static const struct rq_tenant sip_ok = { .name = "demo", .allow_sip = 1,
    .max_attempts = 3, .callback_secret = "s3cret" };
static const struct rq_tenant sip_no = { .name = "plain", .allow_sip = 0,
    .max_attempts = 3 };

/* Parses body for tenant t; on success the call is cleared at once. */
static int
parse(const char *body, const struct rq_tenant *t, struct gw_error *err)
{
	struct gw_call call;
	int rc;

	memset(err, 0, sizeof(*err));
	rc = gw_call_parse(body, strlen(body), MAXB, t, NOW, &call, err);
	if (rc == 0)
		gw_call_clear(&call);
	return rc;
}

/* Asserts that body is refused with status, code and field. */
static void
refused(const char *body, const struct rq_tenant *t, int status,
    const char *code, const char *field)
{
	struct gw_error err;

	if (parse(body, t, &err) != -1)
		fail_msg("accepted: %s", body);
	if (err.status != status || strcmp(err.code, code) != 0 ||
	    strcmp(err.field, field ? field : "") != 0)
		fail_msg("%s: got %d %s '%s' (%s), want %d %s '%s'", body,
		    err.status, err.code, err.field, err.message, status, code,
		    field ? field : "");
	assert_true(strlen(err.message) > 10);
}

static void
accepted(const char *body, const struct rq_tenant *t)
{
	struct gw_error err;

	if (parse(body, t, &err) != 0)
		fail_msg("refused: %s: %d %s %s", body, err.status, err.code,
		    err.message);
}

static void
test_minimal_defaults(void **state)
{
	const char *b = "{\"to\":\"+15551234567\",\"say\":\"Hello\"}";
	struct gw_call call;
	struct gw_error err;

	assert_int_equal(gw_call_parse(b, strlen(b), MAXB, &sip_no, NOW, &call,
	    &err), 0);
	assert_string_equal(call.to, "+15551234567");
	assert_int_equal(call.kind, RQ_TARGET_E164);
	assert_string_equal(call.say, "Hello");
	assert_null(call.caller_id);
	assert_null(call.callback_url);
	assert_null(call.metadata);
	assert_int_equal(call.priority, 5);
	assert_true(call.not_before_ms == NOW);
	gw_call_clear(&call);
}

static void
test_all_fields(void **state)
{
	const char *b = "{\"to\":\"sip:bob@example.com:5062\",\"say\":\"Hi\","
	    "\"caller_id\":\"Front desk\",\"priority\":9,"
	    "\"not_before\":\"2026-11-20T00:00:00Z\","
	    "\"callback_url\":\"https://example.com/hook?x=1\","
	    "\"metadata\":{ \"order\" : 42, \"tags\": [\"a\", \"b\"] }}";
	struct gw_call call;
	struct gw_error err;
	uint64_t nb;

	assert_int_equal(gw_call_parse(b, strlen(b), MAXB, &sip_ok, NOW, &call,
	    &err), 0);
	assert_int_equal(call.kind, RQ_TARGET_SIP);
	assert_string_equal(call.caller_id, "Front desk");
	assert_int_equal(call.priority, 9);
	assert_int_equal(rq_rfc3339_parse("2026-11-20T00:00:00Z", &nb), 0);
	assert_true(call.not_before_ms == nb);
	assert_string_equal(call.callback_url, "https://example.com/hook?x=1");
	/* Stored compactly, in the client's order. */
	assert_string_equal(call.metadata, "{\"order\":42,\"tags\":[\"a\",\"b\"]}");
	assert_non_null(call.metadata_obj);
	gw_call_clear(&call);
}

static void
test_body_shape(void **state)
{
	struct gw_error err;
	struct gw_call call;
	char *big;

	refused("", &sip_ok, 400, "invalid_json", NULL);
	refused("{\"to\":", &sip_ok, 400, "invalid_json", NULL);
	refused("{\"to\":\"+15551234567\",\"say\":\"a\"} x", &sip_ok, 400,
	    "invalid_json", NULL);
	refused("[1,2]", &sip_ok, 400, "invalid_request", NULL);
	/* JSON, but not an object (docs/api.md): not invalid_json */
	refused("\"text\"", &sip_ok, 400, "invalid_request", NULL);
	refused("5", &sip_ok, 400, "invalid_request", NULL);
	refused("null", &sip_ok, 400, "invalid_request", NULL);
	/* Duplicate members are refused by the parser. */
	refused("{\"to\":\"+15551234567\",\"to\":\"+15551234568\",\"say\":\"a\"}",
	    &sip_ok, 400, "invalid_json", NULL);
	/* A NUL escape is not text we can speak. */
	refused("{\"to\":\"+15551234567\",\"say\":\"a\\u0000b\"}", &sip_ok,
	    400, "invalid_json", NULL);
	/* Invalid UTF-8: refused, and the message stays ASCII. */
	refused("{\"to\":\"+15551234567\",\"say\":\"\xff\xfe\"}", &sip_ok,
	    400, "invalid_json", NULL);
	/* The message gives the position. */
	assert_int_equal(parse("{\"to\" 1}", &sip_ok, &err), -1);
	assert_non_null(strstr(err.message, "column"));

	/* max_body bytes or more: 413, whatever they hold. */
	big = malloc(MAXB + 1);
	memset(big, ' ', MAXB);
	big[MAXB] = '\0';
	assert_int_equal(gw_call_parse(big, MAXB, MAXB, &sip_ok, NOW, &call,
	    &err), -1);
	assert_int_equal(err.status, 413);
	assert_string_equal(err.code, "too_large");
	assert_int_equal(gw_call_parse(big, MAXB - 1, MAXB, &sip_ok, NOW, &call,
	    &err), -1);
	assert_int_equal(err.status, 400);
	free(big);
}

static void
test_unknown(void **state)
{
	struct gw_error err;

	refused("{\"to\":\"+15551234567\",\"say\":\"a\",\"colour\":1}",
	    &sip_ok, 400, "unknown_field", "colour");
	refused("{\"To\":\"+15551234567\",\"say\":\"a\"}", &sip_ok, 400,
	    "unknown_field", "To");
	/* The message lists the fields, app_url among them. */
	assert_int_equal(parse("{\"to\":\"+15551234567\",\"App\":\"x\"}",
	    &sip_ok, &err), -1);
	assert_non_null(strstr(err.message, "app_url"));
}

/* A body with app_url u (and no say). */
static const char *
app(const char *u)
{
	static char b[4200];

	snprintf(b, sizeof(b), "{\"to\":\"+15551234567\",\"app_url\":\"%s\"}",
	    u);
	return b;
}

static void
test_app_url(void **state)
{
	const char *b = "{\"to\":\"+15551234567\","
	    "\"app_url\":"
	    "\"https://apps.example.com:8443/order.vxml?id=4#main\"}";
	struct gw_call call;
	struct gw_error err;
	char long_url[2100];

	/* Accepted instead of say: the call runs the application. */
	assert_int_equal(gw_call_parse(b, strlen(b), MAXB, &sip_ok, NOW, &call,
	    &err), 0);
	assert_string_equal(call.app_url,
	    "https://apps.example.com:8443/order.vxml?id=4#main");
	assert_null(call.say);
	gw_call_clear(&call);
	accepted(app("http://127.0.0.1/a.vxml"), &sip_ok);
	accepted(app("HTTP://[::1]:8080"), &sip_ok);
	accepted(app("http://h?x=a@b"), &sip_ok);	/* '@' past the host */

	/* One or the other: neither is 400 missing_field (say, as before),
	 * both is 422. */
	refused("{\"to\":\"+15551234567\"}", &sip_ok, 400, "missing_field",
	    "say");
	assert_int_equal(parse("{\"to\":\"+15551234567\"}", &sip_ok, &err),
	    -1);
	assert_non_null(strstr(err.message, "app_url"));
	refused("{\"to\":\"+15551234567\",\"say\":\"a\","
	    "\"app_url\":\"http://x/a.vxml\"}", &sip_ok, 422,
	    "conflicting_fields", "app_url");
	/* Wrong type: 400 as every field. */
	refused("{\"to\":\"+15551234567\",\"say\":\"a\",\"app_url\":null}",
	    &sip_ok, 400, "invalid_field", "app_url");
	refused("{\"to\":\"+15551234567\",\"app_url\":[\"http://x\"]}",
	    &sip_ok, 400, "invalid_field", "app_url");

	/* Not an acceptable URL: 422 with the reason. */
	refused(app(""), &sip_ok, 422, "invalid_app_url", "app_url");
	refused(app("ftp://x/a.vxml"), &sip_ok, 422, "invalid_app_url",
	    "app_url");
	refused(app("/a.vxml"), &sip_ok, 422, "invalid_app_url", "app_url");
	refused(app("x/a.vxml"), &sip_ok, 422, "invalid_app_url", "app_url");
	refused(app("http://"), &sip_ok, 422, "invalid_app_url", "app_url");
	refused(app("http:///a.vxml"), &sip_ok, 422, "invalid_app_url",
	    "app_url");
	refused(app("http://?a"), &sip_ok, 422, "invalid_app_url", "app_url");
	refused(app("http://:80/a"), &sip_ok, 422, "invalid_app_url",
	    "app_url");
	refused(app("http://user:pw@x/a.vxml"), &sip_ok, 422,
	    "invalid_app_url", "app_url");
	assert_int_equal(parse(app("http://user:pw@x/a.vxml"), &sip_ok, &err),
	    -1);
	assert_non_null(strstr(err.message, "password"));
	refused(app("http://x/a b.vxml"), &sip_ok, 422, "invalid_app_url",
	    "app_url");
	assert_int_equal(parse(app("http://x/a b.vxml"), &sip_ok, &err), -1);
	assert_non_null(strstr(err.message, "byte 11"));
	refused(app("http://x/a\\t.vxml"), &sip_ok, 422, "invalid_app_url",
	    "app_url");
	refused(app("http://x/\\u007f"), &sip_ok, 422, "invalid_app_url",
	    "app_url");
	refused(app("http://x/caf\\u00e9.vxml"), &sip_ok, 422,
	    "invalid_app_url", "app_url");
	/* 2048 bytes at most */
	memcpy(long_url, "http://x/", 9);
	memset(long_url + 9, 'a', 2048 - 9);
	long_url[2048] = '\0';
	accepted(app(long_url), &sip_ok);
	long_url[2048] = 'a';
	long_url[2049] = '\0';
	refused(app(long_url), &sip_ok, 422, "invalid_app_url", "app_url");
	assert_int_equal(parse(app(long_url), &sip_ok, &err), -1);
	assert_non_null(strstr(err.message, "2049 bytes"));

	/* The URL check alone. */
	assert_int_equal(gw_app_url_check("https://h/x", long_url, 64), 0);
	assert_int_equal(gw_app_url_check("gopher://h/x", long_url, 64), -1);
	assert_non_null(strstr(long_url, "http://"));
}

static void
test_to(void **state)
{
	refused("{\"say\":\"a\"}", &sip_ok, 400, "missing_field", "to");
	refused("{\"to\":15551234567,\"say\":\"a\"}", &sip_ok, 400,
	    "invalid_field", "to");
	refused("{\"to\":null,\"say\":\"a\"}", &sip_ok, 400, "invalid_field",
	    "to");
	refused("{\"to\":\"15551234567\",\"say\":\"a\"}", &sip_ok, 400,
	    "invalid_field", "to");
	refused("{\"to\":\"+1555\",\"say\":\"a\"}", &sip_ok, 400,
	    "invalid_field", "to");
	refused("{\"to\":\"sip:bob@\",\"say\":\"a\"}", &sip_ok, 400,
	    "invalid_field", "to");
	refused("{\"to\":\"tel:+15551234567\",\"say\":\"a\"}", &sip_ok, 400,
	    "invalid_field", "to");
	accepted("{\"to\":\"sip:bob@127.0.0.1\",\"say\":\"a\"}", &sip_ok);
	refused("{\"to\":\"sip:bob@127.0.0.1\",\"say\":\"a\"}", &sip_no, 403,
	    "policy", "to");
	accepted("{\"to\":\"+15551234567\",\"say\":\"a\"}", &sip_no);
	accepted("{\"to\":\"sip:a@h:5060\",\"say\":\"a\"}", &sip_ok);
}

/* Control bytes in a SIP target would end up in the INVITE's request line
 * and headers (and in log lines); the port is digits only. */
static void
test_to_control(void **state)
{
	static const char *bad[] = {
		"sip:a@h:\\r\\n5060",
		"sip:a@h:5060\\r\\nX-Evil: 1",
		"sip:a@h\\n",
		"sip:a\\u0001@h",
		"sip:a@h\\u001b[31m",
		"sip:a@h\\t:5060",
		"sip:a@h\\u007f",
		"sip:a@h:50x60",
		"sip:a@h:+5060",
		"sip:a@h: 5060",
		"sip:a@h:",
		"+1555123\\r\\n4567",
	};
	char body[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(body, sizeof(body), "{\"to\":\"%s\",\"say\":\"a\"}",
		    bad[i]);
		refused(body, &sip_ok, 400, "invalid_field", "to");
	}
}

static void
test_say(void **state)
{
	char body[GW_SAY_MAX + 100];
	char *p;

	refused("{\"to\":\"+15551234567\"}", &sip_ok, 400, "missing_field",
	    "say");
	refused("{\"to\":\"+15551234567\",\"say\":\"\"}", &sip_ok, 400,
	    "invalid_field", "say");
	refused("{\"to\":\"+15551234567\",\"say\":42}", &sip_ok, 400,
	    "invalid_field", "say");
	refused("{\"to\":\"+15551234567\",\"say\":[\"a\"]}", &sip_ok, 400,
	    "invalid_field", "say");
	accepted("{\"to\":\"+15551234567\",\"say\":\"Gr\\u00fc\\u00dfe \xe2\x82\xac\"}",
	    &sip_ok);
	/* Texts the English voice gives no audio for: refused, not rung. */
	refused("{\"to\":\"+15551234567\",\"say\":\"...\"}", &sip_ok, 422,
	    "unspeakable", "say");
	refused("{\"to\":\"+15551234567\",\"say\":\"\\u65e5\\u672c \xf0\x9f\x98\x80!\"}",
	    &sip_ok, 422, "unspeakable", "say");
	refused("{\"to\":\"+15551234567\",\"say\":\" \\u00e9 \"}", &sip_ok, 422,
	    "unspeakable", "say");
	/* One letter or digit is enough: "z", "9", "\u65e5x". */
	accepted("{\"to\":\"+15551234567\",\"say\":\"(z)\"}", &sip_ok);
	accepted("{\"to\":\"+15551234567\",\"say\":\"9\"}", &sip_ok);
	accepted("{\"to\":\"+15551234567\",\"say\":\"\\u65e5x\"}", &sip_ok);

	/* Exactly 4000 bytes pass, 4001 do not. */
	p = body + sprintf(body, "{\"to\":\"+15551234567\",\"say\":\"");
	memset(p, 'x', GW_SAY_MAX);
	strcpy(p + GW_SAY_MAX, "\"}");
	accepted(body, &sip_ok);
	memset(p, 'x', GW_SAY_MAX + 1);
	strcpy(p + GW_SAY_MAX + 1, "\"}");
	refused(body, &sip_ok, 400, "invalid_field", "say");
}

static void
test_caller_id(void **state)
{
	static const char *good[] = { "+15551234567", "sip:desk@example.com",
	    "Front desk", "a", "A.b_c-d 9",
	    "0123456789012345678901234567890123456789012345678901234567890123" };
	static const char *bad[] = { "", "+12", "sip:", "<script>", "a\tb",
	    "na\xc3\xafve",
	    ("01234567890123456789012345678901234567890123456789"
	    "0123456789012345") };
	char body[512];
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(*good); i++) {
		assert_true(gw_caller_id_valid(good[i]));
		snprintf(body, sizeof(body), "{\"to\":\"+15551234567\","
		    "\"say\":\"a\",\"caller_id\":\"%s\"}", good[i]);
		accepted(body, &sip_no);
	}
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (gw_caller_id_valid(bad[i]))
			fail_msg("caller id '%s' accepted", bad[i]);
	refused("{\"to\":\"+15551234567\",\"say\":\"a\",\"caller_id\":\"<x>\"}",
	    &sip_ok, 400, "invalid_field", "caller_id");
	refused("{\"to\":\"+15551234567\",\"say\":\"a\",\"caller_id\":5}",
	    &sip_ok, 400, "invalid_field", "caller_id");
}

static void
test_priority(void **state)
{
	accepted("{\"to\":\"+15551234567\",\"say\":\"a\",\"priority\":0}",
	    &sip_ok);
	accepted("{\"to\":\"+15551234567\",\"say\":\"a\",\"priority\":9}",
	    &sip_ok);
	refused("{\"to\":\"+15551234567\",\"say\":\"a\",\"priority\":10}",
	    &sip_ok, 400, "invalid_field", "priority");
	refused("{\"to\":\"+15551234567\",\"say\":\"a\",\"priority\":-1}",
	    &sip_ok, 400, "invalid_field", "priority");
	refused("{\"to\":\"+15551234567\",\"say\":\"a\",\"priority\":5.0}",
	    &sip_ok, 400, "invalid_field", "priority");
	refused("{\"to\":\"+15551234567\",\"say\":\"a\",\"priority\":\"5\"}",
	    &sip_ok, 400, "invalid_field", "priority");
	refused("{\"to\":\"+15551234567\",\"say\":\"a\",\"priority\":true}",
	    &sip_ok, 400, "invalid_field", "priority");
	refused("{\"to\":\"+15551234567\",\"say\":\"a\",\"priority\":null}",
	    &sip_ok, 400, "invalid_field", "priority");
	refused("{\"to\":\"+15551234567\",\"say\":\"a\","
	    "\"priority\":99999999999999999999}", &sip_ok, 400,
	    "invalid_json", NULL);	/* jansson: integer overflow */
}

static uint64_t
not_before(const char *value, struct gw_error *err)
{
	char body[256];
	struct gw_call call;
	uint64_t ms;

	snprintf(body, sizeof(body), "{\"to\":\"+15551234567\",\"say\":\"a\","
	    "\"not_before\":%s}", value);
	if (gw_call_parse(body, strlen(body), MAXB, &sip_ok, NOW, &call,
	    err) == -1)
		return 0;
	ms = call.not_before_ms;
	gw_call_clear(&call);
	return ms;
}

static void
test_not_before(void **state)
{
	struct gw_error err;

	/* In the past: now. */
	assert_true(not_before("\"2020-01-01T00:00:00Z\"", &err) == NOW);
	/* Ahead, with an offset and a fraction. */
	assert_true(not_before("\"2026-11-19T09:00:00.250+01:00\"", &err) ==
	    NOW - NOW % 86400000 + 86400000 + 8 * 3600000 + 250);
	assert_true(not_before("\"2026-13-01T00:00:00Z\"", &err) == 0);
	assert_string_equal(err.field, "not_before");
	assert_int_equal(err.status, 400);
	assert_true(not_before("\"tomorrow\"", &err) == 0);
	assert_string_equal(err.field, "not_before");
	assert_true(not_before("1795000000000", &err) == 0);
	assert_string_equal(err.field, "not_before");
	assert_true(not_before("\"2026-11-18\"", &err) == 0);
	/* More than 366 days ahead. */
	assert_true(not_before("\"2030-01-01T00:00:00Z\"", &err) == 0);
	assert_string_equal(err.field, "not_before");
}

/* not_after: optional, after not_before, at most 366 days ahead; times
 * without an offset wait for the policy engine (the callee's zone). */
static void
test_not_after(void **state)
{
	struct gw_call call;
	struct gw_error err;
	char body[256];
	static const struct { const char *nb, *na; } bad[] = {
		{ NULL, "\"2020-01-01T00:00:00Z\"" },		/* past */
		{ "\"2026-11-20T10:00:00Z\"", "\"2026-11-20T10:00:00Z\"" },
		{ "\"2026-11-20T10:00:00Z\"", "\"2026-11-20T09:00:00Z\"" },
		{ NULL, "\"2030-01-01T00:00:00Z\"" },
		{ NULL, "\"later\"" },
		{ NULL, "42" },
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(body, sizeof(body), "{\"to\":\"+15551234567\","
		    "\"say\":\"a\"%s%s,\"not_after\":%s}",
		    bad[i].nb ? ",\"not_before\":" : "",
		    bad[i].nb ? bad[i].nb : "", bad[i].na);
		memset(&err, 0, sizeof(err));
		assert_int_equal(gw_call_parse(body, strlen(body), MAXB,
		    &sip_ok, NOW, &call, &err), -1);
		assert_int_equal(err.status, 400);
		assert_string_equal(err.field, "not_after");
	}

	snprintf(body, sizeof(body), "{\"to\":\"+15551234567\",\"say\":"
	    "\"a\",\"not_before\":\"2026-11-20T10:00:00Z\","
	    "\"not_after\":\"2026-11-20T10:00:00.001Z\"}");
	assert_int_equal(gw_call_parse(body, strlen(body), MAXB, &sip_ok, NOW,
	    &call, &err), 0);
	assert_true(call.not_after_ms == call.not_before_ms + 1);
	assert_false(call.not_before_local || call.not_after_local);
	gw_call_clear(&call);

	/* no not_after: none */
	snprintf(body, sizeof(body), "{\"to\":\"+15551234567\",\"say\":"
	    "\"a\"}");
	assert_int_equal(gw_call_parse(body, strlen(body), MAXB, &sip_ok, NOW,
	    &call, &err), 0);
	assert_true(call.not_after_ms == 0);
	gw_call_clear(&call);

	/* local times: kept as wall-clock for the policy engine */
	snprintf(body, sizeof(body), "{\"to\":\"+15551234567\",\"say\":"
	    "\"a\",\"not_before\":\"2026-11-22T10:00:00\","
	    "\"not_after\":\"2026-11-22T12:00:00.5\"}");
	assert_int_equal(gw_call_parse(body, strlen(body), MAXB, &sip_ok, NOW,
	    &call, &err), 0);
	assert_true(call.not_before_local && call.not_after_local);
	assert_true(call.not_before_ms == 1795341600000ULL);
	assert_true(call.not_after_ms == 1795341600000ULL + 7200500);
	gw_call_clear(&call);
}

static void
test_time_parse(void **state)
{
	uint64_t ms;
	int local;

	assert_int_equal(gw_time_parse("2026-11-22T10:00:00Z", &ms, &local),
	    0);
	assert_true(ms == 1795341600000ULL && !local);
	assert_int_equal(gw_time_parse("2026-11-22T10:00:00", &ms, &local), 0);
	assert_true(ms == 1795341600000ULL && local);
	assert_int_equal(gw_time_parse("2026-11-22 10:00:00.250", &ms,
	    &local), 0);
	assert_true(ms == 1795341600250ULL && local);
	assert_int_equal(gw_time_parse("2026-11-22T10:00:00ZZ", &ms, &local),
	    -1);
	assert_int_equal(gw_time_parse("2026-11-22T10:00", &ms, &local), -1);
	assert_int_equal(gw_time_parse("2026-11-22", &ms, &local), -1);
	assert_int_equal(gw_time_parse("", &ms, &local), -1);
	assert_int_equal(gw_time_parse("2026-11-22T10:00:00+01", &ms, &local),
	    -1);
}

static void
test_callback_url(void **state)
{
	char body[3000], *p;

	accepted("{\"to\":\"+15551234567\",\"say\":\"a\","
	    "\"callback_url\":\"http://127.0.0.1:9/x\"}", &sip_ok);
	accepted("{\"to\":\"+15551234567\",\"say\":\"a\","
	    "\"callback_url\":\"HTTPS://example.com\"}", &sip_ok);
	refused("{\"to\":\"+15551234567\",\"say\":\"a\","
	    "\"callback_url\":\"ftp://example.com/\"}", &sip_ok, 400,
	    "invalid_field", "callback_url");
	refused("{\"to\":\"+15551234567\",\"say\":\"a\","
	    "\"callback_url\":\"http://\"}", &sip_ok, 400, "invalid_field",
	    "callback_url");
	refused("{\"to\":\"+15551234567\",\"say\":\"a\","
	    "\"callback_url\":\"http://a b/\"}", &sip_ok, 400, "invalid_field",
	    "callback_url");
	refused("{\"to\":\"+15551234567\",\"say\":\"a\","
	    "\"callback_url\":{}}", &sip_ok, 400, "invalid_field",
	    "callback_url");

	/* 2048 bytes pass, 2049 do not. */
	p = body + sprintf(body, "{\"to\":\"+15551234567\",\"say\":\"a\","
	    "\"callback_url\":\"http://e.com/");
	memset(p, 'x', GW_CALLBACK_URL_MAX - 13);
	strcpy(p + GW_CALLBACK_URL_MAX - 13, "\"}");
	accepted(body, &sip_ok);
	memset(p, 'x', GW_CALLBACK_URL_MAX - 12);
	strcpy(p + GW_CALLBACK_URL_MAX - 12, "\"}");
	refused(body, &sip_ok, 400, "invalid_field", "callback_url");
}

/* A tenant without callback_secret cannot ask for (unsigned) callbacks. */
static void
test_callback_unsigned(void **state)
{
	const char *b = "{\"to\":\"+15551234567\",\"say\":\"a\","
	    "\"callback_url\":\"https://example.com/hook\"}";
	struct gw_error err;

	refused(b, &sip_no, 422, "callbacks_unsigned", "callback_url");
	assert_int_equal(parse(b, &sip_no, &err), -1);
	assert_non_null(strstr(err.message, "callback_secret"));
	assert_non_null(strstr(err.message, "[tenant plain]"));
	accepted(b, &sip_ok);
	accepted("{\"to\":\"+15551234567\",\"say\":\"a\"}", &sip_no);
}

static void
test_metadata(void **state)
{
	char body[GW_METADATA_MAX + 200], *p;

	accepted("{\"to\":\"+15551234567\",\"say\":\"a\",\"metadata\":{}}",
	    &sip_ok);
	refused("{\"to\":\"+15551234567\",\"say\":\"a\",\"metadata\":[1]}",
	    &sip_ok, 400, "invalid_field", "metadata");
	refused("{\"to\":\"+15551234567\",\"say\":\"a\",\"metadata\":\"x\"}",
	    &sip_ok, 400, "invalid_field", "metadata");
	refused("{\"to\":\"+15551234567\",\"say\":\"a\",\"metadata\":null}",
	    &sip_ok, 400, "invalid_field", "metadata");

	/* {"k":"xxx..."} of exactly 8192 compact bytes passes; one more
	 * does not.  Spaces in the body do not count. */
	p = body + sprintf(body, "{\"to\":\"+15551234567\",\"say\":\"a\","
	    "\"metadata\":{  \"k\"  :  \"");
	memset(p, 'x', GW_METADATA_MAX - 8);
	strcpy(p + GW_METADATA_MAX - 8, "\"  }}");
	accepted(body, &sip_ok);
	memset(p, 'x', GW_METADATA_MAX - 7);
	strcpy(p + GW_METADATA_MAX - 7, "\"}}");
	refused(body, &sip_ok, 400, "invalid_field", "metadata");
}

static void
test_error_json(void **state)
{
	struct gw_error err;
	json_t *o;

	gw_error_set(&err, 400, "invalid_field", "to", "bad \xff byte");
	o = gw_error_obj(&err);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(
	    json_object_get(o, "error"), "code")), "invalid_field");
	assert_string_equal(json_string_value(json_object_get(
	    json_object_get(o, "error"), "field")), "to");
	assert_string_equal(json_string_value(json_object_get(
	    json_object_get(o, "error"), "message")), "bad ? byte");
	json_decref(o);

	gw_error_set(&err, 404, "not_found", NULL, "gone");
	o = gw_error_obj(&err);
	assert_null(json_object_get(json_object_get(o, "error"), "field"));
	json_decref(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal_defaults),
		cmocka_unit_test(test_all_fields),
		cmocka_unit_test(test_body_shape),
		cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_app_url),
		cmocka_unit_test(test_to),
		cmocka_unit_test(test_to_control),
		cmocka_unit_test(test_say),
		cmocka_unit_test(test_caller_id),
		cmocka_unit_test(test_priority),
		cmocka_unit_test(test_not_before),
		cmocka_unit_test(test_not_after),
		cmocka_unit_test(test_time_parse),
		cmocka_unit_test(test_callback_url),
		cmocka_unit_test(test_callback_unsigned),
		cmocka_unit_test(test_metadata),
		cmocka_unit_test(test_error_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
