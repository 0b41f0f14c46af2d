/* The config reader: defaults, values, tenants, and errors naming a line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <zmq.h>

#include "config.h"

static char path[64];

static int
write_conf(const char *text)
{
	int fd;

	strcpy(path, "/tmp/rq-test-config-XXXXXX");
	if ((fd = mkstemp(path)) == -1)
		return -1;
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		return -1;
	return close(fd);
}

#define HASH "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"

static void
test_values_and_tenants(void **state)
{
	struct rq_config cfg;
	char err[256];

	assert_int_equal(write_conf(
	    "# a comment\n[redis]\nport = 6390\n\n[gateway]\n"
	    "http_listen = 127.0.0.1:9999\n[telserver]\ndry_run = yes\n"
	    "[tenant demo]\nkey_sha256 = " HASH "\nallow_sip = yes\n"), 0);
	assert_int_equal(rq_config_load(&cfg, path, err, sizeof(err)), 0);
	assert_int_equal(cfg.redis_port, 6390);
	assert_string_equal(cfg.redis_host, "127.0.0.1");	/* default */
	assert_string_equal(cfg.http_listen, "127.0.0.1:9999");
	assert_int_equal(cfg.dry_run, 1);
	assert_int_equal(cfg.max_body, 65536);
	assert_int_equal(cfg.http_max_clients, 4096);
	assert_int_equal(cfg.http_max_clients_per_ip, 256);
	assert_int_equal(cfg.ntenants, 1);
	assert_non_null(rq_config_tenant_by_key(&cfg, HASH));
	assert_string_equal(rq_config_tenant(&cfg, "demo")->name, "demo");
	assert_true(rq_config_tenant(&cfg, "demo")->allow_sip);
	assert_null(rq_config_tenant(&cfg, "other"));
	rq_config_free(&cfg);
	unlink(path);
}

static void
expect_error(const char *text, const char *needle)
{
	struct rq_config cfg;
	char err[256];

	assert_int_equal(write_conf(text), 0);
	assert_int_equal(rq_config_load(&cfg, path, err, sizeof(err)), -1);
	if (strstr(err, needle) == NULL)
		fail_msg("error '%s' lacks '%s'", err, needle);
	unlink(path);
}

static void
test_errors(void **state)
{
	expect_error("[redis]\nport = 70000\n", ":2: port: 70000 out of range");
	expect_error("[redis]\nport = abc\n", ":2:");
	expect_error("[redis]\nnope = 1\n", ":2: unknown key 'nope' in [redis]");
	expect_error("[nosuch]\n", ":1: unknown section [nosuch]");
	expect_error("[redis]\nhost = /run/ringq/"
	    "a-socket-directory-nested-far-too-deep-for-a-sockaddr_un/"
	    "and-deeper-still/and-deeper-again-and-again/redis.sock\n",
	    "[redis] host: a Unix socket path must be shorter than 108 bytes");
	expect_error("port = 1\n", ":1: 'port' outside a section");
	expect_error("[redis\n", ":1: bad section header");
	expect_error("[redis]\njust words\n", ":2: expected key = value");
	expect_error("[tenant a/b]\n", "bad tenant name");
	expect_error("[tenant a]\nkey_sha256 = " HASH "\n[tenant a]\n",
	    "defined twice");
	expect_error("[tenant a]\nkey_sha256 = xyz\n", "64 lowercase hex");
	expect_error("[telserver]\ndry_run = maybe\n", "not yes or no");
}

