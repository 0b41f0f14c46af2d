/* A VoiceXML application on a call: the platform of vxml.h on top of the
 * telserver's parts.  Documents, scripts, grammars and <audio> come from
 * the fetcher (fetch.c), prompts go to the customer leg's prompt queue
 * (speech from tts.c, audio files decoded by wav.c), keys come from the
 * stream (dtmf.c), recordings from record.c (kept in Redis for the
 * gateway to serve); the one timer is an su_timer.
 * The call (call.c) owns the app and hears of its end through
 * tel_call_app_done(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "keys.h"
#include "lifecycle.h"
#include "log.h"
#include "redis_sync.h"
#include "telserver.h"
#include "vxml.h"

enum app_fetch_kind { APP_FETCH_VXML, APP_FETCH_AUDIO };

/* One fetch in flight: for the interpreter (vxml_id) or for an <audio>
 * (placeholder queued in its place, fallback text if it fails). */
struct app_fetch {
	struct app_fetch	*next, *prev;
	struct tel_app		*app;
	enum app_fetch_kind	 kind;
	uint64_t		 id;		/* the fetcher's */
	unsigned		 vxml_id;
	struct tel_speech	*placeholder;
	char			*fallback;	/* text, NULL: nothing */
	char			*url;
};

struct tel_app {
	struct tel_call		*call;
	struct tel_ctx		*ctx;
	struct tel_stream	*st;		/* NULL once the line is gone */
	struct vxml_session	*s;
	su_timer_t		*timer;
	struct app_fetch	*fetches;
	int			 nrecordings;	/* kept so far, for their names */
	int			 over;		/* done() seen or stopped */
};

/* ---- fetches ---- */

static void
fetch_unlink(struct app_fetch *f)
{
	struct tel_app *a = f->app;

	if (f->prev)
		f->prev->next = f->next;
	else
		a->fetches = f->next;
	if (f->next)
		f->next->prev = f->prev;
	tel_speech_unref(f->placeholder);
	free(f->fallback);
	free(f->url);
	free(f);
}

static struct app_fetch *
fetch_new(struct tel_app *a, enum app_fetch_kind kind)
{
	struct app_fetch *f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	f->app = a;
	f->kind = kind;
	f->next = a->fetches;
	if (a->fetches)
		a->fetches->prev = f;
	a->fetches = f;
	return f;
}

/* An <audio> came (or not): its samples replace the placeholder, or its
 * fallback text does. */
static void
audio_fetched(struct app_fetch *f, const struct tel_fetch_res *res)
{
	struct tel_app *a = f->app;
	struct tel_speech *sp = NULL;
	char err[160];

	if (res->error != NULL)
		snprintf(err, sizeof(err), "%s", res->error);
	else if (res->status != 200)
		snprintf(err, sizeof(err), "HTTP status %ld", res->status);
	else
		sp = tel_audio_decode(res->body, res->len,
		    res->content_type[0] ? res->content_type : res->url,
		    err, sizeof(err));
	if (sp != NULL) {
		tel_speech_fill(f->placeholder, sp);
		tel_speech_unref(sp);
		return;
	}
	log_info("call %s: audio %s: %s; %s", a->call->id, f->url, err,
	    f->fallback ? "playing its fallback" : "skipped");
	if (a->st == NULL)
		return;
	if (f->fallback != NULL) {
		sp = tel_tts_get(a->ctx->tts, f->fallback);
		tel_stream_queue_replace(a->st, f->placeholder, sp);
		tel_speech_unref(sp);
	} else
		tel_stream_queue_replace(a->st, f->placeholder, NULL);
}

static void
fetch_done(void *arg, const struct tel_fetch_res *res)
{
	struct app_fetch *f = arg;
	struct tel_app *a = f->app;
	struct vxml_fetch_res vr;
	unsigned vid = f->vxml_id;

	if (f->kind == APP_FETCH_AUDIO) {
		audio_fetched(f, res);
		fetch_unlink(f);
		return;
	}
	fetch_unlink(f);
	memset(&vr, 0, sizeof(vr));
	vr.status = res->error ? 0 : (int)res->status;
	vr.error = res->error;
	vr.url = res->url;
	vr.content_type = res->content_type;
	vr.body = res->body;
	vr.len = res->len;
	log_debug("call %s: fetched %s: %s %ld, %zu bytes%s", a->call->id,
	    res->url ? res->url : "?", res->error ? res->error : "status",
	    res->status, res->len, res->from_cache ? " (cache)" : "");
	vxml_fetch_done(a->s, vid, &vr);
}

