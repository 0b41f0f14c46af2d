/* gateway/smtp_session.c: the SMTP state machine driven by scripted input;
 * every reply it writes, and what it asks of its transport, are checked. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gateway.h"

struct fake {
	char		 out[16384];
	size_t		 outlen;
	int		 starttls;
	int		 closed;
	int		 messages;
	const struct rq_tenant *tenant;
	char		 data[8192];
	size_t		 datalen;
	struct gw_smtp_session *s;
	const char	*answer;	/* answered at once when set */
};

static struct rq_config cfg;
static struct rq_tenant tenants[2];

static void
f_write(void *arg, const char *buf, size_t len)
{
	struct fake *f = arg;

	assert_true(f->outlen + len < sizeof(f->out));
	memcpy(f->out + f->outlen, buf, len);
	f->outlen += len;
	f->out[f->outlen] = '\0';
}

static void
f_starttls(void *arg)
{
	((struct fake *)arg)->starttls++;
}

static void
f_message(void *arg, const struct rq_tenant *t, const char *data, size_t len)
{
	struct fake *f = arg;

	f->messages++;
	f->tenant = t;
	assert_true(len < sizeof(f->data));
	memcpy(f->data, data, len);
	f->datalen = len;
	f->data[len] = '\0';
	if (f->answer != NULL)
		gw_smtp_session_answer(f->s, f->answer);
}

static void
f_close(void *arg)
{
	((struct fake *)arg)->closed++;
}

static int
setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct gw_smtp_io io = { f_write, f_starttls, f_message, f_close, f };

	rq_config_defaults(&cfg);
	snprintf(cfg.smtp_domain, sizeof(cfg.smtp_domain), "ringq.test");
	snprintf(cfg.smtp_hostname, sizeof(cfg.smtp_hostname), "mx.test");
	cfg.smtp_max_message = 4096;
	memset(tenants, 0, sizeof(tenants));
	snprintf(tenants[0].name, sizeof(tenants[0].name), "one");
	rq_sha256_hex("tok1", 4, tenants[0].mail_token_sha256);
	rq_sha256_hex("new1", 4, tenants[0].mail_token_next_sha256);
	snprintf(tenants[1].name, sizeof(tenants[1].name), "two");
	rq_sha256_hex("tok2", 4, tenants[1].mail_token_sha256);
	snprintf(tenants[1].smtp_user, sizeof(tenants[1].smtp_user), "u2");
	rq_sha256_hex("pw", 2, tenants[1].smtp_password_sha256);
	cfg.tenants = tenants;
	cfg.ntenants = 2;
	f->s = gw_smtp_session_new(&cfg, &io, 1);
	assert_non_null(f->s);
	gw_smtp_session_start(f->s);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fake *f = *state;

	gw_smtp_session_free(f->s);
	free(f);
	cfg.tenants = NULL;
	cfg.ntenants = 0;
	return 0;
}

static void
feed(struct fake *f, const char *s)
{
	f->outlen = 0;
	f->out[0] = '\0';
	assert_int_equal(gw_smtp_session_feed(f->s, s, strlen(s)), strlen(s));
}

#define EXPECT(f, in, want) do {					\
	feed((f), (in));						\
	if (strncmp((f)->out, (want), strlen(want)) != 0)		\
		fail_msg("after '%s': got '%s', want '%s...'", (in),	\
		    (f)->out, (want));					\
} while (0)

static void
t_banner_and_ehlo(void **state)
{
	struct fake *f = *state;

	assert_string_equal(f->out, "220 mx.test ESMTP ringq\r\n");
	EXPECT(f, "EHLO client.example\r\n", "250-mx.test Hello client.example");
	assert_non_null(strstr(f->out, "250-SIZE 4096\r\n"));
	assert_non_null(strstr(f->out, "250-PIPELINING\r\n"));
	assert_non_null(strstr(f->out, "250-8BITMIME\r\n"));
	assert_non_null(strstr(f->out, "250-ENHANCEDSTATUSCODES\r\n"));
	assert_non_null(strstr(f->out, "250-STARTTLS\r\n"));
	/* no AUTH before TLS */
	assert_null(strstr(f->out, "AUTH"));
	EXPECT(f, "HELO x\r\n", "250 mx.test Hello x");
	EXPECT(f, "VRFY bob\r\n", "252 2.1.5");
	EXPECT(f, "NOOP\r\n", "250 2.0.0");
	EXPECT(f, "HELP\r\n", "214-2.0.0");
	EXPECT(f, "FOO\r\n", "500 5.5.1");
	EXPECT(f, "EHLO\r\n", "501 5.5.4");
	EXPECT(f, "QUIT\r\n", "221 2.0.0");
	assert_int_equal(f->closed, 1);
	/* after QUIT, input is ignored */
	feed(f, "NOOP\r\n");
	assert_string_equal(f->out, "");
}

