/* libFuzzer target: a POST /v1/calls body through gw_call_parse for a
 * permissive and a strict tenant.  Refusals must be clean API errors; an
 * accepted call must satisfy every rule and survive a dump and re-parse. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

#define FUZZ_MAX_BODY	65536
/* A fixed clock: 2026-11-21T10:00:00Z, so that runs are reproducible. */
#define FUZZ_NOW_MS	1795255200000ULL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

/* A refusal is one of the documented statuses, with a code and a message
 * that can always be sent back as JSON. */
static void
check_error(const struct gw_error *err)
{
	json_t *o;
	char *s;

	if (err->status != 400 && err->status != 403 && err->status != 413 &&
	    err->status != 422)
		abort();
	if (err->code[0] == '\0' || err->message[0] == '\0' ||
	    !printable(err->code) || !printable(err->field) ||
	    !printable(err->message))
		abort();
	if ((o = gw_error_obj(err)) == NULL ||
	    (s = json_dumps(o, JSON_COMPACT)) == NULL)
		abort();
	free(s);
	json_decref(o);
}

/* An accepted call obeys the rules validate.c documents. */
static void
check_call(const struct gw_call *c, const struct rq_tenant *t)
{
	enum rq_target_kind kind;
	char why[160];
	size_t n;
	json_t *m;

	if (c->root == NULL || c->to == NULL || c->say == NULL)
		abort();
	if (strlen(c->to) > GW_TO_MAX ||
	    rq_target_parse(c->to, &kind, why, sizeof(why)) == -1 ||
	    kind != c->kind || (kind == RQ_TARGET_SIP && !t->allow_sip))
		abort();
	n = strlen(c->say);
	if (n < 1 || n > GW_SAY_MAX)
		abort();
	if (c->caller_id != NULL && !gw_caller_id_valid(c->caller_id))
		abort();
	if (c->callback_url != NULL &&
	    strlen(c->callback_url) > GW_CALLBACK_URL_MAX)
		abort();
	if (c->priority < 0 || c->priority > 9)
		abort();
	if (c->not_before_ms < FUZZ_NOW_MS ||
	    c->not_before_ms > FUZZ_NOW_MS + GW_NOT_BEFORE_MAX_MS)
		abort();
	if ((c->metadata == NULL) != (c->metadata_obj == NULL))
		abort();
	if (c->metadata != NULL) {
		if (strlen(c->metadata) > GW_METADATA_MAX ||
		    (m = json_loads(c->metadata, 0, NULL)) == NULL)
			abort();
		if (!json_equal(m, c->metadata_obj))
			abort();
		json_decref(m);
	}
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
	if (strcmp(c->to, again.to) || strcmp(c->say, again.say) ||
	    c->kind != again.kind || c->priority != again.priority ||
	    c->not_before_ms != again.not_before_ms ||
	    !same(c->caller_id, again.caller_id) ||
	    !same(c->callback_url, again.callback_url) ||
	    !same(c->metadata, again.metadata))
		abort();
	gw_call_clear(&again);
	free(s);
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
		check_error(&e_open);
		if (c_open.root != NULL || c_open.metadata != NULL)
			abort();
	}
	if (r_strict == -1) {
		check_error(&e_strict);
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
		gw_call_clear(&c_open);
	}
	if (r_strict == 0) {
		check_call(&c_strict, &strict);
		gw_call_clear(&c_strict);
	}
	return 0;
}
