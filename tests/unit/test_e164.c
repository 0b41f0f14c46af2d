/* E.164 table and calling-hours arithmetic, with a fixed clock. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "e164.h"
#include "hours.h"

/* 2026-11-21 is a Saturday. */
#define T_0600Z		1795240800000ULL	/* 2026-11-21T06:00Z */
#define T_0700Z		1795244400000ULL
#define T_2130Z		1795296600000ULL
#define T_NEXT_0700Z	1795330800000ULL	/* 2026-11-22T07:00Z */
#define T_1200Z		1795262400000ULL
#define T_0200Z		1795226400000ULL
#define T_1000Z		1795255200000ULL
#define T_2100Z		1795294800000ULL
#define T_1500Z		1795273200000ULL
#define T_1600Z		1795276800000ULL
#define T_MON_1400Z	1795442400000ULL	/* 2026-11-23T14:00Z */
#define T_DST_0030Z	1774744200000ULL	/* 2026-03-29T00:30Z, CET */
#define T_OCT_2230Z	1792881000000ULL	/* 2026-10-24T22:30Z, CEST */
#define T_DST_0600Z	1774764000000ULL	/* 08:00 CEST */

static void
test_parse_good(void **state)
{
	/* NANP area codes: the zone, and one of its others (NULL: none) */
	static const struct {
		const char *number, *tz, *also;
	} areas[] = {
		{ "+16715551234", "Pacific/Guam", NULL },
		{ "+16845551234", "Pacific/Pago_Pago", NULL },
		{ "+12085551234", "America/Boise", "America/Los_Angeles" },
		{ "+19285551234", "America/Phoenix", "America/Denver" },
		{ "+17095551234", "America/St_Johns", "America/Goose_Bay" },
		{ "+17785551234", "America/Vancouver", "America/Edmonton" },
		{ "+16045551234", "America/Vancouver", NULL },
	};
	struct rq_e164 n;
	char why[160];
	size_t i;

	assert_int_equal(rq_e164_parse("+15551234567", &n, why, sizeof(why)),
	    0);
	assert_string_equal(n.e164, "+15551234567");
	assert_string_equal(n.cc, "1");
	assert_string_equal(n.time_zone, "America/New_York");
	assert_false(n.premium);
	assert_int_equal(rq_e164_parse("+1 (310) 555-1234", &n, why,
	    sizeof(why)), 0);
	assert_string_equal(n.e164, "+13105551234");
	assert_string_equal(n.time_zone, "America/Los_Angeles");
	assert_int_equal(rq_e164_parse("0049 30 12345678", &n, why,
	    sizeof(why)), 0);
	assert_string_equal(n.e164, "+493012345678");
	assert_string_equal(n.country, "DE");
	assert_string_equal(n.time_zone, "Europe/Berlin");
	assert_int_equal(rq_e164_parse("+442071838750", &n, why, sizeof(why)),
	    0);
	assert_string_equal(n.time_zone, "Europe/London");
	assert_int_equal(rq_e164_parse("+353861234567", &n, why, sizeof(why)),
	    0);
	assert_string_equal(n.cc, "353");	/* not +35 */
	/* The smaller European countries, each in its own zone */
	assert_int_equal(rq_e164_parse("+35621234567", &n, why, sizeof(why)),
	    0);
	assert_string_equal(n.country, "MT");
	assert_string_equal(n.time_zone, "Europe/Malta");
	assert_int_equal(rq_e164_parse("+35722123456", &n, why, sizeof(why)),
	    0);
	assert_string_equal(n.time_zone, "Asia/Nicosia");
	assert_int_equal(rq_e164_parse("+38344123456", &n, why, sizeof(why)),
	    0);
	assert_string_equal(n.country, "XK");
	assert_int_equal(rq_e164_parse("+376812345", &n, why, sizeof(why)), 0);
	assert_string_equal(n.time_zone, "Europe/Andorra");
	assert_int_equal(rq_e164_parse("+3562123456", &n, why, sizeof(why)),
	    -1);	/* Malta: 8 digits */
	assert_int_equal(rq_e164_parse("+819012345678", &n, why, sizeof(why)),
	    0);
	assert_string_equal(n.time_zone, "Asia/Tokyo");
	assert_null(n.zones);
	/* Several zones: the area code's when known, else all of them. */
	assert_int_equal(rq_e164_parse("+12135551234", &n, why, sizeof(why)),
	    0);
	assert_string_equal(n.time_zone, "America/Los_Angeles");
	assert_null(n.zones);
	assert_int_equal(rq_e164_parse("+19075551234", &n, why, sizeof(why)),
	    0);
	assert_string_equal(n.time_zone, "America/Anchorage");
	assert_int_equal(rq_e164_parse("+18085551234", &n, why, sizeof(why)),
	    0);
	assert_string_equal(n.time_zone, "Pacific/Honolulu");
	assert_int_equal(rq_e164_parse("+13035551234", &n, why, sizeof(why)),
	    0);
	assert_string_equal(n.time_zone, "America/Denver");
	assert_int_equal(rq_e164_parse("+13125551234", &n, why, sizeof(why)),
	    0);
	assert_string_equal(n.time_zone, "America/Chicago");
	/* the Pacific islands, outside the mainland's spread: their own
	 * zone; an area code across a zone line, or an overlay of one:
	 * each of its zones (one of them named here) */
	for (i = 0; i < sizeof(areas) / sizeof(*areas); i++) {
		assert_int_equal(rq_e164_parse(areas[i].number, &n, why,
		    sizeof(why)), 0);
		assert_string_equal(n.time_zone, areas[i].tz);
		if (areas[i].also == NULL)
			assert_null(n.zones);
		else {
			assert_non_null(n.zones);
			assert_non_null(strstr(n.zones, areas[i].also));
		}
	}
	assert_int_equal(rq_e164_parse("+15551234567", &n, why, sizeof(why)),
	    0);
	assert_non_null(n.zones);
	assert_non_null(strstr(n.zones, "America/Los_Angeles"));
	assert_non_null(strstr(n.zones, "Pacific/Honolulu"));
	assert_int_equal(rq_e164_parse("+61212345678", &n, why, sizeof(why)),
	    0);
	assert_non_null(strstr(n.zones, "Australia/Perth"));
	assert_int_equal(rq_e164_parse("+493012345678", &n, why, sizeof(why)),
	    0);
	assert_null(n.zones);
}

