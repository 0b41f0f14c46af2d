/* PostgreSQL side of accounting: the connection and the one-transaction
 * store of a batch of events (event row, then call and attempt rows only
 * when the event is new, so a repeated event changes nothing). */
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounting.h"
#include "log.h"

/* ms since the epoch (a bigint parameter, NULL stays NULL) to timestamptz,
 * exactly: no detour through floating point. */
#define TS(p)	"('epoch'::timestamptz + " p "::bigint * interval '1 millisecond')"

/*
 * One statement per round of a batch (store_round below): the events come
 * as arrays, one element per event, and no call appears twice in a round,
 * so that an upsert never meets the same row twice in one statement.  The
 * event rows go in first; only the new ones (ev returns them) go on to the
 * call and attempt rows, so a repeated event changes nothing.  The
 * sub-statements see the same snapshot.  Every new event's call row is
 * upserted here, in the same statement: that is what keeps call_events and
 * attempts pointing at a call, since migration 5 dropped their foreign
 * keys (a lookup per row).  Per statement,
 * not per row, PostgreSQL starts an executor and re-reads the tables'
 * CHECK constraints: batching rows is what makes a burst cheap.
 *
 * Arrays: $1 call_id, $2 attempt, $3 status, $4 ts_ms, $5 reason, $6
 * sip_code, $7 node, $8 duration_ms, $9 detail, $10 tenant, $11 to, $12
 * answered_ms, $13 the call's ended_ms, $14 its talk_ms, $15 status_rank,
 * $16 started_ms, $17 the attempt's ended_ms, $18 its talk_ms, $19 result
 * (jsonb: acct_event_check made it valid JSON text), $20 direction
 * ('inbound' or NULL).
 *
 * The status, reason, sip_code, updated_at, ended_at and talk_ms of a call
 * follow its highest-ranked event only; the other columns gather what any
 * event tells.  ended_at/talk_ms are cleared when a new attempt moves a
 * failed call on again; retrying ends an attempt, not the call.  A call's
 * (and an attempt's) result is that of its highest-ranked event that has
 * one: an event without a result leaves it.  A call is outbound unless
 * one of its events says inbound (the first event of an incoming call).
 */
#define ADV	"EXCLUDED.status_rank > c.status_rank"
/* Within an attempt the status order is status.h's enum order. */
#define ORDER(st)	"array_position(ARRAY['queued', 'scheduled'," \
	" 'dispatched', 'ringing', 'answered', 'retrying', 'completed'," \
	" 'failed', 'canceled', 'expired'], " st "::text)"
