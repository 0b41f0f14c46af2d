/* The SMTP listener of ringq-gateway: connections with caps per address and
 * overall, idle timeouts and a session deadline, STARTTLS
 * (bufferevent_openssl), and the path of a message: DKIM (in a thread of
 * its own), parse, intake (whose idempotency key "mail:<Message-ID>"
 * de-duplicates). */
#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "gateway.h"
#include "log.h"

#define SMTP_READ_HIGH		(64 * 1024)
#define SMTP_SESSION_MAX_S	3600	/* a whole connection, however busy */
/* DKIM checks at once, each a thread: libopendkim's key lookup blocks (up
 * to its timeout per name server), which must not stall the event loop
 * that serves the HTTP API and the other clients.  More wait for a retry
 * (451). */
#define SMTP_DKIM_THREADS_MAX	16
/* At stop, the checks still running are waited for this long: a check
 * starts no query after GW_DKIM_VERIFY_MAX_MS, and a query lasts 3 s per
 * name server and one more (dkim.c). */
#define SMTP_DKIM_STOP_WAIT_MS	30000

struct smtp_conn;
TAILQ_HEAD(smtp_conns, smtp_conn);

struct gw_smtp {
	struct event_base	*base;
	const struct rq_config	*cfg;
	struct gw_intake	*in;
	struct evconnlistener	*lst;
	struct gw_accept_guard	*guard;
	SSL_CTX			*ssl;
	struct smtp_conns	 conns;
	size_t			 nconns;
	int			 closing;
	/* finished DKIM checks come back through a pipe (smtp_dkim_done) */
	int			 dkim_pipe[2];
	struct event		*dkim_ev;
	int			 dkim_running;
};

/* A message's DKIM check, with copies of the message and of its tenant
 * (the connection may go away meanwhile, and a check that outlasts the
 * stop its config).  The thread owns it until it writes its pointer to
 * the pipe, the event loop after: the thread reads tenant, data and len
 * and writes rc and why; only the loop touches c. */
struct smtp_dkim_check {
	struct smtp_conn	*c;
	struct rq_tenant	 tenant;
	int			 fd;	/* the pipe's end to write */
	char			*data;
	size_t			 len;
	int			 rc;	/* gw_dkim_verify's */
	char			 why[400];
};

/* One client.  A conn with an answer outstanding (the intake) is not
 * freed when the client goes away: "dead" marks it and the answer frees. */
struct smtp_conn {
	TAILQ_ENTRY(smtp_conn)	 entry;
	struct gw_smtp		*sm;
	struct bufferevent	*bev;
	struct event		*deadline;	/* SMTP_SESSION_MAX_S */
	struct gw_smtp_session	*s;
	char			 addr[INET6_ADDRSTRLEN];
	int			 closing;	/* free once the output is out */
	int			 dead;		/* the client is gone */
	int			 busy;		/* callbacks outstanding */
	int			 want_tls;
	int			 in_feed;	/* inside gw_smtp_session_feed */
	/* the message being handled */
	const struct rq_tenant	*tenant;
	struct gw_call		 call;
	int			 keyed;		/* it has a Message-ID */
};

static void	conn_read(struct bufferevent *, void *);
static void	conn_write(struct bufferevent *, void *);
static void	conn_event(struct bufferevent *, short, void *);

/* --- connections ---------------------------------------------------------- */

static void
conn_free(struct smtp_conn *c)
{
	struct gw_smtp *sm = c->sm;

	TAILQ_REMOVE(&sm->conns, c, entry);
	sm->nconns--;
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	if (c->deadline != NULL)
		event_free(c->deadline);
	gw_smtp_session_free(c->s);
	gw_call_clear(&c->call);
	free(c);
}

/* The client is gone or the session is over: free now, or when the last
 * outstanding answer comes. */
static void
conn_drop(struct smtp_conn *c)
{
	c->dead = 1;
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	if (c->deadline != NULL)
		evtimer_del(c->deadline);
	if (c->busy == 0)
		conn_free(c);
}

static void
io_write(void *arg, const char *buf, size_t len)
{
	struct smtp_conn *c = arg;

	if (c->bev != NULL && !c->dead)
		bufferevent_write(c->bev, buf, len);
}

static void
io_close(void *arg)
{
	struct smtp_conn *c = arg;

	c->closing = 1;
	if (c->bev != NULL)
		bufferevent_disable(c->bev, EV_READ);
}

