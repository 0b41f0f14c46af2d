/* msgpack codec for the messages of msg.def. */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"

static const uint64_t msg_required[RQ_MSG__MAX] = {
#define RQ_MSG(id, name, req) [id] = (req),
#include "msg.def"
#undef RQ_MSG
};

static const char *const msg_names[RQ_MSG__MAX] = {
#define RQ_MSG(id, name, req) [id] = #name,
#include "msg.def"
#undef RQ_MSG
};

enum field_kind { KIND_NONE, KIND_STR, KIND_UINT };
#define RQ_KIND_STR	KIND_STR
#define RQ_KIND_UINT	KIND_UINT

struct field_desc {
	const char	*name;
	enum field_kind	 kind;
	size_t		 offset;
};

#define MAX_FIELD_ID	63
static const struct field_desc fields[MAX_FIELD_ID + 1] = {
#define RQ_FIELD(id, fname, type) \
	[id] = { #fname, RQ_KIND_##type, offsetof(struct rq_msg, fname) },
#include "msg.def"
#undef RQ_FIELD
};

#define FIELD_STR(m, f)  (*(char **)((char *)(m) + fields[f].offset))
#define FIELD_UINT(m, f) (*(uint64_t *)((char *)(m) + fields[f].offset))

void
rq_msg_init(struct rq_msg *m, enum rq_msg_type type)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
}

void
rq_msg_clear(struct rq_msg *m)
{
	int f;

	if (m->owns_strings)
		for (f = 0; f <= MAX_FIELD_ID; f++)
			if (fields[f].kind == KIND_STR)
				free(FIELD_STR(m, f));
	memset(m, 0, sizeof(*m));
}

const char *
rq_msg_type_name(enum rq_msg_type type)
{
	if (type <= RQ_MSG_NONE || type >= RQ_MSG__MAX || !msg_names[type])
		return "unknown";
	return msg_names[type];
}

int
rq_msg_pack(const struct rq_msg *m, char **buf, size_t *len)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	uint64_t present = m->present;
	int f, n = 0;

	if (m->type <= RQ_MSG_NONE || m->type >= RQ_MSG__MAX)
		return -1;
	for (f = 0; f <= MAX_FIELD_ID; f++) {
		if (fields[f].kind == KIND_STR && (present & (1ULL << f)) &&
		    FIELD_STR(m, f) == NULL)
			present &= ~(1ULL << f);	/* a NULL string is absent */
		if (fields[f].kind != KIND_NONE && (present & (1ULL << f)))
			n++;
	}
	if ((present & msg_required[m->type]) != msg_required[m->type])
		return -1;

	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_uint32(&pk, RQ_PROTO_VERSION);
	msgpack_pack_uint32(&pk, m->type);
	msgpack_pack_map(&pk, n);
	for (f = 0; f <= MAX_FIELD_ID; f++) {
		if (fields[f].kind == KIND_NONE || !(present & (1ULL << f)))
			continue;
		msgpack_pack_uint32(&pk, f);
		if (fields[f].kind == KIND_STR) {
			const char *s = FIELD_STR(m, f);
			size_t sl = strlen(s);

			msgpack_pack_str(&pk, sl);
			msgpack_pack_str_body(&pk, s, sl);
		} else
			msgpack_pack_uint64(&pk, FIELD_UINT(m, f));
	}
	*buf = sbuf.data;	/* sbuffer data is malloc'd: caller frees */
	*len = sbuf.size;
	return 0;
}

static uint32_t
be(const unsigned char *p, int n)
{
	uint32_t v = 0;

	while (n-- > 0)
		v = v << 8 | *p++;
	return v;
}

/*
 * Walks one msgpack object without allocating.  msgpack-c allocates room for
 * a container's elements when it reads the header, so five bytes claiming
 * 2^32 elements would cost gigabytes: refuse any container that claims more
 * elements than bytes remain.  Returns the object's length or 0.
 */
static size_t
mp_check(const unsigned char *p, size_t len)
{
	size_t need = 1, i = 0;

	while (need > 0) {
		size_t n = 0, skip = 0, per = 0, hdr = 0;
		unsigned c;

		if (i >= len)
			return 0;
		c = p[i++];
		need--;
		if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 ||
		    c == 0xc3)
			;
		else if ((c & 0xf0) == 0x80)
			n = c & 0x0f, per = 2;
		else if ((c & 0xf0) == 0x90)
			n = c & 0x0f, per = 1;
		else if ((c & 0xe0) == 0xa0)
			skip = c & 0x1f;
		else switch (c) {
		case 0xc4: case 0xd9: hdr = 1; break;	/* bin8, str8 */
		case 0xc5: case 0xda: hdr = 2; break;
		case 0xc6: case 0xdb: hdr = 4; break;
		case 0xc7: hdr = 1; skip = 1; break;	/* ext: + type */
		case 0xc8: hdr = 2; skip = 1; break;
		case 0xc9: hdr = 4; skip = 1; break;
		case 0xcc: case 0xd0: skip = 1; break;
		case 0xcd: case 0xd1: skip = 2; break;
		case 0xca: case 0xce: case 0xd2: skip = 4; break;
		case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
		case 0xd4: skip = 2; break;		/* fixext */
		case 0xd5: skip = 3; break;
		case 0xd6: skip = 5; break;
		case 0xd7: skip = 9; break;
		case 0xd8: skip = 17; break;
		case 0xdc: hdr = 2; per = 1; break;
		case 0xdd: hdr = 4; per = 1; break;
		case 0xde: hdr = 2; per = 2; break;
		case 0xdf: hdr = 4; per = 2; break;
		default: return 0;			/* 0xc1: never used */
		}
		if (hdr) {
			if (hdr > len - i)
				return 0;
			if (per)
				n = be(p + i, hdr);
			else
				skip += be(p + i, hdr);
			i += hdr;
		}
		if (per) {
			if (n > (len - i) / per)
				return 0;
			need += n * per;
		}
		if (skip > len - i)
			return 0;
		i += skip;
	}
	return i;
}

