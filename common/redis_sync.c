/* A synchronous hiredis connection for the loop-style daemons (scheduler,
 * dispatcher, accounting): reconnects every second when lost, and runs Lua
 * scripts by their SHA, loading them again after a Redis restart, or as
 * functions where the script allows it and Redis has them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "keys.h"
#include "log.h"
#include "redis_sync.h"
#include "util.h"

#define RQ_REDIS_RETRY_MS	1000

static char redis_password[256];

void
rq_redis_set_password(const char *password)
{
	snprintf(redis_password, sizeof(redis_password), "%s", password);
}

const char *
rq_redis_password(void)
{
	return redis_password;
}

int
rq_redis_noauth(const redisReply *rep, char *err, size_t errlen)
{
	if (rep == NULL || rep->type != REDIS_REPLY_ERROR)
		return 0;
	if (strncmp(rep->str, "NOAUTH", 6) == 0) {
		snprintf(err, errlen, "the server requires a password: set "
		    "[redis] password");
		return 1;
	}
	if (strncmp(rep->str, "WRONGPASS", 9) == 0 ||
	    strstr(rep->str, "invalid password") != NULL) {
		snprintf(err, errlen, "the server refused [redis] password "
		    "(%s)", rep->str);
		return 1;
	}
	return 0;
}

int
rq_redis_auth_reply(const redisReply *rep, char *err, size_t errlen)
{
	static int warned;

	if (rep == NULL) {
		snprintf(err, errlen, "AUTH: connection lost");
		return -1;
	}
	if (rep->type == REDIS_REPLY_STATUS)
		return 0;
	if (rep->type == REDIS_REPLY_ERROR &&
	    strstr(rep->str, "without any password configured") != NULL) {
		/* A password set here first, on the server next: works. */
		if (!warned)
			log_warnx("redis: [redis] password is set but the "
			    "server has none");
		warned = 1;
		return 0;
	}
	if (rq_redis_noauth(rep, err, errlen))
		return -1;
	snprintf(err, errlen, "AUTH: %s", rep->type == REDIS_REPLY_ERROR ?
	    rep->str : "unexpected reply");
	return -1;
}

int
rq_redis_auth(redisContext *c, char *err, size_t errlen)
{
	const char *av[2] = { "AUTH", redis_password };
	redisReply *rep;
	int rc;

	if (redis_password[0] == '\0')
		return 0;
	rep = redisCommandArgv(c, 2, av, NULL);
	rc = rq_redis_auth_reply(rep, err, errlen);
	if (rep != NULL)
		freeReplyObject(rep);
	return rc;
}

void
rq_redis_init(struct rq_redis *r, const char *host, int port,
    struct rq_script **scripts, size_t nscripts)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->host, sizeof(r->host), "%s", host);
	r->port = port;
	r->scripts = scripts;
	r->nscripts = nscripts;
	r->functions_retry_every_ms = RQ_FUNCTIONS_RETRY_MS;
}

void
rq_redis_close(struct rq_redis *r)
{
	if (r->c != NULL)
		redisFree(r->c);
	r->c = NULL;
}

/* Drops the connection after an I/O error; the next call reconnects. */
static void
redis_lost(struct rq_redis *r, const char *what)
{
	/* Once while it is down, however many tries it takes. */
	if (!r->down_logged)
		log_warnx("redis %s:%d: %s: %s", r->host, r->port, what,
		    rq_redis_errstr(r->c));
	rq_redis_close(r);
	r->next_try_ms = rq_mono_ms() + RQ_REDIS_RETRY_MS;
	r->down_logged = 1;
}

/*
 * s as a function library: its definitions (up to RQ_LUA_RUN) made once
 * when Redis loads it, and its run as the function s->fname of KEYS and
 * ARGV.  Any script EVAL runs is a valid function body: Redis compiles it
 * as one.  The name holds a hash of the whole text, so daemons of two
 * versions never replace each other's functions.  NULL when the script
 * has no marker, or flags of its own (a "#!lua" line), or out of memory.
 */
