/* ZeroMQ glue (see bus.h), and CURVE with its ZAP handler. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bus.h"
#include "config.h"
#include "log.h"
#include "util.h"

#define BUS_HEARTBEAT_IVL_MS		1000	/* ZMTP PING */
#define BUS_HEARTBEAT_TIMEOUT_MS	5000

static int	bus_curve(void *ctx, void *s, int type);

void *
rq_bus_socket(void *ctx, int type)
{
	void *s;
	int zero = 0, hwm = 100000;
	int64_t max = RQ_BUS_FRAME_MAX;

	if ((s = zmq_socket(ctx, type)) == NULL)
		return NULL;
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof(max));
	zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	if (type == ZMQ_ROUTER) {
		int one = 1;

		/* An unroutable identity is an error we can see. */
		zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
		/* A peer that connects again under its identity (one per
		 * process) takes it over from a connection it lost, which
		 * this side may not know yet: else refused as a duplicate
		 * while the old one lasts. */
		zmq_setsockopt(s, ZMQ_ROUTER_HANDOVER, &one, sizeof(one));
	}
	if (bus_curve(ctx, s, type) == -1) {
		zmq_close(s);
		return NULL;
	}
	return s;
}

void
rq_bus_heartbeats(void *s)
{
	int ivl = BUS_HEARTBEAT_IVL_MS, timeout = BUS_HEARTBEAT_TIMEOUT_MS;

	zmq_setsockopt(s, ZMQ_HEARTBEAT_IVL, &ivl, sizeof(ivl));
	zmq_setsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof(timeout));
	zmq_setsockopt(s, ZMQ_HEARTBEAT_TTL, &timeout, sizeof(timeout));
}

/* EAGAIN: the peer's queue is full (it is slow or away).  Callers that
 * must deliver resend (the event outbox does), so this is not worth a line
 * per message. */
static void
send_failed(const char *what)
{
	if (errno == EAGAIN)
		log_debug("bus: send %s: %s", what, zmq_strerror(errno));
	else
		log_warnx("bus: send %s: %s", what, zmq_strerror(errno));
}

int
rq_bus_send(void *sock, const void *identity, size_t idlen,
    const struct rq_msg *m)
{
	struct rq_bus_batch b;

	rq_bus_batch_init(&b);
	if (rq_bus_batch_add(&b, m) == -1)
		return -1;
	return rq_bus_send_batch(sock, identity, idlen, &b);
}

void
rq_bus_batch_init(struct rq_bus_batch *b)
{
	b->n = 0;
}

int
rq_bus_batch_add(struct rq_bus_batch *b, const struct rq_msg *m)
{
	if (b->n == RQ_BUS_BATCH_MAX) {
		log_warnx("bus: batch full, %s not added",
		    rq_msg_type_name(m->type));
		return -1;
	}
	if (rq_msg_pack(m, &b->buf[b->n], &b->len[b->n]) == -1) {
		log_warnx("bus: cannot pack %s: required field missing",
		    rq_msg_type_name(m->type));
		return -1;
	}
	b->n++;
	return 0;
}

void
rq_bus_batch_free(struct rq_bus_batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		free(b->buf[i]);
	b->n = 0;
}

/*
 * ZeroMQ checks a message against the high-water mark and the peer's
 * presence at its first frame only, so a message whose first frame went
 * goes whole, and one whose first frame failed not at all.
 */
int
rq_bus_send_batch(void *sock, const void *identity, size_t idlen,
    struct rq_bus_batch *b)
{
	size_t i;
	int rc = 0, started = 0;

	if (b->n == 0)
		return 0;
	if (identity != NULL) {
		if (zmq_send(sock, identity, idlen, ZMQ_SNDMORE |
		    ZMQ_DONTWAIT) == -1)
			goto refused;
		started = 1;
	}
	for (i = 0; i < b->n; i++) {
		if (zmq_send(sock, b->buf[i], b->len[i], ZMQ_DONTWAIT |
		    (i + 1 < b->n ? ZMQ_SNDMORE : 0)) != -1) {
			started = 1;
			continue;
		}
		if (!started)
			goto refused;
		/* Not expected once the first frame went (the peer left):
		 * the rest still go, so that the message ends and the
		 * socket does not drop the next one with it. */
		if (rc == 0)
			log_warnx("bus: frame %zu of %zu lost: %s", i + 1,
			    b->n, zmq_strerror(errno));
		rc = -1;
	}
	rq_bus_batch_free(b);
	return rc;
refused:
	send_failed(b->n == 1 ? "a message" : "a batch");
	rq_bus_batch_free(b);
	return -1;
}