#define FWD	ORDER("EXCLUDED.status") " > " ORDER("a.status")
#define NPARAMS	20
static const char sql_store[] =
	"WITH i AS (SELECT * FROM unnest($1::text[], $2::int[], $3::text[],"
	" $4::bigint[], $5::text[], $6::int[], $7::text[], $8::bigint[],"
	" $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[],"
	" $14::bigint[], $15::int[], $16::bigint[], $17::bigint[],"
	" $18::bigint[], $19::jsonb[], $20::text[]) AS t(call_id, attempt,"
	" status, ts, reason, sip_code, node, dur, detail, tenant, target,"
	" answered, ended, talk, rank, started, aended, atalk, result,"
	" direction)),"

	" ev AS (INSERT INTO call_events (call_id, attempt, status, at, reason,"
	" sip_code, node, duration_ms, detail, result)"
	" SELECT call_id, attempt, status, " TS("ts") ", reason, sip_code,"
	" node, dur, detail, result FROM i"
	" ON CONFLICT DO NOTHING RETURNING call_id, attempt, status::text),"

	" n AS (SELECT i.* FROM i JOIN ev USING (call_id, attempt, status)),"

	" c AS (INSERT INTO calls AS c (id, tenant, target, status, reason,"
	" sip_code, attempts, created_at, updated_at, answered_at, ended_at,"
	" talk_ms, status_rank, result, direction)"
	" SELECT call_id, coalesce(tenant, ''), target, status, reason,"
	" sip_code, attempt, " TS("ts") ", " TS("ts") ", " TS("answered") ","
	" " TS("ended") ", talk, rank, result,"
	" coalesce(direction, 'outbound') FROM n"
	" ON CONFLICT (id) DO UPDATE SET"
	" tenant = CASE WHEN c.tenant = '' THEN EXCLUDED.tenant"
	"   ELSE c.tenant END,"
	" target = coalesce(c.target, EXCLUDED.target),"
	" attempts = greatest(c.attempts, EXCLUDED.attempts),"
	" created_at = least(c.created_at, EXCLUDED.created_at),"
	" answered_at = CASE WHEN EXCLUDED.answered_at IS NOT NULL AND"
	"   (c.answered_at IS NULL OR EXCLUDED.attempts >= c.attempts)"
	"   THEN EXCLUDED.answered_at ELSE c.answered_at END,"
	" status = CASE WHEN " ADV " THEN EXCLUDED.status ELSE c.status END,"
	" reason = CASE WHEN " ADV " THEN EXCLUDED.reason ELSE c.reason END,"
	" sip_code = CASE WHEN " ADV " THEN EXCLUDED.sip_code"
	"   ELSE c.sip_code END,"
	" updated_at = CASE WHEN " ADV " THEN EXCLUDED.updated_at"
	"   ELSE c.updated_at END,"
	" ended_at = CASE WHEN " ADV " THEN EXCLUDED.ended_at"
	"   ELSE c.ended_at END,"
	" talk_ms = CASE WHEN " ADV " THEN EXCLUDED.talk_ms ELSE c.talk_ms END,"
	" result = CASE WHEN EXCLUDED.result IS NOT NULL AND"
	"   (c.result IS NULL OR " ADV ") THEN EXCLUDED.result"
	"   ELSE c.result END,"
	" status_rank = greatest(c.status_rank, EXCLUDED.status_rank),"
	" direction = CASE WHEN EXCLUDED.direction = 'inbound' THEN 'inbound'"
	"   ELSE c.direction END"
	"),"

	" a AS (INSERT INTO attempts AS a (call_id, attempt, node, status,"
	" reason, sip_code, started_at, answered_at, ended_at, talk_ms, result)"
	" SELECT call_id, attempt, node, status, reason, sip_code,"
	" " TS("started") ", " TS("answered") ", " TS("aended") ", atalk,"
	" result FROM n WHERE attempt > 0"
	" ON CONFLICT (call_id, attempt) DO UPDATE SET"
	" node = CASE WHEN " FWD " THEN coalesce(EXCLUDED.node, a.node)"
	"   ELSE coalesce(a.node, EXCLUDED.node) END,"
	" status = CASE WHEN " FWD " THEN EXCLUDED.status ELSE a.status END,"
	" reason = CASE WHEN " FWD " THEN EXCLUDED.reason ELSE a.reason END,"
	" sip_code = CASE WHEN " FWD " THEN EXCLUDED.sip_code"
	"   ELSE a.sip_code END,"
	" started_at = coalesce(a.started_at, EXCLUDED.started_at),"
	" answered_at = coalesce(a.answered_at, EXCLUDED.answered_at),"
	" ended_at = coalesce(a.ended_at, EXCLUDED.ended_at),"
	" talk_ms = coalesce(a.talk_ms, EXCLUDED.talk_ms),"
	" result = CASE WHEN EXCLUDED.result IS NOT NULL AND"
	"   (a.result IS NULL OR " FWD ") THEN EXCLUDED.result"
	"   ELSE a.result END)"

	/* data-modifying CTEs run whether read or not */
	" SELECT count(*) FROM ev";

/*
 * The parameters' types, in sql_store's order: arrays of these elements.
 * The OIDs are pg_type's built-in ones, the same in every PostgreSQL that
 * has the type (jsonb since 9.4).  PQprepare declares them from this table
 * and send_round encodes by it, so the two cannot disagree.
 */
