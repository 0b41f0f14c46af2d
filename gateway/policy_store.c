/* The policy engine's Redis checks (idempotency, the three do-not-call
 * lists, rate limits per second and per day, the concurrency limit) and,
 * when they pass, the job's creation: one Lua script per request on the
 * gateway's connection.  It is atomic (several gateways share the
 * counters; an idempotency key is never stored without its job, nor a job
 * queued without its key) and takes one round trip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "keys.h"
#include "gateway.h"
#include "log.h"

/*
 * KEYS: 1 idempotency key (rq:idem:<tenant>:<sha256 hex>: where gateways
 * before the hashes a period stored it, still read; its last part is the
 * field in the hashes, and the part before it their prefix:
 * common/keys.h),
 * 2 DNC tenant, 3 DNC customer, 4 DNC business,
 * 5 rate key prefix, 6 active ZSET, 7 job, 8 tenant calls, 9 delayed.
 * ARGV: 1 number ("" for SIP), 2 rate_per_second, 3 rate_per_day,
 * 4 max_concurrent, 5 new id, 6 idempotency TTL (the hash's period, s),
 * 7 has idempotency key,
 * 8 has business, 9 job key prefix, 10 not_before_ms, 11 created_ms,
 * 12 tenant, 13 to, 14 has callback_url, 15... the job's other
 * field/value pairs (the script writes id, tenant, to, not_before_ms,
 * created_ms and the live status from the arguments above: fewer
 * arguments to receive, 6 % of the script).
 * Replies "ok" (queued: a plain string, as Redis checks every table a
 * script returns for an error or status reply, a few thousand
 * instructions), { "replay", id }, { "dnc", list }, { "rate_s", ms to
 * the next second }, { "rate_d", s to the next UTC day }, { "busy", n }.
 *
 * The checks come first and only read (but for the safety-net prune
 * below); a refused request writes nothing.  The clock is Redis's (TIME),
 * the same for every gateway.  A key is stored with its job, in this one
 * script, so a key always names a call that was queued: it is replayed
 * even once that call has left Redis (an e-mail's key lives 7 days or
 * more, an ended call as little as its tenant's retention_days), so that
 * a copy never rings the customer again.
 *
 * Then the job: its hash (with its live status already queued, what
 * emit() would set; status_rank, attempts and updated_ms are left to the
 * first change, as a new job's are 0, 0 and created_ms: common/keys.h),
 * the tenant's list, EVENT queued in rq:events
 * (the outbox accounting reads) and its timeline entry, and its place in
 * rq:delayed (a job due at once is announced on rq:due, so a scheduler
 * releases it without waiting for its tick); then the slots it takes (the
 * active set, the rate counters) and last the idempotency key.  The event
 * and its timeline entry are written here as emit() (common/keys.h) writes
 * them, but without it: the prelude and the general code cost a quarter of
 * Redis's work per request, and this event's fields are all known (a unit
 * test compares the two).  Redis does
 * not roll a script back: a write that fails (a key of the wrong type, an
 * operator's mistake) leaves the ones before it.  The keys the slots use
 * were read by the checks (a wrong type fails there, before any write), so
 * a failure can only come from the job's own writes, before any slot or
 * the idempotency key is taken: the key never points to a job that is not
 * whole, and nothing needs giving back.  A rate counter gets its TTL when
 * INCR makes it (1): its name holds its second or day, and the script sets
 * both at once, so no counter lives without one.
 *
 * The active set is scored by due time (the later of now and not_before),
 * and only members already due count, so that a call deferred to tomorrow
 * takes its slot tomorrow.  Accounting's mirror (and emit() for a terminal
 * status) removes a call; as a safety net, when the tenant is full, the
 * GW_ACTIVE_PRUNE oldest due members are checked and removed when their
 * job is terminal, or missing a minute after they were due.
 */
