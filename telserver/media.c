/* The media layer: G.711, RTP packets, and RTP streams paced by one 20 ms
 * CLOCK_MONOTONIC timerfd serving every sending stream, each with a prompt
 * queue; the receive path, bridging and the send-interval jitter.  Knows
 * nothing of SIP: a call gives a stream a remote address and prompts to
 * play.  Keys are in dtmf.c, recordings in record.c. */
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "media_int.h"

#define MAX_CATCHUP	50	/* frames per stream per wakeup, at most */

#define BEEP_MS		250	/* before a recording */
#define BEEP_HZ		1000
#define RX_MAX		1500	/* largest RTP packet we take */

/* Encoding tables, filled once by tel_media_new (the tick encodes 160
 * samples per stream per frame: a lookup instead of a segment search).
 * µ-law is indexed by pcm / 4 + 8192, A-law by (pcm >> 3) + 4096, as the
 * encoders quantise. */
static uint8_t	ulaw_tab[16384], alaw_tab[8192];
static uint8_t	ulaw_to_alaw[256], alaw_to_ulaw[256];
static int16_t	ulaw_dec[256], alaw_dec[256];
static int	tabs_ready;

/* ---- G.711 (ITU-T G.711, as in the classic Sun reference code) ---- */

static int
seg_search(int val, const int *table, int size)
{
	int i;

	for (i = 0; i < size; i++)
		if (val <= table[i])
			return i;
	return size;
}

static const int seg_uend[8] = { 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF,
	0xFFF, 0x1FFF };
static const int seg_aend[8] = { 0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF,
	0x7FF, 0xFFF };

uint8_t
tel_ulaw_encode(int16_t pcm)
{
	int v = pcm / 4, mask, seg;	/* 14 bits */

	if (v < 0) {
		v = -v;
		mask = 0x7F;
	} else
		mask = 0xFF;
	if (v > 8159)
		v = 8159;
	v += 0x84 >> 2;
	seg = seg_search(v, seg_uend, 8);
	if (seg >= 8)
		return (uint8_t)(0x7F ^ mask);
	return (uint8_t)(((seg << 4) | ((v >> (seg + 1)) & 0xF)) ^ mask);
}

int16_t
tel_ulaw_decode(uint8_t u)
{
	int t;

	u = ~u;
	t = ((u & 0x0F) << 3) + 0x84;
	t <<= (u & 0x70) >> 4;
	return (int16_t)((u & 0x80) ? (0x84 - t) : (t - 0x84));
}

uint8_t
tel_alaw_encode(int16_t pcm)
{
	int v = pcm >> 3, mask, seg, aval;	/* 13 bits */

	if (v >= 0)
		mask = 0xD5;
	else {
		mask = 0x55;
		v = -v - 1;
	}
	seg = seg_search(v, seg_aend, 8);
	if (seg >= 8)
		return (uint8_t)(0x7F ^ mask);
	aval = seg << 4;
	aval |= seg < 2 ? (v >> 1) & 0xF : (v >> seg) & 0xF;
	return (uint8_t)(aval ^ mask);
}

int16_t
tel_alaw_decode(uint8_t a)
{
	int t, seg;

	a ^= 0x55;
	t = (a & 0x0F) << 4;
	seg = (a & 0x70) >> 4;
	if (seg == 0)
		t += 8;
	else {
		t += 0x108;
		t <<= seg - 1;
	}
	return (int16_t)((a & 0x80) ? t : -t);
}

/* ---- RTP header (RFC 3550) ---- */

void
tel_rtp_pack(uint8_t *b, const struct tel_rtp_hdr *h)
{
	b[0] = 0x80;
	b[1] = (uint8_t)((h->marker ? 0x80 : 0) | (h->pt & 0x7F));
	b[2] = h->seq >> 8;
	b[3] = h->seq & 0xFF;
	b[4] = h->ts >> 24;
	b[5] = (h->ts >> 16) & 0xFF;
	b[6] = (h->ts >> 8) & 0xFF;
	b[7] = h->ts & 0xFF;
	b[8] = h->ssrc >> 24;
	b[9] = (h->ssrc >> 16) & 0xFF;
	b[10] = (h->ssrc >> 8) & 0xFF;
	b[11] = h->ssrc & 0xFF;
}

