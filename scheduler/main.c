/* ringq-scheduler: every tick, moves due jobs and expired dispatch leases to
 * rq:ready (release.c) and reports them to accounting. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <zmq.h>

#include "config.h"
#include "daemon.h"
#include "evout.h"
#include "log.h"
#include "scheduler.h"
#include "util.h"

int
main(int argc, char *argv[])
{
	static struct rq_script *scripts[] = { &sched_release_script };
	struct rq_config cfg;
	struct rq_redis redis;
	struct rq_evout *eo;
	uint64_t next_tick, last_evtick = 0, now;
	int full = 0;
	void *zctx;

	rq_daemon_start(argc, argv, "ringq-scheduler", &cfg);
	if (rq_pidfile_write(cfg.run_dir, "ringq-scheduler") == -1)
		fatalx("cannot write the PID file in %s", cfg.run_dir);

	if ((zctx = zmq_ctx_new()) == NULL)
		fatal("zmq_ctx_new");
	if ((eo = rq_evout_new(zctx, cfg.events_endpoint)) == NULL)
		fatalx("cannot connect to accounting at %s",
		    cfg.events_endpoint);
	rq_redis_init(&redis, cfg.redis_host, cfg.redis_port, scripts, 1);
	log_info("started: tick %d ms, batch %d", cfg.sched_tick_ms,
	    cfg.sched_batch);

	next_tick = rq_mono_ms();
	while (!rq_stop) {
		zmq_pollitem_t pi = { NULL, rq_evout_fd(eo), ZMQ_POLLIN, 0 };
		long timeout;

		now = rq_mono_ms();
		if (full || now >= next_tick) {
			if (!full)
				next_tick = now + cfg.sched_tick_ms;
			full = 0;
			if (rq_redis_ready(&redis) == 0)
				full = sched_release(&redis, eo, rq_now_ms(),
				    cfg.sched_batch, NULL) == 1;
		}
		if (now - last_evtick >= 100) {
			rq_evout_tick(eo);
			last_evtick = now;
		}
		now = rq_mono_ms();
		/* A full batch runs again at once; else sleep to the tick. */
		timeout = full ? 0 : (next_tick > now ? (long)(next_tick - now) : 0);
		if (zmq_poll(&pi, 1, timeout) > 0)
			rq_evout_process(eo);
	}

	log_info("stopping");
	rq_evout_free(eo, 2000);
	rq_redis_close(&redis);
	zmq_ctx_term(zctx);
	rq_pidfile_remove(cfg.run_dir, "ringq-scheduler");
	rq_config_free(&cfg);
	return 0;
}
