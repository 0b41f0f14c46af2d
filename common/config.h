/* ringq configuration: one INI-style file shared by all daemons, each daemon
 * reading the sections it needs.  The keys are declared once, in the table in
 * config.c, with type, range and default; docs/configuration.md lists them. */
#ifndef RQ_CONFIG_H
#define RQ_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define RQ_NAME_MAX	64
#define RQ_ADDR_MAX	256

struct rq_tenant {
	char		name[RQ_NAME_MAX];
	char		key_sha256[65];		/* hex SHA-256 of the API key */
	int		allow_sip;		/* may call sip: URIs */
	int		max_attempts;
	int		retention_days;		/* an ended call stays in Redis */
	/* e-mail requests */
	char		mail_token_sha256[65];	/* calls+<token>@[smtp] domain */
	char		mail_token_next_sha256[65]; /* during a rotation */
	char		smtp_user[RQ_NAME_MAX];	/* AUTH PLAIN/LOGIN (after TLS) */
	char		smtp_password_sha256[65];
	int		require_dkim;
	char		dkim_domain[RQ_ADDR_MAX];
	char		dkim_key[1024];		/* pinned public key (p=...) */
	/* status callbacks: HMAC-SHA256 key of X-Ringq-Signature */
	char		callback_secret[256];
	/* policy (gateway/policy.c, docs/policy.md) */
	char		allowed_prefixes[512];	/* comma list; "" = anywhere */
	int		allow_premium;		/* premium-rate, high-fraud */
	char		calling_hours[64];	/* callee's local; "" = always */
	int		rate_per_second;	/* 0 = unlimited */
	int		rate_per_day;		/* 0 = unlimited */
	int		max_concurrent;		/* 0 = unlimited */
	int		list_per_second;	/* GET /v1/calls, a gateway's;
						 * 0 = unlimited */
	/* retries per outcome class (common/lifecycle.c, docs/delivery.md):
	 * at most that many attempts ending busy / unanswered / on a
	 * network failure, the first retry after the delay (then doubled) */
	int		retry_busy_attempts;
	int		retry_busy_delay_s;
	int		retry_no_answer_attempts;
	int		retry_no_answer_delay_s;
	int		retry_network_attempts;
	int		retry_network_delay_s;
};

/* [business NAME]: a business that receives call-back requests (the
 * request's "business" field); its hours and blocked numbers
 * (rq:dnc:business:NAME) apply to those calls. */
struct rq_business {
	char		name[RQ_NAME_MAX];
	char		hours[64];		/* "Mon-Fri 09:00-17:00"; "" = always */
	char		time_zone[64];		/* IANA; "" = UTC */
};

/* [inbound NAME]: an incoming call whose Request-URI user part is number
 * runs the VoiceXML application at app_url as a call of tenant (the
 * telserver's inbound.c). */
#define RQ_INBOUND_URL_MAX	2048
struct rq_inbound {
	char		name[RQ_NAME_MAX];
	char		number[RQ_NAME_MAX];	/* "+15550100", "support": unique */
	char		app_url[RQ_INBOUND_URL_MAX];	/* http:// or https:// */
	char		tenant[RQ_NAME_MAX];	/* a configured [tenant NAME] */
	size_t		line;			/* of its section header */
};

struct rq_config {
	/* [global] */
	char		run_dir[RQ_ADDR_MAX];	/* PID files go here when set */
	char		state_dir[RQ_ADDR_MAX];	/* kept across restarts; "" =
						 * run_dir */
	int		debug;

	/* [redis] */
	char		redis_host[RQ_ADDR_MAX];
	int		redis_port;
	char		redis_password[256];	/* AUTH when set */

	/* [postgres] */
	char		pg_conninfo[512];

	/* [bus]: ZeroMQ endpoints */
	char		dispatch_endpoints[1024]; /* dispatchers bind, telservers connect; comma list */
	char		events_endpoint[RQ_ADDR_MAX]; /* accounting binds, all connect */
	/* CURVE: this daemon's keypair (Z85), the servers' public key (for
	 * clients: telservers), the client keys servers accept */
	char		curve_public_key[64];
	char		curve_secret_key[64];
	char		curve_server_key[64];
	char		curve_clients[8192];

