/* vxml_harness.h: an in-memory platform for the VoiceXML interpreter's
 * unit tests.  Documents come from a table of URL -> text; time is virtual
 * (prompts take no time, timers fire in order, a scripted key comes each
 * time the interpreter waits for one); what the caller would hear and the
 * <log> output go into a transcript, one line per item, as ringq-vxml
 * prints them.  Fetches are answered from inside the request, or later
 * from the driving loop when async is set, so that both paths are tested. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vxml.h"

#define H_MAXFETCH	16

struct h_doc {
	const char	*url;
	const char	*text;
};

struct harness {
	struct vxml_session	*s;
	const struct h_doc	*docs;
	int			 async;
	const char		*dtmf;		/* keys still to press */
	long			 hangup_at;	/* -1: never */
	int			 xfer_outcome;	/* -1: the caller hangs up */
	int			 record_ms;
	int			 barge;		/* press a key while a prompt plays */
	int			 instant;	/* prompts end from inside play() */

	long			 now;
	long			 timer_at;
	int			 playing;
	int			 done;
	struct { unsigned id; char url[256]; } q[H_MAXFETCH];
	int			 nq;

	char			 out[16384];	/* the transcript */
	size_t			 outlen;
	char			 posted[1024];	/* last POST body, name=value&... */
	char			*json;		/* the result */
	enum vxml_end		 how;
	char			 event[128];
	char			 url[256];
	int			 line;
	int			 nfetch;
};

