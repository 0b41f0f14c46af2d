/* The end of a job's life in Redis, shared by the daemons that take part
 * in it: a telserver claims an attempt before it dials (at most one dial
 * per attempt) and finishes it when the call ends; the retry rules decide,
 * in the same Lua script, whether another attempt follows.  The telserver
 * at start-up and the scheduler (for a telserver whose liveness key
 * expired) end the attempts a dead telserver held as interrupted.
 * docs/delivery.md tells the whole story. */
#ifndef RQ_LIFECYCLE_H
#define RQ_LIFECYCLE_H

#include <stdint.h>

#include "keys.h"
#include "msg.h"
#include "redis_sync.h"
#include "status.h"

/* The same as a job's retry_* field: "<max attempts ending in that
 * class>:<first delay ms>". */
#define RQ_RETRY_RULE(attempts, delay_s) \
	RQ_STR(attempts) ":" RQ_STR(delay_s) "000"
#define RQ_RETRY_BUSY_DEFAULT \
	RQ_RETRY_RULE(RQ_RETRY_BUSY_ATTEMPTS, RQ_RETRY_BUSY_DELAY_S)
#define RQ_RETRY_NO_ANSWER_DEFAULT \
	RQ_RETRY_RULE(RQ_RETRY_NO_ANSWER_ATTEMPTS, RQ_RETRY_NO_ANSWER_DELAY_S)
#define RQ_RETRY_NETWORK_DEFAULT \
	RQ_RETRY_RULE(RQ_RETRY_NETWORK_ATTEMPTS, RQ_RETRY_NETWORK_DELAY_S)
#define RQ_RETRY_DELAY_MAX_MS		21600000	/* 6 h: backoff cap */
/* The longest result a finish carries: what an EVENT's string may hold. */
#define RQ_RESULT_MAX			RQ_MSG_STR_MAX

extern struct rq_script rq_claim_script;
extern struct rq_script rq_finish_script;
extern struct rq_script rq_interrupt_script;
extern struct rq_script rq_claim_batch_script;
extern struct rq_script rq_finish_batch_script;
extern struct rq_script rq_inbound_script;

enum rq_claim {
	RQ_CLAIM_OK,		/* dial it */
	RQ_CLAIM_STALE,		/* not ours (lease gone, other attempt, job
				 * ended or vanished): do not dial */
	RQ_CLAIM_EXPIRED,	/* past not_after: ended as expired, do not
				 * dial */
};

/* Claims attempt of call id for node, before its INVITE: in one script,
 * only if the job's attempts is still attempt and its lease is still in
 * rq:inflight, moves it to rq:oncall:<node>, sets dialed and node, and
 * emits EVENT dispatched.  Returns an enum rq_claim, or -1 when Redis
 * failed (logged; do not dial). */
int	rq_job_claim(struct rq_redis *r, const char *id, uint64_t attempt,
	    const char *node);

/* rq_job_claim for n attempts of node in one script, each claim exactly
 * as rq_job_claim's (and all of them atomic together): rc[i] gets the
 * enum rq_claim of ids[i]/attempts[i], or -1 for an id too long (not
 * sent).  Returns 0, or -1 when Redis failed (logged; as rq_job_claim's
 * -1 for each id sent: do not dial, the claims may have run). */
int	rq_job_claim_batch(struct rq_redis *r, const char *node, size_t n,
	    const char *const *ids, const uint64_t *attempts, int *rc);

/* How an attempt ended, as the telserver saw it. */
struct rq_attempt_end {
	const char	*call_id;
	uint64_t	 attempt;
	const char	*node;
	enum rq_status	 status;	/* RQ_ST_COMPLETED or RQ_ST_FAILED */
	const char	*reason;	/* failed: status.h's reasons */
	int		 sip_code;	/* 0: none */
	uint64_t	 started_ms, answered_ms, duration_ms; /* 0: none */
	const char	*detail;	/* may be NULL */
	/* How the call's application ended, as JSON object text
	 * ({"end":"exit","fields":{...},...}: docs/api.md), or NULL.  Kept
	 * on the job (field result), in the event (rq:events field result)
	 * and its timeline entry.  Text that is not a JSON object is carried
	 * as a string; one longer than RQ_RESULT_MAX bytes is left out
	 * (logged) and the finish goes on without it.  Borrowed. */
	const char	*result;
	/* The retry delay's factor, 0.75 to 1.25; 0 (the daemons): drawn
	 * at random.  Set by tests that compare two finishes. */
	double		 jitter;
};

