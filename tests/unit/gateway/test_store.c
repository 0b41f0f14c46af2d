/* Unit tests of gateway/store.c and the create script of
 * gateway/policy_store.c: the read reply's shape checks (made-up replies,
 * so ASan sees any double free), and create/get against a real
 * redis-server on a free port: the policy checks and the job's creation
 * are one script (one command), and an idempotency key is only answered
 * with a call that exists. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
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

/* A string reply of a command ("" for anything else), in a static buffer
 * good until the next call. */
static const char *
testredis_str(const char *fmt, ...)
{
	static char buf[512];
	struct timeval tv = { 1, 0 };
	redisContext *c;
	redisReply *r = NULL;
	va_list ap;

	buf[0] = '\0';
	c = redisConnectWithTimeout("127.0.0.1", testredis_port, tv);
	if (c != NULL && !c->err) {
		va_start(ap, fmt);
		r = redisvCommand(c, fmt, ap);
		va_end(ap);
	}
	if (r != NULL && r->type == REDIS_REPLY_STRING)
		snprintf(buf, sizeof(buf), "%s", r->str);
	if (r != NULL)
		freeReplyObject(r);
	if (c != NULL)
		redisFree(c);
	return buf;
}

/* Made-up replies: a flat array of n strings, an integer, an error. */
static redisReply	 strs[8], *strp[8];
static char		*strv[] = { "a", "1", "b", "2", "c", "3", "d", "4" };

static void
mk_str(redisReply *r, char *s)
{
	memset(r, 0, sizeof(*r));
	r->type = REDIS_REPLY_STRING;
	r->str = s;
	r->len = strlen(s);
}

static void
mk_array(redisReply *r, redisReply **el, size_t n)
{
	memset(r, 0, sizeof(*r));
	r->type = REDIS_REPLY_ARRAY;
	r->element = el;
	r->elements = n;
}

/* The job's fields that begin with a digit are its timeline; a legacy
 * rq:timeline: hash adds the entries the job does not have. */
static void
test_parse_splits_timeline(void **state)
{
	static char *jv[] = { "to", "+15551234567", "0:queued", "{\"q\":1}",
	    "status", "completed", "1:completed", "{\"c\":1}" };
	static char *lv[] = { "0:queued", "{\"old\":1}", "0:scheduled",
	    "{\"s\":1}" };
	redisReply js[8], ls[4], *jp[8], *lp[4], job_h, old_h, top, *el[2];
	const char **job, **tl;
	size_t njob, ntl, i;

	(void)state;
	for (i = 0; i < 8; i++) {
		mk_str(&js[i], jv[i]);
		jp[i] = &js[i];
	}
	for (i = 0; i < 4; i++) {
		mk_str(&ls[i], lv[i]);
		lp[i] = &ls[i];
	}
	mk_array(&job_h, jp, 8);
	mk_array(&old_h, lp, 4);
	el[0] = &job_h;
	el[1] = &old_h;
	mk_array(&top, el, 2);
	assert_int_equal(gw_store_parse_get(&top, &job, &njob, &tl, &ntl), 0);
	assert_int_equal(njob, 4);
	assert_string_equal(job[0], "to");
	assert_string_equal(job[2], "status");
	assert_string_equal(job[3], "completed");
	assert_int_equal(ntl, 6);
	assert_string_equal(tl[0], "0:queued");
	assert_string_equal(tl[1], "{\"q\":1}");	/* the job's, not the old */
	assert_string_equal(tl[2], "1:completed");
	assert_string_equal(tl[4], "0:scheduled");
	assert_string_equal(tl[5], "{\"s\":1}");
	free(job);
	free(tl);

	/* no job, only a legacy timeline: no job (the API's 404) */
	mk_array(&job_h, jp, 0);
	assert_int_equal(gw_store_parse_get(&top, &job, &njob, &tl, &ntl), 0);
	assert_int_equal(njob, 0);
	assert_int_equal(ntl, 4);
	free(job);
	free(tl);
}

