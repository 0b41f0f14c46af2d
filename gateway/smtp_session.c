/* The SMTP session of the e-mail intake (RFC 5321, 3207, 4954): an explicit
 * state machine with a command table, after OpenSMTPD's smtp_session.c.  No
 * I/O here: bytes come in by gw_smtp_session_feed, replies go out by io. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "gateway.h"
#include "log.h"

enum smtp_state {
	SS_NEW,			/* banner not yet sent */
	SS_CONNECTED,		/* no EHLO/HELO yet */
	SS_HELO,		/* greeted; no transaction */
	SS_MAIL,		/* MAIL FROM given */
	SS_RCPT,		/* at least one RCPT TO accepted */
	SS_BODY,		/* reading DATA */
	SS_WAIT,		/* message handed over; waiting for its answer */
	SS_AUTH_PLAIN,		/* waiting for the PLAIN response */
	SS_AUTH_USER,		/* LOGIN: waiting for the user name */
	SS_AUTH_PASS,		/* LOGIN: waiting for the password */
	SS_STARTTLS,		/* 220 sent; waiting for the handshake */
	SS_QUIT			/* closing: input is ignored */
};

#define F_TLS		0x01	/* the connection is under TLS */
#define F_EHLO		0x02	/* extended session */
#define F_8BIT		0x04	/* BODY=8BITMIME */
#define F_TOOLONG	0x08	/* a DATA line was over the limit */
#define F_TOOBIG	0x10	/* the message went over SIZE */
#define F_BARELF	0x20	/* a DATA line ended with a bare LF */

struct gw_smtp_session {
	const struct rq_config	*cfg;
	struct gw_smtp_io	 io;
	int			 tls_available;
	enum smtp_state		 state;
	int			 flags;
	const struct rq_tenant	*auth;		/* SMTP AUTH identity */
	const struct rq_tenant	*tenant;	/* of this transaction */
	char			 auth_user[RQ_NAME_MAX];
	/* the line being read; long lines are discarded to their end */
	char			 line[GW_SMTP_LINE_MAX + 1];
	size_t			 linelen;
	int			 overflow;
	int			 cr;		/* the line's last byte was CR */
	int			 prevbare;	/* the last DATA line ended bare */
	uint64_t		 txn_start_ms;	/* MAIL accepted (monotonic); 0 none */
	/* the message, dot-unstuffed, CRLF line ends */
	char			*data;
	size_t			 datalen;
	size_t			 datacap;
	int			 errors;	/* bad commands: 10 closes */
};

struct smtp_cmd {
	const char	*name;
	int		 states;	/* bit (1 << state) where allowed */
	void		(*fn)(struct gw_smtp_session *, char *);
};

#define ST(s)		(1 << (s))
#define ANY		(ST(SS_CONNECTED) | ST(SS_HELO) | ST(SS_MAIL) | \
			    ST(SS_RCPT))
#define MAX_ERRORS	10
/* MAIL to the end of DATA, in units of the idle timeout: a client that
 * trickles a byte now and then never goes idle (docs/email.md) */
#define TXN_TIMEOUTS	10

static void	cmd_helo(struct gw_smtp_session *, char *);
static void	cmd_ehlo(struct gw_smtp_session *, char *);
static void	cmd_starttls(struct gw_smtp_session *, char *);
static void	cmd_auth(struct gw_smtp_session *, char *);
static void	cmd_mail(struct gw_smtp_session *, char *);
static void	cmd_rcpt(struct gw_smtp_session *, char *);
static void	cmd_data(struct gw_smtp_session *, char *);
static void	cmd_rset(struct gw_smtp_session *, char *);
static void	cmd_noop(struct gw_smtp_session *, char *);
static void	cmd_vrfy(struct gw_smtp_session *, char *);
static void	cmd_help(struct gw_smtp_session *, char *);
static void	cmd_quit(struct gw_smtp_session *, char *);

