/* The telserver's side of a job's life in Redis (common/lifecycle.h): the
 * start-up recovery, the liveness key (refreshed every second, and the
 * fence when it could not be), the claim before each INVITE and the finish
 * after each call, kept and retried every second while Redis fails.  One
 * synchronous link, used from the Sofia thread only. */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keys.h"
#include "log.h"
#include "metrics.h"
#include "syncer.h"
#include "telserver.h"
#include "util.h"

#define LIFE_RETRY_MS	1000
/* The liveness key is refreshed this often, whatever heartbeat_ms is: its
 * TTL (RQ_NODE_TTL_MS) must never run out while we are fine. */
#define LIFE_ALIVE_MS	1000
/* Fenced when the key was last refreshed longer ago than its TTL minus
 * this: the scheduler may be about to end our attempts as interrupted. */
#define LIFE_FENCE_MARGIN_MS	1500
/* A kept finish that Redis refuses with the link up (an error reply, an
 * unexpected reply: not a lost connection) is tried this many times, then
 * dropped; one refused for now (writes refused, a replica, out of memory:
 * rq_redis_refused_for_now) is kept as long as that lasts, as one whose
 * link is lost: dropped, its attempt would end interrupted and be dialled
 * again when the call had ended. */
#define LIFE_FINISH_TRIES	30
/* At most one line this often about the finishes file's write errors,
 * and about Redis refusing the plain commands (life_reply). */
#define FINISHES_LOG_MS		10000
#define LIFE_REFUSAL_LOG_MS	10000

/* A finish waiting for Redis.  A "resolve" one stands for a claim whose
 * reply was lost: the claim may have run, leaving the job in our
 * rq:oncall with nobody calling; finishing it as interrupted ends that
 * attempt (retried by the rules) and does nothing if the claim never ran
 * (the finish script acts only on our own claim of that attempt). */
struct tel_finish {
	struct tel_finish	*next;
	struct rq_attempt_end	 e;
	int			 resolve;
	int			 tries;		/* refused with the link up */
	int			 on_disk;	/* in the finishes file */
	char			*call_id;
	char			*reason;
	char			*detail;
	char			*result;	/* e's strings: these */
};

/*
 * KEYS: rq:tel:<node> rq:drain.  ARGV: node, active, capacity, sip, pid,
 * "1" when we refuse jobs of our own accord (start-up, fence, shutdown),
 * TTL ms.  Writes our fleet state for ringq-ctl, updated_ms on Redis's
 * clock (the one ringq-ctl reads, whatever host it runs on), and returns
 * 1 when an operator put us in rq:drain.  The state it writes is the one
 * tel_life_state() gives once drain_op is set from that answer.
 */
static const char state_src[] =
"local drain = redis.call('SISMEMBER', KEYS[2], ARGV[1])\n"
"local st = 'up'\n"
"if drain == 1 then\n"
"  if tonumber(ARGV[2]) == 0 then st = 'drained' else st = 'draining' end\n"
"elseif ARGV[6] == '1' then st = 'draining' end\n"
"local t = redis.call('TIME')\n"
"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
"redis.call('HSET', KEYS[1], 'node', ARGV[1], 'active', ARGV[2],\n"
"    'capacity', ARGV[3], 'state', st, 'updated_ms',\n"
"    string.format('%.0f', now), 'sip', ARGV[4], 'pid', ARGV[5])\n"
"redis.call('PEXPIRE', KEYS[1], ARGV[7])\n"
"return drain\n";

static struct rq_script tel_state_script = { .name = "tel_state",
    .src = state_src };

static struct rq_script *life_scripts[] = {
	&rq_claim_script, &rq_finish_script, &rq_interrupt_script,
	&rq_claim_batch_script, &rq_finish_batch_script, &tel_state_script,
	&rq_inbound_script
};

static void
finish_free(struct tel_finish *f)
{
	free(f->call_id);
	free(f->reason);
	free(f->detail);
	free(f->result);
	free(f);
}

void
tel_life_open(struct tel_ctx *ctx)
{
	rq_redis_init(&ctx->redis, ctx->cfg->redis_host, ctx->cfg->redis_port,
	    life_scripts, sizeof(life_scripts) / sizeof(life_scripts[0]));
	tel_state_path(ctx->cfg, "finishes", ctx->finishes_path,
	    sizeof(ctx->finishes_path));
	if (ctx->finishes_path[0] == '\0' && (ctx->cfg->state_dir[0] ||
	    ctx->cfg->run_dir[0]))
		log_warnx("finishes: the file's path is too long: finishes "
		    "are kept in memory only");
	/* (without its thread, the tick syncs in the loop) */
	if (ctx->finishes_path[0] != '\0')
		ctx->finishes_syncer = rq_syncer_new("finishes", "finishes");
}

/*
 * The kept finishes on disk: ringq-telserver-NAME.finishes holds those
 * that carry an outcome (not the resolves), each appended when it is kept
 * (only while Redis fails), and is removed once none is left.  One that
 * Redis took meanwhile stays in the file until then: a next start that
 * reads it finds it recorded already, which Redis then ignores.  Never
 * written beside and renamed over: a file renamed over another before its
 * data reached the disk can be found empty after a power cut (XFS), while
 * synced appends stay.  A telserver killed -9 meanwhile records them at
 * its next start, before it ends the rest of its previous run's attempts
 * as interrupted: a call that was answered and completed is not retried,
 * and its customer not rung again.  After "ringqFn1", records: a 4-byte
 * length, then a packed message (common/msg.h): an EVENT, a finish; an
 * EVENT_ACK, the mark of a finish before it that we dropped.
 */
#define FINISHES_MAGIC		"ringqFn1"
#define FINISHES_MAGIC_LEN	8
#define FINISHES_RECORD_MAX	(1u << 20)

