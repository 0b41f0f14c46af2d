/* The bus with CURVE: a ROUTER of rq_bus_socket() takes messages from a
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
	char id[RQ_BUS_ID_MAX];
	size_t idlen;
	uint64_t until = rq_mono_ms() + wait_ms;
	int ok = 0;

	rq_msg_init(&m, RQ_MSG_HEARTBEAT);
	rq_msg_set(&m, node, (char *)node);
	rq_msg_set(&m, active, 0);
	rq_msg_set(&m, capacity, 1);
	/* Queued until the handshake is done (or forever when refused). */
	assert_int_equal(rq_bus_send(s, NULL, 0, &m), 0);
	while (!ok && rq_mono_ms() < until) {
		zmq_pollitem_t pi = { router, 0, ZMQ_POLLIN, 0 };

		zmq_poll(&pi, 1, 50);
		while (rq_bus_recv(router, id, &idlen, &got) == 1) {
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keygen),
		cmocka_unit_test(test_accepted_keys),
		cmocka_unit_test(test_refused_and_logged),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
