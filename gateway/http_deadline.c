/* A deadline for each HTTP request to arrive whole.  libevent 2.1's evhttp
 * times a connection out only when it reads nothing for HTTP_TIMEOUT_S:
 * a client that sends a byte now and then holds its connection (and a
 * descriptor) for days, and evhttp shows the gateway a connection only
 * with a complete request, so the connection caps never count it.
 *
 * evhttp's one hook per connection is the bufferevent it is handed
 * (evhttp_set_bevcb); nothing tells when evhttp frees it.  So the
 * deadline watches the buffers' callbacks, which live and die with it:
 * the first bytes read give the socket and its cookie (SO_COOKIE, unique
 * for the socket's life), each answer the gateway writes starts a new
 * GW_HTTP_REQUEST_MAX_S.  When the time is up and the socket with that
 * cookie is still open, it is shut down: evhttp reads its end and frees
 * the connection as for a client that left.  The deadline itself is freed
 * then, or once its time is up after the connection closed.  (A filter
 * bufferevent, which has a free hook, hands evhttp its writes before the
 * socket takes them: an answer before a close was lost.) */
#include <sys/queue.h>
#include <sys/socket.h>

#include <stdint.h>
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "gateway.h"
#include "log.h"

struct http_deadline {
	LIST_ENTRY(http_deadline) entry;
	struct bufferevent	*bev;	/* valid while its buffers call us */
	struct event		*timer;
	struct evbuffer_cb_entry *in_cb, *out_cb;
	evutil_socket_t		 fd;	/* -1 until the first read */
	uint64_t		 cookie;
	struct log_rate		*rate;
};

static const struct timeval request_max = { GW_HTTP_REQUEST_MAX_S, 0 };

/* Every deadline not yet expired, for gw_http_deadlines_free. */
static LIST_HEAD(, http_deadline) deadlines = LIST_HEAD_INITIALIZER(deadlines);

static void
deadline_free(struct http_deadline *d)
{
	LIST_REMOVE(d, entry);
	event_free(d->timer);
	free(d);
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
}

/* The gateway answers: the next request has its own time. */
static void
answered(struct evbuffer *out, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct http_deadline *d = arg;

	(void)out;
	if (info->n_added > 0)
		evtimer_add(d->timer, &request_max);
}

static void
expired(evutil_socket_t unused, short ev, void *arg)
{
	struct http_deadline *d = arg;

	(void)unused;
	(void)ev;
	/* Still our socket: the connection, and its buffers, are there. */
	if (d->cookie != 0 && cookie_of(d->fd) == d->cookie) {
		if (d->in_cb != NULL)
			evbuffer_remove_cb_entry(bufferevent_get_input(d->bev),
			    d->in_cb);
		evbuffer_remove_cb_entry(bufferevent_get_output(d->bev),
		    d->out_cb);
		log_warnx_rate(d->rate, 60000, "http: a connection closed: "
		    "no request whole within %d s", GW_HTTP_REQUEST_MAX_S);
		shutdown(d->fd, SHUT_RDWR);
	}
	deadline_free(d);
}

struct bufferevent *
gw_http_deadline_bev(struct event_base *base, struct log_rate *rate)
{
	struct http_deadline *d;
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
	evtimer_add(d->timer, &request_max);
	LIST_INSERT_HEAD(&deadlines, d, entry);
	return bev;
fail:
	event_free(d->timer);
	free(d);
	return NULL;
}

void
gw_http_deadlines_free(void)
{
	while (!LIST_EMPTY(&deadlines))
		deadline_free(LIST_FIRST(&deadlines));
}
