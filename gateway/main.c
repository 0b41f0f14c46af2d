/* ringq-gateway: the HTTP API that turns requests into queued calls.
 * This file reads arguments and the config, and runs the event loop. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>
#include <zmq.h>

#include "config.h"
#include "daemon.h"
#include "evout.h"
#include "gateway.h"
#include "log.h"
#include "util.h"

#define EVOUT_TICK_MS	100

static void
on_signal(evutil_socket_t sig, short ev, void *arg)
{
	log_info("signal %d: stopping", (int)sig);
	event_base_loopbreak(arg);
}

static void
on_evout_fd(evutil_socket_t fd, short ev, void *arg)
{
	rq_evout_process(arg);
}

static void
on_evout_tick(evutil_socket_t fd, short ev, void *arg)
{
	rq_evout_tick(arg);
}

int
main(int argc, char *argv[])
{
	struct rq_config cfg;
	struct event_base *base;
	struct event *sigterm, *sigint, *eo_ev, *eo_timer;
	struct timeval tick = { 0, EVOUT_TICK_MS * 1000 };
	struct timeval flush = { 0, 300 * 1000 };
	struct rq_evout *eo;
	struct gw_store *st;
	struct gw_intake *in;
	struct gw_http *h;
	struct gw_smtp *sm;
	void *zctx;

	rq_daemon_start(argc, argv, "ringq-gateway", &cfg);

	if ((base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	sigint = evsignal_new(base, SIGINT, on_signal, base);
	if (sigterm == NULL || sigint == NULL || evsignal_add(sigterm, NULL) ||
	    evsignal_add(sigint, NULL))
		fatalx("cannot install signal events");

	if ((zctx = zmq_ctx_new()) == NULL)
		fatal("zmq_ctx_new");
	if ((eo = rq_evout_new(zctx, cfg.events_endpoint)) == NULL)
		fatalx("cannot open the event outbox to %s",
		    cfg.events_endpoint);
	eo_ev = event_new(base, rq_evout_fd(eo), EV_READ | EV_PERSIST,
	    on_evout_fd, eo);
	eo_timer = event_new(base, -1, EV_PERSIST, on_evout_tick, eo);
	if (eo_ev == NULL || eo_timer == NULL || event_add(eo_ev, NULL) ||
	    event_add(eo_timer, &tick))
		fatalx("cannot watch the event outbox");

	if ((st = gw_store_new(base, cfg.redis_host, cfg.redis_port)) == NULL)
		fatalx("cannot set up the Redis connection");
	if ((in = gw_intake_new(&cfg, st, eo)) == NULL)
		fatalx("out of memory");
	if ((h = gw_http_new(base, &cfg, st, in)) == NULL)
		fatalx("cannot start the HTTP server");
	if ((sm = gw_smtp_new(base, &cfg, in)) == NULL)
		fatalx("cannot start the SMTP server");
	if (rq_pidfile_write(cfg.run_dir, "ringq-gateway") == -1)
		fatalx("cannot write the PID file in %s", cfg.run_dir);
	log_info("ringq-gateway started");

	event_base_dispatch(base);

	/* Take no more connections, answer the requests waiting for Redis
	 * (503), and give those answers a moment to leave. */
	gw_http_close(h);
	gw_smtp_close(sm);
	gw_store_close(st);
	event_base_loopexit(base, &flush);
	event_base_dispatch(base);
	gw_http_free(h);
	gw_smtp_free(sm);
	gw_intake_free(in);
	gw_store_free(st);
	event_free(eo_ev);
	event_free(eo_timer);
	rq_evout_free(eo, 1000);
	zmq_ctx_term(zctx);
	event_free(sigterm);
	event_free(sigint);
	event_base_free(base);
	rq_pidfile_remove(cfg.run_dir, "ringq-gateway");
	rq_config_free(&cfg);
	log_info("ringq-gateway stopped");
	return 0;
}