static void
t_sequence(void **state)
{
	struct fake *f = *state;

	EXPECT(f, "MAIL FROM:<a@b>\r\n", "503 5.5.1 Say EHLO");
	EXPECT(f, "EHLO c\r\n", "250-");
	EXPECT(f, "RCPT TO:<calls+tok1@ringq.test>\r\n", "503 5.5.1 Need MAIL");
	EXPECT(f, "DATA\r\n", "503 5.5.1");
	EXPECT(f, "MAIL FROM:<a@b> SIZE=5000\r\n", "552 5.3.4");
	EXPECT(f, "MAIL FROM:<a@b> FOO=1\r\n", "555 5.5.4");
	EXPECT(f, "MAIL FROM:a@b\r\n", "501 5.5.4");
	EXPECT(f, "MAIL FROM:<a@b> SIZE=100 BODY=8BITMIME\r\n", "250 2.1.0");
	EXPECT(f, "MAIL FROM:<a@b>\r\n", "503 5.5.1 Nested");
	EXPECT(f, "DATA\r\n", "503 5.5.1 Need RCPT");
	EXPECT(f, "RCPT TO:<calls+nope@ringq.test>\r\n", "550 5.1.1 Unknown request token");
	EXPECT(f, "RCPT TO:<calls+tok1@other.test>\r\n", "550 5.7.1 Relaying");
	EXPECT(f, "RCPT TO:<bob@ringq.test>\r\n", "550 5.1.1 Unknown mailbox");
	EXPECT(f, "RCPT TO:<calls@ringq.test>\r\n", "550 5.1.1 No request token");
	EXPECT(f, "RCPT TO:<calls+tok1@RINGQ.test>\r\n", "250 2.1.5");
	/* the rotation's next token names the same tenant */
	EXPECT(f, "RCPT TO:<calls+new1@ringq.test>\r\n", "250 2.1.5");
	EXPECT(f, "RCPT TO:<calls+tok2@ringq.test>\r\n", "452 4.5.3");
	EXPECT(f, "RSET\r\n", "250 2.0.0");
	EXPECT(f, "DATA\r\n", "503 5.5.1");
}

static void
t_data(void **state)
{
	struct fake *f = *state;

	f->answer = "250 2.0.0 Ok: queued as c_x";
	feed(f, "EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<calls+tok1@ringq.test>\r\n");
	EXPECT(f, "DATA\r\n", "354 ");
	/* dot-stuffing, and the end in the same chunk as QUIT (a bare LF
	 * is refused: t_bare_lf) */
	EXPECT(f, "Subject: s\r\n\r\n..leading dot\r\nTo: +1\r\n.\r\nQUIT\r\n",
	    "250 2.0.0 Ok: queued as c_x\r\n221 2.0.0");
	assert_int_equal(f->messages, 1);
	assert_ptr_equal(f->tenant, &tenants[0]);
	assert_string_equal(f->data,
	    "Subject: s\r\n\r\n.leading dot\r\nTo: +1\r\n");
}

/* SMTP smuggling: only CRLF "." CRLF ends DATA, and a bare LF anywhere
 * is refused with the transaction reset. */
static void
t_bare_lf(void **state)
{
	struct fake *f = *state;

	f->answer = "250 2.0.0 Ok: queued as c_x";
	feed(f, "EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<calls+tok1@ringq.test>\r\n");
	EXPECT(f, "DATA\r\n", "354 ");
	/* LF "." LF is body: the smuggled commands too */
	feed(f, "To: +1\r\n\r\nx\n.\nMAIL FROM:<evil@x>\r\n"
	    "RCPT TO:<calls+tok1@ringq.test>\r\nDATA\r\nTo: +2\r\n");
	assert_string_equal(f->out, "");
	/* nor does CRLF "." LF, nor LF "." CRLF */
	feed(f, "y\r\n.\nz\n.\r\n");
	assert_string_equal(f->out, "");
	EXPECT(f, "\r\n.\r\n", "500 5.5.2 Bare LF");
	assert_int_equal(f->messages, 0);
	/* the transaction is gone */
	EXPECT(f, "DATA\r\n", "503 5.5.1");
	/* in commands */
	EXPECT(f, "NOOP\n", "500 5.5.2 Bare LF");
	EXPECT(f, "MAIL FROM:<a@b>\r\n", "250 2.1.0");
	EXPECT(f, "RCPT TO:<calls+tok1@ringq.test>\n", "500 5.5.2 Bare LF");
	EXPECT(f, "DATA\r\n", "503 5.5.1 Need MAIL");
	/* split across feeds: the CR in one, the LF in the next */
	feed(f, "MAIL FROM:<a@b>\r\nRCPT TO:<calls+tok1@ringq.test>\r\nDATA\r");
	EXPECT(f, "\n", "354 ");
	feed(f, "To: +1\r\n.\r");
	EXPECT(f, "\n", "250 2.0.0 Ok: queued as c_x");
	assert_int_equal(f->messages, 1);
}

