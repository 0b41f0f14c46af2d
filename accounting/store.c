/* PostgreSQL side of accounting: the connection and the one-transaction
 * store of a batch of events (event row, then call and attempt rows only
 * when the event is new, so a repeated event changes nothing). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "accounting.h"
#include "log.h"

/* ms since the epoch (text parameter, NULL stays NULL) to timestamptz,
 * exactly: no detour through floating point. */
#define TS(p)	"('epoch'::timestamptz + " p "::bigint * interval '1 millisecond')"

/*
 * One statement per event (one round trip): the event row first; only when
 * it is new (ev returns a row) the call and attempt rows, so a repeated
 * event changes nothing.  The sub-statements see the same snapshot, and
 * the foreign keys are checked at the end of the statement (call_events':
 * at COMMIT).
 *
 * $1 call_id, $2 attempt, $3 status, $4 ts_ms, $5 reason, $6 sip_code,
 * $7 node, $8 duration_ms, $9 detail, $10 tenant, $11 to, $12 answered_ms,
 * $13 the call's ended_ms, $14 its talk_ms, $15 status_rank, $16
 * started_ms, $17 the attempt's ended_ms, $18 its talk_ms, $19 the status
 * number (enum rq_status).
 *
 * The status, reason, sip_code, updated_at, ended_at and talk_ms of a call
 * follow its highest-ranked event only; the other columns gather what any
 * event tells.  ended_at/talk_ms are cleared when a new attempt moves a
 * failed call on again; retrying ends an attempt, not the call.
 */
#define ADV	"EXCLUDED.status_rank > c.status_rank"
/* Within an attempt the status order is status.h's enum order. */
#define FWD	"$19::int > array_position(ARRAY['queued', 'scheduled'," \
	" 'dispatched', 'ringing', 'answered', 'retrying', 'completed'," \
	" 'failed', 'canceled', 'expired'], a.status::text) - 1"
static const char sql_store[] =
	"WITH ev AS ("
	" INSERT INTO call_events (call_id, attempt, status, at, reason,"
	" sip_code, node, duration_ms, detail)"
	" VALUES ($1, $2::int, $3, " TS("$4") ", $5, $6::int, $7, $8::bigint, $9)"
	" ON CONFLICT DO NOTHING RETURNING 1),"

	" c AS (INSERT INTO calls AS c (id, tenant, target, status, reason,"
	" sip_code, attempts, created_at, updated_at, answered_at, ended_at,"
	" talk_ms, status_rank)"
	" SELECT $1, coalesce($10::text, ''), $11::text, $3, $5, $6::int,"
	" $2::int, " TS("$4") ", " TS("$4") ", " TS("$12") ", " TS("$13") ","
	" $14::bigint, $15::int FROM ev"
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
	" status_rank = greatest(c.status_rank, EXCLUDED.status_rank)"
	"),"

	" a AS (INSERT INTO attempts AS a (call_id, attempt, node, status,"
	" reason, sip_code, started_at, answered_at, ended_at, talk_ms)"
	" SELECT $1, $2::int, $7, $3, $5, $6::int, " TS("$16") ","
	" " TS("$12") ", " TS("$17") ", $18::bigint FROM ev WHERE $2::int > 0"
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
	" talk_ms = coalesce(a.talk_ms, EXCLUDED.talk_ms))"

	/* data-modifying CTEs run whether read or not */
	" SELECT count(*) FROM ev";

static const struct {
	const char	*name;
	const char	*sql;
	int		 nparams;
} statements[] = {
	{ "acct_store", sql_store, 19 },
};

/* libpq prints server notices on stderr by default: make them log lines. */
static void
notice(void *arg, const char *msg)
{
	log_debug("postgres: %.*s", (int)strcspn(msg, "\n"), msg);
}

PGconn *
acct_pg_open(const char *conninfo, char *err, size_t errlen)
{
	/* A later keyword overrides what the expanded conninfo says: bound
	 * the connect so that an unreachable server does not stall us. */
	const char *keys[] = { "dbname", "connect_timeout",
	    "application_name", NULL };
	const char *vals[] = { conninfo, "3", "ringq-accounting", NULL };
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
	if (acct_migrate(pg) == -1) {
		snprintf(err, errlen, "schema migration failed");
		goto fail;
	}
	for (i = 0; i < sizeof(statements) / sizeof(statements[0]); i++) {
		res = PQprepare(pg, statements[i].name, statements[i].sql,
		    statements[i].nparams, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			snprintf(err, errlen, "prepare %s: %s",
			    statements[i].name, PQresultErrorMessage(res));
			PQclear(res);
			goto fail;
		}
		PQclear(res);
	}
	return pg;
fail:
	/* Chop libpq's trailing newline off the message we pass on. */
	err[strcspn(err, "\n")] = '\0';
	PQfinish(pg);
	return NULL;
}

/* Number parameters: one buffer each, NULL when the field is absent. */
struct params {
	char	 attempt[24], ts[24], sip[24], dur[24], answered[24];
	char	 ended[24], started[24], rank[24], order[24];
};

