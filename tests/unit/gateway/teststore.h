/* For gateway unit tests that run the real store: a throwaway
 * redis-server and a gw_store connected to it on a libevent loop, as cmocka
 * group setup and teardown.  base and st are the tests' to use. */
#ifndef TESTSTORE_H
#define TESTSTORE_H

#include <time.h>

#include <event2/event.h>

#include "gateway.h"
#include "../scheduler/testredis.h"

static struct event_base	*base;
static struct gw_store		*st;

static int
setup_live(void **state)
{
	int connected = 0, i;

	testredis_start();
	if ((base = event_base_new()) == NULL ||
	    (st = gw_store_new(base, "127.0.0.1", testredis_port)) == NULL)
		return -1;
	for (i = 0; i < 500 && !connected; i++) {
		struct timespec ts = { 0, 5 * 1000 * 1000 };

		event_base_loop(base, EVLOOP_NONBLOCK);
		connected = gw_store_connected(st);
		nanosleep(&ts, NULL);
	}
	return connected ? 0 : -1;
}

static int
teardown_live(void **state)
{
	gw_store_free(st);
	event_base_free(base);
	testredis_stop();
	return 0;
}

#endif