static void
h_out(struct harness *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
h_out(struct harness *h, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	h->outlen += (size_t)vsnprintf(h->out + h->outlen,
	    sizeof(h->out) - h->outlen, fmt, ap);
	va_end(ap);
	if (h->outlen >= sizeof(h->out))
		h->outlen = sizeof(h->out) - 1;
}

static void
h_answer(struct harness *h, unsigned id, const char *url)
{
	struct vxml_fetch_res r;
	const struct h_doc *d;

	memset(&r, 0, sizeof(r));
	for (d = h->docs; d->url != NULL; d++)
		if (strcmp(d->url, url) == 0)
			break;
	if (d->url != NULL) {
		r.status = 200;
		r.body = d->text;
		r.len = strlen(d->text);
		r.content_type = "application/voicexml+xml";
	} else {
		r.status = 404;
		r.error = "not found";
	}
	vxml_fetch_done(h->s, id, &r);
}

static void
h_fetch(void *arg, const struct vxml_fetch_req *req)
{
	struct harness *h = arg;
	size_t i;

	h->nfetch++;
	if (req->post) {
		h->posted[0] = '\0';
		for (i = 0; i < req->nparams; i++)
		{
			snprintf(h->posted + strlen(h->posted),
			    sizeof(h->posted) - strlen(h->posted), "%s%s=%s",
			    i > 0 ? "&" : "", req->params[i].name,
			    req->params[i].value);
			if (req->params[i].data != NULL)
				snprintf(h->posted + strlen(h->posted),
				    sizeof(h->posted) - strlen(h->posted),
				    "[%zu %s]", req->params[i].len,
				    req->params[i].type);
		}
	}
	if (!h->async || h->nq == H_MAXFETCH) {
		h_answer(h, req->id, req->url);
		return;
	}
	h->q[h->nq].id = req->id;
	snprintf(h->q[h->nq].url, sizeof(h->q[0].url), "%s", req->url);
	h->nq++;
}

static void
h_item(struct harness *h, const struct vxml_prompt_item *it)
{
	size_t i;

	switch (it->kind) {
	case VXML_PROMPT_TEXT:
		h_out(h, "PROMPT %s\n", it->text);
		break;
	case VXML_PROMPT_BREAK:
		h_out(h, "BREAK %d\n", it->break_ms);
		break;
	case VXML_PROMPT_AUDIO:
		h_out(h, "AUDIO %s\n", it->url);
		for (i = 0; i < it->nfallback; i++)
			h_item(h, &it->fallback[i]);
		break;
	}
}

static void
h_prompt(void *arg, const struct vxml_prompt_item *it)
{
	h_item(arg, it);
}

static void
h_play(void *arg)
{
	struct harness *h = arg;

	if (h->instant)			/* re-entry from inside a request */
		vxml_prompts_done(h->s);
	else
		h->playing = 1;
}

static void
h_stop(void *arg)
{
	struct harness *h = arg;

	if (h->playing)
		h_out(h, "STOP\n");
	h->playing = 0;
}

static void
h_timer_set(void *arg, int ms)
{
	struct harness *h = arg;

	h->timer_at = h->now + ms;
}

static void
h_timer_cancel(void *arg)
{
	((struct harness *)arg)->timer_at = -1;
}

static void
h_transfer(void *arg, const struct vxml_transfer_req *r)
{
	struct harness *h = arg;

	h_out(h, "TRANSFER %s %s\n", r->dest, r->bridge ? "bridge" : "blind");
	if (h->xfer_outcome < 0)
		vxml_hangup(h->s);
	else
		vxml_transfer_done(h->s, r->bridge ? h->xfer_outcome :
		    VXML_XFER_BLIND_OK, 4500);
}

static void
h_record(void *arg, const struct vxml_record_req *r)
{
	struct harness *h = arg;
	struct vxml_record_res res;
	static const char audio[100];

	h_out(h, "RECORD\n");
	memset(&res, 0, sizeof(res));
	res.audio = audio;
	res.len = h->record_ms > 0 ? sizeof(audio) : 0;
	res.type = "audio/x-wav";
	res.url = "http://store/rec1.wav";
	res.duration_ms = h->record_ms;
	res.termchar = '#';
	vxml_record_done(h->s, &res);
}

static void
h_disconnect(void *arg)
{
	h_out(arg, "DISCONNECT\n");
}

static void
h_log(void *arg, const char *label, const char *text)
{
	h_out(arg, "LOG %s: %s\n", label, text);
}

static void
h_done(void *arg, const struct vxml_result *r)
{
	struct harness *h = arg;

	h->done++;
	h->how = r->how;
	snprintf(h->event, sizeof(h->event), "%s", r->event != NULL ? r->event : "");
	snprintf(h->url, sizeof(h->url), "%s", r->url != NULL ? r->url : "");
	h->line = r->line;
	free(h->json);
	h->json = vxml_result_json(r);
}

static const struct vxml_platform h_platform = {
	h_fetch, h_prompt, h_play, h_stop, h_timer_set, h_timer_cancel,
	h_transfer, h_record, h_disconnect, h_log, h_done
};

static void
h_init(struct harness *h, const struct h_doc *docs)
{
	memset(h, 0, sizeof(*h));
	h->docs = docs;
	h->dtmf = "";
	h->hangup_at = -1;
	h->timer_at = -1;
	h->xfer_outcome = VXML_XFER_FAR_END_DISCONNECT;
	h->record_ms = 3000;
}

/* Runs the application at url to its end (or 1000 steps). */
static void
h_run(struct harness *h, const char *url)
{
	struct vxml_session_info info = { "sip:app@example.org",
	    "sip:+15551234@example.org", "sip", "2.0", "remote", NULL, NULL };
	int steps;

	h->s = vxml_session_new(&h_platform, h, &info);
	vxml_session_start(h->s, url);
	for (steps = 0; !h->done && steps < 1000; steps++) {
		if (h->nq > 0) {
			unsigned id = h->q[0].id;
			char u[256];

			snprintf(u, sizeof(u), "%s", h->q[0].url);
			memmove(&h->q[0], &h->q[1], (size_t)(--h->nq) * sizeof(h->q[0]));
			h_answer(h, id, u);
			continue;
		}
		if (h->playing && h->barge && *h->dtmf != '\0') {
			h_out(h, "KEY %c\n", *h->dtmf);
			vxml_dtmf(h->s, *h->dtmf++);
			if (!h->playing)
				continue;
		}
		if (h->playing) {
			h->playing = 0;
			vxml_prompts_done(h->s);
			continue;
		}
		if (h->hangup_at >= 0 && (h->timer_at < 0 || h->hangup_at <= h->timer_at)) {
			h->now = h->hangup_at;
			h->hangup_at = -1;
			vxml_hangup(h->s);
			continue;
		}
		if (*h->dtmf != '\0' && h->timer_at >= 0) {
			h->now += 100;
			vxml_dtmf(h->s, *h->dtmf++);
			continue;
		}
		if (h->timer_at >= 0) {
			h->now = h->timer_at;
			h->timer_at = -1;
			vxml_timer_fired(h->s);
			continue;
		}
		break;		/* waits for nothing: done must have come */
	}
	vxml_session_free(h->s);
	h->s = NULL;
}

static void
h_free(struct harness *h)
{
	free(h->json);
	h->json = NULL;
}

/* Does the transcript hold these lines in this order (not necessarily
 * adjacent)? */
static int
h_saw(const struct harness *h, const char *lines)
{
	const char *at = h->out, *p = lines, *nl;
	char want[512];

	while (*p != '\0') {
		nl = strchr(p, '\n');
		snprintf(want, sizeof(want), "%.*s\n", (int)(nl != NULL ?
		    nl - p : (long)strlen(p)), p);
		if ((at = strstr(at, want)) == NULL)
			return 0;
		at += strlen(want);
		p = nl != NULL ? nl + 1 : p + strlen(p);
	}
	return 1;
}

#define VXML_HEAD "<?xml version=\"1.0\"?>\n" \
	"<vxml version=\"2.1\" xmlns=\"http://www.w3.org/2001/vxml\">\n"
#define VXML_HEAD_APP(root) "<?xml version=\"1.0\"?>\n" \
	"<vxml version=\"2.1\" xmlns=\"http://www.w3.org/2001/vxml\" " \
	"application=\"" root "\">\n"
