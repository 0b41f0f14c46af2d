/* ringq.apply's format 2 (common/apply_codec.c): what the encoder packs
 * expands back to format 1's RESP, written here independently, byte for
 * byte; a corrupt payload is refused at the byte where it goes wrong. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "apply_codec.h"

/* Format 2's words are numbered for good, AOFs hold the numbers: these
 * are read back from hand-written payloads. */
#define NWORDS		107	/* a reference past them: a string before */
#define W_HSET		0
#define W_RQ_JOB	12	/* "rq:job:" */
#define W_ID		36
#define W_STATUS_JSON	35	/* {"status":" */

#define MS		"1795396101124"
#define BIG_OUT		((size_t)1 << 30)

/* Format 1, as docs/architecture.md has it; not the module's code. */
struct resp {
	char	*p;
	size_t	 len, cap;
};

static void
resp_put(struct resp *r, const void *s, size_t n)
{
	if (r->len + n > r->cap) {
		r->cap = (r->len + n) * 2;
		assert_non_null(r->p = realloc(r->p, r->cap));
	}
	memcpy(r->p + r->len, s, n);
	r->len += n;
}

static void
resp_head(struct resp *r, char kind, size_t n)
{
	char h[32];
	int k;

	k = snprintf(h, sizeof(h), "%c%zu\r\n", kind, n);
	resp_put(r, h, (size_t)k);
}

/* One write of argc strings, in both formats. */
static void
put_writev(struct apply_enc *e, struct resp *r, size_t argc,
    const char *const *s, const size_t *n)
{
	size_t i;

	apply_enc_write(e, argc);
	resp_head(r, '*', argc);
	for (i = 0; i < argc; i++) {
		apply_enc_arg(e, s[i], n[i]);
		resp_head(r, '$', n[i]);
		resp_put(r, s[i], n[i]);
		resp_put(r, "\r\n", 2);
	}
}

/* The same, of C strings up to a NULL. */
static void
put_write(struct apply_enc *e, struct resp *r, const char *name, ...)
{
	const char *s[61];
	size_t n[61], argc = 0;
	va_list ap;

	va_start(ap, name);
	for (s[0] = name; s[argc] != NULL; s[argc] = va_arg(ap, const char *)) {
		assert_true(argc < 60);
		n[argc] = strlen(s[argc]);
		argc++;
	}
	va_end(ap);
	put_writev(e, r, argc, s, n);
}

/* p[len] must expand to want[wlen] exactly. */
static void
assert_expands(const unsigned char *p, size_t len, const char *want,
    size_t wlen)
{
	char *out = NULL;
	size_t outlen = 0, outcap = 0, at = 0;

	assert_int_equal(apply_expand(p, len, &out, &outlen, &outcap, BIG_OUT,
	    &at), 0);
	assert_int_equal(outlen, wlen);
	if (wlen > 0)
		assert_memory_equal(out, want, wlen);
	free(out);
}

/* p[len] must be refused at byte want_at (with max_out). */
static void
assert_corrupt(const unsigned char *p, size_t len, size_t max_out,
    size_t want_at)
{
	char *out = NULL;
	size_t outlen = 0, outcap = 0, at = (size_t)-1;

	assert_int_equal(apply_expand(p, len, &out, &outlen, &outcap, max_out,
	    &at), -1);
	assert_int_equal(at, want_at);
	assert_true(outlen <= max_out);
	free(out);
}

#define CORRUPT(max_out, want_at, ...) do {				\
	const unsigned char b_[] = { __VA_ARGS__ };			\
	assert_corrupt(b_, sizeof(b_), (max_out), (want_at));		\
} while (0)

/* A call id as rq_call_id_new() makes them, the same for the same i. */
static void
call_id(char out[27], unsigned i)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL * (i + 1);

	x ^= x >> 29;
	snprintf(out, 27, "c_%016llx%08x", (unsigned long long)x,
	    (unsigned)(x >> 17) ^ i);
}