int
tel_rtp_parse(const uint8_t *b, size_t len, struct tel_rtp_hdr *h)
{
	size_t off;

	if (len < TEL_RTP_HDR || (b[0] >> 6) != 2)
		return -1;
	h->marker = b[1] >> 7;
	h->pt = b[1] & 0x7F;
	h->seq = (uint16_t)(b[2] << 8 | b[3]);
	h->ts = (uint32_t)b[4] << 24 | (uint32_t)b[5] << 16 |
	    (uint32_t)b[6] << 8 | b[7];
	h->ssrc = (uint32_t)b[8] << 24 | (uint32_t)b[9] << 16 |
	    (uint32_t)b[10] << 8 | b[11];
	off = TEL_RTP_HDR + 4 * (size_t)(b[0] & 0x0F);
	if (b[0] & 0x10) {		/* header extension */
		if (len < off + 4)
			return -1;
		off += 4 + 4 * (size_t)(b[off + 2] << 8 | b[off + 3]);
	}
	if (off > len)
		return -1;
	return (int)off;
}

static void
tables_init(void)
{
	int i;

	if (tabs_ready)
		return;
	for (i = 0; i < 16384; i++)
		ulaw_tab[i] = tel_ulaw_encode((int16_t)((i - 8192) * 4));
	for (i = 0; i < 8192; i++)
		alaw_tab[i] = tel_alaw_encode((int16_t)((i - 4096) * 8));
	for (i = 0; i < 256; i++) {
		ulaw_dec[i] = tel_ulaw_decode((uint8_t)i);
		alaw_dec[i] = tel_alaw_decode((uint8_t)i);
		ulaw_to_alaw[i] = tel_alaw_encode(ulaw_dec[i]);
		alaw_to_ulaw[i] = tel_ulaw_encode(alaw_dec[i]);
	}
	tabs_ready = 1;
}

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- send-interval jitter ---- */

void
tel_jitter_add(struct tel_jitter *j, uint64_t interval_us)
{
	uint64_t dev, b;

	dev = interval_us > TEL_FRAME_MS * 1000 ?
	    interval_us - TEL_FRAME_MS * 1000 :
	    TEL_FRAME_MS * 1000 - interval_us;
	b = dev / TEL_JITTER_BUCKET_US;
	if (b > TEL_JITTER_BUCKETS)
		b = TEL_JITTER_BUCKETS;
	j->bucket[b]++;
	j->n++;
	j->sum_us += dev;
	if (dev > j->max_us)
		j->max_us = dev;
}

uint64_t
tel_jitter_percentile(const struct tel_jitter *j, double pct)
{
	uint64_t want, seen = 0;
	size_t b;

	if (j->n == 0)
		return 0;
	want = (uint64_t)(pct / 100.0 * (double)j->n + 0.5);
	if (want < 1)
		want = 1;
	if (want > j->n)
		want = j->n;
	for (b = 0; b <= TEL_JITTER_BUCKETS; b++) {
		seen += j->bucket[b];
		if (seen >= want)
			break;
	}
	if (b >= TEL_JITTER_BUCKETS)
		return j->max_us;
	return (b + 1) * TEL_JITTER_BUCKET_US;
}

const struct tel_jitter *
tel_media_jitter(const struct tel_media *m)
{
	return &m->jitter;
}

void
tel_media_jitter_reset(struct tel_media *m)
{
	struct tel_stream *st;

	memset(&m->jitter, 0, sizeof(m->jitter));
	for (st = m->sending; st != NULL; st = st->next)
		st->last_tx_ns = 0;
}

/* ---- pacing ---- */

static void
media_arm(struct tel_media *m, int on)
{
	struct itimerspec its;

	if (on == m->armed)
		return;
	memset(&its, 0, sizeof(its));
	if (on) {
		its.it_value.tv_nsec = TEL_FRAME_MS * 1000000L;
		its.it_interval.tv_nsec = TEL_FRAME_MS * 1000000L;
	}
	if (timerfd_settime(m->tfd, 0, &its, NULL) == -1)
		log_warn("media: timerfd_settime");
	m->armed = on;
}

