/* accounting's pure part: which events are stored, their rank, and the
 * timeline JSON mirrored into Redis. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "accounting.h"

#define ID	"c_0123456789abcdef01234567"

/* Out of memory on demand: strndup (what acct_stream_event copies the
 * values with) fails at its strndup_fail-th call from now, 0: never.  This
 * program's definition comes before the C library's. */
static int strndup_fail;

#undef strndup
char *
strndup(const char *s, size_t n)
{
	char *p;

	if (strndup_fail > 0 && --strndup_fail == 0)
		return NULL;
	n = strnlen(s, n);
	if ((p = malloc(n + 1)) == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static struct rq_msg
event(const char *status, uint64_t attempt)
{
	struct rq_msg m;

	rq_msg_init(&m, RQ_MSG_EVENT);
	rq_msg_set(&m, call_id, (char *)ID);
	rq_msg_set(&m, status, (char *)status);
	rq_msg_set(&m, attempt, attempt);
	rq_msg_set(&m, ts_ms, 1795250000123ULL);
	return m;
}

static int
check(struct rq_msg *m)
{
	enum rq_status st;
	char err[128];

	return acct_event_check(m, &st, err, sizeof(err));
}

static void
test_valid(void **state)
{
	static const char *names[] = { "queued", "scheduled", "dispatched",
	    "ringing", "answered", "retrying", "completed", "failed",
	    "canceled", "expired" };
	struct rq_msg m;
	enum rq_status st;
	char err[128];
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(*names); i++) {
		m = event(names[i], 1);
		assert_int_equal(acct_event_check(&m, &st, err, sizeof(err)), 0);
		assert_int_equal(st, (enum rq_status)i);
	}
	m = event("completed", ACCT_ATTEMPT_MAX);
	rq_msg_set(&m, sip_code, 200);
	rq_msg_set(&m, duration_ms, 5000);
	rq_msg_set(&m, detail, (char *)"caf\xc3\xa9 \xf0\x9f\x93\x9e");
	assert_int_equal(check(&m), 0);
}

static void
test_status_and_attempt(void **state)
{
	/* failed: a call whose calling hours cannot be planned again,
	 * before any attempt (the scheduler's hours step) */
	static const char *zero_ok[] = { "queued", "scheduled", "canceled",
	    "expired", "failed" };
	static const char *zero_bad[] = { "dispatched", "ringing", "answered",
	    "retrying", "completed" };
	struct rq_msg m;
	enum rq_status st;
	char err[128];
	size_t i;

	m = event("exploded", 1);
	assert_int_equal(acct_event_check(&m, &st, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unknown status"));
	m = event("", 1);
	assert_int_equal(check(&m), -1);
	m = event("Completed", 1);	/* names are exact */
	assert_int_equal(check(&m), -1);

	for (i = 0; i < sizeof(zero_ok) / sizeof(*zero_ok); i++) {
		m = event(zero_ok[i], 0);
		assert_int_equal(check(&m), 0);
	}
	for (i = 0; i < sizeof(zero_bad) / sizeof(*zero_bad); i++) {
		m = event(zero_bad[i], 0);
		assert_int_equal(check(&m), -1);
	}
	m = event("ringing", ACCT_ATTEMPT_MAX + 1);
	assert_int_equal(check(&m), -1);
	m = event("ringing", UINT64_MAX);
	assert_int_equal(check(&m), -1);
}

static void
test_bad_fields(void **state)
{
	struct rq_msg m;
	enum rq_status st;
	char err[128];
	char reason[] = "bad\xff", detail[] = "\xc0\xaf ok",
	    node[] = "\xed\xa0\x80", tenant[] = "x\xe2\x82",
	    good[] = "caf\xc3\xa9";

	/* fatal: the event can never be stored */
	m = event("failed", 1);
	rq_msg_set(&m, call_id, (char *)"c_XYZ");
	assert_int_equal(check(&m), -1);
	m = event("failed", 1);
	rq_msg_set(&m, ts_ms, ACCT_TS_MAX + 1);
	assert_int_equal(check(&m), -1);
	m = event("failed", 1);
	m.type = RQ_MSG_EVENT_ACK;
	assert_int_equal(check(&m), -1);

	/* a bad optional number is dropped, the event kept */
	m = event("failed", 1);
	rq_msg_set(&m, sip_code, 99);
	assert_int_equal(acct_event_check(&m, &st, err, sizeof(err)), 0);
	assert_false(rq_msg_has(&m, sip_code));
	assert_non_null(strstr(err, "sip_code"));
	m = event("failed", 1);
	rq_msg_set(&m, sip_code, 904);		/* Sofia-SIP's own codes */
	assert_int_equal(check(&m), 0);
	assert_false(rq_msg_has(&m, sip_code));
	m = event("failed", 1);
	rq_msg_set(&m, sip_code, 699);
	assert_int_equal(acct_event_check(&m, &st, err, sizeof(err)), 0);
	assert_true(rq_msg_has(&m, sip_code));
	assert_string_equal(err, "");
	m = event("failed", 1);
	rq_msg_set(&m, started_ms, UINT64_MAX);
	rq_msg_set(&m, answered_ms, ACCT_TS_MAX + 1);
	assert_int_equal(check(&m), 0);
	assert_false(rq_msg_has(&m, started_ms));
	assert_false(rq_msg_has(&m, answered_ms));
	m = event("completed", 1);
	rq_msg_set(&m, duration_ms, (uint64_t)INT64_MAX + 1);
	assert_int_equal(check(&m), 0);
	assert_false(rq_msg_has(&m, duration_ms));

	/* invalid UTF-8 (PostgreSQL would refuse it) is mended */
	m = event("failed", 1);
	rq_msg_set(&m, reason, reason);
	rq_msg_set(&m, detail, detail);
	rq_msg_set(&m, node, node);
	rq_msg_set(&m, tenant, tenant);
	rq_msg_set(&m, to, good);
	assert_int_equal(acct_event_check(&m, &st, err, sizeof(err)), 0);
	assert_string_equal(reason, "bad?");
	assert_string_equal(detail, "?? ok");
	assert_string_equal(node, "???");
	assert_string_equal(tenant, "x??");
	assert_string_equal(good, "caf\xc3\xa9");
	assert_non_null(strstr(err, "UTF-8"));
}

static void
test_rank(void **state)
{
	assert_int_equal(acct_rank(0, RQ_ST_QUEUED), 0);
	assert_int_equal(acct_rank(0, RQ_ST_SCHEDULED), 1);
	assert_int_equal(acct_rank(1, RQ_ST_RETRYING), 21);
	assert_int_equal(acct_rank(1, RQ_ST_COMPLETED), 22);
	assert_int_equal(acct_rank(2, RQ_ST_DISPATCHED), 34);
	/* a new attempt outranks every status of the previous one */
	assert_true(acct_rank(2, RQ_ST_QUEUED) > acct_rank(1, RQ_ST_EXPIRED));
	assert_true(acct_rank(1, RQ_ST_RINGING) < acct_rank(1, RQ_ST_COMPLETED));
	/* retrying ends an attempt: after answered, before the terminal */
	assert_true(acct_rank(1, RQ_ST_ANSWERED) < acct_rank(1, RQ_ST_RETRYING));
	assert_true(acct_rank(1, RQ_ST_RETRYING) < acct_rank(1, RQ_ST_FAILED));
	assert_true(acct_rank(2, RQ_ST_DISPATCHED) >
	    acct_rank(1, RQ_ST_RETRYING));
	assert_false(rq_status_terminal(RQ_ST_RETRYING));
	assert_int_equal(acct_rank(ACCT_ATTEMPT_MAX, RQ_ST_EXPIRED),
	    ACCT_ATTEMPT_MAX * 16 + 9);
}

static void
test_json(void **state)
{
	struct rq_msg m;
	json_t *o;
	json_error_t jerr;
	char *s;

	m = event("completed", 1);
	rq_msg_set(&m, duration_ms, 5000);
	rq_msg_set(&m, node, (char *)"tel1");
	rq_msg_set(&m, detail, (char *)"shown \"as is\"");
	s = acct_event_json(&m);
	assert_non_null(s);
	assert_string_equal(s, "{\"status\":\"completed\",\"attempt\":1,"
	    "\"at\":\"2026-11-21T08:33:20.123Z\",\"ts_ms\":1795250000123,"
	    "\"duration_ms\":5000,\"node\":\"tel1\","
	    "\"detail\":\"shown \\\"as is\\\"\"}");
	free(s);

	m = event("failed", 2);
	rq_msg_set(&m, reason, (char *)"say \"busy\"\n");
	rq_msg_set(&m, sip_code, 486);
	s = acct_event_json(&m);
	assert_non_null(s);
	o = json_loads(s, 0, &jerr);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "reason")),
	    "say \"busy\"\n");
	assert_int_equal(json_integer_value(json_object_get(o, "sip_code")),
	    486);
	assert_int_equal(json_integer_value(json_object_get(o, "attempt")), 2);
	assert_null(json_object_get(o, "node"));
	assert_null(json_object_get(o, "duration_ms"));
	assert_int_equal(json_object_size(o), 6);
	json_decref(o);
	free(s);
}

