/* Status callbacks: a thread of ringq-accounting that POSTs each queued
 * status change to its call's callback_url, signed with the tenant's
 * callback_secret, in order per call, retrying with backoff for an hour.
 * It has its own Redis connection, so a slow receiver never holds up the
 * accounting loop, let alone the calls. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/rand.h>

#include "keys.h"
#include "accounting.h"
#include "log.h"
#include "util.h"

#define CB_CLAIM_EVERY_MS	100
#define CB_CLAIM_SCAN		1000	/* busy tenants' calls passed a claim */
#define CB_POLL_MS		100

/*
 * KEYS: callbacks.  ARGV: now, lease deadline, how many, queue prefix,
 * later, then the tenant of each delivery in flight.  Takes the due calls
 * under a lease (another worker, or this one after a crash, takes them
 * again once it expires) and returns { id, head of its queue, ... }; a
 * call with an empty queue leaves the zset.  A tenant has at most
 * ACCT_CB_PER_TENANT deliveries in flight: a call of one that has them is
 * due again at later instead, up to CB_CLAIM_SCAN of them a claim, so
 * that another tenant's calls due behind thousands of a hung receiver's
 * wait a few claims, not one per call.
 */
static const char claim_lua[] =
	"local room, want = {}, tonumber(ARGV[3])\n"
	"for i = 6, #ARGV do\n"
	"  room[ARGV[i]] = (room[ARGV[i]] or " RQ_STR(ACCT_CB_PER_TENANT)
	") - 1\n"
	"end\n"
	"local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1],"
	" 'LIMIT', 0, want + " RQ_STR(CB_CLAIM_SCAN) ")\n"
	"local out = {}\n"
	"for _, id in ipairs(ids) do\n"
	"  if #out >= 2 * want then break end\n"
	"  local head = redis.call('LINDEX', ARGV[4] .. id, 0)\n"
	"  local t = head and string.match(head, '\"tenant\":\"([^\"]*)\"')\n"
	"  local r = t and (room[t] or " RQ_STR(ACCT_CB_PER_TENANT) ")\n"
	"  if not head then redis.call('ZREM', KEYS[1], id)\n"
	"  elseif r and r <= 0 then redis.call('ZADD', KEYS[1], ARGV[5], id)\n"
	"  else\n"
	"    if t then room[t] = r - 1 end\n"
	"    redis.call('ZADD', KEYS[1], ARGV[2], id)\n"
	"    out[#out + 1] = id\n"
	"    out[#out + 1] = head\n"
	"  end\n"
	"end\n"
	"return out\n";

/*
 * KEYS: callbacks, the call's queue.  ARGV: id, the head as claimed, its
 * replacement ('' = done: drop it), due ms of the call's next delivery.
 * Acts on the head only if it is still the one claimed.
 */
static const char finish_lua[] =
	"if redis.call('LINDEX', KEYS[2], 0) == ARGV[2] then\n"
	"  if ARGV[3] == '' then redis.call('LPOP', KEYS[2])\n"
	"  else redis.call('LSET', KEYS[2], 0, ARGV[3]) end\n"
	"end\n"
	"if redis.call('LLEN', KEYS[2]) > 0 then\n"
	"  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])\n"
	"else redis.call('ZREM', KEYS[1], ARGV[1]) end\n"
	"return 1\n";

/* One delivery in flight. */
struct cb_xfer {
	TAILQ_ENTRY(cb_xfer)	 entry;
	struct acct_cb		*cb;
	CURL			*easy;
	struct curl_slist	*headers;
	char			 id[RQ_ID_LEN + 1];
	char			 tenant[RQ_NAME_MAX + 1];
	char			*head;		/* the envelope as claimed */
	json_t			*env;
	char			 status[16];	/* of the event, for logs */
	const char		*refused;	/* why an address was refused */
	char			 refused_addr[INET6_ADDRSTRLEN];
	int			 allowed;	/* addresses let through */
	char			 errbuf[CURL_ERROR_SIZE];
};

struct acct_cb {
	const struct rq_config	*cfg;
	pthread_t		 thread;
	atomic_int		 stop;
	struct rq_redis		 r;
	struct rq_script	 claim, finish;
	struct rq_script	*scripts[2];
	CURLM			*multi;
	int			 active;
	TAILQ_HEAD(, cb_xfer)	 xfers;		/* in flight */
	uint64_t		 next_claim_ms;
};

