/* Keys on RTP streams: RFC 4733 telephone-events received (each key
 * reported once, whatever the retransmissions), in-band tones found by
 * spandsp in the decoded G.711 for peers that send no events, and keys sent
 * as events (or tones when the peer took none). */
#include <sys/socket.h>

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <spandsp.h>

#include "log.h"
#include "media_int.h"
#include "util.h"

#define EV_VOLUME	10	/* -10 dBm0, as a phone sends */
#define EV_END_COPIES	3	/* RFC 4733 2.5.1.4: the end packet thrice */
#define KEY_GAP_FRAMES	3	/* 60 ms of audio between two keys */
#define KEY_MS_DEFAULT	100

static const char keys[] = "0123456789*#ABCD";

int
tel_dtmf_code(char digit)
{
	const char *p;

	if (digit == '\0' || (p = strchr(keys, digit)) == NULL)
		return -1;
	return (int)(p - keys);
}

char
tel_dtmf_digit(int code)
{
	if (code < 0 || code > 15)
		return '\0';
	return keys[code];
}

/* One key from either source: the dedup rules of tel_stream_on_dtmf(),
 * then the recording (dtmfterm) or the owner's callback. */
static void
dtmf_report(struct tel_stream *st, char digit, int event)
{
	uint64_t now;

	if (st->dead)
		return;
	now = rq_mono_ms();
	if (event) {
		st->events_seen = 1;
		if (st->inband_last == digit &&
		    now - st->inband_ms < TEL_DTMF_DEDUP_MS) {
			st->inband_last = '\0';
			return;
		}
	} else {
		st->inband_last = digit;
		st->inband_ms = now;
	}
	log_debug("call %s: key %c (%s)", st->id, digit,
	    event ? "telephone-event" : "in-band");
	if (st->rec != NULL && tel_rec_dtmf(st, digit))
		return;
	if (st->dtmf_cb != NULL)
		st->dtmf_cb(st->dtmf_arg, digit);
}

/* RFC 4733 2.3: event, E|R|volume, duration.  A key is the first packet
 * of a new timestamp; its updates and the copies of its end packet share
 * that timestamp.  A new timestamp for the same key that has not ended,
 * without the marker, is the next segment of a long key (2.5.1.3). */
void
tel_dtmf_rx_event(struct tel_stream *st, const struct tel_rtp_hdr *h,
    const uint8_t *p, size_t len)
{
	int code, end;
	char digit;

	if (len < 4)
		return;
	code = p[0];
	end = (p[1] & 0x80) != 0;
	/* A new source (the peer's RTP restarted): a new timeline. */
	if (st->ev_valid && h->ssrc != st->ev_ssrc)
		st->ev_valid = 0;
	st->ev_ssrc = h->ssrc;
	if (st->ev_valid && h->ts == st->ev_ts) {
		if (end)
			st->ev_ended = 1;
		return;
	}
	/* A late copy of an older event. */
	if (st->ev_valid && (int32_t)(h->ts - st->ev_ts) < 0)
		return;
	if (st->ev_valid && !st->ev_ended && code == st->ev_code &&
	    !h->marker) {
		st->ev_ts = h->ts;
		st->ev_ended = end;
		return;
	}
	st->ev_valid = 1;
	st->ev_ts = h->ts;
	st->ev_code = code;
	st->ev_ended = end;
	if ((digit = tel_dtmf_digit(code)) != '\0')
		dtmf_report(st, digit, 1);
}

static void
inband_digits(void *arg, const char *digits, int len)
{
	struct tel_stream *st = arg;
	int i;

	for (i = 0; i < len && !st->dead; i++)
		if (tel_dtmf_code(digits[i]) >= 0)
			dtmf_report(st, digits[i], 0);
}

int
tel_dtmf_wants_audio(const struct tel_stream *st)
{
	return st->inband_on && !st->events_seen && (st->dtmf_cb != NULL ||
	    st->rec != NULL);
}

void
tel_dtmf_rx_audio(struct tel_stream *st, const int16_t *pcm, size_t n)
{
	if (!tel_dtmf_wants_audio(st))
		return;
	if (st->inband == NULL && (st->inband = dtmf_rx_init(NULL,
	    inband_digits, st)) == NULL)
		return;
	dtmf_rx(st->inband, pcm, (int)n);
}

void
tel_stream_on_dtmf(struct tel_stream *st, tel_dtmf_f cb, void *arg,
    int inband)
{
	st->dtmf_cb = cb;
	st->dtmf_arg = arg;
	st->inband_on = inband != 0;
	/* The detector's state is only kept while someone listens (and not
	 * freed under its own callback). */
	if (cb == NULL && st->rec == NULL && st->inband != NULL &&
	    !st->busy) {
		dtmf_rx_free(st->inband);
		st->inband = NULL;
	}
}

