/* sdp.c: our offer, and reading the answers real peers send. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "telserver.h"

static int
parse(const char *sdp, struct tel_sdp_answer *a, char *err, size_t len)
{
	return tel_sdp_parse_answer(sdp, strlen(sdp), a, err, len);
}

static void
test_offer(void **state)
{
	char buf[1024], small[64];

	assert_int_equal(tel_sdp_offer(buf, sizeof(buf), "10.0.0.1", 20000,
	    42), 0);
	assert_non_null(strstr(buf, "c=IN IP4 10.0.0.1\r\n"));
	assert_non_null(strstr(buf, "m=audio 20000 RTP/AVP 0 8 101\r\n"));
	assert_non_null(strstr(buf, "a=rtpmap:101 telephone-event/8000\r\n"));
	assert_non_null(strstr(buf, "a=fmtp:101 0-16\r\n"));
	assert_non_null(strstr(buf, "a=ptime:20\r\n"));
	assert_int_equal(tel_sdp_offer(small, sizeof(small), "10.0.0.1",
	    20000, 42), -1);
}

static void
test_offer_round_trip(void **state)
{
	struct tel_sdp_answer a;
	char buf[1024], err[128];

	/* Our own offer is a valid answer too (a peer echoing it). */
	assert_int_equal(tel_sdp_offer(buf, sizeof(buf), "192.0.2.7", 30002,
	    1), 0);
	assert_int_equal(parse(buf, &a, err, sizeof(err)), 0);
	assert_string_equal(a.addr, "192.0.2.7");
	assert_int_equal(a.port, 30002);
	assert_int_equal(a.pt, 0);
	assert_int_equal(a.dtmf_pt, 101);
}

static void
test_baresip_answer(void **state)
{
	static const char sdp[] =
	    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
	    "t=0 0\r\nm=audio 57882 RTP/AVP 0 101\r\nb=AS:86\r\n"
	    "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
	    "a=fmtp:101 0-15\r\na=sendrecv\r\na=label:1\r\n";
	struct tel_sdp_answer a;
	char err[128];

	assert_int_equal(parse(sdp, &a, err, sizeof(err)), 0);
	assert_string_equal(a.addr, "127.0.0.1");
	assert_int_equal(a.port, 57882);
	assert_int_equal(a.pt, TEL_PT_PCMU);
	assert_int_equal(a.dtmf_pt, 101);
	assert_int_equal(a.recvonly, 0);
}

static void
test_pcma_media_level_conn(void **state)
{
	/* LF line ends, no rtpmap for the static type, c= in the media. */
	static const char sdp[] =
	    "v=0\no=- 1 2 IN IP4 10.0.0.9\ns=-\nc=IN IP4 10.0.0.9\nt=0 0\n"
	    "m=audio 4000 RTP/AVP 8\nc=IN IP4 10.1.1.1\na=sendonly\n";
	struct tel_sdp_answer a;
	char err[128];

	assert_int_equal(parse(sdp, &a, err, sizeof(err)), 0);
	assert_string_equal(a.addr, "10.1.1.1");
	assert_int_equal(a.pt, TEL_PT_PCMA);
	assert_int_equal(a.dtmf_pt, -1);
	assert_int_equal(a.recvonly, 1);
}

static void
test_first_accepted_codec(void **state)
{
	static const char sdp[] =
	    "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 96 8 0\r\n"
	    "a=rtpmap:96 opus/48000/2\r\n";
	struct tel_sdp_answer a;
	char err[128];

	assert_int_equal(parse(sdp, &a, err, sizeof(err)), 0);
	assert_int_equal(a.pt, TEL_PT_PCMA);
}

static void
test_unusable(void **state)
{
	static const char *bad[] = {
	    "",
	    "v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 4000 RTP/AVP 96\r\n",
	    "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 0 RTP/AVP 0\r\n",
	    "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 9 18\r\n",
	    "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/SAVP 0\r\n",
	    "v=0\r\nm=audio 4000 RTP/AVP 0\r\n",
	    "v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n",
	    "v=0\r\nc=IN IP6 ::1\r\nm=audio 4000 RTP/AVP 0\r\n",
	    "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 99999 RTP/AVP 0\r\n",
	    "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio x RTP/AVP 0\r\n",
	    /* PCMU remapped to a wide-band rate is not ours */
	    ("v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n"
	    "a=rtpmap:0 PCMU/16000\r\n"),
	};
	struct tel_sdp_answer a;
	char err[128];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		err[0] = '\0';
		assert_int_equal(parse(bad[i], &a, err, sizeof(err)), -1);
		assert_true(err[0] != '\0');
	}
}

