/* The syncer: a file asked for is synced, with its directory when asked,
 * by a thread other than the asker's; one sync at a time, a second ask
 * meanwhile refused until it ends; a failed sync is said, in a log line,
 * in its result and in the metrics; a file removed since is nothing to
 * sync; free waits for the sync under way. */
#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"
#include "metrics.h"
#include "syncer.h"
#include "sync_spy.h"
#include "stderr_capture.h"
#include "util.h"

static char dir[64], path[96];

static int
setup(void **state)
{
	FILE *f;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/rq-syncer-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/journal", dir);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fputs("twelve bytes", f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	sync_spy_reset();
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	sync_spy_hold(0);	/* (a test that failed holding them) */
	unlink(path);
	rmdir(dir);
	return 0;
}

/* The ask's end, waited for up to 5 s. */
static int
result_wait(struct rq_syncer *s, uint64_t n)
{
	uint64_t until = rq_mono_ms() + 5000;
	int rc;

	while ((rc = rq_syncer_result(s, n)) == 0 && rq_mono_ms() < until)
		usleep(2000);
	return rc;
}

static void
test_synced_by_its_thread(void **state)
{
	struct rq_syncer *s;
	struct sync_seen last;
	uint64_t n;

	(void)state;
	assert_non_null(s = rq_syncer_new("test", "test"));
	assert_int_not_equal(n = rq_syncer_ask(s, path, 0), 0);
	assert_int_equal(result_wait(s, n), 1);
	assert_int_equal(sync_spy_count(path, &last), 1);
	assert_int_equal(last.size, 12);
	assert_false(last.dir);
	assert_false(pthread_equal(last.thread, pthread_self()));
	assert_int_equal(sync_spy_count(dir, NULL), 0);	/* not asked */

	assert_int_not_equal(n = rq_syncer_ask(s, path, 1), 0);
	assert_int_equal(result_wait(s, n), 1);
	assert_int_equal(sync_spy_count(path, NULL), 2);
	assert_int_equal(sync_spy_count(dir, &last), 1);
	assert_true(last.dir);
	rq_syncer_free(s);
}

static void
test_one_at_a_time(void **state)
{
	struct rq_syncer *s;
	uint64_t n, n2, max_us;

	(void)state;
	assert_non_null(s = rq_syncer_new("test", "test"));
	sync_spy_hold(1);
	assert_int_not_equal(n = rq_syncer_ask(s, path, 0), 0);
	assert_true(sync_spy_held(5000));
	usleep(50 * 1000);
	/* the asker does not wait: the disk is the thread's */
	assert_int_equal(rq_syncer_result(s, n), 0);
	assert_int_equal(rq_syncer_ask(s, path, 0), 0);
	sync_spy_hold(0);
	assert_int_equal(result_wait(s, n), 1);
	assert_int_equal(n2 = rq_syncer_ask(s, path, 0), n + 1);
	assert_int_equal(result_wait(s, n2), 1);
	assert_int_equal(sync_spy_count(path, NULL), 2);
	rq_syncer_stats(s, &n, &max_us);
	assert_int_equal(n, 2);
	assert_true(max_us >= 40 * 1000);	/* the one held 50 ms */
	rq_syncer_free(s);
}

static void
test_failure_said(void **state)
{
	struct rq_syncer *s;
	FILE *out;
	uint64_t n[6];
	int saved, i, got[6];

	(void)state;
	assert_non_null(s = rq_syncer_new("evout: journal", "fail"));
	/* a disk that fails every sync it is asked for (up to ten a second
	 * from a journal): said once, not once a sync; then one judged on
	 * its own.  (Asserted once stderr is back.) */
	assert_non_null(out = stderr_to_file(&saved));
	sync_spy_fail(EIO);
	for (i = 0; i < 6; i++) {
		if (i == 5)
			sync_spy_fail(0);
		got[i] = (n[i] = rq_syncer_ask(s, path, 0)) != 0 ?
		    result_wait(s, n[i]) : 0;
	}
	stderr_back(out, saved);
	for (i = 0; i < 6; i++) {
		assert_int_not_equal(n[i], 0);
		assert_int_equal(got[i], i < 5 ? -1 : 1);
	}
	assert_int_equal(rq_syncer_result(s, n[5] + 1), -1);	/* not asked */
	rq_syncer_free(s);
	/* and in the metrics: six syncs timed, five failed */
	assert_int_equal(rq_metric_value(rq_histogram("ringq_sync_seconds",
	    "file=\"fail\"", NULL)), 6);
	assert_int_equal(rq_metric_value(rq_counter(
	    "ringq_sync_failures_total", "file=\"fail\"", NULL)), 5);
	assert_int_equal(stderr_lines(out, "evout: journal: sync ", path), 1);
	rewind(out);
	assert_int_equal(stderr_lines(out, strerror(EIO), NULL), 1);
	fclose(out);
}

static void
test_removed_file(void **state)
{
	struct rq_syncer *s;
	uint64_t n;

	(void)state;
	assert_non_null(s = rq_syncer_new("test", "test"));
	unlink(path);
	n = rq_syncer_ask(s, path, 1);
	assert_int_equal(result_wait(s, n), 1);
	assert_int_equal(sync_spy_count(dir, NULL), 0);
	rq_syncer_free(s);
}

static void *
release_later(void *arg)
{
	(void)arg;
	usleep(200 * 1000);
	sync_spy_hold(0);
	return NULL;
}

static void
test_free_waits(void **state)
{
	struct rq_syncer *s;
	pthread_t t;

	(void)state;
	assert_non_null(s = rq_syncer_new("test", "test"));
	sync_spy_hold(1);
	assert_int_not_equal(rq_syncer_ask(s, path, 1), 0);
	assert_int_equal(pthread_create(&t, NULL, release_later, NULL), 0);
	rq_syncer_free(s);
	/* both the file and its directory, before free returned */
	assert_int_equal(sync_spy_count(path, NULL), 1);
	assert_int_equal(sync_spy_count(dir, NULL), 1);
	pthread_join(t, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_synced_by_its_thread,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_at_a_time, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_failure_said, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_removed_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_free_waits, setup,
		    teardown),
	};

	log_init("test_syncer", 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