/* What a daemon would refuse at start-up, refused by -n as well. */
static void
test_listens(void **state)
{
	struct rq_config cfg;
	char err[256];

	expect_error("[gateway]\nhttp_listen = 8080\n",
	    ":2: [gateway] http_listen: '8080' is not host:port");
	expect_error("[gateway]\nhttp_listen =\n", "http_listen: ''");
	expect_error("[scheduler]\nmetrics_listen = 127.0.0.1:0\n",
	    "[scheduler] metrics_listen: '127.0.0.1:0' is not");
	expect_error("[telserver]\nmetrics_listen = []:9100\n",
	    "[telserver] metrics_listen");
	expect_error("[accounting]\nmetrics_listen = host:http\n",
	    "[accounting] metrics_listen");
	/* the SMTP listener binds an address, not a name, and needs a port */
	expect_error("[smtp]\nlisten = localhost:2525\n",
	    ":2: [smtp] listen: 'localhost:2525' is not an IP address");
	expect_error("[smtp]\nlisten = 127.0.0.1\n", "[smtp] listen");
	expect_error("[smtp]\nlisten = ::1:2525\n", "[smtp] listen");
	expect_error("[gateway]\nhttp_listen = 127.0.0.1:+80\n", "http_listen");
	expect_error("[smtp]\ntls_cert = /etc/ringq/smtp.pem\n",
	    "tls_cert and tls_key: set both");
	expect_error("[smtp]\ntls_key = /etc/ringq/smtp.key\n",
	    "tls_cert and tls_key: set both");

	assert_int_equal(write_conf("[gateway]\nhttp_listen = localhost:80\n"
	    "[smtp]\nlisten = [::1]:2525\ntls_cert = a.pem\ntls_key = a.key\n"
	    "[dispatcher]\nmetrics_listen = [::1]:9102\n"
	    "[telserver]\nmetrics_listen =\n"), 0);
	assert_int_equal(rq_config_load(&cfg, path, err, sizeof(err)), 0);
	assert_string_equal(cfg.disp_metrics_listen, "[::1]:9102");
	rq_config_free(&cfg);
	unlink(path);
	assert_int_equal(write_conf("[smtp]\nlisten = 0.0.0.0:25\n"), 0);
	assert_int_equal(rq_config_load(&cfg, path, err, sizeof(err)), 0);
	assert_string_equal(cfg.smtp_listen, "0.0.0.0:25");
	rq_config_free(&cfg);
	unlink(path);
}

/* The policy engine's tenant keys and [business NAME] sections. */
static void
test_policy_keys(void **state)
{
	const struct rq_business *b;
	const struct rq_tenant *t;
	struct rq_config cfg;
	char err[256];

	assert_int_equal(write_conf(
	    "[tenant demo]\nkey_sha256 = " HASH "\n"
	    "[business shop]\nhours = Mon-Fri 09:00-17:00\n"
	    "time_zone = Europe/Paris\n"
	    "[tenant strict]\nkey_sha256 = " HASH "\n"
	    "allowed_prefixes = +44, +353\nallow_premium = yes\n"
	    "calling_hours = 08:00-21:00\nrate_per_second = 5\n"
	    "rate_per_day = 100\nmax_concurrent = 2\nretention_days = 30\n"),
	    0);
	assert_int_equal(rq_config_load(&cfg, path, err, sizeof(err)), 0);
	t = rq_config_tenant(&cfg, "demo");		/* the defaults */
	assert_string_equal(t->allowed_prefixes, "");
	assert_false(t->allow_premium);
	assert_string_equal(t->calling_hours, "");
	assert_int_equal(t->rate_per_second, 1000);
	assert_int_equal(t->rate_per_day, 0);
	assert_int_equal(t->max_concurrent, 0);
	assert_int_equal(t->retention_days, 7);
	t = rq_config_tenant(&cfg, "strict");
	assert_string_equal(t->allowed_prefixes, "+44, +353");
	assert_true(t->allow_premium);
	assert_string_equal(t->calling_hours, "08:00-21:00");
	assert_int_equal(t->rate_per_second, 5);
	assert_int_equal(t->rate_per_day, 100);
	assert_int_equal(t->max_concurrent, 2);
	assert_int_equal(t->retention_days, 30);
	assert_non_null(b = rq_config_business(&cfg, "shop"));
	assert_string_equal(b->hours, "Mon-Fri 09:00-17:00");
	assert_string_equal(b->time_zone, "Europe/Paris");
	assert_null(rq_config_business(&cfg, "demo"));
	rq_config_free(&cfg);
	unlink(path);

	expect_error("[tenant a]\ncalling_hours = 8-21\n", ":2: hours must");
	expect_error("[tenant a]\nretention_days = 0\n", ":2:");
	expect_error("[business b]\nhours = Mon-Fry 09:00-17:00\n", ":2:");
	expect_error("[business b]\ntime_zone = Mars/Olympus\n",
	    ":2: time_zone: 'Mars/Olympus'");
	expect_error("[business b]\n[business b]\n", ":2: bad or repeated");
	expect_error("[business b]\nrate_per_day = 1\n", ":2: unknown key");
}

/* [inbound NAME]: numbers that answer incoming calls with an application
 * of a tenant's; a section may come before its tenant's. */
