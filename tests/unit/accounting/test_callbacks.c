/* Unit tests of accounting/callbacks.c: the signature, the backoff, the
 * URL check and the body, and the queueing done by the mirror script
 * against a real redis-server on a free port. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "accounting.h"
#include "keys.h"
#include "log.h"
#include "../scheduler/testredis.h"

static void
test_sign(void **state)
{
	char sig[160];

	/* python3: hmac.new(b'whsec_test', b'1763720000.{"id":"x"}',
	 * hashlib.sha256).hexdigest() */
	acct_cb_sign("whsec_test", 1763720000LL, "{\"id\":\"x\"}", sig,
	    sizeof(sig));
	assert_string_equal(sig, "t=1763720000,v1=32fd8539dfe817341d92b5ff4a6c"
	    "cd6d5614050cf787d56a4cf874f29b8327c9");
	/* over the raw bytes: UTF-8 and JSON escapes as they are */
	acct_cb_sign("whsec_test", 1763720000LL, "{\"n\":\"\xc3\xa9\\n\"}", sig,
	    sizeof(sig));
	assert_string_equal(sig, "t=1763720000,v1=f2db7ab78279723cf9dc9237dd16"
	    "6c68f75ec8b138cc488a3a4abdc8d457ab9c");
}

static void
test_backoff(void **state)
{
	assert_true(acct_cb_backoff_ms(1, 0) == 1000);
	assert_true(acct_cb_backoff_ms(2, 0) == 2000);
	assert_true(acct_cb_backoff_ms(3, 0) == 4000);
	assert_true(acct_cb_backoff_ms(9, 0) == 256000);
	assert_true(acct_cb_backoff_ms(10, 0) == ACCT_CB_BACKOFF_MAX_MS);
	assert_true(acct_cb_backoff_ms(1000, 0) == ACCT_CB_BACKOFF_MAX_MS);
	/* jitter adds at most a quarter */
	assert_true(acct_cb_backoff_ms(2, 0.999) < 2500);
	assert_true(acct_cb_backoff_ms(2, 0.5) == 2250);
	assert_true(acct_cb_backoff_ms(2, 7) == 2000);
}

static void
test_url(void **state)
{
	assert_true(acct_cb_url_ok("http://example.com/hook"));
	assert_true(acct_cb_url_ok("HTTPS://example.com"));
	assert_false(acct_cb_url_ok("ftp://example.com/"));
	assert_false(acct_cb_url_ok("file:///etc/passwd"));
	assert_false(acct_cb_url_ok("http:///x"));
	assert_false(acct_cb_url_ok("http://"));
	assert_false(acct_cb_url_ok("http://a b/"));
}

static void
test_body(void **state)
{
	struct rq_msg m;
	char *s;

	rq_msg_init(&m, RQ_MSG_EVENT);
	rq_msg_set(&m, call_id, "c_0123456789abcdef01234567");
	rq_msg_set(&m, attempt, 1);
	rq_msg_set(&m, status, "failed");
	rq_msg_set(&m, reason, "busy");
	rq_msg_set(&m, sip_code, 486);
	rq_msg_set(&m, ts_ms, 1000);
	s = acct_cb_body(&m);
	assert_string_equal(s, "{\"id\":\"c_0123456789abcdef01234567\","
	    "\"status\":\"failed\",\"reason\":\"busy\",\"sip_code\":486,"
	    "\"at\":\"1970-01-01T00:00:01.000Z\",\"attempt\":1}");
	free(s);
}

/* The event that carries the application's result: "result", an object. */
static void
test_body_result(void **state)
{
	struct rq_msg m;
	enum rq_status st;
	char err[128], *s;
	const char *fv[] = { "call_id", "c_0123456789abcdef01234567",
	    "attempt", "1", "status", "completed", "ts_ms", "1000",
	    "result", NULL };
	size_t lens[10], i;

	rq_msg_init(&m, RQ_MSG_EVENT);
	rq_msg_set(&m, call_id, "c_0123456789abcdef01234567");
	rq_msg_set(&m, attempt, 1);
	rq_msg_set(&m, status, "completed");
	rq_msg_set(&m, ts_ms, 1000);
	rq_msg_set(&m, result, "{\"end\":\"exit\", \"fields\":"
	    "{\"pin\":\"1234\"},\"recordings\":{},\"exit\":[1.5,null]}");
	s = acct_cb_body(&m);
	assert_string_equal(s, "{\"id\":\"c_0123456789abcdef01234567\","
	    "\"status\":\"completed\",\"at\":\"1970-01-01T00:00:01.000Z\","
	    "\"attempt\":1,\"result\":{\"end\":\"exit\",\"fields\":"
	    "{\"pin\":\"1234\"},\"recordings\":{},\"exit\":[1.5,null]}}");
	free(s);

	/* Not an object (here from an rq:events entry): the text, as a
	 * string, once the check has looked at it. */
	fv[9] = "oops {";
	for (i = 0; i < 10; i++)
		lens[i] = strlen(fv[i]);
	assert_int_equal(acct_stream_event(&m, fv, lens, 10, err, sizeof(err)),
	    0);
	assert_int_equal(acct_event_check(&m, &st, err, sizeof(err)), 0);
	s = acct_cb_body(&m);
	assert_non_null(strstr(s, ",\"attempt\":1,\"result\":\"oops {\"}"));
	free(s);
	rq_msg_clear(&m);
}

