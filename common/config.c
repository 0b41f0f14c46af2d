/* Table-driven configuration reader (see config.h). */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <event2/util.h>

#include <zmq.h>

#include "config.h"
#include "keys.h"
#include "e164.h"
#include "util.h"

/* The longest Unix socket path (and its NUL) a sockaddr_un holds. */
#define SUN_PATH_MAX	sizeof(((struct sockaddr_un *)0)->sun_path)

enum rq_conf_type { CONF_STR, CONF_INT, CONF_BOOL };

struct rq_conf_key {
	const char	*section;
	const char	*name;
	enum rq_conf_type type;
	size_t		 offset;
	size_t		 size;		/* CONF_STR: buffer size */
	long		 min, max;	/* CONF_INT */
	const char	*def;
};

#define S(sec, key, field, def) \
	{ sec, key, CONF_STR, offsetof(struct rq_config, field), \
	  sizeof(((struct rq_config *)0)->field), 0, 0, def }
#define I(sec, key, field, lo, hi, def) \
	{ sec, key, CONF_INT, offsetof(struct rq_config, field), 0, lo, hi, def }
#define B(sec, key, field, def) \
	{ sec, key, CONF_BOOL, offsetof(struct rq_config, field), 0, 0, 1, def }

static const struct rq_conf_key config_keys[] = {
	S("global", "run_dir", run_dir, ""),
	S("global", "state_dir", state_dir, ""),
	B("global", "debug", debug, "no"),

	S("redis", "host", redis_host, "127.0.0.1"),
	I("redis", "port", redis_port, 1, 65535, "6379"),
	S("redis", "password", redis_password, ""),

	S("postgres", "conninfo", pg_conninfo, "dbname=ringq"),

	S("bus", "dispatch_endpoints", dispatch_endpoints, "tcp://127.0.0.1:7701"),
	S("bus", "events_endpoint", events_endpoint, "tcp://127.0.0.1:7702"),
	/* ZeroMQ CURVE (common/bus.c): all four empty = plain TCP */
	S("bus", "curve_public_key", curve_public_key, ""),
	S("bus", "curve_secret_key", curve_secret_key, ""),
	S("bus", "curve_server_key", curve_server_key, ""),
	S("bus", "curve_clients", curve_clients, ""),

	S("gateway", "http_listen", http_listen, "127.0.0.1:8080"),
	I("gateway", "max_body", max_body, 1024, 16777216, "65536"),
	I("gateway", "http_max_clients", http_max_clients, 1, 100000, "4096"),
	I("gateway", "http_max_clients_per_ip", http_max_clients_per_ip, 1,
	    100000, "256"),
	S("gateway", "optout_secret", optout_secret, ""),

	S("smtp", "listen", smtp_listen, "127.0.0.1:2525"),
	S("smtp", "domain", smtp_domain, "ringq.localhost"),
	S("smtp", "hostname", smtp_hostname, "ringq.localhost"),
	S("smtp", "tls_cert", smtp_tls_cert, ""),
	S("smtp", "tls_key", smtp_tls_key, ""),
	I("smtp", "max_message", smtp_max_message, 1024, 104857600, "1048576"),
	I("smtp", "timeout_s", smtp_timeout_s, 1, 3600, "300"),
	I("smtp", "max_clients", smtp_max_clients, 1, 100000, "1000"),
	I("smtp", "max_clients_per_ip", smtp_max_clients_per_ip, 1, 100000, "50"),

	I("scheduler", "tick_ms", sched_tick_ms, 1, 1000, "20"),
	I("scheduler", "batch", sched_batch, 1, 100000, "500"),
	S("scheduler", "metrics_listen", sched_metrics_listen, ""),

	S("dispatcher", "bind", dispatch_bind, "tcp://127.0.0.1:7701"),
	I("dispatcher", "ack_timeout_ms", ack_timeout_ms, 10, 60000, "2000"),
	I("dispatcher", "heartbeat_timeout_ms", heartbeat_timeout_ms, 100, 60000, "3000"),
	S("dispatcher", "metrics_listen", disp_metrics_listen, ""),

	S("telserver", "name", tel_name, "tel1"),
	S("telserver", "sip_url", sip_url, "sip:127.0.0.1:5070"),
	S("telserver", "sip_from", sip_from, "sip:ringq@127.0.0.1"),
	S("telserver", "outbound_proxy", outbound_proxy, ""),
	S("telserver", "media_ip", media_ip, "127.0.0.1"),
	I("telserver", "rtp_port_min", rtp_port_min, 1024, 65534, "20000"),
	I("telserver", "rtp_port_max", rtp_port_max, 1025, 65535, "29999"),
	I("telserver", "capacity", capacity, 1, 100000, "100"),
	I("telserver", "ring_timeout_s", ring_timeout_s, 1, 600, "30"),
	I("telserver", "max_call_s", max_call_s, 1, 86400, "3600"),
	I("telserver", "heartbeat_ms", heartbeat_ms, 50, 10000, "500"),
	B("telserver", "dry_run", dry_run, "no"),
	/* VoiceXML fetches (telserver/fetch.c) */
	B("telserver", "fetch_allow_loopback", fetch_allow_loopback, "no"),
	B("telserver", "fetch_allow_private", fetch_allow_private, "no"),
	S("telserver", "metrics_listen", tel_metrics_listen, ""),

	/* status callbacks (accounting/callbacks.c) */
	B("accounting", "callbacks_allow_loopback", callbacks_allow_loopback, "no"),
	B("accounting", "callbacks_allow_private", callbacks_allow_private, "no"),
	S("accounting", "metrics_listen", acct_metrics_listen, ""),
};