static void
op_fetch(void *arg, const struct vxml_fetch_req *req)
{
	struct tel_app *a = arg;
	struct tel_fetch_part parts[64];
	struct tel_fetch_req fr;
	struct vxml_fetch_res vr;
	struct app_fetch *f;
	size_t i, n = req->nparams;

	if (n > sizeof(parts) / sizeof(parts[0]) ||
	    (f = fetch_new(a, APP_FETCH_VXML)) == NULL) {
		memset(&vr, 0, sizeof(vr));
		vr.error = n > 64 ? "more than 64 names in a namelist" :
		    "out of memory";
		vxml_fetch_done(a->s, req->id, &vr);
		return;
	}
	memset(parts, 0, sizeof(parts));
	for (i = 0; i < n; i++) {
		const struct vxml_param *p = &req->params[i];

		parts[i].name = p->name;
		if (p->data != NULL) {
			parts[i].value = p->data;
			parts[i].len = p->len;
			parts[i].type = p->type ? p->type : "audio/x-wav";
			parts[i].filename = "recording.wav";
		} else {
			parts[i].value = p->value ? p->value : "";
			parts[i].len = strlen(parts[i].value);
		}
	}
	memset(&fr, 0, sizeof(fr));
	fr.url = req->url;
	fr.method = req->post ? TEL_FETCH_POST : TEL_FETCH_GET;
	fr.enc = req->enctype && strcmp(req->enctype,
	    "multipart/form-data") == 0 ? TEL_FETCH_MULTIPART :
	    TEL_FETCH_URLENCODED;
	fr.parts = req->post ? parts : NULL;
	fr.nparts = req->post ? n : 0;
	fr.timeout_ms = req->timeout_ms;
	fr.maxage = req->maxage;
	fr.maxstale = req->maxstale;
	f->vxml_id = req->id;
	log_debug("call %s: fetching %s%s", a->call->id, req->url,
	    req->post ? " (POST)" : "");
	f->id = tel_fetch(a->ctx->fetcher, &fr, fetch_done, f);
}

/* ---- prompts ---- */

/* The text of fallback items (an <audio> inside an <audio> falls back to
 * its own fallback: nothing is fetched for a fallback). */
static void
fallback_text(const struct vxml_prompt_item *items, size_t n, char **buf,
    size_t *len)
{
	size_t i, tl;
	char *nb;

	for (i = 0; i < n; i++) {
		const struct vxml_prompt_item *it = &items[i];

		if (it->kind == VXML_PROMPT_AUDIO) {
			fallback_text(it->fallback, it->nfallback, buf, len);
			continue;
		}
		if (it->kind != VXML_PROMPT_TEXT || it->text == NULL)
			continue;
		tl = strlen(it->text);
		if ((nb = realloc(*buf, *len + tl + 2)) == NULL)
			return;
		*buf = nb;
		if (*len > 0)
			nb[(*len)++] = ' ';
		memcpy(nb + *len, it->text, tl + 1);
		*len += tl;
	}
}

static void
op_prompt(void *arg, const struct vxml_prompt_item *it)
{
	struct tel_app *a = arg;
	struct tel_fetch_req fr;
	struct tel_speech *sp;
	struct app_fetch *f;
	size_t len = 0;

	if (a->st == NULL)
		return;
	switch (it->kind) {
	case VXML_PROMPT_TEXT:
		if (it->text == NULL || it->text[0] == '\0')
			return;
		/* NULL: the synthesis queue is full; the prompt is skipped
		 * (logged by tts.c) rather than the call held */
		if ((sp = tel_tts_get(a->ctx->tts, it->text)) == NULL)
			return;
		tel_stream_queue_speech(a->st, sp, it->bargein);
		tel_speech_unref(sp);
		return;
	case VXML_PROMPT_BREAK:
		tel_stream_queue_pause(a->st, it->break_ms, it->bargein);
		return;
	case VXML_PROMPT_AUDIO:
		break;
	}
	/* Queued in document order as a placeholder the fetch fills. */
	if ((f = fetch_new(a, APP_FETCH_AUDIO)) == NULL ||
	    (f->placeholder = tel_speech_new_pending()) == NULL ||
	    (f->url = strdup(it->url ? it->url : "")) == NULL) {
		log_warnx("call %s: out of memory for an audio prompt",
		    a->call->id);
		if (f != NULL)
			fetch_unlink(f);
		return;
	}
	fallback_text(it->fallback, it->nfallback, &f->fallback, &len);
	tel_stream_queue_speech(a->st, f->placeholder, it->bargein);
	memset(&fr, 0, sizeof(fr));
	fr.url = f->url;
	fr.method = TEL_FETCH_GET;
	fr.maxage = -1;
	fr.maxstale = -1;
	f->id = tel_fetch(a->ctx->fetcher, &fr, fetch_done, f);
}

static void
queue_done(void *arg)
{
	struct tel_app *a = arg;

	vxml_prompts_done(a->s);
}

