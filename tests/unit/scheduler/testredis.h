/* A throwaway redis-server for unit tests that exercise Lua scripts: a free
 * port, a temp dir, stopped at the end.  Header-only, shared by the
 * scheduler and dispatcher tests. */
#ifndef TESTREDIS_H
#define TESTREDIS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

static pid_t	testredis_pid = -1;
static int	testredis_port;
static char	testredis_dir[] = "/tmp/ringq-unit-redis.XXXXXX";

static int
testredis_free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int s, port;

	if ((s = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(s, (struct sockaddr *)&sin, &len) == -1) {
		close(s);
		return -1;
	}
	port = ntohs(sin.sin_port);
	close(s);
	return port;
}

/* A command on a fresh connection; NULL when Redis does not answer. */
static redisReply *
testredis_cmd(const char *fmt, ...)
{
	struct timeval tv = { 1, 0 };
	redisContext *c;
	redisReply *r;
	va_list ap;

	c = redisConnectWithTimeout("127.0.0.1", testredis_port, tv);
	if (c == NULL || c->err) {
		if (c)
			redisFree(c);
		return NULL;
	}
	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	redisFree(c);
	return r;
}

/* Starts redis-server on testredis_port (picked when 0).  Returns 0, or -1
 * when it did not come up. */
static int
testredis_launch(void)
{
	char port[16], log[sizeof(testredis_dir) + 16];
	redisReply *r;
	int i;

	snprintf(port, sizeof(port), "%d", testredis_port);
	snprintf(log, sizeof(log), "%s/redis.log", testredis_dir);
	if ((testredis_pid = fork()) == -1)
		return -1;
	if (testredis_pid == 0) {
		execlp("redis-server", "redis-server", "--port", port,
		    "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		    "--dir", testredis_dir, "--logfile", log, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 100; i++) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };

		if ((r = testredis_cmd("PING")) != NULL) {
			freeReplyObject(r);
			return 0;
		}
		nanosleep(&ts, NULL);
	}
	return -1;
}

static void
testredis_kill(void)
{
	if (testredis_pid > 0) {
		kill(testredis_pid, SIGTERM);
		waitpid(testredis_pid, NULL, 0);
	}
	testredis_pid = -1;
}

/* Starts a server, or exits 77 (skip) when redis-server is missing. */
static void
testredis_start(void)
{
	if (system("command -v redis-server >/dev/null 2>&1") != 0) {
		/* deploy/ installs it: a missing one is a broken set-up. */
		fprintf(stderr, "redis-server is not installed "
		    "(deploy/install-packages installs it)\n");
		exit(1);
	}
	if (mkdtemp(testredis_dir) == NULL ||
	    (testredis_port = testredis_free_port()) == -1 ||
	    testredis_launch() == -1) {
		fprintf(stderr, "cannot start redis-server\n");
		exit(1);
	}
}

static void
testredis_stop(void)
{
	char cmd[sizeof(testredis_dir) + 16];

	testredis_kill();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", testredis_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", testredis_dir);
}

/* Integer or string reply of a command as a long long (-1: nil/error). */
static long long
testredis_num(const char *fmt, ...)
{
	struct timeval tv = { 1, 0 };
	redisContext *c;
	redisReply *r;
	long long v = -1;
	va_list ap;

	c = redisConnectWithTimeout("127.0.0.1", testredis_port, tv);
	if (c == NULL || c->err) {
		if (c)
			redisFree(c);
		return -1;
	}
	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	redisFree(c);
	if (r == NULL)
		return -1;
	if (r->type == REDIS_REPLY_INTEGER)
		v = r->integer;
	else if (r->type == REDIS_REPLY_STRING)
		v = strtoll(r->str, NULL, 10);
	freeReplyObject(r);
	return v;
}

/* Runs a command, ignoring its reply. */
#define testredis_do(...) do {						\
	redisReply *r_ = testredis_cmd(__VA_ARGS__);			\
	if (r_ != NULL)							\
		freeReplyObject(r_);					\
} while (0)

/* The value of field in the last rq:events entry for call id and status,
 * copied to out (may be NULL); returns how many such entries there are,
 * or -1 when Redis did not answer. */
static inline int
testredis_event(const char *id, const char *status, const char *field,
    char *out,
    size_t outlen)
{
	redisReply *r, *e, *f;
	const char *cid, *st, *v;
	size_t i, j;
	int n = 0;

	if (out != NULL)
		out[0] = '\0';
	if ((r = testredis_cmd("XRANGE rq:events - +")) == NULL)
		return -1;
	for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		e = r->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements != 2)
			continue;
		f = e->element[1];
		cid = st = v = NULL;
		for (j = 0; j + 1 < f->elements; j += 2) {
			if (!strcmp(f->element[j]->str, "call_id"))
				cid = f->element[j + 1]->str;
			else if (!strcmp(f->element[j]->str, "status"))
				st = f->element[j + 1]->str;
			if (field != NULL && !strcmp(f->element[j]->str, field))
				v = f->element[j + 1]->str;
		}
		if (cid == NULL || st == NULL || strcmp(cid, id) ||
		    strcmp(st, status))
			continue;
		n++;
		if (out != NULL && v != NULL)
			snprintf(out, outlen, "%s", v);
	}
	freeReplyObject(r);
	return n;
}

#endif
