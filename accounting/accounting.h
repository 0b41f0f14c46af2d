/* ringq-accounting's private header: stores every EVENT exactly once in
 * PostgreSQL, mirrors the live status into Redis, then acknowledges. */
#ifndef ACCT_H
#define ACCT_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "bus.h"
#include "config.h"
#include "msg.h"
#include "redis_sync.h"
#include "status.h"

#define ACCT_BATCH_MAX		500	/* events per transaction */
#define ACCT_ATTEMPT_MAX	1000	/* keeps attempt * 16 + status in an int */
#define ACCT_TS_MAX		253402300799999ULL /* 9999-12-31T23:59:59.999Z */
#define ACCT_RETRY_MS		1000	/* reconnect period */

/* One received EVENT and where its acknowledgement goes. */
struct acct_event {
	unsigned char	 peer[RQ_BUS_ID_MAX];	/* ROUTER identity */
	size_t		 peerlen;
	struct rq_msg	 m;		/* owns its strings */
	enum rq_status	 st;
	int		 rank;
	int		 stored;	/* committed (new or duplicate) */
	int		 mirrored;	/* Redis mirror done */
};

/* event.c: the pure part (validation, rank, timeline JSON). */

/* Checks an EVENT before it reaches the database.  Returns -1 with a
 * reason for people in err when it can never be stored: it is dropped (and
 * acknowledged so the sender forgets it).  Returns 0 with *st set when it
 * can; then a non-empty err tells that a bad optional field was dropped
 * (out-of-range number) or mended (invalid UTF-8 bytes become '?') in m,
 * which must own its strings. */
int	acct_event_check(struct rq_msg *m, enum rq_status *st,
	    char *err, size_t errlen);
/* attempt * 16 + status: statuses only move to a higher rank. */
int	acct_rank(uint64_t attempt, enum rq_status st);
/* The timeline entry of an event as a JSON object in a new string (caller
 * frees with free()), or NULL when out of memory. */
char	*acct_event_json(const struct rq_msg *m);

/* migrations.c */

/* Applies the missing schema versions under an advisory lock, each in its
 * own transaction.  Returns 0, or -1 (logged). */
int	acct_migrate(PGconn *pg);
/* The latest schema version this binary knows. */
int	acct_schema_version(void);

/* store.c: PostgreSQL. */

/* Connects, migrates and prepares the statements.  Returns a connection,
 * or NULL with the reason in err. */
PGconn	*acct_pg_open(const char *conninfo, char *err, size_t errlen);
/* Stores evs in one transaction; on success sets each ->stored.  Returns 0,
 * -1 when the transaction failed but the connection is fine (some event is
 * bad), -2 when the connection is lost (the caller closes it). */
int	acct_store(PGconn *pg, struct acct_event *evs, size_t n);

/* mirror.c: Redis. */

struct acct_mirror {
	struct rq_redis	 r;
	struct rq_script script;	/* the mirror script */
	struct rq_script *scripts[1];	/* r points here: do not move mr */
};

void	acct_mirror_init(struct acct_mirror *mr, const char *host, int port);
/* Connects (and loads the script) if needed and a second has passed since
 * the last try.  Returns 0 when connected. */
int	acct_mirror_ready(struct acct_mirror *mr);
void	acct_mirror_close(struct acct_mirror *mr);
/* Mirrors the stored events of evs (pipelined), setting ->mirrored.
 * Returns 0, or -1 when Redis is not connected or the connection was lost
 * (logged; closed for a retry a second later). */
int	acct_mirror(struct acct_mirror *mr, struct acct_event *evs, size_t n);

/* acct.c: the daemon's work, driven by main.c's loop. */

struct acct {
	const struct rq_config	*cfg;
	void			*zctx;
	void			*sock;		/* ROUTER on events_endpoint */
	PGconn			*pg;
	int			 pg_down;	/* outage already logged */
	uint64_t		 pg_retry_ms;
	struct acct_mirror	 mr;
	int			 redis_down;	/* outage already logged */
	struct acct_event	*batch;		/* ACCT_BATCH_MAX slots */
	size_t			 nbatch;
};

int	acct_init(struct acct *a, const struct rq_config *cfg);
/* Waits up to timeout_ms for events, handles one batch, reconnects. */
void	acct_step(struct acct *a, int timeout_ms);
void	acct_free(struct acct *a);

#endif
