/* The lifecycle scripts against ringq-redis.so, for test_redis_module.sh:
 * writes the same jobs into two Redis servers, one without the module (the
 * scripts run in Lua) and one with it (they run as its native commands),
 * then runs the same steps on both, one after the other, through the
 * daemons' own calls (common/lifecycle.c), and compares what each step
 * answered.  What the steps left in the two servers is compared by
 * redis_compare.py afterwards.
 *
 *   rq_module_diff PORT-LUA PORT-NATIVE
 *
 * Prints one line per step; exits 0 when both answered the same, else 1. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher.h"
#include "gateway.h"
#include "keys.h"
#include "lifecycle.h"
#include "log.h"
#include "scheduler.h"
#include "util.h"

static struct rq_redis lua, native;
static int failed;

/* A plain command on both servers (the fixtures). */
static void
both(const char *fmt, ...)
{
	struct rq_redis *r[2] = { &lua, &native };
	redisReply *rep;
	va_list ap;
	int i;

	for (i = 0; i < 2; i++) {
		va_start(ap, fmt);
		rep = redisvCommand(r[i]->c, fmt, ap);
		va_end(ap);
		if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
			fprintf(stderr, "rq_module_diff: %s: %s\n", fmt,
			    rep != NULL ? rep->str : "connection lost");
			exit(1);
		}
		freeReplyObject(rep);
	}
}

static void
same(const char *step, int a, int b)
{
	printf("%-40s lua %d native %d%s\n", step, a, b,
	    a == b ? "" : "  DIFFERENT");
	if (a != b)
		failed = 1;
}

/* A job as the gateway and the dispatcher's take leave it: attempts
 * taken, the lease in rq:inflight; more fields as "field value ...". */
static void
job(const char *id, int attempts, int leased, const char *more)
{
	char fields[1024];

	snprintf(fields, sizeof(fields), "HSET %s%s id %s tenant t1 to "
	    "+15550100%s created_ms 1 not_before_ms 1 attempts %d %s",
	    RQ_KEY_JOB, id, id, id + 1, attempts, more);
	both(fields);
	both("ZADD %st1 1 %s", RQ_KEY_TENANT_CALLS, id);
	both("ZADD %st1 1 %s", RQ_KEY_ACTIVE, id);
	if (leased)
		both("ZADD %s %llu %s", RQ_KEY_INFLIGHT,
		    (unsigned long long)rq_now_ms() + 30000, id);
}

static void
claim(const char *id, uint64_t attempt, const char *node)
{
	char step[80];

	snprintf(step, sizeof(step), "claim %s/%llu on %s", id,
	    (unsigned long long)attempt, node);
	same(step, rq_job_claim(&lua, id, attempt, node),
	    rq_job_claim(&native, id, attempt, node));
}

static void
claim_batch(const char *node, size_t n, const char *const *ids,
    const uint64_t *attempts)
{
	int rc[2][16], ret[2];
	char step[80];
	size_t i;

	ret[0] = rq_job_claim_batch(&lua, node, n, ids, attempts, rc[0]);
	ret[1] = rq_job_claim_batch(&native, node, n, ids, attempts, rc[1]);
	snprintf(step, sizeof(step), "claim batch of %zu on %s", n, node);
	same(step, ret[0], ret[1]);
	for (i = 0; i < n; i++) {
		snprintf(step, sizeof(step), "  %s/%llu", ids[i],
		    (unsigned long long)attempts[i]);
		same(step, rc[0][i], rc[1][i]);
	}
}

/* the scheduler's release of what is due at now_ms, batch at a time */
static void
release(const char *what, uint64_t now_ms, int batch)
{
	struct sched_stats st[2];
	uint64_t next[2];
	char step[120];
	int rc[2];

	memset(st, 0, sizeof(st));
	rc[0] = sched_release(&lua, now_ms, batch, &st[0], &next[0]);
	rc[1] = sched_release(&native, now_ms, batch, &st[1], &next[1]);
	snprintf(step, sizeof(step), "release %s", what);
	same(step, rc[0], rc[1]);
	same("  succeeded (1 = yes)", rc[0] >= 0 && rc[1] >= 0, 1);
	same("  released", (int)st[0].released, (int)st[1].released);
	same("  dropped", (int)st[0].dropped, (int)st[1].dropped);
	same("  expired", (int)st[0].expired, (int)st[1].expired);
	same("  reclaimed", (int)st[0].reclaimed, (int)st[1].reclaimed);
	same("  next due", next[0] == next[1], 1);
}

/* How many keys of pattern have a TTL on r. */
static long long
with_ttl(struct rq_redis *r, const char *pattern)
{
	redisReply *rep;
	long long n = -1;

	rep = redisCommand(r->c, "EVAL %s 0 %s", "local n = 0 "
	    "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do "
	    "if redis.call('PTTL', k) > 0 then n = n + 1 end end return n",
	    pattern);
	if (rep != NULL && rep->type == REDIS_REPLY_INTEGER)
		n = rep->integer;
	if (rep != NULL)
		freeReplyObject(rep);
	return n;
}

/* the dispatcher's take of up to max ready jobs, leased for lease_ms */
static void
take(uint64_t lease_ms, size_t max)
{
	struct rq_msg jobs[2][16];
	size_t n[2], i;
	char step[120];
	int rc[2];

	rc[0] = disp_job_take(&lua, lease_ms, max, jobs[0], &n[0]);
	rc[1] = disp_job_take(&native, lease_ms, max, jobs[1], &n[1]);
	snprintf(step, sizeof(step), "take %zu, lease %llu ms: %d", max,
	    (unsigned long long)lease_ms, rc[0]);
	same(step, rc[0], rc[1]);
	same("  jobs to send", (int)n[0], (int)n[1]);
	for (i = 0; i < n[0] && i < n[1]; i++) {
		struct rq_msg *a = &jobs[0][i], *b = &jobs[1][i];

		snprintf(step, sizeof(step), "  %s/%llu to %s say %s prio %d "
		    "app %s", a->call_id, (unsigned long long)a->attempt,
		    a->to, rq_msg_has(a, say) ? a->say : "-",
		    rq_msg_has(a, priority) ? (int)a->priority : -1,
		    rq_msg_has(a, app_url) ? a->app_url : "-");
		same(step, strcmp(a->call_id, b->call_id) == 0 &&
		    a->attempt == b->attempt && strcmp(a->to, b->to) == 0 &&
		    strcmp(a->tenant, b->tenant) == 0 &&
		    a->present == b->present &&
		    (!rq_msg_has(a, say) || strcmp(a->say, b->say) == 0) &&
		    (!rq_msg_has(a, app_url) ||
		    strcmp(a->app_url, b->app_url) == 0) &&
		    (!rq_msg_has(a, caller_id) ||
		    strcmp(a->caller_id, b->caller_id) == 0) &&
		    a->priority == b->priority, 1);
	}
	for (i = 0; i < n[0]; i++)
		rq_msg_clear(&jobs[0][i]);
	for (i = 0; i < n[1]; i++)
		rq_msg_clear(&jobs[1][i]);
}

