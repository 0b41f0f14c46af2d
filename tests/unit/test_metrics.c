/* The metrics registry, its text format, and the /metrics server. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "metrics.h"

static int
teardown(void **state)
{
	rq_metrics_reset();
	return 0;
}

static void
test_registry(void **state)
{
	struct rq_metric *a, *b, *c, *g;

	a = rq_counter("ringq_x_total", "status=\"completed\"", "X.");
	b = rq_counter("ringq_x_total", "status=\"completed\"", "X.");
	c = rq_counter("ringq_x_total", "status=\"busy\"", "X.");
	assert_non_null(a);
	assert_ptr_equal(a, b);		/* find or create */
	assert_ptr_not_equal(a, c);
	/* A name is one type. */
	assert_null(rq_gauge("ringq_x_total", "", "X."));
	rq_metric_inc(a);
	rq_metric_add(b, 4);
	assert_int_equal(rq_metric_value(a), 5);
	assert_int_equal(rq_metric_value(c), 0);

	g = rq_gauge("ringq_g", "", "G.");
	rq_gauge_set(g, 3);
	rq_gauge_add(g, -5);
	assert_int_equal(rq_metric_value(g), -2);
	/* NULL (out of memory) is accepted and ignored. */
	rq_metric_inc(NULL);
	rq_gauge_set(NULL, 1);
	rq_histogram_observe_ms(NULL, 1);
	assert_int_equal(rq_metric_value(NULL), 0);
}

static void
test_render(void **state)
{
	struct rq_metric *h;
	char *s;
	size_t len;

	rq_metric_add(rq_counter("ringq_calls_ended_total",
	    "status=\"completed\"", "Calls ended."), 2);
	rq_gauge_set(rq_gauge("ringq_active_calls", "", "Active."), -1);
	rq_metric_inc(rq_counter("ringq_calls_ended_total",
	    "status=\"busy\"", "Calls ended."));
	h = rq_histogram("ringq_lat_seconds", "", "Latency.");
	rq_histogram_observe_ms(h, 0.5);	/* <= 1 ms */
	rq_histogram_observe_ms(h, 7);		/* <= 10 ms */
	rq_histogram_observe_ms(h, 20000);	/* +Inf */
	rq_metric_error("redis");

	s = rq_metrics_render(&len);
	assert_non_null(s);
	assert_int_equal(strlen(s), len);
	/* One HELP/TYPE per name, its series together. */
	assert_non_null(strstr(s,
	    "# HELP ringq_calls_ended_total Calls ended.\n"
	    "# TYPE ringq_calls_ended_total counter\n"
	    "ringq_calls_ended_total{status=\"completed\"} 2\n"
	    "ringq_calls_ended_total{status=\"busy\"} 1\n"));
	assert_non_null(strstr(s, "# TYPE ringq_active_calls gauge\n"
	    "ringq_active_calls -1\n"));
	assert_non_null(strstr(s, "# TYPE ringq_lat_seconds histogram\n"
	    "ringq_lat_seconds_bucket{le=\"0.001\"} 1\n"
	    "ringq_lat_seconds_bucket{le=\"0.0025\"} 1\n"));
	assert_non_null(strstr(s, "ringq_lat_seconds_bucket{le=\"0.01\"} 2\n"));
	assert_non_null(strstr(s, "ringq_lat_seconds_bucket{le=\"10\"} 2\n"
	    "ringq_lat_seconds_bucket{le=\"+Inf\"} 3\n"
	    "ringq_lat_seconds_sum 20.007500\n"
	    "ringq_lat_seconds_count 3\n"));
	assert_non_null(strstr(s, "ringq_errors_total{kind=\"redis\"} 1\n"));
	assert_int_equal(s[len - 1], '\n');
	free(s);
}

/* The process's own series, read at each scrape: what it holds moves with
 * what it allocates. */
