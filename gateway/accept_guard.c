/* A listener that cannot accept (no file descriptor left: EMFILE, ENFILE;
 * no kernel memory) stops accepting for a moment.  Without this, libevent
 * finds the listening socket readable again at once, fails again, and
 * logs each failure: a connection flood up to the descriptor limit made
 * the gateway spin on a core and write a million log lines a few seconds.
 * The connections that arrive meanwhile wait in the kernel's backlog. */
#include <sys/queue.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "gateway.h"
#include "log.h"

#define GUARD_PAUSE_MS		200
#define GUARD_LOG_EVERY_MS	60000

struct gw_accept_guard {
	LIST_ENTRY(gw_accept_guard) entry;
	struct evconnlistener	*lst;
	struct event		*resume;
	char			 what[16];
	struct log_rate		 rate;
};

/* libevent hands the error callback the listener's own argument (evhttp's,
 * or the SMTP server's): the guard is found by its listener. */
static LIST_HEAD(, gw_accept_guard) guards = LIST_HEAD_INITIALIZER(guards);

static void
resume_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct gw_accept_guard *g = arg;

	evconnlistener_enable(g->lst);
}

static void
accept_error(struct evconnlistener *lst, void *arg)
{
	struct timeval tv = { 0, GUARD_PAUSE_MS * 1000 };
	struct gw_accept_guard *g;
	int err = EVUTIL_SOCKET_ERROR();

	LIST_FOREACH(g, &guards, entry)
		if (g->lst == lst)
			break;
	if (g == NULL)
		return;
	evconnlistener_disable(lst);
	evtimer_add(g->resume, &tv);
	log_warnx_rate(&g->rate, GUARD_LOG_EVERY_MS, "%s: cannot accept a "
	    "connection: %s; accepting again in %d ms%s", g->what,
	    strerror(err), GUARD_PAUSE_MS, err == EMFILE || err == ENFILE ?
	    " (too many connections for the file descriptor limit)" : "");
}

struct gw_accept_guard *
gw_accept_guard_new(struct event_base *base, struct evconnlistener *lst,
    const char *what)
{
	struct gw_accept_guard *g;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	if ((g->resume = evtimer_new(base, resume_cb, g)) == NULL) {
		free(g);
		return NULL;
	}
	g->lst = lst;
	snprintf(g->what, sizeof(g->what), "%s", what);
	LIST_INSERT_HEAD(&guards, g, entry);
	evconnlistener_set_error_cb(lst, accept_error);
	return g;
}

void
gw_accept_guard_free(struct gw_accept_guard *g)
{
	if (g == NULL)
		return;
	evconnlistener_set_error_cb(g->lst, NULL);
	LIST_REMOVE(g, entry);
	event_free(g->resume);
	free(g);
}
