/* Do-not-call endpoints: a tenant adds, removes and looks up numbers on its
 * own list (PUT, DELETE, GET /v1/dnc/{number}) and records a customer's
 * own opt-out (POST /v1/optout, or the customer following a signed link
 * GET /optout?n=&sig=), which binds every tenant. */
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <hiredis/hiredis.h>
#include <openssl/crypto.h>

#include "keys.h"
#include "e164.h"
#include "gateway.h"
#include "log.h"

#define DNC_PATH	"/v1/dnc/"
#define OPTOUT_PATH	"/v1/optout"
#define OPTOUT_BODY_MAX	4096
#define LINK_PATH	"/optout"

enum dnc_op { DNC_ADD, DNC_REMOVE, DNC_LOOKUP, DNC_OPTOUT, DNC_LINK };

/* One request waiting for Redis; answered exactly once by dnc_reply_cb. */
struct dnc_req {
	struct evhttp_request	*req;
	enum dnc_op		 op;
	char			 number[17];
	const char		*secret;	/* optout_secret, borrowed */
	const char		*tenant;	/* asking tenant, borrowed */
};

/* HASH beside rq:dnc:customer: number -> who opted it out and when,
 * "tenant=<name> at=<ms>" or "link at=<ms>" (ringq-dnc -c writes
 * "import at=<ms>"; -c -r removes both).  Belongs in common/keys.h. */

/* KEYS: the tenant's list, the customers' list, its meta hash.  ARGV:
 * number. */
static const char lookup_lua[] =
	"return { redis.call('SISMEMBER', KEYS[1], ARGV[1]),"
	" redis.call('SISMEMBER', KEYS[2], ARGV[1]),"
	" redis.call('HGET', KEYS[3], ARGV[1]) }\n";

/* KEYS: the tenant's list, the customers' list.  ARGV: number.  Returns
 * { removed, still on the customers' list }: that one still blocks the
 * number, and only the customer (or the operator) takes it off. */
static const char remove_lua[] =
	"return { redis.call('SREM', KEYS[1], ARGV[1]),"
	" redis.call('SISMEMBER', KEYS[2], ARGV[1]) }\n";

/* KEYS: the customers' list, its meta hash.  ARGV: number, who.  The
 * first opt-out is the one recorded.  Returns 1 when added, else 0. */
static const char optout_lua[] =
	"local t = redis.call('TIME')\n"
	"local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local n = redis.call('SADD', KEYS[1], ARGV[1])\n"
	"if n == 1 or redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then\n"
	"  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ' at=' ..\n"
	"      string.format('%.0f', ms)) end\n"
	"return n\n";

