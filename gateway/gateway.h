/* ringq-gateway's private header: the HTTP API (http.c), request
 * validation (validate.c), the call view of GET (view.c), the Redis
 * glue (store.c) and the policy engine (policy.c, policy_store.c). */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "hours.h"
#include "util.h"

#define GW_SAY_MAX		4000
#define GW_CALLER_ID_NAME_MAX	64
#define GW_TO_MAX		256
#define GW_CALLBACK_URL_MAX	2048
#define GW_APP_URL_MAX		2048
#define GW_METADATA_MAX		8192
#define GW_PRIORITY_DEFAULT	5
/* not_before at most this far ahead: keeps rq:ready scores meaningful. */
#define GW_NOT_BEFORE_MAX_MS	(366ULL * 24 * 3600 * 1000)

/* An API error: the HTTP status and the body's code, field and message. */
struct gw_error {
	int		 status;
	char		 code[32];
	char		 field[32];		/* "" when no field is at fault */
	char		 message[320];
	int		 retry_after;		/* s, for 429's Retry-After; 0 none */
};

/* A validated POST /v1/calls body.  The strings are borrowed from root,
 * which the call owns (gw_call_clear). */
struct gw_call {
	json_t		*root;
	const char	*to;
	enum rq_target_kind kind;
	/* exactly one of say and app_url is set */
	const char	*say;			/* the text to speak */
	const char	*app_url;		/* the VoiceXML app */
	const char	*caller_id;		/* NULL when absent */
	const char	*callback_url;		/* NULL when absent */
	char		*metadata;		/* compact JSON or NULL; owned */
	json_t		*metadata_obj;		/* borrowed from root */
	int		 priority;
	uint64_t	 not_before_ms;
	uint64_t	 not_after_ms;		/* 0: none */
	/* not_before / not_after given without an offset: the field holds
	 * the wall-clock time read as UTC until the policy engine knows
	 * the callee's zone (gw_policy_check) */
	int		 not_before_local;
	int		 not_after_local;
	/* policy (policy.c, docs/policy.md) */
	const char	*business;		/* [business NAME]; NULL when absent */
	const char	*time_zone;		/* callee's IANA zone; NULL: guess */
	char		*idem_key;		/* Idempotency-Key; owned; NULL */
	char		 policy[64];		/* decision: "accept", "defer:..." */
	/* the windows that must be open when it is dialled (hours.h; owned,
	 * NULL for none), and when the one it was planned in closes */
	char		*hours;
	uint64_t	 hours_until_ms;
};

/* validate.c: pure functions, no I/O. */

/* Parses and validates a request body for tenant at time now_ms.  Returns
 * 0 with call filled (gw_call_clear it), or -1 with err filled (call is
 * left empty).  max_body is the size limit in bytes (a body of max_body
 * bytes or more is refused with 413). */
int	gw_call_parse(const char *body, size_t len, size_t max_body,
	    const struct rq_tenant *tenant, uint64_t now_ms,
	    struct gw_call *call, struct gw_error *err);
/* Validates an already parsed body; takes a reference to root on success. */
int	gw_call_validate(json_t *root, const struct rq_tenant *tenant,
	    uint64_t now_ms, struct gw_call *call, struct gw_error *err);
void	gw_call_clear(struct gw_call *call);
/* Checks not_before and not_after once both are absolute: a past
 * not_before means now, at most GW_NOT_BEFORE_MAX_MS ahead, not_after
 * after not_before.  Returns 0, or -1 with a 400 naming the field. */
int	gw_call_check_window(struct gw_call *call, uint64_t now_ms,
	    struct gw_error *err);
/* A date-time as the API takes it: RFC 3339 with an offset (*local 0), or
 * without one, "2026-11-22T10:00:00" (*local 1: *ms is that wall-clock
 * time read as UTC).  Returns 0, or -1 when s is neither. */
int	gw_time_parse(const char *s, uint64_t *ms, int *local);
/* The UTC time of a wall-clock time (read as UTC: wall_ms) in zone.  In a
 * DST gap or overlap, mktime's choice.  Returns 0, or -1. */
