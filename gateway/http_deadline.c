/* A deadline for each HTTP request to arrive whole.  libevent 2.1's evhttp
 * times a connection out only when it reads nothing for HTTP_TIMEOUT_S:
 * a client that sends a byte now and then holds its connection (and a
 * descriptor) for days, and evhttp shows the gateway a connection only
 * with a complete request, so the connection caps never count it.
 *
 * evhttp's one hook per connection is the bufferevent it is handed
 * (evhttp_set_bevcb).  The deadline runs from the connection's start,
 * holds while a request that arrived whole is answered
 * (gw_http_deadline_request, from http.c), and runs again from each
 * answer the gateway writes (not from evhttp's "100 Continue", which
 * asks for the rest of the same request).  The first
 * bytes read give the socket and its cookie (SO_COOKIE, unique for the
 * socket's life).  When the time is up, the socket with that cookie still
 * open, no request being answered and no answer waiting to be written,
 * the socket is shut down:
 * evhttp reads its end and frees the connection as for a client that
 * left.  A deadline is freed with its connection once http.c has seen a
 * request on it (gw_http_deadline_closed), else by its timer, which runs
 * until then whatever happens (evhttp calls no close callback for some
 * connections).  (A filter
 * bufferevent, which has a free hook, hands evhttp its writes before the
 * socket takes them: an answer before a close was lost.) */
#include <sys/queue.h>
#include <sys/socket.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "gateway.h"
#include "log.h"

#define DEADLINE_BUCKETS	4096

struct http_deadline {
	LIST_ENTRY(http_deadline) all;		/* every one */
	LIST_ENTRY(http_deadline) by_bev;	/* while bev is its own */
	int			 in_table;
	struct bufferevent	*bev;	/* valid while its buffers call us */
	struct event		*timer;
	struct evbuffer_cb_entry *in_cb, *out_cb;
	evutil_socket_t		 fd;	/* -1 until the first read */
	uint64_t		 cookie;
	int			 silent_rounds;
	int			 answering;	/* a request arrived whole */
	time_t			 armed_s;	/* the loop's cached clock */
	struct log_rate		*rate;
};

LIST_HEAD(deadline_list, http_deadline);

static const struct timeval request_max = { GW_HTTP_REQUEST_MAX_S, 0 };
/* Past evhttp's own timeout for a connection that sent nothing. */
static const struct timeval silent_max = { GW_HTTP_SILENT_MAX_S + 1, 0 };

static struct deadline_list deadlines = LIST_HEAD_INITIALIZER(deadlines);
static struct deadline_list by_bev[DEADLINE_BUCKETS];

static struct deadline_list *
bucket(const struct bufferevent *bev)
{
	return &by_bev[((uintptr_t)bev >> 4) % DEADLINE_BUCKETS];
}

static struct http_deadline *
find(const struct bufferevent *bev)
{
	struct http_deadline *d;

	LIST_FOREACH(d, bucket(bev), by_bev)
		if (d->bev == bev)
			return d;
	return NULL;
}

static void
deadline_free(struct http_deadline *d)
{
	if (d->in_table)
		LIST_REMOVE(d, by_bev);
	LIST_REMOVE(d, all);
	event_free(d->timer);
	free(d);
}

/* Our callbacks off the buffers of a bufferevent still alive. */
static void
unhook(struct http_deadline *d)
{
	if (d->in_cb != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_input(d->bev),
		    d->in_cb);
	evbuffer_remove_cb_entry(bufferevent_get_output(d->bev), d->out_cb);
	d->in_cb = d->out_cb = NULL;
}

/* The socket's cookie, or 0 (closed, or not a socket). */
static uint64_t
cookie_of(evutil_socket_t fd)
{
	uint64_t c = 0;
	socklen_t len = sizeof(c);

	if (fd == -1 || getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len) ==
	    -1)
		return 0;
	return c;
}

/* The first bytes read: the socket is set by now. */
static void
read_some(struct evbuffer *in, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct http_deadline *d = arg;

	if (info->n_added == 0 || d->fd != -1)
		return;
	d->fd = bufferevent_getfd(d->bev);
	d->cookie = cookie_of(d->fd);
	evbuffer_remove_cb_entry(in, d->in_cb);
	d->in_cb = NULL;
	/* Without a cookie the timer could not tell this socket from a
	 * later one: no deadline for this connection (evhttp's alone). */
	if (d->cookie == 0) {
		unhook(d);
		deadline_free(d);
	}
}

/* Is what was just added evhttp's "HTTP/1.1 100 Continue" to a request
 * that sent Expect: 100-continue?  Its body is still to come, within
 * the same deadline.  (The gateway's own answers never end so.) */
