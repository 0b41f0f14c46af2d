/* The gateway's Redis glue: one hiredis async connection on the event loop,
 * reconnected every second when lost, the read of a job with its timeline
 * (one Lua script), and gw_store_command for the modules with scripts of
 * their own (the policy-checked create in policy_store.c, ...). */
#include <sys/queue.h>

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>
#include <openssl/evp.h>

#include "gateway.h"
#include "keys.h"
#include "log.h"
#include "redis_sync.h"

#define STORE_RETRY_MS	1000
/* hiredis 0.14 has no command timeout: a Redis that stops answering
 * (frozen, overloaded, a half-open TCP connection) would hold requests
 * forever.  Past this, the connection is dropped and made again. */
#define STORE_TIMEOUT_MS	5000
/* Scripts whose SHA1 is known (EVALSHA); the gateway has a handful. */
#define STORE_SCRIPTS_MAX	16

/* A script the gateway sends, found by the address of its text (they are
 * static strings) and checked against a copy of the text, so that a
 * buffer reused for another script can never be sent as the old one. */
struct store_script {
	const char	*src;
	char		*copy;
	size_t		 len;
	char		 sha[41];
	const char	*native;	/* its command in ringq-redis.so */
};

struct gw_store {
	struct event_base	*base;
	char			 host[RQ_ADDR_MAX];
	int			 port;
	redisAsyncContext	*ac;		/* NULL while disconnected */
	int			 connected;
	int			 stopping;
	int			 down_logged;	/* log an outage once */
	int			 auth_failed;	/* dropped for the password */
	struct event		*retry;
	struct event		*watchdog;
	/* Sent and unanswered, oldest first (Redis answers in order). */
	TAILQ_HEAD(, store_op)	 pending;
	struct store_script	 scripts[STORE_SCRIPTS_MAX];
	size_t			 nscripts;
	int			 module;	/* ringq-redis.so, ours */
};

/* One pending operation; freed by its reply callback, which hiredis runs
 * exactly once (with a NULL reply when the connection goes away). */
struct store_op {
	TAILQ_ENTRY(store_op)	 entry;
	struct gw_store		*st;
	uint64_t		 sent_ms;	/* monotonic */
	gw_store_get_cb		*got;
	gw_store_reply_cb	*raw;
	void			*arg;
	/* Sent as EVALSHA: the command as formatted, and its script, to
	 * send it again as EVAL should Redis not know the script. */
	char			*cmd;
	size_t			 cmdlen;
	const struct store_script *script;
	int			 native;	/* sent as script->native */
	char			 id[RQ_ID_LEN + 1];
};

static void	store_connect(struct gw_store *);
static void	store_auth_cb(redisAsyncContext *, void *, void *);
static void	store_module_cb(redisAsyncContext *, void *, void *);

static void
store_schedule(struct gw_store *st)
{
	struct timeval tv = { STORE_RETRY_MS / 1000,
	    (STORE_RETRY_MS % 1000) * 1000 };

	if (!st->stopping)
		evtimer_add(st->retry, &tv);
}

static void
store_retry_cb(evutil_socket_t fd, short ev, void *arg)
{
	store_connect(arg);
}

static void
store_watchdog_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct gw_store *st = arg;
	struct store_op *op;
	redisAsyncContext *ac;

	if ((op = TAILQ_FIRST(&st->pending)) == NULL || st->ac == NULL ||
	    rq_mono_ms() - op->sent_ms < STORE_TIMEOUT_MS)
		return;
	log_warnx("redis: no answer from %s:%d for %d ms (call %s); "
	    "reconnecting", st->host, st->port, STORE_TIMEOUT_MS, op->id);
	/* Runs the pending callbacks with an error (and our disconnect
	 * callback); then connect again in a second. */
	ac = st->ac;
	st->ac = NULL;
	st->connected = 0;
	redisAsyncFree(ac);
	store_schedule(st);
}

static void
store_connect_cb(const redisAsyncContext *ac, int status)
{
	struct gw_store *st = ac->data;

	if (status != REDIS_OK) {
		/* hiredis frees ac after this callback. */
		if (!st->down_logged)
			log_warnx("redis: cannot connect to %s:%d: %s; "
			    "retrying every second", st->host, st->port,
			    ac->errstr);
		st->down_logged = 1;
		st->ac = NULL;
		st->connected = 0;
		store_schedule(st);
		return;
	}
	/* Usable once AUTH (or, without a password, a PING) says so: a
	 * missing or wrong password is then one clear line, not an error on
	 * every request. */
	if (rq_redis_password()[0] != '\0') {
		const char *av[2] = { "AUTH", rq_redis_password() };

		if (redisAsyncCommandArgv(st->ac, store_auth_cb, st, 2, av,
		    NULL) == REDIS_OK)
			return;
	} else if (redisAsyncCommand(st->ac, store_auth_cb, st, "PING") ==
	    REDIS_OK)
		return;
	log_warnx("redis: %s:%d: cannot send AUTH", st->host, st->port);
	redisAsyncDisconnect(st->ac);
}