/* The mirror script queues each new event of a job with a callback_url
 * once, in rank order behind the head. */
static void
mirror_one(struct acct_mirror *mr, const char *id, uint64_t attempt,
    const char *status, enum rq_status st)
{
	struct acct_event ev;

	memset(&ev, 0, sizeof(ev));
	rq_msg_init(&ev.m, RQ_MSG_EVENT);
	rq_msg_set(&ev.m, call_id, (char *)id);
	rq_msg_set(&ev.m, attempt, attempt);
	rq_msg_set(&ev.m, status, (char *)status);
	rq_msg_set(&ev.m, ts_ms, 5000);
	ev.st = st;
	ev.rank = acct_rank(attempt, st);
	ev.stored = 1;
	ev.mirror = 1;		/* as for a ZeroMQ event */
	assert_int_equal(acct_mirror(mr, &ev, 1), 0);
	assert_int_equal(ev.mirrored, 1);
}

static char *
queue_item(const char *id, int i, const char *member)
{
	redisReply *r;
	json_t *env, *body;
	char *out;

	r = testredis_cmd("LINDEX %s%s %d", RQ_KEY_CBQ, id, i);
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_STRING);
	env = json_loads(r->str, 0, NULL);
	freeReplyObject(r);
	assert_non_null(env);
	body = json_loads(json_string_value(json_object_get(env, "body")), 0,
	    NULL);
	assert_non_null(body);
	out = strdup(json_string_value(json_object_get(strcmp(member,
	    "url") ? body : env, member)));
	json_decref(body);
	json_decref(env);
	return out;
}

static void
test_enqueue_live(void **state)
{
	const char *id = "c_0123456789abcdef01234567";
	const char *nocb = "c_0123456789abcdef0123456f";
	struct acct_mirror mr;
	redisReply *r;
	char *s;

	testredis_start();
	testredis_do("HSET %s%s tenant demo status queued status_rank 0 "
	    "callback_url http://example.com/h metadata {\"k\":[1,2]}",
	    RQ_KEY_JOB, id);
	testredis_do("HSET %s%s tenant demo status queued status_rank 0",
	    RQ_KEY_JOB, nocb);
	acct_mirror_init(&mr, "127.0.0.1", testredis_port);
	assert_int_equal(acct_mirror_ready(&mr), 0);

	mirror_one(&mr, id, 0, "queued", RQ_ST_QUEUED);
	mirror_one(&mr, id, 1, "ringing", RQ_ST_RINGING);
	/* a late one goes before the later ranks, behind the head */
	mirror_one(&mr, id, 1, "dispatched", RQ_ST_DISPATCHED);
	mirror_one(&mr, id, 0, "scheduled", RQ_ST_SCHEDULED);
	/* resent: nothing more */
	mirror_one(&mr, id, 1, "ringing", RQ_ST_RINGING);
	mirror_one(&mr, nocb, 0, "queued", RQ_ST_QUEUED);

	assert_int_equal(testredis_num("LLEN %s%s", RQ_KEY_CBQ, id), 4);
	assert_int_equal(testredis_num("LLEN %s%s", RQ_KEY_CBQ, nocb), 0);
	assert_int_equal(testredis_num("ZCARD %s", RQ_KEY_CALLBACKS), 1);
	assert_int_equal(testredis_num("ZSCORE %s %s", RQ_KEY_CALLBACKS,
	    id) > 0, 1);
	s = queue_item(id, 0, "status");
	assert_string_equal(s, "queued");
	free(s);
	s = queue_item(id, 1, "status");
	assert_string_equal(s, "scheduled");
	free(s);
	s = queue_item(id, 2, "status");
	assert_string_equal(s, "dispatched");
	free(s);
	s = queue_item(id, 3, "status");
	assert_string_equal(s, "ringing");
	free(s);
	s = queue_item(id, 0, "url");
	assert_string_equal(s, "http://example.com/h");
	free(s);
	/* the metadata went in as JSON */
	r = testredis_cmd("LINDEX %s%s 0", RQ_KEY_CBQ, id);
	assert_non_null(strstr(r->str, "\\\"metadata\\\":{\\\"k\\\":[1,2]}"));
	freeReplyObject(r);

	acct_mirror_close(&mr);
	testredis_stop();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sign),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_url),
		cmocka_unit_test(test_body),
		cmocka_unit_test(test_body_result),
		cmocka_unit_test(test_enqueue_live),
	};

	log_init("test_callbacks", 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
