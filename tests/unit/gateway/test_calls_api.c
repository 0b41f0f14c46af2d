/* Unit tests of gateway/calls_api.c and store_calls.c: the list query and
 * its cursor, the PATCH body, and the cancel, patch and list scripts
 * against a real redis-server on a free port. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "gateway.h"
#include "keys.h"
#include "log.h"
#include "teststore.h"

static void
test_cursor(void **state)
{
	char c[128], id[RQ_ID_LEN + 1];
	uint64_t ms;

	gw_cursor_encode(1763720147343ULL, "c_0123456789abcdef01234567", c,
	    sizeof(c));
	assert_null(strpbrk(c, "+/="));
	assert_int_equal(gw_cursor_decode(c, &ms, id), 0);
	assert_true(ms == 1763720147343ULL);
	assert_string_equal(id, "c_0123456789abcdef01234567");
	/* tampered, truncated, not base64, wrong content */
	c[3] = c[3] == 'A' ? 'B' : 'A';
	assert_int_equal(gw_cursor_decode(c, &ms, id), -1);
	assert_int_equal(gw_cursor_decode("", &ms, id), -1);
	assert_int_equal(gw_cursor_decode("abc$", &ms, id), -1);
	assert_int_equal(gw_cursor_decode("MTIzNDU", &ms, id), -1); /* 12345 */
	gw_cursor_encode(5, "x", c, sizeof(c));
	assert_int_equal(gw_cursor_decode(c, &ms, id), -1);
}

static void
test_query(void **state)
{
	struct gw_list_query q;
	struct gw_error err;
	char c[128], qs[256];

	assert_int_equal(gw_list_query_parse(NULL, &q, &err), 0);
	assert_int_equal(q.limit, GW_LIST_LIMIT_DEFAULT);
	assert_string_equal(q.status, "");
	assert_int_equal(q.has_cursor, 0);
	assert_int_equal(gw_list_query_parse("status=failed&limit=200&"
	    "since=2026-11-21T10:00:00%2B01:00", &q, &err), 0);
	assert_string_equal(q.status, "failed");
	assert_int_equal(q.limit, 200);
	assert_true(q.since_ms == 1795251600000ULL);
	gw_cursor_encode(42, "c_0123456789abcdef01234567", c, sizeof(c));
	snprintf(qs, sizeof(qs), "cursor=%s", c);
	assert_int_equal(gw_list_query_parse(qs, &q, &err), 0);
	assert_int_equal(q.has_cursor, 1);
	assert_true(q.cursor_ms == 42);

	static const struct { const char *qs, *field, *code; } bad[] = {
		{ "limit=0", "limit", "invalid_parameter" },
		{ "limit=201", "limit", "invalid_parameter" },
		{ "limit=5x", "limit", "invalid_parameter" },
		{ "limit=-1", "limit", "invalid_parameter" },
		{ "limit=", "limit", "invalid_parameter" },
		{ "status=done", "status", "invalid_parameter" },
		{ "since=yesterday", "since", "invalid_parameter" },
		{ "cursor=zzz", "cursor", "invalid_parameter" },
		{ "limit=5&limit=6", "limit", "invalid_parameter" },
		{ "sort=asc", "sort", "unknown_parameter" },
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		assert_int_equal(gw_list_query_parse(bad[i].qs, &q, &err), -1);
		assert_int_equal(err.status, 400);
		assert_string_equal(err.field, bad[i].field);
		assert_string_equal(err.code, bad[i].code);
	}
}

