/* Calls and their legs: a JOB whose attempt we could claim becomes a call
 * whose customer leg dials the target, plays the synthesised text on answer
 * and hangs up.  Every call ends with exactly one finish (life.c); the call
 * is freed once its nua handles are gone.  A second (agent) leg has a slot
 * for later bridging. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "metrics.h"
#include "status.h"
#include "telserver.h"
#include "util.h"

const char *
tel_reason_for_status(int status)
{
	switch (status) {
	case 486:
	case 600:
		return RQ_REASON_BUSY;
	case 603:
		return RQ_REASON_DECLINED;
	case 404:
	case 408:
	case 410:
	case 480:
	case 484:
	case 502:
	case 503:
	case 504:
		return RQ_REASON_UNREACHABLE;
	case 487:
		/* Only we CANCEL, and then the reason is already known. */
		return RQ_REASON_NO_ANSWER;
	default:
		return RQ_REASON_REJECTED;
	}
}

static struct tel_call *
call_find(struct tel_ctx *ctx, const char *call_id, uint64_t attempt)
{
	struct tel_call *c;

	for (c = ctx->calls; c != NULL; c = c->next)
		if (c->attempt == attempt && !strcmp(c->call_id, call_id))
			return c;
	return NULL;
}

static void
call_free(struct tel_call *c)
{
	struct tel_ctx *ctx = c->ctx;
	int i;

	/* (a job refused before its claim was never linked) */
	if (c->prev != NULL || ctx->calls == c)
		ctx->calls_held--;
	if (c->prev)
		c->prev->next = c->next;
	else if (ctx->calls == c)
		ctx->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	for (i = 0; i < TEL_LEG__MAX; i++) {
		struct tel_leg *leg = c->legs[i];

		if (leg == NULL)
			continue;
		if (leg->nh)
			nua_handle_destroy(leg->nh);
		if (leg->guard)
			su_timer_destroy(leg->guard);
		tel_stream_free(leg->stream);
		free(leg->sdp);
		free(leg);
	}
	if (c->ring_timer)
		su_timer_destroy(c->ring_timer);
	if (c->max_timer)
		su_timer_destroy(c->max_timer);
	tel_app_free(c->app);
	if (c->app_timer)
		su_timer_destroy(c->app_timer);
	if (c->app_guard)
		su_timer_destroy(c->app_guard);
	if (c->xfer_timer)
		su_timer_destroy(c->xfer_timer);
	free(c->app_url);
	free(c->app_json);
	free(c->app_detail);
	free(c->local_uri);
	free(c->remote_uri);
	tel_speech_unref(c->speech);
	free(c->call_id);
	free(c->tenant);
	free(c->to);
	free(c->caller_id);
	free(c);
}

/* Frees the call when it has ended and no leg waits for nua any more. */
void
tel_call_maybe_free(struct tel_call *c)
{
	int i;

	if (!c->terminal)
		return;
	for (i = 0; i < TEL_LEG__MAX; i++)
		if (c->legs[i] && c->legs[i]->nh)
			return;
	call_free(c);
}

/* An informational event (ringing, answered) through the ZeroMQ outbox;
 * the attempt's end goes through Redis (call_end). */
static void
call_event(struct tel_call *c, enum rq_status st, int sip_code)
{
	struct rq_msg ev;

	rq_msg_init(&ev, RQ_MSG_EVENT);
	rq_msg_set(&ev, call_id, c->call_id);
	rq_msg_set(&ev, attempt, c->attempt);
	rq_msg_set(&ev, status, (char *)rq_status_name(st));
	rq_msg_set(&ev, ts_ms, rq_now_ms());
	rq_msg_set(&ev, tenant, c->tenant);
	rq_msg_set(&ev, to, c->to);
	rq_msg_set(&ev, node, (char *)c->ctx->cfg->tel_name);
	if (c->started_ms)
		rq_msg_set(&ev, started_ms, c->started_ms);
	if (c->answered_ms)
		rq_msg_set(&ev, answered_ms, c->answered_ms);
	if (sip_code > 0)
		rq_msg_set(&ev, sip_code, (uint64_t)sip_code);
	tel_bus_event(c->ctx, &ev);
}

/* The one end of a call: stops its timers and media, records the attempt's
 * outcome in Redis (the retry rules decide what follows), frees its slot.
 * The nua handles may still need a while (BYE, CANCEL). */