static void
finish_to_msg(const struct rq_attempt_end *e, struct rq_msg *m)
{
	rq_msg_init(m, RQ_MSG_EVENT);
	rq_msg_set(m, call_id, (char *)e->call_id);
	rq_msg_set(m, attempt, e->attempt);
	rq_msg_set(m, status, (char *)rq_status_name(e->status));
	rq_msg_set(m, ts_ms, rq_now_ms());
	if (e->reason)
		rq_msg_set(m, reason, (char *)e->reason);
	if (e->sip_code > 0)
		rq_msg_set(m, sip_code, (uint64_t)e->sip_code);
	if (e->started_ms)
		rq_msg_set(m, started_ms, e->started_ms);
	if (e->answered_ms)
		rq_msg_set(m, answered_ms, e->answered_ms);
	if (e->duration_ms)
		rq_msg_set(m, duration_ms, e->duration_ms);
	if (e->detail)
		rq_msg_set(m, detail, (char *)e->detail);
	/* (one longer than RQ_RESULT_MAX is left out by the finish too) */
	if (e->result && strlen(e->result) <= RQ_RESULT_MAX)
		rq_msg_set(m, result, (char *)e->result);
}

/* Whether a kept finish goes to the file: one that carries an outcome.  A
 * claim's resolve, or an interrupted attempt, ends at our next start as
 * its interrupt would end it anyway; leaving those out keeps a fence,
 * which hangs up every call at once, from writing the file per call. */
static int
finish_on_disk(const struct tel_finish *f)
{
	return !f->resolve && !(f->e.status == RQ_ST_FAILED && f->e.reason &&
	    !strcmp(f->e.reason, RQ_REASON_INTERRUPTED));
}

/* A write error of the finishes file (errno), what it is about before
 * its path.  Such errors come back at each tick while they last (a full
 * disk), and with each call that ends meanwhile: one line in
 * FINISHES_LOG_MS, with how many it held back; a cut that failed (a torn
 * record left in the file) has its own line, not hidden behind the
 * write's. */
static void
finishes_warn_on(struct tel_ctx *ctx, struct log_rate *rate, const char *what)
{
	int error = errno;

	log_warnx_rate(rate, FINISHES_LOG_MS, "finishes: %s%s: %s", what,
	    ctx->finishes_path, strerror(error));
	errno = error;
}

static void
finishes_warn(struct tel_ctx *ctx, const char *what)
{
	finishes_warn_on(ctx, &ctx->finishes_log, what);
}

static void
finishes_cut_failed(struct tel_ctx *ctx)
{
	finishes_warn_on(ctx, &ctx->finishes_cut_log, "cannot cut ");
}

/* Opens the finishes file to append to it (created, with its magic, when
 * absent unless only an existing one is wanted: create 0), after cutting
 * what a failed write left; *size is where this append starts.  Returns
 * the fd, or -1 (logged, but for no file with create 0). */
static int
finishes_open(struct tel_ctx *ctx, int create, off_t *size)
{
	struct stat st;
	int fd;

	if ((fd = open(ctx->finishes_path, O_WRONLY | O_APPEND | O_CLOEXEC |
	    (create ? O_CREAT : 0), 0600)) == -1) {
		if (create || errno != ENOENT)
			finishes_warn(ctx, "");
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		finishes_warn(ctx, "");
		close(fd);
		return -1;
	}
	/* (a file made again since is shorter: nothing of ours to cut) */
	if (ctx->finishes_cut > 0 && st.st_size > ctx->finishes_cut - 1) {
		if (ftruncate(fd, ctx->finishes_cut - 1) == -1) {
			finishes_cut_failed(ctx);
			close(fd);
			return -1;
		}
		st.st_size = ctx->finishes_cut - 1;
	}
	ctx->finishes_cut = 0;
	if (st.st_size == 0 && rq_write_all(fd, FINISHES_MAGIC,
	    FINISHES_MAGIC_LEN) == -1) {
		finishes_warn(ctx, "");
		if (ftruncate(fd, 0) == -1)
			ctx->finishes_cut = 1;
		close(fd);
		return -1;
	}
	if (st.st_size == 0)
		ctx->finishes_created = 1;	/* its directory to sync */
	*size = st.st_size;
	return fd;
}

/* Appends m as one record.  Returns 0 or -1 (errno set). */
static int
finishes_put(int fd, const struct rq_msg *m)
{
	unsigned char hdr[4];
	char *buf;
	size_t len;
	int rc;

	if (rq_msg_pack(m, &buf, &len) == -1) {
		errno = EINVAL;
		return -1;
	}
	rq_le32_put(hdr, (uint32_t)len);
	rc = rq_write_all(fd, hdr, sizeof(hdr)) == -1 ||
	    rq_write_all(fd, buf, len) == -1 ? -1 : 0;
	free(buf);
	return rc;
}

/* Ends an append begun at size: rc -1 cuts what it wrote, since a torn
 * record would hide the ones after it at the load; a cut that fails is
 * remembered, made before the next append.  Returns rc. */
static int
finishes_close(struct tel_ctx *ctx, int fd, off_t size, int rc)
{
	if (rc == -1) {
		finishes_warn(ctx, "cannot write ");
		if (ftruncate(fd, size) == -1) {
			finishes_cut_failed(ctx);
			ctx->finishes_cut = size + 1;
		}
	} else
		ctx->finishes_unsynced = 1;
	close(fd);
	return rc;
}

/* Appends to the file the kept finishes with an outcome not in it yet;
 * removes it once none is kept.  A write that fails is cut off the file,
 * and tried again at the next tick. */
