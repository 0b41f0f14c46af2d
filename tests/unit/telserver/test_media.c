/* media.c: RTP header packing and G.711, checked against spandsp; and on
 * real UDP sockets, the prompt queue (order, pauses, barge-in, done), the
 * send-interval jitter, and two streams bridged. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <spandsp.h>

#include "media_peer.h"

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


struct done {
	int		 n;
	struct tel_stream *free_me;
};

static void
on_done(void *arg)
{
	struct done *d = arg;

	d->n++;
	if (d->free_me != NULL) {
		tel_stream_free(d->free_me);
		d->free_me = NULL;
	}
}

static struct tel_speech *
level(int16_t v, size_t n)
{
	int16_t pcm[4000];
	size_t i;

	assert_true(n <= 4000);
	for (i = 0; i < n; i++)
		pcm[i] = v;
	return tel_speech_new_pcm(pcm, n);
}

/* What a peer heard, decoded, from its packets of payload type pt. */
static size_t
heard(struct peer *p, int16_t *out, size_t max, int pt)
{
	static struct pkt pk[400];
	size_t n = 0, j;
	int k, i;

	k = peer_recv(p, pk, 400);
	for (i = 0; i < k; i++) {
		assert_int_equal(pk[i].h.pt, pt);
		for (j = 0; j < pk[i].len && n < max; j++)
			out[n++] = pt == TEL_PT_PCMA ?
			    tel_alaw_decode(pk[i].p[j]) :
			    tel_ulaw_decode(pk[i].p[j]);
	}
	return n;
}

/* Index of the first sample of s (n) that is not silence, from i. */
static size_t
first_sound(const int16_t *s, size_t n, size_t i)
{
	while (i < n && abs(s[i]) < 100)
		i++;
	return i;
}

/* Items play back to back in order, a pause is that many samples of
 * silence, done comes once after the last sample. */
static void
test_queue(void **state)
{
	static int16_t got[20000];
	struct mt t;
	struct peer p;
	struct tel_stream *st;
	struct tel_speech *a, *b;
	struct done d = { 0 };
	size_t n, s0, i;

	assert_int_equal(mt_open(&t), 0);
	assert_non_null(st = tel_stream_new(t.m, "queue"));
	assert_int_equal(peer_open(&p, tel_stream_port(st), TEL_PT_PCMU), 0);
	assert_int_equal(tel_stream_start(st, "127.0.0.1", p.port,
	    TEL_PT_PCMU), 0);
	assert_non_null(a = level(4000, 250));
	assert_non_null(b = level(-2000, 330));
	assert_int_equal(tel_stream_queue_bargein(st), -1);
	assert_int_equal(tel_stream_queue_speech(st, a, 1), 0);
	assert_int_equal(tel_stream_queue_pause(st, 15, 1), 0);
	assert_int_equal(tel_stream_queue_speech(st, b, 0), 0);
	assert_int_equal(tel_stream_queue_len(st), 3);
	assert_int_equal(tel_stream_queue_bargein(st), 1);
	/* queued is not playing: silence */
	mt_run(&t, 100);
	n = heard(&p, got, 20000, TEL_PT_PCMU);
	assert_true(n >= 3 * 160);
	assert_int_equal(first_sound(got, n, 0), n);
	assert_false(tel_stream_queue_playing(st));

	tel_stream_queue_play(st, on_done, &d);
	assert_true(mt_run_until(&t, &d.n, 500));
	mt_run(&t, 60);
	assert_int_equal(d.n, 1);
	assert_int_equal(tel_stream_queue_len(st), 0);
	assert_false(tel_stream_queue_playing(st));
	n = heard(&p, got, 20000, TEL_PT_PCMU);
	s0 = first_sound(got, n, 0);
	assert_true(s0 % 160 == 0 && s0 + 700 < n);
	for (i = 0; i < 250; i++)
		assert_int_equal(got[s0 + i], tel_ulaw_decode(
		    tel_ulaw_encode(4000)));
	for (; i < 250 + 120; i++)		/* 15 ms */
		assert_int_equal(got[s0 + i], 0);
	for (; i < 250 + 120 + 330; i++)
		assert_int_equal(got[s0 + i], tel_ulaw_decode(
		    tel_ulaw_encode(-2000)));
	assert_int_equal(first_sound(got, n, s0 + i), n);
	/* our references are ours: the queue dropped its own */
	assert_int_equal(a->refs, 1);
	assert_int_equal(b->refs, 1);

	/* an empty queue played: done on the next tick */
	tel_stream_queue_play(st, on_done, &d);
	assert_true(mt_run_until(&t, &(int){ 0 }, 50) == 0);
	assert_int_equal(d.n, 2);

	/* done may free the stream */
	d.free_me = st;
	tel_stream_play(st, a, on_done, &d);
	assert_true(mt_run_until(&t, &(int){ 0 }, 500) == 0);
	assert_int_equal(d.n, 3);

	tel_speech_unref(a);
	tel_speech_unref(b);
	peer_close(&p);
	mt_close(&t);
}

