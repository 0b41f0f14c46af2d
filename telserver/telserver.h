/* ringq-telserver's private header: the call/leg model, the media layer
 * (RTP streams paced by one timer), speech synthesis and the bus glue, all
 * driven by one Sofia su_root on one thread. */
#ifndef TELSERVER_H
#define TELSERVER_H

#include <sys/types.h>

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

/* Sofia's magic types must be defined before its headers are included. */
struct tel_ctx;
struct tel_leg;
#define SU_ROOT_MAGIC_T		struct tel_ctx
#define SU_WAKEUP_ARG_T		void
#define SU_TIMER_ARG_T		void
#define NUA_MAGIC_T		struct tel_ctx
#define NUA_HMAGIC_T		struct tel_leg

#include <sofia-sip/su_config.h>
#include <sofia-sip/sofia_features.h>
#include <sofia-sip/su_wait.h>
#include <sofia-sip/nua.h>

#include "config.h"
#include "evout.h"
#include "lifecycle.h"
#include "keys.h"
#include "log.h"
#include "msg.h"
#include "redis_sync.h"

#define TEL_FRAME_SAMPLES	160	/* 20 ms at 8 kHz */
#define TEL_FRAME_MS		20
#define TEL_TAIL_FRAMES		15	/* ~300 ms of silence after speech */
#define TEL_RTP_HDR		12
#define TEL_PT_PCMU		0
#define TEL_PT_PCMA		8
#define TEL_PT_DTMF		101
#define TEL_LEG_GUARD_MS	5000	/* how long a BYE/CANCEL may take */
#define TEL_SDP_MAX		1024
#define TEL_TTS_QUEUE_MAX	256	/* texts waiting for synthesis */

/* ---- sdp.c: offer/answer helpers (pure) ---- */

struct tel_sdp_answer {
	char		addr[64];	/* remote media address (IPv4) */
	int		port;		/* remote RTP port, 0 = stream refused */
	int		pt;		/* first of our codecs it accepted */
	int		dtmf_pt;	/* telephone-event payload, -1 if none */
	int		recvonly;	/* we may only receive: it said sendonly/inactive */
	int		inactive;	/* it said inactive */
	int		sendonly;	/* we may only send: it said recvonly */
};

/* Writes our audio offer (PCMU, PCMA, telephone-event, ptime 20) into buf.
 * Returns 0, or -1 when buf is too small. */
int	tel_sdp_offer(char *buf, size_t len, const char *ip, int port,
	    uint64_t session_id);
/* Parses an SDP answer (len bytes, not NUL-terminated).  Returns 0 with out
 * filled, or -1 with a reason for people in err (no audio, no codec of ours,
 * no address, stream refused). */
int	tel_sdp_parse_answer(const char *sdp, size_t len,
	    struct tel_sdp_answer *out, char *err, size_t errlen);
/* The same for the offer of an incoming INVITE: out->pt is the first codec
 * of ours in its order of preference.  -1 (answer 488) when it has no
 * usable audio stream or codec of ours. */
int	tel_sdp_parse_offer(const char *sdp, size_t len,
	    struct tel_sdp_answer *out, char *err, size_t errlen);
/* Writes our answer to offer (from tel_sdp_parse_offer): the one codec it
 * chose (offer->pt), telephone-event under the offer's payload type when
 * it offered one, ptime 20, the direction mirroring the offer's, our
 * address ip and RTP port.  Returns 0, or -1 when buf is too small or
 * offer->pt is not PCMU or PCMA. */
int	tel_sdp_answer(char *buf, size_t len, const char *ip, int port,
	    uint64_t session_id, const struct tel_sdp_answer *offer);

/* ---- media.c: G.711, RTP streams, pacing ---- */

uint8_t	tel_ulaw_encode(int16_t pcm);
uint8_t	tel_alaw_encode(int16_t pcm);
int16_t	tel_ulaw_decode(uint8_t u);
int16_t	tel_alaw_decode(uint8_t a);

struct tel_rtp_hdr {
	int		pt;
	int		marker;
	uint16_t	seq;
	uint32_t	ts;
	uint32_t	ssrc;
};
/* Packs the 12-byte RTP header (version 2, no CSRC) into buf. */
void	tel_rtp_pack(uint8_t *buf, const struct tel_rtp_hdr *h);
/* Parses an RTP packet's header.  Returns the payload offset, or -1 when the
 * packet is not RTP version 2 or is truncated. */
int	tel_rtp_parse(const uint8_t *buf, size_t len, struct tel_rtp_hdr *h);

struct tel_speech;
struct tel_media;
struct tel_stream;

/* Called on the Sofia thread when a prompt and its trailing silence have
 * been sent.  The stream may be freed from inside. */
typedef void (*tel_stream_done_f)(void *arg);

struct tel_media *tel_media_new(struct tel_ctx *ctx, const char *ip,
		    int port_min, int port_max);
void		 tel_media_free(struct tel_media *m);

/* A stream on a freshly bound even RTP port.  id (borrowed for the life of
 * the stream) names the call in log lines.  Returns NULL (logged) when no
 * port is free. */