int	gw_local_to_utc(const char *zone, uint64_t wall_ms, uint64_t *ms);
/* Is u an acceptable app_url: an absolute http or https URL with a host,
 * without user info, spaces, control or non-ASCII bytes, at most
 * GW_APP_URL_MAX bytes?  Returns 0, or -1 with the reason (for people,
 * lower case, no final dot) in why. */
int	gw_app_url_check(const char *u, char *why, size_t whylen);
/* Is s an acceptable caller id (E.164, sip: URI or a short name)? */
int	gw_caller_id_valid(const char *s);
void	gw_error_set(struct gw_error *err, int status, const char *code,
	    const char *field, const char *fmt, ...)
	    __attribute__((format(printf, 5, 6)));
/* The error as a new JSON body {"error": {"code", "field"?, "message"}}. */
json_t	*gw_error_obj(const struct gw_error *err);

/* view.c: the answer to GET /v1/calls/{id}, from the Redis hashes given
 * as flat [field, value, ...] arrays (borrowed).  Returns a new object,
 * or NULL when the job does not exist or belongs to another tenant. */
json_t	*gw_view_call(const char *id, const char *tenant,
	    const char *const *job, size_t njob,
	    const char *const *timeline, size_t ntimeline);

/* store.c: hiredis on the event loop, reconnecting every second. */
struct event_base;
struct gw_store;

/* For gw_store_get, job and timeline are flat field/value arrays borrowed
 * until the callback returns (rc -1: Redis failed; njob 0: no such job). */
typedef void	gw_store_get_cb(int rc, const char *const *job, size_t njob,
		    const char *const *timeline, size_t ntimeline, void *arg);

struct gw_store	*gw_store_new(struct event_base *base, const char *host,
		    int port);
/* Disconnects for good: every pending callback runs first, with an
 * error.  gw_store_free also frees st. */
void		 gw_store_close(struct gw_store *st);
void		 gw_store_free(struct gw_store *st);
int		 gw_store_connected(const struct gw_store *st);
/* Whether commands sent wait for their answers. */
int		 gw_store_waiting(const struct gw_store *st);
int		 gw_store_get(struct gw_store *st, const char *id,
		    gw_store_get_cb *cb, void *arg);
/* Lua: that reply, { job's hash, legacy timeline's hash } (KEYS[1],
 * KEYS[2]).  The legacy key is read with pcall: nothing writes it now,
 * and one of another type (an operator's mistake) must neither hide the
 * call nor fail a cancel or a patch after its writes. */
#define GW_LUA_CALL_HASHES \
	"{ redis.call('HGETALL', KEYS[1]), (function(t) if t.err then " \
	"return {} end return t end)(redis.pcall('HGETALL', KEYS[2])) }"
/* Splits the read script's reply { job's hash, legacy timeline's hash }
 * into the job's fields and the timeline's entries (the job's fields that
 * begin with a digit, then the legacy hash's not among them): two arrays
 * of pointers into r (the caller frees the arrays, not the strings).
 * Returns 0, or -1 with both arrays NULL when r has another shape. */
struct redisReply;
int		 gw_store_parse_get(const struct redisReply *r,
		    const char ***job, size_t *njob, const char ***tl,
		    size_t *ntl);

/* intake.c: the one path every request takes, whatever its origin: the
 * pure policy checks, then one script for the Redis checks and the job
 * (which records EVENT queued in rq:events). */
struct gw_intake;

struct gw_intake_result {
	int		 rc;	/* 0 queued; -1 refused or failed (err); -2 the
				 * store lost its answer: the job may exist */
	char		 id[RQ_ID_LEN + 1];
	uint64_t	 created_ms;
	struct gw_error	 err;
	const struct gw_call *call;	/* as queued (after policy) */
	int		 replay;	/* idempotency key seen: id is the first
					 * call's, nothing new was queued */
};
/* Runs exactly once per submitted request; res is borrowed until it
 * returns. */
