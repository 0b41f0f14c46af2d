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

/* One more string in a history (*hist, *nhist, *hcap), at off. */
static void
hist_add(struct apply_str **hist, size_t *nhist, size_t *hcap, size_t off,
    size_t n)
{
	grow((void **)hist, hcap, *nhist + 1, sizeof(**hist));
	(*hist)[*nhist].off = (uint32_t)off;
	(*hist)[(*nhist)++].len = (uint32_t)n;
}

/* s[n] is a string written: later ones may refer to it. */
static void
remember(struct apply_enc *e, const char *s, size_t n, uint32_t h)
{
	grow((void **)&e->arena, &e->acap, e->alen + n, 1);
	if (n > 0)	/* the arena may be NULL yet */
		memcpy(e->arena + e->alen, s, n);
	e->slot[h % APPLY_SLOTS].gen = e->gen;
	e->slot[h % APPLY_SLOTS].idx = (uint32_t)e->nhist;
	hist_add(&e->hist, &e->nhist, &e->hcap, e->alen, n);
	e->alen += n;
}

/*
 * A reference to s[n], a word or a string written before, when it is
 * one: 0, else -1.
 */
static int
put_ref(struct apply_enc *e, const char *s, size_t n, uint32_t h)
{
	const struct apply_str *w;
	uint32_t i;
	int k;

	if ((k = word(s, n, h)) >= 0) {
		put_varint(e, (uint64_t)k << 2 | 1);
		return 0;
	}
	if (e->slot[h % APPLY_SLOTS].gen != e->gen)
		return -1;
	i = e->slot[h % APPLY_SLOTS].idx;
	w = &e->hist[i];
	if (w->len != n || (n > 0 && memcmp(e->arena + w->off, s, n) != 0))
		return -1;
	put_varint(e, (uint64_t)(NWORDS + e->nhist - 1 - i) << 2 | 1);
	return 0;
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

/* s[n], neither a word nor written before: kind 3 or 0. */
static void
put_new(struct apply_enc *e, const char *s, size_t n, uint32_t h)
{
	uint64_t v;

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
	uint32_t h = hash(s, n), hs;
	size_t k, pl;
	int w;

	if (put_ref(e, s, n, h) == 0)
		return;
	/* a key, or a timeline entry: a known prefix, then the rest */
	if (n > 3 && (memcmp(s, "rq:", 3) == 0 || s[0] == '{'))
		for (k = 0; k < nprefixes; k++) {
			w = prefixes[k];
			pl = word_len[w];
			if (n <= pl || memcmp(s, words[w], pl) != 0)
				continue;
			put_varint(e, (uint64_t)w << 2 | 2);
			hs = hash(s + pl, n - pl);
			if (put_ref(e, s + pl, n - pl, hs) == -1)
				put_new(e, s + pl, n - pl, hs);
			remember(e, s, n, h);
			return;
		}
	put_new(e, s, n, h);
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
	memset(e, 0, sizeof(*e));
}

/* Expansion: the strings are where they were written in *out. */
struct expand {
	const unsigned char *p;
	size_t		 len, i;
	char		**out;
	size_t		*outlen, *outcap, max_out;
	struct apply_str *hist;
	size_t		 nhist, hcap;
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

/* A RESP header, "*<n>\r\n" or "$<n>\r\n", in b (32); its length. */
static size_t
resp_head(char *b, char kind, uint64_t n)
{
	size_t k;

	b[0] = kind;
	k = 1 + fmt_u64(b + 1, n);
	b[k++] = '\r';
	b[k++] = '\n';
	return k;
}

/*
 * One string's RESP: its token, and for kind 2 the one after.  The bytes
 * of a reference to a string before are copied from *out (at src_off,
 * once there is room), of a word from words[], of a literal from p, of an
 * integer from num[].
 */
static int
expand_string(struct expand *x)
{
	const char *pre = "", *lit = NULL;
	char num[24], head[32];
	size_t pl = 0, n = 0, src_off = 0, hl, start;
	uint64_t v, d;
	int kind, fresh;

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
		src_off = x->hist[x->nhist - 1 - d].off;
		n = x->hist[x->nhist - 1 - d].len;
	}
	hl = resp_head(head, '$', pl + n);
	if (out_room(x, hl + pl + n + 2) == -1)
		return -1;
	if (lit == NULL)	/* *out stays where it is from here on */
		lit = *x->out + src_off;
	out_put(x, head, hl);
	start = *x->outlen;
	out_put(x, pre, pl);
	out_put(x, lit, n);
	out_put(x, "\r\n", 2);
	if (fresh && pl > 0)
		hist_add(&x->hist, &x->nhist, &x->hcap, start + pl, n);
	if (fresh || pl > 0)
		hist_add(&x->hist, &x->nhist, &x->hcap, start, pl + n);
	return 0;
}

int
apply_expand(const unsigned char *p, size_t len, char **out,
    size_t *outlen, size_t *outcap, size_t max_out, size_t *at)
{
	struct expand x = { .p = p, .len = len, .out = out, .outlen = outlen,
	    .outcap = outcap, .max_out = max_out };
	uint64_t argc, k;
	char head[32];
	size_t hl;
	int rc = 0;

	words_init();
	while (x.i < len) {
		*at = x.i;
		if (get_varint(&x, &argc) == -1 || argc == 0 ||
		    argc > APPLY_MAX_STRINGS) {
			rc = -1;
			break;
		}
		hl = resp_head(head, '*', argc);
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
	apply_free(x.hist);
	return rc;
}