/* Barge-in stops at once and drops the rest; done never comes.  A speech
 * not ready holds the queue in silence. */
static void
test_queue_stop(void **state)
{
	static int16_t got[20000];
	struct mt t;
	struct peer p;
	struct tel_stream *st;
	struct tel_speech *a, *wait;
	struct done d = { 0 };
	size_t n;

	assert_int_equal(mt_open(&t), 0);
	assert_non_null(st = tel_stream_new(t.m, "stop"));
	assert_int_equal(peer_open(&p, tel_stream_port(st), TEL_PT_PCMA), 0);
	assert_int_equal(tel_stream_start(st, "127.0.0.1", p.port,
	    TEL_PT_PCMA), 0);
	assert_non_null(a = level(3000, 4000));		/* 500 ms */
	assert_int_equal(tel_stream_queue_speech(st, a, 1), 0);
	assert_int_equal(tel_stream_queue_speech(st, a, 0), 0);
	tel_stream_queue_play(st, on_done, &d);
	mt_run(&t, 100);
	assert_int_equal(tel_stream_queue_bargein(st), 1);
	tel_stream_queue_stop(st);
	assert_int_equal(tel_stream_queue_len(st), 0);
	assert_int_equal(tel_stream_queue_bargein(st), -1);
	n = heard(&p, got, 20000, TEL_PT_PCMA);
	assert_true(first_sound(got, n, 0) < n);
	mt_run(&t, 100);
	n = heard(&p, got, 20000, TEL_PT_PCMA);
	assert_true(n >= 3 * 160);
	assert_int_equal(first_sound(got, n, 0), n);	/* silence at once */
	mt_run(&t, 1000);
	assert_int_equal(d.n, 0);
	assert_int_equal(a->refs, 1);

	/* a speech still in synthesis: silence until it is ready */
	assert_non_null(wait = level(3000, 800));
	wait->ready = 0;
	assert_int_equal(tel_stream_queue_speech(st, wait, 1), 0);
	tel_stream_queue_play(st, on_done, &d);
	peer_drain(&p);
	mt_run(&t, 200);
	n = heard(&p, got, 20000, TEL_PT_PCMA);
	assert_int_equal(first_sound(got, n, 0), n);
	assert_int_equal(d.n, 0);
	wait->ready = 1;
	assert_true(mt_run_until(&t, &d.n, 500));
	n = heard(&p, got, 20000, TEL_PT_PCMA);
	assert_true(first_sound(got, n, 0) < n);

	tel_speech_unref(a);
	tel_speech_unref(wait);
	tel_stream_free(st);
	peer_close(&p);
	mt_close(&t);
}

/* <audio> still being fetched: a placeholder holds the queue, then
 * plays what was fetched, or is replaced by its fallback, or dropped. */
static void
test_queue_placeholder(void **state)
{
	static int16_t got[20000];
	struct mt t;
	struct peer p;
	struct tel_stream *st;
	struct tel_speech *ph1, *ph2, *ph3, *file, *fallback;
	struct done d = { 0 };
	size_t n, s0, i;

	assert_int_equal(mt_open(&t), 0);
	assert_non_null(st = tel_stream_new(t.m, "placeholder"));
	assert_int_equal(peer_open(&p, tel_stream_port(st), TEL_PT_PCMU), 0);
	assert_int_equal(tel_stream_start(st, "127.0.0.1", p.port,
	    TEL_PT_PCMU), 0);
	assert_non_null(ph1 = tel_speech_new_pending());
	assert_non_null(ph2 = tel_speech_new_pending());
	assert_non_null(ph3 = tel_speech_new_pending());
	assert_int_equal(tel_stream_queue_speech(st, ph1, 1), 0);
	assert_int_equal(tel_stream_queue_speech(st, ph2, 1), 0);
	assert_int_equal(tel_stream_queue_speech(st, ph3, 1), 0);
	tel_stream_queue_play(st, on_done, &d);
	mt_run(&t, 100);
	assert_int_equal(tel_stream_queue_len(st), 3);
	peer_drain(&p);

	/* the second fetch failed: its fallback; the third: nothing */
	assert_non_null(fallback = level(-3000, 160));
	assert_int_equal(tel_stream_queue_replace(st, ph2, fallback), 1);
	assert_int_equal(tel_stream_queue_replace(st, ph3, NULL), 1);
	assert_int_equal(tel_stream_queue_len(st), 2);
	assert_int_equal(ph2->refs, 1);
	/* the first arrives */
	assert_non_null(file = level(2000, 320));
	tel_speech_fill(ph1, file);
	assert_null(file->samples);
	tel_speech_unref(file);
	assert_true(mt_run_until(&t, &d.n, 500));
	mt_run(&t, 40);
	n = heard(&p, got, 20000, TEL_PT_PCMU);
	s0 = first_sound(got, n, 0);
	assert_true(s0 + 480 <= n);
	for (i = 0; i < 320; i++)
		assert_int_equal(got[s0 + i], tel_ulaw_decode(
		    tel_ulaw_encode(2000)));
	for (; i < 480; i++)
		assert_int_equal(got[s0 + i], tel_ulaw_decode(
		    tel_ulaw_encode(-3000)));
	assert_int_equal(first_sound(got, n, s0 + i), n);

	tel_speech_unref(ph1);
	tel_speech_unref(ph2);
	tel_speech_unref(ph3);
	tel_speech_unref(fallback);
	tel_stream_free(st);
	peer_close(&p);
	mt_close(&t);
}

