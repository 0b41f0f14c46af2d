/* The message codec: round trips, and hostile input rejected cleanly. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <msgpack.h>

#include "msg.h"

static void
make_event(struct rq_msg *m)
{
	rq_msg_init(m, RQ_MSG_EVENT);
	rq_msg_set(m, call_id, "c_0123456789abcdef01234567");
	rq_msg_set(m, attempt, 2);
	rq_msg_set(m, status, "completed");
	rq_msg_set(m, ts_ms, 1790000000123ULL);
	rq_msg_set(m, duration_ms, 4500);
	rq_msg_set(m, reason, "ok");
}

static void
test_round_trip(void **state)
{
	struct rq_msg in, out;
	char *buf, err[128];
	size_t len;

	make_event(&in);
	assert_int_equal(rq_msg_pack(&in, &buf, &len), 0);
	assert_int_equal(rq_msg_unpack(buf, len, &out, err, sizeof(err)), 0);
	assert_int_equal(out.type, RQ_MSG_EVENT);
	assert_string_equal(out.call_id, in.call_id);
	assert_int_equal(out.attempt, 2);
	assert_string_equal(out.status, "completed");
	assert_true(out.ts_ms == 1790000000123ULL);
	assert_int_equal(out.duration_ms, 4500);
	assert_true(rq_msg_has(&out, reason));
	assert_false(rq_msg_has(&out, sip_code));
	assert_null(out.node);
	rq_msg_clear(&out);
	free(buf);
}

/* HEARTBEAT's ended is optional: sent when set, absent otherwise (an older
 * telserver), and a reader tells the two apart. */
static void
test_heartbeat_ended(void **state)
{
	struct rq_msg in, out;
	char *buf, err[128];
	size_t len;

	rq_msg_init(&in, RQ_MSG_HEARTBEAT);
	rq_msg_set(&in, node, "tel1");
	rq_msg_set(&in, active, 3);
	rq_msg_set(&in, capacity, 10);
	assert_int_equal(rq_msg_pack(&in, &buf, &len), 0);
	assert_int_equal(rq_msg_unpack(buf, len, &out, err, sizeof(err)), 0);
	assert_false(rq_msg_has(&out, ended));
	rq_msg_clear(&out);
	free(buf);
	rq_msg_set(&in, ended, 12345678901ULL);
	assert_int_equal(rq_msg_pack(&in, &buf, &len), 0);
	assert_int_equal(rq_msg_unpack(buf, len, &out, err, sizeof(err)), 0);
	assert_true(rq_msg_has(&out, ended));
	assert_true(out.ended == 12345678901ULL);
	assert_int_equal(out.active, 3);
	rq_msg_clear(&out);
	free(buf);
}

static void
test_missing_required_not_packed(void **state)
{
	struct rq_msg in;
	char *buf;
	size_t len;

	rq_msg_init(&in, RQ_MSG_JOB);
	rq_msg_set(&in, call_id, "c_0123456789abcdef01234567");
	rq_msg_set(&in, attempt, 1);
	rq_msg_set(&in, tenant, "demo");
	assert_int_equal(rq_msg_pack(&in, &buf, &len), -1);	/* no "to" */
	rq_msg_set(&in, to, (char *)NULL);
	assert_int_equal(rq_msg_pack(&in, &buf, &len), -1);	/* NULL is absent */
}

static void
test_every_truncation_rejected(void **state)
{
	struct rq_msg in, out;
	char *buf, err[128];
	size_t len, cut;

	make_event(&in);
	assert_int_equal(rq_msg_pack(&in, &buf, &len), 0);
	for (cut = 0; cut < len; cut++) {
		assert_int_equal(rq_msg_unpack(buf, cut, &out, err,
		    sizeof(err)), -1);
		assert_int_equal(out.type, RQ_MSG_NONE);
	}
	free(buf);
}

static void
test_trailing_bytes_rejected(void **state)
{
	struct rq_msg in, out;
	char *buf, err[128];
	size_t len;

	make_event(&in);
	assert_int_equal(rq_msg_pack(&in, &buf, &len), 0);
	buf = realloc(buf, len + 1);
	buf[len] = (char)0xc0;
	assert_int_equal(rq_msg_unpack(buf, len + 1, &out, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "trailing"));
	free(buf);
}

static void
test_garbage_never_crashes(void **state)
{
	unsigned char buf[64];
	struct rq_msg out;
	char err[128];
	int i, accepted = 0;
	size_t j;

	srand(42);
	for (i = 0; i < 200000; i++) {
		size_t len = rand() % sizeof(buf);

		for (j = 0; j < len; j++)
			buf[j] = rand();
		if (i % 2)	/* give half of them a plausible start */
			memcpy(buf, "\x93\x01\x05\x84", len < 4 ? len : 4);
		if (rq_msg_unpack(buf, len, &out, err, sizeof(err)) == 0) {
			accepted++;
			rq_msg_clear(&out);
		}
	}
	/* Random bytes almost never form a complete valid EVENT. */
	assert_true(accepted < 10);
}