static void
test_parse_bad(void **state)
{
	static const char *bad[] = { "", "+", "15551234567", "+0123456789",
	    "+999123456789", "+1555123456", "+155512345678", "+10551234567",
	    "+4420718387", "+49 30 12a45678", "+1234567890123456", "+ 1555",
	    "+33 1 23 45 67 8", "+86-", "+7" };
	struct rq_e164 n;
	char why[160];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		why[0] = '\0';
		assert_int_equal(rq_e164_parse(bad[i], &n, why, sizeof(why)),
		    -1);
		assert_true(why[0] != '\0');
	}
}

static void
test_premium(void **state)
{
	static const char *premium[] = { "+19005551234", "+18765551234",
	    "+448712345678", "+449012345678", "+4990012345678", "+33892123456",
	    "+39899123456", "+881612345678", "+88213456789", "+61190012345" };
	static const char *plain[] = { "+15551234567", "+442071838750",
	    "+33123456789", "+493012345678", "+61212345678" };
	struct rq_e164 n;
	char why[160];
	size_t i;

	for (i = 0; i < sizeof(premium) / sizeof(*premium); i++) {
		assert_int_equal(rq_e164_parse(premium[i], &n, why,
		    sizeof(why)), 0);
		assert_true(n.premium);
	}
	for (i = 0; i < sizeof(plain) / sizeof(*plain); i++) {
		assert_int_equal(rq_e164_parse(plain[i], &n, why,
		    sizeof(why)), 0);
		assert_false(n.premium);
	}
}

static void
test_prefixes(void **state)
{
	assert_true(rq_e164_prefix_allowed("+15551234567", ""));
	assert_true(rq_e164_prefix_allowed("+15551234567", "+1"));
	assert_true(rq_e164_prefix_allowed("+442071838750", "+1, +44"));
	assert_true(rq_e164_prefix_allowed("+442071838750", "4420"));
	assert_true(rq_e164_prefix_allowed("+12125551234", "+1 212"));
	assert_false(rq_e164_prefix_allowed("+13105551234", "+1 212"));
	assert_false(rq_e164_prefix_allowed("+33123456789", "+1,+44"));
	assert_false(rq_e164_prefix_allowed("+4930123", "+44"));
}