static char *
library_text(struct rq_script *s)
{
	/* The name ends with HASH_SLOT, written with the text and then
	 * overwritten, there and in the text, by the first digits of the
	 * SHA-256 of the whole text: a change of this wrapper alone is a new
	 * library too. */
	static const char HASH_SLOT[] = "000000000000";
	const size_t slot = sizeof(HASH_SLOT) - 1;
	const char *run = strstr(s->src, RQ_LUA_RUN);
	char *text, *p, hex[65];
	size_t len;

	if (run == NULL || strncmp(s->src, "#!", 2) == 0)
		return NULL;
	len = (size_t)snprintf(s->fname, sizeof(s->fname), "ringq_%s_%s",
	    s->name, HASH_SLOT);
	/* the definitions may make redis a local (RQ_LUA_EVENTS) */
	if (len >= sizeof(s->fname) || asprintf(&text, "#!lua name=%s\n"
	    "local rq_library = redis\n%.*s"
	    "rq_library.register_function('%s', function(KEYS, ARGV)\n%s\n"
	    "end)\n",
	    s->fname, (int)(run - s->src), s->src, s->fname,
	    run + strlen(RQ_LUA_RUN)) == -1)
		return NULL;
	rq_sha256_hex(text, strlen(text), hex);
	for (p = text; (p = strstr(p, s->fname)) != NULL; p += len)
		memcpy(p + len - slot, hex, slot);
	memcpy(s->fname + len - slot, hex, slot);
	return text;
}

/*
 * Scripts run by EVALSHA on this link from now on: for good on a Redis
 * without functions, else until r->functions_retry_ms, as what refused
 * them may pass (out of memory, a busy or loading server, an ACL that an
 * operator widens).  Logged when they were on, not when a probe (a retry:
 * functions_retry_ms still set) is refused again.
 */
static void
functions_off(struct rq_redis *r, const char *what, const char *why)
{
	if (r->functions && r->functions_retry_ms == 0)	/* not a retry */
		log_info("redis %s:%d: scripts run by EVALSHA: %s: %s",
		    r->host, r->port, what, why);
	r->functions = 0;
	r->functions_retry_ms = strstr(why, "unknown command") != NULL ? 0 :
	    rq_mono_ms() + r->functions_retry_every_ms;
}

/*
 * FUNCTION LOAD of s's library.  Returns 0 (loaded, or s has none), 1
 * when this server has no functions for us (an older Redis, or an ACL
 * without them: functions_off), -1 when the link was lost.  A library
 * Redis cannot compile is our bug, as a script is.
 */
static int
load_function(struct rq_redis *r, struct rq_script *s)
{
	redisReply *rep;
	char *text;
	int rc = 0;

	if ((text = library_text(s)) == NULL) {
		s->fname[0] = '\0';
		return 0;
	}
	/* Without REPLACE: a library of that name (its SHA) is this one,
	 * loaded already by another daemon or before a reconnect, and is
	 * neither compiled nor written to the append-only file again. */
	rep = redisCommand(r->c, "FUNCTION LOAD %s", text);
	free(text);
	if (rep == NULL) {
		redis_lost(r, "FUNCTION LOAD");
		return -1;
	}
	if (rep->type == REDIS_REPLY_ERROR &&
	    strstr(rep->str, "already exists") == NULL) {
		if (strstr(rep->str, "Error compiling") != NULL ||
		    strstr(rep->str, "Error registering") != NULL) {
			/* SCRIPT LOAD took the same text: our wrapper (or a
			 * limit of the server's) fails, EVALSHA still works */
			log_warnx("redis: FUNCTION LOAD %s: %s; it runs by "
			    "EVALSHA", s->name, rep->str);
			s->fname[0] = '\0';
		} else {
			functions_off(r, "FUNCTION LOAD", rep->str);
			rc = 1;
		}
	}
	freeReplyObject(rep);
	return rc;
}

