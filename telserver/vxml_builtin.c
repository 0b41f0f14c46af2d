/* vxml_builtin.c: the builtin DTMF grammars of VoiceXML 2.0 appendix P
 * (boolean, date, digits, currency, number, phone, time) and their
 * interpretations.  Each type is a small recogniser over the key string:
 * it says whether the keys are a match, and whether more keys could still
 * make one, which is all vxml_grammar_match needs. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vxml_builtin.h"

#define BUILTIN_PREFIX		"builtin:"
#define BUILTIN_DTMF		"builtin:dtmf/"
#define PARAM_MAX		10000	/* larger lengths are nonsense */
#define BOOL_SEQ_MAX		16

enum builtin_type {
	BT_BOOLEAN,
	BT_DATE,
	BT_DIGITS,
	BT_CURRENCY,
	BT_NUMBER,
	BT_PHONE,
	BT_TIME
};

static const struct {
	const char		*name;
	enum builtin_type	 type;
} builtin_types[] = {
	{ "boolean",	BT_BOOLEAN },
	{ "date",	BT_DATE },
	{ "digits",	BT_DIGITS },
	{ "currency",	BT_CURRENCY },
	{ "number",	BT_NUMBER },
	{ "phone",	BT_PHONE },
	{ "time",	BT_TIME },
};

struct vxml_builtin {
	enum builtin_type	 type;
	int			 minlen, maxlen;	/* maxlen 0: any */
	char			 yes[BOOL_SEQ_MAX + 1];	/* boolean */
	char			 no[BOOL_SEQ_MAX + 1];
};

/* What a recogniser found: a match, and whether longer input could be
 * one; neither means "could still become one" only when viable. */
struct scan {
	int	match;
	int	longer;		/* some longer input matches */
};

int
vxml_dtmf_key(int c)
{
	return (c >= '0' && c <= '9') || c == '*' || c == '#' ||
	    (c >= 'A' && c <= 'D');
}

char *
vxml_js_string(const char *s)
{
	const unsigned char *p;
	char *out, *o;
	size_t n;

	n = strlen(s);
	if (n > (SIZE_MAX - 3) / 6 || (out = malloc(n * 6 + 3)) == NULL)
		return NULL;
	o = out;
	*o++ = '"';
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\') {
			*o++ = '\\';
			*o++ = (char)*p;
		} else if (*p < 0x20 || *p == 0x7f) {
			o += sprintf(o, "\\u%04x", *p);
		} else if (p[0] == 0xe2 && p[1] == 0x80 &&
		    (p[2] == 0xa8 || p[2] == 0xa9)) {
			/* U+2028/2029 end a line inside an ES5 string */
			o += sprintf(o, "\\u%s", p[2] == 0xa8 ? "2028" :
			    "2029");
			p += 2;
		} else
			*o++ = (char)*p;
	}
	*o++ = '"';
	*o = '\0';
	return out;
}

static int
all_digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

static int
parse_count(const char *name, const char *v, int *out, char *err,
    size_t errlen)
{
	char *end;
	long l;

	errno = 0;
	l = strtol(v, &end, 10);
	if (*v < '0' || *v > '9' || *end != '\0' || errno != 0 ||
	    l > PARAM_MAX) {
		snprintf(err, errlen, "builtin parameter %s=%s is not a "
		    "length from 0 to %d", name, v, PARAM_MAX);
		return -1;
	}
	*out = (int)l;
	return 0;
}

static int
parse_seq(const char *name, const char *v, char *out, char *err,
    size_t errlen)
{
	size_t n;

	n = strlen(v);
	if (n == 0 || n > BOOL_SEQ_MAX)
		goto bad;
	for (size_t i = 0; i < n; i++)
		if (!vxml_dtmf_key((unsigned char)v[i]))
			goto bad;
	memcpy(out, v, n + 1);
	return 0;
bad:
	snprintf(err, errlen, "builtin parameter %s=%s is not a sequence of "
	    "1 to %d DTMF keys", name, v, BOOL_SEQ_MAX);
	return -1;
}