/* One submitted call's writes (common/redis_module.c's submit). */
static void
put_call(struct apply_enc *e, struct resp *r, unsigned i)
{
	char id[27], key[64], tl[64], ms[24], sid[32], tenant[16], json[96];

	call_id(id, i);
	snprintf(key, sizeof(key), "rq:job:%s", id);
	snprintf(tl, sizeof(tl), "rq:timeline:%s", id);
	snprintf(ms, sizeof(ms), "%llu", 1795396101124ULL + i);
	snprintf(sid, sizeof(sid), "%llu-%u", 1795396101125ULL + i / 3, i % 3);
	snprintf(tenant, sizeof(tenant), "demo%u", i % 7);
	snprintf(json, sizeof(json),
	    "{\"status\":\"queued\",\"attempt\":0,\"ts_ms\":%s}", ms);
	put_write(e, r, "HSET", key, "id", id, "tenant", tenant,
	    "to", "sip:bench@127.0.0.1:5060", "caller_id", "+15550100",
	    "priority", "5", "app_url", "http://127.0.0.1:8080/app.vxml",
	    "max_attempts", "3", "attempts", "0", "retry_busy", "60000",
	    "retry_no_answer", "300000", "retry_network", "30000",
	    "not_before_ms", ms, "not_after_ms", "1795399701124",
	    "created_ms", ms, "updated_ms", ms, "status", "queued",
	    "status_rank", "0", NULL);
	put_write(e, r, "XADD", "rq:events", sid, "call_id", id,
	    "attempt", "0", "status", "queued", "ts_ms", ms,
	    "tenant", tenant, "to", "sip:bench@127.0.0.1:5060", NULL);
	put_write(e, r, "HSET", tl, "0:queued", json, NULL);
	put_write(e, r, "ZADD", "rq:delayed", ms, id, NULL);
	put_write(e, r, "PEXPIREAT", key, "1795999999000", NULL);
	put_write(e, r, "PUBLISH", "rq:due", id, NULL);
}

static int
setup(void **state)
{
	apply_realloc = realloc;
	apply_free = free;
	return 0;
}

/* A call's writes.  Run first, and begun with a reset as replicated()
 * may begin (after a command that wrote nothing): the word list comes
 * into use even then, before any expansion has run in the process. */
static void
test_call(void **state)
{
	struct apply_enc e;
	struct resp r = { NULL, 0, 0 };

	(void)state;
	memset(&e, 0, sizeof(e));
	apply_enc_reset(&e);
	put_call(&e, &r, 0);
	assert_expands(e.p, e.len, r.p, r.len);
	/* docs/benchmarks.md: a fifth for a dispatched call */
	assert_true(e.len * 3 <= r.len);
	apply_enc_free(&e);
	free(r.p);
}

/* Strings the format treats specially, and their neighbours. */
static void
test_strings(void **state)
{
	static const char bin[] = "a\0b\r\n\r\n$3\r\n*\0";
	static const char *const text[] = {
		"", "007", "-5", "18446744073709551616", "1e3",
		"1234567890123456789", "9999999999999999999", "0", "1", "00",
		"999999999999999999", "+1", " 1", "1 ",
		"rq:job:", "rq:job:42", "rq:job:0", "rq:job:007",
		"rq:job:rq:job:", "rq:job:HSET", "rq:job:c_0123456789abcdef",
		"rq:", "rq:x", "rq:jo", "rq:delayed", "rq:delayedX",
		"rq:dnc:customer", "rq:dnc:tenant:", "rq:dnc:tenant:acme",
		"{", "{\"status\":", "{\"status\":\"",
		"{\"status\":\"queued\",\"attempt\":0,\"ts_ms\":" MS "}",
		"{\"status\":\"queued\"", "HSET", "hset", "HSETX", "id",
		"dry run", "*", "42", MS,
	};
	const char *s[3];
	size_t n[3], i, k, big_n = 100 * 1000;
	struct apply_enc e, one;
	struct resp r = { NULL, 0, 0 }, r1;
	char *big;

	memset(&e, 0, sizeof(e));
	assert_non_null(big = malloc(big_n));
	for (i = 0; i < big_n; i++)
		big[i] = (char)(i * 7 + i / 251);
	s[0] = "SET";
	n[0] = 3;
	/* each alone (the first string of a payload), then all in one
	 * payload, where each comes twice: a reference to the first */
	for (i = 0; i < sizeof(text) / sizeof(text[0]) + 2; i++) {
		if (i < sizeof(text) / sizeof(text[0])) {
			s[1] = text[i];
			n[1] = strlen(text[i]);
		} else if (i == sizeof(text) / sizeof(text[0])) {
			s[1] = bin;
			n[1] = sizeof(bin);	/* with its NUL */
		} else {
			s[1] = big;
			n[1] = big_n;
		}
		s[2] = s[1];
		n[2] = n[1];
		memset(&one, 0, sizeof(one));
		memset(&r1, 0, sizeof(r1));
		put_writev(&one, &r1, 3, s, n);
		assert_expands(one.p, one.len, r1.p, r1.len);
		apply_enc_free(&one);
		free(r1.p);
		for (k = 0; k < 2; k++)
			put_writev(&e, &r, 3, s, n);
	}
	assert_expands(e.p, e.len, r.p, r.len);
	apply_enc_free(&e);
	free(r.p);
	free(big);
}

