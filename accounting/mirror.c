/* Redis side of accounting: after COMMIT, each event goes into the call's
 * timeline and, when it outranks the job's status, into rq:job:<id>, in
 * one Lua script per event so the hash never holds a half-written status. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "accounting.h"
#include "keys.h"
#include "log.h"

/*
 * KEYS: job, timeline.  ARGV: timeline field, event JSON, rank, status,
 * reason, sip_code, updated_ms ('' = absent).  A job that is not (or no
 * longer) in Redis gets no timeline either: returns 0; else 1, or 2 when
 * the status moved.
 */
static const char mirror_lua[] =
	"if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
	"redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])\n"
	"local cur = tonumber(redis.call('HGET', KEYS[1], 'status_rank')) or -1\n"
	"if tonumber(ARGV[3]) <= cur then return 1 end\n"
	"redis.call('HSET', KEYS[1], 'status', ARGV[4], 'updated_ms', ARGV[7],"
	" 'status_rank', ARGV[3])\n"
	"if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'reason', ARGV[5])\n"
	"else redis.call('HDEL', KEYS[1], 'reason') end\n"
	"if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'sip_code', ARGV[6])\n"
	"else redis.call('HDEL', KEYS[1], 'sip_code') end\n"
	"return 2\n";

static int
load_script(struct acct_mirror *mr, char *err, size_t errlen)
{
	redisReply *r;

	r = redisCommand(mr->rc, "SCRIPT LOAD %s", mirror_lua);
	if (r == NULL || r->type != REDIS_REPLY_STRING ||
	    r->len >= (int)sizeof(mr->sha)) {
		snprintf(err, errlen, "SCRIPT LOAD: %s", r == NULL ?
		    mr->rc->errstr : r->type == REDIS_REPLY_ERROR ? r->str :
		    "unexpected reply");
		if (r)
			freeReplyObject(r);
		return -1;
	}
	memcpy(mr->sha, r->str, r->len);
	mr->sha[r->len] = '\0';
	freeReplyObject(r);
	return 0;
}

int
acct_mirror_open(struct acct_mirror *mr, const char *host, int port,
    char *err, size_t errlen)
{
	struct timeval tv = { 1, 0 }, io = { 2, 0 };

	mr->rc = redisConnectWithTimeout(host, port, tv);
	if (mr->rc == NULL || mr->rc->err) {
		snprintf(err, errlen, "%s", mr->rc ? mr->rc->errstr :
		    "out of memory");
		goto fail;
	}
	if (redisSetTimeout(mr->rc, io) != REDIS_OK) {
		snprintf(err, errlen, "cannot set timeout");
		goto fail;
	}
	if (load_script(mr, err, errlen) == -1)
		goto fail;
	return 0;
fail:
	acct_mirror_close(mr);
	return -1;
}

void
acct_mirror_close(struct acct_mirror *mr)
{
	if (mr->rc)
		redisFree(mr->rc);
	mr->rc = NULL;
	mr->sha[0] = '\0';
}

static int
append(struct acct_mirror *mr, const struct acct_event *ev)
{
	const struct rq_msg *m = &ev->m;
	char field[48], rank[16], sip[24], updated[24], *json;
	int rc;

	if ((json = acct_event_json(m)) == NULL) {
		log_warnx("%s: cannot build the timeline entry", m->call_id);
		return -1;
	}
	snprintf(field, sizeof(field), "%" PRIu64 ":%s", m->attempt,
	    m->status);
	snprintf(rank, sizeof(rank), "%d", ev->rank);
	snprintf(updated, sizeof(updated), "%" PRIu64, m->ts_ms);
	if (rq_msg_has(m, sip_code))
		snprintf(sip, sizeof(sip), "%" PRIu64, m->sip_code);
	else
		sip[0] = '\0';
	rc = redisAppendCommand(mr->rc,
	    "EVALSHA %s 2 " RQ_KEY_JOB "%s " RQ_KEY_TIMELINE "%s %s %s %s %s "
	    "%s %s %s", mr->sha, m->call_id, m->call_id, field, json, rank,
	    m->status, m->reason ? m->reason : "", sip, updated);
	free(json);
	return rc == REDIS_OK ? 0 : -1;
}

/* Reads one pipelined reply.  Returns 1 mirrored, 0 retry later (not
 * mirrored), -1 connection lost, -2 NOSCRIPT. */
static int
reply(struct acct_mirror *mr, const struct acct_event *ev)
{
	redisReply *r = NULL;
	int rc = 1;

	if (redisGetReply(mr->rc, (void **)&r) != REDIS_OK || r == NULL)
		return -1;
	if (r->type == REDIS_REPLY_ERROR) {
		if (!strncmp(r->str, "NOSCRIPT", 8))
			rc = -2;
		else if (!strncmp(r->str, "WRONGTYPE", 9)) {
			/* Retrying cannot help: PostgreSQL has the event. */
			log_warnx("%s: redis mirror: %s", ev->m.call_id,
			    r->str);
		} else {
			log_warnx("%s: redis mirror: %s", ev->m.call_id,
			    r->str);
			rc = 0;
		}
	} else if (r->type == REDIS_REPLY_INTEGER && r->integer == 0)
		log_debug("%s: no job in redis, timeline not mirrored",
		    ev->m.call_id);
	freeReplyObject(r);
	return rc;
}

int
acct_mirror(struct acct_mirror *mr, struct acct_event *evs, size_t n)
{
	char err[256];
	size_t i, sent = 0;
	int rc, noscript = 0;

	for (i = 0; i < n; i++) {
		evs[i].mirrored = 0;
		if (!evs[i].stored)
			continue;
		if (append(mr, &evs[i]) == 0)
			sent++;
		else
			evs[i].stored = 2;	/* not sent: skip its reply */
	}
	for (i = 0; i < n && sent > 0; i++) {
		if (evs[i].stored != 1)
			continue;
		sent--;
		if ((rc = reply(mr, &evs[i])) == -1)
			return -1;
		if (rc == -2)
			noscript = 1;
		evs[i].mirrored = rc == 1;
	}
	for (i = 0; i < n; i++)
		if (evs[i].stored == 2)
			evs[i].stored = 1;
	/* Redis restarted and forgot the script: those events are resent by
	 * their senders and mirrored then. */
	if (noscript && load_script(mr, err, sizeof(err)) == -1) {
		log_warnx("redis: %s", err);
		return -1;
	}
	return 0;
}