static void
test_parse_shapes(void **state)
{
	redisReply top, good, bad, odd, err, *el[3];
	const char **job, **tl;
	size_t njob, ntl, i;

	for (i = 0; i < 8; i++) {
		mk_str(&strs[i], strv[i]);
		strp[i] = &strs[i];
	}
	mk_array(&good, strp, 4);
	mk_array(&odd, strp, 3);
	memset(&bad, 0, sizeof(bad));
	bad.type = REDIS_REPLY_INTEGER;
	memset(&err, 0, sizeof(err));
	err.type = REDIS_REPLY_ERROR;
	err.str = "ERR boom";

	/* Good shape: two flat arrays pointing into the reply. */
	el[0] = &good;
	el[1] = &good;
	mk_array(&top, el, 2);
	assert_int_equal(gw_store_parse_get(&top, &job, &njob, &tl, &ntl), 0);
	assert_int_equal(njob, 4);
	assert_int_equal(ntl, 4);
	assert_string_equal(job[2], "b");
	assert_string_equal(tl[3], "2");
	free(job);
	free(tl);

	/* The job parses, the timeline does not: the job array was freed
	 * twice before (ASan reports it). */
	el[1] = &bad;
	assert_int_equal(gw_store_parse_get(&top, &job, &njob, &tl, &ntl), -1);
	assert_null(job);
	assert_null(tl);
	el[1] = &odd;
	assert_int_equal(gw_store_parse_get(&top, &job, &njob, &tl, &ntl), -1);
	assert_null(job);
	el[1] = &good;
	el[0] = &err;
	assert_int_equal(gw_store_parse_get(&top, &job, &njob, &tl, &ntl), -1);
	assert_null(tl);

	/* A string among the pairs that is not one. */
	el[0] = &good;
	strp[1] = &bad;
	assert_int_equal(gw_store_parse_get(&top, &job, &njob, &tl, &ntl), -1);
	strp[1] = &strs[1];

	/* Wrong outer shape. */
	assert_int_equal(gw_store_parse_get(NULL, &job, &njob, &tl, &ntl), -1);
	assert_int_equal(gw_store_parse_get(&err, &job, &njob, &tl, &ntl), -1);
	el[2] = &good;
	mk_array(&top, el, 3);
	assert_int_equal(gw_store_parse_get(&top, &job, &njob, &tl, &ntl), -1);
	mk_array(&top, el, 1);
	assert_int_equal(gw_store_parse_get(&top, &job, &njob, &tl, &ntl), -1);

	/* No such job: two empty arrays. */
	mk_array(&good, strp, 0);
	el[0] = el[1] = &good;
	mk_array(&top, el, 2);
	assert_int_equal(gw_store_parse_get(&top, &job, &njob, &tl, &ntl), 0);
	assert_int_equal(njob, 0);
	assert_int_equal(ntl, 0);
}

/* The live tests: one store on the test server. */

struct result {
	int	 done;
	int	 rc;
	size_t	 njob, ntl;
	char	 to[64], tlfield[32];
	char	 replay_id[RQ_ID_LEN + 1];
	char	 code[32];
};

/* Runs the loop until *flag is set, at most 5 s. */
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

static void
created(const struct gw_policy_verdict *v, void *arg)
{
	struct result *res = arg;

	res->rc = v->rc;
	snprintf(res->replay_id, sizeof(res->replay_id), "%s", v->replay_id);
	snprintf(res->code, sizeof(res->code), "%s", v->err.code);
	res->done = 1;
}

static void
got(int rc, const char *const *job, size_t njob, const char *const *tl,
    size_t ntl, void *arg)
{
	struct result *res = arg;
	size_t i;

	res->rc = rc;
	res->njob = njob;
	res->ntl = ntl;
	for (i = 0; i + 1 < njob; i += 2)
		if (strcmp(job[i], "to") == 0)
			snprintf(res->to, sizeof(res->to), "%s", job[i + 1]);
	if (ntl > 0)
		snprintf(res->tlfield, sizeof(res->tlfield), "%s", tl[0]);
	res->done = 1;
}

/* A tenant with the config's defaults and its own retry delays, without
 * limits unless the test sets them. */
static void
tenant_init(struct rq_tenant *t, const char *name)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->max_attempts = 3;
	t->retention_days = RQ_CALL_TTL_DAYS;
	t->retry_busy_attempts = 4;
	t->retry_busy_delay_s = 61;
	t->retry_no_answer_attempts = 2;
	t->retry_no_answer_delay_s = 301;
	t->retry_network_attempts = 5;
	t->retry_network_delay_s = 31;
}

