/* ringq-ctl: the operator's view of a fleet, from Redis: the telservers
 * with their load and state, drain and undrain, queue depths, and a CURVE
 * keypair for the config.  docs/operations.md describes each command and
 * the exit codes (CTL_EXIT_*). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "bus.h"
#include "config.h"
#include "dispatcher.h"
#include "keys.h"
#include "log.h"

#define CTL_EXIT_OK		0
#define CTL_EXIT_ERROR		1	/* Redis unreachable or refused */
#define CTL_EXIT_USAGE		2	/* bad arguments or configuration */
#define CTL_EXIT_NOT_DRAINED	3	/* drain --wait: timeout, node down */
#define CTL_EXIT_UNKNOWN	4	/* no such telserver */

#define CTL_POLL_MS		500	/* drain --wait */

static redisContext *rc;

static __attribute__((noreturn)) void
usage(void)
{
	fprintf(stderr,
	    "usage: ringq-ctl -f CONFIG COMMAND [ARGS]\n"
	    "  telservers                  the telservers: state, calls, last "
	    "report, liveness\n"
	    "  drain NODE [--wait] [--timeout S] [--force]\n"
	    "                              take no new jobs on NODE; --wait: "
	    "until its calls ended\n"
	    "  undrain NODE                NODE takes jobs again\n"
	    "  queues                      jobs delayed, ready, in flight, on "
	    "call per node; events backlog; ended calls held\n"
	    "  keygen                      a CURVE keypair as two config lines "
	    "(no -f needed)\n"
	    "exit: 0 done, 1 Redis error, 2 usage or configuration, 3 not "
	    "drained (--timeout, node down), 4 unknown telserver\n");
	exit(CTL_EXIT_USAGE);
}

static __attribute__((noreturn, format(printf, 2, 3))) void
die(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ringq-ctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(code);
}

static void
ctl_connect(const struct rq_config *cfg)
{
	struct timeval tv = { 3, 0 };
	char err[256];

	rq_redis_set_password(cfg->redis_password);
	rc = rq_redis_open(cfg->redis_host, cfg->redis_port, tv, err,
	    sizeof(err));
	if (rc == NULL)
		die(CTL_EXIT_ERROR, "redis %s:%d: %s", cfg->redis_host,
		    cfg->redis_port, err);
}

/* A command's reply, or the end of the program on a lost link or an error
 * reply (a missing or wrong password with the daemons' advice). */
static redisReply *
checked(redisReply *rep)
{
	char err[256];

	if (rep == NULL)
		die(CTL_EXIT_ERROR, "redis: %s", rq_redis_errstr(rc));
	if (rq_redis_noauth(rep, err, sizeof(err)))
		die(CTL_EXIT_ERROR, "redis: %s", err);
	if (rep->type == REDIS_REPLY_ERROR)
		die(CTL_EXIT_ERROR, "redis: %s", rep->str);
	return rep;
}

static redisReply *
cmd(const char *fmt, ...)
{
	va_list ap;
	redisReply *rep;

	va_start(ap, fmt);
	rep = redisvCommand(rc, fmt, ap);
	va_end(ap);
	return checked(rep);
}

static long long
cmd_int(const char *fmt, ...)
{
	va_list ap;
	redisReply *rep;
	long long v;

	va_start(ap, fmt);
	rep = redisvCommand(rc, fmt, ap);
	va_end(ap);
	rep = checked(rep);
	if (rep->type != REDIS_REPLY_INTEGER)
		die(CTL_EXIT_ERROR, "redis: unexpected reply");
	v = rep->integer;
	freeReplyObject(rep);
	return v;
}

/* Redis's clock, the one telservers stamp their state with. */
static long long
redis_now_ms(void)
{
	redisReply *rep = cmd("TIME");
	long long ms;

	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2)
		die(CTL_EXIT_ERROR, "redis: TIME: unexpected reply");
	ms = atoll(rep->element[0]->str) * 1000 +
	    atoll(rep->element[1]->str) / 1000;
	freeReplyObject(rep);
	return ms;
}

