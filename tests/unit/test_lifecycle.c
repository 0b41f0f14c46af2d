/* common/lifecycle.c against a real redis-server: the claim succeeds only
 * for the current attempt whose lease is still in rq:inflight, a finish
 * acts once and applies the retry rules (classes, do-not-call, max
 * attempts, backoff with jitter, not_after), and interrupting a node
 * finishes its claimed attempts only once it is dead. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "keys.h"
#include "lifecycle.h"
#include "log.h"
#include "status.h"
#include "util.h"
#include "scheduler/testredis.h"

static struct rq_script *scripts[] = {
	&rq_claim_script, &rq_finish_script, &rq_interrupt_script,
	&rq_inbound_script
};
static struct rq_redis rl;

static int
setup(void **state)
{
	testredis_do("FLUSHALL");
	return 0;
}

/* A job as the gateway writes it and the dispatcher's take leaves it:
 * attempts = attempt, a lease in rq:inflight.  Extra field/value pairs
 * follow (NULL-terminated). */
static void
job_taken(const char *id, int attempt, ...)
{
	const char *f, *v;
	va_list ap;

	testredis_do("HSET rq:job:%s id %s tenant t1 to +15550001111 "
	    "max_attempts 10 attempts %d status scheduled status_rank 1",
	    id, id, attempt);
	va_start(ap, attempt);
	while ((f = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		testredis_do("HSET rq:job:%s %s %s", id, f, v);
	}
	va_end(ap);
	testredis_do("ZADD rq:inflight 9999999999999 %s", id);
}

/* The next attempt, as the dispatcher takes it: attempts + 1, a lease. */
static void
retake(const char *id)
{
	testredis_do("ZREM rq:delayed %s", id);
	testredis_do("HINCRBY rq:job:%s attempts 1", id);
	testredis_do("ZADD rq:inflight 9999999999999 %s", id);
}

/* How long from now (ms) the job of id stays in Redis: its score in
 * rq:ended, less the clock (-1: not there). */
static long long
ended_in(const char *id)
{
	long long at = testredis_num("ZSCORE rq:ended %s", id);

	return at < 0 ? -1 : at - (long long)rq_now_ms();
}

/* A field of the job hash, copied into buf ("" when absent). */
static const char *
job_field(const char *id, const char *field, char *buf, size_t len)
{
	redisReply *r = testredis_cmd("HGET rq:job:%s %s", id, field);

	buf[0] = '\0';
	if (r != NULL && r->type == REDIS_REPLY_STRING)
		snprintf(buf, len, "%s", r->str);
	if (r)
		freeReplyObject(r);
	return buf;
}

/* The timeline entry field (e.g. "1:completed") of id, in its job's hash,
 * parsed as JSON (NULL when absent or not JSON). */
static json_t *
timeline(const char *id, const char *field)
{
	redisReply *r = testredis_cmd("HGET rq:job:%s %s", id, field);
	json_t *o = NULL;

	if (r != NULL && r->type == REDIS_REPLY_STRING)
		o = json_loads(r->str, 0, NULL);
	if (r)
		freeReplyObject(r);
	return o;
}

/* How many commands Redis has run (scripts' redis.calls included), from
 * INFO commandstats, less the INFO calls themselves. */
static long long
commands_run(void)
{
	redisReply *r = testredis_cmd("INFO commandstats");
	const char *p;
	long long n = 0;

	assert_non_null(r);
	for (p = r->str; (p = strstr(p, "cmdstat_")) != NULL; p++) {
		const char *c = strstr(p, ":calls=");

		if (c != NULL && strncmp(p, "cmdstat_info:", 13) != 0)
			n += strtoll(c + 7, NULL, 10);
	}
	freeReplyObject(r);
	return n;
}

/* A field of the newest rq:events entry ("" when absent). */
static const char *
last_event(const char *field, char *buf, size_t len)
{
	redisReply *r = testredis_cmd("XREVRANGE rq:events + - COUNT 1");
	size_t i;

	buf[0] = '\0';
	if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
		redisReply *kv = r->element[0]->element[1];

		for (i = 0; i + 1 < kv->elements; i += 2)
			if (!strcmp(kv->element[i]->str, field))
				snprintf(buf, len, "%s", kv->element[i + 1]->str);
	}
	if (r)
		freeReplyObject(r);
	return buf;
}

static int
finish(const char *id, uint64_t attempt, const char *node, enum rq_status st,
    const char *reason, int sip, enum rq_status *out)
{
	struct rq_attempt_end e;

	memset(&e, 0, sizeof(e));
	e.call_id = id;
	e.attempt = attempt;
	e.node = node;
	e.status = st;
	e.reason = reason;
	e.sip_code = sip;
	e.started_ms = rq_now_ms() - 5000;
	if (st == RQ_ST_COMPLETED) {
		e.answered_ms = rq_now_ms() - 3000;
		e.duration_ms = 3000;
	}
	return rq_job_finish(&rl, &e, out);
}

