/* Prometheus metrics (see metrics.h): the registry, the text format, and
 * the /metrics HTTP server on a thread of its own. */
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

enum rq_mtype { RQ_M_COUNTER, RQ_M_GAUGE, RQ_M_HISTOGRAM };

/* Histogram bucket upper bounds, ms (cumulative counts are computed when
 * rendering; each bucket counts only its own range). */
static const double	hist_le_ms[] = { 1, 2.5, 5, 10, 25, 50, 100, 250,
			    500, 1000, 2500, 5000, 10000 };
#define RQ_HIST_N	(sizeof(hist_le_ms) / sizeof(*hist_le_ms))

struct rq_metric {
	struct rq_metric	*next;
	enum rq_mtype		 type;
	char			*name;
	char			*labels;
	char			*help;
	_Atomic uint64_t	 v;		/* counter; gauge as int64 bits;
						 * histogram: count */
	_Atomic uint64_t	 sum_us;	/* histogram */
	_Atomic uint64_t	 bucket[RQ_HIST_N + 1];	/* last: +Inf */
};

/* The list is only appended to (under the lock); values are atomics. */
static pthread_mutex_t	 reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rq_metric	*reg_head, **reg_tail = &reg_head;

static struct rq_metric *
metric_get(enum rq_mtype type, const char *name, const char *labels,
    const char *help)
{
	struct rq_metric *m, *ret = NULL;
	int clash = 0;

	if (labels == NULL)
		labels = "";
	pthread_mutex_lock(&reg_lock);
	for (m = reg_head; m != NULL; m = m->next) {
		if (strcmp(m->name, name) != 0)
			continue;
		if (m->type != type) {
			clash = 1;
			break;
		}
		if (strcmp(m->labels, labels) == 0) {
			ret = m;
			break;
		}
	}
	if (ret == NULL && !clash && (m = calloc(1, sizeof(*m))) != NULL) {
		m->type = type;
		m->name = strdup(name);
		m->labels = strdup(labels);
		m->help = strdup(help != NULL ? help : "");
		if (m->name == NULL || m->labels == NULL || m->help == NULL) {
			free(m->name);
			free(m->labels);
			free(m->help);
			free(m);
		} else {
			*reg_tail = m;
			reg_tail = &m->next;
			ret = m;
		}
	}
	pthread_mutex_unlock(&reg_lock);
	if (clash)
		log_warnx("metrics: %s registered with two types", name);
	return ret;
}

struct rq_metric *
rq_counter(const char *name, const char *labels, const char *help)
{
	return metric_get(RQ_M_COUNTER, name, labels, help);
}

struct rq_metric *
rq_gauge(const char *name, const char *labels, const char *help)
{
	return metric_get(RQ_M_GAUGE, name, labels, help);
}

struct rq_metric *
rq_histogram(const char *name, const char *labels, const char *help)
{
	return metric_get(RQ_M_HISTOGRAM, name, labels, help);
}

void
rq_metric_add(struct rq_metric *m, uint64_t n)
{
	if (m != NULL)
		atomic_fetch_add_explicit(&m->v, n, memory_order_relaxed);
}

void
rq_metric_inc(struct rq_metric *m)
{
	rq_metric_add(m, 1);
}

void
rq_gauge_set(struct rq_metric *m, int64_t v)
{
	if (m != NULL)
		atomic_store_explicit(&m->v, (uint64_t)v, memory_order_relaxed);
}

void
rq_gauge_add(struct rq_metric *m, int64_t d)
{
	/* Two's complement: adding the uint64 image of d adds d. */
	if (m != NULL)
		atomic_fetch_add_explicit(&m->v, (uint64_t)d,
		    memory_order_relaxed);
}

void
rq_histogram_observe_ms(struct rq_metric *m, double ms)
{
	size_t i;

	if (m == NULL)
		return;
	if (!(ms >= 0))		/* also NaN */
		ms = 0;
	for (i = 0; i < RQ_HIST_N && ms > hist_le_ms[i]; i++)
		;
	atomic_fetch_add_explicit(&m->bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->sum_us, (uint64_t)(ms * 1000.0),
	    memory_order_relaxed);
	atomic_fetch_add_explicit(&m->v, 1, memory_order_relaxed);
}

int64_t
rq_metric_value(const struct rq_metric *m)
{
	return m == NULL ? 0 :
	    (int64_t)atomic_load_explicit(&m->v, memory_order_relaxed);
}

#define ERRORS_HELP	"Errors by kind: redis (a failed command or connect), " \
			"pg (a failed statement or connect)"

void
rq_metric_error(const char *kind)
{
	char labels[64];

	snprintf(labels, sizeof(labels), "kind=\"%s\"", kind);
	rq_metric_inc(rq_counter("ringq_errors_total", labels, ERRORS_HELP));
}

/* Under AddressSanitizer malloc is ASan's, and the gateway's is jemalloc
 * (gateway/meson.build): mallinfo2 would see neither. */
