/*
 * ringq-redis.so, a Redis module: the scripts every call runs, as native
 * Redis commands: the gateway's intake (ringq.create), the scheduler's
 * release, the dispatcher's take, the telserver's claims and finishes.
 * Redis spends about half its time in a script on Lua itself (the
 * interpreter, the tables, turning replies into Lua values); the same work
 * in C costs it half as much (docs/benchmarks.md).
 *
 * Each command ringq.<script> takes exactly what FCALL of that script's
 * function takes (numkeys, the keys, the arguments; EVAL's for the intake)
 * and answers what the script answers, with the same writes and the same
 * event.  The Lua (common/keys.h, common/lifecycle.c, scheduler/release.c,
 * dispatcher/jobs.c, gateway/policy_store.c) stays the reference, and what
 * the daemons run where the module is not loaded (common/redis_sync.c,
 * gateway/store.c pick).  tests/integration/test_redis_module.sh runs both
 * on the same calls and compares what they answer and leave in Redis.
 *
 * Writes go to the AOF and the replicas as the plain commands the script
 * would have run (a ZPOPMIN as the ZREM of what it popped): by default
 * all of a command's writes in one ringq.apply (packed replication, see
 * replicate()), or each as its own command ("replication plain", so that
 * a Redis that loads the AOF, or a replica, needs no module).  As after
 * redis.call's error in a script, a write that fails (a key of the wrong
 * type) ends the work: what ran before stays, nothing after it is done, and
 * the command answers the error.  Known differences from the scripts, all
 * documented in docs/architecture.md: the commands declare no keys (ACL key
 * patterns do not apply), they are refused whole above maxmemory, and their
 * writes send no keyspace notifications.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "apply_codec.h"
#include "keys.h"
#include "lifecycle.h"
#include "status.h"

#include "redismodule.h"

typedef RedisModuleString rstr;

/* Names the commands use at every call, made once at load (names[]). */
static rstr *s_events, *s_call_id, *s_attempt, *s_status, *s_ts_ms,
    *s_tenant, *s_to, *s_direction, *s_reason, *s_sip_code, *s_node,
    *s_duration_ms, *s_started_ms, *s_answered_ms, *s_detail,
    *s_mirrored, *s_callback, *s_one, *s_status_rank, *s_updated_ms,
    *s_dialed, *s_result, *s_not_before_ms, *s_result_lua, *s_not_after,
    *s_not_placed, *s_on_dnc, *s_attempts_exhausted, *s_dnc_customer,
    *s_due_after, *s_attempts, *s_not_placed_its, *s_max_reached,
    *s_rejected, *s_no_target, *s_id, *s_created_ms, *s_queued, *s_zero,
    *s_tl_queued, *s_due, *s_wake, *s_deadlines, *s_ready, *s_inflight,
    *s_hours, *s_ended;

static rstr *
name(const char *s)
{
	return RedisModule_CreateString(NULL, s, strlen(s));
}

/* The text of an rstr, NULL for none. */
static const char *
text(const rstr *s, size_t *len)
{
	size_t n;

	if (s == NULL) {
		if (len != NULL)
			*len = 0;
		return NULL;
	}
	return RedisModule_StringPtrLen(s, len != NULL ? len : &n);
}

static int
nonempty(const rstr *s)
{
	size_t n;

	return s != NULL && (text(s, &n), n > 0);
}

/*
 * Lua 5.1's tonumber() of a string, which the scripts apply to every field
 * they read: strtod (decimal, hex, inf, nan; leading white space), then
 * only white space may follow.  Returns 1 and sets *v, or 0 (nil).
 */
static int
lua_number(const rstr *s, double *v)
{
	char stack[64], *buf = stack, *end;
	const char *p;
	size_t n;
	int ok;

	if (s == NULL)
		return 0;
	p = text(s, &n);
	n = strnlen(p, n);	/* Lua reads its string up to a NUL */
	if (n >= sizeof(stack))
		buf = RedisModule_Alloc(n + 1);
	memcpy(buf, p, n);
	buf[n] = '\0';
	*v = strtod(buf, &end);
	ok = end != buf;
	if (ok && (*end == 'x' || *end == 'X'))
		*v = (double)strtoul(buf, &end, 16);
	while (*end == ' ' || (*end >= '\t' && *end <= '\r'))
		end++;
	ok = ok && *end == '\0';
	if (buf != stack)
		RedisModule_Free(buf);
	return ok;
}

/* string.format('%d', v) of a Lua number. */
static long long
lua_int(double v)
{
	/* out of range (or NaN): what Lua's cast gives on x86-64 */
	if (!(v > -9.2e18 && v < 9.2e18))
		return LLONG_MIN;
	return (long long)v;
}

/* is_terminal(rank) of the scripts: rank % 16 >= 6, Lua's % (floored). */
static int
terminal(double rank)
{
	return rank - floor(rank / RQ_RANK_ATTEMPT) * RQ_RANK_ATTEMPT >=
	    RQ_ST_COMPLETED;
}

/* is_terminal(tonumber(rank)): nil is not. */
static int
terminal_rank(const rstr *rank)
{
	double r;

	return lua_number(rank, &r) && terminal(r);
}

/* The digits of v (string.format('%d') of an integer), into buf (24).
 * Two digits at a time: the module writes hundreds per call. */
static size_t
fmt_int(char *buf, long long v)
{
	static const char pairs[] =
	    "00010203040506070809101112131415161718192021222324252627282930"
	    "31323334353637383940414243444546474849505152535455565758596061"
	    "62636465666768697071727374757677787980818283848586878889909192"
	    "93949596979899";
	char t[24], *p = t + sizeof(t);
	unsigned long long u;
	size_t n, k = 0;

	u = v < 0 ? -(unsigned long long)v : (unsigned long long)v;
	while (u >= 100) {
		p -= 2;
		memcpy(p, pairs + (u % 100) * 2, 2);
		u /= 100;
	}
	if (u >= 10) {
		p -= 2;
		memcpy(p, pairs + u * 2, 2);
	} else
		*--p = (char)('0' + u);
	if (v < 0)
		buf[k++] = '-';
	n = (size_t)(t + sizeof(t) - p);
	memcpy(buf + k, p, n);
	buf[k + n] = '\0';
	return k + n;
}

/* A growing text, for a timeline entry. */
struct buf {
	char	*p;
	size_t	 len, cap;
};

