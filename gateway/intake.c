/* The one path every call request takes, whatever its origin (HTTP or
 * e-mail): a validated call for a tenant goes through the policy engine's
 * pure checks, then one Lua script runs its Redis checks and, when they
 * pass, stores the job and records EVENT queued in rq:events for
 * accounting (policy_store.c): one round trip, atomic. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "log.h"

struct gw_intake {
	const struct rq_config	*cfg;
	struct gw_store		*st;
};

/* One request on its way through the stages; freed when cb has run. */
struct intake_req {
	struct gw_intake	*in;
	const struct rq_tenant	*tenant;
	struct gw_intake_result	 res;
	struct gw_call		 call;
	struct gw_policy	 pol;
	gw_intake_cb		*cb;
	void			*arg;
};

struct gw_intake *
gw_intake_new(const struct rq_config *cfg, struct gw_store *st)
{
	struct gw_intake *in;

	if ((in = calloc(1, sizeof(*in))) == NULL)
		return NULL;
	in->cfg = cfg;
	in->st = st;
	return in;
}

void
gw_intake_free(struct gw_intake *in)
{
	free(in);
}

static void
intake_finish(struct intake_req *r)
{
	r->res.call = &r->call;
	r->cb(&r->res, r->arg);
	gw_call_clear(&r->call);
	free(r);
}

/* The one script answered: queued, a replay, a refusal, or Redis failed. */
static void
created_done(const struct gw_policy_verdict *v, void *arg)
{
	struct intake_req *r = arg;

	switch (v->rc) {
	case 0:
		log_info("call %s: accepted for tenant %s, %s target, "
		    "priority %d, policy %s", r->res.id, r->tenant->name,
		    r->call.kind == RQ_TARGET_SIP ? "sip" : "e164",
		    r->call.priority, r->call.policy);
		r->res.rc = 0;
		break;
	case 1:
		log_info("call %s: idempotency key seen before for tenant %s; "
		    "answering with call %s", r->res.id, r->tenant->name,
		    v->replay_id);
		snprintf(r->res.id, sizeof(r->res.id), "%s", v->replay_id);
		r->res.rc = 0;
		r->res.replay = 1;
		break;
	case -1:
		log_info("call %s: refused by policy for tenant %s: %d %s",
		    r->res.id, r->tenant->name, v->err.status, v->err.code);
		r->res.rc = -1;
		r->res.err = v->err;
		break;
	case -2:
		/* The script runs whole or not at all: either the job, its
		 * slots and its idempotency key exist, or none does. */
		r->res.rc = -2;
		gw_error_set(&r->res.err, 503, "unavailable", NULL, "The call "
		    "store went away before confirming call %s, which may or "
		    "may not be queued: GET /v1/calls/%s tells once the "
		    "service is back.", r->res.id, r->res.id);
		break;
	default:
		r->res.rc = -1;
		r->res.err = v->err;
		break;
	}
	intake_finish(r);
}

int
gw_intake_submit(struct gw_intake *in, const struct rq_tenant *tenant,
    struct gw_call *call, uint64_t now_ms, gw_intake_cb *cb, void *arg,
    struct gw_error *err)
{
	struct intake_req *r;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		gw_error_set(err, 503, "unavailable", NULL, "Out of memory; "
		    "nothing was queued.");
		return -1;
	}
	r->in = in;
	r->tenant = tenant;
	r->cb = cb;
	r->arg = arg;
	r->res.created_ms = now_ms;
	r->call = *call;		/* the request owns it from now on */
	memset(call, 0, sizeof(*call));
	if (rq_call_id_new(r->res.id) == -1) {
		gw_error_set(err, 503, "unavailable", NULL, "No call id could "
		    "be made; nothing was queued.  Try again shortly.");
		goto fail;
	}
	/* The pure checks first: a refusal costs no round trip. */
	if (gw_policy_check(in->cfg, tenant, &r->call, now_ms, &r->pol,
	    err) == -1) {
		log_info("call %s: refused by policy for tenant %s: %d %s",
		    r->res.id, tenant->name, err->status, err->code);
		goto fail;
	}
	if (r->pol.defer) {
		char t[40];

		rq_rfc3339_format(r->call.not_before_ms, t, sizeof(t));
		log_info("call %s: deferred to %s (%s)", r->res.id, t,
		    r->pol.reasons);
	}
	if (gw_policy_store_create(in->st, tenant, &r->call, &r->pol,
	    r->res.id, now_ms, created_done, r) == -1) {
		gw_error_set(err, 503, "unavailable", NULL, "The call store "
		    "is unavailable; nothing was queued.  Try again shortly.");
		goto fail;
	}
	return 0;
fail:
	gw_call_clear(&r->call);
	free(r);
	return -1;
}