int
rq_msg_unpack(const void *buf, size_t len, struct rq_msg *m, char *err,
    size_t errlen)
{
	msgpack_zone zone;
	msgpack_object obj, *a, *map;
	size_t off = 0;
	uint32_t i;
	int rc;

	rq_msg_init(m, RQ_MSG_NONE);
	m->owns_strings = 1;
	if ((off = mp_check(buf, len)) == 0) {
		snprintf(err, errlen, "not a complete msgpack object");
		return -1;
	}
	if (off != len) {
		snprintf(err, errlen, "%zu trailing bytes", len - off);
		return -1;
	}
	off = 0;
	/* A small zone: the default one is large enough to cost a page
	 * fault per message. */
	if (!msgpack_zone_init(&zone, 1024)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc = msgpack_unpack(buf, len, &off, &zone, &obj);
	if (rc != MSGPACK_UNPACK_SUCCESS && rc != MSGPACK_UNPACK_EXTRA_BYTES) {
		snprintf(err, errlen, "not a complete msgpack object");
		goto fail;
	}
	if (off != len) {
		snprintf(err, errlen, "%zu trailing bytes", len - off);
		goto fail;
	}
	if (obj.type != MSGPACK_OBJECT_ARRAY || obj.via.array.size != 3) {
		snprintf(err, errlen, "not a [version, type, fields] array");
		goto fail;
	}
	a = obj.via.array.ptr;
	if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    a[0].via.u64 != RQ_PROTO_VERSION) {
		snprintf(err, errlen, "unsupported protocol version");
		goto fail;
	}
	if (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].via.u64 == 0 ||
	    a[1].via.u64 >= RQ_MSG__MAX || msg_names[a[1].via.u64] == NULL) {
		snprintf(err, errlen, "unknown message type");
		goto fail;
	}
	m->type = (enum rq_msg_type)a[1].via.u64;
	if (a[2].type != MSGPACK_OBJECT_MAP) {
		snprintf(err, errlen, "%s: fields are not a map",
		    rq_msg_type_name(m->type));
		goto fail;
	}
	map = &a[2];
	for (i = 0; i < map->via.map.size; i++) {
		msgpack_object *k = &map->via.map.ptr[i].key;
		msgpack_object *v = &map->via.map.ptr[i].val;
		uint64_t f;

		if (k->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
			snprintf(err, errlen, "%s: field key is not a number",
			    rq_msg_type_name(m->type));
			goto fail;
		}
		f = k->via.u64;
		if (f > MAX_FIELD_ID || fields[f].kind == KIND_NONE)
			continue;	/* a newer sender's field: ignore */
		if (m->present & (1ULL << f)) {
			snprintf(err, errlen, "%s: field %s twice",
			    rq_msg_type_name(m->type), fields[f].name);
			goto fail;
		}
		if (fields[f].kind == KIND_STR) {
			char *s;

			/* msgpack-c gives an empty string a NULL pointer. */
			if (v->type != MSGPACK_OBJECT_STR ||
			    v->via.str.size > RQ_MSG_STR_MAX ||
			    (v->via.str.size > 0 &&
			    memchr(v->via.str.ptr, '\0', v->via.str.size))) {
				snprintf(err, errlen, "%s: field %s is not a "
				    "valid string", rq_msg_type_name(m->type),
				    fields[f].name);
				goto fail;
			}
			if ((s = v->via.str.size > 0 ? strndup(v->via.str.ptr,
			    v->via.str.size) : strdup("")) == NULL) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			FIELD_STR(m, f) = s;
		} else {
			if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
				snprintf(err, errlen, "%s: field %s is not an "
				    "unsigned integer",
				    rq_msg_type_name(m->type), fields[f].name);
				goto fail;
			}
			FIELD_UINT(m, f) = v->via.u64;
		}
		m->present |= 1ULL << f;
	}
	if ((m->present & msg_required[m->type]) != msg_required[m->type]) {
		uint64_t missing = msg_required[m->type] & ~m->present;
		int f;

		for (f = 0; f <= MAX_FIELD_ID; f++)
			if (missing & (1ULL << f))
				break;
		snprintf(err, errlen, "%s: required field %s missing",
		    rq_msg_type_name(m->type), fields[f].name);
		goto fail;
	}
	msgpack_zone_destroy(&zone);
	return 0;
fail:
	msgpack_zone_destroy(&zone);
	rq_msg_clear(m);
	return -1;
}

int
rq_msg_copy(struct rq_msg *dst, const struct rq_msg *src)
{
	int f;

	*dst = *src;
	dst->owns_strings = 1;
	for (f = 0; f <= MAX_FIELD_ID; f++)
		if (fields[f].kind == KIND_STR)
			FIELD_STR(dst, f) = NULL;
	for (f = 0; f <= MAX_FIELD_ID; f++) {
		char *s;

		if (fields[f].kind != KIND_STR)
			continue;
		if (!(src->present & (1ULL << f)) || FIELD_STR(src, f) == NULL) {
			dst->present &= ~(1ULL << f);
			continue;
		}
		if ((s = strdup(FIELD_STR(src, f))) == NULL) {
			rq_msg_clear(dst);
			return -1;
		}
		FIELD_STR(dst, f) = s;
	}
	return 0;
}
