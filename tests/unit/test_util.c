/* Shared helpers: targets, times, ids, hashes. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <stdlib.h>

#include <hiredis/hiredis.h>

#include "redis_sync.h"
#include "status.h"
#include "util.h"

static void
test_targets(void **state)
{
	static const char *good_e164[] = { "+15551234567", "+442071838750",
	    "+33123456789", "+123456789012345" };
	static const char *good_sip[] = { "sip:bob@127.0.0.1",
	    "sip:bob@127.0.0.1:5062", "sip:alice@example.com",
	    "SIP:x@[::1]:5060" };
	static const char *bad[] = { "", "15551234567", "+1555", "+0123456789",
	    "+1234567890123456", "+1555123456a", "sip:", "sip:@host",
	    "sip:bob@", "sip:bob@host:0", "sip:bob@host:99999", "sip:bob@ho st",
	    "sip:bo b@host", "tel:+15551234567", "mailto:x@y", "sip:bob@host:5x",
	    "sip:a@h:\r\n5060", "sip:a@h: 5060", "sip:a@h:+5060",
	    "sip:a\x01b@host", "sip:a\x7f@host", "sip:a@host\r\nX-Evil: 1",
	    "+1555123456\n",
	    "sip:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "@host" };
	enum rq_target_kind kind;
	char err[128];
	size_t i;

	for (i = 0; i < sizeof(good_e164) / sizeof(*good_e164); i++) {
		assert_int_equal(rq_target_parse(good_e164[i], &kind, err,
		    sizeof(err)), 0);
		assert_int_equal(kind, RQ_TARGET_E164);
	}
	for (i = 0; i < sizeof(good_sip) / sizeof(*good_sip); i++) {
		assert_int_equal(rq_target_parse(good_sip[i], &kind, err,
		    sizeof(err)), 0);
		assert_int_equal(kind, RQ_TARGET_SIP);
	}
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		err[0] = '\0';
		if (rq_target_parse(bad[i], &kind, err, sizeof(err)) != -1)
			fail_msg("accepted bad target %zu", i);
		assert_true(strlen(err) > 0);
	}
}

static void
test_rfc3339(void **state)
{
	uint64_t ms;
	char buf[32];

	assert_int_equal(rq_rfc3339_parse("1970-01-01T00:00:00Z", &ms), 0);
	assert_true(ms == 0);
	assert_int_equal(rq_rfc3339_parse("2026-11-21T10:00:00Z", &ms), 0);
	assert_true(ms == 1795255200000ULL);
	assert_int_equal(rq_rfc3339_parse("2026-11-21T11:00:00.25+01:00", &ms), 0);
	assert_true(ms == 1795255200250ULL);
	assert_int_equal(rq_rfc3339_parse("2024-02-29T00:00:00Z", &ms), 0);
	assert_int_equal(rq_rfc3339_parse("2023-02-29T00:00:00Z", &ms), -1);
	assert_int_equal(rq_rfc3339_parse("2026-13-01T00:00:00Z", &ms), -1);
	assert_int_equal(rq_rfc3339_parse("2026-11-21T10:00:00", &ms), -1);
	assert_int_equal(rq_rfc3339_parse("2026-11-21T10:00:00Zjunk", &ms), -1);
	assert_int_equal(rq_rfc3339_parse("tomorrow", &ms), -1);
	assert_int_equal(rq_rfc3339_parse("", &ms), -1);
	rq_rfc3339_format(1795255200250ULL, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-21T10:00:00.250Z");
}

static void
test_ids_and_hash(void **state)
{
	char a[RQ_ID_LEN + 1], b[RQ_ID_LEN + 1], h[65];

	assert_int_equal(rq_call_id_new(a), 0);
	assert_int_equal(rq_call_id_new(b), 0);
	assert_true(rq_call_id_valid(a));
	assert_string_not_equal(a, b);
	assert_false(rq_call_id_valid("c_xyz"));
	assert_false(rq_call_id_valid("../../etc/passwd"));
	rq_sha256_hex("abc", 3, h);
	assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad");
}

static int
cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Ids come from a pool of random bytes: many in a row are all different,
 * and a forked child does not hand out the ids its parent will. */