static void
check_node(const char *node)
{
	size_t i;

	if (node[0] == '\0' || strlen(node) >= RQ_NAME_MAX)
		die(CTL_EXIT_USAGE, "bad telserver name");
	for (i = 0; node[i]; i++)
		if ((unsigned char)node[i] <= ' ')
			die(CTL_EXIT_USAGE, "bad telserver name '%s'", node);
}

/* What rq:tel:<node> and the other keys say about one telserver. */
struct ctl_tel {
	char		 node[RQ_NAME_MAX];
	char		 state[16];	/* "" without a state hash */
	char		 sip[RQ_ADDR_MAX];
	long long	 active, capacity, updated_ms, oncall;
	int		 alive, drain;
};

static void
tel_read(const char *node, struct ctl_tel *t)
{
	redisReply *rep;

	memset(t, 0, sizeof(*t));
	snprintf(t->node, sizeof(t->node), "%s", node);
	rep = cmd("HMGET %s%s state active capacity updated_ms sip",
	    RQ_KEY_TEL, node);
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 5 &&
	    rep->element[0]->type == REDIS_REPLY_STRING) {
		snprintf(t->state, sizeof(t->state), "%s",
		    rep->element[0]->str);
		if (rep->element[1]->type == REDIS_REPLY_STRING)
			t->active = atoll(rep->element[1]->str);
		if (rep->element[2]->type == REDIS_REPLY_STRING)
			t->capacity = atoll(rep->element[2]->str);
		if (rep->element[3]->type == REDIS_REPLY_STRING)
			t->updated_ms = atoll(rep->element[3]->str);
		if (rep->element[4]->type == REDIS_REPLY_STRING)
			snprintf(t->sip, sizeof(t->sip), "%s",
			    rep->element[4]->str);
	}
	freeReplyObject(rep);
	t->alive = cmd_int("EXISTS %s%s", RQ_KEY_NODE, node) == 1;
	t->drain = cmd_int("SISMEMBER %s %s", RQ_KEY_DRAIN, node) == 1;
	t->oncall = cmd_int("SCARD %s%s", RQ_KEY_ONCALL, node);
}

static int
strp_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in rq:nodes and rq:drain, sorted, without duplicates.  The
 * reply array owns the strings: free *hold after use. */
static size_t
node_names(char ***names, redisReply **hold)
{
	redisReply *rep = cmd("SUNION %s %s", RQ_KEY_NODES, RQ_KEY_DRAIN);
	size_t i, n = 0;

	if (rep->type != REDIS_REPLY_ARRAY)
		die(CTL_EXIT_ERROR, "redis: SUNION: unexpected reply");
	if ((*names = calloc(rep->elements + 1, sizeof(**names))) == NULL)
		die(CTL_EXIT_ERROR, "out of memory");
	for (i = 0; i < rep->elements; i++)
		if (rep->element[i]->type == REDIS_REPLY_STRING)
			(*names)[n++] = rep->element[i]->str;
	qsort(*names, n, sizeof(**names), strp_cmp);
	*hold = rep;
	return n;
}

static void
fmt_seen(char *buf, size_t len, long long now, long long updated)
{
	if (updated <= 0)
		snprintf(buf, len, "-");
	else if (now - updated < 0)
		snprintf(buf, len, "0.0s ago");
	else
		snprintf(buf, len, "%.1fs ago", (double)(now - updated) / 1e3);
}