#define OID_INT8	20
#define OID_INT4	23
#define OID_TEXT	25
#define OID_JSONB	3802
#define OID_INT4_ARRAY	1007
#define OID_TEXT_ARRAY	1009
#define OID_INT8_ARRAY	1016
#define OID_JSONB_ARRAY	3807
#define TEXT_A	{ OID_TEXT, OID_TEXT_ARRAY }
#define INT4_A	{ OID_INT4, OID_INT4_ARRAY }
#define INT8_A	{ OID_INT8, OID_INT8_ARRAY }
#define JSONB_A	{ OID_JSONB, OID_JSONB_ARRAY }
static const struct {
	Oid	elem, array;
} param_type[NPARAMS] = {
	TEXT_A, INT4_A, TEXT_A, INT8_A, TEXT_A, INT4_A, TEXT_A, INT8_A,
	TEXT_A, TEXT_A, TEXT_A, INT8_A, INT8_A, INT8_A, INT4_A, INT8_A,
	INT8_A, INT8_A, JSONB_A, TEXT_A
};

/* libpq prints server notices on stderr by default: make them log lines. */
static void
notice(void *arg, const char *msg)
{
	log_debug("postgres: %.*s", (int)strcspn(msg, "\n"), msg);
}

int
acct_conninfo_valid(const char *conninfo)
{
	PQconninfoOption *opts;
	char *msg = NULL;

	/* What libpq's dbname expansion takes as a connection string rather
	 * than a plain database name. */
	if (strchr(conninfo, '=') == NULL &&
	    strncmp(conninfo, "postgresql://", strlen("postgresql://")) &&
	    strncmp(conninfo, "postgres://", strlen("postgres://")))
		return 1;
	if ((opts = PQconninfoParse(conninfo, &msg)) == NULL) {
		PQfreemem(msg);
		return 0;
	}
	PQconninfoFree(opts);
	return 1;
}

PGconn *
acct_pg_open(const char *conninfo, char *err, size_t errlen)
{
	/* A later keyword overrides what the expanded conninfo says: bound
	 * the connect so that an unreachable server does not stall us, and
	 * a server gone silently (its host lost, the network cut) in 30 s,
	 * not the two hours of the kernel's keepalive defaults, during which
	 * a result would be waited for with nothing else done. */
	const char *keys[] = { "dbname", "connect_timeout",
	    "application_name", "keepalives", "keepalives_idle",
	    "keepalives_interval", "keepalives_count", "tcp_user_timeout",
	    NULL };
	const char *vals[] = { conninfo, "3", "ringq-accounting", "1", "10",
	    "5", "3", "30000", NULL };
	Oid types[NPARAMS];
	PGconn *pg;
	PGresult *res;
	size_t i;

	pg = PQconnectdbParams(keys, vals, 1);
	if (pg == NULL || PQstatus(pg) != CONNECTION_OK) {
		snprintf(err, errlen, "%s", pg ? PQerrorMessage(pg) :
		    "out of memory");
		goto fail;
	}
	PQsetNoticeProcessor(pg, notice, NULL);
	if (acct_migrate(pg, err, errlen) == -1)
		goto fail;
	for (i = 0; i < NPARAMS; i++)
		types[i] = param_type[i].array;
	res = PQprepare(pg, "acct_store", sql_store, NPARAMS, types);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		snprintf(err, errlen, "prepare acct_store: %s",
		    PQresultErrorMessage(res));
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	return pg;
fail:
	/* Chop libpq's trailing newline off the message we pass on. */
	err[strcspn(err, "\n")] = '\0';
	PQfinish(pg);
	return NULL;
}

/*
 * An array parameter in PostgreSQL's binary format (array_recv): a header
 * (dimensions, a has-nulls flag, the element type, then the length and
 * lower bound of the one dimension), then each element as its length and
 * its bytes (-1 and none for NULL).  The server takes it without parsing
 * text: the text form cost it a sixth of its time per event (array_in,
 * character by character), and us a stdio call per character.  Element
 * types from param_type; numbers in network byte order.
 */
#define ARRAY_HEAD	20	/* ndim, flags, type, length, lower bound */
struct pg_array {
	unsigned char	*buf;		/* ARRAY_HEAD bytes, then elements */
	size_t		 len, cap;
	Oid		 type;		/* of the elements */
	uint32_t	 n;		/* elements */
	int		 has_null;
	int		 failed;	/* out of memory */
};

