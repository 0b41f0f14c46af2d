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
#include "evout.h"
#include "log.h"
#include "util.h"

/* The loop never sleeps longer, so ack timeouts and new room are seen. */
#define DISP_POLL_MS	10

int
main(int argc, char *argv[])
{
	struct rq_config cfg;
	struct rq_evout *eo;
	struct disp d;
	uint64_t now, last_evtick = 0;
	void *zctx, *router;

	rq_daemon_start(argc, argv, "ringq-dispatcher", &cfg);
	if (rq_pidfile_write(cfg.run_dir, "ringq-dispatcher") == -1)
		fatalx("cannot write the PID file in %s", cfg.run_dir);

	if ((zctx = zmq_ctx_new()) == NULL)
		fatal("zmq_ctx_new");
	if ((router = rq_bus_socket(zctx, ZMQ_ROUTER)) == NULL)
		fatalx("zmq_socket: %s", zmq_strerror(errno));
	if (zmq_bind(router, cfg.dispatch_bind) == -1)
		fatalx("bind %s: %s", cfg.dispatch_bind, zmq_strerror(errno));
	if ((eo = rq_evout_new(zctx, cfg.events_endpoint)) == NULL)
		fatalx("cannot connect to accounting at %s",
		    cfg.events_endpoint);
	disp_init(&d, &cfg, router, eo);
	log_info("listening on %s, ack timeout %d ms, heartbeat timeout %d ms",
	    cfg.dispatch_bind, cfg.ack_timeout_ms, cfg.heartbeat_timeout_ms);

	while (!rq_stop) {
		zmq_pollitem_t pi[2] = {
			{ router, 0, ZMQ_POLLIN, 0 },
			{ NULL, rq_evout_fd(eo), ZMQ_POLLIN, 0 },
		};

		if (zmq_poll(pi, 2, DISP_POLL_MS) == -1 && errno != EINTR)
			fatalx("zmq_poll: %s", zmq_strerror(errno));
		if (pi[0].revents & ZMQ_POLLIN)
			disp_read(&d);
		if (pi[1].revents & ZMQ_POLLIN)
			rq_evout_process(eo);
		disp_tick(&d);
		disp_fill(&d);
		now = rq_mono_ms();
		if (now - last_evtick >= 100) {
			rq_evout_tick(eo);
			last_evtick = now;
		}
	}

	log_info("stopping");
	/* Exit within 2 s: half a second for acks, then the outbox. */
	disp_shutdown(&d, 500);
	disp_free(&d);
	rq_evout_free(eo, 1000);
	zmq_close(router);
	zmq_ctx_term(zctx);
	rq_pidfile_remove(cfg.run_dir, "ringq-dispatcher");
	rq_config_free(&cfg);
	return 0;
}