char *
acct_cb_body(const struct rq_msg *m)
{
	json_t *o;
	char at[32], *s;

	if ((o = json_object()) == NULL)
		return NULL;
	rq_rfc3339_format(m->ts_ms, at, sizeof(at));
	json_object_set_new(o, "id", json_string(m->call_id));
	json_object_set_new(o, "status", json_string(m->status));
	if (m->reason != NULL)
		json_object_set_new(o, "reason", json_string(m->reason));
	if (rq_msg_has(m, sip_code))
		json_object_set_new(o, "sip_code",
		    json_integer((json_int_t)m->sip_code));
	json_object_set_new(o, "at", json_string(at));
	json_object_set_new(o, "attempt", json_integer((json_int_t)m->attempt));
	if (rq_msg_has(m, result) && m->result != NULL)
		json_object_set_new(o, "result", acct_result_json(m));
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}

void
acct_cb_sign(const char *secret, long long t, const char *body, char *out,
    size_t outlen)
{
	char hex[65], *msg;
	int n;

	/* Over "<t>.<body>", body being the very bytes POSTed. */
	out[0] = '\0';
	if ((n = asprintf(&msg, "%lld.%s", t, body)) == -1)
		return;
	if (rq_hmac_sha256_hex(secret, strlen(secret), msg, (size_t)n,
	    hex) == 0)
		snprintf(out, outlen, "t=%lld,v1=%s", t, hex);
	free(msg);
}

uint64_t
acct_cb_backoff_ms(int tries, double r)
{
	uint64_t d = 1000;

	while (--tries > 0 && d < ACCT_CB_BACKOFF_MAX_MS)
		d *= 2;
	if (d > ACCT_CB_BACKOFF_MAX_MS)
		d = ACCT_CB_BACKOFF_MAX_MS;
	if (r < 0 || r >= 1)
		r = 0;
	/* Jitter spreads the retries of many calls whose receiver came back
	 * at once. */
	return d + (uint64_t)(r * (double)d / 4);
}

int
acct_cb_url_ok(const char *url)
{
	const char *h;

	if (!strncasecmp(url, "http://", 7))
		h = url + 7;
	else if (!strncasecmp(url, "https://", 8))
		h = url + 8;
	else
		return 0;
	return *h != '\0' && *h != '/' && strpbrk(url, " \t\r\n") == NULL;
}

static double
jitter(void)
{
	unsigned int v;

	if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
		return 0;
	return (double)v / 4294967296.0;
}

/* Checked on the address actually used, after curl's own DNS (so no
 * second look-up can answer differently), for every connection. */
static curl_socket_t
open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct cb_xfer *x = arg;

	const char *why;

	if ((why = rq_addr_refusal(&a->addr,
	    x->cb->cfg->callbacks_allow_loopback,
	    x->cb->cfg->callbacks_allow_private)) != NULL) {
		x->refused = why;
		rq_addr_text(&a->addr, x->refused_addr,
		    sizeof(x->refused_addr));
		return CURL_SOCKET_BAD;
	}
	x->allowed++;
	return socket(a->family, a->socktype, a->protocol);
}

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	return size * n;
}

static void
xfer_free(struct cb_xfer *x)
{
	if (x == NULL)
		return;
	if (x->easy) {
		TAILQ_REMOVE(&x->cb->xfers, x, entry);
		curl_multi_remove_handle(x->cb->multi, x->easy);
		curl_easy_cleanup(x->easy);
	}
	curl_slist_free_all(x->headers);
	json_decref(x->env);
	free(x->head);
	free(x);
}

/* Ends a delivery in Redis: next "" drops the head, else replaces it;
 * due is when the call's next delivery may start. */
static void
finish(struct acct_cb *cb, struct cb_xfer *x, const char *next, uint64_t due)
{
	char q[64], d[24];
	const char *argv[] = { RQ_KEY_CALLBACKS, q, x->id, x->head, next, d };
	redisReply *rep;

	snprintf(q, sizeof(q), "%s%s", RQ_KEY_CBQ, x->id);
	snprintf(d, sizeof(d), "%" PRIu64, due);
	/* Should this fail, the lease expires and the delivery is made
	 * again: at least once. */
	if ((rep = rq_redis_eval(&cb->r, &cb->finish, 2, 6, argv)) != NULL)
		freeReplyObject(rep);
	else
		log_warnx("%s: callback %s: cannot record the outcome; it will "
		    "be retried after its lease", x->id, x->status);
}