/* Runs the create script for call id of t (number: the E.164 the DNC
 * lists are checked for, "" none; idem: Idempotency-Key or NULL). */
static void
create_as(const char *id, const struct rq_tenant *t, const char *number,
    const char *idem, struct result *res)
{
	struct gw_policy pol;
	struct gw_call call;

	memset(&call, 0, sizeof(call));
	call.to = "+15551234567";
	call.say = "Hello";
	call.caller_id = "+15550000000";
	call.priority = 5;
	call.not_before_ms = 1700000000000ULL;
	call.idem_key = (char *)idem;
	memset(&pol, 0, sizeof(pol));
	snprintf(pol.number, sizeof(pol.number), "%s", number);
	memset(res, 0, sizeof(*res));
	assert_int_equal(gw_policy_store_create(st, t, &call, &pol, id,
	    1700000000000ULL, created, res), 0);
	run_until(&res->done);
}

static void
create(const char *id, const char *tenant, struct result *res)
{
	struct rq_tenant t;

	tenant_init(&t, tenant);
	create_as(id, &t, "", NULL, res);
}

static void
test_create_get(void **state)
{
	struct result res;

	create("c0000000000000000000001", "demo", &res);
	assert_int_equal(res.rc, 0);
	assert_int_equal(testredis_num("ZSCORE %s c0000000000000000000001",
	    RQ_KEY_DELAYED), 1700000000000LL);
	assert_int_equal(testredis_num("ZSCORE %sdemo c0000000000000000000001",
	    RQ_KEY_TENANT_CALLS), 1700000000000LL);
	/* max_attempts is the default: not written (common/keys.h) */
	assert_int_equal(testredis_num("HEXISTS %sc0000000000000000000001 "
	    "max_attempts", RQ_KEY_JOB), 0);
	/* a new job's rank, attempts and update time are implied */
	assert_int_equal(testredis_num("HEXISTS %sc0000000000000000000001 "
	    "status_rank", RQ_KEY_JOB), 0);
	assert_int_equal(testredis_num("HEXISTS %sc0000000000000000000001 "
	    "attempts", RQ_KEY_JOB), 0);
	assert_int_equal(testredis_num("HEXISTS %sc0000000000000000000001 "
	    "callback_url", RQ_KEY_JOB), 0);
	/* its timeline entry, in the job (common/keys.h), no key of its own */
	assert_int_equal(testredis_num("HEXISTS %sc0000000000000000000001 "
	    "0:queued", RQ_KEY_JOB), 1);
	assert_int_equal(testredis_num("EXISTS %sc0000000000000000000001",
	    RQ_KEY_TIMELINE), 0);
	assert_string_equal(testredis_str("HGET %sc0000000000000000000001 "
	    "status", RQ_KEY_JOB), "queued");
	assert_string_equal(testredis_str("HGET %sc0000000000000000000001 "
	    "retry_busy", RQ_KEY_JOB), "4:61000");
	assert_string_equal(testredis_str("HGET %sc0000000000000000000001 "
	    "retry_no_answer", RQ_KEY_JOB), "2:301000");
	assert_string_equal(testredis_str("HGET %sc0000000000000000000001 "
	    "retry_network", RQ_KEY_JOB), "5:31000");
	assert_int_equal(testredis_num("HEXISTS %sc0000000000000000000001 "
	    "not_after_ms", RQ_KEY_JOB), 0);
	/* EVENT queued, in the outbox, written by the same script */
	assert_int_equal(testredis_num("XLEN %s", RQ_KEY_EVENTS), 1);
	assert_string_equal(testredis_str("EVAL %s 1 %s",
	    "local e = redis.call('XRANGE', KEYS[1], '-', '+')[1][2] "
	    "local t = {} for i = 1, #e, 2 do t[#t + 1] = e[i] .. '=' .. "
	    "e[i + 1] end return table.concat(t, ' ')", RQ_KEY_EVENTS),
	    "call_id=c0000000000000000000001 attempt=0 status=queued "
	    "ts_ms=1700000000000 tenant=demo to=+15551234567 "
	    RQ_EVENT_MIRRORED "=1");

	memset(&res, 0, sizeof(res));
	assert_int_equal(gw_store_get(st, "c0000000000000000000001", got,
	    &res), 0);
	run_until(&res.done);
	assert_int_equal(res.rc, 0);
	assert_int_equal(res.njob, 2 * 12);
	assert_string_equal(res.to, "+15551234567");
	assert_int_equal(res.ntl, 2);
	assert_string_equal(res.tlfield, "0:queued");

	memset(&res, 0, sizeof(res));
	assert_int_equal(gw_store_get(st, "c0000000000000000000404", got,
	    &res), 0);
	run_until(&res.done);
	assert_int_equal(res.rc, 0);
	assert_int_equal(res.njob, 0);
	assert_int_equal(res.ntl, 0);
}