struct tel_stream *tel_stream_new(struct tel_media *m, const char *id);
void		 tel_stream_free(struct tel_stream *st);
int		 tel_stream_port(const struct tel_stream *st);
/* Starts sending to addr:port with payload type pt (silence until a prompt
 * is given).  Returns 0 or -1 for a bad address. */
int		 tel_stream_start(struct tel_stream *st, const char *addr,
		    int port, int pt);
/* Plays sp (a reference is taken; silence while it is not synthesised yet),
 * then TEL_TAIL_FRAMES of silence, then calls done(arg) once: the prompt
 * queue with these two items (what was queued before is dropped). */
void		 tel_stream_play(struct tel_stream *st, struct tel_speech *sp,
		    tel_stream_done_f done, void *arg);
uint64_t	 tel_stream_rx_packets(const struct tel_stream *st);
uint64_t	 tel_stream_tx_packets(const struct tel_stream *st);

/* The prompt queue.  tel_stream_play() is a queue of one prompt and the
 * tail; it drops what was queued before.  Items play back to back within
 * the same 20 ms frames; a speech not synthesised yet holds the queue
 * (silence) until it is ready.  Queueing does not start playing. */
/* Appends sp (a reference is taken).  bargein: whether the owner may stop
 * the queue while this item plays (tel_stream_queue_bargein() tells it;
 * the media layer itself never stops on a key).  Returns 0, -1 (memory). */
int		 tel_stream_queue_speech(struct tel_stream *st,
		    struct tel_speech *sp, int bargein);
/* Appends ms of silence.  Returns 0, -1 (memory). */
int		 tel_stream_queue_pause(struct tel_stream *st, int ms,
		    int bargein);
/* Starts playing the queue; done(arg) is called once, from the pacing
 * tick, when the last queued sample has been sent (at once on the next
 * tick when the queue is empty).  The stream may be freed from inside.
 * Items queued while it plays are played before done. */
void		 tel_stream_queue_play(struct tel_stream *st,
		    tel_stream_done_f done, void *arg);
/* Barge-in: stops at once and drops every queued item; done is not
 * called.  Safe when nothing is queued. */
void		 tel_stream_queue_stop(struct tel_stream *st);
/* Swaps old for new (a reference is taken; NULL drops the item) in every
 * queued item not started yet: for an <audio> queued as a placeholder
 * (tel_speech_new_pending) whose fetch failed, the fallback.  Returns how
 * many items changed. */
int		 tel_stream_queue_replace(struct tel_stream *st,
		    struct tel_speech *old, struct tel_speech *new);
/* Items queued (the one playing included). */
int		 tel_stream_queue_len(const struct tel_stream *st);
/* Whether the queue is playing (play called, done not yet due). */
int		 tel_stream_queue_playing(const struct tel_stream *st);
/* The bargein flag of the item playing now (the head), -1 when the queue
 * is empty. */
int		 tel_stream_queue_bargein(const struct tel_stream *st);

/* ---- dtmf.c: keys in (RFC 4733 and in-band) and out ---- */

/* digit is '0'-'9', '*', '#' or 'A'-'D'. */
typedef void (*tel_dtmf_f)(void *arg, char digit);

/* Calls cb(arg, digit) once per key the far end sends, from the RTP
 * receive path on the Sofia thread (the stream may be freed from inside).
 * Keys come from RFC 4733 telephone-events (the end packet's three copies
 * and continuation packets report nothing more) and, when inband is set,
 * from tones in the G.711 audio (spandsp); once a peer has sent one event,
 * its audio is no longer searched, and an event repeating an in-band key
 * of the last TEL_DTMF_DEDUP_MS is dropped, so a peer sending both gives
 * each key once.  cb NULL stops listening (and the in-band detector). */
void		 tel_stream_on_dtmf(struct tel_stream *st, tel_dtmf_f cb,
		    void *arg, int inband);
/* The telephone-event payload type of the SDP answer (-1 none): received
 * events are accepted with it and with TEL_PT_DTMF (our offer's); sent
 * events use it, and -1 sends keys as in-band tones.  Default TEL_PT_DTMF. */
void		 tel_stream_set_dtmf_pt(struct tel_stream *st, int pt);
/* Queues keys to send: each key lasts ms (40-1000, 0 = 100), as RFC 4733
 * events (the last packet sent three times) or as tones, then 60 ms of
 * the normal audio; the prompt queue is held while a key is sent.  Needs a
 * started stream.  Returns 0, or -1 for a character that is no key or
 * more than TEL_DTMF_OUT_MAX keys waiting (nothing is queued then). */
int		 tel_stream_send_dtmf(struct tel_stream *st,
		    const char *digits, int ms);
/* Keys still to send (the one being sent included). */
int		 tel_stream_dtmf_sending(const struct tel_stream *st);
/* RFC 4733 event codes: 0-15 for a key, -1 for anything else. */
int		 tel_dtmf_code(char digit);
/* The key of an event code, '\0' when it is no key (16 and up). */
char		 tel_dtmf_digit(int code);

/* ---- wav.c: audio files ---- */