/* Reads and discards the remaining frames of a message. */
static void
drain_frames(void *sock)
{
	zmq_msg_t part;
	int more;
	size_t ml = sizeof(more);

	for (;;) {
		if (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml) == -1 || !more)
			return;
		zmq_msg_init(&part);
		zmq_msg_recv(&part, sock, ZMQ_DONTWAIT);
		zmq_msg_close(&part);
	}
}

/*
 * A failed receive of a message's first frame means nothing to read now:
 * EAGAIN, or the socket or context is closing (ETERM).  Callers loop until
 * 0, so answering -1 here would spin.
 */
static int
recv_failed(void)
{
	if (errno != EAGAIN && errno != EINTR)
		log_warnx("bus: receive: %s", zmq_strerror(errno));
	return 0;
}

void
rq_bus_in_init(struct rq_bus_in *in, void *sock, int router)
{
	memset(in, 0, sizeof(*in));
	in->sock = sock;
	in->router = router;
}

/* Whether another frame of the current message follows. */
static int
rcvmore(void *sock)
{
	int more = 0;
	size_t ml = sizeof(more);

	if (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml) == -1)
		return 0;
	return more;
}

int
rq_bus_recv(struct rq_bus_in *in, struct rq_msg *m)
{
	zmq_msg_t frame;
	char err[160];
	int rc;

	if (!in->more) {
		in->frames = 0;
		if (in->router) {
			zmq_msg_init(&frame);
			if (zmq_msg_recv(&frame, in->sock, ZMQ_DONTWAIT) ==
			    -1) {
				zmq_msg_close(&frame);
				return recv_failed();
			}
			if (zmq_msg_size(&frame) > RQ_BUS_ID_MAX) {
				zmq_msg_close(&frame);
				drain_frames(in->sock);
				log_warnx("bus: identity frame too long");
				return -1;
			}
			in->idlen = zmq_msg_size(&frame);
			memcpy(in->id, zmq_msg_data(&frame), in->idlen);
			zmq_msg_close(&frame);
			if (!rcvmore(in->sock)) {
				log_warnx("bus: message without a body "
				    "dropped");
				return -1;
			}
		}
	}
	zmq_msg_init(&frame);
	if (zmq_msg_recv(&frame, in->sock, ZMQ_DONTWAIT) == -1) {
		zmq_msg_close(&frame);
		if (!in->router && !in->more)
			return recv_failed();
		/* ZeroMQ delivers a message whole: not expected. */
		log_warnx("bus: message body lost: %s", zmq_strerror(errno));
		in->more = 0;
		return -1;
	}
	in->frames++;
	in->more = rcvmore(in->sock);
	if (in->more && in->frames == RQ_BUS_BATCH_MAX) {
		drain_frames(in->sock);
		in->more = 0;
		log_warnx("bus: frames past %d of a message dropped",
		    RQ_BUS_BATCH_MAX);
	}
	rc = rq_msg_unpack(zmq_msg_data(&frame), zmq_msg_size(&frame), m, err,
	    sizeof(err));
	zmq_msg_close(&frame);
	if (rc == -1) {
		log_warnx("bus: malformed message dropped: %s", err);
		return -1;
	}
	return 1;
}

int
rq_bus_events(void *sock)
{
	int events = 0;
	size_t len = sizeof(events);

	if (zmq_getsockopt(sock, ZMQ_EVENTS, &events, &len) == -1)
		return 0;
	return events;
}

int
rq_bus_fd(void *sock)
{
	int fd = -1;
	size_t len = sizeof(fd);

	zmq_getsockopt(sock, ZMQ_FD, &fd, &len);
	return fd;
}