typedef void	gw_intake_cb(const struct gw_intake_result *res, void *arg);

struct gw_intake *gw_intake_new(const struct rq_config *cfg,
		    struct gw_store *st);
void		 gw_intake_free(struct gw_intake *in);
/* Takes ownership of call (leaving it empty).  Returns 0 when cb will run
 * later, or -1 with err filled when the request is refused at once (cb
 * never runs). */
int		 gw_intake_submit(struct gw_intake *in,
		    const struct rq_tenant *tenant, struct gw_call *call,
		    uint64_t now_ms, gw_intake_cb *cb, void *arg,
		    struct gw_error *err);

/* http.c */
struct gw_http;
struct evhttp_request;

/* The tenant of the request's bearer key, or NULL after answering 401
 * (with WWW-Authenticate).  The key itself is never logged. */
const struct rq_tenant *gw_http_auth(const struct rq_config *cfg,
		    struct evhttp_request *req);
/* json_out.c: what json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY, plus
 * JSON_ENSURE_ASCII when ascii) returns, much faster; its length in *len
 * (may be NULL).  NULL on invalid UTF-8, nesting deeper than 2048 or no
 * memory.  The caller frees it. */
char		*gw_json_dumps(const json_t *v, int ascii, size_t *len);
/* Answers req with body as compact JSON (every answer of the API is).
 * The gw_reply_* functions write the answer at once: req, and any string
 * borrowed from it (URI, headers), may be freed before they return. */
void		 gw_reply_json(struct evhttp_request *req, int status,
		    json_t *body);
/* Answers req with an error of status and code, msg as its message (no
 * field, no Retry-After). */
void		 gw_reply_simple(struct evhttp_request *req, int status,
		    const char *code, const char *msg);
/* Answers req with 404 not_found: no call has this id (or not this
 * tenant's: the same answer, so ids of others cannot be probed). */
void		 gw_reply_no_call(struct evhttp_request *req);
/* Answers req with 503 unavailable: the call store (Redis) did not
 * answer, nothing was done. */
void		 gw_reply_unavailable(struct evhttp_request *req);
/* Answers req with the call view of the job and timeline fields read
 * (gw_view_call), or 404 when they are not tenant's call. */
void		 gw_reply_call(struct evhttp_request *req, const char *id,
		    const char *tenant, const char *const *job, size_t njob,
		    const char *const *timeline, size_t ntimeline);
/* Answers req with err as {"error": {...}}, and Retry-After when set. */
void		 gw_reply_error(struct evhttp_request *req,
		    const struct gw_error *err);

struct gw_http	*gw_http_new(struct event_base *base, const struct rq_config *cfg,
		    struct gw_store *st, struct gw_intake *in);
/* Stops accepting connections; those open are still served. */
void		 gw_http_close(struct gw_http *h);
void		 gw_http_free(struct gw_http *h);

/* E-mail requests (docs/email.md): smtp_session.c, smtp_server.c,
 * mail_request.c, dkim.c. */
#define GW_SMTP_LINE_MAX	1000	/* with CRLF: RFC 5321 4.5.3.1.6 */

/* What a session asks of its transport (smtp_server.c, or a test).  The
 * session never frees itself: after close() the owner frees it. */
struct gw_smtp_io {
	void	(*write)(void *arg, const char *buf, size_t len);
	/* The 220 to STARTTLS is written: start TLS before reading more. */
	void	(*starttls)(void *arg);
	/* A message is complete (data borrowed until the answer): answer
	 * with gw_smtp_session_answer(), now or later. */
	void	(*message)(void *arg, const struct rq_tenant *tenant,
		    const char *data, size_t len);
	/* The last reply is written: close the connection. */
	void	(*close)(void *arg);
	void	*arg;
};
struct gw_smtp_session;

/* smtp_session.c: the RFC 5321 state machine; io is copied. */
struct gw_smtp_session *gw_smtp_session_new(const struct rq_config *cfg,
		    const struct gw_smtp_io *io, int tls_available);
