/* The rq:events consumer: the lifecycle scripts' transactional outbox
 * (common/keys.h).  Entries go through the same store and mirror as ZeroMQ
 * EVENTs; only then are they acknowledged and deleted, so an entry whose
 * store a crash interrupted is read again (our pending entries) and
 * PostgreSQL's unique event key keeps it at one row. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounting.h"
#include "keys.h"
#include "log.h"
#include "util.h"

/* A stream's text made fit for a log line. */
static const char *
printable(const char *s, size_t len, char *buf, size_t buflen)
{
	size_t i;

	for (i = 0; i < len && i + 1 < buflen; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	buf[i] = '\0';
	return buf;
}

/* Creates the group at the start of the stream (and the stream) unless it
 * exists.  Returns 0, or -1 (logged). */
static int
group_create(struct acct *a)
{
	redisReply *rep;
	int rc = -1;

	rep = redisCommand(a->mr.r.c, "XGROUP CREATE %s %s 0 MKSTREAM",
	    RQ_KEY_EVENTS, RQ_EVENTS_GROUP);
	if (rep == NULL) {
		acct_mirror_lost(&a->mr);
		return -1;
	}
	/* Refused while Redis is full (OOM), the group may well exist: the
	 * read says (NOGROUP), and only reading frees the memory. */
	if (rep->type == REDIS_REPLY_ERROR &&
	    strncmp(rep->str, "BUSYGROUP", 9) != 0 &&
	    strncmp(rep->str, "OOM", 3) != 0)
		log_warnx("redis: XGROUP CREATE %s: %s", RQ_KEY_EVENTS,
		    rep->str);
	else {
		if (rep->type != REDIS_REPLY_ERROR)
			log_info("redis: consumer group %s of %s created",
			    RQ_EVENTS_GROUP, RQ_KEY_EVENTS);
		a->group_ok = 1;
		/* What a previous run read but did not acknowledge first. */
		a->backlog = 1;
		snprintf(a->cursor, sizeof(a->cursor), "0");
		rc = 0;
	}
	freeReplyObject(rep);
	return rc;
}

/* Queues an entry that will never be stored for acknowledgement. */
static void
drop(struct acct *a, const char *sid, const char *why)
{
	log_warnx("%s entry %s dropped: %s", RQ_KEY_EVENTS, sid, why);
	if (a->ndrop < ACCT_BATCH_MAX)
		snprintf(a->drop[a->ndrop++], ACCT_SID_MAX, "%s", sid);
}

/* Whether the entry's fields hold name = "1" (common/keys.h's flags). */
static int
flag(const char *const *fv, const size_t *lens, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		if (lens[i] == strlen(name) && memcmp(fv[i], name, lens[i]) == 0)
			return lens[i + 1] == 1 && fv[i + 1][0] == '1';
	return 0;
}

/* One entry [id, [field, value, ...]] (fields nil: deleted meanwhile).
 * An entry written by emit() (common/keys.h) is mirrored already, but for
 * its status callback; an older writer's is mirrored here. */
static void
entry(struct acct *a, const redisReply *e)
{
	struct acct_event *ev = &a->batch[a->nbatch];
	const redisReply *f;
	const char *fv[64];
	size_t lens[64], i, n;
	char sid[ACCT_SID_MAX], err[128], id[40], st[40];

	if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
	    e->element[0]->type != REDIS_REPLY_STRING ||
	    e->element[0]->len >= ACCT_SID_MAX) {
		log_warnx("redis: %s: unexpected entry shape", RQ_KEY_EVENTS);
		return;
	}
	printable(e->element[0]->str, e->element[0]->len, sid, sizeof(sid));
	if (a->backlog)
		snprintf(a->cursor, sizeof(a->cursor), "%s", sid);
	f = e->element[1];
	if (f->type == REDIS_REPLY_NIL) {
		/* Acknowledged nowhere, deleted already: forget it. */
		if (a->ndrop < ACCT_BATCH_MAX)
			snprintf(a->drop[a->ndrop++], ACCT_SID_MAX, "%s", sid);
		return;
	}
	if (f->type != REDIS_REPLY_ARRAY) {
		drop(a, sid, "no fields");
		return;
	}
	n = f->elements;
	if (n > sizeof(fv) / sizeof(*fv)) {
		drop(a, sid, "too many fields");
		return;
	}
	for (i = 0; i < n; i++) {
		if (f->element[i]->type != REDIS_REPLY_STRING) {
			drop(a, sid, "a field is not a string");
			return;
		}
		fv[i] = f->element[i]->str;
		lens[i] = f->element[i]->len;
	}
	memset(ev, 0, sizeof(*ev));
	switch (acct_stream_event(&ev->m, fv, lens, n, err, sizeof(err))) {
	case 0:
		break;
	case -2:
		/* Neither stored nor dropped: it stays pending, and the
		 * pending entries are read again in a while. */
		log_warnx("%s entry %s left pending: %s", RQ_KEY_EVENTS, sid,
		    err);
		if (a->backlog_ms == 0)
			a->backlog_ms = rq_mono_ms() + ACCT_RETRY_MS;
		return;
	default:
		drop(a, sid, err);
		return;
	}
	if (err[0] != '\0')
		log_warnx("%s: event %" PRIu64 ":%s: %s", printable(ev->m.call_id,
		    strlen(ev->m.call_id), id, sizeof(id)), ev->m.attempt,
		    printable(ev->m.status, strlen(ev->m.status), st,
		    sizeof(st)), err);
	if (acct_event_check(&ev->m, &ev->st, err, sizeof(err)) == -1) {
		log_warnx("%s: event %" PRIu64 ":%s dropped: %s",
		    printable(ev->m.call_id, strlen(ev->m.call_id), id,
		    sizeof(id)), ev->m.attempt, printable(ev->m.status,
		    strlen(ev->m.status), st, sizeof(st)), err);
		drop(a, sid, "invalid event");
		rq_msg_clear(&ev->m);
		return;
	}
	if (err[0] != '\0')
		log_warnx("%s: event %" PRIu64 ":%s: %s", ev->m.call_id,
		    ev->m.attempt, ev->m.status, err);
	ev->rank = acct_rank(ev->m.attempt, ev->st);
	snprintf(ev->sid, sizeof(ev->sid), "%s", sid);
	ev->mirror = !flag(fv, lens, n, RQ_EVENT_MIRRORED) ||
	    flag(fv, lens, n, RQ_EVENT_CALLBACK);
	a->nbatch++;
}

