/* libFuzzer target: arbitrary bytes as a whole e-mail request through
 * gw_mail_request_parse (GMime, then the shared call validation).  A
 * refusal must be a clean error; an accepted call must obey the rules. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"

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
		check_policy(&call, &t);
		gw_call_clear(&call);
	}
	if (memchr(msgid, '\0', sizeof(msgid)) == NULL)
		abort();
	return 0;
}
