/* Incoming calls: an INVITE that starts a dialog is looked up by the user
 * part of its Request-URI in the [inbound] sections.  A known number is
 * answered at once (200 with our SDP answer) as attempt 1 of a new job of
 * its tenant (rq_job_inbound), and when the ACK comes its VoiceXML
 * application runs through the path outbound calls use
 * (tel_call_app_answered, call_app.c), which also ends the call: results,
 * errors with the apology, transfers, hang-ups.  A call nobody could
 * account for (Redis failing) is refused, never taken. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/url.h>

#include "log.h"
#include "metrics.h"
#include "status.h"
#include "telserver.h"
#include "util.h"

/* Seconds a refused caller (or its proxy) is asked to wait (503). */
#define INBOUND_RETRY_AFTER	"10"
/* How long our 200 waits for its ACK: below nua's own 32 s (64 * T1), so
 * that the call ends as failed here, not as a hang-up there. */
#define INBOUND_ACK_MS		20000
#define INBOUND_URI_MAX		512

/* Refuses the INVITE on nh (a handle nua made for it) and lets nh go. */
static void
refuse(nua_handle_t *nh, int status, const char *phrase, int retry_after)
{
	nua_respond(nh, status, phrase,
	    TAG_IF(retry_after, SIPTAG_RETRY_AFTER_STR(INBOUND_RETRY_AFTER)),
	    TAG_END());
	nua_handle_destroy(nh);
	tel_metric_inbound(status);
}

static int
hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* The user part of the Request-URI, %-escapes decoded, into out.  Returns
 * 0, or -1 when there is none or it does not fit (no number of ours). */
static int
request_user(const sip_t *sip, char *out, size_t len)
{
	const char *s;
	size_t o = 0;
	int hi, lo;

	if (sip->sip_request == NULL ||
	    (s = sip->sip_request->rq_url->url_user) == NULL)
		return -1;
	for (; *s; s++) {
		if (o + 1 >= len)
			return -1;
		if (*s == '%' && (hi = hexval(s[1])) >= 0 &&
		    (lo = hexval(s[2])) >= 0) {
			out[o++] = (char)(hi << 4 | lo);
			s += 2;
		} else
			out[o++] = *s;
	}
	out[o] = '\0';
	return o == 0 || strlen(out) != o ? -1 : 0;
}

static void
call_free_unlinked(struct tel_call *c)
{
	struct tel_leg *leg = c->legs[TEL_LEG_CUSTOMER];

	if (leg != NULL) {
		tel_stream_free(leg->stream);
		free(leg->sdp);
		free(leg);
	}
	free(c->app_url);
	free(c->local_uri);
	free(c->remote_uri);
	free(c->call_id);
	free(c->tenant);
	free(c->to);
	free(c);
}

/* Our 200 was never ACKed: the caller is not there. */
static void
ack_timeout(struct tel_ctx *ctx, su_timer_t *t, void *arg)
{
	struct tel_call *c = arg;

	log_warnx("call %s: no ACK to our 200 within %d ms", c->id,
	    INBOUND_ACK_MS);
	tel_leg_hangup(c->legs[TEL_LEG_CUSTOMER]);
	tel_call_end(c, RQ_ST_FAILED, RQ_REASON_MEDIA, 200,
	    "no ACK to our 200");
}