/* A failed try: again after the backoff, or give up after an hour. */
static void
retry(struct acct_cb *cb, struct cb_xfer *x, const char *why)
{
	json_t *first = json_object_get(x->env, "first_ms");
	uint64_t now = rq_now_ms(), first_ms, delay;
	int tries = (int)json_integer_value(json_object_get(x->env, "tries"));
	char *next;

	first_ms = json_is_string(first) ?
	    strtoull(json_string_value(first), NULL, 10) : now;
	tries++;
	delay = acct_cb_backoff_ms(tries, jitter());
	if (now + delay > first_ms + ACCT_CB_GIVE_UP_MS) {
		log_warnx("%s: callback %s: giving up after %d tries over an "
		    "hour: %s", x->id, x->status, tries, why);
		finish(cb, x, "", now);
		return;
	}
	json_object_set_new(x->env, "tries", json_integer(tries));
	if ((next = json_dumps(x->env, JSON_COMPACT)) == NULL) {
		finish(cb, x, x->head, now + delay);
		return;
	}
	log_info("%s: callback %s: try %d failed (%s); next in %" PRIu64
	    " ms", x->id, x->status, tries, why, delay);
	finish(cb, x, next, now + delay);
	free(next);
}

/* Appends s to *list; on failure frees the whole list (curl would keep
 * it, and it would leak) and returns -1. */
static int
header(struct curl_slist **list, const char *s)
{
	struct curl_slist *l;

	if ((l = curl_slist_append(*list, s)) == NULL) {
		curl_slist_free_all(*list);
		*list = NULL;
		return -1;
	}
	*list = l;
	return 0;
}

static void
done(struct acct_cb *cb, struct cb_xfer *x, CURLcode res)
{
	long code = 0;
	char why[CURL_ERROR_SIZE + 32];

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
	if (res == CURLE_OK && code >= 200 && code <= 299) {
		log_debug("%s: callback %s delivered (%ld)", x->id, x->status,
		    code);
		finish(cb, x, "", rq_now_ms());
		return;
	}
	/* (only when every address was refused: a host with a public
	 * address beside a private one gets its retries, whatever the
	 * public one did) */
	if (x->refused && x->allowed == 0) {
		log_warnx("%s: callback %s dropped: its URL leads to %s, %s, "
		    "which callbacks may not reach", x->id, x->status,
		    x->refused, x->refused_addr);
		finish(cb, x, "", rq_now_ms());
		return;
	}
	if (res == CURLE_UNSUPPORTED_PROTOCOL || res == CURLE_URL_MALFORMAT) {
		log_warnx("%s: callback %s dropped: %s", x->id, x->status,
		    x->errbuf[0] ? x->errbuf : curl_easy_strerror(res));
		finish(cb, x, "", rq_now_ms());
		return;
	}
	if (res != CURLE_OK)
		snprintf(why, sizeof(why), "%s", x->errbuf[0] ? x->errbuf :
		    curl_easy_strerror(res));
	else
		snprintf(why, sizeof(why), "HTTP %ld", code);
	retry(cb, x, why);
}