/* Every script's library, while the server takes them.  Returns -1 when
 * the link was lost, else 0 (r->functions says whether they run). */
static int
load_functions(struct rq_redis *r)
{
	size_t i;

	for (i = 0; i < r->nscripts && r->functions; i++)
		if (load_function(r, r->scripts[i]) == -1)
			return -1;
	return 0;
}

static int
load_scripts(struct rq_redis *r)
{
	redisReply *rep;
	size_t i;

	for (i = 0; i < r->nscripts; i++) {
		struct rq_script *s = r->scripts[i];
		const char *run = strstr(s->src, RQ_LUA_RUN);

		/* emit()'s locals are filled by rq_per_run() alone: a script
		 * whose run forgets it fails at every call */
		if (strstr(s->src, "local function rq_per_run()") != NULL &&
		    (run == NULL || strncmp(run, RQ_LUA_RUN_EVENTS,
		    strlen(RQ_LUA_RUN_EVENTS)) != 0))
			fatalx("redis: script %s: its run must begin with "
			    "RQ_LUA_RUN_EVENTS", s->name);
		s->text = s->src;
		rep = redisCommand(r->c, "SCRIPT LOAD %s", s->text);
		if (rep != NULL && rep->type == REDIS_REPLY_ERROR &&
		    strstr(rep->str, "compiling script") != NULL &&
		    strncmp(s->src, "#!lua", 5) == 0 &&
		    strchr(s->src, '\n') != NULL) {
			/* Redis 6.2 takes no flags: the script without them
			 * on this link (EVAL on NOSCRIPT sends the same) */
			log_info("redis %s:%d: script %s runs without its "
			    "flags (%.*s): this Redis has none", r->host,
			    r->port, s->name,
			    (int)strcspn(s->src, "\n"), s->src);
			freeReplyObject(rep);
			s->text = strchr(s->src, '\n') + 1;
			rep = redisCommand(r->c, "SCRIPT LOAD %s", s->text);
		}
		if (rep == NULL) {
			redis_lost(r, "SCRIPT LOAD");
			return -1;
		}
		if (rep->type == REDIS_REPLY_ERROR &&
		    strstr(rep->str, "compiling script") != NULL)
			/* A script Redis cannot compile is our bug. */
			fatalx("redis: SCRIPT LOAD %s: %s", s->name, rep->str);
		if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
			/* -LOADING while a restarted Redis reads its AOF,
			 * NOAUTH, or the like: try again in a second, saying
			 * so once until Redis is back. */
			char why[300];

			if (!rq_redis_noauth(rep, why, sizeof(why)))
				snprintf(why, sizeof(why), "SCRIPT LOAD %s: %s",
				    s->name, rep->type == REDIS_REPLY_ERROR ?
				    rep->str : "unexpected reply");
			if (!r->down_logged)
				log_warnx("redis %s:%d: %s", r->host, r->port,
				    why);
			r->down_logged = 1;
			freeReplyObject(rep);
			rq_redis_close(r);
			r->next_try_ms = rq_mono_ms() + RQ_REDIS_RETRY_MS;
			return -1;
		}
		memcpy(s->sha, rep->str, 40);
		s->sha[40] = '\0';
		freeReplyObject(rep);
	}
	r->functions = 1;
	r->functions_retry_ms = 0;
	return load_functions(r);
}

/*
 * Whether the server has ringq-redis.so of our version (RINGQ.VERSION).
 * Returns -1 when the link was lost, else 0 (r->module says).
 */