static void
test_cancel_parse_shapes(void **state)
{
	struct gw_cancel_result res;
	redisReply top, code, *el[3];

	memset(&code, 0, sizeof(code));
	code.type = REDIS_REPLY_INTEGER;
	el[0] = &code;
	memset(&top, 0, sizeof(top));
	top.type = REDIS_REPLY_ARRAY;
	top.element = el;
	top.elements = 1;
	code.integer = 3;
	assert_int_equal(gw_cancel_parse(&top, &res), 0);
	assert_int_equal(res.outcome, GW_CANCEL_STARTED);
	code.integer = 1;	/* DONE needs the job */
	assert_int_equal(gw_cancel_parse(&top, &res), -1);
	code.integer = 9;
	assert_int_equal(gw_cancel_parse(&top, &res), -1);
	assert_int_equal(gw_cancel_parse(NULL, &res), -1);
	code.type = REDIS_REPLY_STRING;
	code.str = "1";
	assert_int_equal(gw_cancel_parse(&top, &res), -1);
}

/* The live tests: one store on the test server. */

struct result {
	int		 done;
	int		 rc;
	int		 outcome;
	uint64_t	 attempt;
	char		 status[32];
	json_t		*body;
};

static void
run_until(const int *flag)
{
	struct timespec ts = { 0, 5 * 1000 * 1000 };
	int i;

	for (i = 0; i < 1000 && !*flag; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (!*flag)
			nanosleep(&ts, NULL);
	}
	assert_true(*flag);
}

/* A job as the gateway writes it, in queue (rq:delayed, rq:ready or none). */
static void
job(const char *id, const char *tenant, const char *queue, int rank,
    uint64_t created)
{
	testredis_do("HSET %s%s id %s tenant %s to +15551234567 status %s "
	    "status_rank %d created_ms %llu attempts 0 priority 5 "
	    "not_before_ms %llu updated_ms %llu", RQ_KEY_JOB, id, id, tenant,
	    rank == 0 ? "queued" : rank == 6 ? "completed" : "dispatched",
	    rank, (unsigned long long)created, (unsigned long long)created,
	    (unsigned long long)created);
	testredis_do("ZADD %s%s %llu %s", RQ_KEY_TENANT_CALLS, tenant,
	    (unsigned long long)created, id);
	if (queue != NULL)
		testredis_do("ZADD %s %llu %s", queue,
		    (unsigned long long)created, id);
}

static void
canceled(const struct gw_cancel_result *r, void *arg)
{
	struct result *res = arg;
	size_t i;

	res->rc = r->rc;
	res->outcome = r->outcome;
	res->attempt = r->attempt;
	for (i = 0; i + 1 < r->njob; i += 2)
		if (!strcmp(r->job[i], "status"))
			snprintf(res->status, sizeof(res->status), "%s",
			    r->job[i + 1]);
	res->done = 1;
}

static void
cancel(const char *id, const char *tenant, struct result *res)
{
	memset(res, 0, sizeof(*res));
	assert_int_equal(gw_store_cancel(st, id, tenant, 1000, canceled, res),
	    0);
	run_until(&res->done);
	assert_int_equal(res->rc, 0);
}