/*
 * CURVE.  rq_bus_secure() fills bus_sec once, before any socket exists and
 * before the thread starts; afterwards only the monitor list changes, under
 * mon_lock.  The thread owns the ZAP socket and, once handed over, each
 * monitor reader: sockets may move between threads behind a full barrier
 * (the mutex, pthread_create).
 */
#define BUS_ZAP_ENDPOINT	"inproc://zeromq.zap.01"
#define BUS_ZAP_DOMAIN		"ringq"
#define BUS_CLIENTS_MAX		256
#define BUS_MON_MAX		64
#define BUS_POLL_MS		200
#define BUS_LOG_EVERY_MS	1000

enum bus_refusal_kind {
	BUS_REFUSED_KEY,	/* server: a client key not in curve_clients */
	BUS_REFUSED_BY_SERVER,	/* client: the server's ZAP said no */
	BUS_REFUSED_PROTOCOL,	/* either side: mechanism or key mismatch */
	BUS_REFUSED_NO_DETAIL,
	BUS_REFUSAL_KINDS
};

struct bus_mon {
	void		*sock;		/* PAIR reading the socket's events */
	int		 server;
};

static struct {
	void		*zctx;		/* NULL: no CURVE in this process */
	int		 server, client;
	char		 public_key[41], secret_key[41], server_key[41];
	uint8_t		 clients[BUS_CLIENTS_MAX][32];
	size_t		 nclients;
	void		*zap;		/* REP, the thread's */
	pthread_mutex_t	 mon_lock;
	struct bus_mon	 mon_new[BUS_MON_MAX];	/* handed to the thread */
	size_t		 nmon_new;
	unsigned	 mon_seq;
	/* Thread only: refusal lines rate-limited per kind, so that a vague
	 * one never hides the line that says what is wrong. */
	struct log_rate	 log_rate[BUS_REFUSAL_KINDS];
} bus_sec = { .mon_lock = PTHREAD_MUTEX_INITIALIZER };

int
rq_bus_keygen(char public_key[41], char secret_key[41])
{
	if (!zmq_has("curve"))
		return -1;
	return zmq_curve_keypair(public_key, secret_key) == 0 ? 0 : -1;
}