void
tel_stream_send_pkt(struct tel_stream *st, const struct tel_rtp_hdr *h,
    const uint8_t *p, size_t len)
{
	uint8_t pkt[TEL_RTP_HDR + RX_MAX];

	if (len > RX_MAX)
		return;
	tel_rtp_pack(pkt, h);
	memcpy(pkt + TEL_RTP_HDR, p, len);
	if (sendto(st->fd, pkt, TEL_RTP_HDR + len, 0,
	    (struct sockaddr *)&st->remote, sizeof(st->remote)) == -1) {
		/* ICMP errors from the far end come back here: harmless. */
		if (errno != EAGAIN && errno != ECONNREFUSED)
			log_debug("call %s: rtp send: %s", st->id,
			    strerror(errno));
	} else
		st->tx++;
}

static void
qitem_free(struct tel_qitem *q)
{
	tel_speech_unref(q->sp);
	free(q);
}

/* Drops the head item once played. */
static void
queue_pop(struct tel_stream *st)
{
	struct tel_qitem *q = st->q_head;
	int rec_start = q->rec_start;

	if ((st->q_head = q->next) == NULL)
		st->q_tail = NULL;
	st->q_len--;
	st->q_pos = 0;
	qitem_free(q);
	if (rec_start)
		tel_rec_start_capture(st);
}

/* Fills pcm with up to one frame of the playing queue, items back to back.
 * A speech still in synthesis holds the queue.  Returns the samples
 * filled; the rest of the frame is the caller's silence. */
static size_t
queue_fill(struct tel_stream *st, int16_t *pcm)
{
	struct tel_qitem *q;
	size_t n = 0, take, len;

	while (n < TEL_FRAME_SAMPLES && (q = st->q_head) != NULL) {
		if (q->sp != NULL) {
			if (!q->sp->ready)
				break;
			len = q->sp->nsamples;
		} else
			len = q->pause;
		take = len - st->q_pos;
		if (take > TEL_FRAME_SAMPLES - n)
			take = TEL_FRAME_SAMPLES - n;
		if (q->sp != NULL)
			memcpy(pcm + n, q->sp->samples + st->q_pos,
			    take * sizeof(pcm[0]));
		else
			memset(pcm + n, 0, take * sizeof(pcm[0]));
		n += take;
		st->q_pos += take;
		if (st->q_pos >= len)
			queue_pop(st);
	}
	if (st->q_head == NULL) {
		st->q_playing = 0;
		st->pending |= TEL_PEND_DONE;
	}
	return n;
}

/* Sends one 20 ms frame of st: a key being sent, the prompt queue, or
 * silence; nothing of its own while bridged (the peer's audio is relayed
 * with our clock). */
static void
stream_send_frame(struct tel_stream *st)
{
	uint8_t pay[TEL_FRAME_SAMPLES];
	int16_t pcm[TEL_FRAME_SAMPLES];
	size_t i, n = 0;
	uint64_t now;
	int r = 0;

	if (st->peer != NULL) {
		st->hdr.ts += TEL_FRAME_SAMPLES;
		return;
	}
	if (st->out_len > 0)
		r = tel_dtmf_out_frame(st, pcm);
	if (r == 0 && st->q_playing)
		n = queue_fill(st, pcm);
	if (r == 2)
		n = TEL_FRAME_SAMPLES;
	if (r != 1) {
		if (n == 0)
			memset(pay, st->hdr.pt == TEL_PT_PCMA ? 0xD5 : 0xFF,
			    sizeof(pay));
		else {
			memset(pcm + n, 0, (TEL_FRAME_SAMPLES - n) *
			    sizeof(pcm[0]));
			if (st->hdr.pt == TEL_PT_PCMA)
				for (i = 0; i < TEL_FRAME_SAMPLES; i++)
					pay[i] = alaw_tab[(pcm[i] >> 3) +
					    4096];
			else
				for (i = 0; i < TEL_FRAME_SAMPLES; i++)
					pay[i] = ulaw_tab[pcm[i] / 4 + 8192];
		}
		st->hdr.marker = st->first;
		st->first = 0;
		tel_stream_send_pkt(st, &st->hdr, pay, sizeof(pay));
		st->hdr.seq++;
	}
	st->hdr.ts += TEL_FRAME_SAMPLES;

	now = mono_ns();
	if (st->last_tx_ns != 0)
		tel_jitter_add(&st->m->jitter, (now - st->last_tx_ns) / 1000);
	st->last_tx_ns = now;
}