#define TEL_AUDIO_MAX_MS	(10 * 60 * 1000)	/* longest file played */

/* Decodes an audio file held in memory (buf, len bytes) into a new ready
 * speech (one reference, text NULL): RIFF WAVE (format 1 16-bit PCM, 6
 * A-law, 7 µ-law, or 0xFFFE extensible of those), Sun .au (µ-law, A-law,
 * 16-bit linear), all 8000 Hz mono; or headerless G.711 when hint (a
 * Content-Type or a URL/file name, may be NULL) says so: audio/basic,
 * audio/pcmu, audio/x-mulaw or a .ul/.ulaw/.mulaw/.pcmu name for µ-law,
 * audio/pcma, audio/x-alaw-basic or .al/.alaw/.pcma for A-law.  Anything
 * else (another rate, stereo, another encoding, no samples, truncated
 * header, longer than TEL_AUDIO_MAX_MS) returns NULL with a reason for
 * people in err. */
struct tel_speech *tel_audio_decode(const void *buf, size_t len,
		    const char *hint, char *err, size_t errlen);
/* A new ready speech (one reference, text NULL) holding a copy of pcm (n
 * samples at 8 kHz), or NULL (memory). */
struct tel_speech *tel_speech_new_pcm(const int16_t *pcm, size_t n);
/* A placeholder (one reference, not ready: a queue holds in silence on
 * it) for audio still being fetched, or NULL (memory). */
struct tel_speech *tel_speech_new_pending(void);
/* Moves src's samples into dst (a placeholder) and makes dst ready; src
 * keeps no samples (the caller still unrefs it). */
void		 tel_speech_fill(struct tel_speech *dst, struct tel_speech *src);
/* A RIFF WAVE file of n samples at 8 kHz mono, 16-bit PCM, or µ-law when
 * ulaw is set.  Returns a malloc'd buffer (the caller frees it) with *lenp
 * set, or NULL (memory). */
uint8_t		*tel_wav_encode(const int16_t *pcm, size_t n, int ulaw,
		    size_t *lenp);

/* ---- record.c: capturing what the far end says ---- */

enum tel_record_end {
	TEL_REC_MAXTIME,	/* maxtime reached */
	TEL_REC_SILENCE,	/* finalsilence of silence */
	TEL_REC_DTMF,		/* a key (termchar) */
	TEL_REC_STOPPED		/* tel_stream_record_stop() */
};

struct tel_record_opts {
	int		 beep;		/* a short tone before capture */
	int		 maxtime_ms;	/* 0 = TEL_REC_MAX_MS */
	int		 finalsilence_ms; /* 0 = not ended by silence */
	int		 silence_level;	/* mean |sample| below which a packet
					 * is silent; 0 = TEL_REC_SILENCE_LEVEL */
	int		 dtmfterm;	/* any key ends it */
	int		 ulaw;		/* WAV in µ-law, else 16-bit PCM */
};

#define TEL_REC_MAX_MS		(5 * 60 * 1000)
#define TEL_REC_SILENCE_LEVEL	200

struct tel_recording {
	uint8_t			*wav;		/* RIFF WAVE, 8 kHz mono */
	size_t			 len;
	const char		*type;		/* "audio/x-wav" */
	int			 duration_ms;	/* of the audio captured */
	int			 heard;		/* a packet above silence_level */
	enum tel_record_end	 why;
	char			 termchar;	/* the key, TEL_REC_DTMF only */
};

/* The callback takes rec (tel_recording_free); rec is NULL only when
 * memory ran out.  Called from the pacing tick: the stream may be freed
 * from inside. */
typedef void (*tel_record_done_f)(void *arg, struct tel_recording *rec);

/* Records what the far end sends (PCMU/PCMA decoded to 16-bit PCM) on a
 * started stream: with o->beep, the beep is appended to the prompt queue
 * (played at once when the queue is idle) and capture starts when it has
 * played; else capture starts now.  Time is counted in frames of the
 * pacing tick (lost packets are not filled in).  While it runs, a key
 * that ends it (dtmfterm) is not given to tel_stream_on_dtmf()'s callback;
 * in-band keys are only heard when tel_stream_on_dtmf() asked for them.
 * A queue that was idle starts playing for the beep (items queued but not
 * played yet go first; its done callback is not called).  Returns 0, or -1
 * when the stream is not started, already records, or memory ran out. */
int		 tel_stream_record(struct tel_stream *st,
		    const struct tel_record_opts *o, tel_record_done_f done,
		    void *arg);
/* Ends the recording now (a hangup keeps what was said): returns it (the
 * caller owns it; done is not called), or NULL when none runs. */
struct tel_recording *tel_stream_record_stop(struct tel_stream *st);
void		 tel_recording_free(struct tel_recording *rec);

/* ---- media.c: bridging two streams ---- */

/* Relays what each stream receives to the other (<transfer bridge>):
 * audio transcoded when their payload types differ (PCMU <-> PCMA),
 * telephone-events passed on with the destination's dtmf payload type
 * (dropped when it has none).  While bridged a stream's own paced audio
 * (prompt queue, keys sent) is held.  Both must be started and unbridged.
 * Returns 0 or -1.  Key callbacks and recordings go on working. */