static void
test_inbound(void **state)
{
	const struct rq_inbound *n;
	struct rq_config cfg;
	char err[256];

	assert_int_equal(write_conf(
	    "[inbound demo-line]\nnumber = +15550100\n"
	    "app_url = http://127.0.0.1:8000/inbound.vxml\ntenant = shop\n"
	    "[tenant shop]\nkey_sha256 = " HASH "\n"
	    "[inbound help]\nnumber = support\n"
	    "app_url = https://apps.example.com/help.vxml?lang=en\n"
	    "tenant = shop\n"), 0);
	assert_int_equal(rq_config_load(&cfg, path, err, sizeof(err)), 0);
	assert_int_equal(cfg.ninbounds, 2);
	assert_non_null(n = rq_config_inbound(&cfg, "+15550100"));
	assert_string_equal(n->name, "demo-line");
	assert_string_equal(n->app_url, "http://127.0.0.1:8000/inbound.vxml");
	assert_string_equal(n->tenant, "shop");
	assert_non_null(n = rq_config_inbound(&cfg, "support"));
	assert_string_equal(n->name, "help");
	assert_string_equal(n->app_url,
	    "https://apps.example.com/help.vxml?lang=en");
	/* the user part is compared exactly */
	assert_null(rq_config_inbound(&cfg, "15550100"));
	assert_null(rq_config_inbound(&cfg, "Support"));
	assert_null(rq_config_inbound(&cfg, ""));
	rq_config_free(&cfg);
	unlink(path);

	/* no [inbound]: nothing answers */
	assert_int_equal(write_conf("[redis]\nport = 6390\n"), 0);
	assert_int_equal(rq_config_load(&cfg, path, err, sizeof(err)), 0);
	assert_int_equal(cfg.ninbounds, 0);
	assert_null(rq_config_inbound(&cfg, "+15550100"));
	rq_config_free(&cfg);
	unlink(path);

#define T_OK "[tenant t]\nkey_sha256 = " HASH "\n"
	/* values, at their own line */
	expect_error(T_OK "[inbound a]\nnumber = 555 0100\n",
	    ":4: number: '555 0100' is not a SIP user part");
	expect_error(T_OK "[inbound a]\nnumber = sip:x@y\n", ":4: number:");
	expect_error(T_OK "[inbound a]\napp_url = ftp://h/x.vxml\n",
	    ":4: app_url: 'ftp://h/x.vxml' is not an http");
	expect_error(T_OK "[inbound a]\napp_url = http:///x.vxml\n",
	    ":4: app_url:");
	expect_error(T_OK "[inbound a]\napp_url = http://h/a b\n",
	    ":4: app_url:");
	expect_error(T_OK "[inbound a]\ntenant = a/b\n", ":4: tenant:");
	expect_error(T_OK "[inbound a]\nhours = 08:00-17:00\n",
	    ":4: unknown key 'hours' in [inbound]");
	/* sections: names, required keys, the tenant, unique numbers */
	expect_error("[inbound a/b]\n", ":1: bad or repeated inbound name");
	expect_error(T_OK "[inbound a]\nnumber = 1\napp_url = http://h/\n"
	    "tenant = t\n[inbound a]\n", ":7: bad or repeated inbound name");
	expect_error(T_OK "[inbound a]\napp_url = http://h/\ntenant = t\n",
	    ":3: [inbound a] needs number");
	expect_error(T_OK "[inbound a]\nnumber = 1\ntenant = t\n",
	    ":3: [inbound a] needs app_url");
	expect_error(T_OK "[inbound a]\nnumber = 1\napp_url = http://h/\n",
	    ":3: [inbound a] needs tenant");
	expect_error(T_OK "[inbound a]\nnumber = 1\napp_url = http://h/\n"
	    "tenant = other\n", ":3: [inbound a]: no [tenant other]");
	expect_error(T_OK "[inbound a]\nnumber = 1\napp_url = http://h/\n"
	    "tenant = t\n[inbound b]\nnumber = 1\napp_url = http://g/\n"
	    "tenant = t\n", ":7: [inbound b]: number 1 is [inbound a]'s");
#undef T_OK
}

