/* ringq-accounting's private header: stores every EVENT exactly once in
 * PostgreSQL, mirrors the live status into Redis, then acknowledges. */
#ifndef ACCT_H
#define ACCT_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "bus.h"
#include "config.h"
#include "msg.h"
#include "redis_sync.h"
#include "status.h"
#include "util.h"

#define ACCT_BATCH_MAX		500	/* events per transaction */
#define ACCT_EVENTS_QUEUED	10000	/* ZeroMQ events waiting, a telserver */
#define ACCT_ATTEMPT_MAX	1000	/* keeps attempt * 16 + status in an int */
#define ACCT_TS_MAX		253402300799999ULL /* 9999-12-31T23:59:59.999Z */
#define ACCT_RETRY_MS		1000	/* reconnect period */
#define ACCT_STREAM_POLL_MS	10	/* rq:events read period when idle */
/* The consumer group's creation refused (a replica, writes refused):
 * tried again this much later, not at every read. */
#define ACCT_GROUP_RETRY_MS	1000
/* The longest a step drains rq:events before it returns (a backlog after
 * an outage): the daemon answers SIGTERM and tells systemd it is ready. */
#define ACCT_DRAIN_STEP_MS	500
#define ACCT_SID_MAX		48	/* a stream entry id, "<ms>-<seq>" */

/* One received EVENT and where its acknowledgement goes: a ZeroMQ sender
 * (peer) or an rq:events entry (sid). */
struct acct_event {
	unsigned char	 peer[RQ_BUS_ID_MAX];	/* ROUTER identity */
	size_t		 peerlen;
	char		 sid[ACCT_SID_MAX];	/* "" for ZeroMQ */
	struct rq_msg	 m;		/* owns its strings */
	enum rq_status	 st;
	int		 rank;
	int		 stored;	/* committed (new or duplicate) */
	int		 mirror;	/* what the mirror does is left to us */
	int		 mirrored;	/* Redis mirror done */
};

/* event.c: the pure part (validation, rank, timeline JSON). */

/* Checks an EVENT before it reaches the database.  Returns -1 with a
 * reason for people in err when it can never be stored: it is dropped (and
 * acknowledged so the sender forgets it).  Returns 0 with *st set when it
 * can; then a non-empty err tells that a bad optional field was dropped
 * (out-of-range number) or mended (invalid UTF-8 bytes become '?'; a
 * result that is not a JSON object becomes a JSON string of its text) in
 * m, which must own its strings. */
int	acct_event_check(struct rq_msg *m, enum rq_status *st,
	    char *err, size_t errlen);
/* The EVENT of an rq:events entry: n field/value strings (fv, their
 * lengths in lens), names as in msg.def, values as text.  Returns 0 (m owns
 * its strings: rq_msg_clear; a non-empty err tells that an optional number
 * that was not one was dropped), -1 with the reason in err and m empty
 * when the entry is malformed (dropped), or -2 with m empty when out of
 * memory (the entry is fine: left pending, read again later).  Then
 * acct_event_check still has to look at it. */
int	acct_stream_event(struct rq_msg *m, const char *const *fv,
	    const size_t *lens, size_t n, char *err, size_t errlen);
/* The event's result (a checked one is JSON text: an object, or a string)
 * as a new JSON value, or NULL when it has none. */
json_t	*acct_result_json(const struct rq_msg *m);
/* attempt * 16 + status: statuses only move to a higher rank. */
int	acct_rank(uint64_t attempt, enum rq_status st);
/* The timeline entry of an event as a JSON object in a new string (caller
 * frees with free()), or NULL when out of memory. */
char	*acct_event_json(const struct rq_msg *m);

/* migrations.c */

/* Applies the missing schema versions under an advisory lock, each in its
 * own transaction.  Returns 0, or -1 (logged, or why in err: a database
 * newer than this binary). */
int	acct_migrate(PGconn *pg, char *err, size_t errlen);
/* The latest schema version this binary knows. */
int	acct_schema_version(void);

/* store.c: PostgreSQL. */

/* Connects, migrates and prepares the statements.  Returns a connection,
 * or NULL with the reason in err. */
PGconn	*acct_pg_open(const char *conninfo, char *err, size_t errlen);
/* Whether conninfo (a database name, key=value pairs or a URI) parses;
 * libpq's message would quote it, password and all, so none is given. */
int	 acct_conninfo_valid(const char *conninfo);
/* Stores evs in one transaction; on success sets each ->stored.  Returns 0,
 * -1 when the transaction failed but the connection is fine (some event is
 * bad), -2 when the connection is lost (the caller closes it), -3 when the
 * database refuses writes whatever they are (a full disk, a read-only or
 * shutting-down server, no privilege: acct_store_error says which).
 * meanwhile, when not NULL, runs once the batch is sent, while PostgreSQL
 * works on it (it must not use pg). */
int	acct_store(PGconn *pg, struct acct_event *evs, size_t n,
	    void (*meanwhile)(void *), void *arg);