static void
t_data_waits(void **state)
{
	struct fake *f = *state;
	const char *in = "DATA\r\nx\r\n.\r\nNOOP\r\n";
	size_t n;

	feed(f, "EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<calls+tok1@ringq.test>\r\n");
	/* no answer yet: the session stops right after the final dot */
	n = gw_smtp_session_feed(f->s, in, strlen(in));
	assert_int_equal(n, strlen("DATA\r\nx\r\n.\r\n"));
	assert_true(gw_smtp_session_waiting(f->s));
	f->outlen = 0;
	gw_smtp_session_answer(f->s, "550 5.6.0 Line 1: nope");
	assert_string_equal(f->out, "550 5.6.0 Line 1: nope\r\n");
	assert_false(gw_smtp_session_waiting(f->s));
	EXPECT(f, in + n, "250 2.0.0");
	/* the transaction is over: DATA needs MAIL again */
	EXPECT(f, "DATA\r\n", "503 5.5.1");
}

static void
t_limits(void **state)
{
	struct fake *f = *state;
	char line[1200], big[6000];
	size_t i;

	memset(line, 'x', sizeof(line));
	memcpy(line, "NOOP ", 5);
	line[sizeof(line) - 3] = '\r';
	line[sizeof(line) - 2] = '\n';
	line[sizeof(line) - 1] = '\0';
	EXPECT(f, line, "500 5.5.2 Line too long");
	/* 998 bytes + CRLF is allowed, 999 is not */
	memset(line, 'x', 998);
	memcpy(line, "NOOP ", 5);
	memcpy(line + 998, "\r\n", 3);
	EXPECT(f, line, "250 2.0.0");
	memset(line, 'x', 999);
	memcpy(line, "NOOP ", 5);
	memcpy(line + 999, "\r\n", 3);
	EXPECT(f, line, "500 5.5.2");

	f->answer = "250 2.0.0 Ok: queued as c_y";
	feed(f, "EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<calls+tok1@ringq.test>\r\nDATA\r\n");
	memset(line, 'y', 1100);
	memcpy(line + 1100, "\r\n.\r\n", 6);
	EXPECT(f, line, "500 5.5.2 Line too long");
	assert_int_equal(f->messages, 0);

	feed(f, "MAIL FROM:<a@b>\r\nRCPT TO:<calls+tok1@ringq.test>\r\nDATA\r\n");
	for (i = 0; i + 100 < sizeof(big); i += 100) {
		memset(big + i, 'z', 98);
		memcpy(big + i + 98, "\r\n", 2);
	}
	big[i] = '\0';
	feed(f, big);
	EXPECT(f, ".\r\n", "552 5.3.4");
	assert_int_equal(f->messages, 0);
}

static void
t_errors(void **state)
{
	struct fake *f = *state;
	size_t i;

	/* ten errors close the session */
	for (i = 0; i < 9; i++)
		feed(f, "BOGUS\r\n");
	assert_int_equal(f->closed, 0);
	EXPECT(f, "BOGUS\r\n", "500 5.5.1 Command unrecognized\r\n421 4.7.0");
	assert_int_equal(f->closed, 1);
}

