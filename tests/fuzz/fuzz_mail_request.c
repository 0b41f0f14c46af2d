/* libFuzzer target: arbitrary bytes as a whole e-mail request through
 * gw_mail_request_parse (GMime, then the shared call validation).  A
 * refusal must be a clean error; an accepted call must obey the rules. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

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

static void
check_error(const struct gw_error *err)
{
	json_t *o;
	char *s;

	if (err->status < 400 || err->status > 599)
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

static void
check_call(const struct gw_call *c, const struct rq_tenant *t)
{
	enum rq_target_kind kind;
	char why[160];
	size_t n;

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
	if (c->priority < 0 || c->priority > 9)
		abort();
	if (c->not_before_ms < FUZZ_NOW_MS ||
	    c->not_before_ms > FUZZ_NOW_MS + GW_NOT_BEFORE_MAX_MS)
		abort();
	if (c->metadata != NULL && strlen(c->metadata) > GW_METADATA_MAX)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rq_tenant t;
	struct gw_call call;
	struct gw_error err;
	char msgid[256];

	memset(&t, 0, sizeof(t));
	strcpy(t.name, "open");
	t.allow_sip = 1;
	t.max_attempts = 3;
	strcpy(t.callback_secret, "fuzz-secret");	/* callbacks allowed */
	/* Poison msgid: the parser must terminate it whatever happens. */
	memset(msgid, 'x', sizeof(msgid));

	if (gw_mail_request_parse((const char *)data, size, &t, FUZZ_NOW_MS,
	    &call, msgid, sizeof(msgid), &err) == -1) {
		check_error(&err);
		if (call.root != NULL || call.metadata != NULL)
			abort();
	} else {
		check_call(&call, &t);
		gw_call_clear(&call);
	}
	if (memchr(msgid, '\0', sizeof(msgid)) == NULL)
		abort();
	return 0;
}