int		 tel_stream_bridge(struct tel_stream *a, struct tel_stream *b);
/* Ends st's bridge (both sides); freeing either stream ends it too. */
void		 tel_stream_unbridge(struct tel_stream *st);
struct tel_stream *tel_stream_bridged(const struct tel_stream *st);

/* ---- media.c: send-interval jitter ---- */

#define TEL_JITTER_BUCKET_US	50
#define TEL_JITTER_BUCKETS	1000	/* 0-50 ms; one more for beyond */

/* How far the time between two frames of one stream actually sent was
 * from TEL_FRAME_MS: |interval - 20 ms| in TEL_JITTER_BUCKET_US buckets. */
struct tel_jitter {
	uint64_t	n;
	uint64_t	max_us;
	uint64_t	sum_us;
	uint64_t	bucket[TEL_JITTER_BUCKETS + 1];
};

/* Adds one interval (µs between two sends). */
void		 tel_jitter_add(struct tel_jitter *j, uint64_t interval_us);
/* The deviation (µs, a bucket's upper bound) below which pct (0-100) of
 * the intervals fall; 0 when there is none. */
uint64_t	 tel_jitter_percentile(const struct tel_jitter *j, double pct);
/* Every paced frame of every stream of m since tel_media_new() or the last
 * reset (frames relayed by a bridge are not paced: not counted). */
const struct tel_jitter *tel_media_jitter(const struct tel_media *m);
void		 tel_media_jitter_reset(struct tel_media *m);

/* ---- tts.c: flite synthesis in a worker thread ---- */

/* Shared between the Sofia thread and the cache; only the Sofia thread
 * touches refs and reads samples, and only once ready is set. */
struct tel_speech {
	int		 refs;
	char		*text;
	int		 ready;		/* samples are valid (maybe empty) */
	int16_t		*samples;	/* 8 kHz mono */
	size_t		 nsamples;
};

struct tel_tts;
struct tel_tts	*tel_tts_new(struct tel_ctx *ctx);
void		 tel_tts_free(struct tel_tts *t);
/* Returns a new reference to the speech for text: from the cache, or
 * queued for synthesis (ready is 0 until the worker is done). */
struct tel_speech *tel_tts_get(struct tel_tts *t, const char *text);
/* Whether tel_tts_get(text) can be served: cached, or room in the queue
 * (capacity texts, at most TEL_TTS_QUEUE_MAX, waiting or in synthesis). */
int		 tel_tts_can_take(struct tel_tts *t, const char *text);
/* Whether text is in the cache (served without taking a queue slot). */
int		 tel_tts_has(struct tel_tts *t, const char *text);
struct tel_speech *tel_speech_ref(struct tel_speech *sp);
void		 tel_speech_unref(struct tel_speech *sp);

/* ---- call.c: calls, legs, events ---- */

enum tel_leg_state {
	TEL_LEG_IDLE,		/* nothing sent yet */
	TEL_LEG_CALLING,	/* INVITE sent */
	TEL_LEG_RINGING,	/* 180/183 seen */
	TEL_LEG_ANSWERED,	/* 200 seen, media flowing */
	TEL_LEG_ENDING,		/* BYE or CANCEL sent, waiting for nua */
	TEL_LEG_GONE		/* nua handle destroyed */
};

enum tel_leg_role { TEL_LEG_CUSTOMER, TEL_LEG_AGENT, TEL_LEG__MAX };

struct tel_call;

struct tel_leg {
	struct tel_call		*call;
	enum tel_leg_role	 role;
	enum tel_leg_state	 state;
	nua_handle_t		*nh;
	struct tel_stream	*stream;
	su_timer_t		*guard;		/* bounds ENDING */
	char			*sdp;		/* our offer, reused in re-INVITEs */
};

struct tel_call {
	struct tel_call		*next, *prev;
	struct tel_ctx		*ctx;
	char			 id[96];	/* "<call id>/<attempt>" for logs */
	char			*call_id;
	uint64_t		 attempt;
	char			*tenant;
	char			*to;
	char			*caller_id;
	struct tel_speech	*speech;
	uint64_t		 started_ms;	/* wall clock */
	uint64_t		 answered_ms;
	int			 ringing_sent;
	int			 want_speech;	/* the job had a text */
	int			 inbound;	/* an incoming call (inbound.c) */
	int			 inbound_offered; /* our offer went in the 200:
					 * the answer comes in the ACK */
	int			 terminal;	/* ended: finish recorded or kept */
	su_timer_t		*ring_timer;
	su_timer_t		*max_timer;
	struct tel_leg		*legs[TEL_LEG__MAX];
	char			*local_uri;	/* our From, for the app */
	char			*remote_uri;	/* the Request-URI dialled */
	/* A VoiceXML application (app.c, call_app.c). */
	char			*app_url;	/* NULL: the job says a text */
	struct tel_app		*app;
	su_timer_t		*app_timer;	/* acts outside its callbacks */
	su_timer_t		*app_guard;	/* bounds it after a hang-up */
	int			 app_over;	/* done() seen: result kept */
	int			 app_hangup;	/* <disconnect> or its end */
	int			 app_how;	/* enum vxml_end */
	char			*app_json;	/* the result, JSON */
	char			*app_detail;	/* for an error: what and where */
	/* <transfer>: the agent leg and its bridge. */
	int			 xfer_blind;
	int			 xfer_reported;	/* the outcome went to the app */
	int			 xfer_maxtime_ms;
	uint64_t		 xfer_answered_ms;	/* monotonic: for its duration */
	su_timer_t		*xfer_timer;	/* connecttimeout, then maxtime */
};