void		 gw_smtp_session_free(struct gw_smtp_session *s);
void		 gw_smtp_session_start(struct gw_smtp_session *s);
/* Takes input bytes; returns how many were consumed.  It stops early
 * while a message waits for its answer: feed the rest afterwards. */
size_t		 gw_smtp_session_feed(struct gw_smtp_session *s,
		    const char *buf, size_t len);
int		 gw_smtp_session_waiting(const struct gw_smtp_session *s);
/* TLS is up: the session starts over (RFC 3207 4.2). */
void		 gw_smtp_session_tls_started(struct gw_smtp_session *s);
/* The answer to the message: one full reply line without CRLF. */
void		 gw_smtp_session_answer(struct gw_smtp_session *s,
		    const char *reply);
/* 421 and close: idle too long, or the server is stopping. */
void		 gw_smtp_session_abort(struct gw_smtp_session *s,
		    const char *reply);

/* mail_request.c: a raw message (RFC 5322, parsed with GMime) to a
 * validated call.  Returns 0 with call filled and the Message-ID (without
 * <>; "" when absent) in msgid, or -1 with err filled. */
int		 gw_mail_request_parse(const char *data, size_t len,
		    const struct rq_tenant *tenant, uint64_t now_ms,
		    struct gw_call *call, char *msgid, size_t msgidlen,
		    struct gw_error *err);

/* dkim.c: 0 when data carries a valid DKIM signature whose d= is the
 * tenant's dkim_domain (key pinned in dkim_key, else from DNS); -1 with a
 * reason a person can act on in why; -2 (why too) when none verified but
 * one might later: its key's DNS lookup failed, or the verifier could not
 * start (the sender should try again: RFC 6376's TEMPFAIL).  It starts
 * no DNS query GW_DKIM_VERIFY_MAX_MS after it began (a lookup not done
 * then fails for now). */
#define GW_DKIM_VERIFY_MAX_MS	15000
int		 gw_dkim_verify(const struct rq_tenant *tenant,
		    const char *data, size_t len, char *why, size_t whylen);

/* http_conns.c: the HTTP connections counted for the caps ([gateway]
 * http_max_clients, http_max_clients_per_ip), from their first request
 * until they close. */
#define GW_ADDR_LEN	56	/* an IPv6 address (or /64) as text, NUL */
struct gw_http_conns;
struct gw_http_conns *gw_http_conns_new(int max_all, int max_per_addr);
void		 gw_http_conns_free(struct gw_http_conns *c);
/* Counts evcon, from addr, unless it is counted already (*newconn 0).
 * Returns 0, or -1 (http_max_clients) or -2 (per address) when it is
 * over a cap: then it is not counted. */
int		 gw_http_conns_admit(struct gw_http_conns *c, const void *evcon,
		    const char *addr, int *newconn);
void		 gw_http_conns_forget(struct gw_http_conns *c,
		    const void *evcon);
int		 gw_http_conns_count(const struct gw_http_conns *c);
/* The address a client counts under: addr, or for IPv6 its /64 in key
 * (keylen >= GW_ADDR_LEN). */
const char	*gw_http_conns_key(const char *addr, char *key, size_t keylen);

/* accept_guard.c: a listener that cannot accept (no file descriptor left)
 * pauses instead of spinning.  Free the guard before its listener. */
struct evconnlistener;
struct gw_accept_guard;
struct gw_accept_guard *gw_accept_guard_new(struct event_base *base,
		    struct evconnlistener *lst, const char *what);
void		 gw_accept_guard_free(struct gw_accept_guard *g);

/* http_deadline.c: an HTTP connection's bufferevent (evhttp_set_bevcb)
 * that closes the connection when a request does not arrive whole within
 * GW_HTTP_REQUEST_MAX_S of its start or of the gateway's last answer on
 * it (evhttp's own timeout, GW_HTTP_SILENT_MAX_S, restarts at every byte
 * read); rate logs the closes.  NULL: evhttp makes its own.  A request
 * arrived whole on bev: _request; its connection closing: _closed. */