void
tel_inbound_invite(struct tel_ctx *ctx, nua_handle_t *nh, const sip_t *sip)
{
	const struct rq_inbound *ib;
	struct rq_inbound_call in;
	struct tel_sdp_answer offer;
	struct tel_call *c = NULL;
	struct tel_leg *leg;
	char number[RQ_NAME_MAX], caller[INBOUND_URI_MAX];
	char local[INBOUND_URI_MAX], id[RQ_ID_LEN + 1], sdp[TEL_SDP_MAX];
	const char *why = "out of memory";
	char err[128];
	uint64_t now;
	int offered;

	if (sip == NULL || sip->sip_request == NULL) {
		refuse(nh, SIP_400_BAD_REQUEST, 0);
		return;
	}
	/* A To tag: a request of a dialog we do not have (ours are bound to
	 * their legs), not a new call. */
	if (sip->sip_to != NULL && sip->sip_to->a_tag != NULL) {
		log_info("sip: INVITE for an unknown dialog refused");
		refuse(nh, SIP_481_NO_TRANSACTION, 0);
		return;
	}
	if (request_user(sip, number, sizeof(number)) == -1 ||
	    (ib = rq_config_inbound(ctx->cfg, number)) == NULL) {
		log_info("sip: incoming call to %.64s: no such number (404)",
		    sip->sip_request->rq_url->url_user ?
		    sip->sip_request->rq_url->url_user : "(no user part)");
		refuse(nh, SIP_404_NOT_FOUND, 0);
		return;
	}
	/* As for a JOB: no new call while draining, fenced (Redis out of
	 * reach: it could not be recorded) or full. */
	if (ctx->draining || ctx->drain_op || !tel_life_may_claim(ctx)) {
		log_info("sip: incoming call to %s refused: %s (503)", number,
		    ctx->draining || ctx->drain_op ? "draining" :
		    "fenced or starting");
		refuse(nh, SIP_503_SERVICE_UNAVAILABLE, 1);
		return;
	}
	if (ctx->active + (int)ctx->npend >= ctx->cfg->capacity) {
		log_info("sip: incoming call to %s refused: full (%d calls) "
		    "(503)", number, ctx->active);
		refuse(nh, SIP_503_SERVICE_UNAVAILABLE, 1);
		return;
	}
	/* Without an offer (a delayed offer), ours goes in the 200. */
	offered = sip->sip_payload == NULL || sip->sip_payload->pl_len == 0;
	if (!offered && tel_sdp_parse_offer(sip->sip_payload->pl_data,
	    sip->sip_payload->pl_len, &offer, err, sizeof(err)) == -1) {
		log_info("sip: incoming call to %s refused: %s (488)", number,
		    err);
		refuse(nh, SIP_488_NOT_ACCEPTABLE, 0);
		return;
	}
	if (sip->sip_from == NULL || (size_t)url_e(caller, sizeof(caller),
	    sip->sip_from->a_url) >= sizeof(caller) ||
	    (size_t)url_e(local, sizeof(local), sip->sip_request->rq_url) >=
	    sizeof(local)) {
		log_info("sip: incoming call to %s refused: From or "
		    "Request-URI too long (400)", number);
		refuse(nh, SIP_400_BAD_REQUEST, 0);
		return;
	}
	caller[sizeof(caller) - 1] = local[sizeof(local) - 1] = '\0';

	now = rq_now_ms();
	if (rq_call_id_new(id) == -1 ||
	    (c = calloc(1, sizeof(*c))) == NULL ||
	    (leg = calloc(1, sizeof(*leg))) == NULL)
		goto unavailable;
	c->ctx = ctx;
	c->inbound = 1;
	c->inbound_offered = offered;
	c->attempt = 1;
	c->legs[TEL_LEG_CUSTOMER] = leg;
	leg->call = c;
	leg->role = TEL_LEG_CUSTOMER;
	snprintf(c->id, sizeof(c->id), "%s/1", id);
	if ((c->call_id = strdup(id)) == NULL ||
	    (c->tenant = strdup(ib->tenant)) == NULL ||
	    (c->to = strdup(caller)) == NULL ||
	    (c->app_url = strdup(ib->app_url)) == NULL ||
	    (c->remote_uri = strdup(caller)) == NULL ||
	    (c->local_uri = strdup(local)) == NULL)
		goto unavailable;
	if ((leg->stream = tel_stream_new(ctx->media, c->id)) == NULL) {
		why = "no free RTP port";
		goto unavailable;
	}
	if (offered) {
		if (tel_sdp_offer(sdp, sizeof(sdp), ctx->cfg->media_ip,
		    tel_stream_port(leg->stream), now) == -1 ||
		    (leg->sdp = strdup(sdp)) == NULL)
			goto unavailable;
	} else {
		if (tel_sdp_answer(sdp, sizeof(sdp), ctx->cfg->media_ip,
		    tel_stream_port(leg->stream), now, &offer) == -1 ||
		    (leg->sdp = strdup(sdp)) == NULL ||
		    tel_stream_start(leg->stream, offer.addr, offer.port,
		    offer.pt) == -1)
			goto unavailable;
		tel_stream_set_dtmf_pt(leg->stream, offer.dtmf_pt);
	}
	c->started_ms = now;
	c->answered_ms = now;

	/* Recorded before it is answered: a call in nobody's books is
	 * refused, not taken. */
	memset(&in, 0, sizeof(in));
	in.call_id = c->call_id;
	in.tenant = c->tenant;
	in.caller = caller;
	in.number = number;
	in.app_url = c->app_url;
	in.node = ctx->cfg->tel_name;
	in.started_ms = c->started_ms;
	in.answered_ms = c->answered_ms;
	in.ttl_ms = rq_tenant_ttl_ms(rq_config_tenant(ctx->cfg, c->tenant));
	switch (tel_life_inbound(ctx, &in)) {
	case 1:
		break;
	case 0:
		why = "its new call id is taken";
		goto unavailable;
	default:
		rq_metric_error("redis");
		why = "cannot record it (redis)";
		goto unavailable;
	}

	leg->nh = nh;
	nua_handle_bind(nh, leg);
	nua_respond(nh, SIP_200_OK,
	    SIPTAG_CONTENT_TYPE_STR("application/sdp"),
	    SIPTAG_PAYLOAD_STR(leg->sdp), TAG_END());
	leg->state = TEL_LEG_ANSWERED;
	tel_metric_inbound(200);
	c->next = ctx->calls;
	if (ctx->calls)
		ctx->calls->prev = c;
	ctx->calls = c;
	ctx->calls_held++;
	ctx->active++;
	tel_metric_started(ctx);
	if (offered)
		log_info("call %s: incoming from %s to %s ([inbound %s], "
		    "tenant %s) without an offer: answered with ours", c->id,
		    caller, number, ib->name, c->tenant);
	else
		log_info("call %s: incoming from %s to %s ([inbound %s], "
		    "tenant %s): answered, rtp to %s:%d %s%s", c->id, caller,
		    number, ib->name, c->tenant, offer.addr, offer.port,
		    offer.pt == TEL_PT_PCMA ? "PCMA" : "PCMU",
		    offer.dtmf_pt == -1 ? ", no telephone-event" : "");
	tel_call_limit_duration(c);
	/* The set-up's timer (an outbound call's ringing) waits for the ACK;
	 * tel_call_end and call_free take care of it as of any call's. */
	if ((c->ring_timer = su_timer_create(su_root_task(ctx->root), 0)) !=
	    NULL)
		su_timer_set_interval(c->ring_timer, ack_timeout, c,
		    INBOUND_ACK_MS);
	tel_bus_heartbeat(ctx);
	return;

unavailable:
	log_warnx("sip: incoming call to %s refused: %s (503)", number, why);
	if (c != NULL)
		call_free_unlinked(c);
	refuse(nh, SIP_503_SERVICE_UNAVAILABLE, 1);
}

