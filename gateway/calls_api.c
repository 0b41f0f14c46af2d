/* The calls API beyond create and get: DELETE /v1/calls/{id} cancels a call
 * that has not started, PATCH /v1/calls/{id} moves it (not_before,
 * priority), GET /v1/calls lists a tenant's calls newest first, a page at
 * a time.  The Redis side is in store_calls.c. */
#include <sys/queue.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "gateway.h"
#include "log.h"
#include "status.h"
#include "util.h"

#define CALLS_PATH	"/v1/calls"

/* A request waiting for Redis.  evhttp keeps req alive until it is
 * answered, which the store callback does exactly once (see http.c). */
struct api_req {
	struct evhttp_request	*req;
	const struct rq_tenant	*tenant;	/* borrowed from the config */
	const struct rq_config	*cfg;
	struct gw_store		*st;
	char			 id[RQ_ID_LEN + 1];
	struct gw_patch		 patch;		/* PATCH */
};

/* URL-safe base64 without padding (RFC 4648 section 5). */
static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void
gw_cursor_encode(uint64_t ms, const char *id, char *out, size_t outlen)
{
	char raw[64];
	size_t n, i, o = 0;
	uint32_t v;

	n = (size_t)snprintf(raw, sizeof(raw), "%" PRIu64 ":%s", ms, id);
	if (n >= sizeof(raw))
		n = sizeof(raw) - 1;
	for (i = 0; i < n && o + 5 < outlen; i += 3) {
		v = (uint32_t)(unsigned char)raw[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)(unsigned char)raw[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)raw[i + 2];
		out[o++] = b64[(v >> 18) & 63];
		out[o++] = b64[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = b64[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = b64[v & 63];
	}
	out[o] = '\0';
}

int
gw_cursor_decode(const char *s, uint64_t *ms, char id[RQ_ID_LEN + 1])
{
	char raw[64], *colon, *end;
	const char *p;
	size_t len = strlen(s), i, o = 0;
	uint32_t v = 0;
	int bits = 0;

	if (len == 0 || len > 80 || len % 4 == 1)
		return -1;
	for (i = 0; i < len; i++) {
		if ((p = strchr(b64, s[i])) == NULL)
			return -1;
		v = (v << 6) | (uint32_t)(p - b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o + 1 >= sizeof(raw))
				return -1;
			raw[o++] = (char)((v >> bits) & 0xff);
		}
	}
	raw[o] = '\0';
	if (memchr(raw, '\0', o) != NULL || (colon = strchr(raw, ':')) == NULL)
		return -1;
	*colon = '\0';
	if (raw[0] < '0' || raw[0] > '9' || strlen(raw) > 15)
		return -1;
	errno = 0;
	*ms = strtoull(raw, &end, 10);
	if (errno || *end != '\0' || !rq_call_id_valid(colon + 1))
		return -1;
	snprintf(id, RQ_ID_LEN + 1, "%s", colon + 1);
	return 0;
}

static int
bad_param(struct gw_error *err, const char *name, const char *msg)
{
	gw_error_set(err, 400, "invalid_parameter", name, "%s", msg);
	return -1;
}

int
gw_list_query_parse(const char *query, struct gw_list_query *q,
    struct gw_error *err)
{
	struct evkeyvalq params;
	struct evkeyval *kv;
	enum rq_status st;
	unsigned int seen = 0, bit;
	char *end;
	long n;
	int rc = -1;

	memset(q, 0, sizeof(*q));
	q->limit = GW_LIST_LIMIT_DEFAULT;
	TAILQ_INIT(&params);
	if (query == NULL || *query == '\0')
		return 0;
	if (evhttp_parse_query_str(query, &params) == -1) {
		gw_error_set(err, 400, "invalid_parameter", NULL, "The query "
		    "string must be name=value pairs joined by '&'.");
		goto done;
	}
	TAILQ_FOREACH(kv, &params, next) {
		const char *k = kv->key, *v = kv->value;

		if (!strcmp(k, "status"))
			bit = 1;
		else if (!strcmp(k, "since"))
			bit = 2;
		else if (!strcmp(k, "limit"))
			bit = 4;
		else if (!strcmp(k, "cursor"))
			bit = 8;
		else {
			char name[32];

			snprintf(name, sizeof(name), "%s", k);
			gw_error_set(err, 400, "unknown_parameter", name,
			    "Unknown query parameter; this path takes status, "
			    "since, limit and cursor.");
			goto done;
		}
		if (seen & bit) {
			bad_param(err, k, "Give this parameter once.");
			goto done;
		}
		seen |= bit;
		switch (bit) {
		case 1:
			if (rq_status_parse(v, &st) == -1) {
				bad_param(err, k, "'status' must be one of "
				    "queued, scheduled, dispatched, ringing, "
				    "answered, retrying, completed, failed, "
				    "canceled, expired.");
				goto done;
			}
			snprintf(q->status, sizeof(q->status), "%s", v);
			break;
		case 2:
			if (rq_rfc3339_parse(v, &q->since_ms) == -1) {
				bad_param(err, k, "'since' must be an RFC 3339 "
				    "date-time such as 2026-11-21T10:00:00Z "
				    "(a '+' offset must be sent as %2B).");
				goto done;
			}
			break;
		case 4:
			errno = 0;
			n = strtol(v, &end, 10);
			if (*v < '0' || *v > '9' || *end != '\0' || errno ||
			    n < 1 || n > GW_LIST_LIMIT_MAX) {
				bad_param(err, k, "'limit' must be an integer "
				    "from 1 to 200.");
				goto done;
			}
			q->limit = (int)n;
			break;
		case 8:
			if (gw_cursor_decode(v, &q->cursor_ms,
			    q->cursor_id) == -1) {
				bad_param(err, k, "'cursor' must be a "
				    "next_cursor value from an earlier page, "
				    "unchanged.");
				goto done;
			}
			q->has_cursor = 1;
			break;
		}
	}
	rc = 0;
done:
	evhttp_clear_headers(&params);
	return rc;
}

static void
list_done(int rc, json_t *body, void *arg)
{
	struct api_req *r = arg;

	if (rc == -1)
		gw_reply_unavailable(r->req);
	else
		gw_reply_json(r->req, 200, body);
	free(r);
}

/*
 * Lists per second and tenant, counted by this gateway (a list with a
 * status filter may look at thousands of calls in one script, holding
 * Redis for every tenant): one second's count for each of cfg's tenants,
 * by its place in cfg->tenants.
 */
static struct list_count {
	uint64_t	sec;
	int		n;
} *list_counts;
static size_t nlist_counts;

static int
list_allowed(const struct rq_config *cfg, const struct rq_tenant *tenant,
    uint64_t now_ms)
{
	size_t i = (size_t)(tenant - cfg->tenants);
	struct list_count *lc;

	if (tenant->list_per_second == 0 || i >= cfg->ntenants)
		return 1;
	if (nlist_counts < cfg->ntenants) {
		free(list_counts);
		nlist_counts = 0;
		if ((list_counts = calloc(cfg->ntenants,
		    sizeof(*list_counts))) == NULL)
			return 1;
		nlist_counts = cfg->ntenants;
	}
	lc = &list_counts[i];
	if (lc->sec != now_ms / 1000) {
		lc->sec = now_ms / 1000;
		lc->n = 0;
	}
	return ++lc->n <= tenant->list_per_second;
}

static void
api_list(const struct rq_config *cfg, struct gw_store *st,
    struct evhttp_request *req)
{
	const struct rq_tenant *tenant;
	struct gw_list_query q;
	struct gw_error err;
	struct api_req *r;
	const char *query;

	if ((tenant = gw_http_auth(cfg, req)) == NULL)
		return;
	if (!list_allowed(cfg, tenant, rq_mono_ms())) {
		gw_error_set(&err, 429, "rate_limited", NULL, "This account "
		    "may list its calls %d times a second (list_per_second); "
		    "retry in a second.", tenant->list_per_second);
		err.retry_after = 1;
		gw_reply_error(req, &err);
		return;
	}
	query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	if (gw_list_query_parse(query, &q, &err) == -1) {
		gw_reply_error(req, &err);
		return;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	r->req = req;
	r->tenant = tenant;
	if (gw_store_list(st, tenant->name, &q, list_done, r) == -1) {
		gw_reply_unavailable(req);
		free(r);
	}
}

/* A job field from the flat pairs, or NULL. */
static const char *
field(const char *const *job, size_t njob, const char *name)
{
	size_t i;

	for (i = 0; i + 1 < njob; i += 2)
		if (!strcmp(job[i], name))
			return job[i + 1];
	return NULL;
}

/* The store took the command, but its answer never came (the link was
 * lost): the script may have run, whole. */
static void
reply_unconfirmed(struct api_req *r, const char *what)
{
	struct gw_error err;

	gw_error_set(&err, 503, "unavailable", NULL, "The call store went "
	    "away before confirming the %s, which may or may not have been "
	    "made: GET /v1/calls/%s tells once the service is back.", what,
	    r->id);
	gw_reply_error(r->req, &err);
}

/* The cancel script recorded EVENT canceled in rq:events itself, for
 * accounting (PostgreSQL, the status callback). */
static void
cancel_done(const struct gw_cancel_result *res, void *arg)
{
	struct api_req *r = arg;

	if (res->rc == -2) {
		reply_unconfirmed(r, "cancel");
		goto done;
	}
	if (res->rc == -1) {
		gw_reply_unavailable(r->req);
		goto done;
	}
	switch (res->outcome) {
	case GW_CANCEL_NOT_FOUND:
		gw_reply_no_call(r->req);
		break;
	case GW_CANCEL_ENDED:
		gw_reply_simple(r->req, 409, "already_ended", "This call has "
		    "already ended; there is nothing to cancel.");
		break;
	case GW_CANCEL_STARTED:
		gw_reply_simple(r->req, 409, "already_started", "This call has "
		    "already been handed to a telephony server and cannot be "
		    "canceled any more.");
		break;
	case GW_CANCEL_DONE:
		log_info("call %s: canceled by tenant %s (attempt %llu)",
		    r->id, r->tenant->name, (unsigned long long)res->attempt);
		gw_reply_call(r->req, r->id, r->tenant->name, res->job,
		    res->njob, res->timeline, res->ntimeline);
		break;
	}
done:
	free(r);
}

static void
api_cancel(const struct rq_config *cfg, struct gw_store *st,
    struct evhttp_request *req, const char *id)
{
	const struct rq_tenant *tenant;
	struct api_req *r;

	if ((tenant = gw_http_auth(cfg, req)) == NULL)
		return;
	if (!rq_call_id_valid(id)) {
		gw_reply_no_call(req);
		return;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	r->req = req;
	r->tenant = tenant;
	snprintf(r->id, sizeof(r->id), "%s", id);
	if (gw_store_cancel(st, id, tenant->name, rq_now_ms(), cancel_done,
	    r) == -1) {
		gw_reply_unavailable(req);
		free(r);
	}
}

/* PATCH: the fields a waiting call may change.  Anything else is refused
 * by name, like POST's unknown fields; a refusal leaves p empty. */
int
gw_patch_parse(const char *body, size_t len, size_t max_body,
    struct gw_patch *p, struct gw_error *err)
{
	json_error_t jerr;
	json_t *root, *v;
	const char *key, *s;
	int rc = -1;

	memset(p, 0, sizeof(*p));
	if (len >= max_body) {
		gw_error_set(err, 413, "too_large", NULL,
		    "The body must be smaller than %zu bytes.", max_body);
		return -1;
	}
	if ((root = json_loadb(body, len, JSON_REJECT_DUPLICATES |
	    JSON_DECODE_ANY, &jerr)) == NULL) {
		gw_error_set(err, 400, "invalid_json", NULL, "The body is not "
		    "valid JSON: %s (line %d, column %d).", jerr.text,
		    jerr.line, jerr.column);
		return -1;
	}
	if (!json_is_object(root)) {
		gw_error_set(err, 400, "invalid_request", NULL, "The body must "
		    "be a JSON object, like {\"priority\": 7} or "
		    "{\"not_before\": \"2026-11-21T10:00:00Z\"}.");
		goto done;
	}
	json_object_foreach(root, key, v) {
		if (strcmp(key, "not_before") && strcmp(key, "priority")) {
			gw_error_set(err, 400, "unknown_field", key, "'%.64s' "
			    "cannot be changed; a call waiting for its turn "
			    "may change not_before and priority.", key);
			goto done;
		}
	}
	if ((v = json_object_get(root, "priority")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 9) {
			gw_error_set(err, 400, "invalid_field", "priority",
			    "'priority' must be an integer from 0 to 9 "
			    "(9 is the most urgent).");
			goto done;
		}
		p->has_priority = 1;
		p->priority = (int)json_integer_value(v);
	}
	if ((v = json_object_get(root, "not_before")) != NULL) {
		if ((s = json_string_value(v)) == NULL ||
		    gw_time_parse(s, &p->not_before_ms,
		    &p->not_before_local) == -1) {
			gw_error_set(err, 400, "invalid_field", "not_before",
			    "'not_before' must be an RFC 3339 date-time like "
			    "2026-11-21T10:00:00Z, or a local time of the "
			    "callee like 2026-11-21T10:00:00.");
			goto done;
		}
		p->has_not_before = 1;
	}
	if (!p->has_priority && !p->has_not_before) {
		gw_error_set(err, 400, "missing_field", NULL, "Give "
		    "'not_before', 'priority' or both.");
		goto done;
	}
	rc = 0;
done:
	if (rc == -1)
		memset(p, 0, sizeof(*p));	/* a refusal changes nothing */
	json_decref(root);
	return rc;
}

static void
patch_done(const struct gw_patch_result *res, void *arg)
{
	struct api_req *r = arg;

	if (res->rc == -2) {
		reply_unconfirmed(r, "change");
		goto done;
	}
	if (res->rc == -1) {
		gw_reply_unavailable(r->req);
		goto done;
	}
	switch (res->outcome) {
	case GW_PATCH_NOT_FOUND:
		gw_reply_no_call(r->req);
		break;
	case GW_PATCH_ENDED:
		gw_reply_simple(r->req, 409, "already_ended", "This call has "
		    "already ended; there is nothing to change.");
		break;
	case GW_PATCH_STARTED:
		gw_reply_simple(r->req, 409, "already_started", "This call has "
		    "already been handed to a telephony server (it may be "
		    "ringing) and cannot be changed until it is waiting "
		    "again.");
		break;
	case GW_PATCH_NOT_AFTER:
		gw_reply_simple(r->req, 422, "outside_window", "The new "
		    "not_before is not before the call's not_after; nothing "
		    "was changed.");
		break;
	case GW_PATCH_DONE:
		log_info("call %s: changed by tenant %s%s%s", r->id,
		    r->tenant->name, r->patch.has_not_before ?
		    ": not_before" : "", r->patch.has_priority ?
		    ": priority" : "");
		gw_reply_call(r->req, r->id, r->tenant->name, res->job,
		    res->njob, res->timeline, res->ntimeline);
		break;
	}
done:
	free(r);
}

static void
patch_send(struct api_req *r)
{
	if (gw_store_patch(r->st, r->id, r->tenant->name, &r->patch,
	    rq_now_ms(), patch_done, r) == -1) {
		gw_reply_unavailable(r->req);
		free(r);
	}
}

/*
 * A new not_before goes through the policy engine again, with what the
 * job was created with (to, business, time_zone): a call cannot be moved
 * into the callee's night.  That needs the job first; the patch script
 * then checks again, atomically, that the job still waits.
 */
static void
patch_got(int rc, const char *const *job, size_t njob,
    const char *const *timeline, size_t ntimeline, void *arg)
{
	struct api_req *r = arg;
	struct gw_call call;
	struct gw_policy pol;
	struct gw_error err;
	const char *owner, *na, *t, *dir, *rank;
	char why[128], t1[40];
	uint64_t now = rq_now_ms(), rk;

	if (rc == -1) {
		gw_reply_unavailable(r->req);
		free(r);
		return;
	}
	owner = field(job, njob, "tenant");
	if (njob == 0 || owner == NULL || strcmp(owner, r->tenant->name) ||
	    (t = field(job, njob, "to")) == NULL) {
		gw_reply_no_call(r->req);
		free(r);
		return;
	}
	/* An ended or started call gets the answer the patch script would
	 * give, before its new not_before is checked: an ended call is often
	 * past its not_after, which would fail the check for the wrong
	 * reason.  (Both are answered here rather than sent on unchecked: a
	 * started call's attempt may end meanwhile, and the script would
	 * then take a not_before that neither the window nor the policy
	 * saw.) */
	if ((rank = field(job, njob, "status_rank")) != NULL &&
	    rq_parse_u64(rank, &rk) == 0 &&
	    rk % RQ_RANK_ATTEMPT >= RQ_ST_DISPATCHED &&
	    rk % RQ_RANK_ATTEMPT != RQ_ST_RETRYING) {
		struct gw_patch_result res;

		memset(&res, 0, sizeof(res));
		res.outcome = rk % RQ_RANK_ATTEMPT >= RQ_ST_COMPLETED ?
		    GW_PATCH_ENDED : GW_PATCH_STARTED;
		patch_done(&res, r);
		return;
	}
	/* An incoming call is never in rq:delayed or rq:ready, and its 'to'
	 * is the caller, not a target to check: the store answers that it is
	 * in progress or ended. */
	if ((dir = field(job, njob, "direction")) != NULL &&
	    !strcmp(dir, "inbound")) {
		patch_send(r);
		return;
	}
	memset(&call, 0, sizeof(call));
	memset(&pol, 0, sizeof(pol));
	call.to = t;
	call.business = field(job, njob, "business");
	call.time_zone = field(job, njob, "time_zone");
	call.not_before_ms = r->patch.not_before_ms;
	call.not_before_local = r->patch.not_before_local;
	if ((na = field(job, njob, "not_after_ms")) != NULL)
		call.not_after_ms = strtoull(na, NULL, 10);
	if (rq_target_parse(call.to, &call.kind, why, sizeof(why)) == -1) {
		log_warnx("call %s: the stored 'to' is not a target: %s",
		    r->id, why);
		gw_reply_simple(r->req, 409, "invalid_state", "This call "
		    "cannot be changed.");
		free(r);
		return;
	}
	if ((!call.not_before_local &&
	    gw_call_check_window(&call, now, &err) == -1) ||
	    gw_policy_check(r->cfg, r->tenant, &call, now, &pol,
	    &err) == -1) {
		if (!strcmp(err.field, "not_after")) {
			rq_rfc3339_format(call.not_after_ms, t1, sizeof(t1));
			gw_error_set(&err, 422, "outside_window", "not_before",
			    "The call must be placed before its not_after "
			    "(%s), and this not_before is not before it%s; "
			    "nothing was changed.", t1, pol.defer ?
			    " once the calling hours are applied" : "");
		}
		gw_reply_error(r->req, &err);
		free(r);
		return;
	}
	if (pol.defer)
		log_info("call %s: new not_before deferred (%s)", r->id,
		    pol.reasons);
	r->patch.not_before_ms = call.not_before_ms;
	r->patch.not_before_local = 0;
	snprintf(r->patch.policy, sizeof(r->patch.policy), "%s", call.policy);
	snprintf(r->patch.hours, sizeof(r->patch.hours), "%s",
	    call.hours ? call.hours : "");
	r->patch.hours_until_ms = call.hours_until_ms;
	free(call.hours);
	patch_send(r);
}

static void
api_patch(const struct rq_config *cfg, struct gw_store *st,
    struct evhttp_request *req, const char *id)
{
	const struct rq_tenant *tenant;
	struct evbuffer *in;
	struct gw_error err;
	struct api_req *r;
	const char *body;
	size_t len, max = (size_t)cfg->max_body;

	if ((tenant = gw_http_auth(cfg, req)) == NULL)
		return;
	if (!rq_call_id_valid(id)) {
		gw_reply_no_call(req);
		return;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	in = evhttp_request_get_input_buffer(req);
	len = evbuffer_get_length(in);
	body = "";
	if (len > 0 && len < max &&
	    (body = (const char *)evbuffer_pullup(in, -1)) == NULL) {
		evhttp_send_error(req, 500, NULL);	/* out of memory */
		free(r);
		return;
	}
	if (gw_patch_parse(body, len, max, &r->patch, &err) == -1) {
		gw_reply_error(req, &err);
		free(r);
		return;
	}
	r->req = req;
	r->tenant = tenant;
	r->cfg = cfg;
	r->st = st;
	snprintf(r->id, sizeof(r->id), "%s", id);
	if (!r->patch.has_not_before) {
		patch_send(r);
		return;
	}
	if (gw_store_get(st, id, patch_got, r) == -1) {
		gw_reply_unavailable(req);
		free(r);
	}
}

int
gw_calls_api_route(const struct rq_config *cfg, struct gw_store *st,
    struct gw_intake *in, struct evhttp_request *req, const char *path,
    int cmd)
{
	const char *id;

	if (!strcmp(path, CALLS_PATH) &&
	    (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD)) {
		api_list(cfg, st, req);
		return 1;
	}
	if ((cmd != EVHTTP_REQ_DELETE && cmd != EVHTTP_REQ_PATCH) ||
	    strncmp(path, CALLS_PATH "/", sizeof(CALLS_PATH)))
		return 0;
	id = path + sizeof(CALLS_PATH);
	if (*id == '\0' || strchr(id, '/') != NULL)
		return 0;
	if (cmd == EVHTTP_REQ_DELETE)
		api_cancel(cfg, st, req, id);
	else
		api_patch(cfg, st, req, id);
	return 1;
}
