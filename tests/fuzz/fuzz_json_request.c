/* libFuzzer target: a POST /v1/calls body through gw_call_parse for a
 * permissive and a strict tenant.  Refusals must be clean API errors; an
 * accepted call must satisfy every rule and survive a dump and re-parse.
 * The same bytes as a PATCH /v1/calls/{id} body through gw_patch_parse:
 * refused with 400 or 413, or a priority from 0 to 9 and/or a not_before. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"

#define FUZZ_MAX_BODY	65536

/* A body is refused only with the statuses docs/api.md lists for it. */
static void
check_body_error(const struct gw_error *err)
{
	if (err->status != 400 && err->status != 403 && err->status != 413 &&
	    err->status != 422)
		abort();
	check_error(err);
}

static int
same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Dumping the accepted body and parsing it again gives the same call. */
static void
check_round_trip(const struct gw_call *c, const struct rq_tenant *t)
{
	struct gw_call again;
	struct gw_error err;
	char *s;

	if ((s = json_dumps(c->root, JSON_COMPACT)) == NULL)
		abort();
	/* A dump may be longer than the input ("1e2" becomes "100.0"). */
	if (gw_call_parse(s, strlen(s), SIZE_MAX, t, FUZZ_NOW_MS, &again,
	    &err) == -1)
		abort();
	if (strcmp(c->to, again.to) || !same(c->say, again.say) ||
	    !same(c->app_url, again.app_url) ||
	    c->kind != again.kind || c->priority != again.priority ||
	    c->not_before_ms != again.not_before_ms ||
	    !same(c->caller_id, again.caller_id) ||
	    !same(c->callback_url, again.callback_url) ||
	    !same(c->metadata, again.metadata))
		abort();
	gw_call_clear(&again);
	free(s);
}

static void
check_patch(const uint8_t *data, size_t size)
{
	struct gw_patch p;
	struct gw_error err;

	if (gw_patch_parse((const char *)data, size, FUZZ_MAX_BODY, &p,
	    &err) == -1) {
		if (err.status != 400 && err.status != 413)
			abort();
		check_error(&err);
		if (p.has_priority || p.has_not_before)
			abort();
		return;
	}
	if (!p.has_priority && !p.has_not_before)
		abort();
	if (p.has_priority && (p.priority < 0 || p.priority > 9))
		abort();
	if (!p.has_not_before && (p.not_before_ms != 0 || p.not_before_local))
		abort();
	if (p.policy[0] != '\0')	/* the policy engine's, later */
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rq_tenant open, strict;
	struct gw_call c_open, c_strict;
	struct gw_error e_open, e_strict;
	int r_open, r_strict;

	memset(&open, 0, sizeof(open));
	strcpy(open.name, "open");
	open.allow_sip = 1;
	open.max_attempts = 3;
	/* Callbacks need a signing secret: have one, to reach that code. */
	strcpy(open.callback_secret, "fuzz-secret");
	strict = open;
	strcpy(strict.name, "strict");
	strict.allow_sip = 0;

	r_open = gw_call_parse((const char *)data, size, FUZZ_MAX_BODY, &open,
	    FUZZ_NOW_MS, &c_open, &e_open);
	r_strict = gw_call_parse((const char *)data, size, FUZZ_MAX_BODY,
	    &strict, FUZZ_NOW_MS, &c_strict, &e_strict);

	/* A refused request leaves the call empty. */
	if (r_open == -1) {
		check_body_error(&e_open);
		if (c_open.root != NULL || c_open.metadata != NULL)
			abort();
	}
	if (r_strict == -1) {
		check_body_error(&e_strict);
		if (c_strict.root != NULL || c_strict.metadata != NULL)
			abort();
	}
	/* The strict tenant accepts a subset of what the open one does,
	 * and differs only by refusing SIP targets, with 403. */
	if (r_strict == 0 && r_open == -1)
		abort();
	if (r_open == 0 && r_strict == -1 && (c_open.kind != RQ_TARGET_SIP ||
	    e_strict.status != 403 || strcmp(e_strict.code, "policy")))
		abort();
	if (r_open == -1 && r_strict == -1 && strcmp(e_strict.code,
	    "policy") && (e_open.status != e_strict.status ||
	    strcmp(e_open.code, e_strict.code)))
		abort();

	if (r_open == 0) {
		check_call(&c_open, &open);
		check_round_trip(&c_open, &open);
		check_policy(&c_open, &open);
		gw_call_clear(&c_open);
	}
	if (r_strict == 0) {
		check_call(&c_strict, &strict);
		gw_call_clear(&c_strict);
	}
	check_patch(data, size);
	return 0;
}