static unsigned char *
array_room(struct pg_array *arr, size_t more)
{
	unsigned char *nb;
	size_t cap;

	if (arr->failed)
		return NULL;
	if (arr->len + more > arr->cap) {
		for (cap = arr->cap ? arr->cap : 1024; arr->len + more > cap;
		    cap *= 2)
			;
		if ((nb = realloc(arr->buf, cap)) == NULL) {
			arr->failed = 1;
			return NULL;
		}
		arr->buf = nb;
		arr->cap = cap;
	}
	return arr->buf + arr->len;
}

static void
be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* Appends an element of size bytes (NULL: a NULL element); the caller
 * writes them at the pointer returned. */
static unsigned char *
array_elem(struct pg_array *arr, const void *v, size_t size)
{
	unsigned char *p;

	if ((p = array_room(arr, 4 + size)) == NULL)
		return NULL;
	arr->n++;
	if (v == NULL) {
		be32(p, UINT32_MAX);	/* -1 */
		arr->has_null = 1;
		arr->len += 4;
		return NULL;
	}
	be32(p, (uint32_t)size);
	arr->len += 4 + size;
	return p + 4;
}

/* text (jsonb: its version byte first; acct_event_check made it JSON) */
static void
array_put(struct pg_array *arr, const char *v)
{
	size_t n = v == NULL ? 0 : strlen(v);
	size_t ver = arr->type == OID_JSONB;
	unsigned char *p;

	if ((p = array_elem(arr, v, ver + n)) == NULL)
		return;
	if (ver)
		*p++ = 1;
	memcpy(p, v, n);
}

/* int4 or int8, as the array's type says; acct_event_check keeps each
 * value in its column's range */
static void
array_put_u64(struct pg_array *arr, int has, uint64_t v)
{
	size_t size = arr->type == OID_INT4 ? 4 : 8;
	unsigned char *p;

	if ((p = array_elem(arr, has ? &v : NULL, size)) == NULL)
		return;
	if (size == 8) {
		be32(p, (uint32_t)(v >> 32));
		p += 4;
	}
	be32(p, (uint32_t)v);
}

/* Writes the header; returns the array's length, or 0 when out of memory.
 * An empty array has no dimension. */
static size_t
array_finish(struct pg_array *arr)
{
	unsigned char *h;

	if (array_room(arr, 0) == NULL)
		return 0;
	h = arr->buf;
	be32(h, arr->n > 0);
	be32(h + 4, (uint32_t)arr->has_null);
	be32(h + 8, arr->type);
	if (arr->n == 0)
		return 12;
	be32(h + 12, arr->n);
	be32(h + 16, 1);
	return arr->len;
}

/* Appends one event to the round's arrays (the order of sql_store). */
static void
round_add(struct pg_array *col, const struct acct_event *ev)
{
	const struct rq_msg *m = &ev->m;
	int terminal = rq_status_terminal(ev->st);
	/* retrying: this attempt is over, the call goes on */
	int over = terminal || ev->st == RQ_ST_RETRYING;
	int has_dur = rq_msg_has(m, duration_ms);

	array_put(&col[0], m->call_id);
	array_put_u64(&col[1], 1, m->attempt);
	array_put(&col[2], m->status);
	array_put_u64(&col[3], 1, m->ts_ms);
	array_put(&col[4], m->reason);
	array_put_u64(&col[5], rq_msg_has(m, sip_code), m->sip_code);
	array_put(&col[6], m->node);
	array_put_u64(&col[7], has_dur, m->duration_ms);
	array_put(&col[8], m->detail);
	array_put(&col[9], m->tenant);
	array_put(&col[10], m->to);
	if (ev->st == RQ_ST_ANSWERED && !rq_msg_has(m, answered_ms))
		array_put_u64(&col[11], 1, m->ts_ms);
	else
		array_put_u64(&col[11], rq_msg_has(m, answered_ms),
		    m->answered_ms);
	array_put_u64(&col[12], terminal, m->ts_ms);
	array_put_u64(&col[13], terminal && has_dur, m->duration_ms);
	array_put_u64(&col[14], 1, (uint64_t)ev->rank);
	array_put_u64(&col[15], rq_msg_has(m, started_ms), m->started_ms);
	array_put_u64(&col[16], over, m->ts_ms);
	array_put_u64(&col[17], over && has_dur, m->duration_ms);
	array_put(&col[18], rq_msg_has(m, result) ? m->result : NULL);
	array_put(&col[19], m->direction);
}