/* The create script writes the queued event and its timeline entry itself,
 * for speed: they must be what emit() (common/keys.h) writes for the same
 * job, with and without a callback_url. */
static void
test_create_writes_what_emit_would(void **state)
{
	/* the entry of an id in rq:events as "f=v ...", call_id left out,
	 * then " | " and its timeline entry */
	static const char show[] =
	    "local out = {} "
	    "for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do "
	    "  local f = e[2] "
	    "  local t, mine = {}, false "
	    "  for i = 1, #f, 2 do "
	    "    if f[i] == 'call_id' then mine = f[i + 1] == ARGV[1] "
	    "    else t[#t + 1] = f[i] .. '=' .. f[i + 1] end "
	    "  end "
	    "  if mine then out[#out + 1] = table.concat(t, ' ') end "
	    "end "
	    "return table.concat(out, ';') .. ' | ' .. "
	    "  (redis.call('HGET', KEYS[2] .. ARGV[1], '0:queued') or 'nil')";
	/* a copy of job ARGV[1] as ARGV[2], its timeline left out, and
	 * emit()'s queued event for it */
	static const char copy_emit[] = RQ_LUA_EVENTS RQ_LUA_RUN_EVENTS
	    "local f, g = redis.call('HGETALL', KEYS[1] .. ARGV[1]), {} "
	    "for i = 1, #f, 2 do "
	    "  if f[i] == 'id' then f[i + 1] = ARGV[2] end "
	    "  if not string.find(f[i], '^%d') then "
	    "    g[#g + 1] = f[i]; g[#g + 1] = f[i + 1] "
	    "  end "
	    "end "
	    "redis.call('HSET', KEYS[1] .. ARGV[2], unpack(g)) "
	    "local j = redis.call('HMGET', KEYS[1] .. ARGV[2], 'tenant', 'to', "
	    "  'created_ms') "
	    "emit(KEYS[1] .. ARGV[2], { call_id = ARGV[2], attempt = 0, "
	    "  status = 'queued', ts_ms = tonumber(j[3]), tenant = j[1], "
	    "  to = j[2] }) "
	    "return 1";
	struct gw_policy pol;
	struct gw_call call;
	struct rq_tenant t;
	struct result res;
	char gw[512];
	int cb;

	for (cb = 0; cb <= 1; cb++) {
		const char *id = cb ? "c0000000000000000000e01" :
		    "c0000000000000000000e00";
		const char *copy = cb ? "c0000000000000000000e11" :
		    "c0000000000000000000e10";

		tenant_init(&t, "demo");
		memset(&call, 0, sizeof(call));
		call.to = "+15551234567";
		call.say = "Hello";
		call.priority = 5;
		call.not_before_ms = 1700000000000ULL;
		if (cb)
			call.callback_url = "https://example.com/hook";
		memset(&pol, 0, sizeof(pol));
		memset(&res, 0, sizeof(res));
		assert_int_equal(gw_policy_store_create(st, &t, &call, &pol, id,
		    1700000000123ULL, created, &res), 0);
		run_until(&res.done);
		assert_int_equal(res.rc, 0);
		snprintf(gw, sizeof(gw), "%s", testredis_str(
		    "EVAL %s 2 %s %s %s", show, RQ_KEY_EVENTS,
		    RQ_KEY_JOB, id));
		assert_string_equal(gw, cb ?
		    "attempt=0 status=queued ts_ms=1700000000123 tenant=demo "
		    "to=+15551234567 " RQ_EVENT_MIRRORED "=1 "
		    RQ_EVENT_CALLBACK "=1 | {\"status\":\"queued\","
		    "\"attempt\":0,\"ts_ms\":1700000000123}" :
		    "attempt=0 status=queued ts_ms=1700000000123 tenant=demo "
		    "to=+15551234567 " RQ_EVENT_MIRRORED "=1 | "
		    "{\"status\":\"queued\",\"attempt\":0,"
		    "\"ts_ms\":1700000000123}");
		assert_int_equal(testredis_num("EVAL %s 1 %s %s %s", copy_emit,
		    RQ_KEY_JOB, id, copy), 1);
		assert_string_equal(testredis_str("EVAL %s 2 %s %s %s", show,
		    RQ_KEY_EVENTS, RQ_KEY_JOB, copy), gw);
	}
}