static void
test_cancel_live(void **state)
{
	const char *a = "c_00000000000000000000000a";
	const char *b = "c_00000000000000000000000b";
	const char *c = "c_00000000000000000000000c";
	const char *d = "c_00000000000000000000000d";
	const char *e = "c_00000000000000000000000e";
	const char *f = "c_00000000000000000000000f";
	const char *g = "c_000000000000000000000010";
	struct result res;

	job(a, "t1", RQ_KEY_DELAYED, 0, 10);
	job(b, "t1", RQ_KEY_READY, 1, 11);
	job(c, "t1", NULL, 18, 12);		/* dispatched, attempt 1 */
	job(d, "t1", NULL, 6, 13);		/* completed */
	testredis_do("ZADD %st1 10 %s", RQ_KEY_ACTIVE, a);

	cancel(a, "t2", &res);			/* another tenant's */
	assert_int_equal(res.outcome, GW_CANCEL_NOT_FOUND);
	assert_int_equal(testredis_num("ZSCORE %s %s", RQ_KEY_DELAYED, a), 10);
	cancel("c_0000000000000000000000ff", "t1", &res);
	assert_int_equal(res.outcome, GW_CANCEL_NOT_FOUND);

	cancel(a, "t1", &res);
	assert_int_equal(res.outcome, GW_CANCEL_DONE);
	assert_string_equal(res.status, "canceled");
	assert_true(res.attempt == 0);
	assert_int_equal(testredis_num("ZSCORE %s %s", RQ_KEY_DELAYED, a), -1);
	assert_int_equal(testredis_num("ZSCORE %st1 %s", RQ_KEY_ACTIVE, a), -1);
	assert_int_equal(testredis_num("HGET %s%s status_rank", RQ_KEY_JOB, a),
	    8);
	assert_int_equal(testredis_num("HEXISTS %s%s 0:canceled",
	    RQ_KEY_JOB, a), 1);
	/* EVENT canceled is in the outbox, from the same script */
	assert_int_equal(testredis_num("XLEN %s", RQ_KEY_EVENTS), 1);
	assert_int_equal(testredis_num("EVAL %s 1 %s", "local e = "
	    "redis.call('XRANGE', KEYS[1], '-', '+')[1][2] local t = {} "
	    "for i = 1, #e, 2 do t[e[i]] = e[i + 1] end "
	    "if t.status == 'canceled' and t.attempt == '0' and "
	    "t.reason == 'canceled_by_request' and t.tenant == 't1' and "
	    "t.to == '+15551234567' and t.ts_ms == '1000' then return 1 end "
	    "return 0", RQ_KEY_EVENTS), 1);
	cancel(a, "t1", &res);			/* twice */
	assert_int_equal(res.outcome, GW_CANCEL_ENDED);

	cancel(b, "t1", &res);
	assert_int_equal(res.outcome, GW_CANCEL_DONE);
	assert_int_equal(testredis_num("ZSCORE %s %s", RQ_KEY_READY, b), -1);

	cancel(c, "t1", &res);
	assert_int_equal(res.outcome, GW_CANCEL_STARTED);
	cancel(d, "t1", &res);
	assert_int_equal(res.outcome, GW_CANCEL_ENDED);
	assert_int_equal(testredis_num("XLEN %s", RQ_KEY_EVENTS), 2);

	/* Waiting for a retry (attempt 1 ended busy): still cancelable, as
	 * attempt 1, above the retrying rank. */
	job(e, "t1", RQ_KEY_DELAYED, 16 + 5, 14);
	testredis_do("HSET %s%s attempts 1 status retrying", RQ_KEY_JOB, e);
	cancel(e, "t1", &res);
	assert_int_equal(res.outcome, GW_CANCEL_DONE);
	assert_true(res.attempt == 1);
	assert_int_equal(testredis_num("HGET %s%s status_rank", RQ_KEY_JOB, e),
	    16 + 8);

	/* Leased by a dispatcher, not yet claimed by a telserver: the lease
	 * goes (no claim can take it now) and its attempt is given back. */
	job(f, "t1", RQ_KEY_INFLIGHT, 1, 15);
	testredis_do("HSET %s%s attempts 1", RQ_KEY_JOB, f);
	cancel(f, "t1", &res);
	assert_int_equal(res.outcome, GW_CANCEL_DONE);
	assert_true(res.attempt == 0);
	assert_int_equal(testredis_num("ZSCORE %s %s", RQ_KEY_INFLIGHT, f),
	    -1);
	assert_int_equal(testredis_num("HGET %s%s attempts", RQ_KEY_JOB, f),
	    0);
	assert_int_equal(testredis_num("HGET %s%s status_rank", RQ_KEY_JOB, f),
	    8);

	/* Handed to rq:hours by a take (its calling hours closed): waiting
	 * for the scheduler to plan it again, still cancelable. */
	job(g, "t1", RQ_KEY_HOURS, 1, 16);
	cancel(g, "t1", &res);
	assert_int_equal(res.outcome, GW_CANCEL_DONE);
	assert_int_equal(testredis_num("ZSCORE %s %s", RQ_KEY_HOURS, g), -1);
	assert_int_equal(testredis_num("HGET %s%s status_rank", RQ_KEY_JOB, g),
	    8);
}