/*
 * Queues the statement for one round on the pipeline: the events of evs
 * whose round[] is r.  Returns 0, or -1 when out of memory or libpq could
 * not queue it.
 */
static int
send_round(PGconn *pg, const struct acct_event *evs, const int *round,
    size_t n, int r)
{
	struct pg_array col[NPARAMS];
	const char *v[NPARAMS];
	int len[NPARAMS], fmt[NPARAMS];
	size_t i, l;
	int rc = 0, c;

	memset(col, 0, sizeof(col));
	for (c = 0; c < NPARAMS; c++) {
		col[c].type = param_type[c].elem;
		col[c].len = ARRAY_HEAD;
	}
	for (i = 0; i < n; i++)
		if (round[i] == r)
			round_add(col, &evs[i]);
	for (c = 0; c < NPARAMS; c++) {
		if ((l = array_finish(&col[c])) == 0 || l > INT_MAX)
			rc = -1;
		v[c] = (const char *)col[c].buf;
		len[c] = (int)l;
		fmt[c] = 1;	/* binary */
	}
	if (rc == 0 && PQsendQueryPrepared(pg, "acct_store", NPARAMS, v, len,
	    fmt, 0) != 1)
		rc = -1;
	for (c = 0; c < NPARAMS; c++)
		free(col[c].buf);
	return rc;
}

/*
 * round[i]: how many events of the same call come before evs[i] in the
 * batch, so that each round holds a call at most once and a call's events
 * are stored in their order.  Returns the number of rounds.
 */
#define ROUND_SLOTS	1024	/* a power of two above 2 * ACCT_BATCH_MAX */
static int
rounds(const struct acct_event *evs, size_t n, int *round)
{
	int last[ROUND_SLOTS];	/* index + 1 of a call's latest event */
	size_t i, h;
	const char *p;
	int nrounds = 0;

	memset(last, 0, sizeof(last));
	for (i = 0; i < n; i++) {
		h = 2166136261u;		/* FNV-1a */
		for (p = evs[i].m.call_id; *p != '\0'; p++)
			h = (h ^ (unsigned char)*p) * 16777619u;
		for (h &= ROUND_SLOTS - 1; last[h] != 0 &&
		    strcmp(evs[last[h] - 1].m.call_id, evs[i].m.call_id) != 0;
		    h = (h + 1) & (ROUND_SLOTS - 1))
			;
		round[i] = last[h] == 0 ? 0 : round[last[h] - 1] + 1;
		last[h] = (int)i + 1;
		if (round[i] + 1 > nrounds)
			nrounds = round[i] + 1;
	}
	return nrounds;
}

static char store_error[256];

const char *
acct_store_error(void)
{
	return store_error;
}

/*
 * Whether an error's SQLSTATE says the database refuses writes whatever
 * they are: a full disk (53100), a system error (58: I/O), a connection
 * exception (08), a server shutting down (57P), a read-only transaction
 * (25006), no privilege (42501).  Storing the batch one event at a time
 * would then fail once per event, again at every re-read.  Not a
 * statement timeout (57014) nor out of memory (53200): those depend on
 * the batch, which one event at a time gets through.
 */
static int
whole_database(const char *sqlstate)
{
	static const char *const prefixes[] = { "53100", "58", "08", "57P",
	    "25006", "42501" };
	size_t i;

	if (sqlstate == NULL)
		return 0;
	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(sqlstate, prefixes[i], strlen(prefixes[i])) == 0)
			return 1;
	return 0;
}