/* The timeline entry carries the result as an object. */
static void
test_json_result(void **state)
{
	struct rq_msg m;
	json_t *o, *r;
	char *s;

	m = event("completed", 1);
	rq_msg_set(&m, result, (char *)"{\"end\":\"error\",\"event\":"
	    "\"error.badfetch\",\"message\":\"404\",\"url\":"
	    "\"http://x/a.vxml\",\"line\":3}");
	s = acct_event_json(&m);
	assert_non_null(s);
	o = json_loads(s, 0, NULL);
	assert_non_null(o);
	r = json_object_get(o, "result");
	assert_true(json_is_object(r));
	assert_string_equal(json_string_value(json_object_get(r, "event")),
	    "error.badfetch");
	assert_int_equal(json_integer_value(json_object_get(r, "line")), 3);
	json_decref(o);
	free(s);
}

/* An rq:events entry from its field/value strings (NULL-terminated). */
static int
stream(struct rq_msg *m, char *err, size_t errlen, ...)
{
	const char *fv[40];
	size_t lens[40], n = 0;
	va_list ap;

	va_start(ap, errlen);
	while (n < 40 && (fv[n] = va_arg(ap, const char *)) != NULL) {
		lens[n] = strlen(fv[n]);
		n++;
	}
	va_end(ap);
	return acct_stream_event(m, fv, lens, n, err, errlen);
}