/* Whether Redis has ringq-redis.so of our version (RINGQ.VERSION): its
 * commands then stand in for the scripts that have one. */
static void
store_module_cb(redisAsyncContext *ac, void *r, void *arg)
{
	struct gw_store *st = arg;
	redisReply *rep = r;

	if (rep == NULL || st->ac != ac)
		return;
	st->module = rep->type == REDIS_REPLY_INTEGER &&
	    rep->integer == RQ_MODULE_VERSION;
	if (rep->type == REDIS_REPLY_INTEGER && !st->module)
		log_warnx("redis: ringq-redis.so is version %lld, this "
		    "build's is %d: the scripts run in Lua", rep->integer,
		    RQ_MODULE_VERSION);
	else if (st->module)
		log_info("redis: ringq-redis.so loaded: native commands");
}

static void
store_auth_cb(redisAsyncContext *ac, void *r, void *arg)
{
	struct gw_store *st = arg;
	char err[300];

	if (r == NULL || st->ac != ac)
		return;		/* the link went away meanwhile */
	if (rq_redis_noauth(r, err, sizeof(err)) ||
	    (rq_redis_password()[0] != '\0' &&
	    rq_redis_auth_reply(r, err, sizeof(err)) == -1)) {
		if (!st->down_logged)
			log_warnx("redis: %s:%d: %s; retrying every second",
			    st->host, st->port, err);
		st->down_logged = 1;
		st->auth_failed = 1;
		redisAsyncDisconnect(ac);
		return;
	}
	st->connected = 1;
	st->down_logged = 0;
	log_info("redis: connected to %s:%d", st->host, st->port);
	/* Until it answers, the scripts go as Lua. */
	st->module = 0;
	if (redisAsyncCommand(ac, store_module_cb, st, "RINGQ.VERSION") !=
	    REDIS_OK)
		log_warnx("redis: cannot ask for ringq-redis.so");
}

static void
store_disconnect_cb(const redisAsyncContext *ac, int status)
{
	struct gw_store *st = ac->data;

	st->ac = NULL;
	st->connected = 0;
	if (st->stopping)
		return;
	if (st->auth_failed) {
		/* Already said why. */
		st->auth_failed = 0;
		store_schedule(st);
		return;
	}
	log_warnx("redis: connection to %s:%d lost: %s; reconnecting",
	    st->host, st->port, status == REDIS_OK ? "closed" : ac->errstr);
	st->down_logged = 1;
	store_schedule(st);
}

static void
store_connect(struct gw_store *st)
{
	redisAsyncContext *ac;

	if (st->stopping || st->ac != NULL)
		return;
	ac = st->host[0] == '/' ? redisAsyncConnectUnix(st->host) :
	    redisAsyncConnect(st->host, st->port);
	if (ac == NULL || ac->err) {
		if (!st->down_logged)
			log_warnx("redis: cannot connect to %s:%d: %s",
			    st->host, st->port, ac ? ac->errstr : "no memory");
		st->down_logged = 1;
		if (ac)
			redisAsyncFree(ac);
		store_schedule(st);
		return;
	}
	ac->data = st;
	if (redisLibeventAttach(ac, st->base) != REDIS_OK) {
		redisAsyncFree(ac);
		store_schedule(st);
		return;
	}
	redisAsyncSetConnectCallback(ac, store_connect_cb);
	redisAsyncSetDisconnectCallback(ac, store_disconnect_cb);
	st->ac = ac;
}

struct gw_store *
gw_store_new(struct event_base *base, const char *host, int port)
{
	struct timeval tv = { 1, 0 };
	struct gw_store *st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	st->base = base;
	snprintf(st->host, sizeof(st->host), "%s", host);
	st->port = port;
	TAILQ_INIT(&st->pending);
	st->retry = evtimer_new(base, store_retry_cb, st);
	st->watchdog = event_new(base, -1, EV_PERSIST, store_watchdog_cb, st);
	if (st->retry == NULL || st->watchdog == NULL ||
	    event_add(st->watchdog, &tv) == -1) {
		if (st->retry)
			event_free(st->retry);
		if (st->watchdog)
			event_free(st->watchdog);
		free(st);
		return NULL;
	}
	store_connect(st);
	return st;
}

