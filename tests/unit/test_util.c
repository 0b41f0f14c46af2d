/* Shared helpers: targets, times, ids, hashes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "status.h"
#include "util.h"

static void
test_targets(void **state)
{
	static const char *good_e164[] = { "+15551234567", "+442071838750",
	    "+33123456789", "+123456789012345" };
	static const char *good_sip[] = { "sip:bob@127.0.0.1",
	    "sip:bob@127.0.0.1:5062", "sip:alice@example.com",
	    "SIP:x@[::1]:5060" };
	static const char *bad[] = { "", "15551234567", "+1555", "+0123456789",
	    "+1234567890123456", "+1555123456a", "sip:", "sip:@host",
	    "sip:bob@", "sip:bob@host:0", "sip:bob@host:99999", "sip:bob@ho st",
	    "sip:bo b@host", "tel:+15551234567", "mailto:x@y", "sip:bob@host:5x",
	    "sip:a@h:\r\n5060", "sip:a@h: 5060", "sip:a@h:+5060",
	    "sip:a\x01b@host", "sip:a\x7f@host", "sip:a@host\r\nX-Evil: 1",
	    "+1555123456\n",
	    "sip:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "@host" };
	enum rq_target_kind kind;
	char err[128];
	size_t i;

	for (i = 0; i < sizeof(good_e164) / sizeof(*good_e164); i++) {
		assert_int_equal(rq_target_parse(good_e164[i], &kind, err,
		    sizeof(err)), 0);
		assert_int_equal(kind, RQ_TARGET_E164);
	}
	for (i = 0; i < sizeof(good_sip) / sizeof(*good_sip); i++) {
		assert_int_equal(rq_target_parse(good_sip[i], &kind, err,
		    sizeof(err)), 0);
		assert_int_equal(kind, RQ_TARGET_SIP);
	}
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		err[0] = '\0';
		if (rq_target_parse(bad[i], &kind, err, sizeof(err)) != -1)
			fail_msg("accepted bad target %zu", i);
		assert_true(strlen(err) > 0);
	}
}

static void
test_rfc3339(void **state)
{
	uint64_t ms;
	char buf[32];

	assert_int_equal(rq_rfc3339_parse("1970-01-01T00:00:00Z", &ms), 0);
	assert_true(ms == 0);
	assert_int_equal(rq_rfc3339_parse("2026-11-21T10:00:00Z", &ms), 0);
	assert_true(ms == 1795255200000ULL);
	assert_int_equal(rq_rfc3339_parse("2026-11-21T11:00:00.25+01:00", &ms), 0);
	assert_true(ms == 1795255200250ULL);
	assert_int_equal(rq_rfc3339_parse("2024-02-29T00:00:00Z", &ms), 0);
	assert_int_equal(rq_rfc3339_parse("2023-02-29T00:00:00Z", &ms), -1);
	assert_int_equal(rq_rfc3339_parse("2026-13-01T00:00:00Z", &ms), -1);
	assert_int_equal(rq_rfc3339_parse("2026-11-21T10:00:00", &ms), -1);
	assert_int_equal(rq_rfc3339_parse("2026-11-21T10:00:00Zjunk", &ms), -1);
	assert_int_equal(rq_rfc3339_parse("tomorrow", &ms), -1);
	assert_int_equal(rq_rfc3339_parse("", &ms), -1);
	rq_rfc3339_format(1795255200250ULL, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-21T10:00:00.250Z");
}

static void
test_ids_and_hash(void **state)
{
	char a[RQ_ID_LEN + 1], b[RQ_ID_LEN + 1], h[65];

	assert_int_equal(rq_call_id_new(a), 0);
	assert_int_equal(rq_call_id_new(b), 0);
	assert_true(rq_call_id_valid(a));
	assert_string_not_equal(a, b);
	assert_false(rq_call_id_valid("c_xyz"));
	assert_false(rq_call_id_valid("../../etc/passwd"));
	rq_sha256_hex("abc", 3, h);
	assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad");
}

static void
test_status_names(void **state)
{
	enum rq_status st;
	int i;

	for (i = 0; i < RQ_ST__COUNT; i++) {
		assert_int_equal(rq_status_parse(rq_status_name(i), &st), 0);
		assert_int_equal(st, i);
	}
	assert_int_equal(rq_status_parse("done", &st), -1);
	assert_false(rq_status_terminal(RQ_ST_ANSWERED));
	assert_true(rq_status_terminal(RQ_ST_COMPLETED));
	assert_true(rq_status_terminal(RQ_ST_EXPIRED));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_targets),
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_ids_and_hash),
		cmocka_unit_test(test_status_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
