/* The bus: several messages in one ZeroMQ message (test_batches), and
 * with CURVE: a ROUTER of rq_bus_socket() takes messages from a
 * client whose key is in curve_clients (and from this daemon's own key),
 * refuses a wrong key, a plain client and a wrong server key, and logs why
 * (without any secret key).  Over TCP: inproc has no handshake. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <zmq.h>

#include "bus.h"
#include "config.h"
#include "log.h"
#include "util.h"

static void *zctx, *router;
static char endpoint[128];
static char srv_pub[41], srv_sec[41], cli_pub[41], cli_sec[41];
static char bad_pub[41], bad_sec[41];
static char logpath[64];

/* A DEALER made by hand: NULL keys = plain. */
static void *
dealer(const char *server, const char *pub, const char *sec)
{
	void *s;
	int zero = 0;

	assert_non_null(s = zmq_socket(zctx, ZMQ_DEALER));
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
	if (server != NULL) {
		assert_int_equal(zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server,
		    40), 0);
		assert_int_equal(zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub,
		    40), 0);
		assert_int_equal(zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec,
		    40), 0);
	}
	assert_int_equal(zmq_connect(s, endpoint), 0);
	return s;
}

/* Sends a HEARTBEAT from s; returns 1 when the router got it in time. */
static int
delivered(void *s, const char *node, int wait_ms)
{
	struct rq_msg m, got;
	struct rq_bus_in in;
	uint64_t until = rq_mono_ms() + wait_ms;
	int ok = 0;

	rq_msg_init(&m, RQ_MSG_HEARTBEAT);
	rq_msg_set(&m, node, (char *)node);
	rq_msg_set(&m, active, 0);
	rq_msg_set(&m, capacity, 1);
	/* Queued until the handshake is done (or forever when refused). */
	assert_int_equal(rq_bus_send(s, NULL, 0, &m), 0);
	rq_bus_in_init(&in, router, 1);
	while (!ok && rq_mono_ms() < until) {
		zmq_pollitem_t pi = { router, 0, ZMQ_POLLIN, 0 };

		zmq_poll(&pi, 1, 50);
		while (rq_bus_recv(&in, &got) == 1) {
			if (!strcmp(got.node, node))
				ok = 1;
			rq_msg_clear(&got);
		}
	}
	return ok;
}

static char *
log_text(void)
{
	static char buf[16384];
	FILE *fp;
	size_t n;

	fflush(stderr);
	assert_non_null(fp = fopen(logpath, "r"));
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

static int
setup(void **state)
{
	struct rq_config cfg;
	char err[256];
	size_t len = sizeof(endpoint);
	int fd;

	/* CURVE is required (docs/security.md); Debian's libzmq5 has it. */
	if (!zmq_has("curve")) {
		fprintf(stderr, "test_bus: libzmq was built without CURVE\n");
		return -1;
	}
	/* The bus's log lines go to a file the tests read. */
	strcpy(logpath, "/tmp/rq-test-bus-XXXXXX");
	if ((fd = mkstemp(logpath)) == -1 || dup2(fd, 2) == -1)
		return -1;
	close(fd);
	log_init("test_bus", 0);

	assert_int_equal(rq_bus_keygen(srv_pub, srv_sec), 0);
	assert_int_equal(rq_bus_keygen(cli_pub, cli_sec), 0);
	assert_int_equal(rq_bus_keygen(bad_pub, bad_sec), 0);
	rq_config_defaults(&cfg);
	memcpy(cfg.curve_public_key, srv_pub, 41);
	memcpy(cfg.curve_secret_key, srv_sec, 41);
	memcpy(cfg.curve_server_key, srv_pub, 41);
	snprintf(cfg.curve_clients, sizeof(cfg.curve_clients), " %s ,", cli_pub);

	assert_non_null(zctx = zmq_ctx_new());
	assert_int_equal(rq_bus_secure(zctx, &cfg, err, sizeof(err)), 0);
	assert_int_equal(rq_bus_secure(zctx, &cfg, err, sizeof(err)), -1);
	assert_non_null(router = rq_bus_socket(zctx, ZMQ_ROUTER));
	assert_int_equal(zmq_bind(router, "tcp://127.0.0.1:*"), 0);
	assert_int_equal(zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, endpoint,
	    &len), 0);
	rq_config_free(&cfg);
	return 0;
}