static void
test_patch_parse(void **state)
{
	static const struct { const char *body, *field; int status; } bad[] = {
		{ "", NULL, 400 },
		{ "[]", NULL, 400 },
		{ "{}", NULL, 400 },
		{ "{\"priority\":10}", "priority", 400 },
		{ "{\"priority\":\"7\"}", "priority", 400 },
		{ "{\"not_before\":\"soon\"}", "not_before", 400 },
		{ "{\"not_before\":1}", "not_before", 400 },
		{ "{\"to\":\"+15551234567\"}", "to", 400 },
		{ "{\"priority\":1,\"priority\":2}", NULL, 400 },
	};
	struct gw_patch p;
	struct gw_error err;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		assert_int_equal(gw_patch_parse(bad[i].body,
		    strlen(bad[i].body), 1024, &p, &err), -1);
		assert_int_equal(err.status, bad[i].status);
		assert_string_equal(err.field, bad[i].field ? bad[i].field :
		    "");
	}
	assert_int_equal(gw_patch_parse("{\"priority\":0}", 14, 1024, &p,
	    &err), 0);
	assert_true(p.has_priority && p.priority == 0 && !p.has_not_before);
	assert_int_equal(gw_patch_parse("{\"not_before\":"
	    "\"2026-11-22T10:00:00\",\"priority\":9}", 49, 1024, &p, &err),
	    0);
	assert_true(p.has_priority && p.priority == 9 && p.has_not_before &&
	    p.not_before_local);
	assert_true(p.not_before_ms == 1795341600000ULL);
	assert_int_equal(gw_patch_parse("{\"priority\":1}", 14, 10, &p, &err),
	    -1);
	assert_int_equal(err.status, 413);
}

static void
patched(const struct gw_patch_result *r, void *arg)
{
	struct result *res = arg;
	size_t i;

	res->rc = r->rc;
	res->outcome = r->outcome;
	for (i = 0; i + 1 < r->njob; i += 2)
		if (!strcmp(r->job[i], "priority"))
			snprintf(res->status, sizeof(res->status), "%s",
			    r->job[i + 1]);
	res->done = 1;
}

static void
patch(const char *id, const char *tenant, long long nb, int prio,
    uint64_t now, struct result *res)
{
	struct gw_patch p;

	memset(&p, 0, sizeof(p));
	if (nb >= 0) {
		p.has_not_before = 1;
		p.not_before_ms = (uint64_t)nb;
		snprintf(p.policy, sizeof(p.policy), "accept");
	}
	if (prio >= 0) {
		p.has_priority = 1;
		p.priority = prio;
	}
	memset(res, 0, sizeof(*res));
	assert_int_equal(gw_store_patch(st, id, tenant, &p, now, patched,
	    res), 0);
	run_until(&res->done);
	assert_int_equal(res->rc, 0);
}

/* The score of id in zset exactly as Redis gives it ("" when absent). */
static void
assert_zscore(const char *zset, const char *id, const char *want)
{
	redisReply *r = testredis_cmd("ZSCORE %s %s", zset, id);

	assert_non_null(r);
	assert_string_equal(r->type == REDIS_REPLY_STRING ? r->str : "",
	    want);
	freeReplyObject(r);
}