#if defined(__SANITIZE_ADDRESS__)
#define RQ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RQ_ASAN 1
#endif
#endif
#ifdef RQ_ASAN
size_t	__sanitizer_get_current_allocated_bytes(void);
#else
/* jemalloc's, when the process has it */
int	mallctl(const char *, void *, size_t *, void *, size_t)
	    __attribute__((weak));
#endif

/* Bytes malloc has handed out and not had back: what the process holds
 * (its resident memory also keeps what it freed, at its peak), or -1.
 * mallinfo2 walks glibc's free chunks under each arena's lock: about 70 ns
 * a chunk here, 0.05 ms for 5,000, so a thread that misses its tcache
 * meanwhile waits that long, once a scrape. */
static int64_t
heap_in_use(void)
{
#ifdef RQ_ASAN
	return (int64_t)__sanitizer_get_current_allocated_bytes();
#else
	struct mallinfo2 mi;
	uint64_t epoch = 1;
	size_t allocated, len = sizeof(epoch);

	if (mallctl != NULL) {
		/* its statistics are as of the last epoch */
		if (mallctl("epoch", &epoch, &len, &epoch, len) != 0)
			return -1;
		len = sizeof(allocated);
		if (mallctl("stats.allocated", &allocated, &len, NULL, 0) != 0)
			return -1;
		return (int64_t)allocated;
	}
	mi = mallinfo2();
	return (int64_t)(mi.uordblks + mi.hblkhd);
#endif
}

static int64_t
resident_bytes(void)
{
	unsigned long size, resident;
	FILE *f;
	int n;

	if ((f = fopen("/proc/self/statm", "re")) == NULL)
		return -1;
	n = fscanf(f, "%lu %lu", &size, &resident);
	fclose(f);
	return n == 2 ? (int64_t)resident * sysconf(_SC_PAGESIZE) : -1;
}

static int64_t
open_fds(void)
{
	struct dirent *e;
	int64_t n = 0;
	DIR *d;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return -1;	/* out of descriptors, say */
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;		/* d's own */
}

/* The process's own series, read at each scrape (a reading that failed
 * leaves the last one); the names are those of Prometheus's client
 * libraries. */
static void
process_update(void)
{
	struct rq_metric *rss, *fds, *held;
	int64_t v;

	rss = rq_gauge("process_resident_memory_bytes", "",
	    "Resident memory size in bytes");
	fds = rq_gauge("process_open_fds", "",
	    "Number of open file descriptors");
	if ((v = resident_bytes()) >= 0)
		rq_gauge_set(rss, v);
	if ((v = open_fds()) >= 0)
		rq_gauge_set(fds, v);
	held = rq_gauge("ringq_heap_allocated_bytes", "",
	    "Bytes allocated with malloc and not freed: what the daemon "
	    "holds, where its resident memory also keeps what it freed");
	if ((v = heap_in_use()) >= 0)
		rq_gauge_set(held, v);
}

/* A growing string. */
struct sbuf {
	char	*s;
	size_t	 len, cap;
	int	 oom;
};

static void RQ_PRINTF(2, 3)
sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	char *n;
	size_t ncap;
	int k;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		k = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (k < 0) {
			b->oom = 1;
			return;
		}
		if ((size_t)k < b->cap - b->len) {
			b->len += (size_t)k;
			return;
		}
		ncap = b->cap * 2 + (size_t)k + 1;
		if ((n = realloc(b->s, ncap)) == NULL) {
			b->oom = 1;
			return;
		}
		b->s = n;
		b->cap = ncap;
	}
}

/* name{labels[,extra]} */
static void
sb_series(struct sbuf *b, const char *name, const char *suffix,
    const char *labels, const char *extra)
{
	int l = labels[0] != '\0', e = extra != NULL;

	sb_printf(b, "%s%s%s%s%s%s%s ", name, suffix, l || e ? "{" : "",
	    labels, l && e ? "," : "", e ? extra : "", l || e ? "}" : "");
}

static void
render_one(struct sbuf *b, const struct rq_metric *m)
{
	char le[48];
	uint64_t cum = 0, c;
	size_t i;

	switch (m->type) {
	case RQ_M_COUNTER:
		sb_series(b, m->name, "", m->labels, NULL);
		sb_printf(b, "%llu\n", (unsigned long long)atomic_load(&m->v));
		break;
	case RQ_M_GAUGE:
		sb_series(b, m->name, "", m->labels, NULL);
		sb_printf(b, "%lld\n", (long long)(int64_t)atomic_load(&m->v));
		break;
	case RQ_M_HISTOGRAM:
		/* Buckets read one by one: a scrape racing an observation
		 * may be off by one between buckets and count, as with
		 * every Prometheus client. */
		for (i = 0; i <= RQ_HIST_N; i++) {
			cum += atomic_load(&m->bucket[i]);
			if (i < RQ_HIST_N)
				snprintf(le, sizeof(le), "le=\"%g\"",
				    hist_le_ms[i] / 1000.0);
			else
				snprintf(le, sizeof(le), "le=\"+Inf\"");
			sb_series(b, m->name, "_bucket", m->labels, le);
			sb_printf(b, "%llu\n", (unsigned long long)cum);
		}
		c = atomic_load(&m->sum_us);
		sb_series(b, m->name, "_sum", m->labels, NULL);
		sb_printf(b, "%.6f\n", (double)c / 1e6);
		sb_series(b, m->name, "_count", m->labels, NULL);
		sb_printf(b, "%llu\n", (unsigned long long)cum);
		break;
	}
}

