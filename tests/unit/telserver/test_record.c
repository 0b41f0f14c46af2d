/* record.c: a peer on a real UDP socket talks to a stream that records;
 * the recording ends on final silence, maxtime, a key or the owner, and
 * holds what the peer said as a WAV file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <math.h>
#include <cmocka.h>

#include "media_peer.h"

struct got {
	struct tel_recording *rec;
	int		 done;
	uint64_t	 at_ms;
	char		 keys[16];
	int		 nkeys;
	struct tel_stream *free_me;
};

static void
on_rec(void *arg, struct tel_recording *rec)
{
	struct got *g = arg;

	g->rec = rec;
	g->done++;
	g->at_ms = rq_mono_ms();
	if (g->free_me != NULL)
		tel_stream_free(g->free_me);
}

static void
on_played(void *arg)
{
	(*(int *)arg)++;
}

static void
on_key(void *arg, char digit)
{
	struct got *g = arg;

	if (g->nkeys < 15)
		g->keys[g->nkeys++] = digit;
}

/* 20 ms of a 440 Hz tone at amplitude amp, continuing phase *ph. */
static void
tone(int16_t *pcm, int amp, int *ph)
{
	int i;

	for (i = 0; i < TEL_FRAME_SAMPLES; i++, (*ph)++)
		pcm[i] = (int16_t)(amp * sin(2 * M_PI * 440 * *ph / 8000.0));
}

/* Sends frames of tone (amp 0: silence), one every 20 ms of loop time. */
static void
talk(struct mt *t, struct peer *p, int frames, int amp, const int *stop)
{
	int16_t pcm[TEL_FRAME_SAMPLES];
	static int ph;
	int i;

	for (i = 0; i < frames && !(stop && *stop); i++) {
		tone(pcm, amp, &ph);
		peer_send_pcm(p, pcm);
		mt_run(t, TEL_FRAME_MS);
	}
}

struct fix {
	struct mt	t;
	struct peer	p;
	struct tel_stream *st;
};

static void
fix_open(struct fix *f, int pt)
{
	assert_int_equal(mt_open(&f->t), 0);
	assert_non_null(f->st = tel_stream_new(f->t.m, "rec"));
	assert_int_equal(peer_open(&f->p, tel_stream_port(f->st), pt), 0);
	assert_int_equal(tel_stream_start(f->st, "127.0.0.1", f->p.port,
	    pt), 0);
}

static void
fix_close(struct fix *f)
{
	tel_stream_free(f->st);
	peer_close(&f->p);
	mt_close(&f->t);
}

/* The recording as samples; fails when it does not decode. */
static struct tel_speech *
decoded(const struct tel_recording *rec)
{
	struct tel_speech *sp;
	char err[128];

	sp = tel_audio_decode(rec->wav, rec->len, NULL, err, sizeof(err));
	if (sp == NULL)
		fail_msg("recording does not decode: %s", err);
	assert_int_equal(sp->nsamples, (size_t)rec->duration_ms * 8);
	return sp;
}

static double
mean_abs(const int16_t *s, size_t n)
{
	double sum = 0;
	size_t i;

	for (i = 0; i < n; i++)
		sum += abs(s[i]);
	return n ? sum / (double)n : 0;
}

static void
test_final_silence(void **state)
{
	struct tel_record_opts o = { .maxtime_ms = 5000,
	    .finalsilence_ms = 300 };
	struct tel_speech *sp;
	struct fix f;
	struct got g = { 0 };

	fix_open(&f, TEL_PT_PCMA);
	assert_int_equal(tel_stream_record(f.st, &o, on_rec, &g), 0);
	assert_int_equal(tel_stream_record(f.st, &o, on_rec, &g), -1);
	talk(&f.t, &f.p, 25, 6000, NULL);	/* 500 ms said */
	talk(&f.t, &f.p, 40, 20, &g.done);	/* then line noise */
	assert_true(mt_run_until(&f.t, &g.done, 1000));
	assert_int_equal(g.done, 1);
	assert_non_null(g.rec);
	assert_int_equal(g.rec->why, TEL_REC_SILENCE);
	assert_true(g.rec->heard);
	assert_string_equal(g.rec->type, "audio/x-wav");
	/* 500 ms of voice, then the 300 ms that ended it */
	assert_in_range(g.rec->duration_ms, 700, 900);
	sp = decoded(g.rec);
	assert_true(mean_abs(sp->samples, 3200) > 3000);
	assert_true(mean_abs(sp->samples + 4400, 1600) < 100);
	tel_speech_unref(sp);
	tel_recording_free(g.rec);
	fix_close(&f);
}

static void
test_maxtime(void **state)
{
	struct tel_record_opts o = { .maxtime_ms = 400,
	    .finalsilence_ms = 1000, .ulaw = 1 };
	struct fix f;
	struct got g = { 0 };

	fix_open(&f, TEL_PT_PCMU);
	assert_int_equal(tel_stream_record(f.st, &o, on_rec, &g), 0);
	talk(&f.t, &f.p, 50, 6000, &g.done);
	assert_int_equal(g.done, 1);
	assert_int_equal(g.rec->why, TEL_REC_MAXTIME);
	assert_in_range(g.rec->duration_ms, 200, 420);
	assert_int_equal(g.rec->wav[20], 7);	/* µ-law */
	tel_speech_unref(decoded(g.rec));
	tel_recording_free(g.rec);
	fix_close(&f);
}

/* A key ends it and is the termchar, not a key for the callback; the next
 * key is the callback's again. */
