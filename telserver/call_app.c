/* The call around its VoiceXML application (app.c): the start at answer,
 * the end, the
 * caller hanging up while it runs, and <transfer>: a second (agent) leg
 * whose audio is bridged to the customer's.  The interpreter reports from
 * inside its callbacks; what would end the call or free it waits for a
 * zero timer, so the session is never freed under its feet.  When the
 * application fails, the interpreter has the caller hear a short apology
 * before it reports its end; the call then ends failed (app_error) with
 * the event, URL and line in its detail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "e164.h"
#include "log.h"
#include "status.h"
#include "telserver.h"
#include "util.h"
#include "vxml.h"

#define XFER_CONNECT_DEFAULT_MS	30000

static void app_kick(struct tel_ctx *ctx, su_timer_t *t, void *arg);

/* Runs app_kick soon, from the loop. */
static void
app_later(struct tel_call *c)
{
	if (c->app_timer == NULL &&
	    (c->app_timer = su_timer_create(su_root_task(c->ctx->root),
	    0)) == NULL) {
		log_warnx("call %s: no timer for the application", c->id);
		return;
	}
	su_timer_reset(c->app_timer);
	su_timer_set_interval(c->app_timer, app_kick, c, 0);
}

int
tel_call_app_answered(struct tel_call *c, struct tel_leg *leg)
{
	c->app = tel_app_start(c, leg->stream, c->app_url,
	    c->local_uri ? c->local_uri : c->ctx->cfg->sip_from,
	    c->remote_uri ? c->remote_uri : c->to);
	return c->app == NULL ? -1 : 0;
}

static void
app_guard_expired(struct tel_ctx *ctx, su_timer_t *t, void *arg)
{
	struct tel_call *c = arg;

	if (c->terminal)
		return;
	log_warnx("call %s: the application still runs %d ms after the "
	    "hang-up: stopped", c->id, TEL_APP_AFTER_HANGUP_MS);
	tel_app_stop(c->app);
	tel_call_end(c, RQ_ST_COMPLETED, NULL, 0,
	    "far end hung up; the application was stopped");
	tel_call_maybe_free(c);		/* its line's handle is gone */
}

void
tel_call_app_line_gone(struct tel_call *c)
{
	if (c->terminal || !tel_app_running(c->app))
		return;
	if (c->app_guard == NULL) {
		if ((c->app_guard = su_timer_create(su_root_task(
		    c->ctx->root), 0)) != NULL)
			su_timer_set_interval(c->app_guard, app_guard_expired,
			    c, TEL_APP_AFTER_HANGUP_MS);
		log_info("call %s: far end hung up, the application is told",
		    c->id);
		tel_app_hangup(c->app);
	}
}

void
tel_call_app_done(struct tel_call *c, const struct vxml_result *res,
    const char *json)
{
	char detail[512];

	c->app_over = 1;
	c->app_how = res->how;
	free(c->app_json);
	c->app_json = json ? strdup(json) : NULL;
	if (res->how == VXML_END_ERROR) {
		if (res->line > 0)
			snprintf(detail, sizeof(detail), "%s: %s (%s line %d)",
			    res->event ? res->event : "error",
			    res->message ? res->message : "",
			    res->url ? res->url : "?", res->line);
		else
			snprintf(detail, sizeof(detail), "%s: %s (%s)",
			    res->event ? res->event : "error",
			    res->message ? res->message : "",
			    res->url ? res->url : "?");
		free(c->app_detail);
		c->app_detail = strdup(detail);
		log_warnx("call %s: the application failed: %s", c->id,
		    detail);
	} else
		log_info("call %s: the application ended (%s)", c->id,
		    res->how == VXML_END_EXIT ? "exit" :
		    res->how == VXML_END_DISCONNECT ? "disconnect" : "hangup");
	app_later(c);
}

void
tel_call_app_disconnect(struct tel_call *c)
{
	c->app_hangup = 1;
	app_later(c);
}

