/* vxml.h: a VoiceXML 2.1 interpreter that talks to its platform (the
 * telserver, the ringq-vxml runner, unit tests) only through callbacks.
 *
 * Driving it: the platform fills a struct vxml_platform, creates a session
 * with vxml_session_new() and starts it with vxml_session_start().  Every
 * platform operation is a request the interpreter makes through a callback;
 * the platform answers later (or at once, from inside the callback) with the
 * matching vxml_*_done() function.  The interpreter never blocks and never
 * calls back into the platform recursively from a vxml_*() entry point that
 * the platform called from inside a callback: such answers are recorded and
 * acted on when the outer call returns.  All calls for one session must come
 * from one thread.
 *
 * The session ends with exactly one call of platform->done(); after it the
 * interpreter makes no further request and ignores further input.  The
 * platform frees the session with vxml_session_free(), which is safe at any
 * time except from inside a callback of that session. */
#ifndef VXML_H
#define VXML_H

#include <stddef.h>

struct vxml_session;

/* What is being fetched; the platform may use it for caching or timeouts. */
enum vxml_fetch_kind {
	VXML_FETCH_DOCUMENT,	/* a VoiceXML document (goto, submit, subdialog, application root) */
	VXML_FETCH_SCRIPT,	/* <script src> */
	VXML_FETCH_GRAMMAR	/* <grammar src> */
};

/* One namelist entry of a <submit> or <subdialog>.  data/len is set for a
 * recording (to be sent as a multipart file part with type); otherwise value
 * is the variable's value as a string. */
struct vxml_param {
	const char	*name;
	const char	*value;
	const void	*data;
	size_t		 len;
	const char	*type;
};

struct vxml_fetch_req {
	unsigned		 id;		/* give back to vxml_fetch_done() */
	enum vxml_fetch_kind	 kind;
	const char		*url;		/* absolute, without fragment */
	int			 post;		/* 1: POST, 0: GET (params already in the URL) */
	const char		*enctype;	/* for POST: application/x-www-form-urlencoded or multipart/form-data */
	const struct vxml_param	*params;	/* for POST */
	size_t			 nparams;
	int			 timeout_ms;	/* fetchtimeout */
	int			 maxage;	/* seconds, -1 when not given */
	int			 maxstale;	/* seconds, -1 when not given */
};

/* status: the HTTP status (200 for file: URLs that could be read), or 0 for
 * a transport error (error says which).  All strings are borrowed for the
 * duration of the call: the interpreter copies what it keeps. */
struct vxml_fetch_res {
	int		 status;
	const char	*error;
	const char	*url;		/* effective URL after redirects; NULL: the requested one */
	const char	*content_type;
	const char	*body;
	size_t		 len;
};

enum vxml_prompt_kind {
	VXML_PROMPT_TEXT,	/* text to speak */
	VXML_PROMPT_BREAK,	/* silence of break_ms */
	VXML_PROMPT_AUDIO	/* play url; when it cannot be fetched or played, play fallback[] instead */
};

struct vxml_prompt_item {
	enum vxml_prompt_kind		 kind;
	const char			*text;
	int				 break_ms;
	const char			*url;
	const struct vxml_prompt_item	*fallback;
	size_t				 nfallback;
	int				 bargein;	/* the caller may interrupt this item */
};

struct vxml_transfer_req {
	const char	*dest;		/* a URI (tel: or sip:) */
	int		 bridge;	/* 1: bridge and wait for the outcome, 0: blind */
	int		 connecttimeout_ms;
	int		 maxtime_ms;	/* 0: unlimited */
	const char	*transferaudio;	/* audio URL to play while connecting, or NULL */
	const char	*aai;
};

enum vxml_transfer_outcome {
	VXML_XFER_BUSY,
	VXML_XFER_NOANSWER,
	VXML_XFER_NETWORK_BUSY,
	VXML_XFER_NEAR_END_DISCONNECT,
	VXML_XFER_FAR_END_DISCONNECT,
	VXML_XFER_MAXTIME_DISCONNECT,
	VXML_XFER_NETWORK_DISCONNECT,
	VXML_XFER_UNKNOWN,
	VXML_XFER_BLIND_OK	/* blind transfer handed over: the caller is gone */
};

struct vxml_record_req {
	int		 beep;
	int		 maxtime_ms;
	int		 finalsilence_ms;
	int		 dtmfterm;	/* a key ends the recording */
	const char	*type;		/* MIME type wanted, e.g. audio/x-wav */
};

