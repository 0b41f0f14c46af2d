/* Checks shared by the request fuzz targets: what every refusal and every
 * accepted call must look like, whatever path (JSON body, e-mail) made it. */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

/* A fixed clock: 2026-11-21T10:00:00Z, so that runs are reproducible. */
#define FUZZ_NOW_MS	1795255200000ULL
/* The letters and digits a speakable 'say' holds one of (validate.c). */
#define FUZZ_ALNUM	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

/* A refusal is a 4xx or 5xx with a code and a message that can always be
 * sent back as JSON. */
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

/* An accepted call obeys the rules validate.c documents. */
static void
check_call(const struct gw_call *c, const struct rq_tenant *t)
{
	enum rq_target_kind kind;
	char why[160];
	size_t n;
	json_t *m;

	/* a text to say or an application to run: exactly one */
	if (c->root == NULL || c->to == NULL ||
	    (c->say == NULL) == (c->app_url == NULL))
		abort();
	if (c->app_url != NULL && (strlen(c->app_url) > GW_APP_URL_MAX ||
	    gw_app_url_check(c->app_url, why, sizeof(why)) == -1))
		abort();
	if (strlen(c->to) > GW_TO_MAX ||
	    rq_target_parse(c->to, &kind, why, sizeof(why)) == -1 ||
	    kind != c->kind || (kind == RQ_TARGET_SIP && !t->allow_sip))
		abort();
	n = c->say != NULL ? strlen(c->say) : 1;
	if (n < 1 || n > GW_SAY_MAX ||
	    (c->say != NULL && strpbrk(c->say, FUZZ_ALNUM) == NULL))
		abort();
	if (c->caller_id != NULL && !gw_caller_id_valid(c->caller_id))
		abort();
	if (c->callback_url != NULL &&
	    strlen(c->callback_url) > GW_CALLBACK_URL_MAX)
		abort();
	if (c->priority < 0 || c->priority > 9)
		abort();
	/* A time without an offset is the callee's local time: validation
	 * leaves it to the policy engine, which knows the zone
	 * (check_policy). */
	if (!c->not_before_local && (c->not_before_ms < FUZZ_NOW_MS ||
	    c->not_before_ms > FUZZ_NOW_MS + GW_NOT_BEFORE_MAX_MS))
		abort();
	if (!c->not_before_local && !c->not_after_local &&
	    c->not_after_ms != 0 && (c->not_after_ms <= c->not_before_ms ||
	    c->not_after_ms > FUZZ_NOW_MS + GW_NOT_BEFORE_MAX_MS))
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

/* The policy engine's pure checks (no Redis) on an accepted call: they
 * refuse with a clean error, or leave absolute times inside the window.
 * No calling hours are configured, so nothing is deferred. */
static void
check_policy(struct gw_call *c, const struct rq_tenant *t)
{
	static struct rq_config cfg;
	static int cfg_ready;
	struct gw_policy pol;
	struct gw_error err;

	if (!cfg_ready) {
		rq_config_defaults(&cfg);
		cfg_ready = 1;
	}
	memset(&pol, 0, sizeof(pol));
	memset(&err, 0, sizeof(err));
	if (gw_policy_check(&cfg, t, c, FUZZ_NOW_MS, &pol, &err) == -1) {
		check_error(&err);
		return;
	}
	if (c->not_before_local || c->not_after_local ||
	    c->not_before_ms < FUZZ_NOW_MS ||
	    c->not_before_ms > FUZZ_NOW_MS + GW_NOT_BEFORE_MAX_MS)
		abort();
	if (c->not_after_ms != 0 && (c->not_after_ms <= c->not_before_ms ||
	    c->not_after_ms > FUZZ_NOW_MS + GW_NOT_BEFORE_MAX_MS))
		abort();
}

#endif
