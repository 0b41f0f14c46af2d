/* call.c: the mapping of SIP final answers to failure reasons. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "status.h"
#include "telserver.h"

static void
test_reasons(void **state)
{
	static const struct { int code; const char *reason; } map[] = {
		{ 486, RQ_REASON_BUSY }, { 600, RQ_REASON_BUSY },
		{ 603, RQ_REASON_DECLINED },
		{ 404, RQ_REASON_UNREACHABLE }, { 408, RQ_REASON_UNREACHABLE },
		{ 410, RQ_REASON_UNREACHABLE }, { 480, RQ_REASON_UNREACHABLE },
		{ 484, RQ_REASON_UNREACHABLE }, { 502, RQ_REASON_UNREACHABLE },
		{ 503, RQ_REASON_UNREACHABLE }, { 504, RQ_REASON_UNREACHABLE },
		{ 400, RQ_REASON_REJECTED }, { 401, RQ_REASON_REJECTED },
		{ 403, RQ_REASON_REJECTED }, { 407, RQ_REASON_REJECTED },
		{ 415, RQ_REASON_REJECTED }, { 488, RQ_REASON_REJECTED },
		{ 500, RQ_REASON_REJECTED }, { 501, RQ_REASON_REJECTED },
		{ 580, RQ_REASON_REJECTED }, { 604, RQ_REASON_REJECTED },
		{ 606, RQ_REASON_REJECTED }, { 699, RQ_REASON_REJECTED },
	};
	size_t i;

	for (i = 0; i < sizeof(map) / sizeof(*map); i++)
		assert_string_equal(tel_reason_for_status(map[i].code),
		    map[i].reason);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reasons),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