static void
test_hours_parse(void **state)
{
	static const char *bad[] = { "", "8-21", "08:00-08:00", "25:00-26:00",
	    "08:60-09:00", "Mon-Fry 09:00-17:00", "Mon 09:00", "09:00-17:00 x",
	    "Mon-Fri09:00-17:00", "24:00-08:00" };
	struct rq_hours h;
	char why[160];
	size_t i;

	assert_int_equal(rq_hours_parse("08:00-21:00", &h, why, sizeof(why)),
	    0);
	assert_int_equal(h.days, 0x7f);
	assert_int_equal(h.start_min, 480);
	assert_int_equal(h.end_min, 1260);
	assert_int_equal(rq_hours_parse("Mon-Fri 09:00-17:00", &h, why,
	    sizeof(why)), 0);
	assert_int_equal(h.days, 0x3e);
	assert_int_equal(rq_hours_parse("Fri-Mon 22:00-06:00", &h, why,
	    sizeof(why)), 0);
	assert_int_equal(h.days, 0x63);		/* Fri Sat Sun Mon */
	assert_int_equal(rq_hours_parse("sat,Sun 00:00-24:00", &h, why,
	    sizeof(why)), 0);
	assert_int_equal(h.days, 0x41);
	assert_int_equal(h.end_min, 1440);
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_int_equal(rq_hours_parse(bad[i], &h, why, sizeof(why)),
		    -1);
}

static uint64_t
next(const char *hours, const char *zone, uint64_t now)
{
	struct rq_hours h;
	uint64_t t = 0;
	char why[160];

	assert_int_equal(rq_hours_parse(hours, &h, why, sizeof(why)), 0);
	assert_int_equal(rq_hours_next(&h, zone, now, &t), 0);
	return t;
}

static void
test_hours_next(void **state)
{
	/* Before the opening in Berlin (07:00 local): today 08:00. */
	assert_int_equal(next("08:00-21:00", "Europe/Berlin", T_0600Z),
	    T_0700Z);
	/* Inside: now. */
	assert_int_equal(next("08:00-21:00", "Europe/Berlin", T_1200Z),
	    T_1200Z);
	/* After the close (22:30 local): across midnight, tomorrow 08:00. */
	assert_int_equal(next("08:00-21:00", "Europe/Berlin", T_2130Z),
	    T_NEXT_0700Z);
	/* A window across midnight: 03:00 local is inside it... */
	assert_int_equal(next("22:00-06:00", "Europe/Berlin", T_0200Z),
	    T_0200Z);
	/* ...11:00 local waits for 22:00. */
	assert_int_equal(next("22:00-06:00", "Europe/Berlin", T_1000Z),
	    T_2100Z);
	/* The same instant is 10:00 in New York, 07:00 in Los Angeles. */
	assert_int_equal(next("08:00-21:00", "America/New_York", T_1500Z),
	    T_1500Z);
	assert_int_equal(next("08:00-21:00", "America/Los_Angeles", T_1500Z),
	    T_1600Z);
	/* Saturday in New York: Monday 09:00 EST. */
	assert_int_equal(next("Mon-Fri 09:00-17:00", "America/New_York",
	    T_1500Z), T_MON_1400Z);
	/* The night clocks go forward: 08:00 CEST is 06:00Z. */
	assert_int_equal(next("08:00-21:00", "Europe/Berlin", T_DST_0030Z),
	    T_DST_0600Z);
	/* UTC, all day. */
	assert_int_equal(next("00:00-24:00", "UTC", T_2130Z), T_2130Z);
}

static uint64_t
close_of(const char *hours, const char *zone, uint64_t at)
{
	struct rq_hours h;
	uint64_t t = 0;
	char why[160];

	assert_int_equal(rq_hours_parse(hours, &h, why, sizeof(why)), 0);
	assert_int_equal(rq_hours_close(&h, zone, at, &t), 0);
	return t;
}

#define H	3600000ULL