static void
put(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = RedisModule_Realloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
puts_(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

/*
 * The scripts' jstr(v): a string of letters, digits and " .,:;_@+=/-"
 * quoted as it is, anything else as Redis's cjson.encode writes it
 * (control characters and DEL as \u00XX but for \b \t \n \f \r, and \" \\
 * \/; other bytes as they are).
 */
static void
put_jstr(struct buf *b, const char *s, size_t n)
{
	static const char plain[] = " .,:;_@+=/-";
	char esc[8];
	size_t i;
	int simple = 1;

	for (i = 0; i < n && simple; i++) {
		unsigned char c = (unsigned char)s[i];

		simple = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || (c != '\0' &&
		    strchr(plain, c) != NULL);
	}
	put(b, "\"", 1);
	if (simple) {
		put(b, s, n);
		put(b, "\"", 1);
		return;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *e = NULL;

		switch (c) {
		case '\b': e = "\\b"; break;
		case '\t': e = "\\t"; break;
		case '\n': e = "\\n"; break;
		case '\f': e = "\\f"; break;
		case '\r': e = "\\r"; break;
		case '"': e = "\\\""; break;
		case '\\': e = "\\\\"; break;
		case '/': e = "\\/"; break;
		default:
			if (c < 0x20 || c == 0x7f) {
				static const char hex[] = "0123456789abcdef";

				memcpy(esc, "\\u00", 4);
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 15];
				esc[6] = '\0';
				e = esc;
			}
		}
		if (e != NULL)
			puts_(b, e);
		else
			put(b, (const char *)&s[i], 1);
	}
	put(b, "\"", 1);
}

/*
 * The scripts' jnum(v): tonumber(v) as a JSON number, an integer as
 * '%d', anything else as cjson writes a number ('%.14g'); 0 (left out)
 * when v is not a number, or is NaN or infinite.
 */
static int
put_jnum(struct buf *b, const rstr *v)
{
	char t[40];
	double d;

	if (!lua_number(v, &d) || isnan(d) || isinf(d))
		return 0;
	if (d == floor(d) && d < 1e15 && d > -1e15)
		fmt_int(t, (long long)d);
	else
		snprintf(t, sizeof(t), "%.14g", d);
	puts_(b, t);
	return 1;
}

/* The job fields the commands read (job_open()). */
enum { J_RANK, J_TENANT, J_ID, J_CALLBACK, J_REASON, J_SIP, J_TTL,
	J_ATTEMPTS, J_NOT_AFTER, J_TO, J_DIALED, J_MAX_ATTEMPTS, J_PRIORITY,
	J_NOT_BEFORE, J_SAY, J_CALLER_ID, J_APP_URL, J_STATUS, J_RETRY_BUSY,
	J_RETRY_NO_ANSWER, J_RETRY_NETWORK, J_HOURS_UNTIL, J__COUNT };

/* Is the job there: a field of it read (j, jb.f), or its key of any
 * type? */
static int
job_exists(rstr **j, RedisModuleKey *key)
{
	return j[J_RANK] != NULL || j[J_TENANT] != NULL || j[J_ID] != NULL ||
	    RedisModule_KeyType(key) != REDISMODULE_KEYTYPE_EMPTY;
}

/* An event: emit()'s ev.  Absent fields are NULL. */
struct event {
	rstr		*id;
	long long	 attempt;
	enum rq_status	 status;
	const char	*status_name;
	long long	 ts_ms;
	rstr		*tenant, *to, *direction, *reason, *sip_code, *node,
			*duration_ms, *started_ms, *answered_ms, *detail,
			*result;
	rstr		*result_json;	/* made before the command's first
					 * write (result_json()), or NULL */
};

struct cmd {
	RedisModuleCtx	*ctx;
	long long	 now;	/* ms, read once per command like TIME */
	int		 error;	/* a write failed: no more writes, and the
				 * command answers the error */
	const char	*why;	/* its error reply, or a WRONGTYPE one */
};

/* An event of attempt of call id, on the job's tenant and number (f, its
 * fields by J_*), now; the caller says its status and the rest. */
static void
event_init(struct event *e, const struct cmd *c, rstr *id, long long attempt,
    rstr **f)
{
	memset(e, 0, sizeof(*e));
	e->id = id;
	e->attempt = attempt;
	e->tenant = f[J_TENANT];
	e->to = f[J_TO];
	e->ts_ms = c->now;
}

static rstr *
mk(struct cmd *c, const char *s, size_t n)
{
	return RedisModule_CreateString(c->ctx, s, n);
}

/* A string of the command's, printf-formatted, of any length. */
static rstr *
mk_fmt(struct cmd *c, const char *fmt, ...)
{
	va_list ap;
	char *b;
	rstr *r;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	b = RedisModule_Alloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(b, (size_t)n + 1, fmt, ap);
	va_end(ap);
	r = mk(c, b, (size_t)n);
	RedisModule_Free(b);
	return r;
}

static rstr *
mk_int(struct cmd *c, long long v)
{
	char t[24];

	return mk(c, t, fmt_int(t, v));
}

static rstr *
key_of(struct cmd *c, const char *prefix, const rstr *id)
{
	size_t pl = strlen(prefix), n;
	const char *s = text(id, &n);
	char stack[256], *k = stack;
	rstr *r;

	if (pl + n > sizeof(stack))
		k = RedisModule_Alloc(pl + n);
	memcpy(k, prefix, pl);
	memcpy(k + pl, s, n);
	r = mk(c, k, pl + n);
	if (k != stack)
		RedisModule_Free(k);
	return r;
}

/*
 * Replication of the commands' writes.  packed (the default): a command's
 * writes go to the AOF and the replicas, at its end, as one
 * "ringq.apply 2 <writes>", the writes packed (common/apply_codec.c: a
 * fifth of their bytes as plain RESP), in one argument; Redis then formats
 * one argument for the AOF instead of about 190 per call, and the whole
 * chain costs it some 40 % fewer instructions (docs/benchmarks.md).
 * packed1: "ringq.apply 1 <writes>", the writes in RESP, which a
 * ringq-redis.so older than format 2 reads.  A Redis that loads that AOF,
 * and each replica, needs the module: ringq.apply runs the writes there.
 * plain (module argument "replication plain"): each write goes as its
 * plain command, so neither needs the module.
 */
static int packed = 2;		/* 0 plain, else ringq.apply's format */
static struct buf pending;	/* the running command's writes: format 1 */
static struct apply_enc pending2;	/* format 2 */
static struct buf expanded;	/* a ringq.apply 2's writes, as format 1 */

/* One RESP bulk string: a write's name or argument. */
static void
resp_arg(struct buf *b, const char *s, size_t n)
{
	char *p;

	if (b->len + n + 32 > b->cap) {
		b->cap = (b->len + n + 32) * 2;
		b->p = RedisModule_Realloc(b->p, b->cap);
	}
	p = b->p + b->len;
	*p++ = '$';
	p += fmt_int(p, (long long)n);
	*p++ = '\r';
	*p++ = '\n';
	memcpy(p, s, n);
	p += n;
	*p++ = '\r';
	*p++ = '\n';
	b->len = (size_t)(p - b->p);
}

/* A RESP array's header: n elements follow. */
static void
resp_count(struct buf *b, size_t n)
{
	char h[24];
	size_t k;

	h[0] = '*';
	k = 1 + fmt_int(h + 1, (long long)n);
	h[k++] = '\r';
	h[k++] = '\n';
	put(b, h, k);
}

/* One argument of a write: an rstr, or a text. */
struct arg {
	rstr		*s;
	const char	*p;
	size_t		 n;
	char		 num[24];
};

/*
 * One write, for the AOF and the replicas: the command cmd and arguments
 * as RedisModule_Replicate's fmt gives them (s: rstr, c: C string, b:
 * text and length, l: long long, v: rstr array and count, up to
 * APPLY_MAX_STRINGS - 1 in all).
 */
static void
replicate(struct cmd *c, const char *cmd, const char *fmt, ...)
{
	struct arg a[APPLY_MAX_STRINGS - 1];
	rstr *argv[APPLY_MAX_STRINGS - 1], **v;
	const char *f;
	size_t n = 0, i, k;
	va_list ap;

	va_start(ap, fmt);
	for (f = fmt; *f != '\0'; f++) {
		if (*f == 'v') {
			v = va_arg(ap, rstr **);
			k = va_arg(ap, size_t);
			RedisModule_Assert(n + k < APPLY_MAX_STRINGS);
			for (i = 0; i < k; i++) {
				RedisModule_Assert(v[i] != NULL);
				a[n++].s = v[i];
			}
			continue;
		}
		RedisModule_Assert(n + 1 < APPLY_MAX_STRINGS);
		a[n].s = NULL;
		switch (*f) {
		case 's':
			a[n].s = va_arg(ap, rstr *);
			break;
		case 'c':
			a[n].p = va_arg(ap, const char *);
			a[n].n = strlen(a[n].p);
			break;
		case 'b':
			a[n].p = va_arg(ap, const char *);
			a[n].n = va_arg(ap, size_t);
			break;
		case 'l':
			a[n].n = fmt_int(a[n].num, va_arg(ap, long long));
			a[n].p = a[n].num;
			break;
		default:
			RedisModule_Assert(0);	/* a letter fmt has not */
		}
		n++;
	}
	va_end(ap);
	if (!packed) {
		for (i = 0; i < n; i++)
			argv[i] = a[i].s != NULL ? a[i].s :
			    mk(c, a[i].p, a[i].n);
		RedisModule_Replicate(c->ctx, cmd, "v", argv, n);
		return;
	}
	for (i = 0; i < n; i++)
		if (a[i].s != NULL)
			a[i].p = text(a[i].s, &a[i].n);
	if (packed == 2) {
		apply_enc_write(&pending2, n + 1);
		apply_enc_arg(&pending2, cmd, strlen(cmd));
		for (i = 0; i < n; i++)
			apply_enc_arg(&pending2, a[i].p, a[i].n);
		return;
	}
	resp_count(&pending, n + 1);
	resp_arg(&pending, cmd, strlen(cmd));
	for (i = 0; i < n; i++)
		resp_arg(&pending, a[i].p, a[i].n);
}

/*
 * The end of a write command: in packed replication, its writes (if any)
 * to the AOF and the replicas as one ringq.apply.  Returns rc.
 */
static int
replicated(RedisModuleCtx *ctx, int rc)
{
	if (pending.len > 0)
		RedisModule_Replicate(ctx, "ringq.apply", "cb", "1",
		    pending.p, pending.len);
	if (pending2.len > 0)
		RedisModule_Replicate(ctx, "ringq.apply", "cb", "2",
		    (const char *)pending2.p, pending2.len);
	pending.len = 0;
	apply_enc_reset(&pending2);
	/* not a big batch's MBs for good */
	if (pending.cap > 1 << 22) {
		RedisModule_Free(pending.p);
		memset(&pending, 0, sizeof(pending));
	}
	if (pending2.cap > 1 << 22 || pending2.acap > 1 << 22)
		apply_enc_free(&pending2);
	return rc;
}

/* Pairs for HSET or XADD. */
struct pairs {
	rstr	*v[48];
	int	 n;
};

static void
pair(struct pairs *p, rstr *k, rstr *v)
{
	if (p->n + 2 > (int)(sizeof(p->v) / sizeof(p->v[0])))
		RedisModule_Assert(!"ringq: too many pairs");
	p->v[p->n++] = k;
	p->v[p->n++] = v;
}

/* HSET name p..., replicated as that. */
static void
hset(struct cmd *c, rstr *name_, RedisModuleKey *k, struct pairs *p)
{
	int i, type = RedisModule_KeyType(k);

	if (c->error)
		return;
	if (type != REDISMODULE_KEYTYPE_EMPTY &&
	    type != REDISMODULE_KEYTYPE_HASH) {
		c->error = 1;
		return;
	}
	for (i = 0; i < p->n; i += 2)
		RedisModule_HashSet(k, REDISMODULE_HASH_NONE, p->v[i],
		    p->v[i + 1], NULL);
	replicate(c, "HSET", "sv", name_, p->v, (size_t)p->n);
}

/* ZREM zname member, replicated when it removed it.  Returns 1 (removed),
 * 0 (not there), -1 (zname is not a sorted set: c->error). */
static int
zrem(struct cmd *c, rstr *zname, rstr *member)
{
	RedisModuleKey *k;
	int deleted = 0, type;

	if (c->error)
		return -1;
	k = RedisModule_OpenKey(c->ctx, zname,
	    REDISMODULE_READ | REDISMODULE_WRITE);
	type = RedisModule_KeyType(k);
	if (type == REDISMODULE_KEYTYPE_ZSET &&
	    RedisModule_ZsetRem(k, member, &deleted) == REDISMODULE_OK &&
	    deleted)
		replicate(c, "ZREM", "ss", zname, member);
	RedisModule_CloseKey(k);
	if (type != REDISMODULE_KEYTYPE_ZSET &&
	    type != REDISMODULE_KEYTYPE_EMPTY) {
		c->error = 1;
		return -1;
	}
	return deleted;
}

/* ZADD zname [XX] score member, the score as a number (sc) and as the
 * text replicated (st, sn), replicated when it changed zname (XX: only a
 * member already there).  A key of another type ends the command. */
static void
zadd_score(struct cmd *c, rstr *zname, double sc, const char *st, size_t sn,
    rstr *member, int xx)
{
	RedisModuleKey *k;
	int type, flags = xx ? REDISMODULE_ZADD_XX : 0;

	if (c->error)
		return;
	k = RedisModule_OpenKey(c->ctx, zname,
	    REDISMODULE_READ | REDISMODULE_WRITE);
	type = RedisModule_KeyType(k);
	if (type != REDISMODULE_KEYTYPE_ZSET &&
	    type != REDISMODULE_KEYTYPE_EMPTY)
		c->error = 1;
	else if ((type == REDISMODULE_KEYTYPE_ZSET || !xx) &&
	    RedisModule_ZsetAdd(k, sc, member, &flags) == REDISMODULE_OK &&
	    (flags & (REDISMODULE_ZADD_ADDED | REDISMODULE_ZADD_UPDATED))) {
		if (xx)
			replicate(c, "ZADD", "scbs", zname, "XX", st, sn,
			    member);
		else
			replicate(c, "ZADD", "sbs", zname, st, sn, member);
	}
	RedisModule_CloseKey(k);
}

/* ZADD zname [XX] score member, score an integer. */
static void
zadd(struct cmd *c, rstr *zname, long long score, rstr *member, int xx)
{
	char t[24];

	zadd_score(c, zname, (double)score, t, fmt_int(t, score), member, xx);
}

/* prio_of(priority) of RQ_LUA_READY_SCORE: a job's priority field as the
 * queues count it, 5 when absent, floored and clamped to 0..9. */
static int
prio_of(rstr *priority)
{
	double p;

	if (!lua_number(priority, &p))
		return 5;
	p = floor(p);
	return p < 0 ? 0 : p > 9 ? 9 : (int)p;
}

/* delayed_of(priority, due) of RQ_LUA_READY_SCORE: the rq:delayed score
 * of a job due at due ms, as a number and as its text in t (32 bytes),
 * whose length goes to *tn. */
static double
delayed_score(rstr *priority, long long due, char *t, size_t *tn)
{
	int tie = 5 - prio_of(priority), frac;
	double sc = (double)due + (double)tie / RQ_DELAYED_TIE_DIV;

	if (tie < 0) {		/* the ms before, and 16 + tie sixteenths */
		due--;
		tie += RQ_DELAYED_TIE_DIV;
	}
	frac = tie * 625;
	*tn = fmt_int(t, due);
	if (tie > 0) {		/* ".0625" to ".9375": k / 16 exactly */
		t[(*tn)++] = '.';
		t[(*tn)++] = '0' + frac / 1000;
		t[(*tn)++] = '0' + frac / 100 % 10;
		t[(*tn)++] = '0' + frac / 10 % 10;
		t[(*tn)++] = '0' + frac % 10;
		t[*tn] = '\0';
	}
	return sc;
}

/* ZADD rq:delayed at a job's due time (delayed_score). */
static void
zadd_delayed(struct cmd *c, rstr *delayed, rstr *priority, long long due,
    rstr *id)
{
	char t[32];
	size_t tn;
	double sc = delayed_score(priority, due, t, &tn);

	zadd_score(c, delayed, sc, t, tn, id, 0);
}

/* PUBLISH channel message, sent to the replicas as a script's is (in
 * plain replication not to the AOF: Redis's own PUBLISH is not written
 * there either; ringq.apply skips it when loading). */
static void
publish(struct cmd *c, rstr *channel, rstr *message)
{
	RedisModuleCallReply *r;

	if (c->error)
		return;
	if (packed) {
		RedisModule_PublishMessage(c->ctx, channel, message);
		replicate(c, "PUBLISH", "ss", channel, message);
	} else if ((r = RedisModule_Call(c->ctx, "PUBLISH", "!Ass", channel,
	    message)) != NULL)
		RedisModule_FreeCallReply(r);
}

/* ZADD zname score member with the score as text (a script's argument),
 * replicated as that.  A score that is not a number, or a key of another
 * type, ends the command. */
static void
zadd_text(struct cmd *c, rstr *zname, rstr *score, rstr *member)
{
	const char *st;
	double sc;
	size_t sn;

	if (c->error)
		return;
	if (RedisModule_StringToDouble(score, &sc) != REDISMODULE_OK) {
		c->error = 1;
		c->why = "ERR value is not a valid float";
		return;
	}
	st = text(score, &sn);
	zadd_score(c, zname, sc, st, sn, member, 0);
}

/* call_ttl(v) of common/keys.h. */
static long long
call_ttl(const rstr *v)
{
	size_t n;
	const char *s = text(v, &n);

	return (long long)rq_call_ttl(s, n);
}

/* PEXPIRE name ttl as Redis 7 propagates it: PEXPIREAT. */
static void
pexpire(struct cmd *c, rstr *name_, long long ttl)
{
	RedisModuleKey *k;
	long long at = RedisModule_Milliseconds() + ttl;

	if (c->error)
		return;
	k = RedisModule_OpenKey(c->ctx, name_, REDISMODULE_WRITE);
	if (RedisModule_KeyType(k) != REDISMODULE_KEYTYPE_EMPTY &&
	    RedisModule_SetAbsExpire(k, at) == REDISMODULE_OK)
		replicate(c, "PEXPIREAT", "sl", name_, at);
	RedisModule_CloseKey(k);
}

/*
 * A result's JSON in the timeline entry, exactly as emit() makes it: a
 * JSON object's text through Lua's cjson (decoded and encoded again, so
 * its keys come in the order that Lua's table gives them), anything else
 * as a JSON string.  Only Lua can give that order, so it runs in Lua: a
 * script without keys or writes, for the finishes with a result alone.
 */
#define RESULT_LUA \
	"local v = ARGV[1]\n" \
	"local ok, r = pcall(cjson.decode, v)\n" \
	"if ok and type(r) == 'table' and string.find(v, '^%s*{') then\n" \
	"  local ok2, rj = pcall(cjson.encode, r)\n" \
	"  if ok2 then return rj end\n" \
	"end\n" \
	"return cjson.encode(v)\n"

static rstr *
result_json(struct cmd *c, rstr *result)
{
	RedisModuleCallReply *r;
	const char *s;
	size_t n;
	rstr *rj;

	r = RedisModule_Call(c->ctx, "EVAL", "scs", s_result_lua, "0",
	    result);
	if (r == NULL || RedisModule_CallReplyType(r) !=
	    REDISMODULE_REPLY_STRING) {
		if (r != NULL)
			RedisModule_FreeCallReply(r);
		c->why = "ERR ringq: the result's JSON could not be made";
		return NULL;
	}
	s = RedisModule_CallReplyStringPtr(r, &n);
	rj = mk(c, s, n);
	RedisModule_FreeCallReply(r);
	return rj;
}

/*
 * emit(key, ev, j, extra) of common/keys.h:
 * the entry in rq:events, and for a job that exists, in one HSET, its
 * timeline entry, extra and its live status when the rank is higher,
 * and the end of a terminal call (its concurrency slot, its time in
 * rq:ended).  job is
 * the job's key, open for writing; j its fields (J_*: struct job's f).
 */
static void
emit(struct cmd *c, rstr *jobname, RedisModuleKey *job, struct event *e,
    rstr **j, struct pairs *extra)
{
	struct pairs a = { .n = 0 }, set = { .n = 0 };
	struct buf tl = { NULL, 0, 0 };
	RedisModuleStreamID sid;
	RedisModuleKey *k;
	char ts[24], att[24], sidt[48], rk[24], *p;
	size_t tsl, attl, n;
	const char *s;
	double cur, rank;
	int exists, i, del_reason = 0, del_sip = 0;
	rstr *field;

	if (c->error)
		return;
	exists = job_exists(j, job);
	/* the result's JSON before any write: made by a script, it may fail
	 * (a command that writes before its emit() makes it first) */
	if (exists && e->result != NULL && e->result_json == NULL &&
	    (e->result_json = result_json(c, e->result)) == NULL) {
		c->error = 1;
		return;
	}
	tsl = fmt_int(ts, e->ts_ms);
	attl = fmt_int(att, e->attempt);
	pair(&a, s_call_id, e->id);
	pair(&a, s_attempt, mk(c, att, attl));
	pair(&a, s_status, mk(c, e->status_name, strlen(e->status_name)));
	pair(&a, s_ts_ms, mk(c, ts, tsl));
	puts_(&tl, "{\"status\":\"");
	puts_(&tl, e->status_name);
	puts_(&tl, "\",\"attempt\":");
	put(&tl, att, attl);
	puts_(&tl, ",\"ts_ms\":");
	put(&tl, ts, tsl);
	/* the event's optional fields, in the script's order; those with
	 * "json" go into the timeline entry too, as a JSON string or, with
	 * num, a number (left out when not one) */
	{
		const struct {
			rstr		*name, *v;
			const char	*json;
			int		 num;
		} opt[] = {
			{ s_tenant, e->tenant, NULL, 0 },
			{ s_to, e->to, NULL, 0 },
			{ s_direction, e->direction, NULL, 0 },
			{ s_reason, e->reason, ",\"reason\":", 0 },
			{ s_sip_code, e->sip_code, ",\"sip_code\":", 1 },
			{ s_node, e->node, ",\"node\":", 0 },
			{ s_duration_ms, e->duration_ms, ",\"duration_ms\":", 1 },
			{ s_started_ms, e->started_ms, NULL, 0 },
			{ s_answered_ms, e->answered_ms, NULL, 0 },
			{ s_detail, e->detail, ",\"detail\":", 0 },
		};

		for (i = 0; i < (int)(sizeof(opt) / sizeof(opt[0])); i++) {
			if (!nonempty(opt[i].v))
				continue;
			pair(&a, opt[i].name, opt[i].v);
			if (opt[i].json == NULL)
				continue;
			n = tl.len;
			puts_(&tl, opt[i].json);
			if (opt[i].num) {
				if (!put_jnum(&tl, opt[i].v))
					tl.len = n;
			} else {
				s = text(opt[i].v, &n);
				put_jstr(&tl, s, n);
			}
		}
	}
	if (e->result != NULL)
		pair(&a, s_result, e->result);
	if (exists) {
		pair(&a, s_mirrored, s_one);
		if (j[J_CALLBACK] != NULL)
			pair(&a, s_callback, s_one);
	}
	k = RedisModule_OpenKey(c->ctx, s_events, REDISMODULE_WRITE);
	if (RedisModule_StreamAdd(k, REDISMODULE_STREAM_ADD_AUTOID, &sid,
	    a.v, a.n / 2) == REDISMODULE_OK) {
		p = sidt + fmt_int(sidt, (long long)sid.ms);
		*p++ = '-';
		p += fmt_int(p, (long long)sid.seq);
		replicate(c, "XADD", "sbv", s_events, sidt, (size_t)(p - sidt),
		    a.v, (size_t)a.n);
	} else
		c->error = 1;	/* not a stream */
	RedisModule_CloseKey(k);
	if (!exists || c->error)
		goto done;

	if (e->result != NULL) {
		puts_(&tl, ",\"result\":");
		s = text(e->result_json, &n);
		put(&tl, s, n);
	}
	put(&tl, "}", 1);
	{
		char f[64];
		size_t sl = strlen(e->status_name);

		memcpy(f, att, attl);
		f[attl] = ':';
		memcpy(f + attl + 1, e->status_name, sl);
		field = mk(c, f, attl + 1 + sl);
	}
	/* the timeline entry, extra and the status: one HSET */
	pair(&set, field, mk(c, tl.p, tl.len));
	if (extra != NULL)
		for (i = 0; i + 1 < extra->n; i += 2)
			pair(&set, extra->v[i], extra->v[i + 1]);
	/* a double, as the script's: no overflow for any attempt */
	rank = (double)e->attempt * RQ_RANK_ATTEMPT + e->status;
	if (!lua_number(j[J_RANK], &cur))
		cur = -1;
	if (rank <= cur) {
		hset(c, jobname, job, &set);
		goto done;
	}
	pair(&set, s_status, mk(c, e->status_name, strlen(e->status_name)));
	pair(&set, s_status_rank, mk(c, rk, fmt_int(rk, lua_int(rank))));
	pair(&set, s_updated_ms, mk(c, ts, tsl));
	if (nonempty(e->reason))
		pair(&set, s_reason, e->reason);
	else if (j[J_REASON] != NULL)
		del_reason = 1;
	if (nonempty(e->sip_code))
		pair(&set, s_sip_code, e->sip_code);
	else if (j[J_SIP] != NULL)
		del_sip = 1;
	hset(c, jobname, job, &set);
	if (c->error)
		goto done;
	if (del_reason || del_sip) {
		if (del_reason)
			RedisModule_HashSet(job, REDISMODULE_HASH_NONE,
			    s_reason, REDISMODULE_HASH_DELETE, NULL);
		if (del_sip)
			RedisModule_HashSet(job, REDISMODULE_HASH_NONE,
			    s_sip_code, REDISMODULE_HASH_DELETE, NULL);
		if (del_reason && del_sip)
			replicate(c, "HDEL", "sss", jobname, s_reason,
			    s_sip_code);
		else
			replicate(c, "HDEL", "ss", jobname, del_reason ?
			    s_reason : s_sip_code);
	}
	if (terminal(rank)) {
		if (j[J_TENANT] != NULL)
			zrem(c, key_of(c, RQ_KEY_ACTIVE, j[J_TENANT]), e->id);
		zadd(c, s_ended, c->now + call_ttl(j[J_TTL]), e->id, 0);
	}
done:
	RedisModule_Free(tl.p);
}

/* A command on a set, the module API having none for sets: SADD, SREM
 * (replicated when it changed the set) or SISMEMBER.  Returns its integer
 * answer; a key of another type ends the command (c->error). */
static long long
set_call(struct cmd *c, const char *cmd, rstr *set, rstr *member)
{
	RedisModuleCallReply *r;
	long long n = 0;
	int write = strcmp(cmd, "SISMEMBER") != 0;

	if (c->error)
		return 0;
	/* Most do-not-call lists do not exist: a lookup answers for them at
	 * a fifth of RedisModule_Call's cost (3 of them per create). */
	if (!write) {
		RedisModuleKey *k = RedisModule_OpenKey(c->ctx, set,
		    REDISMODULE_READ);
		int empty = RedisModule_KeyType(k) ==
		    REDISMODULE_KEYTYPE_EMPTY;

		RedisModule_CloseKey(k);
		if (empty)
			return 0;
	}
	r = RedisModule_Call(c->ctx, cmd, write && !packed ? "!ss" : "ss",
	    set, member);
	if (r != NULL && RedisModule_CallReplyType(r) ==
	    REDISMODULE_REPLY_INTEGER)
		n = RedisModule_CallReplyInteger(r);
	else
		c->error = 1;
	if (r != NULL)
		RedisModule_FreeCallReply(r);
	if (write && packed && n > 0)
		replicate(c, cmd, "ss", set, member);
	return n;
}

/* The names of the J_* fields.  A job has about 25 fields in a listpack,
 * where each lookup by name scans them from the first: the commands read
 * them all in one pass instead (RedisModule_ScanKey), at job_open(). */
static const char *const job_field_names[J__COUNT] = {
	[J_RANK] = "status_rank", [J_TENANT] = "tenant", [J_ID] = "id",
	[J_CALLBACK] = "callback_url", [J_REASON] = "reason",
	[J_SIP] = "sip_code", [J_TTL] = "ttl_ms", [J_ATTEMPTS] = "attempts",
	[J_NOT_AFTER] = "not_after_ms", [J_TO] = "to", [J_DIALED] = "dialed",
	[J_MAX_ATTEMPTS] = "max_attempts", [J_PRIORITY] = "priority",
	[J_NOT_BEFORE] = "not_before_ms", [J_SAY] = "say",
	[J_CALLER_ID] = "caller_id", [J_APP_URL] = "app_url",
	[J_STATUS] = "status", [J_RETRY_BUSY] = "retry_busy",
	[J_RETRY_NO_ANSWER] = "retry_no_answer",
	[J_RETRY_NETWORK] = "retry_network",
	[J_HOURS_UNTIL] = "hours_until_ms",
};

/* The job's hash, open for writing, its name, and the fields it had when
 * opened (NULL: none). */
struct job {
	RedisModuleCtx	*ctx;
	rstr		*name;
	RedisModuleKey	*key;
	rstr		*f[J__COUNT];	/* emit()'s j is f */
};

static void
job_scan(RedisModuleKey *key, rstr *field, rstr *value, void *arg)
{
	struct job *jb = arg;
	const char *s;
	size_t n, i;

	(void)key;
	s = RedisModule_StringPtrLen(field, &n);
	if (s[0] >= '0' && s[0] <= '9')
		return;		/* a timeline entry */
	for (i = 0; i < J__COUNT; i++)
		if (job_field_names[i][0] == s[0] &&
		    strlen(job_field_names[i]) == n &&
		    memcmp(job_field_names[i], s, n) == 0) {
			/* kept, and freed with the command's strings */
			jb->f[i] = RedisModule_HoldString(jb->ctx, value);
			return;
		}
}

/* Opens the job of id: its key name given (a script's KEYS[1]), or
 * NULL for RQ_KEY_JOB<id>. */
static int
job_open(struct cmd *c, struct job *jb, rstr *id, rstr *name_)
{
	RedisModuleScanCursor *cur;

	memset(jb->f, 0, sizeof(jb->f));
	jb->ctx = c->ctx;
	jb->name = name_ != NULL ? name_ : key_of(c, RQ_KEY_JOB, id);
	jb->key = RedisModule_OpenKey(c->ctx, jb->name,
	    REDISMODULE_READ | REDISMODULE_WRITE);
	if (RedisModule_KeyType(jb->key) == REDISMODULE_KEYTYPE_EMPTY)
		return 0;
	if (RedisModule_KeyType(jb->key) != REDISMODULE_KEYTYPE_HASH) {
		c->error = 1;
		return -1;
	}
	cur = RedisModule_ScanCursorCreate();
	while (RedisModule_ScanKey(jb->key, cur, job_scan, jb))
		;
	RedisModule_ScanCursorDestroy(cur);
	return 0;
}

/*
 * claim() of common/lifecycle.c (CLAIM_LUA): 1 claimed (dispatched
 * emitted), 0 stale, 2 expired (emitted).  nodes NULL: the batch adds the
 * node to rq:nodes once.
 */
static long long
claim(struct cmd *c, rstr *jobname, rstr *id, rstr *att, rstr *node,
    rstr *inflight, rstr *oncall, rstr *nodes)
{
	struct job jb;
	struct event e;
	struct pairs extra = { .n = 0 };
	rstr *attempts, *not_after, **j;
	double n, a, na;
	long long rc = 0;
	int removed;

	if (job_open(c, &jb, id, jobname) == -1)
		goto done;
	attempts = jb.f[J_ATTEMPTS];
	not_after = jb.f[J_NOT_AFTER];
	j = jb.f;
	if (!lua_number(att, &n) || !lua_number(attempts, &a) || a != n)
		goto done;
	if ((removed = zrem(c, inflight, id)) != 1) {
		c->error = removed == -1;
		goto done;
	}
	if (terminal_rank(j[J_RANK]))
		goto done;
	event_init(&e, c, id, lua_int(n), j);
	e.node = node;
	if (lua_number(not_after, &na) && (double)c->now > na) {
		e.status = RQ_ST_EXPIRED;
		e.status_name = "expired";
		e.reason = s_not_after;
		e.detail = s_not_placed;
		emit(c, jb.name, jb.key, &e, j, NULL);
		rc = 2;
		goto done;
	}
	set_call(c, "SADD", oncall, id);
	if (nodes != NULL && !c->error)
		set_call(c, "SADD", nodes, node);
	if (c->error)
		goto done;
	e.status = RQ_ST_DISPATCHED;
	e.status_name = "dispatched";
	pair(&extra, s_node, node);
	pair(&extra, s_dialed, att);
	emit(c, jb.name, jb.key, &e, j, &extra);
	rc = 1;
done:
	RedisModule_CloseKey(jb.key);
	return rc;
}

/* The end of a command that failed on a key of the wrong type, or the
 * like: what ran before stays, as after redis.call's error in a script. */
static int
reply_error(struct cmd *c)
{
	return RedisModule_ReplyWithError(c->ctx, c->why != NULL ? c->why :
	    "WRONGTYPE Operation against a key holding the wrong kind of "
	    "value");
}

/* ringq.claim 4 rq:job:<id> rq:inflight rq:oncall:<node> rq:nodes
 *     id attempt node  -> 1, 0 or 2 (claim_src) */
static int
cmd_claim(RedisModuleCtx *ctx, rstr **argv, int argc)
{
	struct cmd c = { ctx, RedisModule_Milliseconds(), 0, NULL };
	long long rc;

	if (argc != 9)
		return RedisModule_WrongArity(ctx);
	RedisModule_AutoMemory(ctx);
	rc = claim(&c, argv[2], argv[6], argv[7], argv[8], argv[3], argv[4],
	    argv[5]);
	if (c.error)
		return reply_error(&c);
	return RedisModule_ReplyWithLongLong(ctx, rc);
}

static int
prefix_is_job(RedisModuleCtx *ctx, rstr *prefix)
{
	if (strcmp(text(prefix, NULL), RQ_KEY_JOB) == 0)
		return 1;
	RedisModule_ReplyWithError(ctx, "ERR ringq: the job key prefix must "
	    "be " RQ_KEY_JOB);
	return 0;
}

/* ringq.claim_batch 3 rq:inflight rq:oncall:<node> rq:nodes
 *     node job-key-prefix id1 attempt1 ...  -> one code per id
 *     (claim_batch_src) */
static int
cmd_claim_batch(RedisModuleCtx *ctx, rstr **argv, int argc)
{
	struct cmd c = { ctx, RedisModule_Milliseconds(), 0, NULL };
	long long *rc;
	int i, n, claimed = 0;

	if (argc < 7 || (argc - 7) % 2 != 0)
		return RedisModule_WrongArity(ctx);
	if (!prefix_is_job(ctx, argv[6]))
		return REDISMODULE_OK;
	RedisModule_AutoMemory(ctx);
	n = (argc - 7) / 2;
	rc = RedisModule_Alloc(sizeof(*rc) * (size_t)(n + 1));
	for (i = 0; i < n && !c.error; i++)
		if ((rc[i] = claim(&c, NULL, argv[7 + 2 * i], argv[8 + 2 * i],
		    argv[5], argv[2], argv[3], NULL)) == 1)
			claimed = 1;
	if (claimed && !c.error)
		set_call(&c, "SADD", argv[4], argv[5]);
	if (c.error) {
		RedisModule_Free(rc);
		return reply_error(&c);
	}
	RedisModule_ReplyWithArray(ctx, n);
	for (i = 0; i < n; i++)
		RedisModule_ReplyWithLongLong(ctx, rc[i]);
	RedisModule_Free(rc);
	return REDISMODULE_OK;
}

/* The retry classes of the reasons that may be retried (CLASS). */
static const char *
retry_class(const char *why)
{
	if (strcmp(why, RQ_REASON_BUSY) == 0)
		return "busy";
	if (strcmp(why, RQ_REASON_NO_ANSWER) == 0)
		return "no_answer";
	if (strcmp(why, RQ_REASON_UNREACHABLE) == 0 ||
	    strcmp(why, RQ_REASON_MEDIA) == 0 ||
	    strcmp(why, RQ_REASON_INTERRUPTED) == 0)
		return "network";
	return NULL;
}

/* Lua's string.match(v, '^(%d+):(%d+)$') then tonumber() of both. */
static int
retry_rule(const char *v, size_t n, double *max, double *delay)
{
	size_t i, colon = 0;

	for (i = 0; i < n; i++) {
		if (v[i] == ':' && colon == 0 && i > 0)
			colon = i;
		else if (v[i] < '0' || v[i] > '9')
			return 0;
	}
	if (colon == 0 || colon == n - 1)
		return 0;
	*max = strtod(v, NULL);
	*delay = strtod(v + colon + 1, NULL);
	return 1;
}

/* rfc3339(ms) of the finish: whole seconds, UTC. */
static void
rfc3339(char *buf, size_t len, long long ms)
{
	time_t t = (time_t)floor((double)ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The job's business, or NULL: read only where a retry is at stake, not
 * with the fields every command reads (job_open()). */
static rstr *
business(struct job *jb)
{
	rstr *v = NULL;

	RedisModule_HashGet(jb->key, REDISMODULE_HASH_CFIELDS, "business",
	    &v, NULL);
	return v;
}

/* on_dnc(): the detail of a finish whose customer is on the list set,
 * or NULL. */
static rstr *
dnc_entry(struct cmd *c, rstr *set, rstr *to)
{
	RedisModuleKey *k = RedisModule_OpenKey(c->ctx, set, REDISMODULE_READ);
	int type = RedisModule_KeyType(k);
	size_t n;
	const char *name = text(set, &n);

	RedisModule_CloseKey(k);
	if (type == REDISMODULE_KEYTYPE_EMPTY)
		return NULL;
	if (type != REDISMODULE_KEYTYPE_SET)
		return mk_fmt(c, "do-not-call list %.*s unreadable: not retried",
		    (int)n, name);
	return set_call(c, "SISMEMBER", set, to) == 1 ? s_on_dnc : NULL;
}

/* on_dnc() of common/lifecycle.c (FINISH_LUA): is the job's customer on
 * a do-not-call list (the customers', the tenant's, the business's)?
 * Read before the finish's first write; a list that is not a set (made
 * by hand) answers as one the customer is on. */
static rstr *
on_dnc(struct cmd *c, struct job *jb, rstr *to)
{
	rstr *d, *biz;

	d = dnc_entry(c, s_dnc_customer, to);
	if (d == NULL && jb->f[J_TENANT] != NULL)
		d = dnc_entry(c, key_of(c, RQ_KEY_DNC_TENANT,
		    jb->f[J_TENANT]), to);
	if (d == NULL && (biz = business(jb)) != NULL)
		d = dnc_entry(c, key_of(c, RQ_KEY_DNC_BUSINESS, biz), to);
	return d;
}

/* HINCRBY job field by, replicated as that: the new value, or
 * LLONG_MIN with c->error for a field that is not an integer. */
static long long
hincr(struct cmd *c, struct job *jb, rstr *field, long long by)
{
	rstr *v = NULL, *nv;
	long long n = 0;

	if (c->error)
		return LLONG_MIN;
	RedisModule_HashGet(jb->key, REDISMODULE_HASH_NONE, field, &v, NULL);
	if (v != NULL && (RedisModule_StringToLongLong(v, &n) !=
	    REDISMODULE_OK || n == LLONG_MAX || n == LLONG_MIN)) {
		c->error = 1;
		c->why = "ERR hash value is not an integer";
		return LLONG_MIN;
	}
	n += by;
	nv = mk_int(c, n);
	RedisModule_HashSet(jb->key, REDISMODULE_HASH_NONE, field, nv, NULL);
	replicate(c, "HINCRBY", "ssl", jb->name, field, by);
	return n;
}

/* The arguments of one finish (finish_src's ARGV, 12 of them). */
enum { F_ID, F_ATTEMPT, F_NODE, F_STATUS, F_REASON, F_SIP, F_STARTED,
	F_ANSWERED, F_DURATION, F_DETAIL, F_JITTER, F_RESULT, F__COUNT };

/* Is s exactly the text t (Lua's s == t)? */
static int
text_is(const rstr *s, const char *t)
{
	size_t n;
	const char *p = text(s, &n);

	return p != NULL && n == strlen(t) && memcmp(p, t, n) == 0;
}

/*
 * late_outcome() of common/lifecycle.c (FINISH_LUA): a finish of attempt
 * n, from the node that claimed it, whose id an interrupt took out of
 * rq:oncall, while the retry it planned waits, ends the call: the retry
 * is taken back (out of the queues, a dispatcher's lease dropped and its
 * attempt given back).  Returns 1, or 0 when the finish changes nothing
 * (or c->error).
 */
static int
late_outcome(struct cmd *c, struct job *jb, rstr **A, double n,
    rstr *delayed)
{
	rstr *node = NULL;
	const char *why;
	double rank;
	size_t len;

	if (!lua_number(jb->f[J_RANK], &rank) ||
	    rank != n * 16 + RQ_ST_RETRYING ||
	    !text_is(jb->f[J_REASON], RQ_REASON_INTERRUPTED))
		return 0;
	why = text(A[F_REASON], &len);
	if (!text_is(A[F_STATUS], "completed") && len > 0 &&
	    memchr(why, '\0', len) == NULL && retry_class(why) != NULL)
		return 0;
	RedisModule_HashGet(jb->key, REDISMODULE_HASH_CFIELDS, "node", &node,
	    NULL);
	if (node == NULL || RedisModule_StringCompare(node, A[F_NODE]) != 0)
		return 0;	/* another node's finish */
	zrem(c, delayed, A[F_ID]);
	zrem(c, s_ready, A[F_ID]);
	zrem(c, s_hours, A[F_ID]);
	if (zrem(c, s_inflight, A[F_ID]) == 1)
		hincr(c, jb, s_attempts, -1);
	return !c->error;
}

/*
 * finish_one() of common/lifecycle.c (FINISH_LUA): 0 (not this attempt's
 * finish), 1 and the status emitted in *status, 3 and that status (a late
 * outcome, late_outcome()), or 2 (alive: the node's liveness key exists;
 * an interrupt only).
 */
static long long
finish(struct cmd *c, rstr *jobname, rstr **A, rstr *oncall, rstr *delayed,
    rstr *alive, const char **status)
{
	struct job jb;
	struct event e;
	struct pairs x = { .n = 0 }, nb = { .n = 0 };
	rstr *dialed, *to, *max_attempts, *not_after, **j, *pol, *dnc;
	rstr *rj = NULL;
	const char *why, *class, *orig, *polt;
	char lim[128], when[32], rule[32];
	double n, d, pmax = 0, pdelay = 0, maxatt, jit, delay, na;
	long long tries, at, rc = 0;
	size_t len;
	int late = 0;

	*status = NULL;
	jb.key = NULL;
	if (alive != NULL) {
		RedisModuleKey *k = RedisModule_OpenKey(c->ctx, alive,
		    REDISMODULE_READ);
		int live = RedisModule_KeyType(k) != REDISMODULE_KEYTYPE_EMPTY;

		RedisModule_CloseKey(k);
		if (live)
			return 2;
	}
	if (job_open(c, &jb, A[F_ID], jobname) == -1)
		goto done;
	dialed = jb.f[J_DIALED];
	to = jb.f[J_TO];
	max_attempts = jb.f[J_MAX_ATTEMPTS];
	not_after = jb.f[J_NOT_AFTER];
	j = jb.f;
	if (!lua_number(A[F_ATTEMPT], &n))
		goto done;	/* the C callers send digits */
	if (!lua_number(dialed, &d) || d != n) {
		if (RedisModule_KeyType(jb.key) == REDISMODULE_KEYTYPE_EMPTY)
			set_call(c, "SREM", oncall, A[F_ID]);
		goto done;
	}
	why = text(A[F_REASON], &len);
	if (len == 0) {
		why = RQ_REASON_REJECTED;
		len = strlen(why);
	}
	class = text_is(A[F_STATUS], "completed") ||
	    memchr(why, '\0', len) != NULL ? NULL : retry_class(why);
	dnc = class != NULL && to != NULL ? on_dnc(c, &jb, to) : NULL;
	/* emit()'s result JSON, made by a script that may fail: before the
	 * first write too */
	if (!c->error && nonempty(A[F_RESULT]) &&
	    (rj = result_json(c, A[F_RESULT])) == NULL)
		c->error = 1;
	if (c->error)
		goto done;
	if (set_call(c, "SREM", oncall, A[F_ID]) == 0) {
		if (c->error || alive != NULL ||
		    !late_outcome(c, &jb, A, n, delayed))
			goto done;
		late = 1;
	}
	if (terminal_rank(j[J_RANK]))
		goto done;
	event_init(&e, c, A[F_ID], lua_int(n), j);
	e.node = A[F_NODE];
	e.sip_code = A[F_SIP];
	e.started_ms = A[F_STARTED];
	e.answered_ms = A[F_ANSWERED];
	e.detail = A[F_DETAIL];
	if (nonempty(A[F_RESULT])) {
		e.result = A[F_RESULT];
		e.result_json = rj;
		pair(&x, s_result, A[F_RESULT]);
	}
	rc = late ? 3 : 1;
	if (text_is(A[F_STATUS], "completed")) {
		e.status = RQ_ST_COMPLETED;
		e.status_name = *status = "completed";
		e.duration_ms = A[F_DURATION];
		emit(c, jb.name, jb.key, &e, j, &x);
		goto done;
	}
	e.status = RQ_ST_FAILED;
	e.status_name = *status = "failed";
	e.reason = mk(c, why, len);
	if (dnc != NULL) {
		class = NULL;
		e.detail = dnc;
	}
	if (class == NULL) {
		emit(c, jb.name, jb.key, &e, j, &x);
		goto done;
	}
	pol = jb.f[strcmp(class, "busy") == 0 ? J_RETRY_BUSY :
	    strcmp(class, "no_answer") == 0 ? J_RETRY_NO_ANSWER :
	    J_RETRY_NETWORK];
	if (pol == NULL || (polt = text(pol, &len),
	    !retry_rule(polt, len, &pmax, &pdelay))) {
		const char *def = strcmp(class, "busy") == 0 ?
		    RQ_RETRY_BUSY_DEFAULT : strcmp(class, "no_answer") == 0 ?
		    RQ_RETRY_NO_ANSWER_DEFAULT : RQ_RETRY_NETWORK_DEFAULT;

		retry_rule(def, strlen(def), &pmax, &pdelay);
	}
	snprintf(rule, sizeof(rule), "tries_%s", class);
	if ((tries = hincr(c, &jb, mk(c, rule, strlen(rule)), 1)) == LLONG_MIN)
		goto done;
	if (!lua_number(max_attempts, &maxatt) || maxatt < 1)
		maxatt = RQ_MAX_ATTEMPTS_DEFAULT;
	orig = nonempty(e.detail) ? text(e.detail, NULL) : "";
	if ((double)tries >= pmax || n >= maxatt) {
		if ((double)tries >= pmax)
			snprintf(lim, sizeof(lim), "%lld of %lld %s attempts",
			    tries, lua_int(pmax), class);
		else
			snprintf(lim, sizeof(lim), "max_attempts %lld",
			    lua_int(maxatt));
		if (n > 1) {
			e.reason = s_attempts_exhausted;
			if (orig[0] != '\0')
				e.detail = mk_fmt(c, "%s on attempt %lld: %s "
				    "(%s)", why, lua_int(n), lim, orig);
			else
				e.detail = mk_fmt(c, "%s on attempt %lld: %s",
				    why, lua_int(n), lim);
		} else if (orig[0] != '\0')
			e.detail = mk_fmt(c, "%s; not retried: %s", orig, lim);
		else
			e.detail = mk_fmt(c, "not retried: %s", lim);
		emit(c, jb.name, jb.key, &e, j, &x);
		goto done;
	}
	/* the doubling stops at the cap; a first delay above it stands */
	delay = pdelay * pow(2, (double)(tries - 1));
	if (delay > RQ_RETRY_DELAY_MAX_MS)
		delay = pdelay > RQ_RETRY_DELAY_MAX_MS ? pdelay :
		    RQ_RETRY_DELAY_MAX_MS;
	if (!lua_number(A[F_JITTER], &jit))
		jit = 1;
	if (jit < 0.75)
		jit = 0.75;
	else if (jit > 1.25)
		jit = 1.25;
	at = c->now + lua_int(floor(delay * jit));
	rfc3339(when, sizeof(when), at);
	if (lua_number(not_after, &na) && (double)at > na) {
		e.status = RQ_ST_EXPIRED;
		e.status_name = *status = "expired";
		e.reason = s_not_after;
		e.detail = mk_fmt(c, "%s on attempt %lld; next attempt at %s "
		    "would be after not_after", why, lua_int(n), when);
		emit(c, jb.name, jb.key, &e, j, &x);
		goto done;
	}
	pair(&nb, s_not_before_ms, mk_int(c, at));
	hset(c, jb.name, jb.key, &nb);
	zadd_delayed(c, delayed, j[J_PRIORITY], at, A[F_ID]);
	if (j[J_TENANT] != NULL)
		zadd(c, key_of(c, RQ_KEY_ACTIVE, j[J_TENANT]), at, A[F_ID],
		    1);
	e.status = RQ_ST_RETRYING;
	e.status_name = *status = "retrying";
	if (orig[0] != '\0')
		e.detail = mk_fmt(c, "%s; next attempt at %s", orig, when);
	else
		e.detail = mk_fmt(c, "next attempt at %s", when);
	emit(c, jb.name, jb.key, &e, j, &x);
done:
	if (jb.key != NULL)
		RedisModule_CloseKey(jb.key);
	return rc;
}

static void
reply_finish(RedisModuleCtx *ctx, long long code, const char *status)
{
	RedisModule_ReplyWithLongLong(ctx, code);
	if (status != NULL)
		RedisModule_ReplyWithCString(ctx, status);
}

/* ringq.finish 3|4 rq:job:<id> rq:oncall:<node> rq:delayed
 *     [rq:node:<node>] id attempt node status reason sip_code started_ms
 *     answered_ms duration_ms detail jitter result
 *     -> {code} or {code, status} (finish_src) */
static int
cmd_finish(RedisModuleCtx *ctx, rstr **argv, int argc)
{
	struct cmd c = { ctx, RedisModule_Milliseconds(), 0, NULL };
	const char *status;
	long long nkeys, rc;

	if (argc < 2 || RedisModule_StringToLongLong(argv[1], &nkeys) !=
	    REDISMODULE_OK || (nkeys != 3 && nkeys != 4) ||
	    argc != 2 + nkeys + F__COUNT)
		return RedisModule_WrongArity(ctx);
	RedisModule_AutoMemory(ctx);
	rc = finish(&c, argv[2], argv + 2 + nkeys, argv[3], argv[4],
	    nkeys == 4 ? argv[5] : NULL, &status);
	if (c.error)
		return reply_error(&c);
	RedisModule_ReplyWithArray(ctx, status != NULL ? 2 : 1);
	reply_finish(ctx, rc, status);
	return REDISMODULE_OK;
}

/* ringq.finish_batch 2 rq:oncall:<node> rq:delayed job-key-prefix
 *     then 12 per finish as ringq.finish's
 *     -> flat: code, status or nil per finish (finish_batch_src) */
static int
cmd_finish_batch(RedisModuleCtx *ctx, rstr **argv, int argc)
{
	struct cmd c = { ctx, RedisModule_Milliseconds(), 0, NULL };
	const char **st;
	long long *rc;
	int i, n;

	if (argc < 5 || (argc - 5) % F__COUNT != 0)
		return RedisModule_WrongArity(ctx);
	if (!prefix_is_job(ctx, argv[4]))
		return REDISMODULE_OK;
	RedisModule_AutoMemory(ctx);
	n = (argc - 5) / F__COUNT;
	rc = RedisModule_Alloc(sizeof(*rc) * (size_t)(n + 1));
	st = RedisModule_Alloc(sizeof(*st) * (size_t)(n + 1));
	for (i = 0; i < n && !c.error; i++)
		rc[i] = finish(&c, NULL, argv + 5 + i * F__COUNT, argv[2],
		    argv[3], NULL, &st[i]);
	if (c.error) {
		RedisModule_Free(rc);
		RedisModule_Free(st);
		return reply_error(&c);
	}
	RedisModule_ReplyWithArray(ctx, 2 * n);
	for (i = 0; i < n; i++) {
		RedisModule_ReplyWithLongLong(ctx, rc[i]);
		if (st[i] != NULL)
			RedisModule_ReplyWithCString(ctx, st[i]);
		else
			RedisModule_ReplyWithNull(ctx);
	}
	RedisModule_Free(rc);
	RedisModule_Free(st);
	return REDISMODULE_OK;
}

/* score_of(priority, due) of RQ_LUA_READY_SCORE: due - priority * step. */
static long long
ready_score(rstr *priority, double due)
{
	return lua_int(due - prio_of(priority) * RQ_PRIORITY_STEP_MS);
}

/* Up to limit members of zname scored -inf..max, with their scores, in
 * order (ZRANGEBYSCORE ... LIMIT 0 limit): taken before any is removed.
 * Returns how many; -1 (c->error) when zname is not a sorted set. */
static long
zrange_upto(struct cmd *c, rstr *zname, double max, long limit, rstr **ids,
    double *scores)
{
	RedisModuleKey *k;
	long n = 0;
	int type;

	k = RedisModule_OpenKey(c->ctx, zname, REDISMODULE_READ);
	type = RedisModule_KeyType(k);
	if (type == REDISMODULE_KEYTYPE_ZSET &&
	    RedisModule_ZsetFirstInScoreRange(k, REDISMODULE_NEGATIVE_INFINITE,
	    max, 0, 0) == REDISMODULE_OK) {
		while (n < limit && !RedisModule_ZsetRangeEndReached(k)) {
			double sc;

			ids[n] = RedisModule_ZsetRangeCurrentElement(k, &sc);
			if (scores != NULL)
				scores[n] = sc;
			n++;
			if (!RedisModule_ZsetRangeNext(k))
				break;
		}
		RedisModule_ZsetRangeStop(k);
	} else if (type != REDISMODULE_KEYTYPE_ZSET &&
	    type != REDISMODULE_KEYTYPE_EMPTY) {
		c->error = 1;
		n = -1;
	}
	RedisModule_CloseKey(k);
	return n;
}

/* A score as ZRANGE WITHSCORES gives it: an integer's digits. */
static void
reply_score(RedisModuleCtx *ctx, double sc)
{
	char t[40];

	if (sc == floor(sc) && sc < 1e17 && sc > -1e17)
		fmt_int(t, (long long)sc);
	else
		snprintf(t, sizeof(t), "%.17g", sc);
	RedisModule_ReplyWithCString(ctx, t);
}

static void
reply_ids(RedisModuleCtx *ctx, rstr **ids, long n)
{
	long i;

	if (n == 0) {
		RedisModule_ReplyWithNull(ctx);
		return;
	}
	RedisModule_ReplyWithArray(ctx, n);
	for (i = 0; i < n; i++)
		RedisModule_ReplyWithString(ctx, ids[i]);
}

/* ringq.release 3 rq:delayed rq:ready rq:inflight now_ms batch prefix
 *     -> { ndue, nreleased, ndropped, expired ids or nil, reclaimed ids
 *     or nil, nexpired_leases, next_due_ms or nil } (scheduler/release.c,
 *     release_src) */
static int
cmd_release(RedisModuleCtx *ctx, rstr **argv, int argc)
{
	struct cmd c = { ctx, RedisModule_Milliseconds(), 0, NULL };
	rstr *delayed, *ready, *inflight, **due, **exp, **expired, **back;
	rstr **j, *attempts, *not_after, *priority;
	double now, *at, na, a, r;
	long long batch, released = 0, dropped = 0;
	long ndue, nexp, nexpired = 0, nback = 0, i;
	struct job jb;
	struct event e;

	if (argc != 8)
		return RedisModule_WrongArity(ctx);
	if (!lua_number(argv[5], &now) ||
	    RedisModule_StringToLongLong(argv[6], &batch) != REDISMODULE_OK ||
	    batch < 1 || batch > 100000)
		return RedisModule_ReplyWithError(ctx,
		    "ERR ringq.release: now_ms or batch is not a number");
	if (!prefix_is_job(ctx, argv[7]))
		return REDISMODULE_OK;
	RedisModule_AutoMemory(ctx);
	delayed = argv[2];
	ready = argv[3];
	inflight = argv[4];
	due = RedisModule_Alloc(sizeof(*due) * (size_t)batch);
	at = RedisModule_Alloc(sizeof(*at) * (size_t)batch);
	exp = RedisModule_Alloc(sizeof(*exp) * (size_t)batch);
	expired = RedisModule_Alloc(sizeof(*expired) * (size_t)batch);
	back = RedisModule_Alloc(sizeof(*back) * (size_t)batch);
	if ((ndue = zrange_upto(&c, delayed, floor(now) + RQ_DELAYED_LAST,
	    batch, due, at)) < 0)
		goto fail;
	for (i = 0; i < ndue; i++) {
		zrem(&c, delayed, due[i]);
		if (c.error)
			goto fail;
		if (job_open(&c, &jb, due[i], NULL) == -1) {
			/* no hash: dropped, as the Lua's pcall does, not the
			 * end of every release */
			c.error = 0;
			RedisModule_CloseKey(jb.key);
			dropped++;
			continue;
		}
		attempts = jb.f[J_ATTEMPTS];
		not_after = jb.f[J_NOT_AFTER];
		priority = jb.f[J_PRIORITY];
		j = jb.f;
		if (!lua_number(attempts, &a))
			a = 0;
		event_init(&e, &c, due[i], lua_int(a), j);
		if (terminal_rank(j[J_RANK]) || !job_exists(j, jb.key))
			dropped++;
		else if (lua_number(not_after, &na) && now > na) {
			e.status = RQ_ST_EXPIRED;
			e.status_name = "expired";
			e.reason = s_not_after;
			e.detail = s_due_after;
			emit(&c, jb.name, jb.key, &e, j, NULL);
			expired[nexpired++] = due[i];
		} else {
			zadd(&c, ready, ready_score(priority, round(at[i])),
			    due[i], 0);
			released++;
			if (a == 0 && (!lua_number(j[J_RANK], &r) ||
			    r < RQ_ST_SCHEDULED)) {
				e.status = RQ_ST_SCHEDULED;
				e.status_name = "scheduled";
				emit(&c, jb.name, jb.key, &e, j, NULL);
			}
		}
		RedisModule_CloseKey(jb.key);
		if (c.error)
			goto fail;
	}
	if ((nexp = zrange_upto(&c, inflight, (double)c.now, batch, exp,
	    NULL)) < 0)
		goto fail;
	for (i = 0; i < nexp; i++) {
		rstr *nb, *rank;
		double due_at;

		zrem(&c, inflight, exp[i]);
		if (c.error)
			goto fail;
		if (job_open(&c, &jb, exp[i], NULL) == -1) {
			c.error = 0;		/* no hash: forgotten */
			RedisModule_CloseKey(jb.key);
			continue;
		}
		nb = jb.f[J_NOT_BEFORE];
		attempts = jb.f[J_ATTEMPTS];
		rank = jb.f[J_RANK];
		if (RedisModule_KeyType(jb.key) == REDISMODULE_KEYTYPE_HASH &&
		    !terminal_rank(rank)) {
			if (lua_number(attempts, &a) && a > 0)
				hincr(&c, &jb, s_attempts, -1);
			if (!lua_number(nb, &due_at))
				due_at = now;
			zadd(&c, ready, ready_score(jb.f[J_PRIORITY],
			    due_at), exp[i], 0);
			back[nback++] = exp[i];
		}
		RedisModule_CloseKey(jb.key);
		if (c.error)
			goto fail;
	}
	if (released + nback > 0) {
		/* A dispatcher blocked in ringq.take takes them now; one
		 * without the module hears it on rq:wake. */
		RedisModule_SignalKeyAsReady(ctx, ready);
		publish(&c, s_wake, mk_int(&c, released + nback));
	}
	RedisModule_ReplyWithArray(ctx, 7);
	RedisModule_ReplyWithLongLong(ctx, ndue);
	RedisModule_ReplyWithLongLong(ctx, released);
	RedisModule_ReplyWithLongLong(ctx, dropped);
	reply_ids(ctx, expired, nexpired);
	reply_ids(ctx, back, nback);
	RedisModule_ReplyWithLongLong(ctx, nexp);
	{
		RedisModuleKey *k = RedisModule_OpenKey(ctx, delayed,
		    REDISMODULE_READ);
		double sc;

		if (RedisModule_KeyType(k) == REDISMODULE_KEYTYPE_ZSET &&
		    RedisModule_ZsetFirstInScoreRange(k,
		    REDISMODULE_NEGATIVE_INFINITE, REDISMODULE_POSITIVE_INFINITE,
		    0, 0) == REDISMODULE_OK &&
		    !RedisModule_ZsetRangeEndReached(k)) {
			RedisModule_ZsetRangeCurrentElement(k, &sc);
			RedisModule_ZsetRangeStop(k);
			reply_score(ctx, round(sc));	/* its due ms */
		} else
			RedisModule_ReplyWithNull(ctx);
		RedisModule_CloseKey(k);
	}
	RedisModule_Free(due);
	RedisModule_Free(at);
	RedisModule_Free(exp);
	RedisModule_Free(expired);
	RedisModule_Free(back);
	return REDISMODULE_OK;
fail:
	RedisModule_Free(due);
	RedisModule_Free(at);
	RedisModule_Free(exp);
	RedisModule_Free(expired);
	RedisModule_Free(back);
	return reply_error(&c);
}

/* The first member of zname, taken out of it (ZPOPMIN), replicated as its
 * ZREM; NULL when empty. */
static rstr *
zpopmin(struct cmd *c, rstr *zname)
{
	rstr *id = NULL;
	RedisModuleKey *k;
	int type, deleted;

	k = RedisModule_OpenKey(c->ctx, zname,
	    REDISMODULE_READ | REDISMODULE_WRITE);
	type = RedisModule_KeyType(k);
	if (type == REDISMODULE_KEYTYPE_ZSET &&
	    RedisModule_ZsetFirstInScoreRange(k, REDISMODULE_NEGATIVE_INFINITE,
	    REDISMODULE_POSITIVE_INFINITE, 0, 0) == REDISMODULE_OK &&
	    !RedisModule_ZsetRangeEndReached(k)) {
		id = RedisModule_ZsetRangeCurrentElement(k, NULL);
		RedisModule_ZsetRangeStop(k);
		if (RedisModule_ZsetRem(k, id, &deleted) == REDISMODULE_OK &&
		    deleted)
			replicate(c, "ZREM", "ss", zname, id);
	} else if (type != REDISMODULE_KEYTYPE_ZSET &&
	    type != REDISMODULE_KEYTYPE_EMPTY)
		c->error = 1;
	RedisModule_CloseKey(k);
	return id;
}

/* The job's fields a dispatched id carries, in the reply's order. */
static const int take_fields[] = { J_TENANT, J_TO, J_SAY, J_CALLER_ID,
	J_PRIORITY, J_APP_URL };
#define TAKE_NFIELDS	(sizeof(take_fields) / sizeof(take_fields[0]))

/* What the take did with one id: its RQ_TAKE_SLOTS elements. */
struct taken {
	rstr		*id;
	const char	*what;	/* terminal, expired, ...; NULL: dispatched
				 * (v set) or vanished (v[0] NULL) */
	long long	 att;
	rstr		*v[TAKE_NFIELDS];	/* take_fields, or the
						 * status for "terminal" */
};

static void
reply_taken(RedisModuleCtx *ctx, const struct taken *t)
{
	size_t i;
	int k = 1;

	RedisModule_ReplyWithString(ctx, t->id);
	if (t->what != NULL) {
		RedisModule_ReplyWithCString(ctx, t->what);
		if (strcmp(t->what, "terminal") == 0)
			RedisModule_ReplyWithString(ctx, t->v[0]);
		else
			RedisModule_ReplyWithLongLong(ctx, t->att);
		k = 3;
	} else if (t->v[0] != NULL || t->v[1] != NULL) {
		RedisModule_ReplyWithLongLong(ctx, t->att);
		for (i = 0; i < TAKE_NFIELDS; i++)
			if (t->v[i] != NULL)
				RedisModule_ReplyWithString(ctx, t->v[i]);
			else
				RedisModule_ReplyWithNull(ctx);
		k = 2 + (int)TAKE_NFIELDS;
	}
	for (; k < RQ_TAKE_SLOTS; k++)
		RedisModule_ReplyWithNull(ctx);
}

/* The take's work, into out (max + 1 entries): pops up to max ids from
 * argv[2] (rq:ready), leases the usable ones in argv[3] (rq:inflight) for
 * lease ms, hands those whose calling hours closed to argv[4] (rq:hours)
 * and ends the others.  Returns how many it popped; c->error set: the
 * caller answers the error. */
static long long
take_run(struct cmd *c, rstr **argv, long long lease, long long max,
    struct taken *out)
{
	long long n = 0, deadline = 0, i;
	rstr *id, **f;
	double a, maxatt, na, hu;
	struct taken *t;
	struct job jb;
	struct event e;

	while (n < max && (id = zpopmin(c, argv[2])) != NULL) {
		if (n == 0) {
			c->now = RedisModule_Milliseconds();
			deadline = c->now + lease;
		}
		t = &out[n++];
		t->id = id;
		if (job_open(c, &jb, id, NULL) == -1)
			break;
		f = jb.f;
		if (!lua_number(f[J_ATTEMPTS], &a))
			a = 0;
		t->att = lua_int(a);
		if (!lua_number(f[J_MAX_ATTEMPTS], &maxatt) || maxatt < 1)
			maxatt = RQ_MAX_ATTEMPTS_DEFAULT;
		event_init(&e, c, id, t->att, f);
		if (!job_exists(f, jb.key))
			;	/* vanished */
		else if (terminal_rank(f[J_RANK])) {
			t->what = "terminal";
			t->v[0] = f[J_STATUS] != NULL ? f[J_STATUS] :
			    mk(c, "?", 1);
		} else if (lua_number(f[J_NOT_AFTER], &na) &&
		    (double)c->now > na) {
			e.status = RQ_ST_EXPIRED;
			e.status_name = t->what = "expired";
			e.reason = s_not_after;
			e.detail = s_not_placed_its;
		} else if (a >= maxatt) {
			e.status = RQ_ST_FAILED;
			e.status_name = "failed";
			t->what = "exhausted";
			e.reason = s_attempts_exhausted;
			e.detail = s_max_reached;
		} else if (f[J_HOURS_UNTIL] != NULL &&
		    lua_number(f[J_HOURS_UNTIL], &hu) && (double)c->now >= hu) {
			/* no attempt, no lease, no event: the scheduler
			 * plans it again */
			zadd(c, argv[4], c->now, id, 0);
			t->what = "closed";
		} else if ((t->att = hincr(c, &jb, s_attempts, 1)) ==
		    LLONG_MIN) {
			RedisModule_CloseKey(jb.key);
			break;
		} else if (f[J_TENANT] == NULL || f[J_TO] == NULL) {
			e.attempt = t->att;
			e.status = RQ_ST_FAILED;
			e.status_name = "failed";
			t->what = "rejected";
			e.reason = s_rejected;
			e.detail = s_no_target;
		} else {
			zadd(c, argv[3], deadline, id, 0);
			for (i = 0; i < (long long)TAKE_NFIELDS; i++)
				t->v[i] = f[take_fields[i]];
		}
		if (e.status_name != NULL)
			emit(c, jb.name, jb.key, &e, f, NULL);
		RedisModule_CloseKey(jb.key);
		if (c->error)
			break;
	}
	return n;
}

/* The arguments of ringq.take: 0, or -1 with the error answered. */
static int
take_args(RedisModuleCtx *ctx, rstr **argv, int argc, long long *lease,
    long long *max, long long *block)
{
	*block = -1;
	if (argc != 8 && argc != 9)
		return RedisModule_WrongArity(ctx), -1;
	if (RedisModule_StringToLongLong(argv[5], lease) != REDISMODULE_OK ||
	    *lease < 0 || *lease > RQ_TAKE_MAX_MS ||
	    RedisModule_StringToLongLong(argv[7], max) != REDISMODULE_OK ||
	    *max < 0 || *max > RQ_TAKE_MAX_JOBS || (argc == 9 &&
	    (RedisModule_StringToLongLong(argv[8], block) != REDISMODULE_OK ||
	    *block < 0 || *block > RQ_TAKE_MAX_MS))) {
		RedisModule_ReplyWithError(ctx, "ERR ringq.take: lease, max or "
		    "block is not a number");
		return -1;
	}
	if (!prefix_is_job(ctx, argv[6]))
		return -1;
	return 0;
}

/* Answers the n ids take_run popped (nil for none) and frees out. */
static int
take_reply(RedisModuleCtx *ctx, struct cmd *c, struct taken *out,
    long long n)
{
	long long i;

	if (c->error) {
		RedisModule_Free(out);
		return reply_error(c);
	}
	if (n == 0)
		RedisModule_ReplyWithNull(ctx);
	else {
		RedisModule_ReplyWithArray(ctx, n * RQ_TAKE_SLOTS);
		for (i = 0; i < n; i++)
			reply_taken(ctx, &out[i]);
	}
	RedisModule_Free(out);
	return REDISMODULE_OK;
}

static int	take_ready(RedisModuleCtx *, rstr **, int);
static int	take_timeout(RedisModuleCtx *, rstr **, int);

/*
 * ringq.take 3 rq:ready rq:inflight rq:hours lease_ms prefix max [block_ms]
 *     -> RQ_TAKE_SLOTS elements per id taken, or nil (take_src; an id
 *     whose hours_until_ms passed goes to rq:hours, answered 'closed')
 * lease_ms and block_ms 0 to RQ_TAKE_MAX_MS, max 0 to RQ_TAKE_MAX_JOBS.
 * With block_ms, a take that finds rq:ready empty waits for it, up to
 * block_ms (0: for ever), and answers nil at the end of that wait: Redis
 * runs take_ready as soon as a command has added to rq:ready, in the same
 * turn, so the dispatcher gets the jobs a release made ready in that
 * release's turn, without a wake-up message and a take of its own.  In a
 * script or a transaction, where Redis cannot block, it does not wait.
 * waited: called by take_ready, where finding nothing (another take was
 * first) means waiting on (REDISMODULE_ERR).
 */
static int
take(RedisModuleCtx *ctx, rstr **argv, int argc, int waited)
{
	struct cmd c = { ctx, 0, 0, NULL };
	long long lease, max, block, n;
	struct taken *out;

	if (take_args(ctx, argv, argc, &lease, &max, &block) == -1)
		return REDISMODULE_OK;
	RedisModule_AutoMemory(ctx);
	out = RedisModule_Calloc((size_t)max + 1, sizeof(*out));
	n = take_run(&c, argv, lease, max, out);
	/* Where Redis cannot block it answers an error and leaks the
	 * blocked client: answer nil then, as a take that did not wait. */
	if (RedisModule_GetContextFlags(ctx) & (REDISMODULE_CTX_FLAGS_LUA |
	    REDISMODULE_CTX_FLAGS_MULTI | REDISMODULE_CTX_FLAGS_DENY_BLOCKING))
		block = -1;
	if (n == 0 && !c.error && (waited || (block >= 0 && max > 0))) {
		RedisModule_Free(out);
		if (waited)
			return REDISMODULE_ERR;
		RedisModule_BlockClientOnKeys(ctx, take_ready, take_timeout,
		    NULL, block, &argv[2], 1, NULL);
		return REDISMODULE_OK;
	}
	return take_reply(ctx, &c, out, n);
}

/* A waiting take, once rq:ready has ids.  Its writes go to the AOF and
 * the replicas as a command's do. */
static int
take_ready(RedisModuleCtx *ctx, rstr **argv, int argc)
{
	return replicated(ctx, take(ctx, argv, argc, 1));
}

/* A waiting take's time is over: nothing came. */
static int
take_timeout(RedisModuleCtx *ctx, rstr **argv, int argc)
{
	return RedisModule_ReplyWithNull(ctx);
}

static int
cmd_take(RedisModuleCtx *ctx, rstr **argv, int argc)
{
	return take(ctx, argv, argc, 0);
}

/* A reply of RedisModule_Call, freed; NULL when it failed (c->error). */
static RedisModuleCallReply *
call_ok(struct cmd *c, RedisModuleCallReply *r)
{
	if (r == NULL || RedisModule_CallReplyType(r) ==
	    REDISMODULE_REPLY_ERROR) {
		if (r != NULL)
			RedisModule_FreeCallReply(r);
		c->error = 1;
		return NULL;
	}
	return r;
}

/* The integer answer of a command run by RedisModule_Call (0 for nil);
 * c->error when it failed. */
static long long
call_int(struct cmd *c, RedisModuleCallReply *r)
{
	long long n = 0;

	if ((r = call_ok(c, r)) == NULL)
		return 0;
	if (RedisModule_CallReplyType(r) == REDISMODULE_REPLY_INTEGER)
		n = RedisModule_CallReplyInteger(r);
	RedisModule_FreeCallReply(r);
	return n;
}

/*
 * GET key, as a script sees it: the value, or NULL for none.  A key of
 * another type ends the command (c->error), as GET's WRONGTYPE would.
 * Through the key, not RedisModule_Call, whose client, arguments and reply
 * cost Redis several times more.
 */
static rstr *
get_string(struct cmd *c, rstr *key)
{
	RedisModuleKey *k;
	const char *p;
	rstr *v = NULL;
	size_t n;

	if (c->error)
		return NULL;
	k = RedisModule_OpenKey(c->ctx, key, REDISMODULE_READ);
	if (RedisModule_KeyType(k) == REDISMODULE_KEYTYPE_STRING) {
		p = RedisModule_StringDMA(k, &n, REDISMODULE_READ);
		v = mk(c, p, n);
	} else if (RedisModule_KeyType(k) != REDISMODULE_KEYTYPE_EMPTY)
		c->error = 1;
	RedisModule_CloseKey(k);
	return v;
}

/*
 * INCR key, whose value get_string() read (cur, NULL for none): the new
 * value.  Written in place, so that a TTL stays, as INCR keeps it; INCR's
 * errors end the command.
 */
static long long
incr(struct cmd *c, rstr *key, rstr *cur)
{
	RedisModuleKey *k;
	long long n = 0;
	char t[24], *p;
	size_t len;

	if (c->error)
		return 0;
	if (cur != NULL && RedisModule_StringToLongLong(cur, &n) !=
	    REDISMODULE_OK)
		c->why = "ERR value is not an integer or out of range";
	else if (n == LLONG_MAX)
		c->why = "ERR increment or decrement would overflow";
	if (c->why != NULL) {
		c->error = 1;
		return 0;
	}
	k = RedisModule_OpenKey(c->ctx, key, REDISMODULE_WRITE);
	/* Only the command's own writes came since the read: a key named as
	 * one of its others (a client's odd keys) now holds another type. */
	if (RedisModule_KeyType(k) != (cur == NULL ?
	    REDISMODULE_KEYTYPE_EMPTY : REDISMODULE_KEYTYPE_STRING))
		c->error = 1;
	else if (cur == NULL)
		RedisModule_StringSet(k, mk_int(c, ++n));
	else {
		/* a string key, made at most 20 bytes: neither fails */
		len = fmt_int(t, ++n);
		RedisModule_StringTruncate(k, len);
		p = RedisModule_StringDMA(k, &len, REDISMODULE_WRITE);
		memcpy(p, t, len);
	}
	RedisModule_CloseKey(k);
	if (!c->error)
		replicate(c, "INCR", "s", key);
	return n;
}

/* HGET key field; a key of another type ends the command (c->error). */
static rstr *
hash_get(struct cmd *c, rstr *key, rstr *field)
{
	RedisModuleKey *k;
	rstr *v = NULL;
	int type;

	if (c->error)
		return NULL;
	k = RedisModule_OpenKey(c->ctx, key, REDISMODULE_READ);
	type = RedisModule_KeyType(k);
	if (type == REDISMODULE_KEYTYPE_HASH)
		RedisModule_HashGet(k, REDISMODULE_HASH_NONE, field, &v, NULL);
	else if (type != REDISMODULE_KEYTYPE_EMPTY)
		c->error = 1;
	RedisModule_CloseKey(k);
	return v;
}

/* An idempotency key's place (common/keys.h, RQ_KEY_IDEM): the hash of
 * this period and of the one before, the field, and when this period's
 * hash expires (ms). */
struct idem {
	rstr		*hash, *before, *field;
	long long	 expire_ms;
};

/* pre (n bytes) .. ttl .. ':' .. period: a hash's name as the script
 * makes it (without mk_fmt, whose vsnprintf was half the keys' cost). */
static rstr *
idem_name(struct cmd *c, const char *pre, size_t n, long long ttl,
    long long period)
{
	char t[48];
	size_t k;
	rstr *r;

	k = fmt_int(t, ttl);
	t[k++] = ':';
	k += fmt_int(t + k, period);
	r = mk(c, pre, n);
	RedisModule_StringAppendBuffer(c->ctx, r, t, k);
	return r;
}

/* The place of the key whose old name is legacy (its last part is the
 * field, as the intake script splits it), in hashes of ttl_arg seconds. */
static int
idem_place(struct cmd *c, struct idem *im, rstr *legacy, rstr *ttl_arg)
{
	const char *s, *colon;
	long long ttl, period;
	size_t n, pre;

	if (RedisModule_StringToLongLong(ttl_arg, &ttl) != REDISMODULE_OK ||
	    ttl <= 0 || ttl > RQ_IDEM_PERIOD_MAX_S) {
		c->why = "ERR ringq.create: the idempotency TTL is not a "
		    "number of seconds";
		c->error = 1;
		return -1;
	}
	s = text(legacy, &n);
	colon = memrchr(s, ':', n);
	pre = colon != NULL ? (size_t)(colon - s) + 1 : 0;
	period = c->now / 1000 / ttl;
	im->field = mk(c, s + pre, n - pre);
	im->hash = idem_name(c, s, pre, ttl, period);
	im->before = idem_name(c, s, pre, ttl, period - 1);
	im->expire_ms = (period + 2) * ttl * 1000;
	return 0;
}

/* HSET hash field id, then its expiry if it has none, as the intake
 * script stores a key (propagated as Redis 7 does: PEXPIREAT). */
static void
idem_store(struct cmd *c, const struct idem *im, rstr *id)
{
	struct pairs p = { .n = 0 };
	RedisModuleKey *k;

	if (c->error)
		return;
	k = RedisModule_OpenKey(c->ctx, im->hash,
	    REDISMODULE_READ | REDISMODULE_WRITE);
	pair(&p, im->field, id);
	hset(c, im->hash, k, &p);
	if (!c->error && RedisModule_GetExpire(k) == REDISMODULE_NO_EXPIRE) {
		if (RedisModule_SetAbsExpire(k, im->expire_ms) ==
		    REDISMODULE_OK)
			replicate(c, "PEXPIREAT", "sl", im->hash,
			    im->expire_ms);
		else
			c->error = 1;
	}
	RedisModule_CloseKey(k);
}

/* (tonumber(v) or 0) >= limit, as the create's rate checks read a
 * counter (limit > 0). */
static int
over(const rstr *v, double limit)
{
	double d;

	return lua_number(v, &d) && d >= limit;
}

static void
reply_pair(RedisModuleCtx *ctx, const char *what, const char *s, size_t n)
{
	RedisModule_ReplyWithArray(ctx, 2);
	RedisModule_ReplyWithCString(ctx, what);
	RedisModule_ReplyWithStringBuffer(ctx, s, n);
}

/* The statuses a call ends with, by name (the create's prune). */
static int
terminal_name(const char *s)
{
	return !strcmp(s, "completed") || !strcmp(s, "failed") ||
	    !strcmp(s, "canceled") || !strcmp(s, "expired");
}

/*
 * ringq.create 9 idem dnc-tenant dnc-customer dnc-business rate-prefix
 *     active job tenant-calls delayed  number rps rpd max_concurrent id
 *     idem_ttl has_idem has_business job-prefix not_before_ms created_ms
 *     tenant to has_callback [field value]...
 *     -> "ok", {"replay", id}, {"dnc", list},
 *     {"rate_s", ms}, {"rate_d", s} or {"busy", n}
 * The gateway's intake script (gateway/policy_store.c, create_lua): the
 * policy checks, then the job, its event and its slots.
 */
static int
cmd_create(RedisModuleCtx *ctx, rstr **argv, int argc)
{
	struct cmd c = { ctx, RedisModule_Milliseconds(), 0, NULL };
	rstr **K = argv + 2, **A = argv + 10, *ks = NULL, *kd = NULL;
	rstr *vs = NULL, *vd = NULL, *prio = NULL, *na = NULL;
	struct pairs p = { .n = 0 };
	RedisModuleKey *k;
	RedisModuleStreamID sid;
	double rps, rpd, maxc, due, nb, nav;
	long long ms, sec, n;
	const char *sv;
	char t[64], *q;
	size_t len, i;
	struct idem im = { NULL, NULL, NULL, 0 };
	int has_idem;

	/* A[1] is ARGV[1], K[0] KEYS[1] */
	if (argc < 25 || (argc - 25) % 2 != 0 ||
	    strcmp(text(argv[1], NULL), "9") != 0)
		return RedisModule_WrongArity(ctx);
	if (!lua_number(A[2], &rps) || !lua_number(A[3], &rpd) ||
	    !lua_number(A[4], &maxc))
		return RedisModule_ReplyWithError(ctx,
		    "ERR ringq.create: a limit is not a number");
	/* the fields the queues need, checked before anything is written */
	for (i = 15; i + 1 <= (size_t)argc - 11; i += 2) {
		sv = text(A[i], &len);
		if (len == 8 && memcmp(sv, "priority", 8) == 0)
			prio = A[i + 1];
		else if (len == 12 && memcmp(sv, "not_after_ms", 12) == 0)
			na = A[i + 1];
	}
	if (!lua_number(A[10], &nb) || (na != NULL && !lua_number(na, &nav)))
		return RedisModule_ReplyWithError(ctx, "ERR ringq.create: "
		    "not_before_ms or not_after_ms is not a number");
	RedisModule_AutoMemory(ctx);
	has_idem = strcmp(text(A[7], NULL), "1") == 0;
	if (has_idem) {
		rstr *prev = get_string(&c, K[0]);

		if (!c.error && prev == NULL &&
		    idem_place(&c, &im, K[0], A[6]) == 0) {
			prev = hash_get(&c, im.hash, im.field);
			if (prev == NULL)
				prev = hash_get(&c, im.before, im.field);
		}
		if (c.error)
			return reply_error(&c);
		if (prev != NULL) {
			sv = text(prev, &len);
			reply_pair(ctx, "replay", sv, len);
			return REDISMODULE_OK;
		}
	}
	if (text(A[1], &len), len > 0) {
		const char *list = NULL;

		if (set_call(&c, "SISMEMBER", K[1], A[1]) == 1)
			list = "tenant";
		else if (!c.error && set_call(&c, "SISMEMBER", K[2], A[1]) ==
		    1)
			list = "customer";
		else if (!c.error && strcmp(text(A[8], NULL), "1") == 0 &&
		    set_call(&c, "SISMEMBER", K[3], A[1]) == 1)
			list = "business";
		if (c.error)
			return reply_error(&c);
		if (list != NULL) {
			reply_pair(ctx, "dnc", list, strlen(list));
			return REDISMODULE_OK;
		}
	}
	ms = c.now;
	sec = ms / 1000;
	/* KEYS[5] .. ':s:' .. sec and ':d:' .. floor(sec / 86400), each
	 * counter read once, for its check and its INCR (named only for a
	 * limit: most tenants have none) */
	if (rps > 0) {
		ks = mk_fmt(&c, "%s:s:%lld", text(K[4], NULL), sec);
		vs = get_string(&c, ks);
	}
	if (over(vs, rps)) {
		n = fmt_int(t, 1000 - ms % 1000);
		reply_pair(ctx, "rate_s", t, (size_t)n);
		return REDISMODULE_OK;
	}
	if (rpd > 0) {
		kd = mk_fmt(&c, "%s:d:%lld", text(K[4], NULL), sec / 86400);
		vd = get_string(&c, kd);
	}
	if (over(vd, rpd)) {
		n = fmt_int(t, 86400 - sec % 86400);
		reply_pair(ctx, "rate_d", t, (size_t)n);
		return REDISMODULE_OK;
	}
	if (c.error)
		return reply_error(&c);
	due = nb < (double)ms ? (double)ms : nb;
	if (maxc > 0) {
		rstr *now_s = mk_int(&c, ms);

		if ((double)call_int(&c, RedisModule_Call(ctx, "ZCOUNT", "scs",
		    K[5], "-inf", now_s)) >= maxc && due <= (double)ms) {
			rstr *m[20];
			double sc[20];
			long nm, j;

			if ((nm = zrange_upto(&c, K[5], (double)ms, 20, m,
			    sc)) < 0)
				return reply_error(&c);
			for (j = 0; j < nm && !c.error; j++) {
				RedisModuleCallReply *h;
				const char *st = NULL;

				h = call_ok(&c, RedisModule_Call(ctx, "HGET",
				    "sc", key_of(&c, text(A[9], NULL), m[j]),
				    "status"));
				if (h == NULL)
					break;
				if (RedisModule_CallReplyType(h) ==
				    REDISMODULE_REPLY_STRING)
					st = text(RedisModule_CreateStringFromCallReply(
					    h), NULL);
				RedisModule_FreeCallReply(h);
				if ((st == NULL && sc[j] < (double)(ms -
				    60000)) || (st != NULL &&
				    terminal_name(st)))
					zrem(&c, K[5], m[j]);
			}
			if (c.error)
				return reply_error(&c);
			n = call_int(&c, RedisModule_Call(ctx, "ZCOUNT", "scs",
			    K[5], "-inf", now_s));
			if (c.error)
				return reply_error(&c);
			if ((double)n >= maxc) {
				len = fmt_int(t, n);
				reply_pair(ctx, "busy", t, len);
				return REDISMODULE_OK;
			}
		}
		if (c.error)
			return reply_error(&c);
	}

	/* the job */
	k = RedisModule_OpenKey(ctx, K[6], REDISMODULE_READ | REDISMODULE_WRITE);
	if (RedisModule_KeyType(k) != REDISMODULE_KEYTYPE_EMPTY &&
	    RedisModule_KeyType(k) != REDISMODULE_KEYTYPE_HASH) {
		RedisModule_CloseKey(k);
		c.error = 1;
		return reply_error(&c);
	}
	pair(&p, s_id, A[5]);
	pair(&p, s_tenant, A[12]);
	pair(&p, s_to, A[13]);
	pair(&p, s_not_before_ms, A[10]);
	pair(&p, s_created_ms, A[11]);
	pair(&p, s_status, s_queued);
	{
		/* its timeline entry, as emit() would write it */
		struct buf tl = { NULL, 0, 0 };

		puts_(&tl, "{\"status\":\"queued\",\"attempt\":0,\"ts_ms\":");
		sv = text(A[11], &len);
		put(&tl, sv, len);
		put(&tl, "}", 1);
		pair(&p, s_tl_queued, mk(&c, tl.p, tl.len));
		RedisModule_Free(tl.p);
	}
	/* ARGV[15] on: the job's other fields; ARGV[argc - 11] the last */
	for (i = 15; i + 1 <= (size_t)argc - 11 && p.n + 2 <= 48; i += 2) {
		pair(&p, A[i], A[i + 1]);
	}
	if (i + 1 <= (size_t)argc - 11) {
		RedisModule_CloseKey(k);
		return RedisModule_ReplyWithError(ctx,
		    "ERR ringq.create: too many job fields");
	}
	hset(&c, K[6], k, &p);
	RedisModule_CloseKey(k);
	zadd_text(&c, K[7], A[11], A[5]);
	if (c.error)
		return reply_error(&c);
	/* its event, as emit() would write it */
	p.n = 0;
	pair(&p, s_call_id, A[5]);
	pair(&p, s_attempt, s_zero);
	pair(&p, s_status, s_queued);
	pair(&p, s_ts_ms, A[11]);
	pair(&p, s_tenant, A[12]);
	pair(&p, s_to, A[13]);
	pair(&p, s_mirrored, s_one);
	if (strcmp(text(A[14], NULL), "1") == 0)
		pair(&p, s_callback, s_one);
	k = RedisModule_OpenKey(ctx, s_events, REDISMODULE_WRITE);
	if (RedisModule_StreamAdd(k, REDISMODULE_STREAM_ADD_AUTOID, &sid,
	    p.v, p.n / 2) == REDISMODULE_OK) {
		q = t + fmt_int(t, (long long)sid.ms);
		*q++ = '-';
		q += fmt_int(q, (long long)sid.seq);
		replicate(&c, "XADD", "sbv", s_events, t,
		    (size_t)(q - t), p.v, (size_t)p.n);
	} else
		c.error = 1;
	RedisModule_CloseKey(k);
	if (c.error)
		return reply_error(&c);
	zadd_delayed(&c, K[8], prio, lua_int(nb), A[5]);
	if (na != NULL)
		zadd_text(&c, s_deadlines, na, A[5]);
	if (c.error)
		return reply_error(&c);
	if (due <= (double)(ms + RQ_DUE_SOON_MS))
		publish(&c, s_due, A[5]);
	if (maxc > 0)
		zadd(&c, K[5], lua_int(due), A[5], 0);
	/* each only after the one before succeeded, as in the script */
	if (!c.error && rps > 0 && incr(&c, ks, vs) == 1 && !c.error)
		pexpire(&c, ks, 2000);
	if (!c.error && rpd > 0 && incr(&c, kd, vd) == 1 && !c.error)
		pexpire(&c, kd, 90000000);
	if (!c.error && has_idem)
		idem_store(&c, &im, A[5]);
	if (c.error)
		return reply_error(&c);
	RedisModule_ReplyWithCString(ctx, "ok");
	return REDISMODULE_OK;
}

static int
cmd_version(RedisModuleCtx *ctx, rstr **argv, int argc)
{
	(void)argv;
	if (argc != 1)
		return RedisModule_WrongArity(ctx);
	return RedisModule_ReplyWithLongLong(ctx, RQ_MODULE_VERSION);
}

/*
 * The writes a ringq.apply may hold: those replicate() is given, each with
 * the arguments it is given (the command's name counted; parity 1: an odd
 * count, 2: even), so that a write Redis would refuse is refused before
 * any runs.
 */
static const struct apply_command {
	const char	*name;
	unsigned char	 min, max, parity;
} apply_commands[] = {
	{ "HSET", 4, APPLY_MAX_STRINGS, 2 },
	{ "HDEL", 3, APPLY_MAX_STRINGS, 0 }, { "HINCRBY", 4, 4, 0 },
	{ "ZADD", 4, 5, 0 }, { "ZREM", 3, 3, 0 },
	{ "XADD", 5, APPLY_MAX_STRINGS, 1 },
	{ "PEXPIREAT", 3, 3, 0 }, { "SADD", 3, 3, 0 }, { "SREM", 3, 3, 0 },
	{ "INCR", 2, 2, 0 }, { "SET", 3, 5, 0 }, { "PUBLISH", 3, 3, 0 },
};

/* The one of apply_commands that s[n] names, or NULL. */
static const struct apply_command *
apply_command(const char *s, size_t n)
{
	const struct apply_command *w;

	for (w = apply_commands; w < apply_commands +
	    sizeof(apply_commands) / sizeof(apply_commands[0]); w++)
		if (strlen(w->name) == n && memcmp(w->name, s, n) == 0)
			return w;
	return NULL;
}

/* Does w take argc arguments (its name counted)? */
static int
apply_shape(const struct apply_command *w, size_t argc)
{
	return argc >= w->min && argc <= w->max &&
	    (w->parity == 0 || argc % 2 == w->parity % 2);
}

/* The number after kind at p[*i] and its CRLF, in *v, as resp_arg()
 * writes it (no sign, no leading zero, at most 9 digits: Redis's strings
 * end at 512 MB); -1 if not. */
static int
resp_num(const char *p, size_t len, size_t *i, char kind, size_t *v)
{
	size_t j = *i, n = 0, digits = 0;

	if (j >= len || p[j] != kind)
		return -1;
	for (j++; j < len && p[j] >= '0' && p[j] <= '9' && digits < 9;
	    j++, digits++)
		n = n * 10 + (size_t)(p[j] - '0');
	if (digits == 0 || (digits > 1 && p[*i + 1] == '0') || j + 1 >= len ||
	    p[j] != '\r' || p[j + 1] != '\n')
		return -1;
	*v = n;
	*i = j + 2;
	return 0;
}

/*
 * The writes of a ringq.apply, p[len]: one or more RESP commands, each one
 * of apply_commands with its count of arguments.  Checks them all (ctx
 * NULL), or runs each by RedisModule_Call (PUBLISH not while loading:
 * nobody listens), with "!" when this module replicates plainly, so that
 * its AOF and replicas get plain commands too.  Returns how many, or -1
 * with *at where they stop making sense (checking) or where one failed
 * (running, the reason logged).
 */
static long
apply_writes(RedisModuleCtx *ctx, int loading, const char *p, size_t len,
    size_t *at)
{
	const struct apply_command *cmd = NULL;
	rstr *argv[APPLY_MAX_STRINGS - 1];
	RedisModuleCallReply *r;
	const char *why;
	size_t i = 0, start, argc, n, k, whylen;
	long count = 0;
	int failed;

	while (i < len) {
		*at = start = i;
		if (resp_num(p, len, &i, '*', &argc) == -1 || argc < 2 ||
		    argc > APPLY_MAX_STRINGS)
			return -1;
		for (k = 0; k < argc; k++) {
			*at = i;
			if (resp_num(p, len, &i, '$', &n) == -1 ||
			    n > len - i || len - i - n < 2 ||
			    p[i + n] != '\r' || p[i + n + 1] != '\n')
				return -1;
			if (k == 0) {
				if ((cmd = apply_command(p + i, n)) == NULL)
					return -1;
			} else if (ctx != NULL)
				argv[k - 1] = RedisModule_CreateString(ctx,
				    p + i, n);
			i += n + 2;
		}
		if (!apply_shape(cmd, argc)) {	/* checking: runs never */
			*at = start;
			return -1;
		}
		count++;
		if (ctx == NULL || (loading &&
		    strcmp(cmd->name, "PUBLISH") == 0))
			failed = 0;
		else {
			r = RedisModule_Call(ctx, cmd->name, packed ? "v" :
			    strcmp(cmd->name, "PUBLISH") == 0 ? "!Av" : "!v",
			    argv, argc - 1);
			failed = r == NULL || RedisModule_CallReplyType(r) ==
			    REDISMODULE_REPLY_ERROR;
			if (failed) {
				why = r == NULL ? strerror(errno) :
				    RedisModule_CallReplyStringPtr(r, &whylen);
				RedisModule_Log(ctx, "warning", "ringq.apply: "
				    "%s failed: %.*s", cmd->name, r == NULL ?
				    (int)strlen(why) : (int)whylen, why);
			}
			if (r != NULL)
				RedisModule_FreeCallReply(r);
		}
		for (k = 0; ctx != NULL && k + 1 < argc; k++)
			RedisModule_FreeString(ctx, argv[k]);
		if (failed) {
			*at = start;
			return -1;
		}
	}
	return count;
}

/* Redis's longest string: format 1's writes were one, so no format 2
 * that a ringq-redis.so wrote expands to more. */
#define APPLY_MAX_EXPANDED	((size_t)512 << 20)

/*
 * ringq.apply <format> <writes>: one command's writes in packed
 * replication (replicate()), format 1 (RESP) or 2 (apply_codec.c), run
 * only where the master's link or the AOF sends them: from a client they
 * would be writes its ACL never saw.  Writes it cannot run (another
 * format, a corrupt argument, a write Redis refuses) stop Redis, as an
 * unknown command in the AOF does: Redis would carry on past an error
 * reply, with half the data, and a replica would part from its master for
 * good (restarted, it syncs afresh).  A module loaded with "replication
 * plain" passes the writes on as plain commands.
 */
static int
cmd_apply(RedisModuleCtx *ctx, rstr **argv, int argc)
{
	const char *p;
	size_t len, at = 0;
	long n;
	int flags = RedisModule_GetContextFlags(ctx), format;

	if (!(flags & (REDISMODULE_CTX_FLAGS_REPLICATED |
	    REDISMODULE_CTX_FLAGS_LOADING)))
		return RedisModule_ReplyWithError(ctx, "ERR ringq.apply: only "
		    "from a master or the AOF");
	p = argc == 3 ? text(argv[1], &len) : "";
	format = argc == 3 && len == 1 && (p[0] == '1' || p[0] == '2') ?
	    p[0] - '0' : 0;
	if (format == 0) {
		RedisModule_Log(ctx, "warning", "ringq.apply: not in format 1 "
		    "or 2 (written by a newer ringq-redis.so?): Redis stops "
		    "rather than lose those writes; load that module");
		exit(1);
	}
	p = text(argv[2], &len);
	if (format == 2) {
		expanded.len = 0;
		if (len == 0 || apply_expand((const unsigned char *)p, len,
		    &expanded.p, &expanded.len, &expanded.cap,
		    APPLY_MAX_EXPANDED, &at) == -1) {
			RedisModule_Log(ctx, "warning", "ringq.apply: the "
			    "writes (format 2) are corrupt at byte %zu of "
			    "%zu: Redis stops rather than lose them", at, len);
			exit(1);
		}
		p = expanded.p;
		len = expanded.len;
	}
	if (len == 0 || apply_writes(NULL, 0, p, len, &at) == -1) {
		RedisModule_Log(ctx, "warning", "ringq.apply: the writes are "
		    "corrupt at byte %zu of %zu%s: Redis stops rather than "
		    "lose them", at, len, format == 2 ? " (format 2, "
		    "expanded)" : "");
		exit(1);
	}
	if ((n = apply_writes(ctx, flags & REDISMODULE_CTX_FLAGS_LOADING, p,
	    len, &at)) == -1) {
		RedisModule_Log(ctx, "warning", "ringq.apply: the write at byte "
		    "%zu of %zu failed: Redis stops rather than go on without "
		    "it", at, len);
		exit(1);
	}
	if (packed)
		RedisModule_ReplicateVerbatim(ctx);
	if (expanded.cap > 1 << 22) {
		RedisModule_Free(expanded.p);
		memset(&expanded, 0, sizeof(expanded));
	}
	return RedisModule_ReplyWithLongLong(ctx, n);
}

/* The write commands, each followed by replicated(). */
#define REPLICATED(fn) \
	static int \
	fn##_replicated(RedisModuleCtx *ctx, rstr **argv, int argc) \
	{ \
		return replicated(ctx, fn(ctx, argv, argc)); \
	}
REPLICATED(cmd_create)
REPLICATED(cmd_release)
REPLICATED(cmd_take)
REPLICATED(cmd_claim)
REPLICATED(cmd_claim_batch)
REPLICATED(cmd_finish)
REPLICATED(cmd_finish_batch)

/* The strings the commands use at every call, made once at load. */
static const struct {
	rstr		**s;
	const char	*text;
} names[] = {
	{ &s_events, RQ_KEY_EVENTS },
	{ &s_call_id, "call_id" },
	{ &s_attempt, "attempt" },
	{ &s_status, "status" },
	{ &s_ts_ms, "ts_ms" },
	{ &s_tenant, "tenant" },
	{ &s_to, "to" },
	{ &s_direction, "direction" },
	{ &s_reason, "reason" },
	{ &s_sip_code, "sip_code" },
	{ &s_node, "node" },
	{ &s_duration_ms, "duration_ms" },
	{ &s_started_ms, "started_ms" },
	{ &s_answered_ms, "answered_ms" },
	{ &s_detail, "detail" },
	{ &s_mirrored, RQ_EVENT_MIRRORED },
	{ &s_callback, RQ_EVENT_CALLBACK },
	{ &s_one, "1" },
	{ &s_status_rank, "status_rank" },
	{ &s_updated_ms, "updated_ms" },
	{ &s_dialed, "dialed" },
	{ &s_result, "result" },
	{ &s_not_before_ms, "not_before_ms" },
	{ &s_result_lua, RESULT_LUA },
	{ &s_not_after, RQ_REASON_NOT_AFTER },
	{ &s_not_placed, "not placed before not_after" },
	{ &s_on_dnc, "on a do-not-call list: not retried" },
	{ &s_attempts_exhausted, RQ_REASON_ATTEMPTS_EXHAUSTED },
	{ &s_dnc_customer, RQ_KEY_DNC_CUSTOMER },
	{ &s_due_after, "due after its not_after" },
	{ &s_attempts, "attempts" },
	{ &s_not_placed_its, "not placed before its not_after" },
	{ &s_max_reached, "max_attempts reached" },
	{ &s_rejected, RQ_REASON_REJECTED },
	{ &s_no_target, "job without tenant or target" },
	{ &s_id, "id" },
	{ &s_created_ms, "created_ms" },
	{ &s_queued, "queued" },
	{ &s_zero, "0" },
	{ &s_tl_queued, "0:queued" },
	{ &s_due, RQ_CHANNEL_DUE },
	{ &s_wake, RQ_CHANNEL_WAKE },
	{ &s_deadlines, RQ_KEY_DEADLINES },
	{ &s_ready, RQ_KEY_READY },
	{ &s_inflight, RQ_KEY_INFLIGHT },
	{ &s_hours, RQ_KEY_HOURS },
	{ &s_ended, RQ_KEY_ENDED },
};

/* The commands: each write one is refused whole above maxmemory (its
 * caller then runs the script, refused only at its first write). */
static const struct {
	const char		*name;
	RedisModuleCmdFunc	 fn;
	const char		*flags;
} commands[] = {
	{ "ringq.version", cmd_version, "readonly fast" },
	{ "ringq.create", cmd_create_replicated, "write deny-oom" },
	{ "ringq.release", cmd_release_replicated, "write deny-oom" },
	{ "ringq.take", cmd_take_replicated, "write deny-oom" },
	{ "ringq.claim", cmd_claim_replicated, "write deny-oom" },
	{ "ringq.claim_batch", cmd_claim_batch_replicated, "write deny-oom" },
	{ "ringq.finish", cmd_finish_replicated, "write deny-oom" },
	{ "ringq.finish_batch", cmd_finish_batch_replicated,
	    "write deny-oom" },
	/* not deny-oom: a replica applies what its master did */
	{ "ringq.apply", cmd_apply, "write" },
};

/* CONFIG GET param's value (NULL where CONFIG is renamed, or no such
 * parameter): the caller frees it. */
static rstr *
config_get(RedisModuleCtx *ctx, const char *param)
{
	RedisModuleCallReply *r;
	rstr *s = NULL;

	/* [param, "<value>"] */
	r = RedisModule_Call(ctx, "CONFIG", "cc", "GET", param);
	if (r != NULL && RedisModule_CallReplyLength(r) == 2)
		s = RedisModule_CreateStringFromCallReply(
		    RedisModule_CallReplyArrayElement(r, 1));
	if (r != NULL)
		RedisModule_FreeCallReply(r);
	return s;
}

/*
 * A call's timeline entries, in its job's hash, are JSON of about 60 to
 * 120 bytes: under Redis's default hash-max-listpack-value (64) the job
 * becomes a hash table, and each call held takes more memory
 * (docs/operations.md, "Redis memory"), written more slowly at each AOF
 * rewrite.  Says so at load; never refuses to load.
 */
#define RQ_LISTPACK_VALUE	128

static void
check_listpack_value(RedisModuleCtx *ctx)
{
	rstr *s = config_get(ctx, "hash-max-listpack-value");
	long long value = -1;

	if (s != NULL && RedisModule_StringToLongLong(s, &value) !=
	    REDISMODULE_OK)
		value = -1;
	if (s != NULL)
		RedisModule_FreeString(ctx, s);
	if (value >= 0 && value < RQ_LISTPACK_VALUE)
		RedisModule_Log(ctx, "warning", "hash-max-listpack-value is "
		    "%lld: ringq's jobs, with their timelines, become hash "
		    "tables, taking more memory; set it to %d "
		    "(docs/operations.md)",
		    value, RQ_LISTPACK_VALUE);
}

/* A tenant's hash of a day's idempotency keys (common/keys.h, RQ_KEY_IDEM)
 * may hold millions: freed on Redis's main thread when it expires, it
 * would stop Redis for as long.  Says so at load. */
static void
check_lazy_expire(RedisModuleCtx *ctx)
{
	rstr *s = config_get(ctx, "lazyfree-lazy-expire");

	if (s != NULL && strcmp(text(s, NULL), "no") == 0)
		RedisModule_Log(ctx, "warning", "lazyfree-lazy-expire is no: "
		    "a day's idempotency keys, when they expire, are freed on "
		    "Redis's main thread; set it to yes (docs/operations.md)");
	if (s != NULL)
		RedisModule_FreeString(ctx, s);
}

int
RedisModule_OnLoad(RedisModuleCtx *ctx, rstr **argv, int argc)
{
	const char *how;
	size_t k;

	if (RedisModule_Init(ctx, "ringq", RQ_MODULE_VERSION,
	    REDISMODULE_APIVER_1) == REDISMODULE_ERR)
		return REDISMODULE_ERR;
	how = argc == 2 && strcasecmp(text(argv[0], NULL),
	    "replication") == 0 ? text(argv[1], NULL) : "";

	if (strcasecmp(how, "packed") == 0 || strcasecmp(how, "packed1") == 0 ||
	    strcasecmp(how, "plain") == 0) {
		packed = strcasecmp(how, "plain") == 0 ? 0 :
		    strcasecmp(how, "packed1") == 0 ? 1 : 2;
	} else if (argc != 0) {
		RedisModule_Log(ctx, "warning", "ringq-redis.so takes no "
		    "argument but \"replication packed\", \"replication "
		    "packed1\" or \"replication plain\"");
		return REDISMODULE_ERR;
	}
	apply_realloc = RedisModule_Realloc;
	apply_free = RedisModule_Free;
	RedisModule_Log(ctx, "notice", "ringq-redis.so %d: replication %s",
	    RQ_MODULE_VERSION, !packed ? "plain" : packed == 2 ?
	    "packed, format 2 (the AOF and the replicas need this module)" :
	    "packed, format 1 (the AOF and the replicas need this module or "
	    "an older one)");
	/* 7.0 propagates RedisModule_Replicate's writes in order with
	 * RedisModule_Call's; 6.2 puts them after. */
	if (RedisModule_GetServerVersion == NULL ||
	    RedisModule_GetServerVersion() < 0x00070000) {
		RedisModule_Log(ctx, "warning", "ringq-redis.so needs Redis 7.0 "
		    "or later");
		return REDISMODULE_ERR;
	}
	check_listpack_value(ctx);
	check_lazy_expire(ctx);
	for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
		*names[k].s = name(names[k].text);
	for (k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
		if (RedisModule_CreateCommand(ctx, commands[k].name,
		    commands[k].fn, commands[k].flags, 0, 0, 0) ==
		    REDISMODULE_ERR)
			return REDISMODULE_ERR;
	return REDISMODULE_OK;
}

int
RedisModule_OnUnload(RedisModuleCtx *ctx)
{
	size_t k;

	(void)ctx;
	for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
		if (*names[k].s != NULL) {
			RedisModule_FreeString(NULL, *names[k].s);
			*names[k].s = NULL;
		}
	RedisModule_Free(pending.p);
	memset(&pending, 0, sizeof(pending));
	apply_enc_free(&pending2);
	RedisModule_Free(expanded.p);
	memset(&expanded, 0, sizeof(expanded));
	return REDISMODULE_OK;
}
