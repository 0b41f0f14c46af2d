/* life.c against a real redis-server: the liveness key is refreshed by the
 * tick every second whatever heartbeat_ms is, the telserver fences itself
 * (no jobs, calls hung up) when it could not refresh it for its TTL minus
 * a margin and comes back once it could, and a kept finish that Redis
 * refuses with the link up holds up no other one and is dropped in the
 * end, while finishes kept for a lost connection wait for it, and go first
 * when the fence lifts, on disk too, synced off the loop; a duplicate JOB
 * of a call we hold is never a second call. */
#include <sys/stat.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "keys.h"
#include "log.h"
#include "status.h"
#include "telserver.h"
#include "util.h"
#include "../scheduler/testredis.h"
#include "../stderr_capture.h"
#include "../sync_spy.h"

static struct rq_config cfg;
static struct tel_ctx ctx;

/* A fresh telserver context, recovered (first tick) on a clean Redis. */
static int
setup(void **state)
{
	testredis_do("FLUSHALL");
	memset(&ctx, 0, sizeof(ctx));
	ctx.cfg = &cfg;
	if ((ctx.root = su_root_create(&ctx)) == NULL)
		return -1;
	tel_life_open(&ctx);
	tel_life_tick(&ctx);
	return ctx.recovered ? 0 : -1;
}

static int
teardown(void **state)
{
	tel_life_close(&ctx, 0);
	tel_bus_close(&ctx);
	su_root_destroy(ctx.root);
	return 0;
}

static char state_dir[64], finishes[128];

/* The same, with a state_dir: kept finishes have their file. */
static int
setup_state(void **state)
{
	snprintf(state_dir, sizeof(state_dir), "/tmp/ringq-life-XXXXXX");
	if (mkdtemp(state_dir) == NULL)
		return -1;
	snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s", state_dir);
	snprintf(finishes, sizeof(finishes),
	    "%s/ringq-telserver-tel-u.finishes", state_dir);
	sync_spy_reset();
	return setup(state);
}

static int
teardown_state(void **state)
{
	teardown(state);
	unlink(finishes);
	rmdir(state_dir);
	cfg.state_dir[0] = '\0';
	return 0;
}

/* Points the link at port (a dead one: Redis unreachable) and lets it
 * (re)connect at once. */
static void
link_port(int port)
{
	rq_redis_close(&ctx.redis);
	ctx.redis.port = port;
	ctx.redis.next_try_ms = 0;
}

/* One tick with every once-a-second job due. */
static void
tick_now(void)
{
	ctx.alive_next_ms = 0;
	ctx.finish_retry_ms = 0;
	tel_life_tick(&ctx);
}

/* A job claimed by tel-u for attempt 1. */
static void
job_claimed(const char *id)
{
	testredis_do("HSET rq:job:%s id %s tenant t1 to +15550001111 "
	    "max_attempts 3 attempts 1 status scheduled status_rank 1",
	    id, id);
	testredis_do("ZADD rq:inflight 9999999999999 %s", id);
	assert_int_equal(rq_job_claim(&ctx.redis, id, 1, "tel-u"),
	    RQ_CLAIM_OK);
}

static void
end_of(struct rq_attempt_end *e, const char *id, enum rq_status st)
{
	memset(e, 0, sizeof(*e));
	e->call_id = id;
	e->attempt = 1;
	e->node = "tel-u";
	e->status = st;
	e->reason = st == RQ_ST_FAILED ? RQ_REASON_BUSY : NULL;
	e->sip_code = st == RQ_ST_FAILED ? 486 : 0;
}

static int
job_is(const char *id, const char *status)
{
	redisReply *r = testredis_cmd("HGET rq:job:%s status", id);
	int ok;

	ok = r != NULL && r->type == REDIS_REPLY_STRING &&
	    !strcmp(r->str, status);
	if (r)
		freeReplyObject(r);
	return ok;
}

