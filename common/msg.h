/* Inter-daemon messages: the struct, enum and msgpack codec generated from
 * msg.def.  On the wire a message is the msgpack array
 * [RQ_PROTO_VERSION, type, {field id: value, ...}]. */
#ifndef RQ_MSG_H
#define RQ_MSG_H

#include <stddef.h>
#include <stdint.h>

#define RQ_PROTO_VERSION	1
#define RQ_MSG_STR_MAX		65536

enum rq_field_id {
#define RQ_FIELD(id, name, type) RQ_FID_##name = id,
#include "msg.def"
#undef RQ_FIELD
};

#define RQ_FIELD(id, name, type) static const uint64_t RQ_F_##name = 1ULL << id;
#include "msg.def"
#undef RQ_FIELD

enum rq_msg_type {
	RQ_MSG_NONE = 0,
#define RQ_MSG(id, name, req) RQ_MSG_##name = id,
#include "msg.def"
#undef RQ_MSG
	RQ_MSG__MAX
};

#define RQ_FTYPE_STR	char *
#define RQ_FTYPE_UINT	uint64_t

struct rq_msg {
	enum rq_msg_type type;
	uint64_t	 present;	/* RQ_F_* bits of the fields set */
	int		 owns_strings;	/* set by rq_msg_unpack */
#define RQ_FIELD(id, name, type) RQ_FTYPE_##type name;
#include "msg.def"
#undef RQ_FIELD
};

/* Sets a field and marks it present.  A string is borrowed, not copied. */
#define rq_msg_set(m, field, value) \
	((m)->field = (value), (m)->present |= RQ_F_##field)
#define rq_msg_has(m, field)	(((m)->present & RQ_F_##field) != 0)

void		 rq_msg_init(struct rq_msg *m, enum rq_msg_type type);
/* Frees the strings an unpacked message owns; leaves m empty. */
void		 rq_msg_clear(struct rq_msg *m);
const char	*rq_msg_type_name(enum rq_msg_type type);

/* Packs m into a new buffer (*buf, *len), which the caller frees with
 * free().  Returns 0, or -1 when a required field is missing. */
int		 rq_msg_pack(const struct rq_msg *m, char **buf, size_t *len);

/* Decodes exactly one message filling all of buf.  Returns 0 (m owns its
 * strings: rq_msg_clear), or -1 with the reason in err and m left empty. */
int		 rq_msg_unpack(const void *buf, size_t len, struct rq_msg *m,
		    char *err, size_t errlen);

/* Deep copy: dst owns its strings. */
int		 rq_msg_copy(struct rq_msg *dst, const struct rq_msg *src);

#endif
