/* The answer to GET /v1/calls/{id}: builds the JSON view of a call from its
 * rq:job and rq:timeline hashes.  Pure; whatever Redis holds is treated as
 * untrusted (unparseable members are left out, never trusted). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "status.h"

struct view_event {
	json_t		*obj;		/* the event as we answer it */
	uint64_t	 ts_ms;
	uint64_t	 rank;
};

static const char *
hget(const char *const *kv, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		if (kv[i] != NULL && !strcmp(kv[i], name))
			return kv[i + 1];
	return NULL;
}

static void
set_time(json_t *o, const char *name, uint64_t ms)
{
	char buf[40];

	rq_rfc3339_format(ms, buf, sizeof(buf));
	json_object_set_new(o, name, json_string(buf));
}

static void
set_str(json_t *o, const char *name, const char *s)
{
	json_t *v;

	/* json_string refuses invalid UTF-8: then the member is left out. */
	if (s != NULL && (v = json_string(s)) != NULL)
		json_object_set_new(o, name, v);
}

static int
event_cmp(const void *a, const void *b)
{
	const struct view_event *x = a, *y = b;

	if (x->ts_ms != y->ts_ms)
		return x->ts_ms < y->ts_ms ? -1 : 1;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return 0;
}

/* One timeline value to an event; returns -1 when it is not usable. */
static int
event_parse(const char *text, struct view_event *ev, int64_t *talk_ms)
{
	json_t *in, *o = NULL, *v;
	enum rq_status st;
	const char *status;
	json_int_t attempt;

	if ((in = json_loads(text, JSON_REJECT_DUPLICATES, NULL)) == NULL)
		return -1;
	v = json_object_get(in, "attempt");
	status = json_string_value(json_object_get(in, "status"));
	if (status == NULL || rq_status_parse(status, &st) == -1 ||
	    !json_is_integer(v) || (attempt = json_integer_value(v)) < 0 ||
	    attempt > 1000000 ||
	    !json_is_integer(json_object_get(in, "ts_ms")) ||
	    json_integer_value(json_object_get(in, "ts_ms")) < 0)
		goto fail;
	ev->ts_ms = json_integer_value(json_object_get(in, "ts_ms"));
	ev->rank = (uint64_t)attempt * 16 + st;
	o = json_object();
	json_object_set_new(o, "status", json_string(rq_status_name(st)));
	json_object_set_new(o, "attempt", json_integer(attempt));
	set_time(o, "at", ev->ts_ms);
	if (json_is_string(v = json_object_get(in, "reason")))
		json_object_set(o, "reason", v);
	if (json_is_integer(v = json_object_get(in, "sip_code")))
		json_object_set(o, "sip_code", v);
	if (json_is_integer(v = json_object_get(in, "duration_ms"))) {
		json_object_set(o, "duration_ms", v);
		if (st == RQ_ST_COMPLETED && json_integer_value(v) >= 0)
			*talk_ms = json_integer_value(v);
	}
	if (json_is_string(v = json_object_get(in, "node")))
		json_object_set(o, "node", v);
	/* retrying: "next attempt at <RFC 3339>" */
	if (json_is_string(v = json_object_get(in, "detail")))
		json_object_set(o, "detail", v);
	/* the application's result: an object, or the text it was when it
	 * was not one (common/keys.h's emit()) */
	if (json_is_object(v = json_object_get(in, "result")) ||
	    json_is_string(v))
		json_object_set(o, "result", v);
	ev->obj = o;
	json_decref(in);
	return 0;
fail:
	json_decref(in);
	return -1;
}