static void
test_refresh(void **state)
{
	long long ttl;

	ttl = testredis_num("PTTL rq:node:tel-u");
	assert_true(ttl > 0 && ttl <= RQ_NODE_TTL_MS);
	assert_int_equal(testredis_num("SISMEMBER rq:nodes tel-u"), 1);
	/* The tick refreshes it by itself (no heartbeat here at all). */
	testredis_do("DEL rq:node:tel-u");
	testredis_do("DEL rq:nodes");
	tick_now();
	ttl = testredis_num("PTTL rq:node:tel-u");
	assert_true(ttl > RQ_NODE_TTL_MS - 1000 && ttl <= RQ_NODE_TTL_MS);
	assert_int_equal(testredis_num("SISMEMBER rq:nodes tel-u"), 1);
	/* A key of another type in its place (SET ... GET refuses it):
	 * replaced, not a refresh that fails until the fence. */
	testredis_do("DEL rq:node:tel-u");
	testredis_do("HSET rq:node:tel-u x y");
	tick_now();
	ttl = testredis_num("PTTL rq:node:tel-u");
	assert_true(ttl > RQ_NODE_TTL_MS - 1000 && ttl <= RQ_NODE_TTL_MS);
	/* Not more often than once a second. */
	testredis_do("DEL rq:node:tel-u");
	tel_life_tick(&ctx);
	assert_int_equal(testredis_num("EXISTS rq:node:tel-u"), 0);
	assert_int_equal(ctx.fenced, 0);
}

static int
tel_field_is(const char *field, const char *want)
{
	redisReply *r = testredis_cmd("HGET rq:tel:tel-u %s", field);
	int ok;

	ok = r != NULL && r->type == REDIS_REPLY_STRING &&
	    !strcmp(r->str, want);
	if (r)
		freeReplyObject(r);
	return ok;
}

/* The fleet state hash at each refresh, and the operator's drain: in
 * rq:drain, no new job (draining in heartbeats and the hash) while calls
 * go on, "drained" once none is left; out of it, jobs again. */
static void
test_drain(void **state)
{
	long long ttl;

	tick_now();
	assert_true(tel_field_is("state", "up"));
	assert_true(tel_field_is("node", "tel-u"));
	assert_true(tel_field_is("active", "0"));
	assert_true(tel_field_is("capacity", "100"));
	assert_true(tel_field_is("sip", cfg.sip_url));
	ttl = testredis_num("PTTL rq:tel:tel-u");
	assert_true(ttl > RQ_TEL_TTL_MS - 2000 && ttl <= RQ_TEL_TTL_MS);
	assert_true(testredis_num("HGET rq:tel:tel-u updated_ms") > 0);
	assert_false(tel_life_refusing(&ctx));
	assert_string_equal(tel_life_state(&ctx), "up");

	/* Drained with two calls in progress: draining until they end. */
	ctx.active = 2;
	testredis_do("SADD rq:drain tel-u");
	tick_now();
	assert_int_equal(ctx.drain_op, 1);
	assert_true(tel_life_refusing(&ctx));
	assert_string_equal(tel_life_state(&ctx), "draining");
	assert_true(tel_field_is("state", "draining"));
	assert_true(tel_field_is("active", "2"));
	ctx.active = 0;
	assert_string_equal(tel_life_state(&ctx), "drained");
	tick_now();
	assert_true(tel_field_is("state", "drained"));
	assert_int_equal(ctx.drained_logged, 1);

	/* Undrained: jobs again. */
	testredis_do("SREM rq:drain tel-u");
	tick_now();
	assert_int_equal(ctx.drain_op, 0);
	assert_false(tel_life_refusing(&ctx));
	assert_true(tel_field_is("state", "up"));

	/* Redis out of reach: the drain stays as last known. */
	testredis_do("SADD rq:drain tel-u");
	tick_now();
	assert_int_equal(ctx.drain_op, 1);
	link_port(1);
	tick_now();
	assert_int_equal(ctx.drain_op, 1);
}