static void
finishes_save(struct tel_ctx *ctx)
{
	struct tel_finish *f;
	struct rq_msg m;
	size_t n = 0, unsaved = 0;
	off_t size;
	int fd, rc = 0;

	if (ctx->finishes_path[0] == '\0' || !ctx->finishes_loaded)
		return;
	ctx->finishes_dirty = 0;
	for (f = ctx->finishes; f != NULL; f = f->next)
		if (finish_on_disk(f)) {
			n++;
			unsaved += !f->on_disk;
		}
	if (n == 0) {
		if (unlink(ctx->finishes_path) == 0 || errno == ENOENT)
			ctx->finishes_cut = 0;
		else
			finishes_warn(ctx, "");
		if (ctx->finishes_failing)
			log_info("finishes: none left to keep");
		ctx->finishes_failing = 0;
		return;
	}
	if (unsaved == 0)
		return;
	if ((fd = finishes_open(ctx, 1, &size)) != -1) {
		for (f = ctx->finishes; f != NULL && rc == 0; f = f->next) {
			if (!finish_on_disk(f) || f->on_disk)
				continue;
			finish_to_msg(&f->e, &m);
			rc = finishes_put(fd, &m);
		}
		if (finishes_close(ctx, fd, size, rc) == 0) {
			for (f = ctx->finishes; f != NULL; f = f->next)
				if (finish_on_disk(f))
					f->on_disk = 1;
			if (ctx->finishes_failing)
				log_info("finishes: %s written again",
				    ctx->finishes_path);
			ctx->finishes_failing = 0;
			return;
		}
	}
	log_warnx_rate(&ctx->finishes_loss_log, FINISHES_LOG_MS, "finishes: "
	    "a kill -9 now would lose the outcome of %zu calls", unsaved);
	ctx->finishes_failing = 1;
	ctx->finishes_dirty = 1;	/* tel_life_tick tries again */
}

/* Marks in the file that f, in it, is dropped: a next start leaves it out,
 * rather than try again for LIFE_FINISH_TRIES rounds what Redis refused
 * that many times (one Redis took stays until the file goes: Redis
 * ignores it again).  A mark that cannot be written is only logged. */
static void
finishes_settle(struct tel_ctx *ctx, const struct tel_finish *f)
{
	struct rq_msg m;
	off_t size;
	int fd;

	if (!f->on_disk || ctx->finishes_path[0] == '\0' ||
	    (fd = finishes_open(ctx, 0, &size)) == -1)
		return;
	rq_msg_init(&m, RQ_MSG_EVENT_ACK);
	rq_msg_set(&m, call_id, (char *)f->e.call_id);
	rq_msg_set(&m, attempt, f->e.attempt);
	rq_msg_set(&m, status, (char *)rq_status_name(f->e.status));
	finishes_close(ctx, fd, size, finishes_put(fd, &m));
}

/* Forgets the finish loaded from the file (past the first before kept)
 * that a mark settled.  Returns 1, or 0 when none is kept. */
static int
finishes_forget(struct tel_ctx *ctx, int before, const struct rq_msg *m)
{
	struct tel_finish *f, **pp = &ctx->finishes;
	int i = 0;

	for (; (f = *pp) != NULL; pp = &f->next, i++)
		if (i >= before && f->e.attempt == m->attempt &&
		    strcmp(f->e.call_id, m->call_id) == 0) {
			*pp = f->next;
			ctx->nfinishes--;
			finish_free(f);
			return 1;
		}
	return 0;
}

/*
 * Asks the syncer's thread to sync the finishes file, and its directory
 * after its creation, at most once a tick: a save is in the page cache at
 * once, which a kill -9 keeps, and on disk a tick or two later, which a
 * power cut needs.  Neither at each save nor in the loop: the file
 * changes at each call that ends during a Redis outage, and a sync costs
 * milliseconds (docs/delivery.md).  When the last sync is still under
 * way, the next tick asks.  Its removal is not synced: a file that comes
 * back after a power cut holds outcomes Redis has already, which it then
 * ignores.
 */
static void
finishes_sync(struct tel_ctx *ctx)
{
	int dir = ctx->finishes_created;

	if (ctx->finishes_syncer == NULL)
		rq_sync_path(ctx->finishes_path, dir, "finishes");
	else if (rq_syncer_ask(ctx->finishes_syncer, ctx->finishes_path,
	    dir) == 0)
		return;
	ctx->finishes_unsynced = 0;
	ctx->finishes_created = 0;
}

static void	finish_keep(struct tel_ctx *, const struct rq_attempt_end *,
		    int, int);

/* The finishes a previous run kept, from its file, kept again (to be
 * recorded before our start-up recovery interrupts the rest); what
 * follows its last whole record is cut, so that our appends can be read
 * after it. */