/* The first line of the last error acct_store read, for a log line. */
const char *acct_store_error(void);

/* mirror.c: Redis. */

struct acct_mirror {
	struct rq_redis	 r;
	struct rq_script script;	/* the mirror script */
	struct rq_script ack;		/* stream.c's acknowledgement */
	struct rq_script *scripts[2];	/* r points here: do not move mr */
};

/* stream.c: the script that acknowledges stored entries of rq:events. */
extern const char acct_ack_lua[];
void	acct_mirror_init(struct acct_mirror *mr, const char *host, int port);
/* Connects (and loads the script) if needed and a second has passed since
 * the last try.  Returns 0 when connected. */
int	acct_mirror_ready(struct acct_mirror *mr);
void	acct_mirror_close(struct acct_mirror *mr);
/* After an I/O error on the link: logs, closes, retries a second later. */
void	acct_mirror_lost(struct acct_mirror *mr);
/* Mirrors the stored events of evs (pipelined), setting ->mirrored.
 * Returns 0, or -1 when Redis is not connected or the connection was lost
 * (logged; closed for a retry a second later). */
int	acct_mirror(struct acct_mirror *mr, struct acct_event *evs, size_t n);

/* acct.c: the daemon's work, driven by main.c's loop. */

struct acct {
	/* rq:events (stream.c): the consumer group exists; reading our own
	 * pending entries (from cursor) rather than new ones; when to read
	 * the pending ones again after a batch left some unacknowledged. */
	int			 group_ok;
	uint64_t		 group_retry_ms;	/* after a refusal */
	int			 backlog;
	char			 cursor[ACCT_SID_MAX];
	uint64_t		 backlog_ms;
	char			(*drop)[ACCT_SID_MAX];	/* to ack unstored */
	size_t			 ndrop;

	const struct rq_config	*cfg;
	void			*zctx;
	void			*sock;		/* ROUTER on events_endpoint */
	char			 boot_id[RQ_ID_LEN + 1];	/* our run's */
	struct rq_bus_in	 in;		/* its receiving side */
	PGconn			*pg;
	int			 pg_down;	/* outage already logged */
	uint64_t		 pg_retry_ms;
	int			 pg_refusing;	/* refusal already logged */
	uint64_t		 pg_pause_ms;	/* no store before (refused) */
	int			 pg_paused;	/* in this step (acct_step) */
	struct acct_mirror	 mr;
	int			 redis_down;	/* outage already logged */
	struct acct_event	*batch;		/* ACCT_BATCH_MAX slots */
	size_t			 nbatch;

	/* The next batch of rq:events, read while PostgreSQL stored a full
	 * one (acct.c): handled next.  ahead_read: the entries XREADGROUP
	 * gave for it, 0 when there is none. */
	struct acct_event	*ahead;		/* ACCT_BATCH_MAX slots */
	size_t			 nahead;
	char			(*ahead_drop)[ACCT_SID_MAX];
	size_t			 nahead_drop;
	int			 ahead_read;
};

int	acct_init(struct acct *a, const struct rq_config *cfg);
/* Stores the batch (a->batch, a->nbatch), mirrors it, acknowledges the
 * ZeroMQ events that are safe (stream entries: acct_stream_ack). */
void	acct_handle_batch(struct acct *a);
/* Waits up to timeout_ms for events, handles one batch, reconnects. */
void	acct_step(struct acct *a, int timeout_ms);
void	acct_free(struct acct *a);

/* stream.c: the rq:events consumer (group RQ_EVENTS_GROUP). */

/* Reads up to ACCT_BATCH_MAX entries (our pending ones first after a start
 * or a failure, then new ones) into the empty batch; entries that can never
 * be stored are logged and queued for acknowledgement.  Returns how many
 * entries were read, or -1 when Redis failed. */
int	acct_stream_read(struct acct *a);
/* Acknowledges and deletes the batch's stored and mirrored entries and the
 * dropped ones; schedules a re-read of the others. */
void	acct_stream_ack(struct acct *a);

/* callbacks.c: status callbacks.  The mirror script queues one delivery
 * per new event of a job with a callback_url (ACCT_CB_ENQUEUE_LUA); a
 * worker thread with its own Redis connection POSTs them, signed, in order
 * per call, retrying with backoff for at most ACCT_CB_GIVE_UP_MS. */
#define ACCT_CB_TIMEOUT_MS	10000
#define ACCT_CB_BACKOFF_MAX_MS	(5 * 60 * 1000)
#define ACCT_CB_GIVE_UP_MS	(60 * 60 * 1000)
#define ACCT_CB_PARALLEL	32	/* deliveries in flight */
/* A tenant's deliveries in flight at most: one whose receiver hangs (10 s
 * a try) leaves the others room; its next calls wait ACCT_CB_WAIT_MS. */
#define ACCT_CB_PER_TENANT	8
#define ACCT_CB_WAIT_MS		1000
#define ACCT_CB_LEASE_MS	60000	/* a claimed call's lease */