/*
 * Records the end of an attempt and what follows, in one script: takes the
 * id out of rq:oncall:<node> (only the first finish of an attempt acts:
 * a repeated one returns 0), sets the job's result when e->result is set,
 * and emits one event (carrying the result):
 *   completed;
 *   failed with the reason, for reasons that are not retried (declined,
 *     rejected, policy, ...) or when the number is on a do-not-call list;
 *   failed, reason attempts_exhausted, when the reason's class (busy,
 *     no_answer, network = unreachable/media/interrupted) used up its
 *     attempts or the job its max_attempts;
 *   expired, reason not_after, when the next attempt would come too late;
 *   retrying, with the reason and the time of the next attempt in detail:
 *     the job is back in rq:delayed at now + delay * 2^(tries - 1), the
 *     doubling capped at RQ_RETRY_DELAY_MAX_MS (a first delay above it
 *     stands), times jitter (0.75 to 1.25, from the C side).
 * Returns the status emitted (*st) and 1, 0 for a repeated finish, or -1
 * when Redis failed (logged: keep it and call again later).
 * A finish that comes after an interrupt (the sweep of a telserver cut
 * off from Redis, or killed) ended its attempt, while the retry that
 * interrupt planned is not claimed yet, acts when it ends the call
 * (completed, or a failure that is never retried): the retry is taken
 * back, and it returns the status emitted and 3 (lifecycle.c,
 * late_outcome()).  Otherwise it returns 0, as for a repeated finish.
 */
int	rq_job_finish(struct rq_redis *r, const struct rq_attempt_end *e,
	    enum rq_status *st);

/* rq_job_finish for n ends of one node (e[i].node all the same) in one
 * script: rc[i] is what rq_job_finish returns for e[i] (1 or 3 with
 * st[i], 0 for a repeated finish, -1 for an unexpected reply or an entry
 * refused here).  Returns 0, or -1 when Redis failed (logged; none is
 * known done: as rq_job_finish's -1 for each). */
int	rq_job_finish_batch(struct rq_redis *r, size_t n,
	    const struct rq_attempt_end *e, enum rq_status *st, int *rc);

/* Finishes every attempt claimed on node as failed/interrupted with
 * detail (retried by the same rules).  Acts only while the node's liveness
 * key rq:node:<node> is absent: a telserver deletes its own before it
 * interrupts at start-up.  Returns how many, or -1 (the listing failed,
 * the link was lost).  A finish Redis refuses with the link up (out of
 * memory, a job key that is no hash) holds up only its own attempt, left
 * in rq:oncall:<node> for a next try: *refused (when not NULL) counts
 * them. */
int	rq_node_interrupt(struct rq_redis *r, const char *node,
	    const char *detail, int *refused);

/* An incoming call a telserver answers with an application ([inbound]
 * sections); the strings are borrowed. */
struct rq_inbound_call {
	const char	*call_id;	/* a new id: rq_call_id_new() */
	const char	*tenant;
	const char	*caller;	/* the caller's URI: the job's `to` */
	const char	*number;	/* the number called */
	const char	*app_url;
	const char	*node;
	uint64_t	 started_ms;	/* the INVITE came; 0: none */
	uint64_t	 answered_ms;	/* we answer it; 0: none */
	uint64_t	 ttl_ms;	/* kept once ended; 0: RQ_CALL_TTL_MS */
};

/*
 * Creates the job of an incoming call, in one script: rq:job:<id> with
 * tenant, to (the caller), direction "inbound", number, app_url,
 * created_ms, max_attempts 1 (a caller is never called back: any failure
 * ends the call), and its attempt 1 claimed by node as rq_job_claim would
 * (attempts and dialed 1, node, the id in rq:oncall:<node>, node in
 * rq:nodes); the id in the tenant's rq:calls:<tenant>; and emits
 * `answered` for attempt 1.  rq_job_finish of attempt 1 then ends it as
 * any other attempt.  Returns 1, 0 when the id exists already (nothing
 * written), or -1 when Redis failed (logged: do not answer the call).
 */
int	rq_job_inbound(struct rq_redis *r, const struct rq_inbound_call *in);

/* How long an ended call stays (ms) from its job's ttl_ms field as read (NULL
 * when absent), by call_ttl()'s rule (RQ_LUA_CALL_TTL): anything but the
 * digits of an integer of 1 ms to 100 years (no sign, space or leading
 * zero) is RQ_CALL_TTL_MS. */
uint64_t rq_job_ttl_ms(const char *ttl_ms);

#endif