/* params: "name=value;name=value" (the ';' of appendix P's examples). */
static int
parse_params(struct vxml_builtin *b, const char *type, char *params,
    char *err, size_t errlen)
{
	char *p, *next, *v;
	int len = -1, min = -1, max = -1;

	for (p = params; p != NULL && *p != '\0'; p = next) {
		if ((next = strchr(p, ';')) != NULL)
			*next++ = '\0';
		if (*p == '\0')
			continue;
		if ((v = strchr(p, '=')) == NULL) {
			snprintf(err, errlen, "builtin %s: parameter \"%s\" "
			    "has no value (write name=value)", type, p);
			return -1;
		}
		*v++ = '\0';
		if (b->type == BT_DIGITS && strcmp(p, "length") == 0) {
			if (parse_count(p, v, &len, err, errlen) == -1)
				return -1;
		} else if (b->type == BT_DIGITS &&
		    strcmp(p, "minlength") == 0) {
			if (parse_count(p, v, &min, err, errlen) == -1)
				return -1;
		} else if (b->type == BT_DIGITS &&
		    strcmp(p, "maxlength") == 0) {
			if (parse_count(p, v, &max, err, errlen) == -1)
				return -1;
		} else if (b->type == BT_BOOLEAN && strcmp(p, "y") == 0) {
			if (parse_seq(p, v, b->yes, err, errlen) == -1)
				return -1;
		} else if (b->type == BT_BOOLEAN && strcmp(p, "n") == 0) {
			if (parse_seq(p, v, b->no, err, errlen) == -1)
				return -1;
		} else {
			snprintf(err, errlen, "builtin %s has no parameter "
			    "\"%s\"%s", type, p, b->type == BT_DIGITS ?
			    " (digits takes length, minlength, maxlength)" :
			    b->type == BT_BOOLEAN ? " (boolean takes y, n)" :
			    "");
			return -1;
		}
	}
	if (b->type == BT_DIGITS) {
		if (len != -1 && (min != -1 || max != -1)) {
			snprintf(err, errlen, "builtin digits: length cannot "
			    "be combined with minlength or maxlength");
			return -1;
		}
		if (len == 0 || max == 0) {
			snprintf(err, errlen, "builtin digits: a length of 0 "
			    "can never be entered");
			return -1;
		}
		if (len != -1)
			min = max = len;
		if (min != -1 && max != -1 && min > max) {
			snprintf(err, errlen, "builtin digits: minlength %d "
			    "is greater than maxlength %d", min, max);
			return -1;
		}
		/* no keys at all is noinput, never a match */
		b->minlen = min < 1 ? 1 : min;
		b->maxlen = max == -1 ? 0 : max;
	}
	if (b->type == BT_BOOLEAN && strcmp(b->yes, b->no) == 0) {
		snprintf(err, errlen, "builtin boolean: y and n are both %s",
		    b->yes);
		return -1;
	}
	return 0;
}