static void
test_fence(void **state)
{
	struct rq_msg job;
	int live = ctx.redis.port;

	/* Redis unreachable, the key refreshed a moment ago: not yet. */
	link_port(testredis_free_port());
	tick_now();
	assert_int_equal(ctx.fenced, 0);
	/* Not refreshed for the TTL minus the margin: fenced. */
	ctx.alive_ms = rq_mono_ms() - (RQ_NODE_TTL_MS - 1500);
	tick_now();
	assert_int_equal(ctx.fenced, 1);
	/* No job is taken (not even tried: Redis is reachable again but
	 * the key is still out of date). */
	link_port(live);
	rq_msg_init(&job, RQ_MSG_JOB);
	rq_msg_set(&job, call_id, "c_000000000000000000000f01");
	rq_msg_set(&job, attempt, (uint64_t)1);
	rq_msg_set(&job, tenant, "t1");
	rq_msg_set(&job, to, "+15550001111");
	testredis_do("HSET rq:job:c_000000000000000000000f01 attempts 1 "
	    "status scheduled status_rank 1");
	testredis_do("ZADD rq:inflight 9999999999999 "
	    "c_000000000000000000000f01");
	tel_call_job(&ctx, 0, &job);
	assert_null(ctx.calls);
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 1);
	/* Refreshed again: taking jobs. */
	tick_now();
	assert_int_equal(ctx.fenced, 0);
	assert_true(testredis_num("PTTL rq:node:tel-u") > 0);
}

/* After an outage, the liveness key is refreshed before any claim, and no
 * claim goes while that refresh fails (the crash test saw a telserver
 * claim jobs, then fence itself on a key left stale, and hang them up). */
static void
test_refresh_before_claim(void **state)
{
	static const char *id = "c_000000000000000000000f09";
	struct rq_msg job;
	int live = ctx.redis.port;

	testredis_do("HSET rq:job:%s id %s tenant t1 to +15550001111 "
	    "attempts 1 status scheduled status_rank 1", id, id);
	testredis_do("ZADD rq:inflight 9999999999999 %s", id);
	rq_msg_init(&job, RQ_MSG_JOB);
	rq_msg_set(&job, call_id, (char *)id);
	rq_msg_set(&job, attempt, (uint64_t)1);
	rq_msg_set(&job, tenant, "t1");
	rq_msg_set(&job, to, "+15550001111");
	/* Redis out of reach, the refresh due: refused, not even tried. */
	link_port(testredis_free_port());
	ctx.alive_ms = rq_mono_ms() - 3000;
	ctx.alive_next_ms = 0;
	tel_call_job(&ctx, 0, &job);
	assert_null(ctx.calls);
	assert_int_equal(ctx.fenced, 0);
	assert_int_equal(tel_life_pending(&ctx), 0);
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 1);
	/* Back, the key nearly stale (gone, even): refreshed, then claimed;
	 * not fenced a moment later. */
	link_port(live);
	testredis_do("DEL rq:node:tel-u");
	ctx.alive_ms = rq_mono_ms() - 3000;
	tel_call_job(&ctx, 0, &job);
	assert_true(testredis_num("PTTL rq:node:tel-u") > 4000);
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 0);
	assert_int_equal(testredis_num("SISMEMBER rq:oncall:tel-u %s", id), 0);
	assert_true(testredis_num("XLEN rq:events") >= 2);
	ctx.alive_next_ms = rq_mono_ms() + 1000;
	tel_life_tick(&ctx);
	assert_int_equal(ctx.fenced, 0);
}

/* Cut off long enough to be fenced, and swept meanwhile (the attempt
 * ended as interrupted, its retry planned): the kept finish of a call
 * that completed goes to Redis the moment the key is refreshed again,
 * before anything else, even when its own retry is not due, so that it
 * takes the retry back before a JOB of it can come. */
static void
test_unfence_flushes_first(void **state)
{
	static const char *id = "c_000000000000000000000f10";
	struct rq_attempt_end e;
	int live = ctx.redis.port;

	job_claimed(id);
	link_port(testredis_free_port());
	end_of(&e, id, RQ_ST_COMPLETED);
	tel_life_finish(&ctx, &e);
	assert_int_equal(tel_life_pending(&ctx), 1);
	ctx.alive_ms = rq_mono_ms() - (RQ_NODE_TTL_MS - 1500);
	tick_now();
	assert_int_equal(ctx.fenced, 1);
	/* what the scheduler's sweep leaves */
	testredis_do("SREM rq:oncall:tel-u %s", id);
	testredis_do("HSET rq:job:%s status retrying status_rank 21 "
	    "reason interrupted", id);
	testredis_do("ZADD rq:delayed 9999999999999 %s", id);
	/* back: the refresh is due, the kept finish's retry is not */
	link_port(live);
	ctx.alive_next_ms = 0;
	ctx.finish_retry_ms = rq_mono_ms() + 60000;
	tel_life_tick(&ctx);
	assert_int_equal(ctx.fenced, 0);
	assert_int_equal(tel_life_pending(&ctx), 0);
	assert_true(job_is(id, "completed"));
	assert_int_equal(testredis_num("ZSCORE rq:delayed %s", id), -1);
}

