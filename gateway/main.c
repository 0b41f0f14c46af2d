/* ringq-gateway: the HTTP API that turns requests into queued calls.
 * This file reads arguments and the config, and runs the event loop. */
#include <sys/resource.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "daemon.h"
#include "gateway.h"
#include "log.h"
#include "redis_sync.h"
#include "util.h"

/* The log lines of a round of the event loop go out in one write: an
 * active event runs after the callbacks already due in that round. */
static void
log_wake(void *arg)
{
	event_active(arg, EV_TIMEOUT, 0);
}

static void
on_log_flush(evutil_socket_t fd, short ev, void *arg)
{
	log_flush();
}

static void
on_signal(evutil_socket_t sig, short ev, void *arg)
{
	log_info("signal %d: stopping", (int)sig);
	rq_daemon_stopping();
	event_base_loopbreak(arg);
}

/* At a stop, the answers of the commands Redis has already are waited for
 * this long at most: a request it stored gets its 202 (or 250), not a
 * "may or may not be queued" 503 (or 451) that a client without an
 * idempotency key would retry, placing a second call. */
#define GW_STOP_WAIT_MS	3000

struct stop_wait {
	struct event_base	*base;
	struct gw_store		*st;
	uint64_t		 until;
};

static void
on_stop_wait(evutil_socket_t fd, short ev, void *arg)
{
	struct stop_wait *w = arg;

	if (!gw_store_waiting(w->st) || rq_mono_ms() >= w->until)
		event_base_loopbreak(w->base);
}

/* Each client takes a file descriptor: the soft limit (often 1024) is
 * raised to the hard one, so that the connection caps ([smtp]
 * max_clients, ...) and not the limit decide who is turned away.  At the
 * limit, the listeners pause (accept_guard.c). */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			log_warn("cannot raise the file descriptor limit");
		else if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
			return;
	}
	log_info("file descriptor limit %llu", (unsigned long long)rl.rlim_cur);
}

int
main(int argc, char *argv[])
{
	struct rq_config cfg;
	struct event_config *ecfg;
	struct event_base *base;
	struct event *sigterm, *sigint, *logflush, *waiting;
	struct timeval flush = { 0, 300 * 1000 }, tick = { 0, 20 * 1000 };
	struct stop_wait w;
	struct gw_store *st;
	struct gw_intake *in;
	struct gw_http *h;
	struct gw_smtp *sm;

	rq_daemon_start_checked(argc, argv, "ringq-gateway", &cfg,
	    gw_smtp_check);
	rq_redis_set_password(cfg.redis_password);
	raise_fd_limit();

	/* With epoll, the changelist folds the add/delete/add of an fd's
	 * events within one loop iteration (evhttp re-arms its connections'
	 * events on every request) into at most one epoll_ctl.  Its caveat,
	 * dup()ed fds sharing one open file, does not arise here. */
	if ((ecfg = event_config_new()) == NULL ||
	    event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST))
		fatalx("event_config_new failed");
	if ((base = event_base_new_with_config(ecfg)) == NULL)
		fatalx("event_base_new failed");
	event_config_free(ecfg);
	sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	sigint = evsignal_new(base, SIGINT, on_signal, base);
	if (sigterm == NULL || sigint == NULL || evsignal_add(sigterm, NULL) ||
	    evsignal_add(sigint, NULL))
		fatalx("cannot install signal events");
	if ((logflush = event_new(base, -1, 0, on_log_flush, NULL)) == NULL)
		fatalx("out of memory");
	log_defer(log_wake, logflush);

	if ((st = gw_store_new(base, cfg.redis_host, cfg.redis_port)) == NULL)
		fatalx("cannot set up the Redis connection");
	if ((in = gw_intake_new(&cfg, st)) == NULL)
		fatalx("out of memory");
	if ((h = gw_http_new(base, &cfg, st, in)) == NULL)
		fatalx("cannot start the HTTP server");
	if ((sm = gw_smtp_new(base, &cfg, in)) == NULL)
		fatalx("cannot start the SMTP server");
	if (rq_pidfile_write(cfg.run_dir, "ringq-gateway") == -1)
		fatalx("cannot write the PID file in %s", cfg.run_dir);
	log_info("ringq-gateway started");
	/* Bound: serving (503 while Redis is out of reach). */
	rq_daemon_ready();

	event_base_dispatch(base);

	/* Take no more connections, wait a little for the answers of what
	 * Redis has already, answer the requests still waiting (503), and
	 * give those answers a moment to leave. */
	gw_http_close(h);
	gw_smtp_close(sm);
	w.base = base;
	w.st = st;
	w.until = rq_mono_ms() + GW_STOP_WAIT_MS;
	if (gw_store_waiting(st) && (waiting = event_new(base, -1, EV_PERSIST,
	    on_stop_wait, &w)) != NULL) {
		log_info("waiting up to %d ms for Redis's answers",
		    GW_STOP_WAIT_MS);
		evtimer_add(waiting, &tick);
		event_base_dispatch(base);
		event_free(waiting);
	}
	gw_store_close(st);
	event_base_loopexit(base, &flush);
	event_base_dispatch(base);
	gw_http_free(h);
	gw_smtp_free(sm);
	gw_intake_free(in);
	gw_store_free(st);
	log_defer(NULL, NULL);
	event_free(logflush);
	event_free(sigterm);
	event_free(sigint);
	event_base_free(base);
	rq_pidfile_remove(cfg.run_dir, "ringq-gateway");
	rq_config_free(&cfg);
	log_info("ringq-gateway stopped");
	return 0;
}
