/* ringq-dispatcher's private header: the telserver table, the choice of a
 * telserver (select.c), the job leases in Redis (jobs.c) and the message
 * handling that ties them together, woken by rq:wake (dispatch.c). */
#ifndef DISPATCHER_H
#define DISPATCHER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

#include "bus.h"
#include "config.h"
#include "keys.h"
#include "msg.h"

#include "redis_sync.h"
#include "sub.h"

/* select.c: the choice of a telserver, pure so it can be benchmarked. */
struct disp_cand {
	uint64_t	capacity;
	uint64_t	load;		/* active + pending */
	int		accepting;	/* alive, not draining, not suspect */
};

/* Returns a uniformly distributed 64-bit number. */
typedef uint64_t (*disp_rng_fn)(void *arg);

/* Returns the index of the chosen candidate, or -1 when none has room. */
int		disp_select(const struct disp_cand *c, size_t n,
		    disp_rng_fn rng, void *rng_arg);
/* The candidate with room of the lowest (load + 1/2)/capacity (then the
 * most free slots; ties drawn weighted by capacity), or -1: for a
 * dispatcher alone (disp_tels_pick). */
int		disp_select_least(const struct disp_cand *c, size_t n,
		    disp_rng_fn rng, void *rng_arg);
/* xorshift64*: arg points to a nonzero uint64_t state. */
uint64_t	disp_rng_xorshift(void *arg);

/* telservers.c: the live telservers, keyed by ZeroMQ routing identity. */
#define DISP_TEL_MAX		1024
#define DISP_CAPACITY_MAX	100000

/* Calls that ended since the last heartbeat are estimated from the rate at
 * which its calls ended so far (the heartbeats' cumulative `ended`): see
 * telservers.c.  The forgetting time of that rate, in ms, and the ends it
 * needs before it is believed. */
#define DISP_ENDS_TAU_MS	60000
#define DISP_ENDS_MIN		8
#define DISP_ENDS_MARGIN	0.5	/* standard deviations */
/* A dispatcher is alone when, over the same forgetful sums, the calls that
 * started on its telservers without its jobs (other dispatchers' jobs,
 * inbound calls) are at most DISP_ALONE_FRAC of those it sent, after at
 * least DISP_ALONE_MIN of its own. */
#define DISP_ALONE_FRAC		0.02
#define DISP_ALONE_MIN		50

struct disp_tel {
	unsigned char	 id[RQ_BUS_ID_MAX];
	size_t		 idlen;
	char		 node[RQ_NAME_MAX];
	uint64_t	 active, capacity;	/* from the last heartbeat */
	uint64_t	 frames;	/* JOBs it takes in one message */
	uint64_t	 pending;	/* JOBs sent, no ack or nack yet */
	uint64_t	 acked;		/* acks since the last heartbeat */
	uint64_t	 last_hb;	/* monotonic ms; 0: gone */
	/* The end rate: what the last heartbeat said and when, and
	 * forgetful sums of the ends seen and of the call-ms they came
	 * from.  est_ms: active was true then (a heartbeat, or a nack). */
	uint64_t	 hb_ms, hb_active, hb_ended;
	int		 has_ended;	/* the last heartbeat carried it */
	double		 ends_n, ends_x;
	uint64_t	 est_ms;
	/* Forgetful sums of the calls started there: by our jobs (acked
	 * between two heartbeats), by anyone else (the rest). */
	double		 own_n, other_n;
	int		 used;
	int		 alive;		/* as last logged */
	int		 draining;
	int		 suspect;	/* missed an ack: skip until heartbeat */
};

struct disp_tels {
	struct disp_tel		*v;
	struct disp_cand	*cands;
	size_t			 n, cap;
	uint64_t		 timeout_ms;	/* heartbeat_timeout_ms */
};

void	disp_tels_init(struct disp_tels *t, uint64_t timeout_ms);
void	disp_tels_free(struct disp_tels *t);
/* The entry of identity, or -1. */
ssize_t	disp_tels_find(const struct disp_tels *t, const void *id,
	    size_t idlen);
/* Records a HEARTBEAT from identity.  Returns the entry or -1 (logged). */
ssize_t	disp_tels_heartbeat(struct disp_tels *t, const void *id,
	    size_t idlen, const struct rq_msg *hb, uint64_t now);