/* Hangs an answered call up (completed) after [telserver] max_call_s. */
void	tel_call_limit_duration(struct tel_call *c);
/* The end of an attempt (recorded once), a BYE or CANCEL of a leg, and
 * freeing a call once it ended and its handles are gone. */
void	tel_call_end(struct tel_call *c, enum rq_status st, const char *reason,
	    int sip_code, const char *detail);
void	tel_leg_hangup(struct tel_leg *leg);
void	tel_call_maybe_free(struct tel_call *c);

/* Maps a final SIP status of a failed INVITE to a reason of status.h. */
const char	*tel_reason_for_status(int status);

/* Builds the From of a call: the caller_id of a job (E.164 -> sip:number@
 * host of sip_from; sip: URI -> itself; a name -> "name" <sip_from's URI>),
 * or sip_from when there is none.  Returns 0, or -1 with err set. */
int	tel_call_from(const char *sip_from, const char *caller_id, char *from,
	    size_t fromlen, char *err, size_t errlen);
/* Handles a JOB from dispatcher socket dealer (tel_call_job_add, then
 * tel_call_jobs_flush). */
void	tel_call_job(struct tel_ctx *ctx, int dealer, const struct rq_msg *job);
/* Checks a JOB (refused at once if it must be) and keeps it for the next
 * tel_call_jobs_flush, which claims all the kept ones in one script, then
 * acknowledges and dials (or, dry run, finishes) each claimed one. */
void	tel_call_job_add(struct tel_ctx *ctx, int dealer,
	    const struct rq_msg *job);
void	tel_call_jobs_flush(struct tel_ctx *ctx);

/* Hangs up a call (one that ended already: nothing) and ends it as
 * failed/interrupted with detail; c may be freed.  _all: every call
 * (shutdown, fence). */
void	tel_call_interrupt(struct tel_call *c, const char *detail);
void	tel_call_interrupt_all(struct tel_ctx *ctx, const char *detail);
/* sp, just synthesised, holds no audio: the calls waiting for it and not
 * yet answered are hung up, failed/speech (tts.c). */
void	tel_call_speech_silent(struct tel_ctx *ctx,
	    const struct tel_speech *sp);
void	tel_call_free_all(struct tel_ctx *ctx);

/* Reports from sip.c about a leg. */
void	tel_leg_progress(struct tel_leg *leg, int status);
void	tel_leg_answered(struct tel_leg *leg, const char *sdp, size_t len);
void	tel_leg_failed(struct tel_leg *leg, int status, const char *phrase);
void	tel_leg_remote_bye(struct tel_leg *leg);
/* An in-dialog re-INVITE with SDP sdp (len bytes, may be NULL): follows a
 * new remote media address.  Returns 0 with *answer = our SDP to send in
 * the 200, or -1 (refuse it with 488; the dialog goes on as before). */
int	tel_leg_reinvite(struct tel_leg *leg, const char *sdp, size_t len,
	    const char **answer);
/* The nua handle is finished with (final event seen or guard expired). */
void	tel_leg_gone(struct tel_leg *leg);

/* ---- app.c: a VoiceXML application on a call (vxml.h's platform) ---- */

struct tel_app;
struct vxml_result;
struct vxml_transfer_req;

/* Runs the application at url on the answered customer leg of c, whose
 * stream st is started.  Returns NULL (logged) when it cannot start. */
struct tel_app	*tel_app_start(struct tel_call *c, struct tel_stream *st,
		    const char *url, const char *local_uri,
		    const char *remote_uri);
/* The caller hung up: the application hears it and may go on (its
 * handlers, a <submit>) without the line. */
void		 tel_app_hangup(struct tel_app *a);
/* Whether it still runs (done() not seen, not stopped). */
int		 tel_app_running(const struct tel_app *a);
/* Stops it: no more requests are served, nothing is called back.  Safe
 * from inside its callbacks, unlike tel_app_free. */
void		 tel_app_stop(struct tel_app *a);
void		 tel_app_free(struct tel_app *a);
/* The outcome of a tel_call_app_transfer (enum vxml_transfer_outcome). */
void		 tel_app_transfer_done(struct tel_app *a, int outcome,
		    int duration_ms);

/* ---- call_app.c: the call around its application ---- */

/* Starts c's application on its answered customer leg.  Returns 0 or -1
 * (the caller ends the call). */