static void
finishes_load(struct tel_ctx *ctx)
{
	char err[128], *buf;
	const char *rec;
	struct rq_attempt_end e;
	struct tel_finish *f;
	struct rq_msg m;
	size_t off = FINISHES_MAGIC_LEN, rlen, len = 0, n = 0, bad = 0;
	size_t settled = 0;
	int fd, i, before = ctx->nfinishes;

	if (ctx->finishes_path[0] == '\0')
		return;
	/* (one we may not write to is still read) */
	if ((fd = open(ctx->finishes_path, O_RDWR | O_CLOEXEC)) == -1 &&
	    (errno == EACCES || errno == EROFS))
		fd = open(ctx->finishes_path, O_RDONLY | O_CLOEXEC);
	if (fd == -1) {
		if (errno != ENOENT)
			log_warn("finishes: %s", ctx->finishes_path);
		return;
	}
	if ((buf = rq_read_all(fd, &len)) == NULL) {
		log_warn("finishes: %s", ctx->finishes_path);
		close(fd);
		return;
	}
	if (len == 0) {		/* a crash before its first write */
		close(fd);
		free(buf);
		return;
	}
	if (len < FINISHES_MAGIC_LEN ||
	    memcmp(buf, FINISHES_MAGIC, FINISHES_MAGIC_LEN) != 0) {
		log_warnx("finishes: %s is no finishes file: ignored, and "
		    "overwritten", ctx->finishes_path);
		if (ftruncate(fd, 0) == -1)
			log_warn("finishes: %s", ctx->finishes_path);
		close(fd);
		free(buf);
		return;
	}
	while (rq_record_next(buf, len, &off, &rec, &rlen,
	    FINISHES_RECORD_MAX)) {
		if (rq_msg_unpack(rec, rlen, &m, err, sizeof(err)) == 0) {
			memset(&e, 0, sizeof(e));
			e.call_id = m.call_id;
			e.attempt = m.attempt;
			e.node = ctx->cfg->tel_name;
			e.reason = m.reason;
			e.sip_code = (int)m.sip_code;
			e.started_ms = m.started_ms;
			e.answered_ms = m.answered_ms;
			e.duration_ms = m.duration_ms;
			e.detail = m.detail;
			e.result = m.result;
			if (m.type == RQ_MSG_EVENT_ACK && m.call_id != NULL)
				settled += finishes_forget(ctx, before, &m);
			else if (m.type == RQ_MSG_EVENT && m.call_id != NULL &&
			    rq_call_id_valid(m.call_id) && m.status != NULL &&
			    rq_status_parse(m.status, &e.status) == 0) {
				finish_keep(ctx, &e, 0, 0);
				n++;
			} else
				bad++;
			rq_msg_clear(&m);
		} else {
			log_warnx("finishes: %s: a record skipped: %s",
			    ctx->finishes_path, err);
			bad++;
		}
	}
	if (bad > 0)
		log_warnx("finishes: %s: %zu records that are no finish "
		    "skipped", ctx->finishes_path, bad);
	if (settled > 0)
		log_info("finishes: %s: %zu dropped by a previous run, left "
		    "out", ctx->finishes_path, settled);
	n -= settled;
	if (off < len) {
		log_warnx("finishes: %s ends in %zu bytes that are no whole "
		    "record: cut", ctx->finishes_path, len - off);
		if (ftruncate(fd, (off_t)off) == -1)
			log_warn("finishes: %s", ctx->finishes_path);
	}
	close(fd);
	free(buf);
	/* a previous run may have died before it synced the file (and its
	 * directory, the file new) */
	ctx->finishes_unsynced = ctx->finishes_created = 1;
	/* those kept now (at the list's tail): in the file already */
	for (f = ctx->finishes, i = 0; f != NULL; f = f->next, i++)
		if (i >= before)
			f->on_disk = 1;
	if (n > 0)
		log_info("finishes: %zu of our previous run, from %s: recorded "
		    "before the rest is ended as interrupted", n,
		    ctx->finishes_path);
}

/* A plain command on the link: its reply (the caller frees it), or NULL
 * (logged; a lost link is closed and tried again in a second). */
static redisReply *
life_reply(struct tel_ctx *ctx, const char *what, int argc,
    const char **argv)
{
	struct rq_redis *r = &ctx->redis;
	redisReply *rep;

	if (rq_redis_ready(r) == -1)
		return NULL;
	if ((rep = redisCommandArgv(r->c, argc, argv, NULL)) == NULL) {
		rq_metric_error("redis");
		log_warnx("redis: %s: %s", what, rq_redis_errstr(r->c));
		rq_redis_close(r);
		return NULL;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		rq_metric_error("redis");
		/* the liveness key is tried at every tick: while Redis
		 * refuses writes, a line in LIFE_REFUSAL_LOG_MS */
		log_warnx_rate(&ctx->refusals, LIFE_REFUSAL_LOG_MS,
		    "redis: %s: %s", what, rep->str);
		freeReplyObject(rep);
		return NULL;
	}
	return rep;
}

/* life_reply, the reply dropped: 0, or -1. */
static int
life_cmd(struct tel_ctx *ctx, const char *what, int argc, const char **argv)
{
	redisReply *rep = life_reply(ctx, what, argc, argv);

	if (rep == NULL)
		return -1;
	freeReplyObject(rep);
	return 0;
}

int
tel_life_refusing(const struct tel_ctx *ctx)
{
	return ctx->draining || ctx->drain_op || !ctx->recovered ||
	    ctx->fenced;
}

const char *
tel_life_state(const struct tel_ctx *ctx)
{
	if (ctx->drain_op)
		return ctx->active == 0 ? "drained" : "draining";
	return tel_life_refusing(ctx) ? "draining" : "up";
}

/* An operator's drain (rq:drain) as Redis last said it: calls in progress
 * go on, no new job is taken (call.c refuses them "draining"), and
 * "drained" is logged once none is left. */
static void
life_drain(struct tel_ctx *ctx, int drain)
{
	if (drain && !ctx->drain_op) {
		ctx->drain_op = 1;
		ctx->drained_logged = 0;
		log_info("drain: %s is in %s: taking no new jobs, %d calls in "
		    "progress", ctx->cfg->tel_name, RQ_KEY_DRAIN, ctx->active);
		tel_bus_heartbeat(ctx);
	} else if (!drain && ctx->drain_op) {
		ctx->drain_op = 0;
		log_info("undrained: %s left %s: taking jobs again",
		    ctx->cfg->tel_name, RQ_KEY_DRAIN);
		tel_bus_heartbeat(ctx);
	}
	if (ctx->drain_op && ctx->active == 0 && !ctx->drained_logged) {
		ctx->drained_logged = 1;
		log_info("drained: no calls left");
	}
}

/* Our fleet state (rq:tel:<node>) and whether we are in rq:drain, in one
 * script.  A failure changes nothing: the drain stays as last known. */
static void
life_state(struct tel_ctx *ctx)
{
	char key[RQ_NAME_MAX + 16], active[24], cap[24], pid[24], ttl[24];
	const char *argv[9];
	redisReply *rep;
	int drain;

	snprintf(key, sizeof(key), "%s%s", RQ_KEY_TEL, ctx->cfg->tel_name);
	snprintf(active, sizeof(active), "%d", ctx->active);
	snprintf(cap, sizeof(cap), "%d", ctx->cfg->capacity);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	snprintf(ttl, sizeof(ttl), "%d", RQ_TEL_TTL_MS);
	argv[0] = key;
	argv[1] = RQ_KEY_DRAIN;
	argv[2] = ctx->cfg->tel_name;
	argv[3] = active;
	argv[4] = cap;
	argv[5] = ctx->cfg->sip_url;
	argv[6] = pid;
	argv[7] = ctx->draining || !ctx->recovered || ctx->fenced ? "1" : "0";
	argv[8] = ttl;
	if ((rep = rq_redis_eval(&ctx->redis, &tel_state_script, 2, 9,
	    argv)) == NULL) {
		rq_metric_error("redis");	/* logged by rq_redis_eval */
		return;
	}
	if (rep->type != REDIS_REPLY_INTEGER) {
		rq_metric_error("redis");
		log_warnx("redis: fleet state: unexpected reply");
		freeReplyObject(rep);
		return;
	}
	drain = rep->integer == 1;
	freeReplyObject(rep);
	life_drain(ctx, drain);
}