static int
do_telservers(void)
{
	struct ctl_tel t;
	redisReply *hold;
	char **names, calls[48], seen[32];
	long long now;
	size_t i, n, shown = 0;
	int w = 4;

	n = node_names(&names, &hold);
	for (i = 0; i < n; i++)
		if ((int)strlen(names[i]) > w)
			w = (int)strlen(names[i]);
	now = redis_now_ms();
	printf("%-*s  %-9s %-11s %-6s %-10s %-8s %-5s %s\n", w, "NODE",
	    "STATE", "CALLS", "ONCALL", "LAST SEEN", "LIVENESS", "DRAIN",
	    "SIP");
	for (i = 0; i < n; i++) {
		tel_read(names[i], &t);
		/* Long gone and nothing left of it: not worth a line. */
		if (t.state[0] == '\0' && !t.alive && !t.drain &&
		    t.oncall == 0)
			continue;
		if (t.state[0] != '\0')
			snprintf(calls, sizeof(calls), "%lld/%lld", t.active,
			    t.capacity);
		else
			snprintf(calls, sizeof(calls), "-");
		fmt_seen(seen, sizeof(seen), now, t.updated_ms);
		printf("%-*s  %-9s %-11s %-6lld %-10s %-8s %-5s %s\n", w,
		    t.node, t.state[0] ? t.state : "-", calls, t.oncall, seen,
		    t.alive ? "alive" : "down", t.drain ? "yes" : "-",
		    t.sip[0] ? t.sip : "-");
		shown++;
	}
	if (shown == 0)
		printf("(no telserver has reported to this Redis)\n");
	free(names);
	freeReplyObject(hold);
	return CTL_EXIT_OK;
}

static int
known(const char *node)
{
	return cmd_int("EXISTS %s%s", RQ_KEY_TEL, node) == 1 ||
	    cmd_int("SISMEMBER %s %s", RQ_KEY_NODES, node) == 1;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Polls until node says drained in a state written after since (Redis
 * ms): the telserver read rq:drain in the same script. */
static int
drain_wait(const char *node, long long since, int timeout_s)
{
	struct ctl_tel t;
	long long start = redis_now_ms(), last_active = -1;
	char last_state[16] = "";

	for (;;) {
		tel_read(node, &t);
		if (!t.alive)
			die(CTL_EXIT_NOT_DRAINED, "%s is down (no liveness key): "
			    "its %lld calls end as interrupted (scheduler "
			    "sweep)", node, t.oncall);
		if (t.updated_ms >= since && t.state[0] != '\0' &&
		    (strcmp(t.state, last_state) != 0 ||
		    t.active != last_active)) {
			if (strcmp(t.state, "drained") == 0) {
				printf("%s: drained\n", node);
				fflush(stdout);
				return CTL_EXIT_OK;
			}
			printf("%s: %s, %lld calls in progress\n", node,
			    t.state, t.active);
			fflush(stdout);
			snprintf(last_state, sizeof(last_state), "%s",
			    t.state);
			last_active = t.active;
		}
		if (timeout_s > 0 &&
		    redis_now_ms() - start >= (long long)timeout_s * 1000)
			die(CTL_EXIT_NOT_DRAINED, "%s: not drained after %d s "
			    "(%s, %lld calls); it stays draining", node,
			    timeout_s, t.state[0] ? t.state : "no state",
			    t.active);
		sleep_ms(CTL_POLL_MS);
	}
}

static int
do_drain(int argc, char **argv)
{
	const char *node = NULL;
	char *end;
	long long since;
	long v;
	int i, wait = 0, force = 0, timeout_s = 0;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--wait"))
			wait = 1;
		else if (!strcmp(argv[i], "--force"))
			force = 1;
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
			errno = 0;
			v = strtol(argv[++i], &end, 10);
			if (errno || *end || end == argv[i] || v < 1 ||
			    v > 86400)
				die(CTL_EXIT_USAGE, "--timeout: 1 to 86400 "
				    "seconds");
			timeout_s = (int)v;
		} else if (argv[i][0] == '-' || node != NULL)
			usage();
		else
			node = argv[i];
	}
	if (node == NULL)
		usage();
	check_node(node);
	if (!force && !known(node))
		die(CTL_EXIT_UNKNOWN, "unknown telserver '%s' (not reporting "
		    "to this Redis); --force drains it anyway", node);
	since = redis_now_ms();
	if (cmd_int("SADD %s %s", RQ_KEY_DRAIN, node) == 0)
		printf("%s: already draining\n", node);
	else
		printf("%s: drain requested: it takes no new jobs within a "
		    "second\n", node);
	fflush(stdout);
	return wait ? drain_wait(node, since, timeout_s) : CTL_EXIT_OK;
}