/* PATCH: re-scored where the job waits; refused once it has left. */
static void
test_patch_live(void **state)
{
	const char *a = "c_0000000000000000000000a1";
	const char *b = "c_0000000000000000000000b1";
	const char *c = "c_0000000000000000000000c1";
	const char *d = "c_0000000000000000000000d1";
	const char *e = "c_0000000000000000000000e1";
	const uint64_t now = 10000000;
	struct result res;

	job(a, "p1", RQ_KEY_DELAYED, 0, 20000000);	/* due later */
	testredis_do("ZADD %sp1 20000000 %s", RQ_KEY_ACTIVE, a);
	job(b, "p1", RQ_KEY_READY, 1, 0);		/* due, scored below */
	testredis_do("ZADD %s %llu %s", RQ_KEY_READY,
	    (unsigned long long)(9000000 - 5 * RQ_PRIORITY_STEP_MS), b);
	job(c, "p1", NULL, 18, 0);			/* dispatched */
	job(d, "p1", NULL, 6, 0);			/* completed */

	patch(a, "p2", -1, 7, now, &res);		/* another tenant's */
	assert_int_equal(res.outcome, GW_PATCH_NOT_FOUND);
	assert_int_equal(testredis_num("HGET %s%s priority", RQ_KEY_JOB, a),
	    5);

	/* priority only: stays in rq:delayed at its time, with the new
	 * priority's tie-break ((5 - 7) / 16) */
	patch(a, "p1", -1, 7, now, &res);
	assert_int_equal(res.outcome, GW_PATCH_DONE);
	assert_string_equal(res.status, "7");
	assert_zscore(RQ_KEY_DELAYED, a, "19999999.875");
	/* a new time, past or future, for a delayed job: rq:delayed, so the
	 * scheduler releases it (and reports scheduled) */
	patch(a, "p1", 30000000, -1, now, &res);
	assert_zscore(RQ_KEY_DELAYED, a, "29999999.875");	/* priority 7 */
	assert_int_equal(testredis_num("HGET %s%s not_before_ms", RQ_KEY_JOB,
	    a), 30000000);
	/* its max_concurrent slot counts from the new time */
	assert_int_equal(testredis_num("ZSCORE %sp1 %s", RQ_KEY_ACTIVE, a),
	    30000000);
	assert_int_equal(testredis_num("ZSCORE %sp1 %s", RQ_KEY_ACTIVE, b),
	    -1);
	assert_string_equal(res.status, "7");
	patch(a, "p1", now, -1, now, &res);
	assert_zscore(RQ_KEY_DELAYED, a, "9999999.875");	/* now, 7 */
	assert_int_equal(testredis_num("ZSCORE %s %s", RQ_KEY_READY, a), -1);

	/* a ready job's new priority: the score of its due time (9000000)
	 * with the new ageing credit */
	patch(b, "p1", -1, 9, now, &res);
	assert_int_equal(res.outcome, GW_PATCH_DONE);
	assert_int_equal(testredis_num("ZSCORE %s %s", RQ_KEY_READY, b),
	    9000000 - 9 * RQ_PRIORITY_STEP_MS);
	/* a time already past (the gateway makes it now) does not move a
	 * ready job: it keeps its due time, and so its place */
	patch(b, "p1", now, -1, now, &res);
	assert_int_equal(res.outcome, GW_PATCH_DONE);
	assert_int_equal(testredis_num("ZSCORE %s %s", RQ_KEY_READY, b),
	    9000000 - 9 * RQ_PRIORITY_STEP_MS);
	assert_int_equal(testredis_num("HGET %s%s not_before_ms", RQ_KEY_JOB,
	    b), 0);
	/* ... and a later time takes it back to rq:delayed */
	patch(b, "p1", 40000000, -1, now, &res);
	assert_int_equal(testredis_num("ZSCORE %s %s", RQ_KEY_READY, b), -1);
	assert_zscore(RQ_KEY_DELAYED, b, "39999999.75");	/* priority 9 */

	/* not_after: the new time must come before it */
	testredis_do("HSET %s%s not_after_ms 50000000", RQ_KEY_JOB, b);
	patch(b, "p1", 50000000, -1, now, &res);
	assert_int_equal(res.outcome, GW_PATCH_NOT_AFTER);
	assert_zscore(RQ_KEY_DELAYED, b, "39999999.75");	/* unchanged */

	patch(c, "p1", -1, 1, now, &res);
	assert_int_equal(res.outcome, GW_PATCH_STARTED);
	assert_int_equal(testredis_num("HGET %s%s priority", RQ_KEY_JOB, c),
	    5);
	patch(d, "p1", -1, 1, now, &res);
	assert_int_equal(res.outcome, GW_PATCH_ENDED);

	/* In rq:hours (a take found its hours closed): a new priority
	 * leaves it there, for the scheduler to plan with; a new time
	 * takes it to rq:delayed. */
	job(e, "p1", RQ_KEY_HOURS, 1, 9500000);
	patch(e, "p1", -1, 2, now, &res);
	assert_int_equal(res.outcome, GW_PATCH_DONE);
	assert_string_equal(res.status, "2");
	assert_int_equal(testredis_num("ZSCORE %s %s", RQ_KEY_HOURS, e),
	    9500000);
	patch(e, "p1", 30000000, -1, now, &res);
	assert_int_equal(res.outcome, GW_PATCH_DONE);
	assert_int_equal(testredis_num("ZSCORE %s %s", RQ_KEY_HOURS, e), -1);
	assert_zscore(RQ_KEY_DELAYED, e, "30000000.1875");	/* priority 2 */
}

