/* Recording what the far end of a stream says (<record>): decoded audio
 * appended while capturing, ended by maxtime, final silence, a key or the
 * owner, and handed over as a WAV file in memory.  Time is the pacing
 * tick's, so a peer that stops sending still reaches final silence. */
#include <sys/socket.h>

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "media_int.h"

#define REC_CHUNK	(8000 * 2)	/* samples allocated at first: 2 s */

struct tel_recorder {
	struct tel_record_opts	 o;
	tel_record_done_f	 done;
	void			*arg;
	int			 capturing;
	int			 ended;
	int16_t			*pcm;
	size_t			 n, cap, max;
	int			 ticks;		/* frames since capture began */
	int			 last_loud;	/* ticks at the last loud packet */
	int			 heard;
	enum tel_record_end	 why;
	char			 termchar;
};

void
tel_rec_free(struct tel_recorder *r)
{
	if (r == NULL)
		return;
	free(r->pcm);
	free(r);
}

void
tel_recording_free(struct tel_recording *rec)
{
	if (rec == NULL)
		return;
	free(rec->wav);
	free(rec);
}

int
tel_stream_record(struct tel_stream *st, const struct tel_record_opts *o,
    tel_record_done_f done, void *arg)
{
	struct tel_recorder *r;

	if (!st->sending || st->rec != NULL || done == NULL)
		return -1;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -1;
	r->o = *o;
	if (r->o.maxtime_ms <= 0 || r->o.maxtime_ms > TEL_REC_MAX_MS)
		r->o.maxtime_ms = TEL_REC_MAX_MS;
	if (r->o.finalsilence_ms < 0)
		r->o.finalsilence_ms = 0;
	if (r->o.silence_level <= 0)
		r->o.silence_level = TEL_REC_SILENCE_LEVEL;
	r->max = (size_t)r->o.maxtime_ms * (TEL_FRAME_SAMPLES / TEL_FRAME_MS);
	r->done = done;
	r->arg = arg;
	st->rec = r;
	if (r->o.beep) {
		if (tel_stream_queue_beep(st) == -1) {
			st->rec = NULL;
			tel_rec_free(r);
			return -1;
		}
	} else
		tel_rec_start_capture(st);
	return 0;
}

void
tel_rec_start_capture(struct tel_stream *st)
{
	struct tel_recorder *r = st->rec;

	if (r == NULL || r->capturing || r->ended)
		return;
	r->capturing = 1;
	r->ticks = r->last_loud = 0;
}

static void
rec_end(struct tel_stream *st, enum tel_record_end why, char key)
{
	struct tel_recorder *r = st->rec;

	r->ended = 1;
	r->capturing = 0;
	r->why = why;
	r->termchar = key;
	st->pending |= TEL_PEND_REC;
}

void
tel_rec_audio(struct tel_stream *st, const int16_t *pcm, size_t n)
{
	struct tel_recorder *r = st->rec;
	size_t cap, i;
	uint64_t sum = 0;
	int16_t *p;

	if (!r->capturing || n == 0)
		return;
	for (i = 0; i < n; i++)
		sum += (uint64_t)abs(pcm[i]);
	if (sum / n >= (uint64_t)r->o.silence_level) {
		r->heard = 1;
		r->last_loud = r->ticks;
	}
	if (n > r->max - r->n)
		n = r->max - r->n;
	if (r->n + n > r->cap) {
		cap = r->cap ? r->cap * 2 : REC_CHUNK;
		while (cap < r->n + n)
			cap *= 2;
		if (cap > r->max)
			cap = r->max;
		if ((p = realloc(r->pcm, cap * sizeof(*p))) == NULL) {
			log_warnx("call %s: recording: out of memory", st->id);
			return;
		}
		r->pcm = p;
		r->cap = cap;
	}
	memcpy(r->pcm + r->n, pcm, n * sizeof(*pcm));
	r->n += n;
}

void
tel_rec_tick(struct tel_stream *st, int n)
{
	struct tel_recorder *r = st->rec;

	if (!r->capturing)
		return;
	r->ticks += n;
	if ((int64_t)r->ticks * TEL_FRAME_MS >= r->o.maxtime_ms)
		rec_end(st, TEL_REC_MAXTIME, '\0');
	else if (r->o.finalsilence_ms > 0 && (int64_t)(r->ticks -
	    r->last_loud) * TEL_FRAME_MS >= r->o.finalsilence_ms)
		rec_end(st, TEL_REC_SILENCE, '\0');
}

int
tel_rec_dtmf(struct tel_stream *st, char digit)
{
	struct tel_recorder *r = st->rec;

	if (!r->o.dtmfterm || r->ended)
		return 0;
	rec_end(st, TEL_REC_DTMF, digit);
	return 1;
}

static struct tel_recording *
rec_result(struct tel_stream *st, struct tel_recorder *r)
{
	struct tel_recording *rec;

	if ((rec = calloc(1, sizeof(*rec))) == NULL ||
	    (rec->wav = tel_wav_encode(r->pcm, r->n, r->o.ulaw,
	    &rec->len)) == NULL) {
		log_warnx("call %s: recording: out of memory", st->id);
		free(rec);
		return NULL;
	}
	rec->type = "audio/x-wav";
	rec->duration_ms = (int)(r->n / (TEL_FRAME_SAMPLES / TEL_FRAME_MS));
	rec->heard = r->heard;
	rec->why = r->why;
	rec->termchar = r->termchar;
	log_debug("call %s: recorded %d ms (%s)", st->id, rec->duration_ms,
	    r->why == TEL_REC_MAXTIME ? "maxtime" : r->why == TEL_REC_SILENCE ?
	    "final silence" : r->why == TEL_REC_DTMF ? "key" : "stopped");
	return rec;
}

void
tel_rec_deliver(struct tel_stream *st)
{
	struct tel_recorder *r = st->rec;
	struct tel_recording *rec;
	tel_record_done_f done;
	void *arg;

	if (r == NULL || !r->ended)
		return;
	st->rec = NULL;
	rec = rec_result(st, r);
	done = r->done;
	arg = r->arg;
	tel_rec_free(r);
	done(arg, rec);
}

struct tel_recording *
tel_stream_record_stop(struct tel_stream *st)
{
	struct tel_recorder *r = st->rec;
	struct tel_recording *rec;

	if (r == NULL)
		return NULL;
	if (!r->ended) {
		r->why = TEL_REC_STOPPED;
		r->termchar = '\0';
	}
	st->rec = NULL;
	st->pending &= ~TEL_PEND_REC;
	rec = rec_result(st, r);
	tel_rec_free(r);
	return rec;
}