/* Starts the delivery of a claimed envelope.  The xfer owns head. */
static void
start(struct acct_cb *cb, const char *id, char *head)
{
	const struct rq_tenant *t;
	struct cb_xfer *x;
	const char *url, *body, *tenant, *st;
	size_t bodylen;
	char sig[160], hdr[200];
	json_t *env, *b = NULL;
	json_error_t jerr;

	if ((x = calloc(1, sizeof(*x))) == NULL) {
		free(head);
		return;
	}
	x->cb = cb;
	x->head = head;
	snprintf(x->id, sizeof(x->id), "%s", id);
	if ((env = x->env = json_loads(head, 0, &jerr)) == NULL &&
	    json_error_code(&jerr) == json_error_out_of_memory) {
		/* not the entry's fault: its lease brings it back */
		xfer_free(x);
		return;
	}
	url = json_string_value(json_object_get(env, "url"));
	body = json_string_value(json_object_get(env, "body"));
	tenant = json_string_value(json_object_get(env, "tenant"));
	/* The body is sent and signed as a C string: no NUL inside. */
	bodylen = body != NULL ? json_string_length(json_object_get(env,
	    "body")) : 0;
	if (url == NULL || body == NULL || tenant == NULL ||
	    strlen(body) != bodylen) {
		log_warnx("%s: malformed callback entry dropped", x->id);
		finish(cb, x, "", rq_now_ms());
		xfer_free(x);
		return;
	}
	if ((b = json_loads(body, 0, NULL)) != NULL &&
	    (st = json_string_value(json_object_get(b, "status"))) != NULL)
		snprintf(x->status, sizeof(x->status), "%s", st);
	json_decref(b);
	if (!acct_cb_url_ok(url)) {
		log_warnx("%s: callback %s dropped: the URL is not http(s)",
		    x->id, x->status);
		finish(cb, x, "", rq_now_ms());
		xfer_free(x);
		return;
	}
	snprintf(x->tenant, sizeof(x->tenant), "%s", tenant);
	/* The gateway takes a callback_url only from a tenant with a
	 * secret; one taken out of the configuration since (or the tenant)
	 * leaves nothing to sign with, and a receiver must not be sent what
	 * it cannot tell from a forgery. */
	if ((t = rq_config_tenant(cb->cfg, tenant)) == NULL ||
	    t->callback_secret[0] == '\0') {
		log_warnx("%s: callback %s dropped: tenant %s has no "
		    "callback_secret now", x->id, x->status, tenant);
		finish(cb, x, "", rq_now_ms());
		xfer_free(x);
		return;
	}
	acct_cb_sign(t->callback_secret, (long long)(rq_now_ms() / 1000),
	    body, sig, sizeof(sig));
	snprintf(hdr, sizeof(hdr), "X-Ringq-Signature: %s", sig);
	if (sig[0] == '\0' ||
	    header(&x->headers, "Content-Type: application/json") == -1 ||
	    header(&x->headers, "User-Agent: ringq/1") == -1 ||
	    header(&x->headers, "Expect:") == -1 ||
	    header(&x->headers, hdr) == -1 ||
	    (x->easy = curl_easy_init()) == NULL) {
		/* counted as a failed try, so it ends */
		retry(cb, x, sig[0] == '\0' ? "cannot sign the body" :
		    "out of memory");
		xfer_free(x);
		return;
	}
	curl_easy_setopt(x->easy, CURLOPT_URL, url);
	curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(x->easy, CURLOPT_FOLLOWLOCATION, 0L);
	/* No proxy from the environment (http_proxy ...): the address
	 * check would see the proxy's, not the receiver's. */
	curl_easy_setopt(x->easy, CURLOPT_PROXY, "");
	curl_easy_setopt(x->easy, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)ACCT_CB_TIMEOUT_MS);
	curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)ACCT_CB_TIMEOUT_MS);
	curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
	/* Exactly the bytes signed. */
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)bodylen);
	curl_easy_setopt(x->easy, CURLOPT_COPYPOSTFIELDS, body);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(x->easy, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(x->easy, CURLOPT_OPENSOCKETDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	if (curl_multi_add_handle(cb->multi, x->easy) != CURLM_OK) {
		curl_easy_cleanup(x->easy);
		x->easy = NULL;
		retry(cb, x, "cannot start the transfer");
		xfer_free(x);
		return;
	}
	cb->active++;
	TAILQ_INSERT_TAIL(&cb->xfers, x, entry);
	log_debug("%s: callback %s: posting", x->id, x->status);
}

static void
claim(struct acct_cb *cb)
{
	char now[24], lease[24], n[12], later[24];
	const char *argv[6 + ACCT_CB_PARALLEL] = {
	    RQ_KEY_CALLBACKS, now, lease, n, RQ_KEY_CBQ, later };
	const struct cb_xfer *x;
	uint64_t t = rq_now_ms();
	redisReply *rep;
	size_t i;
	int argc = 6;

	if (cb->active >= ACCT_CB_PARALLEL || rq_mono_ms() < cb->next_claim_ms)
		return;
	cb->next_claim_ms = rq_mono_ms() + CB_CLAIM_EVERY_MS;
	if (rq_redis_ready(&cb->r) == -1)
		return;
	snprintf(now, sizeof(now), "%" PRIu64, t);
	snprintf(lease, sizeof(lease), "%" PRIu64, t + ACCT_CB_LEASE_MS);
	snprintf(n, sizeof(n), "%d", ACCT_CB_PARALLEL - cb->active);
	snprintf(later, sizeof(later), "%" PRIu64, t + ACCT_CB_WAIT_MS);
	/* whose deliveries are in flight (at most ACCT_CB_PARALLEL) */
	TAILQ_FOREACH(x, &cb->xfers, entry)
		if (argc < (int)(sizeof(argv) / sizeof(argv[0])))
			argv[argc++] = x->tenant;
	if ((rep = rq_redis_eval(&cb->r, &cb->claim, 1, argc, argv)) == NULL)
		return;
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements % 2 == 0)
		for (i = 0; i < rep->elements; i += 2) {
			const redisReply *id = rep->element[i];
			const redisReply *h = rep->element[i + 1];
			char *head;

			if (id->type != REDIS_REPLY_STRING ||
			    h->type != REDIS_REPLY_STRING ||
			    !rq_call_id_valid(id->str))
				continue;
			if ((head = strdup(h->str)) != NULL)
				start(cb, id->str, head);
		}
	freeReplyObject(rep);
}

