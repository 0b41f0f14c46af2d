/* For the media tests: a telserver media layer on 127.0.0.1 driven by its
 * own su_root, and "peers": plain UDP sockets on 127.0.0.1 playing the far
 * end of a stream (they send RTP to it and read what it sends). */
#ifndef MEDIA_PEER_H
#define MEDIA_PEER_H

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "telserver.h"
#include "util.h"

#define UNUSED	__attribute__((unused))

struct mt {
	struct rq_config	cfg;
	struct tel_ctx		ctx;
	struct tel_media	*m;
};

struct peer {
	int		fd;
	int		port;
	int		to_port;	/* the stream it sends to */
	struct tel_rtp_hdr h;		/* its next packet */
};

/* A received RTP packet. */
struct pkt {
	struct tel_rtp_hdr h;
	uint8_t		p[1500];
	size_t		len;
};

UNUSED static int
mt_open(struct mt *t)
{
	memset(t, 0, sizeof(*t));
	t->ctx.cfg = &t->cfg;
	su_init();
	if ((t->ctx.root = su_root_create(&t->ctx)) == NULL)
		return -1;
	/* Ports taken by parallel tests are skipped by tel_stream_new. */
	t->m = tel_media_new(&t->ctx, "127.0.0.1", 30000 + (getpid() % 50) *
	    200, 30000 + (getpid() % 50) * 200 + 198);
	t->ctx.media = t->m;
	return t->m ? 0 : -1;
}

UNUSED static void
mt_close(struct mt *t)
{
	tel_media_free(t->m);
	su_root_destroy(t->ctx.root);
	su_deinit();
}

/* Runs the loop for ms. */
UNUSED static void
mt_run(struct mt *t, int ms)
{
	uint64_t end = rq_mono_ms() + (uint64_t)ms;

	while (rq_mono_ms() < end)
		su_root_step(t->ctx.root, 5);
}

/* Runs the loop until *flag is set, for at most ms.  Returns *flag. */
UNUSED static int
mt_run_until(struct mt *t, const int *flag, int ms)
{
	uint64_t end = rq_mono_ms() + (uint64_t)ms;

	while (!*flag && rq_mono_ms() < end)
		su_root_step(t->ctx.root, 5);
	return *flag;
}

UNUSED static int
peer_open(struct peer *p, int to_port, int pt)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int rcvbuf = 1 << 20;

	memset(p, 0, sizeof(*p));
	if ((p->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0)) == -1)
		return -1;
	(void)setsockopt(p->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
	    sizeof(rcvbuf));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(p->fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(p->fd, (struct sockaddr *)&sin, &sl) == -1)
		return -1;
	p->port = ntohs(sin.sin_port);
	p->to_port = to_port;
	p->h.pt = pt;
	p->h.ssrc = 0x12345678;
	p->h.seq = 1000;
	p->h.ts = 50000;
	return 0;
}

UNUSED static void
peer_close(struct peer *p)
{
	close(p->fd);
}

/* Sends one RTP packet with header h. */
UNUSED static void
peer_send_hdr(struct peer *p, const struct tel_rtp_hdr *h, const void *pay,
    size_t len)
{
	uint8_t buf[TEL_RTP_HDR + 1500];
	struct sockaddr_in sin;

	tel_rtp_pack(buf, h);
	memcpy(buf + TEL_RTP_HDR, pay, len);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)p->to_port);
	(void)sendto(p->fd, buf, TEL_RTP_HDR + len, 0,
	    (struct sockaddr *)&sin, sizeof(sin));
}

/* Sends 20 ms of pcm (160 samples) in the peer's G.711 (p->h.pt). */
UNUSED static void
peer_send_pcm(struct peer *p, const int16_t *pcm)
{
	uint8_t pay[TEL_FRAME_SAMPLES];
	int i;

	for (i = 0; i < TEL_FRAME_SAMPLES; i++)
		pay[i] = p->h.pt == TEL_PT_PCMA ? tel_alaw_encode(pcm[i]) :
		    tel_ulaw_encode(pcm[i]);
	peer_send_hdr(p, &p->h, pay, sizeof(pay));
	p->h.seq++;
	p->h.ts += TEL_FRAME_SAMPLES;
	p->h.marker = 0;
}

/* Sends one telephone-event packet (pt) and advances seq only. */
UNUSED static void
peer_send_event(struct peer *p, int pt, uint32_t ts, int marker, int code,
    int end, int dur)
{
	struct tel_rtp_hdr h = p->h;
	uint8_t ev[4] = { (uint8_t)code, (uint8_t)((end ? 0x80 : 0) | 10),
	    (uint8_t)(dur >> 8), (uint8_t)dur };

	h.pt = pt;
	h.ts = ts;
	h.marker = marker;
	peer_send_hdr(p, &h, ev, sizeof(ev));
	p->h.seq++;
}

/* Reads every packet waiting, up to max.  Returns how many. */
UNUSED static int
peer_recv(struct peer *p, struct pkt *out, int max)
{
	uint8_t buf[2048];
	ssize_t n;
	int k = 0, off;

	while (k < max && (n = recv(p->fd, buf, sizeof(buf), 0)) >= 0) {
		if ((off = tel_rtp_parse(buf, (size_t)n, &out[k].h)) < 0)
			continue;
		out[k].len = (size_t)n - (size_t)off;
		memcpy(out[k].p, buf + off, out[k].len);
		k++;
	}
	return k;
}

/* Drops what is waiting. */
UNUSED static void
peer_drain(struct peer *p)
{
	uint8_t buf[2048];

	while (recv(p->fd, buf, sizeof(buf), 0) >= 0)
		;
}

#endif