/* Reads one queued statement's result (then the NULL that ends it);
 * returns its status, or PGRES_FATAL_ERROR when the connection broke.
 * *refused is set when the error is whole_database's. */
static ExecStatusType
read_one(PGconn *pg, const char *what, int *refused)
{
	PGresult *res, *end;
	ExecStatusType st;

	if ((res = PQgetResult(pg)) == NULL)
		return PGRES_FATAL_ERROR;
	st = PQresultStatus(res);
	if (st == PGRES_TUPLES_OK && PQntuples(res) == 1)
		log_debug("postgres: %s: %s new events", what,
		    PQgetvalue(res, 0, 0));
	else if (st == PGRES_FATAL_ERROR && PQstatus(pg) == CONNECTION_OK) {
		snprintf(store_error, sizeof(store_error), "%s",
		    PQresultErrorMessage(res));
		store_error[strcspn(store_error, "\n")] = '\0';
		if (whole_database(PQresultErrorField(res, PG_DIAG_SQLSTATE)))
			*refused = 1;	/* said once, by the caller */
		else
			log_warnx("postgres: %s: %s", what, store_error);
	}
	PQclear(res);
	if ((end = PQgetResult(pg)) != NULL) {	/* one result per query */
		PQclear(end);
		return PGRES_FATAL_ERROR;
	}
	return st;
}

/*
 * The batch in one transaction and one round trip: BEGIN, a statement per
 * round and COMMIT go out on a libpq pipeline, then their results are read
 * in order.  If a statement fails, the server skips the rest up to the
 * sync (PGRES_PIPELINE_ABORTED) and the transaction is rolled back below.
 */
int
acct_store(PGconn *pg, struct acct_event *evs, size_t n,
    void (*meanwhile)(void *), void *arg)
{
	int round[ACCT_BATCH_MAX];
	PGresult *res;
	ExecStatusType st;
	size_t i;
	int r, nrounds, ok, refused = 0;

	if (n == 0)
		return 0;
	if (n > ACCT_BATCH_MAX)
		return -1;
	nrounds = rounds(evs, n, round);
	if (PQenterPipelineMode(pg) != 1)
		return PQstatus(pg) == CONNECTION_OK ? -1 : -2;
	ok = PQsendQueryParams(pg, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
	for (r = 0; ok && r < nrounds; r++)
		ok = send_round(pg, evs, round, n, r) == 0;
	ok = ok && PQsendQueryParams(pg, "COMMIT", 0, NULL, NULL, NULL, NULL,
	    0) == 1;
	if (PQpipelineSync(pg) != 1)
		return PQstatus(pg) == CONNECTION_OK ? -1 : -2;
	if (meanwhile != NULL)
		meanwhile(arg);
	if (ok) {
		ok = read_one(pg, "BEGIN", &refused) == PGRES_COMMAND_OK;
		for (r = 0; r < nrounds; r++)
			if (read_one(pg, "storing events", &refused) !=
			    PGRES_TUPLES_OK)
				ok = 0;
		if (read_one(pg, "COMMIT", &refused) != PGRES_COMMAND_OK)
			ok = 0;
	}
	/* Everything up to the sync is read (all of it when a send failed):
	 * each query's result, then a NULL, then the sync's own result. */
	for (r = 0; r < 2 * (nrounds + 2) + 1; r++) {
		if ((res = PQgetResult(pg)) == NULL) {
			if (PQstatus(pg) != CONNECTION_OK)
				break;
			continue;
		}
		st = PQresultStatus(res);
		PQclear(res);
		if (st == PGRES_PIPELINE_SYNC)
			break;
	}
	if (PQexitPipelineMode(pg) != 1)
		return PQstatus(pg) == CONNECTION_OK ? -1 : -2;
	if (ok) {
		for (i = 0; i < n; i++)
			evs[i].stored = 1;
		return 0;
	}
	if (PQtransactionStatus(pg) != PQTRANS_IDLE)
		PQclear(PQexec(pg, "ROLLBACK"));
	if (PQstatus(pg) != CONNECTION_OK)
		return -2;
	return refused ? -3 : -1;
}
