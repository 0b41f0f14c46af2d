/* The HTTP API of ringq-gateway on libevent's evhttp: routing, bearer-key
 * authentication, size limits, and the three endpoints (POST /v1/calls,
 * GET /v1/calls/{id}, GET /healthz).  Every answer is JSON. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "gateway.h"
#include "log.h"
#include "metrics.h"
#include "msg.h"

#define HTTP_TIMEOUT_S		GW_HTTP_SILENT_MAX_S
#define HTTP_MAX_HEADERS	16384
#define HTTP_BODY_CAP_MIN	(1024 * 1024)
#define CALLS_PATH		"/v1/calls"

struct gw_http {
	struct event_base	*base;
	const struct rq_config	*cfg;
	struct gw_store		*st;
	struct gw_intake	*in;
	struct evhttp		*http;
	struct evhttp_bound_socket *sock;
	struct gw_accept_guard	*guard;
	struct gw_http_conns	*conns;		/* for the connection caps */
	struct log_rate		 refused;	/* their log line */
	struct log_rate		 too_slow;	/* http_deadline.c's */
	int			 stopping;	/* gw_http_close: no new work */
};

/*
 * A request waiting for Redis.  evhttp keeps an evhttp_request alive until
 * we answer it, even when the client goes away or times out meanwhile
 * (evhttp then detaches it from its connection, and evhttp_send_reply()
 * only frees it).  So the rule is simple: every request is answered
 * exactly once, by the store callback, which hiredis runs exactly once
 * (with an error when Redis goes away or the store is freed).
 */
struct gw_req {
	struct gw_http		*h;
	struct evhttp_request	*req;
	const struct rq_tenant	*tenant;	/* borrowed from the config */
	char			 id[RQ_ID_LEN + 1];
	struct gw_call		 call;
};

static struct rq_metric	*m_accepted;

/* Every JSON answer of the API, by HTTP status (docs/metrics.md).  The
 * counter of a status is looked up once: this runs for every request. */
static void
gw_metric_response(int status)
{
	static struct rq_metric *by_status[600];
	struct rq_metric *m;
	char labels[32];

	if (status >= 100 && status < 600 && by_status[status] != NULL) {
		rq_metric_inc(by_status[status]);
		return;
	}
	snprintf(labels, sizeof(labels), "code=\"%d\"", status);
	m = rq_counter("ringq_gateway_http_responses_total", labels,
	    "API answers by HTTP status: 202 accepted, 4xx refused, 503 "
	    "Redis unavailable or too many connections");
	if (status >= 100 && status < 600)
		by_status[status] = m;
	rq_metric_inc(m);
}

/*
 * Sends req's answer (status, its output buffer) and writes it to the
 * socket at once.  evhttp's bufferevent writes only once the loop sees
 * the socket writable: an epoll_ctl to watch for it, a wake-up, the write,
 * an epoll_ctl to stop watching.  The socket nearly always takes an
 * answer whole; then the write callback evhttp set runs (keep-alive or
 * close, as when the bufferevent drains its output).  Whatever the socket
 * does not take, the bufferevent writes as before.  The write is the
 * bufferevent's own (bufferevent_sock.c's writecb): it keeps the front of
 * its output frozen but while it writes, so unfreeze, write, freeze.  The
 * caller may not touch req, nor strings it borrowed from it, after this:
 * the request may be freed (and the connection closed) before it returns.
 */
static void
send_now(struct evhttp_request *req, int status)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev;
	struct evbuffer *out;
	int n;

	evhttp_send_reply(req, status, NULL, NULL);	/* req may be gone */
	if (evcon == NULL ||
	    (bev = evhttp_connection_get_bufferevent(evcon)) == NULL)
		return;
	out = bufferevent_get_output(bev);
	evbuffer_unfreeze(out, 1);
	n = evbuffer_write(out, bufferevent_getfd(bev));
	evbuffer_freeze(out, 1);
	if (n > 0 && evbuffer_get_length(out) == 0)
		bufferevent_trigger(bev, EV_WRITE, 0);	/* may free evcon */
}

