/* Compact JSON text of a jansson value, byte for byte what json_dumps
 * writes with JSON_COMPACT (and JSON_ENSURE_ASCII when asked; a real
 * number, though, in the fewest digits that read back the same: 0.1, not
 * jansson's 0.10000000000000001), at a tenth of its cost: json_dumps
 * checks every object and array for a reference loop by printing its
 * address into a hash table, which made it the gateway's largest cost per
 * accepted call.  Values built or parsed here cannot loop; depth is
 * bounded instead. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gateway.h"

#define JSON_OUT_MAX_DEPTH	2048	/* jansson's parser accepts as deep */

struct jbuf {
	char	*p;
	size_t	 len, cap;
	int	 failed;
};

static void
put(struct jbuf *b, const char *s, size_t n)
{
	size_t cap;
	char *p;

	if (b->failed)
		return;
	if (n + 1 > b->cap - b->len) {
		cap = b->cap ? b->cap : 256;
		while (n + 1 > cap - b->len)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL) {
			b->failed = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static const char hex[] = "0123456789ABCDEF";

static void
put_u16(struct jbuf *b, unsigned int u)
{
	char e[6] = { '\\', 'u', hex[u >> 12 & 15], hex[u >> 8 & 15],
	    hex[u >> 4 & 15], hex[u & 15] };

	put(b, e, sizeof(e));
}

/* The code point of the UTF-8 sequence at s (n bytes left) in *cp; returns
 * its length, or 0 when it is not valid UTF-8 (jansson then fails too). */
static size_t
utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len, i;
	uint32_t c;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		c = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		c = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		c = s[0] & 0x07;
	} else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates and beyond U+10FFFF */
	if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) ||
	    (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
		return 0;
	*cp = c;
	return len;
}

static void
put_string(struct jbuf *b, const char *str, size_t n, int ascii)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run = 0, len;
	uint32_t c;
	char e[2] = { '\\', 0 };

	put(b, "\"", 1);
	while (i < n) {
		if (s[i] >= 0x20 && s[i] != '"' && s[i] != '\\' &&
		    (s[i] < 0x80 || !ascii)) {
			/* plain ASCII, or any byte kept as it is: but a
			 * multi-byte sequence must still be valid */
			if (s[i] >= 0x80) {
				if ((len = utf8_next(s + i, n - i, &c)) == 0) {
					b->failed = 1;
					return;
				}
				i += len;
			} else
				i++;
			continue;
		}
		put(b, str + run, i - run);
		switch (s[i]) {
		case '"':  e[1] = '"';  break;
		case '\\': e[1] = '\\'; break;
		case '\b': e[1] = 'b';  break;
		case '\f': e[1] = 'f';  break;
		case '\n': e[1] = 'n';  break;
		case '\r': e[1] = 'r';  break;
		case '\t': e[1] = 't';  break;
		default:   e[1] = 0;    break;
		}
		if (e[1] != 0) {
			put(b, e, 2);
			i++;
		} else if (s[i] < 0x80) {
			put_u16(b, s[i]);
			i++;
		} else {
			if ((len = utf8_next(s + i, n - i, &c)) == 0) {
				b->failed = 1;
				return;
			}
			if (c < 0x10000)
				put_u16(b, c);
			else {
				c -= 0x10000;
				put_u16(b, 0xd800 | (c >> 10 & 0x3ff));
				put_u16(b, 0xdc00 | (c & 0x3ff));
			}
			i += len;
		}
		run = i;
	}
	put(b, str + run, i - run);
	put(b, "\"", 1);
}

/* d in the fewest significant digits (15 to 17) that strtod reads back
 * as d, with ".0" when that looks like an integer (it stays a real, as
 * jansson writes it); its length, or -1 (not finite: JSON has no such
 * number). */
static int
real_format(char *out, size_t size, double d)
{
	int len = -1, prec;

	if (!isfinite(d))
		return -1;
	for (prec = 15; prec <= 17; prec++) {
		len = snprintf(out, size, "%.*g", prec, d);
		if (len < 0 || (size_t)len >= size)
			return -1;
		if (strtod(out, NULL) == d)
			break;
	}
	if (strpbrk(out, ".e") == NULL) {
		if ((size_t)len + 2 >= size)
			return -1;
		memcpy(out + len, ".0", 3);
		len += 2;
	}
	return len;
}

static void
put_value(struct jbuf *b, const json_t *v, int ascii, int depth)
{
	char num[40];
	size_t i, n;
	void *it;
	int len, first = 1;

	if (depth > JSON_OUT_MAX_DEPTH) {
		b->failed = 1;
		return;
	}
	switch (json_typeof(v)) {
	case JSON_NULL:
		put(b, "null", 4);
		break;
	case JSON_TRUE:
		put(b, "true", 4);
		break;
	case JSON_FALSE:
		put(b, "false", 5);
		break;
	case JSON_INTEGER:
		len = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		put(b, num, (size_t)len);
		break;
	case JSON_REAL:
		len = real_format(num, sizeof(num), json_real_value(v));
		if (len <= 0) {
			b->failed = 1;
			break;
		}
		put(b, num, (size_t)len);
		break;
	case JSON_STRING:
		put_string(b, json_string_value(v), json_string_length(v),
		    ascii);
		break;
	case JSON_ARRAY:
		put(b, "[", 1);
		n = json_array_size(v);
		for (i = 0; i < n; i++) {
			if (i > 0)
				put(b, ",", 1);
			put_value(b, json_array_get(v, i), ascii, depth + 1);
		}
		put(b, "]", 1);
		break;
	case JSON_OBJECT:
		put(b, "{", 1);
		for (it = json_object_iter((json_t *)v); it != NULL;
		    it = json_object_iter_next((json_t *)v, it)) {
			if (!first)
				put(b, ",", 1);
			first = 0;
			put_string(b, json_object_iter_key(it),
			    json_object_iter_key_len(it), ascii);
			put(b, ":", 1);
			put_value(b, json_object_iter_value(it), ascii,
			    depth + 1);
		}
		put(b, "}", 1);
		break;
	}
}

char *
gw_json_dumps(const json_t *v, int ascii, size_t *lenp)
{
	struct jbuf b = { NULL, 0, 0, 0 };

	if (v == NULL)
		return NULL;
	put_value(&b, v, ascii, 0);
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	if (lenp != NULL)
		*lenp = b.len;
	return b.p;
}