static void
io_starttls(void *arg)
{
	((struct smtp_conn *)arg)->want_tls = 1;
}

static void	io_message(void *, const struct rq_tenant *, const char *,
		    size_t);

static void
conn_start_tls(struct smtp_conn *c)
{
	struct bufferevent *fb;
	SSL *ssl;

	c->want_tls = 0;
	evbuffer_drain(bufferevent_get_input(c->bev),
	    evbuffer_get_length(bufferevent_get_input(c->bev)));
	if ((ssl = SSL_new(c->sm->ssl)) == NULL ||
	    (fb = bufferevent_openssl_filter_new(c->sm->base, c->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS)) == NULL) {
		if (ssl)
			SSL_free(ssl);
		log_warnx("smtp: %s: cannot start TLS", c->addr);
		conn_drop(c);
		return;
	}
	c->bev = fb;
	bufferevent_setcb(fb, conn_read, conn_write, conn_event, c);
	bufferevent_setwatermark(fb, EV_READ, 0, SMTP_READ_HIGH);
	{
		struct timeval tv = { c->sm->cfg->smtp_timeout_s, 0 };

		bufferevent_set_timeouts(fb, &tv, &tv);
	}
	bufferevent_enable(fb, EV_READ | EV_WRITE);
}

/* Feeds what the client sent to the session, as far as it will take. */
static void
conn_process(struct smtp_conn *c)
{
	struct evbuffer *in;
	struct evbuffer_iovec v;
	size_t n;

	while (c->bev != NULL && !c->dead && !c->closing) {
		in = bufferevent_get_input(c->bev);
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			break;
		c->busy++;
		c->in_feed = 1;
		n = gw_smtp_session_feed(c->s, v.iov_base, v.iov_len);
		c->in_feed = 0;
		c->busy--;
		if (c->dead) {
			if (c->busy == 0)
				conn_free(c);
			return;
		}
		evbuffer_drain(in, n);
		if (c->want_tls) {
			conn_start_tls(c);
			return;
		}
		if (gw_smtp_session_waiting(c->s)) {
			/* pause reading (and its timeout) until answered */
			bufferevent_disable(c->bev, EV_READ);
			return;
		}
		if (n < v.iov_len)
			break;
	}
}

static void
conn_read(struct bufferevent *bev, void *arg)
{
	conn_process(arg);
}

static void
conn_write(struct bufferevent *bev, void *arg)
{
	struct smtp_conn *c = arg;

	if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) ==
	    0)
		conn_drop(c);
}

static void
conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		log_debug("smtp: %s: TLS started", c->addr);
		gw_smtp_session_tls_started(c->s);
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) && !c->closing) {
		log_info("smtp: %s: idle for %d s: closing", c->addr,
		    c->sm->cfg->smtp_timeout_s);
		/* one last reply; the write timeout bounds a stuck client */
		gw_smtp_session_abort(c->s, "421 4.4.2 Timeout: closing the "
		    "connection");
		bufferevent_enable(bev, EV_WRITE);
		return;
	}
	/* a timeout while closing: the client does not even read */
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = bufferevent_get_openssl_error(bev);

		if (e != 0)
			log_info("smtp: %s: TLS error: %s", c->addr,
			    ERR_reason_error_string(e));
	}
	conn_drop(c);
}

/* The session deadline: the idle timeout is per read, and a client that
 * sends a byte now and then would otherwise hold a slot for ever. */
static void
conn_deadline(evutil_socket_t fd, short ev, void *arg)
{
	struct smtp_conn *c = arg;

	struct timeval again = { 1, 0 };

	if (c->dead || c->closing || c->bev == NULL)
		return;
	if (c->busy > 0) {
		/* a message with the intake gets its answer first */
		evtimer_add(c->deadline, &again);
		return;
	}
	log_info("smtp: %s: session over %d s: closing", c->addr,
	    SMTP_SESSION_MAX_S);
	gw_smtp_session_abort(c->s, "421 4.4.2 Session too long: closing "
	    "the connection");
	bufferevent_enable(c->bev, EV_WRITE);
}

static size_t
conns_from(struct gw_smtp *sm, const char *addr)
{
	struct smtp_conn *c;
	size_t n = 0;

	TAILQ_FOREACH(c, &sm->conns, entry)
		if (!c->dead && !strcmp(c->addr, addr))
			n++;
	return n;
}