/* Ports beyond 16 bits must not wrap into a valid one. */
static void
test_port_range(void **state)
{
	static const char *bad[] = {
	    "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4294967376 RTP/AVP 0\r\n",
	    "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 65536 RTP/AVP 0\r\n",
	    "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio -80 RTP/AVP 0\r\n",
	    ("v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio "
	    "99999999999999999999999 RTP/AVP 0\r\n"),
	    "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 80x RTP/AVP 0\r\n",
	};
	struct tel_sdp_answer a;
	char err[128];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_int_equal(parse(bad[i], &a, err, sizeof(err)), -1);
	assert_int_equal(parse("v=0\r\nc=IN IP4 10.0.0.1\r\n"
	    "m=audio 65535 RTP/AVP 0\r\n", &a, err, sizeof(err)), 0);
	assert_int_equal(a.port, 65535);
	assert_int_equal(parse("v=0\r\nc=IN IP4 10.0.0.1\r\n"
	    "m=audio 1/2 RTP/AVP 0\r\n", &a, err, sizeof(err)), 0);
	assert_int_equal(a.port, 1);
}

static void
test_media_address(void **state)
{
	static const char *bad[] = {
	    "0.0.0.0", "224.0.0.1", "239.255.255.250", "230.1.2.3",
	    "255.255.255.255", "10.0.0", "1.2.3.4.5", "999.1.1.1",
	};
	static const char *good[] = {
	    "127.0.0.1", "10.1.2.3", "192.168.1.20", "172.16.0.9",
	    "203.0.113.5", "223.255.255.254",
	};
	struct tel_sdp_answer a;
	char sdp[256], err[128];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		snprintf(sdp, sizeof(sdp), "v=0\r\nc=IN IP4 %s\r\n"
		    "m=audio 4000 RTP/AVP 0\r\n", bad[i]);
		err[0] = '\0';
		assert_int_equal(parse(sdp, &a, err, sizeof(err)), -1);
		assert_string_equal(err, "no usable IPv4 media address");
	}
	/* the media-level c= wins, and is checked too */
	assert_int_equal(parse("v=0\r\nc=IN IP4 10.0.0.1\r\n"
	    "m=audio 4000 RTP/AVP 0\r\nc=IN IP4 224.1.1.1\r\n", &a, err,
	    sizeof(err)), -1);
	for (i = 0; i < sizeof(good) / sizeof(*good); i++) {
		snprintf(sdp, sizeof(sdp), "v=0\r\nc=IN IP4 %s\r\n"
		    "m=audio 4000 RTP/AVP 0\r\n", good[i]);
		assert_int_equal(parse(sdp, &a, err, sizeof(err)), 0);
		assert_string_equal(a.addr, good[i]);
	}
}

static void
test_not_nul_terminated(void **state)
{
	static const char sdp[] =
	    "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\nXXXX";
	struct tel_sdp_answer a;
	char err[128], *copy;
	size_t len = strlen(sdp) - 4;

	/* The parser must stay within len bytes. */
	copy = malloc(len);
	memcpy(copy, sdp, len);
	assert_int_equal(tel_sdp_parse_answer(copy, len, &a, err,
	    sizeof(err)), 0);
	assert_int_equal(a.port, 4000);
	free(copy);
}

/* ---- incoming calls: the offer and our answer ---- */

static int
parse_offer(const char *sdp, struct tel_sdp_answer *o, char *err, size_t len)
{
	return tel_sdp_parse_offer(sdp, strlen(sdp), o, err, len);
}

/* The answer holds exactly one audio line, m_line, and the lines of want
 * (NULL-terminated), and none of the lines of not (NULL-terminated). */