static const struct smtp_cmd commands[] = {
	{ "HELO",	ANY,				cmd_helo },
	{ "EHLO",	ANY,				cmd_ehlo },
	{ "STARTTLS",	ANY,				cmd_starttls },
	{ "AUTH",	ANY,				cmd_auth },
	{ "MAIL",	ANY,				cmd_mail },
	{ "RCPT",	ANY,				cmd_rcpt },
	{ "DATA",	ANY,				cmd_data },
	{ "RSET",	ANY,				cmd_rset },
	{ "NOOP",	ANY,				cmd_noop },
	{ "VRFY",	ANY,				cmd_vrfy },
	{ "EXPN",	ANY,				cmd_vrfy },
	{ "HELP",	ANY,				cmd_help },
	{ "QUIT",	ANY,				cmd_quit },
};

static void
smtp_reply(struct gw_smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
smtp_reply(struct gw_smtp_session *s, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n, i;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 3)
		n = sizeof(buf) - 3;
	/* replies may quote what the client sent: keep them ASCII */
	for (i = 0; i < n; i++)
		if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] >= 0x7f)
			buf[i] = '?';
	buf[n++] = '\r';
	buf[n++] = '\n';
	s->io.write(s->io.arg, buf, n);
}

static void
smtp_close(struct gw_smtp_session *s)
{
	s->state = SS_QUIT;
	s->io.close(s->io.arg);
}

static void
smtp_reset(struct gw_smtp_session *s)
{
	s->tenant = NULL;
	s->datalen = 0;
	s->flags &= ~(F_8BIT | F_TOOLONG | F_TOOBIG | F_BARELF);
	s->txn_start_ms = 0;
	s->state = SS_HELO;
}

static int
smtp_bad(struct gw_smtp_session *s)
{
	if (++s->errors < MAX_ERRORS)
		return 0;
	smtp_reply(s, "421 4.7.0 Too many errors; closing");
	smtp_close(s);
	return -1;
}

struct gw_smtp_session *
gw_smtp_session_new(const struct rq_config *cfg, const struct gw_smtp_io *io,
    int tls_available)
{
	struct gw_smtp_session *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->cfg = cfg;
	s->io = *io;
	s->tls_available = tls_available;
	s->state = SS_NEW;
	return s;
}

void
gw_smtp_session_free(struct gw_smtp_session *s)
{
	if (s == NULL)
		return;
	free(s->data);
	free(s);
}

void
gw_smtp_session_start(struct gw_smtp_session *s)
{
	s->state = SS_CONNECTED;
	smtp_reply(s, "220 %s ESMTP ringq", s->cfg->smtp_hostname);
}

int
gw_smtp_session_waiting(const struct gw_smtp_session *s)
{
	return s->state == SS_WAIT;
}

void
gw_smtp_session_tls_started(struct gw_smtp_session *s)
{
	s->flags = F_TLS;
	s->auth = NULL;
	s->tenant = NULL;
	s->datalen = 0;
	s->linelen = 0;
	s->overflow = 0;
	s->cr = 0;
	s->txn_start_ms = 0;
	s->state = SS_CONNECTED;
}

void
gw_smtp_session_answer(struct gw_smtp_session *s, const char *reply)
{
	if (s->state != SS_WAIT)
		return;
	smtp_reply(s, "%s", reply);
	smtp_reset(s);
}

void
gw_smtp_session_abort(struct gw_smtp_session *s, const char *reply)
{
	if (s->state == SS_QUIT)
		return;
	smtp_reply(s, "%s", reply);
	smtp_close(s);
}

/* --- commands ------------------------------------------------------------- */

static int
helo_arg_ok(const char *arg)
{
	return *arg != '\0' && strlen(arg) < 256 && strchr(arg, ' ') == NULL;
}

static void
cmd_helo(struct gw_smtp_session *s, char *arg)
{
	if (!helo_arg_ok(arg)) {
		smtp_reply(s, "501 5.5.4 Syntax: HELO hostname");
		return;
	}
	smtp_reset(s);
	s->flags &= ~F_EHLO;
	smtp_reply(s, "250 %s Hello %s", s->cfg->smtp_hostname, arg);
}

