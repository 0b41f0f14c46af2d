/* ringq-telserver: takes call attempts from the dispatchers and places them
 * as SIP calls that speak a text.  Arguments, config, the Sofia loop,
 * signals and shutdown; the work is in call.c, sip.c, media.c, tts.c,
 * app.c (VoiceXML) and fetch.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "bus.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "telserver.h"
#include "util.h"
#include "vxml.h"

#define TICK_MS			100
#define SHUTDOWN_MAX_MS		2000
#define FINISH_FLUSH_MS		1500

static struct tel_ctx	 ctx;
static uint64_t		 shutdown_deadline;	/* monotonic, 0 = running */

static void
heartbeat(struct tel_ctx *c, su_timer_t *t, void *arg)
{
	tel_bus_heartbeat(c);
}

/* The log lines of a round of the Sofia loop go out in one write
 * (log_defer()): the first line of a batch sets a zero-delay timer, which
 * the loop runs once it has handled what woke it. */
static su_timer_t *log_timer;

static void
flush_log(struct tel_ctx *c, su_timer_t *t, void *arg)
{
	log_flush();
}

static void
log_wake(void *arg)
{
	su_timer_set_interval(log_timer, flush_log, NULL, 0);
}

/* Every TICK_MS: the outbox, a safety poll of the sockets, the liveness
 * key and the kept finishes (each once a second), and shutdown. */
static void
tick(struct tel_ctx *c, su_timer_t *t, void *arg)
{
	rq_evout_tick(c->eo);
	tel_bus_poll(c);
	tel_life_tick(c);
	tel_metrics_tick(c);
	/* Serving once our previous run's attempts are settled in Redis
	 * (and tells systemd once). */
	if (c->recovered && shutdown_deadline == 0)
		rq_daemon_ready();
	if (rq_stop && shutdown_deadline == 0) {
		log_info("shutting down: %d calls to interrupt", c->active);
		rq_daemon_stopping();
		c->draining = 1;
		tel_bus_heartbeat(c);
		tel_call_interrupt_all(c, "telserver shutting down");
		tel_sip_shutdown(c);
		shutdown_deadline = rq_mono_ms() + SHUTDOWN_MAX_MS;
	}
	if (shutdown_deadline &&
	    (c->sip_down || rq_mono_ms() >= shutdown_deadline))
		su_root_break(c->root);
}

int
main(int argc, char *argv[])
{
	struct rq_config cfg;
	int rc = 1;
	su_timer_t *hb_timer = NULL, *tick_timer = NULL;
	struct rq_metrics_server *ms = NULL;
	char errbuf[256];

	rq_daemon_start(argc, argv, "ringq-telserver", &cfg);
	rq_redis_set_password(cfg.redis_password);

	ctx.cfg = &cfg;
	su_init();
	if ((ctx.root = su_root_create(&ctx)) == NULL)
		fatalx("cannot create the Sofia loop");
	if ((log_timer = su_timer_create(su_root_task(ctx.root), 0)) != NULL)
		log_defer(log_wake, NULL);
	/* a fatal error of duktape aborts: the waiting lines first */
	vxml_set_fatal_hook(log_flush);
	if ((ctx.zctx = zmq_ctx_new()) == NULL)
		fatalx("cannot create a ZeroMQ context");
	if (rq_bus_secure(ctx.zctx, &cfg, errbuf, sizeof(errbuf)) == -1)
		fatalx("CURVE: %s", errbuf);
	tel_life_open(&ctx);
	if (tel_bus_open(&ctx) == -1)
		goto done;
	if (!cfg.dry_run) {
		if ((ctx.media = tel_media_new(&ctx, cfg.media_ip,
		    cfg.rtp_port_min, cfg.rtp_port_max)) == NULL ||
		    (ctx.tts = tel_tts_new(&ctx)) == NULL ||
		    (ctx.fetcher = tel_fetcher_new(ctx.root,
		    TEL_FETCH_CACHE_BYTES)) == NULL ||
		    tel_sip_open(&ctx) == -1)
			goto done;
		tel_fetcher_allow_addrs(ctx.fetcher, cfg.fetch_allow_loopback,
		    cfg.fetch_allow_private);
	}
	if (rq_pidfile_write(cfg.run_dir, "ringq-telserver") == -1)
		goto done;
	tel_metrics_init(&ctx);
	ms = rq_metrics_start(cfg.tel_metrics_listen);

	hb_timer = su_timer_create(su_root_task(ctx.root), cfg.heartbeat_ms);
	tick_timer = su_timer_create(su_root_task(ctx.root), TICK_MS);
	if (hb_timer == NULL || tick_timer == NULL)
		fatalx("cannot create timers");
	su_timer_set_for_ever(hb_timer, heartbeat, NULL);
	su_timer_set_for_ever(tick_timer, tick, NULL);
	/* Our attempts of a previous run end before we take new ones (until
	 * then our heartbeats say draining); then announce us. */
	tel_life_tick(&ctx);
	if (!ctx.recovered)
		log_warnx("redis unreachable: taking no jobs until it is back");
	tel_bus_heartbeat(&ctx);
	log_info("%s ready: sip %s, capacity %d%s", cfg.tel_name, cfg.sip_url,
	    cfg.capacity, cfg.dry_run ? ", dry run" : "");
	if (ctx.recovered)
		rq_daemon_ready();

	su_root_run(ctx.root);
	/* the flush timer no longer runs: lines from here on at once */
	log_defer(NULL, NULL);

	if (!cfg.dry_run && !ctx.sip_down)
		log_warnx("SIP stack did not finish its shutdown in %d ms",
		    SHUTDOWN_MAX_MS);
	/* Finishes that Redis refused so far get a last, bounded chance. */
	tel_life_close(&ctx, FINISH_FLUSH_MS);
	rq_pidfile_remove(cfg.run_dir, "ringq-telserver");
	rc = 0;
done:
	log_defer(NULL, NULL);
	if (log_timer)
		su_timer_destroy(log_timer);
	rq_metrics_stop(ms);
	if (hb_timer)
		su_timer_destroy(hb_timer);
	if (tick_timer)
		su_timer_destroy(tick_timer);
	tel_call_free_all(&ctx);
	tel_sip_close(&ctx);
	if (ctx.fetcher)
		tel_fetcher_free(ctx.fetcher);
	tel_tts_free(ctx.tts);
	tel_media_free(ctx.media);
	tel_bus_close(&ctx);
	zmq_ctx_term(ctx.zctx);
	su_root_destroy(ctx.root);
	su_deinit();
	rq_config_free(&cfg);
	log_info("exiting");
	return rc;
}