int	tel_call_app_answered(struct tel_call *c, struct tel_leg *leg);
/* The customer's line is gone while the application runs: it is told, and
 * the call ends when it is done (within TEL_APP_AFTER_HANGUP_MS). */
#define TEL_APP_AFTER_HANGUP_MS	10000
void	tel_call_app_line_gone(struct tel_call *c);
/* From app.c, inside the interpreter's callbacks: nothing here acts at
 * once on the call (a zero timer does), so the session is never freed
 * under the interpreter's feet. */
void	tel_call_app_done(struct tel_call *c, const struct vxml_result *res,
	    const char *json);
void	tel_call_app_disconnect(struct tel_call *c);
void	tel_call_app_transfer(struct tel_call *c,
	    const struct vxml_transfer_req *req);
/* Reports about the agent leg of a <transfer> (sip.c's, via call.c). */
void	tel_xfer_answered(struct tel_leg *leg, const char *sdp, size_t len);
void	tel_xfer_failed(struct tel_leg *leg, int status, const char *phrase);
void	tel_xfer_remote_bye(struct tel_leg *leg);
void	tel_xfer_gone(struct tel_leg *leg);
/* The customer hung up during a bridge: the agent leg goes too. */
void	tel_xfer_drop(struct tel_call *c);

/* ---- inbound.c: incoming calls ([inbound] sections) ---- */

/* An INVITE (sip) that starts a dialog, on a handle nua made for it (nh,
 * not bound to a leg): answered 200 as a new call of the [inbound]
 * section of its Request-URI's user part, whose job is recorded first, or
 * refused: 404 (no such number), 503 with Retry-After (draining, fenced,
 * full, no RTP port, Redis failing), 488 (an offer without a codec of
 * ours), 481 (To tag: a dialog we do not have), 400.  An INVITE without
 * an offer gets ours in the 200 (the answer comes in the ACK).  nh is
 * bound to the call's leg, or destroyed when refused. */
void	tel_inbound_invite(struct tel_ctx *ctx, nua_handle_t *nh,
	    const sip_t *sip);
/* An ACK on leg with SDP sdp (len bytes, may be NULL): for an incoming
 * call's first one, starts its media when the answer to our offer is in
 * it, and its application (tel_call_app_answered); a missing or unusable
 * answer ends the call (failed, media).  Anything else is ignored. */
void	tel_inbound_acked(struct tel_leg *leg, const char *sdp, size_t len);

/* ---- sip.c: Sofia nua glue ---- */

int	tel_sip_open(struct tel_ctx *ctx);
void	tel_sip_close(struct tel_ctx *ctx);
/* Sends the INVITE of leg.  Returns 0, or -1 (logged). */
int	tel_sip_invite(struct tel_leg *leg, const char *to_uri,
	    const char *from_uri, const char *proxy, const char *sdp);
void	tel_sip_hangup(struct tel_leg *leg);
/* Starts nua_shutdown; ctx->sip_down is set when it has finished. */
void	tel_sip_shutdown(struct tel_ctx *ctx);

/* ---- bus.c: dispatchers and accounting ---- */

int	tel_bus_open(struct tel_ctx *ctx);
void	tel_bus_close(struct tel_ctx *ctx);
/* Reads everything waiting on every socket (not re-entrant: a nested
 * call makes the running one go round again). */
void	tel_bus_poll(struct tel_ctx *ctx);
/* Sends only; the sockets are polled again from the loop. */
void	tel_bus_heartbeat(struct tel_ctx *ctx);
void	tel_bus_reply(struct tel_ctx *ctx, int dealer, enum rq_msg_type type,
	    const char *call_id, uint64_t attempt, const char *reason);
/* Between hold and release, what goes to a dispatcher that takes batches
 * is kept, and goes to it as one message at the release; a heartbeat
 * asked for meanwhile goes once, last. */
void	tel_bus_hold(struct tel_ctx *ctx);
void	tel_bus_release(struct tel_ctx *ctx);
/* Emits an EVENT through the outbox (copied). */
void	tel_bus_event(struct tel_ctx *ctx, const struct rq_msg *ev);

/* ---- life.c: the job's life in Redis (common/lifecycle.h) ---- */

struct tel_finish;

void	tel_life_open(struct tel_ctx *ctx);
/* state_dir (else run_dir)/ringq-telserver-NAME.SUFFIX into out, or ""
 * when neither is set (or too long): the telserver's files that outlive
 * it, the events journal (bus.c) and the kept finishes (life.c). */
void	tel_state_path(const struct rq_config *cfg, const char *suffix,
	    char *out, size_t len);
/* Retries the finishes still kept, for at most ms, and drops our liveness
 * key when none is left (the scheduler then has nothing to interrupt). */
void	tel_life_close(struct tel_ctx *ctx, int ms);
/* Every tick: the start-up recovery until it succeeded (our attempts of a
 * previous life end as interrupted); then, once a second each, our
 * liveness key and our name in rq:nodes, and the kept finishes; and the
 * fence: when the key could not be refreshed for RQ_NODE_TTL_MS minus a
 * margin, every call is hung up and no job is taken (ctx->fenced) until
 * it is refreshed again. */