static int
teardown(void **state)
{
	if (zctx == NULL)
		return 0;
	zmq_close(router);
	/* Returns once the ZAP thread has closed its sockets. */
	zmq_ctx_term(zctx);
	if (getenv("RQ_KEEP_LOG") == NULL)
		unlink(logpath);
	return 0;
}

static void
test_keygen(void **state)
{
	char pub[41], sec[41], again[41];

	assert_int_equal(rq_bus_keygen(pub, sec), 0);
	assert_int_equal(strlen(pub), 40);
	assert_int_equal(strlen(sec), 40);
	assert_int_equal(zmq_curve_public(again, sec), 0);
	assert_string_equal(again, pub);
}

static void
test_accepted_keys(void **state)
{
	void *s;

	/* A key in curve_clients. */
	s = dealer(srv_pub, cli_pub, cli_sec);
	assert_true(delivered(s, "listed", 3000));
	zmq_close(s);
	/* This daemon's own keypair, through rq_bus_socket(). */
	assert_non_null(s = rq_bus_socket(zctx, ZMQ_DEALER));
	assert_int_equal(zmq_connect(s, endpoint), 0);
	assert_true(delivered(s, "own", 3000));
	zmq_close(s);
}

static void
test_refused_and_logged(void **state)
{
	char *log;
	void *s;

	/* A key nobody listed.  (Refusals are logged at most once a
	 * second: wait between the cases.) */
	sleep(1);
	s = dealer(srv_pub, bad_pub, bad_sec);
	assert_false(delivered(s, "unknown", 1200));
	zmq_close(s);
	log = log_text();
	if (strstr(log, bad_pub) == NULL || strstr(log, "refused a peer "
	    "from 127.0.0.1") == NULL)
		fail_msg("no refusal of the unknown key in: %s", log);
	/* (The client side's own line, "refused by the server", comes from
	 * rq_bus_socket() clients: tests/integration/test_curve.sh.) */

	/* No CURVE at all. */
	sleep(1);
	s = dealer(NULL, NULL, NULL);
	assert_false(delivered(s, "plain", 1200));
	zmq_close(s);
	if (strstr(log_text(), "one side has no CURVE") == NULL)
		fail_msg("no refusal of the plain client in: %s", log_text());

	/* The right client key but the wrong server key. */
	sleep(1);
	s = dealer(bad_pub, cli_pub, cli_sec);
	assert_false(delivered(s, "wrongserver", 1200));
	zmq_close(s);
	if (strstr(log_text(), "CURVE handshake failed") == NULL)
		fail_msg("no refusal of the wrong server key in: %s",
		    log_text());

	/* Never a secret in the log. */
	log = log_text();
	assert_null(strstr(log, srv_sec));
	assert_null(strstr(log, cli_sec));
	assert_null(strstr(log, bad_sec));
}

/* A plain DEALER named name, connected to a ROUTER bound at ep. */
static void *
plain_dealer(void *ctx, const char *ep, const char *name)
{
	void *s;

	assert_non_null(s = rq_bus_socket(ctx, ZMQ_DEALER));
	assert_int_equal(zmq_setsockopt(s, ZMQ_ROUTING_ID, name,
	    strlen(name)), 0);
	assert_int_equal(zmq_connect(s, ep), 0);
	return s;
}

static void
heartbeat(struct rq_msg *m, const char *node, uint64_t active)
{
	rq_msg_init(m, RQ_MSG_HEARTBEAT);
	rq_msg_set(m, node, (char *)node);
	rq_msg_set(m, active, active);
	rq_msg_set(m, capacity, 10);
}

/* Receives on in until want messages came (or 2 s): their nodes, and
 * their senders and frame numbers, one "sender/node/frame" each, in
 * order, into got. */
static void
recv_nodes(struct rq_bus_in *in, int want, char *got, size_t len)
{
	uint64_t until = rq_mono_ms() + 2000;
	struct rq_msg m;
	int n = 0, rc;

	got[0] = '\0';
	while (n < want && rq_mono_ms() < until) {
		zmq_pollitem_t pi = { in->sock, 0, ZMQ_POLLIN, 0 };

		zmq_poll(&pi, 1, 50);
		while ((rc = rq_bus_recv(in, &m)) != 0) {
			if (rc != 1)
				continue;
			snprintf(got + strlen(got), len - strlen(got),
			    "%s%.*s/%s/%zu", n ? " " : "", (int)in->idlen,
			    in->router ? (char *)in->id : "", m.node ?
			    m.node : m.call_id, in->frames);
			n++;
			rq_msg_clear(&m);
		}
	}
}