/* Logs a refusal unless one was logged less than a second ago. */
static void
bus_refusal(enum bus_refusal_kind, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
bus_refusal(enum bus_refusal_kind kind, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_warnx_rate(&bus_sec.log_rate[kind], BUS_LOG_EVERY_MS, "%s", line);
}

static int
bus_accepted(const uint8_t key[32])
{
	uint8_t own[32];
	size_t i;

	if (zmq_z85_decode(own, bus_sec.public_key) != NULL &&
	    memcmp(own, key, 32) == 0)
		return 1;
	for (i = 0; i < bus_sec.nclients; i++)
		if (memcmp(bus_sec.clients[i], key, 32) == 0)
			return 1;
	return 0;
}

/* Answers one ZAP request (RFC 27): 200 for a known CURVE key, else 400. */
static void
bus_zap_answer(void *zap)
{
	zmq_msg_t f[8];
	size_t n = 0, i;
	int more = 1, ok = 0;
	const char *status = "400", *text = "key not accepted";
	char addr[64] = "", key[41] = "";

	while (more && n < 8) {
		size_t ml = sizeof(more);

		zmq_msg_init(&f[n]);
		if (zmq_msg_recv(&f[n], zap, 0) == -1) {
			zmq_msg_close(&f[n]);
			break;
		}
		n++;
		zmq_getsockopt(zap, ZMQ_RCVMORE, &more, &ml);
	}
	if (more || n < 6) {
		/* Not a request we can answer; a REP socket must still
		 * reply, so answer what we can below only when well-formed. */
		for (i = 0; i < n; i++)
			zmq_msg_close(&f[i]);
		if (more) {
			zmq_msg_t part;

			do {
				size_t ml = sizeof(more);

				zmq_msg_init(&part);
				zmq_msg_recv(&part, zap, 0);
				zmq_msg_close(&part);
				zmq_getsockopt(zap, ZMQ_RCVMORE, &more, &ml);
			} while (more);
		}
		log_warnx("bus: malformed ZAP request dropped");
		zmq_send(zap, "1.0", 3, ZMQ_SNDMORE);
		zmq_send(zap, "", 0, ZMQ_SNDMORE);
		zmq_send(zap, "500", 3, ZMQ_SNDMORE);
		zmq_send(zap, "malformed", 9, ZMQ_SNDMORE);
		zmq_send(zap, "", 0, ZMQ_SNDMORE);
		zmq_send(zap, "", 0, 0);
		return;
	}
	/* version, request id, domain, address, routing id, mechanism,
	 * credentials */
	snprintf(addr, sizeof(addr), "%.*s", (int)zmq_msg_size(&f[3]),
	    (const char *)zmq_msg_data(&f[3]));
	if (zmq_msg_size(&f[5]) == 5 &&
	    memcmp(zmq_msg_data(&f[5]), "CURVE", 5) == 0 && n == 7 &&
	    zmq_msg_size(&f[6]) == 32) {
		zmq_z85_encode(key, zmq_msg_data(&f[6]), 32);
		if (bus_accepted(zmq_msg_data(&f[6]))) {
			ok = 1;
			status = "200";
			text = "OK";
		}
	}
	if (!ok)
		bus_refusal(BUS_REFUSED_KEY, "bus: refused a peer from %s: "
		    "CURVE key %s is not in [bus] curve_clients",
		    addr[0] ? addr : "?",
		    key[0] ? key : "(none)");
	else
		log_debug("bus: CURVE client %s from %s accepted", key, addr);
	zmq_send(zap, "1.0", 3, ZMQ_SNDMORE);
	zmq_send(zap, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
	zmq_send(zap, status, 3, ZMQ_SNDMORE);
	zmq_send(zap, text, strlen(text), ZMQ_SNDMORE);
	zmq_send(zap, ok ? key : "", ok ? strlen(key) : 0, ZMQ_SNDMORE);
	zmq_send(zap, "", 0, 0);
	for (i = 0; i < n; i++)
		zmq_msg_close(&f[i]);
}

static const char *
bus_protocol_error(uint32_t v)
{
	switch (v) {
	case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
		return "one side has no CURVE";
	case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
	case ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE:
		return "keys do not match (a wrong curve_server_key?)";
	default:
		return "protocol error";
	}
}

/* Reads one monitor event; returns -1 when the monitor stopped. */
static int
bus_mon_read(struct bus_mon *m)
{
	zmq_msg_t ev, ep;
	uint16_t event = 0;
	uint32_t value = 0;
	char where[256] = "";
	int more = 0;
	size_t ml = sizeof(more);

	zmq_msg_init(&ev);
	if (zmq_msg_recv(&ev, m->sock, ZMQ_DONTWAIT) == -1) {
		zmq_msg_close(&ev);
		return 0;
	}
	if (zmq_msg_size(&ev) >= 6) {
		memcpy(&event, zmq_msg_data(&ev), 2);
		memcpy(&value, (const char *)zmq_msg_data(&ev) + 2, 4);
	}
	zmq_msg_close(&ev);
	zmq_getsockopt(m->sock, ZMQ_RCVMORE, &more, &ml);
	if (more) {
		zmq_msg_init(&ep);
		if (zmq_msg_recv(&ep, m->sock, ZMQ_DONTWAIT) != -1)
			snprintf(where, sizeof(where), "%.*s",
			    (int)zmq_msg_size(&ep),
			    (const char *)zmq_msg_data(&ep));
		zmq_msg_close(&ep);
	}
	switch (event) {
	case ZMQ_EVENT_MONITOR_STOPPED:
		return -1;
	case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
		/* The server logs its refusals from the ZAP handler. */
		if (!m->server)
			bus_refusal(BUS_REFUSED_BY_SERVER,
			    "bus %s: refused by the server (status "
			    "%u): is this daemon's curve_public_key in its "
			    "curve_clients?", where, (unsigned)value);
		break;
	case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
		bus_refusal(BUS_REFUSED_PROTOCOL,
		    "bus %s: CURVE handshake failed: %s", where,
		    bus_protocol_error(value));
		break;
	case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
		/* What a CURVE server usually sees when a peer without CURVE
		 * hangs up first, before ZeroMQ could say why. */
		bus_refusal(BUS_REFUSED_NO_DETAIL,
		    "bus %s: CURVE handshake failed: the peer hung up "
		    "(has it no CURVE, or a wrong curve_server_key?)", where);
		break;
	}
	return 0;
}

static void *
bus_thread(void *arg)
{
	struct bus_mon mon[BUS_MON_MAX];
	zmq_pollitem_t pi[1 + BUS_MON_MAX];
	size_t nmon = 0, i, n;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&bus_sec.mon_lock);
		for (i = 0; i < bus_sec.nmon_new && nmon < BUS_MON_MAX; i++)
			mon[nmon++] = bus_sec.mon_new[i];
		bus_sec.nmon_new = 0;
		pthread_mutex_unlock(&bus_sec.mon_lock);

		n = 0;
		if (bus_sec.zap != NULL)
			pi[n++] = (zmq_pollitem_t){ bus_sec.zap, 0, ZMQ_POLLIN,
			    0 };
		for (i = 0; i < nmon; i++)
			pi[n++] = (zmq_pollitem_t){ mon[i].sock, 0, ZMQ_POLLIN,
			    0 };
		if (zmq_poll(pi, (int)n, BUS_POLL_MS) == -1) {
			if (errno == EINTR)
				continue;
			break;		/* ETERM: the context is closing */
		}
		n = 0;
		if (bus_sec.zap != NULL && (pi[n++].revents & ZMQ_POLLIN))
			bus_zap_answer(bus_sec.zap);
		for (i = 0; i < nmon; i++, n++) {
			if (!(pi[n].revents & ZMQ_POLLIN))
				continue;
			if (bus_mon_read(&mon[i]) == -1) {
				zmq_close(mon[i].sock);
				mon[i].sock = NULL;
			}
		}
		for (i = 0; i < nmon; )
			if (mon[i].sock == NULL)
				mon[i] = mon[--nmon];
			else
				i++;
	}
	/* zmq_ctx_term() waits for these. */
	if (bus_sec.zap != NULL)
		zmq_close(bus_sec.zap);
	for (i = 0; i < nmon; i++)
		zmq_close(mon[i].sock);
	pthread_mutex_lock(&bus_sec.mon_lock);
	for (i = 0; i < bus_sec.nmon_new; i++)
		zmq_close(bus_sec.mon_new[i].sock);
	bus_sec.nmon_new = 0;
	pthread_mutex_unlock(&bus_sec.mon_lock);
	return NULL;
}

