/*
 * ringq.apply's format 2 (apply_codec.h).  A token is a varint (LEB128) v,
 * its kind v & 3 and its number v >> 2:
 *   0  a literal of n bytes, which follow;
 *   1  a reference: n < NWORDS is words[n], else the string written
 *      n - NWORDS strings before the last one;
 *   2  words[n] as prefix, then one token of kind 0, 1 or 3 after it;
 *   3  the integer n, in decimal.
 * Kinds 0, 2 and 3 write a new string, which later ones may refer to (of
 * kind 2 the suffix, when it is new too, before the whole).  A write is
 * its count of strings, a varint, then the strings.  A call's id comes
 * back in some ten strings of each command's writes, field names and key
 * prefixes in nearly all: about a fifth of format 1's bytes for a
 * dispatched call (docs/benchmarks.md).
 */
#include <string.h>

#include "apply_codec.h"

void *(*apply_realloc)(void *, size_t);
void (*apply_free)(void *);

/* Format 2's words: never reordered nor removed, as AOFs hold their
 * numbers (a new word is a new format).  The writes' names first. */
static const char *const words[] = {
	"HSET", "HDEL", "HINCRBY", "ZADD", "ZREM", "XADD", "PEXPIREAT",
	"SADD", "SREM", "INCR", "SET", "PUBLISH",
	"rq:job:", "rq:timeline:", "rq:delayed", "rq:ready", "rq:inflight",
	"rq:calls:", "rq:oncall:", "rq:events", "rq:wake", "rq:due",
	"rq:active:", "rq:idem:", "rq:rate:", "rq:callbacks", "rq:cbq:",
	"rq:cbsent:", "rq:rec:", "rq:node:", "rq:nodes", "rq:tel:",
	"rq:dnc:customer", "rq:dnc:tenant:", "rq:dnc:business:",
	"{\"status\":\"",
	"id", "tenant", "to", "say", "app_url", "caller_id", "priority",
	"not_before_ms", "not_after_ms", "callback_url", "metadata",
	"created_ms", "max_attempts", "result", "attempts", "node",
	"retry_busy", "retry_no_answer", "retry_network", "tries_busy",
	"tries_no_answer", "tries_network", "dialed", "direction", "number",
	"status", "reason", "sip_code", "updated_ms", "status_rank", "ttl_ms",
	"call_id", "attempt", "ts_ms", "timeline", "callback", "duration_ms",
	"started_ms", "answered_ms", "detail",
	"queued", "scheduled", "dispatched", "ringing", "answered",
	"retrying", "completed", "failed", "canceled", "expired",
	"busy", "no_answer", "declined", "unreachable", "interrupted",
	"attempts_exhausted", "policy", "rejected", "media", "not_after",
	"app_error", "inbound", "dry run", "XX", "NX", "PX", "*",
	"0:queued", "0:scheduled", "1:dispatched", "1:completed",
};
#define NWORDS	(sizeof(words) / sizeof(words[0]))

/* The words that begin keys or a timeline entry: those that end in ':'
 * or '"' (none begins another). */
static unsigned char prefixes[NWORDS];
static size_t nprefixes;

#define WORD_SLOTS	256
static unsigned char word_slot[WORD_SLOTS];	/* word's number + 1 */
static size_t word_len[NWORDS];

static uint64_t
load8(const char *s)
{
	uint64_t w;

	memcpy(&w, s, 8);
	return w;
}

static uint64_t
load4(const char *s)
{
	uint32_t w;

	memcpy(&w, s, 4);
	return w;
}

/* Of the strings' bytes (all of them: the tail by overlapping loads). */
static uint32_t
hash(const char *s, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ n, w;
	size_t i;

	if (n > 8) {
		for (i = 0; i + 8 < n; i += 8)
			h = (h ^ load8(s + i)) * 0xff51afd7ed558ccdULL;
		w = load8(s + n - 8);
	} else if (n >= 4)
		w = load4(s) | load4(s + n - 4) << 32;
	else if (n > 0)
		w = (uint64_t)(unsigned char)s[0] |
		    (uint64_t)(unsigned char)s[n / 2] << 8 |
		    (uint64_t)(unsigned char)s[n - 1] << 16;
	else
		w = 0;
	h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
	return (uint32_t)(h ^ h >> 32);
}

static void
words_init(void)
{
	size_t k, i;

	if (word_len[0] != 0)
		return;
	for (k = 0; k < NWORDS; k++) {
		word_len[k] = strlen(words[k]);
		i = hash(words[k], word_len[k]) % WORD_SLOTS;
		while (word_slot[i] != 0)
			i = (i + 1) % WORD_SLOTS;
		word_slot[i] = (unsigned char)(k + 1);
		if (words[k][word_len[k] - 1] == ':' ||
		    words[k][word_len[k] - 1] == '"')
			prefixes[nprefixes++] = (unsigned char)k;
	}
}