void
tel_call_end(struct tel_call *c, enum rq_status st, const char *reason,
    int sip_code, const char *detail)
{
	struct tel_ctx *ctx = c->ctx;
	struct rq_attempt_end e;
	uint64_t duration = 0;
	int i;

	if (c->terminal)
		return;
	c->terminal = 1;
	if (c->answered_ms) {
		uint64_t now = rq_now_ms();

		duration = now > c->answered_ms ? now - c->answered_ms : 0;
	}
	if (c->ring_timer)
		su_timer_reset(c->ring_timer);
	if (c->max_timer)
		su_timer_reset(c->max_timer);
	if (c->app_guard)
		su_timer_reset(c->app_guard);
	if (c->xfer_timer)
		su_timer_reset(c->xfer_timer);
	tel_app_stop(c->app);
	if (c->legs[TEL_LEG_AGENT] != NULL)
		tel_leg_hangup(c->legs[TEL_LEG_AGENT]);
	for (i = 0; i < TEL_LEG__MAX; i++)
		if (c->legs[i] && c->legs[i]->stream) {
			log_debug("call %s: rtp sent %llu received %llu",
			    c->id, (unsigned long long)
			    tel_stream_tx_packets(c->legs[i]->stream),
			    (unsigned long long)
			    tel_stream_rx_packets(c->legs[i]->stream));
			tel_stream_free(c->legs[i]->stream);
			c->legs[i]->stream = NULL;
		}
	if (st == RQ_ST_COMPLETED)
		log_info("call %s: completed after %llu ms", c->id,
		    (unsigned long long)duration);
	else if (sip_code)
		log_info("call %s: %s %s, sip %d %s", c->id, rq_status_name(st),
		    reason ? reason : "", sip_code, detail ? detail : "");
	else
		log_info("call %s: %s %s, %s", c->id, rq_status_name(st),
		    reason ? reason : "", detail ? detail : "");
	memset(&e, 0, sizeof(e));
	e.call_id = c->call_id;
	e.attempt = c->attempt;
	e.node = ctx->cfg->tel_name;
	e.status = st;
	e.reason = reason;
	e.sip_code = sip_code;
	e.started_ms = c->started_ms;
	e.answered_ms = c->answered_ms;
	e.duration_ms = duration;
	e.detail = detail;
	e.result = c->app_json;
	tel_life_finish(ctx, &e);
	ctx->active--;
	ctx->ended++;
	tel_metric_ended(ctx, st, reason);
	tel_bus_heartbeat(ctx);
}

static void
leg_guard_expired(struct tel_ctx *ctx, su_timer_t *t, void *arg)
{
	struct tel_leg *leg = arg;

	log_warnx("call %s: no final answer to our BYE/CANCEL, giving up",
	    leg->call->id);
	tel_leg_gone(leg);
}

/* BYE or CANCEL the leg; its handle goes at the answer or the guard. */
void
tel_leg_hangup(struct tel_leg *leg)
{
	struct tel_ctx *ctx = leg->call->ctx;

	if (leg->nh == NULL || leg->state == TEL_LEG_ENDING)
		return;
	tel_sip_hangup(leg);
	if (leg->state != TEL_LEG_ENDING) {
		tel_leg_gone(leg);
		return;
	}
	if (leg->guard == NULL &&
	    (leg->guard = su_timer_create(su_root_task(ctx->root), 0)) != NULL)
		su_timer_set_interval(leg->guard, leg_guard_expired, leg,
		    TEL_LEG_GUARD_MS);
}

void
tel_leg_gone(struct tel_leg *leg)
{
	struct tel_call *c = leg->call;

	if (leg->nh) {
		nua_handle_destroy(leg->nh);
		leg->nh = NULL;
	}
	if (leg->guard) {
		su_timer_destroy(leg->guard);
		leg->guard = NULL;
	}
	leg->state = TEL_LEG_GONE;
	if (leg->role == TEL_LEG_AGENT)
		tel_xfer_gone(leg);
	else if (!c->terminal && tel_app_running(c->app))
		tel_call_app_line_gone(c);
	else if (!c->terminal && c->app_over)
		;	/* its end is on the way (call_app.c) */
	else if (!c->terminal)
		tel_call_end(c, RQ_ST_FAILED, RQ_REASON_REJECTED, 0,
		    "dialog ended without a final answer");
	tel_call_maybe_free(c);
}

void
tel_leg_progress(struct tel_leg *leg, int status)
{
	struct tel_call *c = leg->call;

	if (c->terminal || (status != 180 && status != 183) ||
	    leg->role == TEL_LEG_AGENT)
		return;
	if (leg->state == TEL_LEG_CALLING)
		leg->state = TEL_LEG_RINGING;
	if (c->ringing_sent)
		return;
	c->ringing_sent = 1;
	log_info("call %s: ringing (%d)", c->id, status);
	call_event(c, RQ_ST_RINGING, status);
}

#define SPEECH_SILENT	"speech synthesis gave no audio"

/* A text synthesised, to nothing. */
static int
speech_silent(const struct tel_speech *sp)
{
	return sp != NULL && sp->ready && sp->nsamples == 0;
}

/* Why a call asked to speak a text cannot, or NULL when it can (or its
 * speech is still being synthesised).  No speech at all is a lack of
 * memory here, worth another attempt; a text that synthesised to nothing
 * gives nothing on every attempt. */
static const char *
speech_failure(const struct tel_call *c)
{
	if (!c->want_speech)
		return NULL;
	if (c->speech == NULL)
		return RQ_REASON_MEDIA;
	return speech_silent(c->speech) ? RQ_REASON_SPEECH : NULL;
}