static void
op_play(void *arg)
{
	struct tel_app *a = arg;

	if (a->st == NULL) {
		/* The line is gone: nothing to wait for. */
		vxml_prompts_done(a->s);
		return;
	}
	tel_stream_queue_play(a->st, queue_done, a);
}

static void
op_stop_prompts(void *arg)
{
	struct tel_app *a = arg;

	if (a->st != NULL)
		tel_stream_queue_stop(a->st);
}

/* ---- timer, keys ---- */

static void
timer_fired(struct tel_ctx *ctx, su_timer_t *t, void *arg)
{
	struct tel_app *a = arg;

	vxml_timer_fired(a->s);
}

static void
op_timer_set(void *arg, int ms)
{
	struct tel_app *a = arg;

	if (a->timer == NULL)
		return;
	su_timer_reset(a->timer);
	su_timer_set_interval(a->timer, timer_fired, a,
	    (su_duration_t)(ms > 0 ? ms : 0));
}

static void
op_timer_cancel(void *arg)
{
	struct tel_app *a = arg;

	if (a->timer)
		su_timer_reset(a->timer);
}

static void
on_dtmf(void *arg, char digit)
{
	struct tel_app *a = arg;

	log_debug("call %s: key %c", a->call->id, digit);
	vxml_dtmf(a->s, digit);
}

/* ---- transfer, record, disconnect, log, done ---- */

static void
op_transfer(void *arg, const struct vxml_transfer_req *req)
{
	struct tel_app *a = arg;

	if (a->st == NULL) {
		vxml_transfer_done(a->s, VXML_XFER_NEAR_END_DISCONNECT, 0);
		return;
	}
	tel_call_app_transfer(a->call, req);
}

void
tel_app_transfer_done(struct tel_app *a, int outcome, int duration_ms)
{
	if (a->over)
		return;
	vxml_transfer_done(a->s, (enum vxml_transfer_outcome)outcome,
	    duration_ms);
}

/* Keeps a recording in Redis for the call's tenant (RQ_KEY_REC, served by
 * the gateway at the path written to url).  Returns 0, or -1 (logged):
 * the application still gets the audio, without a URL. */
static int
record_keep(struct tel_app *a, const struct tel_recording *rec, char *url,
    size_t urllen)
{
	struct tel_call *c = a->call;
	struct rq_redis *r = &a->ctx->redis;
	char name[48], key[160];
	redisReply *rep;
	long long ttl;
	int ok;

	snprintf(name, sizeof(name), "%llu-%d",
	    (unsigned long long)c->attempt, ++a->nrecordings);
	snprintf(key, sizeof(key), "%s%s:%s", RQ_KEY_REC, c->call_id, name);
	if (rq_redis_ready(r) == -1) {
		log_warnx("call %s: recording not kept: redis unreachable",
		    c->id);
		return -1;
	}
	/* As long as the call stays (the retention it was accepted under,
	 * its job's ttl_ms, after it ends), so that GET .../recordings
	 * answers as long as GET /v1/calls. */
	rep = redisCommand(r->c, "HGET %s%s ttl_ms", RQ_KEY_JOB, c->call_id);
	ttl = (long long)rq_job_ttl_ms(rep != NULL &&
	    rep->type == REDIS_REPLY_STRING ? rep->str : NULL) +
	    RQ_REC_SLACK_MS;
	if (rep != NULL) {
		freeReplyObject(rep);
		rep = redisCommand(r->c, "SET %s %b PX %lld", key, rec->wav,
		    rec->len, ttl);
	}
	ok = rep != NULL && rep->type == REDIS_REPLY_STATUS;
	if (!ok)
		log_warnx("call %s: recording not kept: %s", c->id,
		    rep && rep->type == REDIS_REPLY_ERROR ? rep->str :
		    "redis failed");
	if (rep != NULL)
		freeReplyObject(rep);
	else
		rq_redis_close(r);
	if (!ok)
		return -1;
	snprintf(url, urllen, "/v1/calls/%s/recordings/%s", c->call_id, name);
	return 0;
}

static void
record_done(void *arg, struct tel_recording *rec)
{
	struct tel_app *a = arg;
	struct vxml_record_res r;
	char url[256];

	memset(&r, 0, sizeof(r));
	if (rec == NULL) {
		r.status = -1;
		vxml_record_done(a->s, &r);
		return;
	}
	if (rec->heard && record_keep(a, rec, url, sizeof(url)) == 0)
		r.url = url;
	r.audio = rec->wav;
	r.len = rec->len;
	r.type = rec->type;
	r.duration_ms = rec->heard ? rec->duration_ms : 0;
	r.termchar = rec->why == TEL_REC_DTMF ? rec->termchar : 0;
	r.maxtime = rec->why == TEL_REC_MAXTIME;
	log_info("call %s: recorded %d ms", a->call->id, rec->duration_ms);
	vxml_record_done(a->s, &r);
	tel_recording_free(rec);
}