static void
test_kept_finishes(void **state)
{
	struct rq_attempt_end e;
	int live = ctx.redis.port, i;

	job_claimed("c_g1");
	job_claimed("c_g2");
	/* A finish Redis refuses with the link up: the job key holds a
	 * string, the script fails on it. */
	testredis_do("SET rq:job:c_p1 x");
	testredis_do("SADD rq:oncall:tel-u c_p1");
	end_of(&e, "c_p1", RQ_ST_COMPLETED);
	tel_life_finish(&ctx, &e);
	assert_int_equal(tel_life_pending(&ctx), 1);
	/* A later one is not held up behind it. */
	end_of(&e, "c_g1", RQ_ST_COMPLETED);
	tel_life_finish(&ctx, &e);
	assert_int_equal(tel_life_pending(&ctx), 1);
	assert_true(job_is("c_g1", "completed"));
	/* Connection lost: kept, and kept while it lasts. */
	link_port(testredis_free_port());
	end_of(&e, "c_g2", RQ_ST_FAILED);
	tel_life_finish(&ctx, &e);
	assert_int_equal(tel_life_pending(&ctx), 2);
	for (i = 0; i < 40; i++)
		tick_now();
	assert_int_equal(tel_life_pending(&ctx), 2);
	assert_true(job_is("c_g2", "dispatched"));
	/* Back: the round goes past the refused one to record it. */
	link_port(live);
	tick_now();
	assert_true(job_is("c_g2", "retrying"));
	assert_int_equal(tel_life_pending(&ctx), 1);
	/* The refused one is dropped after a bounded number of rounds. */
	for (i = 0; i < 40 && tel_life_pending(&ctx) > 0; i++)
		tick_now();
	assert_int_equal(tel_life_pending(&ctx), 0);
	assert_true(i > 20);
}

/* A finish kept while Redis is out of reach is on disk at once (the page
 * cache: what a kill -9 keeps), synced, file and directory, after the
 * next tick by the syncer's thread, not by the loop (what a power cut
 * needs); once Redis took it, the file is gone. */
static void
test_kept_finishes_synced(void **state)
{
	struct rq_attempt_end e;
	struct sync_seen last;
	struct stat st;
	int live = ctx.redis.port;

	job_claimed("c_s1");
	link_port(testredis_free_port());
	end_of(&e, "c_s1", RQ_ST_COMPLETED);
	tel_life_finish(&ctx, &e);
	assert_int_equal(tel_life_pending(&ctx), 1);
	assert_int_equal(stat(finishes, &st), 0);
	assert_int_equal(sync_spy_count(finishes, NULL), 0);
	tick_now();
	assert_int_equal(sync_spy_wait(finishes, 0, 5000, &last), 1);
	assert_false(pthread_equal(last.thread, pthread_self()));
	assert_int_equal(last.size, st.st_size);
	assert_int_equal(sync_spy_wait(state_dir, 0, 5000, &last), 1);
	assert_true(last.dir);
	/* nothing changed: no sync */
	tick_now();
	usleep(100 * 1000);
	assert_int_equal(sync_spy_count(finishes, NULL), 1);
	link_port(live);
	tick_now();
	assert_int_equal(tel_life_pending(&ctx), 0);
	assert_true(job_is("c_s1", "completed"));
	assert_int_equal(stat(finishes, &st), -1);
}

