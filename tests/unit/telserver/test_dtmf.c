/* dtmf.c: keys a peer sends on real UDP sockets are reported once each,
 * whether as RFC 4733 events (with their retransmissions), as in-band tones
 * made by spandsp, or both; keys we send arrive as a peer expects. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include <spandsp.h>

#include "media_peer.h"

struct keys {
	char		got[64];
	int		n;
	struct tel_stream *free_me;	/* freed by the first key */
};

static void
on_key(void *arg, char digit)
{
	struct keys *k = arg;

	if (k->n < (int)sizeof(k->got) - 1)
		k->got[k->n++] = digit;
	if (k->free_me != NULL) {
		tel_stream_free(k->free_me);
		k->free_me = NULL;
	}
}

/* One whole key as a phone sends it: 4 updates, the end packet thrice. */
static void
send_key(struct peer *p, int pt, uint32_t ts, char digit)
{
	int code = tel_dtmf_code(digit), i;

	for (i = 0; i < 4; i++)
		peer_send_event(p, pt, ts, i == 0, code, 0, (i + 1) * 160);
	for (i = 0; i < 3; i++)
		peer_send_event(p, pt, ts, 0, code, 1, 800);
}

static void
test_codes(void **state)
{
	assert_int_equal(tel_dtmf_code('0'), 0);
	assert_int_equal(tel_dtmf_code('9'), 9);
	assert_int_equal(tel_dtmf_code('*'), 10);
	assert_int_equal(tel_dtmf_code('#'), 11);
	assert_int_equal(tel_dtmf_code('D'), 15);
	assert_int_equal(tel_dtmf_code('x'), -1);
	assert_int_equal(tel_dtmf_code('\0'), -1);
	assert_int_equal(tel_dtmf_digit(11), '#');
	assert_int_equal(tel_dtmf_digit(16), '\0');
}

static void
test_events(void **state)
{
	struct mt t;
	struct peer p;
	struct tel_stream *st;
	struct keys k = { 0 };
	int i;

	assert_int_equal(mt_open(&t), 0);
	assert_non_null(st = tel_stream_new(t.m, "dtmf-events"));
	assert_int_equal(peer_open(&p, tel_stream_port(st), TEL_PT_PCMU), 0);
	tel_stream_on_dtmf(st, on_key, &k, 1);

	send_key(&p, TEL_PT_DTMF, 1000, '1');
	mt_run(&t, 30);
	assert_int_equal(k.n, 1);	/* at its first packet */
	send_key(&p, TEL_PT_DTMF, 2000, '1');	/* the same key again */
	/* '#' whose first packets were lost: its end packets only */
	for (i = 0; i < 3; i++)
		peer_send_event(&p, TEL_PT_DTMF, 3000, 0, 11, 1, 800);
	/* a late copy of the first key's end: not a new key */
	peer_send_event(&p, TEL_PT_DTMF, 1000, 0, 1, 1, 800);
	/* a long '5': the second segment has a new timestamp, no marker */
	peer_send_event(&p, TEL_PT_DTMF, 4000, 1, 5, 0, 0xFFFF);
	peer_send_event(&p, TEL_PT_DTMF, 4000 + 0xFFFF, 0, 5, 0, 160);
	peer_send_event(&p, TEL_PT_DTMF, 4000 + 0xFFFF, 0, 5, 1, 320);
	/* an event that is no key (flash, 16) */
	peer_send_event(&p, TEL_PT_DTMF, 90000, 1, 16, 1, 800);
	/* 'A' on a payload type nobody negotiated: ignored */
	peer_send_event(&p, 96, 100000, 1, 12, 1, 800);
	mt_run(&t, 60);
	assert_string_equal(k.got, "11#5");
	/* a new SSRC starting over at a lower timestamp: a new key */
	p.h.ssrc++;
	send_key(&p, TEL_PT_DTMF, 10, '2');
	mt_run(&t, 40);
	assert_string_equal(k.got, "11#52");
	p.h.ssrc--;
	send_key(&p, TEL_PT_DTMF, 95000, '5');
	mt_run(&t, 40);
	assert_string_equal(k.got, "11#525");

	/* the answer's payload type */
	tel_stream_set_dtmf_pt(st, 96);
	send_key(&p, 96, 110000, 'A');
	send_key(&p, 96, 111000, '*');
	mt_run(&t, 60);
	assert_string_equal(k.got, "11#525A*");
	assert_int_equal(tel_stream_rx_packets(st), 51);

	/* nobody listens: counted, not reported */
	tel_stream_on_dtmf(st, NULL, NULL, 0);
	send_key(&p, 96, 120000, '9');
	mt_run(&t, 40);
	assert_string_equal(k.got, "11#525A*");
	assert_int_equal(tel_stream_rx_packets(st), 58);

	tel_stream_free(st);
	peer_close(&p);
	mt_close(&t);
}

