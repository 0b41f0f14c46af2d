/* call.c: the mapping of SIP final answers to failure reasons, and the
 * From header built from a job's caller_id. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
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

static void
from_ok(const char *sip_from, const char *caller_id, const char *want)
{
	char from[512], err[128];

	err[0] = '\0';
	assert_int_equal(tel_call_from(sip_from, caller_id, from, sizeof(from),
	    err, sizeof(err)), 0);
	assert_string_equal(from, want);
}

static void
from_bad(const char *caller_id)
{
	char from[512], err[128];

	err[0] = '\0';
	assert_int_equal(tel_call_from("sip:ringq@pbx.example", caller_id,
	    from, sizeof(from), err, sizeof(err)), -1);
	assert_string_equal(err, "invalid caller_id");
}

static void
test_from(void **state)
{
	const char *sf = "sip:ringq@pbx.example:5070";

	/* none: sip_from as configured */
	from_ok(sf, NULL, sf);
	from_ok(sf, "", sf);
	/* E.164: the number at our host */
	from_ok(sf, "+15551234567", "<sip:+15551234567@pbx.example>");
	/* a SIP URI: itself */
	from_ok(sf, "sip:alice@example.com", "<sip:alice@example.com>");
	/* a name, spaces and all: a display name of our own URI */
	from_ok(sf, "Ops Team", "\"Ops Team\" <sip:ringq@pbx.example:5070>");
	from_ok(sf, "a", "\"a\" <sip:ringq@pbx.example:5070>");
	from_ok(sf, "Night shift_2.0-x", "\"Night shift_2.0-x\" "
	    "<sip:ringq@pbx.example:5070>");
	/* a name-addr sip_from gives its URI */
	from_ok("\"ringq\" <sip:ringq@10.0.0.1>", "Ops Team",
	    "\"Ops Team\" <sip:ringq@10.0.0.1>");
	/* quoted-string escaping (the gateway never sends these) */
	from_ok(sf, "say \"hi\" \\o/", "\"say \\\"hi\\\" \\\\o/\" "
	    "<sip:ringq@pbx.example:5070>");
	/* what cannot become a header */
	from_bad("Ops\r\nX-Evil: 1");
	from_bad("tab\there");
	from_bad("sip:has space@example.com");
	from_bad("sip:<alice@example.com>");
	from_bad("sip:nohost");
	from_bad("+12ab");
	from_bad("0123456789012345678901234567890123456789012345678901234567"
	    "89012345");	/* 66 characters */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reasons),
		cmocka_unit_test(test_from),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