/* Payloads as written today (AOFs keep them): a reference counts back
 * from the last string written, a prefixed string's suffix (when new)
 * before the whole. */
static void
test_format(void **state)
{
	static const unsigned char p[] = {
		0x05,
		0x01,			/* HSET */
		0x32, 0xab, 0x01,	/* "rq:job:", 42: rq:job:42 */
		0x91, 0x01,		/* id */
		0xb1, 0x03,		/* NWORDS + 1: 42 */
		0x0c, 'a', '\r', '\n',	/* 3 bytes */
		0x01,
		0x8e, 0x01, 0xb5, 0x03,	/* {"status":", NWORDS + 2: 42 */
		0x02,
		0xad, 0x03,		/* NWORDS: {"status":"42 */
		0xb1, 0x03,		/* NWORDS + 1: a\r\n */
	};
	static const char want[] =
	    "*5\r\n$4\r\nHSET\r\n$9\r\nrq:job:42\r\n$2\r\nid\r\n"
	    "$2\r\n42\r\n$3\r\na\r\n\r\n"
	    "*1\r\n$13\r\n{\"status\":\"42\r\n"
	    "*2\r\n$13\r\n{\"status\":\"42\r\n$3\r\na\r\n\r\n";

	/* the bytes above, as the header of apply_codec.c has them */
	assert_int_equal(W_RQ_JOB << 2 | 2, 0x32);
	assert_int_equal(42 << 2 | 3, 0xab);
	assert_int_equal(W_ID << 2 | 1, 0x91);
	assert_int_equal(W_STATUS_JSON << 2 | 2, 0x8e);
	assert_int_equal(NWORDS << 2 | 1, 0x1ad);
	assert_int_equal((NWORDS + 1) << 2 | 1, 0x1b1);
	assert_int_equal((NWORDS + 2) << 2 | 1, 0x1b5);
	assert_expands(p, sizeof(p), want, sizeof(want) - 1);
}

static void
test_reset(void **state)
{
	struct apply_enc e;
	struct resp r1 = { NULL, 0, 0 }, r2 = { NULL, 0, 0 };

	memset(&e, 0, sizeof(e));
	put_call(&e, &r1, 1);
	assert_expands(e.p, e.len, r1.p, r1.len);
	apply_enc_reset(&e);
	assert_int_equal(e.len, 0);
	/* the same strings again: the second payload cannot point into
	 * the first, which a replica may never see */
	put_call(&e, &r2, 1);
	put_call(&e, &r2, 2);
	assert_expands(e.p, e.len, r2.p, r2.len);
	apply_enc_free(&e);
	free(r1.p);
	free(r2.p);
}

/* More strings than the encoder looks back for, and repeats far back. */
static void
test_batch(void **state)
{
	struct apply_enc e;
	struct resp r = { NULL, 0, 0 };
	char id[27], old[27], key[64];
	unsigned i;

	memset(&e, 0, sizeof(e));
	for (i = 0; i < 1500; i++) {
		put_call(&e, &r, i);
		if (i >= 1000) {
			call_id(id, i);
			call_id(old, i - 1000);
			snprintf(key, sizeof(key), "rq:job:%s", old);
			put_write(&e, &r, "HSET", key, "result", id, NULL);
			put_write(&e, &r, "ZREM", "rq:delayed", old, NULL);
		}
	}
	assert_true(e.len * 3 <= r.len);
	assert_expands(e.p, e.len, r.p, r.len);
	apply_enc_free(&e);
	free(r.p);
}

/* The most strings a write has (60 arguments), and no more. */
static void
test_argc(void **state)
{
	unsigned char p[1 + 61];
	struct resp r = { NULL, 0, 0 };
	size_t i;

	p[0] = 61;
	resp_head(&r, '*', 61);
	for (i = 1; i <= 61; i++) {
		p[i] = 7 << 2 | 3;
		resp_put(&r, "$1\r\n7\r\n", 7);
	}
	assert_expands(p, sizeof(p), r.p, r.len);
	p[0] = 62;
	assert_corrupt(p, sizeof(p), BIG_OUT, 0);
	free(r.p);
}

/* Bytes counted from 0; a write "HSET k" (4 bytes) goes first. */
#define W_K		0x02, W_HSET << 2 | 1, 1 << 2, 'k'