#define GW_HTTP_REQUEST_MAX_S	30
#define GW_HTTP_SILENT_MAX_S	30
struct bufferevent;
struct log_rate;
struct bufferevent *gw_http_deadline_bev(struct event_base *base,
		    struct log_rate *rate);
void		 gw_http_deadline_request(struct bufferevent *bev);
void		 gw_http_deadline_closed(struct bufferevent *bev);
/* Frees the deadlines left, once evhttp freed its connections. */
void		 gw_http_deadlines_free(void);

/* smtp_server.c: the listener, its caps and timeouts, TLS, and the path
 * from a message to gw_intake_submit. */
struct gw_smtp;
struct gw_smtp	*gw_smtp_new(struct event_base *base, const struct rq_config *cfg,
		    struct gw_intake *in);
void		 gw_smtp_close(struct gw_smtp *sm);
/* -n and start: a TLS certificate and key that are set must load and
 * belong together; -1 with the reason in err. */
int		 gw_smtp_check(const struct rq_config *cfg, char *err,
		    size_t errlen);
void		 gw_smtp_free(struct gw_smtp *sm);

/* The calls API beyond create and get (docs/api.md): DELETE and PATCH
 * /v1/calls/{id} and GET /v1/calls, in calls_api.c and store_calls.c;
 * gw_store_command is in store.c. */
#define GW_LIST_LIMIT_DEFAULT	50
#define GW_LIST_LIMIT_MAX	200
#define GW_CANCEL_REASON	"canceled_by_request"

/* Any command on the store's connection (with its reconnection and
 * watchdog); cb runs exactly once, r NULL when the connection failed, r
 * borrowed until cb returns.  id names the call in log lines (or NULL).
 * An EVAL goes out as EVALSHA, and again as EVAL only on NOSCRIPT (the
 * script did not run), so the script text crosses the wire once.
 * Returns -1 without calling cb when it cannot be sent. */
typedef void	gw_store_reply_cb(struct redisReply *r, void *arg);
int		 gw_store_command(struct gw_store *st, const char *id,
		    int argc, const char **argv, gw_store_reply_cb *cb,
		    void *arg);
/* store_calls.c: cancel and list, each one Lua script. */
enum gw_cancel_outcome {
	GW_CANCEL_NOT_FOUND,	/* no such job for this tenant */
	GW_CANCEL_DONE,		/* removed from its queue, now canceled */
	GW_CANCEL_ENDED,	/* already terminal */
	GW_CANCEL_STARTED,	/* claimed by a telserver: too late */
};
struct gw_cancel_result {
	int		 rc;		/* 0; -1 Redis failed; -2 no answer:
					 * it may or may not have run */
	enum gw_cancel_outcome outcome;
	uint64_t	 attempt;	/* of the canceled event (DONE) */
	const char *const *job;		/* flat pairs, borrowed (DONE) */
	size_t		 njob;
	const char *const *timeline;
	size_t		 ntimeline;
};
typedef void	gw_store_cancel_cb(const struct gw_cancel_result *res,
		    void *arg);
int		 gw_store_cancel(struct gw_store *st, const char *id,
		    const char *tenant, uint64_t now_ms,
		    gw_store_cancel_cb *cb, void *arg);
/* The cancel script's reply as a result (pointers into r; the caller frees
 * res->job and res->timeline).  Returns 0, or -1 when r has another shape. */
int		 gw_cancel_parse(const struct redisReply *r,
		    struct gw_cancel_result *res);

/* PATCH /v1/calls/{id}: a new not_before (already through the policy
 * engine: policy is the job's new policy field) and/or priority, applied
 * only while the job waits in rq:delayed or rq:ready. */