	/* [gateway] */
	char		http_listen[RQ_ADDR_MAX];
	int		max_body;
	int		http_max_clients;	/* connections, from a request */
	int		http_max_clients_per_ip;
	char		optout_secret[256];	/* signs /optout links; "" = none */

	/* [smtp] */
	char		smtp_listen[RQ_ADDR_MAX];
	char		smtp_domain[RQ_ADDR_MAX];	/* of request addresses */
	char		smtp_hostname[RQ_ADDR_MAX];	/* in the banner */
	char		smtp_tls_cert[RQ_ADDR_MAX];	/* PEM; STARTTLS when set */
	char		smtp_tls_key[RQ_ADDR_MAX];
	int		smtp_max_message;		/* SIZE, bytes */
	int		smtp_timeout_s;
	int		smtp_max_clients;
	int		smtp_max_clients_per_ip;

	/* [scheduler] */
	int		sched_tick_ms;
	int		sched_batch;
	char		sched_metrics_listen[RQ_ADDR_MAX];	/* host:port; "" = off */

	/* [dispatcher] */
	char		dispatch_bind[RQ_ADDR_MAX];	/* this dispatcher's ROUTER */
	int		ack_timeout_ms;
	int		heartbeat_timeout_ms;
	char		disp_metrics_listen[RQ_ADDR_MAX];

	/* [telserver] */
	char		tel_name[RQ_NAME_MAX];
	char		sip_url[RQ_ADDR_MAX];		/* our SIP contact/bind */
	char		sip_from[RQ_ADDR_MAX];		/* default From */
	char		outbound_proxy[RQ_ADDR_MAX];	/* trunk for E.164 numbers */
	char		media_ip[64];
	int		rtp_port_min;
	int		rtp_port_max;
	int		capacity;
	int		ring_timeout_s;
	int		max_call_s;
	int		heartbeat_ms;
	int		dry_run;
	int		fetch_allow_loopback;
	int		fetch_allow_private;
	char		tel_metrics_listen[RQ_ADDR_MAX];

	/* [accounting]: status callbacks may POST to loopback (tests), to
	 * private and other non-public addresses and this host's own */
	int		callbacks_allow_loopback;
	int		callbacks_allow_private;
	char		acct_metrics_listen[RQ_ADDR_MAX];

	/* [tenant NAME], repeated */
	struct rq_tenant *tenants;
	size_t		ntenants;

	/* [business NAME], repeated */
	struct rq_business *businesses;
	size_t		nbusinesses;

	/* [inbound NAME], repeated */
	struct rq_inbound *inbounds;
	size_t		ninbounds;
};

/* Fills cfg with defaults, then reads path.  Returns 0, or -1 with a message
 * naming file and line in err.  cfg owns its tenants: rq_config_free(). */
int	rq_config_load(struct rq_config *cfg, const char *path,
	    char *err, size_t errlen);
void	rq_config_defaults(struct rq_config *cfg);
void	rq_config_free(struct rq_config *cfg);

/* Returns the tenant whose key hashes to key_sha256_hex, or NULL. */
const struct rq_tenant *rq_config_tenant_by_key(const struct rq_config *cfg,
	    const char *key_sha256_hex);
/* The tenant whose mail_token_sha256 or mail_token_next_sha256 is
 * sha256_hex, or NULL. */
const struct rq_tenant *rq_config_tenant_by_mail_token(
	    const struct rq_config *cfg, const char *sha256_hex);
/* The tenant whose smtp_user is user (never ""), or NULL. */
const struct rq_tenant *rq_config_tenant_by_smtp_user(
	    const struct rq_config *cfg, const char *user);
/* An ended call's time left in Redis for tenant t (its retention_days),
 * in ms; the default (RQ_CALL_TTL_MS) when t is NULL. */
uint64_t	rq_tenant_ttl_ms(const struct rq_tenant *t);
const struct rq_tenant *rq_config_tenant(const struct rq_config *cfg,
	    const char *name);
const struct rq_business *rq_config_business(const struct rq_config *cfg,
	    const char *name);
/* The [inbound] section whose number is number (the user part of an
 * incoming INVITE's Request-URI, compared exactly), or NULL. */
const struct rq_inbound *rq_config_inbound(const struct rq_config *cfg,
	    const char *number);

#endif
