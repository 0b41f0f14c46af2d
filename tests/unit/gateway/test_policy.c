/* Unit tests of gateway/policy.c (the pure checks, with a fixed clock) and
 * of the verdicts of policy_store.c's script (made-up replies). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>

#include "gateway.h"

#define T_0600Z		1795240800000ULL	/* Sat 2026-11-21T06:00Z */
#define T_0700Z		1795244400000ULL
#define T_1500Z		1795273200000ULL
#define T_1400Z		1795269600000ULL
#define T_1600Z		1795276800000ULL
#define T_1700Z		1795280400000ULL
#define T_1800Z		1795284000000ULL
#define T_2130Z		1795296600000ULL
#define T_NEXT_0700Z	1795330800000ULL	/* Sun 2026-11-22T07:00Z */
#define T_MON_1400Z	1795442400000ULL	/* Mon 2026-11-23T14:00Z */
#define T_MON_1600Z	1795449600000ULL	/* Mon 2026-11-23T16:00Z */

static struct rq_business businesses[] = {
	{ .name = "shop", .hours = "Mon-Fri 09:00-17:00",
	  .time_zone = "America/New_York" },
	{ .name = "night", .hours = "22:00-23:00", .time_zone = "UTC" },
};
static struct rq_config cfg = {
	.businesses = businesses, .nbusinesses = 2,
};

static struct rq_tenant
tenant(void)
{
	struct rq_tenant t = {
		.name = "t", .allow_sip = 1, .max_attempts = 3,
		.rate_per_second = 1000,
	};
	return t;
}

/* Runs the checks on body at now; returns the rc, call and err filled. */
static int
check(const struct rq_tenant *t, const char *body, uint64_t now,
    struct gw_call *call, struct gw_policy *pol, struct gw_error *err)
{
	assert_int_equal(gw_call_parse(body, strlen(body), 65536, t, now, call,
	    err), 0);
	return gw_policy_check(&cfg, t, call, now, pol, err);
}

static void
expect_refused(const struct rq_tenant *t, const char *body, int status,
    const char *code, const char *field)
{
	struct gw_call call;
	struct gw_policy pol;
	struct gw_error err;

	assert_int_equal(check(t, body, T_1500Z, &call, &pol, &err), -1);
	assert_int_equal(err.status, status);
	assert_string_equal(err.code, code);
	assert_string_equal(err.field, field);
	gw_call_clear(&call);
}

static uint64_t
expect_ok(const struct rq_tenant *t, const char *body, uint64_t now,
    const char *policy)
{
	struct gw_call call;
	struct gw_policy pol;
	struct gw_error err;
	uint64_t nb;

	assert_int_equal(check(t, body, now, &call, &pol, &err), 0);
	assert_string_equal(call.policy, policy);
	assert_int_equal(pol.defer, strncmp(policy, "defer", 5) == 0);
	nb = call.not_before_ms;
	gw_call_clear(&call);
	return nb;
}

static void
test_destinations(void **state)
{
	struct rq_tenant t = tenant();

	expect_refused(&t, "{\"to\":\"+99912345678\",\"say\":\"x\"}", 400,
	    "invalid_field", "to");
	expect_refused(&t, "{\"to\":\"+1555123456\",\"say\":\"x\"}", 400,
	    "invalid_field", "to");
	expect_refused(&t, "{\"to\":\"+19005551234\",\"say\":\"x\"}", 403,
	    "destination_not_allowed", "to");
	expect_refused(&t, "{\"to\":\"+88213456789\",\"say\":\"x\"}", 403,
	    "destination_not_allowed", "to");
	t.allow_premium = 1;
	expect_ok(&t, "{\"to\":\"+19005551234\",\"say\":\"x\"}", T_1500Z,
	    "accept");
	snprintf(t.allowed_prefixes, sizeof(t.allowed_prefixes), "+44,+1 212");
	expect_refused(&t, "{\"to\":\"+15551234567\",\"say\":\"x\"}", 403,
	    "destination_not_allowed", "to");
	expect_ok(&t, "{\"to\":\"+12125551234\",\"say\":\"x\"}", T_1500Z,
	    "accept");
	expect_ok(&t, "{\"to\":\"+442071838750\",\"say\":\"x\"}", T_1500Z,
	    "accept");
	/* SIP URIs have no country: only allow_sip (validate.c) applies. */
	expect_ok(&t, "{\"to\":\"sip:bob@example.com\",\"say\":\"x\"}",
	    T_1500Z, "accept");
}