static void
test_process(void **state)
{
	long long held0, held1, rss, fds;
	char *s, *p, *big;
	size_t len;

	s = rq_metrics_render(&len);
	assert_non_null(s);
	assert_non_null(p = strstr(s, "\nringq_heap_allocated_bytes "));
	held0 = atoll(p + strlen("\nringq_heap_allocated_bytes "));
	assert_non_null(p = strstr(s, "\nprocess_resident_memory_bytes "));
	rss = atoll(p + strlen("\nprocess_resident_memory_bytes "));
	assert_non_null(p = strstr(s, "\nprocess_open_fds "));
	fds = atoll(p + strlen("\nprocess_open_fds "));
	assert_non_null(strstr(s, "# TYPE process_resident_memory_bytes "
	    "gauge\n"));
	free(s);
	assert_true(held0 > 0);
	assert_true(rss >= held0);
	assert_true(fds >= 3);		/* stdin, stdout, stderr */

	assert_non_null(big = malloc(8 << 20));
	memset(big, 1, 8 << 20);
	s = rq_metrics_render(&len);
	assert_non_null(s);
	assert_non_null(p = strstr(s, "\nringq_heap_allocated_bytes "));
	held1 = atoll(p + strlen("\nringq_heap_allocated_bytes "));
	free(s);
	free(big);
	assert_true(held1 - held0 >= 8 << 20);
	assert_true(held1 - held0 < 9 << 20);
}

static void *
bump(void *arg)
{
	struct rq_metric *m = arg;
	int i;

	for (i = 0; i < 100000; i++) {
		rq_metric_inc(m);
		rq_histogram_observe_ms(rq_histogram("ringq_t_seconds", "",
		    "T."), 1);
	}
	return NULL;
}

static void
test_threads(void **state)
{
	struct rq_metric *m = rq_counter("ringq_t_total", "", "T.");
	pthread_t t[4];
	int i;

	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, bump, m), 0);
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(rq_metric_value(m), 400000);
	assert_int_equal(rq_metric_value(rq_histogram("ringq_t_seconds", "",
	    "T.")), 400000);
}

static int
free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/* One HTTP/1.0 exchange; returns the whole answer (freed by the caller). */
static char *
http_get(int port, const char *path)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	char req[128], *buf;
	size_t len = 0;
	ssize_t n;
	int fd;

	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	buf = calloc(1, 65536);
	while ((n = read(fd, buf + len, 65535 - len)) > 0)
		len += (size_t)n;
	close(fd);
	return buf;
}

static void
test_server(void **state)
{
	struct rq_metrics_server *s;
	char listen[64], *r;
	int port = free_port();

	assert_null(rq_metrics_start(""));	/* off */
	rq_metric_add(rq_counter("ringq_srv_total", "", "S."), 7);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	s = rq_metrics_start(listen);
	assert_non_null(s);
	r = http_get(port, "/metrics");
	assert_non_null(strstr(r, "HTTP/1.0 200"));
	assert_non_null(strstr(r, "text/plain; version=0.0.4"));
	assert_non_null(strstr(r, "\r\n\r\n# HELP ringq_srv_total S.\n"));
	assert_non_null(strstr(r, "ringq_srv_total 7\n"));
	free(r);
	/* Values move between scrapes: the thread reads the live atomics. */
	rq_metric_inc(rq_counter("ringq_srv_total", "", "S."));
	r = http_get(port, "/metrics?x=1");
	assert_non_null(strstr(r, "ringq_srv_total 8\n"));
	free(r);
	r = http_get(port, "/other");
	assert_non_null(strstr(r, " 404 "));
	free(r);
	rq_metrics_stop(s);
	rq_metrics_stop(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_registry, teardown),
		cmocka_unit_test_teardown(test_render, teardown),
		cmocka_unit_test_teardown(test_threads, teardown),
		cmocka_unit_test_teardown(test_process, teardown),
		cmocka_unit_test_teardown(test_server, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