/* The word s[n] is, or -1. */
static int
word(const char *s, size_t n, uint32_t h)
{
	size_t i = h % WORD_SLOTS;
	int k;

	for (; word_slot[i] != 0; i = (i + 1) % WORD_SLOTS) {
		k = word_slot[i] - 1;
		if (word_len[k] == n && memcmp(words[k], s, n) == 0)
			return k;
	}
	return -1;
}

static void
grow(void **p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return;
	*cap = need * 2 < 256 ? 256 : need * 2;
	*p = apply_realloc(*p, *cap * size);
}

static void
put_varint(struct apply_enc *e, uint64_t v)
{
	grow((void **)&e->p, &e->cap, e->len + 10, 1);
	while (v >= 0x80) {
		e->p[e->len++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	e->p[e->len++] = (unsigned char)v;
}

/* s[n] is a string written: later ones may refer to it. */
static void
remember(struct apply_enc *e, const char *s, size_t n, uint32_t h)
{
	grow((void **)&e->arena, &e->acap, e->alen + n, 1);
	if (e->nhist == e->hcap) {
		e->hcap = e->hcap < 256 ? 256 : e->hcap * 2;
		e->hist = apply_realloc(e->hist, e->hcap * sizeof(uint32_t));
		e->hlen = apply_realloc(e->hlen, e->hcap * sizeof(uint32_t));
	}
	if (n > 0)	/* the arena may be NULL yet */
		memcpy(e->arena + e->alen, s, n);
	e->hist[e->nhist] = (uint32_t)e->alen;
	e->hlen[e->nhist] = (uint32_t)n;
	e->alen += n;
	e->slot[h % APPLY_SLOTS].gen = e->gen;
	e->slot[h % APPLY_SLOTS].idx = (uint32_t)e->nhist++;
}

/* The number of a string written before equal to s[n], or -1. */
static long
seen(const struct apply_enc *e, const char *s, size_t n, uint32_t h)
{
	uint32_t i;

	if (e->slot[h % APPLY_SLOTS].gen != e->gen)
		return -1;
	i = e->slot[h % APPLY_SLOTS].idx;
	if (e->hlen[i] != n ||
	    (n > 0 && memcmp(e->arena + e->hist[i], s, n) != 0))
		return -1;
	return (long)i;
}

/* s[n] as canonical decimal (no sign, no leading zero, at most 18
 * digits), in *v; or -1. */
static int
decimal(const char *s, size_t n, uint64_t *v)
{
	size_t i;

	if (n == 0 || n > 18 || (s[0] == '0' && n > 1))
		return -1;
	for (*v = 0, i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*v = *v * 10 + (uint64_t)(s[i] - '0');
	}
	return 0;
}

/* A token of kind 0, 1 or 3 for s[n]. */
static void
put_plain(struct apply_enc *e, const char *s, size_t n, uint32_t h)
{
	uint64_t v;
	long i;
	int k;

	if ((k = word(s, n, h)) >= 0) {
		put_varint(e, (uint64_t)k << 2 | 1);
		return;
	}
	if ((i = seen(e, s, n, h)) >= 0) {
		put_varint(e, (uint64_t)(NWORDS + e->nhist - 1 - (size_t)i) <<
		    2 | 1);
		return;
	}
	if (decimal(s, n, &v) == 0)
		put_varint(e, v << 2 | 3);
	else {
		put_varint(e, (uint64_t)n << 2);
		grow((void **)&e->p, &e->cap, e->len + n, 1);
		memcpy(e->p + e->len, s, n);
		e->len += n;
	}
	remember(e, s, n, h);
}

void
apply_enc_write(struct apply_enc *e, size_t argc)
{
	words_init();
	if (e->gen == 0)
		e->gen = 1;
	put_varint(e, argc);
}

void
apply_enc_arg(struct apply_enc *e, const char *s, size_t n)
{
	uint32_t h = hash(s, n);
	size_t k, pl;
	int w;

	if (n > 3 && (memcmp(s, "rq:", 3) == 0 || s[0] == '{') &&
	    word(s, n, h) < 0 &&
	    seen(e, s, n, h) < 0)
		for (k = 0; k < nprefixes; k++) {
			w = prefixes[k];
			pl = word_len[w];
			if (n > pl && memcmp(s, words[w], pl) == 0) {
				put_varint(e, (uint64_t)w << 2 | 2);
				put_plain(e, s + pl, n - pl,
				    hash(s + pl, n - pl));
				remember(e, s, n, h);
				return;
			}
		}
	put_plain(e, s, n, h);
}

void
apply_enc_reset(struct apply_enc *e)
{
	e->len = e->alen = e->nhist = 0;
	if (++e->gen == 0) {
		memset(e->slot, 0, sizeof(e->slot));
		e->gen = 1;
	}
}

void
apply_enc_free(struct apply_enc *e)
{
	apply_free(e->p);
	apply_free(e->arena);
	apply_free(e->hist);
	apply_free(e->hlen);
	memset(e, 0, sizeof(*e));
}

/* Expansion: the strings are where they were written in *out. */
struct expand {
	const unsigned char *p;
	size_t		 len, i;
	char		**out;
	size_t		*outlen, *outcap, max_out;
	size_t		*hoff, *hlen, nhist, hcap;
};

static int
get_varint(struct expand *x, uint64_t *v)
{
	unsigned shift = 0;

	for (*v = 0; x->i < x->len && shift < 63; shift += 7) {
		*v |= (uint64_t)(x->p[x->i] & 0x7f) << shift;
		if ((x->p[x->i++] & 0x80) == 0)
			return 0;
	}
	return -1;
}

static int
out_room(struct expand *x, size_t n)
{
	if (n > x->max_out || *x->outlen > x->max_out - n)
		return -1;
	grow((void **)x->out, x->outcap, *x->outlen + n, 1);
	return 0;
}

static void
out_put(struct expand *x, const char *s, size_t n)
{
	memcpy(*x->out + *x->outlen, s, n);
	*x->outlen += n;
}

static size_t
fmt_u64(char *b, uint64_t v)
{
	char t[24];
	size_t n = 0, k;

	do
		t[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	for (k = 0; k < n; k++)
		b[k] = t[n - 1 - k];
	return n;
}

static void
note(struct expand *x, size_t off, size_t n)
{
	if (x->nhist == x->hcap) {
		x->hcap = x->hcap < 64 ? 64 : x->hcap * 2;
		x->hoff = apply_realloc(x->hoff, x->hcap * sizeof(size_t));
		x->hlen = apply_realloc(x->hlen, x->hcap * sizeof(size_t));
	}
	x->hoff[x->nhist] = off;
	x->hlen[x->nhist++] = n;
}

/*
 * One string's RESP: its token, and for kind 2 the one after.  The bytes
 * of a reference to a string before are copied from *out (src_off), of a
 * word from words[], of a literal from p, of an integer from num[].
 */
static int
expand_string(struct expand *x)
{
	const char *pre = "", *lit = NULL;
	char num[24], head[32];
	size_t pl = 0, n = 0, src_off = 0, hl, start;
	uint64_t v, d;
	int kind, from_out = 0, fresh;

	if (get_varint(x, &v) == -1)
		return -1;
	if ((v & 3) == 2) {
		if ((v >> 2) >= NWORDS)
			return -1;
		pre = words[v >> 2];
		pl = word_len[v >> 2];
		if (get_varint(x, &v) == -1 || (v & 3) == 2)
			return -1;
	}
	kind = (int)(v & 3);
	v >>= 2;
	fresh = kind != 1;
	if (kind == 0) {
		if (v > x->len - x->i)
			return -1;
		lit = (const char *)x->p + x->i;
		n = (size_t)v;
		x->i += n;
	} else if (kind == 3) {
		n = fmt_u64(num, v);
		lit = num;
	} else if (v < NWORDS) {
		lit = words[v];
		n = word_len[v];
	} else {
		d = v - NWORDS;
		if (d >= x->nhist)
			return -1;
		src_off = x->hoff[x->nhist - 1 - d];
		n = x->hlen[x->nhist - 1 - d];
		from_out = 1;
	}
	head[0] = '$';
	hl = 1 + fmt_u64(head + 1, pl + n);
	head[hl++] = '\r';
	head[hl++] = '\n';
	if (out_room(x, hl + pl + n + 2) == -1)
		return -1;
	out_put(x, head, hl);
	start = *x->outlen;
	out_put(x, pre, pl);
	if (from_out)
		memcpy(*x->out + *x->outlen, *x->out + src_off, n), *x->outlen += n;
	else
		out_put(x, lit, n);
	out_put(x, "\r\n", 2);
	if (fresh && pl > 0)
		note(x, start + pl, n);
	if (fresh || pl > 0)
		note(x, start, pl + n);
	return 0;
}

int
apply_expand(const unsigned char *p, size_t len, char **out,
    size_t *outlen, size_t *outcap, size_t max_out, size_t *at)
{
	struct expand x;
	uint64_t argc, k;
	char head[32];
	size_t hl;
	int rc = 0;

	words_init();
	memset(&x, 0, sizeof(x));
	x.p = p;
	x.len = len;
	x.out = out;
	x.outlen = outlen;
	x.outcap = outcap;
	x.max_out = max_out;
	while (x.i < len) {
		*at = x.i;
		if (get_varint(&x, &argc) == -1 || argc == 0 || argc > 61) {
			rc = -1;
			break;
		}
		head[0] = '*';
		hl = 1 + fmt_u64(head + 1, argc);
		head[hl++] = '\r';
		head[hl++] = '\n';
		if (out_room(&x, hl) == -1) {
			rc = -1;
			break;
		}
		out_put(&x, head, hl);
		for (k = 0; k < argc && rc == 0; k++) {
			*at = x.i;
			rc = expand_string(&x);
		}
		if (rc == -1)
			break;
	}
	apply_free(x.hoff);
	apply_free(x.hlen);
	return rc;
}