/* A write that fails inside Redis answers -1, does not release the job to
 * the scheduler, and leaves the shared connection usable (no transaction
 * left open for the next request to join). */
static void
test_create_fails_cleanly(void **state)
{
	struct result res;
	long long events = testredis_num("XLEN %s", RQ_KEY_EVENTS);

	testredis_do("SET %sbroken x", RQ_KEY_TENANT_CALLS);
	create("c0000000000000000000002", "broken", &res);
	assert_int_equal(res.rc, -3);
	assert_string_equal(res.code, "unavailable");
	assert_int_equal(testredis_num("ZSCORE %s c0000000000000000000002",
	    RQ_KEY_DELAYED), -1);
	/* no EVENT queued for the job that was refused */
	assert_int_equal(testredis_num("XLEN %s", RQ_KEY_EVENTS), events);

	create("c0000000000000000000003", "demo", &res);
	assert_int_equal(res.rc, 0);
	assert_int_equal(testredis_num("ZSCORE %s c0000000000000000000003",
	    RQ_KEY_DELAYED), 1700000000000LL);
	assert_true(gw_store_connected(st));
}

/* Where gateways before the hashes a day stored an Idempotency-Key of a
 * tenant, still read. */
static void
idem_key_of(char *out, size_t outlen, const char *tenant, const char *key)
{
	char hex[65];

	rq_sha256_hex(key, strlen(key), hex);
	snprintf(out, outlen, "%s%s:%s", RQ_KEY_IDEM, tenant, hex);
}

/* The call id stored for an Idempotency-Key of a tenant ("none": none;
 * "": the lookup failed): its field in the tenant's hash of the day, by
 * Redis's clock, or of the day before (a test run across midnight). */
static const char *
idem_stored(const char *tenant, const char *key)
{
	char hex[65];

	rq_sha256_hex(key, strlen(key), hex);
	return testredis_str("EVAL %s 0 %s%s:86400: %s",
	    "local d = math.floor(tonumber(redis.call('TIME')[1]) / 86400) "
	    "return redis.call('HGET', ARGV[1] .. d, ARGV[2]) or "
	    "redis.call('HGET', ARGV[1] .. (d - 1), ARGV[2]) or 'none'",
	    RQ_KEY_IDEM, tenant, hex);
}

/*
 * The policy checks and the job's creation are one command: watched with
 * MONITOR, the gateway sends exactly one EVAL for an accepted request with
 * an idempotency key, do-not-call lists to check and rate and concurrency
 * limits, and that EVAL did everything: the job, its event, rq:delayed,
 * the slots and the idempotency key.  (With a policy script and then a
 * create script, the gateway sent two, and a gateway killed between them
 * left a key pointing to no job.)
 */