/* For people following an opt-out link: a short page, not JSON. */
static void
dnc_page(struct evhttp_request *req, int status, const char *text)
{
	struct evbuffer *buf = evbuffer_new();

	if (buf == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evbuffer_add_printf(buf, "<!doctype html><title>Opt-out</title>"
	    "<p>%s</p>\n", text);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/html; charset=utf-8");
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Cache-Control", "no-store");
	evhttp_send_reply(req, status, NULL, buf);
	evbuffer_free(buf);
}

int
gw_optout_sig(const char *secret, const char *e164, char out[65])
{
	if (secret[0] == '\0')
		return -1;
	return rq_hmac_sha256_hex(secret, strlen(secret), e164, strlen(e164),
	    out);
}

/*
 * A customer opt-out's record as GET /v1/dnc shows it: {"by": "link" |
 * "this_account" | "another_account" | "operator", "at": RFC 3339}.
 * Another tenant's name is not shown: it would tell whose customer the
 * number is.
 */
static json_t *
optout_meta(const char *v, const char *tenant)
{
	const char *at = strstr(v, " at="), *by;
	char t[40];
	size_t n;
	json_t *o;

	if (!strncmp(v, "tenant=", 7)) {
		n = at ? (size_t)(at - v - 7) : strlen(v + 7);
		by = n == strlen(tenant) && !strncmp(v + 7, tenant, n) ?
		    "this_account" : "another_account";
	} else if (!strncmp(v, "link", 4))
		by = "link";
	else
		by = "operator";
	o = json_pack("{s:s}", "by", by);
	if (o != NULL && at != NULL) {
		rq_rfc3339_format(strtoull(at + 4, NULL, 10), t, sizeof(t));
		json_object_set_new(o, "at", json_string(t));
	}
	return o;
}

/* "listed" and "lists" for the lists the number is on. */
static void
set_lists(json_t *o, int tenant, int customer)
{
	json_t *lists = json_array();

	if (tenant)
		json_array_append_new(lists, json_string("tenant"));
	if (customer)
		json_array_append_new(lists, json_string("customer"));
	json_object_set_new(o, "listed",
	    json_boolean(json_array_size(lists) > 0));
	json_object_set_new(o, "lists", lists);
}

static void
dnc_reply_cb(redisReply *r, void *arg)
{
	struct dnc_req *d = arg;
	struct gw_error err;
	json_t *o;
	char sig[65], url[160];

	if (r == NULL || r->type == REDIS_REPLY_ERROR ||
	    (d->op == DNC_LOOKUP || d->op == DNC_REMOVE ?
	    (r->type != REDIS_REPLY_ARRAY ||
	    r->elements < 2 || r->elements > 3 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER ||
	    r->element[1]->type != REDIS_REPLY_INTEGER) :
	    r->type != REDIS_REPLY_INTEGER)) {
		log_warnx("redis: do-not-call update failed: %s",
		    r == NULL ? "connection lost" : r->type ==
		    REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		if (d->op == DNC_LINK)
			dnc_page(d->req, 503, "The service is busy; your "
			    "request was not recorded.  Please try the link "
			    "again in a minute.");
		else {
			gw_error_set(&err, 503, "unavailable", NULL, "The "
			    "store is unavailable; nothing was changed.  "
			    "Retry shortly.");
			gw_reply_error(d->req, &err);
		}
		free(d);
		return;
	}
	if (d->op == DNC_LINK) {
		dnc_page(d->req, 200, "Done: this number will not be called "
		    "again.");
		free(d);
		return;
	}
	o = json_pack("{s:s}", "number", d->number);
	switch (d->op) {
	case DNC_ADD:
	case DNC_OPTOUT:
		json_object_set_new(o, "listed", json_true());
		json_object_set_new(o, "list", json_string(d->op == DNC_ADD ?
		    "tenant" : "customer"));
		json_object_set_new(o, "added", json_boolean(r->integer == 1));
		break;
	case DNC_REMOVE:
		set_lists(o, 0, r->element[1]->integer == 1);
		json_object_set_new(o, "removed",
		    json_boolean(r->element[0]->integer == 1));
		break;
	case DNC_LOOKUP:
		set_lists(o, r->element[0]->integer == 1,
		    r->element[1]->integer == 1);
		if (r->elements == 3 &&
		    r->element[2]->type == REDIS_REPLY_STRING &&
		    r->element[1]->integer == 1)
			json_object_set_new(o, "customer_optout",
			    optout_meta(r->element[2]->str, d->tenant));
		if (gw_optout_sig(d->secret, d->number, sig) == 0) {
			/* The link a tenant sends its customer. */
			snprintf(url, sizeof(url), LINK_PATH "?n=%%2B%s&sig=%s",
			    d->number + 1, sig);
			json_object_set_new(o, "optout_link",
			    json_string(url));
		}
		break;
	case DNC_LINK:
		break;
	}
	gw_reply_json(d->req, 200, o);
	json_decref(o);
	free(d);
}

/* Normalises number to E.164 in d, or answers 400 and returns -1. */
static int
dnc_number(struct evhttp_request *req, const char *number,
    struct dnc_req *d)
{
	struct rq_e164 num;
	struct gw_error err;
	char why[160];

	if (rq_e164_parse(number, &num, why, sizeof(why)) == -1) {
		gw_error_set(&err, 400, "invalid_field", "number",
		    "The number must be in E.164 form like +15551234567: %s.",
		    why);
		gw_reply_error(req, &err);
		return -1;
	}
	snprintf(d->number, sizeof(d->number), "%s", num.e164);
	return 0;
}

/* The number of POST /v1/optout's body {"number": "..."}; NULL after
 * answering 400.  *root must be freed by the caller. */
static const char *
optout_body(struct evhttp_request *req, json_t **root)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	struct gw_error err;
	const char *n;

	*root = NULL;
	if (len > 0 && len < OPTOUT_BODY_MAX)
		*root = json_loadb((const char *)evbuffer_pullup(in, -1), len,
		    JSON_REJECT_DUPLICATES, NULL);
	if ((n = json_string_value(json_object_get(*root, "number")))
	    == NULL) {
		gw_error_set(&err, 400, "invalid_request", "number", "Send "
		    "{\"number\": \"+15551234567\"}, at most %d bytes.",
		    OPTOUT_BODY_MAX - 1);
		gw_reply_error(req, &err);
	}
	return n;
}

/* GET /optout?n=<number>&sig=<hex HMAC-SHA256 of the E.164 number>: the
 * customer's own link, no account needed. */
static void
dnc_link(const struct rq_config *cfg, struct gw_store *st,
    struct evhttp_request *req)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	struct evkeyvalq q = { 0 };
	struct rq_e164 num;
	struct dnc_req *d = NULL;
	const char *n, *sig, *argv[7];
	char want[65], why[160];

	TAILQ_INIT(&q);
	if (uri == NULL || evhttp_uri_get_query(uri) == NULL ||
	    evhttp_parse_query_str(evhttp_uri_get_query(uri), &q) == -1 ||
	    (n = evhttp_find_header(&q, "n")) == NULL ||
	    (sig = evhttp_find_header(&q, "sig")) == NULL ||
	    rq_e164_parse(n, &num, why, sizeof(why)) == -1 ||
	    gw_optout_sig(cfg->optout_secret, num.e164, want) == -1 ||
	    strlen(sig) != 64 || CRYPTO_memcmp(sig, want, 64) != 0) {
		dnc_page(req, 403, "This opt-out link is not valid.  Please "
		    "use the whole link you were sent, or reply to the "
		    "sender.");
		goto done;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		evhttp_send_error(req, 500, NULL);
		goto done;
	}
	d->req = req;
	d->op = DNC_LINK;
	snprintf(d->number, sizeof(d->number), "%s", num.e164);
	argv[0] = "EVAL";
	argv[1] = optout_lua;
	argv[2] = "2";
	argv[3] = RQ_KEY_DNC_CUSTOMER;
	argv[4] = RQ_KEY_DNC_CUSTOMER_META;
	argv[5] = d->number;
	argv[6] = "link";
	if (gw_store_command(st, NULL, 7, argv, dnc_reply_cb, d) == -1) {
		dnc_page(req, 503, "The service is busy; your request was not "
		    "recorded.  Please try the link again in a minute.");
		free(d);
		goto done;
	}
	log_info("do-not-call: customer opt-out by link for %s", d->number);
done:
	evhttp_clear_headers(&q);
}