char *
rq_metrics_render(size_t *lenp)
{
	static const char *types[] = { "counter", "gauge", "histogram" };
	struct sbuf b = { 0 };
	const struct rq_metric *m, *p, *s;

	process_update();
	if ((b.s = malloc(4096)) == NULL)
		return NULL;
	b.cap = 4096;
	b.s[0] = '\0';
	pthread_mutex_lock(&reg_lock);
	/* One HELP/TYPE block per name, its series together, in order of
	 * first registration. */
	for (m = reg_head; m != NULL; m = m->next) {
		for (p = reg_head; p != m && strcmp(p->name, m->name); p = p->next)
			;
		if (p != m)
			continue;	/* name already written */
		sb_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help,
		    m->name, types[m->type]);
		for (s = m; s != NULL; s = s->next)
			if (!strcmp(s->name, m->name))
				render_one(&b, s);
	}
	pthread_mutex_unlock(&reg_lock);
	if (b.oom) {
		free(b.s);
		return NULL;
	}
	if (lenp != NULL)
		*lenp = b.len;
	return b.s;
}

void
rq_metrics_reset(void)
{
	struct rq_metric *m, *n;

	pthread_mutex_lock(&reg_lock);
	for (m = reg_head; m != NULL; m = n) {
		n = m->next;
		free(m->name);
		free(m->labels);
		free(m->help);
		free(m);
	}
	reg_head = NULL;
	reg_tail = &reg_head;
	pthread_mutex_unlock(&reg_lock);
}

void
rq_metrics_http_cb(struct evhttp_request *req, void *arg)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
	struct evbuffer *buf;
	size_t len;
	char *s;

	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(oh, "Allow", "GET, HEAD");
		evhttp_send_error(req, 405, NULL);
		return;
	}
	if ((s = rq_metrics_render(&len)) == NULL ||
	    (buf = evbuffer_new()) == NULL) {
		free(s);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evbuffer_add(buf, s, len);
	free(s);
	evhttp_add_header(oh, "Content-Type",
	    "text/plain; version=0.0.4; charset=utf-8");
	evhttp_add_header(oh, "Cache-Control", "no-store");
	evhttp_send_reply(req, 200, "OK", buf);
	evbuffer_free(buf);
}

static void
not_found_cb(struct evhttp_request *req, void *arg)
{
	evhttp_send_error(req, 404, "only /metrics here");
}

struct rq_metrics_server {
	struct event_base	*base;
	struct evhttp		*http;
	pthread_t		 thread;
};

static void *
serve(void *arg)
{
	struct rq_metrics_server *s = arg;

	event_base_dispatch(s->base);
	return NULL;
}

static pthread_once_t	evthread_once = PTHREAD_ONCE_INIT;
static int		evthread_rc;

/* event_base_loopbreak() from the daemon's thread must wake the server's
 * loop: libevent needs its locking and notification turned on first. */
static void
evthread_setup(void)
{
	evthread_rc = evthread_use_pthreads();
}

struct rq_metrics_server *
rq_metrics_start(const char *listen)
{
	struct rq_metrics_server *s;
	char host[256];
	sigset_t all, old;
	int port, rc;

	if (listen == NULL || listen[0] == '\0')
		return NULL;
	if (rq_listen_split(listen, host, sizeof(host), &port) == -1)
		fatalx("metrics_listen '%s' is not host:port", listen);

	pthread_once(&evthread_once, evthread_setup);
	if (evthread_rc != 0)
		fatalx("metrics: evthread_use_pthreads failed");
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->base = event_base_new()) == NULL ||
	    (s->http = evhttp_new(s->base)) == NULL)
		fatalx("metrics: out of memory");
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_timeout(s->http, 10);
	evhttp_set_cb(s->http, "/metrics", rq_metrics_http_cb, NULL);
	evhttp_set_gencb(s->http, not_found_cb, NULL);
	if (evhttp_bind_socket_with_handle(s->http, host, (ev_uint16_t)port)
	    == NULL)
		fatal("metrics: cannot listen on %s", listen);

	/* The daemon's thread takes the signals (rq_stop, Sofia's loop). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&s->thread, NULL, serve, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		errno = rc;
		fatal("metrics: pthread_create");
	}
	/* Shown at 0 from the start: a dashboard's rate() needs the series. */
	rq_metric_add(rq_counter("ringq_errors_total", "kind=\"redis\"",
	    ERRORS_HELP), 0);
	log_info("metrics on http://%s/metrics", listen);
	return s;
}

void
rq_metrics_stop(struct rq_metrics_server *s)
{
	if (s == NULL)
		return;
	event_base_loopbreak(s->base);
	pthread_join(s->thread, NULL);
	evhttp_free(s->http);
	event_base_free(s->base);
	free(s);
}