/* Several messages in one ZeroMQ message: each comes out on its own, in
 * order, with its sender; a bad frame is dropped alone; frames past
 * RQ_BUS_BATCH_MAX are dropped; all or nothing is sent. */
static void
test_batches(void **state)
{
	struct rq_bus_batch b;
	struct rq_bus_in rin, din;
	struct rq_msg m;
	char got[4096], want[4096], frame[64];
	void *ctx, *r, *a, *c;
	int i;

	assert_non_null(ctx = zmq_ctx_new());
	assert_non_null(r = rq_bus_socket(ctx, ZMQ_ROUTER));
	assert_int_equal(zmq_bind(r, "inproc://batches"), 0);
	a = plain_dealer(ctx, "inproc://batches", "tel-a");
	c = plain_dealer(ctx, "inproc://batches", "tel-c");
	rq_bus_in_init(&rin, r, 1);
	rq_bus_in_init(&din, a, 0);

	/* Two batches from two peers, and a single message after them. */
	rq_bus_batch_init(&b);
	for (i = 1; i <= 3; i++) {
		heartbeat(&m, "a", (uint64_t)i);
		assert_int_equal(rq_bus_batch_add(&b, &m), 0);
	}
	assert_int_equal(rq_bus_send_batch(a, NULL, 0, &b), 0);
	assert_int_equal(b.n, 0);
	recv_nodes(&rin, 3, got, sizeof(got));
	assert_string_equal(got, "tel-a/a/1 tel-a/a/2 tel-a/a/3");
	heartbeat(&m, "c", 1);
	rq_bus_batch_add(&b, &m);
	rq_bus_batch_add(&b, &m);
	assert_int_equal(rq_bus_send_batch(c, NULL, 0, &b), 0);
	assert_int_equal(rq_bus_send(a, NULL, 0, &m), 0);
	recv_nodes(&rin, 3, got, sizeof(got));
	assert_string_equal(got, "tel-c/c/1 tel-c/c/2 tel-a/c/1");

	/* ROUTER to DEALER. */
	rq_msg_init(&m, RQ_MSG_JOB_ACK);
	rq_msg_set(&m, call_id, "c_000000000000000000000001");
	rq_msg_set(&m, attempt, 1);
	rq_msg_set(&m, node, "tel-a");
	rq_bus_batch_add(&b, &m);
	m.call_id = "c_000000000000000000000002";
	rq_bus_batch_add(&b, &m);
	assert_int_equal(rq_bus_send_batch(r, "tel-a", 5, &b), 0);
	recv_nodes(&din, 2, got, sizeof(got));
	assert_string_equal(got, "/tel-a/1 /tel-a/2");

	/* A message that cannot be packed is refused, and so is a 65th. */
	rq_msg_init(&m, RQ_MSG_HEARTBEAT);
	assert_int_equal(rq_bus_batch_add(&b, &m), -1);
	heartbeat(&m, "a", 1);
	for (i = 0; i < RQ_BUS_BATCH_MAX; i++)
		assert_int_equal(rq_bus_batch_add(&b, &m), 0);
	assert_int_equal(rq_bus_batch_add(&b, &m), -1);
	rq_bus_batch_free(&b);
	assert_int_equal(b.n, 0);

	/* A bad frame between two good ones: only it is dropped. */
	rq_bus_batch_add(&b, &m);
	assert_int_equal(zmq_send(a, b.buf[0], b.len[0], ZMQ_SNDMORE),
	    (int)b.len[0]);
	assert_int_equal(zmq_send(a, "\x81\x01", 2, ZMQ_SNDMORE), 2);
	assert_int_equal(zmq_send(a, b.buf[0], b.len[0], 0), (int)b.len[0]);
	rq_bus_batch_free(&b);
	recv_nodes(&rin, 2, got, sizeof(got));
	assert_string_equal(got, "tel-a/a/1 tel-a/a/3");
	if (strstr(log_text(), "malformed message dropped") == NULL)
		fail_msg("the bad frame was not logged: %s", log_text());

	/* RQ_BUS_BATCH_MAX + 6 frames: the last 6 dropped, and said. */
	rq_bus_batch_add(&b, &m);
	for (i = 0; i < RQ_BUS_BATCH_MAX + 5; i++)
		zmq_send(a, b.buf[0], b.len[0], ZMQ_SNDMORE);
	zmq_send(a, b.buf[0], b.len[0], 0);
	rq_bus_batch_free(&b);
	heartbeat(&m, "next", 1);
	rq_bus_send(a, NULL, 0, &m);
	recv_nodes(&rin, RQ_BUS_BATCH_MAX + 1, got, sizeof(got));
	want[0] = '\0';
	for (i = 1; i <= RQ_BUS_BATCH_MAX; i++) {
		snprintf(frame, sizeof(frame), "tel-a/a/%d ", i);
		strcat(want, frame);
	}
	strcat(want, "tel-a/next/1");
	assert_string_equal(got, want);
	if (strstr(log_text(), "frames past 64 of a message dropped") == NULL)
		fail_msg("the dropped frames were not logged: %s",
		    log_text());

	/* An unroutable peer: nothing goes, and the batch is emptied. */
	heartbeat(&m, "x", 1);
	rq_bus_batch_add(&b, &m);
	rq_bus_batch_add(&b, &m);
	assert_int_equal(rq_bus_send_batch(r, "nobody", 6, &b), -1);
	assert_int_equal(b.n, 0);

	zmq_close(a);
	zmq_close(c);
	zmq_close(r);
	zmq_ctx_term(ctx);
}