/* The whole records in the finishes file. */
static int
finish_records(void)
{
	const char *rec;
	size_t len = 0, off = 8, rlen;	/* after "ringqFn1" */
	char *buf;
	int fd, n = 0;

	assert_true((fd = open(finishes, O_RDONLY)) != -1);
	assert_non_null(buf = rq_read_all(fd, &len));
	close(fd);
	assert_true(len >= 8 && memcmp(buf, "ringqFn1", 8) == 0);
	while (rq_record_next(buf, len, &off, &rec, &rlen, 1 << 20))
		n++;
	assert_int_equal(off, len);
	free(buf);
	return n;
}

/* Stops the telserver with Redis out of reach (what it keeps stays in its
 * file), then starts it again, still without Redis: its first tick reads
 * the file. */
static void
restart_without_redis(int dead)
{
	int live = cfg.redis_port;

	teardown(NULL);
	memset(&ctx, 0, sizeof(ctx));
	ctx.cfg = &cfg;
	assert_non_null(ctx.root = su_root_create(&ctx));
	cfg.redis_port = dead;
	tel_life_open(&ctx);
	cfg.redis_port = live;
	tel_life_tick(&ctx);
	assert_false(ctx.recovered);
}

/* The finishes file is appended to, never written beside and renamed over
 * (a power cut can leave such a file empty, on XFS): a second finish kept
 * goes after the first, in the same file.  A next start, Redis still out
 * of reach, reads both, cuts what a kill -9 tore, and appends only what it
 * keeps itself; once Redis is back it records all three, and the file is
 * gone. */
static void
test_kept_finishes_appended(void **state)
{
	struct rq_attempt_end e;
	struct stat first, st;
	int live = ctx.redis.port, dead = testredis_free_port();
	FILE *f;
	/* (a previous run's file holds valid call ids only) */
	static const char A1[] = "c_0000000000000000000000a1",
	    A2[] = "c_0000000000000000000000a2",
	    A3[] = "c_0000000000000000000000a3";

	job_claimed(A1);
	job_claimed(A2);
	job_claimed(A3);
	link_port(dead);
	end_of(&e, A1, RQ_ST_COMPLETED);
	tel_life_finish(&ctx, &e);
	assert_int_equal(stat(finishes, &first), 0);
	end_of(&e, A2, RQ_ST_FAILED);
	tel_life_finish(&ctx, &e);
	assert_int_equal(stat(finishes, &st), 0);
	assert_int_equal(st.st_ino, first.st_ino);
	assert_true(st.st_size > first.st_size);
	assert_int_equal(finish_records(), 2);

	assert_non_null(f = fopen(finishes, "ab"));
	assert_int_equal(fwrite("\x30\0\0\0\x83", 1, 5, f), 5);
	assert_int_equal(fclose(f), 0);
	restart_without_redis(dead);
	assert_int_equal(tel_life_pending(&ctx), 2);
	assert_int_equal(finish_records(), 2);	/* the torn tail cut */
	end_of(&e, A3, RQ_ST_COMPLETED);
	tel_life_finish(&ctx, &e);
	assert_int_equal(tel_life_pending(&ctx), 3);
	assert_int_equal(finish_records(), 3);	/* not the first two again */

	link_port(live);
	tick_now();
	assert_true(ctx.recovered);
	assert_int_equal(tel_life_pending(&ctx), 0);
	assert_true(job_is(A1, "completed"));
	assert_true(job_is(A2, "retrying"));
	assert_true(job_is(A3, "completed"));
	assert_int_equal(stat(finishes, &st), -1);
}

/* A finish Redis refused until it was dropped is marked so in the file:
 * a next start leaves it out, rather than hold its recovery up for
 * LIFE_FINISH_TRIES rounds on it again, while a finish still kept beside
 * it comes back. */
