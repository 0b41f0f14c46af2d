/* GET /v1/calls/{id}/recordings/{name}: a recording a VoiceXML application
 * made on the call (<record>), which the telserver keeps in Redis
 * (RQ_KEY_REC, as long as the call) and names in the call's result.  Only the
 * call's tenant gets it; any other key gets the same 404 as a call that
 * does not exist. */
#include <event2/buffer.h>
#include <event2/http.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "keys.h"
#include "log.h"
#include "util.h"

#define CALLS_PATH	"/v1/calls"
#define REC_PART	"/recordings/"
#define REC_NAME_MAX	32

/* KEYS: rq:job:<id> rq:rec:<id>:<name>.  ARGV: tenant.
 * The recording, or nil when the call is not this tenant's or it has no
 * such recording (expired with its call: RQ_REC_SLACK_MS). */
static const char rec_lua[] =
    "if redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then\n"
    "  return false\n"
    "end\n"
    "return redis.call('GET', KEYS[2])\n";

/* The 404 of a name that is not a recording of a call the tenant still
 * has (it goes with its call: the tenant's retention_days). */
static void
no_recording(struct evhttp_request *req)
{
	gw_reply_simple(req, 404, "not_found", "This call has no recording "
	    "of this name.");
}

static void
rec_got(struct redisReply *r, void *arg)
{
	struct evhttp_request *req = arg;
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *b;

	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		if (r != NULL)
			log_warnx("redis: GET of a recording: %s", r->str);
		gw_reply_unavailable(req);
		return;
	}
	if (r->type != REDIS_REPLY_STRING) {
		no_recording(req);
		return;
	}
	if ((b = evbuffer_new()) == NULL ||
	    evbuffer_add(b, r->str, r->len) == -1) {
		if (b != NULL)
			evbuffer_free(b);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evhttp_add_header(h, "Content-Type", "audio/x-wav");
	evhttp_add_header(h, "Cache-Control", "private, max-age=3600");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* A recording's name: <attempt>-<n>, digits only. */
static int
rec_name_valid(const char *s)
{
	size_t i, n = strlen(s);
	int dash = 0;

	if (n < 3 || n > REC_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		if (s[i] == '-' && i > 0 && i + 1 < n && !dash)
			dash = 1;
		else if (s[i] < '0' || s[i] > '9')
			return 0;
	}
	return dash;
}

int
gw_recordings_route(const struct rq_config *cfg, struct gw_store *st,
    struct evhttp_request *req, const char *path, int cmd)
{
	const struct rq_tenant *tenant;
	const char *id, *part, *name;
	char idbuf[RQ_ID_LEN + 1], jobkey[96], reckey[160];
	const char *argv[6];
	size_t idlen;

	if (strncmp(path, CALLS_PATH "/", sizeof(CALLS_PATH)))
		return 0;
	id = path + sizeof(CALLS_PATH);
	if ((part = strstr(id, REC_PART)) == NULL)
		return 0;
	name = part + strlen(REC_PART);
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "GET, HEAD");
		gw_reply_simple(req, 405, "method_not_allowed",
		    "A recording can only be read (GET).");
		return 1;
	}
	if ((tenant = gw_http_auth(cfg, req)) == NULL)
		return 1;
	idlen = (size_t)(part - id);
	if (idlen == 0 || idlen > RQ_ID_LEN) {
		gw_reply_no_call(req);
		return 1;
	}
	memcpy(idbuf, id, idlen);
	idbuf[idlen] = '\0';
	if (!rq_call_id_valid(idbuf) || !rec_name_valid(name)) {
		no_recording(req);
		return 1;
	}
	snprintf(jobkey, sizeof(jobkey), "%s%s", RQ_KEY_JOB, idbuf);
	snprintf(reckey, sizeof(reckey), "%s%s:%s", RQ_KEY_REC, idbuf, name);
	argv[0] = "EVAL";
	argv[1] = rec_lua;
	argv[2] = "2";
	argv[3] = jobkey;
	argv[4] = reckey;
	argv[5] = tenant->name;
	if (gw_store_command(st, idbuf, 6, argv, rec_got, req) == -1)
		gw_reply_unavailable(req);
	return 1;
}