static void	life_flush(struct tel_ctx *);
static void	life_flush_kept(struct tel_ctx *, uint64_t);
static void	life_flush_round(struct tel_ctx *);
static int	life_too_old(const struct tel_ctx *, uint64_t);

/* Whether rep is an array of n integers (SMISMEMBER's answer). */
static int
integers(const redisReply *rep, size_t n)
{
	size_t i;

	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != n)
		return 0;
	for (i = 0; i < n; i++)
		if (rep->element[i]->type != REDIS_REPLY_INTEGER)
			return 0;
	return 1;
}

/*
 * Our loop stalled past the fence's margin (a stopped process), or our key
 * had expired when we set it again (a paused VM, or a loop that stood
 * still): the fence never came, and the scheduler may have ended some of
 * our attempts meanwhile, their retries planned.  Those left our
 * rq:oncall: hung up, as the fence would have done.  The others are ours:
 * our fresh key refuses any sweep from now on.  A check that fails hangs
 * up every call, as the fence.  ms: the time since the last refresh, by
 * our clock.
 */
static void
life_stalled(struct tel_ctx *ctx, uint64_t ms, int expired)
{
	static const char detail[] = "the scheduler ended the attempt while "
	    "we stalled";
	char key[RQ_NAME_MAX + 16];
	struct tel_call *c, *next;
	const char **argv;
	redisReply *rep = NULL;
	size_t n = 0, i;
	int lost = 0;

	for (c = ctx->calls; c != NULL; c = c->next)
		n += !c->terminal;
	if (n == 0)
		return;
	snprintf(key, sizeof(key), "%s%s", RQ_KEY_ONCALL, ctx->cfg->tel_name);
	if ((argv = calloc(n + 2, sizeof(*argv))) != NULL) {
		argv[0] = "SMISMEMBER";
		argv[1] = key;
		for (i = 2, c = ctx->calls; c != NULL; c = c->next)
			if (!c->terminal)
				argv[i++] = c->call_id;
		rep = life_reply(ctx, "rq:oncall", (int)(n + 2), argv);
		free(argv);
	}
	if (!integers(rep, n)) {
		log_warnx("stalled %llu ms%s: cannot tell which calls are "
		    "still ours: hanging up %zu calls", (unsigned long long)ms,
		    expired ? ", liveness key expired" : "", n);
		if (rep != NULL)
			freeReplyObject(rep);
		tel_call_interrupt_all(ctx, detail);
		return;
	}
	for (i = 0, c = ctx->calls; c != NULL; c = next) {
		next = c->next;
		if (c->terminal)
			continue;
		if (rep->element[i++]->integer == 0) {
			tel_call_interrupt(c, detail);
			lost++;
		}
	}
	freeReplyObject(rep);
	log_warnx("stalled %llu ms%s: the scheduler ended %d of our %zu "
	    "calls meanwhile (hung up)", (unsigned long long)ms,
	    expired ? ", liveness key expired" : "", lost, n);
}

/* Our liveness key and our name in rq:nodes, every LIFE_ALIVE_MS, then our
 * fleet state.  The key's TTL counts from when Redis ran the SET, so the
 * time before we sent it is a safe start for the fence's count. */
static void
life_refresh(struct tel_ctx *ctx)
{
	char key[RQ_NAME_MAX + 16], ttl[16];
	const char *set[] = { "SET", key, "1", "PX", ttl, "GET" };
	const char *add[] = { "SADD", RQ_KEY_NODES, ctx->cfg->tel_name };
	uint64_t sent = rq_mono_ms();
	redisReply *rep;
	int expired;

	if (!ctx->recovered)
		return;
	snprintf(key, sizeof(key), "%s%s", RQ_KEY_NODE, ctx->cfg->tel_name);
	snprintf(ttl, sizeof(ttl), "%d", RQ_NODE_TTL_MS);
	/* Failed: tried again at every tick (the link itself reconnects at
	 * most once a second), so the key is refreshed as soon as Redis
	 * answers again. */
	ctx->alive_next_ms = sent;
	if ((rep = life_reply(ctx, "liveness", 6, set)) != NULL) {
		/* Gone before this SET: a sweep may have run.  Our clock
		 * alone would miss a paused VM, whose monotonic clock stops
		 * with it. */
		expired = rep->type == REDIS_REPLY_NIL;
		freeReplyObject(rep);
	} else if (ctx->redis.c != NULL &&
	    life_cmd(ctx, "liveness", 5, set) == 0) {
		/* Refused with the link up (the key of another type, which
		 * SET ... GET will not replace): no key of ours was there. */
		expired = 1;
	} else
		return;
	if (!ctx->fenced && (expired || life_too_old(ctx, sent)))
		life_stalled(ctx, sent - ctx->alive_ms, expired);
	ctx->alive_ms = sent;
	ctx->alive_next_ms = sent + LIFE_ALIVE_MS;
	life_cmd(ctx, "rq:nodes", 3, add);
	if (ctx->fenced) {
		/* Our kept finishes before any JOB: one of them may take
		 * back a retry the scheduler planned while we were cut off,
		 * which a JOB sent after our heartbeat could claim first.
		 * A JOB is read only after this tick; a link lost again
		 * meanwhile keeps the fence until the next refresh. */
		if (ctx->finishes != NULL) {
			life_flush_kept(ctx, sent);
			if (ctx->redis.c == NULL)
				return;
		}
		ctx->fenced = 0;
		log_info("liveness key refreshed again: taking jobs");
		tel_bus_heartbeat(ctx);
	}
	life_state(ctx);
}

