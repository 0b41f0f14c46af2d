/* The PostgreSQL schema as an ordered list of migrations, applied at
 * start-up under an advisory lock so that two accounting daemons starting
 * together never apply a step twice.  Never edit a released step: add one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounting.h"
#include "log.h"

/* Any constant, shared by every ringq-accounting of a database. */
#define ACCT_MIGRATION_LOCK	"7290521870042"

struct migration {
	int		 version;
	const char	*what;
	const char	*sql;
};

static const struct migration migrations[] = {
	{ 1, "calls, attempts and call_events",
	"CREATE DOMAIN ringq_status AS text CHECK (VALUE IN ("
	"  'queued', 'scheduled', 'dispatched', 'ringing', 'answered',"
	"  'completed', 'failed', 'canceled', 'expired'));"

	"CREATE TABLE calls ("
	"  id          text PRIMARY KEY,"
	"  tenant      text NOT NULL,"		/* '' until an event names it */
	"  target      text,"
	"  status      ringq_status NOT NULL,"
	"  reason      text,"
	"  sip_code    int CHECK (sip_code BETWEEN 100 AND 699),"
	"  attempts    int NOT NULL DEFAULT 0 CHECK (attempts >= 0),"
	"  created_at  timestamptz NOT NULL,"
	"  updated_at  timestamptz NOT NULL,"
	"  answered_at timestamptz,"
	"  ended_at    timestamptz,"
	"  talk_ms     bigint CHECK (talk_ms >= 0),"
	"  status_rank int NOT NULL CHECK (status_rank >= 0));"

	"CREATE TABLE attempts ("
	"  call_id     text NOT NULL REFERENCES calls (id) ON DELETE CASCADE,"
	"  attempt     int NOT NULL CHECK (attempt >= 1),"
	"  node        text,"
	"  status      ringq_status NOT NULL,"
	"  reason      text,"
	"  sip_code    int CHECK (sip_code BETWEEN 100 AND 699),"
	"  started_at  timestamptz,"
	"  answered_at timestamptz,"
	"  ended_at    timestamptz,"
	"  talk_ms     bigint CHECK (talk_ms >= 0),"
	"  PRIMARY KEY (call_id, attempt));"

	/* The event row goes in first (its insert tells whether the event is
	 * new), the call row after it: check the reference at COMMIT. */
	"CREATE TABLE call_events ("
	"  call_id     text NOT NULL REFERENCES calls (id) ON DELETE CASCADE"
	"              DEFERRABLE INITIALLY DEFERRED,"
	"  attempt     int NOT NULL CHECK (attempt >= 0),"
	"  status      ringq_status NOT NULL,"
	"  at          timestamptz NOT NULL,"
	"  reason      text,"
	"  sip_code    int CHECK (sip_code BETWEEN 100 AND 699),"
	"  node        text,"
	"  duration_ms bigint CHECK (duration_ms >= 0),"
	"  detail      text,"
	"  received_at timestamptz NOT NULL DEFAULT now(),"
	"  PRIMARY KEY (call_id, attempt, status),"
	"  CHECK (attempt > 0 OR"
	"         status IN ('queued', 'scheduled', 'canceled', 'expired')));"
	},
	{ 2, "indexes for reports",
	/* a tenant's calls by time (the API's listing, billing) */
	"CREATE INDEX calls_tenant_created_idx ON calls (tenant, created_at);"
	/* calls still open: finding stuck ones stays cheap as history grows */
	"CREATE INDEX calls_open_idx ON calls (updated_at)"
	"  WHERE status NOT IN ('completed', 'failed', 'canceled', 'expired');"
	/* load and failure reports per telserver */
	"CREATE INDEX attempts_node_started_idx ON attempts (node, started_at);"
	},
	{ 3, "status retrying",
	/* The domain's CHECK is the only list of names; calls_open_idx and
	 * call_events' attempt 0 check list other statuses: unchanged. */
	"ALTER DOMAIN ringq_status DROP CONSTRAINT ringq_status_check;"
	"ALTER DOMAIN ringq_status ADD CONSTRAINT ringq_status_check"
	"  CHECK (VALUE IN ('queued', 'scheduled', 'dispatched', 'ringing',"
	"  'answered', 'retrying', 'completed', 'failed', 'canceled',"
	"  'expired'));"
	/* retrying takes enum value 5: the terminal statuses move up one,
	 * so status_rank = attempt * 16 + status keeps ordering them last. */
	"UPDATE calls SET status_rank = status_rank + 1"
	"  WHERE status_rank % 16 >= 5;"
	},
	{ 4, "results of VoiceXML applications",
	/* How the call's application ended (docs/api.md): on the event that
	 * carries it, and as the outcome of its attempt and of the call. */
	"ALTER TABLE call_events ADD COLUMN result jsonb;"
	"ALTER TABLE attempts ADD COLUMN result jsonb;"
	"ALTER TABLE calls ADD COLUMN result jsonb;"
	},
	{ 5, "call_events and attempts: references kept by their writer",
	/* A foreign key costs a lookup of the call per row written: a fifth
	 * of PostgreSQL's work per event.  The one writer (acct_store)
	 * upserts the call in the statement that adds its events and
	 * attempts, so the reference holds by construction; deleting a call
	 * still takes its events and attempts with it, once per statement. */
	"ALTER TABLE call_events"
	"  DROP CONSTRAINT IF EXISTS call_events_call_id_fkey;"
	"ALTER TABLE attempts DROP CONSTRAINT IF EXISTS attempts_call_id_fkey;"
	"CREATE FUNCTION ringq_call_delete() RETURNS trigger"
	"  LANGUAGE plpgsql AS $$ BEGIN"
	"  DELETE FROM call_events e USING gone g WHERE e.call_id = g.id;"
	"  DELETE FROM attempts a USING gone g WHERE a.call_id = g.id;"
	"  RETURN NULL; END $$;"
	"CREATE TRIGGER calls_delete AFTER DELETE ON calls"
	"  REFERENCING OLD TABLE AS gone"
	"  FOR EACH STATEMENT EXECUTE FUNCTION ringq_call_delete();"
	},
	{ 6, "calls: direction",
	/* An incoming call ([inbound] numbers) is the tenant's too, but
	 * billing counts it apart.  A constant default rewrites nothing, and
	 * the check is NOT VALID so that it reads no old row either (they
	 * all have the default; calls stored before are outbound). */
	"ALTER TABLE calls ADD COLUMN direction text NOT NULL"
	"  DEFAULT 'outbound';"
	"ALTER TABLE calls ADD CONSTRAINT calls_direction_check"
	"  CHECK (direction IN ('outbound', 'inbound')) NOT VALID;"
	},
	{ 7, "calls and attempts: updates that skip the indexes",
	/* Each event updates its call's row, and from dispatched on its
	 * attempt's.  PostgreSQL keeps such an update on the row's page
	 * without touching the indexes (a HOT update) when no indexed
	 * column changes and the page has room.  calls_open_idx, keyed by
	 * updated_at under a predicate on status, changed with every event:
	 * it is now keyed by created_at, an open call being one not ended
	 * (ended_at is set exactly when the status becomes terminal, so the
	 * same calls).  Half of each new page is left for updates (pages
	 * written before keep theirs).  On bench_accounting.sh: 4 in 5 call
	 * updates HOT instead of 1 in 20, less CPU per event, and the two
	 * tables with their indexes smaller (the half pages cost less than
	 * the index entries every row version added).  The new index is
	 * built before the old one goes: the build blocks writes to calls,
	 * not reads, and the DROP's exclusive lock waits for no scan. */
	"CREATE INDEX calls_open7_idx ON calls (created_at)"
	"  WHERE ended_at IS NULL;"
	"DROP INDEX IF EXISTS calls_open_idx;"
	"ALTER INDEX calls_open7_idx RENAME TO calls_open_idx;"
	"ALTER TABLE calls SET (fillfactor = 50);"
	"ALTER TABLE attempts SET (fillfactor = 50);"
	},
	{ 8, "call_events: a call failed before any attempt",
	/* The scheduler ends a call whose calling hours cannot be planned
	 * again `failed` (reason policy) before any attempt, at attempt 0.
	 * Every row already there meets the wider check: NOT VALID reads
	 * none of them. */
	"ALTER TABLE call_events DROP CONSTRAINT call_events_check;"
	"ALTER TABLE call_events ADD CONSTRAINT call_events_check"
	"  CHECK (attempt > 0 OR status IN ('queued', 'scheduled',"
	"  'canceled', 'expired', 'failed')) NOT VALID;"
	},
};

