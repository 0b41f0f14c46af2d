/* The media layer's insides, shared by media.c (streams, pacing, the
 * prompt queue, bridging), dtmf.c (RFC 4733 and in-band keys) and record.c
 * (capture).  Nothing outside those files includes it: the rest of the
 * telserver uses telserver.h. */
#ifndef MEDIA_INT_H
#define MEDIA_INT_H

#include "telserver.h"

#define TEL_DTMF_OUT_MAX	64	/* keys waiting to be sent */
#define TEL_DTMF_DEDUP_MS	600	/* an event repeating an in-band key */

/* What the tick has to tell a stream's owner, after the sends. */
#define TEL_PEND_DONE		0x1	/* the prompt queue played out */
#define TEL_PEND_REC		0x2	/* the recording ended */

struct tel_qitem {
	struct tel_qitem	*next;
	struct tel_speech	*sp;		/* NULL: a pause */
	size_t			 pause;		/* samples of the pause */
	int			 bargein;
	int			 rec_start;	/* capture starts once played */
};

struct tel_recorder;
struct dtmf_rx_state_s;
struct dtmf_tx_state_s;

struct tel_stream {
	struct tel_stream	*next, *prev;	/* in m->sending */
	struct tel_media	*m;
	const char		*id;
	int			 fd;
	int			 port;
	int			 reg;		/* su_root registration */
	int			 sending;
	int			 busy;		/* inside stream_read */
	int			 dead;		/* freed while busy */
	struct sockaddr_in	 remote;
	struct tel_rtp_hdr	 hdr;
	int			 first;		/* marker on the next packet */
	uint64_t		 rx, tx;
	uint64_t		 last_tx_ns;	/* monotonic, 0 = none yet */
	int			 pending;	/* TEL_PEND_* */

	/* prompt queue */
	struct tel_qitem	*q_head, *q_tail;
	size_t			 q_pos;		/* samples of q_head played */
	int			 q_len;
	int			 q_playing;
	tel_stream_done_f	 done;
	void			*done_arg;

	/* keys received */
	tel_dtmf_f		 dtmf_cb;
	void			*dtmf_arg;
	int			 inband_on;	/* wanted by the owner */
	struct dtmf_rx_state_s	*inband;	/* spandsp, made when needed */
	int			 rx_dtmf_pt;	/* the answer's, -1 none */
	int			 ev_valid;	/* ev_* describe the last event */
	uint32_t		 ev_ts;
	uint32_t		 ev_ssrc;
	int			 ev_code;
	int			 ev_ended;
	int			 events_seen;	/* peer sends RFC 4733: no in-band */
	char			 inband_last;
	uint64_t		 inband_ms;	/* monotonic */

	/* keys sent */
	int			 tx_dtmf_pt;	/* -1: in-band tones */
	char			 out[TEL_DTMF_OUT_MAX];
	int			 out_len, out_pos;
	int			 out_frame;	/* frames of out[out_pos] sent */
	int			 out_frames;	/* frames per key */
	uint32_t		 out_ts;
	struct dtmf_tx_state_s	*out_tone;	/* in-band sending */

	struct tel_recorder	*rec;

	/* bridging: what peer receives is sent by this stream */
	struct tel_stream	*peer;
	int			 relay_synced;
	uint32_t		 relay_ssrc;
	uint32_t		 relay_off;	/* our ts - the peer's ts */
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
	struct tel_speech	*beep;
	struct tel_jitter	 jitter;
};

/* media.c */
/* Sends one RTP packet of st with header h and payload p (len bytes). */
void	tel_stream_send_pkt(struct tel_stream *st, const struct tel_rtp_hdr *h,
	    const uint8_t *p, size_t len);
/* The media's shared beep (a new reference), NULL (memory). */
struct tel_speech *tel_media_beep(struct tel_media *m);
/* Queues the beep of a recording (capture starts once it has played) and
 * plays the queue if it was idle.  Returns 0 or -1. */
int	tel_stream_queue_beep(struct tel_stream *st);

/* dtmf.c */
/* A telephone-event payload received with header h. */
void	tel_dtmf_rx_event(struct tel_stream *st, const struct tel_rtp_hdr *h,
	    const uint8_t *p, size_t len);
/* Decoded audio received: runs the in-band detector when it is wanted. */
void	tel_dtmf_rx_audio(struct tel_stream *st, const int16_t *pcm, size_t n);
/* Whether the receive path must decode audio for the in-band detector. */
int	tel_dtmf_wants_audio(const struct tel_stream *st);
/* Called by the tick before a frame: 1 when the frame was a telephone-event
 * packet (sent), 2 when pcm holds a tone to send, 0 for normal audio. */
int	tel_dtmf_out_frame(struct tel_stream *st, int16_t *pcm);
void	tel_dtmf_stream_free(struct tel_stream *st);

/* record.c */
/* Received audio: appended while capturing. */
void	tel_rec_audio(struct tel_stream *st, const int16_t *pcm, size_t n);
/* n frame times have passed: ends on maxtime or final silence (sets
 * TEL_PEND_REC). */
void	tel_rec_tick(struct tel_stream *st, int n);
/* A key: returns 1 when it ended the recording (st->pending has
 * TEL_PEND_REC), 0 when it is not the recording's business. */
int	tel_rec_dtmf(struct tel_stream *st, char digit);
/* The beep has played (or was dropped): capture starts. */
void	tel_rec_start_capture(struct tel_stream *st);
/* Hands the ended recording to its owner (may free st). */
void	tel_rec_deliver(struct tel_stream *st);
void	tel_rec_free(struct tel_recorder *r);

#endif
