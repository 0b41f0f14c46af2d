/* ringq-gateway's private header: the HTTP API (http.c), request
 * validation (validate.c), the call view of GET (view.c) and the Redis
 * glue (store.c). */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "util.h"

#define GW_SAY_MAX		4000
#define GW_CALLER_ID_NAME_MAX	64
#define GW_TO_MAX		256
#define GW_CALLBACK_URL_MAX	2048
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
};

/* A validated POST /v1/calls body.  The strings are borrowed from root,
 * which the call owns (gw_call_clear). */
struct gw_call {
	json_t		*root;
	const char	*to;
	enum rq_target_kind kind;
	const char	*say;
	const char	*caller_id;		/* NULL when absent */
	const char	*callback_url;		/* NULL when absent */
	char		*metadata;		/* compact JSON or NULL; owned */
	json_t		*metadata_obj;		/* borrowed from root */
	int		 priority;
	uint64_t	 not_before_ms;
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

/* Called once with 0 on success, -1 when Redis failed (the reason is
 * logged; nothing was written), or, for gw_store_create only, -2 when the
 * connection was lost before Redis answered (the job may exist).  For
 * gw_store_get, job and timeline are flat field/value arrays borrowed until
 * the callback returns (njob 0: no such job). */
typedef void	gw_store_done_cb(int rc, void *arg);
typedef void	gw_store_get_cb(int rc, const char *const *job, size_t njob,
		    const char *const *timeline, size_t ntimeline, void *arg);

struct gw_store	*gw_store_new(struct event_base *base, const char *host,
		    int port);
/* Disconnects for good: every pending callback runs first, with an
 * error.  gw_store_free also frees st. */
void		 gw_store_close(struct gw_store *st);
void		 gw_store_free(struct gw_store *st);
int		 gw_store_connected(const struct gw_store *st);
/* Writes a new job in one Lua script (atomic).  Returns -1 without calling
 * cb when Redis is not connected or the command cannot be sent. */
int		 gw_store_create(struct gw_store *st, const char *id,
		    const char *tenant, const struct gw_call *call,
		    int max_attempts, uint64_t created_ms,
		    gw_store_done_cb *cb, void *arg);
int		 gw_store_get(struct gw_store *st, const char *id,
		    gw_store_get_cb *cb, void *arg);
/* Splits the read script's reply { job pairs, timeline pairs } into two
 * arrays of pointers into r (the caller frees the arrays, not the strings).
 * Returns 0, or -1 with both arrays NULL when r has another shape. */
struct redisReply;
int		 gw_store_parse_get(const struct redisReply *r,
		    const char ***job, size_t *njob, const char ***tl,
		    size_t *ntl);

/* intake.c: the one path every request takes, whatever its origin:
 * policy, store, EVENT queued. */
struct rq_evout;
struct gw_intake;

struct gw_intake_result {
	int		 rc;	/* 0 queued; -1 refused or failed (err); -2 the
				 * store lost its answer: the job may exist */
	char		 id[RQ_ID_LEN + 1];
	uint64_t	 created_ms;
	struct gw_error	 err;
	const struct gw_call *call;	/* as queued (after policy) */
};
/* Runs exactly once per submitted request; res is borrowed until it
 * returns. */
typedef void	gw_intake_cb(const struct gw_intake_result *res, void *arg);

struct gw_intake *gw_intake_new(const struct rq_config *cfg,
		    struct gw_store *st, struct rq_evout *eo);
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

struct gw_http	*gw_http_new(struct event_base *base, const struct rq_config *cfg,
		    struct gw_store *st, struct gw_intake *in);
/* Stops accepting connections; those open are still served. */
void		 gw_http_close(struct gw_http *h);
void		 gw_http_free(struct gw_http *h);

#endif
