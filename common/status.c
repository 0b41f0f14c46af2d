/* Status names (see status.h). */
#include <string.h>

#include "status.h"

static const char *const status_names[RQ_ST__COUNT] = {
	[RQ_ST_QUEUED] = "queued",
	[RQ_ST_SCHEDULED] = "scheduled",
	[RQ_ST_DISPATCHED] = "dispatched",
	[RQ_ST_RINGING] = "ringing",
	[RQ_ST_ANSWERED] = "answered",
	[RQ_ST_RETRYING] = "retrying",
	[RQ_ST_COMPLETED] = "completed",
	[RQ_ST_FAILED] = "failed",
	[RQ_ST_CANCELED] = "canceled",
	[RQ_ST_EXPIRED] = "expired",
};

const char *
rq_status_name(enum rq_status st)
{
	if ((unsigned)st >= RQ_ST__COUNT)
		return "unknown";
	return status_names[st];
}

int
rq_status_parse(const char *name, enum rq_status *st)
{
	int i;

	for (i = 0; i < RQ_ST__COUNT; i++)
		if (!strcmp(status_names[i], name)) {
			*st = (enum rq_status)i;
			return 0;
		}
	return -1;
}

int
rq_status_terminal(enum rq_status st)
{
	return st >= RQ_ST_COMPLETED && st < RQ_ST__COUNT;
}
