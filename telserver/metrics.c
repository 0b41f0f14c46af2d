/* The telserver's Prometheus metrics (docs/metrics.md): calls started and
 * ended, active calls, capacity, state, JOBs refused, events accounting has
 * not acknowledged yet, and the RTP send-interval jitter.  Updated on the
 * Sofia thread; the metrics thread only reads the atomics. */
#include <stdio.h>
#include <string.h>

#include "metrics.h"
#include "status.h"
#include "telserver.h"

static struct rq_metric	*m_active, *m_capacity, *m_started, *m_state[3];
static struct rq_metric	*m_jit50, *m_jit99, *m_jitmax, *m_events, *m_held;
static const char	*states[] = { "up", "draining", "drained" };

void
tel_metrics_init(struct tel_ctx *ctx)
{
	char labels[64];
	size_t i;

	m_active = rq_gauge("ringq_telserver_active_calls", "",
	    "Calls in progress (claimed attempts: dialling or talking)");
	m_held = rq_gauge("ringq_telserver_calls_held", "",
	    "Calls in memory: in progress, or ended until their BYE or "
	    "CANCEL is answered and their application stopped");
	m_events = rq_gauge("ringq_telserver_events_unacknowledged", "",
	    "Ringing and answered events sent to accounting and not "
	    "acknowledged yet (kept up to 200000)");
	m_capacity = rq_gauge("ringq_telserver_capacity", "",
	    "Most calls at once ([telserver] capacity)");
	m_started = rq_counter("ringq_telserver_calls_started_total", "",
	    "Attempts claimed and started");
	for (i = 0; i < 3; i++) {
		snprintf(labels, sizeof(labels), "state=\"%s\"", states[i]);
		m_state[i] = rq_gauge("ringq_telserver_state", labels,
		    "1 for the state rq:tel:<node> shows (up, draining, "
		    "drained), else 0");
	}
	/* a summary's quantiles as gauges: the histogram lives in media.c */
	m_jit50 = rq_gauge("ringq_telserver_rtp_send_jitter_us",
	    "quantile=\"0.5\"", "How far the time between two RTP packets of "
	    "one stream strayed from 20 ms, since start (microseconds; "
	    "quantile 1 is the largest)");
	m_jit99 = rq_gauge("ringq_telserver_rtp_send_jitter_us",
	    "quantile=\"0.99\"", NULL);
	m_jitmax = rq_gauge("ringq_telserver_rtp_send_jitter_us",
	    "quantile=\"1\"", NULL);
	rq_gauge_set(m_capacity, ctx->cfg->capacity);
}

void
tel_metric_started(struct tel_ctx *ctx)
{
	rq_metric_inc(m_started);
	rq_gauge_set(m_active, ctx->active);
}

void
tel_metric_ended(struct tel_ctx *ctx, enum rq_status st, const char *reason)
{
	char labels[128];

	/* Both words come from status.h, never from the network. */
	snprintf(labels, sizeof(labels), "status=\"%s\",reason=\"%s\"",
	    rq_status_name(st), reason != NULL ? reason : "");
	rq_metric_inc(rq_counter("ringq_telserver_calls_ended_total", labels,
	    "Attempts ended, by status and reason"));
	rq_gauge_set(m_active, ctx->active);
}

void
tel_metric_refused(const char *reason)
{
	char labels[64];

	snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
	rq_metric_inc(rq_counter("ringq_telserver_jobs_refused_total", labels,
	    "JOBs answered with a NACK, by reason (draining, full, redis, "
	    "stale, invalid)"));
}

void
tel_metric_inbound(int status)
{
	char labels[32];

	snprintf(labels, sizeof(labels), "status=\"%d\"", status);
	rq_metric_inc(rq_counter("ringq_telserver_inbound_calls_total", labels,
	    "Incoming INVITEs, by the final status we answered (200 taken; "
	    "404 no such number, 503 refused, 488 no codec of ours)"));
}

void
tel_metrics_tick(struct tel_ctx *ctx)
{
	const char *s = tel_life_state(ctx);
	size_t i;

	for (i = 0; i < 3; i++)
		rq_gauge_set(m_state[i], s != NULL && !strcmp(s, states[i]));
	rq_gauge_set(m_active, ctx->active);
	rq_gauge_set(m_held, ctx->calls_held);
	if (ctx->eo != NULL)
		rq_gauge_set(m_events, (int64_t)rq_evout_pending(ctx->eo));
	if (ctx->media != NULL) {
		const struct tel_jitter *j = tel_media_jitter(ctx->media);

		rq_gauge_set(m_jit50, (int64_t)tel_jitter_percentile(j, 50));
		rq_gauge_set(m_jit99, (int64_t)tel_jitter_percentile(j, 99));
		rq_gauge_set(m_jitmax, (int64_t)j->max_us);
	}
}