void
gw_store_close(struct gw_store *st)
{
	redisAsyncContext *ac;

	st->stopping = 1;
	st->connected = 0;
	evtimer_del(st->retry);
	event_del(st->watchdog);
	if ((ac = st->ac) != NULL) {
		st->ac = NULL;
		redisAsyncFree(ac);	/* runs pending callbacks with NULL */
	}
}

int
gw_store_waiting(const struct gw_store *st)
{
	return st->ac != NULL && !TAILQ_EMPTY(&st->pending);
}

void
gw_store_free(struct gw_store *st)
{
	size_t i;

	if (st == NULL)
		return;
	gw_store_close(st);
	for (i = 0; i < st->nscripts; i++)
		free(st->scripts[i].copy);
	event_free(st->retry);
	event_free(st->watchdog);
	free(st);
}

int
gw_store_connected(const struct gw_store *st)
{
	return st->connected && st->ac != NULL;
}

/*
 * Each operation is one Lua script rather than a MULTI/EXEC: a single
 * command either is queued whole or not at all, so a failure to queue
 * (hiredis formatting, out of memory) can never leave a MULTI open on this
 * shared connection for the next request to join; it is atomic in Redis and
 * takes one round trip.  The callers write EVAL; a script is sent by
 * EVALSHA (its SHA1 computed here once), which spares Redis the hashing and
 * parsing of several KB per request, and hiredis their formatting.  When
 * Redis does not know the script (NOSCRIPT: it restarted, or SCRIPT FLUSH)
 * the script did not run, and the same command goes again as EVAL, which
 * also puts the script back in Redis's cache.  A connection lost after
 * either was sent still means "may or may not have run" to the caller.
 */

/* KEYS: job, the call's rq:timeline: (written by older versions: keys.h).
 * Returns { job fields, timeline fields }: gw_store_parse_get splits the
 * job's timeline entries from its other fields. */
static const char get_lua[] = "return " GW_LUA_CALL_HASHES "\n";

/* The known script with this text, learnt on first use; NULL when the
 * table is full or the hash fails (the command then goes as EVAL). */
static const struct store_script *
store_script(struct gw_store *st, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	struct store_script *s;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	size_t k, len = strlen(src);

	for (k = 0; k < st->nscripts; k++) {
		s = &st->scripts[k];
		if (s->src == src && s->len == len &&
		    !memcmp(s->copy, src, len))
			return s;
	}
	if (st->nscripts == STORE_SCRIPTS_MAX ||
	    EVP_Digest(src, len, md, &mdlen, EVP_sha1(), NULL) != 1 ||
	    mdlen != 20)
		return NULL;
	s = &st->scripts[st->nscripts];
	if ((s->copy = malloc(len)) == NULL)
		return NULL;
	memcpy(s->copy, src, len);
	st->nscripts++;
	s->src = src;
	s->len = len;
	s->native = src == gw_create_lua ? "ringq.create" : NULL;
	for (i = 0; i < mdlen; i++) {
		s->sha[2 * i] = hex[md[i] >> 4];
		s->sha[2 * i + 1] = hex[md[i] & 15];
	}
	s->sha[40] = '\0';
	return s;
}

static void	store_cb(redisAsyncContext *, void *, void *);

/* Sends one command, op's callback to run with its answer: an EVAL of a
 * static script as its command in ringq-redis.so when Redis has it, else
 * as EVALSHA (op keeps the EVALSHA, formatted, for the fallbacks: Lua
 * when the module is gone, EVAL when Redis lost the script), anything
 * else as it is. */