static int
is_continue(struct evbuffer *out, const struct evbuffer_cb_info *info)
{
	static const char mark[] = " 100 Continue\r\n\r\n";
	char tail[sizeof(mark) - 1];
	size_t len = evbuffer_get_length(out);
	struct evbuffer_ptr at;

	if (info->n_added < sizeof(tail) || info->n_added > 32 ||
	    len < sizeof(tail) ||
	    evbuffer_ptr_set(out, &at, len - sizeof(tail),
	    EVBUFFER_PTR_SET) == -1 ||
	    evbuffer_copyout_from(out, &at, tail, sizeof(tail)) !=
	    (ev_ssize_t)sizeof(tail))
		return 0;
	return memcmp(tail, mark, sizeof(tail)) == 0;
}

/* The gateway answers: the next request has its own time.  evhttp adds
 * an answer to the buffer piece by piece (each header): the timer is
 * set again at most once a second, bar the first piece of each answer. */
static void
answered(struct evbuffer *out, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct http_deadline *d = arg;
	struct timeval now;

	if (info->n_added == 0 || (!d->answering && is_continue(out, info)))
		return;
	event_base_gettimeofday_cached(event_get_base(d->timer), &now);
	if (d->answering || now.tv_sec != d->armed_s) {
		d->answering = 0;
		d->armed_s = now.tv_sec;
		evtimer_add(d->timer, &request_max);
	}
}

static void
expired(evutil_socket_t unused, short ev, void *arg)
{
	struct http_deadline *d = arg;

	(void)unused;
	(void)ev;
	if (d->fd == -1) {
		/* Not a byte read: evhttp closes it at HTTP_TIMEOUT_S, but
		 * its timer may fire after ours; once past it, it is gone
		 * (and its buffers with our callbacks). */
		if (d->silent_rounds++ == 0) {
			evtimer_add(d->timer, &silent_max);
			return;
		}
		deadline_free(d);
		return;
	}
	if (cookie_of(d->fd) != d->cookie) {	/* closed, buffers gone */
		deadline_free(d);
		return;
	}
	/* A request being answered (Redis slow), or an answer still being
	 * written (evhttp's write timeout has it): not this deadline's. */
	if (d->answering ||
	    evbuffer_get_length(bufferevent_get_output(d->bev)) > 0) {
		evtimer_add(d->timer, &request_max);
		return;
	}
	unhook(d);
	log_warnx_rate(d->rate, 60000, "http: a connection closed: no "
	    "request whole within %d s", GW_HTTP_REQUEST_MAX_S);
	shutdown(d->fd, SHUT_RDWR);
	deadline_free(d);
}

struct bufferevent *
gw_http_deadline_bev(struct event_base *base, struct log_rate *rate)
{
	struct http_deadline *d, *old;
	struct bufferevent *bev;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->fd = -1;
	d->rate = rate;
	if ((d->timer = evtimer_new(base, expired, d)) == NULL) {
		free(d);
		return NULL;
	}
	if ((bev = bufferevent_socket_new(base, -1,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL)
		goto fail;
	d->bev = bev;
	if ((d->in_cb = evbuffer_add_cb(bufferevent_get_input(bev),
	    read_some, d)) == NULL ||
	    (d->out_cb = evbuffer_add_cb(bufferevent_get_output(bev),
	    answered, d)) == NULL) {
		bufferevent_free(bev);
		goto fail;
	}
	/* One left by a freed bufferevent at this address: not its own
	 * any more (its timer frees it). */
	if ((old = find(bev)) != NULL) {
		LIST_REMOVE(old, by_bev);
		old->in_table = 0;
	}
	LIST_INSERT_HEAD(bucket(bev), d, by_bev);
	d->in_table = 1;
	LIST_INSERT_HEAD(&deadlines, d, all);
	evtimer_add(d->timer, &request_max);
	return bev;
fail:
	event_free(d->timer);
	free(d);
	return NULL;
}

void
gw_http_deadline_request(struct bufferevent *bev)
{
	struct http_deadline *d;

	if (bev != NULL && (d = find(bev)) != NULL)
		d->answering = 1;
}

void
gw_http_deadline_closed(struct bufferevent *bev)
{
	struct http_deadline *d;

	if (bev != NULL && (d = find(bev)) != NULL) {
		unhook(d);
		deadline_free(d);
	}
}

void
gw_http_deadlines_free(void)
{
	while (!LIST_EMPTY(&deadlines))
		deadline_free(LIST_FIRST(&deadlines));
}