static void
smtp_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct gw_smtp *sm = arg;
	struct smtp_conn *c;
	struct gw_smtp_io io;
	struct timeval tv = { sm->cfg->smtp_timeout_s, 0 };
	const char *refuse = NULL;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		evutil_closesocket(fd);
		return;
	}
	c->sm = sm;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr,
		    c->addr, sizeof(c->addr));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr,
		    c->addr, sizeof(c->addr));
	else
		snprintf(c->addr, sizeof(c->addr), "local");
	if (sm->nconns >= (size_t)sm->cfg->smtp_max_clients)
		refuse = "421 4.3.2 Too many connections; try again later";
	else if (conns_from(sm, c->addr) >=
	    (size_t)sm->cfg->smtp_max_clients_per_ip)
		refuse = "421 4.7.0 Too many connections from your address; "
		    "try again later";
	io.write = io_write;
	io.starttls = io_starttls;
	io.message = io_message;
	io.close = io_close;
	io.arg = c;
	c->bev = bufferevent_socket_new(sm->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->s = gw_smtp_session_new(sm->cfg, &io, sm->ssl != NULL);
	c->deadline = evtimer_new(sm->base, conn_deadline, c);
	TAILQ_INSERT_TAIL(&sm->conns, c, entry);
	sm->nconns++;
	if (c->bev == NULL || c->s == NULL || c->deadline == NULL) {
		if (c->bev == NULL)
			evutil_closesocket(fd);
		conn_drop(c);
		return;
	}
	bufferevent_setcb(c->bev, conn_read, conn_write, conn_event, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, SMTP_READ_HIGH);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	{
		struct timeval dl = { SMTP_SESSION_MAX_S, 0 };

		evtimer_add(c->deadline, &dl);
	}
	if (refuse != NULL) {
		log_info("smtp: %s: refused: %s", c->addr, refuse + 10);
		gw_smtp_session_abort(c->s, refuse);
		return;
	}
	log_debug("smtp: %s: connected", c->addr);
	gw_smtp_session_start(c->s);
}

/* --- answers -------------------------------------------------------------- */

/* Ends the transaction with reply, and lets the client go on. */
static void
conn_answer(struct smtp_conn *c, const char *reply)
{
	c->busy--;
	gw_call_clear(&c->call);
	if (c->dead) {
		if (c->busy == 0)
			conn_free(c);
		return;
	}
	gw_smtp_session_answer(c->s, reply);
	/* A stopping server takes no next message (gw_smtp_close). */
	if (c->sm->closing && !c->closing && !c->in_feed) {
		gw_smtp_session_abort(c->s, "421 4.3.2 Service shutting down; "
		    "try again later");
		return;
	}
	/* answered from inside feed: the feed goes on by itself */
	if (c->bev != NULL && !c->closing && !c->in_feed) {
		bufferevent_enable(c->bev, EV_READ);
		conn_process(c);
	}
}

/* An intake refusal as an SMTP reply: 403 policy, 400/413/422 the request,
 * 429 rate (temporary), 503 the store (temporary). */
static void
error_reply(const struct gw_error *err, char *buf, size_t len)
{
	const char *code;

	switch (err->status) {
	case 403:
		code = "550 5.7.1";
		break;
	case 429:
		code = "451 4.7.1";
		break;
	case 503:
		code = "451 4.3.0";
		break;
	case 413:
		code = "552 5.3.4";
		break;
	default:
		code = err->status >= 500 ? "451 4.3.0" : "550 5.6.0";
		break;
	}
	snprintf(buf, len, "%s %s%s%s%s", code, err->field[0] ? "(" : "",
	    err->field, err->field[0] ? ") " : "", err->message);
}

