/* A Redis pub/sub subscription for a poll loop: a second Redis connection
 * (a subscribed one can run nothing else) whose socket the daemon polls,
 * so that it acts the moment another daemon publishes instead of at its
 * next tick.  Any message means "act now"; a lost one only costs the
 * tick's delay, so the subscription is a shortcut, never the only way.
 * The dispatcher listens on rq:wake (jobs put in rq:ready), the scheduler
 * on rq:due (a job created due now). */
#ifndef RQ_SUB_H
#define RQ_SUB_H

#include <stdint.h>

#include <hiredis/hiredis.h>

#include "config.h"

struct rq_sub {
	redisContext	*c;
	char		 host[RQ_ADDR_MAX];
	int		 port;
	char		 channel[32];
	uint64_t	 next_try_ms;	/* monotonic */
	int		 down_logged;
};

void	rq_sub_init(struct rq_sub *w, const char *host, int port,
	    const char *channel);
void	rq_sub_close(struct rq_sub *w);
/* The socket to poll for input, connecting and subscribing when it is
 * time to try; -1 while down.  *fresh is set to 1 after a (re)subscription
 * (messages may have been missed: act now). */
int	rq_sub_fd(struct rq_sub *w, int *fresh);
/* Reads what the socket holds.  Returns 1 when a message came (act now),
 * 0 when none, -1 when the connection was lost (it is retried). */
int	rq_sub_read(struct rq_sub *w);

#endif