void
tel_call_speech_silent(struct tel_ctx *ctx, const struct tel_speech *sp)
{
	struct tel_call *c, *next;
	struct tel_leg *leg;

	for (c = ctx->calls; c != NULL; c = next) {
		next = c->next;
		leg = c->legs[TEL_LEG_CUSTOMER];
		/* An answered one ends when its prompt does (prompt_done). */
		if (c->speech != sp || c->terminal ||
		    (leg != NULL && leg->state == TEL_LEG_ANSWERED))
			continue;
		log_info("call %s: its text gives no audio, hanging up", c->id);
		tel_call_end(c, RQ_ST_FAILED, RQ_REASON_SPEECH, 0,
		    SPEECH_SILENT);
		if (leg != NULL)
			tel_leg_hangup(leg);
		tel_call_maybe_free(c);
	}
}

static void
prompt_done(void *arg)
{
	struct tel_call *c = arg;
	const char *why;

	tel_leg_hangup(c->legs[TEL_LEG_CUSTOMER]);
	if ((why = speech_failure(c)) != NULL) {
		tel_call_end(c, RQ_ST_FAILED, why, 0, SPEECH_SILENT);
		return;
	}
	log_debug("call %s: speech done, hanging up", c->id);
	tel_call_end(c, RQ_ST_COMPLETED, NULL, 0, NULL);
}

static void
max_duration(struct tel_ctx *ctx, su_timer_t *t, void *arg)
{
	struct tel_call *c = arg;

	struct tel_leg *leg = c->legs[TEL_LEG_CUSTOMER];

	log_info("call %s: max_call_s reached, hanging up", c->id);
	/* Ended first, as tel_call_interrupt does: a leg that goes at once
	 * frees the call.  Without a handle (its application running after
	 * the hang-up) no leg will: freed here. */
	tel_call_end(c, RQ_ST_COMPLETED, NULL, 0, "max_call_s reached");
	if (leg != NULL && leg->nh != NULL)
		tel_leg_hangup(leg);
	else
		tel_call_maybe_free(c);
}

void
tel_call_limit_duration(struct tel_call *c)
{
	if ((c->max_timer = su_timer_create(su_root_task(c->ctx->root),
	    0)) != NULL)
		su_timer_set_interval(c->max_timer, max_duration, c,
		    (su_duration_t)c->ctx->cfg->max_call_s * 1000);
}

void
tel_leg_answered(struct tel_leg *leg, const char *sdp, size_t len)
{
	struct tel_call *c = leg->call;
	struct tel_sdp_answer ans;
	const char *why = RQ_REASON_MEDIA;
	char err[128];

	if (leg->role == TEL_LEG_AGENT) {
		tel_xfer_answered(leg, sdp, len);
		return;
	}
	if (c->terminal || leg->state == TEL_LEG_ENDING) {
		/* Answered after our CANCEL: nua ACKs it, we end it. */
		log_info("call %s: answered after it ended, sending BYE",
		    c->id);
		leg->state = TEL_LEG_ANSWERED;
		tel_leg_hangup(leg);
		return;
	}
	if (c->ring_timer)
		su_timer_reset(c->ring_timer);
	leg->state = TEL_LEG_ANSWERED;
	c->answered_ms = rq_now_ms();
	/* The callee did answer, whether or not we can use the answer. */
	call_event(c, RQ_ST_ANSWERED, 200);
	if ((why = speech_failure(c)) != NULL) {
		snprintf(err, sizeof(err), SPEECH_SILENT);
		goto media_fail;
	}
	why = RQ_REASON_MEDIA;
	if (sdp == NULL || len == 0) {
		snprintf(err, sizeof(err), "answer without SDP");
		goto media_fail;
	}
	if (tel_sdp_parse_answer(sdp, len, &ans, err, sizeof(err)) == -1)
		goto media_fail;
	if (tel_stream_start(leg->stream, ans.addr, ans.port, ans.pt) == -1) {
		snprintf(err, sizeof(err), "bad media address %s:%d",
		    ans.addr, ans.port);
		goto media_fail;
	}
	log_info("call %s: answered, rtp to %s:%d %s%s%s", c->id, ans.addr,
	    ans.port, ans.pt == TEL_PT_PCMA ? "PCMA" : "PCMU",
	    ans.dtmf_pt == -1 ? ", no telephone-event" : "",
	    ans.recvonly ? ", far end will not listen (sendonly)" : "");
	tel_stream_set_dtmf_pt(leg->stream, ans.dtmf_pt);
	if (c->app_url != NULL) {
		if (tel_call_app_answered(c, leg) == -1) {
			snprintf(err, sizeof(err),
			    "cannot start the application");
			goto media_fail;
		}
	} else
		tel_stream_play(leg->stream, c->speech, prompt_done, c);
	tel_call_limit_duration(c);
	return;
media_fail:
	/* answered_ms stays: the far end did answer. */
	log_warnx("call %s: unusable answer: %s", c->id, err);
	tel_leg_hangup(leg);
	tel_call_end(c, RQ_ST_FAILED, why, 200, err);
}