int
gw_dnc_route(const struct rq_config *cfg, struct gw_store *st,
    struct evhttp_request *req, const char *path, int cmd)
{
	const struct rq_tenant *t;
	struct gw_error err;
	struct dnc_req *d;
	char klist[RQ_NAME_MAX + 32], who[RQ_NAME_MAX + 16];
	const char *argv[8], *n;
	json_t *root = NULL;
	char *raw = NULL;
	int argc = 0;

	if (!strcmp(path, LINK_PATH)) {
		if (cmd == EVHTTP_REQ_GET)
			dnc_link(cfg, st, req);
		else {
			evhttp_add_header(evhttp_request_get_output_headers(
			    req), "Allow", "GET");
			dnc_page(req, 405, "Open this link in a browser.");
		}
		return 1;
	}
	if (!strcmp(path, OPTOUT_PATH)) {
		if (cmd != EVHTTP_REQ_POST) {
			evhttp_add_header(evhttp_request_get_output_headers(
			    req), "Allow", "POST");
			gw_error_set(&err, 405, "method_not_allowed", NULL,
			    "This path only accepts POST.");
			gw_reply_error(req, &err);
			return 1;
		}
	} else if (strncmp(path, DNC_PATH, sizeof(DNC_PATH) - 1) != 0 ||
	    path[sizeof(DNC_PATH) - 1] == '\0' ||
	    strchr(path + sizeof(DNC_PATH) - 1, '/') != NULL)
		return 0;
	else if (cmd != EVHTTP_REQ_PUT && cmd != EVHTTP_REQ_DELETE &&
	    cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "GET, HEAD, PUT, DELETE");
		gw_error_set(&err, 405, "method_not_allowed", NULL,
		    "This path only accepts GET, HEAD, PUT and DELETE.");
		gw_reply_error(req, &err);
		return 1;
	}
	if ((t = gw_http_auth(cfg, req)) == NULL)
		return 1;
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		evhttp_send_error(req, 500, NULL);
		return 1;
	}
	d->req = req;
	d->secret = cfg->optout_secret;
	d->tenant = t->name;
	if (cmd == EVHTTP_REQ_POST) {
		d->op = DNC_OPTOUT;
		if ((n = optout_body(req, &root)) == NULL)
			goto done;
	} else {
		d->op = cmd == EVHTTP_REQ_PUT ? DNC_ADD :
		    cmd == EVHTTP_REQ_DELETE ? DNC_REMOVE : DNC_LOOKUP;
		/* "%2B" or a literal '+'; never '+' as a space. */
		if ((raw = evhttp_uridecode(path + sizeof(DNC_PATH) - 1, 0,
		    NULL)) == NULL) {
			evhttp_send_error(req, 500, NULL);
			goto done;
		}
		n = raw;
	}
	if (dnc_number(req, n, d) == -1)
		goto done;
	snprintf(klist, sizeof(klist), "%s%s", RQ_KEY_DNC_TENANT, t->name);
	switch (d->op) {
	case DNC_ADD:
		argv[argc++] = "SADD";
		argv[argc++] = klist;
		argv[argc++] = d->number;
		break;
	case DNC_REMOVE:
		argv[argc++] = "EVAL";
		argv[argc++] = remove_lua;
		argv[argc++] = "2";
		argv[argc++] = klist;
		argv[argc++] = RQ_KEY_DNC_CUSTOMER;
		argv[argc++] = d->number;
		break;
	case DNC_OPTOUT:
		snprintf(who, sizeof(who), "tenant=%s", t->name);
		argv[argc++] = "EVAL";
		argv[argc++] = optout_lua;
		argv[argc++] = "2";
		argv[argc++] = RQ_KEY_DNC_CUSTOMER;
		argv[argc++] = RQ_KEY_DNC_CUSTOMER_META;
		argv[argc++] = d->number;
		argv[argc++] = who;
		break;
	case DNC_LOOKUP:
		argv[argc++] = "EVAL";
		argv[argc++] = lookup_lua;
		argv[argc++] = "3";
		argv[argc++] = klist;
		argv[argc++] = RQ_KEY_DNC_CUSTOMER;
		argv[argc++] = RQ_KEY_DNC_CUSTOMER_META;
		argv[argc++] = d->number;
		break;
	case DNC_LINK:		/* dnc_link */
		break;
	}
	if (gw_store_command(st, NULL, argc, argv, dnc_reply_cb, d) == -1) {
		gw_error_set(&err, 503, "unavailable", NULL, "The store is "
		    "unavailable; nothing was changed.  Retry shortly.");
		gw_reply_error(req, &err);
		goto done;
	}
	if (d->op != DNC_LOOKUP)
		log_info("tenant %s: do-not-call %s %s", t->name,
		    d->op == DNC_REMOVE ? "remove" : d->op == DNC_ADD ?
		    "add" : "customer opt-out", d->number);
	d = NULL;		/* dnc_reply_cb answers and frees it */
done:
	free(d);
	free(raw);
	json_decref(root);
	return 1;
}