/* The customer's leg, when it is still up. */
static struct tel_leg *
customer_up(struct tel_call *c)
{
	struct tel_leg *leg = c->legs[TEL_LEG_CUSTOMER];

	if (leg == NULL || leg->state != TEL_LEG_ANSWERED ||
	    leg->stream == NULL)
		return NULL;
	return leg;
}

static void
app_kick(struct tel_ctx *ctx, su_timer_t *t, void *arg)
{
	struct tel_call *c = arg;
	struct tel_leg *leg;

	if (c->terminal)
		return;
	leg = customer_up(c);
	/* A blind transfer holds the call until one side hangs up. */
	if (c->app_over && c->xfer_blind && c->legs[TEL_LEG_AGENT] != NULL &&
	    c->legs[TEL_LEG_AGENT]->state == TEL_LEG_ANSWERED)
		return;
	if (c->app_hangup && !c->app_over && leg != NULL) {
		/* <disconnect>: the line goes, the application may go on. */
		tel_leg_hangup(leg);
		return;
	}
	if (!c->app_over)
		return;
	if (leg != NULL)
		tel_leg_hangup(leg);
	if (c->terminal)
		return;
	if (c->app_how == VXML_END_ERROR)
		tel_call_end(c, RQ_ST_FAILED, RQ_REASON_APP_ERROR, 0,
		    c->app_detail);
	else
		tel_call_end(c, RQ_ST_COMPLETED, NULL, 0,
		    c->app_how == VXML_END_EXIT ? "application exit" :
		    c->app_how == VXML_END_DISCONNECT ?
		    "application hung up" : "far end hung up");
	tel_call_maybe_free(c);
}

/* ---- <transfer> ---- */

static void
xfer_report(struct tel_call *c, enum vxml_transfer_outcome outcome)
{
	int duration = 0;

	if (c->xfer_reported)
		return;
	c->xfer_reported = 1;
	if (c->xfer_timer)
		su_timer_reset(c->xfer_timer);
	if (c->xfer_answered_ms)
		duration = (int)(rq_mono_ms() - c->xfer_answered_ms);
	log_info("call %s: transfer outcome %d after %d ms", c->id,
	    (int)outcome, duration);
	tel_app_transfer_done(c->app, (int)outcome, duration);
}

static void
xfer_timeout(struct tel_ctx *ctx, su_timer_t *t, void *arg)
{
	struct tel_call *c = arg;
	struct tel_leg *agent = c->legs[TEL_LEG_AGENT];

	if (agent == NULL)
		return;
	if (agent->state == TEL_LEG_ANSWERED) {
		log_info("call %s: transfer maxtime reached", c->id);
		if (agent->stream)
			tel_stream_unbridge(agent->stream);
		tel_leg_hangup(agent);
		xfer_report(c, VXML_XFER_MAXTIME_DISCONNECT);
	} else {
		log_info("call %s: transfer not answered in time", c->id);
		tel_leg_hangup(agent);
		xfer_report(c, VXML_XFER_NOANSWER);
	}
}

/* The Request-URI, proxy and From of a transfer's destination: a sip:
 * URI, or a tel: or E.164 number through the trunk. */