void
tel_leg_failed(struct tel_leg *leg, int status, const char *phrase)
{
	struct tel_call *c = leg->call;

	if (leg->state != TEL_LEG_GONE)
		leg->state = TEL_LEG_ENDING;
	if (leg->role == TEL_LEG_AGENT) {
		tel_xfer_failed(leg, status, phrase);
		return;
	}
	if (c->terminal)
		return;
	tel_call_end(c, RQ_ST_FAILED, tel_reason_for_status(status), status,
	    phrase);
}

int
tel_leg_reinvite(struct tel_leg *leg, const char *sdp, size_t len,
    const char **answer)
{
	struct tel_call *c = leg->call;
	struct tel_sdp_answer ans;
	char err[128];

	*answer = leg->sdp;
	if (c->terminal || leg->state != TEL_LEG_ANSWERED ||
	    leg->sdp == NULL) {
		log_info("call %s: re-INVITE while not in a call refused",
		    c->id);
		return -1;
	}
	if (sdp == NULL || len == 0) {
		/* An offer-less re-INVITE: our SDP is the offer. */
		log_info("call %s: re-INVITE without SDP, offering ours",
		    c->id);
		return 0;
	}
	if (tel_sdp_parse_answer(sdp, len, &ans, err, sizeof(err)) == -1) {
		log_info("call %s: re-INVITE refused: %s", c->id, err);
		return -1;
	}
	if (leg->stream && tel_stream_start(leg->stream, ans.addr, ans.port,
	    ans.pt) == -1) {
		log_info("call %s: re-INVITE refused: bad media address %s:%d",
		    c->id, ans.addr, ans.port);
		return -1;
	}
	if (leg->stream)
		tel_stream_set_dtmf_pt(leg->stream, ans.dtmf_pt);
	log_info("call %s: re-INVITE accepted, rtp to %s:%d %s", c->id,
	    ans.addr, ans.port, ans.pt == TEL_PT_PCMA ? "PCMA" : "PCMU");
	return 0;
}

void
tel_leg_remote_bye(struct tel_leg *leg)
{
	struct tel_call *c = leg->call;
	int answered = leg->state == TEL_LEG_ANSWERED;

	leg->state = TEL_LEG_ENDING;
	if (leg->role == TEL_LEG_AGENT) {
		tel_xfer_remote_bye(leg);
		return;
	}
	if (c->terminal)
		return;
	log_info("call %s: far end hung up", c->id);
	if (c->legs[TEL_LEG_AGENT] != NULL)
		tel_xfer_drop(c);
	if (answered && tel_app_running(c->app)) {
		tel_call_app_line_gone(c);
		return;
	}
	if (c->app_over)
		return;	/* its end is on the way (call_app.c) */
	if (answered)
		tel_call_end(c, RQ_ST_COMPLETED, NULL, 0, NULL);
	else
		tel_call_end(c, RQ_ST_FAILED, RQ_REASON_REJECTED, 0,
		    "far end ended the dialog before answering");
}

static void
ring_timeout(struct tel_ctx *ctx, su_timer_t *t, void *arg)
{
	struct tel_call *c = arg;
	char detail[64];

	snprintf(detail, sizeof(detail), "no answer within %d s",
	    ctx->cfg->ring_timeout_s);
	tel_leg_hangup(c->legs[TEL_LEG_CUSTOMER]);
	tel_call_end(c, RQ_ST_FAILED, RQ_REASON_NO_ANSWER, 0, detail);
}

/* The host part of a SIP URI or name-addr ("Name <sip:u@h:p;x>" -> "h"). */
static int
uri_host(const char *uri, char *host, size_t len)
{
	const char *p, *e;

	if ((p = strchr(uri, '<')) != NULL)
		uri = p + 1;
	if (!strncasecmp(uri, "sip:", 4))
		uri += 4;
	else if (!strncasecmp(uri, "sips:", 5))
		uri += 5;
	p = uri + strcspn(uri, "@;>");
	if (*p == '@')
		uri = p + 1;
	if (*uri == '[')
		e = strchr(uri, ']') ? strchr(uri, ']') + 1 : uri;
	else
		e = uri + strcspn(uri, ":;>?");
	if (e == uri || (size_t)(e - uri) >= len)
		return -1;
	memcpy(host, uri, (size_t)(e - uri));
	host[e - uri] = '\0';
	return 0;
}

/* Characters a URI from a job may not carry into our headers. */
static int
uri_safe(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f ||
		    strchr("<>\"", s[i]) != NULL)
			return 0;
	return 1;
}

/* The addr-spec of a URI or name-addr: "Name <sip:u@h>" -> "sip:u@h". */
static int
uri_addr(const char *s, char *out, size_t len)
{
	const char *p, *e;

	if ((p = strchr(s, '<')) != NULL) {
		p++;
		if ((e = strchr(p, '>')) == NULL)
			return -1;
	} else {
		p = s;
		e = s + strlen(s);
	}
	if (e == p || (size_t)(e - p) >= len)
		return -1;
	memcpy(out, p, (size_t)(e - p));
	out[e - p] = '\0';
	return 0;
}

#define TEL_DISPLAY_MAX	64