#define U64(buf, v)	(snprintf((buf), sizeof(buf), "%" PRIu64, \
			    (uint64_t)(v)), (const char *)(buf))

/* Queues the statement for one event on the pipeline. */
static int
send_one(PGconn *pg, const struct acct_event *ev)
{
	const struct rq_msg *m = &ev->m;
	struct params p;
	const char *sip, *dur, *answered, *ended, *talk, *aended, *atalk;
	int terminal = rq_status_terminal(ev->st);
	/* retrying: this attempt is over, the call goes on */
	int over = terminal || ev->st == RQ_ST_RETRYING;

	sip = rq_msg_has(m, sip_code) ? U64(p.sip, m->sip_code) : NULL;
	dur = rq_msg_has(m, duration_ms) ? U64(p.dur, m->duration_ms) : NULL;
	if (ev->st == RQ_ST_ANSWERED && !rq_msg_has(m, answered_ms))
		answered = U64(p.answered, m->ts_ms);
	else
		answered = rq_msg_has(m, answered_ms) ?
		    U64(p.answered, m->answered_ms) : NULL;
	ended = terminal ? U64(p.ended, m->ts_ms) : NULL;
	talk = terminal ? dur : NULL;
	aended = over ? U64(p.ended, m->ts_ms) : NULL;
	atalk = over ? dur : NULL;
	U64(p.attempt, m->attempt);
	U64(p.ts, m->ts_ms);
	{
		/* libpq copies the values before it returns. */
		const char *v[] = { m->call_id, p.attempt, m->status, p.ts,
		    m->reason, sip, m->node, dur, m->detail, m->tenant, m->to,
		    answered, ended, talk, U64(p.rank, ev->rank),
		    rq_msg_has(m, started_ms) ?
		    U64(p.started, m->started_ms) : NULL, aended, atalk,
		    U64(p.order, ev->st) };

		return PQsendQueryPrepared(pg, "acct_store", 19, v, NULL, NULL,
		    0) == 1 ? 0 : -1;
	}
}

/* Reads one queued statement's result (then the NULL that ends it);
 * returns its status, or PGRES_FATAL_ERROR when the connection broke. */
static ExecStatusType
read_one(PGconn *pg, const struct acct_event *ev)
{
	PGresult *res, *end;
	ExecStatusType st;

	if ((res = PQgetResult(pg)) == NULL)
		return PGRES_FATAL_ERROR;
	st = PQresultStatus(res);
	if (ev != NULL && st == PGRES_TUPLES_OK)
		log_debug("%s: event %" PRIu64 ":%s %s", ev->m.call_id,
		    ev->m.attempt, ev->m.status, PQntuples(res) == 1 &&
		    strcmp(PQgetvalue(res, 0, 0), "1") == 0 ? "stored" :
		    "already stored");
	else if (st == PGRES_FATAL_ERROR && PQstatus(pg) == CONNECTION_OK) {
		/* A lost connection is logged once, by the caller. */
		if (ev != NULL)
			log_warnx("postgres: %s/%" PRIu64 " %s: %s",
			    ev->m.call_id, ev->m.attempt, ev->m.status,
			    PQresultErrorMessage(res));
		else
			log_warnx("postgres: BEGIN/COMMIT: %s",
			    PQresultErrorMessage(res));
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
 * event and COMMIT go out on a libpq pipeline, then their results are read
 * in order.  If a statement fails, the server skips the rest up to the
 * sync (PGRES_PIPELINE_ABORTED) and the transaction is rolled back below.
 */
int
acct_store(PGconn *pg, struct acct_event *evs, size_t n)
{
	PGresult *res;
	ExecStatusType st;
	size_t i;
	int ok = 1;

	if (PQenterPipelineMode(pg) != 1)
		goto broken;
	ok = PQsendQueryParams(pg, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
	for (i = 0; ok && i < n; i++)
		ok = send_one(pg, &evs[i]) == 0;
	ok = ok && PQsendQueryParams(pg, "COMMIT", 0, NULL, NULL, NULL, NULL,
	    0) == 1;
	if (PQpipelineSync(pg) != 1)
		goto broken;
	if (ok) {
		ok = read_one(pg, NULL) == PGRES_COMMAND_OK;
		for (i = 0; i < n; i++)
			if (read_one(pg, &evs[i]) != PGRES_TUPLES_OK)
				ok = 0;
		if (read_one(pg, NULL) != PGRES_COMMAND_OK)
			ok = 0;
	}
	/* Everything up to the sync is read (all of it when a send failed):
	 * each query's result, then a NULL, then the sync's own result. */
	for (i = 0; i < 2 * (n + 2) + 1; i++) {
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
		goto broken;
	if (ok) {
		for (i = 0; i < n; i++)
			evs[i].stored = 1;
		return 0;
	}
	if (PQtransactionStatus(pg) != PQTRANS_IDLE)
		PQclear(PQexec(pg, "ROLLBACK"));
	return PQstatus(pg) == CONNECTION_OK ? -1 : -2;
broken:
	return PQstatus(pg) == CONNECTION_OK ? -1 : -2;
}