void
gw_reply_json(struct evhttp_request *req, int status, json_t *body)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	size_t len;
	char *s;

	/* ASCII only: stored text comes back as valid JSON whatever the
	 * client's charset handling. */
	if ((s = gw_json_dumps(body, 1, &len)) == NULL ||
	    evbuffer_add(out, s, len) == -1 ||
	    evbuffer_add(out, "\n", 1) == -1) {
		free(s);
		evbuffer_drain(out, evbuffer_get_length(out));
		evhttp_send_error(req, 500, NULL);
		return;
	}
	free(s);
	gw_metric_response(status);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Cache-Control", "no-store");
	send_now(req, status);	/* the request's own output buffer */
}

void
gw_reply_error(struct evhttp_request *req, const struct gw_error *err)
{
	json_t *o = gw_error_obj(err);
	char ra[16];

	if (err->retry_after > 0) {		/* 429 from the policy engine */
		snprintf(ra, sizeof(ra), "%d", err->retry_after);
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Retry-After", ra);
	}
	gw_reply_json(req, err->status, o);
	json_decref(o);
}

void
gw_reply_no_call(struct evhttp_request *req)
{
	gw_reply_simple(req, 404, "not_found", "No call has this id.");
}

void
gw_reply_unavailable(struct evhttp_request *req)
{
	gw_reply_simple(req, 503, "unavailable", "The call store is "
	    "unavailable; nothing was done.  Retry in a few seconds.");
}

void
gw_reply_call(struct evhttp_request *req, const char *id, const char *tenant,
    const char *const *job, size_t njob, const char *const *timeline,
    size_t ntimeline)
{
	json_t *o;

	if ((o = gw_view_call(id, tenant, job, njob, timeline,
	    ntimeline)) == NULL) {
		gw_reply_no_call(req);
		return;
	}
	gw_reply_json(req, 200, o);
	json_decref(o);
}

void
gw_reply_simple(struct evhttp_request *req, int status, const char *code,
    const char *msg)
{
	struct gw_error err;

	gw_error_set(&err, status, code, NULL, "%s", msg);
	gw_reply_error(req, &err);
}

static void
reply_method(struct evhttp_request *req, const char *allow)
{
	struct gw_error err;

	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
	    allow);
	gw_error_set(&err, 405, "method_not_allowed", NULL,
	    "This path only accepts %s.", allow);
	gw_reply_error(req, &err);
}

const struct rq_tenant *
gw_http_auth(const struct rq_config *cfg, struct evhttp_request *req)
{
	const struct rq_tenant *t = NULL;
	const char *a;
	struct gw_error err;
	char hex[65];
	size_t len;

	a = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");
	if (a != NULL && !strncasecmp(a, "Bearer ", 7)) {
		a += 7;
		a += strspn(a, " \t");
		len = strlen(a);
		while (len > 0 && (a[len - 1] == ' ' || a[len - 1] == '\t'))
			len--;
		if (len > 0) {
			rq_sha256_hex(a, len, hex);
			t = rq_config_tenant_by_key(cfg, hex);
		}
	}
	if (t != NULL)
		return t;
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "WWW-Authenticate", "Bearer");
	gw_error_set(&err, 401, "unauthorized", NULL,
	    "Send your API key as 'Authorization: Bearer <key>'; the key "
	    "given is missing or unknown.");
	gw_reply_error(req, &err);
	return NULL;
}

static void
gw_req_free(struct gw_req *r)
{
	gw_call_clear(&r->call);
	free(r);
}