int
tel_call_from(const char *sip_from, const char *caller_id, char *from,
    size_t fromlen, char *err, size_t errlen)
{
	enum rq_target_kind kind;
	char host[RQ_ADDR_MAX], addr[RQ_ADDR_MAX], why[128];
	size_t i, o, n;
	int r;

	if (caller_id == NULL || caller_id[0] == '\0')
		r = snprintf(from, fromlen, "%s", sip_from);
	else if (!strncasecmp(caller_id, "sip:", 4)) {
		/* A URI of the tenant's: the From URI itself. */
		if (!uri_safe(caller_id) || strchr(caller_id, '@') == NULL)
			goto bad;
		r = snprintf(from, fromlen, "<%s>", caller_id);
	} else if (caller_id[0] == '+') {
		/* E.164: the number as the user part at our own host. */
		if (rq_target_parse(caller_id, &kind, why, sizeof(why)) == -1 ||
		    kind != RQ_TARGET_E164 ||
		    uri_host(sip_from, host, sizeof(host)) == -1)
			goto bad;
		r = snprintf(from, fromlen, "<sip:%s@%s>", caller_id, host);
	} else {
		/* A name: the display name of our sip_from URI, as an RFC 3261
		 * quoted-string (escape " and \; no control characters). */
		n = strlen(caller_id);
		if (n > TEL_DISPLAY_MAX ||
		    uri_addr(sip_from, addr, sizeof(addr)) == -1 ||
		    fromlen < 2 * n + strlen(addr) + 6)
			goto bad;
		o = 0;
		from[o++] = '"';
		for (i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)caller_id[i];

			if (ch < ' ' || ch == 0x7f)
				goto bad;
			if (ch == '"' || ch == '\\')
				from[o++] = '\\';
			from[o++] = (char)ch;
		}
		r = snprintf(from + o, fromlen - o, "\" <%s>", addr);
		if (r >= 0)
			r += (int)o;
	}
	if (r < 0 || (size_t)r >= fromlen)
		goto bad;
	return 0;
bad:
	snprintf(err, errlen, "invalid caller_id");
	return -1;
}

/* Works out the Request-URI, proxy and From of c.  Returns 0, or -1 with
 * the reason for people in err. */
static int
call_route(struct tel_call *c, char *to_uri, size_t tolen, const char **proxy,
    char *from, size_t fromlen, char *err, size_t errlen)
{
	const struct rq_config *cfg = c->ctx->cfg;
	enum rq_target_kind kind;
	char host[RQ_ADDR_MAX];

	*proxy = NULL;
	if (!strncasecmp(c->to, "sip:", 4)) {
		if (!uri_safe(c->to) || strchr(c->to, '@') == NULL) {
			snprintf(err, errlen, "invalid SIP URI");
			return -1;
		}
		snprintf(to_uri, tolen, "<%s>", c->to);
	} else if (rq_target_parse(c->to, &kind, err, errlen) == 0 &&
	    kind == RQ_TARGET_E164) {
		if (cfg->outbound_proxy[0] == '\0') {
			snprintf(err, errlen,
			    "no trunk configured for E.164 numbers");
			return -1;
		}
		if (uri_host(cfg->outbound_proxy, host, sizeof(host)) == -1) {
			snprintf(err, errlen, "bad outbound_proxy");
			return -1;
		}
		snprintf(to_uri, tolen, "<sip:%s@%s;user=phone>", c->to, host);
		*proxy = cfg->outbound_proxy;
	} else {
		snprintf(err, errlen, "invalid target");
		return -1;
	}
	return tel_call_from(cfg->sip_from, c->caller_id, from, fromlen, err,
	    errlen);
}

static void
call_start(struct tel_call *c)
{
	struct tel_ctx *ctx = c->ctx;
	struct tel_leg *leg;
	char to_uri[RQ_MSG_STR_MAX / 16], from[RQ_ADDR_MAX * 2], err[128];
	char sdp[TEL_SDP_MAX];
	const char *proxy;

	/* A job we cannot route (its target or caller_id, or our trunk
	 * settings) fails the same way on every attempt: rejected, which is
	 * never retried, not unreachable, which is. */
	if (strlen(c->to) + 64 > sizeof(to_uri)) {
		tel_call_end(c, RQ_ST_FAILED, RQ_REASON_REJECTED, 0,
		    "target too long");
		return;
	}
	if (call_route(c, to_uri, sizeof(to_uri), &proxy, from, sizeof(from),
	    err, sizeof(err)) == -1) {
		tel_call_end(c, RQ_ST_FAILED, RQ_REASON_REJECTED, 0, err);
		return;
	}
	if ((leg = calloc(1, sizeof(*leg))) == NULL) {
		tel_call_end(c, RQ_ST_FAILED, RQ_REASON_INTERRUPTED, 0,
		    "out of memory");
		return;
	}
	leg->call = c;
	leg->role = TEL_LEG_CUSTOMER;
	c->legs[TEL_LEG_CUSTOMER] = leg;
	if ((leg->stream = tel_stream_new(ctx->media, c->id)) == NULL) {
		tel_call_end(c, RQ_ST_FAILED, RQ_REASON_MEDIA, 0,
		    "no free RTP port");
		return;
	}
	if (tel_sdp_offer(sdp, sizeof(sdp), ctx->cfg->media_ip,
	    tel_stream_port(leg->stream), rq_now_ms()) == -1 ||
	    (leg->sdp = strdup(sdp)) == NULL ||
	    tel_sip_invite(leg, to_uri, from, proxy, sdp) == -1) {
		tel_call_end(c, RQ_ST_FAILED, RQ_REASON_UNREACHABLE, 0,
		    "cannot send the INVITE");
		return;
	}
	c->started_ms = rq_now_ms();
	c->remote_uri = strdup(to_uri);
	c->local_uri = strdup(from);
	log_info("call %s: dialing %s (rtp port %d)", c->id, to_uri,
	    tel_stream_port(leg->stream));
	if ((c->ring_timer = su_timer_create(su_root_task(ctx->root), 0)) !=
	    NULL)
		su_timer_set_interval(c->ring_timer, ring_timeout, c,
		    (su_duration_t)ctx->cfg->ring_timeout_s * 1000);
}