#define TS(key, field, def) \
	{ "tenant", key, CONF_STR, offsetof(struct rq_tenant, field), \
	  sizeof(((struct rq_tenant *)0)->field), 0, 0, def }
#define TI(key, field, lo, hi, def) \
	{ "tenant", key, CONF_INT, offsetof(struct rq_tenant, field), 0, lo, hi, def }
#define TB(key, field, def) \
	{ "tenant", key, CONF_BOOL, offsetof(struct rq_tenant, field), 0, 0, 1, def }

static const struct rq_conf_key tenant_keys[] = {
	TS("key_sha256", key_sha256, ""),
	TB("allow_sip", allow_sip, "no"),
	TI("max_attempts", max_attempts, 1, 20,
	    RQ_STR(RQ_MAX_ATTEMPTS_DEFAULT)),
	/* how long an ended call stays in Redis (GET /v1/calls): each job
	 * keeps it as ttl_ms, unless it is the default (common/keys.h) */
	TI("retention_days", retention_days, 1, 3650, RQ_STR(RQ_CALL_TTL_DAYS)),
	TS("mail_token_sha256", mail_token_sha256, ""),
	TS("mail_token_next_sha256", mail_token_next_sha256, ""),
	TS("smtp_user", smtp_user, ""),
	TS("smtp_password_sha256", smtp_password_sha256, ""),
	TB("require_dkim", require_dkim, "no"),
	TS("dkim_domain", dkim_domain, ""),
	TS("dkim_key", dkim_key, ""),
	/* status callbacks (accounting/callbacks.c) */
	TS("callback_secret", callback_secret, ""),
	/* policy (gateway/policy.c, docs/policy.md) */
	TS("allowed_prefixes", allowed_prefixes, ""),
	TB("allow_premium", allow_premium, "no"),
	TS("calling_hours", calling_hours, ""),
	TI("rate_per_second", rate_per_second, 0, 1000000, "1000"),
	TI("rate_per_day", rate_per_day, 0, 1000000000, "0"),
	TI("max_concurrent", max_concurrent, 0, 1000000, "0"),
	TI("list_per_second", list_per_second, 0, 1000000, "20"),
	/* retries (common/lifecycle.c): the gateway writes them into each
	 * job as retry_busy etc. */
	TI("retry_busy_attempts", retry_busy_attempts, 1, 20,
	    RQ_STR(RQ_RETRY_BUSY_ATTEMPTS)),
	TI("retry_busy_delay_s", retry_busy_delay_s, 1, 86400,
	    RQ_STR(RQ_RETRY_BUSY_DELAY_S)),
	TI("retry_no_answer_attempts", retry_no_answer_attempts, 1, 20,
	    RQ_STR(RQ_RETRY_NO_ANSWER_ATTEMPTS)),
	TI("retry_no_answer_delay_s", retry_no_answer_delay_s, 1, 86400,
	    RQ_STR(RQ_RETRY_NO_ANSWER_DELAY_S)),
	TI("retry_network_attempts", retry_network_attempts, 1, 20,
	    RQ_STR(RQ_RETRY_NETWORK_ATTEMPTS)),
	TI("retry_network_delay_s", retry_network_delay_s, 1, 86400,
	    RQ_STR(RQ_RETRY_NETWORK_DELAY_S)),
};