static void
create_done(const struct gw_intake_result *res, void *arg)
{
	struct gw_req *r = arg;
	const struct gw_call *call = res->call;
	char loc[64], t[40];
	json_t *o;

	if (res->rc != 0) {
		gw_reply_error(r->req, &res->err);
		free(r);
		return;
	}
	o = json_object();
	json_object_set_new(o, "id", json_string(res->id));
	if (res->replay) {
		/* Idempotency-Key seen before: the first call, not this one. */
		json_object_set_new(o, "replayed", json_true());
		goto send;
	}
	json_object_set_new(o, "status", json_string("queued"));
	rq_metric_inc(m_accepted);
	json_object_set_new(o, "to", json_string(call->to));
	json_object_set_new(o, "priority", json_integer(call->priority));
	rq_rfc3339_format(call->not_before_ms, t, sizeof(t));
	json_object_set_new(o, "not_before", json_string(t));
	if (call->not_after_ms != 0) {
		rq_rfc3339_format(call->not_after_ms, t, sizeof(t));
		json_object_set_new(o, "not_after", json_string(t));
	}
	rq_rfc3339_format(res->created_ms, t, sizeof(t));
	json_object_set_new(o, "created_at", json_string(t));
	if (call->metadata_obj != NULL)
		json_object_set(o, "metadata", call->metadata_obj);
	json_object_set_new(o, "policy", gw_policy_obj(call->policy,
	    call->not_before_ms));
send:
	snprintf(loc, sizeof(loc), "%s/%s", CALLS_PATH, res->id);
	evhttp_add_header(evhttp_request_get_output_headers(r->req),
	    "Location", loc);
	gw_reply_json(r->req, 202, o);
	json_decref(o);
	free(r);
}