static int
media_tick(struct tel_ctx *ctx, su_wait_t *w, void *arg)
{
	struct tel_media *m = arg;
	struct tel_stream *st;
	tel_stream_done_f done;
	uint64_t n = 0, i;
	int what;

	if (read(m->tfd, &n, sizeof(n)) != sizeof(n))
		return 0;
	if (n > MAX_CATCHUP)
		n = MAX_CATCHUP;
	for (st = m->sending; st != NULL; st = st->next) {
		for (i = 0; i < n; i++)
			stream_send_frame(st);
		if (st->rec != NULL)
			tel_rec_tick(st, (int)n);
	}
	/* Callbacks may free streams: restart the walk after each. */
	for (;;) {
		for (st = m->sending; st != NULL; st = st->next)
			if (st->pending)
				break;
		if (st == NULL)
			break;
		if (st->pending & TEL_PEND_REC) {
			st->pending &= ~TEL_PEND_REC;
			tel_rec_deliver(st);
			continue;
		}
		what = st->pending;
		st->pending = 0;
		if ((what & TEL_PEND_DONE) && st->done) {
			done = st->done;
			st->done = NULL;	/* once */
			done(st->done_arg);
		}
	}
	return 0;
}

struct tel_media *
tel_media_new(struct tel_ctx *ctx, const char *ip, int port_min,
    int port_max)
{
	struct tel_media *m;
	su_wait_t w;

	tables_init();
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	m->ctx = ctx;
	m->tfd = -1;
	snprintf(m->ip, sizeof(m->ip), "%s", ip);
	if (inet_pton(AF_INET, ip, &m->addr) != 1) {
		log_warnx("media: media_ip %s is not an IPv4 address", ip);
		goto fail;
	}
	m->port_min = port_min + (port_min & 1);
	m->port_max = port_max;
	if (m->port_min >= m->port_max) {
		log_warnx("media: empty RTP port range %d-%d", port_min,
		    port_max);
		goto fail;
	}
	m->next_port = m->port_min;
	if ((m->tfd = timerfd_create(CLOCK_MONOTONIC,
	    TFD_NONBLOCK | TFD_CLOEXEC)) == -1) {
		log_warn("media: timerfd_create");
		goto fail;
	}
	if (su_wait_create(&w, m->tfd, SU_WAIT_IN) == -1 ||
	    (m->treg = su_root_register(ctx->root, &w, media_tick, m, 0)) < 0) {
		log_warnx("media: cannot register the pacing timer");
		goto fail;
	}
	return m;
fail:
	if (m->tfd != -1)
		close(m->tfd);
	free(m);
	return NULL;
}

void
tel_media_free(struct tel_media *m)
{
	if (m == NULL)
		return;
	while (m->sending)
		tel_stream_free(m->sending);
	su_root_deregister(m->ctx->root, m->treg);
	close(m->tfd);
	tel_speech_unref(m->beep);
	free(m);
}

struct tel_speech *
tel_media_beep(struct tel_media *m)
{
	int16_t pcm[BEEP_MS * 8];
	size_t i, n = BEEP_MS * 8;
	double env;

	if (m->beep == NULL) {
		for (i = 0; i < n; i++) {
			/* 10 ms ramps: no clicks */
			env = i < 80 ? i / 80.0 : n - i < 80 ? (n - i) / 80.0 :
			    1.0;
			pcm[i] = (int16_t)(8000.0 * env *
			    sin(2.0 * M_PI * BEEP_HZ * (double)i / 8000.0));
		}
		if ((m->beep = tel_speech_new_pcm(pcm, n)) == NULL)
			return NULL;
	}
	return tel_speech_ref(m->beep);
}

/* ---- receiving ---- */