static int
probe_module(struct rq_redis *r)
{
	redisReply *rep;
	int was = r->module;

	r->module = 0;
	if ((rep = redisCommand(r->c, "RINGQ.VERSION")) == NULL) {
		redis_lost(r, "RINGQ.VERSION");
		return -1;
	}
	if (rep->type == REDIS_REPLY_INTEGER &&
	    rep->integer == RQ_MODULE_VERSION)
		r->module = 1;
	else if (rep->type == REDIS_REPLY_INTEGER)
		log_warnx("redis %s:%d: ringq-redis.so is version %lld, this "
		    "build's is %d: the scripts run in Lua", r->host, r->port,
		    rep->integer, RQ_MODULE_VERSION);
	freeReplyObject(rep);
	if (r->module != was)
		log_info("redis %s:%d: %s", r->host, r->port, r->module ?
		    "ringq-redis.so loaded: native commands" :
		    "without ringq-redis.so: the scripts run in Lua");
	return 0;
}

int
rq_redis_ready(struct rq_redis *r)
{
	struct timeval tv = { 1, 0 };
	char err[300];

	if (r->c != NULL)
		return 0;
	if (rq_mono_ms() < r->next_try_ms)
		return -1;
	r->next_try_ms = rq_mono_ms() + RQ_REDIS_RETRY_MS;
	/* A stuck server must not stall the loop for long: tv. */
	if ((r->c = rq_redis_open(r->host, r->port, tv, err,
	    sizeof(err))) == NULL) {
		if (!r->down_logged)
			log_warnx("redis %s:%d: %s", r->host, r->port, err);
		r->down_logged = 1;
		return -1;
	}
	if (load_scripts(r) == -1 || probe_module(r) == -1)
		return -1;
	log_info("redis %s:%d: connected", r->host, r->port);
	r->down_logged = 0;
	return 0;
}