/* Hands a reader of s's handshake failures to the thread. */
static void
bus_monitor(void *ctx, void *s, int server)
{
	char ep[64];
	void *r;
	int zero = 0;

	pthread_mutex_lock(&bus_sec.mon_lock);
	snprintf(ep, sizeof(ep), "inproc://ringq-bus-monitor-%u",
	    bus_sec.mon_seq++);
	if (bus_sec.nmon_new == BUS_MON_MAX ||
	    zmq_socket_monitor(s, ep, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
	    ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
	    ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_MONITOR_STOPPED) == -1 ||
	    (r = zmq_socket(ctx, ZMQ_PAIR)) == NULL) {
		pthread_mutex_unlock(&bus_sec.mon_lock);
		log_warnx("bus: cannot watch a socket's handshakes");
		return;
	}
	zmq_setsockopt(r, ZMQ_LINGER, &zero, sizeof(zero));
	if (zmq_connect(r, ep) == -1) {
		zmq_close(r);
		pthread_mutex_unlock(&bus_sec.mon_lock);
		log_warnx("bus: cannot watch a socket's handshakes");
		return;
	}
	bus_sec.mon_new[bus_sec.nmon_new].sock = r;
	bus_sec.mon_new[bus_sec.nmon_new].server = server;
	bus_sec.nmon_new++;
	pthread_mutex_unlock(&bus_sec.mon_lock);
}