static void
intake_done(const struct gw_intake_result *res, void *arg)
{
	struct smtp_conn *c = arg;
	char reply[512];

	if (res->rc == 0 && res->replay) {
		log_info("call %s: Message-ID already accepted for tenant %s",
		    res->id, c->tenant->name);
		snprintf(reply, sizeof(reply), "250 2.0.0 Ok: already queued "
		    "as %s", res->id);
	} else if (res->rc == 0) {
		log_info("call %s: queued by e-mail for tenant %s", res->id,
		    c->tenant->name);
		snprintf(reply, sizeof(reply), "250 2.0.0 Ok: queued as %s",
		    res->id);
	} else if (res->rc == -2 && c->keyed) {
		/* the idempotency key stays: a retry gets this call's id */
		snprintf(reply, sizeof(reply), "451 4.3.0 The call store went "
		    "away before confirming call %s; try again in a few "
		    "minutes", res->id);
	} else if (res->rc == -2) {
		/* Without a Message-ID a mail server's retry would be a new
		 * request: a second call if this one was stored. */
		log_warnx("call %s: the call store went away before "
		    "confirming it, which may or may not be queued; the "
		    "message has no Message-ID: refused for good", res->id);
		snprintf(reply, sizeof(reply), "554 5.3.0 The call store went "
		    "away before confirming call %s, which may or may not be "
		    "queued; without a Message-ID a retry could call twice: "
		    "send the request again, with a Message-ID, if the call "
		    "does not come", res->id);
	} else {
		error_reply(&res->err, reply, sizeof(reply));
		log_info("smtp: %s: tenant %s: refused: %s", c->addr,
		    c->tenant->name, reply);
	}
	conn_answer(c, reply);
}

static void
conn_submit(struct smtp_conn *c)
{
	struct gw_error err;
	char reply[512];

	if (gw_intake_submit(c->sm->in, c->tenant, &c->call, rq_now_ms(),
	    intake_done, c, &err) == -1) {
		error_reply(&err, reply, sizeof(reply));
		conn_answer(c, reply);
	}
}

/* A message whose DKIM check (if any) passed: parsed, then submitted. */
static void
conn_parse(struct smtp_conn *c, const char *data, size_t len)
{
	struct gw_error err;
	char msgid[512], reply[600];

	if (gw_mail_request_parse(data, len, c->tenant, rq_now_ms(), &c->call,
	    msgid, sizeof(msgid), &err) == -1) {
		error_reply(&err, reply, sizeof(reply));
		log_info("smtp: %s: tenant %s: refused: %s", c->addr,
		    c->tenant->name, reply);
		conn_answer(c, reply);
		return;
	}
	c->keyed = msgid[0] != '\0';
	conn_submit(c);
}

static void *
smtp_dkim_thread(void *arg)
{
	struct smtp_dkim_check *k = arg;
	int fd = k->fd;

	k->rc = gw_dkim_verify(&k->tenant, k->data, k->len, k->why,
	    sizeof(k->why));
	/* a pointer is less than PIPE_BUF: written whole or not at all; the
	 * pipe has room for thousands, more than SMTP_DKIM_THREADS_MAX */
	while (write(fd, &k, sizeof(k)) == -1 && errno == EINTR)
		;
	return NULL;
}

/* Back in the event loop: the checks that finished, answered or parsed. */
static void
smtp_dkim_done(evutil_socket_t fd, short what, void *arg)
{
	struct gw_smtp *sm = arg;
	struct smtp_dkim_check *k;
	struct smtp_conn *c;
	char reply[600];

	(void)what;
	while (read(fd, &k, sizeof(k)) == (ssize_t)sizeof(k)) {
		sm->dkim_running--;
		c = k->c;
		if (c->dead) {
			log_debug("smtp: %s: DKIM check done, the client gone",
			    c->addr);
			conn_answer(c, "");
		} else if (k->rc == 0) {
			conn_parse(c, k->data, k->len);
		} else {
			log_info("smtp: %s: tenant %s: %s: %s", c->addr,
			    c->tenant->name, k->rc == -2 ? "deferred" :
			    "refused", k->why);
			if (k->rc == -2)
				snprintf(reply, sizeof(reply), "451 4.4.3 "
				    "DKIM not verified yet: %s", k->why);
			else
				snprintf(reply, sizeof(reply), "550 5.7.20 No "
				    "passing DKIM signature: %s", k->why);
			conn_answer(c, reply);
		}
		free(k->data);
		free(k);
	}
}

/* Starts the DKIM check of c's message in a thread; -1 when too many
 * run, -2 when it cannot start (memory, thread): the client is then told
 * to retry. */
