/* media.c: RTP header packing and G.711, checked against spandsp. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <spandsp.h>

#include "telserver.h"

static void
test_rtp_pack(void **state)
{
	static const uint8_t want[TEL_RTP_HDR] = { 0x80, 0x80 | 8, 0xBE, 0xEF,
	    0x01, 0x02, 0x03, 0x04, 0xDE, 0xAD, 0xBE, 0xEF };
	struct tel_rtp_hdr h = { .pt = 8, .marker = 1, .seq = 0xBEEF,
	    .ts = 0x01020304, .ssrc = 0xDEADBEEF }, g;
	uint8_t buf[TEL_RTP_HDR + 160];

	tel_rtp_pack(buf, &h);
	assert_memory_equal(buf, want, sizeof(want));
	assert_int_equal(tel_rtp_parse(buf, sizeof(buf), &g), TEL_RTP_HDR);
	assert_int_equal(g.pt, 8);
	assert_int_equal(g.marker, 1);
	assert_int_equal(g.seq, 0xBEEF);
	assert_int_equal(g.ts, 0x01020304);
	assert_int_equal(g.ssrc, 0xDEADBEEF);

	h.marker = 0;
	h.pt = 0;
	tel_rtp_pack(buf, &h);
	assert_int_equal(buf[1], 0);
}

static void
test_rtp_parse_bad(void **state)
{
	uint8_t buf[64];
	struct tel_rtp_hdr h;

	memset(buf, 0, sizeof(buf));
	assert_int_equal(tel_rtp_parse(buf, sizeof(buf), &h), -1); /* v0 */
	buf[0] = 0x80;
	assert_int_equal(tel_rtp_parse(buf, 11, &h), -1);
	buf[0] = 0x8F;			/* 15 CSRCs: 72 bytes */
	assert_int_equal(tel_rtp_parse(buf, sizeof(buf), &h), -1);
	buf[0] = 0x90;			/* extension of 0xFFFF words */
	buf[14] = 0xFF;
	buf[15] = 0xFF;
	assert_int_equal(tel_rtp_parse(buf, sizeof(buf), &h), -1);
	buf[14] = 0;
	buf[15] = 1;			/* 12 + 4 + 4 */
	assert_int_equal(tel_rtp_parse(buf, sizeof(buf), &h), 20);
}

/* Every byte decodes as ITU-T G.711 says (spandsp as the reference), and
 * every sample survives encode + decode within one quantisation step. */
static void
test_g711(void **state)
{
	int i, x, y, step;

	for (i = 0; i < 256; i++) {
		assert_int_equal(tel_ulaw_decode((uint8_t)i),
		    ulaw_to_linear((uint8_t)i));
		assert_int_equal(tel_alaw_decode((uint8_t)i),
		    alaw_to_linear((uint8_t)i));
		/* decode then encode is the identity (but for -0 in µ-law) */
		if (i != 0x7F)
			assert_int_equal(tel_ulaw_encode(tel_ulaw_decode(
			    (uint8_t)i)), i);
		assert_int_equal(tel_alaw_encode(tel_alaw_decode((uint8_t)i)),
		    i);
	}
	for (x = -32768; x <= 32767; x++) {
		y = tel_ulaw_decode(tel_ulaw_encode((int16_t)x));
		step = abs(x) < 32 ? 8 : abs(x) / 16 + 8;
		if (abs(x) > 32124)
			step = abs(x) - 32124 + 1024;
		assert_true(abs(x - y) <= step);
		y = tel_alaw_decode(tel_alaw_encode((int16_t)x));
		step = abs(x) < 256 ? 16 : abs(x) / 16 + 16;
		if (abs(x) > 32256)
			step = abs(x) - 32256 + 1024;
		assert_true(abs(x - y) <= step);
		/* and it agrees with spandsp to within one code step */
		assert_true(abs(tel_ulaw_decode(tel_ulaw_encode((int16_t)x)) -
		    ulaw_to_linear(linear_to_ulaw(x))) <= abs(x) / 8 + 8);
	}
	/* silence is silence */
	assert_int_equal(tel_ulaw_encode(0), 0xFF);
	assert_int_equal(tel_alaw_encode(0), 0xD5);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rtp_pack),
		cmocka_unit_test(test_rtp_parse_bad),
		cmocka_unit_test(test_g711),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