void	tel_life_tick(struct tel_ctx *ctx);
/* Claims an attempt before its INVITE: an enum rq_claim, or -1 when Redis
 * failed (do not dial; the attempt is resolved later, see life.c), or
 * TEL_CLAIM_FENCED when not tried (tel_life_may_claim said no). */
#define TEL_CLAIM_FENCED	(-2)
int	tel_life_claim(struct tel_ctx *ctx, const char *call_id,
	    uint64_t attempt);
/* Records an incoming call before it is answered (rq_job_inbound, when a
 * claim may be tried): 1, 0 (its id exists: nothing written) or -1 (not
 * tried, or Redis failed: do not answer; a lost reply is resolved later
 * as a lost claim's is). */
int	tel_life_inbound(struct tel_ctx *ctx, const struct rq_inbound_call *in);
/* The same for n attempts in one script: rc[i] as tel_life_claim's. */
void	tel_life_claim_batch(struct tel_ctx *ctx, size_t n,
	    const char *const *ids, const uint64_t *attempts, int *rc);
/* Whether a claim may be tried now: recovered, not fenced, and our
 * liveness key fresh (refreshed first when due; fenced now when it is too
 * old). */
int	tel_life_may_claim(struct tel_ctx *ctx);
/* Between hold and release, finishes are kept back and then recorded in
 * one script (the same rules as one by one).  Nests. */
void	tel_life_finish_hold(struct tel_ctx *ctx);
void	tel_life_finish_release(struct tel_ctx *ctx);
/* Records the end of an attempt; kept and retried every second while
 * Redis fails.  e is copied. */
void	tel_life_finish(struct tel_ctx *ctx, const struct rq_attempt_end *e);
/* Finishes kept for later. */
int	tel_life_pending(const struct tel_ctx *ctx);
/* Our state as rq:tel:<node> shows it: "up", "draining" (an operator's
 * drain with calls left, start-up, fence, shutdown) or "drained" (an
 * operator's drain and no call left). */
const char *tel_life_state(const struct tel_ctx *ctx);
/* Whether we take no new job (draining in our heartbeats). */
int	tel_life_refusing(const struct tel_ctx *ctx);

/* ---- metrics.c: Prometheus metrics (docs/metrics.md) ---- */
void	tel_metrics_init(struct tel_ctx *ctx);
void	tel_metric_started(struct tel_ctx *ctx);
void	tel_metric_ended(struct tel_ctx *ctx, enum rq_status st,
	    const char *reason);
void	tel_metric_refused(const char *reason);	/* a fixed word */
/* An incoming call answered with status (200, 404, 488, 503, ...). */
void	tel_metric_inbound(int status);
/* State gauges; every tick. */
void	tel_metrics_tick(struct tel_ctx *ctx);

/* ---- fetch.c: asynchronous HTTP fetches with a cache (VoiceXML) ---- */

/* libcurl's multi interface driven by the su_root: documents, scripts,
 * grammars, audio and <submit>s for the VoiceXML interpreter.  Responses
 * to GETs are kept in an LRU cache in memory that follows HTTP's
 * Cache-Control, Expires and validators, with VoiceXML's maxage and
 * maxstale on top. */
struct tel_fetcher;

enum tel_fetch_method { TEL_FETCH_GET, TEL_FETCH_POST };
enum tel_fetch_enc {
	TEL_FETCH_URLENCODED,	/* application/x-www-form-urlencoded */
	TEL_FETCH_MULTIPART	/* multipart/form-data (POST only) */
};

/* One name/value of a <submit> namelist.  value is len bytes (may hold
 * NULs: a recording); type and filename make it a file part in multipart
 * (ignored in urlencoded); NULL for a plain field. */
struct tel_fetch_part {
	const char	*name;
	const char	*value;
	size_t		 len;
	const char	*type;
	const char	*filename;
};

/* Everything is borrowed for the duration of tel_fetch() only. */
struct tel_fetch_req {
	const char			*url;	/* absolute; a #fragment is ignored */
	enum tel_fetch_method		 method;
	enum tel_fetch_enc		 enc;
	const struct tel_fetch_part	*parts;	/* GET: appended as a query */
	size_t				 nparts;
	long				 timeout_ms;	/* whole fetch; 0: default */
	long				 maxage;	/* seconds, -1: not given */
	long				 maxstale;	/* seconds, -1: not given */
};
/* Beware: a zeroed request has maxage 0, which revalidates every time;
 * set maxage and maxstale to -1 when the document does not give them. */

/* Borrowed until the completion callback returns. */
struct tel_fetch_res {
	uint64_t	 id;
	const char	*error;		/* transport failure for people, or NULL */
	int		 timed_out;	/* error is a timeout */
	long		 status;	/* HTTP status (200 for file:), 0 on error */
	const char	*url;		/* effective URL, after redirects */
	const char	*content_type;	/* "" when the server gave none */
	const char	*body;		/* NUL-terminated beyond len */
	size_t		 len;
	int		 from_cache;	/* served from the cache (maybe revalidated) */
};

typedef void (*tel_fetch_done_f)(void *arg, const struct tel_fetch_res *res);

