/* ringq-scheduler: every tick (or at the next due time, when sooner, or
 * at once when the gateway announces a job due now on rq:due), moves due
 * jobs and expired dispatch leases to rq:ready (release.c); about once a
 * second ends the calls of telservers that died (nodes.c); deletes the
 * ended calls whose retention passed (ended.c) and takes the calls that
 * left Redis another way out of the tenants' lists (lists.c). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "keys.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "scheduler.h"
#include "sub.h"
#include "util.h"

#define SCHED_SWEEP_MS	1000
#define SCHED_DUE_GAP_MS	2	/* between runs that rq:due asks for */

/* docs/metrics.md */
static struct rq_metric	*m_released, *m_dropped, *m_expired, *m_reclaimed,
			*m_deferred, *m_interrupted, *m_deleted;

static void
metrics_register(void)
{
	const char *h = "Jobs the scheduler moved: released (delayed -> "
	    "ready), expired (past not_after: at release, or waiting), "
	    "reclaimed (expired dispatch lease -> ready), dropped (delayed id "
	    "of a vanished or ended job), deferred (its hours closed while it "
	    "waited: delayed to their next opening)";

	m_released = rq_counter("ringq_scheduler_jobs_total",
	    "action=\"released\"", h);
	m_expired = rq_counter("ringq_scheduler_jobs_total",
	    "action=\"expired\"", h);
	m_reclaimed = rq_counter("ringq_scheduler_jobs_total",
	    "action=\"reclaimed\"", h);
	m_dropped = rq_counter("ringq_scheduler_jobs_total",
	    "action=\"dropped\"", h);
	m_deferred = rq_counter("ringq_scheduler_jobs_total",
	    "action=\"deferred\"", h);
	m_interrupted = rq_counter("ringq_scheduler_interrupted_total", "",
	    "Attempts of dead telservers ended as interrupted");
	m_deleted = rq_counter("ringq_scheduler_calls_deleted_total", "",
	    "Ended calls deleted from Redis, their retention passed");
}