static int
do_undrain(int argc, char **argv)
{
	if (argc != 1)
		usage();
	check_node(argv[0]);
	if (cmd_int("SREM %s %s", RQ_KEY_DRAIN, argv[0]) == 0)
		printf("%s: was not draining\n", argv[0]);
	else
		printf("%s: undrained: it takes jobs again within a second\n",
		    argv[0]);
	return CTL_EXIT_OK;
}

static int
do_queues(void)
{
	redisReply *hold;
	char **names;
	long long oncall, total = 0;
	size_t i, n;
	int w = 8;

	printf("%-10s %lld\n", "delayed", cmd_int("ZCARD %s", RQ_KEY_DELAYED));
	printf("%-10s %lld\n", "ready", cmd_int("ZCARD %s", RQ_KEY_READY));
	printf("%-10s %lld\n", "inflight", cmd_int("ZCARD %s",
	    RQ_KEY_INFLIGHT));
	n = node_names(&names, &hold);
	for (i = 0; i < n; i++)
		if ((int)strlen(names[i]) > w)
			w = (int)strlen(names[i]);
	for (i = 0; i < n; i++)
		total += cmd_int("SCARD %s%s", RQ_KEY_ONCALL, names[i]);
	printf("%-10s %lld\n", "oncall", total);
	for (i = 0; i < n; i++) {
		oncall = cmd_int("SCARD %s%s", RQ_KEY_ONCALL, names[i]);
		printf("  %-*s %lld\n", w, names[i], oncall);
	}
	printf("%-10s %lld\n", "events", cmd_int("XLEN %s", RQ_KEY_EVENTS));
	printf("%-10s %lld\n", "ended", cmd_int("ZCARD %s", RQ_KEY_ENDED));
	free(names);
	freeReplyObject(hold);
	return CTL_EXIT_OK;
}

static int
do_keygen(void)
{
	char pub[41], sec[41];

	if (rq_bus_keygen(pub, sec) == -1)
		die(CTL_EXIT_ERROR, "this libzmq cannot make CURVE keys");
	printf("curve_public_key = %s\ncurve_secret_key = %s\n", pub, sec);
	return CTL_EXIT_OK;
}

int
main(int argc, char *argv[])
{
	struct rq_config cfg;
	const char *conf = NULL, *what;
	char err[512];
	int ch, rv;

	while ((ch = getopt(argc, argv, "+f:h")) != -1) {
		switch (ch) {
		case 'f': conf = optarg; break;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	what = argv[0];
	if (!strcmp(what, "keygen")) {
		if (argc != 1)
			usage();
		return do_keygen();
	}
	if (conf == NULL)
		usage();
	log_init("ringq-ctl", 0);	/* rq_redis_open()'s warnings */
	if (rq_config_load(&cfg, conf, err, sizeof(err)) == -1)
		die(CTL_EXIT_USAGE, "%s", err);
	if (strcmp(what, "telservers") && strcmp(what, "drain") &&
	    strcmp(what, "undrain") && strcmp(what, "queues"))
		usage();
	ctl_connect(&cfg);
	if (!strcmp(what, "telservers") && argc == 1)
		rv = do_telservers();
	else if (!strcmp(what, "queues") && argc == 1)
		rv = do_queues();
	else if (!strcmp(what, "drain"))
		rv = do_drain(argc - 1, argv + 1);
	else if (!strcmp(what, "undrain"))
		rv = do_undrain(argc - 1, argv + 1);
	else
		usage();
	redisFree(rc);
	rq_config_free(&cfg);
	return rv;
}