/* Sends what a bridged peer received on to st's far end, on st's clock. */
static void
relay(struct tel_stream *st, const struct tel_rtp_hdr *in, int event,
    const uint8_t *p, size_t len)
{
	uint8_t buf[RX_MAX];
	struct tel_rtp_hdr h;
	const uint8_t *map = NULL;
	size_t i;

	if (!st->sending)
		return;
	h = st->hdr;
	if (!st->relay_synced || st->relay_ssrc != in->ssrc) {
		st->relay_synced = 1;
		st->relay_ssrc = in->ssrc;
		st->relay_off = st->hdr.ts - in->ts;
		h.marker = 1;
	} else
		h.marker = in->marker;
	h.ts = in->ts + st->relay_off;
	if (event) {
		if (st->tx_dtmf_pt < 0)
			return;
		h.pt = st->tx_dtmf_pt;
	} else if (in->pt != st->hdr.pt)
		map = in->pt == TEL_PT_PCMU ? ulaw_to_alaw : alaw_to_ulaw;
	if (map != NULL) {
		for (i = 0; i < len; i++)
			buf[i] = map[p[i]];
		p = buf;
	}
	tel_stream_send_pkt(st, &h, p, len);
	st->hdr.seq++;
}

static void
stream_rx(struct tel_stream *st, const uint8_t *buf, size_t n)
{
	int16_t pcm[RX_MAX];
	struct tel_rtp_hdr h;
	const int16_t *dec;
	const uint8_t *p;
	size_t len, i;
	int off, want_pcm;

	if ((off = tel_rtp_parse(buf, n, &h)) < 0)
		return;
	st->rx++;
	/* Nobody listens: counting is all. */
	if (st->dtmf_cb == NULL && st->rec == NULL && st->peer == NULL)
		return;
	p = buf + off;
	len = n - (size_t)off;
	if (buf[0] & 0x20) {		/* padding: its length is last */
		if (len == 0 || buf[n - 1] > len)
			return;
		len -= buf[n - 1];
	}
	if (h.pt == TEL_PT_DTMF || (st->rx_dtmf_pt >= 0 &&
	    h.pt == st->rx_dtmf_pt)) {
		if (st->peer != NULL)
			relay(st->peer, &h, 1, p, len);
		tel_dtmf_rx_event(st, &h, p, len);
		return;
	}
	if (h.pt != TEL_PT_PCMU && h.pt != TEL_PT_PCMA)
		return;
	if (st->peer != NULL)
		relay(st->peer, &h, 0, p, len);
	want_pcm = st->rec != NULL || tel_dtmf_wants_audio(st);
	if (!want_pcm || len == 0)
		return;
	dec = h.pt == TEL_PT_PCMA ? alaw_dec : ulaw_dec;
	for (i = 0; i < len; i++)
		pcm[i] = dec[p[i]];
	if (st->rec != NULL)
		tel_rec_audio(st, pcm, len);
	if (!st->dead)
		tel_dtmf_rx_audio(st, pcm, len);
}

static void
stream_destroy(struct tel_stream *st)
{
	tel_dtmf_stream_free(st);
	free(st);
}

static int
stream_read(struct tel_ctx *ctx, su_wait_t *w, void *arg)
{
	struct tel_stream *st = arg;
	uint8_t buf[2048];
	ssize_t n;

	/* A key callback may free st: it is only marked dead until here. */
	st->busy++;
	while (!st->dead && (n = recv(st->fd, buf, sizeof(buf), 0)) >= 0)
		stream_rx(st, buf, (size_t)n);
	if (--st->busy == 0 && st->dead)
		stream_destroy(st);
	return 0;
}