/* Logs telservers that went silent.  Cheap: call it every loop. */
void	disp_tels_check(struct disp_tels *t, uint64_t now);
/* Marks an entry gone (its peer is unreachable). */
void	disp_tels_gone(struct disp_tels *t, size_t i, const char *why);
/* The free slots of the telservers that accept jobs. */
uint64_t disp_tels_room(struct disp_tels *t, uint64_t now);
/* The load part of a heartbeat (no liveness, no logging): active and
 * capacity, and ended when has_ended (calls ended since the telserver
 * started; absent from older telservers: no estimate of ends). */
void	disp_tel_report(struct disp_tel *e, uint64_t active,
	    uint64_t capacity, int has_ended, uint64_t ended, uint64_t now);
/* A nack (full, draining ...): full until it reports again. */
void	disp_tel_full(struct disp_tel *e, uint64_t now);
/* The calls that probably ended since e->est_ms, among e->active. */
uint64_t disp_tel_ended(const struct disp_tel *e, uint64_t now);
/* The load the choice sees: active + pending + acked - disp_tel_ended. */
uint64_t disp_tel_load(const struct disp_tel *e, uint64_t now);
/* Whether we seem to be the only source of calls on our telservers. */
int	disp_tels_alone(const struct disp_tels *t, uint64_t now);
/* Chooses a telserver with room.  Returns its index or -1. */
ssize_t	disp_tels_pick(struct disp_tels *t, uint64_t now, disp_rng_fn rng,
	    void *rng_arg);

/* jobs.c: leases in Redis and the jobs waiting for an ack. */
struct disp_job {
	TAILQ_ENTRY(disp_job)	 entry;
	char			*call_id;
	uint64_t		 attempt;
	size_t			 tel;		/* index in the table */
	uint64_t		 deadline;	/* monotonic: ack timeout */
	uint64_t		 taken_us;	/* monotonic: metrics */
};
TAILQ_HEAD(disp_jobq, disp_job);

extern struct rq_script disp_take_script;
extern struct rq_script disp_requeue_script;
extern struct rq_script disp_drop_script;

/* Pops up to max of the best ids of rq:ready in one script, each dialable
 * one under a lease of lease_ms (Redis's clock) with its attempt counted.
 * Ids that cannot be dialled end there with their event in rq:events
 * (expired past not_after, failed attempts_exhausted / rejected) or are
 * dropped (vanished or ended jobs), logged; one whose calling hours
 * closed while it waited goes to rq:hours for the scheduler, its attempt
 * not counted (logged, counted with reason "hours").  Fills
 * jobs[0..*njobs) (JOB messages owning their strings: rq_msg_clear each).
 * Returns how many ids it popped (fewer than max: rq:ready is empty now),
 * or -1 on a Redis error. */
int	disp_job_take(struct rq_redis *r, uint64_t lease_ms, size_t max,
	    struct rq_msg *jobs, size_t *njobs);
/* Ends an attempt a telserver found unusable (JOB_NACK "invalid"): it
 * would be refused again anywhere, so if its lease is still the job's
 * current one in rq:inflight it leaves for good and the attempt fails
 * (rejected, with node and detail).  Returns 1 when dropped, 0 when it was
 * not that attempt's lease, -1 on a Redis error. */
int	disp_job_drop(struct rq_redis *r, const char *id, uint64_t attempt,
	    const char *node, const char *detail);
/* Puts attempt back in rq:ready if its lease is still in rq:inflight (not
 * claimed by a telserver, not reclaimed); giveback undoes its attempt
 * count (it was not dialled and cannot be any more).  Publishes rq:wake.
 * Returns 1 when requeued, 0 when the lease was no longer ours, -1 on
 * error. */
int	disp_job_requeue(struct rq_redis *r, const char *id,
	    uint64_t attempt, int giveback);

/* Reads the answer of a take (ringq.take or its script) of up to max ids:
 * the jobs to send into jobs[] (*njobs of them; each owns its strings:
 * rq_msg_clear), the rest logged.  Returns how many ids were popped (fewer
 * than max: rq:ready is empty now), or -1 for an answer of another shape
 * (logged).  rep stays the caller's. */