/* Appends the decimal digits of v at p; returns the end. */
static char *
put_uint(char *p, size_t v)
{
	char tmp[24];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

redisContext *
rq_redis_connect(const char *host, int port, struct timeval tv)
{
	if (host[0] == '/')
		return redisConnectUnixWithTimeout(host, tv);
	return redisConnectWithTimeout(host, port, tv);
}

const char *
rq_redis_errstr(const redisContext *c)
{
	return c != NULL && c->errstr[0] != '\0' ? c->errstr :
	    "connection lost";
}

redisContext *
rq_redis_open(const char *host, int port, struct timeval tv, char *err,
    size_t errlen)
{
	redisContext *c;

	if ((c = rq_redis_connect(host, port, tv)) == NULL || c->err) {
		snprintf(err, errlen, "connect: %s", c != NULL ? c->errstr :
		    "out of memory");
		if (c != NULL)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	/* A link that only waits (a subscription, a blocking take) finds out
	 * that its server went away silently (a host lost, a partition
	 * longer than Redis's tcp-keepalive) within about 30 s, not never.
	 * (A Unix socket has no keepalive: nothing to do there.) */
	if (c->connection_type == REDIS_CONN_TCP)
		(void)redisEnableKeepAlive(c);
	if (rq_redis_auth(c, err, errlen) == -1) {
		redisFree(c);
		return NULL;
	}
	return c;
}

long long
rq_redis_format(char **cmd, int argc, const char **argv)
{
	size_t stack[64], *lens = stack, total;
	char *buf, *p;
	int i;

	*cmd = NULL;
	if (argc < 0)
		return -1;
	if ((size_t)argc > sizeof(stack) / sizeof(*stack) &&
	    (lens = calloc((size_t)argc, sizeof(*lens))) == NULL)
		return -1;
	/* "*<argc>\r\n", then "$<len>\r\n<arg>\r\n" each: 20 digits at most */
	total = 1 + 20 + 2;
	for (i = 0; i < argc; i++) {
		lens[i] = strlen(argv[i]);
		total += 1 + 20 + 2 + lens[i] + 2;
	}
	if ((buf = malloc(total + 1)) == NULL) {
		if (lens != stack)
			free(lens);
		return -1;
	}
	p = buf;
	*p++ = '*';
	p = put_uint(p, (size_t)argc);
	*p++ = '\r';
	*p++ = '\n';
	for (i = 0; i < argc; i++) {
		*p++ = '$';
		p = put_uint(p, lens[i]);
		*p++ = '\r';
		*p++ = '\n';
		memcpy(p, argv[i], lens[i]);
		p += lens[i];
		*p++ = '\r';
		*p++ = '\n';
	}
	*p = '\0';
	if (lens != stack)
		free(lens);
	*cmd = buf;
	return p - buf;
}

redisReply *
rq_redis_command(redisContext *c, int argc, const char **argv)
{
	void *rep = NULL;
	char *cmd;
	long long len;
	int rc;

	if ((len = rq_redis_format(&cmd, argc, argv)) < 0) {
		c->err = REDIS_ERR_OOM;
		snprintf(c->errstr, sizeof(c->errstr), "Out of memory");
		return NULL;
	}
	rc = redisAppendFormattedCommand(c, cmd, (size_t)len);
	free(cmd);
	if (rc != REDIS_OK || redisGetReply(c, &rep) != REDIS_OK)
		return NULL;
	return rep;
}

/* An error reply whose text starts with prefix. */
static int
is_error(const redisReply *rep, const char *prefix)
{
	return rep->type == REDIS_REPLY_ERROR &&
	    strncmp(rep->str, prefix, strlen(prefix)) == 0;
}

/*
 * FCALL of s's function; av is the command (argc words), its first two
 * ours to set.  Returns the reply, or NULL: with the link closed when it
 * was lost (logged; the function may have run), with the link up when
 * Redis refused the function before it ran and EVALSHA must run it.
 */
static redisReply *
run_function(struct rq_redis *r, struct rq_script *s, int argc,
    const char **av)
{
	redisReply *rep;

	av[0] = "FCALL";
	av[1] = s->fname;
	if ((rep = rq_redis_command(r->c, argc, av)) == NULL)
		goto lost;
	if (is_error(rep, "ERR Function not found")) {
		/* FUNCTION FLUSH, or a Redis without persistence restarted:
		 * load it again.  It did not run. */
		freeReplyObject(rep);
		if (load_function(r, s) != 0)
			return NULL;	/* lost, or functions off */
		if (s->fname[0] == '\0')	/* it cannot be loaded */
			return NULL;
		if ((rep = rq_redis_command(r->c, argc, av)) == NULL)
			goto lost;
	}
	if (is_error(rep, "OOM")) {
		/* Above maxmemory Redis refuses a function that may write
		 * before it runs, a script only at its first write that may
		 * grow memory (ours start by taking ids out of sets): the
		 * same rule as before, by EVALSHA. */
		freeReplyObject(rep);
		return NULL;
	}
	if (is_error(rep, "NOPERM")) {
		/* an ACL that loads functions but may not call them */
		functions_off(r, "FCALL", rep->str);
		freeReplyObject(rep);
		return NULL;
	}
	if (r->functions_retry_ms != 0) {	/* the probe passed */
		r->functions_retry_ms = 0;
		log_info("redis %s:%d: scripts run as functions again",
		    r->host, r->port);
	}
	return rep;
lost:
	redis_lost(r, s->name);
	return NULL;
}

/*
 * s's command in ringq-redis.so, named in cmd; av is the command (argc
 * words), its first ours to set.  Returns the reply, or NULL: with the
 * link closed when it was lost (logged; the command may have run), with the link up
 * when Redis refused the command before it ran (the module was unloaded,
 * an ACL forbids it, or OOM) and the Lua must run it.
 */
static redisReply *
run_native(struct rq_redis *r, struct rq_script *s, int argc,
    const char **av, char *cmd, size_t cmdlen)
{
	redisReply *rep;

	snprintf(cmd, cmdlen, "ringq.%s", s->name);
	av[0] = cmd;
	if ((rep = rq_redis_command(r->c, argc, av)) == NULL) {
		redis_lost(r, s->name);
		return NULL;
	}
	if (is_error(rep, "ERR unknown command") || is_error(rep, "NOPERM")) {
		log_warnx("redis %s:%d: %s: %s; the scripts run in Lua",
		    r->host, r->port, cmd, rep->str);
		r->module = 0;
		freeReplyObject(rep);
		return NULL;
	}
	if (is_error(rep, "OOM")) {
		/* Refused before it ran, like a function: EVALSHA decides */
		freeReplyObject(rep);
		return NULL;
	}
	return rep;
}

int
rq_redis_refused_for_now(const char *error)
{
	static const char *const codes[] = { "MISCONF", "READONLY", "OOM",
	    "BUSY", "LOADING", "TRYAGAIN", "MASTERDOWN", "NOREPLICAS",
	    "CLUSTERDOWN" };
	/* Redis 6.2 wraps a refusal inside a script: "ERR Error running
	 * script (call to f_...): @user_script:9: -READONLY You can't..." */
	int wrapped = strncmp(error, "ERR Error running script", 24) == 0;
	const char *p;
	size_t i, n;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		n = strlen(codes[i]);
		if (strncmp(error, codes[i], n) == 0 &&
		    (error[n] == ' ' || error[n] == '\0'))
			return 1;
		for (p = error; wrapped && (p = strstr(p, codes[i])) != NULL;
		    p += n)
			if (p > error && p[-1] == '-' &&
			    (p[n] == ' ' || p[n] == '\0'))
				return 1;
	}
	return 0;
}

redisReply *
rq_redis_eval(struct rq_redis *r, struct rq_script *s, int nkeys,
    int argc, const char **argv)
{
	const char *stack[3 + 32], **av = stack;
	char nk[16], native[96];
	redisReply *rep;
	int i;

	r->refused_for_now = 0;
	if (argc < 0 || (r->c == NULL && rq_redis_ready(r) == -1))
		return NULL;
	if (argc > 32 && (av = calloc((size_t)argc + 3, sizeof(*av))) == NULL) {
		log_warnx("redis: script %s: out of memory", s->name);
		return NULL;
	}
	snprintf(nk, sizeof(nk), "%d", nkeys);
	av[2] = nk;
	for (i = 0; i < argc; i++)
		av[3 + i] = argv[i];
	rep = NULL;
	if (r->module && s->native) {
		rep = run_native(r, s, 2 + argc, av + 1, native,
		    sizeof(native));
		if (rep == NULL && r->c == NULL)
			goto done;	/* lost, and logged: it may have run */
	}
	if (rep == NULL && !r->functions && r->functions_retry_ms != 0 &&
	    rq_mono_ms() >= r->functions_retry_ms) {
		/* A probe: functions_retry_ms stays set (functions_off()
		 * then stays quiet) until an FCALL is answered. */
		r->functions = 1;
		if (load_functions(r) == -1)
			goto done;	/* lost, and logged */
	}
	if (rep == NULL && r->functions && s->fname[0] != '\0') {
		rep = run_function(r, s, 3 + argc, av);
		if (rep == NULL && r->c == NULL)
			goto done;	/* lost, and logged: it may have run */
	}
	if (rep == NULL) {
		av[0] = "EVALSHA";
		av[1] = s->sha;
		rep = rq_redis_command(r->c, 3 + argc, av);
	}
	if (rep != NULL && is_error(rep, "NOSCRIPT")) {
		/* The server lost its script cache (restart, SCRIPT FLUSH). */
		freeReplyObject(rep);
		av[0] = "EVAL";
		av[1] = s->text != NULL ? s->text : s->src;
		rep = rq_redis_command(r->c, 3 + argc, av);
	}
done:
	if (av != stack)
		free(av);
	if (rep == NULL) {
		if (r->c != NULL)
			redis_lost(r, s->name);
		return NULL;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		log_warnx("redis: script %s: %s", s->name, rep->str);
		r->refused_for_now = rq_redis_refused_for_now(rep->str);
		freeReplyObject(rep);
		return NULL;
	}
	return rep;
}

const char *
rq_reply_str(const redisReply *rep)
{
	if (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS)
		return rep->str;
	return NULL;
}
