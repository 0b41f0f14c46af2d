/* Logging: a peer's string cannot forge a log line or reach the terminal;
 * deferred lines keep their order and wait only until the flush. */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"

/* What the file behind fd 2 holds now. */
static const char *
written(FILE *tmp)
{
	static char buf[8192];
	size_t n;

	fflush(stderr);
	rewind(tmp);
	n = fread(buf, 1, sizeof(buf) - 1, tmp);
	buf[n] = '\0';
	return buf;
}

/* Sends stderr (fd 2) to a new temporary file, returned in *tmp; returns
 * the descriptor to give to stderr_back(). */
static int
stderr_to_tmp(FILE **tmp)
{
	int saved = dup(2);

	*tmp = tmpfile();
	assert_non_null(*tmp);
	fflush(stderr);
	dup2(fileno(*tmp), 2);
	return saved;
}

static void
stderr_back(FILE *tmp, int saved)
{
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	fclose(tmp);
}

/* Runs one log_info with arg into a temporary stderr; returns the output
 * (written()'s buffer, which outlives the file). */
static const char *
capture(const char *arg)
{
	FILE *tmp;
	int saved = stderr_to_tmp(&tmp);
	const char *out;

	log_info("peer said '%s'", arg);
	out = written(tmp);
	stderr_back(tmp, saved);
	return out;
}

/* A flood of one warning: the first line, then nothing within the rate's
 * period, then one line that says how many were held back. */
static void
test_rate(void **state)
{
	struct log_rate r = { 0, 0 };
	FILE *tmp;
	int saved = stderr_to_tmp(&tmp), i;
	const char *buf;

	for (i = 0; i < 5; i++)
		log_warnx_rate(&r, 60000, "refused %d", i);
	r.last_ms -= 60000;		/* the period has passed */
	log_warnx_rate(&r, 60000, "refused %d", 5);
	buf = written(tmp);
	stderr_back(tmp, saved);
	assert_non_null(strstr(buf, "refused 0\n"));
	assert_null(strstr(buf, "refused 1"));
	assert_null(strstr(buf, "refused 4"));
	assert_non_null(strstr(buf, "refused 5 (and 4 more like it since the "
	    "last such line)\n"));
	assert_int_equal(r.held, 0);
}

static void
test_controls_escaped(void **state)
{
	const char *out = capture("ok\r\n2026-01-01T00:00:00.000Z ringq info: forged\x1b[2J");

	/* One line only, ending in the one newline log adds. */
	assert_non_null(strchr(out, '\n'));
	assert_int_equal(strchr(out, '\n')[1], '\0');
	assert_null(strchr(out, '\r'));
	assert_null(strchr(out, '\x1b'));
	assert_non_null(strstr(out, "ok\\x0d\\x0a2026"));
	assert_non_null(strstr(out, "\\x1b[2J'"));
}

/* The C1 controls as UTF-8 encodes them are escaped; other UTF-8 text
 * (whose continuation bytes are 0x80-0xbf too) is not. */
static void
test_c1_escaped(void **state)
{
	const char *out = capture("\xc2\x9b" "2J caf\xc3\xa9 \xe2\x82\xac \xc2\xa0.");

	assert_non_null(strstr(out, "'\\xc2\\x9b2J caf\xc3\xa9 \xe2\x82\xac "
	    "\xc2\xa0.'"));
	assert_null(strstr(out, "\xc2\x9b"));
}

/* A URL's query and user:password@ never reach the log, whoever logs it;
 * where it leads does. */
static void
test_urls_redacted(void **state)
{
	const char *out = capture("fetch https://u:pw@app.example/ivr.vxml"
	    "?token=s3cret failed (https://h/a#frag)");

	assert_non_null(strstr(out, "'fetch https://app.example/ivr.vxml?... "
	    "failed (https://h/a?...)'"));
	assert_null(strstr(out, "s3cret"));
	assert_null(strstr(out, "pw@"));
	/* text without a URL is left as it is, colons and slashes too */
	out = capture("plain text?x=1 a:/b c:");
	assert_non_null(strstr(out, "'plain text?x=1 a:/b c:'"));
	/* a line with both: the query cut, the control escaped */
	out = capture("\x1b[2J sip:x http://h/p?k=v");
	assert_non_null(strstr(out, "'\\x1b[2J sip:x http://h/p?...'"));
	assert_null(strstr(out, "k=v"));
}

static void
test_long_line_bounded(void **state)
{
	char big[6000];
	const char *out;

	memset(big, '\n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	out = capture(big);
	assert_true(strlen(out) < 2200);
	assert_int_equal(strchr(out, '\n')[1], '\0');
}

static void
count_wake(void *arg)
{
	(*(int *)arg)++;
}

/* A second thread cannot defer too: its lines go out at once. */
static void *
other_thread(void *arg)
{
	log_defer(count_wake, arg);
	log_info("from another thread");
	return NULL;
}

/* Lines deferred by log_defer() wait for log_flush(); a warning writes
 * them before itself; wake runs once per batch; another thread's lines
 * and lines after log_defer(NULL, NULL) are written at once. */
static void
test_deferred(void **state)
{
	FILE *tmp;
	int saved = stderr_to_tmp(&tmp), wakes = 0;
	pthread_t t;
	const char *out;

	log_defer(count_wake, &wakes);
	log_info("first");
	log_info("second");
	assert_string_equal(written(tmp), "");
	assert_int_equal(wakes, 1);

	assert_int_equal(pthread_create(&t, NULL, other_thread, &wakes), 0);
	pthread_join(t, NULL);
	assert_non_null(strstr(written(tmp), "from another thread"));
	assert_null(strstr(written(tmp), "first"));

	log_warnx("third");
	out = written(tmp);
	assert_non_null(strstr(out, "first"));
	assert_true(strstr(out, "first") < strstr(out, "second"));
	assert_true(strstr(out, "second") < strstr(out, "warning: third"));

	log_info("fourth");
	assert_int_equal(wakes, 2);
	assert_null(strstr(written(tmp), "fourth"));
	log_flush();
	assert_non_null(strstr(written(tmp), "info: fourth\n"));

	log_defer(NULL, NULL);
	log_info("fifth");
	assert_non_null(strstr(written(tmp), "info: fifth\n"));
	assert_int_equal(wakes, 2);
	stderr_back(tmp, saved);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_controls_escaped),
		cmocka_unit_test(test_c1_escaped),
		cmocka_unit_test(test_urls_redacted),
		cmocka_unit_test(test_long_line_bounded),
		cmocka_unit_test(test_deferred),
	};

	log_init("ringq-test", 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