static void
op_record(void *arg, const struct vxml_record_req *req)
{
	struct tel_app *a = arg;
	struct tel_record_opts o;
	struct vxml_record_res r;

	memset(&o, 0, sizeof(o));
	o.beep = req->beep;
	o.maxtime_ms = req->maxtime_ms;
	o.finalsilence_ms = req->finalsilence_ms;
	o.dtmfterm = req->dtmfterm;
	o.ulaw = req->type && strstr(req->type, "basic") != NULL;
	if (a->st == NULL || tel_stream_record(a->st, &o, record_done,
	    a) == -1) {
		memset(&r, 0, sizeof(r));
		r.status = -1;
		vxml_record_done(a->s, &r);
	}
}

static void
op_disconnect(void *arg)
{
	struct tel_app *a = arg;

	log_info("call %s: the application hangs up", a->call->id);
	tel_call_app_disconnect(a->call);
}

static void
op_log(void *arg, const char *label, const char *text)
{
	struct tel_app *a = arg;

	log_info("call %s: vxml log%s%s: %s", a->call->id,
	    label && label[0] ? " " : "", label ? label : "", text);
}

static void
op_done(void *arg, const struct vxml_result *res)
{
	struct tel_app *a = arg;
	char *json;

	json = vxml_result_json(res);
	tel_app_stop(a);
	tel_call_app_done(a->call, res, json);
	free(json);
}

static const struct vxml_platform app_platform = {
	.fetch = op_fetch,
	.prompt = op_prompt,
	.play = op_play,
	.stop_prompts = op_stop_prompts,
	.timer_set = op_timer_set,
	.timer_cancel = op_timer_cancel,
	.transfer = op_transfer,
	.record = op_record,
	.disconnect = op_disconnect,
	.log = op_log,
	.done = op_done,
};

/* ---- the app ---- */

struct tel_app *
tel_app_start(struct tel_call *c, struct tel_stream *st, const char *url,
    const char *local_uri, const char *remote_uri)
{
	struct tel_ctx *ctx = c->ctx;
	struct vxml_session_info info;
	struct tel_app *a;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	a->call = c;
	a->ctx = ctx;
	a->st = st;
	memset(&info, 0, sizeof(info));
	info.local_uri = local_uri;
	info.remote_uri = remote_uri;
	info.protocol_name = "sip";
	info.protocol_version = "2.0";
	/* who placed the call: we did, or the caller (inbound.c) */
	info.originator = c->inbound ? "remote" : "local";
	if ((a->timer = su_timer_create(su_root_task(ctx->root), 0)) == NULL ||
	    (a->s = vxml_session_new(&app_platform, a, &info)) == NULL) {
		tel_app_free(a);
		return NULL;
	}
	tel_stream_on_dtmf(st, on_dtmf, a, 1);
	log_info("call %s: running %s", c->id, url);
	if (vxml_session_start(a->s, url) == -1) {
		tel_app_free(a);
		return NULL;
	}
	return a;
}

void
tel_app_hangup(struct tel_app *a)
{
	struct tel_recording *rec;
	struct vxml_record_res r;

	if (a->over)
		return;
	if (a->st != NULL) {
		/* A recording under way keeps what was said. */
		if ((rec = tel_stream_record_stop(a->st)) != NULL) {
			memset(&r, 0, sizeof(r));
			r.audio = rec->wav;
			r.len = rec->len;
			r.type = rec->type;
			r.duration_ms = rec->heard ? rec->duration_ms : 0;
			vxml_record_done(a->s, &r);
			tel_recording_free(rec);
		}
		tel_stream_on_dtmf(a->st, NULL, NULL, 0);
		tel_stream_queue_stop(a->st);
		a->st = NULL;
	}
	if (!a->over)
		vxml_hangup(a->s);
}

int
tel_app_running(const struct tel_app *a)
{
	return a != NULL && !a->over;
}

void
tel_app_stop(struct tel_app *a)
{
	if (a == NULL)
		return;
	a->over = 1;
	while (a->fetches) {
		tel_fetch_cancel(a->ctx->fetcher, a->fetches->id);
		fetch_unlink(a->fetches);
	}
	if (a->timer)
		su_timer_reset(a->timer);
	if (a->st != NULL) {
		tel_stream_on_dtmf(a->st, NULL, NULL, 0);
		a->st = NULL;
	}
}

void
tel_app_free(struct tel_app *a)
{
	if (a == NULL)
		return;
	tel_app_stop(a);
	if (a->timer)
		su_timer_destroy(a->timer);
	vxml_session_free(a->s);
	free(a);
}