#define BS(key, field, def) \
	{ "business", key, CONF_STR, offsetof(struct rq_business, field), \
	  sizeof(((struct rq_business *)0)->field), 0, 0, def }

static const struct rq_conf_key business_keys[] = {
	BS("hours", hours, ""),
	BS("time_zone", time_zone, ""),
};

#define NS(key, field, def) \
	{ "inbound", key, CONF_STR, offsetof(struct rq_inbound, field), \
	  sizeof(((struct rq_inbound *)0)->field), 0, 0, def }

/* All three are required: checked when the whole file is read. */
static const struct rq_conf_key inbound_keys[] = {
	NS("number", number, ""),
	NS("app_url", app_url, ""),
	NS("tenant", tenant, ""),
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int
conf_set(void *base, const struct rq_conf_key *k, const char *val,
    char *err, size_t errlen)
{
	char *end;
	long n;

	switch (k->type) {
	case CONF_STR:
		if (strlen(val) >= k->size) {
			snprintf(err, errlen, "value of %s too long (max %zu)",
			    k->name, k->size - 1);
			return -1;
		}
		strcpy((char *)base + k->offset, val);
		return 0;
	case CONF_INT:
		errno = 0;
		n = strtol(val, &end, 10);
		if (errno || end == val || *end != '\0') {
			snprintf(err, errlen, "%s: '%s' is not a number",
			    k->name, val);
			return -1;
		}
		if (n < k->min || n > k->max) {
			snprintf(err, errlen, "%s: %ld out of range %ld..%ld",
			    k->name, n, k->min, k->max);
			return -1;
		}
		*(int *)((char *)base + k->offset) = (int)n;
		return 0;
	case CONF_BOOL:
		if (!strcasecmp(val, "yes") || !strcasecmp(val, "true") ||
		    !strcmp(val, "1") || !strcasecmp(val, "on"))
			*(int *)((char *)base + k->offset) = 1;
		else if (!strcasecmp(val, "no") || !strcasecmp(val, "false") ||
		    !strcmp(val, "0") || !strcasecmp(val, "off"))
			*(int *)((char *)base + k->offset) = 0;
		else {
			snprintf(err, errlen, "%s: '%s' is not yes or no",
			    k->name, val);
			return -1;
		}
		return 0;
	}
	return -1;
}

static void
conf_defaults(void *base, const struct rq_conf_key *keys, size_t n)
{
	char err[128];
	size_t i;

	for (i = 0; i < n; i++)
		if (conf_set(base, &keys[i], keys[i].def, err, sizeof(err)))
			abort();	/* a bad default is a bug in the table */
}

void
rq_config_defaults(struct rq_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	conf_defaults(cfg, config_keys, NELEM(config_keys));
}

void
rq_config_free(struct rq_config *cfg)
{
	free(cfg->tenants);
	cfg->tenants = NULL;
	cfg->ntenants = 0;
	free(cfg->businesses);
	cfg->businesses = NULL;
	cfg->nbusinesses = 0;
	free(cfg->inbounds);
	cfg->inbounds = NULL;
	cfg->ninbounds = 0;
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int
valid_name(const char *s)
{
	if (*s == '\0' || strlen(s) >= RQ_NAME_MAX)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
			return 0;
	return 1;
}

/* The user part of a SIP URI we answer for: a number ("+15550100") or a
 * name ("support"), without escapes or characters that need them. */
static int
valid_number(const char *s)
{
	if (*s == '\0' || strlen(s) >= RQ_NAME_MAX)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && strchr("+-._*", *s) == NULL)
			return 0;
	return 1;
}

/* An [inbound] key's value, checked at its own line. */
static int
inbound_value_valid(const char *key, const char *val, char *msg,
    size_t msglen)
{
	const char *host = NULL;
	size_t i;

	if (!strcmp(key, "number") && !valid_number(val)) {
		snprintf(msg, msglen, "number: '%s' is not a SIP user part "
		    "(letters, digits and + - . _ *)", val);
		return -1;
	}
	if (!strcmp(key, "app_url")) {
		if (!strncasecmp(val, "http://", 7))
			host = val + 7;
		else if (!strncasecmp(val, "https://", 8))
			host = val + 8;
		for (i = 0; host != NULL && val[i]; i++)
			if ((unsigned char)val[i] <= ' ' ||
			    (unsigned char)val[i] >= 0x7f)
				host = NULL;
		if (host == NULL || *host == '\0' ||
		    strchr("/?#", *host) != NULL) {
			snprintf(msg, msglen, "app_url: '%s' is not an http:// "
			    "or https:// URL with a host", val);
			return -1;
		}
	}
	if (!strcmp(key, "tenant") && !valid_name(val)) {
		snprintf(msg, msglen, "tenant: '%s' is not a tenant name", val);
		return -1;
	}
	return 0;
}

/* The [inbound] sections once the whole file is read (tenants may come
 * after them): every key given, the tenant configured, numbers unique. */
static int
inbounds_valid(const struct rq_config *cfg, const char *path, char *err,
    size_t errlen)
{
	size_t i, j;

	for (i = 0; i < cfg->ninbounds; i++) {
		const struct rq_inbound *n = &cfg->inbounds[i];
		const char *missing = n->number[0] == '\0' ? "number" :
		    n->app_url[0] == '\0' ? "app_url" :
		    n->tenant[0] == '\0' ? "tenant" : NULL;

		if (missing != NULL) {
			snprintf(err, errlen, "%s:%zu: [inbound %s] needs %s",
			    path, n->line, n->name, missing);
			return -1;
		}
		if (rq_config_tenant(cfg, n->tenant) == NULL) {
			snprintf(err, errlen, "%s:%zu: [inbound %s]: no [tenant "
			    "%s] is configured", path, n->line, n->name,
			    n->tenant);
			return -1;
		}
		for (j = 0; j < i; j++)
			if (!strcmp(cfg->inbounds[j].number, n->number)) {
				snprintf(err, errlen, "%s:%zu: [inbound %s]: "
				    "number %s is [inbound %s]'s already",
				    path, n->line, n->name, n->number,
				    cfg->inbounds[j].name);
				return -1;
			}
	}
	return 0;
}

/*
 * [bus] CURVE keys: each 40 Z85 characters (32 bytes); curve_clients a
 * comma list of them.  Returns 0, or -1 with the reason in err (which
 * never quotes a secret key).
 */
static int
curve_keys_valid(const char *key, const char *val, char *err, size_t errlen)
{
	uint8_t bin[32];
	char k[41];
	size_t len;
	int list = !strcmp(key, "curve_clients");

	for (;;) {
		val += strspn(val, " \t,");
		if (*val == '\0')
			return 0;
		len = list ? strcspn(val, " \t,") : strlen(val);
		if (len == 40) {
			memcpy(k, val, 40);
			k[40] = '\0';
		}
		if (len != 40 || zmq_z85_decode(bin, k) == NULL) {
			snprintf(err, errlen, "%s: %s is not a Z85 CURVE key "
			    "(40 characters: ringq-ctl keygen)", key,
			    list ? "an entry" : "the value");
			return -1;
		}
		if (!list)
			return 0;
		val += len;
	}
}

/* Refuses half a CURVE setup: see docs/security.md. */
static int
curve_setup_valid(const struct rq_config *cfg, char *err, size_t errlen)
{
	char pub[41];
	int any = cfg->curve_public_key[0] || cfg->curve_secret_key[0] ||
	    cfg->curve_server_key[0] || cfg->curve_clients[0];

	if (!any)
		return 0;
	if (!zmq_has("curve")) {
		snprintf(err, errlen, "[bus] CURVE keys are set but this libzmq "
		    "has no CURVE");
		return -1;
	}
	if (!cfg->curve_public_key[0] != !cfg->curve_secret_key[0]) {
		snprintf(err, errlen, "[bus] curve_public_key and "
		    "curve_secret_key go together: set both or neither");
		return -1;
	}
	if (!cfg->curve_secret_key[0]) {
		snprintf(err, errlen, "[bus] %s needs this daemon's keypair "
		    "(curve_public_key, curve_secret_key)",
		    cfg->curve_server_key[0] ? "curve_server_key" :
		    "curve_clients");
		return -1;
	}
	if (zmq_curve_public(pub, cfg->curve_secret_key) == 0 &&
	    strcmp(pub, cfg->curve_public_key) != 0) {
		snprintf(err, errlen, "[bus] curve_public_key is not the public "
		    "key of curve_secret_key");
		return -1;
	}
	return 0;
}

/* A listen address as its daemon would take it, so that -n refuses what
 * the start would (the defaults are good: only values read are checked).
 * metrics_listen may be empty (off); the HTTP API binds a name or an
 * address, the SMTP listener an address (smtp_server.c). */
static int
listen_valid(const char *section, const char *key, const char *val,
    char *msg, size_t msglen)
{
	struct sockaddr_storage ss;
	char host[RQ_ADDR_MAX];
	int port, sslen = (int)sizeof(ss);

	if (!strcmp(section, "smtp") && !strcmp(key, "listen")) {
		/* rq_listen_split for the port (libevent's takes none, and
		 * "::1:2525" for an address), libevent's for an address */
		if (rq_listen_split(val, host, sizeof(host), &port) == -1 ||
		    evutil_parse_sockaddr_port(val, (struct sockaddr *)&ss,
		    &sslen) == -1) {
			snprintf(msg, msglen, "[smtp] listen: '%.100s' is not "
			    "an IP address and port (127.0.0.1:2525, "
			    "[::1]:2525)", val);
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "http_listen") && strcmp(key, "metrics_listen"))
		return 0;
	if ((!strcmp(key, "metrics_listen") && val[0] == '\0') ||
	    rq_listen_split(val, host, sizeof(host), &port) == 0)
		return 0;
	snprintf(msg, msglen, "[%s] %s: '%.100s' is not host:port or "
	    "[v6]:port", section, key, val);
	return -1;
}

/* Keys that go together, once the whole file is read. */
static int
pairs_valid(const struct rq_config *cfg, char *err, size_t errlen)
{
	if ((cfg->smtp_tls_cert[0] == '\0') != (cfg->smtp_tls_key[0] == '\0')) {
		snprintf(err, errlen, "[smtp] tls_cert and tls_key: set both "
		    "(STARTTLS) or neither");
		return -1;
	}
	return 0;
}

int
rq_config_load(struct rq_config *cfg, const char *path, char *err,
    size_t errlen)
{
	char section[RQ_NAME_MAX] = "";
	struct rq_tenant *tenant = NULL, *nt;
	struct rq_business *business = NULL, *nb;
	struct rq_inbound *inbound = NULL, *ni;
	struct rq_hours hours;
	char buf[16384], msg[256];
	FILE *fp;
	size_t i, lineno = 0;
	int found;

	rq_config_defaults(cfg);
	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(buf, sizeof(buf), fp) != NULL) {
		char *line, *eq, *key, *val;

		lineno++;
		if (strchr(buf, '\n') == NULL && !feof(fp)) {
			snprintf(err, errlen, "%s:%zu: line too long", path,
			    lineno);
			goto fail;
		}
		line = trim(buf);
		if (*line == '\0' || *line == '#' || *line == ';')
			continue;
		if (*line == '[') {
			char *end = strchr(line, ']');

			if (end == NULL || end[1] != '\0') {
				snprintf(err, errlen, "%s:%zu: bad section "
				    "header", path, lineno);
				goto fail;
			}
			*end = '\0';
			line = trim(line + 1);
			tenant = NULL;
			business = NULL;
			inbound = NULL;
			if (!strncmp(line, "inbound", 7) &&
			    isspace((unsigned char)line[7])) {
				const char *name = trim(line + 7);

				for (i = 0; i < cfg->ninbounds; i++)
					if (!strcmp(cfg->inbounds[i].name,
					    name))
						break;
				if (!valid_name(name) || i < cfg->ninbounds) {
					snprintf(err, errlen, "%s:%zu: bad or "
					    "repeated inbound name '%s'", path,
					    lineno, name);
					goto fail;
				}
				ni = realloc(cfg->inbounds, (cfg->ninbounds +
				    1) * sizeof(*cfg->inbounds));
				if (ni == NULL) {
					snprintf(err, errlen, "out of memory");
					goto fail;
				}
				cfg->inbounds = ni;
				inbound = &cfg->inbounds[cfg->ninbounds++];
				memset(inbound, 0, sizeof(*inbound));
				conf_defaults(inbound, inbound_keys,
				    NELEM(inbound_keys));
				strcpy(inbound->name, name);
				inbound->line = lineno;
				strcpy(section, "inbound");
				continue;
			}
			if (!strncmp(line, "business", 8) &&
			    isspace((unsigned char)line[8])) {
				const char *name = trim(line + 8);

				if (!valid_name(name) ||
				    rq_config_business(cfg, name) != NULL) {
					snprintf(err, errlen, "%s:%zu: bad or "
					    "repeated business name '%s'", path,
					    lineno, name);
					goto fail;
				}
				nb = realloc(cfg->businesses,
				    (cfg->nbusinesses + 1) *
				    sizeof(*cfg->businesses));
				if (nb == NULL) {
					snprintf(err, errlen, "out of memory");
					goto fail;
				}
				cfg->businesses = nb;
				business = &cfg->businesses[cfg->nbusinesses++];
				memset(business, 0, sizeof(*business));
				conf_defaults(business, business_keys,
				    NELEM(business_keys));
				strcpy(business->name, name);
				strcpy(section, "business");
				continue;
			}
			if (!strncmp(line, "tenant", 6) &&
			    isspace((unsigned char)line[6])) {
				const char *name = trim(line + 6);

				if (!valid_name(name)) {
					snprintf(err, errlen, "%s:%zu: bad "
					    "tenant name '%s'", path, lineno,
					    name);
					goto fail;
				}
				if (rq_config_tenant(cfg, name) != NULL) {
					snprintf(err, errlen, "%s:%zu: tenant "
					    "'%s' defined twice", path, lineno,
					    name);
					goto fail;
				}
				nt = realloc(cfg->tenants, (cfg->ntenants + 1) *
				    sizeof(*cfg->tenants));
				if (nt == NULL) {
					snprintf(err, errlen, "out of memory");
					goto fail;
				}
				cfg->tenants = nt;
				tenant = &cfg->tenants[cfg->ntenants++];
				memset(tenant, 0, sizeof(*tenant));
				conf_defaults(tenant, tenant_keys,
				    NELEM(tenant_keys));
				strcpy(tenant->name, name);
				strcpy(section, "tenant");
				continue;
			}
			found = 0;
			for (i = 0; i < NELEM(config_keys); i++)
				if (!strcmp(config_keys[i].section, line))
					found = 1;
			if (!found) {
				snprintf(err, errlen, "%s:%zu: unknown section "
				    "[%s]", path, lineno, line);
				goto fail;
			}
			snprintf(section, sizeof(section), "%s", line);
			continue;
		}
		if ((eq = strchr(line, '=')) == NULL) {
			snprintf(err, errlen, "%s:%zu: expected key = value",
			    path, lineno);
			goto fail;
		}
		*eq = '\0';
		key = trim(line);
		val = trim(eq + 1);
		if (*section == '\0') {
			snprintf(err, errlen, "%s:%zu: '%s' outside a section",
			    path, lineno, key);
			goto fail;
		}
		found = 0;
		if (inbound != NULL) {
			for (i = 0; i < NELEM(inbound_keys) && !found; i++)
				if (!strcmp(inbound_keys[i].name, key)) {
					found = 1;
					if (conf_set(inbound, &inbound_keys[i],
					    val, msg, sizeof(msg)) ||
					    inbound_value_valid(key, val, msg,
					    sizeof(msg)))
						goto bad_value;
				}
		} else if (business != NULL) {
			for (i = 0; i < NELEM(business_keys) && !found; i++)
				if (!strcmp(business_keys[i].name, key)) {
					found = 1;
					if (conf_set(business, &business_keys[i],
					    val, msg, sizeof(msg)))
						goto bad_value;
				}
			if (found && !strcmp(key, "hours") && *val != '\0' &&
			    rq_hours_parse(val, &hours, msg, sizeof(msg)))
				goto bad_value;
			if (found && !strcmp(key, "time_zone") &&
			    *val != '\0' && !rq_tz_valid(val)) {
				snprintf(msg, sizeof(msg), "time_zone: '%s' is "
				    "not a known IANA time zone", val);
				goto bad_value;
			}
		} else if (tenant != NULL) {
			for (i = 0; i < NELEM(tenant_keys) && !found; i++)
				if (!strcmp(tenant_keys[i].name, key)) {
					found = 1;
					if (conf_set(tenant, &tenant_keys[i],
					    val, msg, sizeof(msg)))
						goto bad_value;
				}
			if (found && !strcmp(key, "calling_hours") &&
			    *val != '\0' &&
			    rq_hours_parse(val, &hours, msg, sizeof(msg)))
				goto bad_value;
		} else {
			for (i = 0; i < NELEM(config_keys) && !found; i++)
				if (!strcmp(config_keys[i].section, section) &&
				    !strcmp(config_keys[i].name, key)) {
					found = 1;
					if (conf_set(cfg, &config_keys[i], val,
					    msg, sizeof(msg)))
						goto bad_value;
				}
			if (found && !strcmp(section, "bus") &&
			    !strncmp(key, "curve_", 6) &&
			    curve_keys_valid(key, val, msg, sizeof(msg)) == -1)
				goto bad_value;
			if (found && listen_valid(section, key, val, msg,
			    sizeof(msg)) == -1)
				goto bad_value;
		}
		if (!found) {
			snprintf(err, errlen, "%s:%zu: unknown key '%s' in "
			    "[%s]", path, lineno, key, section);
			goto fail;
		}
		continue;
bad_value:
		snprintf(err, errlen, "%s:%zu: %s", path, lineno, msg);
		goto fail;
	}
	if (ferror(fp)) {
		snprintf(err, errlen, "%s: read error", path);
		goto fail;
	}
	fclose(fp);
	for (i = 0; i < cfg->ntenants; i++) {
		const struct rq_tenant *t = &cfg->tenants[i];
		const char *opt[] = { t->mail_token_sha256,
		    t->mail_token_next_sha256, t->smtp_password_sha256 };
		const char *h = t->key_sha256;
		size_t j;

		for (j = 0; j < sizeof(opt) / sizeof(*opt); j++)
			if (opt[j][0] != '\0' && (strlen(opt[j]) != 64 ||
			    strspn(opt[j], "0123456789abcdef") != 64)) {
				snprintf(err, errlen, "%s: tenant '%s': a "
				    "*_sha256 key must be 64 lowercase hex "
				    "digits", path, t->name);
				rq_config_free(cfg);
				return -1;
			}

		if (strlen(h) != 64 || strspn(h, "0123456789abcdef") != 64) {
			snprintf(err, errlen, "%s: tenant '%s': key_sha256 must "
			    "be 64 lowercase hex digits", path,
			    cfg->tenants[i].name);
			rq_config_free(cfg);
			return -1;
		}
	}
	if (inbounds_valid(cfg, path, err, errlen) == -1) {
		rq_config_free(cfg);
		return -1;
	}
	if (curve_setup_valid(cfg, msg, sizeof(msg)) == -1 ||
	    pairs_valid(cfg, msg, sizeof(msg)) == -1) {
		snprintf(err, errlen, "%s: %s", path, msg);
		rq_config_free(cfg);
		return -1;
	}
	/* A Unix socket's path must fit sockaddr_un (hiredis would cut it
	 * and fail on another path). */
	if (cfg->redis_host[0] == '/' &&
	    strlen(cfg->redis_host) >= SUN_PATH_MAX) {
		snprintf(err, errlen, "%s: [redis] host: a Unix socket path "
		    "must be shorter than %zu bytes", path,
		    SUN_PATH_MAX);
		rq_config_free(cfg);
		return -1;
	}
	if (cfg->rtp_port_min >= cfg->rtp_port_max) {
		snprintf(err, errlen, "%s: rtp_port_min must be below "
		    "rtp_port_max", path);
		rq_config_free(cfg);
		return -1;
	}
	/* Each call holds an even RTP port and the odd one above it; a dry
	 * run (benchmarks) opens none. */
	if (!cfg->dry_run && cfg->capacity >
	    (cfg->rtp_port_max - cfg->rtp_port_min + 1) / 2) {
		snprintf(err, errlen, "%s: [telserver] capacity %d is more "
		    "than the RTP ports allow: each call needs a port pair, "
		    "and rtp_port_min %d to rtp_port_max %d hold %d pairs "
		    "(lower capacity or widen the range)", path,
		    cfg->capacity, cfg->rtp_port_min, cfg->rtp_port_max,
		    (cfg->rtp_port_max - cfg->rtp_port_min + 1) / 2);
		rq_config_free(cfg);
		return -1;
	}
	return 0;
fail:
	fclose(fp);
	rq_config_free(cfg);
	return -1;
}