static void
cmd_ehlo(struct gw_smtp_session *s, char *arg)
{
	if (!helo_arg_ok(arg)) {
		smtp_reply(s, "501 5.5.4 Syntax: EHLO hostname");
		return;
	}
	smtp_reset(s);
	s->flags |= F_EHLO;
	smtp_reply(s, "250-%s Hello %s", s->cfg->smtp_hostname, arg);
	smtp_reply(s, "250-SIZE %d", s->cfg->smtp_max_message);
	smtp_reply(s, "250-PIPELINING");
	smtp_reply(s, "250-8BITMIME");
	smtp_reply(s, "250-ENHANCEDSTATUSCODES");
	if (s->tls_available && !(s->flags & F_TLS))
		smtp_reply(s, "250-STARTTLS");
	if ((s->flags & F_TLS) && s->auth == NULL)
		smtp_reply(s, "250-AUTH PLAIN LOGIN");
	smtp_reply(s, "250 HELP");
}

static void
cmd_starttls(struct gw_smtp_session *s, char *arg)
{
	if (!s->tls_available || (s->flags & F_TLS)) {
		smtp_reply(s, "502 5.5.1 STARTTLS not available");
		return;
	}
	if (*arg != '\0') {
		smtp_reply(s, "501 5.5.4 No parameters allowed");
		return;
	}
	if (s->state != SS_HELO && s->state != SS_CONNECTED) {
		smtp_reply(s, "503 5.5.1 STARTTLS inside a transaction");
		return;
	}
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	s->state = SS_STARTTLS;
	s->io.starttls(s->io.arg);
}

/* Base64 to a NUL-terminated buffer; -1 on bad input. */
static int
b64_decode(const char *in, char *out, size_t outlen, size_t *n)
{
	size_t len = strlen(in), pad = 0;
	int r;

	if (len == 0 || len % 4 != 0 || (len / 4) * 3 + 1 > outlen)
		return -1;
	if ((r = EVP_DecodeBlock((unsigned char *)out,
	    (const unsigned char *)in, (int)len)) < 0)
		return -1;
	if (in[len - 1] == '=')
		pad++;
	if (in[len - 2] == '=')
		pad++;
	*n = (size_t)r - pad;
	out[*n] = '\0';
	return 0;
}

static const struct rq_tenant *
auth_check(struct gw_smtp_session *s, const char *user, const char *pass,
    size_t passlen)
{
	const struct rq_tenant *t;
	char hex[65];

	rq_sha256_hex(pass, passlen, hex);
	t = rq_config_tenant_by_smtp_user(s->cfg, user);
	if (t == NULL || t->smtp_password_sha256[0] == '\0' ||
	    strcmp(t->smtp_password_sha256, hex))
		t = NULL;
	explicit_bzero(hex, sizeof(hex));
	return t;
}

static void
auth_finish(struct gw_smtp_session *s, const char *user, const char *pass,
    size_t passlen)
{
	const struct rq_tenant *t;

	s->state = SS_HELO;
	if ((t = auth_check(s, user, pass, passlen)) == NULL) {
		/* the user name may be a typo'd password: not logged */
		log_info("smtp: authentication failed");
		smtp_reply(s, "535 5.7.8 Authentication credentials invalid");
		smtp_bad(s);
		return;
	}
	s->auth = t;
	log_info("smtp: authenticated as tenant %s", t->name);
	smtp_reply(s, "235 2.7.0 Authentication successful");
}

static void
auth_plain(struct gw_smtp_session *s, const char *b64)
{
	char buf[1024];
	const char *user, *pass;
	size_t n, ulen;

	if (b64_decode(b64, buf, sizeof(buf), &n) == -1)
		goto bad;
	/* authzid NUL authcid NUL passwd */
	if ((user = memchr(buf, '\0', n)) == NULL)
		goto bad;
	user++;
	ulen = strnlen(user, n - (user - buf));
	if (user + ulen >= buf + n)
		goto bad;
	pass = user + ulen + 1;
	/* RFC 4616: acting for someone else is not something we offer */
	if (buf[0] != '\0' && strcmp(buf, user)) {
		s->state = SS_HELO;
		log_info("smtp: authentication failed: authorization "
		    "identity differs");
		smtp_reply(s, "535 5.7.8 Authentication credentials invalid: "
		    "the authorization identity must be empty or the user");
		explicit_bzero(buf, sizeof(buf));
		smtp_bad(s);
		return;
	}
	auth_finish(s, user, pass, n - (pass - buf));
	explicit_bzero(buf, sizeof(buf));
	return;
bad:
	explicit_bzero(buf, sizeof(buf));
	s->state = SS_HELO;
	smtp_reply(s, "501 5.5.2 Malformed AUTH PLAIN response");
	smtp_bad(s);
}