struct tel_stream *
tel_stream_new(struct tel_media *m, const char *id)
{
	struct tel_stream *st;
	struct sockaddr_in sin;
	int i, nports, port;
	su_wait_t w;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	st->m = m;
	st->id = id;
	st->reg = -1;
	st->rx_dtmf_pt = -1;
	st->tx_dtmf_pt = TEL_PT_DTMF;
	if ((st->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		log_warn("call %s: rtp socket", id);
		free(st);
		return NULL;
	}
	/* Try every even port once, starting after the last one taken. */
	nports = (m->port_max - m->port_min) / 2 + 1;
	for (i = 0; i < nports; i++) {
		port = m->next_port;
		m->next_port += 2;
		if (m->next_port > m->port_max)
			m->next_port = m->port_min;
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr = m->addr;
		sin.sin_port = htons((uint16_t)port);
		if (bind(st->fd, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
			st->port = port;
			break;
		}
	}
	if (st->port == 0) {
		log_warnx("call %s: no free RTP port in %d-%d", id,
		    m->port_min, m->port_max);
		goto fail;
	}
	if (su_wait_create(&w, st->fd, SU_WAIT_IN) == -1 ||
	    (st->reg = su_root_register(m->ctx->root, &w, stream_read, st,
	    0)) < 0) {
		log_warnx("call %s: cannot register the RTP socket", id);
		goto fail;
	}
	if (getrandom(&st->hdr.ssrc, sizeof(st->hdr.ssrc), 0) == -1 ||
	    getrandom(&st->hdr.seq, sizeof(st->hdr.seq), 0) == -1 ||
	    getrandom(&st->hdr.ts, sizeof(st->hdr.ts), 0) == -1)
		st->hdr.ssrc = (uint32_t)random();
	st->first = 1;
	return st;
fail:
	close(st->fd);
	free(st);
	return NULL;
}

static void
queue_clear(struct tel_stream *st)
{
	struct tel_qitem *q, *next;

	for (q = st->q_head; q != NULL; q = next) {
		next = q->next;
		qitem_free(q);
	}
	st->q_head = st->q_tail = NULL;
	st->q_len = 0;
	st->q_pos = 0;
	st->q_playing = 0;
	st->pending &= ~TEL_PEND_DONE;
}

void
tel_stream_free(struct tel_stream *st)
{
	struct tel_media *m;

	if (st == NULL || st->dead)
		return;
	m = st->m;
	tel_stream_unbridge(st);
	if (st->sending) {
		if (st->prev)
			st->prev->next = st->next;
		else
			m->sending = st->next;
		if (st->next)
			st->next->prev = st->prev;
		st->sending = 0;
		if (m->sending == NULL)
			media_arm(m, 0);
	}
	if (st->reg >= 0)
		su_root_deregister(m->ctx->root, st->reg);
	st->reg = -1;
	close(st->fd);
	st->fd = -1;
	queue_clear(st);
	tel_rec_free(st->rec);
	st->rec = NULL;
	st->dtmf_cb = NULL;
	if (st->busy) {
		st->dead = 1;
		return;
	}
	stream_destroy(st);
}

int
tel_stream_port(const struct tel_stream *st)
{
	return st->port;
}

int
tel_stream_start(struct tel_stream *st, const char *addr, int port, int pt)
{
	struct tel_media *m = st->m;

	memset(&st->remote, 0, sizeof(st->remote));
	st->remote.sin_family = AF_INET;
	st->remote.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &st->remote.sin_addr) != 1 ||
	    port <= 0 || port > 65535)
		return -1;
	st->hdr.pt = pt;
	if (!st->sending) {
		st->sending = 1;
		st->last_tx_ns = 0;
		st->prev = NULL;
		st->next = m->sending;
		if (m->sending)
			m->sending->prev = st;
		m->sending = st;
		media_arm(m, 1);
	}
	return 0;
}

/* ---- the prompt queue ---- */

static int
queue_add(struct tel_stream *st, struct tel_speech *sp, size_t pause,
    int bargein, int rec_start)
{
	struct tel_qitem *q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return -1;
	q->sp = sp ? tel_speech_ref(sp) : NULL;
	q->pause = pause;
	q->bargein = bargein != 0;
	q->rec_start = rec_start;
	if (st->q_tail)
		st->q_tail->next = q;
	else
		st->q_head = q;
	st->q_tail = q;
	st->q_len++;
	return 0;
}

int
tel_stream_queue_speech(struct tel_stream *st, struct tel_speech *sp,
    int bargein)
{
	if (sp == NULL)
		return -1;
	return queue_add(st, sp, 0, bargein, 0);
}