static void
test_number_normalised(void **state)
{
	struct rq_tenant t = tenant();
	struct gw_call call;
	struct gw_policy pol;
	struct gw_error err;

	assert_int_equal(check(&t, "{\"to\":\"+15551234567\",\"say\":\"x\"}",
	    T_1500Z, &call, &pol, &err), 0);
	assert_string_equal(pol.number, "+15551234567");
	gw_call_clear(&call);
	assert_int_equal(check(&t, "{\"to\":\"sip:a@b\",\"say\":\"x\"}",
	    T_1500Z, &call, &pol, &err), 0);
	assert_string_equal(pol.number, "");
	gw_call_clear(&call);
}

static void
test_calling_hours(void **state)
{
	struct rq_tenant t = tenant();
	const char *berlin = "{\"to\":\"+493012345678\",\"say\":\"x\"}";
	const char *la = "{\"to\":\"+13105551234\",\"say\":\"x\"}";
	const char *ny = "{\"to\":\"+12125551234\",\"say\":\"x\"}";

	snprintf(t.calling_hours, sizeof(t.calling_hours), "08:00-21:00");
	/* 07:00 in Berlin: deferred to 08:00 local. */
	assert_int_equal(expect_ok(&t, berlin, T_0600Z,
	    "defer:calling_hours"), T_0700Z);
	/* 22:30 in Berlin: across midnight to tomorrow's 08:00. */
	assert_int_equal(expect_ok(&t, berlin, T_2130Z,
	    "defer:calling_hours"), T_NEXT_0700Z);
	/* 15:00Z is 10:00 in New York (open) and 07:00 in Los Angeles. */
	assert_int_equal(expect_ok(&t, ny, T_1500Z, "accept"), T_1500Z);
	assert_int_equal(expect_ok(&t, la, T_1500Z, "defer:calling_hours"),
	    T_1600Z);
	/* A time_zone in the request overrides the number's. */
	assert_int_equal(expect_ok(&t, "{\"to\":\"+12125551234\",\"say\":\"x\","
	    "\"time_zone\":\"America/Los_Angeles\"}", T_1500Z,
	    "defer:calling_hours"), T_1600Z);
	expect_refused(&t, "{\"to\":\"+12125551234\",\"say\":\"x\","
	    "\"time_zone\":\"Nowhere/Land\"}", 400, "invalid_field",
	    "time_zone");
	/* not_before is what is checked, not the time of the request. */
	assert_int_equal(expect_ok(&t, "{\"to\":\"+493012345678\",\"say\":\"x\","
	    "\"not_before\":\"2026-11-21T21:30:00Z\"}", T_0600Z,
	    "defer:calling_hours"), T_NEXT_0700Z);
	/* Empty: always. */
	t.calling_hours[0] = '\0';
	assert_int_equal(expect_ok(&t, berlin, T_2130Z, "accept"), T_2130Z);
}

/* Countries with several zones: the area code's zone when it is known,
 * else hours open in every zone of the country. */
static void
test_calling_hours_zones(void **state)
{
	struct rq_tenant t = tenant();
	struct gw_call call;
	struct gw_policy pol;
	struct gw_error err;

	snprintf(t.calling_hours, sizeof(t.calling_hours), "08:00-21:00");
	/* 14:00Z is 06:00 in Los Angeles (213): deferred to 08:00 there. */
	assert_int_equal(expect_ok(&t, "{\"to\":\"+12135551234\","
	    "\"say\":\"x\"}", T_1400Z, "defer:calling_hours"), T_1600Z);
	/* 16:00Z is 07:00 in Anchorage (907): 08:00 there is 17:00Z. */
	assert_int_equal(expect_ok(&t, "{\"to\":\"+19075551234\","
	    "\"say\":\"x\"}", T_1600Z, "defer:calling_hours"), T_1700Z);
	/* An unknown area code (555): open in every NANP zone, from 08:00
	 * in Honolulu (18:00Z) to 21:00 in St. John's (00:30Z). */
	assert_int_equal(expect_ok(&t, "{\"to\":\"+15551234567\","
	    "\"say\":\"x\"}", T_1500Z, "defer:calling_hours"), T_1800Z);
	assert_int_equal(expect_ok(&t, "{\"to\":\"+15551234567\","
	    "\"say\":\"x\"}", T_1800Z, "accept"), T_1800Z);
	/* ... unless the request names the zone. */
	assert_int_equal(expect_ok(&t, "{\"to\":\"+15551234567\","
	    "\"say\":\"x\",\"time_zone\":\"America/New_York\"}", T_1500Z,
	    "accept"), T_1500Z);

	/* A deferral past the not_before horizon has its own message. */
	snprintf(t.calling_hours, sizeof(t.calling_hours), "20:00-21:00");
	assert_int_equal(check(&t, "{\"to\":\"+493012345678\","
	    "\"say\":\"x\",\"not_before\":\"2027-11-22T14:00:00Z\"}", T_1500Z, &call, &pol,
	    &err), -1);
	assert_int_equal(err.status, 403);
	assert_string_equal(err.code, "outside_hours");
	assert_non_null(strstr(err.message, "more than a year"));
	gw_call_clear(&call);
}