#define TEL_FETCH_TIMEOUT_MS	30000		/* when the request says 0 */
/* the telserver's cache of VoiceXML documents and audio */
#define TEL_FETCH_CACHE_BYTES	(64u << 20)
#define TEL_FETCH_MAX_BODY	(16u << 20)	/* larger bodies fail */

/* A fetcher on root (which must outlive it) with a cache of at most
 * cache_bytes (0: no cache).  Returns NULL (logged) on failure. */
struct tel_fetcher *tel_fetcher_new(su_root_t *root, size_t cache_bytes);
/* Cancels every fetch (no callback is called) and frees the cache.  Not
 * from inside a completion callback. */
void	tel_fetcher_free(struct tel_fetcher *f);
/* Whether file: URLs may be fetched (default no: job URLs come from
 * tenants).  Redirects never lead to file:. */
void	tel_fetcher_allow_file(struct tel_fetcher *f, int allow);
/* Whether fetches may connect to loopback addresses, and to private,
 * link-local and this host's own addresses (default neither: see
 * rq_addr_refusal).  A refused address fails the fetch with its reason. */
void	tel_fetcher_allow_addrs(struct tel_fetcher *f, int loopback,
	    int private);
/* Starts a fetch.  Returns its id (never 0); done(arg, res) is called
 * exactly once, later, from the loop (never inside tel_fetch), unless the
 * fetch is cancelled first.  Every failure, even a bad URL, comes through
 * done. */
uint64_t tel_fetch(struct tel_fetcher *f, const struct tel_fetch_req *req,
	    tel_fetch_done_f done, void *arg);
/* Cancels fetch id: its callback will not be called.  Unknown or finished
 * ids are ignored. */
void	tel_fetch_cancel(struct tel_fetcher *f, uint64_t id);
/* Entries and bytes in the cache now. */
void	tel_fetcher_cache_usage(const struct tel_fetcher *f, size_t *entries,
	    size_t *bytes);

/* Resolves ref against base (RFC 3986; base may be NULL when ref is
 * absolute).  Returns 0 with *url the absolute URL without its fragment
 * and *fragment the fragment without '#' (NULL when ref has none), both
 * for free(); or -1 with err set.  "#form2" alone names base's document. */
int	tel_url_resolve(const char *base, const char *ref, char **url,
	    char **fragment, char *err, size_t errlen);

/* ---- the daemon ---- */

struct tel_dealer;

struct tel_ctx {
	const struct rq_config	*cfg;
	su_root_t		*root;
	nua_t			*nua;
	int			 sip_down;	/* nua_r_shutdown seen */
	void			*zctx;
	struct tel_dealer	*dealers;
	int			 ndealers;
	struct rq_evout		*eo;
	int			 eo_reg;
	struct tel_media	*media;
	struct tel_tts		*tts;
	struct tel_fetcher	*fetcher;	/* VoiceXML documents, audio */
	struct tel_call		*calls;
	int			 calls_held;	/* in calls, ended or not */
	int			 active;	/* calls without a terminal event */
	uint64_t		 ended;		/* calls ended since start-up */
	int			 draining;	/* shutting down */
	int			 drain_op;	/* in rq:drain: an operator's drain */
	int			 drained_logged;
	int			 bus_polling;	/* inside tel_bus_poll */
	int			 bus_repoll;	/* go round once more */
	su_timer_t		*bus_timer;	/* deferred poll after a send */
	struct rq_redis		 redis;		/* lifecycle scripts */
	int			 recovered;	/* start-up interrupt done */
	int			 fenced;	/* liveness key too old */
	uint64_t		 alive_ms;	/* monotonic: last refresh sent */
	uint64_t		 alive_next_ms;	/* monotonic: next refresh */
	struct log_rate		 refusals;	/* life_reply's line */
	struct tel_finish	*finishes;	/* kept while Redis fails */
	int			 flush_refused_for_now;	/* in the last round */
	int			 nfinishes;
	char			 finishes_path[2 * RQ_ADDR_MAX];
	int			 finishes_loaded;	/* of a previous run */
	int			 finishes_dirty;	/* the file to write */
	int			 finishes_unsynced;	/* saved, not synced */
	int			 finishes_created;	/* not synced */
	off_t			 finishes_cut;	/* size + 1 a failed write must
						 * be cut back to, or 0 */
	struct rq_syncer	*finishes_syncer;	/* syncs off the loop */
	int			 finishes_failing;	/* the last save failed */
	struct log_rate		 finishes_log, finishes_cut_log;
	struct log_rate		 finishes_loss_log;
	int			 recover_refused;	/* rounds */
	int			 interrupt_refused;	/* rounds */
	uint64_t		 finish_retry_ms; /* monotonic */
	int			 finish_hold;	/* finishes held for a batch */
	struct tel_finish	*held, **held_tail;
	struct tel_pend		*pend;		/* JOBs waiting for a claim */
	size_t			 npend, pend_cap;
	int			 bus_hold;	/* replies kept for a batch */
	int			 hb_wanted;	/* a heartbeat at its end */
};

#endif