static void
test_dtmf_term(void **state)
{
	struct tel_record_opts o = { .maxtime_ms = 5000, .dtmfterm = 1 };
	struct fix f;
	struct got g = { 0 };
	int i;

	fix_open(&f, TEL_PT_PCMU);
	tel_stream_on_dtmf(f.st, on_key, &g, 1);
	assert_int_equal(tel_stream_record(f.st, &o, on_rec, &g), 0);
	talk(&f.t, &f.p, 10, 6000, NULL);
	for (i = 0; i < 7; i++)
		peer_send_event(&f.p, TEL_PT_DTMF, f.p.h.ts, i == 0, 11,
		    i >= 4, 160 * (i < 4 ? i + 1 : 5));
	f.p.h.ts += 800;
	assert_true(mt_run_until(&f.t, &g.done, 200));
	assert_int_equal(g.rec->why, TEL_REC_DTMF);
	assert_int_equal(g.rec->termchar, '#');
	assert_in_range(g.rec->duration_ms, 160, 260);
	assert_int_equal(g.nkeys, 0);
	peer_send_event(&f.p, TEL_PT_DTMF, f.p.h.ts, 1, 5, 1, 800);
	mt_run(&f.t, 40);
	assert_string_equal(g.keys, "5");
	tel_recording_free(g.rec);

	/* without dtmfterm a key is the callback's and recording goes on */
	memset(&g, 0, sizeof(g));
	o.dtmfterm = 0;
	o.maxtime_ms = 200;
	assert_int_equal(tel_stream_record(f.st, &o, on_rec, &g), 0);
	peer_send_event(&f.p, TEL_PT_DTMF, f.p.h.ts + 2000, 1, 1, 1, 800);
	assert_true(mt_run_until(&f.t, &g.done, 500));
	assert_string_equal(g.keys, "1");
	assert_int_equal(g.rec->why, TEL_REC_MAXTIME);
	tel_recording_free(g.rec);
	fix_close(&f);
}

/* The beep reaches the peer first; capture starts when it has played. */
static void
test_beep(void **state)
{
	static struct pkt pk[100];
	struct tel_record_opts o = { .beep = 1, .finalsilence_ms = 200 };
	struct fix f;
	struct got g = { 0 };
	uint64_t t0;
	int n, i, loud = 0;
	int16_t s[TEL_FRAME_SAMPLES];
	size_t j;

	int played = 0;

	fix_open(&f, TEL_PT_PCMU);
	/* a prompt played out before: its done is not called again */
	tel_stream_play(f.st, NULL, on_played, &played);
	assert_true(mt_run_until(&f.t, &played, 1000));
	peer_drain(&f.p);
	t0 = rq_mono_ms();
	assert_int_equal(tel_stream_record(f.st, &o, on_rec, &g), 0);
	assert_int_equal(tel_stream_queue_len(f.st), 1);
	assert_true(mt_run_until(&f.t, &g.done, 1500));
	/* 250 ms of beep, then 200 ms of silence heard */
	assert_true(g.at_ms - t0 >= 420);
	assert_int_equal(g.rec->why, TEL_REC_SILENCE);
	assert_false(g.rec->heard);
	assert_in_range(g.rec->duration_ms, 0, 0);	/* nothing sent */
	n = peer_recv(&f.p, pk, 100);
	for (i = 0; i < n; i++) {
		for (j = 0; j < pk[i].len && j < TEL_FRAME_SAMPLES; j++)
			s[j] = tel_ulaw_decode(pk[i].p[j]);
		if (mean_abs(s, TEL_FRAME_SAMPLES) > 2000)
			loud++;
	}
	assert_in_range(loud, 11, 13);
	assert_int_equal(tel_stream_queue_len(f.st), 0);
	assert_int_equal(played, 1);
	tel_recording_free(g.rec);
	fix_close(&f);
}

static void
test_stop_and_free(void **state)
{
	struct tel_record_opts o = { .maxtime_ms = 5000 };
	struct tel_recording *rec;
	struct tel_stream *idle;
	struct fix f;
	struct got g = { 0 };

	fix_open(&f, TEL_PT_PCMU);
	assert_non_null(idle = tel_stream_new(f.t.m, "idle"));
	assert_int_equal(tel_stream_record(idle, &o, on_rec, &g), -1);
	tel_stream_free(idle);
	assert_null(tel_stream_record_stop(f.st));

	assert_int_equal(tel_stream_record(f.st, &o, on_rec, &g), 0);
	talk(&f.t, &f.p, 10, 6000, NULL);
	mt_run(&f.t, 30);
	assert_non_null(rec = tel_stream_record_stop(f.st));
	assert_int_equal(rec->why, TEL_REC_STOPPED);
	assert_in_range(rec->duration_ms, 160, 200);
	assert_true(rec->heard);
	tel_recording_free(rec);
	mt_run(&f.t, 60);
	assert_int_equal(g.done, 0);

	/* the callback may free the stream */
	o.maxtime_ms = 100;
	g.free_me = f.st;
	assert_int_equal(tel_stream_record(f.st, &o, on_rec, &g), 0);
	assert_true(mt_run_until(&f.t, &g.done, 500));
	tel_recording_free(g.rec);
	f.st = NULL;
	fix_close(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_final_silence),
		cmocka_unit_test(test_maxtime),
		cmocka_unit_test(test_dtmf_term),
		cmocka_unit_test(test_beep),
		cmocka_unit_test(test_stop_and_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