/* Our liveness key may be gone by now, or soon: the scheduler ends our
 * attempts as interrupted, and retries them.  A call of ours that went on
 * would ring the customer beside its retry: hang them all up (their
 * finishes, kept, say interrupted too, and are ignored if the sweep was
 * first) and take nothing until the key is refreshed again. */
static int
life_too_old(const struct tel_ctx *ctx, uint64_t now)
{
	return now - ctx->alive_ms >=
	    (uint64_t)(RQ_NODE_TTL_MS - LIFE_FENCE_MARGIN_MS);
}

static void
life_fence(struct tel_ctx *ctx, uint64_t now)
{
	if (ctx->fenced || !life_too_old(ctx, now))
		return;
	ctx->fenced = 1;
	log_warnx("fenced: liveness key not refreshed for %llu ms (its TTL is "
	    "%d ms): hanging up %d calls, taking no jobs until it is "
	    "refreshed", (unsigned long long)(now - ctx->alive_ms),
	    RQ_NODE_TTL_MS, ctx->active);
	tel_call_interrupt_all(ctx, "liveness key not refreshed (fenced)");
	tel_bus_heartbeat(ctx);
}

/* Our attempts of a previous life (a crash, kill -9) end as interrupted
 * before we take a new one: we have no calls now.  Our liveness key goes
 * first, since the interrupt acts only on a node that is not alive. */
static int
life_recover(struct tel_ctx *ctx)
{
	char key[RQ_NAME_MAX + 16];
	const char *del[] = { "DEL", key };
	int n, refused;

	if (!ctx->finishes_loaded) {
		finishes_load(ctx);
		ctx->finishes_loaded = 1;
	}
	/* What our previous run knew of its attempts goes first: the
	 * interrupt below ends only what is left in our rq:oncall.  Redis
	 * refusing one with the link up (30 rounds) does not hold us up
	 * for ever. */
	if (ctx->finishes != NULL) {
		life_flush(ctx);
		if (ctx->redis.c == NULL)
			return -1;
		if (ctx->finishes != NULL && (ctx->flush_refused_for_now ||
		    ++ctx->recover_refused < LIFE_FINISH_TRIES))
			return -1;
		if (ctx->finishes != NULL)
			log_warnx("%d finishes of our previous run refused by "
			    "Redis %d times: their attempts end as "
			    "interrupted", ctx->nfinishes, LIFE_FINISH_TRIES);
	}
	snprintf(key, sizeof(key), "%s%s", RQ_KEY_NODE, ctx->cfg->tel_name);
	if (life_cmd(ctx, "liveness", 2, del) == -1)
		return -1;
	if ((n = rq_node_interrupt(&ctx->redis, ctx->cfg->tel_name,
	    "telserver restarted", &refused)) == -1)
		return -1;
	if (n > 0)
		log_info("%d attempts of our previous run ended as interrupted",
		    n);
	/* An attempt Redis refuses to end (out of memory, a damaged job)
	 * holds us up for LIFE_FINISH_TRIES rounds at most, as a refused
	 * finish does. */
	if (refused > 0 && ++ctx->interrupt_refused < LIFE_FINISH_TRIES)
		return -1;
	if (refused > 0)
		log_warnx("%d attempts of our previous run refused by Redis %d "
		    "times: left in %s%s as they are", refused,
		    LIFE_FINISH_TRIES, RQ_KEY_ONCALL, ctx->cfg->tel_name);
	ctx->recovered = 1;
	ctx->alive_ms = rq_mono_ms();
	ctx->alive_next_ms = ctx->alive_ms + LIFE_ALIVE_MS;
	life_refresh(ctx);
	return 0;
}

/* Logs what Redis made of a finish (rq_job_finish's rc and st). */
static void
finish_log(const struct rq_attempt_end *e, int resolve, int rc,
    enum rq_status st)
{
	unsigned long long a = (unsigned long long)e->attempt;

	if (rc == 1 && resolve)
		log_info("call %s/%llu: claimed before its reply was lost: "
		    "ended as %s", e->call_id, a, rq_status_name(st));
	else if (rc == 1)
		log_info("call %s/%llu: recorded as %s", e->call_id, a,
		    rq_status_name(st));
	else if (rc == 3)
		log_info("call %s/%llu: recorded as %s after the scheduler "
		    "had ended it as interrupted: its retry taken back",
		    e->call_id, a, rq_status_name(st));
	else if (rc == 0 && !resolve)
		log_info("call %s/%llu: attempt already ended elsewhere "
		    "(interrupted?), finish ignored", e->call_id, a);
}

/* Tries one finish now.  Returns 0 (done, whatever its outcome) or -1
 * (Redis failed: keep it). */
static int
finish_try(struct tel_ctx *ctx, const struct rq_attempt_end *e, int resolve)
{
	enum rq_status st = RQ_ST_QUEUED;
	int rc;

	ctx->redis.refused_for_now = 0;
	if ((rc = rq_job_finish(&ctx->redis, e, &st)) == -1)
		return -1;
	finish_log(e, resolve, rc, st);
	return 0;
}

/* Retries the kept finishes, oldest first.  A lost connection stops the
 * round (the rest wait, in order, for the next one); a finish refused
 * with the link up is passed over, so that it cannot hold up the others,
 * and dropped after LIFE_FINISH_TRIES rounds. */
static void
life_flush(struct tel_ctx *ctx)
{
	int before = ctx->nfinishes;

	life_flush_round(ctx);
	if (ctx->nfinishes != before)
		finishes_save(ctx);
}