#define GW_ACTIVE_PRUNE	"20"
const char gw_create_lua[] =
	RQ_LUA_READY_SCORE
	"local num = ARGV[1]\n"
	"local prio, na\n"
	"for i = 15, #ARGV - 1, 2 do\n"
	"  if ARGV[i] == 'priority' then prio = ARGV[i + 1]\n"
	"  elseif ARGV[i] == 'not_after_ms' then na = ARGV[i + 1] end\n"
	"end\n"
	"if not tonumber(ARGV[10]) or (na and not tonumber(na)) then\n"
	"  return redis.error_reply('ERR create: not_before_ms or not_after_ms"
	" is not a number') end\n"
	"local dscore = delayed_of(prio, tonumber(ARGV[10]))\n"
	"local t = redis.call('TIME')\n"
	"local sec = tonumber(t[1])\n"
	"local ihash, ifield, iexpire\n"
	"if ARGV[7] == '1' then\n"
	"  local prev = redis.call('GET', KEYS[1])\n"
	"  if prev then return {'replay', prev} end\n"
	"  local ttl = tonumber(ARGV[6])\n"
	"  if not ttl or ttl <= 0 or ttl ~= math.floor(ttl) or\n"
	"      ttl > " RQ_STR(RQ_IDEM_PERIOD_MAX_S) " then\n"
	"    return redis.error_reply('ERR create: the idempotency TTL is"
	" not a number of seconds') end\n"
	"  local period = math.floor(sec / ttl)\n"
	"  ifield = string.match(KEYS[1], '[^:]*$')\n"
	"  local pre = string.sub(KEYS[1], 1, #KEYS[1] - #ifield) ..\n"
	"    string.format('%d', ttl) .. ':'\n"
	"  ihash = pre .. string.format('%d', period)\n"
	"  iexpire = string.format('%d', (period + 2) * ttl)\n"
	"  prev = redis.call('HGET', ihash, ifield) or redis.call('HGET',\n"
	"    pre .. string.format('%d', period - 1), ifield)\n"
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
	"local ms = sec * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local rps, rpd = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
	"local maxc = tonumber(ARGV[4])\n"
	"local ks = KEYS[5] .. ':s:' .. sec\n"
	"local kd = KEYS[5] .. ':d:' .. math.floor(sec / 86400)\n"
	"if rps > 0 and (tonumber(redis.call('GET', ks)) or 0) >= rps then\n"
	"  return {'rate_s', tostring(1000 - ms % 1000)} end\n"
	"if rpd > 0 and (tonumber(redis.call('GET', kd)) or 0) >= rpd then\n"
	"  return {'rate_d', tostring(86400 - sec % 86400)} end\n"
	"local due = tonumber(ARGV[10]) or 0\n"
	"if due < ms then due = ms end\n"
	"if maxc > 0 then\n"
	"  if redis.call('ZCOUNT', KEYS[6], '-inf', ms) >= maxc and due <= ms"
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
	"end\n"
	"redis.call('HSET', KEYS[7], 'id', ARGV[5], 'tenant', ARGV[12],"
	" 'to', ARGV[13], 'not_before_ms', ARGV[10], 'created_ms', ARGV[11],"
	" 'status', 'queued', '0:queued',"
	" '{\"status\":\"queued\",\"attempt\":0,\"ts_ms\":' .. ARGV[11]"
	" .. '}', unpack(ARGV, 15))\n"
	"redis.call('ZADD', KEYS[8], ARGV[11], ARGV[5])\n"
	"local ev = { 'call_id', ARGV[5], 'attempt', '0', 'status', 'queued',"
	" 'ts_ms', ARGV[11], 'tenant', ARGV[12], 'to', ARGV[13],"
	" '" RQ_EVENT_MIRRORED "', '1' }\n"
	"if ARGV[14] == '1' then\n"
	"  ev[#ev + 1] = '" RQ_EVENT_CALLBACK "'; ev[#ev + 1] = '1' end\n"
	"redis.call('XADD', '" RQ_KEY_EVENTS "', '*', unpack(ev))\n"

	"redis.call('ZADD', KEYS[9], dscore, ARGV[5])\n"
	"if na then redis.call('ZADD', '" RQ_KEY_DEADLINES "', na, ARGV[5])"
	" end\n"
	"if due <= ms + " RQ_STR(RQ_DUE_SOON_MS) " then\n"
	"  redis.call('PUBLISH', '" RQ_CHANNEL_DUE "', ARGV[5]) end\n"
	"if maxc > 0 then\n"
	"  redis.call('ZADD', KEYS[6], string.format('%d', due), ARGV[5])"
	" end\n"
	"if rps > 0 and redis.call('INCR', ks) == 1 then"
	" redis.call('EXPIRE', ks, 2) end\n"
	"if rpd > 0 and redis.call('INCR', kd) == 1 then"
	" redis.call('EXPIRE', kd, 90000) end\n"
	"if ARGV[7] == '1' then\n"
	"  redis.call('HSET', ihash, ifield, ARGV[5])\n"
	"  if redis.call('TTL', ihash) == -1 then\n"
	"    redis.call('EXPIREAT', ihash, iexpire) end\n"
	"end\n"
	"return 'ok'\n";

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
	if (r != NULL && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "ok"))
		return 0;	/* v->rc 0: queued */
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->elements > 2 || r->element[0]->type != REDIS_REPLY_STRING)
		return -1;
	what = r->element[0]->str;
	if (r->elements == 2) {
		if (r->element[1]->type != REDIS_REPLY_STRING)
			return -1;
		a = r->element[1]->str;
	}
	if (!strcmp(what, "ok") && a == NULL) {
		v->rc = 0;
	} else if (!strcmp(what, "replay") && a != NULL) {
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
create_reply_cb(redisReply *r, void *arg)
{
	struct policy_op *op = arg;
	struct gw_policy_verdict v;

	if (r == NULL) {
		/* The script may have run, whole: we cannot know. */
		log_warnx("redis: call %s: connection lost before the job "
		    "was confirmed; it may or may not be stored", op->id);
		memset(&v, 0, sizeof(v));
		v.rc = -2;
	} else if (gw_policy_verdict_parse(r, &v) == -1) {
		log_warnx("redis: call %s: storing the job failed: %s", op->id,
		    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		memset(&v, 0, sizeof(v));
		v.rc = -3;
		gw_error_set(&v.err, 503, "unavailable", NULL, "The call "
		    "store is unavailable; nothing was queued.  Try again "
		    "shortly.");
	}
	op->cb(&v, op->arg);
	free(op);
}

/* Per request, snprintf's cost showed in profiles: plain joins and
 * numbers instead.  Each truncates to size like snprintf. */
static void
append(char *out, size_t size, const char *b)
{
	size_t la = strlen(out), lb = strlen(b);

	if (lb >= size - la)
		lb = size - la - 1;
	memcpy(out + la, b, lb);
	out[la + lb] = '\0';
}

/* out = a b; a is not out. */
static void
join(char *out, size_t size, const char *a, const char *b)
{
	out[0] = '\0';
	append(out, size, a);
	append(out, size, b);
}

static void
num(char *out, size_t size, long long v)
{
	char tmp[24];
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v :
	    (unsigned long long)v;
	size_t n = 0, i = 0;

	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		tmp[n++] = '-';
	while (n > 0 && i + 1 < size)
		out[i++] = tmp[--n];
	out[i] = '\0';
}

/* A retry rule as a job keeps it ("<attempts>:<delay ms>"), or "" when it
 * is the default, which a job does not store (common/keys.h). */
static void
retry_rule(char *out, size_t size, int attempts, int delay_s,
    int def_attempts, int def_delay_s)
{
	char d[24];

	out[0] = '\0';
	if (attempts == def_attempts && delay_s == def_delay_s)
		return;
	num(out, size, attempts);
	num(d, sizeof(d), (long long)delay_s * 1000);
	append(out, size, ":");
	append(out, size, d);
}

int
gw_policy_store_create(struct gw_store *st, const struct rq_tenant *tenant,
    const struct gw_call *call, const struct gw_policy *pol, const char *id,
    uint64_t created_ms, gw_policy_verdict_cb *cb, void *arg)
{
	char kidem[RQ_NAME_MAX + 96], kdnct[RQ_NAME_MAX + 32];
	char kdncb[RQ_NAME_MAX + 32], krate[RQ_NAME_MAX + 16];
	char kact[RQ_NAME_MAX + 16], rps[16], rpd[16], maxc[16], ttl[16];
	char jobkey[64], callskey[RQ_NAME_MAX + 16];
	char prio[8], nb[24], na[24], created[24], maxat[12];
	char rbusy[32], rnoans[32], rnet[32], ttl_ms[24], until[24];
	const char *argv[80];
	struct policy_op *op = NULL;
	int has_idem = call->idem_key != NULL, has_biz = call->business != NULL;
	int n = 0, rc = -1;

	if (!gw_store_connected(st))
		return -1;
	if (has_idem)
		idem_key(kidem, sizeof(kidem), tenant->name, call->idem_key);
	else {
		join(kidem, sizeof(kidem), RQ_KEY_IDEM, tenant->name);
		append(kidem, sizeof(kidem), ":-");
	}
	join(kdnct, sizeof(kdnct), RQ_KEY_DNC_TENANT, tenant->name);
	join(kdncb, sizeof(kdncb), RQ_KEY_DNC_BUSINESS,
	    has_biz ? call->business : "-");
	join(krate, sizeof(krate), RQ_KEY_RATE, tenant->name);
	join(kact, sizeof(kact), RQ_KEY_ACTIVE, tenant->name);
	num(rps, sizeof(rps), tenant->rate_per_second);
	num(rpd, sizeof(rpd), tenant->rate_per_day);
	num(maxc, sizeof(maxc), tenant->max_concurrent);
	/* A mail server may resend a message for days (RFC 5321 4.5.4.1):
	 * a Message-ID is remembered longer than an HTTP key. */
	num(ttl, sizeof(ttl), has_idem &&
	    !strncmp(call->idem_key, GW_IDEM_MAIL_PREFIX,
	    strlen(GW_IDEM_MAIL_PREFIX)) ? GW_IDEM_MAIL_TTL_S : GW_IDEM_TTL_S);
	join(jobkey, sizeof(jobkey), RQ_KEY_JOB, id);
	join(callskey, sizeof(callskey), RQ_KEY_TENANT_CALLS, tenant->name);
	num(prio, sizeof(prio), call->priority);
	num(nb, sizeof(nb), (long long)call->not_before_ms);
	num(na, sizeof(na), (long long)call->not_after_ms);
	num(created, sizeof(created), (long long)created_ms);
	num(maxat, sizeof(maxat), tenant->max_attempts);
	/* The tenant's retry policy travels with the job: the telserver's
	 * finish script (common/lifecycle.c) reads it, and a job keeps the
	 * rules it was accepted under (the defaults when it has none). */
	retry_rule(rbusy, sizeof(rbusy), tenant->retry_busy_attempts,
	    tenant->retry_busy_delay_s, RQ_RETRY_BUSY_ATTEMPTS,
	    RQ_RETRY_BUSY_DELAY_S);
	retry_rule(rnoans, sizeof(rnoans), tenant->retry_no_answer_attempts,
	    tenant->retry_no_answer_delay_s, RQ_RETRY_NO_ANSWER_ATTEMPTS,
	    RQ_RETRY_NO_ANSWER_DELAY_S);
	retry_rule(rnet, sizeof(rnet), tenant->retry_network_attempts,
	    tenant->retry_network_delay_s, RQ_RETRY_NETWORK_ATTEMPTS,
	    RQ_RETRY_NETWORK_DELAY_S);
	if ((op = calloc(1, sizeof(*op))) == NULL)
		goto done;
	op->cb = cb;
	op->arg = arg;
	join(op->id, sizeof(op->id), id, "");

#define ARG(s)	(argv[n++] = (s))
	ARG("EVAL"); ARG(gw_create_lua); ARG("9");
	ARG(kidem); ARG(kdnct); ARG(RQ_KEY_DNC_CUSTOMER); ARG(kdncb);
	ARG(krate); ARG(kact); ARG(jobkey); ARG(callskey);
	ARG(RQ_KEY_DELAYED);
	ARG(pol->number); ARG(rps); ARG(rpd); ARG(maxc); ARG(id); ARG(ttl);
	ARG(has_idem ? "1" : "0"); ARG(has_biz ? "1" : "0"); ARG(RQ_KEY_JOB);
	ARG(nb); ARG(created); ARG(tenant->name); ARG(call->to);
	ARG(call->callback_url ? "1" : "0");
	/* the job's other fields (see the script) */
	if (call->say) { ARG("say"); ARG(call->say); }
	if (call->app_url) { ARG("app_url"); ARG(call->app_url); }
	if (call->caller_id) { ARG("caller_id"); ARG(call->caller_id); }
	ARG("priority"); ARG(prio);
	if (call->not_after_ms) { ARG("not_after_ms"); ARG(na); }
	/* for PATCH, which runs the policy engine again */
	if (call->business) { ARG("business"); ARG(call->business); }
	if (call->time_zone) { ARG("time_zone"); ARG(call->time_zone); }
	if (call->callback_url) {
		ARG("callback_url"); ARG(call->callback_url);
	}
	if (call->metadata) { ARG("metadata"); ARG(call->metadata); }
	if (call->policy[0]) { ARG("policy"); ARG(call->policy); }
	if (call->hours != NULL) {
		num(until, sizeof(until), (long long)call->hours_until_ms);
		ARG("hours"); ARG(call->hours);
		ARG("hours_until_ms"); ARG(until);
	}
	/* The tenant's attempts and retry rules, which the job keeps: only
	 * those that differ from the defaults, which the scripts assume
	 * when a field is absent (each field costs Redis in every script
	 * that reads the job). */
	if (tenant->max_attempts != RQ_MAX_ATTEMPTS_DEFAULT) {
		ARG("max_attempts"); ARG(maxat);
	}
	if (rbusy[0]) { ARG("retry_busy"); ARG(rbusy); }
	if (rnoans[0]) { ARG("retry_no_answer"); ARG(rnoans); }
	if (rnet[0]) { ARG("retry_network"); ARG(rnet); }
	/* the tenant's retention, kept by the job as its retry rules are */
	if (tenant->retention_days != RQ_CALL_TTL_DAYS) {
		num(ttl_ms, sizeof(ttl_ms), (long long)rq_tenant_ttl_ms(tenant));
		ARG("ttl_ms"); ARG(ttl_ms);
	}
#undef ARG

	if (gw_store_command(st, id, n, argv, create_reply_cb, op) == -1)
		goto done;
	op = NULL;		/* create_reply_cb frees it */
	rc = 0;
done:
	free(op);
	return rc;
}