/* samples of keys as a phone plays them: 100 ms tone, 100 ms pause */
static int
make_tones(const char *digits, int16_t *pcm, int max)
{
	dtmf_tx_state_t *tx;
	int n = 0, got, tail = 0;

	assert_non_null(tx = dtmf_tx_init(NULL));
	dtmf_tx_set_timing(tx, 100, 100);
	dtmf_tx_put(tx, digits, -1);
	while (n < max && (got = dtmf_tx(tx, pcm + n, max - n)) > 0)
		n += got;
	dtmf_tx_free(tx);
	/* to a whole frame, with 200 ms of silence */
	while ((n % TEL_FRAME_SAMPLES != 0 || tail < 1600) && n < max) {
		pcm[n++] = 0;
		tail++;
	}
	return n;
}

static void
inband(int pt)
{
	static int16_t pcm[8000 * 4];
	struct mt t;
	struct peer p;
	struct tel_stream *st;
	struct keys k = { 0 };
	int n, i;

	assert_int_equal(mt_open(&t), 0);
	assert_non_null(st = tel_stream_new(t.m, "dtmf-inband"));
	assert_int_equal(peer_open(&p, tel_stream_port(st), pt), 0);
	tel_stream_on_dtmf(st, on_key, &k, 1);
	n = make_tones("123*#0", pcm, 8000 * 2);
	for (i = 0; i + TEL_FRAME_SAMPLES <= n; i += TEL_FRAME_SAMPLES) {
		peer_send_pcm(&p, pcm + i);
		mt_run(&t, 1);
	}
	mt_run(&t, 40);
	assert_string_equal(k.got, "123*#0");

	/* without inband, the same tones say nothing */
	tel_stream_on_dtmf(st, on_key, &k, 0);
	for (i = 0; i + TEL_FRAME_SAMPLES <= n; i += TEL_FRAME_SAMPLES) {
		peer_send_pcm(&p, pcm + i);
		mt_run(&t, 1);
	}
	mt_run(&t, 40);
	assert_string_equal(k.got, "123*#0");

	tel_stream_free(st);
	peer_close(&p);
	mt_close(&t);
}

static void
test_inband_pcmu(void **state)
{
	inband(TEL_PT_PCMU);
}

static void
test_inband_pcma(void **state)
{
	inband(TEL_PT_PCMA);
}

/* A peer sending both tones and events: each key once, whichever comes
 * first. */
static void
test_both(void **state)
{
	static int16_t pcm[8000 * 2];
	struct mt t;
	struct peer p;
	struct tel_stream *st;
	struct keys k = { 0 };
	int n, i;

	assert_int_equal(mt_open(&t), 0);
	assert_non_null(st = tel_stream_new(t.m, "dtmf-both"));
	assert_int_equal(peer_open(&p, tel_stream_port(st), TEL_PT_PCMU), 0);
	tel_stream_on_dtmf(st, on_key, &k, 1);

	/* the tone first (found in-band), its event after it */
	n = make_tones("7", pcm, 8000);
	for (i = 0; i + TEL_FRAME_SAMPLES <= n; i += TEL_FRAME_SAMPLES) {
		peer_send_pcm(&p, pcm + i);
		mt_run(&t, 1);
	}
	mt_run(&t, 20);
	assert_string_equal(k.got, "7");
	send_key(&p, TEL_PT_DTMF, p.h.ts, '7');
	p.h.ts += 800;
	mt_run(&t, 30);
	assert_string_equal(k.got, "7");

	/* then events and tones side by side: events win, tones ignored */
	n = make_tones("8", pcm, 8000);
	send_key(&p, TEL_PT_DTMF, p.h.ts, '8');
	for (i = 0; i + TEL_FRAME_SAMPLES <= n; i += TEL_FRAME_SAMPLES) {
		peer_send_pcm(&p, pcm + i);
		mt_run(&t, 1);
	}
	mt_run(&t, 30);
	assert_string_equal(k.got, "78");

	tel_stream_free(st);
	peer_close(&p);
	mt_close(&t);
}

/* The key callback may free the stream (a hangup on a key). */
static void
test_free_in_callback(void **state)
{
	static int16_t pcm[8000 * 2];
	struct mt t;
	struct peer p;
	struct tel_stream *st;
	struct keys k = { 0 };
	int n, i;

	assert_int_equal(mt_open(&t), 0);
	assert_non_null(st = tel_stream_new(t.m, "dtmf-free"));
	assert_int_equal(peer_open(&p, tel_stream_port(st), TEL_PT_PCMU), 0);
	assert_int_equal(tel_stream_start(st, "127.0.0.1", p.port,
	    TEL_PT_PCMU), 0);
	tel_stream_on_dtmf(st, on_key, &k, 1);
	k.free_me = st;
	send_key(&p, TEL_PT_DTMF, 5000, '3');
	send_key(&p, TEL_PT_DTMF, 6000, '4');
	mt_run(&t, 40);
	assert_string_equal(k.got, "3");

	/* and from inside the in-band detector */
	memset(&k, 0, sizeof(k));
	assert_non_null(st = tel_stream_new(t.m, "dtmf-free2"));
	p.to_port = tel_stream_port(st);
	tel_stream_on_dtmf(st, on_key, &k, 1);
	k.free_me = st;
	n = make_tones("56", pcm, 8000 * 2);
	for (i = 0; i + TEL_FRAME_SAMPLES <= n; i += TEL_FRAME_SAMPLES)
		peer_send_pcm(&p, pcm + i);
	mt_run(&t, 60);
	assert_string_equal(k.got, "5");

	peer_close(&p);
	mt_close(&t);
}