int
acct_stream_read(struct acct *a)
{
	redisReply *rep, *s;
	char count[16];
	size_t i, n = 0;

	if (a->mr.r.c == NULL)
		return -1;
	if (!a->group_ok) {
		if (rq_mono_ms() < a->group_retry_ms)
			return -1;
		if (group_create(a) == -1) {
			a->group_retry_ms = rq_mono_ms() + ACCT_GROUP_RETRY_MS;
			return -1;
		}
	}
	if (!a->backlog && a->backlog_ms != 0 && rq_mono_ms() >= a->backlog_ms) {
		a->backlog = 1;
		a->backlog_ms = 0;
		snprintf(a->cursor, sizeof(a->cursor), "0");
	}
	snprintf(count, sizeof(count), "%d", ACCT_BATCH_MAX);
	rep = redisCommand(a->mr.r.c,
	    "XREADGROUP GROUP %s %s COUNT %s STREAMS %s %s", RQ_EVENTS_GROUP,
	    RQ_EVENTS_GROUP, count, RQ_KEY_EVENTS,
	    a->backlog ? a->cursor : ">");
	if (rep == NULL) {
		acct_mirror_lost(&a->mr);
		a->group_ok = 0;
		return -1;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		/* NOGROUP: Redis lost its data (restart without persistence,
		 * FLUSHALL): create the group again. */
		log_warnx("redis: XREADGROUP %s: %s", RQ_KEY_EVENTS, rep->str);
		a->group_ok = 0;
		/* its creation, a second later (refused while Redis is
		 * full, it would come back here at every read) */
		a->group_retry_ms = rq_mono_ms() + ACCT_GROUP_RETRY_MS;
		freeReplyObject(rep);
		return -1;
	}
	/* [[stream, [entry, ...]]], or nil when nothing is new */
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
	    rep->element[0]->type == REDIS_REPLY_ARRAY &&
	    rep->element[0]->elements == 2 &&
	    rep->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
		s = rep->element[0]->element[1];
		n = s->elements;
		for (i = 0; i < s->elements && a->nbatch < ACCT_BATCH_MAX; i++)
			entry(a, s->element[i]);
	} else if (rep->type != REDIS_REPLY_NIL)
		log_warnx("redis: XREADGROUP %s: unexpected reply",
		    RQ_KEY_EVENTS);
	freeReplyObject(rep);
	if (a->backlog && n == 0) {
		a->backlog = 0;
		log_debug("%s: pending entries read, now new ones",
		    RQ_KEY_EVENTS);
	}
	return (int)n;
}