static void
test_stream_entry(void **state)
{
	struct rq_msg m;
	enum rq_status st;
	char err[128];
	const char *fv[] = { "call_id", ID, "attempt", "1", "status",
	    "failed", "ts_ms", "1795250000123", "reason", "busy" };
	size_t lens[] = { 7, 26, 7, 1, 6, 6, 5, 13, 6, 4 };

	/* what RQ_LUA_EVENTS' emit writes: every field as text */
	assert_int_equal(stream(&m, err, sizeof(err), "call_id", ID,
	    "attempt", "2", "status", "retrying", "ts_ms", "1795250000123",
	    "tenant", "demo", "to", "+15551234567", "reason", "busy",
	    "sip_code", "486", "node", "tel1", "duration_ms", "0",
	    "started_ms", "1795250000000", "detail",
	    "next attempt at 2026-11-21T08:34:20.123Z", "future", "x", NULL),
	    0);
	assert_int_equal(m.type, RQ_MSG_EVENT);
	assert_string_equal(m.call_id, ID);
	assert_int_equal(m.attempt, 2);
	assert_string_equal(m.status, "retrying");
	assert_int_equal(m.ts_ms, 1795250000123ULL);
	assert_string_equal(m.tenant, "demo");
	assert_string_equal(m.to, "+15551234567");
	assert_string_equal(m.reason, "busy");
	assert_int_equal(m.sip_code, 486);
	assert_string_equal(m.node, "tel1");
	assert_true(rq_msg_has(&m, duration_ms));
	assert_int_equal(m.started_ms, 1795250000000ULL);
	assert_false(rq_msg_has(&m, answered_ms));
	assert_non_null(strstr(m.detail, "next attempt"));
	assert_int_equal(acct_event_check(&m, &st, err, sizeof(err)), 0);
	assert_int_equal(st, RQ_ST_RETRYING);
	rq_msg_clear(&m);

	/* lengths, not NULs, delimit the values */
	lens[9] = 2;
	assert_int_equal(acct_stream_event(&m, fv, lens, 10, err,
	    sizeof(err)), 0);
	assert_string_equal(m.reason, "bu");
	rq_msg_clear(&m);
	/* a value with a NUL inside */
	lens[9] = 5;
	fv[9] = "bu\0sy";
	assert_int_equal(acct_stream_event(&m, fv, lens, 10, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "reason"));
	/* odd count */
	assert_int_equal(acct_stream_event(&m, fv, lens, 9, err,
	    sizeof(err)), -1);

	/* a field given twice: the last one, no leak */
	assert_int_equal(stream(&m, err, sizeof(err), "call_id", ID,
	    "attempt", "1", "status", "failed", "ts_ms", "1", "node", "a",
	    "node", "b", NULL), 0);
	assert_string_equal(m.node, "b");
	rq_msg_clear(&m);

	/* required fields and numbers */
	assert_int_equal(stream(&m, err, sizeof(err), "garbage", "1", NULL),
	    -1);
	assert_non_null(strstr(err, "missing"));
	assert_int_equal(stream(&m, err, sizeof(err), "call_id", ID,
	    "status", "failed", "ts_ms", "1", NULL), -1);
	assert_int_equal(stream(&m, err, sizeof(err), NULL), -1);
	assert_int_equal(stream(&m, err, sizeof(err), "call_id", ID,
	    "attempt", "x", "status", "failed", "ts_ms", "1", NULL), -1);
	assert_string_equal(err, "attempt is not a number");
	assert_int_equal(stream(&m, err, sizeof(err), "call_id", ID,
	    "attempt", "-1", "status", "failed", "ts_ms", "1", NULL), -1);
	assert_int_equal(stream(&m, err, sizeof(err), "call_id", ID,
	    "attempt", "1", "status", "failed", "ts_ms", "", NULL), -1);
	assert_int_equal(stream(&m, err, sizeof(err), "call_id", ID,
	    "attempt", "1", "status", "failed", "ts_ms", "1.5", NULL), -1);
	assert_int_equal(stream(&m, err, sizeof(err), "call_id", ID,
	    "attempt", "1", "status", "failed", "ts_ms",
	    "18446744073709551616", NULL), -1);
	assert_int_equal(stream(&m, err, sizeof(err), "call_id", ID,
	    "attempt", "1", "status", "failed", "ts_ms",
	    "18446744073709551615", NULL), 0);
	assert_int_equal(m.ts_ms, UINT64_MAX);
	rq_msg_clear(&m);
	/* an optional number that is not one: dropped, the event kept */
	assert_int_equal(stream(&m, err, sizeof(err), "call_id", ID,
	    "attempt", "1", "status", "failed", "ts_ms", "1", "sip_code",
	    "486.0", "duration_ms", "5", NULL), 0);
	assert_false(rq_msg_has(&m, sip_code));
	assert_true(rq_msg_has(&m, duration_ms));
	assert_string_equal(err, "sip_code is not a number, ignored");
	rq_msg_clear(&m);
	assert_int_equal(stream(&m, err, sizeof(err), "call_id", ID,
	    "attempt", "1", "status", "failed", "ts_ms",
	    "18446744073709551615", NULL), 0);
	/* parsed, but the check refuses it */
	assert_int_equal(acct_event_check(&m, &st, err, sizeof(err)), -1);
	rq_msg_clear(&m);
}