/*
 * Part of the mirror script (KEYS: job, callbacks, queue, old sent hash;
 * ARGV: 1 timeline field, 3 rank, 8 body, 9 now ms, 10 call id; locals
 * url, md and tenant: the job's callback_url, metadata and tenant, as
 * read; is_terminal(), RQ_LUA_IS_TERMINAL).  The job's field "cb:<attempt>" holds a bit per status whose
 * event was queued (1 << the status's number), so a resent event queues
 * nothing.  A field an attempt rather than one an event keeps the job of
 * a call with many attempts a compact hash longer (hash-max-listpack-
 * entries); the marks go with the job at the end of its retention, when
 * no event of the call is taken any more.
 * Versions before them kept the marks in rq:cbsent:<id> with a TTL, a
 * key that put every such call in Redis's table of keys that expire
 * (docs/operations.md, "Redis's key tables"): read, so that an event
 * resent across the upgrade is not delivered twice (and marked in the
 * job, for when that key has expired).  The queue is kept
 * in rank order behind its head (which may be in delivery); the call is
 * due now unless it already waits.  Metadata is spliced in as the job's
 * JSON text.
 * The rank of the call's final status queued, when one was, is in the
 * field "cb:end": an event that ranks below it (a telserver's ringing
 * that reached accounting after the finish's completed) is not sent, so
 * that a receiver never sees a call move back from its final status.
 */
#define ACCT_CB_ENQUEUE_LUA \
"local cbf = '" RQ_JOB_CBSENT "' .. math.floor(tonumber(ARGV[3]) / " \
RQ_STR(RQ_RANK_ATTEMPT) ")\n" \
"local cbbit = 2 ^ (tonumber(ARGV[3]) % " RQ_STR(RQ_RANK_ATTEMPT) ")\n" \
"local cbv = url and redis.call('HMGET', KEYS[1], cbf, '" RQ_JOB_CBEND \
"')\n" \
"local cbm = cbv and tonumber(cbv[1]) or 0\n" \
"local cbnew = url and bit.band(cbm, cbbit) == 0\n" \
"if cbnew then redis.call('HSET', KEYS[1], cbf, bit.bor(cbm, cbbit)) end\n" \
"local cbend = cbnew and tonumber(cbv[2])\n" \
"if cbend and tonumber(ARGV[3]) < cbend then cbnew = false\n" \
"elseif cbnew and is_terminal(tonumber(ARGV[3])) then\n" \
"  redis.call('HSET', KEYS[1], '" RQ_JOB_CBEND "', ARGV[3])\n" \
"end\n" \
"if cbnew and redis.call('HEXISTS', KEYS[4], ARGV[1]) == 0 then\n" \
"  local body = ARGV[8]\n" \
"  if md then body = string.sub(body, 1, -2) .. ',\"metadata\":' .. md .. '}' end\n" \
"  local env = cjson.encode({ url = url, tenant = tenant or '', body = body," \
" rank = tonumber(ARGV[3]), first_ms = ARGV[9], tries = 0 })\n" \
"  local q = redis.call('LRANGE', KEYS[3], '1', '-1')\n" \
"  local pivot = false\n" \
"  for i = #q, 1, -1 do\n" \
"    local ok, e = pcall(cjson.decode, q[i])\n" \
"    if ok and type(e) == 'table' and tonumber(e.rank) and" \
" tonumber(e.rank) > tonumber(ARGV[3]) then pivot = q[i] else break end\n" \
"  end\n" \
"  if pivot then redis.call('LINSERT', KEYS[3], 'BEFORE', pivot, env)\n" \
"  else redis.call('RPUSH', KEYS[3], env) end\n" \
"  redis.call('ZADD', KEYS[2], 'NX', ARGV[9], ARGV[10])\n" \
"end\n"

/* The POST body of an event: {"id","status","reason"?,"sip_code"?,"at",
 * "attempt","result"?} (the script adds "metadata"), in a new string, or
 * NULL. */
char	*acct_cb_body(const struct rq_msg *m);
/* The X-Ringq-Signature value "t=<t>,v1=<hex HMAC-SHA256(secret,
 * "<t>.<body>")>" into out (at least 128 bytes). */
void	acct_cb_sign(const char *secret, long long t, const char *body,
	    char *out, size_t outlen);
/* The delay before try number tries + 1 (tries >= 1): 1 s, 2 s, 4 s ...
 * capped at 5 min, plus up to a quarter of jitter (r in [0, 1)). */
uint64_t acct_cb_backoff_ms(int tries, double r);
/* Is this URL one we POST to (http or https, a host)? */
int	acct_cb_url_ok(const char *url);

struct acct_cb;
/* Starts the delivery thread.  Returns NULL on error (logged). */
struct acct_cb *acct_cb_start(const struct rq_config *cfg);
/* Stops the thread (deliveries in flight go back to the queue) and frees. */
void	acct_cb_stop(struct acct_cb *cb);

#endif