/* The job keeps the windows it was planned in, and when the first of
 * them closes: the take defers the call rather than dial after it. */
static void
test_hours_kept(void **state)
{
	struct rq_tenant t = tenant();
	struct gw_call call;
	struct gw_policy pol;
	struct gw_error err;

	assert_int_equal(check(&t, "{\"to\":\"+12125551234\",\"say\":\"x\"}",
	    T_1500Z, &call, &pol, &err), 0);
	assert_null(call.hours);
	gw_call_clear(&call);
	snprintf(t.calling_hours, sizeof(t.calling_hours), "08:00-21:00");
	/* 10:00 in New York: open until 21:00 EST, 02:00Z. */
	assert_int_equal(check(&t, "{\"to\":\"+12125551234\",\"say\":\"x\"}",
	    T_1500Z, &call, &pol, &err), 0);
	assert_string_equal(call.hours, "c=08:00-21:00 America/New_York");
	assert_int_equal(call.hours_until_ms, T_1500Z + 11 * 3600000ULL);
	gw_call_clear(&call);
	/* An unknown area code: every NANP zone; St. John's closes first
	 * (21:00 NST, 00:30Z). */
	assert_int_equal(check(&t, "{\"to\":\"+15551234567\",\"say\":\"x\"}",
	    T_1800Z, &call, &pol, &err), 0);
	assert_non_null(strstr(call.hours, "c=08:00-21:00 America/St_Johns"));
	assert_non_null(strstr(call.hours, ";c=08:00-21:00 Pacific/Honolulu"));
	assert_int_equal(call.hours_until_ms, T_1800Z + 6 * 3600000ULL +
	    1800000);
	gw_call_clear(&call);
	/* With the business: its close comes first (17:00 in New York). */
	assert_int_equal(check(&t, "{\"to\":\"+12125551234\",\"say\":\"x\","
	    "\"business\":\"shop\"}", T_MON_1400Z, &call, &pol, &err), 0);
	assert_non_null(strstr(call.hours, ";b=Mon-Fri 09:00-17:00 "));
	assert_int_equal(call.hours_until_ms, T_MON_1400Z + 8 * 3600000ULL);
	gw_call_clear(&call);
}

static void
test_business_hours(void **state)
{
	struct rq_tenant t = tenant();

	/* Saturday 10:00 in New York: the shop opens Monday 09:00. */
	assert_int_equal(expect_ok(&t, "{\"to\":\"+12125551234\",\"say\":\"x\","
	    "\"business\":\"shop\"}", T_1500Z, "defer:business_hours"),
	    T_MON_1400Z);
	/* Both: the callee from 11:00 New York time, the shop from 09:00:
	 * Monday 11:00. */
	snprintf(t.calling_hours, sizeof(t.calling_hours), "11:00-21:00");
	assert_int_equal(expect_ok(&t, "{\"to\":\"+12125551234\",\"say\":\"x\","
	    "\"business\":\"shop\"}", T_1500Z,
	    "defer:calling_hours,business_hours"), T_MON_1600Z);
	/* Windows that never meet are refused. */
	snprintf(t.calling_hours, sizeof(t.calling_hours), "08:00-09:00");
	expect_refused(&t, "{\"to\":\"+442071838750\",\"say\":\"x\","
	    "\"business\":\"night\"}", 403, "outside_hours", "");
	expect_refused(&t, "{\"to\":\"+442071838750\",\"say\":\"x\","
	    "\"business\":\"nope\"}", 400, "invalid_field", "business");
}