static void
test_ids_pool(void **state)
{
	static char ids[1000][RQ_ID_LEN + 1];
	char mine[RQ_ID_LEN + 1], child[RQ_ID_LEN + 1];
	int fd[2], i, status;
	pid_t pid;

	for (i = 0; i < 1000; i++) {
		assert_int_equal(rq_call_id_new(ids[i]), 0);
		assert_true(rq_call_id_valid(ids[i]));
	}
	qsort(ids, 1000, sizeof(ids[0]), cmp_id);
	for (i = 1; i < 1000; i++)
		assert_string_not_equal(ids[i - 1], ids[i]);

	assert_int_equal(rq_call_id_new(mine), 0);	/* pool not empty */
	assert_int_equal(pipe(fd), 0);
	if ((pid = fork()) == 0) {
		close(fd[0]);
		if (rq_call_id_new(child) != 0 ||
		    write(fd[1], child, RQ_ID_LEN) != RQ_ID_LEN)
			_exit(1);
		_exit(0);
	}
	assert_true(pid > 0);
	close(fd[1]);
	assert_int_equal(read(fd[0], child, RQ_ID_LEN), RQ_ID_LEN);
	child[RQ_ID_LEN] = '\0';
	close(fd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(rq_call_id_valid(child));
	assert_int_equal(rq_call_id_new(mine), 0);
	assert_string_not_equal(mine, child);
}

static void
test_hmac(void **state)
{
	char h[65];

	/* RFC 4231, test case 2 */
	assert_int_equal(rq_hmac_sha256_hex("Jefe", 4,
	    "what do ya want for nothing?", 28, h), 0);
	assert_string_equal(h, "5bdcc146bf60754e6a042426089575c7"
	    "5a003f089d2739839dec58b964ec3843");
	/* python3: hmac.new(b'', b'', hashlib.sha256).hexdigest() */
	assert_int_equal(rq_hmac_sha256_hex(NULL, 0, NULL, 0, h), 0);
	assert_string_equal(h, "b613679a0814d9ec772f95d778c35fc5"
	    "ff1697c493715653c6c712144292c5ad");
}

/* text (an IPv4 or IPv6 address) as a sockaddr at an odd offset in u, as
 * curl's may be. */
static const struct sockaddr *
sockaddr_of(const char *text, unsigned char *u)
{
	struct sockaddr_in s4;
	struct sockaddr_in6 s6;

	memset(&s4, 0, sizeof(s4));
	memset(&s6, 0, sizeof(s6));
	if (inet_pton(AF_INET, text, &s4.sin_addr) == 1) {
		s4.sin_family = AF_INET;
		memcpy(u + 1, &s4, sizeof(s4));
	} else if (inet_pton(AF_INET6, text, &s6.sin6_addr) == 1) {
		s6.sin6_family = AF_INET6;
		memcpy(u + 1, &s6, sizeof(s6));
	} else
		fail_msg("bad test address %s", text);
	return (const struct sockaddr *)(void *)(u + 1);
}

#define SA_BUF	(sizeof(struct sockaddr_storage) + 1)

static int
is_public(const char *text)
{
	unsigned char u[SA_BUF];

	return rq_addr_is_public(sockaddr_of(text, u));
}

/* refusal(addr, loopback, private): rq_addr_refusal's answer, "" for none */
static const char *
refusal(const char *text, int loopback, int private)
{
	unsigned char u[SA_BUF];
	const char *why;

	why = rq_addr_refusal(sockaddr_of(text, u), loopback, private);
	return why ? why : "";
}

/* Where a tenant's URL may lead: public addresses always; loopback and
 * private ones only when allowed, each by its own switch; never multicast
 * or unspecified. */
static void
test_addr_refusal(void **state)
{
	assert_string_equal(refusal("8.8.8.8", 0, 0), "");
	assert_string_equal(refusal("2606:4700:4700::1111", 0, 0), "");
	assert_string_equal(refusal("127.0.0.1", 0, 0),
	    "this host (loopback)");
	assert_string_equal(refusal("127.0.0.1", 0, 1),
	    "this host (loopback)");
	assert_string_equal(refusal("::1", 0, 1), "this host (loopback)");
	assert_string_equal(refusal("::ffff:127.0.0.1", 0, 0),
	    "this host (loopback)");
	/* loopback inside IPv6 forms stays loopback, even with private
	 * addresses allowed */
	assert_string_equal(refusal("64:ff9b::7f00:1", 0, 1),
	    "this host (loopback)");
	assert_string_equal(refusal("2002:7f00:1::", 0, 1),
	    "this host (loopback)");
	assert_string_equal(refusal("::7f00:1", 0, 1), "this host (loopback)");
	assert_string_equal(refusal("64:ff9b::808:808", 0, 0), "");
	assert_string_equal(refusal("127.0.0.1", 1, 0), "");
	assert_string_equal(refusal("::1", 1, 0), "");
	assert_string_equal(refusal("169.254.169.254", 1, 0),
	    "a private or reserved address");
	assert_string_equal(refusal("10.1.2.3", 1, 0),
	    "a private or reserved address");
	assert_string_equal(refusal("fd00::1", 0, 0),
	    "a private or reserved address");
	assert_string_equal(refusal("10.1.2.3", 0, 1), "");
	assert_string_equal(refusal("169.254.169.254", 0, 1), "");
	assert_string_equal(refusal("224.0.0.1", 1, 1),
	    "an address that is not a unicast one");
	assert_string_equal(refusal("0.0.0.0", 1, 1),
	    "an address that is not a unicast one");
	assert_string_equal(refusal("::", 1, 1),
	    "an address that is not a unicast one");
}

/* The text of an address read from an unaligned buffer, as curl's may be. */
static void
test_addr_text(void **state)
{
	unsigned char u[SA_BUF];
	char buf[64];
	struct sockaddr sa;

	assert_string_equal(rq_addr_text(sockaddr_of("169.254.169.254", u),
	    buf, sizeof(buf)), "169.254.169.254");
	assert_string_equal(rq_addr_text(sockaddr_of("fd00::1", u), buf,
	    sizeof(buf)), "fd00::1");
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	assert_string_equal(rq_addr_text(&sa, buf, sizeof(buf)), "?");
}

static void
test_addr_public(void **state)
{
	static const char *pub[] = { "1.1.1.1", "8.8.8.8", "9.255.255.255",
	    "11.0.0.0", "100.63.255.255", "100.128.0.0", "126.255.255.255",
	    "128.0.0.1", "169.253.255.255", "169.255.0.0", "172.15.255.255",
	    "172.32.0.0", "192.0.1.255", "192.0.3.0", "192.167.255.255",
	    "192.169.0.0", "198.17.255.255", "198.20.0.0", "198.51.99.255",
	    "203.0.112.255", "203.0.114.0", "223.255.255.255",
	    "2606:4700:4700::1111", "2a00:1450:4001::200e", "2001:4860::8888",
	    "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1" };
	static const char *priv[] = { "0.0.0.0", "0.1.2.3", "10.0.0.1",
	    "10.255.255.255", "100.64.0.1", "100.127.255.255", "127.0.0.1",
	    "127.255.255.254", "169.254.169.254", "169.254.0.1", "172.16.0.1",
	    "172.31.255.255", "192.0.0.8", "192.0.2.2", "192.168.1.1",
	    "198.18.0.1", "198.19.255.255", "198.51.100.7", "203.0.113.9",
	    "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
	    "::", "::1", "fc00::1", "fd00::2", "fdff::1", "fe80::1",
	    "febf::1", "fec0::1", "ff02::1", "::ffff:127.0.0.1",
	    "::ffff:169.254.169.254", "::ffff:10.1.2.3", "::ffff:0.0.0.0",
	    "::ffff:192.168.0.1", "::ffff:172.16.5.4", "::ffff:100.64.1.1",
	    "::127.0.0.1", "::8.8.8.8", "64:ff9b::a9fe:a9fe",
	    "64:ff9b::7f00:1", "2002:a9fe:a9fe::1", "2002:7f00:1::",
	    "2001::1", "2001:db8::1", "2001:2::1", "3fff::1", "100::1",
	    "4000::1", "e000::1" };
	struct sockaddr sa;
	size_t i;

	for (i = 0; i < sizeof(pub) / sizeof(*pub); i++)
		if (!is_public(pub[i]))
			fail_msg("%s refused as not public", pub[i]);
	for (i = 0; i < sizeof(priv) / sizeof(*priv); i++)
		if (is_public(priv[i]))
			fail_msg("%s taken as public", priv[i]);
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	assert_false(rq_addr_is_public(&sa));
	assert_false(rq_addr_is_public(NULL));
}

/* rq_redis_format writes the bytes hiredis's own formatter writes: empty,
 * short and long arguments, and more arguments than its stack array. */
static void
test_redis_format(void **state)
{
	static char big[70000];
	const char *argv[200];
	char *mine, *theirs, num[200][8];
	long long n;
	int i, m, argc;

	memset(big, 'x', sizeof(big) - 1);
	for (argc = 0; argc <= 200; argc += argc < 70 ? 1 : 65) {
		for (i = 0; i < argc; i++) {
			snprintf(num[i], sizeof(num[i]), "%d", i * 37);
			argv[i] = i % 7 == 3 ? "" : i % 11 == 5 ? big :
			    i % 2 ? "EVALSHA" : num[i];
		}
		n = rq_redis_format(&mine, argc, argv);
		m = redisFormatCommandArgv(&theirs, argc, argv, NULL);
		assert_true(n >= 0);
		assert_int_equal(n, m);
		assert_memory_equal(mine, theirs, (size_t)m);
		assert_int_equal(mine[n], '\0');
		free(mine);
		free(theirs);
	}
}

static void
test_status_names(void **state)
{
	enum rq_status st;
	int i;

	for (i = 0; i < RQ_ST__COUNT; i++) {
		assert_int_equal(rq_status_parse(rq_status_name(i), &st), 0);
		assert_int_equal(st, i);
	}
	assert_int_equal(rq_status_parse("done", &st), -1);
	assert_false(rq_status_terminal(RQ_ST_ANSWERED));
	assert_true(rq_status_terminal(RQ_ST_COMPLETED));
	assert_true(rq_status_terminal(RQ_ST_EXPIRED));
}

/* What the logs keep of a tenant's URLs: where they lead, no tokens. */
static void
test_redact_urls(void **state)
{
	char out[128], small[16];

	assert_string_equal(rq_redact_urls("call c_1: running "
	    "https://app.example/ivr.vxml?token=s3cret", out, sizeof(out)),
	    "call c_1: running https://app.example/ivr.vxml?...");
	assert_string_equal(rq_redact_urls("fetch http://u:p%40w@h:8080/a#x "
	    "(and 'ftp://h/b?q') ok", out, sizeof(out)),
	    "fetch http://h:8080/a?... (and 'ftp://h/b?...') ok");
	/* an @ after the path is not a password's */
	assert_string_equal(rq_redact_urls("https://h/a@b", out, sizeof(out)),
	    "https://h/a@b");
	assert_string_equal(rq_redact_urls("no URL here?x=1", out,
	    sizeof(out)), "no URL here?x=1");
	assert_string_equal(rq_redact_urls("https://h/?t=1", out, 1), "");
	/* ')' and '\'' belong to a URL, but not one at its end */
	assert_string_equal(rq_redact_urls("(https://h/ivr(1).vxml?t=s line 5)",
	    out, sizeof(out)), "(https://h/ivr(1).vxml?... line 5)");
	assert_string_equal(rq_redact_urls("(https://h/o'b?t=s)", out,
	    sizeof(out)), "(https://h/o'b?...)");
	assert_string_equal(rq_redact_urls(NULL, out, sizeof(out)), "");
	assert_string_equal(rq_redact_urls("at the end://", out, sizeof(out)),
	    "at the end://");
	assert_string_equal(rq_redact_urls("see https://h/x?t=123456", small,
	    sizeof(small)), "see https://h/x");
}

static void
test_listen_split(void **state)
{
	/* refused: no port, no host, a port out of range or not all
	 * digits, IPv6 without its brackets, brackets astray */
	static const char *const bad[] = { "8080", ":8080", "[]:8080",
	    "h:65536", "h: 80", "h:80x", "::1:80", "[::1:80", "a]:80" };
	char host[64];
	size_t i;
	int port;

	assert_int_equal(rq_listen_split("127.0.0.1:8080", host, sizeof(host),
	    &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 8080);
	assert_int_equal(rq_listen_split("[::1]:9100", host, sizeof(host),
	    &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(rq_listen_split("localhost:1", host, sizeof(host),
	    &port), 0);
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (rq_listen_split(bad[i], host, sizeof(host), &port) != -1)
			fail_msg("'%s' taken as host '%s', port %d", bad[i],
			    host, port);
}

/* The record lengths of the telserver's files: little-endian on every
 * host, and what rq_write_all writes through a pipe comes out whole. */
static void
test_le32_and_write_all(void **state)
{
	unsigned char b[4], big[200000], back[sizeof(big)];
	size_t i, got = 0;
	ssize_t n;
	int fds[2];
	pid_t pid;

	rq_le32_put(b, 0x01020304);
	assert_memory_equal(b, "\x04\x03\x02\x01", 4);
	assert_int_equal(rq_le32_get(b), 0x01020304);
	rq_le32_put(b, 0xffffffffu);
	assert_int_equal(rq_le32_get(b), 0xffffffffu);

	/* more than a pipe holds: write(2) returns short, rq_write_all
	 * goes on */
	for (i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 7);
	assert_int_equal(pipe(fds), 0);
	if ((pid = fork()) == 0) {
		close(fds[0]);
		_exit(rq_write_all(fds[1], big, sizeof(big)) == 0 ? 0 : 1);
	}
	close(fds[1]);
	while ((n = read(fds[0], back + got, sizeof(back) - got)) > 0)
		got += (size_t)n;
	close(fds[0]);
	assert_int_equal(got, sizeof(big));
	assert_memory_equal(back, big, sizeof(big));
	assert_int_equal(waitpid(pid, NULL, 0), pid);
}

/* Framed records: whole ones read, and the reading stops, where the
 * whole records end, at a length of 0, over max, or cut short. */
static void
test_records(void **state)
{
	/* "ab", "xyz", then a length 5 with 2 bytes: cut by a crash */
	static const char buf[] = "\x02\0\0\0ab\x03\0\0\0xyz\x05\0\0\0zz";
	static const char zero[] = "\0\0\0\0", big[] = "\x09\0\0\0abcdefghi";
	const char *rec;
	size_t off = 0, rlen;

	assert_int_equal(rq_record_next(buf, sizeof(buf) - 1, &off, &rec,
	    &rlen, 16), 1);
	assert_int_equal(rlen, 2);
	assert_memory_equal(rec, "ab", 2);
	assert_int_equal(rq_record_next(buf, sizeof(buf) - 1, &off, &rec,
	    &rlen, 16), 1);
	assert_memory_equal(rec, "xyz", 3);
	assert_int_equal(rq_record_next(buf, sizeof(buf) - 1, &off, &rec,
	    &rlen, 16), 0);
	assert_int_equal(off, 13);
	off = 0;
	assert_int_equal(rq_record_next(zero, 4, &off, &rec, &rlen, 16), 0);
	assert_int_equal(rq_record_next(big, sizeof(big) - 1, &off, &rec,
	    &rlen, 8), 0);
	assert_int_equal(off, 0);
	assert_int_equal(rq_record_next(big, 3, &off, &rec, &rlen, 16), 0);
}

/* Refusals for now (Redis's state) against refusals of the command,
 * as Redis 7 sends them and as Redis 6.2 wraps them inside a script. */
static void
test_refused_for_now(void **state)
{
	/* each text one element (clang's -Wstring-concatenation) */
	static const char *const for_now[] = {
		"READONLY You can't write against a read only replica.",
		"MISCONF Errors writing to the AOF file: No space left on device",
		"OOM command not allowed when used memory > 'maxmemory'.",
		"BUSY Redis is busy running a script.",
		"LOADING Redis is loading the dataset in memory",
		("ERR Error running script (call to f_0123): @user_script:9: "
		    "@user_script: 9: -READONLY You can't write against a read "
		    "only replica."),
		("ERR Error running script (call to f_0123): @user_script:3: "
		    "-MISCONF Errors writing to the AOF file"),
	};
	static const char *const for_good[] = {
		("WRONGTYPE Operation against a key holding the wrong kind of "
		    "value"),
		"ERR hash value is not an integer",
		("ERR Error running script (call to f_0123): @user_script:9: "
		    "-WRONGTYPE Operation against a key"),
		("ERR Error running script (call to f_0123): user_script:1: "
		    "the key READONLYX is odd"),
		"READONLYX", "OOMPH", "",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(for_now) / sizeof(*for_now); i++)
		assert_true(rq_redis_refused_for_now(for_now[i]));
	for (i = 0; i < sizeof(for_good) / sizeof(*for_good); i++)
		assert_false(rq_redis_refused_for_now(for_good[i]));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_targets),
		cmocka_unit_test(test_refused_for_now),
		cmocka_unit_test(test_le32_and_write_all),
		cmocka_unit_test(test_records),
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_ids_and_hash),
		cmocka_unit_test(test_ids_pool),
		cmocka_unit_test(test_hmac),
		cmocka_unit_test(test_addr_public),
		cmocka_unit_test(test_addr_refusal),
		cmocka_unit_test(test_addr_text),
		cmocka_unit_test(test_redis_format),
		cmocka_unit_test(test_status_names),
		cmocka_unit_test(test_redact_urls),
		cmocka_unit_test(test_listen_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