static void
test_one_script(void **state)
{
	struct timeval tv = { 2, 0 };
	const char *id = "c_0000000000000000000000a1";
	char kidem[256], *cmd;
	struct rq_tenant t;
	struct result res;
	redisContext *m;
	redisReply *r;
	int commands = 0, evals = 0, inner = 0, i;

	tenant_init(&t, "solo");
	t.rate_per_second = 100;
	t.rate_per_day = 1000;
	t.max_concurrent = 5;
	m = redisConnectWithTimeout("127.0.0.1", testredis_port, tv);
	assert_non_null(m);
	assert_int_equal(m->err, 0);
	assert_int_equal(redisSetTimeout(m, tv), REDIS_OK);
	r = redisCommand(m, "MONITOR");
	assert_non_null(r);
	freeReplyObject(r);

	create_as(id, &t, "+15551234567", "key-one", &res);
	assert_int_equal(res.rc, 0);
	testredis_do("PING");		/* the end of what we watch */

	for (i = 0; i < 1000; i++) {
		assert_int_equal(redisGetReply(m, (void **)&r), REDIS_OK);
		assert_int_equal(r->type, REDIS_REPLY_STATUS);
		if (strstr(r->str, "\"PING\"") != NULL) {
			freeReplyObject(r);
			break;
		}
		/* "<time> [0 <client>] "CMD" ...": scripts' commands show
		 * [0 lua] */
		if (strstr(r->str, " lua] ") != NULL)
			inner++;
		else {
			commands++;
			cmd = strchr(r->str, ']');
			/* EVALSHA: the script is cached since the tests
			 * above (test_noscript_fallback has the EVAL) */
			if (cmd != NULL && strncmp(cmd, "] \"EVALSHA\"", 11) == 0)
				evals++;
		}
		freeReplyObject(r);
	}
	redisFree(m);
	assert_int_equal(commands, 1);
	assert_int_equal(evals, 1);
	assert_true(inner > 5);

	/* ... and that one command did all of it: the key in the tenant's
	 * hash of the day, and no key of its own */
	assert_string_equal(idem_stored("solo", "key-one"), id);
	idem_key_of(kidem, sizeof(kidem), "solo", "key-one");
	assert_int_equal(testredis_num("EXISTS %s", kidem), 0);
	assert_string_equal(testredis_str("HGET %s%s status", RQ_KEY_JOB, id),
	    "queued");
	assert_int_equal(testredis_num("ZSCORE %s %s", RQ_KEY_DELAYED, id),
	    1700000000000LL);
	assert_int_equal(testredis_num("ZCARD %ssolo", RQ_KEY_ACTIVE), 1);
	assert_int_equal(testredis_num("EVAL %s 0", "local n = 0 for _, k in "
	    "ipairs(redis.call('KEYS', 'rq:rate:solo:*')) do n = n + "
	    "tonumber(redis.call('GET', k)) end return n"), 2);
	assert_int_equal(testredis_num("EVAL %s 1 %s %s", "local n = 0 for _, "
	    "e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do if "
	    "e[2][2] == ARGV[1] then n = n + 1 end end return n",
	    RQ_KEY_EVENTS, id), 1);

	/* The same key again: the first call's id, nothing new. */
	create_as("c_0000000000000000000000a2", &t, "+15551234567", "key-one",
	    &res);
	assert_int_equal(res.rc, 1);
	assert_string_equal(res.replay_id, id);
	assert_int_equal(testredis_num("EXISTS %sc_0000000000000000000000a2",
	    RQ_KEY_JOB), 0);
	assert_int_equal(testredis_num("ZCARD %ssolo", RQ_KEY_ACTIVE), 1);
}

/* The commands (not the scripts' own) MONITOR shows while one create runs,
 * as "CMD CMD ..." (the first word of each). */
static void
create_watched(const char *id, const char *tenant, struct result *res,
    char *cmds, size_t cmdslen)
{
	struct timeval tv = { 2, 0 };
	struct rq_tenant t;
	redisContext *m;
	redisReply *r;
	const char *cmd;
	size_t len;
	int i;

	tenant_init(&t, tenant);
	m = redisConnectWithTimeout("127.0.0.1", testredis_port, tv);
	assert_non_null(m);
	assert_int_equal(m->err, 0);
	assert_int_equal(redisSetTimeout(m, tv), REDIS_OK);
	r = redisCommand(m, "MONITOR");
	assert_non_null(r);
	freeReplyObject(r);
	create_as(id, &t, "", NULL, res);
	testredis_do("PING");
	cmds[0] = '\0';
	for (i = 0; i < 1000; i++) {
		assert_int_equal(redisGetReply(m, (void **)&r), REDIS_OK);
		assert_int_equal(r->type, REDIS_REPLY_STATUS);
		if (strstr(r->str, "\"PING\"") != NULL) {
			freeReplyObject(r);
			break;
		}
		if (strstr(r->str, " lua] ") == NULL &&
		    (cmd = strstr(r->str, "] \"")) != NULL) {
			len = strcspn(cmd + 3, "\"");
			snprintf(cmds + strlen(cmds), cmdslen - strlen(cmds),
			    "%s%.*s", cmds[0] ? " " : "", (int)len, cmd + 3);
		}
		freeReplyObject(r);
	}
	redisFree(m);
}

