/* The waiting take (see dispatcher.h): ringq.take with block_ms on a
 * Redis connection of its own, whose socket the loop polls. */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "dispatcher.h"
#include "keys.h"
#include "log.h"
#include "util.h"

#define TAKER_RETRY_MS	1000
/* An answer this much later than the wait it asked for: the link is
 * stuck. */
#define TAKER_GRACE_MS	5000

void
disp_taker_init(struct disp_taker *t, const char *host, int port)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->host, sizeof(t->host), "%s", host);
	t->port = port;
}

void
disp_taker_close(struct disp_taker *t)
{
	if (t->c != NULL)
		redisFree(t->c);
	t->c = NULL;
	t->waiting = 0;
}

/* Closes the connection, to try again in TAKER_RETRY_MS: the dispatcher
 * takes on rq:wake meanwhile. */
static void
taker_down(struct disp_taker *t, const char *why)
{
	if (!t->down_logged)
		log_warnx("redis %s:%d: waiting take: %s: jobs are taken on "
		    "rq:wake meanwhile", t->host, t->port, why);
	t->down_logged = 1;
	disp_taker_close(t);
	t->next_try_ms = rq_mono_ms() + TAKER_RETRY_MS;
}

static void
taker_lost(struct disp_taker *t, const char *what)
{
	char why[300];

	snprintf(why, sizeof(why), "%s: %s", what, rq_redis_errstr(t->c));
	taker_down(t, why);
}

void
disp_taker_refused(struct disp_taker *t, const char *err)
{
	char why[300];

	/* -LOADING, -OOM, -READONLY, the module gone: asking again at once
	 * would only get the same answer. */
	snprintf(why, sizeof(why), "refused: %s", err);
	taker_down(t, why);
}

int
disp_taker_up(struct disp_taker *t, int module)
{
	struct timeval tv = { 1, 0 };
	redisReply *rep;
	char err[300];

	if (!module) {
		/* Without our module there is no waiting take. */
		disp_taker_close(t);
		return 0;
	}
	if (t->c != NULL)
		return 1;
	if (rq_mono_ms() < t->next_try_ms)
		return 0;
	t->next_try_ms = rq_mono_ms() + TAKER_RETRY_MS;
	if ((t->c = rq_redis_open(t->host, t->port, tv, err,
	    sizeof(err))) == NULL) {
		taker_down(t, err);
		return 0;
	}
	/* Its id, for CLIENT UNBLOCK at shutdown. */
	if ((rep = redisCommand(t->c, "CLIENT ID")) == NULL ||
	    rep->type != REDIS_REPLY_INTEGER) {
		if (rep != NULL)
			freeReplyObject(rep);
		taker_lost(t, "CLIENT ID");
		return 0;
	}
	t->id = rep->integer;
	freeReplyObject(rep);
	return 1;
}

void
disp_taker_answered(struct disp_taker *t)
{
	/* Not on connecting: a Redis still loading its AOF accepts the
	 * connection, then refuses every take. */
	if (t->down_logged)
		log_info("redis %s:%d: waiting take back", t->host, t->port);
	t->down_logged = 0;
}

int
disp_taker_fd(const struct disp_taker *t)
{
	return t->c != NULL && t->waiting ? t->c->fd : -1;
}

int
disp_taker_send(struct disp_taker *t, uint64_t lease_ms, size_t want,
    int block_ms)
{
	char lease[32], count[32], block[32];
	const char *argv[9] = { "ringq.take", "3", RQ_KEY_READY,
	    RQ_KEY_INFLIGHT, RQ_KEY_HOURS, lease, RQ_KEY_JOB, count, block };
	int done = 0;

	snprintf(lease, sizeof(lease), "%llu", (unsigned long long)lease_ms);
	snprintf(count, sizeof(count), "%zu", want);
	snprintf(block, sizeof(block), "%d", block_ms);
	if (redisAppendCommandArgv(t->c, 9, argv, NULL) != REDIS_OK) {
		taker_lost(t, "send");
		return -1;
	}
	while (!done)
		if (redisBufferWrite(t->c, &done) != REDIS_OK) {
			taker_lost(t, "send");
			return -1;
		}
	t->waiting = 1;
	t->want = want;
	t->deadline_ms = rq_mono_ms() + (uint64_t)block_ms + TAKER_GRACE_MS;
	return 0;
}

int
disp_taker_read(struct disp_taker *t, redisReply **rep)
{
	void *r = NULL;

	*rep = NULL;
	if (t->c == NULL || !t->waiting)
		return 0;
	if (redisBufferRead(t->c) != REDIS_OK ||
	    redisGetReplyFromReader(t->c, &r) != REDIS_OK) {
		taker_lost(t, "read");
		return -1;
	}
	if (r == NULL)
		return 0;
	t->waiting = 0;
	*rep = r;
	return 1;
}

int
disp_taker_stuck(struct disp_taker *t, uint64_t now)
{
	if (t->c == NULL || !t->waiting || now < t->deadline_ms)
		return 0;
	/* Whatever it took comes back when its lease ends. */
	taker_lost(t, "no answer in time");
	return 1;
}