/* Packs [version, type, map] by hand, for input the packer refuses. */
static size_t
pack_raw(msgpack_sbuffer *sb, unsigned version, unsigned type, int bad)
{
	msgpack_packer pk;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_uint32(&pk, version);
	msgpack_pack_uint32(&pk, type);
	msgpack_pack_map(&pk, 5);
	msgpack_pack_uint32(&pk, RQ_FID_call_id);
	msgpack_pack_str_with_body(&pk, "c_0123456789abcdef01234567", 26);
	msgpack_pack_uint32(&pk, RQ_FID_attempt);
	if (bad == 1)
		msgpack_pack_str_with_body(&pk, "1", 1);	/* wrong type */
	else
		msgpack_pack_uint32(&pk, 1);
	msgpack_pack_uint32(&pk, RQ_FID_status);
	if (bad == 2)
		msgpack_pack_str_with_body(&pk, "ri\0ng", 5);	/* NUL */
	else
		msgpack_pack_str_with_body(&pk, "ringing", 7);
	msgpack_pack_uint32(&pk, RQ_FID_ts_ms);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_uint32(&pk, 60);			/* unknown field */
	msgpack_pack_str_with_body(&pk, "future", 6);
	return sb->size;
}

static void
test_schema_checks(void **state)
{
	msgpack_sbuffer sb;
	struct rq_msg out;
	char err[128];

	pack_raw(&sb, RQ_PROTO_VERSION, RQ_MSG_EVENT, 0);
	assert_int_equal(rq_msg_unpack(sb.data, sb.size, &out, err,
	    sizeof(err)), 0);	/* unknown field 60 ignored */
	assert_string_equal(out.status, "ringing");
	rq_msg_clear(&out);
	msgpack_sbuffer_destroy(&sb);

	pack_raw(&sb, RQ_PROTO_VERSION + 1, RQ_MSG_EVENT, 0);
	assert_int_equal(rq_msg_unpack(sb.data, sb.size, &out, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "version"));
	msgpack_sbuffer_destroy(&sb);

	pack_raw(&sb, RQ_PROTO_VERSION, 99, 0);
	assert_int_equal(rq_msg_unpack(sb.data, sb.size, &out, err,
	    sizeof(err)), -1);
	msgpack_sbuffer_destroy(&sb);

	pack_raw(&sb, RQ_PROTO_VERSION, RQ_MSG_EVENT, 1);
	assert_int_equal(rq_msg_unpack(sb.data, sb.size, &out, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "attempt"));
	msgpack_sbuffer_destroy(&sb);

	pack_raw(&sb, RQ_PROTO_VERSION, RQ_MSG_EVENT, 2);
	assert_int_equal(rq_msg_unpack(sb.data, sb.size, &out, err,
	    sizeof(err)), -1);
	msgpack_sbuffer_destroy(&sb);

	/* A JOB needs tenant and to: the same fields do not make one. */
	pack_raw(&sb, RQ_PROTO_VERSION, RQ_MSG_JOB, 0);
	assert_int_equal(rq_msg_unpack(sb.data, sb.size, &out, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "required"));
	msgpack_sbuffer_destroy(&sb);
}

static void
test_huge_container_claims_rejected(void **state)
{
	/* [1, 5, array32 claiming 2^32-1 elements] and a map32 likewise. */
	static const unsigned char arr[] = { 0x93, 0x01, 0x05, 0xdd, 0xff,
	    0xff, 0xff, 0xff, 0x01 };
	static const unsigned char map[] = { 0xdf, 0x7f, 0xff, 0xff, 0xff };
	static const unsigned char str[] = { 0x93, 0x01, 0x05, 0xdb, 0xff,
	    0xff, 0xff, 0xff };
	struct rq_msg out;
	char err[128];

	assert_int_equal(rq_msg_unpack(arr, sizeof(arr), &out, err,
	    sizeof(err)), -1);
	assert_int_equal(rq_msg_unpack(map, sizeof(map), &out, err,
	    sizeof(err)), -1);
	assert_int_equal(rq_msg_unpack(str, sizeof(str), &out, err,
	    sizeof(err)), -1);
}

static void
test_empty_string_field(void **state)
{
	/* Found by fuzz_msg: msgpack-c gives "" a NULL pointer. */
	static const unsigned char ack[] = { 0x93, 0x01, 0x03, 0x83, 0x01,
	    0xa0, 0x02, 0x01, 0x0b, 0xa4, 't', 'e', 'l', '1' };
	struct rq_msg out;
	char err[128];

	assert_int_equal(rq_msg_unpack(ack, sizeof(ack), &out, err,
	    sizeof(err)), 0);
	assert_string_equal(out.call_id, "");
	assert_string_equal(out.node, "tel1");
	rq_msg_clear(&out);
}

static void
test_copy_owns(void **state)
{
	struct rq_msg in, cp;
	char id[] = "c_0123456789abcdef01234567";

	rq_msg_init(&in, RQ_MSG_EVENT);
	rq_msg_set(&in, call_id, id);
	rq_msg_set(&in, attempt, 1);
	rq_msg_set(&in, status, "queued");
	assert_int_equal(rq_msg_copy(&cp, &in), 0);
	id[2] = 'X';
	assert_string_equal(cp.call_id, "c_0123456789abcdef01234567");
	assert_string_equal(rq_msg_type_name(cp.type), "EVENT");
	rq_msg_clear(&cp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_heartbeat_ended),
		cmocka_unit_test(test_missing_required_not_packed),
		cmocka_unit_test(test_every_truncation_rejected),
		cmocka_unit_test(test_trailing_bytes_rejected),
		cmocka_unit_test(test_garbage_never_crashes),
		cmocka_unit_test(test_schema_checks),
		cmocka_unit_test(test_huge_container_claims_rejected),
		cmocka_unit_test(test_empty_string_field),
		cmocka_unit_test(test_copy_owns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
