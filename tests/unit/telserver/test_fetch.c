/* fetch.c against a real HTTP server (fetch_server.py, started here) on a
 * real su_root: concurrency, timeouts, errors, redirects, the cache and
 * its revalidation, maxage/maxstale, POST bodies, cancel, URLs. */
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "telserver.h"

static pid_t server_pid = -1;
static int server_stdin = -1;
static int port;
static su_root_t *root;
static struct tel_fetcher *fetcher;

struct got {
	int		 calls;
	uint64_t	 id;
	char		*error;
	int		 timed_out;
	long		 status;
	char		*url;
	char		*ctype;
	char		*body;
	size_t		 len;
	int		 from_cache;
};

static void
got_clear(struct got *g)
{
	free(g->error);
	free(g->url);
	free(g->ctype);
	free(g->body);
	memset(g, 0, sizeof(*g));
}

static void
on_done(void *arg, const struct tel_fetch_res *res)
{
	struct got *g = arg;

	g->calls++;
	g->id = res->id;
	g->error = res->error ? strdup(res->error) : NULL;
	g->timed_out = res->timed_out;
	g->status = res->status;
	g->url = strdup(res->url);
	g->ctype = strdup(res->content_type);
	g->body = malloc(res->len + 1);
	memcpy(g->body, res->body, res->len);
	g->body[res->len] = '\0';
	g->len = res->len;
	g->from_cache = res->from_cache;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs the loop until every g[i] has its answer or ms have passed. */
static void
wait_all(struct got *g, int n, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	int i, left;

	do {
		for (left = 0, i = 0; i < n; i++)
			left += g[i].calls == 0;
		if (left == 0)
			return;
		su_root_step(root, 20);
	} while (now_ms() < end);
}

static void
run_for(int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	while (now_ms() < end)
		su_root_step(root, 20);
}

static char *
url(const char *path)
{
	static char buf[8][512];
	static int n;
	char *b = buf[n++ % 8];

	snprintf(b, sizeof(buf[0]), "http://127.0.0.1:%d%s", port, path);
	return b;
}

static uint64_t
get(const char *path, long maxage, long maxstale, struct got *g)
{
	struct tel_fetch_req req = { .url = url(path), .method = TEL_FETCH_GET,
	    .maxage = maxage, .maxstale = maxstale };

	return tel_fetch(fetcher, &req, on_done, g);
}

/* Fetches and waits: the body of a 200. */
static void
get_wait(const char *path, long maxage, long maxstale, struct got *g)
{
	got_clear(g);
	get(path, maxage, maxstale, g);
	wait_all(g, 1, 5000);
	assert_int_equal(g->calls, 1);
	assert_null(g->error);
	assert_int_equal(g->status, 200);
}

/* What /count/NAME says: requests and 304s the server gave for NAME. */
static void
server_count(const char *name, int *requests, int *notmodified)
{
	struct got g = { 0 };
	char path[128];

	snprintf(path, sizeof(path), "/count/%s", name);
	get_wait(path, -1, -1, &g);
	assert_int_equal(sscanf(g.body, "requests=%d notmodified=%d",
	    requests, notmodified), 2);
	got_clear(&g);
}

static int
setup(void **state)
{
	const char *script = getenv("FETCH_SERVER");
	int in[2], out[2];
	char line[32];
	FILE *fp;

	if (script == NULL || access("/usr/bin/python3", X_OK) != 0) {
		fprintf(stderr, "test_fetch: needs python3 and FETCH_SERVER\n");
		exit(77);
	}
	if (pipe(in) == -1 || pipe(out) == -1)
		return -1;
	if ((server_pid = fork()) == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execl("/usr/bin/python3", "python3", script, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	server_stdin = in[1];	/* closing it stops the server */
	if ((fp = fdopen(out[0], "r")) == NULL ||
	    fgets(line, sizeof(line), fp) == NULL)
		return -1;
	fclose(fp);
	port = atoi(line);
	su_init();
	if ((root = su_root_create(NULL)) == NULL)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	su_root_destroy(root);
	su_deinit();
	close(server_stdin);
	kill(server_pid, SIGTERM);
	waitpid(server_pid, NULL, 0);
	return 0;
}

/* A fetcher that may reach the test server on 127.0.0.1. */
static struct tel_fetcher *
loopback_fetcher(size_t cache_bytes)
{
	struct tel_fetcher *f;

	if ((f = tel_fetcher_new(root, cache_bytes)) != NULL)
		tel_fetcher_allow_addrs(f, 1, 0);
	return f;
}

static int
new_fetcher(void **state)
{
	fetcher = loopback_fetcher(1 << 20);
	return fetcher == NULL ? -1 : 0;
}

static int
free_fetcher(void **state)
{
	tel_fetcher_free(fetcher);
	fetcher = NULL;
	return 0;
}

/* Five slow answers at once take the time of one, not of five. */
static void
test_concurrent(void **state)
{
	struct got g[5] = { 0 };
	char path[64];
	uint64_t t0 = now_ms(), ids[5];
	int i;

	for (i = 0; i < 5; i++) {
		snprintf(path, sizeof(path), "/delay?ms=400&i=%d", i);
		ids[i] = get(path, -1, -1, &g[i]);
		assert_true(ids[i] != 0);
	}
	for (i = 1; i < 5; i++)
		assert_true(ids[i] != ids[0]);
	wait_all(g, 5, 5000);
	assert_true(now_ms() - t0 < 1500);
	for (i = 0; i < 5; i++) {
		snprintf(path, sizeof(path), "slept %d", i);
		assert_int_equal(g[i].calls, 1);
		assert_int_equal(g[i].id, ids[i]);
		assert_int_equal(g[i].status, 200);
		assert_string_equal(g[i].body, path);
		assert_string_equal(g[i].ctype, "text/plain");
		got_clear(&g[i]);
	}
}

/* Many fetches at once: sockets come and go in the su_root; each answer
 * reaches its own callback once; the User-Agent names ringq. */
static void
test_many(void **state)
{
	struct got g[40];
	char path[64];
	int i;

	memset(g, 0, sizeof(g));
	for (i = 0; i < 40; i++) {
		snprintf(path, sizeof(path), "/delay?ms=%d&i=%d", i % 4 * 20, i);
		get(path, -1, -1, &g[i]);
	}
	wait_all(g, 40, 10000);
	for (i = 0; i < 40; i++) {
		snprintf(path, sizeof(path), "slept %d", i);
		assert_int_equal(g[i].calls, 1);
		assert_string_equal(g[i].body, path);
		got_clear(&g[i]);
	}
	get_wait("/ua", -1, -1, &g[0]);
	assert_non_null(strstr(g[0].body, "ringq"));
	got_clear(&g[0]);
}

static void
test_timeout(void **state)
{
	struct tel_fetch_req req = { .url = url("/delay?ms=3000"),
	    .timeout_ms = 300, .maxage = -1, .maxstale = -1 };
	struct got g = { 0 };
	uint64_t t0 = now_ms();

	tel_fetch(fetcher, &req, on_done, &g);
	wait_all(&g, 1, 5000);
	assert_int_equal(g.calls, 1);
	assert_non_null(g.error);
	assert_true(g.timed_out);
	assert_int_equal(g.status, 0);
	assert_true(now_ms() - t0 < 2000);
	got_clear(&g);
}

static void
test_404_and_refused(void **state)
{
	struct tel_fetch_req req = { .maxage = -1, .maxstale = -1 };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	struct got g = { 0 };
	char buf[64];
	int fd;

	get("/nothing", -1, -1, &g);
	wait_all(&g, 1, 5000);
	assert_int_equal(g.calls, 1);
	assert_null(g.error);		/* an answer, not a transport error */
	assert_int_equal(g.status, 404);
	assert_string_equal(g.body, "not here");
	got_clear(&g);

	/* a port nobody listens on: bound, then closed */
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	getsockname(fd, (struct sockaddr *)&sin, &sl);
	close(fd);
	snprintf(buf, sizeof(buf), "http://127.0.0.1:%d/x",
	    ntohs(sin.sin_port));
	req.url = buf;
	tel_fetch(fetcher, &req, on_done, &g);
	wait_all(&g, 1, 5000);
	assert_int_equal(g.calls, 1);
	assert_non_null(g.error);
	assert_non_null(strstr(g.error, "onnect"));
	assert_false(g.timed_out);
	assert_int_equal(g.status, 0);
	got_clear(&g);

	req.url = "gopher://127.0.0.1/x";
	tel_fetch(fetcher, &req, on_done, &g);
	assert_int_equal(g.calls, 0);	/* never inside tel_fetch */
	wait_all(&g, 1, 1000);
	assert_int_equal(g.calls, 1);
	assert_non_null(strstr(g.error, "scheme"));
	got_clear(&g);
}

static void
test_redirect(void **state)
{
	struct got g = { 0 };

	get_wait("/redirect?to=/doc/r1", -1, -1, &g);
	assert_string_equal(g.body, "r1 1");
	assert_string_equal(g.url, url("/doc/r1"));
	assert_string_equal(g.ctype, "application/voicexml+xml");
	got_clear(&g);
}

/* max-age=60: the second fetch is served without a request, and from the
 * loop, not inside tel_fetch. */
static void
test_cache_hit(void **state)
{
	struct got g = { 0 };
	int r, m;
	size_t n, bytes;

	get_wait("/doc/hit?cc=max-age%3D60", -1, -1, &g);
	assert_string_equal(g.body, "hit 1");
	assert_false(g.from_cache);
	got_clear(&g);
	get("/doc/hit?cc=max-age%3D60", -1, -1, &g);
	assert_int_equal(g.calls, 0);
	wait_all(&g, 1, 1000);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.status, 200);
	assert_true(g.from_cache);
	assert_string_equal(g.body, "hit 1");
	assert_string_equal(g.url, url("/doc/hit?cc=max-age%3D60"));
	assert_string_equal(g.ctype, "application/voicexml+xml");
	got_clear(&g);
	server_count("hit", &r, &m);
	assert_int_equal(r, 1);
	tel_fetcher_cache_usage(fetcher, &n, &bytes);
	assert_true(n >= 1);
	assert_true(bytes > 0);

	/* a fragment names the same document */
	get_wait("/doc/hit?cc=max-age%3D60#form2", -1, -1, &g);
	assert_true(g.from_cache);
	got_clear(&g);

	/* Expires in the future works as max-age does */
	get_wait("/doc/exp?expires=60", -1, -1, &g);
	get_wait("/doc/exp?expires=60", -1, -1, &g);
	assert_true(g.from_cache);
	got_clear(&g);
	server_count("exp", &r, &m);
	assert_int_equal(r, 1);

	/* no-store: never kept */
	get_wait("/doc/ns?cc=no-store", -1, -1, &g);
	get_wait("/doc/ns?cc=no-store", -1, -1, &g);
	assert_false(g.from_cache);
	assert_string_equal(g.body, "ns 2");
	got_clear(&g);
}

/* no-cache with an ETag, and Last-Modified without freshness: each fetch
 * asks, the server says 304, and the cached body comes back as a 200. */
static void
test_revalidate(void **state)
{
	struct got g = { 0 };
	int r, m;

	get_wait("/doc/v?cc=no-cache&etag=%22v1%22", -1, -1, &g);
	assert_string_equal(g.body, "v 1");
	get_wait("/doc/v?cc=no-cache&etag=%22v1%22", -1, -1, &g);
	assert_true(g.from_cache);
	assert_string_equal(g.body, "v 1");
	got_clear(&g);
	server_count("v", &r, &m);
	assert_int_equal(r, 2);
	assert_int_equal(m, 1);

	get_wait("/doc/lm?lm=1", -1, -1, &g);
	get_wait("/doc/lm?lm=1", -1, -1, &g);
	assert_true(g.from_cache);
	assert_string_equal(g.body, "lm 1");
	got_clear(&g);
	server_count("lm", &r, &m);
	assert_int_equal(r, 2);
	assert_int_equal(m, 1);
}

/* maxage=0 revalidates a fresh entry; without validators it fetches the
 * document again. */
static void
test_maxage(void **state)
{
	struct got g = { 0 };
	int r, m;

	get_wait("/doc/ma?cc=max-age%3D60&etag=%22a%22", -1, -1, &g);
	get_wait("/doc/ma?cc=max-age%3D60&etag=%22a%22", 0, -1, &g);
	assert_true(g.from_cache);
	assert_string_equal(g.body, "ma 1");
	get_wait("/doc/ma?cc=max-age%3D60&etag=%22a%22", 30, -1, &g);
	assert_true(g.from_cache);
	got_clear(&g);
	server_count("ma", &r, &m);
	assert_int_equal(r, 2);
	assert_int_equal(m, 1);

	get_wait("/doc/mb?cc=max-age%3D60", -1, -1, &g);
	get_wait("/doc/mb?cc=max-age%3D60", 0, -1, &g);
	assert_false(g.from_cache);
	assert_string_equal(g.body, "mb 2");
	got_clear(&g);
}

/* Age: 100 with max-age=60: stale by 40 s at once.  maxstale=50 takes
 * it, maxstale=30 does not; must-revalidate forbids stale service. */
static void
test_maxstale(void **state)
{
	struct got g = { 0 };
	int r, m;

	get_wait("/doc/st?cc=max-age%3D60&age=100", -1, -1, &g);
	get_wait("/doc/st?cc=max-age%3D60&age=100", -1, 50, &g);
	assert_true(g.from_cache);
	assert_string_equal(g.body, "st 1");
	get_wait("/doc/st?cc=max-age%3D60&age=100", -1, 30, &g);
	assert_false(g.from_cache);
	assert_string_equal(g.body, "st 2");
	got_clear(&g);
	server_count("st", &r, &m);
	assert_int_equal(r, 2);

	get_wait("/doc/mr?cc=max-age%3D60,must-revalidate&age=100", -1, -1,
	    &g);
	get_wait("/doc/mr?cc=max-age%3D60,must-revalidate&age=100", -1, 500,
	    &g);
	assert_false(g.from_cache);
	assert_string_equal(g.body, "mr 2");
	got_clear(&g);
}

static void
test_post_urlencoded(void **state)
{
	struct tel_fetch_part parts[] = {
		{ .name = "a", .value = "1 2&3", .len = 5 },
		{ .name = "b", .value = "\xc3\xa9", .len = 2 },
		{ .name = "empty", .value = "", .len = 0 },
	};
	struct tel_fetch_req req = { .url = url("/echo"),
	    .method = TEL_FETCH_POST, .enc = TEL_FETCH_URLENCODED,
	    .parts = parts, .nparts = 3, .maxage = -1, .maxstale = -1 };
	struct got g = { 0 };

	tel_fetch(fetcher, &req, on_done, &g);
	wait_all(&g, 1, 5000);
	assert_int_equal(g.status, 200);
	assert_string_equal(g.body, "ct=application/x-www-form-urlencoded\n"
	    "a=1 2&3\nb=\xc3\xa9\nempty=\n");
	got_clear(&g);

	/* the same namelist over GET becomes the query */
	req.method = TEL_FETCH_GET;
	req.url = url("/echo?x=0");
	tel_fetch(fetcher, &req, on_done, &g);
	wait_all(&g, 1, 5000);
	assert_int_equal(g.status, 200);
	assert_string_equal(g.body, "x=0\na=1 2&3\nb=\xc3\xa9\nempty=\n");
	got_clear(&g);
}

static void
test_post_multipart(void **state)
{
	char audio[256], want[1024], *p;
	struct tel_fetch_part parts[] = {
		{ .name = "field", .value = "hello", .len = 5 },
		{ .name = "rec", .value = audio, .len = sizeof(audio),
		  .type = "audio/wav", .filename = "rec.wav" },
	};
	struct tel_fetch_req req = { .url = url("/echo"),
	    .method = TEL_FETCH_POST, .enc = TEL_FETCH_MULTIPART,
	    .parts = parts, .nparts = 2, .maxage = -1, .maxstale = -1 };
	struct got g = { 0 };
	int i;

	for (i = 0; i < 256; i++)
		audio[i] = (char)i;	/* NULs, CRLFs, dashes: all of it */
	p = want + sprintf(want, "ct=multipart/form-data\n"
	    "field||-|68656c6c6f\nrec|rec.wav|audio/wav|");
	for (i = 0; i < 256; i++)
		p += sprintf(p, "%02x", i);
	strcpy(p, "\n");
	tel_fetch(fetcher, &req, on_done, &g);
	wait_all(&g, 1, 5000);
	assert_int_equal(g.status, 200);
	assert_string_equal(g.body, want);
	got_clear(&g);
}

/* A POST to a cached URL drops the entry (HTTP: it changed). */
static void
test_post_invalidates(void **state)
{
	struct tel_fetch_req req = { .method = TEL_FETCH_POST,
	    .maxage = -1, .maxstale = -1 };
	struct got g = { 0 };

	get_wait("/doc/pi?cc=max-age%3D60", -1, -1, &g);
	req.url = url("/doc/pi?cc=max-age%3D60");
	got_clear(&g);
	tel_fetch(fetcher, &req, on_done, &g);
	wait_all(&g, 1, 5000);
	assert_int_equal(g.status, 404);	/* the server takes POSTs at /echo only */
	get_wait("/doc/pi?cc=max-age%3D60", -1, -1, &g);
	assert_false(g.from_cache);
	assert_string_equal(g.body, "pi 2");
	got_clear(&g);
}

/* Callbacks may fetch and cancel: a fetch started inside a callback is
 * answered later from the loop, even a cache hit, and a cancel from a
 * callback holds for a hit already waiting. */
struct chain {
	struct got	 first, second, victim;
	uint64_t	 victim_id;
	int		 second_calls_in_cb;
};

static void
on_chain(void *arg, const struct tel_fetch_res *res)
{
	struct chain *c = arg;

	on_done(&c->first, res);
	get("/doc/ch?cc=max-age%3D60", -1, -1, &c->second);
	c->second_calls_in_cb = c->second.calls;
	tel_fetch_cancel(fetcher, c->victim_id);
}

static void
test_callback_reentry(void **state)
{
	struct tel_fetch_req req = { .url = url("/doc/ch?cc=max-age%3D60"),
	    .maxage = -1, .maxstale = -1 };
	struct chain c = { 0 };

	get_wait("/doc/ch?cc=max-age%3D60", -1, -1, &c.first);
	got_clear(&c.first);
	tel_fetch(fetcher, &req, on_chain, &c);		/* hit, then */
	c.victim_id = get("/doc/ch?cc=max-age%3D60", -1, -1, &c.victim);
	wait_all(&c.second, 1, 2000);
	assert_int_equal(c.first.calls, 1);
	assert_int_equal(c.second_calls_in_cb, 0);
	assert_int_equal(c.second.calls, 1);
	assert_true(c.second.from_cache);
	run_for(100);
	assert_int_equal(c.victim.calls, 0);
	got_clear(&c.first);
	got_clear(&c.second);
}

static void
test_cancel(void **state)
{
	struct got g[3] = { 0 };
	uint64_t a, c;

	a = get("/delay?ms=300", -1, -1, &g[0]);
	get("/delay?ms=100", -1, -1, &g[1]);
	tel_fetch_cancel(fetcher, a);
	tel_fetch_cancel(fetcher, a);		/* twice: harmless */
	tel_fetch_cancel(fetcher, 999999);	/* unknown: harmless */
	/* a cache hit waiting for the loop can be cancelled as well */
	get_wait("/doc/cc?cc=max-age%3D60", -1, -1, &g[2]);
	got_clear(&g[2]);
	c = get("/doc/cc?cc=max-age%3D60", -1, -1, &g[2]);
	tel_fetch_cancel(fetcher, c);
	run_for(600);
	assert_int_equal(g[0].calls, 0);
	assert_int_equal(g[1].calls, 1);
	assert_string_equal(g[1].body, "slept ");
	assert_int_equal(g[2].calls, 0);
	got_clear(&g[1]);

	/* freeing the fetcher with fetches running calls nobody */
	get("/delay?ms=200", -1, -1, &g[0]);
	tel_fetcher_free(fetcher);
	fetcher = loopback_fetcher(1 << 20);
	run_for(400);
	assert_int_equal(g[0].calls, 0);
}

/* A cache of 4 kB holds two 1 kB documents and a bit: the least recently
 * used goes first. */
static void
test_lru(void **state)
{
	struct got g = { 0 };
	size_t n, bytes;
	int r, m;

	tel_fetcher_free(fetcher);
	fetcher = loopback_fetcher(4000);
	get_wait("/doc/l1?cc=max-age%3D60&size=1000", -1, -1, &g);
	get_wait("/doc/l2?cc=max-age%3D60&size=1000", -1, -1, &g);
	get_wait("/doc/l1?cc=max-age%3D60&size=1000", -1, -1, &g);
	assert_true(g.from_cache);		/* l1 is now the newest */
	get_wait("/doc/l3?cc=max-age%3D60&size=1000", -1, -1, &g);
	tel_fetcher_cache_usage(fetcher, &n, &bytes);
	assert_true(bytes <= 4000);
	get_wait("/doc/l1?cc=max-age%3D60&size=1000", -1, -1, &g);
	assert_true(g.from_cache);
	assert_int_equal(g.len, 1000);
	get_wait("/doc/l2?cc=max-age%3D60&size=1000", -1, -1, &g);
	assert_false(g.from_cache);		/* evicted */
	/* larger than the whole cache: served, not kept */
	get_wait("/doc/big?cc=max-age%3D60&size=5000", -1, -1, &g);
	assert_int_equal(g.len, 5000);
	get_wait("/doc/big?cc=max-age%3D60&size=5000", -1, -1, &g);
	assert_false(g.from_cache);
	got_clear(&g);
	server_count("l2", &r, &m);
	assert_int_equal(r, 2);
	server_count("l1", &r, &m);
	assert_int_equal(r, 1);
}

static void
test_file(void **state)
{
	char path[] = "/tmp/test_fetch_XXXXXX", u[128];
	struct tel_fetch_req req = { .url = u, .maxage = -1, .maxstale = -1 };
	struct got g = { 0 };
	int fd;

	assert_true((fd = mkstemp(path)) >= 0);
	assert_int_equal(write(fd, "<vxml/>", 7), 7);
	close(fd);
	snprintf(u, sizeof(u), "file://%s", path);
	tel_fetch(fetcher, &req, on_done, &g);
	wait_all(&g, 1, 1000);
	assert_non_null(g.error);
	assert_non_null(strstr(g.error, "not allowed"));
	got_clear(&g);

	tel_fetcher_allow_file(fetcher, 1);
	tel_fetch(fetcher, &req, on_done, &g);
	wait_all(&g, 1, 1000);
	assert_null(g.error);
	assert_int_equal(g.status, 200);
	assert_string_equal(g.body, "<vxml/>");
	got_clear(&g);
	unlink(path);
	tel_fetch(fetcher, &req, on_done, &g);
	wait_all(&g, 1, 1000);
	assert_non_null(g.error);
	got_clear(&g);
	tel_fetcher_allow_file(fetcher, 0);
}

/* By default (application URLs come from tenants) nothing on loopback is
 * fetched: the fetch fails saying why, and the server sees no request.
 * Allowing private addresses does not allow loopback. */
static void
test_refused_addresses(void **state)
{
	struct got g = { 0 };
	int r, m;

	tel_fetcher_free(fetcher);
	fetcher = tel_fetcher_new(root, 1 << 20);
	get("/doc/refused", -1, -1, &g);
	wait_all(&g, 1, 5000);
	assert_int_equal(g.calls, 1);
	assert_non_null(g.error);
	assert_non_null(strstr(g.error,
	    "refused to connect to 127.0.0.1: this host (loopback)"));
	got_clear(&g);
	tel_fetcher_allow_addrs(fetcher, 0, 1);
	get("/doc/refused", -1, -1, &g);
	wait_all(&g, 1, 5000);
	assert_int_equal(g.calls, 1);
	assert_non_null(g.error);
	got_clear(&g);
	tel_fetcher_allow_addrs(fetcher, 1, 0);	/* server_count needs it */
	server_count("refused", &r, &m);
	assert_int_equal(r, 0);

	get_wait("/doc/refused", -1, -1, &g);
	assert_null(g.error);
	assert_int_equal(g.status, 200);
	got_clear(&g);
	server_count("refused", &r, &m);
	assert_int_equal(r, 1);
}

static void
check_resolve(const char *base, const char *ref, const char *want,
    const char *want_frag)
{
	char *u, *frag, err[128];

	assert_int_equal(tel_url_resolve(base, ref, &u, &frag, err,
	    sizeof(err)), 0);
	assert_string_equal(u, want);
	if (want_frag == NULL)
		assert_null(frag);
	else
		assert_string_equal(frag, want_frag);
	free(u);
	free(frag);
}

static void
test_resolve(void **state)
{
	const char *b = "http://h:8080/app/main.vxml?x=1#f0";
	char *u, *frag, err[128];

	check_resolve(b, "next.vxml", "http://h:8080/app/next.vxml", NULL);
	check_resolve(b, "#form2", "http://h:8080/app/main.vxml?x=1", "form2");
	check_resolve(b, "", "http://h:8080/app/main.vxml?x=1", NULL);
	check_resolve(b, "../lib/g.grxml#r", "http://h:8080/lib/g.grxml",
	    "r");
	check_resolve(b, "/root.vxml", "http://h:8080/root.vxml", NULL);
	check_resolve(b, "?y=2", "http://h:8080/app/main.vxml?y=2", NULL);
	check_resolve(b, "//other/a.vxml", "http://other/a.vxml", NULL);
	check_resolve(b, "https://s/a b.vxml#z", "https://s/a%20b.vxml", "z");
	check_resolve(NULL, "http://a/b.vxml", "http://a/b.vxml", NULL);
	check_resolve("file:///srv/t/1.vxml", "2.vxml", "file:///srv/t/2.vxml",
	    NULL);
	assert_int_equal(tel_url_resolve(NULL, "rel.vxml", &u, &frag, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "rel.vxml"));
	assert_int_equal(tel_url_resolve(NULL, "#f", &u, &frag, err,
	    sizeof(err)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_concurrent, new_fetcher,
		    free_fetcher),
		cmocka_unit_test_setup_teardown(test_many, new_fetcher,
		    free_fetcher),
		cmocka_unit_test_setup_teardown(test_timeout, new_fetcher,
		    free_fetcher),
		cmocka_unit_test_setup_teardown(test_404_and_refused,
		    new_fetcher, free_fetcher),
		cmocka_unit_test_setup_teardown(test_redirect, new_fetcher,
		    free_fetcher),
		cmocka_unit_test_setup_teardown(test_cache_hit, new_fetcher,
		    free_fetcher),
		cmocka_unit_test_setup_teardown(test_revalidate, new_fetcher,
		    free_fetcher),
		cmocka_unit_test_setup_teardown(test_maxage, new_fetcher,
		    free_fetcher),
		cmocka_unit_test_setup_teardown(test_maxstale, new_fetcher,
		    free_fetcher),
		cmocka_unit_test_setup_teardown(test_post_urlencoded,
		    new_fetcher, free_fetcher),
		cmocka_unit_test_setup_teardown(test_post_multipart,
		    new_fetcher, free_fetcher),
		cmocka_unit_test_setup_teardown(test_post_invalidates,
		    new_fetcher, free_fetcher),
		cmocka_unit_test_setup_teardown(test_callback_reentry,
		    new_fetcher, free_fetcher),
		cmocka_unit_test_setup_teardown(test_cancel, new_fetcher,
		    free_fetcher),
		cmocka_unit_test_setup_teardown(test_lru, new_fetcher,
		    free_fetcher),
		cmocka_unit_test_setup_teardown(test_file, new_fetcher,
		    free_fetcher),
		cmocka_unit_test_setup_teardown(test_refused_addresses,
		    new_fetcher, free_fetcher),
		cmocka_unit_test(test_resolve),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