static void
http_create(struct gw_http *h, struct evhttp_request *req)
{
	const struct rq_tenant *tenant;
	struct evbuffer *in;
	struct gw_error err;
	struct gw_req *r;
	const char *cl, *body;
	size_t len, max = (size_t)h->cfg->max_body;
	uint64_t now;

	if ((tenant = gw_http_auth(h->cfg, req)) == NULL)
		return;
	/* Refuse by the announced size first: evhttp reads the whole body
	 * before calling us, but only up to its cap (see gw_http_new). */
	cl = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Content-Length");
	if (cl != NULL) {
		char *end;
		unsigned long long n;

		errno = 0;
		n = strtoull(cl, &end, 10);
		if (errno == 0 && end != cl && n >= max) {
			gw_error_set(&err, 413, "too_large", NULL,
			    "The body must be smaller than %zu bytes.", max);
			gw_reply_error(req, &err);
			return;
		}
	}
	in = evhttp_request_get_input_buffer(req);
	len = evbuffer_get_length(in);
	body = "";
	if ((len > 0 && len < max &&
	    (body = (const char *)evbuffer_pullup(in, -1)) == NULL) ||
	    (r = calloc(1, sizeof(*r))) == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	now = rq_now_ms();
	if (gw_call_parse(body, len, max, tenant, now, &r->call, &err) == -1) {
		log_debug("tenant %s: call refused: %d %s %s", tenant->name,
		    err.status, err.code, err.field);
		gw_reply_error(req, &err);
		free(r);
		return;
	}
	/* Idempotency-Key: policy_store.c answers a repeat with the first
	 * call's id. */
	cl = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Idempotency-Key");
	if (cl != NULL && (!gw_idem_key_valid(cl) ||
	    (r->call.idem_key = strdup(cl)) == NULL)) {
		gw_error_set(&err, 400, "invalid_header", "Idempotency-Key",
		    "'Idempotency-Key' must be 1 to %d printable ASCII "
		    "characters, not beginning with '" GW_IDEM_MAIL_PREFIX
		    "'.", GW_IDEM_KEY_MAX);
		gw_reply_error(req, &err);
		gw_req_free(r);
		return;
	}
	r->h = h;
	r->req = req;
	r->tenant = tenant;
	if (gw_intake_submit(h->in, tenant, &r->call, now, create_done, r,
	    &err) == -1) {
		gw_reply_error(req, &err);
		gw_req_free(r);
	}
}

static void
get_done(int rc, const char *const *job, size_t njob,
    const char *const *timeline, size_t ntimeline, void *arg)
{
	struct gw_req *r = arg;

	if (rc == -1)
		gw_reply_unavailable(r->req);
	else
		gw_reply_call(r->req, r->id, r->tenant->name, job, njob,
		    timeline, ntimeline);
	gw_req_free(r);
}

static void
http_get(struct gw_http *h, struct evhttp_request *req, const char *id)
{
	const struct rq_tenant *tenant;
	struct gw_req *r;

	if ((tenant = gw_http_auth(h->cfg, req)) == NULL)
		return;
	if (!rq_call_id_valid(id)) {
		gw_reply_no_call(req);
		return;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	r->h = h;
	r->req = req;
	r->tenant = tenant;
	snprintf(r->id, sizeof(r->id), "%s", id);
	if (gw_store_get(h->st, id, get_done, r) == -1) {
		gw_reply_unavailable(req);
		gw_req_free(r);
	}
}

static void
http_healthz(struct gw_http *h, struct evhttp_request *req)
{
	json_t *o;

	if (gw_store_connected(h->st)) {
		o = json_pack("{s:s}", "status", "ok");
		gw_reply_json(req, 200, o);
	} else {
		o = json_pack("{s:s, s:s}", "status", "degraded",
		    "redis", "down");
		gw_reply_json(req, 503, o);
	}
	json_decref(o);
}

/* Each connection's bufferevent, with its deadline (http_deadline.c). */
static struct bufferevent *
http_bevcb(struct event_base *base, void *arg)
{
	struct gw_http *h = arg;

	return gw_http_deadline_bev(base, &h->too_slow);
}

static void
conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct gw_http *h = arg;

	gw_http_deadline_closed(evhttp_connection_get_bufferevent(evcon));
	gw_http_conns_forget(h->conns, evcon);
}

/*
 * The connection caps.  libevent 2.1's evhttp shows a connection only with
 * its first complete request: it counts from then until it closes.  One
 * that never completes a request is closed after HTTP_TIMEOUT_S without a
 * byte, or GW_HTTP_REQUEST_MAX_S however it trickles (http_deadline.c),
 * and the descriptor limit bounds them all (accept_guard.c).  Returns 0,
 * or -1 when req was answered 503 (its connection then closes).
 */
static int
admit(struct gw_http *h, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct gw_error err;
	char *addr = NULL, key[GW_ADDR_LEN];
	ev_uint16_t port = 0;
	int rc, newconn;

	if (evcon == NULL)
		return 0;
	/* arrived whole: the deadline holds while it is answered */
	gw_http_deadline_request(evhttp_connection_get_bufferevent(evcon));
	evhttp_connection_get_peer(evcon, &addr, &port);
	rc = gw_http_conns_admit(h->conns, evcon, gw_http_conns_key(addr, key,
	    sizeof(key)), &newconn);
	if (rc == 0) {
		/* each time, not only the first: whatever else might set a
		 * close callback, a counted connection is forgotten */
		evhttp_connection_set_closecb(evcon, conn_closed, h);
		return 0;
	}
	log_warnx_rate(&h->refused, 60000, "http: %s: refused: too many "
	    "connections%s", addr ? addr : "?",
	    rc == -2 ? " from this address" : "");
	if (rc == -2)
		gw_error_set(&err, 503, "too_many_connections", NULL, "This "
		    "address has as many connections open as it may "
		    "(http_max_clients_per_ip): send on those, or close some; "
		    "nothing was queued.");
	else
		gw_error_set(&err, 503, "too_many_connections", NULL, "The "
		    "gateway has as many connections open as it takes "
		    "(http_max_clients); nothing was queued.  Retry in a "
		    "second.");
	err.retry_after = 1;
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Connection", "close");
	gw_reply_error(req, &err);
	return -1;
}

static void
http_cb(struct evhttp_request *req, void *arg)
{
	struct gw_http *h = arg;
	const struct evhttp_uri *uri;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *path = NULL;

	if (admit(h, req) == -1)
		return;
	/* While a stop waits for Redis's answers, a request on a connection
	 * kept alive is refused cleanly: nothing is done, and its client
	 * goes elsewhere. */
	if (h->stopping) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Connection", "close");
		gw_reply_simple(req, 503, "unavailable", "The gateway is "
		    "stopping; nothing was done.  Retry in a few seconds.");
		return;
	}
	if ((uri = evhttp_request_get_evhttp_uri(req)) != NULL)
		path = evhttp_uri_get_path(uri);
	if (path == NULL || *path == '\0')
		path = "/";

	/* HEAD is GET without the body (evhttp leaves it out). */
	if (!strcmp(path, "/healthz")) {
		if (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD)
			http_healthz(h, req);
		else
			reply_method(req, "GET, HEAD");
	} else if (gw_dnc_route(h->cfg, h->st, req, path, cmd)) {
		/* /v1/dnc/{number} and /v1/optout: dnc.c */
	} else if (gw_recordings_route(h->cfg, h->st, req, path, cmd)) {
		/* GET /v1/calls/{id}/recordings/{name}: recordings.c */
	} else if (gw_calls_api_route(h->cfg, h->st, h->in, req, path, cmd)) {
		/* GET /v1/calls, DELETE and PATCH /v1/calls/{id}:
		 * calls_api.c */
	} else if (!strcmp(path, CALLS_PATH)) {
		if (cmd == EVHTTP_REQ_POST)
			http_create(h, req);
		else
			reply_method(req, "POST, GET, HEAD");
	} else if (!strncmp(path, CALLS_PATH "/", sizeof(CALLS_PATH)) &&
	    path[sizeof(CALLS_PATH)] != '\0' &&
	    strchr(path + sizeof(CALLS_PATH), '/') == NULL) {
		if (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD)
			http_get(h, req, path + sizeof(CALLS_PATH));
		else
			reply_method(req, "GET, HEAD, DELETE, PATCH");
	} else
		gw_reply_simple(req, 404, "not_found", "There is nothing at "
		    "this path; the API is under /v1/calls.");
}