/*
 * KEYS: rq:events.  ARGV: the group, then the ids of stored entries.
 * Acknowledges them, then trims the stream below the oldest entry some
 * group still needs: its oldest pending one, or the one after the last it
 * was given.  Trimming removes whole nodes of the stream at once; deleting
 * entry by entry (XDEL) walked a node for each, the largest part of
 * Redis's work per event after the create script (docs/benchmarks.md).
 * An entry acknowledged but left in the stream would stay there for ever;
 * here every acknowledged entry goes at the latest with the next batch.
 * But an entry that stays pending (a group that stopped reading, an event
 * that cannot be stored) holds every later one in the stream with it:
 * docs/delivery.md.  Needs XACK, XINFO, XPENDING and XTRIM on rq:events.
 * A failure after the XACK (Redis does not undo a script's writes) leaves
 * the entries acknowledged and the stream as it was, for the next batch.
 */
const char acct_ack_lua[] =
	"local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))\n"
	"if redis.call('EXISTS', KEYS[1]) == 0 then return acked end\n"
	/* ids compared and stepped as decimal text: exact for any uint64 */
	"local function less(x, y)\n"
	"  if #x ~= #y then return #x < #y end\n"
	"  return x < y\n"
	"end\n"
	"local function before(a, b)\n"
	"  local am, as = string.match(a, '^(%d+)-(%d+)$')\n"
	"  local bm, bs = string.match(b, '^(%d+)-(%d+)$')\n"
	"  if am ~= bm then return less(am, bm) end\n"
	"  return less(as, bs)\n"
	"end\n"
	"local function succ(id)\n"
	"  local ms, seq = string.match(id, '^(%d+)-(%d+)$')\n"
	"  if seq == '18446744073709551615' then return nil end\n"
	"  local d, i = {}, #seq\n"
	"  for k = 1, #seq do d[k] = string.byte(seq, k) - 48 end\n"
	"  while i > 0 and d[i] == 9 do d[i] = 0; i = i - 1 end\n"
	"  if i == 0 then table.insert(d, 1, 1) else d[i] = d[i] + 1 end\n"
	"  for k = 1, #d do d[k] = string.char(d[k] + 48) end\n"
	"  return ms .. '-' .. table.concat(d)\n"
	"end\n"
	"local keep\n"
	"for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do\n"
	"  local f = {}\n"
	"  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end\n"
	"  local lim\n"
	"  if tonumber(f['pending']) > 0 then\n"
	"    lim = redis.call('XPENDING', KEYS[1], f['name'])[2]\n"
	"  else\n"
	"    lim = succ(f['last-delivered-id']) or f['last-delivered-id']\n"
	"  end\n"
	"  if keep == nil or before(lim, keep) then keep = lim end\n"
	"end\n"
	"if keep then redis.call('XTRIM', KEYS[1], 'MINID', keep) end\n"
	"return acked\n";

void
acct_stream_ack(struct acct *a)
{
	const char **av;
	redisReply *rep;
	size_t i, n = 0, left = 0;
	int ok = 1;

	/* rq:events, the group, then the ids */
	if ((av = calloc(2 + a->nbatch + a->ndrop, sizeof(*av))) == NULL) {
		log_warn("calloc");
		ok = 0;
		goto done;
	}
	for (i = 0; i < a->ndrop; i++)
		av[2 + n++] = a->drop[i];
	for (i = 0; i < a->nbatch; i++) {
		if (a->batch[i].sid[0] == '\0')
			continue;
		if (a->batch[i].stored && a->batch[i].mirrored)
			av[2 + n++] = a->batch[i].sid;
		else
			left++;
	}
	if (n == 0)
		goto done;
	if (a->mr.r.c == NULL) {
		ok = 0;
		goto done;
	}
	av[0] = RQ_KEY_EVENTS;
	av[1] = RQ_EVENTS_GROUP;
	if ((rep = rq_redis_eval(&a->mr.r, &a->mr.ack, 1, (int)(2 + n),
	    av)) == NULL) {
		/* logged; a lost link was closed and is retried */
		if (a->mr.r.c == NULL)
			a->group_ok = 0;
		ok = 0;
		goto done;
	}
	freeReplyObject(rep);
	log_debug("%s: %zu entries acknowledged, %zu left", RQ_KEY_EVENTS, n,
	    left);
done:
	/* Read what is still pending again in a second. */
	if ((!ok || left > 0) && a->backlog_ms == 0)
		a->backlog_ms = rq_mono_ms() + ACCT_RETRY_MS;
	free(av);
	a->ndrop = 0;
}