static int
xfer_route(struct tel_call *c, const char *dest, char *to, size_t tolen,
    const char **proxy, char *err, size_t errlen)
{
	const struct rq_config *cfg = c->ctx->cfg;
	enum rq_target_kind kind;
	const char *num = dest, *h, *e;
	size_t i;

	*proxy = NULL;
	for (i = 0; dest[i]; i++)
		if ((unsigned char)dest[i] <= ' ' || strchr("<>\"",
		    dest[i]) != NULL) {
			snprintf(err, errlen, "invalid destination");
			return -1;
		}
	if (!strncasecmp(dest, "sip:", 4)) {
		if (strchr(dest, '@') == NULL) {
			snprintf(err, errlen, "invalid SIP URI");
			return -1;
		}
		snprintf(to, tolen, "<%s>", dest);
		return 0;
	}
	if (!strncasecmp(dest, "tel:", 4))
		num = dest + 4;
	if (rq_target_parse(num, &kind, err, errlen) == -1 ||
	    kind != RQ_TARGET_E164)
		return -1;
	if (cfg->outbound_proxy[0] == '\0') {
		snprintf(err, errlen, "no trunk configured for E.164 numbers");
		return -1;
	}
	/* the trunk's host, as call.c's route does */
	h = cfg->outbound_proxy;
	if (!strncasecmp(h, "sip:", 4))
		h += 4;
	e = h + strcspn(h, ":;>");
	snprintf(to, tolen, "<sip:%s@%.*s;user=phone>", num, (int)(e - h), h);
	*proxy = cfg->outbound_proxy;
	return 0;
}

void
tel_call_app_transfer(struct tel_call *c, const struct vxml_transfer_req *req)
{
	struct tel_ctx *ctx = c->ctx;
	struct tel_leg *leg;
	char to[512], sdp[TEL_SDP_MAX], err[128];
	const char *proxy;
	int ms;

	c->xfer_reported = 0;
	c->xfer_answered_ms = 0;
	c->xfer_blind = !req->bridge;
	c->xfer_maxtime_ms = req->maxtime_ms;
	if (c->legs[TEL_LEG_AGENT] != NULL) {
		/* one transfer at a time: the last one's leg is still there */
		log_info("call %s: transfer while a transfer leg exists",
		    c->id);
		xfer_report(c, VXML_XFER_NETWORK_BUSY);
		return;
	}
	if (req->dest == NULL || xfer_route(c, req->dest, to, sizeof(to),
	    &proxy, err, sizeof(err)) == -1) {
		log_info("call %s: transfer to %s refused: %s", c->id,
		    req->dest ? req->dest : "(none)", req->dest ? err :
		    "no destination");
		xfer_report(c, VXML_XFER_UNKNOWN);
		return;
	}
	if ((leg = calloc(1, sizeof(*leg))) == NULL) {
		xfer_report(c, VXML_XFER_NETWORK_BUSY);
		return;
	}
	leg->call = c;
	leg->role = TEL_LEG_AGENT;
	c->legs[TEL_LEG_AGENT] = leg;
	if ((leg->stream = tel_stream_new(ctx->media, c->id)) == NULL ||
	    tel_sdp_offer(sdp, sizeof(sdp), ctx->cfg->media_ip,
	    tel_stream_port(leg->stream), rq_now_ms()) == -1 ||
	    (leg->sdp = strdup(sdp)) == NULL ||
	    tel_sip_invite(leg, to, c->local_uri ? c->local_uri :
	    ctx->cfg->sip_from, proxy, sdp) == -1) {
		log_warnx("call %s: cannot place the transfer leg", c->id);
		xfer_report(c, VXML_XFER_NETWORK_BUSY);
		if (leg->nh == NULL) {
			tel_stream_free(leg->stream);
			free(leg->sdp);
			free(leg);
			c->legs[TEL_LEG_AGENT] = NULL;
		}
		return;
	}
	log_info("call %s: %s transfer to %s", c->id,
	    req->bridge ? "bridge" : "blind", to);
	ms = req->connecttimeout_ms > 0 ? req->connecttimeout_ms :
	    XFER_CONNECT_DEFAULT_MS;
	if (c->xfer_timer == NULL)
		c->xfer_timer = su_timer_create(su_root_task(ctx->root), 0);
	if (c->xfer_timer != NULL)
		su_timer_set_interval(c->xfer_timer, xfer_timeout, c, ms);
}