static char *
dup_or_null(const struct rq_msg *m, uint64_t bit, const char *s)
{
	return (m->present & bit) && s ? strdup(s) : NULL;
}

/*
 * A duplicate delivery of an attempt we hold: acknowledged, never dialled
 * again; the call goes on whatever the claim says.  It can only have been
 * taken again if Redis lost our claim (a crash under appendfsync
 * everysec): claiming it again takes its new lease out of rq:inflight
 * before that lease expires and sends it elsewhere.  Usually the claim is
 * simply stale.  Not through tel_life_claim: a resolve kept after a lost
 * reply would end, as interrupted, the attempt of a call that is going on
 * (and make a retry ring beside it) if the claim had run.
 */
static void
call_duplicate(struct tel_ctx *ctx, int dealer, const struct rq_msg *job)
{
	unsigned long long att = (unsigned long long)job->attempt;

	switch (!tel_life_may_claim(ctx) ? -1 : rq_job_claim(&ctx->redis,
	    job->call_id, job->attempt, ctx->cfg->tel_name)) {
	case RQ_CLAIM_OK:
		log_warnx("call %s/%llu: our claim was lost by Redis, claimed "
		    "again", job->call_id, att);
		break;
	case RQ_CLAIM_EXPIRED:
		/* Our claim was lost, and not_after has passed since: the
		 * job ended as expired; the customer is on the line
		 * already, so the call goes on (its finish is ignored). */
		log_warnx("call %s/%llu: our claim was lost by Redis and the "
		    "job has expired since (not_after): the call goes on",
		    job->call_id, att);
		break;
	case RQ_CLAIM_STALE:
		break;
	default:
		log_warnx("call %s/%llu: duplicate job: cannot claim it again "
		    "(redis); if Redis lost our claim, the attempt may be "
		    "placed again when its lease expires", job->call_id, att);
		break;
	}
	log_info("call %s/%llu: duplicate job, acknowledged again",
	    job->call_id, att);
	tel_bus_reply(ctx, dealer, RQ_MSG_JOB_ACK, job->call_id, job->attempt,
	    NULL);
}

/* A JOB that passed the checks, waiting for its claim (tel_call_jobs_flush).
 * Claims go in batches of at most TEL_CLAIM_BATCH, so that one script
 * never holds Redis up for long. */
#define TEL_CLAIM_BATCH	256

struct tel_pend {
	struct tel_call	*c;
	int		 dealer;
	char		*say;		/* NULL: none (or dry run) */
};

static struct tel_pend *
pend_find(struct tel_ctx *ctx, const char *call_id, uint64_t attempt)
{
	size_t i;

	for (i = 0; i < ctx->npend; i++)
		if (ctx->pend[i].c->attempt == attempt &&
		    !strcmp(ctx->pend[i].c->call_id, call_id))
			return &ctx->pend[i];
	return NULL;
}

void
tel_call_job(struct tel_ctx *ctx, int dealer, const struct rq_msg *job)
{
	tel_call_job_add(ctx, dealer, job);
	tel_call_jobs_flush(ctx);
}

