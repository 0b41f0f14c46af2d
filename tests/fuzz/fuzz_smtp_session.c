/* libFuzzer target: arbitrary client bytes through the SMTP session
 * (gateway/smtp_session.c), twice: once as the reads a seed cuts the input
 * into, once with each read cut again at every line end and into pieces of
 * a few bytes.  Both must say exactly the same (the state machine may not
 * depend on how TCP splits its input), every reply must be one well-formed
 * reply line, nothing may be written after the close, and a message handed
 * over must belong to a tenant, fit the SIZE limit and have only CRLF line
 * ends.  A message's tenant must be one whose credential the client gave:
 * its token in a recipient ("+tok1@") sent before the message, or its
 * AUTH accepted since the last STARTTLS; and once the client is
 * authenticated, only the authenticated tenant's.  The bytes a read holds
 * after STARTTLS are dropped in both (they came before the handshake); the
 * next read is the TLS session's.
 *
 * Input: a flags byte (bit 0: run one answers messages later, not from the
 * callback; bit 1: the same for run two; bit 2: TLS on offer; bit 3: each
 * read ends at its first line end, as from a client that does not
 * pipeline; bit 4: the server ends the session after the last read, as on
 * a timeout, which must close it with one 421 reply), two seed bytes, then
 * what the client sends. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

#define MAX_MESSAGE	2048	/* small, so that inputs reach SIZE */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
	struct gw_smtp_session *s;
	char		*log;		/* replies and events, in order */
	size_t		 len, cap;
	int		 later;		/* answer after feed returns */
	int		 tls_asked;
	int		 closed;
	int		 authed;	/* a 235 since the last STARTTLS */
	const char	*sent;		/* what the client sent so far */
	size_t		 sentlen;
	unsigned	 messages;
	char		 more[4];	/* the code a "DDD-" line promised */
};

static struct rq_config cfg;
static struct rq_tenant tenants[2];

static void
log_add(struct run *r, const void *p, size_t n)
{
	if (r->len + n > r->cap) {
		r->cap = (r->len + n) * 2 + 256;
		if ((r->log = realloc(r->log, r->cap)) == NULL)
			abort();
	}
	memcpy(r->log + r->len, p, n);
	r->len += n;
}

/* Events go in the log after a NUL, which no reply holds. */
static void
log_event(struct run *r, const char *what)
{
	log_add(r, "", 1);
	log_add(r, what, strlen(what));
}

/* One reply line: a code from 2xx to 5xx, ' ' or '-', printable text, CRLF;
 * after a "DDD-" line, the same code. */
static void
check_reply(struct run *r, const char *buf, size_t len)
{
	size_t i;

	if (len < 6 || buf[0] < '2' || buf[0] > '5' ||
	    buf[1] < '0' || buf[1] > '9' || buf[2] < '0' || buf[2] > '9' ||
	    (buf[3] != ' ' && buf[3] != '-') ||
	    buf[len - 2] != '\r' || buf[len - 1] != '\n')
		abort();
	for (i = 4; i < len - 2; i++)
		if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] >= 0x7f)
			abort();
	if (r->more[0] != '\0' && memcmp(r->more, buf, 3) != 0)
		abort();
	if (buf[3] == '-')
		memcpy(r->more, buf, 3);
	else
		r->more[0] = '\0';
}

static void
io_write(void *arg, const char *buf, size_t len)
{
	struct run *r = arg;

	if (r->closed)
		abort();
	check_reply(r, buf, len);
	if (memcmp(buf, "235", 3) == 0)
		r->authed = 1;
	log_add(r, buf, len);
}

static void
io_starttls(void *arg)
{
	struct run *r = arg;

	r->tls_asked = 1;
	r->authed = 0;
	log_event(r, "starttls");
}

/* Every other message is refused: both answers, and what follows each,
 * are exercised. */
static const char *
answer(struct run *r)
{
	return r->messages % 2 ? "250 2.0.0 Ok: accepted" :
	    "554 5.6.0 Not a call request";
}

static int
sent_token(const struct run *r, const char *token)
{
	return memmem(r->sent, r->sentlen, token, strlen(token)) != NULL;
}

static void
io_message(void *arg, const struct rq_tenant *t, const char *data,
    size_t len)
{
	struct run *r = arg;
	char head[RQ_NAME_MAX + 48];
	size_t i;
	int n;

	if (t == NULL || len > MAX_MESSAGE)
		abort();
	/* tenants[1] alone has an SMTP user */
	if (r->authed ? t != &tenants[1] :
	    !sent_token(r, t == &tenants[0] ? "+tok1@" : "+tok2@"))
		abort();
	/* dot-unstuffed lines, each ended by CRLF */
	if (len > 0 && (len < 2 || data[len - 2] != '\r' ||
	    data[len - 1] != '\n'))
		abort();
	for (i = 0; i < len; i++)
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			abort();
	r->messages++;
	n = snprintf(head, sizeof(head), "message %s %zu:", t->name, len);
	if (n < 0 || (size_t)n >= sizeof(head))
		abort();
	log_event(r, head);
	log_add(r, data, len);
	if (!r->later)
		gw_smtp_session_answer(r->s, answer(r));
}

