/* gateway/view.c: the GET /v1/calls/{id} answer built from the rq:job and
 * rq:timeline hashes, including hashes holding garbage. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "gateway.h"

#define ID	"c_0123456789abcdef01234567"
#define N(a)	(sizeof(a) / sizeof((a)[0]))

static const char *const job[] = {
	"id", ID, "tenant", "demo", "to", "+15551234567", "say", "Hello",
	"priority", "7", "not_before_ms", "1795000000000",
	"created_ms", "1795000000000", "updated_ms", "1795000009000",
	"max_attempts", "3", "attempts", "2", "status", "completed",
	"status_rank", "37", "metadata", "{\"order\":42}", "node", "tel1",
};

static const char *const timeline[] = {
	"2:completed", "{\"status\":\"completed\",\"attempt\":2,\"at\":\"x\","
	    "\"ts_ms\":1795000009000,\"duration_ms\":4200,\"node\":\"tel1\"}",
	"0:queued", "{\"status\":\"queued\",\"attempt\":0,\"ts_ms\":1795000000000}",
	"1:failed", "{\"status\":\"failed\",\"attempt\":1,\"ts_ms\":1795000003000,"
	    "\"reason\":\"busy\",\"sip_code\":486}",
	/* Same time as 0:queued, higher rank: after it. */
	"0:scheduled", "{\"status\":\"scheduled\",\"attempt\":0,"
	    "\"ts_ms\":1795000000000}",
	"2:answered", "{\"status\":\"answered\",\"attempt\":2,"
	    "\"ts_ms\":1795000004800}",
	/* Garbage is left out. */
	"9:bogus", "{\"status\":\"bogus\",\"attempt\":9,\"ts_ms\":1}",
	"3:queued", "not json",
	"4:queued", "{\"status\":\"queued\",\"attempt\":\"4\",\"ts_ms\":1}",
};

static void
test_full(void **state)
{
	json_t *o, *ev;
	static const char *order[] = { "queued", "scheduled", "failed",
	    "answered", "completed" };
	size_t i;

	o = gw_view_call(ID, "demo", job, N(job), timeline, N(timeline));
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "id")), ID);
	assert_string_equal(json_string_value(json_object_get(o, "status")),
	    "completed");
	assert_string_equal(json_string_value(json_object_get(o, "to")),
	    "+15551234567");
	assert_string_equal(json_string_value(json_object_get(o, "say")),
	    "Hello");
	assert_string_equal(json_string_value(json_object_get(o, "direction")),
	    "outbound");
	assert_null(json_object_get(o, "number"));
	assert_true(json_is_null(json_object_get(o, "caller_id")));
	assert_int_equal(json_integer_value(json_object_get(o, "priority")), 7);
	assert_int_equal(json_integer_value(json_object_get(o, "attempts")), 2);
	assert_int_equal(json_integer_value(json_object_get(o, "talk_ms")),
	    4200);
	assert_string_equal(json_string_value(json_object_get(o, "created_at")),
	    "2026-11-18T11:06:40.000Z");
	assert_string_equal(json_string_value(json_object_get(o, "updated_at")),
	    "2026-11-18T11:06:49.000Z");
	assert_int_equal(json_integer_value(json_object_get(
	    json_object_get(o, "metadata"), "order")), 42);
	assert_null(json_object_get(o, "reason"));
	assert_null(json_object_get(o, "sip_code"));

	ev = json_object_get(o, "events");
	assert_int_equal(json_array_size(ev), N(order));
	for (i = 0; i < N(order); i++)
		assert_string_equal(json_string_value(json_object_get(
		    json_array_get(ev, i), "status")), order[i]);
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(ev, 2), "reason")), "busy");
	assert_int_equal(json_integer_value(json_object_get(
	    json_array_get(ev, 2), "sip_code")), 486);
	assert_int_equal(json_integer_value(json_object_get(
	    json_array_get(ev, 4), "duration_ms")), 4200);
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(ev, 4), "node")), "tel1");
	/* "at" comes from ts_ms, not from whatever the hash said. */
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(ev, 4), "at")), "2026-11-18T11:06:49.000Z");
	json_decref(o);
}

static void
test_other_tenant_and_missing(void **state)
{
	static const char *const notenant[] = { "id", ID, "to", "+1555" };

	assert_null(gw_view_call(ID, "other", job, N(job), NULL, 0));
	assert_null(gw_view_call(ID, "demo", NULL, 0, NULL, 0));
	assert_null(gw_view_call(ID, "demo", notenant, N(notenant), NULL, 0));
}

static void
test_failed_and_garbage(void **state)
{
	static const char *const j[] = {
		"tenant", "demo", "status", "failed", "reason", "busy",
		"sip_code", "486", "priority", "banana", "attempts", "-1",
		"created_ms", "12x", "metadata", "[not an object]",
		"caller_id", "Desk", "say", "\xff\xfe",
	};
	json_t *o;

	o = gw_view_call(ID, "demo", j, N(j), NULL, 0);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "reason")),
	    "busy");
	assert_int_equal(json_integer_value(json_object_get(o, "sip_code")),
	    486);
	assert_string_equal(json_string_value(json_object_get(o, "caller_id")),
	    "Desk");
	assert_null(json_object_get(o, "priority"));
	assert_null(json_object_get(o, "created_at"));
	assert_null(json_object_get(o, "metadata"));
	assert_null(json_object_get(o, "say"));	/* not UTF-8 */
	assert_null(json_object_get(o, "talk_ms"));
	assert_int_equal(json_integer_value(json_object_get(o, "attempts")), 0);
	assert_int_equal(json_array_size(json_object_get(o, "events")), 0);
	json_decref(o);
}