int
main(int argc, char *argv[])
{
	static struct rq_script *scripts[] = { &sched_release_script,
	    &sched_dead_script, &rq_finish_script, &rq_interrupt_script,
	    &sched_lists_script, &sched_ended_script, &sched_deadlines_script,
	    &sched_hours_list_script, &sched_hours_plan_script };
	struct rq_config cfg;
	struct rq_redis redis;
	struct sched_nodes dead = { 0 };
	struct sched_lists lists = { 0 };
	struct sched_stats st;
	struct rq_metrics_server *ms;
	struct rq_sub due;
	struct pollfd pfd;
	uint64_t next_tick, next_sweep, next_lists, now, wall, next_due;
	int dfull;
	uint64_t wake, last_run = 0;
	uint64_t soon;
	long timeout;
	long deleted;
	int full = 0, fresh, announced, rc, rc2;

	rq_daemon_start(argc, argv, "ringq-scheduler", &cfg);
	rq_redis_set_password(cfg.redis_password);
	if (rq_pidfile_write(cfg.run_dir, "ringq-scheduler") == -1)
		fatalx("cannot write the PID file in %s", cfg.run_dir);
	rq_redis_init(&redis, cfg.redis_host, cfg.redis_port, scripts,
	    sizeof(scripts) / sizeof(*scripts));
	rq_sub_init(&due, cfg.redis_host, cfg.redis_port, RQ_CHANNEL_DUE);
	metrics_register();
	ms = rq_metrics_start(cfg.sched_metrics_listen);
	log_info("started: tick %d ms, batch %d", cfg.sched_tick_ms,
	    cfg.sched_batch);

	next_tick = next_sweep = next_lists = rq_mono_ms();
	while (!rq_stop) {
		now = rq_mono_ms();
		if (full || now >= next_tick) {
			/* From now on every run: next_tick is never left in
			 * the past (a full batch runs again at once anyway). */
			next_tick = now + (uint64_t)cfg.sched_tick_ms;
			last_run = now;
			full = 0;
			memset(&st, 0, sizeof(st));
			if (rq_redis_ready(&redis) == -1 ||
			    (rc = sched_release(&redis, rq_now_ms(),
			    cfg.sched_batch, &st, &next_due)) == -1) {
				rq_metric_error("redis");
				/* Redis down or the link lost: the dead-node
				 * grace starts again once a sweep gets
				 * through. */
				if (redis.c == NULL)
					sched_nodes_forget(&dead);
			} else {
				/* Really serving: Redis answered. */
				rq_daemon_ready();
				rq_metric_add(m_released, st.released);
				rq_metric_add(m_expired, st.expired);
				rq_metric_add(m_reclaimed, st.reclaimed);
				rq_metric_add(m_dropped, st.dropped);
				full = rc == 1;
				if ((rc = sched_deadlines(&redis, rq_now_ms(),
				    cfg.sched_batch, &dfull)) == -1)
					rq_metric_error("redis");
				else {
					rq_metric_add(m_expired, (uint64_t)rc);
					full |= dfull;
				}
				if ((rc = sched_hours(&redis, rq_now_ms(),
				    cfg.sched_batch, &dfull)) == -1)
					rq_metric_error("redis");
				else {
					rq_metric_add(m_deferred, (uint64_t)rc);
					full |= dfull;
				}
				/* Wake up at the next due time when it comes
				 * before the tick: a job is released on time,
				 * not up to a tick late. */
				wall = rq_now_ms();
				if (next_due != 0 && next_due <= wall)
					next_tick = now + 1;
				else if (next_due != 0 && next_due - wall <
				    (uint64_t)cfg.sched_tick_ms)
					next_tick = now + (next_due - wall);
			}
		}
		if (now >= next_sweep) {
			next_sweep = now + SCHED_SWEEP_MS;
			if (rq_redis_ready(&redis) == 0) {
				if ((rc = sched_sweep(&redis, &dead, now)) > 0)
					rq_metric_add(m_interrupted,
					    (uint64_t)rc);
				if (rc == -1 || sched_depths(&redis) == -1)
					rq_metric_error("redis");
			} else
				sched_nodes_forget(&dead);
		}
		if (now >= next_lists) {
			/* (Redis down: the release counts that error.) */
			deleted = 0;
			rc = rq_redis_ready(&redis) == 0 ?
			    sched_ended(&redis, &deleted) : 0;
			if (deleted > 0)
				rq_metric_add(m_deleted, (uint64_t)deleted);
			rc2 = rq_redis_ready(&redis) == 0 ?
			    sched_lists(&redis, &cfg, &lists, now) : 0;
			if (rc == -1 || rc2 == -1)
				rq_metric_error("redis");
			next_lists = now + (rc == 1 || rc2 == 1 ?
			    SCHED_LISTS_BEHIND_MS : SCHED_LISTS_MS);
		}
		now = rq_mono_ms();
		if (full)
			timeout = 0;
		else {
			wake = next_tick;
			if (next_sweep < wake)
				wake = next_sweep;
			if (next_lists < wake)
				wake = next_lists;
			timeout = wake > now ? (long)(wake - now) : 0;
		}
		/* Announcements share a run at most SCHED_DUE_GAP_MS after the
		 * last one: cheaper for Redis than a run each, and none waits
		 * longer than the gap.  While such a run is planned anyway
		 * the socket is not watched: the announcements wait in it
		 * and are read together, instead of waking us one by one. */
		soon = last_run + SCHED_DUE_GAP_MS;
		pfd.fd = rq_sub_fd(&due, &fresh);
		pfd.events = POLLIN;
		pfd.revents = 0;
		/* A (re)subscription may have missed messages: release soon. */
		announced = fresh;
		if (!fresh && timeout > 0)
			announced = poll(&pfd, pfd.fd != -1 && next_tick > soon,
			    (int)timeout) > 0 && rq_sub_read(&due) == 1;
		if (announced && soon < next_tick)
			next_tick = soon;
	}

	log_info("stopping");
	rq_daemon_stopping();
	rq_metrics_stop(ms);
	rq_sub_close(&due);
	rq_redis_close(&redis);
	sched_nodes_free(&dead);
	sched_lists_free(&lists);
	rq_pidfile_remove(cfg.run_dir, "ringq-scheduler");
	rq_config_free(&cfg);
	return 0;
}