/* CURVE options for a new socket of bus_sec's context. */
static int
bus_curve(void *ctx, void *s, int type)
{
	int one = 1;

	if (bus_sec.zctx == NULL || ctx != bus_sec.zctx)
		return 0;
	if (type == ZMQ_ROUTER && bus_sec.server) {
		if (zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one,
		    sizeof(one)) == -1 ||
		    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, bus_sec.secret_key,
		    40) == -1 ||
		    zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, BUS_ZAP_DOMAIN,
		    strlen(BUS_ZAP_DOMAIN)) == -1)
			goto fail;
		bus_monitor(ctx, s, 1);
	} else if (type == ZMQ_DEALER && bus_sec.client) {
		if (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, bus_sec.server_key,
		    40) == -1 ||
		    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, bus_sec.public_key,
		    40) == -1 ||
		    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, bus_sec.secret_key,
		    40) == -1)
			goto fail;
		bus_monitor(ctx, s, 0);
	}
	return 0;
fail:
	log_warnx("bus: CURVE socket options: %s", zmq_strerror(errno));
	return -1;
}

int
rq_bus_secure(void *zctx, const struct rq_config *cfg, char *err,
    size_t errlen)
{
	const char *p;
	pthread_t t;
	int zero = 0;

	if (cfg->curve_secret_key[0] == '\0' &&
	    cfg->curve_server_key[0] == '\0')
		return 0;
	if (bus_sec.zctx != NULL) {
		snprintf(err, errlen, "CURVE is already set up");
		return -1;
	}
	if (!zmq_has("curve")) {
		snprintf(err, errlen, "this libzmq has no CURVE");
		return -1;
	}
	/* Formats and pairs are checked with the config (config.c);
	 * here only what the sockets need. */
	if (strlen(cfg->curve_public_key) != 40 ||
	    strlen(cfg->curve_secret_key) != 40 ||
	    (cfg->curve_server_key[0] != '\0' &&
	    strlen(cfg->curve_server_key) != 40)) {
		snprintf(err, errlen, "[bus] CURVE keys must be 40 Z85 "
		    "characters, with both curve_public_key and "
		    "curve_secret_key");
		return -1;
	}
	memcpy(bus_sec.public_key, cfg->curve_public_key, 41);
	memcpy(bus_sec.secret_key, cfg->curve_secret_key, 41);
	memcpy(bus_sec.server_key, cfg->curve_server_key, 41);
	bus_sec.client = cfg->curve_server_key[0] != '\0';
	bus_sec.server = 1;
	bus_sec.nclients = 0;
	for (p = cfg->curve_clients; *p != '\0'; ) {
		char k[41];
		size_t len;

		p += strspn(p, " \t,");
		if ((len = strcspn(p, " \t,")) == 0)
			break;
		if (len != 40 || bus_sec.nclients == BUS_CLIENTS_MAX) {
			snprintf(err, errlen, "[bus] curve_clients: a bad key "
			    "or more than %d keys", BUS_CLIENTS_MAX);
			return -1;
		}
		memcpy(k, p, 40);
		k[40] = '\0';
		if (zmq_z85_decode(bus_sec.clients[bus_sec.nclients], k) ==
		    NULL) {
			snprintf(err, errlen, "[bus] curve_clients: %s is not "
			    "Z85", k);
			return -1;
		}
		bus_sec.nclients++;
		p += len;
	}
	/* The handler must be bound before a server socket accepts: with
	 * none, libzmq lets every CURVE client in. */
	if ((bus_sec.zap = zmq_socket(zctx, ZMQ_REP)) == NULL ||
	    zmq_setsockopt(bus_sec.zap, ZMQ_LINGER, &zero,
	    sizeof(zero)) == -1 ||
	    zmq_bind(bus_sec.zap, BUS_ZAP_ENDPOINT) == -1) {
		snprintf(err, errlen, "ZAP handler: %s", zmq_strerror(errno));
		if (bus_sec.zap != NULL)
			zmq_close(bus_sec.zap);
		bus_sec.zap = NULL;
		return -1;
	}
	bus_sec.zctx = zctx;
	if (pthread_create(&t, NULL, bus_thread, NULL) != 0) {
		snprintf(err, errlen, "cannot start the ZAP thread");
		zmq_close(bus_sec.zap);
		bus_sec.zap = NULL;
		bus_sec.zctx = NULL;
		return -1;
	}
	pthread_detach(t);
	log_info("bus: CURVE on%s%s, %zu client keys accepted",
	    bus_sec.server ? " (server)" : "",
	    bus_sec.client ? " (client)" : "", bus_sec.nclients);
	return 0;
}