static void
test_dropped_finish_settled(void **state)
{
	struct rq_attempt_end e;
	int live = ctx.redis.port, i;
	/* (the job keys hold strings: the finish script fails on them) */
	static const char B1[] = "c_0000000000000000000000b1",
	    B2[] = "c_0000000000000000000000b2";

	testredis_do("SET rq:job:%s x", B1);
	testredis_do("SET rq:job:%s x", B2);
	testredis_do("SADD rq:oncall:tel-u %s %s", B1, B2);
	end_of(&e, B1, RQ_ST_COMPLETED);
	tel_life_finish(&ctx, &e);
	for (i = 0; i < 10; i++)
		tick_now();
	end_of(&e, B2, RQ_ST_COMPLETED);
	tel_life_finish(&ctx, &e);
	assert_int_equal(tel_life_pending(&ctx), 2);
	assert_int_equal(finish_records(), 2);
	for (i = 0; i < 40 && tel_life_pending(&ctx) == 2; i++)
		tick_now();
	assert_int_equal(tel_life_pending(&ctx), 1);	/* B1 dropped */
	assert_int_equal(finish_records(), 3);		/* and marked */

	/* B2's job made whole: the finish kept for it is the one recorded
	 * once Redis is back (B1's is gone) */
	testredis_do("DEL rq:job:%s rq:job:%s", B1, B2);
	testredis_do("SREM rq:oncall:tel-u %s", B1);
	job_claimed(B2);
	restart_without_redis(testredis_free_port());
	assert_int_equal(tel_life_pending(&ctx), 1);	/* B2 alone */
	assert_int_equal(finish_records(), 3);
	link_port(live);
	tick_now();
	assert_true(ctx.recovered);
	assert_int_equal(tel_life_pending(&ctx), 0);
	assert_true(job_is(B2, "completed"));
}

/* A finishes file that cannot be written (its directory gone: a full
 * disk fails the same way, at each tick and with each call that ends) is
 * said once, with what it puts at risk, not twenty times a second; once it
 * can be written again, it holds every finish kept meanwhile. */
static void
test_finishes_unwritable_said_once(void **state)
{
	struct rq_attempt_end e;
	FILE *out;
	int live = ctx.redis.port, saved, i;
	static const char *const ids[] = { "c_0000000000000000000000d1",
	    "c_0000000000000000000000d2", "c_0000000000000000000000d3" };

	for (i = 0; i < 3; i++)
		job_claimed(ids[i]);
	link_port(testredis_free_port());
	assert_int_equal(rmdir(state_dir), 0);
	assert_non_null(out = stderr_to_file(&saved));
	for (i = 0; i < 3; i++) {
		end_of(&e, ids[i], RQ_ST_COMPLETED);
		tel_life_finish(&ctx, &e);
		tick_now();
		tick_now();
	}
	stderr_back(out, saved);
	assert_int_equal(tel_life_pending(&ctx), 3);
	assert_int_equal(stderr_lines(out, "finishes: ", finishes), 1);
	rewind(out);
	assert_int_equal(stderr_lines(out, "finishes: a kill -9 now would "
	    "lose the outcome of 1 calls", NULL), 1);
	rewind(out);
	assert_int_equal(stderr_lines(out, "would lose the outcome", NULL), 1);
	fclose(out);

	assert_int_equal(mkdir(state_dir, 0700), 0);
	assert_non_null(out = stderr_to_file(&saved));
	tick_now();
	stderr_back(out, saved);
	assert_int_equal(stderr_lines(out, "finishes: ", "written again"), 1);
	fclose(out);
	assert_int_equal(finish_records(), 3);
	link_port(live);
	tick_now();
	assert_int_equal(tel_life_pending(&ctx), 0);
	for (i = 0; i < 3; i++)
		assert_true(job_is(ids[i], "completed"));
}

/* A finish keeps its own copy of the result: kept while Redis is out of
 * reach, or held back for a batch, it still records what the call's
 * application returned after the caller freed its text. */