struct gw_http *
gw_http_new(struct event_base *base, const struct rq_config *cfg,
    struct gw_store *st, struct gw_intake *in)
{
	struct gw_http *h;
	char host[RQ_ADDR_MAX];
	ev_ssize_t cap;
	int port;

	if (rq_listen_split(cfg->http_listen, host, sizeof(host),
	    &port) == -1) {
		log_warnx("gateway: http_listen '%s' is not host:port",
		    cfg->http_listen);
		return NULL;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	h->base = base;
	h->cfg = cfg;
	h->st = st;
	h->in = in;
	if ((h->http = evhttp_new(base)) == NULL ||
	    (h->conns = gw_http_conns_new(cfg->http_max_clients,
	    cfg->http_max_clients_per_ip)) == NULL)
		goto fail;
	/*
	 * evhttp answers 413 itself (an HTML page, then it closes) beyond its
	 * cap, checking Content-Length before reading the body.  The cap is
	 * above max_body so that bodies over the limit but not absurd get our
	 * JSON 413; it still bounds what one connection can make us hold.
	 */
	cap = (ev_ssize_t)cfg->max_body * 4;
	if (cap < HTTP_BODY_CAP_MIN)
		cap = HTTP_BODY_CAP_MIN;
	evhttp_set_max_body_size(h->http, cap);
	evhttp_set_max_headers_size(h->http, HTTP_MAX_HEADERS);
	evhttp_set_timeout(h->http, HTTP_TIMEOUT_S);
	evhttp_set_bevcb(h->http, http_bevcb, h);
	/* Let every method reach us so that the 405 is ours, in JSON. */
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(h->http, http_cb, h);
	/* Prometheus, without a key (docs/metrics.md). */
	evhttp_set_cb(h->http, "/metrics", rq_metrics_http_cb, NULL);
	m_accepted = rq_counter("ringq_gateway_calls_accepted_total", "",
	    "Calls accepted (queued) over HTTP; replays not counted");
	if ((h->sock = evhttp_bind_socket_with_handle(h->http, host,
	    port)) == NULL) {
		log_warn("gateway: cannot listen on %s", cfg->http_listen);
		goto fail;
	}
	if ((h->guard = gw_accept_guard_new(base,
	    evhttp_bound_socket_get_listener(h->sock), "http")) == NULL)
		log_warnx("http: out of memory: accept errors not paused");
	log_info("gateway: listening on %s", cfg->http_listen);
	return h;
fail:
	if (h->http)
		evhttp_free(h->http);
	gw_http_conns_free(h->conns);
	free(h);
	return NULL;
}

void
gw_http_close(struct gw_http *h)
{
	h->stopping = 1;
	gw_accept_guard_free(h->guard);
	h->guard = NULL;
	if (h->sock != NULL) {
		evhttp_del_accept_socket(h->http, h->sock);
		h->sock = NULL;
	}
}

void
gw_http_free(struct gw_http *h)
{
	if (h == NULL)
		return;
	gw_accept_guard_free(h->guard);
	evhttp_free(h->http);		/* runs conn_closed: conns after */
	gw_http_deadlines_free();
	gw_http_conns_free(h->conns);
	free(h);
}