void
tel_call_job_add(struct tel_ctx *ctx, int dealer, const struct rq_msg *job)
{
	struct tel_call *c = NULL;
	struct tel_pend *p;
	char *say = NULL;
	int has_say;

	/* The id goes into a SIP header and log lines: it must be ours.
	 * "invalid" is for this only: the dispatcher drops such a job for
	 * good, so no other refusal may say it. */
	if (!rq_call_id_valid(job->call_id)) {
		log_warnx("job with an invalid call id refused");
		tel_bus_reply(ctx, dealer, RQ_MSG_JOB_NACK, job->call_id,
		    job->attempt, "invalid");
		return;
	}
	/* A second JOB of one kept for the claim: as if the first had been
	 * handled before it came (it is a duplicate then, or not). */
	if (pend_find(ctx, job->call_id, job->attempt) != NULL)
		tel_call_jobs_flush(ctx);
	/* Ours already, whatever we take now: a draining telserver that
	 * refused it would have it requeued, and rung again elsewhere, if
	 * Redis lost our claim (call_duplicate). */
	if (call_find(ctx, job->call_id, job->attempt) != NULL) {
		call_duplicate(ctx, dealer, job);
		return;
	}
	if (ctx->draining || ctx->drain_op || !ctx->recovered) {
		log_info("call %s/%llu: refused, draining", job->call_id,
		    (unsigned long long)job->attempt);
		tel_bus_reply(ctx, dealer, RQ_MSG_JOB_NACK, job->call_id,
		    job->attempt, "draining");
		return;
	}
	if (ctx->fenced) {
		/* Our liveness key is out of date (life.c): Redis is out of
		 * reach, and a claim would fail anyway. */
		log_info("call %s/%llu: refused, fenced", job->call_id,
		    (unsigned long long)job->attempt);
		tel_bus_reply(ctx, dealer, RQ_MSG_JOB_NACK, job->call_id,
		    job->attempt, "redis");
		return;
	}
	/* The kept ones may end at once (dry run, a target refused before
	 * any SIP): counted as one by one, after them. */
	if (ctx->npend > 0 &&
	    ctx->active + (int)ctx->npend >= ctx->cfg->capacity)
		tel_call_jobs_flush(ctx);
	if (ctx->active >= ctx->cfg->capacity) {
		log_info("call %s/%llu: refused, full (%d calls)",
		    job->call_id, (unsigned long long)job->attempt,
		    ctx->active);
		tel_bus_reply(ctx, dealer, RQ_MSG_JOB_NACK, job->call_id,
		    job->attempt, "full");
		return;
	}
	/* Bounded synthesis backlog: a burst of new texts waits elsewhere.
	 * A text not cached takes a queue slot when its call is claimed: the
	 * kept ones go first, so the queue is counted as one by one. */
	has_say = !ctx->cfg->dry_run && rq_msg_has(job, say) && job->say &&
	    job->say[0];
	if (has_say && ctx->npend > 0 && !tel_tts_has(ctx->tts, job->say))
		tel_call_jobs_flush(ctx);
	if (has_say && !tel_tts_can_take(ctx->tts, job->say)) {
		log_info("call %s/%llu: refused, speech queue full",
		    job->call_id, (unsigned long long)job->attempt);
		tel_bus_reply(ctx, dealer, RQ_MSG_JOB_NACK, job->call_id,
		    job->attempt, "full");
		return;
	}
	if (ctx->npend == ctx->pend_cap) {
		size_t cap = ctx->pend_cap ? ctx->pend_cap * 2 : 16;

		if ((p = reallocarray(ctx->pend, cap, sizeof(*p))) != NULL) {
			ctx->pend = p;
			ctx->pend_cap = cap;
		}
	}
	if (ctx->npend == ctx->pend_cap ||
	    (has_say && (say = strdup(job->say)) == NULL) ||
	    (c = calloc(1, sizeof(*c))) == NULL ||
	    (c->call_id = strdup(job->call_id)) == NULL ||
	    (c->tenant = strdup(job->tenant)) == NULL ||
	    (c->to = strdup(job->to)) == NULL) {
		log_warnx("call %s/%llu: out of memory", job->call_id,
		    (unsigned long long)job->attempt);
		free(say);
		if (c) {
			free(c->call_id);
			free(c->tenant);
			free(c);
		}
		tel_bus_reply(ctx, dealer, RQ_MSG_JOB_NACK, job->call_id,
		    job->attempt, "full");
		return;
	}
	c->ctx = ctx;
	c->attempt = job->attempt;
	c->caller_id = dup_or_null(job, RQ_F_caller_id, job->caller_id);
	if (!ctx->cfg->dry_run && !has_say)
		c->app_url = dup_or_null(job, RQ_F_app_url, job->app_url);
	snprintf(c->id, sizeof(c->id), "%.60s/%llu", c->call_id,
	    (unsigned long long)c->attempt);
	p = &ctx->pend[ctx->npend++];
	p->c = c;
	p->dealer = dealer;
	p->say = say;
	if (ctx->npend >= TEL_CLAIM_BATCH)
		tel_call_jobs_flush(ctx);
}

/* A claimed call: acknowledged, then dialled (dry run: its whole life
 * without SIP). */
static void
call_claimed(struct tel_ctx *ctx, int dealer, struct tel_call *c,
    const char *say)
{
	c->next = ctx->calls;
	if (ctx->calls)
		ctx->calls->prev = c;
	ctx->calls = c;
	ctx->calls_held++;
	ctx->active++;
	tel_metric_started(ctx);
	tel_bus_reply(ctx, dealer, RQ_MSG_JOB_ACK, c->call_id, c->attempt,
	    NULL);
	log_info("call %s: job for %s accepted", c->id, c->to);

	if (ctx->cfg->dry_run) {
		/* Benchmarks: the whole life of a call without SIP. */
		c->started_ms = c->answered_ms = rq_now_ms();
		call_event(c, RQ_ST_RINGING, 180);
		call_event(c, RQ_ST_ANSWERED, 200);
		tel_call_end(c, RQ_ST_COMPLETED, NULL, 0, "dry run");
		tel_call_maybe_free(c);
		return;
	}
	/* Synthesis starts now, so it is usually ready at answer. */
	if (say != NULL) {
		c->want_speech = 1;
		c->speech = tel_tts_get(ctx->tts, say);
		/* Known silent (cached): nobody is rung for it. */
		if (speech_silent(c->speech)) {
			tel_call_end(c, RQ_ST_FAILED, RQ_REASON_SPEECH, 0,
			    SPEECH_SILENT);
			tel_call_maybe_free(c);
			return;
		}
	}
	call_start(c);
	tel_call_maybe_free(c);
}