struct gw_patch {
	int		 has_not_before;
	uint64_t	 not_before_ms;
	int		 not_before_local;	/* as in struct gw_call */
	int		 has_priority;
	int		 priority;
	char		 policy[64];		/* "" = leave it */
	/* with a new not_before: the call's hours as the policy engine
	 * planned them ("" = none) */
	char		 hours[RQ_HOURS_TEXT_MAX];
	uint64_t	 hours_until_ms;
};
enum gw_patch_outcome {
	GW_PATCH_NOT_FOUND,	/* no such job for this tenant */
	GW_PATCH_DONE,		/* re-scored */
	GW_PATCH_ENDED,		/* already terminal */
	GW_PATCH_STARTED,	/* dispatched or being dialled */
	GW_PATCH_NOT_AFTER,	/* the new not_before is not before not_after */
};
struct gw_patch_result {
	int		 rc;		/* as gw_cancel_result's */
	enum gw_patch_outcome outcome;
	const char *const *job;		/* flat pairs, borrowed (DONE) */
	size_t		 njob;
	const char *const *timeline;
	size_t		 ntimeline;
};
typedef void	gw_store_patch_cb(const struct gw_patch_result *res,
		    void *arg);
/* Parses a PATCH body.  Returns 0, or -1 with a 400 or 413 in err and p
 * left empty. */
int		 gw_patch_parse(const char *body, size_t len, size_t max_body,
		    struct gw_patch *p, struct gw_error *err);
int		 gw_store_patch(struct gw_store *st, const char *id,
		    const char *tenant, const struct gw_patch *p,
		    uint64_t now_ms, gw_store_patch_cb *cb, void *arg);
/* The patch script's reply as a result (pointers into r; the caller frees
 * res->job and res->timeline).  Returns 0, or -1 when r has another shape. */
int		 gw_patch_result_parse(const struct redisReply *r,
		    struct gw_patch_result *res);

/* A validated GET /v1/calls query. */
struct gw_list_query {
	char		 status[16];	/* "" = any */
	uint64_t	 since_ms;	/* 0 = from the start */
	int		 limit;
	int		 has_cursor;	/* continue below (cursor_ms, cursor_id) */
	uint64_t	 cursor_ms;
	char		 cursor_id[RQ_ID_LEN + 1];
};
/* Parses a query string (NULL or "" = defaults).  Returns 0, or -1 with a
 * 400 naming the parameter in err. */
int		 gw_list_query_parse(const char *query, struct gw_list_query *q,
		    struct gw_error *err);
/* The opaque cursor: URL-safe base64 of "<created_ms>:<id>". */
void		 gw_cursor_encode(uint64_t ms, const char *id, char *out,
		    size_t outlen);
int		 gw_cursor_decode(const char *s, uint64_t *ms,
		    char id[RQ_ID_LEN + 1]);
/* rc 0 with body (a new {"calls": [...], "next_cursor": ...}), or -1. */
typedef void	gw_store_list_cb(int rc, json_t *body, void *arg);
int		 gw_store_list(struct gw_store *st, const char *tenant,
		    const struct gw_list_query *q, gw_store_list_cb *cb,
		    void *arg);
/* The list script's reply as the answer's body (new), or NULL when r has
 * another shape. */
json_t		*gw_list_body(const struct redisReply *r);

/* calls_api.c: answers GET/HEAD /v1/calls and DELETE and PATCH
 * /v1/calls/{id} (cmd is an enum evhttp_cmd_type) and returns 1, or
 * returns 0 when the request is not one of these. */
struct evhttp_request;
/* recordings.c: GET /v1/calls/{id}/recordings/{name}.  Returns 1 when path
 * was one of its own (answered), else 0. */
int		 gw_recordings_route(const struct rq_config *cfg,
		    struct gw_store *st, struct evhttp_request *req,
		    const char *path, int cmd);
int		 gw_calls_api_route(const struct rq_config *cfg,
		    struct gw_store *st, struct gw_intake *in,
		    struct evhttp_request *req, const char *path, int cmd);

/* The policy engine (docs/policy.md): policy.c holds the pure checks
 * (E.164, destinations, premium rate, calling and business hours),
 * policy_store.c the Redis ones (idempotency, do-not-call, rate and
 * concurrency limits) in the same Lua script as the job's creation, dnc.c
 * the do-not-call endpoints. */