/* Scripts go by EVALSHA; when Redis does not know the script (restarted,
 * SCRIPT FLUSH) the NOSCRIPT answer means it did not run, and the same
 * command goes again as EVAL: the job is stored once, and the next request
 * is one EVALSHA again.  A read (gw_store_get) falls back the same way. */
static void
test_noscript_fallback(void **state)
{
	struct result res;
	char cmds[256];

	testredis_do("SCRIPT FLUSH");
	create_watched("c0000000000000000000051", "demo", &res, cmds,
	    sizeof(cmds));
	assert_int_equal(res.rc, 0);
	assert_string_equal(cmds, "EVALSHA EVAL");
	assert_string_equal(testredis_str("HGET %sc0000000000000000000051 "
	    "status", RQ_KEY_JOB), "queued");
	assert_int_equal(testredis_num("EVAL %s 1 %s %s", "local n = 0 for _, "
	    "e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do if "
	    "e[2][2] == ARGV[1] then n = n + 1 end end return n",
	    RQ_KEY_EVENTS, "c0000000000000000000051"), 1);

	testredis_do("SCRIPT FLUSH");
	memset(&res, 0, sizeof(res));
	assert_int_equal(gw_store_get(st, "c0000000000000000000051", got,
	    &res), 0);
	run_until(&res.done);
	assert_int_equal(res.rc, 0);
	assert_string_equal(res.to, "+15551234567");

	create_watched("c0000000000000000000052", "demo", &res, cmds,
	    sizeof(cmds));
	assert_int_equal(res.rc, 0);
	assert_string_equal(cmds, "EVALSHA EVAL");
	create_watched("c0000000000000000000053", "demo", &res, cmds,
	    sizeof(cmds));
	assert_int_equal(res.rc, 0);
	assert_string_equal(cmds, "EVALSHA");
	assert_true(gw_store_connected(st));
}

/* A tenant's retention other than the default travels with the job as
 * ttl_ms (emit() makes it the job's TTL when the call ends); the default
 * is not written. */
static void
test_create_retention(void **state)
{
	struct result res;
	struct rq_tenant t;

	(void)state;
	testredis_do("FLUSHALL");
	tenant_init(&t, "brief");
	t.retention_days = 2;
	create_as("c0000000000000000000031", &t, "", NULL, &res);
	assert_int_equal(res.rc, 0);
	assert_string_equal(testredis_str("HGET %sc0000000000000000000031 "
	    "ttl_ms", RQ_KEY_JOB), "172800000");
	tenant_init(&t, "usual");
	create_as("c0000000000000000000032", &t, "", NULL, &res);
	assert_int_equal(res.rc, 0);
	assert_int_equal(testredis_num("HEXISTS %sc0000000000000000000032 "
	    "ttl_ms", RQ_KEY_JOB), 0);
}

/* A tenant's max_attempts and retry rules travel with the job only where
 * they differ from the defaults, which the scripts read an absent field
 * as; a finish then applies the default rule to a job without one. */
static void
test_create_default_rules(void **state)
{
	struct result res;
	struct rq_tenant t;

	(void)state;
	testredis_do("FLUSHALL");
	tenant_init(&t, "mixed");
	t.max_attempts = 5;
	t.retry_busy_attempts = RQ_RETRY_BUSY_ATTEMPTS;
	t.retry_busy_delay_s = RQ_RETRY_BUSY_DELAY_S;
	t.retry_network_attempts = RQ_RETRY_NETWORK_ATTEMPTS;
	t.retry_network_delay_s = RQ_RETRY_NETWORK_DELAY_S + 1;
	create_as("c0000000000000000000033", &t, "", NULL, &res);
	assert_int_equal(res.rc, 0);
	assert_int_equal(testredis_num("HGET %sc0000000000000000000033 "
	    "max_attempts", RQ_KEY_JOB), 5);
	assert_int_equal(testredis_num("HEXISTS %sc0000000000000000000033 "
	    "retry_busy", RQ_KEY_JOB), 0);
	/* the delay alone differs: the whole rule is written */
	assert_string_equal(testredis_str("HGET %sc0000000000000000000033 "
	    "retry_network", RQ_KEY_JOB), "3:31000");
	assert_string_equal(testredis_str("HGET %sc0000000000000000000033 "
	    "retry_no_answer", RQ_KEY_JOB), "2:301000");
}