/* tel_stream_play as before: the prompt, ~300 ms of silence, done. */
static void
test_play_compat(void **state)
{
	struct mt t;
	struct peer p;
	struct tel_stream *st;
	struct tel_speech *a;
	struct done d = { 0 };
	uint64_t t0, took;

	assert_int_equal(mt_open(&t), 0);
	assert_non_null(st = tel_stream_new(t.m, "play"));
	assert_int_equal(peer_open(&p, tel_stream_port(st), TEL_PT_PCMU), 0);
	assert_int_equal(tel_stream_start(st, "127.0.0.1", p.port,
	    TEL_PT_PCMU), 0);
	assert_non_null(a = level(3000, 1600));		/* 200 ms */
	t0 = rq_mono_ms();
	tel_stream_play(st, a, on_done, &d);
	assert_true(mt_run_until(&t, &d.n, 2000));
	took = rq_mono_ms() - t0;
	assert_in_range(took, 200 + 300 - 30, 200 + 300 + 150);
	/* a NULL prompt: the tail alone */
	t0 = rq_mono_ms();
	tel_stream_play(st, NULL, on_done, &d);
	assert_true(mt_run_until(&t, &(int){ 0 }, 400) == 0);
	assert_int_equal(d.n, 2);
	tel_speech_unref(a);
	tel_stream_free(st);
	peer_close(&p);
	mt_close(&t);
}

static void
test_jitter_hist(void **state)
{
	struct tel_jitter j;
	int i;

	memset(&j, 0, sizeof(j));
	assert_int_equal(tel_jitter_percentile(&j, 99), 0);
	for (i = 0; i < 98; i++)
		tel_jitter_add(&j, 20000 + (i % 2 ? 30 : -30));	/* 30 µs */
	tel_jitter_add(&j, 23000);		/* 3 ms late */
	tel_jitter_add(&j, 100000);		/* 80 ms: beyond the buckets */
	assert_int_equal(j.n, 100);
	assert_int_equal(j.max_us, 80000);
	assert_int_equal(tel_jitter_percentile(&j, 50), 50);
	assert_int_equal(tel_jitter_percentile(&j, 98), 50);
	assert_int_equal(tel_jitter_percentile(&j, 99), 3050);
	assert_int_equal(tel_jitter_percentile(&j, 100), 80000);
}

/* Every paced frame counts; an idle loop keeps well inside 5 ms. */
static void
test_jitter_live(void **state)
{
	struct mt t;
	struct peer p;
	struct tel_stream *st[3];
	const struct tel_jitter *j;
	int i;

	assert_int_equal(mt_open(&t), 0);
	assert_int_equal(peer_open(&p, 0, TEL_PT_PCMU), 0);
	for (i = 0; i < 3; i++) {
		assert_non_null(st[i] = tel_stream_new(t.m, "jitter"));
		assert_int_equal(tel_stream_start(st[i], "127.0.0.1", p.port,
		    TEL_PT_PCMU), 0);
	}
	mt_run(&t, 500);
	j = tel_media_jitter(t.m);
	/* 3 streams x ~25 frames, the first of each has no interval */
	assert_in_range(j->n, 3 * 20, 3 * 26);
	assert_true(tel_jitter_percentile(j, 50) < 5000);
	assert_true(tel_jitter_percentile(j, 50) <=
	    tel_jitter_percentile(j, 99));
	tel_media_jitter_reset(t.m);
	assert_int_equal(tel_media_jitter(t.m)->n, 0);
	for (i = 0; i < 3; i++)
		tel_stream_free(st[i]);
	peer_close(&p);
	mt_close(&t);
}

/* A bridge relays both ways, PCMU <-> PCMA transcoded, keys passed on,
 * each side with its own SSRC; unbridged, each sends its own again. */