/* An idempotency key is kept in a hash a period of this long, for one to
 * two periods (common/keys.h, RQ_KEY_IDEM): a day. */
#define GW_IDEM_TTL_S		(24 * 3600)
/* E-mail requests use "mail:<Message-ID>" as their key, by the week. */
#define GW_IDEM_MAIL_PREFIX	"mail:"
#define GW_IDEM_MAIL_TTL_S	(7 * 24 * 3600)
#define GW_IDEM_KEY_MAX		255

/* The pure checks' outcome for an accepted request. */
struct gw_policy {
	int		 defer;		/* not_before moved to an opening */
	char		 reasons[48];	/* comma list: "calling_hours" ... */
	char		 number[17];	/* E.164 for the DNC lists; "" (SIP) */
};
/* Runs the pure checks of call (to, business, time_zone) for tenant at
 * now_ms.  Returns 0 (accepted, or deferred: call->not_before_ms moved
 * and call->policy set), or -1 with err filled. */
int		 gw_policy_check(const struct rq_config *cfg,
		    const struct rq_tenant *tenant, struct gw_call *call,
		    uint64_t now_ms, struct gw_policy *pol,
		    struct gw_error *err);
/* A job's policy field and not_before as the API shows them: a new
 * {"decision", "reasons", "not_before"?}, or NULL when policy is NULL. */
json_t		*gw_policy_obj(const char *policy, uint64_t not_before_ms);
/* Is key an acceptable Idempotency-Key (1 to 255 printable ASCII, not
 * beginning with GW_IDEM_MAIL_PREFIX)? */
int		 gw_idem_key_valid(const char *key);

/* policy_store.c: the Redis checks and the job's creation, one script. */
struct gw_policy_verdict {
	int		 rc;		/* 0 queued; 1 replay (replay_id, nothing
					 * new queued); -1 refused (err); -2 the
					 * connection was lost before the answer:
					 * the job may exist; -3 Redis failed:
					 * not queued (err) */
	char		 replay_id[RQ_ID_LEN + 1];
	struct gw_error	 err;
};
typedef void	gw_policy_verdict_cb(const struct gw_policy_verdict *v,
		    void *arg);
/* One Lua script (atomic, one round trip, docs/policy.md): the Redis
 * checks of call (idempotency, do-not-call, rate and concurrency limits;
 * pol from gw_policy_check) and, when they pass, the job id with the
 * tenant's retry policy, its EVENT queued in rq:events, its place in
 * rq:delayed, the rate and concurrency slots and last the idempotency key.
 * cb runs exactly once; returns -1 without calling it when Redis is not
 * connected or the command cannot be sent. */
int		 gw_policy_store_create(struct gw_store *st,
		    const struct rq_tenant *tenant, const struct gw_call *call,
		    const struct gw_policy *pol, const char *id,
		    uint64_t created_ms, gw_policy_verdict_cb *cb, void *arg);
/* That script (its KEYS and ARGV are described with it); ringq-redis.so's
 * ringq.create is the same in C (tests/integration/rq_module_diff.c). */
extern const char gw_create_lua[];
/* The script's reply as a verdict (for tests).  Returns 0, or -1 when r
 * has another shape. */
int		 gw_policy_verdict_parse(const struct redisReply *r,
		    struct gw_policy_verdict *v);

/* dnc.c: PUT, DELETE and GET /v1/dnc/{number}, POST /v1/optout and the
 * customers' signed links GET /optout?n=&sig=.
 * Answers and returns 1, or returns 0 when path is not one of these. */
int		 gw_dnc_route(const struct rq_config *cfg, struct gw_store *st,
		    struct evhttp_request *req, const char *path, int cmd);
/* The signature of a customer's opt-out link for an E.164 number: hex
 * HMAC-SHA256 keyed with [gateway] optout_secret.  -1 when no secret. */
int		 gw_optout_sig(const char *secret, const char *e164,
		    char out[65]);

#endif