/* A result from the stream and the check: a JSON object is kept as it
 * came; anything else becomes a JSON string of its text (so PostgreSQL's
 * jsonb always takes it), an empty one is absent; one too long or with a
 * NUL is dropped, the event kept. */
static void
test_result(void **state)
{
	struct rq_msg m;
	enum rq_status st;
	char err[128], *big, *deep;
	const char *fv[10];
	size_t lens[10], i;
	static const struct {
		const char	*in, *out;
	} cases[] = {
		{ "{\"end\":\"exit\",\"fields\":{\"pin\":\"12\"}}",
		  "{\"end\":\"exit\",\"fields\":{\"pin\":\"12\"}}" },
		{ " { \"a\" : [1, 2.5e3] } ", " { \"a\" : [1, 2.5e3] } " },
		{ "not json", "\"not json\"" },
		{ "[1,2]", "\"[1,2]\"" },
		{ "\"s\"", "\"\\\"s\\\"\"" },
		{ "{\"x\":NaN}", "\"{\\\"x\\\":NaN}\"" },
		{ "{\"a\":\"\\u0000\"}", "\"{\\\"a\\\":\\\"\\\\u0000\\\"}\"" },
		{ "{\"n\":123456789012345678901234567890}",
		  "\"{\\\"n\\\":123456789012345678901234567890}\"" },
		{ "caf\xc3\xa9 \xff", "\"caf\xc3\xa9 ?\"" },
	};

	fv[0] = "call_id"; fv[1] = ID; fv[2] = "attempt"; fv[3] = "1";
	fv[4] = "status"; fv[5] = "completed"; fv[6] = "ts_ms"; fv[7] = "1";
	fv[8] = "result";
	for (i = 0; i < 9; i++)
		lens[i] = strlen(fv[i]);
	for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		fv[9] = cases[i].in;
		lens[9] = strlen(fv[9]);
		assert_int_equal(acct_stream_event(&m, fv, lens, 10, err,
		    sizeof(err)), 0);
		assert_string_equal(m.result, cases[i].in);
		assert_int_equal(acct_event_check(&m, &st, err, sizeof(err)),
		    0);
		assert_true(rq_msg_has(&m, result));
		if (strcmp(m.result, cases[i].out) != 0)
			fail_msg("result %zu: got %s, want %s", i, m.result,
			    cases[i].out);
		/* err says when it became a string */
		if (cases[i].out[0] == '"')
			assert_non_null(strstr(err, "not a JSON object"));
		else
			assert_string_equal(err, "");
		rq_msg_clear(&m);
	}

	/* empty: absent */
	fv[9] = "";
	lens[9] = 0;
	assert_int_equal(acct_stream_event(&m, fv, lens, 10, err, sizeof(err)),
	    0);
	assert_int_equal(acct_event_check(&m, &st, err, sizeof(err)), 0);
	assert_false(rq_msg_has(&m, result));
	assert_null(m.result);
	rq_msg_clear(&m);

	/* nested deeper than an application's: a string */
	deep = malloc(200);
	assert_non_null(deep);
	memcpy(deep, "{\"a\":", 5);
	memset(deep + 5, '[', 95);
	memset(deep + 100, ']', 95);
	deep[195] = '}';
	deep[196] = '\0';
	fv[9] = deep;
	lens[9] = strlen(deep);
	assert_int_equal(acct_stream_event(&m, fv, lens, 10, err, sizeof(err)),
	    0);
	assert_int_equal(acct_event_check(&m, &st, err, sizeof(err)), 0);
	assert_int_equal(m.result[0], '"');
	rq_msg_clear(&m);
	free(deep);

	/* too long, or with a NUL: dropped, the event stored all the same */
	big = malloc(RQ_MSG_STR_MAX + 2);
	assert_non_null(big);
	memset(big, ' ', RQ_MSG_STR_MAX + 1);
	big[0] = '{';
	big[RQ_MSG_STR_MAX] = '}';
	fv[9] = big;
	lens[9] = RQ_MSG_STR_MAX + 1;
	assert_int_equal(acct_stream_event(&m, fv, lens, 10, err, sizeof(err)),
	    0);
	assert_false(rq_msg_has(&m, result));
	assert_non_null(strstr(err, "result"));
	assert_int_equal(acct_event_check(&m, &st, err, sizeof(err)), 0);
	rq_msg_clear(&m);
	free(big);
	fv[9] = "{\"a\":\0}";
	lens[9] = 7;
	assert_int_equal(acct_stream_event(&m, fv, lens, 10, err, sizeof(err)),
	    0);
	assert_false(rq_msg_has(&m, result));
	rq_msg_clear(&m);
}