static void
life_flush_round(struct tel_ctx *ctx)
{
	struct tel_finish *f, **pp = &ctx->finishes;

	ctx->flush_refused_for_now = 0;
	while ((f = *pp) != NULL) {
		if (finish_try(ctx, &f->e, f->resolve) == 0) {
			*pp = f->next;
			ctx->nfinishes--;
			finish_free(f);
			continue;
		}
		if (ctx->redis.c == NULL)
			return;
		if (ctx->redis.refused_for_now)
			ctx->flush_refused_for_now = 1;
		/* Before our start-up recovery, a refusal is not counted:
		 * a previous run's outcome must not be dropped, and then
		 * interrupted, because Redis refused writes for a while
		 * (life_recover bounds that wait). */
		if (!ctx->recovered || ctx->redis.refused_for_now ||
		    ++f->tries < LIFE_FINISH_TRIES) {
			pp = &f->next;
			continue;
		}
		/* Our rq:oncall keeps the attempt: our next start-up ends it
		 * as interrupted. */
		log_warnx("call %s/%llu: %s refused by Redis %d times, dropped",
		    f->call_id, (unsigned long long)f->e.attempt,
		    f->resolve ? "claim resolve" : "finish", f->tries);
		finishes_settle(ctx, f);
		*pp = f->next;
		ctx->nfinishes--;
		finish_free(f);
	}
}

void
tel_life_tick(struct tel_ctx *ctx)
{
	uint64_t now = rq_mono_ms();

	if (ctx->finishes_unsynced)	/* a save at start-up too */
		finishes_sync(ctx);
	if (!ctx->recovered) {
		if (now < ctx->finish_retry_ms)
			return;
		ctx->finish_retry_ms = now + LIFE_RETRY_MS;
		if (life_recover(ctx) == 0)
			tel_bus_heartbeat(ctx);		/* we take jobs now */
		return;
	}
	if (now >= ctx->alive_next_ms) {
		life_refresh(ctx);
		now = rq_mono_ms();
	}
	life_fence(ctx, now);
	if (ctx->finishes_dirty)
		finishes_save(ctx);
	if (ctx->finishes != NULL && now >= ctx->finish_retry_ms)
		life_flush_kept(ctx, now);
}

/* A round of life_flush, the next one LIFE_RETRY_MS after now. */
static void
life_flush_kept(struct tel_ctx *ctx, uint64_t now)
{
	ctx->finish_retry_ms = now + LIFE_RETRY_MS;
	life_flush(ctx);
	if (ctx->finishes == NULL)
		log_info("every kept finish is recorded");
}

/* Keeps a copy of e for a later retry (appended: finishes go in order);
 * tries: refused with the link up so far. */
static void
finish_keep(struct tel_ctx *ctx, const struct rq_attempt_end *e, int resolve,
    int tries)
{
	struct tel_finish *f, **pp;

	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    (f->call_id = strdup(e->call_id)) == NULL ||
	    (e->reason && (f->reason = strdup(e->reason)) == NULL) ||
	    (e->detail && (f->detail = strdup(e->detail)) == NULL) ||
	    (e->result && (f->result = strdup(e->result)) == NULL)) {
		/* The scheduler's sweep ends it once we are gone. */
		log_warnx("call %s/%llu: out of memory, finish lost",
		    e->call_id, (unsigned long long)e->attempt);
		if (f)
			finish_free(f);
		return;
	}
	f->e = *e;
	f->e.call_id = f->call_id;
	f->e.reason = f->reason;
	f->e.detail = f->detail;
	f->e.result = f->result;
	f->e.node = ctx->cfg->tel_name;
	f->resolve = resolve;
	f->tries = tries;
	for (pp = &ctx->finishes; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = f;
	ctx->nfinishes++;
	/* Saved before it is said kept: what reads the log (an operator
	 * about to kill -9, our tests) finds it on disk already. */
	if (finish_on_disk(f))
		finishes_save(ctx);
	log_warnx("call %s/%llu: %s kept for a retry (%d waiting)",
	    e->call_id, (unsigned long long)e->attempt,
	    resolve ? "claim" : "finish", ctx->nfinishes);
}

void
tel_life_finish(struct tel_ctx *ctx, const struct rq_attempt_end *e)
{
	struct tel_finish *f;

	if (ctx->finish_hold) {
		/* Recorded with the others at tel_life_finish_release. */
		if ((f = calloc(1, sizeof(*f))) != NULL &&
		    (f->call_id = strdup(e->call_id)) != NULL &&
		    (!e->reason || (f->reason = strdup(e->reason)) != NULL) &&
		    (!e->detail || (f->detail = strdup(e->detail)) != NULL) &&
		    (!e->result || (f->result = strdup(e->result)) != NULL)) {
			f->e = *e;
			f->e.call_id = f->call_id;
			f->e.reason = f->reason;
			f->e.detail = f->detail;
			f->e.result = f->result;
			f->e.node = ctx->cfg->tel_name;
			*ctx->held_tail = f;
			ctx->held_tail = &f->next;
			return;
		}
		if (f)
			finish_free(f);
		/* Out of memory: recorded on its own, now. */
	}
	/* Tried now unless the link is down and older ones wait for it
	 * (the next round tries them all, in order). */
	if ((ctx->finishes == NULL || ctx->redis.c != NULL) &&
	    finish_try(ctx, e, 0) == 0)
		return;
	finish_keep(ctx, e, 0, ctx->redis.c != NULL);
}

void
tel_life_finish_hold(struct tel_ctx *ctx)
{
	if (ctx->finish_hold++ == 0) {
		ctx->held = NULL;
		ctx->held_tail = &ctx->held;
	}
}

void
tel_life_finish_release(struct tel_ctx *ctx)
{
	struct rq_attempt_end *e;
	struct tel_finish *f, *held;
	enum rq_status *st;
	size_t n = 0, i;
	int *rc, all;

	if (ctx->finish_hold == 0 || --ctx->finish_hold > 0)
		return;
	held = ctx->held;
	ctx->held = NULL;
	ctx->held_tail = &ctx->held;
	for (f = held; f != NULL; f = f->next)
		n++;
	if (n == 0)
		return;
	e = calloc(n, sizeof(*e));
	st = calloc(n, sizeof(*st));
	rc = calloc(n, sizeof(*rc));
	for (i = 0, f = held; e && st && rc && f != NULL; f = f->next)
		e[i++] = f->e;
	/* Tried now unless the link is down and older ones wait for it,
	 * as tel_life_finish does, but all in one script. */
	all = e && st && rc && (ctx->finishes == NULL ||
	    ctx->redis.c != NULL) ? rq_job_finish_batch(&ctx->redis, n, e, st,
	    rc) : -1;
	for (i = 0; (f = held) != NULL; i++) {
		held = f->next;
		if (all == 0 && rc[i] != -1)
			finish_log(&f->e, 0, rc[i], st[i]);
		else
			finish_keep(ctx, &f->e, 0, ctx->redis.c != NULL);
		finish_free(f);
	}
	free(e);
	free(st);
	free(rc);
}