/* The tenants' retry policy (issue 4): defaults, values, ranges. */
static void
test_retry_keys(void **state)
{
	const struct rq_tenant *t;
	struct rq_config cfg;
	char err[256];

	assert_int_equal(write_conf(
	    "[tenant demo]\nkey_sha256 = " HASH "\n"
	    "[tenant eager]\nkey_sha256 = " HASH "\n"
	    "retry_busy_attempts = 5\nretry_busy_delay_s = 1\n"
	    "retry_no_answer_attempts = 1\nretry_no_answer_delay_s = 86400\n"
	    "retry_network_attempts = 20\nretry_network_delay_s = 7\n"), 0);
	assert_int_equal(rq_config_load(&cfg, path, err, sizeof(err)), 0);
	t = rq_config_tenant(&cfg, "demo");		/* the defaults */
	assert_int_equal(t->retry_busy_attempts, 3);
	assert_int_equal(t->retry_busy_delay_s, 60);
	assert_int_equal(t->retry_no_answer_attempts, 3);
	assert_int_equal(t->retry_no_answer_delay_s, 300);
	assert_int_equal(t->retry_network_attempts, 3);
	assert_int_equal(t->retry_network_delay_s, 30);
	t = rq_config_tenant(&cfg, "eager");
	assert_int_equal(t->retry_busy_attempts, 5);
	assert_int_equal(t->retry_busy_delay_s, 1);
	assert_int_equal(t->retry_no_answer_attempts, 1);
	assert_int_equal(t->retry_no_answer_delay_s, 86400);
	assert_int_equal(t->retry_network_attempts, 20);
	assert_int_equal(t->retry_network_delay_s, 7);
	rq_config_free(&cfg);
	unlink(path);

	expect_error("[tenant a]\nretry_busy_delay_s = 0\n",
	    ":2: retry_busy_delay_s: 0 out of range 1..86400");
	expect_error("[tenant a]\nretry_network_delay_s = 86401\n",
	    ":2: retry_network_delay_s: 86401 out of range");
	expect_error("[tenant a]\nretry_no_answer_attempts = 0\n",
	    ":2: retry_no_answer_attempts: 0 out of range");
	expect_error("[redis]\nretry_busy_attempts = 2\n", ":2: unknown key");
}

/* [bus] CURVE keys: well-formed pairs pass, half a setup is refused. */
static void
test_curve_keys(void **state)
{
	struct rq_config cfg;
	char pub[41], sec[41], pub2[41], sec2[41], text[1024], err[256];

	assert_true(zmq_has("curve"));	/* required: docs/security.md */
	assert_int_equal(zmq_curve_keypair(pub, sec), 0);
	assert_int_equal(zmq_curve_keypair(pub2, sec2), 0);

	snprintf(text, sizeof(text), "[bus]\ncurve_public_key = %s\n"
	    "curve_secret_key = %s\ncurve_server_key = %s\n"
	    "curve_clients = %s, %s\n", pub, sec, pub2, pub2, pub);
	assert_int_equal(write_conf(text), 0);
	assert_int_equal(rq_config_load(&cfg, path, err, sizeof(err)), 0);
	assert_string_equal(cfg.curve_secret_key, sec);
	rq_config_free(&cfg);
	unlink(path);

	snprintf(text, sizeof(text), "[bus]\ncurve_secret_key = %s\n", sec);
	expect_error(text, "go together");
	snprintf(text, sizeof(text), "[bus]\ncurve_public_key = %s\n", pub);
	expect_error(text, "go together");
	snprintf(text, sizeof(text), "[bus]\ncurve_server_key = %s\n", pub);
	expect_error(text, "curve_server_key needs this daemon's keypair");
	snprintf(text, sizeof(text), "[bus]\ncurve_clients = %s\n", pub);
	expect_error(text, "curve_clients needs");
	snprintf(text, sizeof(text), "[bus]\ncurve_public_key = %s\n"
	    "curve_secret_key = %s\n", pub2, sec);
	expect_error(text, "not the public key of curve_secret_key");
	expect_error("[bus]\ncurve_server_key = short\n",
	    ":2: curve_server_key: the value is not a Z85");
	/* '"' is not in the Z85 alphabet: 40 characters, still refused */
	expect_error("[bus]\ncurve_server_key = "
	    "\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\""
	    "\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\n",
	    ":2: curve_server_key: the value is not a Z85");
	snprintf(text, sizeof(text), "[bus]\ncurve_public_key = %s\n"
	    "curve_secret_key = %s\ncurve_clients = %s,oops\n", pub, sec,
	    pub2);
	expect_error(text, ":4: curve_clients: an entry is not a Z85");
	/* The error never quotes a secret. */
	snprintf(text, sizeof(text), "[bus]\ncurve_secret_key = %.39s\n", sec);
	assert_int_equal(write_conf(text), 0);
	assert_int_equal(rq_config_load(&cfg, path, err, sizeof(err)), -1);
	sec[20] = '\0';
	assert_null(strstr(err, sec));
	unlink(path);
}

static void
test_missing_file(void **state)
{
	struct rq_config cfg;
	char err[256];

	assert_int_equal(rq_config_load(&cfg, "/nonexistent/ringq.conf", err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/ringq.conf"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values_and_tenants),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_listens),
		cmocka_unit_test(test_policy_keys),
		cmocka_unit_test(test_inbound),
		cmocka_unit_test(test_retry_keys),
		cmocka_unit_test(test_curve_keys),
		cmocka_unit_test(test_missing_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