static void
test_hours_close(void **state)
{
	/* 13:00 in Berlin: 21:00 local, 20:00Z. */
	assert_int_equal(close_of("08:00-21:00", "Europe/Berlin", T_1200Z),
	    T_1200Z + 8 * H);
	/* Across midnight, in its morning part (03:00 local): 06:00 local. */
	assert_int_equal(close_of("22:00-06:00", "Europe/Berlin", T_0200Z),
	    T_0200Z + 3 * H);
	/* ...in its evening part (22:30 local): tomorrow 06:00. */
	assert_int_equal(close_of("22:00-06:00", "Europe/Berlin", T_2130Z),
	    T_2130Z + 7 * H + H / 2);
	/* All day: midnight, early rather than late. */
	assert_int_equal(close_of("00:00-24:00", "UTC", T_2130Z),
	    T_2130Z + 2 * H + H / 2);
	/* The day clocks go forward: 08:00 to 21:00 CEST is 13 hours. */
	assert_int_equal(close_of("08:00-21:00", "Europe/Berlin", T_DST_0600Z),
	    T_DST_0600Z + 13 * H);
	/* An end the clocks skip (02:30 on 29 March in Paris): the window
	 * closes when they jump from 02:00 to 03:00, at 01:00Z. */
	assert_int_equal(close_of("01:00-02:30", "Europe/Paris", T_DST_0030Z),
	    T_DST_0030Z + H / 2);
	/* An end the clocks repeat (02:30 on 25 October): its first time,
	 * 02:30 CEST (00:30Z), not 02:30 CET an hour later. */
	assert_int_equal(close_of("00:00-02:30", "Europe/Paris", T_OCT_2230Z),
	    T_OCT_2230Z + 2 * H);
	/* Open from 02:30 CEST, the clocks turn back to 02:00 CET, before
	 * the start: closed then (01:00Z), open again at 02:30 CET. */
	assert_int_equal(close_of("02:30-04:00", "Europe/Paris",
	    T_OCT_2230Z + 2 * H), T_OCT_2230Z + 2 * H + H / 2);
}

/* The hours at local time tm, written again here from the definition in
 * e164.h: the oracle for test_hours_close_dst. */
static int
oracle_open(const struct rq_hours *h, time_t t)
{
	struct tm tm;
	int m, today, yesterday;

	localtime_r(&t, &tm);
	m = tm.tm_hour * 60 + tm.tm_min;
	today = (h->days >> tm.tm_wday) & 1;
	yesterday = (h->days >> ((tm.tm_wday + 6) % 7)) & 1;
	if (h->end_min > h->start_min)
		return today && m >= h->start_min && m < h->end_min;
	return (today && m >= h->start_min) || (yesterday && m < h->end_min);
}

/* Around each clock change of 2026 in zones that change at 02:00, at
 * midnight, by half an hour, or twice (south): for windows that end or
 * begin in a skipped or repeated hour, the close is never after the first
 * minute the wall clock shows the window shut. */
static void
test_hours_close_dst(void **state)
{
	static const char *zones[] = { "Europe/Paris", "America/New_York",
	    "America/Santiago", "Australia/Lord_Howe" };
	static const char *wins[] = { "01:00-02:30", "00:00-01:30",
	    "23:00-02:00", "02:30-04:00", "23:30-00:30", "08:00-21:00" };
	struct rq_hours h;
	struct tm a, b;
	time_t t, changes[4], start = 1767225600;	/* 2026-01-01 */
	uint64_t at, close, shut;
	char buf[80], why[160];
	size_t z, w;
	int k, n, checked = 0;

	for (z = 0; z < sizeof(zones) / sizeof(*zones); z++) {
		snprintf(buf, sizeof(buf), ":%s", zones[z]);
		setenv("TZ", buf, 1);
		tzset();
		localtime_r(&start, &a);
		for (n = 0, t = start; t < start + 366 * 86400 && n < 4;
		    t += 900) {
			localtime_r(&t, &b);
			if (b.tm_gmtoff != a.tm_gmtoff)
				changes[n++] = t;
			a = b;
		}
		assert_true(n >= 2);
		for (w = 0; w < sizeof(wins) / sizeof(*wins); w++) {
			assert_int_equal(rq_hours_parse(wins[w], &h, why,
			    sizeof(why)), 0);
			for (k = 0; k < n; k++)
				for (at = (uint64_t)(changes[k] - 30 * 3600) *
				    1000; at < (uint64_t)(changes[k] +
				    30 * 3600) * 1000; at += 11 * 60000 + 7) {
					if (!oracle_open(&h, (time_t)(at / 1000)))
						continue;
					assert_int_equal(rq_hours_close(&h,
					    zones[z], at, &close), 0);
					for (shut = at - at % 60000 + 60000;
					    oracle_open(&h, (time_t)(shut /
					    1000)); shut += 60000)
						;
					if (close > shut)
						fail_msg("%s %s open at %llu: "
						    "close %llu, shut at %llu",
						    zones[z], wins[w],
						    (unsigned long long)at,
						    (unsigned long long)close,
						    (unsigned long long)shut);
					checked++;
				}
		}
	}
	unsetenv("TZ");
	tzset();
	assert_true(checked > 1000);
}