static void
assert_answer(const char *sdp, const char *m_line, const char *const *want,
    const char *const *not)
{
	const char *p;
	size_t i;

	if ((p = strstr(sdp, "m=audio ")) == NULL || strstr(p + 1, "m=") != NULL)
		fail_msg("not one audio stream:\n%s", sdp);
	if (strstr(sdp, m_line) == NULL)
		fail_msg("no '%s' in:\n%s", m_line, sdp);
	for (i = 0; want[i] != NULL; i++)
		if (strstr(sdp, want[i]) == NULL)
			fail_msg("no '%s' in:\n%s", want[i], sdp);
	for (i = 0; not[i] != NULL; i++)
		if (strstr(sdp, not[i]) != NULL)
			fail_msg("unexpected '%s' in:\n%s", not[i], sdp);
}

/* What baresip sends when it dials us (audio_codecs=PCMU). */
static void
test_answer_baresip(void **state)
{
	static const char offer[] =
	    "v=0\r\no=- 2890 1 IN IP4 127.0.0.1\r\ns=-\r\n"
	    "c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 31234 RTP/AVP 0 101\r\n"
	    "b=AS:86\r\na=rtpmap:0 PCMU/8000\r\n"
	    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
	    "a=sendrecv\r\na=label:1\r\n";
	static const char *want[] = { "v=0\r\n", "c=IN IP4 10.0.0.5\r\n",
	    "a=rtpmap:0 PCMU/8000\r\n", "a=rtpmap:101 telephone-event/8000\r\n",
	    "a=fmtp:101 0-16\r\n", "a=ptime:20\r\n", "a=sendrecv\r\n", NULL };
	static const char *not[] = { "PCMA", NULL };
	struct tel_sdp_answer o, back;
	char buf[1024], err[128];

	assert_int_equal(parse_offer(offer, &o, err, sizeof(err)), 0);
	assert_string_equal(o.addr, "127.0.0.1");
	assert_int_equal(o.port, 31234);
	assert_int_equal(o.pt, TEL_PT_PCMU);
	assert_int_equal(o.dtmf_pt, 101);
	assert_int_equal(tel_sdp_answer(buf, sizeof(buf), "10.0.0.5", 20000,
	    7, &o), 0);
	assert_answer(buf, "m=audio 20000 RTP/AVP 0 101\r\n", want, not);
	/* our answer reads back as what it says (a peer's view of it) */
	assert_int_equal(tel_sdp_parse_answer(buf, strlen(buf), &back, err,
	    sizeof(err)), 0);
	assert_string_equal(back.addr, "10.0.0.5");
	assert_int_equal(back.port, 20000);
	assert_int_equal(back.pt, TEL_PT_PCMU);
	assert_int_equal(back.dtmf_pt, 101);
}

/* The offerer's preference decides between PCMU and PCMA, and its
 * telephone-event payload type is kept. */
static void
test_answer_codec_choice(void **state)
{
	static const char pcma_first[] =
	    "v=0\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n"
	    "m=audio 4000 RTP/AVP 96 9 8 0 97\r\n"
	    "a=rtpmap:96 opus/48000/2\r\na=rtpmap:9 G722/8000\r\n"
	    "a=rtpmap:97 telephone-event/8000\r\n";
	static const char *want_a[] = { "a=rtpmap:8 PCMA/8000\r\n",
	    "a=rtpmap:97 telephone-event/8000\r\n", "a=fmtp:97 0-16\r\n", NULL };
	static const char *not_a[] = { "PCMU", "opus", "G722", " 101",
	    "a=rtpmap:0 ", NULL };
	/* a phone with several codecs and no telephone-event at 8 kHz */
	static const char no_dtmf[] =
	    "v=0\nc=IN IP4 192.0.2.9\nt=0 0\nm=audio 4002 RTP/AVP 18 0 8 100\n"
	    "a=rtpmap:18 G729/8000\na=rtpmap:100 telephone-event/48000\n";
	static const char *want_u[] = { "a=rtpmap:0 PCMU/8000\r\n", NULL };
	static const char *not_u[] = { "telephone-event", "fmtp", "PCMA",
	    "G729", NULL };
	struct tel_sdp_answer o;
	char buf[1024], err[128];

	assert_int_equal(parse_offer(pcma_first, &o, err, sizeof(err)), 0);
	assert_int_equal(o.pt, TEL_PT_PCMA);
	assert_int_equal(o.dtmf_pt, 97);
	assert_int_equal(tel_sdp_answer(buf, sizeof(buf), "127.0.0.1", 20002,
	    1, &o), 0);
	assert_answer(buf, "m=audio 20002 RTP/AVP 8 97\r\n", want_a, not_a);

	assert_int_equal(parse_offer(no_dtmf, &o, err, sizeof(err)), 0);
	assert_int_equal(o.pt, TEL_PT_PCMU);
	assert_int_equal(o.dtmf_pt, -1);
	assert_int_equal(tel_sdp_answer(buf, sizeof(buf), "127.0.0.1", 20004,
	    1, &o), 0);
	assert_answer(buf, "m=audio 20004 RTP/AVP 0\r\n", want_u, not_u);
}

