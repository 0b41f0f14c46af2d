/* A Redis pub/sub subscription (see sub.h). */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "log.h"
#include "redis_sync.h"
#include "sub.h"
#include "util.h"

#define RQ_SUB_RETRY_MS	1000

void
rq_sub_init(struct rq_sub *w, const char *host, int port,
    const char *channel)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->host, sizeof(w->host), "%s", host);
	w->port = port;
	snprintf(w->channel, sizeof(w->channel), "%s", channel);
}

void
rq_sub_close(struct rq_sub *w)
{
	if (w->c != NULL)
		redisFree(w->c);
	w->c = NULL;
}

static void
sub_down(struct rq_sub *w, const char *why)
{
	if (!w->down_logged)
		log_warnx("redis %s:%d: %s subscription: %s", w->host,
		    w->port, w->channel, why);
	w->down_logged = 1;
	rq_sub_close(w);
	w->next_try_ms = rq_mono_ms() + RQ_SUB_RETRY_MS;
}

static void
sub_lost(struct rq_sub *w, const char *what)
{
	char why[300];

	snprintf(why, sizeof(why), "%s: %s", what, rq_redis_errstr(w->c));
	sub_down(w, why);
}

int
rq_sub_fd(struct rq_sub *w, int *fresh)
{
	struct timeval tv = { 1, 0 };
	redisReply *rep;
	char err[300];

	*fresh = 0;
	if (w->c != NULL)
		return w->c->fd;
	if (rq_mono_ms() < w->next_try_ms)
		return -1;
	w->next_try_ms = rq_mono_ms() + RQ_SUB_RETRY_MS;
	if ((w->c = rq_redis_open(w->host, w->port, tv, err,
	    sizeof(err))) == NULL) {
		sub_down(w, err);
		return -1;
	}
	rep = redisCommand(w->c, "SUBSCRIBE %s", w->channel);
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
		if (rq_redis_noauth(rep, err, sizeof(err)))
			sub_down(w, err);	/* the link is fine */
		else
			sub_lost(w, "SUBSCRIBE");
		if (rep != NULL)
			freeReplyObject(rep);
		return -1;
	}
	freeReplyObject(rep);
	if (w->down_logged)
		log_info("redis %s:%d: %s subscription back", w->host,
		    w->port, w->channel);
	w->down_logged = 0;
	*fresh = 1;
	return w->c->fd;
}

int
rq_sub_read(struct rq_sub *w)
{
	void *rep;
	int got = 0;

	if (w->c == NULL)
		return -1;
	/* Called when poll says the socket is readable: this read does not
	 * block, and EOF or an error means the connection is gone. */
	if (redisBufferRead(w->c) != REDIS_OK) {
		sub_lost(w, "read");
		return -1;
	}
	for (;;) {
		rep = NULL;
		if (redisGetReplyFromReader(w->c, &rep) != REDIS_OK) {
			sub_lost(w, "protocol error");
			return -1;
		}
		if (rep == NULL)
			break;
		/* Any message on the channel means "act now". */
		got = 1;
		freeReplyObject(rep);
	}
	return got;
}