static void
io_close(void *arg)
{
	struct run *r = arg;

	r->closed = 1;
	log_event(r, "close");
}

static void
run_open(struct run *r, int later, int tls)
{
	struct gw_smtp_io io = { io_write, io_starttls, io_message, io_close,
	    r };

	memset(r, 0, sizeof(*r));
	r->later = later;
	if ((r->s = gw_smtp_session_new(&cfg, &io, tls)) == NULL)
		abort();
	gw_smtp_session_start(r->s);
}

/* One read of n bytes, the next of what the client sent from in.  Returns
 * 1 after a STARTTLS, whose read ends there (what else it held was
 * dropped). */
static int
run_read(struct run *r, const char *in, const char *p, size_t n)
{
	size_t used;

	r->sent = in;
	r->sentlen = (size_t)(p + n - in);

	while (n > 0 && !r->closed) {
		if ((used = gw_smtp_session_feed(r->s, p, n)) > n)
			abort();
		p += used;
		n -= used;
		if (r->tls_asked) {
			r->tls_asked = 0;
			gw_smtp_session_tls_started(r->s);
			return 1;
		}
		if (n > 0) {
			/* it stops early only while a message waits */
			if (!gw_smtp_session_waiting(r->s))
				abort();
			gw_smtp_session_answer(r->s, answer(r));
		}
	}
	if (gw_smtp_session_waiting(r->s))
		gw_smtp_session_answer(r->s, answer(r));
	return 0;
}

static uint32_t
next(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static void
setup(void)
{
	rq_config_defaults(&cfg);
	snprintf(cfg.smtp_domain, sizeof(cfg.smtp_domain), "ringq.test");
	snprintf(cfg.smtp_hostname, sizeof(cfg.smtp_hostname), "mx.test");
	cfg.smtp_max_message = MAX_MESSAGE;
	snprintf(tenants[0].name, sizeof(tenants[0].name), "one");
	rq_sha256_hex("tok1", 4, tenants[0].mail_token_sha256);
	snprintf(tenants[1].name, sizeof(tenants[1].name), "two");
	rq_sha256_hex("tok2", 4, tenants[1].mail_token_sha256);
	/* AUTH PLAIN AHUyAHB3 (u2 / pw) */
	snprintf(tenants[1].smtp_user, sizeof(tenants[1].smtp_user), "u2");
	rq_sha256_hex("pw", 2, tenants[1].smtp_password_sha256);
	cfg.tenants = tenants;
	cfg.ntenants = 2;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct run a, b;
	const char *in = (const char *)data + 3;
	size_t len, off, n, i, piece;
	uint32_t x, y;
	int dropped;

	if (!ready) {
		setup();
		ready = 1;
	}
	if (size < 3)
		return 0;
	len = size - 3;
	x = y = ((uint32_t)data[1] << 8 | data[2]) * 2654435761u | 1;
	run_open(&a, data[0] & 1, (data[0] & 4) != 0);
	run_open(&b, (data[0] & 2) != 0, (data[0] & 4) != 0);

	for (off = 0; off < len; off += n) {
		n = 1 + next(&x) % 256;
		if (n > len - off)
			n = len - off;
		if (data[0] & 8) {
			const char *nl = memchr(in + off, '\n', n);

			if (nl != NULL)
				n = nl - (in + off) + 1;
		}
		run_read(&a, in, in + off, n);
		/* the same read again, line by line, a few bytes at a time */
		for (i = 0, dropped = 0; i < n && !dropped; i += piece) {
			const char *nl = memchr(in + off + i, '\n', n - i);

			piece = 1 + next(&y) % 8;
			if (nl != NULL && (size_t)(nl - (in + off + i)) < piece)
				piece = nl - (in + off + i) + 1;
			if (piece > n - i)
				piece = n - i;
			dropped = run_read(&b, in, in + off + i, piece);
		}
	}
	if ((data[0] & 16) && !a.closed) {
		size_t before = a.len;

		gw_smtp_session_abort(a.s, "421 4.4.2 Timeout");
		gw_smtp_session_abort(b.s, "421 4.4.2 Timeout");
		if (!a.closed || a.len < before + 4 ||
		    memcmp(a.log + before, "421 ", 4) != 0)
			abort();
	}
	if (a.len != b.len || memcmp(a.log, b.log, a.len) != 0 ||
	    a.closed != b.closed)
		abort();
	gw_smtp_session_free(a.s);
	gw_smtp_session_free(b.s);
	free(a.log);
	free(b.log);
	return 0;
}