void
tel_call_jobs_flush(struct tel_ctx *ctx)
{
	struct tel_pend *pend;
	const char **ids;
	uint64_t *atts;
	size_t n, i;
	int *rc;

	if ((n = ctx->npend) == 0)
		return;
	/* Taken over: a JOB handled below may add more (not expected). */
	pend = ctx->pend;
	ctx->pend = NULL;
	ctx->npend = ctx->pend_cap = 0;
	ids = calloc(n, sizeof(*ids));
	atts = calloc(n, sizeof(*atts));
	rc = calloc(n, sizeof(*rc));
	if (ids && atts && rc) {
		for (i = 0; i < n; i++) {
			ids[i] = pend[i].c->call_id;
			atts[i] = pend[i].c->attempt;
		}
		/* At most one dial per attempt: only a claimed attempt is
		 * dialled.  One script for all of them. */
		tel_life_claim_batch(ctx, n, ids, atts, rc);
	} else if (rc)
		for (i = 0; i < n; i++)
			rc[i] = TEL_CLAIM_FENCED;	/* not tried */
	/* The dry run's finishes go in one script too; the replies go to
	 * each dispatcher as one message, with the heartbeat that says how
	 * many calls we have once, after them. */
	tel_life_finish_hold(ctx);
	tel_bus_hold(ctx);
	for (i = 0; i < n; i++) {
		struct tel_call *c = pend[i].c;
		int dealer = pend[i].dealer, r = rc ? rc[i] : TEL_CLAIM_FENCED;

		switch (r) {
		case RQ_CLAIM_OK:
			call_claimed(ctx, dealer, c, pend[i].say);
			break;
		case RQ_CLAIM_STALE:
		case RQ_CLAIM_EXPIRED:
			log_info("call %s: not dialled: %s", c->id,
			    r == RQ_CLAIM_STALE ? "stale (lease gone, other "
			    "attempt or job ended)" : "past not_after, expired");
			tel_bus_reply(ctx, dealer, RQ_MSG_JOB_NACK, c->call_id,
			    c->attempt, "stale");
			call_free(c);
			break;
		default:
			if (r == TEL_CLAIM_FENCED)
				log_info("call %s: refused: fenced or liveness "
				    "key not refreshed (redis)", c->id);
			else {
				log_warnx("call %s: not dialled: cannot "
				    "claim it", c->id);
				rq_metric_error("redis");
			}
			tel_bus_reply(ctx, dealer, RQ_MSG_JOB_NACK, c->call_id,
			    c->attempt, "redis");
			call_free(c);
			break;
		}
		free(pend[i].say);
	}
	tel_life_finish_release(ctx);
	tel_bus_release(ctx);
	free(ids);
	free(atts);
	free(rc);
	free(pend);
}

void
tel_call_interrupt(struct tel_call *c, const char *detail)
{
	int i, j, last, hung = 0;

	if (c->terminal)
		return;
	/* Ended first: a leg that goes at once must not end it otherwise
	 * (tel_leg_gone). */
	tel_call_end(c, RQ_ST_FAILED, RQ_REASON_INTERRUPTED, 0, detail);
	for (i = 0; i < TEL_LEG__MAX; i++) {
		if (c->legs[i] == NULL || c->legs[i]->nh == NULL)
			continue;
		/* The last leg to go frees the call. */
		for (last = 1, j = i + 1; j < TEL_LEG__MAX; j++)
			if (c->legs[j] && c->legs[j]->nh)
				last = 0;
		hung = 1;
		tel_leg_hangup(c->legs[i]);
		if (last)
			break;
	}
	if (!hung)	/* no handle left (its application ran on) */
		tel_call_maybe_free(c);
}

void
tel_call_interrupt_all(struct tel_ctx *ctx, const char *detail)
{
	struct tel_call *c, *next;

	for (c = ctx->calls; c != NULL; c = next) {
		next = c->next;
		tel_call_interrupt(c, detail);
	}
}

void
tel_call_free_all(struct tel_ctx *ctx)
{
	size_t i;

	for (i = 0; i < ctx->npend; i++) {
		call_free(ctx->pend[i].c);
		free(ctx->pend[i].say);
	}
	free(ctx->pend);
	ctx->pend = NULL;
	ctx->npend = ctx->pend_cap = 0;
	while (ctx->calls)
		call_free(ctx->calls);
}