#define NMIGRATIONS	(sizeof(migrations) / sizeof(migrations[0]))

int
acct_schema_version(void)
{
	return migrations[NMIGRATIONS - 1].version;
}

/* Runs sql (constant text, possibly several statements); 0 or -1. */
static int
exec_ok(PGconn *pg, const char *sql, const char *what)
{
	PGresult *res;
	ExecStatusType rs;

	res = PQexec(pg, sql);
	rs = PQresultStatus(res);
	if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK) {
		log_warnx("postgres: migration: %s: %s", what,
		    PQresultErrorMessage(res));
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return 0;
}

static int
applied(PGconn *pg, int version, int *yes)
{
	PGresult *res;
	char v[16];
	const char *params[1] = { v };

	snprintf(v, sizeof(v), "%d", version);
	res = PQexecParams(pg,
	    "SELECT 1 FROM schema_migrations WHERE version = $1::int",
	    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("postgres: migration: %s", PQresultErrorMessage(res));
		PQclear(res);
		return -1;
	}
	*yes = PQntuples(res) > 0;
	PQclear(res);
	return 0;
}

static int
apply(PGconn *pg, const struct migration *mg)
{
	PGresult *res;
	char v[16];
	const char *params[1] = { v };

	if (exec_ok(pg, "BEGIN", "begin") == -1)
		return -1;
	if (exec_ok(pg, mg->sql, mg->what) == -1)
		goto fail;
	snprintf(v, sizeof(v), "%d", mg->version);
	res = PQexecParams(pg, "INSERT INTO schema_migrations (version) "
	    "VALUES ($1::int)", 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_warnx("postgres: migration %d: %s", mg->version,
		    PQresultErrorMessage(res));
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	if (exec_ok(pg, "COMMIT", "commit") == -1)
		goto fail;
	log_info("postgres: schema migration %d applied (%s)", mg->version,
	    mg->what);
	return 0;
fail:
	PQclear(PQexec(pg, "ROLLBACK"));
	return -1;
}

/* The highest version applied to the database (0: none), or -1. */
static int
newest_applied(PGconn *pg)
{
	PGresult *res;
	int v = -1;

	res = PQexec(pg, "SELECT coalesce(max(version), 0) FROM "
	    "schema_migrations");
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		v = atoi(PQgetvalue(res, 0, 0));
	else
		log_warnx("postgres: migration: %s",
		    PQresultErrorMessage(res));
	PQclear(res);
	return v;
}

int
acct_migrate(PGconn *pg, char *err, size_t errlen)
{
	size_t i;
	int yes, newest, rc = -1;

	snprintf(err, errlen, "schema migration failed");
	if (exec_ok(pg, "SELECT pg_advisory_lock(" ACCT_MIGRATION_LOCK ")",
	    "lock") == -1)
		return -1;
	if (exec_ok(pg, "CREATE TABLE IF NOT EXISTS schema_migrations ("
	    "  version    int PRIMARY KEY,"
	    "  applied_at timestamptz NOT NULL DEFAULT now())",
	    "schema_migrations") == -1)
		goto done;
	/* A ringq-accounting older than the database (taken back after an
	 * upgrade) would store events by rules the schema no longer has. */
	if ((newest = newest_applied(pg)) == -1)
		goto done;
	if (newest > acct_schema_version()) {
		snprintf(err, errlen, "the database's schema is version %d, "
		    "newer than this ringq-accounting's %d: not used (run "
		    "the newer ringq-accounting)", newest,
		    acct_schema_version());
		goto done;
	}
	for (i = 0; i < NMIGRATIONS; i++) {
		if (applied(pg, migrations[i].version, &yes) == -1)
			goto done;
		if (!yes && apply(pg, &migrations[i]) == -1)
			goto done;
	}
	rc = 0;
done:
	/* A lost connection releases the lock by itself. */
	PQclear(PQexec(pg, "SELECT pg_advisory_unlock(" ACCT_MIGRATION_LOCK ")"));
	return rc;
}