int	disp_job_take_reply(const redisReply *rep, size_t max,
	    struct rq_msg *jobs, size_t *njobs);

/*
 * taker.c: the waiting take.  Where Redis has ringq-redis.so the
 * dispatcher takes with ringq.take's block_ms, on a connection of its own
 * that the loop polls: the release that makes jobs ready serves the take
 * in its own Redis turn, where rq:wake costs a message, a wake-up and a
 * take of its own.  Without the module, or while this connection is
 * down, the dispatcher takes on rq:wake.
 */
struct disp_taker {
	redisContext	*c;
	char		 host[RQ_ADDR_MAX];
	int		 port;
	long long	 id;		/* its CLIENT ID */
	int		 waiting;	/* a take sent, not yet answered */
	size_t		 want;		/* ids it asked for */
	uint64_t	 deadline_ms;	/* monotonic: answered by then */
	uint64_t	 next_try_ms;	/* monotonic: connect again */
	int		 down_logged;
};

void	disp_taker_init(struct disp_taker *t, const char *host, int port);
void	disp_taker_close(struct disp_taker *t);
/* Whether takes go through it: module (the main connection found our
 * module) and connected, connecting when it is time to try. */
int	disp_taker_up(struct disp_taker *t, int module);
/* Sends a take of up to want ids that waits up to block_ms.  Returns 0,
 * or -1 (logged, connection dropped). */
int	disp_taker_send(struct disp_taker *t, uint64_t lease_ms, size_t want,
	    int block_ms);
/* The socket to poll while a take waits, else -1. */
int	disp_taker_fd(const struct disp_taker *t);
/* Reads the take's answer once its socket is readable: 1 with *rep (the
 * caller frees it), 0 not complete yet, -1 connection lost (logged). */
int	disp_taker_read(struct disp_taker *t, redisReply **rep);
/* After a good answer: says the take is back if it was down. */
void	disp_taker_answered(struct disp_taker *t);
/* After an error answer: closes the connection for a while (logged). */
void	disp_taker_refused(struct disp_taker *t, const char *err);
/* Drops the connection of a take not answered long after its wait: 1 if
 * so (logged; what it took comes back when the leases end). */
int	disp_taker_stuck(struct disp_taker *t, uint64_t now);

/* dispatch.c: the dispatcher's state and its reactions. */
#define DISP_SAFETY_POLL_MS	500	/* takes at least this often when idle */

struct disp {
	const struct rq_config	*cfg;
	void			*router;
	struct rq_bus_in	 in;		/* the router's receiving side */
	struct rq_redis		 redis;
	struct rq_sub		 wake;		/* rq:wake */
	struct disp_taker	 taker;		/* the waiting take */
	struct disp_tels	 tels;
	struct disp_jobq	 jobs;		/* sent, waiting for an ack */
	size_t			 njobs;
	uint64_t		 rng;
	int			 idle;		/* rq:ready was empty */
	int			 alone;		/* as last logged */
	uint64_t		 alone_logged;	/* monotonic ms */
	uint64_t		 next_poll;	/* monotonic: take even if idle */
	int			 stopping;
};

/* router is borrowed for the life of d. */
void	disp_init(struct disp *d, const struct rq_config *cfg, void *router);
void	disp_free(struct disp *d);
/* Reads every waiting message from the ROUTER. */
void	disp_read(struct disp *d);
/* Ack timeouts and liveness; call every loop. */
void	disp_tick(struct disp *d);
/* Takes and sends jobs while a telserver has room: with the waiting take
 * when it is up, else at once when rq:ready held jobs last time or a
 * wake-up came (rq:wake), and every DISP_SAFETY_POLL_MS. */
void	disp_fill(struct disp *d);
/* Whether the waiting take is in use (then rq:wake is not needed). */
int	disp_waiting_take(struct disp *d);
/* Reads the waiting take's answer (its socket is readable), sends its
 * jobs, and takes again. */
void	disp_taken(struct disp *d);
/* At SIGTERM: waits up to wait_ms for acks, then requeues what is left. */
void	disp_shutdown(struct disp *d, int wait_ms);
/* Counts a job given back (ringq_dispatcher_requeued_total,
 * docs/metrics.md); why is a fixed word, the reason label. */
void	disp_count_requeued(const char *why);

#endif