/* not_before / not_after without an offset are the callee's local time. */
static void
test_local_times(void **state)
{
	struct rq_tenant t = tenant();
	struct gw_call call;
	struct gw_policy pol;
	struct gw_error err;

	/* New York (a precise area code): 10:00 EST is 15:00Z */
	assert_true(expect_ok(&t, "{\"to\":\"+12125551234\",\"say\":\"x\","
	    "\"not_before\":\"2026-11-21T10:00:00\"}", T_0600Z, "accept") ==
	    T_1500Z);
	/* time_zone wins over the number's zone */
	assert_true(expect_ok(&t, "{\"to\":\"+12125551234\",\"say\":\"x\","
	    "\"time_zone\":\"Europe/Paris\","
	    "\"not_before\":\"2026-11-21T16:00:00\"}", T_0600Z, "accept") ==
	    T_1500Z);
	/* a number in a country of several zones, a SIP address: ask */
	expect_refused(&t, "{\"to\":\"+15551234567\",\"say\":\"x\","
	    "\"not_before\":\"2026-11-21T16:00:00\"}", 400,
	    "time_zone_required", "time_zone");
	expect_refused(&t, "{\"to\":\"sip:bob@example.com\",\"say\":\"x\","
	    "\"not_after\":\"2026-11-21T16:00:00\"}", 400,
	    "time_zone_required", "time_zone");
	assert_true(expect_ok(&t, "{\"to\":\"sip:bob@example.com\","
	    "\"say\":\"x\",\"time_zone\":\"UTC\","
	    "\"not_before\":\"2026-11-21T17:00:00\"}", T_1500Z, "accept") ==
	    T_1700Z);
	/* made absolute, then checked: not_after after not_before */
	expect_refused(&t, "{\"to\":\"+442071838750\",\"say\":\"x\","
	    "\"not_before\":\"2026-11-21T17:00:00\","
	    "\"not_after\":\"2026-11-21T16:00:00\"}", 400, "invalid_field",
	    "not_after");
	expect_refused(&t, "{\"to\":\"+442071838750\",\"say\":\"x\","
	    "\"not_after\":\"2026-11-21T14:00:00\"}", 400, "invalid_field",
	    "not_after");
	assert_int_equal(check(&t, "{\"to\":\"+442071838750\",\"say\":\"x\","
	    "\"not_after\":\"2026-11-21T18:00:00\"}", T_1500Z, &call, &pol,
	    &err), 0);
	assert_true(call.not_after_ms == T_1800Z);
	assert_true(call.not_before_ms == T_1500Z);
	gw_call_clear(&call);
}

/* A deferral that lands at or past not_after is refused, saying why. */
static void
test_deferral_past_not_after(void **state)
{
	struct rq_tenant t = tenant();

	snprintf(t.calling_hours, sizeof(t.calling_hours), "08:00-21:00");
	/* London, 21:30: the hours open tomorrow at 08:00, too late */
	expect_refused(&t, "{\"to\":\"+442071838750\",\"say\":\"x\","
	    "\"not_before\":\"2026-11-21T21:30:00Z\","
	    "\"not_after\":\"2026-11-21T23:00:00Z\"}", 422,
	    "outside_window", "not_after");
	/* a window that reaches the opening is fine */
	assert_true(expect_ok(&t, "{\"to\":\"+442071838750\",\"say\":\"x\","
	    "\"not_before\":\"2026-11-21T21:30:00Z\","
	    "\"not_after\":\"2026-11-22T09:00:00Z\"}", T_1500Z,
	    "defer:calling_hours") == T_NEXT_0700Z + 3600000);
}

static void
test_policy_obj(void **state)
{
	json_t *o;
	char *s;

	assert_null(gw_policy_obj(NULL, 0));
	o = gw_policy_obj("defer:calling_hours,business_hours", T_0700Z);
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	assert_string_equal(s, "{\"decision\":\"defer\",\"reasons\":"
	    "[\"calling_hours\",\"business_hours\"],\"not_before\":"
	    "\"2026-11-21T07:00:00.000Z\"}");
	free(s);
	json_decref(o);
	o = gw_policy_obj("accept", T_0700Z);
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	assert_string_equal(s, "{\"decision\":\"accept\",\"reasons\":[]}");
	free(s);
	json_decref(o);
	o = gw_policy_obj("defer:,,x", 0);	/* odd bytes from Redis */
	assert_int_equal(json_array_size(json_object_get(o, "reasons")), 1);
	json_decref(o);
}

