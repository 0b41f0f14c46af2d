/* The pure part of accounting: which events can be stored, their rank, and
 * their timeline JSON.  No I/O here, so unit tests cover it all. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "accounting.h"
#include "util.h"

/*
 * Replaces the bytes of s that are not part of valid UTF-8 with '?' and
 * returns how many: PostgreSQL (UTF8 database) and jansson refuse invalid
 * UTF-8, and one SIP peer's odd reason phrase must not cost a whole event.
 */
static int
utf8_fix(char *s)
{
	unsigned char *p = (unsigned char *)s;
	unsigned int cp;
	int n, i, fixed = 0;

	while (*p) {
		if (*p < 0x80) {
			p++;
			continue;
		}
		if ((*p & 0xe0) == 0xc0) {
			n = 1;
			cp = *p & 0x1f;
		} else if ((*p & 0xf0) == 0xe0) {
			n = 2;
			cp = *p & 0x0f;
		} else if ((*p & 0xf8) == 0xf0) {
			n = 3;
			cp = *p & 0x07;
		} else
			goto bad;
		for (i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				goto bad;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		/* overlong forms, surrogates, beyond Unicode */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
		    (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			goto bad;
		p += n + 1;
		continue;
bad:
		*p++ = '?';
		fixed++;
	}
	return fixed;
}

/* A result nested deeper than this is not an application's: kept as a
 * string (PostgreSQL's JSON parser recurses too). */
#define RESULT_DEPTH_MAX	64

static int
depth_ok(json_t *v, int depth)
{
	const char *k;
	json_t *x;
	size_t i;

	if (depth > RESULT_DEPTH_MAX)
		return 0;
	if (json_is_object(v)) {
		json_object_foreach(v, k, x)
			if (!depth_ok(x, depth + 1))
				return 0;
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			if (!depth_ok(x, depth + 1))
				return 0;
	}
	return 1;
}

/*
 * The result as it is stored and passed on: JSON object text as it came
 * (jansson read it whole: PostgreSQL's jsonb takes it too), or else the
 * text as a JSON string, so that one application's bad result never makes
 * PostgreSQL refuse a batch.  An empty one is absent.  Returns 1 when it
 * was turned into a string, -1 when dropped (out of memory), else 0.
 */
static int
result_fix(struct rq_msg *m)
{
	json_t *v;
	char *text;
	int ok;

	if (!rq_msg_has(m, result) || m->result == NULL)
		return 0;
	if (m->result[0] == '\0') {
		free(m->result);
		m->result = NULL;
		m->present &= ~RQ_F_result;
		return 0;
	}
	v = json_loads(m->result, 0, NULL);
	ok = v != NULL && json_is_object(v) && depth_ok(v, 0);
	json_decref(v);
	if (ok)
		return 0;
	/* The bytes are valid UTF-8 (utf8_fix): json_string takes them. */
	text = NULL;
	if ((v = json_string(m->result)) != NULL)
		text = json_dumps(v, JSON_ENCODE_ANY);
	json_decref(v);
	free(m->result);
	m->result = text;
	if (text == NULL) {
		m->present &= ~RQ_F_result;
		return -1;
	}
	return 1;
}

json_t *
acct_result_json(const struct rq_msg *m)
{
	json_t *v;

	if (!rq_msg_has(m, result) || m->result == NULL)
		return NULL;
	if ((v = json_loads(m->result, JSON_DECODE_ANY, NULL)) == NULL)
		v = json_string(m->result);	/* not through the check */
	return v;
}

int
acct_event_check(struct rq_msg *m, enum rq_status *st, char *err,
    size_t errlen)
{
	char *strs[] = { m->tenant, m->to, m->reason, m->node, m->detail,
	    m->result };
	size_t i;
	int fixed = 0;

	err[0] = '\0';
	if (m->type != RQ_MSG_EVENT) {
		snprintf(err, errlen, "not an EVENT but %s",
		    rq_msg_type_name(m->type));
		return -1;
	}
	if (m->call_id == NULL || m->status == NULL) {
		snprintf(err, errlen, "call_id or status missing");
		return -1;
	}
	if (!rq_call_id_valid(m->call_id)) {
		snprintf(err, errlen, "malformed call id");
		return -1;
	}
	if (rq_status_parse(m->status, st) == -1) {
		snprintf(err, errlen, "unknown status");
		return -1;
	}
	if (m->attempt > ACCT_ATTEMPT_MAX) {
		snprintf(err, errlen, "attempt %llu out of range",
		    (unsigned long long)m->attempt);
		return -1;
	}
	/* Only what happens before or instead of a dialled attempt has
	 * attempt 0 (failed: the scheduler's, for calling hours that
	 * cannot be planned again before any attempt). */
	if (m->attempt == 0 && *st != RQ_ST_QUEUED && *st != RQ_ST_SCHEDULED &&
	    *st != RQ_ST_CANCELED && *st != RQ_ST_EXPIRED &&
	    *st != RQ_ST_FAILED) {
		snprintf(err, errlen, "status %s needs an attempt number",
		    m->status);
		return -1;
	}
	if (m->ts_ms > ACCT_TS_MAX) {
		snprintf(err, errlen, "ts_ms out of range");
		return -1;
	}

	/* Below, a bad optional field is dropped or mended and the event is
	 * still stored: err says what was done. */
	if (rq_msg_has(m, started_ms) && m->started_ms > ACCT_TS_MAX) {
		m->present &= ~RQ_F_started_ms;
		snprintf(err, errlen, "started_ms out of range, ignored");
	}
	if (rq_msg_has(m, answered_ms) && m->answered_ms > ACCT_TS_MAX) {
		m->present &= ~RQ_F_answered_ms;
		snprintf(err, errlen, "answered_ms out of range, ignored");
	}
	/* Sofia-SIP reports its own failures as 9xx: not a SIP answer. */
	if (rq_msg_has(m, sip_code) &&
	    (m->sip_code < 100 || m->sip_code > 699)) {
		snprintf(err, errlen, "sip_code %llu out of range, ignored",
		    (unsigned long long)m->sip_code);
		m->present &= ~RQ_F_sip_code;
	}
	/* Only an incoming call's events say so (the column's CHECK). */
	if (m->direction != NULL && strcmp(m->direction, "inbound") != 0) {
		if (strcmp(m->direction, "outbound") != 0)
			snprintf(err, errlen, "direction is neither inbound "
			    "nor outbound, ignored");
		if (m->owns_strings)
			free(m->direction);
		m->direction = NULL;
		m->present &= ~RQ_F_direction;
	}
	if (rq_msg_has(m, duration_ms) && m->duration_ms > (uint64_t)INT64_MAX) {
		m->present &= ~RQ_F_duration_ms;
		snprintf(err, errlen, "duration_ms out of range, ignored");
	}
	for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		if (strs[i] != NULL)
			fixed += utf8_fix(strs[i]);
	if (fixed)
		snprintf(err, errlen, "%d bytes of invalid UTF-8 replaced", fixed);
	switch (result_fix(m)) {
	case 1:
		snprintf(err, errlen, "result is not a JSON object: kept as a "
		    "string");
		break;
	case -1:
		snprintf(err, errlen, "result dropped: out of memory");
		break;
	}
	return 0;
}

int
acct_rank(uint64_t attempt, enum rq_status st)
{
	return (int)attempt * 16 + (int)st;
}

char *
acct_event_json(const struct rq_msg *m)
{
	json_t *o;
	char at[32], *s;

	if ((o = json_object()) == NULL)
		return NULL;
	rq_rfc3339_format(m->ts_ms, at, sizeof(at));
	/* json_*_new steals the reference even on failure. */
	if (json_object_set_new(o, "status", json_string(m->status)) == -1 ||
	    json_object_set_new(o, "attempt",
	    json_integer((json_int_t)m->attempt)) == -1 ||
	    json_object_set_new(o, "at", json_string(at)) == -1 ||
	    json_object_set_new(o, "ts_ms",
	    json_integer((json_int_t)m->ts_ms)) == -1)
		goto fail;
	if (m->reason != NULL &&
	    json_object_set_new(o, "reason", json_string(m->reason)) == -1)
		goto fail;
	if (rq_msg_has(m, sip_code) && json_object_set_new(o, "sip_code",
	    json_integer((json_int_t)m->sip_code)) == -1)
		goto fail;
	if (rq_msg_has(m, duration_ms) && json_object_set_new(o,
	    "duration_ms", json_integer((json_int_t)m->duration_ms)) == -1)
		goto fail;
	if (m->node != NULL &&
	    json_object_set_new(o, "node", json_string(m->node)) == -1)
		goto fail;
	if (m->detail != NULL &&
	    json_object_set_new(o, "detail", json_string(m->detail)) == -1)
		goto fail;
	if (rq_msg_has(m, result) && m->result != NULL &&
	    json_object_set_new(o, "result", acct_result_json(m)) == -1)
		goto fail;
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
fail:
	json_decref(o);
	return NULL;
}

/* The message fields by name, for rq:events entries (common/keys.h). */
enum sf_kind { SF_STR, SF_UINT };
#define SF_KIND_STR	SF_STR
#define SF_KIND_UINT	SF_UINT
static const struct {
	const char	*name;
	enum sf_kind	 kind;
	size_t		 offset;
	uint64_t	 bit;
} stream_fields[] = {
#define RQ_FIELD(id, fname, type) \
	{ #fname, SF_KIND_##type, offsetof(struct rq_msg, fname), 1ULL << id },
#include "msg.def"
#undef RQ_FIELD
};

/* A decimal number without sign, spaces or overflow. */
static int
parse_u64(const char *s, size_t len, uint64_t *v)
{
	size_t i;

	if (len == 0 || len > 20)
		return -1;
	for (*v = 0, i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9' ||
		    *v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return -1;
		*v = *v * 10 + (uint64_t)(s[i] - '0');
	}
	return 0;
}

int
acct_stream_event(struct rq_msg *m, const char *const *fv,
    const size_t *lens, size_t n, char *err, size_t errlen)
{
	const uint64_t need = RQ_F_call_id | RQ_F_attempt | RQ_F_status |
	    RQ_F_ts_ms;
	size_t i, f;
	char **sp, *s;

	rq_msg_init(m, RQ_MSG_EVENT);
	m->owns_strings = 1;
	err[0] = '\0';
	if (n % 2 != 0) {
		snprintf(err, errlen, "odd number of fields");
		goto fail;
	}
	for (i = 0; i < n; i += 2) {
		for (f = 0; f < sizeof(stream_fields) / sizeof(*stream_fields);
		    f++)
			if (strlen(stream_fields[f].name) == lens[i] &&
			    memcmp(stream_fields[f].name, fv[i], lens[i]) == 0)
				break;
		if (f == sizeof(stream_fields) / sizeof(*stream_fields))
			continue;	/* a newer writer's field */
		if (stream_fields[f].kind == SF_UINT) {
			if (parse_u64(fv[i + 1], lens[i + 1],
			    (uint64_t *)((char *)m +
			    stream_fields[f].offset)) == -1) {
				snprintf(err, errlen, "%s is not a number%s",
				    stream_fields[f].name,
				    (stream_fields[f].bit & need) ? "" :
				    ", ignored");
				if (stream_fields[f].bit & need)
					goto fail;
				/* optional: dropped, the event kept (err) */
				m->present &= ~stream_fields[f].bit;
				continue;
			}
		} else {
			if (lens[i + 1] > RQ_MSG_STR_MAX ||
			    memchr(fv[i + 1], '\0', lens[i + 1]) != NULL) {
				/* A result is the application's text: the
				 * call's end is worth more.  Dropped. */
				if (stream_fields[f].bit == RQ_F_result) {
					snprintf(err, errlen, "result too long "
					    "or with a NUL, ignored");
					continue;
				}
				snprintf(err, errlen, "bad %s",
				    stream_fields[f].name);
				goto fail;
			}
			if ((s = strndup(fv[i + 1], lens[i + 1])) == NULL) {
				/* Not the entry's fault: read it again. */
				snprintf(err, errlen, "out of memory");
				rq_msg_clear(m);
				return -2;
			}
			sp = (char **)((char *)m + stream_fields[f].offset);
			free(*sp);
			*sp = s;
		}
		m->present |= stream_fields[f].bit;
	}
	if ((m->present & need) != need) {
		snprintf(err, errlen, "call_id, attempt, status or ts_ms "
		    "missing");
		goto fail;
	}
	return 0;
fail:
	rq_msg_clear(m);
	return -1;
}
