/* The telserver table: heartbeats, liveness, draining, suspects, restarts
 * with a new identity, the load the choice sees and the room to fill. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "dispatcher.h"
#include "log.h"

static void
hb(struct disp_tels *t, const char *id, const char *node, uint64_t active,
    uint64_t cap, const char *state, uint64_t now)
{
	struct rq_msg m;

	rq_msg_init(&m, RQ_MSG_HEARTBEAT);
	rq_msg_set(&m, node, (char *)node);
	rq_msg_set(&m, active, active);
	rq_msg_set(&m, capacity, cap);
	if (state != NULL)
		rq_msg_set(&m, state, (char *)state);
	disp_tels_heartbeat(t, id, strlen(id), &m, now);
}

static uint64_t
rng(void *arg)
{
	return disp_rng_xorshift(arg);
}

/* Picks many times; returns how often entry i came out (-1 counted in
 * none). */
static unsigned
picks_of(struct disp_tels *t, ssize_t i, uint64_t now, unsigned *none)
{
	uint64_t s = 42;
	unsigned n = 0, k;
	ssize_t p;

	*none = 0;
	for (k = 0; k < 1000; k++) {
		p = disp_tels_pick(t, now, rng, &s);
		if (p == i)
			n++;
		if (p == -1)
			(*none)++;
	}
	return n;
}

static void
test_liveness(void **state)
{
	struct disp_tels t;
	unsigned none;

	disp_tels_init(&t, 1000);
	assert_int_equal(disp_tels_pick(&t, 0, rng, &(uint64_t){ 1 }), -1);
	hb(&t, "id-a", "a", 0, 2, "up", 5000);
	assert_int_equal(disp_tels_find(&t, "id-a", 4), 0);
	assert_int_equal(disp_tels_find(&t, "id-b", 4), -1);
	assert_int_equal(picks_of(&t, 0, 5500, &none), 1000);
	/* Silent for longer than the timeout: out of the choice. */
	disp_tels_check(&t, 6001);
	assert_int_equal(picks_of(&t, 0, 6001, &none), 0);
	assert_int_equal(none, 1000);
	/* Back. */
	hb(&t, "id-a", "a", 0, 2, NULL, 7000);
	assert_int_equal(picks_of(&t, 0, 7000, &none), 1000);
	disp_tels_free(&t);
}

static void
test_draining_suspect_full(void **state)
{
	struct disp_tels t;
	unsigned none;

	disp_tels_init(&t, 1000);
	hb(&t, "id-a", "a", 0, 2, "draining", 100);
	assert_int_equal(picks_of(&t, 0, 100, &none), 0);
	hb(&t, "id-a", "a", 0, 2, "up", 200);
	t.v[0].suspect = 1;
	assert_int_equal(picks_of(&t, 0, 200, &none), 0);
	/* The next heartbeat clears the suspicion. */
	hb(&t, "id-a", "a", 0, 2, "up", 300);
	assert_int_equal(picks_of(&t, 0, 300, &none), 1000);
	/* Pending jobs and acks since the heartbeat count as load. */
	t.v[0].pending = 1;
	t.v[0].acked = 1;
	assert_int_equal(picks_of(&t, 0, 300, &none), 0);
	hb(&t, "id-a", "a", 1, 2, "up", 400);	/* acked = 0 again */
	assert_int_equal(picks_of(&t, 0, 400, &none), 0);
	t.v[0].pending = 0;
	assert_int_equal(picks_of(&t, 0, 400, &none), 1000);
	disp_tels_free(&t);
}

static void
test_restart_new_identity(void **state)
{
	struct disp_tels t;
	unsigned none;

	disp_tels_init(&t, 1000);
	hb(&t, "id-a1", "a", 0, 2, "up", 100);
	hb(&t, "id-b", "b", 0, 2, "up", 100);
	hb(&t, "id-a2", "a", 0, 2, "up", 200);
	assert_int_equal(t.n, 3);
	/* The old identity of "a" no longer takes jobs. */
	assert_int_equal(picks_of(&t, 0, 200, &none), 0);
	assert_true(picks_of(&t, 2, 200, &none) > 300);
	/* A dead entry with no jobs is reused. */
	hb(&t, "id-c", "c", 0, 2, "up", 300);
	assert_int_equal(t.n, 3);
	assert_int_equal(disp_tels_find(&t, "id-c", 4), 0);
	disp_tels_free(&t);
}

static void
test_room(void **state)
{
	struct disp_tels t;
	ssize_t a;

	disp_tels_init(&t, 1000);
	assert_int_equal(disp_tels_room(&t, 0), 0);
	hb(&t, "id-a", "a", 1, 4, "up", 100);
	a = disp_tels_find(&t, "id-a", 4);
	assert_true(a >= 0);
	hb(&t, "id-b", "b", 0, 2, "up", 100);
	hb(&t, "id-c", "c", 0, 5, "draining", 100);
	hb(&t, "id-d", "d", 9, 3, "up", 100);	/* over capacity: none */
	assert_int_equal(disp_tels_room(&t, 200), 3 + 2);
	/* Sent and acked since the heartbeat count as load. */
	t.v[a].pending = 1;
	t.v[a].acked = 1;
	assert_int_equal(disp_tels_room(&t, 200), 1 + 2);
	t.v[a].suspect = 1;
	assert_int_equal(disp_tels_room(&t, 200), 2);
	/* Silent for longer than the timeout: none. */
	assert_int_equal(disp_tels_room(&t, 1200), 0);
	disp_tels_free(&t);
}

static void
test_bad_heartbeat(void **state)
{
	struct disp_tels t;
	char node[200];

	disp_tels_init(&t, 1000);
	memset(node, 'x', sizeof(node) - 1);
	node[sizeof(node) - 1] = '\0';
	hb(&t, "id-a", node, 0, 2, "up", 100);
	hb(&t, "id-b", "", 0, 2, "up", 100);
	assert_int_equal(t.n, 0);
	/* Absurd numbers are clamped. */
	hb(&t, "id-c", "c", UINT64_MAX, UINT64_MAX, "up", 100);
	assert_int_equal(t.v[0].capacity, DISP_CAPACITY_MAX);
	disp_tels_free(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_liveness),
		cmocka_unit_test(test_draining_suspect_full),
		cmocka_unit_test(test_restart_new_identity),
		cmocka_unit_test(test_room),
		cmocka_unit_test(test_bad_heartbeat),
	};

	log_init("test_telservers", 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
