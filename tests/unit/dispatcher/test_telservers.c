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

/* A heartbeat that also says how many calls ended since start-up. */
static void
hb_ended(struct disp_tels *t, const char *id, const char *node,
    uint64_t active, uint64_t cap, uint64_t ended, uint64_t now)
{
	struct rq_msg m;

	rq_msg_init(&m, RQ_MSG_HEARTBEAT);
	rq_msg_set(&m, node, (char *)node);
	rq_msg_set(&m, active, active);
	rq_msg_set(&m, capacity, cap);
	rq_msg_set(&m, state, "up");
	rq_msg_set(&m, ended, ended);
	disp_tels_heartbeat(t, id, strlen(id), &m, now);
}

/* 20 s of a steady telserver: 60 calls active, one ends a second and one
 * starts (by someone else's job); last heartbeat at 21000. */
static void
steady(struct disp_tels *t, uint64_t cap)
{
	uint64_t s;

	for (s = 1; s <= 21; s++)
		hb_ended(t, "id-a", "a", 60, cap, s, s * 1000);
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
	/* An absurd ended count: at worst all its calls look ended. */
	hb_ended(&t, "id-c", "c", 10, 20, 0, 200);
	hb_ended(&t, "id-c", "c", 10, 20, UINT64_MAX, 300);
	assert_true(disp_tel_load(&t.v[0], 400) <= 10);
	hb_ended(&t, "id-c", "c", 10, 20, 5, 400);	/* back: reset */
	assert_int_equal(disp_tel_load(&t.v[0], 500), 10);
	disp_tels_free(&t);
}

/* Between heartbeats the calls that probably ended are taken off the load:
 * at 1 end a second out of 60 active calls, 1 per call-minute. */
static void
test_ended_estimate(void **state)
{
	struct disp_tels t;
	struct disp_tel *e;

	disp_tels_init(&t, 1000000);
	steady(&t, 100);
	e = &t.v[0];
	assert_int_equal(disp_tel_load(e, 21000), 60);
	/* 3 s on: 3 expected, less half a standard deviation: 2. */
	assert_int_equal(disp_tel_ended(e, 24000), 2);
	assert_int_equal(disp_tel_load(e, 24000), 58);
	/* Our jobs since the heartbeat count as active: not estimated. */
	e->acked = 5;
	e->pending = 1;
	assert_int_equal(disp_tel_load(e, 24000), 64);
	/* Never below the calls we know of: all reported ones ended. */
	assert_int_equal(disp_tel_ended(e, 21000 + 3600000), 60);
	assert_int_equal(disp_tel_load(e, 21000 + 3600000), 6);
	/* The room counts the estimate too. */
	e->acked = e->pending = 0;
	assert_int_equal(disp_tels_room(&t, 24000), 100 - 58);
	/* The next heartbeat's count replaces the estimate. */
	hb_ended(&t, "id-a", "a", 59, 100, 24, 24000);
	assert_int_equal(disp_tel_load(e, 24000), 59);
	disp_tels_free(&t);
}

/* A heartbeat without ended (an older telserver): the view of before,
 * however old the report; a counter that goes back (a restart) starts the
 * rate again. */
static void
test_ended_absent_or_reset(void **state)
{
	struct disp_tels t;
	struct disp_tel *e;

	disp_tels_init(&t, 1000000);
	hb(&t, "id-a", "a", 60, 100, "up", 1000);
	hb(&t, "id-a", "a", 60, 100, "up", 2000);
	e = &t.v[0];
	assert_int_equal(disp_tel_load(e, 60000), 60);
	/* A rate learnt, then the field disappears: no estimate. */
	steady(&t, 100);
	assert_true(disp_tel_ended(e, 24000) > 0);
	hb(&t, "id-a", "a", 60, 100, "up", 22000);
	assert_int_equal(disp_tel_load(e, 60000), 60);
	/* Back with a counter below the last one: start again. */
	steady(&t, 100);
	hb_ended(&t, "id-a", "a", 60, 100, 2, 22000);
	assert_int_equal(disp_tel_ended(e, 60000), 0);
	/* Too few ends yet to believe a rate. */
	hb_ended(&t, "id-a", "a", 60, 100, 5, 23000);
	assert_int_equal(disp_tel_ended(e, 60000), 0);
	disp_tels_free(&t);
}

/* A nack counts the telserver full from the nack on: the ends estimated
 * before it do not come back, only those expected since. */