/* Out of memory while copying an entry's values is not a malformed entry:
 * -2 (left pending, read again), not -1 (acknowledged and deleted). */
static void
test_stream_entry_nomem(void **state)
{
	struct rq_msg m;
	char err[128];
	int i;

	for (i = 1; i <= 3; i++) {
		strndup_fail = i;	/* call_id, status, then node */
		assert_int_equal(stream(&m, err, sizeof(err), "call_id", ID,
		    "attempt", "1", "status", "failed", "ts_ms", "1",
		    "node", "tel1", NULL), -2);
		assert_string_equal(err, "out of memory");
		assert_null(m.call_id);
		assert_null(m.status);
		assert_null(m.node);
	}
	strndup_fail = 0;
	assert_int_equal(stream(&m, err, sizeof(err), "call_id", ID,
	    "attempt", "1", "status", "failed", "ts_ms", "1", "node", "tel1",
	    NULL), 0);
	assert_string_equal(m.node, "tel1");
	rq_msg_clear(&m);
	/* malformed stays -1 */
	assert_int_equal(stream(&m, err, sizeof(err), "call_id", ID, NULL),
	    -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_status_and_attempt),
		cmocka_unit_test(test_bad_fields),
		cmocka_unit_test(test_rank),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_json_result),
		cmocka_unit_test(test_result),
		cmocka_unit_test(test_stream_entry),
		cmocka_unit_test(test_stream_entry_nomem),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