static void
test_idem_key(void **state)
{
	char big[300];

	assert_true(gw_idem_key_valid("order-42"));
	assert_false(gw_idem_key_valid(""));
	assert_false(gw_idem_key_valid("a\nb"));
	assert_false(gw_idem_key_valid("caf\xc3\xa9"));
	/* the e-mail intake's keys are "mail:<Message-ID>" */
	assert_false(gw_idem_key_valid("mail:<m1@example.net>"));
	assert_true(gw_idem_key_valid("email:1"));
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_false(gw_idem_key_valid(big));
	big[GW_IDEM_KEY_MAX] = '\0';
	assert_true(gw_idem_key_valid(big));
}

/* Made-up script replies. */
static redisReply	 el[2], *elp[2] = { &el[0], &el[1] };

static redisReply *
reply(const char *a, const char *b)
{
	static redisReply top;

	memset(&top, 0, sizeof(top));
	memset(el, 0, sizeof(el));
	top.type = REDIS_REPLY_ARRAY;
	top.element = elp;
	top.elements = b ? 2 : 1;
	el[0].type = el[1].type = REDIS_REPLY_STRING;
	el[0].str = (char *)a;
	el[1].str = (char *)b;
	return &top;
}

static void
test_verdicts(void **state)
{
	struct gw_policy_verdict v;
	redisReply r;

	/* queued: the script's plain "ok" */
	memset(&r, 0, sizeof(r));
	r.type = REDIS_REPLY_STRING;
	r.str = "ok";
	v.rc = 7;
	assert_int_equal(gw_policy_verdict_parse(&r, &v), 0);
	assert_int_equal(v.rc, 0);
	r.str = "ko";
	assert_int_equal(gw_policy_verdict_parse(&r, &v), -1);
	assert_int_equal(gw_policy_verdict_parse(reply("ok", NULL), &v), 0);
	assert_int_equal(v.rc, 0);
	/* "ok" has no second element (the script never sends one) */
	assert_int_equal(gw_policy_verdict_parse(reply("ok",
	    "c_0123456789abcdef01234567"), &v), -1);
	assert_int_equal(gw_policy_verdict_parse(reply("replay",
	    "c_0123456789abcdef01234567"), &v), 0);
	assert_int_equal(v.rc, 1);
	assert_string_equal(v.replay_id, "c_0123456789abcdef01234567");
	assert_int_equal(gw_policy_verdict_parse(reply("replay", "../x"), &v),
	    -1);
	assert_int_equal(gw_policy_verdict_parse(reply("dnc", "customer"),
	    &v), 0);
	assert_int_equal(v.rc, -1);
	assert_int_equal(v.err.status, 403);
	assert_string_equal(v.err.code, "do_not_call");
	assert_int_equal(gw_policy_verdict_parse(reply("rate_s", "250"), &v),
	    0);
	assert_int_equal(v.err.status, 429);
	assert_string_equal(v.err.code, "rate_limited");
	assert_int_equal(v.err.retry_after, 1);
	assert_int_equal(gw_policy_verdict_parse(reply("rate_d", "3600"), &v),
	    0);
	assert_int_equal(v.err.retry_after, 3600);
	assert_int_equal(gw_policy_verdict_parse(reply("busy", "2"), &v), 0);
	assert_int_equal(v.err.status, 429);
	assert_string_equal(v.err.code, "concurrency_limited");
	assert_int_equal(gw_policy_verdict_parse(reply("what", NULL), &v), -1);
	assert_int_equal(gw_policy_verdict_parse(reply("ok", "x"), &v), -1);
	assert_int_equal(gw_policy_verdict_parse(NULL, &v), -1);
	memset(&r, 0, sizeof(r));
	r.type = REDIS_REPLY_ERROR;
	r.str = "ERR boom";
	assert_int_equal(gw_policy_verdict_parse(&r, &v), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_destinations),
		cmocka_unit_test(test_number_normalised),
		cmocka_unit_test(test_calling_hours),
		cmocka_unit_test(test_calling_hours_zones),
		cmocka_unit_test(test_business_hours),
		cmocka_unit_test(test_hours_kept),
		cmocka_unit_test(test_local_times),
		cmocka_unit_test(test_deferral_past_not_after),
		cmocka_unit_test(test_policy_obj),
		cmocka_unit_test(test_idem_key),
		cmocka_unit_test(test_verdicts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
