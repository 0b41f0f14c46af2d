/* The policy engine's Redis checks: idempotency, the three do-not-call
 * lists, rate limits per second and per day and the concurrency limit, in
 * one Lua script on the gateway's connection, so that several gateways
 * share the counters and a request takes its slots atomically. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "keys.h"
#include "gateway.h"
#include "log.h"

/*
 * KEYS: idempotency key, DNC tenant, DNC customer, DNC business, rate key
 * prefix, active ZSET.  ARGV: number ("" for SIP), rate_per_second,
 * rate_per_day, max_concurrent, new id, idempotency TTL, has idempotency
 * key, has business, job key prefix, not_before_ms (0: now).
 * Replies { "ok" }, { "replay", id }, { "dnc", list }, { "rate_s", ms to
 * the next second }, { "rate_d", s to the next UTC day }, { "busy", n }.
 * The clock is Redis's (TIME), the same for every gateway.  Refused
 * requests take nothing.  The active set is scored by due time (the later
 * of now and not_before), and only members already due count, so that a
 * call deferred to tomorrow takes its slot tomorrow.  Accounting's mirror
 * script removes a call when it reaches a terminal status; as a safety
 * net, when the tenant is full, the GW_ACTIVE_PRUNE oldest due members
 * are checked and removed when their job is terminal, or missing a
 * minute after they were due (the store refused it).
 */
#define GW_ACTIVE_PRUNE	"20"
static const char policy_lua[] =
	"local num = ARGV[1]\n"
	"if ARGV[7] == '1' then\n"
	"  local prev = redis.call('GET', KEYS[1])\n"
	"  if prev then return {'replay', prev} end\n"
	"end\n"
	"if num ~= '' then\n"
	"  if redis.call('SISMEMBER', KEYS[2], num) == 1 then\n"
	"    return {'dnc', 'tenant'} end\n"
	"  if redis.call('SISMEMBER', KEYS[3], num) == 1 then\n"
	"    return {'dnc', 'customer'} end\n"
	"  if ARGV[8] == '1' and redis.call('SISMEMBER', KEYS[4], num) == 1"
	" then return {'dnc', 'business'} end\n"
	"end\n"
	"local t = redis.call('TIME')\n"
	"local sec = tonumber(t[1])\n"
	"local ms = sec * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local rps, rpd = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
	"local maxc = tonumber(ARGV[4])\n"
	"local ks = KEYS[5] .. ':s:' .. sec\n"
	"local kd = KEYS[5] .. ':d:' .. math.floor(sec / 86400)\n"
	"if rps > 0 and (tonumber(redis.call('GET', ks)) or 0) >= rps then\n"
	"  return {'rate_s', tostring(1000 - ms % 1000)} end\n"
	"if rpd > 0 and (tonumber(redis.call('GET', kd)) or 0) >= rpd then\n"
	"  return {'rate_d', tostring(86400 - sec % 86400)} end\n"
	"if maxc > 0 then\n"
	"  local due = tonumber(ARGV[10]) or 0\n"
	"  if due < ms then due = ms end\n"
	"  if due <= ms and redis.call('ZCOUNT', KEYS[6], '-inf', ms) >= maxc"
	" then\n"
	"    local m = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', ms,"
	" 'WITHSCORES', 'LIMIT', 0, " GW_ACTIVE_PRUNE ")\n"
	"    for i = 1, #m, 2 do\n"
	"      local st = redis.call('HGET', ARGV[9] .. m[i], 'status')\n"
	"      if (not st and tonumber(m[i + 1]) < ms - 60000) or\n"
	"          st == 'completed' or st == 'failed' or st == 'canceled'"
	" or st == 'expired' then\n"
	"        redis.call('ZREM', KEYS[6], m[i]) end\n"
	"    end\n"
	"    local n = redis.call('ZCOUNT', KEYS[6], '-inf', ms)\n"
	"    if n >= maxc then return {'busy', tostring(n)} end\n"
	"  end\n"
	"  redis.call('ZADD', KEYS[6], string.format('%.0f', due), ARGV[5])\n"
	"end\n"
	"if rps > 0 then redis.call('INCR', ks); redis.call('EXPIRE', ks, 2)"
	" end\n"
	"if rpd > 0 then redis.call('INCR', kd);"
	" redis.call('EXPIRE', kd, 90000) end\n"
	"if ARGV[7] == '1' then\n"
	"  redis.call('SET', KEYS[1], ARGV[5], 'EX', tonumber(ARGV[6])) end\n"
	"return {'ok'}\n";

/*
 * KEYS: idempotency key, active ZSET, rate key prefix.  ARGV: id,
 * rate_per_second, rate_per_day.  Gives back what the policy script took
 * when the store then failed: the idempotency key, the concurrency slot
 * and one call of each rate counter.  The counters are those of Redis's
 * current second and day: the store answers within milliseconds of the
 * check, so they are nearly always the ones that were taken (see
 * docs/policy.md); a counter is never taken below zero.
 */
