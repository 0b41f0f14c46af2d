/* Sofia-SIP nua glue: creates the user agent, sends INVITE/BYE/CANCEL for
 * legs, hands new incoming INVITEs to inbound.c and turns nua events into
 * tel_leg_* reports.  nua's own SDP engine
 * is off (NUTAG_MEDIA_ENABLE(0)): sdp.c writes the offer and reads the
 * answer.  Everything here runs on the su_root thread. */
#include <stdio.h>
#include <string.h>

#include <sofia-sip/nua_tag.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_tag_io.h>

#include "log.h"
#include "telserver.h"

static void
tel_sip_event(nua_event_t event, int status, char const *phrase, nua_t *nua,
    struct tel_ctx *ctx, nua_handle_t *nh, struct tel_leg *leg,
    sip_t const *sip, tagi_t tags[])
{
	int state = -1;

	if (event == nua_r_shutdown) {
		log_debug("sip: shutdown %d %s", status, phrase);
		if (status >= 200)
			ctx->sip_down = 1;
		return;
	}
	if (leg == NULL) {
		/* Not one of our calls: a new incoming call (inbound.c) or
		 * nothing of ours. */
		if (event == nua_i_invite)
			tel_inbound_invite(ctx, nh, sip);
		else if (event == nua_i_error)
			log_warnx("sip: error %d %s", status, phrase);
		else if (nh != NULL && (event == nua_i_state ||
		    event == nua_i_terminated))
			nua_handle_destroy(nh);
		return;
	}
	log_debug("call %s: sip %s %d %s", leg->call->id, nua_event_name(event),
	    status, phrase ? phrase : "");
	switch (event) {
	case nua_r_invite:
		if (status < 200)
			tel_leg_progress(leg, status);
		else if (status < 300) {
			const char *body = NULL;
			size_t len = 0;

			if (sip && sip->sip_payload) {
				body = sip->sip_payload->pl_data;
				len = sip->sip_payload->pl_len;
			}
			tel_leg_answered(leg, body, len);
		} else {
			tel_leg_failed(leg, status, phrase);
			tel_leg_gone(leg);
		}
		break;
	case nua_i_invite: {
		/* A re-INVITE from the far end.  With nua's media engine off
		 * nothing answers it for us, and an unanswered one stalls the
		 * dialog: 200 with our SDP, or 488 (the call goes on). */
		const char *body = NULL, *answer = NULL;
		size_t len = 0;

		if (sip && sip->sip_payload) {
			body = sip->sip_payload->pl_data;
			len = sip->sip_payload->pl_len;
		}
		if (tel_leg_reinvite(leg, body, len, &answer) == 0)
			nua_respond(nh, SIP_200_OK,
			    SIPTAG_CONTENT_TYPE_STR("application/sdp"),
			    SIPTAG_PAYLOAD_STR(answer), TAG_END());
		else
			nua_respond(nh, SIP_488_NOT_ACCEPTABLE, TAG_END());
		break;
	}
	case nua_i_ack: {
		const char *body = NULL;
		size_t len = 0;

		if (sip && sip->sip_payload) {
			body = sip->sip_payload->pl_data;
			len = sip->sip_payload->pl_len;
		}
		tel_inbound_acked(leg, body, len);
		break;
	}
	case nua_i_bye:
		tel_leg_remote_bye(leg);
		break;
	case nua_r_bye:
		if (status >= 200)
			tel_leg_gone(leg);
		break;
	case nua_r_cancel:
		/* The INVITE's 487 (or a 200) ends the leg, not this. */
		break;
	case nua_i_state:
		tl_gets(tags, NUTAG_CALLSTATE_REF(state), TAG_END());
		if (state == nua_callstate_terminated) {
			/* Whichever of this and the INVITE's final response
			 * comes first ends the leg. */
			if (leg->state == TEL_LEG_ANSWERED)
				tel_leg_remote_bye(leg);
			else if (leg->state != TEL_LEG_ENDING)
				tel_leg_failed(leg, status >= 300 ? status :
				    500, phrase);
			tel_leg_gone(leg);
		}
		break;
	default:
		break;
	}
}

int
tel_sip_open(struct tel_ctx *ctx)
{
	ctx->nua = nua_create(ctx->root, tel_sip_event, ctx,
	    NUTAG_URL(ctx->cfg->sip_url),
	    NUTAG_MEDIA_ENABLE(0),
	    NUTAG_AUTOACK(1),
	    SIPTAG_USER_AGENT_STR("ringq-telserver/0.1"),
	    TAG_END());
	if (ctx->nua == NULL) {
		log_warnx("sip: cannot create the user agent on %s",
		    ctx->cfg->sip_url);
		return -1;
	}
	/* No request sent again by the stack: after a Retry-After it would
	 * ring the customer a second time in one attempt, and a 3xx would
	 * send the INVITE to a target the policy never saw.  The answer
	 * ends the attempt; the retry rules decide what follows. */
	nua_set_params(ctx->nua, NUTAG_ENABLEMESSAGE(0), NUTAG_ALLOW("INVITE, "
	    "ACK, BYE, CANCEL, OPTIONS"), NUTAG_RETRY_COUNT(0), TAG_END());
	return 0;
}

void
tel_sip_close(struct tel_ctx *ctx)
{
	if (ctx->nua == NULL)
		return;
	if (ctx->sip_down)
		nua_destroy(ctx->nua);
	else
		log_warnx("sip: user agent did not shut down in time");
	ctx->nua = NULL;
}

int
tel_sip_invite(struct tel_leg *leg, const char *to_uri, const char *from_uri,
    const char *proxy, const char *sdp)
{
	struct tel_ctx *ctx = leg->call->ctx;
	char xhdr[160];

	snprintf(xhdr, sizeof(xhdr), "X-Ringq-Attempt: %s/%llu",
	    leg->call->call_id, (unsigned long long)leg->call->attempt);
	leg->nh = nua_handle(ctx->nua, leg, SIPTAG_TO_STR(to_uri), TAG_END());
	if (leg->nh == NULL) {
		log_warnx("call %s: cannot create a SIP handle for %s",
		    leg->call->id, to_uri);
		return -1;
	}
	nua_invite(leg->nh,
	    SIPTAG_FROM_STR(from_uri),
	    TAG_IF(proxy != NULL, NUTAG_PROXY(proxy)),
	    NUTAG_MEDIA_ENABLE(0),
	    SIPTAG_HEADER_STR(xhdr),
	    SIPTAG_CONTENT_TYPE_STR("application/sdp"),
	    SIPTAG_PAYLOAD_STR(sdp),
	    TAG_END());
	leg->state = TEL_LEG_CALLING;
	return 0;
}

/* BYE an answered leg, CANCEL one still ringing. */
void
tel_sip_hangup(struct tel_leg *leg)
{
	if (leg->nh == NULL)
		return;
	switch (leg->state) {
	case TEL_LEG_ANSWERED:
		nua_bye(leg->nh, TAG_END());
		leg->state = TEL_LEG_ENDING;
		break;
	case TEL_LEG_CALLING:
	case TEL_LEG_RINGING:
		nua_cancel(leg->nh, TAG_END());
		leg->state = TEL_LEG_ENDING;
		break;
	default:
		break;
	}
}

void
tel_sip_shutdown(struct tel_ctx *ctx)
{
	if (ctx->nua)
		nua_shutdown(ctx->nua);
	else
		ctx->sip_down = 1;	/* dry run: no SIP at all */
}