static void
cmd_auth(struct gw_smtp_session *s, char *arg)
{
	char *mech = arg, *init;

	if (!(s->flags & F_TLS)) {
		smtp_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
		smtp_bad(s);
		return;
	}
	if (s->auth != NULL) {
		smtp_reply(s, "503 5.5.1 Already authenticated");
		return;
	}
	if (s->state != SS_HELO) {
		smtp_reply(s, "503 5.5.1 Say EHLO first, and AUTH before MAIL");
		return;
	}
	if ((init = strchr(arg, ' ')) != NULL)
		*init++ = '\0';
	if (!strcasecmp(mech, "PLAIN")) {
		if (init != NULL && *init != '\0' && strcmp(init, "=")) {
			auth_plain(s, init);
			return;
		}
		s->state = SS_AUTH_PLAIN;
		smtp_reply(s, "334 ");
	} else if (!strcasecmp(mech, "LOGIN")) {
		if (init != NULL && *init != '\0') {
			size_t n;

			if (b64_decode(init, s->auth_user,
			    sizeof(s->auth_user), &n) == -1) {
				smtp_reply(s, "501 5.5.2 Malformed user name");
				return;
			}
			s->state = SS_AUTH_PASS;
			smtp_reply(s, "334 UGFzc3dvcmQ6");
			return;
		}
		s->state = SS_AUTH_USER;
		smtp_reply(s, "334 VXNlcm5hbWU6");
	} else
		smtp_reply(s, "504 5.5.4 Mechanism not supported: use PLAIN "
		    "or LOGIN");
}

/* The response lines of an AUTH exchange. */
static void
auth_input(struct gw_smtp_session *s, char *line)
{
	char pass[512];
	size_t n;

	if (!strcmp(line, "*")) {
		s->state = SS_HELO;
		smtp_reply(s, "501 5.0.0 Authentication cancelled");
		return;
	}
	switch (s->state) {
	case SS_AUTH_PLAIN:
		auth_plain(s, line);
		break;
	case SS_AUTH_USER:
		if (b64_decode(line, s->auth_user, sizeof(s->auth_user),
		    &n) == -1) {
			s->state = SS_HELO;
			smtp_reply(s, "501 5.5.2 Malformed user name");
			smtp_bad(s);
			return;
		}
		s->state = SS_AUTH_PASS;
		smtp_reply(s, "334 UGFzc3dvcmQ6");
		break;
	case SS_AUTH_PASS:
		if (b64_decode(line, pass, sizeof(pass), &n) == -1) {
			explicit_bzero(pass, sizeof(pass));
			s->state = SS_HELO;
			smtp_reply(s, "501 5.5.2 Malformed password");
			smtp_bad(s);
			return;
		}
		auth_finish(s, s->auth_user, pass, n);
		explicit_bzero(pass, sizeof(pass));
		explicit_bzero(s->auth_user, sizeof(s->auth_user));
		break;
	default:
		break;
	}
}

/* "FROM:<addr> PARAMS" or "TO:<addr> PARAMS": the address (without <>)
 * and the parameters; -1 on bad syntax. */
static int
parse_path(char *arg, const char *prefix, char **addr, char **params)
{
	size_t plen = strlen(prefix);
	char *p, *end;

	if (strncasecmp(arg, prefix, plen))
		return -1;
	p = arg + plen;
	p += strspn(p, " ");
	if (*p != '<' || (end = strchr(p, '>')) == NULL)
		return -1;
	*end = '\0';
	*addr = p + 1;
	p = end + 1;
	p += strspn(p, " ");
	*params = p;
	return 0;
}