static const char release_lua[] =
	"if redis.call('GET', KEYS[1]) == ARGV[1] then"
	" redis.call('DEL', KEYS[1]) end\n"
	"redis.call('ZREM', KEYS[2], ARGV[1])\n"
	"local sec = tonumber(redis.call('TIME')[1])\n"
	"local function give(k)\n"
	"  if (tonumber(redis.call('GET', k)) or 0) > 0 then"
	" redis.call('DECR', k) end\n"
	"end\n"
	"if tonumber(ARGV[2]) > 0 then give(KEYS[3] .. ':s:' .. sec) end\n"
	"if tonumber(ARGV[3]) > 0 then"
	" give(KEYS[3] .. ':d:' .. math.floor(sec / 86400)) end\n"
	"return 1\n";

struct policy_op {
	gw_policy_verdict_cb	*cb;
	void			*arg;
	char			 id[RQ_ID_LEN + 1];
};

static void
idem_key(char *out, size_t outlen, const char *tenant, const char *key)
{
	char hex[65];

	/* Hashed: any printable key of up to 255 bytes, one key length. */
	rq_sha256_hex(key, strlen(key), hex);
	snprintf(out, outlen, "%s%s:%s", RQ_KEY_IDEM, tenant, hex);
}

int
gw_policy_verdict_parse(const redisReply *r, struct gw_policy_verdict *v)
{
	const char *what, *a = NULL;
	long n;

	memset(v, 0, sizeof(*v));
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->elements > 2 || r->element[0]->type != REDIS_REPLY_STRING)
		return -1;
	what = r->element[0]->str;
	if (r->elements == 2) {
		if (r->element[1]->type != REDIS_REPLY_STRING)
			return -1;
		a = r->element[1]->str;
	}
	if (!strcmp(what, "ok") && a == NULL)
		v->rc = 0;
	else if (!strcmp(what, "replay") && a != NULL) {
		if (!rq_call_id_valid(a))
			return -1;
		v->rc = 1;
		snprintf(v->replay_id, sizeof(v->replay_id), "%s", a);
	} else if (!strcmp(what, "dnc") && a != NULL) {
		v->rc = -1;
		gw_error_set(&v->err, 403, "do_not_call", "to", "The number "
		    "is on %s do-not-call list; nothing was queued.",
		    !strcmp(a, "tenant") ? "this account's" :
		    !strcmp(a, "customer") ? "the customers' own" :
		    "the business's");
	} else if (!strcmp(what, "rate_s") && a != NULL) {
		v->rc = -1;
		gw_error_set(&v->err, 429, "rate_limited", NULL, "This account "
		    "has placed as many calls this second as it may "
		    "(rate_per_second); nothing was queued.  Retry in a "
		    "second.");
		v->err.retry_after = 1;
	} else if (!strcmp(what, "rate_d") && a != NULL) {
		v->rc = -1;
		n = strtol(a, NULL, 10);
		gw_error_set(&v->err, 429, "rate_limited", NULL, "This account "
		    "has placed as many calls today (UTC) as it may "
		    "(rate_per_day); nothing was queued.  Retry in %ld s.", n);
		v->err.retry_after = n > 0 && n <= 86400 ? (int)n : 86400;
	} else if (!strcmp(what, "busy") && a != NULL) {
		v->rc = -1;
		gw_error_set(&v->err, 429, "concurrency_limited", NULL, "This "
		    "account has %ld calls not yet finished, as many as it may "
		    "have at once (max_concurrent); nothing was queued.  Retry "
		    "when one ends.", strtol(a, NULL, 10));
		v->err.retry_after = 5;
	} else
		return -1;
	return 0;
}