/* Keys sent as events: a peer sees RFC 4733's packets; another stream of
 * ours reports each key once. */
static void
test_send_events(void **state)
{
	static struct pkt pk[200];
	struct mt t;
	struct peer p;
	struct tel_stream *a, *b;
	struct keys k = { 0 };
	int n, i, ev = 0, ends = 0, markers = 0;
	uint32_t ts0 = 0;

	assert_int_equal(mt_open(&t), 0);
	assert_non_null(a = tel_stream_new(t.m, "dtmf-send"));
	assert_int_equal(peer_open(&p, tel_stream_port(a), TEL_PT_PCMU), 0);
	assert_int_equal(tel_stream_send_dtmf(a, "1", 100), -1); /* idle */
	assert_int_equal(tel_stream_start(a, "127.0.0.1", p.port,
	    TEL_PT_PCMU), 0);
	assert_int_equal(tel_stream_send_dtmf(a, "1x", 100), -1);
	tel_stream_set_dtmf_pt(a, 97);
	assert_int_equal(tel_stream_send_dtmf(a, "5", 100), 0);
	assert_int_equal(tel_stream_dtmf_sending(a), 1);
	mt_run(&t, 300);
	assert_int_equal(tel_stream_dtmf_sending(a), 0);
	n = peer_recv(&p, pk, 200);
	for (i = 0; i < n; i++) {
		if (pk[i].h.pt != 97)
			continue;
		assert_int_equal(pk[i].len, 4);
		assert_int_equal(pk[i].p[0], 5);
		if (ev == 0)
			ts0 = pk[i].h.ts;
		assert_int_equal(pk[i].h.ts, ts0);
		markers += pk[i].h.marker;
		if (pk[i].p[1] & 0x80) {
			ends++;
			assert_int_equal(pk[i].p[2] << 8 | pk[i].p[3], 800);
		} else
			assert_int_equal(pk[i].p[2] << 8 | pk[i].p[3],
			    (ev + 1) * 160);
		if (i > 0)	/* every packet its own sequence number */
			assert_int_equal((uint16_t)(pk[i].h.seq -
			    pk[i - 1].h.seq), 1);
		ev++;
	}
	assert_int_equal(ev, 4 + 3);
	assert_int_equal(ends, 3);
	assert_int_equal(markers, 1);

	/* to another stream of ours */
	assert_non_null(b = tel_stream_new(t.m, "dtmf-recv"));
	tel_stream_on_dtmf(b, on_key, &k, 1);
	assert_int_equal(tel_stream_start(a, "127.0.0.1", tel_stream_port(b),
	    TEL_PT_PCMU), 0);
	tel_stream_set_dtmf_pt(b, 97);
	assert_int_equal(tel_stream_send_dtmf(a, "0123456789", 60), 0);
	assert_int_equal(tel_stream_send_dtmf(a, "*#ABCD", 0), 0);
	mt_run(&t, 16 * 200 + 200);
	assert_string_equal(k.got, "0123456789*#ABCD");

	tel_stream_free(a);
	tel_stream_free(b);
	peer_close(&p);
	mt_close(&t);
}

/* Without telephone-event in the answer keys go out as tones that the
 * other stream's in-band detector finds. */
static void
test_send_tones(void **state)
{
	struct mt t;
	struct tel_stream *a, *b;
	struct keys k = { 0 };

	assert_int_equal(mt_open(&t), 0);
	assert_non_null(a = tel_stream_new(t.m, "tone-send"));
	assert_non_null(b = tel_stream_new(t.m, "tone-recv"));
	tel_stream_on_dtmf(b, on_key, &k, 1);
	assert_int_equal(tel_stream_start(a, "127.0.0.1", tel_stream_port(b),
	    TEL_PT_PCMA), 0);
	tel_stream_set_dtmf_pt(a, -1);
	assert_int_equal(tel_stream_send_dtmf(a, "47#", 80), 0);
	mt_run(&t, 3 * 140 + 200);
	assert_string_equal(k.got, "47#");
	assert_int_equal(tel_stream_dtmf_sending(a), 0);

	tel_stream_free(a);
	tel_stream_free(b);
	mt_close(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codes),
		cmocka_unit_test(test_events),
		cmocka_unit_test(test_inband_pcmu),
		cmocka_unit_test(test_inband_pcma),
		cmocka_unit_test(test_both),
		cmocka_unit_test(test_free_in_callback),
		cmocka_unit_test(test_send_events),
		cmocka_unit_test(test_send_tones),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
