/* ringq-dispatcher: hands ready jobs to the live telserver chosen by
 * load-biased random choice, and waits for each one's acknowledgement. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <zmq.h>

#include "config.h"
#include "daemon.h"
#include "dispatcher.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

/* The loop never sleeps longer, so ack timeouts and new room are seen;
 * Redis is not polled this often (DISP_SAFETY_POLL_MS when idle). */
#define DISP_POLL_MS	10

int
main(int argc, char *argv[])
{
	struct rq_config cfg;
	struct disp d;
	void *zctx, *router;
	char errbuf[256];
	int fresh, ready = 0;
	struct rq_metrics_server *ms;

	rq_daemon_start(argc, argv, "ringq-dispatcher", &cfg);
	rq_redis_set_password(cfg.redis_password);
	if (rq_pidfile_write(cfg.run_dir, "ringq-dispatcher") == -1)
		fatalx("cannot write the PID file in %s", cfg.run_dir);

	if ((zctx = zmq_ctx_new()) == NULL)
		fatal("zmq_ctx_new");
	if (rq_bus_secure(zctx, &cfg, errbuf, sizeof(errbuf)) == -1)
		fatalx("CURVE: %s", errbuf);
	if ((router = rq_bus_socket(zctx, ZMQ_ROUTER)) == NULL)
		fatalx("zmq_socket: %s", zmq_strerror(errno));
	rq_bus_heartbeats(router);
	if (zmq_bind(router, cfg.dispatch_bind) == -1)
		fatalx("bind %s: %s", cfg.dispatch_bind, zmq_strerror(errno));
	disp_init(&d, &cfg, router);
	ms = rq_metrics_start(cfg.disp_metrics_listen);
	log_info("listening on %s, ack timeout %d ms, heartbeat timeout %d ms",
	    cfg.dispatch_bind, cfg.ack_timeout_ms, cfg.heartbeat_timeout_ms);

	while (!rq_stop) {
		zmq_pollitem_t pi[2] = {
			{ router, 0, ZMQ_POLLIN, 0 },
			{ NULL, -1, ZMQ_POLLIN, 0 },
		};
		enum { POLL_NONE, POLL_TAKER, POLL_WAKE } second;

		second = POLL_NONE;
		/* A take that waits is read whatever the main link does:
		 * Redis may have answered it with jobs. */
		if ((pi[1].fd = disp_taker_fd(&d.taker)) != -1)
			second = POLL_TAKER;
		else if (disp_waiting_take(&d))
			/* Jobs come with the take's answers: no rq:wake. */
			rq_sub_close(&d.wake);
		else if ((pi[1].fd = rq_sub_fd(&d.wake, &fresh)) != -1) {
			/* A (re)subscription may have missed messages: take
			 * now. */
			if (fresh)
				d.idle = 0;
			second = POLL_WAKE;
		}
		if (zmq_poll(pi, second == POLL_NONE ? 1 : 2, DISP_POLL_MS) ==
		    -1 && errno != EINTR)
			fatalx("zmq_poll: %s", zmq_strerror(errno));
		if (pi[0].revents & ZMQ_POLLIN)
			disp_read(&d);
		if (pi[1].revents & (ZMQ_POLLIN | ZMQ_POLLERR)) {
			if (second == POLL_TAKER)
				disp_taken(&d);
			else if (second == POLL_WAKE &&
			    rq_sub_read(&d.wake) == 1)
				d.idle = 0;
		}
		disp_tick(&d);
		disp_fill(&d);
		/* Bound, and Redis answered: tell systemd (once). */
		if (!ready && rq_redis_ready(&d.redis) == 0) {
			rq_daemon_ready();
			ready = 1;
		}
	}

	log_info("stopping");
	rq_daemon_stopping();
	/* Exit within 2 s: half a second for acks, then requeue the rest. */
	disp_shutdown(&d, 500);
	rq_metrics_stop(ms);
	disp_free(&d);
	zmq_close(router);
	zmq_ctx_term(zctx);
	rq_pidfile_remove(cfg.run_dir, "ringq-dispatcher");
	rq_config_free(&cfg);
	return 0;
}