void
tel_xfer_answered(struct tel_leg *leg, const char *sdp, size_t len)
{
	struct tel_call *c = leg->call;
	struct tel_leg *cust = customer_up(c);
	struct tel_sdp_answer ans;
	char err[128];

	if (c->terminal || c->xfer_reported || cust == NULL) {
		leg->state = TEL_LEG_ANSWERED;
		tel_leg_hangup(leg);
		return;
	}
	leg->state = TEL_LEG_ANSWERED;
	if (sdp == NULL || len == 0 ||
	    tel_sdp_parse_answer(sdp, len, &ans, err, sizeof(err)) == -1 ||
	    tel_stream_start(leg->stream, ans.addr, ans.port, ans.pt) == -1 ||
	    (tel_stream_set_dtmf_pt(leg->stream, ans.dtmf_pt), 0) ||
	    tel_stream_bridge(cust->stream, leg->stream) == -1) {
		log_warnx("call %s: transfer leg answered without usable "
		    "media", c->id);
		tel_leg_hangup(leg);
		xfer_report(c, VXML_XFER_NETWORK_BUSY);
		return;
	}
	c->xfer_answered_ms = rq_mono_ms();
	log_info("call %s: transfer answered, bridged", c->id);
	if (c->xfer_timer)
		su_timer_reset(c->xfer_timer);
	if (c->xfer_blind) {
		xfer_report(c, VXML_XFER_BLIND_OK);
		return;
	}
	if (c->xfer_maxtime_ms > 0 && c->xfer_timer != NULL)
		su_timer_set_interval(c->xfer_timer, xfer_timeout, c,
		    c->xfer_maxtime_ms);
}

void
tel_xfer_failed(struct tel_leg *leg, int status, const char *phrase)
{
	struct tel_call *c = leg->call;
	enum vxml_transfer_outcome o;

	switch (status) {
	case 486:
	case 600:
		o = VXML_XFER_BUSY;
		break;
	case 408:
	case 480:
	case 487:
		o = VXML_XFER_NOANSWER;
		break;
	case 503:
		o = VXML_XFER_NETWORK_BUSY;
		break;
	default:
		o = VXML_XFER_UNKNOWN;
		break;
	}
	log_info("call %s: transfer failed: %d %s", c->id, status,
	    phrase ? phrase : "");
	if (!c->terminal)
		xfer_report(c, o);
}

void
tel_xfer_remote_bye(struct tel_leg *leg)
{
	struct tel_call *c = leg->call;
	struct tel_leg *cust;

	if (leg->stream)
		tel_stream_unbridge(leg->stream);
	if (c->terminal)
		return;
	log_info("call %s: the transfer's far end hung up", c->id);
	if (c->xfer_blind && c->app_over) {
		/* The call was handed over: it ends with the other side. */
		if ((cust = customer_up(c)) != NULL)
			tel_leg_hangup(cust);
		if (!c->terminal)
			tel_call_end(c, RQ_ST_COMPLETED, NULL, 0,
			    "transferred; the far end hung up");
		return;
	}
	xfer_report(c, VXML_XFER_FAR_END_DISCONNECT);
}

void
tel_xfer_gone(struct tel_leg *leg)
{
	struct tel_call *c = leg->call;

	if (!c->terminal && !c->xfer_reported)
		xfer_report(c, VXML_XFER_NETWORK_DISCONNECT);
	/* The slot is free for another transfer once nua is done. */
	c->legs[TEL_LEG_AGENT] = NULL;
	if (leg->stream)
		tel_stream_free(leg->stream);
	free(leg->sdp);
	free(leg);
	if (!c->terminal && c->xfer_blind && c->app_over)
		app_later(c);
}

void
tel_xfer_drop(struct tel_call *c)
{
	struct tel_leg *agent = c->legs[TEL_LEG_AGENT];

	if (agent == NULL)
		return;
	if (agent->stream)
		tel_stream_unbridge(agent->stream);
	tel_leg_hangup(agent);
	if (c->xfer_blind && c->app_over && !c->terminal)
		tel_call_end(c, RQ_ST_COMPLETED, NULL, 0,
		    "transferred; the caller hung up");
}