static void
test_hours_rule(void **state)
{
	static const char text[] = "c=08:00-21:00 America/New_York;"
	    "c=08:00-21:00 America/Los_Angeles;b=Mon-Fri 09:00-17:00 "
	    "Europe/Paris";
	static const char *bad[] = { "x=08:00-09:00 UTC", "c=08:00-09:00",
	    "c=08:00-09:00 Mars/Olympus", "c=99:00-10:00 UTC", "c=",
	    "c=08:00-09:00 UTC;", ";" };
	struct rq_hours_rule r, r2;
	uint64_t open, until;
	char buf[RQ_HOURS_TEXT_MAX], why[160];
	size_t i;
	int moved;

	assert_int_equal(rq_hours_rule_parse(text, &r, why, sizeof(why)), 0);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.e[2].kind, RQ_HOURS_BUSINESS);
	assert_int_equal(rq_hours_rule_format(&r, buf, sizeof(buf)), 0);
	assert_string_equal(buf, text);
	assert_int_equal(rq_hours_rule_format(&r, buf, 20), -1);
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_int_equal(rq_hours_rule_parse(bad[i], &r2, why,
		    sizeof(why)), -1);

	/* Saturday 10:00 in New York, 07:00 in Los Angeles: the calling
	 * hours open at 08:00 in LA, and close first in New York (21:00
	 * EST, 02:00Z). */
	r.n = 2;
	assert_int_equal(rq_hours_rule_plan(&r, T_1500Z, &open, &until,
	    &moved), 0);
	assert_int_equal(open, T_1600Z);
	assert_int_equal(until, T_1600Z + 10 * H);
	assert_int_equal(moved, RQ_HOURS_CALLING);
	/* Inside all: open now, nothing moved. */
	assert_int_equal(rq_hours_rule_plan(&r, T_1600Z + H, &open, &until,
	    &moved), 0);
	assert_int_equal(open, T_1600Z + H);
	assert_int_equal(until, T_1600Z + 10 * H);
	assert_int_equal(moved, 0);
	/* With the Paris business (Mon-Fri 09:00-17:00 CET): Monday 09:00
	 * CET is 03:00 in New York, whose 08:00 EST (13:00Z) opens all
	 * three; Paris closes first, at 16:00Z. */
	r.e[1] = r.e[2];
	assert_int_equal(rq_hours_rule_plan(&r, T_1500Z, &open, &until,
	    &moved), 0);
	assert_int_equal(open, T_MON_1400Z - H);
	assert_int_equal(until, T_MON_1400Z + 2 * H);
	assert_int_equal(moved, RQ_HOURS_CALLING | RQ_HOURS_BUSINESS);
	/* Windows that never meet. */
	assert_int_equal(rq_hours_rule_parse("c=08:00-09:00 UTC;"
	    "b=10:00-11:00 UTC", &r, why, sizeof(why)), 0);
	assert_int_equal(rq_hours_rule_plan(&r, T_1500Z, &open, &until,
	    &moved), -1);
	/* No windows: always open. */
	assert_int_equal(rq_hours_rule_parse("", &r, why, sizeof(why)), 0);
	assert_int_equal(rq_hours_rule_plan(&r, T_1500Z, &open, &until,
	    &moved), 0);
	assert_int_equal(open, T_1500Z);
	assert_int_equal(until, UINT64_MAX);
}

static void
test_tz(void **state)
{
	struct rq_hours h;
	uint64_t t;
	char why[160];

	assert_true(rq_tz_valid("Europe/Berlin"));
	assert_true(rq_tz_valid("UTC"));
	assert_false(rq_tz_valid("Mars/Olympus"));
	assert_false(rq_tz_valid("../../etc/passwd"));
	/* tables beside the zones, not zones */
	assert_false(rq_tz_valid("leapseconds"));
	assert_false(rq_tz_valid("right"));
	assert_false(rq_tz_valid("/etc/passwd"));
	assert_false(rq_tz_valid("Europe"));	/* a directory */
	assert_false(rq_tz_valid(""));
	assert_int_equal(rq_hours_parse("08:00-21:00", &h, why, sizeof(why)),
	    0);
	assert_int_equal(rq_hours_next(&h, "Mars/Olympus", T_0600Z, &t), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_premium),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_hours_parse),
		cmocka_unit_test(test_hours_next),
		cmocka_unit_test(test_hours_close),
		cmocka_unit_test(test_hours_close_dst),
		cmocka_unit_test(test_hours_rule),
		cmocka_unit_test(test_tz),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