static int
smtp_dkim_start(struct smtp_conn *c, const char *data, size_t len)
{
	struct gw_smtp *sm = c->sm;
	struct smtp_dkim_check *k;
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	if (sm->dkim_running >= SMTP_DKIM_THREADS_MAX)
		return -1;
	if ((k = calloc(1, sizeof(*k))) == NULL ||
	    (k->data = malloc(len + 1)) == NULL) {
		log_warnx("smtp: %s: out of memory for a DKIM check", c->addr);
		free(k);
		return -2;
	}
	memcpy(k->data, data, len);
	k->data[len] = '\0';
	k->len = len;
	k->c = c;
	k->tenant = *c->tenant;
	k->fd = sm->dkim_pipe[1];
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, smtp_dkim_thread, k);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		log_warnx("smtp: %s: cannot start a DKIM check: %s", c->addr,
		    strerror(rc));
		free(k->data);
		free(k);
		return -2;
	}
	sm->dkim_running++;
	log_debug("smtp: %s: tenant %s: DKIM check started (%d running)",
	    c->addr, c->tenant->name, sm->dkim_running);
	return 0;
}

/* A complete message for tenant: checked (DKIM, in a thread) and parsed,
 * answered later (conn_answer) once the intake has spoken. */
static void
io_message(void *arg, const struct rq_tenant *tenant, const char *data,
    size_t len)
{
	struct smtp_conn *c = arg;

	c->busy++;
	c->tenant = tenant;
	if (!tenant->require_dkim) {
		conn_parse(c, data, len);
		return;
	}
	switch (smtp_dkim_start(c, data, len)) {
	case -1:
		log_warnx("smtp: %s: tenant %s: deferred: %d DKIM checks "
		    "already running", c->addr, tenant->name,
		    c->sm->dkim_running);
		conn_answer(c, "451 4.3.2 Too many messages being checked; "
		    "try again later");
		break;
	case -2:	/* logged */
		conn_answer(c, "451 4.3.0 DKIM verification is unavailable; "
		    "try again later");
		break;
	}
}

/* The checks still running are waited for, as long as
 * SMTP_DKIM_STOP_WAIT_MS, and dropped, their connections gone; then the
 * pipe is closed.  Should one outlast the wait, the pipe stays open for
 * it (the process is ending). */
static void
smtp_dkim_pipe_close(struct gw_smtp *sm)
{
	struct smtp_dkim_check *k;
	struct pollfd pfd;
	uint64_t until = rq_mono_ms() + SMTP_DKIM_STOP_WAIT_MS, now;
	ssize_t n;

	if (sm->dkim_ev != NULL)
		event_free(sm->dkim_ev);
	sm->dkim_ev = NULL;
	if (sm->dkim_running > 0)
		log_info("smtp: waiting for %d DKIM checks", sm->dkim_running);
	while (sm->dkim_running > 0 && (now = rq_mono_ms()) < until) {
		pfd.fd = sm->dkim_pipe[0];
		pfd.events = POLLIN;
		if (poll(&pfd, 1, (int)(until - now)) == -1 && errno != EINTR)
			break;
		while ((n = read(sm->dkim_pipe[0], &k, sizeof(k))) ==
		    (ssize_t)sizeof(k)) {
			sm->dkim_running--;
			free(k->data);
			free(k);
		}
	}
	if (sm->dkim_running > 0) {
		log_warnx("smtp: %d DKIM checks still running at stop",
		    sm->dkim_running);
		return;
	}
	if (sm->dkim_pipe[0] != -1)
		close(sm->dkim_pipe[0]);
	if (sm->dkim_pipe[1] != -1)
		close(sm->dkim_pipe[1]);
	sm->dkim_pipe[0] = sm->dkim_pipe[1] = -1;
}

/* --- listener ------------------------------------------------------------- */

/* NULL with the reason in err when the certificate or key cannot be read,
 * or do not belong together. */