static void
policy_reply_cb(redisReply *r, void *arg)
{
	struct policy_op *op = arg;
	struct gw_policy_verdict v;

	if (gw_policy_verdict_parse(r, &v) == -1) {
		log_warnx("redis: call %s: policy check failed: %s", op->id,
		    r == NULL ? "connection lost" :
		    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		memset(&v, 0, sizeof(v));
		v.rc = -2;
		gw_error_set(&v.err, 503, "unavailable", NULL, "The call "
		    "store is unavailable; nothing was queued.  Try again "
		    "shortly.");
	}
	op->cb(&v, op->arg);
	free(op);
}

int
gw_policy_store_check(struct gw_store *st, const struct rq_tenant *tenant,
    const struct gw_call *call, const struct gw_policy *pol, const char *id,
    gw_policy_verdict_cb *cb, void *arg)
{
	char kidem[RQ_NAME_MAX + 96], kdnct[RQ_NAME_MAX + 32];
	char kdncb[RQ_NAME_MAX + 32], krate[RQ_NAME_MAX + 16];
	char kact[RQ_NAME_MAX + 16], rps[16], rpd[16], maxc[16], ttl[16];
	char nb[24];
	const char *argv[19];
	struct policy_op *op;
	int has_idem = call->idem_key != NULL, has_biz = call->business != NULL;

	if (has_idem)
		idem_key(kidem, sizeof(kidem), tenant->name, call->idem_key);
	else
		snprintf(kidem, sizeof(kidem), "%s%s:-", RQ_KEY_IDEM,
		    tenant->name);
	snprintf(kdnct, sizeof(kdnct), "%s%s", RQ_KEY_DNC_TENANT,
	    tenant->name);
	snprintf(kdncb, sizeof(kdncb), "%s%s", RQ_KEY_DNC_BUSINESS,
	    has_biz ? call->business : "-");
	snprintf(krate, sizeof(krate), "%s%s", RQ_KEY_RATE, tenant->name);
	snprintf(kact, sizeof(kact), "%s%s", RQ_KEY_ACTIVE, tenant->name);
	snprintf(rps, sizeof(rps), "%d", tenant->rate_per_second);
	snprintf(rpd, sizeof(rpd), "%d", tenant->rate_per_day);
	snprintf(maxc, sizeof(maxc), "%d", tenant->max_concurrent);
	/* A mail server may resend a message for days (RFC 5321 4.5.4.1):
	 * a Message-ID is remembered longer than an HTTP key. */
	snprintf(ttl, sizeof(ttl), "%d", has_idem &&
	    !strncmp(call->idem_key, GW_IDEM_MAIL_PREFIX,
	    strlen(GW_IDEM_MAIL_PREFIX)) ? GW_IDEM_MAIL_TTL_S : GW_IDEM_TTL_S);
	snprintf(nb, sizeof(nb), "%llu",
	    (unsigned long long)call->not_before_ms);
	if ((op = calloc(1, sizeof(*op))) == NULL)
		return -1;
	op->cb = cb;
	op->arg = arg;
	snprintf(op->id, sizeof(op->id), "%s", id);
	argv[0] = "EVAL";
	argv[1] = policy_lua;
	argv[2] = "6";
	argv[3] = kidem;
	argv[4] = kdnct;
	argv[5] = RQ_KEY_DNC_CUSTOMER;
	argv[6] = kdncb;
	argv[7] = krate;
	argv[8] = kact;
	argv[9] = pol->number;
	argv[10] = rps;
	argv[11] = rpd;
	argv[12] = maxc;
	argv[13] = id;
	argv[14] = ttl;
	argv[15] = has_idem ? "1" : "0";
	argv[16] = has_biz ? "1" : "0";
	argv[17] = RQ_KEY_JOB;
	argv[18] = nb;
	if (gw_store_command(st, id, 19, argv, policy_reply_cb, op) == -1) {
		free(op);
		return -1;
	}
	return 0;
}

static void
release_cb(redisReply *r, void *arg)
{
	char *id = arg;

	if (r == NULL || r->type == REDIS_REPLY_ERROR)
		log_warnx("redis: call %s: cannot release its policy slots: "
		    "%s", id, r ? r->str : "connection lost");
	free(id);
}

void
gw_policy_store_release(struct gw_store *st, const struct rq_tenant *tenant,
    const struct gw_call *call, const char *id)
{
	char kidem[RQ_NAME_MAX + 96], kact[RQ_NAME_MAX + 16];
	char krate[RQ_NAME_MAX + 16], rps[16], rpd[16];
	const char *argv[10];
	char *dup;

	if (call->idem_key != NULL)
		idem_key(kidem, sizeof(kidem), tenant->name, call->idem_key);
	else
		snprintf(kidem, sizeof(kidem), "%s%s:-", RQ_KEY_IDEM,
		    tenant->name);
	snprintf(kact, sizeof(kact), "%s%s", RQ_KEY_ACTIVE, tenant->name);
	snprintf(krate, sizeof(krate), "%s%s", RQ_KEY_RATE, tenant->name);
	snprintf(rps, sizeof(rps), "%d", tenant->rate_per_second);
	snprintf(rpd, sizeof(rpd), "%d", tenant->rate_per_day);
	argv[0] = "EVAL";
	argv[1] = release_lua;
	argv[2] = "3";
	argv[3] = kidem;
	argv[4] = kact;
	argv[5] = krate;
	argv[6] = id;
	argv[7] = rps;
	argv[8] = rpd;
	if ((dup = strdup(id)) == NULL)
		return;
	if (gw_store_command(st, id, 9, argv, release_cb, dup) == -1) {
		log_warnx("call %s: cannot release its policy slots", id);
		free(dup);
	}
}