/* How many lines of the whole log say s. */
static int
log_count(const char *s)
{
	char line[4096];
	FILE *fp;
	int n = 0;

	fflush(stderr);
	assert_non_null(fp = fopen(logpath, "r"));
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strstr(line, s) != NULL)
			n++;
	fclose(fp);
	return n;
}

/* A frame over RQ_BUS_FRAME_MAX (a hostile peer's, whose tiny elements
 * would cost the unpacker some 24 times its size) never reaches the
 * reader, which would drop it as malformed, and say so: ZeroMQ drops the
 * connection first.  The peer's next messages, on its new one, come. */
static void
test_oversized_frame(void **state)
{
	struct rq_bus_in rin;
	struct rq_msg m;
	char got[256], ep[128];
	size_t eplen = sizeof(ep);
	void *ctx, *r, *a, *big;
	int i, said, after = 0;

	assert_non_null(ctx = zmq_ctx_new());
	assert_non_null(r = rq_bus_socket(ctx, ZMQ_ROUTER));
	assert_int_equal(zmq_bind(r, "tcp://127.0.0.1:*"), 0);
	assert_int_equal(zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, ep, &eplen), 0);
	a = plain_dealer(ctx, ep, "tel-a");
	rq_bus_in_init(&rin, r, 1);
	heartbeat(&m, "before", 1);
	assert_int_equal(rq_bus_send(a, NULL, 0, &m), 0);
	recv_nodes(&rin, 1, got, sizeof(got));
	assert_string_equal(got, "tel-a/before/1");

	/* msgpack [1, 5, {40: bin32 of RQ_BUS_FRAME_MAX bytes}]: an EVENT
	 * without its fields, malformed once unpacked */
	said = log_count("malformed message dropped");
	assert_non_null(big = calloc(1, RQ_BUS_FRAME_MAX + 16));
	memcpy(big, "\x93\x01\x05\x81\x28\xc6\x00\x40\x00\x00", 10);
	assert_int_equal(zmq_send(a, big, RQ_BUS_FRAME_MAX + 10, 0),
	    RQ_BUS_FRAME_MAX + 10);
	free(big);
	/* (a message written beside it may go with its connection) */
	heartbeat(&m, "after", 1);
	for (i = 0; i < 20 && !after; i++) {
		assert_int_equal(rq_bus_send(a, NULL, 0, &m), 0);
		recv_nodes(&rin, 1, got, sizeof(got));
		if (got[0] != '\0') {
			assert_string_equal(got, "tel-a/after/1");
			after = 1;
		}
	}
	assert_true(after);
	assert_int_equal(log_count("malformed message dropped"), said);

	zmq_close(a);
	zmq_close(r);
	zmq_ctx_term(ctx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keygen),
		cmocka_unit_test(test_batches),
		cmocka_unit_test(test_oversized_frame),
		cmocka_unit_test(test_accepted_keys),
		cmocka_unit_test(test_refused_and_logged),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