int
tel_life_may_claim(struct tel_ctx *ctx)
{
	uint64_t now = rq_mono_ms();

	if (!ctx->recovered || ctx->fenced)
		return 0;
	/* Our liveness key first, if it is due (Redis may just be back
	 * after an outage): a claim must never go before it. */
	if (now >= ctx->alive_next_ms) {
		life_refresh(ctx);
		now = rq_mono_ms();
	}
	if (life_too_old(ctx, now)) {
		life_fence(ctx, now);
		return 0;
	}
	/* The refresh that was due failed (Redis still out of reach): no
	 * claim goes before it. */
	return now < ctx->alive_next_ms;
}

/* After a claim of ours succeeded: the same attempt came back to us and
 * is ours now, so a resolve kept for its lost claim must not end it. */
static void
claim_unresolve(struct tel_ctx *ctx, const char *call_id, uint64_t attempt)
{
	struct tel_finish *f, **pp;

	for (pp = &ctx->finishes; (f = *pp) != NULL; )
		if (f->resolve && f->e.attempt == attempt &&
		    !strcmp(f->call_id, call_id)) {
			*pp = f->next;
			ctx->nfinishes--;
			finish_free(f);
		} else
			pp = &f->next;
}

void
tel_life_claim_batch(struct tel_ctx *ctx, size_t n, const char *const *ids,
    const uint64_t *attempts, int *rc)
{
	struct rq_attempt_end e;
	size_t i;
	int all;

	if (!tel_life_may_claim(ctx)) {
		for (i = 0; i < n; i++)
			rc[i] = TEL_CLAIM_FENCED;
		return;
	}
	all = rq_job_claim_batch(&ctx->redis, ctx->cfg->tel_name, n, ids,
	    attempts, rc);
	for (i = 0; i < n; i++) {
		if (all == 0 && rc[i] == RQ_CLAIM_OK)
			claim_unresolve(ctx, ids[i], attempts[i]);
		if (all == 0 && rc[i] != -1)
			continue;
		rc[i] = -1;
		/* The claim may have run: resolved later (see above). */
		memset(&e, 0, sizeof(e));
		e.call_id = ids[i];
		e.attempt = attempts[i];
		e.node = ctx->cfg->tel_name;
		e.status = RQ_ST_FAILED;
		e.reason = RQ_REASON_INTERRUPTED;
		e.detail = "claim reply lost (redis)";
		finish_keep(ctx, &e, 1, 0);
	}
}

int
tel_life_claim(struct tel_ctx *ctx, const char *call_id, uint64_t attempt)
{
	int rc;

	tel_life_claim_batch(ctx, 1, &call_id, &attempt, &rc);
	return rc;
}

int
tel_life_inbound(struct tel_ctx *ctx, const struct rq_inbound_call *in)
{
	struct rq_attempt_end e;
	int rc;

	if (!tel_life_may_claim(ctx))
		return -1;
	if ((rc = rq_job_inbound(&ctx->redis, in)) != -1)
		return rc;
	/* The script may have run: its attempt is ended (as a lost claim's
	 * is), or nothing happens when it did not. */
	memset(&e, 0, sizeof(e));
	e.call_id = in->call_id;
	e.attempt = 1;
	e.node = ctx->cfg->tel_name;
	e.status = RQ_ST_FAILED;
	e.reason = RQ_REASON_INTERRUPTED;
	e.detail = "incoming call not answered: reply lost (redis)";
	finish_keep(ctx, &e, 1, 0);
	return -1;
}

int
tel_life_pending(const struct tel_ctx *ctx)
{
	return ctx->nfinishes;
}

void
tel_life_close(struct tel_ctx *ctx, int ms)
{
	uint64_t until = rq_mono_ms() + (uint64_t)ms;
	char key[RQ_NAME_MAX + 16];
	const char *del[] = { "DEL", key };
	struct tel_finish *f;

	while (ctx->finishes != NULL && rq_mono_ms() < until) {
		life_flush(ctx);
		if (ctx->finishes != NULL) {
			struct timespec ts = { 0, 100 * 1000 * 1000 };

			nanosleep(&ts, NULL);
		}
	}
	if (ctx->finishes_dirty)
		finishes_save(ctx);
	/* (its sync under way ends first) */
	rq_syncer_free(ctx->finishes_syncer);
	ctx->finishes_syncer = NULL;
	if (ctx->finishes_unsynced)
		finishes_sync(ctx);	/* in the loop: we are going */
	if (ctx->finishes == NULL && ctx->recovered) {
		snprintf(key, sizeof(key), "%s%s", RQ_KEY_NODE,
		    ctx->cfg->tel_name);
		life_cmd(ctx, "liveness", 2, del);
	} else if (ctx->finishes != NULL && ctx->finishes_path[0] != '\0' &&
	    !ctx->finishes_dirty)
		log_warnx("%d finishes not recorded: those with an outcome are "
		    "kept in %s for our next start (the others the scheduler "
		    "ends as interrupted)", ctx->nfinishes,
		    ctx->finishes_path);
	else if (ctx->finishes != NULL)
		log_warnx("%d finishes not recorded: the scheduler ends those "
		    "attempts as interrupted", ctx->nfinishes);
	while ((f = ctx->finishes) != NULL) {
		ctx->finishes = f->next;
		finish_free(f);
	}
	ctx->nfinishes = 0;
	rq_redis_close(&ctx->redis);
}