const struct rq_tenant *
rq_config_tenant_by_key(const struct rq_config *cfg, const char *hash)
{
	size_t i;

	for (i = 0; i < cfg->ntenants; i++)
		if (!strcmp(cfg->tenants[i].key_sha256, hash))
			return &cfg->tenants[i];
	return NULL;
}

/* A mail token's hash matches the current token or, during a rotation,
 * the next one. */
const struct rq_tenant *
rq_config_tenant_by_mail_token(const struct rq_config *cfg, const char *hash)
{
	const struct rq_tenant *t;
	size_t i;

	for (i = 0; i < cfg->ntenants; i++) {
		t = &cfg->tenants[i];
		if ((t->mail_token_sha256[0] != '\0' &&
		    !strcmp(t->mail_token_sha256, hash)) ||
		    (t->mail_token_next_sha256[0] != '\0' &&
		    !strcmp(t->mail_token_next_sha256, hash)))
			return t;
	}
	return NULL;
}

const struct rq_tenant *
rq_config_tenant_by_smtp_user(const struct rq_config *cfg, const char *user)
{
	size_t i;

	if (*user == '\0')
		return NULL;
	for (i = 0; i < cfg->ntenants; i++)
		if (!strcmp(cfg->tenants[i].smtp_user, user))
			return &cfg->tenants[i];
	return NULL;
}

const struct rq_business *
rq_config_business(const struct rq_config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->nbusinesses; i++)
		if (!strcmp(cfg->businesses[i].name, name))
			return &cfg->businesses[i];
	return NULL;
}

const struct rq_inbound *
rq_config_inbound(const struct rq_config *cfg, const char *number)
{
	size_t i;

	for (i = 0; i < cfg->ninbounds; i++)
		if (!strcmp(cfg->inbounds[i].number, number))
			return &cfg->inbounds[i];
	return NULL;
}

uint64_t
rq_tenant_ttl_ms(const struct rq_tenant *t)
{
	if (t == NULL)
		return RQ_CALL_TTL_MS;
	return (uint64_t)t->retention_days * 86400000;
}

const struct rq_tenant *
rq_config_tenant(const struct rq_config *cfg, const char *name)
{
	size_t i;

	if (name == NULL)
		return NULL;
	for (i = 0; i < cfg->ntenants; i++)
		if (!strcmp(cfg->tenants[i].name, name))
			return &cfg->tenants[i];
	return NULL;
}