static void
test_claim_ok(void **state)
{
	char b[128];

	job_taken("c_1", 1, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_1", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(testredis_num("ZSCORE rq:inflight c_1"), -1);
	assert_int_equal(testredis_num("SISMEMBER rq:oncall:tel1 c_1"), 1);
	assert_int_equal(testredis_num("SISMEMBER rq:nodes tel1"), 1);
	assert_string_equal(job_field("c_1", "dialed", b, sizeof(b)), "1");
	assert_string_equal(job_field("c_1", "node", b, sizeof(b)), "tel1");
	assert_string_equal(job_field("c_1", "status", b, sizeof(b)),
	    "dispatched");
	assert_string_equal(job_field("c_1", "status_rank", b, sizeof(b)),
	    "18");
	assert_int_equal(testredis_num("XLEN rq:events"), 1);
	assert_string_equal(last_event("status", b, sizeof(b)), "dispatched");
	assert_string_equal(last_event("attempt", b, sizeof(b)), "1");
	assert_string_equal(last_event("node", b, sizeof(b)), "tel1");
	assert_string_equal(last_event("tenant", b, sizeof(b)), "t1");
	assert_string_equal(last_event("to", b, sizeof(b)), "+15550001111");

	/* The same attempt again (a redelivered JOB): not a second dial. */
	assert_int_equal(rq_job_claim(&rl, "c_1", 1, "tel1"), RQ_CLAIM_STALE);
	assert_int_equal(rq_job_claim(&rl, "c_1", 1, "tel2"), RQ_CLAIM_STALE);
	assert_int_equal(testredis_num("XLEN rq:events"), 1);
}

static void
test_claim_stale(void **state)
{
	char b[64];

	/* Another attempt was taken meanwhile. */
	job_taken("c_2", 2, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_2", 1, "tel1"), RQ_CLAIM_STALE);
	assert_int_equal(testredis_num("ZSCORE rq:inflight c_2"),
	    9999999999999LL);
	/* The lease expired and the scheduler took it back. */
	testredis_do("ZREM rq:inflight c_2");
	testredis_do("ZADD rq:ready 1 c_2");
	assert_int_equal(rq_job_claim(&rl, "c_2", 2, "tel1"), RQ_CLAIM_STALE);
	assert_int_equal(testredis_num("SCARD rq:oncall:tel1"), 0);
	/* Canceled after the take: the lease goes, nothing is dialled. */
	job_taken("c_3", 1, "status", "canceled", "status_rank", "8", NULL);
	assert_int_equal(rq_job_claim(&rl, "c_3", 1, "tel1"), RQ_CLAIM_STALE);
	assert_int_equal(testredis_num("ZSCORE rq:inflight c_3"), -1);
	assert_string_equal(job_field("c_3", "status", b, sizeof(b)),
	    "canceled");
	/* Vanished job. */
	testredis_do("ZADD rq:inflight 9999999999999 c_4");
	assert_int_equal(rq_job_claim(&rl, "c_4", 1, "tel1"), RQ_CLAIM_STALE);
	assert_int_equal(testredis_num("XLEN rq:events"), 0);
}

static void
test_claim_expired(void **state)
{
	char b[64];

	job_taken("c_5", 1, "not_after_ms", "1000", NULL);
	assert_int_equal(rq_job_claim(&rl, "c_5", 1, "tel1"),
	    RQ_CLAIM_EXPIRED);
	assert_int_equal(testredis_num("SCARD rq:oncall:tel1"), 0);
	assert_int_equal(testredis_num("ZSCORE rq:inflight c_5"), -1);
	assert_string_equal(job_field("c_5", "status", b, sizeof(b)),
	    "expired");
	assert_string_equal(job_field("c_5", "reason", b, sizeof(b)),
	    "not_after");
	assert_string_equal(last_event("status", b, sizeof(b)), "expired");
}

static void
test_finish_completed(void **state)
{
	enum rq_status st = RQ_ST_QUEUED;
	char b[64];

	testredis_do("ZADD rq:active:t1 1 c_6");
	job_taken("c_6", 1, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_6", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish("c_6", 1, "tel1", RQ_ST_COMPLETED, NULL, 0,
	    &st), 1);
	assert_int_equal(st, RQ_ST_COMPLETED);
	assert_int_equal(testredis_num("SCARD rq:oncall:tel1"), 0);
	assert_string_equal(job_field("c_6", "status", b, sizeof(b)),
	    "completed");
	assert_string_equal(job_field("c_6", "status_rank", b, sizeof(b)),
	    "22");
	assert_string_equal(last_event("duration_ms", b, sizeof(b)), "3000");
	assert_string_equal(last_event("node", b, sizeof(b)), "tel1");
	assert_int_equal(testredis_num("ZSCORE rq:active:t1 c_6"), -1);
	/* An ended call has no TTL: it is in rq:ended for RQ_CALL_TTL_MS,
	 * when the scheduler deletes it (scheduler/ended.c), its timeline
	 * with it: entries of the job's hash, no key of their own. */
	assert_int_equal(testredis_num("PTTL rq:job:c_6"), -1);
	assert_in_range(ended_in("c_6"), RQ_CALL_TTL_MS - 60000,
	    RQ_CALL_TTL_MS);
	assert_int_equal(testredis_num("HEXISTS rq:job:c_6 1:completed"), 1);
	assert_int_equal(testredis_num("HEXISTS rq:job:c_6 1:dispatched"), 1);
	assert_int_equal(testredis_num("EXISTS rq:timeline:c_6"), 0);
	/* Only the first finish acts. */
	assert_int_equal(finish("c_6", 1, "tel1", RQ_ST_FAILED,
	    RQ_REASON_INTERRUPTED, 0, &st), 0);
	assert_int_equal(testredis_num("XLEN rq:events"), 2);
	/* Not claimed on that node. */
	assert_int_equal(finish("c_6", 1, "tel9", RQ_ST_COMPLETED, NULL, 0,
	    &st), 0);

	/* A tenant's own retention, written into the job as ttl_ms. */
	job_taken("c_61", 1, "ttl_ms", "3600000", NULL);
	assert_int_equal(rq_job_claim(&rl, "c_61", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish("c_61", 1, "tel1", RQ_ST_COMPLETED, NULL, 0,
	    &st), 1);
	assert_int_equal(testredis_num("PTTL rq:job:c_61"), -1);
	assert_in_range(ended_in("c_61"), 3600000 - 60000, 3600000);
	assert_int_equal(testredis_num("EXISTS rq:timeline:c_61"), 0);

	/* A corrupt ttl_ms is the default: the finish goes through and
	 * frees the tenant's slot. */
	testredis_do("ZADD rq:active:t1 1 c_62");
	job_taken("c_62", 1, "ttl_ms", "1.5", NULL);
	assert_int_equal(rq_job_claim(&rl, "c_62", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish("c_62", 1, "tel1", RQ_ST_COMPLETED, NULL, 0,
	    &st), 1);
	assert_int_equal(testredis_num("PTTL rq:job:c_62"), -1);
	assert_in_range(ended_in("c_62"), RQ_CALL_TTL_MS - 60000,
	    RQ_CALL_TTL_MS);
	assert_int_equal(testredis_num("ZSCORE rq:active:t1 c_62"), -1);
}

#define RESULT	"{\"end\":\"exit\",\"fields\":{\"pin\":\"1234\"}," \
	"\"recordings\":{\"msg\":\"http://rec.example/1.wav\"},\"exit\":[]}"

/* A finish with the application's result, as the telserver sends it. */
static int
finish_result(const char *id, enum rq_status st, const char *reason,
    const char *result, enum rq_status *out)
{
	struct rq_attempt_end e;

	memset(&e, 0, sizeof(e));
	e.call_id = id;
	e.attempt = 1;
	e.node = "tel1";
	e.status = st;
	e.reason = reason;
	e.started_ms = rq_now_ms() - 5000;
	e.answered_ms = rq_now_ms() - 3000;
	e.duration_ms = 3000;
	e.result = result;
	return rq_job_finish(&rl, &e, out);
}

/* The result goes on the job, into the event and into its timeline entry
 * (an object there); text that is not a JSON object stays a string and
 * never fails the script. */
static void
test_finish_result(void **state)
{
	enum rq_status st;
	json_t *tl, *r;
	char *big;
	char b[512];
	static const char *bad[] = {
		"not json {",			/* not JSON */
		"[1,2]",			/* JSON, not an object */
		"{\"x\":NaN}",		/* Lua's cjson reads it */
		" {\"a\":1",			/* cut short */
	};
	char id[16];
	size_t i;

	job_taken("c_40", 1, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_40", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish_result("c_40", RQ_ST_COMPLETED, NULL, RESULT,
	    &st), 1);
	assert_int_equal(st, RQ_ST_COMPLETED);
	assert_string_equal(job_field("c_40", "result", b, sizeof(b)),
	    RESULT);
	assert_string_equal(job_field("c_40", "status", b, sizeof(b)),
	    "completed");
	assert_string_equal(last_event("status", b, sizeof(b)), "completed");
	assert_string_equal(last_event("result", b, sizeof(b)), RESULT);
	assert_non_null(tl = timeline("c_40", "1:completed"));
	r = json_object_get(tl, "result");
	assert_true(json_is_object(r));
	assert_string_equal(json_string_value(json_object_get(
	    json_object_get(r, "fields"), "pin")), "1234");
	assert_string_equal(json_string_value(json_object_get(
	    json_object_get(r, "recordings"), "msg")),
	    "http://rec.example/1.wav");
	assert_string_equal(json_string_value(json_object_get(r, "end")),
	    "exit");
	/* the rest of the entry as before */
	assert_int_equal(json_integer_value(json_object_get(tl,
	    "duration_ms")), 3000);
	assert_string_equal(json_string_value(json_object_get(tl, "status")),
	    "completed");
	json_decref(tl);

	/* A failure the retry rules retry carries it too. */
	job_taken("c_41", 1, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_41", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish_result("c_41", RQ_ST_FAILED,
	    RQ_REASON_MEDIA, "{\"end\":\"error\",\"event\":"
	    "\"error.badfetch\",\"url\":\"http://x/a.vxml\",\"line\":3}",
	    &st), 1);
	assert_int_equal(st, RQ_ST_RETRYING);
	assert_non_null(strstr(job_field("c_41", "result", b, sizeof(b)),
	    "error.badfetch"));
	assert_non_null(tl = timeline("c_41", "1:retrying"));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(
	    tl, "result"), "line")), 3);
	json_decref(tl);

	/* Not an object: the timeline keeps the text as a string. */
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		snprintf(id, sizeof(id), "c_5%zu", i);
		job_taken(id, 1, NULL);
		assert_int_equal(rq_job_claim(&rl, id, 1, "tel1"),
		    RQ_CLAIM_OK);
		assert_int_equal(finish_result(id, RQ_ST_COMPLETED, NULL,
		    bad[i], &st), 1);
		assert_string_equal(job_field(id, "result", b, sizeof(b)),
		    bad[i]);
		assert_string_equal(last_event("result", b, sizeof(b)),
		    bad[i]);
		assert_non_null(tl = timeline(id, "1:completed"));
		assert_string_equal(json_string_value(json_object_get(tl,
		    "result")), bad[i]);
		json_decref(tl);
	}

	/* Lua's cjson also reads hexadecimal numbers: the timeline gets what
	 * it writes back, valid JSON (accounting, stricter, keeps the text
	 * as a string). */
	job_taken("c_49", 1, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_49", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish_result("c_49", RQ_ST_COMPLETED, NULL,
	    "{\"x\":0x10}", &st), 1);
	assert_non_null(tl = timeline("c_49", "1:completed"));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(
	    tl, "result"), "x")), 16);
	json_decref(tl);

	/* No result: none anywhere. */
	job_taken("c_42", 1, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_42", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish_result("c_42", RQ_ST_COMPLETED, NULL, "", &st),
	    1);
	assert_string_equal(job_field("c_42", "result", b, sizeof(b)), "");
	assert_int_equal(testredis_num("HEXISTS rq:job:c_42 result"), 0);
	assert_string_equal(last_event("result", b, sizeof(b)), "");
	assert_non_null(tl = timeline("c_42", "1:completed"));
	assert_null(json_object_get(tl, "result"));
	json_decref(tl);

	/* Longer than an EVENT's string: left out, the finish goes on. */
	big = malloc(RQ_RESULT_MAX + 2);
	assert_non_null(big);
	memset(big, 'x', RQ_RESULT_MAX + 1);
	big[RQ_RESULT_MAX + 1] = '\0';
	job_taken("c_43", 1, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_43", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish_result("c_43", RQ_ST_COMPLETED, NULL, big,
	    &st), 1);
	assert_int_equal(testredis_num("HEXISTS rq:job:c_43 result"), 0);
	assert_string_equal(job_field("c_43", "status", b, sizeof(b)),
	    "completed");
	free(big);
}