/* a job waiting in rq:delayed since due_ms, as the gateway writes it */
static void
queued(const char *id, uint64_t due_ms, const char *more)
{
	char fields[1024];

	snprintf(fields, sizeof(fields), "HSET %s%s id %s tenant t2 to "
	    "+15550200%s created_ms 1 not_before_ms %llu %s", RQ_KEY_JOB, id,
	    id, id + 1, (unsigned long long)due_ms, more);
	both(fields);
	both("ZADD %st2 1 %s", RQ_KEY_TENANT_CALLS, id);
	both("ZADD %st2 1 %s", RQ_KEY_ACTIVE, id);
	both("ZADD %s %llu %s", RQ_KEY_DELAYED, (unsigned long long)due_ms,
	    id);
}

/* Two replies alike: the same shape and text, but for the wait a rate
 * limit gives (ms or s to the next second or day), which is a number on
 * both sides, and an error's wording. */
static int
replies_alike(const redisReply *a, const redisReply *b)
{
	size_t i;

	if (a == NULL || b == NULL || a->type != b->type)
		return 0;
	switch (a->type) {
	case REDIS_REPLY_ERROR:
		return 1;	/* worded by Lua or by the module */
	case REDIS_REPLY_STRING:
	case REDIS_REPLY_STATUS:
		return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
	case REDIS_REPLY_INTEGER:
		return a->integer == b->integer;
	case REDIS_REPLY_NIL:
		return 1;
	case REDIS_REPLY_ARRAY:
		if (a->elements != b->elements)
			return 0;
		if (a->elements == 2 && a->element[0]->type ==
		    REDIS_REPLY_STRING && !strncmp(a->element[0]->str,
		    "rate_", 5))
			return replies_alike(a->element[0], b->element[0]) &&
			    a->element[1]->type == REDIS_REPLY_STRING &&
			    b->element[1]->type == REDIS_REPLY_STRING &&
			    atoi(a->element[1]->str) > 0 &&
			    atoi(b->element[1]->str) > 0;
		for (i = 0; i < a->elements; i++)
			if (!replies_alike(a->element[i], b->element[i]))
				return 0;
		return 1;
	}
	return 0;
}

/* The take's answer itself on both sides, element by element (take()
 * compares what the dispatcher makes of it), then the dispatcher's
 * reading of it.  desc gets the Lua side's answer, the first three
 * elements of each id ("u1 closed 1, u2 2 t1"). */
static void
take_raw(uint64_t lease_ms, size_t max, char *desc, size_t desclen)
{
	struct rq_redis *r[2] = { &lua, &native };
	struct rq_msg jobs[16];
	redisReply *rep[2], *e;
	char lease[32], count[32], step[120];
	const char *argv[6] = { RQ_KEY_READY, RQ_KEY_INFLIGHT, RQ_KEY_HOURS,
	    lease, RQ_KEY_JOB, count };
	size_t n[2], i, k, len = 0;
	int popped[2];

	snprintf(lease, sizeof(lease), "%llu", (unsigned long long)lease_ms);
	snprintf(count, sizeof(count), "%zu", max);
	desc[0] = '\0';
	for (i = 0; i < 2; i++) {
		n[i] = 0;
		popped[i] = -1;
		if ((rep[i] = rq_redis_eval(r[i], &disp_take_script, 3, 6,
		    argv)) == NULL)
			continue;
		popped[i] = disp_job_take_reply(rep[i], max, jobs, &n[i]);
		for (k = 0; k < n[i]; k++)
			rq_msg_clear(&jobs[k]);
	}
	for (i = 0; rep[0] != NULL && rep[0]->type == REDIS_REPLY_ARRAY &&
	    i + 2 < rep[0]->elements && len < desclen; i += RQ_TAKE_SLOTS) {
		len += (size_t)snprintf(desc + len, desclen - len, "%s%s",
		    i > 0 ? ", " : "", rq_reply_str(rep[0]->element[i]) ?
		    rep[0]->element[i]->str : "?");
		for (k = 1; k < 3 && len < desclen; k++) {
			e = rep[0]->element[i + k];
			if (e->type == REDIS_REPLY_INTEGER)
				len += (size_t)snprintf(desc + len,
				    desclen - len, " %lld", e->integer);
			else
				len += (size_t)snprintf(desc + len,
				    desclen - len, " %s", rq_reply_str(e) ?
				    e->str : "-");
		}
	}
	snprintf(step, sizeof(step), "take %zu (its answer), lease %llu ms: "
	    "%d", max, (unsigned long long)lease_ms, popped[0]);
	same(step, popped[0], popped[1]);
	same("  jobs to send", (int)n[0], (int)n[1]);
	same("  the same answer", (rep[0] == NULL && rep[1] == NULL) ||
	    replies_alike(rep[0], rep[1]), 1);
	for (i = 0; i < 2; i++)
		if (rep[i] != NULL)
			freeReplyObject(rep[i]);
}

/* A number r answers (an integer, or the text of one: ZSCORE, HGET);
 * -1 for nil or anything else. */
static long long
vnumber(struct rq_redis *r, const char *fmt, va_list ap)
{
	redisReply *rep;
	long long v = -1;

	rep = redisvCommand(r->c, fmt, ap);
	if (rep != NULL && rep->type == REDIS_REPLY_INTEGER)
		v = rep->integer;
	else if (rep != NULL && rep->type == REDIS_REPLY_STRING)
		v = strtoll(rep->str, NULL, 10);
	if (rep != NULL)
		freeReplyObject(rep);
	return v;
}

static long long
number(struct rq_redis *r, const char *fmt, ...)
{
	long long v;
	va_list ap;

	va_start(ap, fmt);
	v = vnumber(r, fmt, ap);
	va_end(ap);
	return v;
}

/* A number both sides answer (-1: nil), expected to be want on each. */
static void
expect(const char *step, long long want, const char *fmt, ...)
{
	long long v[2];
	va_list ap, aq;

	va_start(ap, fmt);
	va_copy(aq, ap);
	v[0] = vnumber(&lua, fmt, ap);
	v[1] = vnumber(&native, fmt, aq);
	va_end(aq);
	va_end(ap);
	same(step, v[0] == want && v[1] == want, 1);
}