static void
t_starttls_auth(void **state)
{
	struct fake *f = *state;

	EXPECT(f, "EHLO c\r\n", "250-");
	EXPECT(f, "AUTH PLAIN AHUyAHB3\r\n", "530 5.7.0");
	/* what is pipelined after STARTTLS is dropped (RFC 3207 4.2) */
	EXPECT(f, "STARTTLS\r\nMAIL FROM:<evil@x>\r\n", "220 2.0.0");
	assert_int_equal(f->starttls, 1);
	assert_string_equal(f->out, "220 2.0.0 Ready to start TLS\r\n");
	gw_smtp_session_tls_started(f->s);
	EXPECT(f, "MAIL FROM:<a@b>\r\n", "503 5.5.1 Say EHLO");
	EXPECT(f, "EHLO c\r\n", "250-");
	assert_non_null(strstr(f->out, "250-AUTH PLAIN LOGIN\r\n"));
	assert_null(strstr(f->out, "STARTTLS"));
	EXPECT(f, "STARTTLS\r\n", "502 5.5.1");
	/* "\0u2\0bad" then "\0u2\0pw" */
	EXPECT(f, "AUTH PLAIN AHUyAGJhZA==\r\n", "535 5.7.8");
	/* RFC 4616: an authzid other than the user is refused, even with
	 * the right password ("x\0u2\0pw") */
	EXPECT(f, "AUTH PLAIN eAB1MgBwdw==\r\n", "535 5.7.8");
	/* a bare LF cancels the exchange */
	EXPECT(f, "AUTH PLAIN\r\n", "334 ");
	EXPECT(f, "AHUyAHB3\n", "500 5.5.2 Bare LF");
	EXPECT(f, "AUTH CRAM-MD5\r\n", "504 5.5.4");
	EXPECT(f, "AUTH PLAIN\r\n", "334 ");
	EXPECT(f, "*\r\n", "501 5.0.0");
	EXPECT(f, "AUTH PLAIN\r\n", "334 ");
	EXPECT(f, "AHUyAHB3\r\n", "235 2.7.0");
	EXPECT(f, "AUTH PLAIN AHUyAHB3\r\n", "503 5.5.1");
	/* authenticated: calls@ needs no token; another tenant's token is refused */
	EXPECT(f, "MAIL FROM:<a@b>\r\n", "250");
	EXPECT(f, "RCPT TO:<calls+tok1@ringq.test>\r\n", "550 5.7.1");
	f->answer = "250 2.0.0 Ok: queued as c_z";
	EXPECT(f, "RCPT TO:<calls@ringq.test>\r\n", "250 2.1.5");
	EXPECT(f, "DATA\r\n", "354");
	EXPECT(f, "x\r\n.\r\n", "250 2.0.0 Ok: queued as c_z");
	assert_ptr_equal(f->tenant, &tenants[1]);
}

static void
t_auth_login(void **state)
{
	struct fake *f = *state;

	feed(f, "EHLO c\r\nSTARTTLS\r\n");
	gw_smtp_session_tls_started(f->s);
	feed(f, "EHLO c\r\n");
	EXPECT(f, "AUTH LOGIN\r\n", "334 VXNlcm5hbWU6");
	EXPECT(f, "dTI=\r\n", "334 UGFzc3dvcmQ6");
	EXPECT(f, "cHc=\r\n", "235 2.7.0");
	feed(f, "QUIT\r\n");
	/* an authzid equal to the user is the user ("u2\0u2\0pw") */
	teardown(state);
	setup(state);
	f = *state;
	feed(f, "EHLO c\r\nSTARTTLS\r\n");
	gw_smtp_session_tls_started(f->s);
	feed(f, "EHLO c\r\n");
	EXPECT(f, "AUTH PLAIN dTIAdTIAcHc=\r\n", "235 2.7.0");
	feed(f, "QUIT\r\n");
	/* a fresh session: LOGIN with the user name inline, bad base64 */
	teardown(state);
	setup(state);
	f = *state;
	feed(f, "EHLO c\r\nSTARTTLS\r\n");
	gw_smtp_session_tls_started(f->s);
	feed(f, "EHLO c\r\n");
	EXPECT(f, "AUTH LOGIN dTI=\r\n", "334 UGFzc3dvcmQ6");
	EXPECT(f, "!!!\r\n", "501 5.5.2");
}

static void
t_abort_and_garbage(void **state)
{
	struct fake *f = *state;
	const char garbage[] = "\xff\xfe\x80 \x01\x02\r\n";
	const char nul[] = "NOOP\0x\r\n";

	EXPECT(f, garbage, "500 5.5.1");
	f->outlen = 0;
	assert_int_equal(gw_smtp_session_feed(f->s, nul, sizeof(nul) - 1),
	    sizeof(nul) - 1);
	assert_non_null(strstr(f->out, "500 5.5.2"));
	/* split across feeds, one byte at a time */
	f->outlen = 0;
	for (const char *p = "NOOP\r\n"; *p; p++)
		gw_smtp_session_feed(f->s, p, 1);
	assert_string_equal(f->out, "250 2.0.0 Ok\r\n");
	f->outlen = 0;
	gw_smtp_session_abort(f->s, "421 4.4.2 Timeout");
	assert_string_equal(f->out, "421 4.4.2 Timeout\r\n");
	assert_int_equal(f->closed, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(t_banner_and_ehlo, setup, teardown),
		cmocka_unit_test_setup_teardown(t_sequence, setup, teardown),
		cmocka_unit_test_setup_teardown(t_data, setup, teardown),
		cmocka_unit_test_setup_teardown(t_bare_lf, setup, teardown),
		cmocka_unit_test_setup_teardown(t_data_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(t_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(t_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(t_starttls_auth, setup, teardown),
		cmocka_unit_test_setup_teardown(t_auth_login, setup, teardown),
		cmocka_unit_test_setup_teardown(t_abort_and_garbage, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