/* A key whose call has left Redis (an e-mail's key outlives a call kept
 * for a short retention) is still a replay: the copy rings nobody. */
static void
test_idem_after_job_gone(void **state)
{
	const char *gone = "c_00000000000000000000dead";
	const char *id = "c_0000000000000000000000b1";
	char kidem[256];
	struct rq_tenant t;
	struct result res;
	long long events;

	tenant_init(&t, "orphan");
	idem_key_of(kidem, sizeof(kidem), "orphan", "retried-key");
	testredis_do("SET %s %s EX 600", kidem, gone);
	events = testredis_num("XLEN %s", RQ_KEY_EVENTS);

	create_as(id, &t, "+15551234567", "retried-key", &res);
	assert_int_equal(res.rc, 1);
	assert_string_equal(res.replay_id, gone);
	assert_string_equal(testredis_str("GET %s", kidem), gone);
	assert_int_equal(testredis_num("EXISTS %s%s", RQ_KEY_JOB, id), 0);
	assert_int_equal(testredis_num("XLEN %s", RQ_KEY_EVENTS), events);
}

/* A refusal writes nothing: no job, no event, no slot, no key. */
static void
test_refused_writes_nothing(void **state)
{
	const char *id = "c_0000000000000000000000c1";
	char kidem[256];
	struct rq_tenant t;
	struct result res;
	long long events;

	tenant_init(&t, "strict");
	t.rate_per_second = 100;
	t.max_concurrent = 5;
	events = testredis_num("XLEN %s", RQ_KEY_EVENTS);
	testredis_do("SADD %s +15557654321", RQ_KEY_DNC_CUSTOMER);
	create_as(id, &t, "+15557654321", "k-dnc", &res);
	assert_int_equal(res.rc, -1);
	assert_string_equal(res.code, "do_not_call");
	idem_key_of(kidem, sizeof(kidem), "strict", "k-dnc");
	assert_int_equal(testredis_num("EXISTS %s", kidem), 0);
	assert_string_equal(idem_stored("strict", "k-dnc"), "none");
	assert_int_equal(testredis_num("EXISTS %s%s", RQ_KEY_JOB, id), 0);
	assert_int_equal(testredis_num("ZSCORE %s %s", RQ_KEY_DELAYED, id),
	    -1);
	assert_int_equal(testredis_num("EXISTS %sstrict", RQ_KEY_ACTIVE), 0);
	assert_int_equal(testredis_num("EVAL %s 0", "return #redis.call("
	    "'KEYS', 'rq:rate:strict:*')"), 0);
	assert_int_equal(testredis_num("XLEN %s", RQ_KEY_EVENTS), events);
}

int
main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_parse_shapes),
		cmocka_unit_test(test_parse_splits_timeline),
	};
	const struct CMUnitTest live[] = {
		cmocka_unit_test(test_create_get),
		cmocka_unit_test(test_create_writes_what_emit_would),
		cmocka_unit_test(test_create_fails_cleanly),
		cmocka_unit_test(test_noscript_fallback),
		cmocka_unit_test(test_one_script),
		cmocka_unit_test(test_create_retention),
		cmocka_unit_test(test_create_default_rules),
		cmocka_unit_test(test_idem_after_job_gone),
		cmocka_unit_test(test_refused_writes_nothing),
	};
	int rc;

	log_init("test_store", 0);
	rc = cmocka_run_group_tests_name("parse", pure, NULL, NULL);
	rc += cmocka_run_group_tests_name("live", live, setup_live,
	    teardown_live);
	return rc;
}