int
tel_stream_queue_pause(struct tel_stream *st, int ms, int bargein)
{
	if (ms < 0)
		ms = 0;
	return queue_add(st, NULL, (size_t)ms * (TEL_FRAME_SAMPLES /
	    TEL_FRAME_MS), bargein, 0);
}

int
tel_stream_queue_beep(struct tel_stream *st)
{
	struct tel_speech *sp;
	int rc;

	if ((sp = tel_media_beep(st->m)) == NULL)
		return -1;
	rc = queue_add(st, sp, 0, 0, 1);
	tel_speech_unref(sp);
	/* An idle queue plays for the beep alone: nobody to tell. */
	if (rc == 0 && !st->q_playing) {
		st->q_playing = 1;
		st->done = NULL;
	}
	return rc;
}

void
tel_stream_queue_play(struct tel_stream *st, tel_stream_done_f done,
    void *arg)
{
	st->done = done;
	st->done_arg = arg;
	st->q_playing = 1;
	st->pending &= ~TEL_PEND_DONE;
}

void
tel_stream_queue_stop(struct tel_stream *st)
{
	int rec_wait = 0;
	struct tel_qitem *q;

	for (q = st->q_head; q != NULL; q = q->next)
		rec_wait |= q->rec_start;
	queue_clear(st);
	st->done = NULL;
	st->done_arg = NULL;
	/* A recording's beep dropped by barge-in: capture anyway. */
	if (rec_wait)
		tel_rec_start_capture(st);
}

int
tel_stream_queue_replace(struct tel_stream *st, struct tel_speech *old,
    struct tel_speech *new)
{
	struct tel_qitem *q, **qp, *prev = NULL;
	int n = 0;

	for (qp = &st->q_head; (q = *qp) != NULL; ) {
		if (q->sp != old || (q == st->q_head && st->q_pos > 0)) {
			prev = q;
			qp = &q->next;
			continue;
		}
		n++;
		tel_speech_unref(q->sp);
		if (new != NULL) {
			q->sp = tel_speech_ref(new);
			prev = q;
			qp = &q->next;
			continue;
		}
		*qp = q->next;
		if (st->q_tail == q)
			st->q_tail = prev;
		st->q_len--;
		q->sp = NULL;
		qitem_free(q);
	}
	/* A playing queue left empty ends on the next tick (done). */
	return n;
}

int
tel_stream_queue_len(const struct tel_stream *st)
{
	return st->q_len;
}

int
tel_stream_queue_playing(const struct tel_stream *st)
{
	return st->q_playing;
}

int
tel_stream_queue_bargein(const struct tel_stream *st)
{
	return st->q_head ? st->q_head->bargein : -1;
}

void
tel_stream_play(struct tel_stream *st, struct tel_speech *sp,
    tel_stream_done_f done, void *arg)
{
	queue_clear(st);
	/* Memory failing, the prompt is skipped: done still comes. */
	if (sp != NULL)
		(void)queue_add(st, sp, 0, 0, 0);
	(void)queue_add(st, NULL, TEL_TAIL_FRAMES * TEL_FRAME_SAMPLES, 0, 0);
	tel_stream_queue_play(st, done, arg);
}

uint64_t
tel_stream_rx_packets(const struct tel_stream *st)
{
	return st->rx;
}

uint64_t
tel_stream_tx_packets(const struct tel_stream *st)
{
	return st->tx;
}

/* ---- bridging ---- */

int
tel_stream_bridge(struct tel_stream *a, struct tel_stream *b)
{
	if (a == b || !a->sending || !b->sending || a->peer != NULL ||
	    b->peer != NULL)
		return -1;
	a->peer = b;
	b->peer = a;
	a->relay_synced = b->relay_synced = 0;
	return 0;
}

void
tel_stream_unbridge(struct tel_stream *st)
{
	struct tel_stream *p = st->peer;

	if (p == NULL)
		return;
	st->peer = p->peer = NULL;
	/* Our own audio again: a new talkspurt, a fresh interval. */
	st->first = p->first = 1;
	st->last_tx_ns = p->last_tx_ns = 0;
}

struct tel_stream *
tel_stream_bridged(const struct tel_stream *st)
{
	return st->peer;
}