/* status 0: recorded (nothing at all, duration and len 0: noinput); -1:
 * the platform could not record (error.noresource).  url: where the
 * platform stored it (the variable's value, kept in the result), may be
 * NULL.  audio is copied: it goes with <submit namelist> as a file part. */
struct vxml_record_res {
	int		 status;
	const void	*audio;
	size_t		 len;
	const char	*type;
	const char	*url;
	int		 duration_ms;
	char		 termchar;	/* the key that ended it, or 0 */
	int		 maxtime;	/* ended because maxtime was reached */
};

enum vxml_end {
	VXML_END_EXIT,		/* <exit>, or the document ran out of dialogs */
	VXML_END_DISCONNECT,	/* <disconnect>, or a blind transfer */
	VXML_END_HANGUP,	/* the caller hung up */
	VXML_END_ERROR		/* an uncaught error event ended it */
};

struct vxml_result_field {
	char	*name;
	char	*value;		/* JSON text */
};

/* How a session ended.  Owned by the interpreter, valid during done(). */
struct vxml_result {
	enum vxml_end		 how;
	char			*exit_value;	/* JSON text of <exit expr>/<exit namelist>, or NULL */
	struct vxml_result_field *fields;	/* every filled form item, in fill order */
	size_t			 nfields;
	struct vxml_result_field *recordings;	/* <record> name -> URL (JSON string) */
	size_t			 nrecordings;
	char			*event;		/* for VXML_END_ERROR: e.g. "error.badfetch" */
	char			*message;
	char			*url;		/* document where it happened */
	int			 line;		/* 0 when unknown */
};

/* Requests (and every string, array and fallback list in them) are
 * borrowed for the duration of the callback: the platform copies what it
 * keeps, e.g. the queued prompt items. */
struct vxml_platform {
	void	(*fetch)(void *arg, const struct vxml_fetch_req *req);
	void	(*prompt)(void *arg, const struct vxml_prompt_item *item);
	/* Plays what prompt() queued; vxml_prompts_done() when it has played
	 * out.  After stop_prompts() (barge-in) the dropped queue gets no
	 * vxml_prompts_done(). */
	void	(*play)(void *arg);
	void	(*stop_prompts)(void *arg);
	/* One timer per session: a new timer_set() replaces the running one;
	 * a cancelled or replaced timer must not fire. */
	void	(*timer_set)(void *arg, int ms);
	void	(*timer_cancel)(void *arg);
	void	(*transfer)(void *arg, const struct vxml_transfer_req *req);
	void	(*record)(void *arg, const struct vxml_record_req *req);
	void	(*disconnect)(void *arg);
	void	(*log)(void *arg, const char *label, const char *text);
	void	(*done)(void *arg, const struct vxml_result *res);
};

/* session.connection.*; any field may be NULL. */
struct vxml_session_info {
	const char	*local_uri;
	const char	*remote_uri;
	const char	*protocol_name;		/* "sip" */
	const char	*protocol_version;	/* "2.0" */
	const char	*originator;		/* "local" or "remote" */
	const char	*redirect;		/* JSON array text, or NULL */
	const char	*aai;
};

/* The platform table and info are copied; arg is passed to each callback.
 * Every callback but log is required (NULL otherwise). */
struct vxml_session *vxml_session_new(const struct vxml_platform *p, void *arg,
	    const struct vxml_session_info *info);
/* Fetches url and runs it.  Returns -1 (and calls nothing) if s already started. */
int	vxml_session_start(struct vxml_session *s, const char *url);
void	vxml_session_free(struct vxml_session *s);

/* Answers and input from the platform. */
void	vxml_fetch_done(struct vxml_session *s, unsigned id,
	    const struct vxml_fetch_res *res);
void	vxml_prompts_done(struct vxml_session *s);
void	vxml_timer_fired(struct vxml_session *s);
void	vxml_dtmf(struct vxml_session *s, char digit);
void	vxml_hangup(struct vxml_session *s);
void	vxml_transfer_done(struct vxml_session *s,
	    enum vxml_transfer_outcome outcome, int duration_ms);
void	vxml_record_done(struct vxml_session *s, const struct vxml_record_res *r);

/* hook, when set, runs when the ECMAScript engine meets a fatal error,
 * just before the process aborts: the platform's last words (its deferred
 * log lines, say).  Set it before the first session. */
void	vxml_set_fatal_hook(void (*hook)(void));

/* The result as a JSON object (malloc'ed, the caller frees), e.g.
 * {"end":"error","event":"error.badfetch","message":...,"url":...,"line":3,
 *  "fields":{"pin":"1234"},"recordings":{...},"exit":...} */
char	*vxml_result_json(const struct vxml_result *r);

#endif