static void
test_full_after_nack(void **state)
{
	struct disp_tels t;
	struct disp_tel *e;

	disp_tels_init(&t, 1000000);
	steady(&t, 60);
	e = &t.v[0];
	assert_int_equal(disp_tels_room(&t, 24000), 2);
	disp_tel_full(e, 24000);
	assert_int_equal(disp_tel_load(e, 24000), 60);
	assert_int_equal(disp_tels_room(&t, 24000), 0);
	assert_int_equal(disp_tel_load(e, 27000), 58);
	disp_tels_free(&t);
}

/* Alone (every call that starts is one of our jobs): the least loaded
 * every time.  Calls we did not send (another dispatcher's, inbound):
 * two random choices again. */
static void
test_alone(void **state)
{
	struct disp_tels t;
	uint64_t s, ea = 0, eb = 0;
	unsigned none;

	disp_tels_init(&t, 1000000);
	hb_ended(&t, "id-a", "a", 0, 10, 0, 1000);
	hb_ended(&t, "id-b", "b", 0, 10, 0, 1000);
	assert_false(disp_tels_alone(&t, 1000));	/* nothing seen yet */
	/* Each second we send 3 jobs to a and 2 to b; calls last a
	 * second. */
	for (s = 2; s <= 30; s++) {
		t.v[0].acked = 3;
		t.v[1].acked = 2;
		if (s > 2) {
			ea += 3;
			eb += 2;
		}
		hb_ended(&t, "id-a", "a", 3, 10, ea, s * 1000);
		hb_ended(&t, "id-b", "b", 2, 10, eb, s * 1000);
	}
	assert_true(disp_tels_alone(&t, 30000));
	/* a at 3/10, b at 2/10: b every time. */
	assert_int_equal(picks_of(&t, 1, 30000, &none), 1000);
	/* Someone else starts 2 more calls a second on a. */
	for (s = 31; s <= 40; s++) {
		t.v[0].acked = 3;
		t.v[1].acked = 2;
		ea += s == 31 ? 3 : 5;
		eb += 2;
		hb_ended(&t, "id-a", "a", 5, 10, ea, s * 1000);
		hb_ended(&t, "id-b", "b", 2, 10, eb, s * 1000);
	}
	assert_false(disp_tels_alone(&t, 40000));
	/* a at 5/10 wins when drawn twice: about a quarter of the time. */
	assert_true(picks_of(&t, 1, 40000, &none) < 900);
	/* A telserver that does not send ended: we cannot tell. */
	for (s = 41; s <= 60; s++) {
		t.v[0].acked = 3;
		ea += 3;
		hb_ended(&t, "id-a", "a", 3, 10, ea, s * 1000);
	}
	hb(&t, "id-b", "b", 0, 10, "up", 60000);
	assert_false(disp_tels_alone(&t, 60000));
	disp_tels_free(&t);
}

/* The JOBs a telserver takes in one message: what its heartbeat says,
 * within 1..RQ_BUS_BATCH_MAX; 1 when it says nothing (an older one). */
static void
test_frames(void **state)
{
	struct disp_tels t;
	struct rq_msg m;
	ssize_t i;

	disp_tels_init(&t, 1500);
	hb(&t, "id-old", "old", 0, 10, "up", 1000);
	assert_int_equal(t.v[disp_tels_find(&t, "id-old", 6)].frames, 1);
	rq_msg_init(&m, RQ_MSG_HEARTBEAT);
	rq_msg_set(&m, node, "new");
	rq_msg_set(&m, active, 0);
	rq_msg_set(&m, capacity, 10);
	rq_msg_set(&m, frames, 16);
	i = disp_tels_heartbeat(&t, "id-new", 6, &m, 1000);
	assert_int_equal(t.v[i].frames, 16);
	m.frames = 100000;
	disp_tels_heartbeat(&t, "id-new", 6, &m, 1100);
	assert_int_equal(t.v[i].frames, RQ_BUS_BATCH_MAX);
	m.frames = 0;
	disp_tels_heartbeat(&t, "id-new", 6, &m, 1200);
	assert_int_equal(t.v[i].frames, 1);
	/* A later heartbeat without it: one by one again (a downgrade). */
	hb(&t, "id-new", "new", 0, 10, "up", 1300);
	assert_int_equal(t.v[i].frames, 1);
	disp_tels_free(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frames),
		cmocka_unit_test(test_liveness),
		cmocka_unit_test(test_draining_suspect_full),
		cmocka_unit_test(test_restart_new_identity),
		cmocka_unit_test(test_room),
		cmocka_unit_test(test_bad_heartbeat),
		cmocka_unit_test(test_ended_estimate),
		cmocka_unit_test(test_ended_absent_or_reset),
		cmocka_unit_test(test_full_after_nack),
		cmocka_unit_test(test_alone),
	};

	log_init("test_telservers", 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