static int
store_send(struct gw_store *st, struct store_op *op, int argc,
    const char **argv)
{
	const char *sargv[2];
	long long len;
	int rc;

	op->script = NULL;
	if (argc >= 3 && !strcmp(argv[0], "EVAL") &&
	    (op->script = store_script(st, argv[1])) != NULL) {
		sargv[0] = argv[0];
		sargv[1] = argv[1];
		argv[0] = "EVALSHA";
		argv[1] = op->script->sha;
		len = rq_redis_format(&op->cmd, argc, argv);
		argv[0] = sargv[0];
		argv[1] = sargv[1];
		if (len <= 0) {
			op->cmd = NULL;
			return -1;
		}
		op->cmdlen = (size_t)len;
		op->native = st->module && op->script->native != NULL;
		if (op->native) {
			/* ringq.create numkeys keys... args...: FCALL's */
			sargv[0] = argv[1];
			argv[1] = op->script->native;
			rc = redisAsyncCommandArgv(st->ac, store_cb, op,
			    argc - 1, argv + 1, NULL);
			argv[1] = sargv[0];
		} else
			rc = redisAsyncFormattedCommand(st->ac, store_cb, op,
			    op->cmd, op->cmdlen);
		if (rc != REDIS_OK) {
			free(op->cmd);
			op->cmd = NULL;
			return -1;
		}
	} else if (redisAsyncCommandArgv(st->ac, store_cb, op, argc, argv,
	    NULL) != REDIS_OK)
		return -1;
	op->sent_ms = rq_mono_ms();
	TAILQ_INSERT_TAIL(&st->pending, op, entry);
	return 0;
}

/* After NOSCRIPT: op's command again, as EVAL.  The script did not run.
 * Returns 0 when sent. */
static int
store_resend_eval(redisAsyncContext *ac, struct store_op *op)
{
	const struct store_script *s = op->script;
	char head[64], *cmd;
	size_t argc, skip, rest, hlen, len;
	int n;

	/* op->cmd: *<argc>\r\n$7\r\nEVALSHA\r\n$40\r\n<sha>\r\n<the rest> */
	if (op->cmd == NULL || sscanf(op->cmd, "*%zu\r\n", &argc) != 1)
		return -1;
	n = snprintf(head, sizeof(head), "*%zu\r\n$7\r\nEVALSHA\r\n$40\r\n",
	    argc);
	skip = (size_t)n + 40 + 2;
	if (op->cmdlen < skip || memcmp(op->cmd, head, (size_t)n) != 0)
		return -1;
	rest = op->cmdlen - skip;
	n = snprintf(head, sizeof(head), "*%zu\r\n$4\r\nEVAL\r\n$%zu\r\n",
	    argc, s->len);
	hlen = (size_t)n;
	len = hlen + s->len + 2 + rest;
	if ((cmd = malloc(len)) == NULL)
		return -1;
	memcpy(cmd, head, hlen);
	memcpy(cmd + hlen, s->copy, s->len);
	memcpy(cmd + hlen + s->len, "\r\n", 2);
	memcpy(cmd + hlen + s->len + 2, op->cmd + skip, rest);
	free(op->cmd);
	op->cmd = NULL;		/* sent as EVAL: no second fallback */
	if (redisAsyncFormattedCommand(ac, store_cb, op, cmd, len) !=
	    REDIS_OK) {
		free(cmd);
		return -1;
	}
	free(cmd);
	return 0;
}

/* Whether r is a flat array of field, value strings. */
static int
flat_pairs(const redisReply *r)
{
	size_t i;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0)
		return 0;
	for (i = 0; i < r->elements; i++)
		if (r->element[i] == NULL ||
		    r->element[i]->type != REDIS_REPLY_STRING)
			return 0;
	return 1;
}

/* Whether field is among the n strings of a. */
static int
among(const char *const *a, size_t n, const char *field)
{
	size_t i;

	for (i = 0; i < n; i += 2)
		if (strcmp(a[i], field) == 0)
			return 1;
	return 0;
}

int
gw_store_parse_get(const redisReply *r, const char ***job, size_t *njob,
    const char ***tl, size_t *ntl)
{
	const redisReply *h, *old;
	size_t i;

	*job = *tl = NULL;
	*njob = *ntl = 0;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    !flat_pairs(r->element[0]) || !flat_pairs(r->element[1]))
		return -1;
	h = r->element[0];
	old = r->element[1];
	if (h->elements + old->elements == 0)
		return 0;
	*job = calloc(h->elements + 1, sizeof(**job));
	*tl = calloc(h->elements + old->elements + 1, sizeof(**tl));
	if (*job == NULL || *tl == NULL) {
		free(*job);
		free(*tl);
		*job = *tl = NULL;
		return -1;
	}
	/* The timeline entries are the job's fields that begin with a digit
	 * ("<attempt>:<status>"; no other field does) */
	for (i = 0; i < h->elements; i += 2) {
		const char **to = *job;
		size_t *n = njob;

		if (isdigit((unsigned char)h->element[i]->str[0])) {
			to = *tl;
			n = ntl;
		}
		to[(*n)++] = h->element[i]->str;
		to[(*n)++] = h->element[i + 1]->str;
	}
	/* and those of a call from before that, in rq:timeline:<id> */
	for (i = 0; i < old->elements; i += 2)
		if (!among(*tl, *ntl, old->element[i]->str)) {
			(*tl)[(*ntl)++] = old->element[i]->str;
			(*tl)[(*ntl)++] = old->element[i + 1]->str;
		}
	return 0;
}