static void
cmd_mail(struct gw_smtp_session *s, char *arg)
{
	char *addr, *params, *tok, *save;

	if (s->state == SS_CONNECTED) {
		smtp_reply(s, "503 5.5.1 Say EHLO or HELO first");
		return;
	}
	if (s->state != SS_HELO) {
		smtp_reply(s, "503 5.5.1 Nested MAIL command");
		return;
	}
	if (parse_path(arg, "FROM:", &addr, &params) == -1) {
		smtp_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		smtp_bad(s);
		return;
	}
	for (tok = strtok_r(params, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save)) {
		if (!strncasecmp(tok, "SIZE=", 5)) {
			char *end;
			unsigned long long n = strtoull(tok + 5, &end, 10);

			if (*end != '\0' || end == tok + 5) {
				smtp_reply(s, "501 5.5.4 Bad SIZE parameter");
				return;
			}
			if (n > (unsigned long long)s->cfg->smtp_max_message) {
				smtp_reply(s, "552 5.3.4 Message too big: the "
				    "limit is %d bytes", s->cfg->smtp_max_message);
				return;
			}
		} else if (!strcasecmp(tok, "BODY=8BITMIME"))
			s->flags |= F_8BIT;
		else if (!strcasecmp(tok, "BODY=7BIT"))
			;
		else if (!strncasecmp(tok, "AUTH=", 5))
			;	/* RFC 4954 5: we need not trust it */
		else {
			smtp_reply(s, "555 5.5.4 Unsupported parameter %.64s",
			    tok);
			return;
		}
	}
	(void)addr;		/* the sender is not who asks: see docs */
	s->txn_start_ms = rq_mono_ms();	/* a clock step is no slow client */
	s->state = SS_MAIL;
	smtp_reply(s, "250 2.1.0 Ok");
}

/* The tenant a recipient address names, NULL with a reply sent. */
static const struct rq_tenant *
rcpt_tenant(struct gw_smtp_session *s, const char *addr)
{
	const struct rq_tenant *t;
	const char *at, *local, *plus, *token;
	char hex[65];
	size_t llen;

	if ((at = strrchr(addr, '@')) == NULL ||
	    strcasecmp(at + 1, s->cfg->smtp_domain)) {
		smtp_reply(s, "550 5.7.1 Relaying denied: this server only "
		    "takes calls+<token>@%s", s->cfg->smtp_domain);
		return NULL;
	}
	local = addr;
	llen = at - addr;
	plus = memchr(local, '+', llen);
	if (strncasecmp(local, "calls", 5) || (llen != 5 && plus != local + 5)) {
		smtp_reply(s, "550 5.1.1 Unknown mailbox: requests go to "
		    "calls+<token>@%s", s->cfg->smtp_domain);
		return NULL;
	}
	if (plus == NULL || plus + 1 == at) {
		if (s->auth != NULL)
			return s->auth;
		smtp_reply(s, "550 5.1.1 No request token: send to "
		    "calls+<token>@%s or authenticate", s->cfg->smtp_domain);
		return NULL;
	}
	token = plus + 1;
	rq_sha256_hex(token, at - token, hex);
	if ((t = rq_config_tenant_by_mail_token(s->cfg, hex)) != NULL) {
		if (s->auth != NULL && s->auth != t) {
			smtp_reply(s, "550 5.7.1 This token belongs to another "
			    "tenant than the one authenticated");
			return NULL;
		}
		return t;
	}
	smtp_reply(s, "550 5.1.1 Unknown request token: check the address "
	    "your ringq operator gave you (tokens are rotated)");
	return NULL;
}

static void
cmd_rcpt(struct gw_smtp_session *s, char *arg)
{
	const struct rq_tenant *t;
	char *addr, *params;

	if (s->state != SS_MAIL && s->state != SS_RCPT) {
		smtp_reply(s, "503 5.5.1 Need MAIL before RCPT");
		return;
	}
	if (parse_path(arg, "TO:", &addr, &params) == -1) {
		smtp_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		smtp_bad(s);
		return;
	}
	if (*params != '\0') {
		smtp_reply(s, "555 5.5.4 Unsupported parameter %.64s", params);
		return;
	}
	if ((t = rcpt_tenant(s, addr)) == NULL) {
		smtp_bad(s);
		return;
	}
	if (s->tenant != NULL && s->tenant != t) {
		smtp_reply(s, "452 4.5.3 One tenant per message: send again "
		    "for this recipient");
		return;
	}
	s->tenant = t;
	s->state = SS_RCPT;
	smtp_reply(s, "250 2.1.5 Ok");
}