json_t *
gw_view_call(const char *id, const char *tenant, const char *const *job,
    size_t njob, const char *const *timeline, size_t ntimeline)
{
	struct view_event *evs = NULL;
	const char *owner, *s;
	json_t *o, *arr, *md;
	uint64_t v, created = 0, talk_ms = 0, best = 0;
	int have_talk = 0;
	size_t i, nev = 0;

	owner = hget(job, njob, "tenant");
	if (njob == 0 || owner == NULL || strcmp(owner, tenant) != 0)
		return NULL;

	o = json_object();
	json_object_set_new(o, "id", json_string(id));
	s = hget(job, njob, "status");
	set_str(o, "status", s ? s : "queued");
	set_str(o, "reason", hget(job, njob, "reason"));
	if (rq_parse_u64(hget(job, njob, "sip_code"), &v) == 0 && v > 0)
		json_object_set_new(o, "sip_code", json_integer(v));
	set_str(o, "to", hget(job, njob, "to"));
	/* A call we placed, or one a caller placed to an [inbound] number
	 * (the telserver's inbound.c): its `to` is the caller then. */
	if ((s = hget(job, njob, "direction")) != NULL &&
	    !strcmp(s, "inbound")) {
		set_str(o, "direction", "inbound");
		set_str(o, "number", hget(job, njob, "number"));
	} else
		set_str(o, "direction", "outbound");
	set_str(o, "say", hget(job, njob, "say"));
	set_str(o, "app_url", hget(job, njob, "app_url"));
	if ((s = hget(job, njob, "caller_id")) != NULL && *s != '\0')
		set_str(o, "caller_id", s);
	else
		json_object_set_new(o, "caller_id", json_null());
	if (rq_parse_u64(hget(job, njob, "priority"), &v) == 0 && v <= 9)
		json_object_set_new(o, "priority", json_integer(v));
	if (rq_parse_u64(hget(job, njob, "not_before_ms"), &v) == 0)
		set_time(o, "not_before", v);
	if (rq_parse_u64(hget(job, njob, "not_after_ms"), &v) == 0 && v > 0)
		set_time(o, "not_after", v);
	if (rq_parse_u64(hget(job, njob, "created_ms"), &created) == 0)
		set_time(o, "created_at", created);
	if (rq_parse_u64(hget(job, njob, "updated_ms"), &v) == 0)
		set_time(o, "updated_at", v);
	else if (created)
		set_time(o, "updated_at", created);
	if (rq_parse_u64(hget(job, njob, "attempts"), &v) != 0)
		v = 0;
	json_object_set_new(o, "attempts", json_integer(v));
	if ((s = hget(job, njob, "callback_url")) != NULL && *s != '\0')
		set_str(o, "callback_url", s);
	/* The policy engine's decision (policy.c). */
	if (rq_parse_u64(hget(job, njob, "not_before_ms"), &v) != 0)
		v = 0;
	if ((md = gw_policy_obj(hget(job, njob, "policy"), v)) != NULL)
		json_object_set_new(o, "policy", md);

	if (ntimeline / 2 > 0 &&
	    (evs = calloc(ntimeline / 2, sizeof(*evs))) != NULL) {
		for (i = 0; i + 1 < ntimeline; i += 2) {
			int64_t t = -1;

			if (timeline[i + 1] == NULL ||
			    event_parse(timeline[i + 1], &evs[nev], &t) == -1)
				continue;
			/* The talk time is the last completed attempt's. */
			if (t >= 0 && (!have_talk || evs[nev].rank > best)) {
				talk_ms = t;
				best = evs[nev].rank;
				have_talk = 1;
			}
			nev++;
		}
		qsort(evs, nev, sizeof(*evs), event_cmp);
	}
	if (have_talk)
		json_object_set_new(o, "talk_ms", json_integer(talk_ms));
	if ((s = hget(job, njob, "metadata")) != NULL && *s != '\0' &&
	    (md = json_loads(s, 0, NULL)) != NULL) {
		if (json_is_object(md))
			json_object_set(o, "metadata", md);
		json_decref(md);
	}
	/* The latest attempt's result (an application's end): shown as the
	 * object it is, or as the text it was when it is not one. */
	if ((s = hget(job, njob, "result")) != NULL && *s != '\0') {
		if ((md = json_loads(s, 0, NULL)) != NULL &&
		    json_is_object(md))
			json_object_set(o, "result", md);
		else
			set_str(o, "result", s);
		json_decref(md);
	}
	arr = json_array();
	for (i = 0; i < nev; i++)
		json_array_append_new(arr, evs[i].obj);
	json_object_set_new(o, "events", arr);
	free(evs);
	return o;
}