/* A result costs emit() nothing in commands: a finish with one runs as
 * many as one without (the result rides on the HSET and XADD it makes
 * anyway). */
static void
test_finish_result_cost(void **state)
{
	enum rq_status st;
	long long before, with, without;

	job_taken("c_44", 1, NULL);
	job_taken("c_45", 1, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_44", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(rq_job_claim(&rl, "c_45", 1, "tel1"), RQ_CLAIM_OK);
	before = commands_run();
	assert_int_equal(finish_result("c_44", RQ_ST_COMPLETED, NULL, NULL,
	    &st), 1);
	without = commands_run() - before;
	before = commands_run();
	assert_int_equal(finish_result("c_45", RQ_ST_COMPLETED, NULL, RESULT,
	    &st), 1);
	with = commands_run() - before;
	assert_true(without > 1);
	assert_int_equal(with, without);
}

/* The score of id in rq:delayed lies within now + base * [0.75, 1.25]. */
static void
assert_retry_at(const char *id, uint64_t base)
{
	uint64_t now = rq_now_ms();
	long long at = testredis_num("ZSCORE rq:delayed %s", id);
	char b[32];

	assert_true(at >= (long long)(now + base * 3 / 4 - 1000));
	assert_true(at <= (long long)(now + base * 5 / 4 + 1000));
	assert_int_equal(strtoll(job_field(id, "not_before_ms", b, sizeof(b)),
	    NULL, 10), at);
}

static void
test_retry_busy(void **state)
{
	enum rq_status st;
	char b[128];

	testredis_do("ZADD rq:active:t1 1 c_7");
	job_taken("c_7", 1, "retry_busy", "3:10000", NULL);
	assert_int_equal(rq_job_claim(&rl, "c_7", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish("c_7", 1, "tel1", RQ_ST_FAILED,
	    RQ_REASON_BUSY, 486, &st), 1);
	assert_int_equal(st, RQ_ST_RETRYING);
	assert_retry_at("c_7", 10000);
	assert_string_equal(job_field("c_7", "status", b, sizeof(b)),
	    "retrying");
	assert_string_equal(job_field("c_7", "status_rank", b, sizeof(b)),
	    "21");
	assert_string_equal(job_field("c_7", "tries_busy", b, sizeof(b)), "1");
	assert_string_equal(last_event("reason", b, sizeof(b)), "busy");
	assert_string_equal(last_event("sip_code", b, sizeof(b)), "486");
	assert_int_equal(strncmp(last_event("detail", b, sizeof(b)),
	    "next attempt at 20", 18), 0);
	assert_int_equal(strlen(b), strlen("next attempt at ") + 20);
	/* Not due any more: the tenant's due count ignores it. */
	assert_true(testredis_num("ZSCORE rq:active:t1 c_7") > 1);
	/* Not ended: not in rq:ended. */
	assert_int_equal(ended_in("c_7"), -1);
	assert_int_equal(testredis_num("HEXISTS rq:job:c_7 1:retrying"), 1);

	/* Second busy: the delay doubles. */
	retake("c_7");
	assert_int_equal(rq_job_claim(&rl, "c_7", 2, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish("c_7", 2, "tel1", RQ_ST_FAILED,
	    RQ_REASON_BUSY, 486, &st), 1);
	assert_int_equal(st, RQ_ST_RETRYING);
	assert_retry_at("c_7", 20000);

	/* No answer is another class: its own count. */
	retake("c_7");
	assert_int_equal(rq_job_claim(&rl, "c_7", 3, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish("c_7", 3, "tel1", RQ_ST_FAILED,
	    RQ_REASON_NO_ANSWER, 0, &st), 1);
	assert_int_equal(st, RQ_ST_RETRYING);
	assert_retry_at("c_7", 300000);

	/* Third busy: the class is used up. */
	retake("c_7");
	assert_int_equal(rq_job_claim(&rl, "c_7", 4, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish("c_7", 4, "tel1", RQ_ST_FAILED,
	    RQ_REASON_BUSY, 486, &st), 1);
	assert_int_equal(st, RQ_ST_FAILED);
	assert_string_equal(job_field("c_7", "reason", b, sizeof(b)),
	    "attempts_exhausted");
	assert_string_equal(job_field("c_7", "status_rank", b, sizeof(b)),
	    "71");
	assert_string_equal(last_event("detail", b, sizeof(b)),
	    "busy on attempt 4: 3 of 3 busy attempts");
	assert_int_equal(testredis_num("ZSCORE rq:delayed c_7"), -1);
	assert_int_equal(testredis_num("ZSCORE rq:active:t1 c_7"), -1);
	assert_int_equal(testredis_num("PTTL rq:job:c_7"), -1);
	assert_true(ended_in("c_7") > 0);
}

/* A first delay above the 6 h cap ("call again tomorrow") is kept; only
 * the doubling stops at the cap, and so there at that first delay. */
static void
test_retry_long_delay(void **state)
{
	enum rq_status st;

	job_taken("c_day", 1, "retry_no_answer", "3:86400000", NULL);
	assert_int_equal(rq_job_claim(&rl, "c_day", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish("c_day", 1, "tel1", RQ_ST_FAILED,
	    RQ_REASON_NO_ANSWER, 0, &st), 1);
	assert_int_equal(st, RQ_ST_RETRYING);
	assert_retry_at("c_day", 86400000);
	retake("c_day");
	assert_int_equal(rq_job_claim(&rl, "c_day", 2, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish("c_day", 2, "tel1", RQ_ST_FAILED,
	    RQ_REASON_NO_ANSWER, 0, &st), 1);
	assert_retry_at("c_day", 86400000);
}

static void
test_not_retried(void **state)
{
	enum rq_status st;
	char b[128];

	/* Declined is the callee's answer. */
	job_taken("c_8", 1, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_8", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish("c_8", 1, "tel1", RQ_ST_FAILED,
	    RQ_REASON_DECLINED, 603, &st), 1);
	assert_int_equal(st, RQ_ST_FAILED);
	assert_string_equal(job_field("c_8", "reason", b, sizeof(b)),
	    "declined");
	assert_int_equal(testredis_num("ZCARD rq:delayed"), 0);

	/* On the tenant's do-not-call list since it was accepted. */
	testredis_do("SADD rq:dnc:tenant:t1 +15550001111");
	job_taken("c_9", 1, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_9", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish("c_9", 1, "tel1", RQ_ST_FAILED,
	    RQ_REASON_BUSY, 486, &st), 1);
	assert_int_equal(st, RQ_ST_FAILED);
	assert_string_equal(job_field("c_9", "reason", b, sizeof(b)), "busy");
	assert_string_equal(last_event("detail", b, sizeof(b)),
	    "on a do-not-call list: not retried");
	testredis_do("DEL rq:dnc:tenant:t1");

	/* Blocked by the business the call is for. */
	testredis_do("SADD rq:dnc:business:bakery +15550001111");
	job_taken("c_9b", 1, "business", "bakery", NULL);
	assert_int_equal(rq_job_claim(&rl, "c_9b", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish("c_9b", 1, "tel1", RQ_ST_FAILED,
	    RQ_REASON_NO_ANSWER, 0, &st), 1);
	assert_int_equal(st, RQ_ST_FAILED);
	assert_string_equal(last_event("detail", b, sizeof(b)),
	    "on a do-not-call list: not retried");
	/* another business's list is not this call's */
	job_taken("c_9c", 1, "business", "florist", NULL);
	assert_int_equal(rq_job_claim(&rl, "c_9c", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish("c_9c", 1, "tel1", RQ_ST_FAILED,
	    RQ_REASON_NO_ANSWER, 0, &st), 1);
	assert_int_equal(st, RQ_ST_RETRYING);
	testredis_do("DEL rq:dnc:business:bakery");

	/* The customer's own opt-out. */
	testredis_do("SADD rq:dnc:customer +15550001111");
	job_taken("c_10", 1, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_10", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish("c_10", 1, "tel1", RQ_ST_FAILED,
	    RQ_REASON_UNREACHABLE, 503, &st), 1);
	assert_int_equal(st, RQ_ST_FAILED);
	testredis_do("DEL rq:dnc:customer");

	/* max_attempts caps every class. */
	job_taken("c_11", 2, "max_attempts", "2", NULL);
	assert_int_equal(rq_job_claim(&rl, "c_11", 2, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish("c_11", 2, "tel1", RQ_ST_FAILED,
	    RQ_REASON_UNREACHABLE, 503, &st), 1);
	assert_int_equal(st, RQ_ST_FAILED);
	assert_string_equal(job_field("c_11", "reason", b, sizeof(b)),
	    "attempts_exhausted");
	assert_string_equal(last_event("detail", b, sizeof(b)),
	    "unreachable on attempt 2: max_attempts 2");

	/* A class with one attempt: its first ends the call, and the reason
	 * is that attempt's own. */
	job_taken("c_12", 1, "retry_no_answer", "1:1000", NULL);
	assert_int_equal(rq_job_claim(&rl, "c_12", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish("c_12", 1, "tel1", RQ_ST_FAILED,
	    RQ_REASON_NO_ANSWER, 0, &st), 1);
	assert_int_equal(st, RQ_ST_FAILED);
	assert_string_equal(job_field("c_12", "reason", b, sizeof(b)),
	    "no_answer");
	assert_string_equal(last_event("detail", b, sizeof(b)),
	    "not retried: 1 of 1 no_answer attempts");
	/* A one-attempt tenant (max_attempts 1). */
	job_taken("c_21", 1, "max_attempts", "1", NULL);
	assert_int_equal(rq_job_claim(&rl, "c_21", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish("c_21", 1, "tel1", RQ_ST_FAILED,
	    RQ_REASON_BUSY, 486, &st), 1);
	assert_int_equal(st, RQ_ST_FAILED);
	assert_string_equal(job_field("c_21", "reason", b, sizeof(b)), "busy");
	assert_string_equal(last_event("detail", b, sizeof(b)),
	    "not retried: max_attempts 1");
}

static void
test_not_after(void **state)
{
	enum rq_status st;
	char b[128], na[32];

	/* The window closes before the next attempt could start. */
	snprintf(na, sizeof(na), "%llu",
	    (unsigned long long)rq_now_ms() + 20000);
	job_taken("c_13", 1, "not_after_ms", na, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_13", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish("c_13", 1, "tel1", RQ_ST_FAILED,
	    RQ_REASON_BUSY, 486, &st), 1);
	assert_int_equal(st, RQ_ST_EXPIRED);
	assert_string_equal(job_field("c_13", "reason", b, sizeof(b)),
	    "not_after");
	assert_int_equal(testredis_num("ZCARD rq:delayed"), 0);
	/* It still fits: retried. */
	snprintf(na, sizeof(na), "%llu",
	    (unsigned long long)rq_now_ms() + 3600000);
	job_taken("c_14", 1, "not_after_ms", na, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_14", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish("c_14", 1, "tel1", RQ_ST_FAILED,
	    RQ_REASON_BUSY, 486, &st), 1);
	assert_int_equal(st, RQ_ST_RETRYING);
	assert_retry_at("c_14", 60000);
}

static void
test_stale_finish(void **state)
{
	enum rq_status st;

	/* Attempt 1 was interrupted by the sweep; attempt 2 is on the same
	 * node now: attempt 1's late finish must not end attempt 2. */
	job_taken("c_15", 2, "dialed", "1", NULL);
	assert_int_equal(rq_job_claim(&rl, "c_15", 2, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(finish("c_15", 1, "tel1", RQ_ST_COMPLETED, NULL, 0,
	    &st), 0);
	assert_int_equal(testredis_num("SISMEMBER rq:oncall:tel1 c_15"), 1);
	/* A job that vanished leaves no id behind. */
	testredis_do("SADD rq:oncall:tel1 c_16");
	assert_int_equal(finish("c_16", 1, "tel1", RQ_ST_COMPLETED, NULL, 0,
	    &st), 0);
	assert_int_equal(testredis_num("SISMEMBER rq:oncall:tel1 c_16"), 0);
}

static void
test_interrupt(void **state)
{
	enum rq_status st;
	char b[64];

	job_taken("c_17", 1, NULL);
	job_taken("c_18", 3, NULL);
	job_taken("c_19", 1, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_17", 1, "tel2"), RQ_CLAIM_OK);
	assert_int_equal(rq_job_claim(&rl, "c_18", 3, "tel2"), RQ_CLAIM_OK);
	assert_int_equal(rq_job_claim(&rl, "c_19", 1, "tel3"), RQ_CLAIM_OK);
	/* Alive: nothing happens. */
	testredis_do("SET rq:node:tel2 1 PX 5000");
	assert_int_equal(rq_node_interrupt(&rl, "tel2", "node died", NULL), 0);
	assert_int_equal(testredis_num("SCARD rq:oncall:tel2"), 2);
	/* Dead. */
	testredis_do("DEL rq:node:tel2");
	assert_int_equal(rq_node_interrupt(&rl, "tel2", "node died", NULL), 2);
	assert_int_equal(testredis_num("SCARD rq:oncall:tel2"), 0);
	assert_int_equal(testredis_num("SCARD rq:oncall:tel3"), 1);
	assert_string_equal(job_field("c_17", "status", b, sizeof(b)),
	    "retrying");
	assert_string_equal(job_field("c_17", "reason", b, sizeof(b)),
	    "interrupted");
	assert_string_equal(job_field("c_17", "tries_network", b, sizeof(b)),
	    "1");
	assert_retry_at("c_17", 30000);
	assert_string_equal(job_field("c_18", "status_rank", b, sizeof(b)),
	    "53");
	assert_int_equal(strncmp(last_event("detail", b, sizeof(b)),
	    "node died; next attempt at 20", 29), 0);
	/* The telserver's own late finish of a failure the rules retry
	 * changes nothing: the interrupt's retry stands. */
	assert_int_equal(finish("c_17", 1, "tel2", RQ_ST_FAILED,
	    RQ_REASON_BUSY, 486, &st), 0);
	assert_string_equal(job_field("c_17", "status", b, sizeof(b)),
	    "retrying");
	assert_retry_at("c_17", 30000);
	assert_int_equal(rq_node_interrupt(&rl, "tel2", "node died", NULL), 0);
}

/* A damaged job among a dead node's calls (its key no hash) fails its own
 * finish, not the listing: the others are ended all the same, it is
 * counted as refused, and tried again at the next interrupt. */
static void
test_interrupt_damaged(void **state)
{
	static const char *const ids[] = { "c_d0", "c_d1", "c_d2", "c_d3" };
	char b[64];
	size_t i;
	int refused;

	for (i = 0; i < 4; i++) {
		job_taken(ids[i], 1, NULL);
		assert_int_equal(rq_job_claim(&rl, ids[i], 1, "tel5"),
		    RQ_CLAIM_OK);
	}
	testredis_do("DEL rq:job:c_d1");
	testredis_do("SET rq:job:c_d1 damaged");
	assert_int_equal(rq_node_interrupt(&rl, "tel5", "node died",
	    &refused), 3);
	assert_int_equal(refused, 1);
	for (i = 0; i < 4; i++)
		if (i != 1)
			assert_string_equal(job_field(ids[i], "status", b,
			    sizeof(b)), "retrying");
	assert_int_equal(testredis_num("SISMEMBER rq:oncall:tel5 c_d1"), 1);
	assert_int_equal(testredis_num("SCARD rq:oncall:tel5"), 1);
	/* the key removed, the next interrupt forgets the id */
	testredis_do("DEL rq:job:c_d1");
	assert_int_equal(rq_node_interrupt(&rl, "tel5", "node died",
	    &refused), 0);
	assert_int_equal(refused, 0);
	assert_int_equal(testredis_num("SCARD rq:oncall:tel5"), 0);
}

/* The sweep interrupted attempt 1 of a call that had in fact ended (its
 * telserver was cut off from Redis, its finish kept): the finish, when it
 * comes, ends the call as it really ended and takes the retry back, wherever
 * that retry waits, as long as no telserver claimed it. */
static void
test_late_outcome(void **state)
{
	static const char *const ids[] = { "c_40", "c_41", "c_42", "c_43",
	    "c_44", "c_45", "c_46", "c_47", "c_48" };
	enum rq_status st;
	char b[64];
	size_t i;

	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		job_taken(ids[i], 1, NULL);
		assert_int_equal(rq_job_claim(&rl, ids[i], 1, "tel7"),
		    RQ_CLAIM_OK);
		testredis_do("ZADD rq:active:t1 1 %s", ids[i]);
	}
	assert_int_equal(rq_node_interrupt(&rl, "tel7", "telserver tel7 "
	    "seems dead", NULL), 9);

	/* completed, its retry still in rq:delayed */
	assert_int_equal(finish("c_40", 1, "tel7", RQ_ST_COMPLETED, NULL, 0,
	    &st), 3);
	assert_int_equal(st, RQ_ST_COMPLETED);
	assert_string_equal(job_field("c_40", "status", b, sizeof(b)),
	    "completed");
	assert_string_equal(job_field("c_40", "status_rank", b, sizeof(b)),
	    "22");
	assert_int_equal(testredis_num("ZSCORE rq:delayed c_40"), -1);
	assert_int_equal(testredis_num("ZSCORE rq:active:t1 c_40"), -1);
	assert_string_equal(last_event("status", b, sizeof(b)), "completed");
	assert_string_equal(last_event("attempt", b, sizeof(b)), "1");
	/* once only */
	assert_int_equal(finish("c_40", 1, "tel7", RQ_ST_COMPLETED, NULL, 0,
	    &st), 0);

	/* released and taken by a dispatcher (attempt 2 leased), not yet
	 * claimed: the lease goes and attempt 2 is given back, so the
	 * telserver that holds the JOB finds its claim stale */
	retake("c_41");
	assert_int_equal(finish("c_41", 1, "tel7", RQ_ST_COMPLETED, NULL, 0,
	    &st), 3);
	assert_int_equal(testredis_num("ZSCORE rq:inflight c_41"), -1);
	assert_string_equal(job_field("c_41", "attempts", b, sizeof(b)), "1");
	assert_int_equal(rq_job_claim(&rl, "c_41", 2, "tel8"),
	    RQ_CLAIM_STALE);
	assert_int_equal(testredis_num("SCARD rq:oncall:tel8"), 0);

	/* released, waiting in rq:ready: taken out of it */
	testredis_do("ZREM rq:delayed c_42");
	testredis_do("ZADD rq:ready 1 c_42");
	assert_int_equal(finish("c_42", 1, "tel7", RQ_ST_FAILED,
	    RQ_REASON_DECLINED, 603, &st), 3);
	assert_int_equal(st, RQ_ST_FAILED);
	assert_string_equal(job_field("c_42", "reason", b, sizeof(b)),
	    "declined");
	assert_int_equal(testredis_num("ZSCORE rq:ready c_42"), -1);

	/* a failure the rules retry: the interrupt's retry stands */
	assert_int_equal(finish("c_43", 1, "tel7", RQ_ST_FAILED,
	    RQ_REASON_NO_ANSWER, 0, &st), 0);
	assert_string_equal(job_field("c_43", "status", b, sizeof(b)),
	    "retrying");
	assert_true(testredis_num("ZSCORE rq:delayed c_43") > 0);

	/* the retry was claimed already: too late, the call goes on */
	retake("c_44");
	assert_int_equal(rq_job_claim(&rl, "c_44", 2, "tel8"), RQ_CLAIM_OK);
	assert_int_equal(finish("c_44", 1, "tel7", RQ_ST_COMPLETED, NULL, 0,
	    &st), 0);
	assert_string_equal(job_field("c_44", "status", b, sizeof(b)),
	    "dispatched");

	/* in rq:hours, its calling hours closed: taken out of it */
	testredis_do("ZREM rq:delayed c_46");
	testredis_do("ZADD rq:hours 1 c_46");
	assert_int_equal(finish("c_46", 1, "tel7", RQ_ST_COMPLETED, NULL, 0,
	    &st), 3);
	assert_int_equal(testredis_num("ZSCORE rq:hours c_46"), -1);

	/* another node's finish of that attempt: not ours to end */
	assert_int_equal(finish("c_47", 1, "tel8", RQ_ST_COMPLETED, NULL, 0,
	    &st), 0);
	assert_true(testredis_num("ZSCORE rq:delayed c_47") > 0);
	/* a job that does not say which node claimed it: nobody's */
	testredis_do("HDEL rq:job:c_48 node");
	assert_int_equal(finish("c_48", 1, "tel7", RQ_ST_COMPLETED, NULL, 0,
	    &st), 0);
	assert_true(testredis_num("ZSCORE rq:delayed c_48") > 0);

	/* ended for another reason than an interrupt (a busy retry): the
	 * same finish again is a repeat, not a late outcome */
	testredis_do("HSET rq:job:c_45 reason busy");
	assert_int_equal(finish("c_45", 1, "tel7", RQ_ST_COMPLETED, NULL, 0,
	    &st), 0);
	assert_string_equal(job_field("c_45", "status", b, sizeof(b)),
	    "retrying");
}

/* A finish run by an interrupt (the node's liveness key as fourth key)
 * after the node came back, as when it does so between the sweep's listing
 * and its finishes: refused, the attempt stays the node's. */
static int
sweep_finish(const char *id, const char *node)
{
	char job[64], oncall[64], alive[64];
	const char *argv[15] = { job, oncall, "rq:delayed", alive, id, "1",
	    node, "failed", RQ_REASON_INTERRUPTED, "", "", "", "0",
	    "node died", "1.0" };
	redisReply *rep;
	int rc = -1;

	snprintf(job, sizeof(job), "rq:job:%s", id);
	snprintf(oncall, sizeof(oncall), "rq:oncall:%s", node);
	snprintf(alive, sizeof(alive), "rq:node:%s", node);
	rep = rq_redis_eval(&rl, &rq_finish_script, 4, 15, argv);
	if (rep != NULL && rep->type == REDIS_REPLY_ARRAY &&
	    rep->elements >= 1 && rep->element[0]->type == REDIS_REPLY_INTEGER)
		rc = (int)rep->element[0]->integer;
	if (rep)
		freeReplyObject(rep);
	return rc;
}

static void
test_interrupt_alive_again(void **state)
{
	char b[64];

	job_taken("c_21", 1, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_21", 1, "tel4"), RQ_CLAIM_OK);
	testredis_do("SET rq:node:tel4 1 PX 5000");
	assert_int_equal(sweep_finish("c_21", "tel4"), 2);
	assert_int_equal(testredis_num("SISMEMBER rq:oncall:tel4 c_21"), 1);
	assert_string_equal(job_field("c_21", "status", b, sizeof(b)),
	    "dispatched");
	assert_string_equal(job_field("c_21", "tries_network", b, sizeof(b)),
	    "");
	/* Dead again: the same finish acts. */
	testredis_do("DEL rq:node:tel4");
	assert_int_equal(sweep_finish("c_21", "tel4"), 1);
	assert_int_equal(testredis_num("SISMEMBER rq:oncall:tel4 c_21"), 0);
	assert_string_equal(job_field("c_21", "status", b, sizeof(b)),
	    "retrying");
}

/* The batch variants act exactly as one by one, each entry on its own. */
static void
test_batch(void **state)
{
	static const char *ids[] = { "c_30", "c_31", "c_32", "c_33", "c_30" };
	static const uint64_t atts[] = { 1, 1, 1, 2, 1 };
	struct rq_attempt_end e[4];
	enum rq_status st[4];
	int rc[5], i;
	char b[256];

	job_taken("c_30", 1, NULL);
	job_taken("c_31", 1, "not_after_ms", "1000", NULL);
	job_taken("c_32", 1, NULL);
	testredis_do("ZREM rq:inflight c_32");		/* lease gone */
	job_taken("c_33", 1, NULL);			/* other attempt */
	assert_int_equal(rq_job_claim_batch(&rl, "tel1", 5, ids, atts, rc),
	    0);
	assert_int_equal(rc[0], RQ_CLAIM_OK);
	assert_int_equal(rc[1], RQ_CLAIM_EXPIRED);
	assert_int_equal(rc[2], RQ_CLAIM_STALE);
	assert_int_equal(rc[3], RQ_CLAIM_STALE);
	assert_int_equal(rc[4], RQ_CLAIM_STALE);	/* already claimed */
	assert_int_equal(testredis_num("SCARD rq:oncall:tel1"), 1);
	assert_string_equal(job_field("c_30", "status", b, sizeof(b)),
	    "dispatched");
	assert_string_equal(job_field("c_31", "status", b, sizeof(b)),
	    "expired");
	assert_int_equal(testredis_num("XLEN rq:events"), 2);

	job_taken("c_34", 1, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_34", 1, "tel1"), RQ_CLAIM_OK);
	memset(e, 0, sizeof(e));
	for (i = 0; i < 4; i++) {
		e[i].attempt = 1;
		e[i].node = "tel1";
		e[i].status = RQ_ST_COMPLETED;
	}
	e[0].call_id = "c_30";
	e[0].result = RESULT;
	e[1].call_id = "c_34";
	e[1].status = RQ_ST_FAILED;
	e[1].reason = RQ_REASON_BUSY;
	e[1].sip_code = 486;
	e[2].call_id = "c_30";				/* repeated */
	e[3].call_id = "c_32";
	e[3].status = RQ_ST_RINGING;			/* refused here */
	assert_int_equal(rq_job_finish_batch(&rl, 4, e, st, rc), 0);
	assert_int_equal(rc[0], 1);
	assert_int_equal(st[0], RQ_ST_COMPLETED);
	assert_int_equal(rc[1], 1);
	assert_int_equal(st[1], RQ_ST_RETRYING);
	assert_int_equal(rc[2], 0);
	assert_int_equal(rc[3], -1);
	assert_int_equal(testredis_num("SCARD rq:oncall:tel1"), 0);
	assert_string_equal(job_field("c_34", "status", b, sizeof(b)),
	    "retrying");
	assert_true(testredis_num("ZSCORE rq:delayed c_34") > 0);
	assert_int_equal(testredis_num("XLEN rq:events"), 5);
	/* each finish's result in its place: c_30's, none for c_34 */
	assert_string_equal(job_field("c_30", "result", b, sizeof(b)),
	    RESULT);
	assert_int_equal(testredis_num("HEXISTS rq:job:c_34 result"), 0);
	assert_int_equal(testredis_event("c_30", "completed", "result", b,
	    sizeof(b)), 1);
	assert_string_equal(b, RESULT);
	assert_int_equal(testredis_event("c_34", "retrying", "result", b,
	    sizeof(b)), 1);
	assert_string_equal(b, "");
}

/* An incoming call as inbound.c records it when it answers. */
static int
inbound(const char *id, const char *node)
{
	struct rq_inbound_call in;

	memset(&in, 0, sizeof(in));
	in.call_id = id;
	in.tenant = "t1";
	in.caller = "sip:alice@192.0.2.1:5060";
	in.number = "+15550100";
	in.app_url = "http://apps.example/in.vxml";
	in.node = node;
	in.started_ms = rq_now_ms() - 20;
	in.answered_ms = rq_now_ms() - 10;
	return rq_job_inbound(&rl, &in);
}

/* The job of an incoming call: what the tenant sees, claimed on the node
 * that answered, ended by the normal finish; never retried. */
static void
test_inbound(void **state)
{
	enum rq_status st = RQ_ST_QUEUED;
	json_t *tl;
	char b[128];

	assert_int_equal(inbound("c_i1", "tel1"), 1);
	assert_string_equal(job_field("c_i1", "tenant", b, sizeof(b)), "t1");
	assert_string_equal(job_field("c_i1", "to", b, sizeof(b)),
	    "sip:alice@192.0.2.1:5060");
	assert_string_equal(job_field("c_i1", "direction", b, sizeof(b)),
	    "inbound");
	assert_string_equal(job_field("c_i1", "number", b, sizeof(b)),
	    "+15550100");
	assert_string_equal(job_field("c_i1", "app_url", b, sizeof(b)),
	    "http://apps.example/in.vxml");
	assert_string_equal(job_field("c_i1", "attempts", b, sizeof(b)), "1");
	assert_string_equal(job_field("c_i1", "dialed", b, sizeof(b)), "1");
	assert_string_equal(job_field("c_i1", "max_attempts", b, sizeof(b)),
	    "1");
	assert_string_equal(job_field("c_i1", "node", b, sizeof(b)), "tel1");
	assert_string_equal(job_field("c_i1", "status", b, sizeof(b)),
	    "answered");
	assert_string_equal(job_field("c_i1", "status_rank", b, sizeof(b)),
	    "20");
	assert_true(testredis_num("ZSCORE rq:calls:t1 c_i1") > 0);
	assert_int_equal(testredis_num("SISMEMBER rq:oncall:tel1 c_i1"), 1);
	assert_int_equal(testredis_num("SISMEMBER rq:nodes tel1"), 1);
	assert_int_equal(testredis_num("EXISTS rq:active:t1"), 0);
	assert_int_equal(testredis_event("c_i1", "answered", "sip_code", b,
	    sizeof(b)), 1);
	assert_string_equal(b, "200");
	assert_int_equal(testredis_event("c_i1", "answered", "tenant", b,
	    sizeof(b)), 1);
	assert_string_equal(b, "t1");
	assert_non_null(tl = timeline("c_i1", "1:answered"));
	assert_string_equal(json_string_value(json_object_get(tl, "node")),
	    "tel1");
	json_decref(tl);
	/* an id taken already: nothing written */
	assert_int_equal(inbound("c_i1", "tel2"), 0);
	assert_string_equal(job_field("c_i1", "node", b, sizeof(b)), "tel1");
	assert_int_equal(testredis_event("c_i1", "answered", NULL, NULL, 0), 1);

	/* the application's end: completed with its result */
	assert_int_equal(finish_result("c_i1", RQ_ST_COMPLETED, NULL, RESULT,
	    &st), 1);
	assert_int_equal(st, RQ_ST_COMPLETED);
	assert_string_equal(job_field("c_i1", "status", b, sizeof(b)),
	    "completed");
	assert_string_equal(job_field("c_i1", "result", b, sizeof(b)), RESULT);
	assert_int_equal(testredis_num("SISMEMBER rq:oncall:tel1 c_i1"), 0);

	/* a failure of a retryable class ends it too: nobody calls back */
	assert_int_equal(inbound("c_i2", "tel1"), 1);
	assert_int_equal(finish("c_i2", 1, "tel1", RQ_ST_FAILED,
	    RQ_REASON_MEDIA, 0, &st), 1);
	assert_int_equal(st, RQ_ST_FAILED);
	assert_string_equal(job_field("c_i2", "reason", b, sizeof(b)),
	    RQ_REASON_MEDIA);
	assert_int_equal(testredis_num("ZCARD rq:delayed"), 0);
	/* and an interrupted node's sweep ends it as interrupted */
	assert_int_equal(inbound("c_i3", "tel3"), 1);
	assert_int_equal(rq_node_interrupt(&rl, "tel3", "node died", NULL), 1);
	assert_string_equal(job_field("c_i3", "status", b, sizeof(b)),
	    "failed");
	assert_string_equal(job_field("c_i3", "reason", b, sizeof(b)),
	    RQ_REASON_INTERRUPTED);
	assert_int_equal(testredis_num("ZCARD rq:delayed"), 0);
}

static void
test_redis_down(void **state)
{
	struct rq_redis down;
	struct rq_attempt_end e;
	enum rq_status st;
	int rc[1];

	/* A port nothing listens on. */
	rq_redis_init(&down, "127.0.0.1", testredis_free_port(), scripts, 3);
	assert_int_equal(rq_job_claim(&down, "c_20", 1, "tel1"), -1);
	memset(&e, 0, sizeof(e));
	e.call_id = "c_20";
	e.attempt = 1;
	e.node = "tel1";
	e.status = RQ_ST_COMPLETED;
	assert_int_equal(rq_job_finish(&down, &e, &st), -1);
	assert_int_equal(rq_job_finish_batch(&down, 1, &e, &st, rc), -1);
	assert_int_equal(rc[0], -1);
	assert_int_equal(rq_node_interrupt(&down, "tel1", "x", NULL), -1);
	rq_redis_close(&down);
}

/* calls= of one command in INFO commandstats (0 when it never ran). */
static long long
command_calls(const char *cmd)
{
	redisReply *r = testredis_cmd("INFO commandstats");
	char key[64];
	const char *p;
	long long n = 0;

	assert_non_null(r);
	snprintf(key, sizeof(key), "cmdstat_%s:calls=", cmd);
	if ((p = strstr(r->str, key)) != NULL)
		n = strtoll(p + strlen(key), NULL, 10);
	freeReplyObject(r);
	return n;
}

/* The reconnect rq_redis_ready() allows at once (not a second later). */
static void
reconnect(void)
{
	rq_redis_close(&rl);
	rl.next_try_ms = 0;
	assert_int_equal(rq_redis_ready(&rl), 0);
}

/*
 * Scripts with a run marker run as Redis functions: their definitions
 * made once, each run by FCALL.  Each run has its own clock (the
 * definitions' state is reset), a function Redis lost is loaded again,
 * and a server that refuses functions gets EVALSHA.
 */
static void
test_functions(void **state)
{
	redisReply *r;
	json_t *a, *b;
	long long fcalls, evalshas;

	reconnect();
	assert_true(rl.functions);
	assert_true(strncmp(rq_claim_script.fname, "ringq_claim_", 12) == 0);
	assert_int_equal(rq_interrupt_script.fname[0], '\0');	/* no marker */
	r = testredis_cmd("FUNCTION LIST LIBRARYNAME %s",
	    rq_claim_script.fname);
	assert_true(r != NULL && r->type == REDIS_REPLY_ARRAY &&
	    r->elements == 1);
	freeReplyObject(r);

	fcalls = command_calls("fcall");
	evalshas = command_calls("evalsha");
	job_taken("c_f1", 1, NULL);
	job_taken("c_f2", 1, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_f1", 1, "tel1"), RQ_CLAIM_OK);
	usleep(20 * 1000);
	assert_int_equal(rq_job_claim(&rl, "c_f2", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(command_calls("fcall"), fcalls + 2);
	assert_int_equal(command_calls("evalsha"), evalshas);
	/* the second run read Redis's clock again */
	a = timeline("c_f1", "1:dispatched");
	b = timeline("c_f2", "1:dispatched");
	assert_non_null(a);
	assert_non_null(b);
	assert_true(json_integer_value(json_object_get(b, "ts_ms")) >=
	    json_integer_value(json_object_get(a, "ts_ms")) + 15);
	json_decref(a);
	json_decref(b);

	/* Lost (FUNCTION FLUSH, or a restart without persistence): loaded
	 * again by the next run, which runs once. */
	testredis_do("FUNCTION FLUSH");
	job_taken("c_f3", 1, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_f3", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(testredis_num("XLEN rq:events"), 3);
	assert_int_equal(command_calls("fcall"), fcalls + 4);
	assert_true(rl.functions);

	/* An ACL without functions: EVALSHA, the same work. */
	testredis_do("ACL SETUSER default -function -fcall");
	reconnect();
	assert_false(rl.functions);
	job_taken("c_f4", 1, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_f4", 1, "tel1"), RQ_CLAIM_OK);
	assert_int_equal(command_calls("evalsha"), evalshas + 1);
	assert_int_equal(testredis_num("XLEN rq:events"), 4);
	testredis_do("ACL SETUSER default +@all");
	reconnect();
	assert_true(rl.functions);

	/* Above maxmemory Redis refuses a function before it runs, a
	 * script only at a first write that may grow memory: a claim
	 * (its first write takes the lease out) still runs, by EVALSHA. */
	job_taken("c_f6", 1, NULL);
	testredis_do("CONFIG SET maxmemory 1");
	assert_int_equal(rq_job_claim(&rl, "c_f6", 1, "tel1"), RQ_CLAIM_OK);
	testredis_do("CONFIG SET maxmemory 0");
	assert_true(rl.functions);
	assert_int_equal(command_calls("evalsha"), evalshas + 2);
	evalshas++;

	/* An ACL that loads functions but may not call them: EVALSHA.
	 * A retry while it still refuses them stays on EVALSHA and waits
	 * for the next retry; once it allows them, functions again, on the
	 * same link.  (A retry is due when functions_retry_ms has passed:
	 * set here rather than waited for.) */
	testredis_do("ACL SETUSER default -fcall");
	job_taken("c_f5", 1, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_f5", 1, "tel1"), RQ_CLAIM_OK);
	assert_false(rl.functions);
	assert_int_equal(command_calls("evalsha"), evalshas + 2);
	assert_true(rl.functions_retry_ms > rq_mono_ms() + 50000);
	rl.functions_retry_ms = 1;
	job_taken("c_f7", 1, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_f7", 1, "tel1"), RQ_CLAIM_OK);
	assert_false(rl.functions);		/* refused again */
	assert_true(rl.functions_retry_ms > rq_mono_ms() + 50000);
	assert_int_equal(command_calls("evalsha"), evalshas + 3);
	testredis_do("ACL SETUSER default +@all");
	job_taken("c_f8", 1, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_f8", 1, "tel1"), RQ_CLAIM_OK);
	assert_false(rl.functions);		/* not yet its time */
	assert_int_equal(command_calls("evalsha"), evalshas + 4);
	rl.functions_retry_ms = 1;
	fcalls = command_calls("fcall");
	job_taken("c_f9", 1, NULL);
	assert_int_equal(rq_job_claim(&rl, "c_f9", 1, "tel1"), RQ_CLAIM_OK);
	assert_true(rl.functions);
	assert_int_equal(rl.functions_retry_ms, 0);
	assert_int_equal(command_calls("fcall"), fcalls + 1);
	assert_int_equal(command_calls("evalsha"), evalshas + 4);
}

/* call_ttl() of v in Lua (NULL: the field absent), as a number. */
static unsigned long long
lua_ttl(const char *v)
{
	static const char src[] = RQ_LUA_CALL_TTL "return call_ttl(ARGV[1])";
	redisReply *r;
	unsigned long long ttl;

	r = v == NULL ? testredis_cmd("EVAL %s 0", src) :
	    testredis_cmd("EVAL %s 0 %s", src, v);
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_STRING);
	ttl = strtoull(r->str, NULL, 10);
	freeReplyObject(r);
	return ttl;
}

/* A job's ttl_ms as C and Lua read it, by call_ttl()'s rule: anything but
 * the digits of an integer of 1 ms to 100 years is the default, in both. */
static void
test_job_ttl(void **state)
{
	static const char *const bad[] = { "", "0", "-5", "1.5", "abc",
	    "12x", "3153600000001", "99999999999999999999999", "007",
	    " 5", "+5", "0x10", "1e3", "5 " };
	size_t i;

	assert_int_equal(rq_job_ttl_ms("3600000"), 3600000);
	assert_int_equal(lua_ttl("3600000"), 3600000);
	assert_int_equal(rq_job_ttl_ms("3153600000000"), 3153600000000LL);
	assert_int_equal(lua_ttl("3153600000000"), 3153600000000LL);
	assert_int_equal(rq_job_ttl_ms("1"), 1);
	assert_int_equal(lua_ttl("1"), 1);
	assert_int_equal(rq_job_ttl_ms(NULL), RQ_CALL_TTL_MS);
	assert_int_equal(lua_ttl(NULL), RQ_CALL_TTL_MS);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(rq_job_ttl_ms(bad[i]), RQ_CALL_TTL_MS);
		assert_int_equal(lua_ttl(bad[i]), RQ_CALL_TTL_MS);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_functions, setup),
		cmocka_unit_test(test_job_ttl),
		cmocka_unit_test_setup(test_claim_ok, setup),
		cmocka_unit_test_setup(test_claim_stale, setup),
		cmocka_unit_test_setup(test_claim_expired, setup),
		cmocka_unit_test_setup(test_finish_completed, setup),
		cmocka_unit_test_setup(test_finish_result, setup),
		cmocka_unit_test_setup(test_finish_result_cost, setup),
		cmocka_unit_test_setup(test_retry_busy, setup),
		cmocka_unit_test_setup(test_retry_long_delay, setup),
		cmocka_unit_test_setup(test_not_retried, setup),
		cmocka_unit_test_setup(test_not_after, setup),
		cmocka_unit_test_setup(test_stale_finish, setup),
		cmocka_unit_test_setup(test_interrupt, setup),
		cmocka_unit_test_setup(test_interrupt_damaged, setup),
		cmocka_unit_test_setup(test_late_outcome, setup),
		cmocka_unit_test_setup(test_interrupt_alive_again, setup),
		cmocka_unit_test_setup(test_batch, setup),
		cmocka_unit_test_setup(test_inbound, setup),
		cmocka_unit_test_setup(test_redis_down, setup),
	};
	int rc;

	log_init("test_lifecycle", 0);
	testredis_start();
	rq_redis_init(&rl, "127.0.0.1", testredis_port, scripts, 4);
	if (rq_redis_ready(&rl) == -1) {
		testredis_stop();
		fprintf(stderr, "cannot connect to redis-server\n");
		return 1;
	}
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rq_redis_close(&rl);
	testredis_stop();
	return rc;
}