/*
 * The take of ids whose calling hours closed while they waited in
 * rq:ready (hours_until_ms at or before the take's now): each goes to
 * rq:hours, scored by that now, with no attempt counted, no lease and
 * no event; one whose window is still open, or whose hours_until_ms is
 * no number, is dispatched as any other.
 */
static void
take_hours(void)
{
	struct rq_redis *r[2] = { &lua, &native };
	long long events[2], sc, att;
	uint64_t before, after;
	char desc[512], more[96];
	int ok[2] = { 1, 1 }, i;

	before = rq_now_ms();
	snprintf(more, sizeof(more), "hours_until_ms %llu",
	    (unsigned long long)before - 1000);
	job("u1", 1, 0, more);				/* closed */
	job("u2", 0, 0, "hours_until_ms 99999999999999");	/* open */
	job("u3", 0, 0, "hours_until_ms soon");		/* no number */
	job("u4", 0, 0, "hours_until_ms 1e3");		/* closed */
	job("u5", 0, 0, "hours_until_ms inf");		/* never closes */
	both("ZADD %s 1 u1 2 u2 3 u3 4 u4 5 u5", RQ_KEY_READY);
	for (i = 0; i < 2; i++)
		events[i] = number(r[i], "XLEN %s", RQ_KEY_EVENTS);
	take_raw(30000, 16, desc, sizeof(desc));
	after = rq_now_ms();
	printf("  the Lua's answer: %s\n", desc);
	same("  u1 and u4 closed, at their attempt", strcmp(desc,
	    "u1 closed 1, u2 1 t1, u3 1 t1, u4 closed 0, u5 1 t1") == 0, 1);
	for (i = 0; i < 2; i++) {
		sc = number(r[i], "ZSCORE %s u1", RQ_KEY_HOURS);
		ok[i] = sc >= (long long)before && sc <= (long long)after;
		sc = number(r[i], "ZSCORE %s u4", RQ_KEY_HOURS);
		ok[i] = ok[i] && sc >= (long long)before &&
		    sc <= (long long)after &&
		    number(r[i], "ZCARD %s", RQ_KEY_HOURS) == 2;
	}
	same("  rq:hours: u1 and u4, by the take's now", ok[0] && ok[1], 1);
	for (i = 0; i < 2; i++) {
		att = number(r[i], "HGET %su1 attempts", RQ_KEY_JOB);
		ok[i] = att == 1 && number(r[i], "HGET %su4 attempts",
		    RQ_KEY_JOB) == 0 &&
		    number(r[i], "ZSCORE %s u1", RQ_KEY_INFLIGHT) == -1 &&
		    number(r[i], "ZSCORE %s u4", RQ_KEY_INFLIGHT) == -1 &&
		    number(r[i], "ZCARD %s", RQ_KEY_READY) == 0 &&
		    number(r[i], "XLEN %s", RQ_KEY_EVENTS) == events[i];
	}
	same("  no attempt, lease or event for them", ok[0] && ok[1], 1);
	for (i = 0; i < 2; i++)
		ok[i] = number(r[i], "HGET %su2 attempts", RQ_KEY_JOB) == 1 &&
		    number(r[i], "ZSCORE %s u2", RQ_KEY_INFLIGHT) > 0 &&
		    number(r[i], "ZSCORE %s u3", RQ_KEY_INFLIGHT) > 0 &&
		    number(r[i], "ZSCORE %s u5", RQ_KEY_INFLIGHT) > 0;
	same("  u2, u3 and u5 leased", ok[0] && ok[1], 1);

	/* rq:hours of the wrong type: the take fails where the script
	 * fails (the id popped stays out of rq:ready, as after any error
	 * in a script) */
	job("u6", 0, 0, "hours_until_ms 1");
	both("ZADD %s 1 u6", RQ_KEY_READY);
	both("RENAME %s rq:hours:saved", RQ_KEY_HOURS);
	both("SET %s not-a-zset", RQ_KEY_HOURS);
	take_raw(30000, 16, desc, sizeof(desc));
	both("DEL %s", RQ_KEY_HOURS);
	both("RENAME rq:hours:saved %s", RQ_KEY_HOURS);
}

/*
 * The gateway's intake of call id for tenant (gw_policy_store_create's
 * arguments): the script by EVAL on one side, ringq.create on the other.
 * limits: "rps rpd max_concurrent"; idem: the idempotency key ("" none);
 * number ("" for a SIP target); biz: whether a business (acme) is named;
 * due: not_before_ms; more: the job's other fields, "field value ...".
 * Returns the type of the Lua side's reply (-1: none).
 */
static int
intake(const char *what, const char *tenant, const char *id,
    const char *limits, const char *idem, const char *number, int biz,
    uint64_t due, const char *more)
{
	char kidem[160], kdnct[160], krate[160], kact[160], kcalls[160];
	char kjob[64], nb[24], created[24], rps[16], rpd[16], maxc[16];
	char buf[512], *f[24], *save, step[160];
	const char *av[64];
	redisReply *rep[2];
	int n = 0, i, nf = 0, type;

	snprintf(kidem, sizeof(kidem), "%s%s:%s", RQ_KEY_IDEM, tenant,
	    idem[0] ? idem : "-");
	snprintf(kdnct, sizeof(kdnct), "%s%s", RQ_KEY_DNC_TENANT, tenant);
	snprintf(krate, sizeof(krate), "%s%s", RQ_KEY_RATE, tenant);
	snprintf(kact, sizeof(kact), "%s%s", RQ_KEY_ACTIVE, tenant);
	snprintf(kcalls, sizeof(kcalls), "%s%s", RQ_KEY_TENANT_CALLS, tenant);
	snprintf(kjob, sizeof(kjob), "%s%s", RQ_KEY_JOB, id);
	snprintf(nb, sizeof(nb), "%llu", (unsigned long long)due);
	snprintf(created, sizeof(created), "%llu",
	    (unsigned long long)rq_now_ms());
	if (sscanf(limits, "%15s %15s %15s", rps, rpd, maxc) != 3)
		exit(2);
	snprintf(buf, sizeof(buf), "%s", more);
	for (f[nf] = strtok_r(buf, " ", &save); f[nf] != NULL && nf < 23;
	    f[++nf] = strtok_r(NULL, " ", &save))
		;
	av[n++] = "EVAL"; av[n++] = gw_create_lua; av[n++] = "9";
	av[n++] = kidem; av[n++] = kdnct; av[n++] = RQ_KEY_DNC_CUSTOMER;
	av[n++] = RQ_KEY_DNC_BUSINESS "acme"; av[n++] = krate;
	av[n++] = kact; av[n++] = kjob; av[n++] = kcalls;
	av[n++] = RQ_KEY_DELAYED;
	av[n++] = number; av[n++] = rps; av[n++] = rpd; av[n++] = maxc;
	av[n++] = id; av[n++] = "86400"; av[n++] = idem[0] ? "1" : "0";
	av[n++] = biz ? "1" : "0"; av[n++] = RQ_KEY_JOB; av[n++] = nb;
	av[n++] = created; av[n++] = tenant;
	av[n++] = number[0] ? number : "sip:x@127.0.0.1";
	av[n++] = strstr(more, "callback_url") ? "1" : "0";
	for (i = 0; i < nf; i++)
		av[n++] = f[i];
	rep[0] = redisCommandArgv(lua.c, n, av, NULL);
	av[1] = "ringq.create";
	rep[1] = redisCommandArgv(native.c, n - 1, av + 1, NULL);
	snprintf(step, sizeof(step), "create %s: %s %s", id, what,
	    rep[0] == NULL ? "(lost)" : rep[0]->type == REDIS_REPLY_ARRAY &&
	    rep[0]->elements > 0 ? rep[0]->element[0]->str :
	    rep[0]->str != NULL ? rep[0]->str : "?");
	same(step, replies_alike(rep[0], rep[1]), 1);
	type = rep[0] != NULL ? rep[0]->type : -1;
	for (i = 0; i < 2; i++)
		if (rep[i] != NULL)
			freeReplyObject(rep[i]);
	return type;
}