static void
test_corrupt(void **state)
{
	assert_expands((const unsigned char []){ W_K }, 4,
	    "*2\r\n$4\r\nHSET\r\n$1\r\nk\r\n", 21);
	/* a write of no strings */
	CORRUPT(BIG_OUT, 0, 0x00);
	CORRUPT(BIG_OUT, 4, W_K, 0x00);
	/* 62 strings */
	CORRUPT(BIG_OUT, 4, W_K, 0x3e, 0x01);
	/* a literal of 3 bytes, 2 there */
	CORRUPT(BIG_OUT, 5, W_K, 0x01, 3 << 2, 'a', 'b');
	/* a literal of 2^39 bytes */
	CORRUPT(BIG_OUT, 5, W_K, 0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40);
	/* a reference to a string before the first */
	CORRUPT(BIG_OUT, 1, 0x01, 0xad, 0x03);	/* NWORDS << 2 | 1 */
	CORRUPT(BIG_OUT, 5, 0x03, 1 << 2, 'k', 0xad, 0x03, 0xb1, 0x03);
	/* reference number 2^39: no word, no string */
	CORRUPT(BIG_OUT, 5, W_K, 0x01, 0x81, 0x80, 0x80, 0x80, 0x80, 0x40);
	/* prefix number 2^39 */
	CORRUPT(BIG_OUT, 5, W_K, 0x01, 0x82, 0x80, 0x80, 0x80, 0x80, 0x40,
	    1 << 2, 'x');
	/* a prefix, then a prefix */
	CORRUPT(BIG_OUT, 5, W_K, 0x01, W_RQ_JOB << 2 | 2, W_RQ_JOB << 2 | 2,
	    1 << 2, 'x');
	/* a varint cut short: of a count, a string, a prefix's suffix */
	CORRUPT(BIG_OUT, 4, W_K, 0x80);
	CORRUPT(BIG_OUT, 5, W_K, 0x01, 0x80);
	CORRUPT(BIG_OUT, 5, W_K, 0x01, W_RQ_JOB << 2 | 2, 0x80);
	/* a string missing */
	CORRUPT(BIG_OUT, 6, W_K, 0x02, W_HSET << 2 | 1);
	/* a varint of more than 63 bits */
	CORRUPT(BIG_OUT, 5, W_K, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	    0xff, 0xff, 0xff, 0x01);
}

/* "*1\r\n$5\r\nhello\r\n" is 15 bytes. */
static void
test_max_out(void **state)
{
	static const unsigned char p[] = { 0x01, 5 << 2, 'h', 'e', 'l', 'l',
	    'o' };
	char *out = NULL;
	size_t outlen = 0, outcap = 0, at = 0;

	assert_corrupt(p, sizeof(p), 14, 1);
	assert_corrupt(p, sizeof(p), 3, 0);
	assert_int_equal(apply_expand(p, sizeof(p), &out, &outlen, &outcap,
	    15, &at), 0);
	assert_int_equal(outlen, 15);
	assert_memory_equal(out, "*1\r\n$5\r\nhello\r\n", 15);
	free(out);
	/* a reference is as long as what it refers to */
	CORRUPT(15 + 4 + 10, 8, p[0], p[1], p[2], p[3], p[4], p[5], p[6],
	    0x01, 0xad, 0x03);
}

/* apply_expand() appends: references are to this payload's strings. */
static void
test_append(void **state)
{
	struct apply_enc e;
	struct resp r = { NULL, 0, 0 };
	char *out;
	size_t outlen = 5, outcap = 5, at = 0;

	memset(&e, 0, sizeof(e));
	put_call(&e, &r, 3);
	assert_non_null(out = malloc(outcap));
	memcpy(out, "xyzzy", 5);
	assert_int_equal(apply_expand(e.p, e.len, &out, &outlen, &outcap,
	    BIG_OUT, &at), 0);
	assert_int_equal(outlen, 5 + r.len);
	assert_memory_equal(out, "xyzzy", 5);
	assert_memory_equal(out + 5, r.p, r.len);
	free(out);
	apply_enc_free(&e);
	free(r.p);
}

static void
test_free_reuse(void **state)
{
	struct apply_enc e;
	struct resp r = { NULL, 0, 0 };

	memset(&e, 0, sizeof(e));
	put_call(&e, &r, 4);
	apply_enc_free(&e);
	assert_null(e.p);
	assert_int_equal(e.len, 0);
	apply_enc_free(&e);	/* twice: nothing left to free */
	free(r.p);
	memset(&r, 0, sizeof(r));
	put_call(&e, &r, 4);
	put_call(&e, &r, 5);
	assert_expands(e.p, e.len, r.p, r.len);
	assert_true(e.len * 3 <= r.len);
	apply_enc_free(&e);
	free(r.p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_call),	/* first: see there */
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_batch),
		cmocka_unit_test(test_argc),
		cmocka_unit_test(test_corrupt),
		cmocka_unit_test(test_max_out),
		cmocka_unit_test(test_append),
		cmocka_unit_test(test_free_reuse),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