static void
test_bridge(void **state)
{
	static struct pkt pk[400];
	int16_t pcm[TEL_FRAME_SAMPLES];
	struct mt t;
	struct peer pa, pb;
	struct tel_stream *a, *b;
	uint32_t ssrc_b = 0;
	int n, i, k, audio = 0, ev = 0;

	assert_int_equal(mt_open(&t), 0);
	assert_non_null(a = tel_stream_new(t.m, "leg-a"));
	assert_non_null(b = tel_stream_new(t.m, "leg-b"));
	assert_int_equal(peer_open(&pa, tel_stream_port(a), TEL_PT_PCMU), 0);
	assert_int_equal(peer_open(&pb, tel_stream_port(b), TEL_PT_PCMA), 0);
	assert_int_equal(tel_stream_bridge(a, b), -1);	/* not started */
	assert_int_equal(tel_stream_start(a, "127.0.0.1", pa.port,
	    TEL_PT_PCMU), 0);
	assert_int_equal(tel_stream_start(b, "127.0.0.1", pb.port,
	    TEL_PT_PCMA), 0);
	tel_stream_set_dtmf_pt(b, 96);
	mt_run(&t, 60);
	n = peer_recv(&pb, pk, 400);
	assert_true(n > 0);
	ssrc_b = pk[0].h.ssrc;
	peer_drain(&pa);

	assert_int_equal(tel_stream_bridge(a, b), 0);
	assert_int_equal(tel_stream_bridge(a, b), -1);
	assert_ptr_equal(tel_stream_bridged(a), b);
	assert_ptr_equal(tel_stream_bridged(b), a);
	mt_run(&t, 60);				/* own audio held */
	assert_int_equal(peer_recv(&pa, pk, 400), 0);
	assert_int_equal(peer_recv(&pb, pk, 400), 0);

	for (k = 0; k < 10; k++) {
		for (i = 0; i < TEL_FRAME_SAMPLES; i++)
			pcm[i] = (int16_t)(k * 1000 + i * 10);
		peer_send_pcm(&pa, pcm);
		peer_send_pcm(&pb, pcm);
		mt_run(&t, 5);
	}
	peer_send_event(&pa, TEL_PT_DTMF, pa.h.ts, 1, 4, 1, 800);
	mt_run(&t, 30);
	n = peer_recv(&pb, pk, 400);
	for (i = 0; i < n; i++) {
		assert_int_equal(pk[i].h.ssrc, ssrc_b);
		if (pk[i].h.pt == 96) {
			assert_int_equal(pk[i].p[0], 4);
			ev++;
			continue;
		}
		assert_int_equal(pk[i].h.pt, TEL_PT_PCMA);
		assert_int_equal(pk[i].len, TEL_FRAME_SAMPLES);
		/* µ-law in, A-law out, sample by sample */
		for (k = 0; k < TEL_FRAME_SAMPLES; k++)
			assert_int_equal(pk[i].p[k], tel_alaw_encode(
			    tel_ulaw_decode(tel_ulaw_encode((int16_t)(
			    audio * 1000 + k * 10)))));
		if (i > 0)
			assert_int_equal((uint16_t)(pk[i].h.seq -
			    pk[i - 1].h.seq), 1);
		audio++;
	}
	assert_int_equal(audio, 10);
	assert_int_equal(ev, 1);
	n = peer_recv(&pa, pk, 400);
	assert_int_equal(n, 10);
	for (i = 0; i < n; i++) {
		assert_int_equal(pk[i].h.pt, TEL_PT_PCMU);
		for (k = 0; k < TEL_FRAME_SAMPLES; k++)
			assert_int_equal(pk[i].p[k], tel_ulaw_encode(
			    tel_alaw_decode(tel_alaw_encode((int16_t)(
			    i * 1000 + k * 10)))));
	}

	tel_stream_unbridge(b);
	assert_null(tel_stream_bridged(a));
	mt_run(&t, 100);
	assert_true(peer_recv(&pa, pk, 400) >= 3);
	assert_true(peer_recv(&pb, pk, 400) >= 3);
	/* a bridge ends when a side is freed */
	assert_int_equal(tel_stream_bridge(a, b), 0);
	tel_stream_free(a);
	assert_null(tel_stream_bridged(b));
	tel_stream_free(b);
	peer_close(&pa);
	peer_close(&pb);
	mt_close(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rtp_pack),
		cmocka_unit_test(test_rtp_parse_bad),
		cmocka_unit_test(test_g711),
		cmocka_unit_test(test_queue),
		cmocka_unit_test(test_queue_stop),
		cmocka_unit_test(test_queue_placeholder),
		cmocka_unit_test(test_play_compat),
		cmocka_unit_test(test_jitter_hist),
		cmocka_unit_test(test_jitter_live),
		cmocka_unit_test(test_bridge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
