/* The rq:wake subscription: a second Redis connection (a subscribed one can
 * run nothing else) whose socket sits in the dispatcher's zmq_poll set, so
 * that jobs put in rq:ready are taken at once.  Lost messages only cost the
 * safety poll's delay (DISP_SAFETY_POLL_MS). */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "dispatcher.h"
#include "keys.h"
#include "log.h"
#include "redis_sync.h"
#include "util.h"

#define DISP_WAKE_RETRY_MS	1000

void
disp_wake_init(struct disp_wake *w, const char *host, int port)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->host, sizeof(w->host), "%s", host);
	w->port = port;
}

void
disp_wake_close(struct disp_wake *w)
{
	if (w->c != NULL)
		redisFree(w->c);
	w->c = NULL;
}

static void
wake_lost(struct disp_wake *w, const char *what)
{
	if (!w->down_logged)
		log_warnx("redis %s:%d: rq:wake subscription: %s: %s", w->host,
		    w->port, what, w->c != NULL && w->c->errstr[0] ?
		    w->c->errstr : "connection lost");
	w->down_logged = 1;
	disp_wake_close(w);
	w->next_try_ms = rq_mono_ms() + DISP_WAKE_RETRY_MS;
}

int
disp_wake_fd(struct disp_wake *w, int *fresh)
{
	struct timeval tv = { 1, 0 };
	redisReply *rep;
	char err[300];

	*fresh = 0;
	if (w->c != NULL)
		return w->c->fd;
	if (rq_mono_ms() < w->next_try_ms)
		return -1;
	w->next_try_ms = rq_mono_ms() + DISP_WAKE_RETRY_MS;
	w->c = rq_redis_connect(w->host, w->port, tv);
	if (w->c == NULL || w->c->err) {
		wake_lost(w, "connect");
		return -1;
	}
	redisSetTimeout(w->c, tv);
	if (rq_redis_auth(w->c, err, sizeof(err)) == -1) {
		wake_lost(w, err);
		return -1;
	}
	rep = redisCommand(w->c, "SUBSCRIBE %s", RQ_CHANNEL_WAKE);
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
		if (rq_redis_noauth(rep, err, sizeof(err)))
			wake_lost(w, err);
		else
			wake_lost(w, "SUBSCRIBE");
		if (rep != NULL)
			freeReplyObject(rep);
		return -1;
	}
	freeReplyObject(rep);
	if (w->down_logged)
		log_info("redis %s:%d: rq:wake subscription back", w->host,
		    w->port);
	w->down_logged = 0;
	*fresh = 1;
	return w->c->fd;
}

int
disp_wake_read(struct disp_wake *w)
{
	void *rep;
	int got = 0;

	if (w->c == NULL)
		return -1;
	/* Called when poll says the socket is readable: this read does not
	 * block, and EOF or an error means the connection is gone. */
	if (redisBufferRead(w->c) != REDIS_OK) {
		wake_lost(w, "read");
		return -1;
	}
	for (;;) {
		rep = NULL;
		if (redisGetReplyFromReader(w->c, &rep) != REDIS_OK) {
			wake_lost(w, "protocol error");
			return -1;
		}
		if (rep == NULL)
			break;
		/* Any message on the channel means "take now". */
		got = 1;
		freeReplyObject(rep);
	}
	return got;
}