struct vxml_builtin *
vxml_builtin_parse(const char *type, char *err, size_t errlen)
{
	struct vxml_builtin *b = NULL;
	const char *name = type;
	char *copy = NULL, *params;
	size_t i;

	if (strncmp(type, BUILTIN_DTMF, strlen(BUILTIN_DTMF)) == 0)
		name = type + strlen(BUILTIN_DTMF);
	else if (strncmp(type, BUILTIN_PREFIX, strlen(BUILTIN_PREFIX)) == 0) {
		snprintf(err, errlen, "%s is not a DTMF grammar: only "
		    "builtin:dtmf/<type> is available", type);
		return NULL;
	}
	if ((copy = strdup(name)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if ((params = strchr(copy, '?')) != NULL)
		*params++ = '\0';
	for (i = 0; i < sizeof(builtin_types) / sizeof(builtin_types[0]); i++)
		if (strcmp(copy, builtin_types[i].name) == 0)
			break;
	if (i == sizeof(builtin_types) / sizeof(builtin_types[0])) {
		snprintf(err, errlen, "unknown builtin type \"%s\" (DTMF has "
		    "boolean, date, digits, currency, number, phone, time)",
		    copy);
		goto fail;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	b->type = builtin_types[i].type;
	strcpy(b->yes, "1");
	strcpy(b->no, "2");
	b->minlen = 1;
	if (parse_params(b, copy, params, err, errlen) == -1)
		goto fail;
	free(copy);
	return b;
fail:
	free(b);
	free(copy);
	return NULL;
}

void
vxml_builtin_free(struct vxml_builtin *b)
{
	free(b);
}

/* D+ ('*' D{1,frac})?: number (frac unbounded: -1), currency (2), phone.
 * *star is set to the position of the '*' or -1. */
static struct scan
scan_decimal(const char *s, size_t n, int frac, int *star, int *viable)
{
	struct scan r = { 0, 0 };
	const char *p;
	size_t ip, fp;

	*star = -1;
	*viable = 0;
	p = memchr(s, '*', n);
	ip = p == NULL ? n : (size_t)(p - s);
	if (!all_digits(s, ip))
		return r;
	if (p == NULL) {
		*viable = 1;
		r.match = ip > 0;
		r.longer = 1;
		return r;
	}
	*star = (int)ip;
	fp = n - ip - 1;
	if (ip == 0 || !all_digits(p + 1, fp) ||
	    (frac != -1 && fp > (size_t)frac))
		return r;
	*viable = 1;
	r.match = fp > 0;
	r.longer = frac == -1 || fp < (size_t)frac;
	return r;
}

static int
days_in_month(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return days[m - 1];
}

static int
valid_date(const char *s)
{
	int y, m, d;

	y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 +
	    (s[3] - '0');
	m = (s[4] - '0') * 10 + (s[5] - '0');
	d = (s[6] - '0') * 10 + (s[7] - '0');
	return m >= 1 && m <= 12 && d >= 1 && d <= days_in_month(y, m);
}

static int
valid_time(const char *s)
{
	int h, m;

	h = (s[0] - '0') * 10 + (s[1] - '0');
	m = (s[2] - '0') * 10 + (s[3] - '0');
	return h <= 23 && m <= 59;
}

/* A fixed-length digit string (date: 8, time: 4): a prefix is viable when
 * some completion is valid; at most 10^3 completions are tried because
 * the first digits (the year) never decide. */
static int
fixed_viable(const char *s, size_t n, size_t len, int (*valid)(const char *))
{
	char buf[16];
	size_t free_digits, k;
	int i, limit = 1, x;

	if (n > len || !all_digits(s, n))
		return 0;
	free_digits = len - n;
	if (free_digits > 3)
		return 1;	/* any year, or any hour's first digit 0-2 */
	for (k = 0; k < free_digits; k++)
		limit *= 10;
	memcpy(buf, s, n);
	for (i = 0; i < limit; i++) {
		x = i;
		for (k = len; k > n; k--) {
			buf[k - 1] = (char)('0' + x % 10);
			x /= 10;
		}
		if (valid(buf))
			return 1;
	}
	return 0;
}

static char *
decimal_value(const char *s, size_t n, int star, char point, int pad)
{
	char *buf, *o;
	size_t ip, i, fp;

	if ((buf = malloc(n + 8)) == NULL)
		return NULL;
	o = buf;
	ip = star == -1 ? n : (size_t)star;
	/* no leading zeros: ECMAScript would read 010 as octal */
	for (i = 0; i + 1 < ip && s[i] == '0'; i++)
		;
	memcpy(o, s + i, ip - i);
	o += ip - i;
	fp = star == -1 ? 0 : n - ip - 1;
	if (fp > 0 || pad > 0)
		*o++ = point;
	if (fp > 0) {
		memcpy(o, s + ip + 1, fp);
		o += fp;
	}
	for (; (int)fp < pad; fp++)
		*o++ = '0';
	*o = '\0';
	return buf;
}

static char *
string_value(char *s)
{
	char *v;

	if (s == NULL)
		return NULL;
	v = vxml_js_string(s);
	free(s);
	return v;
}

enum vxml_match
vxml_builtin_match(const struct vxml_builtin *b, const char *digits,
    struct vxml_interp *out)
{
	struct scan r = { 0, 0 };
	size_t n = strlen(digits);
	int star = -1, viable = 0, yes = 0;
	char buf[16];

	if (n == 0)
		return VXML_MATCH_PREFIX;
	switch (b->type) {
	case BT_BOOLEAN:
		yes = strcmp(digits, b->yes) == 0;
		r.match = yes || strcmp(digits, b->no) == 0;
		r.longer = (strlen(b->yes) > n &&
		    strncmp(b->yes, digits, n) == 0) ||
		    (strlen(b->no) > n && strncmp(b->no, digits, n) == 0);
		viable = r.match || r.longer;
		break;
	case BT_DIGITS:
		viable = all_digits(digits, n) &&
		    (b->maxlen == 0 || n <= (size_t)b->maxlen);
		r.match = viable && n >= (size_t)b->minlen;
		r.longer = viable && (b->maxlen == 0 || n < (size_t)b->maxlen);
		break;
	case BT_NUMBER:
		r = scan_decimal(digits, n, -1, &star, &viable);
		break;
	case BT_CURRENCY:
		r = scan_decimal(digits, n, 2, &star, &viable);
		break;
	case BT_PHONE:
		r = scan_decimal(digits, n, -1, &star, &viable);
		break;
	case BT_DATE:
		viable = fixed_viable(digits, n, 8, valid_date);
		r.match = viable && n == 8;
		r.longer = viable && n < 8;
		break;
	case BT_TIME:
		viable = fixed_viable(digits, n, 4, valid_time);
		r.match = viable && n == 4;
		r.longer = viable && n < 4;
		break;
	}
	if (!viable)
		return VXML_MATCH_NO;
	if (!r.match)
		return VXML_MATCH_PREFIX;

	switch (b->type) {
	case BT_BOOLEAN:
		out->value = strdup(yes ? "true" : "false");
		break;
	case BT_DIGITS:
	case BT_DATE:
		out->value = vxml_js_string(digits);
		break;
	case BT_NUMBER:
		out->value = decimal_value(digits, n, star, '.', 0);
		break;
	case BT_CURRENCY:
		/* "mm.nn": no currency code can be keyed */
		out->value = string_value(decimal_value(digits, n, star, '.',
		    2));
		break;
	case BT_PHONE:
		out->value = string_value(decimal_value(digits, n, star, 'x',
		    0));
		break;
	case BT_TIME:
		/* DTMF has no am/pm: "h" when only a 24-hour clock reads the
		 * hour so, "?" when it may be either (appendix P) */
		memcpy(buf, digits, 4);
		buf[4] = (digits[0] == '0' && digits[1] == '0') ||
		    (digits[0] - '0') * 10 + (digits[1] - '0') > 12 ? 'h' :
		    '?';
		buf[5] = '\0';
		out->value = vxml_js_string(buf);
		break;
	}
	if (out->value == NULL)
		return VXML_MATCH_NO;
	return r.longer ? VXML_MATCH_MORE : VXML_MATCH_FULL;
}