/* The direction mirrors the offer's (RFC 3264 6.1). */
static void
test_answer_direction(void **state)
{
	static const struct {
		const char	*offered;
		const char	*answered;
	} dirs[] = {
		{ "", "a=sendrecv\r\n" },
		{ "a=sendrecv\r\n", "a=sendrecv\r\n" },
		{ "a=sendonly\r\n", "a=recvonly\r\n" },
		{ "a=recvonly\r\n", "a=sendonly\r\n" },
		{ "a=inactive\r\n", "a=inactive\r\n" },
	};
	struct tel_sdp_answer o;
	char offer[256], buf[1024], err[128];
	size_t i;

	for (i = 0; i < sizeof(dirs) / sizeof(*dirs); i++) {
		snprintf(offer, sizeof(offer), "v=0\r\nc=IN IP4 10.0.0.1\r\n"
		    "m=audio 4000 RTP/AVP 0\r\n%s", dirs[i].offered);
		assert_int_equal(parse_offer(offer, &o, err, sizeof(err)), 0);
		assert_int_equal(tel_sdp_answer(buf, sizeof(buf), "10.0.0.2",
		    20000, 1, &o), 0);
		if (strstr(buf, dirs[i].answered) == NULL)
			fail_msg("offer '%s': answer lacks '%s':\n%s",
			    dirs[i].offered, dirs[i].answered, buf);
	}
}

/* Offers we cannot answer (488), and answers that do not fit. */
static void
test_answer_refused(void **state)
{
	static const char opus_only[] =
	    "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 96 101\r\n"
	    "a=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n";
	static const char video_only[] =
	    "v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 4000 RTP/AVP 96\r\n";
	static const char srtp[] =
	    "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/SAVP 0\r\n";
	struct tel_sdp_answer o;
	char buf[1024], small[100], err[128];

	assert_int_equal(parse_offer(opus_only, &o, err, sizeof(err)), -1);
	assert_string_equal(err, "no codec of ours (PCMU, PCMA) offered");
	assert_int_equal(parse_offer(video_only, &o, err, sizeof(err)), -1);
	assert_string_equal(err, "no audio stream in the offer");
	assert_int_equal(parse_offer(srtp, &o, err, sizeof(err)), -1);
	assert_int_equal(parse_offer("", &o, err, sizeof(err)), -1);
	/* the answer side keeps its own words */
	assert_int_equal(tel_sdp_parse_answer(opus_only, strlen(opus_only),
	    &o, err, sizeof(err)), -1);
	assert_string_equal(err, "no codec of ours (PCMU, PCMA) accepted");

	assert_int_equal(parse_offer("v=0\r\nc=IN IP4 10.0.0.1\r\n"
	    "m=audio 4000 RTP/AVP 0 101\r\n"
	    "a=rtpmap:101 telephone-event/8000\r\n", &o, err, sizeof(err)), 0);
	assert_int_equal(tel_sdp_answer(small, sizeof(small), "10.0.0.2",
	    20000, 1, &o), -1);
	o.pt = 18;	/* not a codec of ours */
	assert_int_equal(tel_sdp_answer(buf, sizeof(buf), "10.0.0.2", 20000, 1,
	    &o), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_offer),
		cmocka_unit_test(test_offer_round_trip),
		cmocka_unit_test(test_baresip_answer),
		cmocka_unit_test(test_pcma_media_level_conn),
		cmocka_unit_test(test_first_accepted_codec),
		cmocka_unit_test(test_unusable),
		cmocka_unit_test(test_port_range),
		cmocka_unit_test(test_media_address),
		cmocka_unit_test(test_not_nul_terminated),
		cmocka_unit_test(test_answer_baresip),
		cmocka_unit_test(test_answer_codec_choice),
		cmocka_unit_test(test_answer_direction),
		cmocka_unit_test(test_answer_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