/* gw_store_get's answer. */
static void
store_got(struct store_op *op, redisReply *r)
{
	const char **job, **tl;
	size_t njob, ntl;

	if (gw_store_parse_get(r, &job, &njob, &tl, &ntl) == -1) {
		log_warnx("redis: call %s: reading the job failed: %s", op->id,
		    r == NULL ? "connection lost" :
		    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		op->got(-1, NULL, 0, NULL, 0, op->arg);
	} else {
		op->got(0, job, njob, tl, ntl, op->arg);
		free(job);
		free(tl);
	}
}

/* Every answer (NULL: the connection went away). */
static void
store_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct store_op *op = privdata;
	struct gw_store *st = op->st;
	redisReply *r = reply;

	TAILQ_REMOVE(&st->pending, op, entry);
	if (r != NULL && r->type == REDIS_REPLY_ERROR && op->native &&
	    op->cmd != NULL && (!strncmp(r->str, "ERR unknown command", 19) ||
	    !strncmp(r->str, "NOPERM", 6) || !strncmp(r->str, "OOM", 3))) {
		/* The command did not run.  The module is gone (MODULE
		 * UNLOAD) or an ACL forbids its command: the script, from
		 * now on.  Above maxmemory (the command is refused whole,
		 * a script only at its first write): the script, this once,
		 * so that a replay or a refusal is still answered. */
		if (strncmp(r->str, "OOM", 3) != 0) {
			log_warnx("redis: %s: %s; the scripts run in Lua",
			    op->script->native, r->str);
			st->module = 0;
		}
		op->native = 0;
		if (redisAsyncFormattedCommand(ac, store_cb, op, op->cmd,
		    op->cmdlen) == REDIS_OK) {
			op->sent_ms = rq_mono_ms();
			TAILQ_INSERT_TAIL(&st->pending, op, entry);
			return;
		}
		log_warnx("redis: call %s: cannot send the script", op->id);
	}
	if (r != NULL && r->type == REDIS_REPLY_ERROR && op->cmd != NULL &&
	    !op->native && !strncmp(r->str, "NOSCRIPT", 8)) {
		if (store_resend_eval(ac, op) == 0) {
			op->sent_ms = rq_mono_ms();
			TAILQ_INSERT_TAIL(&st->pending, op, entry);
			return;
		}
		/* Not sent: the caller gets the NOSCRIPT error (nothing ran). */
		log_warnx("redis: call %s: cannot send the script again",
		    op->id);
	}
	if (op->got != NULL)
		store_got(op, r);
	else
		op->raw(r, op->arg);
	free(op->cmd);
	free(op);
}

int
gw_store_get(struct gw_store *st, const char *id, gw_store_get_cb *got,
    void *arg)
{
	char jobkey[64], tlkey[64];
	const char *argv[] = { "EVAL", get_lua, "2", jobkey, tlkey };
	struct store_op *op;

	if (!gw_store_connected(st))
		return -1;
	if ((op = calloc(1, sizeof(*op))) == NULL)
		return -1;
	op->st = st;
	op->got = got;
	op->arg = arg;
	snprintf(op->id, sizeof(op->id), "%s", id);
	snprintf(jobkey, sizeof(jobkey), "%s%s", RQ_KEY_JOB, id);
	snprintf(tlkey, sizeof(tlkey), "%s%s", RQ_KEY_TIMELINE, id);
	if (store_send(st, op, 5, argv) == -1) {
		log_warnx("redis: call %s: cannot send the query", id);
		free(op);
		return -1;
	}
	return 0;
}

/* For the modules with scripts of their own (store_calls.c, ...): the same
 * connection, reconnection and 5 s watchdog as the operations above. */
int
gw_store_command(struct gw_store *st, const char *id, int argc,
    const char **argv, gw_store_reply_cb *cb, void *arg)
{
	struct store_op *op;

	if (!gw_store_connected(st))
		return -1;
	if ((op = calloc(1, sizeof(*op))) == NULL)
		return -1;
	op->st = st;
	op->raw = cb;
	op->arg = arg;
	snprintf(op->id, sizeof(op->id), "%s", id ? id : "-");
	if (store_send(st, op, argc, argv) == -1) {
		log_warnx("redis: call %s: cannot send the command", op->id);
		free(op);
		return -1;
	}
	return 0;
}