/* The answer to the offer of our 200, in the ACK: the stream starts.
 * Returns 0, or -1 with the reason in err. */
static int
ack_answer(struct tel_leg *leg, const char *sdp, size_t len, char *err,
    size_t errlen)
{
	struct tel_sdp_answer ans;

	if (sdp == NULL || len == 0) {
		snprintf(err, errlen, "no answer to our offer in the ACK");
		return -1;
	}
	if (tel_sdp_parse_answer(sdp, len, &ans, err, errlen) == -1)
		return -1;
	if (tel_stream_start(leg->stream, ans.addr, ans.port, ans.pt) == -1) {
		snprintf(err, errlen, "bad media address %s:%d", ans.addr,
		    ans.port);
		return -1;
	}
	tel_stream_set_dtmf_pt(leg->stream, ans.dtmf_pt);
	log_info("call %s: the ACK answers our offer, rtp to %s:%d %s%s",
	    leg->call->id, ans.addr, ans.port,
	    ans.pt == TEL_PT_PCMA ? "PCMA" : "PCMU",
	    ans.dtmf_pt == -1 ? ", no telephone-event" : "");
	return 0;
}

void
tel_inbound_acked(struct tel_leg *leg, const char *sdp, size_t len)
{
	struct tel_call *c = leg->call;
	char err[128];

	/* Only the ACK of our 200 to the first INVITE starts it (a
	 * re-INVITE's ACK comes here too). */
	if (!c->inbound || leg->role != TEL_LEG_CUSTOMER || c->terminal ||
	    c->app != NULL || c->app_over || leg->state != TEL_LEG_ANSWERED ||
	    leg->stream == NULL)
		return;
	if (c->ring_timer)
		su_timer_reset(c->ring_timer);
	if (c->inbound_offered) {
		c->inbound_offered = 0;
		if (ack_answer(leg, sdp, len, err, sizeof(err)) == -1) {
			log_warnx("call %s: unusable answer in the ACK: %s",
			    c->id, err);
			tel_leg_hangup(leg);
			tel_call_end(c, RQ_ST_FAILED, RQ_REASON_MEDIA, 200,
			    err);
			return;
		}
	}
	log_debug("call %s: ACK, starting the application", c->id);
	if (tel_call_app_answered(c, leg) == -1) {
		log_warnx("call %s: cannot start the application %s", c->id,
		    c->app_url);
		tel_leg_hangup(leg);
		tel_call_end(c, RQ_ST_FAILED, RQ_REASON_MEDIA, 200,
		    "cannot start the application");
	}
}