void
tel_stream_set_dtmf_pt(struct tel_stream *st, int pt)
{
	st->rx_dtmf_pt = pt >= 96 && pt <= 127 ? pt : -1;
	st->tx_dtmf_pt = st->rx_dtmf_pt;
}

int
tel_stream_send_dtmf(struct tel_stream *st, const char *digits, int ms)
{
	size_t n = strlen(digits), i;

	for (i = 0; i < n; i++)
		if (tel_dtmf_code(digits[i]) < 0)
			return -1;
	if (!st->sending)
		return -1;
	/* Keys already out are dropped from the buffer first. */
	if (st->out_pos > 0 && st->out_frame == 0) {
		memmove(st->out, st->out + st->out_pos,
		    (size_t)(st->out_len - st->out_pos));
		st->out_len -= st->out_pos;
		st->out_pos = 0;
	}
	if (n > (size_t)(TEL_DTMF_OUT_MAX - st->out_len))
		return -1;
	if (ms <= 0)
		ms = KEY_MS_DEFAULT;
	if (ms < 2 * TEL_FRAME_MS)
		ms = 2 * TEL_FRAME_MS;
	if (ms > 1000)
		ms = 1000;
	if (st->out_len == 0)
		st->out_frames = ms / TEL_FRAME_MS;
	memcpy(st->out + st->out_len, digits, n);
	st->out_len += (int)n;
	if (st->tx_dtmf_pt < 0) {
		if (st->out_tone == NULL) {
			if ((st->out_tone = dtmf_tx_init(NULL)) == NULL)
				return -1;
			dtmf_tx_set_timing(st->out_tone, ms,
			    KEY_GAP_FRAMES * TEL_FRAME_MS);
		}
		dtmf_tx_put(st->out_tone, digits, (int)n);
	}
	return 0;
}

int
tel_stream_dtmf_sending(const struct tel_stream *st)
{
	return st->out_len - st->out_pos;
}

static void
out_clear(struct tel_stream *st)
{
	st->out_len = st->out_pos = st->out_frame = 0;
}

/* Per frame while keys wait: the event packets of out[out_pos] (frames
 * 0 .. out_frames - 1 with a growing duration, the last with the end bit,
 * then two more copies of it), then KEY_GAP_FRAMES of normal audio. */
int
tel_dtmf_out_frame(struct tel_stream *st, int16_t *pcm)
{
	uint8_t ev[4];
	struct tel_rtp_hdr h;
	int k, dur, got;

	if (st->tx_dtmf_pt < 0 && st->out_tone != NULL) {
		got = dtmf_tx(st->out_tone, pcm, TEL_FRAME_SAMPLES);
		if (got <= 0) {
			out_clear(st);
			return 0;
		}
		if (got < TEL_FRAME_SAMPLES)
			memset(pcm + got, 0, (size_t)(TEL_FRAME_SAMPLES - got) *
			    sizeof(pcm[0]));
		return 2;
	}
	if (st->tx_dtmf_pt < 0) {	/* pt changed under queued keys */
		out_clear(st);
		return 0;
	}
	if (st->out_frame >= st->out_frames + EV_END_COPIES - 1 +
	    KEY_GAP_FRAMES) {
		st->out_frame = 0;
		if (++st->out_pos >= st->out_len) {
			out_clear(st);
			return 0;
		}
	}
	k = st->out_frame++;
	if (k >= st->out_frames + EV_END_COPIES - 1)
		return 0;		/* the gap */
	if (k == 0)
		st->out_ts = st->hdr.ts;
	dur = (k + 1 < st->out_frames ? k + 1 : st->out_frames) *
	    TEL_FRAME_SAMPLES;
	ev[0] = (uint8_t)tel_dtmf_code(st->out[st->out_pos]);
	ev[1] = (uint8_t)((k + 1 >= st->out_frames ? 0x80 : 0) | EV_VOLUME);
	ev[2] = (uint8_t)(dur >> 8);
	ev[3] = (uint8_t)(dur & 0xFF);
	h = st->hdr;
	h.pt = st->tx_dtmf_pt;
	h.ts = st->out_ts;
	h.marker = k == 0;
	tel_stream_send_pkt(st, &h, ev, sizeof(ev));
	st->hdr.seq++;
	return 1;
}

void
tel_dtmf_stream_free(struct tel_stream *st)
{
	if (st->inband != NULL)
		dtmf_rx_free(st->inband);
	if (st->out_tone != NULL)
		dtmf_tx_free(st->out_tone);
	st->inband = NULL;
	st->out_tone = NULL;
}