static void
reap(struct acct_cb *cb)
{
	struct cb_xfer *x;
	CURLMsg *m;
	int left, running;

	curl_multi_perform(cb->multi, &running);
	while ((m = curl_multi_info_read(cb->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		x = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		if (x == NULL)
			continue;
		done(cb, x, m->data.result);
		cb->active--;
		xfer_free(x);
	}
}

static void *
cb_main(void *arg)
{
	struct acct_cb *cb = arg;
	struct cb_xfer *x;

	while (!atomic_load(&cb->stop)) {
		claim(cb);
		reap(cb);
		curl_multi_poll(cb->multi, NULL, 0, CB_POLL_MS, NULL);
	}
	/* Deliveries in flight go back to their queue, due now: the next
	 * start (or another accounting) makes them. */
	while ((x = TAILQ_FIRST(&cb->xfers)) != NULL) {
		finish(cb, x, x->head, rq_now_ms());
		xfer_free(x);
	}
	return NULL;
}

struct acct_cb *
acct_cb_start(const struct rq_config *cfg)
{
	struct acct_cb *cb;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_warnx("callbacks: curl_global_init failed");
		return NULL;
	}
	if ((cb = calloc(1, sizeof(*cb))) == NULL)
		goto fail;
	cb->cfg = cfg;
	atomic_init(&cb->stop, 0);
	TAILQ_INIT(&cb->xfers);
	cb->claim.name = "callback claim";
	cb->claim.src = claim_lua;
	cb->finish.name = "callback finish";
	cb->finish.src = finish_lua;
	cb->scripts[0] = &cb->claim;
	cb->scripts[1] = &cb->finish;
	rq_redis_init(&cb->r, cfg->redis_host, cfg->redis_port, cb->scripts, 2);
	if ((cb->multi = curl_multi_init()) == NULL)
		goto fail;
	if (pthread_create(&cb->thread, NULL, cb_main, cb) != 0) {
		log_warnx("callbacks: cannot start the thread");
		goto fail;
	}
	log_info("callbacks: delivering to public addresses%s%s",
	    cfg->callbacks_allow_loopback ? ", loopback" : "",
	    cfg->callbacks_allow_private ? ", private ones and this host's" :
	    "");
	return cb;
fail:
	if (cb && cb->multi)
		curl_multi_cleanup(cb->multi);
	free(cb);
	curl_global_cleanup();
	return NULL;
}

void
acct_cb_stop(struct acct_cb *cb)
{
	if (cb == NULL)
		return;
	atomic_store(&cb->stop, 1);
	curl_multi_wakeup(cb->multi);
	pthread_join(cb->thread, NULL);
	curl_multi_cleanup(cb->multi);
	rq_redis_close(&cb->r);
	free(cb);
	curl_global_cleanup();
}