/* The intake for tenant t3. */
static void
create(const char *what, const char *id, const char *limits,
    const char *idem, const char *number, int biz, uint64_t due,
    const char *more)
{
	intake(what, "t3", id, limits, idem, number, biz, due, more);
}

/* The intake for a tenant of another name, with rate limits (the rate
 * keys hold the name); ok: whether it is queued, or fails. */
static void
create_for(const char *what, const char *tenant, const char *id, int ok)
{
	char krate[160];
	int type;

	type = intake(what, tenant, id, "100 10000 10", "", "+15550400000", 0,
	    rq_now_ms(), "priority 5");
	same(ok ? "  queued" : "  refused", type == (ok ? REDIS_REPLY_STRING :
	    REDIS_REPLY_ERROR), 1);
	/* the second's counter lives 2 s: gone before the comparison on
	 * one side, or not, as the clock falls */
	snprintf(krate, sizeof(krate), "%s%s", RQ_KEY_RATE, tenant);
	both("EVAL %s 0 %s:s:*", "for _, k in ipairs(redis.call('KEYS', "
	    "ARGV[1])) do redis.call('DEL', k) end", krate);
}

static struct rq_attempt_end
end_of(const char *id, uint64_t attempt, const char *node, const char *how,
    const char *detail, const char *result)
{
	struct rq_attempt_end e;

	memset(&e, 0, sizeof(e));
	e.call_id = id;
	e.attempt = attempt;
	e.node = node;
	e.started_ms = rq_now_ms() - 5000;
	e.detail = detail;
	e.result = result;
	e.jitter = 1.0;		/* the same retry time on both sides */
	if (strcmp(how, "completed") == 0) {
		e.status = RQ_ST_COMPLETED;
		e.sip_code = 200;
		e.answered_ms = e.started_ms + 1000;
		e.duration_ms = 4000;
	} else {
		e.status = RQ_ST_FAILED;
		e.reason = how;
		e.sip_code = strcmp(how, "busy") == 0 ? 486 : 0;
	}
	return e;
}

/* finish id/attempt on node: how is "completed" or a reason ("" none);
 * returns the Lua side's code */
static int
finish(const char *id, uint64_t attempt, const char *node, const char *how,
    const char *detail, const char *result)
{
	struct rq_attempt_end e = end_of(id, attempt, node, how, detail,
	    result);
	enum rq_status st[2] = { RQ_ST_QUEUED, RQ_ST_QUEUED };
	char step[120];
	int rc[2];

	rc[0] = rq_job_finish(&lua, &e, &st[0]);
	rc[1] = rq_job_finish(&native, &e, &st[1]);
	snprintf(step, sizeof(step), "finish %s/%llu %s", id,
	    (unsigned long long)attempt, how);
	same(step, rc[0], rc[1]);
	if (rc[0] > 0 && rc[0] == rc[1]) {
		snprintf(step, sizeof(step), "  status %s / %s",
		    rq_status_name(st[0]), rq_status_name(st[1]));
		same(step, (int)st[0], (int)st[1]);
	}
	return rc[0];
}

/* a job claimed on node, ready for its finish */
static void
dialled(const char *id, int attempt, const char *node, const char *more)
{
	char step[80];

	job(id, attempt, 1, more);
	snprintf(step, sizeof(step), "claim %s/%d on %s", id, attempt, node);
	same(step, rq_job_claim(&lua, id, (uint64_t)attempt, node),
	    rq_job_claim(&native, id, (uint64_t)attempt, node));
}

