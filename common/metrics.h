/* Prometheus metrics of a ringq daemon: a process-wide registry of counters,
 * gauges and histograms (lock-free atomics, updated from any thread), the
 * text exposition format, and a small HTTP server on its own thread. */
#ifndef RQ_METRICS_H
#define RQ_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct evhttp_request;

/* A series: a metric name with one fixed set of labels.  Series live until
 * rq_metrics_reset() (tests) or the end of the process; callers keep the
 * pointer (usually in a static) and update it without locking. */
struct rq_metric;

/*
 * Find or register the series name{labels}.  labels is "" or preformatted
 * Prometheus labels without braces (`status="completed",node="t1"`); values
 * come from the code, not the network.  help is the # HELP line, taken from
 * the first registration of name.  Registering under a mutex, these may be
 * called from any thread.  Return NULL (the update functions accept it and do
 * nothing) when out of memory or when name is already another type.
 */
struct rq_metric *rq_counter(const char *name, const char *labels,
	    const char *help);
struct rq_metric *rq_gauge(const char *name, const char *labels,
	    const char *help);
/* Fixed buckets from 1 ms to 10 s; rendered in seconds (name_seconds). */
struct rq_metric *rq_histogram(const char *name, const char *labels,
	    const char *help);

void	rq_metric_add(struct rq_metric *m, uint64_t n);	/* counter */
void	rq_metric_inc(struct rq_metric *m);		/* counter */
void	rq_gauge_set(struct rq_metric *m, int64_t v);
void	rq_gauge_add(struct rq_metric *m, int64_t d);	/* d may be < 0 */
void	rq_histogram_observe_ms(struct rq_metric *m, double ms);
/* Current value (tests; a histogram gives its count). */
int64_t	rq_metric_value(const struct rq_metric *m);

/* Common series every daemon counts: ringq_errors_total{kind=...}. */
void	rq_metric_error(const char *kind);	/* "redis", "pg", ... */

/* The whole registry in the text exposition format 0.0.4.  Returns a string
 * the caller frees, or NULL when out of memory. */
char	*rq_metrics_render(size_t *lenp);
/* Forgets every series (tests only: no other thread may hold one). */
void	rq_metrics_reset(void);

/* An evhttp callback answering GET/HEAD with the registry (the gateway
 * registers it on its API server for /metrics). */
void	rq_metrics_http_cb(struct evhttp_request *req, void *arg);

/* The server of [<daemon>] metrics_listen ("host:port"): its own event_base
 * on its own thread, answering /metrics.  "" = off: returns NULL.  A listen
 * address that does not parse or bind is fatal (start-up).  Stop it with
 * rq_metrics_stop() (NULL-safe), which joins the thread. */
struct rq_metrics_server;
struct rq_metrics_server *rq_metrics_start(const char *listen);
void	rq_metrics_stop(struct rq_metrics_server *s);

#endif