static SSL_CTX *
smtp_tls_ctx(const struct rq_config *cfg, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	const char *what, *path;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		snprintf(err, errlen, "out of memory for a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* client renegotiation is a CPU sink and has no use here */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	ERR_clear_error();
	/* errno says more than OpenSSL's "system lib" */
	what = "certificate";
	path = cfg->smtp_tls_cert;
	if (access(path, R_OK) == 0) {
		what = "key";
		path = cfg->smtp_tls_key;
	}
	if (access(path, R_OK) == -1) {
		snprintf(err, errlen, "[smtp] cannot read the TLS %s %s: %s",
		    what, path, strerror(errno));
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->smtp_tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, cfg->smtp_tls_key,
	    SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		const char *why = ERR_reason_error_string(ERR_peek_error());

		snprintf(err, errlen, "[smtp] cannot load the TLS certificate "
		    "%s and key %s: %s", cfg->smtp_tls_cert, cfg->smtp_tls_key,
		    why != NULL ? why : "unknown error");
		ERR_clear_error();
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int
gw_smtp_check(const struct rq_config *cfg, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if (cfg->smtp_tls_cert[0] == '\0' && cfg->smtp_tls_key[0] == '\0')
		return 0;
	if ((ctx = smtp_tls_ctx(cfg, err, errlen)) == NULL)
		return -1;
	SSL_CTX_free(ctx);
	return 0;
}

struct gw_smtp *
gw_smtp_new(struct event_base *base, const struct rq_config *cfg,
    struct gw_intake *in)
{
	struct gw_smtp *sm;
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	if (evutil_parse_sockaddr_port(cfg->smtp_listen,
	    (struct sockaddr *)&ss, &sslen) == -1) {
		log_warnx("smtp: listen '%s' is not host:port",
		    cfg->smtp_listen);
		return NULL;
	}
	if ((sm = calloc(1, sizeof(*sm))) == NULL)
		return NULL;
	sm->base = base;
	sm->cfg = cfg;
	sm->in = in;
	TAILQ_INIT(&sm->conns);
	sm->dkim_pipe[0] = sm->dkim_pipe[1] = -1;
	/* the loop's end only is non-blocking: a thread's write waits */
	if (pipe2(sm->dkim_pipe, O_CLOEXEC) == -1 ||
	    fcntl(sm->dkim_pipe[0], F_SETFL, O_NONBLOCK) == -1 ||
	    (sm->dkim_ev = event_new(base, sm->dkim_pipe[0],
	    EV_READ | EV_PERSIST, smtp_dkim_done, sm)) == NULL ||
	    event_add(sm->dkim_ev, NULL) == -1) {
		log_warn("smtp: cannot make the DKIM checks' pipe");
		goto fail;
	}
	if (cfg->smtp_tls_cert[0] != '\0' || cfg->smtp_tls_key[0] != '\0') {
		char err[512];

		if ((sm->ssl = smtp_tls_ctx(cfg, err, sizeof(err))) == NULL) {
			log_warnx("smtp: %s", err);
			goto fail;
		}
	}
	sm->lst = evconnlistener_new_bind(base, smtp_accept, sm,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    128, (struct sockaddr *)&ss, sslen);
	if (sm->lst == NULL) {
		log_warn("smtp: cannot listen on %s", cfg->smtp_listen);
		goto fail;
	}
	if ((sm->guard = gw_accept_guard_new(base, sm->lst, "smtp")) == NULL)
		log_warnx("smtp: out of memory: accept errors not paused");
	log_info("smtp: listening on %s%s", cfg->smtp_listen,
	    sm->ssl ? " (STARTTLS)" : "");
	return sm;
fail:
	smtp_dkim_pipe_close(sm);
	if (sm->ssl)
		SSL_CTX_free(sm->ssl);
	free(sm);
	return NULL;
}

/* Stops listening and says goodbye to idle clients; a client whose message
 * is with the intake gets its answer first (the store answers every
 * pending request when it closes).  One whose message's DKIM check still
 * runs when the gateway stops gets none: the connection closes, the
 * message not taken, and its server tries again. */
void
gw_smtp_close(struct gw_smtp *sm)
{
	struct smtp_conn *c, *next;

	if (sm == NULL)
		return;
	sm->closing = 1;
	gw_accept_guard_free(sm->guard);
	sm->guard = NULL;
	if (sm->lst != NULL) {
		evconnlistener_free(sm->lst);
		sm->lst = NULL;
	}
	for (c = TAILQ_FIRST(&sm->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (!c->dead && c->busy == 0)
			gw_smtp_session_abort(c->s, "421 4.3.2 Service "
			    "shutting down; try again later");
	}
}

void
gw_smtp_free(struct gw_smtp *sm)
{
	struct smtp_conn *c;

	if (sm == NULL)
		return;
	sm->closing = 1;
	gw_accept_guard_free(sm->guard);
	if (sm->lst != NULL)
		evconnlistener_free(sm->lst);
	while ((c = TAILQ_FIRST(&sm->conns)) != NULL) {
		c->busy = 0;
		conn_free(c);
	}
	smtp_dkim_pipe_close(sm);
	if (sm->ssl)
		SSL_CTX_free(sm->ssl);
	free(sm);
}