static void
listed(int rc, json_t *body, void *arg)
{
	struct result *res = arg;

	res->rc = rc;
	res->body = body ? json_incref(body) : NULL;
	res->done = 1;
}

static json_t *
list(const char *tenant, const char *query)
{
	struct gw_list_query q;
	struct gw_error err;
	struct result res;

	assert_int_equal(gw_list_query_parse(query, &q, &err), 0);
	memset(&res, 0, sizeof(res));
	assert_int_equal(gw_store_list(st, tenant, &q, listed, &res), 0);
	run_until(&res.done);
	assert_int_equal(res.rc, 0);
	assert_non_null(res.body);
	return res.body;
}

static void
test_list_live(void **state)
{
	char id[RQ_ID_LEN + 1], qs[256], seen[130][RQ_ID_LEN + 1];
	const char *cur;
	json_t *b, *calls;
	size_t i, n = 0, pages = 0;
	int k;

	/* 125 calls, 5 of them sharing one millisecond, one of another
	 * tenant in between. */
	for (k = 0; k < 125; k++) {
		snprintf(id, sizeof(id), "c_%024x", 0x100 + k);
		job(id, "lt", k % 3 ? RQ_KEY_DELAYED : NULL, k % 3 ? 0 : 6,
		    k < 5 ? 1000 : 1000 + (uint64_t)k);
	}
	job("c_0000000000000000000fffff", "other", NULL, 0, 1050);
	snprintf(qs, sizeof(qs), "limit=50");
	do {
		b = list("lt", qs);
		calls = json_object_get(b, "calls");
		for (i = 0; i < json_array_size(calls); i++) {
			const char *cid = json_string_value(json_object_get(
			    json_array_get(calls, i), "id"));
			size_t j;

			assert_non_null(cid);
			for (j = 0; j < n; j++)
				assert_string_not_equal(seen[j], cid);
			assert_true(n < 130);
			snprintf(seen[n++], sizeof(seen[0]), "%s", cid);
		}
		pages++;
		assert_int_equal(json_array_size(calls),
		    pages < 3 ? 50 : 25);
		cur = json_string_value(json_object_get(b, "next_cursor"));
		if (cur != NULL)
			snprintf(qs, sizeof(qs), "limit=50&cursor=%s", cur);
		json_decref(b);
	} while (cur != NULL && pages < 10);
	assert_int_equal(pages, 3);
	assert_int_equal(n, 125);
	/* newest first: the first is the last created */
	assert_string_equal(seen[0], "c_00000000000000000000017c");

	/* status filter: 42 completed (k % 3 == 0) */
	b = list("lt", "status=completed&limit=200");
	assert_int_equal(json_array_size(json_object_get(b, "calls")), 42);
	assert_true(json_is_null(json_object_get(b, "next_cursor")));
	json_decref(b);
	/* since: the calls created at 1100 ms or after (k >= 100) */
	b = list("lt", "since=1970-01-01T00:00:01.100Z&limit=200");
	assert_int_equal(json_array_size(json_object_get(b, "calls")), 25);
	json_decref(b);
	b = list("nobody", NULL);
	assert_int_equal(json_array_size(json_object_get(b, "calls")), 0);
	json_decref(b);

	/* an incoming call (rq_job_inbound) says so; the others are ours */
	job("c_000000000000000000000aaa", "in", NULL, 6, 2000);
	job("c_000000000000000000000bbb", "in", NULL, 6, 2001);
	testredis_do("HSET %sc_000000000000000000000bbb direction inbound "
	    "number +15550100", RQ_KEY_JOB);
	b = list("in", NULL);
	calls = json_object_get(b, "calls");
	assert_int_equal(json_array_size(calls), 2);
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(calls, 0), "direction")), "inbound");
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(calls, 1), "direction")), "outbound");
	json_decref(b);
}