static void
test_kept_result(void **state)
{
	struct rq_attempt_end e;
	char *text, b[128];
	redisReply *r;
	int live = ctx.redis.port;
	static const char *const ids[] = { "c_r1", "c_r2" };
	size_t i;

	job_claimed("c_r1");
	job_claimed("c_r2");
	/* kept for a lost connection */
	link_port(testredis_free_port());
	end_of(&e, "c_r1", RQ_ST_COMPLETED);
	text = strdup("{\"end\":\"exit\",\"fields\":{\"n\":\"1\"}}");
	e.result = text;
	tel_life_finish(&ctx, &e);
	memset(text, 'x', strlen(text));
	free(text);
	assert_int_equal(tel_life_pending(&ctx), 1);
	link_port(live);
	/* held back, then recorded in one script */
	tel_life_finish_hold(&ctx);
	end_of(&e, "c_r2", RQ_ST_COMPLETED);
	text = strdup("{\"end\":\"hangup\",\"fields\":{\"n\":\"2\"}}");
	e.result = text;
	tel_life_finish(&ctx, &e);
	memset(text, 'x', strlen(text));
	free(text);
	tel_life_finish_release(&ctx);
	tick_now();
	assert_int_equal(tel_life_pending(&ctx), 0);
	for (i = 0; i < 2; i++) {
		assert_true(job_is(ids[i], "completed"));
		r = testredis_cmd("HGET rq:job:%s result", ids[i]);
		assert_non_null(r);
		assert_int_equal(r->type, REDIS_REPLY_STRING);
		snprintf(b, sizeof(b), "\"fields\":{\"n\":\"%zu\"}", i + 1);
		assert_non_null(strstr(r->str, b));
		freeReplyObject(r);
	}
}

/* A duplicate JOB of a call we hold: never a second call; a claim Redis
 * had lost is taken again, and one that expired meanwhile ends the job
 * (expired) while the call goes on. */
static void
test_duplicate(void **state)
{
	static const char *ids[] = { "c_000000000000000000000f02",
	    "c_000000000000000000000f03" };
	struct tel_call held[2];
	struct rq_msg job;
	int i;

	for (i = 0; i < 2; i++) {
		memset(&held[i], 0, sizeof(held[i]));
		held[i].ctx = &ctx;
		held[i].call_id = (char *)ids[i];
		held[i].attempt = 1;
		/* As if Redis had lost our claim: attempts 1, a new lease. */
		testredis_do("HSET rq:job:%s id %s tenant t1 to +15550001111 "
		    "attempts 1 status scheduled status_rank 1", ids[i],
		    ids[i]);
		testredis_do("ZADD rq:inflight 9999999999999 %s", ids[i]);
	}
	testredis_do("HSET rq:job:%s not_after_ms 1000", ids[1]);
	held[0].next = &held[1];
	held[1].prev = &held[0];
	ctx.calls = &held[0];
	for (i = 0; i < 2; i++) {
		rq_msg_init(&job, RQ_MSG_JOB);
		rq_msg_set(&job, call_id, (char *)ids[i]);
		rq_msg_set(&job, attempt, (uint64_t)1);
		rq_msg_set(&job, tenant, "t1");
		rq_msg_set(&job, to, "+15550001111");
		tel_call_job(&ctx, 0, &job);
	}
	assert_ptr_equal(ctx.calls, &held[0]);
	assert_ptr_equal(held[0].next, &held[1]);
	assert_null(held[1].next);
	assert_int_equal(ctx.active, 0);
	assert_int_equal(testredis_num("ZCARD rq:inflight"), 0);
	assert_int_equal(testredis_num("SISMEMBER rq:oncall:tel-u %s", ids[0]),
	    1);
	assert_true(job_is(ids[0], "dispatched"));
	assert_true(job_is(ids[1], "expired"));
	ctx.calls = NULL;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_refresh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refresh_before_claim,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unfence_flushes_first,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_kept_finishes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_kept_finishes_synced,
		    setup_state, teardown_state),
		cmocka_unit_test_setup_teardown(test_kept_finishes_appended,
		    setup_state, teardown_state),
		cmocka_unit_test_setup_teardown(test_dropped_finish_settled,
		    setup_state, teardown_state),
		cmocka_unit_test_setup_teardown(test_finishes_unwritable_said_once,
		    setup_state, teardown_state),
		cmocka_unit_test_setup_teardown(test_kept_result, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_duplicate, setup,
		    teardown),
	};
	int rc;

	log_init("test_life", 0);
	testredis_start();
	rq_config_defaults(&cfg);
	snprintf(cfg.redis_host, sizeof(cfg.redis_host), "127.0.0.1");
	cfg.redis_port = testredis_port;
	snprintf(cfg.tel_name, sizeof(cfg.tel_name), "tel-u");
	cfg.dry_run = 1;
	su_init();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	su_deinit();
	testredis_stop();
	rq_config_free(&cfg);
	return rc;
}
