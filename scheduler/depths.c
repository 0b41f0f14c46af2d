/* The queue depths the scheduler publishes as metrics (docs/metrics.md):
 * read once a second, in one round trip. */
#include <stdio.h>

#include <hiredis/hiredis.h>

#include "keys.h"
#include "log.h"
#include "metrics.h"
#include "scheduler.h"

static const struct {
	const char	*cmd;
	const char	*queue;
} depths[] = {
	{ "ZCARD " RQ_KEY_DELAYED,	"delayed" },
	{ "ZCARD " RQ_KEY_READY,	"ready" },
	{ "ZCARD " RQ_KEY_INFLIGHT,	"inflight" },
	{ "ZCARD " RQ_KEY_HOURS,	"hours" },
	{ "XLEN " RQ_KEY_EVENTS,	"events" },
	{ "ZCARD " RQ_KEY_ENDED,	"ended" },
};
#define NDEPTHS	(sizeof(depths) / sizeof(*depths))

int
sched_depths(struct rq_redis *r)
{
	static struct rq_metric *g[NDEPTHS];
	redisReply *rep;
	char labels[64];
	size_t i;
	int rc = 0;

	if (g[0] == NULL)
		for (i = 0; i < NDEPTHS; i++) {
			snprintf(labels, sizeof(labels), "queue=\"%s\"",
			    depths[i].queue);
			g[i] = rq_gauge("ringq_queue_depth", labels,
			    "Ids in each queue: delayed (waiting for their "
			    "time), ready, inflight (sent, not yet claimed), "
			    "hours (their hours closed: to be planned again), "
			    "events (rq:events not yet stored by "
			    "accounting), ended (ended calls Redis keeps "
			    "until their retention has passed)");
		}
	if (r->c == NULL)
		return -1;
	for (i = 0; i < NDEPTHS; i++)
		redisAppendCommand(r->c, depths[i].cmd);
	for (i = 0; i < NDEPTHS; i++) {
		if (redisGetReply(r->c, (void **)&rep) != REDIS_OK) {
			/* The link is broken (replies may be pending):
			 * close it, the next rq_redis_ready() reconnects. */
			log_warnx("redis: queue depths: %s", r->c->errstr);
			rq_redis_close(r);
			return -1;
		}
		if (rep->type == REDIS_REPLY_INTEGER)
			rq_gauge_set(g[i], (int64_t)rep->integer);
		else
			rc = -1;
		freeReplyObject(rep);
	}
	return rc;
}