static void
connect_to(struct rq_redis *r, const char *port, int module,
    struct rq_script **scripts, size_t n)
{
	rq_redis_init(r, "127.0.0.1", atoi(port), scripts, n);
	if (rq_redis_ready(r) == -1) {
		fprintf(stderr, "rq_module_diff: redis on port %s: down\n",
		    port);
		exit(1);
	}
	if (r->module != module) {
		fprintf(stderr, "rq_module_diff: redis on port %s: the module "
		    "is %s, it should %s\n", port, r->module ? "loaded" :
		    "not loaded", module ? "be" : "not be");
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	struct rq_script *scripts[] = { &rq_claim_script,
	    &rq_claim_batch_script, &rq_finish_script,
	    &rq_finish_batch_script, &rq_interrupt_script,
	    &sched_release_script, &disp_take_script };
	static const char *const ids[] = { "c11", "c12", "c13", "c14",
	    "c15", "c16" };
	static const uint64_t atts[] = { 1, 1, 2, 1, 1, 3 };

	if (argc != 3) {
		fprintf(stderr, "usage: rq_module_diff PORT-LUA PORT-NATIVE\n");
		return 1;
	}
	log_init("rq_module_diff", 0);
	connect_to(&lua, argv[1], 0, scripts, 7);
	connect_to(&native, argv[2], 1, scripts, 7);

	/* claims, one by one: each way a claim can end */
	job("c1", 1, 1, "");				/* dispatched */
	job("c2", 2, 1, "");				/* stale: attempt 2 now */
	job("c3", 1, 0, "");				/* stale: lease gone */
	job("c4", 1, 1, "status completed status_rank 22");	/* ended */
	job("c5", 1, 1, "not_after_ms 1000 ttl_ms 3600000");	/* expired */
	both("ZADD %s %llu c6", RQ_KEY_INFLIGHT,	/* vanished job */
	    (unsigned long long)rq_now_ms() + 30000);
	job("c7", 2, 1, "status retrying status_rank 21 reason busy "
	    "sip_code 486 callback_url http://127.0.0.1:9/cb");
	job("c8", 1, 1, "status_rank abc ttl_ms 0x10");	/* corrupt fields */
	job("c9", 1, 1, "status answered status_rank 20");	/* rank ahead */
	job("c10", 1, 1, "not_after_ms 1000 ttl_ms 99999999999999999");
	claim("c1", 1, "tel1");
	claim("c1", 1, "tel1");				/* again: stale */
	claim("c2", 1, "tel1");
	claim("c3", 1, "tel1");
	claim("c4", 1, "tel1");
	claim("c5", 1, "tel1");
	claim("c6", 1, "tel1");
	claim("c7", 2, "tel/2 \"x\"\t\x7f");		/* cjson's escapes */
	claim("c8", 1, "tel1");
	claim("c9", 1, "tel1");
	claim("c10", 1, "tel1");

	/* a batch, mixed */
	job("c11", 1, 1, "callback_url x");
	job("c12", 1, 1, "not_after_ms 1000");
	job("c13", 2, 1, "status_rank 21 reason no_answer");
	job("c14", 2, 1, "");				/* stale */
	job("c15", 1, 1, "status canceled status_rank 24");
	job("c16", 3, 1, "priority 9");
	claim_batch("tel3", 6, ids, atts);
	claim_batch("tel3", 6, ids, atts);		/* all stale now */

	/* finishes, one by one: each way the retry rules can go (the jitter
	 * fixed, and first delays of 10 s, far above the comparison's
	 * tolerance, so that a wrong backoff shows) */
	both("SADD %s +155501f8", RQ_KEY_DNC_CUSTOMER);
	both("SADD %st1 +155501f9", RQ_KEY_DNC_TENANT);
	both("SADD %sbakery +155501fa", RQ_KEY_DNC_BUSINESS);
	dialled("f1", 1, "tel1", "callback_url http://127.0.0.1:9/cb");
	finish("f1", 1, "tel1", "completed", NULL, NULL);
	finish("f1", 1, "tel1", "completed", NULL, NULL);	/* repeated */
	dialled("f2", 1, "tel1", "");
	finish("f2", 1, "tel1", "completed", "BYE from the callee",
	    "{\"end\":\"exit\",\"fields\":{\"a\":\"1/2\",\"b\":[1,2.5,"
	    "null],\"c\":{\"d\":true}}}");
	dialled("f3", 1, "tel1", "");
	finish("f3", 1, "tel1", "completed", NULL, "not an object / \"x\"");
	dialled("f4", 1, "tel1", "");
	finish("f4", 1, "tel1", "declined", "603 Decline", NULL);
	dialled("f5", 1, "tel1", "retry_busy 3:10000");
	finish("f5", 1, "tel1", "busy", "486 Busy Here", NULL);
	dialled("f6", 2, "tel1", "retry_busy 3:1000 tries_busy 2");
	finish("f6", 2, "tel1", "busy", "486 Busy Here", NULL);
	dialled("f7", 2, "tel1", "retry_busy 3:1000 tries_busy 2");
	finish("f7", 2, "tel1", "busy", NULL, NULL);
	dialled("f8", 1, "tel1", "max_attempts 1");
	finish("f8", 1, "tel1", "no_answer", NULL, NULL);
	dialled("f9", 1, "tel1", "max_attempts 1");
	finish("f9", 1, "tel1", "no_answer", "no answer in 30 s", NULL);
	dialled("f10", 1, "tel1", "retry_network 1:1000");
	finish("f10", 1, "tel1", "unreachable", NULL, NULL);
	dialled("f11", 1, "tel1", "retry_network bad tries_network 2");
	finish("f11", 1, "tel1", "media", NULL, NULL);
	dialled("f12", 1, "tel1", "to +155501f8");	/* customer DNC */
	finish("f12", 1, "tel1", "busy", NULL, NULL);
	dialled("f13", 1, "tel1", "to +155501f9");	/* tenant DNC */
	finish("f13", 1, "tel1", "busy", "486", NULL);
	dialled("f13b", 1, "tel1", "to +155501fa business bakery");
	finish("f13b", 1, "tel1", "busy", NULL, NULL);	/* business DNC */
	dialled("f13c", 1, "tel1", "to +155501fa business other");
	finish("f13c", 1, "tel1", "busy", NULL, NULL);	/* another's: retried */
	dialled("f14", 1, "tel1", "retry_busy 3:2000");
	both("HSET %sf14 not_after_ms %llu", RQ_KEY_JOB,
	    (unsigned long long)rq_now_ms() + 100);	/* retry too late */
	finish("f14", 1, "tel1", "busy", NULL, NULL);
	dialled("f15", 1, "tel1", "");
	finish("f15", 1, "tel1", "", "odd\tdetail \"quoted\" \x01", NULL);
	dialled("f16", 2, "tel1", "retry_no_answer 5:10000 "
	    "tries_no_answer 1");
	finish("f16", 2, "tel1", "no_answer", NULL, "{\"partial\":1}");
	dialled("f17", 1, "tel1", "");
	both("HSET %sf17 dialed 7", RQ_KEY_JOB);	/* another attempt's */
	finish("f17", 1, "tel1", "completed", NULL, NULL);
	dialled("f18", 1, "tel1", "");
	both("DEL %sf18", RQ_KEY_JOB);			/* vanished */
	finish("f18", 1, "tel1", "completed", NULL, NULL);

	{	/* a long detail: the far end's reason phrase */
		char more[2100];

		memset(more, 'x', 2000);
		more[2000] = '\0';
		dialled("f19", 1, "tel1", "retry_busy 3:10000");
		finish("f19", 1, "tel1", "busy", more, NULL);
		dialled("f20", 2, "tel1", "retry_busy 3:1000 tries_busy 2");
		finish("f20", 2, "tel1", "busy", more, NULL);
	}
	/* keys of the wrong type: the step fails where the script fails,
	 * what ran before it stays, nothing after it is done */
	dialled("w1", 1, "tel1", "");
	both("RENAME %stel1 rq:oncall:saved", RQ_KEY_ONCALL);
	both("SET %stel1 not-a-set", RQ_KEY_ONCALL);
	finish("w1", 1, "tel1", "completed", NULL, NULL);
	both("DEL %stel1", RQ_KEY_ONCALL);
	both("RENAME rq:oncall:saved %stel1", RQ_KEY_ONCALL);
	/* an older version's timeline key, broken: nothing writes it now */
	dialled("w5", 1, "tel1", "");
	both("SET %sw5 not-a-hash", RQ_KEY_TIMELINE);
	finish("w5", 1, "tel1", "completed", NULL, NULL);
	dialled("w2", 1, "tel1", "");
	both("DEL %st1", RQ_KEY_ACTIVE);
	both("SET %st1 not-a-zset", RQ_KEY_ACTIVE);
	finish("w2", 1, "tel1", "completed", NULL, NULL);
	both("DEL %st1", RQ_KEY_ACTIVE);
	dialled("w3", 1, "tel1", "retry_busy 3:10000");
	both("SET %s not-a-zset", RQ_KEY_DELAYED);
	finish("w3", 1, "tel1", "busy", NULL, NULL);
	both("DEL %s", RQ_KEY_DELAYED);
	dialled("w4", 1, "tel1", "");
	both("RENAME %s rq:events:saved", RQ_KEY_EVENTS);
	both("SET %s not-a-stream", RQ_KEY_EVENTS);
	finish("w4", 1, "tel1", "completed", NULL, NULL);
	both("DEL %s", RQ_KEY_EVENTS);
	both("RENAME rq:events:saved %s", RQ_KEY_EVENTS);
	/* a do-not-call list made by hand as another type: read before the
	 * finish's first write, it ends the call as a list the customer is
	 * on (not retried), rather than failing the finish with the id out
	 * of rq:oncall and the call dispatched for good */
	dialled("w6", 1, "tel1", "to +155501fb business florist "
	    "retry_busy 3:10000");
	both("SET %sflorist not-a-set", RQ_KEY_DNC_BUSINESS);
	same("  w6 ends", finish("w6", 1, "tel1", "busy", NULL, NULL), 1);
	expect("  w6 failed", 16 + RQ_ST_FAILED, "HGET %sw6 status_rank",
	    RQ_KEY_JOB);
	expect("  w6 not on call", 0, "SISMEMBER %stel1 w6", RQ_KEY_ONCALL);
	expect("  w6 not retried", -1, "ZSCORE %s w6", RQ_KEY_DELAYED);
	both("DEL %sflorist", RQ_KEY_DNC_BUSINESS);

	/* a batch of finishes, mixed, and an interrupted node */
	{
		struct rq_attempt_end e[5];
		enum rq_status st[2][5];
		int rc[2][5], ret[2], i;
		char step[80];

		dialled("g1", 1, "tel4", "");
		dialled("g2", 1, "tel4", "retry_busy 3:10000");
		dialled("g3", 1, "tel4", "");
		dialled("g4", 1, "tel4", "max_attempts 1");
		e[0] = end_of("g1", 1, "tel4", "completed", NULL, NULL);
		e[1] = end_of("g2", 1, "tel4", "busy", NULL, NULL);
		e[2] = end_of("g3", 1, "tel4", "completed", NULL, "[1,2]");
		e[3] = end_of("g4", 1, "tel4", "interrupted", "BYE", NULL);
		e[4] = end_of("g1", 1, "tel4", "completed", NULL, NULL);
		ret[0] = rq_job_finish_batch(&lua, 5, e, st[0], rc[0]);
		ret[1] = rq_job_finish_batch(&native, 5, e, st[1], rc[1]);
		same("finish batch of 5 on tel4", ret[0], ret[1]);
		for (i = 0; i < 5; i++) {
			snprintf(step, sizeof(step), "  %s/1", e[i].call_id);
			same(step, rc[0][i], rc[1][i]);
			if (rc[0][i] == 1 && rc[1][i] == 1)
				same("  its status", (int)st[0][i],
				    (int)st[1][i]);
		}
		dialled("h1", 1, "tel5", "retry_network 3:1000");
		dialled("h2", 1, "tel5", "retry_network 3:1000");
		both("SET %stel6 1", RQ_KEY_NODE);		/* alive */
		dialled("h3", 1, "tel6", "");
		same("interrupt tel5", rq_node_interrupt(&lua, "tel5",
		    "telserver tel5 died", NULL), rq_node_interrupt(&native,
		    "tel5", "telserver tel5 died", NULL));
		same("interrupt tel6 (alive)", rq_node_interrupt(&lua, "tel6",
		    "x", NULL), rq_node_interrupt(&native, "tel6", "x", NULL));
	}

	/* late outcomes: a telserver's finish after the sweep interrupted
	 * the attempt, its retry waiting in rq:delayed (h4, h5, h9, h11,
	 * h12, h13, h14), in rq:ready (h6), leased by a dispatcher (h7),
	 * claimed (h8), in rq:hours (h10) */
	{
		static const char *const late[] = { "h4", "h5", "h6", "h7",
		    "h8", "h9", "h10", "h11", "h12", "h13", "h14" };
		struct rq_attempt_end e[2];
		enum rq_status st[2][2];
		int rc[2][2], ret[2];
		size_t i;

		for (i = 0; i < sizeof(late) / sizeof(late[0]); i++)
			dialled(late[i], 1, "tel7", "retry_network 3:1000");
		same("interrupt tel7", rq_node_interrupt(&lua, "tel7",
		    "telserver tel7 seems dead", NULL), rq_node_interrupt(&native,
		    "tel7", "telserver tel7 seems dead", NULL));
		both("ZREM %s h6 h7 h8 h10", RQ_KEY_DELAYED);
		both("ZADD %s 1 h6", RQ_KEY_READY);
		both("ZADD %s 1 h10", RQ_KEY_HOURS);
		both("HSET %sh7 attempts 2", RQ_KEY_JOB);
		both("HSET %sh8 attempts 2", RQ_KEY_JOB);
		both("ZADD %s 99999999999999 h7 99999999999999 h8",
		    RQ_KEY_INFLIGHT);
		claim("h8", 2, "tel8");
		same("  late: h4 recorded", finish("h4", 1, "tel7",
		    "completed", NULL, "{\"a\":1}"), 3);
		expect("  h4 completed", 16 + RQ_ST_COMPLETED,
		    "HGET %sh4 status_rank", RQ_KEY_JOB);
		expect("  h4's retry taken back", -1, "ZSCORE %s h4",
		    RQ_KEY_DELAYED);
		same("  again: ignored", finish("h4", 1, "tel7", "completed",
		    NULL, NULL), 0);
		same("  busy: ignored", finish("h5", 1, "tel7", "busy",
		    "486 Busy Here", NULL), 0);
		expect("  h5's retry stays", 16 + RQ_ST_RETRYING,
		    "HGET %sh5 status_rank", RQ_KEY_JOB);
		same("  declined: recorded", finish("h6", 1, "tel7",
		    "declined", "603 Decline", NULL), 3);
		expect("  h6 out of rq:ready", -1, "ZSCORE %s h6",
		    RQ_KEY_READY);
		same("  leased: recorded", finish("h7", 1, "tel7",
		    "completed", NULL, NULL), 3);
		expect("  h7's lease dropped", -1, "ZSCORE %s h7",
		    RQ_KEY_INFLIGHT);
		expect("  h7's attempt given back", 1, "HGET %sh7 attempts",
		    RQ_KEY_JOB);
		same("  claimed: ignored", finish("h8", 1, "tel7",
		    "completed", NULL, NULL), 0);
		expect("  h8 goes on", 32 + RQ_ST_DISPATCHED,
		    "HGET %sh8 status_rank", RQ_KEY_JOB);
		same("  no reason: recorded", finish("h9", 1, "tel7", "",
		    "no reason", NULL), 3);
		expect("  h9 failed", 16 + RQ_ST_FAILED,
		    "HGET %sh9 status_rank", RQ_KEY_JOB);
		expect("  h9's retry taken back", -1, "ZSCORE %s h9",
		    RQ_KEY_DELAYED);
		same("  in rq:hours: recorded", finish("h10", 1, "tel7",
		    "completed", NULL, NULL), 3);
		expect("  h10 out of rq:hours", -1, "ZSCORE %s h10",
		    RQ_KEY_HOURS);
		same("  another node's: ignored", finish("h11", 1, "tel9",
		    "completed", NULL, NULL), 0);
		expect("  h11's retry stays", 16 + RQ_ST_RETRYING,
		    "HGET %sh11 status_rank", RQ_KEY_JOB);
		both("HDEL %sh14 node", RQ_KEY_JOB);
		same("  a job without its node: ignored", finish("h14", 1,
		    "tel7", "completed", NULL, NULL), 0);
		expect("  h14's retry stays", 16 + RQ_ST_RETRYING,
		    "HGET %sh14 status_rank", RQ_KEY_JOB);

		e[0] = end_of("h12", 1, "tel7", "completed", NULL, NULL);
		e[1] = end_of("h13", 1, "tel7", "no_answer", NULL, NULL);
		ret[0] = rq_job_finish_batch(&lua, 2, e, st[0], rc[0]);
		ret[1] = rq_job_finish_batch(&native, 2, e, st[1], rc[1]);
		same("late finishes in a batch", ret[0], ret[1]);
		same("  h12 recorded", rc[0][0] == 3 && rc[1][0] == 3, 1);
		same("  h13 ignored", rc[0][1] == 0 && rc[1][1] == 0, 1);
		expect("  h12's retry taken back", -1, "ZSCORE %s h12",
		    RQ_KEY_DELAYED);
	}

	/* the scheduler's release and the dispatcher's take: each way a due
	 * job, an expired lease and a ready id can go */
	{
		uint64_t now = rq_now_ms();

		both("DEL %s %s %s", RQ_KEY_DELAYED, RQ_KEY_READY,
		    RQ_KEY_INFLIGHT);
		queued("r1", now - 5000, "priority 9 say hello");
		queued("r2", now - 4000, "");			/* scheduled */
		queued("r3", now - 3000, "attempts 1");		/* a retry */
		queued("r4", now - 3000, "not_after_ms 1000");	/* expired */
		queued("r5", now - 2000, "status canceled status_rank 8");
		both("ZADD %s %llu r6", RQ_KEY_DELAYED,		/* vanished */
		    (unsigned long long)now - 2000);
		queued("r7", now - 1000, "priority 0 caller_id +15559990000 "
		    "app_url http://127.0.0.1:9/app.vxml callback_url x");
		queued("r8", now - 1000, "priority 12");	/* clamped */
		queued("r9", now - 1000, "priority abc max_attempts 2");
		queued("r15", now - 1000, "not_after_ms 1000");
		both("HSET %sr15 attempts %s", RQ_KEY_JOB,	/* Lua's 1 */
		    "1                                                      "
		    "                   ");
		queued("r10", now + 600000, "");		/* not yet due */
		job("r11", 1, 0, "priority 3 not_before_ms 42");
		both("ZADD %s 1 r11", RQ_KEY_INFLIGHT);		/* lease over */
		job("r12", 0, 0, "");
		both("ZADD %s 1 r12", RQ_KEY_INFLIGHT);		/* attempt 0 */
		job("r13", 1, 0, "status failed status_rank 23");
		both("ZADD %s 1 r13", RQ_KEY_INFLIGHT);		/* ended */
		both("ZADD %s 1 r14", RQ_KEY_INFLIGHT);		/* vanished */
		/* back from rq:hours, or moved back by PATCH: scheduled
		 * already, so released without a second scheduled event */
		queued("r16", now - 1000, "status scheduled status_rank 1");
		/* a job key that is no hash, due and with a lease over:
		 * forgotten, the others released all the same */
		both("SET %sr17 x", RQ_KEY_JOB);
		both("ZADD %s %llu r17", RQ_KEY_DELAYED,
		    (unsigned long long)now - 1000);
		both("SET %sr18 x", RQ_KEY_JOB);
		both("ZADD %s 1 r18", RQ_KEY_INFLIGHT);
		release("of 4 (a batch smaller than what is due)", now, 4);
		release("of the rest", now, 100);
		release("of nothing due", now, 100);
		{
			static const char count[] = "EVAL %s 1 %s r16";
			static const char lua_count[] = "local n = 0 "
			    "for _, e in ipairs(redis.call('XRANGE', KEYS[1], "
			    "'-', '+')) do for i = 1, #e[2], 2 do "
			    "if e[2][i] == 'call_id' and e[2][i + 1] == ARGV[1] "
			    "then n = n + 1 end end end return n";

			same("r16 released, no second scheduled event",
			    (int)number(&lua, count, lua_count, RQ_KEY_EVENTS),
			    0);
			same("  (module)", (int)number(&native, count, lua_count,
			    RQ_KEY_EVENTS), 0);
			same("  in rq:ready", number(&lua, "ZSCORE %s r16",
			    RQ_KEY_READY) > 0, number(&native, "ZSCORE %s r16",
			    RQ_KEY_READY) > 0);
		}

		take(30000, 3);
		/* ready jobs that cannot be dialled */
		job("t1", 3, 0, "max_attempts 3");		/* exhausted */
		job("t2", 1, 0, "not_after_ms 1000");		/* expired */
		both("HDEL %st3 to", RQ_KEY_JOB);
		job("t4", 0, 0, "status completed status_rank 6");
		both("ZADD %s 1 t1 2 t2 3 t4 4 t5", RQ_KEY_READY);
		both("HSET %st3 id t3 tenant t1", RQ_KEY_JOB);	/* no target */
		both("ZADD %s 5 t3", RQ_KEY_READY);
		take(30000, 16);
		take(30000, 16);				/* empty */
		/* a lease past a day, which now + it could overflow: refused,
		 * the job left ready */
		job("t6", 0, 0, "");
		both("ZADD %s 6 t6", RQ_KEY_READY);
		take(2 * 86400000ULL, 16);
		take(30000, 16);
		take_hours();
	}

	/* the gateway's intake: each way the policy checks can answer */
	{
		uint64_t now = rq_now_ms(), sec = now / 1000, k;

		both("SADD %st3 +15550300001", RQ_KEY_DNC_TENANT);
		both("SADD %s +15550300002", RQ_KEY_DNC_CUSTOMER);
		both("SADD %sacme +15550300003", RQ_KEY_DNC_BUSINESS);
		create("queued", "n1", "0 0 0", "", "", 0, now,
		    "say hi priority 5");
		create("queued, later", "n2", "0 0 0", "", "+15550300000", 1,
		    now + 3600000, "priority 2 callback_url http://x/cb "
		    "retry_busy 2:1000 ttl_ms 3600000");
		create("tenant's DNC", "n3", "0 0 0", "", "+15550300001", 0,
		    now, "priority 5");
		create("customer's DNC", "n4", "0 0 0", "", "+15550300002", 1,
		    now, "priority 5");
		create("business's DNC", "n5", "0 0 0", "", "+15550300003", 1,
		    now, "priority 5");
		create("business not named", "n6", "0 0 0", "",
		    "+15550300003", 0, now, "priority 5");
		create("a key", "n7", "0 0 0", "k1", "", 0, now, "priority 5");
		create("the key again", "n8", "0 0 0", "k1", "", 0, now,
		    "priority 5");
		/* the keys' hashes a day (common/keys.h, RQ_KEY_IDEM) */
		create("another key, into a hash with its expiry", "n32",
		    "0 0 0", "k5", "", 0, now, "priority 5");
		both("HSET %st3:86400:%llu k6 old", RQ_KEY_IDEM,
		    (unsigned long long)sec / 86400 - 1);
		create("a key of the day before", "n33", "0 0 0", "k6", "", 0,
		    now, "priority 5");
		both("HSET %st3:86400:%llu k7 older", RQ_KEY_IDEM,
		    (unsigned long long)sec / 86400 - 2);
		create("a key of two days before", "n34", "0 0 0", "k7", "",
		    0, now, "priority 5");
		both("SET %st4:86400:%llu not-a-hash", RQ_KEY_IDEM,
		    (unsigned long long)sec / 86400);
		intake("a day's hash of keys of another type", "t4", "n35",
		    "0 0 0", "k8", "", 0, now, "priority 5");
		{
			char more[96];

			/* a window: rq:deadlines too; one that is no
			 * number: refused before anything is written */
			snprintf(more, sizeof(more), "priority 7 not_after_ms "
			    "%llu", (unsigned long long)now + 3600000);
			create("a window", "n30", "0 0 0", "", "", 0, now, more);
			create("a window that is no number", "n31", "0 0 0", "",
			    "", 0, now, "priority 7 not_after_ms soon");
		}
		both("SET %st3:k2 gone", RQ_KEY_IDEM);
		create("a key whose call is gone", "n9", "0 0 0", "k2", "", 0,
		    now, "priority 5");
		for (k = sec - 1; k <= sec + 10; k++)
			both("SET %st3:s:%llu 5", RQ_KEY_RATE,
			    (unsigned long long)k);
		create("over the second's rate", "n10", "5 0 0", "", "", 0,
		    now, "priority 5");
		create("under it", "n11", "6 0 0", "", "", 0, now,
		    "priority 5");
		both("SET %st3:d:%llu 9", RQ_KEY_RATE,
		    (unsigned long long)sec / 86400);
		create("over the day's", "n12", "0 9 0", "", "", 0, now,
		    "priority 5");
		create("under it", "n13", "0 10 0", "", "", 0, now,
		    "priority 5");
		/* a counter with a TTL keeps it, as INCR keeps it */
		for (k = sec - 1; k <= sec + 10; k++)
			both("SET %st3:s:%llu 1 PX 600000", RQ_KEY_RATE,
			    (unsigned long long)k);
		create("under a counter with a TTL", "n20", "6 0 0", "", "", 0,
		    now, "priority 5");
		{
			char pat[160];

			snprintf(pat, sizeof(pat), "%st3:s:*", RQ_KEY_RATE);
			same("  the counters' TTLs kept", with_ttl(&lua, pat) ==
			    12 && with_ttl(&native, pat) == 12, 1);
		}
		for (k = sec - 1; k <= sec + 10; k++)
			both("SET %st3:s:%llu x", RQ_KEY_RATE,
			    (unsigned long long)k);
		create("a counter that is no number", "n21", "6 0 0", "", "",
		    0, now, "priority 5");
		both("HSET %st3:k3 x y", RQ_KEY_IDEM);
		create("an idempotency key of another type", "n22", "0 0 0",
		    "k3", "", 0, now, "priority 5");
		both("DEL %st3", RQ_KEY_ACTIVE);
		both("ZADD %st3 1 live 2 done 3 lost", RQ_KEY_ACTIVE);
		both("HSET %slive status dispatched", RQ_KEY_JOB);
		both("HSET %sdone status completed", RQ_KEY_JOB);
		create("not full once pruned", "n14", "0 0 2", "", "", 0, now,
		    "priority 5");
		create("full", "n15", "0 0 2", "", "", 0, now, "priority 5");
		create("full, but due tomorrow", "n16", "0 0 1", "", "", 0,
		    now + 86400000, "priority 5");
		create("an odd field count", "n17", "0 0 0", "", "", 0, now,
		    "priority");
		create_for("a long tenant name",
		    "acme-corporation-north-america-and-the-islands", "n18", 1);
		both("SET %swt not-a-zset", RQ_KEY_TENANT_CALLS);
		create_for("its calls' key of the wrong type", "wt", "n19", 0);
	}

	rq_redis_close(&lua);
	rq_redis_close(&native);
	return failed;
}
