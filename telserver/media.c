/* The media layer: G.711, RTP packets, and RTP streams paced by one 20 ms
 * CLOCK_MONOTONIC timerfd serving every sending stream.  Knows nothing of
 * SIP: a call gives a stream a remote address and prompts to play. */
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "telserver.h"

#define MAX_CATCHUP	50	/* frames per stream per wakeup, at most */

struct tel_stream {
	struct tel_stream	*next, *prev;	/* in m->sending */
	struct tel_media	*m;
	const char		*id;
	int			 fd;
	int			 port;
	int			 reg;		/* su_root registration */
	int			 sending;
	struct sockaddr_in	 remote;
	struct tel_rtp_hdr	 hdr;
	int			 first;		/* marker on the next packet */
	struct tel_speech	*sp;
	size_t			 pos;
	int			 playing;
	int			 tail;		/* silent frames still to send */
	int			 done_pending;
	tel_stream_done_f	 done;
	void			*done_arg;
	uint64_t		 rx, tx;
};

struct tel_media {
	struct tel_ctx		*ctx;
	char			 ip[64];
	struct in_addr		 addr;
	int			 port_min, port_max, next_port;
	int			 tfd;
	int			 treg;
	int			 armed;
	struct tel_stream	*sending;
};

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

/* Sends one 20 ms frame of st: speech when there is some, else silence. */
static void
stream_send_frame(struct tel_stream *st)
{
	uint8_t pkt[TEL_RTP_HDR + TEL_FRAME_SAMPLES];
	int16_t pcm[TEL_FRAME_SAMPLES];
	size_t i, n = 0;

	if (st->playing && st->sp != NULL && st->sp->ready &&
	    st->pos < st->sp->nsamples) {
		n = st->sp->nsamples - st->pos;
		if (n > TEL_FRAME_SAMPLES)
			n = TEL_FRAME_SAMPLES;
		memcpy(pcm, st->sp->samples + st->pos, n * sizeof(pcm[0]));
		st->pos += n;
	}
	memset(pcm + n, 0, (TEL_FRAME_SAMPLES - n) * sizeof(pcm[0]));
	for (i = 0; i < TEL_FRAME_SAMPLES; i++)
		pkt[TEL_RTP_HDR + i] = st->hdr.pt == TEL_PT_PCMA ?
		    tel_alaw_encode(pcm[i]) : tel_ulaw_encode(pcm[i]);
	st->hdr.marker = st->first;
	st->first = 0;
	tel_rtp_pack(pkt, &st->hdr);
	st->hdr.seq++;
	st->hdr.ts += TEL_FRAME_SAMPLES;
	if (sendto(st->fd, pkt, sizeof(pkt), 0,
	    (struct sockaddr *)&st->remote, sizeof(st->remote)) == -1) {
		/* ICMP errors from the far end come back here: harmless. */
		if (errno != EAGAIN && errno != ECONNREFUSED)
			log_debug("call %s: rtp send: %s", st->id,
			    strerror(errno));
	} else
		st->tx++;

	/* Once the prompt is out, count down the trailing silence. */
	if (st->playing && (st->sp == NULL ||
	    (st->sp->ready && st->pos >= st->sp->nsamples))) {
		if (st->tail > 0)
			st->tail--;
		if (st->tail == 0) {
			st->playing = 0;
			st->done_pending = 1;
		}
	}
}

static int
media_tick(struct tel_ctx *ctx, su_wait_t *w, void *arg)
{
	struct tel_media *m = arg;
	struct tel_stream *st;
	uint64_t n = 0, i;

	if (read(m->tfd, &n, sizeof(n)) != sizeof(n))
		return 0;
	if (n > MAX_CATCHUP)
		n = MAX_CATCHUP;
	for (st = m->sending; st != NULL; st = st->next)
		for (i = 0; i < n; i++)
			stream_send_frame(st);
	/* Callbacks may free streams: restart the walk after each. */
	for (;;) {
		for (st = m->sending; st != NULL; st = st->next)
			if (st->done_pending)
				break;
		if (st == NULL)
			break;
		st->done_pending = 0;
		if (st->done)
			st->done(st->done_arg);
	}
	return 0;
}

struct tel_media *
tel_media_new(struct tel_ctx *ctx, const char *ip, int port_min,
    int port_max)
{
	struct tel_media *m;
	su_wait_t w;

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
	free(m);
}

static int
stream_read(struct tel_ctx *ctx, su_wait_t *w, void *arg)
{
	struct tel_stream *st = arg;
	struct tel_rtp_hdr h;
	uint8_t buf[2048];
	ssize_t n;

	while ((n = recv(st->fd, buf, sizeof(buf), 0)) >= 0)
		if (tel_rtp_parse(buf, (size_t)n, &h) >= 0)
			st->rx++;
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

void
tel_stream_free(struct tel_stream *st)
{
	struct tel_media *m;

	if (st == NULL)
		return;
	m = st->m;
	if (st->sending) {
		if (st->prev)
			st->prev->next = st->next;
		else
			m->sending = st->next;
		if (st->next)
			st->next->prev = st->prev;
		if (m->sending == NULL)
			media_arm(m, 0);
	}
	if (st->reg >= 0)
		su_root_deregister(m->ctx->root, st->reg);
	close(st->fd);
	tel_speech_unref(st->sp);
	free(st);
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
		st->prev = NULL;
		st->next = m->sending;
		if (m->sending)
			m->sending->prev = st;
		m->sending = st;
		media_arm(m, 1);
	}
	return 0;
}

void
tel_stream_play(struct tel_stream *st, struct tel_speech *sp,
    tel_stream_done_f done, void *arg)
{
	tel_speech_unref(st->sp);
	st->sp = sp ? tel_speech_ref(sp) : NULL;
	st->pos = 0;
	st->playing = 1;
	st->tail = TEL_TAIL_FRAMES;
	st->done = done;
	st->done_arg = arg;
	st->done_pending = 0;
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
