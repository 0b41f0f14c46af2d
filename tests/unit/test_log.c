/* Logging: a peer's string cannot forge a log line or reach the terminal. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"

/* Runs one log_info with arg into a temporary stderr; returns the output. */
static char *
capture(const char *arg)
{
	static char buf[8192];
	FILE *tmp = tmpfile();
	int saved = dup(2);
	size_t n;

	assert_non_null(tmp);
	fflush(stderr);
	dup2(fileno(tmp), 2);
	log_info("peer said '%s'", arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	n = fread(buf, 1, sizeof(buf) - 1, tmp);
	buf[n] = '\0';
	fclose(tmp);
	return buf;
}

static void
test_controls_escaped(void **state)
{
	char *out = capture("ok\r\n2026-01-01T00:00:00.000Z ringq info: forged\x1b[2J");

	/* One line only, ending in the one newline log adds. */
	assert_non_null(strchr(out, '\n'));
	assert_int_equal(strchr(out, '\n')[1], '\0');
	assert_null(strchr(out, '\r'));
	assert_null(strchr(out, '\x1b'));
	assert_non_null(strstr(out, "ok\\x0d\\x0a2026"));
	assert_non_null(strstr(out, "\\x1b[2J'"));
}

static void
test_long_line_bounded(void **state)
{
	char big[6000];
	char *out;

	memset(big, '\n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	out = capture(big);
	assert_true(strlen(out) < 2200);
	assert_int_equal(strchr(out, '\n')[1], '\0');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_controls_escaped),
		cmocka_unit_test(test_long_line_bounded),
	};

	log_init("ringq-test", 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