static void
cmd_data(struct gw_smtp_session *s, char *arg)
{
	if (s->state != SS_RCPT) {
		smtp_reply(s, s->state == SS_MAIL ?
		    "503 5.5.1 Need RCPT before DATA" :
		    "503 5.5.1 Need MAIL and RCPT before DATA");
		return;
	}
	if (*arg != '\0') {
		smtp_reply(s, "501 5.5.4 No parameters allowed");
		return;
	}
	s->datalen = 0;
	s->prevbare = 0;
	s->state = SS_BODY;
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void
cmd_rset(struct gw_smtp_session *s, char *arg)
{
	if (s->state != SS_CONNECTED)
		smtp_reset(s);
	smtp_reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(struct gw_smtp_session *s, char *arg)
{
	smtp_reply(s, "250 2.0.0 Ok");
}

static void
cmd_vrfy(struct gw_smtp_session *s, char *arg)
{
	smtp_reply(s, "252 2.1.5 Cannot VRFY; send the request and see");
}

static void
cmd_help(struct gw_smtp_session *s, char *arg)
{
	smtp_reply(s, "214-2.0.0 Mail a call request to calls+<token>@%s:",
	    s->cfg->smtp_domain);
	smtp_reply(s, "214-2.0.0 a text body of 'Key: value' lines (To, Say, "
	    "When, Not-After, Time-Zone, Priority, Caller-Id, Callback, "
	    "X-...)");
	smtp_reply(s, "214 2.0.0 or an application/json part as for POST "
	    "/v1/calls");
}

static void
cmd_quit(struct gw_smtp_session *s, char *arg)
{
	smtp_reply(s, "221 2.0.0 Bye");
	smtp_close(s);
}

/* --- input ---------------------------------------------------------------- */

static void
smtp_command(struct gw_smtp_session *s, char *line)
{
	const struct smtp_cmd *c;
	size_t i, n;
	char *arg;

	n = strcspn(line, " ");
	arg = line + n;
	arg += strspn(arg, " ");
	for (i = 0; i < sizeof(commands) / sizeof(*commands); i++) {
		c = &commands[i];
		if (strlen(c->name) != n || strncasecmp(c->name, line, n))
			continue;
		if (!(c->states & ST(s->state))) {
			smtp_reply(s, "503 5.5.1 Bad sequence of commands");
			return;
		}
		c->fn(s, arg);
		return;
	}
	smtp_reply(s, "500 5.5.1 Command unrecognized");
	smtp_bad(s);
}

static int
data_add(struct gw_smtp_session *s, const char *p, size_t n)
{
	size_t need = s->datalen + n + 2;
	char *d;

	if (need > (size_t)s->cfg->smtp_max_message) {
		s->flags |= F_TOOBIG;
		return 0;
	}
	if (need > s->datacap) {
		size_t cap = s->datacap ? s->datacap : 4096;

		while (cap < need)
			cap *= 2;
		if ((d = realloc(s->data, cap)) == NULL) {
			s->flags |= F_TOOBIG;
			return -1;
		}
		s->data = d;
		s->datacap = cap;
	}
	memcpy(s->data + s->datalen, p, n);
	memcpy(s->data + s->datalen + n, "\r\n", 2);
	s->datalen += n + 2;
	return 0;
}

static void
data_end(struct gw_smtp_session *s)
{
	if (s->flags & F_BARELF) {
		smtp_reply(s, "500 5.5.2 Bare LF received: message lines "
		    "must end with CRLF (RFC 5321 2.3.8)");
		smtp_reset(s);
		smtp_bad(s);
		return;
	}
	if (s->flags & F_TOOLONG) {
		smtp_reply(s, "500 5.5.2 Line too long: message lines must "
		    "be at most %d bytes with CRLF", GW_SMTP_LINE_MAX);
		smtp_reset(s);
		return;
	}
	if (s->flags & F_TOOBIG) {
		smtp_reply(s, "552 5.3.4 Message too big: the limit is %d "
		    "bytes", s->cfg->smtp_max_message);
		smtp_reset(s);
		return;
	}
	s->state = SS_WAIT;
	s->txn_start_ms = 0;
	s->io.message(s->io.arg, s->tenant, s->data ? s->data : "",
	    s->datalen);
}

/* A line ending with a bare LF is refused, and only CRLF "." CRLF ends
 * DATA: a relay that reads LF "." LF as part of the message cannot smuggle
 * a second one past us (SMTP smuggling; Postfix's
 * smtpd_forbid_bare_newline). */
static void
smtp_line(struct gw_smtp_session *s, char *line, size_t len, int toolong,
    int bare)
{
	int prevbare;

	switch (s->state) {
	case SS_BODY:
		prevbare = s->prevbare;
		s->prevbare = bare;
		if (bare)
			s->flags |= F_BARELF;
		if (toolong) {
			s->flags |= F_TOOLONG;
			return;
		}
		if (len == 1 && line[0] == '.' && !bare && !prevbare) {
			data_end(s);
			return;
		}
		if (line[0] == '.') {	/* dot-stuffing */
			line++;
			len--;
		}
		data_add(s, line, len);
		return;
	case SS_AUTH_PLAIN:
	case SS_AUTH_USER:
	case SS_AUTH_PASS:
		if (bare) {
			s->state = SS_HELO;
			smtp_reply(s, "500 5.5.2 Bare LF received: lines must "
			    "end with CRLF");
			smtp_bad(s);
			return;
		}
		if (toolong) {
			s->state = SS_HELO;
			smtp_reply(s, "500 5.5.2 Line too long");
			return;
		}
		auth_input(s, line);
		return;
	default:
		if (bare) {
			if (s->state != SS_CONNECTED)
				smtp_reset(s);
			smtp_reply(s, "500 5.5.2 Bare LF received: lines must "
			    "end with CRLF");
			smtp_bad(s);
			return;
		}
		if (toolong) {
			smtp_reply(s, "500 5.5.2 Line too long");
			smtp_bad(s);
			return;
		}
		if (memchr(line, '\0', len) != NULL) {
			smtp_reply(s, "500 5.5.2 NUL in command");
			smtp_bad(s);
			return;
		}
		smtp_command(s, line);
	}
}

size_t
gw_smtp_session_feed(struct gw_smtp_session *s, const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len, *nl;
	size_t n;
	int bare;

	while (p < end) {
		/* after STARTTLS, what the client pipelined is dropped */
		if (s->state == SS_QUIT || s->state == SS_STARTTLS)
			return len;
		if (s->state == SS_WAIT || s->state == SS_NEW)
			return p - buf;
		if (s->txn_start_ms != 0 && rq_mono_ms() - s->txn_start_ms >
		    (uint64_t)s->cfg->smtp_timeout_s * TXN_TIMEOUTS * 1000) {
			log_info("smtp: transaction over %d s: closing",
			    s->cfg->smtp_timeout_s * TXN_TIMEOUTS);
			smtp_reply(s, "421 4.4.2 Transaction too slow: "
			    "closing the connection");
			smtp_close(s);
			return len;
		}
		nl = memchr(p, '\n', end - p);
		n = (nl ? nl : end) - p;
		if (n > 0)
			s->cr = p[n - 1] == '\r';
		if (s->linelen + n > GW_SMTP_LINE_MAX)
			s->overflow = 1;
		else {
			memcpy(s->line + s->linelen, p, n);
			s->linelen += n;
		}
		if (nl == NULL)
			return len;
		p = nl + 1;
		bare = !s->cr;
		s->cr = 0;
		if (!bare && s->linelen > 0 && s->line[s->linelen - 1] == '\r')
			s->linelen--;
		/* the limit counts CRLF: the text is at most 998 bytes */
		if (s->linelen > GW_SMTP_LINE_MAX - 2)
			s->overflow = 1;
		s->line[s->linelen] = '\0';
		n = s->linelen;
		s->linelen = 0;
		if (s->overflow) {
			s->overflow = 0;
			smtp_line(s, s->line, 0, 1, bare);
		} else
			smtp_line(s, s->line, n, 0, bare);
	}
	return len;
}
