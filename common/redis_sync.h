/* A synchronous Redis link that reconnects by itself, at most once a second,
 * and runs Lua scripts by SHA (see redis_sync.c). */
#ifndef RQ_REDIS_SYNC_H
#define RQ_REDIS_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "config.h"

/* A Lua script loaded with SCRIPT LOAD at each (re)connect; one with the
 * RQ_LUA_RUN marker (common/keys.h) also as a function library, on a Redis
 * that has functions: its definitions are then made once, not per run. */
struct rq_script {
	const char	*name;
	const char	*src;
	/* what this link loaded: src, or src without its "#!lua flags"
	 * line on a Redis that has no flags (6.2) */
	const char	*text;
	char		 sha[41];
	char		 fname[80];	/* its function, "" = EVALSHA only */
	/* ringq-redis.so has it as the command "ringq.<name>", with the
	 * function's arguments and answer (common/redis_module.c) */
	int		 native;
};

/* The scripts are borrowed for the life of the link. */
struct rq_redis {
	redisContext	*c;
	char		 host[RQ_ADDR_MAX];
	int		 port;
	uint64_t	 next_try_ms;	/* monotonic */
	int		 down_logged;
	struct rq_script **scripts;
	size_t		 nscripts;
	int		 functions;	/* the server has FUNCTION/FCALL */
	int		 module;	/* ringq-redis.so, of our version */
	/* After a refusal that may pass (not "unknown command"), functions
	 * are tried again at functions_retry_ms (monotonic; 0 = never), and
	 * it stays set until an FCALL of that probe is answered. */
	uint64_t	 functions_retry_ms;
	uint64_t	 functions_retry_every_ms;	/* RQ_FUNCTIONS_RETRY_MS */
	/* The last rq_redis_eval was refused for now, not for good: Redis
	 * refuses writes (MISCONF, READONLY, OOM), is busy or loading
	 * (rq_redis_refused_for_now). */
	int		 refused_for_now;
};

#define RQ_FUNCTIONS_RETRY_MS	60000

/* Whether an error reply's text is a refusal for now (the server's state:
 * writes refused after a failed AOF or RDB write, a replica, out of
 * memory, a busy script, a load) rather than one of the command. */
int	rq_redis_refused_for_now(const char *error);

void	rq_redis_init(struct rq_redis *r, const char *host, int port,
	    struct rq_script **scripts, size_t nscripts);
/* Connects if needed and it is time to try.  Returns 0 when connected. */
int	rq_redis_ready(struct rq_redis *r);
/* Runs s: its command in ringq-redis.so when the server has loaded that
 * module (of RQ_MODULE_VERSION) and s is native, else FCALL of its
 * function when it has one (loaded again if Redis
 * lost it), else EVALSHA (EVAL on NOSCRIPT).  argv holds nkeys keys, then the
 * arguments (any number).  Returns the reply (caller frees it with freeReplyObject) or
 * NULL on error, logged; a lost connection is closed for a later retry. */
redisReply *rq_redis_eval(struct rq_redis *r, struct rq_script *s,
	    int nkeys, int argc, const char **argv);
void	rq_redis_close(struct rq_redis *r);

/* [redis] password: every Redis link of this process sends AUTH with it
 * after each connect (rq_redis, the gateway's store, the dispatcher's
 * subscription, ringq-ctl); "" = none.  Copied; call before connecting. */
void	rq_redis_set_password(const char *password);
const char *rq_redis_password(void);
/* Sends AUTH on c when a password is set.  Returns 0 (also when the server
 * has no password: warned about), or -1 with the reason in err (never the
 * password itself). */
int	rq_redis_auth(redisContext *c, char *err, size_t errlen);
/* Reads the reply to AUTH (NULL: link lost), as rq_redis_auth() does. */
int	rq_redis_auth_reply(const redisReply *rep, char *err, size_t errlen);
/* A reply error meaning "no or a wrong password": fills err with advice. */
int	rq_redis_noauth(const redisReply *rep, char *err, size_t errlen);
/* A connection to Redis at host:port, or to its Unix socket when host is
 * an absolute path (port then unused): cheaper per round trip than TCP on
 * loopback, for a Redis on the same machine. */
redisContext *rq_redis_connect(const char *host, int port, struct timeval tv);
/* Why c failed, for a log line: hiredis's reason, or "connection lost"
 * when it gave none (or there is no c). */
const char *rq_redis_errstr(const redisContext *c);
/* A link as every daemon's: rq_redis_connect, tv as its I/O timeout too,
 * and AUTH (rq_redis_auth).  Returns it, or NULL with the reason in err
 * (never the password). */
redisContext *rq_redis_open(const char *host, int port, struct timeval tv,
	    char *err, size_t errlen);
/* The command argv (NUL-terminated strings) in Redis's protocol, in *cmd
 * (malloc'd; the caller frees it).  Returns its length, or -1 when out of
 * memory.  What redisFormatCommandArgv does without a sprintf per
 * argument: the gateway formats a 50-argument script call per request. */
long long rq_redis_format(char **cmd, int argc, const char **argv);
/* redisCommandArgv through rq_redis_format. */
redisReply *rq_redis_command(redisContext *c, int argc, const char **argv);
/* The string of a string or status reply, else NULL (nil, number, ...). */
const char *rq_reply_str(const redisReply *rep);

#endif