/* A call that ran an application: its app_url, its result (the object
 * the finish stored on the job), and each timeline entry's result. */
static void
test_result(void **state)
{
	static const char *const ajob[] = {
		"id", ID, "tenant", "demo", "to", "+15551234567",
		"app_url", "https://apps.example.com/order.vxml",
		"created_ms", "1795000000000", "attempts", "2",
		"status", "completed", "status_rank", "38",
		"result", ("{\"end\":\"exit\",\"fields\":{\"pin\":\"1234\"},"
		    "\"recordings\":{\"msg\":\"http://r/1.wav\"}}"),
	};
	static const char *const atl[] = {
		"1:retrying", "{\"status\":\"retrying\",\"attempt\":1,"
		    "\"ts_ms\":1795000003000,\"reason\":\"media\","
		    "\"result\":{\"end\":\"error\",\"event\":"
		    "\"error.badfetch\",\"line\":3}}",
		"2:completed", "{\"status\":\"completed\",\"attempt\":2,"
		    "\"ts_ms\":1795000009000,\"result\":\"not an object\"}",
		"2:answered", "{\"status\":\"answered\",\"attempt\":2,"
		    "\"ts_ms\":1795000008000,\"result\":42}",
	};
	static const char *const bjob[] = {
		"id", ID, "tenant", "demo", "to", "+15551234567",
		"app_url", "http://x/a.vxml", "result", "oops {",
	};
	json_t *o, *ev, *r;

	o = gw_view_call(ID, "demo", ajob, N(ajob), atl, N(atl));
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "app_url")),
	    "https://apps.example.com/order.vxml");
	assert_null(json_object_get(o, "say"));
	r = json_object_get(o, "result");
	assert_true(json_is_object(r));
	assert_string_equal(json_string_value(json_object_get(r, "end")),
	    "exit");
	assert_string_equal(json_string_value(json_object_get(
	    json_object_get(r, "fields"), "pin")), "1234");
	ev = json_object_get(o, "events");
	assert_int_equal(json_array_size(ev), 3);
	r = json_object_get(json_array_get(ev, 0), "result");
	assert_string_equal(json_string_value(json_object_get(r, "event")),
	    "error.badfetch");
	assert_int_equal(json_integer_value(json_object_get(r, "line")), 3);
	/* a number is not a result: left out */
	assert_null(json_object_get(json_array_get(ev, 1), "result"));
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(ev, 2), "result")), "not an object");
	json_decref(o);

	/* A job's result that is not JSON: shown as the text it is. */
	o = gw_view_call(ID, "demo", bjob, N(bjob), NULL, 0);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "result")),
	    "oops {");
	json_decref(o);

	/* No result: no member. */
	o = gw_view_call(ID, "demo", job, N(job), timeline, N(timeline));
	assert_null(json_object_get(o, "result"));
	assert_null(json_object_get(o, "app_url"));
	json_decref(o);
}

/* An incoming call (the telserver's rq_job_inbound): direction inbound,
 * the number called, the caller as `to`; a direction that is not
 * "inbound" is an outbound call's. */
static void
test_inbound(void **state)
{
	static const char *const ijob[] = {
		"id", ID, "tenant", "demo", "to", "sip:alice@192.0.2.1:5060",
		"direction", "inbound", "number", "+15550100",
		"app_url", "http://apps.example/in.vxml",
		"created_ms", "1795000000000", "max_attempts", "1",
		"attempts", "1", "dialed", "1", "node", "tel1",
		"status", "completed", "status_rank", "22",
	};
	static const char *const itl[] = {
		"1:answered", "{\"status\":\"answered\",\"attempt\":1,"
		    "\"ts_ms\":1795000000000,\"sip_code\":200,\"node\":\"tel1\"}",
		"1:completed", "{\"status\":\"completed\",\"attempt\":1,"
		    "\"ts_ms\":1795000005000,\"duration_ms\":5000}",
	};
	static const char *const odd[] = {
		"id", ID, "tenant", "demo", "to", "+15551234567",
		"direction", "sideways", "number", "+15550100",
	};
	json_t *o;

	o = gw_view_call(ID, "demo", ijob, N(ijob), itl, N(itl));
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "direction")),
	    "inbound");
	assert_string_equal(json_string_value(json_object_get(o, "number")),
	    "+15550100");
	assert_string_equal(json_string_value(json_object_get(o, "to")),
	    "sip:alice@192.0.2.1:5060");
	assert_string_equal(json_string_value(json_object_get(o, "status")),
	    "completed");
	assert_int_equal(json_integer_value(json_object_get(o, "talk_ms")),
	    5000);
	assert_int_equal(json_array_size(json_object_get(o, "events")), 2);
	assert_null(json_object_get(o, "priority"));
	json_decref(o);

	o = gw_view_call(ID, "demo", odd, N(odd), NULL, 0);
	assert_string_equal(json_string_value(json_object_get(o, "direction")),
	    "outbound");
	assert_null(json_object_get(o, "number"));
	json_decref(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_inbound),
		cmocka_unit_test(test_other_tenant_and_missing),
		cmocka_unit_test(test_failed_and_garbage),
		cmocka_unit_test(test_result),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