/* Runs the loop for about ms: what the store sends is written. */
static void
run_for(int ms)
{
	struct timespec ts = { 0, 5 * 1000 * 1000 };
	int i;

	for (i = 0; i < ms / 5; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		nanosleep(&ts, NULL);
	}
}

/* The store's link lost after a cancel or a change was sent: the answer
 * says it may or may not have been made (rc -2), not that nothing was,
 * since the script may have run, whole.  (Redis holds the script while
 * CLIENT PAUSE WRITE lasts, so the link goes before its answer.) */
static void
test_unconfirmed(void **state)
{
	const char *a = "c_0000000000000000000000c1";
	struct result res;
	struct gw_patch p;
	int up = 0, i;

	job(a, "t1", RQ_KEY_DELAYED, 0, 10);
	memset(&res, 0, sizeof(res));
	testredis_do("CLIENT PAUSE 5000 WRITE");
	assert_int_equal(gw_store_cancel(st, a, "t1", 1000, canceled, &res),
	    0);
	run_for(100);
	assert_false(res.done);		/* sent, held by the pause */
	testredis_do("CLIENT KILL TYPE normal SKIPME yes");
	testredis_do("CLIENT UNPAUSE");
	run_until(&res.done);
	assert_int_equal(res.rc, -2);

	for (i = 0; i < 400 && !up; i++) {
		run_for(5);
		up = gw_store_connected(st);
	}
	assert_true(up);
	memset(&p, 0, sizeof(p));
	p.has_priority = 1;
	p.priority = 7;
	memset(&res, 0, sizeof(res));
	testredis_do("CLIENT PAUSE 5000 WRITE");
	assert_int_equal(gw_store_patch(st, a, "t1", &p, 1000, patched, &res),
	    0);
	run_for(100);
	assert_false(res.done);
	testredis_do("CLIENT KILL TYPE normal SKIPME yes");
	testredis_do("CLIENT UNPAUSE");
	run_until(&res.done);
	assert_int_equal(res.rc, -2);
}

int
main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_cursor),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_cancel_parse_shapes),
		cmocka_unit_test(test_patch_parse),
	};
	const struct CMUnitTest live[] = {
		cmocka_unit_test(test_cancel_live),
		cmocka_unit_test(test_patch_live),
		cmocka_unit_test(test_list_live),
		cmocka_unit_test(test_unconfirmed),
	};
	int rc;

	log_init("test_calls_api", 0);
	rc = cmocka_run_group_tests(pure, NULL, NULL);
	rc += cmocka_run_group_tests(live, setup_live, teardown_live);
	return rc;
}
