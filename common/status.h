/* The call model's statuses and reasons: names are a public contract (the
 * HTTP API, the database and the messages use them). */
#ifndef RQ_STATUS_H
#define RQ_STATUS_H

enum rq_status {
	RQ_ST_QUEUED,		/* accepted and stored */
	RQ_ST_SCHEDULED,	/* released by the scheduler: its time came */
	RQ_ST_DISPATCHED,	/* a telserver took the attempt */
	RQ_ST_RINGING,		/* the callee's phone rings */
	RQ_ST_ANSWERED,		/* the callee answered */
	RQ_ST_RETRYING,		/* the attempt ended (reason); another is
				 * scheduled: not terminal */
	RQ_ST_COMPLETED,	/* terminal: the call ended normally */
	RQ_ST_FAILED,		/* terminal, with a reason */
	RQ_ST_CANCELED,		/* terminal, with a reason */
	RQ_ST_EXPIRED,		/* terminal, with a reason */
	RQ_ST__COUNT
};

/* Reasons for failed, canceled and expired. */
#define RQ_REASON_BUSY			"busy"
#define RQ_REASON_NO_ANSWER		"no_answer"
#define RQ_REASON_DECLINED		"declined"
#define RQ_REASON_UNREACHABLE		"unreachable"
#define RQ_REASON_INTERRUPTED		"interrupted"
#define RQ_REASON_ATTEMPTS_EXHAUSTED	"attempts_exhausted"
#define RQ_REASON_POLICY		"policy"
#define RQ_REASON_REJECTED		"rejected"	/* other 4xx-6xx */
#define RQ_REASON_MEDIA			"media"		/* no usable SDP/RTP */
#define RQ_REASON_NOT_AFTER		"not_after"	/* expired: window closed */
#define RQ_REASON_APP_ERROR		"app_error"	/* the VoiceXML application failed */
#define RQ_REASON_SPEECH		"speech"	/* the text synthesised to no audio */

/* status_rank = attempt * RQ_RANK_ATTEMPT + enum rq_status; a rank whose
 * status part is at least RQ_ST_COMPLETED is terminal.  Lua scripts use
 * the numbers: keep common/keys.h's RQ_LUA_* in step with this enum. */
#define RQ_RANK_ATTEMPT			16

const char	*rq_status_name(enum rq_status st);
/* Returns 0 and sets *st, or -1 for an unknown name. */
int		 rq_status_parse(const char *name, enum rq_status *st);
int		 rq_status_terminal(enum rq_status st);

#endif
