/* The HTTP connection caps' tables (gateway/http_conns.c): counts by
 * connection and by address, the caps, and thousands of connections come
 * and gone in random order checked against a plain model (the tables
 * delete by shifting entries back, which must never lose one). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gateway.h"

#define CONN(i)	((const void *)(uintptr_t)(0x1000 + 16 * (i)))

static void
test_caps(void **state)
{
	struct gw_http_conns *c;
	int newconn, i;

	assert_non_null(c = gw_http_conns_new(5, 3));
	for (i = 0; i < 3; i++) {
		assert_int_equal(gw_http_conns_admit(c, CONN(i), "10.0.0.1",
		    &newconn), 0);
		assert_true(newconn);
	}
	/* a connection already counted: its next requests pass */
	assert_int_equal(gw_http_conns_admit(c, CONN(1), "10.0.0.1",
	    &newconn), 0);
	assert_false(newconn);
	/* a fourth from the address: refused, not counted */
	assert_int_equal(gw_http_conns_admit(c, CONN(3), "10.0.0.1",
	    &newconn), -2);
	assert_false(newconn);
	assert_int_equal(gw_http_conns_count(c), 3);
	assert_int_equal(gw_http_conns_admit(c, CONN(3), "10.0.0.2",
	    &newconn), 0);
	assert_int_equal(gw_http_conns_admit(c, CONN(4), "::1", &newconn), 0);
	/* five in all */
	assert_int_equal(gw_http_conns_admit(c, CONN(5), "10.0.0.3",
	    &newconn), -1);
	/* one closes: room for one more, from the full address too */
	gw_http_conns_forget(c, CONN(0));
	gw_http_conns_forget(c, CONN(0));	/* twice: nothing more */
	assert_int_equal(gw_http_conns_count(c), 4);
	assert_int_equal(gw_http_conns_admit(c, CONN(6), "10.0.0.1",
	    &newconn), 0);
	assert_true(newconn);
	/* no address (or a bad one) counts as "?" */
	gw_http_conns_forget(c, CONN(6));
	assert_int_equal(gw_http_conns_admit(c, CONN(7), NULL, &newconn), 0);
	gw_http_conns_free(c);
}

static void
test_churn(void **state)
{
	enum { N = 3000, ADDRS = 40, MAX = 1300, PER = 35 };
	static int open_[N], addr_of[N];
	int per[ADDRS] = { 0 }, total = 0, step, i, rc, want, newconn;
	int refused_all = 0, refused_addr = 0;
	struct gw_http_conns *c;
	char addr[32];

	srandom(7);
	assert_non_null(c = gw_http_conns_new(MAX, PER));
	for (step = 0; step < 200000; step++) {
		i = (int)(random() % N);
		if (open_[i]) {
			gw_http_conns_forget(c, CONN(i));
			open_[i] = 0;
			per[addr_of[i]]--;
			total--;
		} else {
			addr_of[i] = (int)(random() % ADDRS);
			snprintf(addr, sizeof(addr), "192.0.2.%d", addr_of[i]);
			want = total >= MAX ? -1 :
			    per[addr_of[i]] >= PER ? -2 : 0;
			rc = gw_http_conns_admit(c, CONN(i), addr, &newconn);
			assert_int_equal(rc, want);
			refused_all += rc == -1;
			refused_addr += rc == -2;
			if (rc == 0) {
				assert_true(newconn);
				open_[i] = 1;
				per[addr_of[i]]++;
				total++;
			}
		}
		assert_int_equal(gw_http_conns_count(c), total);
	}
	/* both caps were met on the way */
	assert_true(refused_all > 0);
	assert_true(refused_addr > 0);
	/* every open one is still found: a request on it passes */
	for (i = 0; i < N; i++)
		if (open_[i]) {
			snprintf(addr, sizeof(addr), "192.0.2.%d", addr_of[i]);
			assert_int_equal(gw_http_conns_admit(c, CONN(i), addr,
			    &newconn), 0);
			assert_false(newconn);
		}
	gw_http_conns_free(c);
}

/* IPv6 clients count by /64; IPv4 (also mapped into IPv6) by address. */
static void
test_keys(void **state)
{
	char k[GW_ADDR_LEN];

	assert_string_equal(gw_http_conns_key("192.0.2.7", k, sizeof(k)),
	    "192.0.2.7");
	assert_string_equal(gw_http_conns_key("2001:db8::1", k, sizeof(k)),
	    "2001:db8::/64");
	assert_string_equal(gw_http_conns_key("2001:db8:0:0:ffff:1:2:3", k,
	    sizeof(k)), "2001:db8::/64");
	assert_string_equal(gw_http_conns_key("2001:db8:0:1::1", k,
	    sizeof(k)), "2001:db8:0:1::/64");
	assert_string_equal(gw_http_conns_key("::ffff:192.0.2.7", k,
	    sizeof(k)), "::ffff:192.0.2.7");
	assert_null(gw_http_conns_key(NULL, k, sizeof(k)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_churn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
