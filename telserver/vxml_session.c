/* vxml_session.c: a session's life: the platform's entry points, the run
 * loop they feed, document loading (with the application root and the
 * resources a document needs), subdialog calls and returns, and the end.
 *
 * Re-entrancy: every answer or input from the platform is queued and the
 * run loop takes them one by one; when the platform answers from inside a
 * request (a synchronous fetch, say), the loop is already running and the
 * answer simply waits in the queue until the request returns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vxml_int.h"

struct vxml_session *
vxml_session_new(const struct vxml_platform *p, void *arg,
    const struct vxml_session_info *info)
{
	struct vxml_session *s;
	const char *src[7];
	const char **dst[7];
	int i;

	if (p->fetch == NULL || p->prompt == NULL || p->play == NULL ||
	    p->stop_prompts == NULL || p->timer_set == NULL ||
	    p->timer_cancel == NULL || p->transfer == NULL || p->record == NULL ||
	    p->disconnect == NULL || p->done == NULL)
		return NULL;		/* log alone may be NULL */
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->p = *p;
	s->arg = arg;
	s->prompt_timeout_ms = -1;
	s->match_idx = -1;
	if (info != NULL)
		s->info = *info;
	src[0] = s->info.local_uri; dst[0] = &s->info.local_uri;
	src[1] = s->info.remote_uri; dst[1] = &s->info.remote_uri;
	src[2] = s->info.protocol_name; dst[2] = &s->info.protocol_name;
	src[3] = s->info.protocol_version; dst[3] = &s->info.protocol_version;
	src[4] = s->info.originator; dst[4] = &s->info.originator;
	src[5] = s->info.redirect; dst[5] = &s->info.redirect;
	src[6] = s->info.aai; dst[6] = &s->info.aai;
	for (i = 0; i < 7; i++) {
		s->info_strs[i] = src[i] != NULL ? strdup(src[i]) : NULL;
		*dst[i] = s->info_strs[i];
	}
	if (vxml_js_init(s) != 0) {
		vxml_session_free(s);
		return NULL;
	}
	return s;
}

static void
ctx_free(struct vxml_session *s, struct vxml_ctx *c)
{
	struct vxml_ctx *saved = s->ctx;

	s->ctx = c;
	vxml_dialog_leave(s);
	s->ctx = saved;
	vxml_doc_unref(c->doc);
	vxml_doc_unref(c->app);
	free(c);
}

static void
pend_free(struct vxml_pend *p)
{
	free(p->error);
	free(p->url);
	free(p->body);
	free(p->type);
	free(p);
}

static void
fields_free(struct vxml_result_field *f, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(f[i].name);
		free(f[i].value);
	}
	free(f);
}

void
vxml_session_free(struct vxml_session *s)
{
	struct vxml_ctx *c;
	struct vxml_pend *p;
	int i;

	if (s == NULL)
		return;
	while ((c = s->ctx) != NULL) {
		s->ctx = c->parent;
		ctx_free(s, c);
	}
	while ((p = s->pend_head) != NULL) {
		s->pend_head = p->next;
		pend_free(p);
	}
	vxml_input_free(s);
	vxml_doc_unref(s->loading);
	vxml_doc_unref(s->loading_app);
	free(s->loading_frag);
	vxml_tr_clear(&s->tr);
	free(s->ev_name);
	free(s->ev_msg);
	free(s->ev_url);
	free(s->exit_json);
	free(s->ret_json);
	free(s->ret_event);
	free(s->ret_msg);
	fields_free(s->fields, s->nfields);
	for (i = 0; i < (int)s->nrecs; i++) {
		free(s->rec_audio[i].data);
		free(s->rec_audio[i].type);
	}
	free(s->rec_audio);
	fields_free(s->recs, s->nrecs);
	free(s->rec_data);
	free(s->rec_type);
	vxml_js_free(s);
	for (i = 0; i < 7; i++)
		free(s->info_strs[i]);
	free(s);
}

void
vxml_log(struct vxml_session *s, const char *label, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (s->p.log != NULL)
		s->p.log(s->arg, label, buf);
}

/* A filled item for the result (takes json); the latest value wins. */
void
vxml_note_field(struct vxml_session *s, const char *name, char *json)
{
	struct vxml_result_field *f;
	size_t i;

	for (i = 0; i < s->nfields; i++)
		if (strcmp(s->fields[i].name, name) == 0) {
			free(s->fields[i].value);
			s->fields[i].value = json;
			return;
		}
	if ((f = realloc(s->fields, (s->nfields + 1) * sizeof(*f))) == NULL) {
		free(json);
		return;
	}
	s->fields = f;
	f[s->nfields].name = strdup(name);
	f[s->nfields++].value = json;
}

static void
finish_done(struct vxml_session *s, enum vxml_end how)
{
	struct vxml_result r;

	memset(&r, 0, sizeof(r));
	r.how = how;
	r.exit_value = s->exit_json;
	r.fields = s->fields;
	r.nfields = s->nfields;
	r.recordings = s->recs;
	r.nrecordings = s->nrecs;
	if (how == VXML_END_ERROR || (how == VXML_END_EXIT && s->ev_name != NULL)) {
		r.event = s->ev_name;
		r.message = s->ev_msg;
		if (s->ev_url != NULL) {
			r.url = s->ev_url;
			r.line = s->ev_line;
		} else {
			r.url = (char *)vxml_node_url(s, s->ev_node);
			r.line = s->ev_node != NULL ? (int)xmlGetLineNo(s->ev_node) : 0;
		}
	}
	s->wait = WAIT_DONE;
	if (s->timer_on)
		s->p.timer_cancel(s->arg);
	s->timer_on = 0;
	s->p.done(s->arg, &r);
}

/* Ends the session once the queued prompts have played. */
void
vxml_end(struct vxml_session *s, enum vxml_end how)
{
	if (s->wait == WAIT_DONE || s->wait == WAIT_PROMPTS_END)
		return;
	/* the caller is gone: however the application ends after that */
	if (how == VXML_END_EXIT && s->disconnected)
		how = VXML_END_DISCONNECT;
	else if (how == VXML_END_EXIT && s->hungup)
		how = VXML_END_HANGUP;
	if (how != VXML_END_ERROR && how != VXML_END_EXIT) {
		free(s->ev_name);
		s->ev_name = NULL;
	}
	if (how == VXML_END_EXIT && s->ev_name != NULL) {
		free(s->ev_name);	/* an uncaught user event: a plain exit */
		s->ev_name = NULL;
	}
	if (s->timer_on)
		s->p.timer_cancel(s->arg);
	s->timer_on = 0;
	if (s->prompts_playing) {	/* e.g. the loop guard during input */
		s->p.stop_prompts(s->arg);
		s->prompts_playing = 0;
	}
	/* the caller is told, not left in silence */
	if (how == VXML_END_ERROR && !s->hungup)
		vxml_prompt_text(s, "Sorry, a technical problem occurred. Goodbye.", 0);
	if (s->prompts_queued > 0 && !s->hungup) {
		s->wait = WAIT_PROMPTS_END;
		s->end_how = how;
		s->prompts_playing = 1;
		s->p.play(s->arg);
		return;
	}
	finish_done(s, how);
}

int
vxml_session_start(struct vxml_session *s, const char *url)
{
	char *abs = NULL, *frag = NULL;

	if (s->started)
		return -1;
	s->started = 1;
	if ((s->ctx = calloc(1, sizeof(*s->ctx))) == NULL)
		return -1;
	s->ctx->dlg.cur = -1;
	s->ctx->dlg.next_item = -1;
	s->ctx->scope_key = vxml_js_new_context(s);
	vxml_url_split(url, &abs, &frag);
	s->tr.kind = TR_DOC;
	s->tr.url = abs != NULL ? abs : strdup(url);
	s->tr.frag = frag;
	s->running = 1;
	vxml_fetch_doc(s, FOR_DOC);
	s->running = 0;
	vxml_run(s);
	return 0;
}

/* An element's own fetchtimeout/maxage/maxstale, else the property. */
static const char *
fetch_attr(struct vxml_session *s, xmlNode *n, const char *attr,
    const char *prop, const char *dflt)
{
	char *v;

	if (n != NULL && (v = vxml_attr(n, attr)) != NULL) {
		s->propi = (s->propi + 1) % 4;
		snprintf(s->propbuf[s->propi], sizeof(s->propbuf[0]), "%s", v);
		free(v);
		return s->propbuf[s->propi];
	}
	return vxml_property(s, prop, dflt);
}

static void
fetch(struct vxml_session *s, unsigned id, enum vxml_fetch_kind kind,
    const char *url, const struct vxml_tr *t, xmlNode *n)
{
	struct vxml_fetch_req r;
	const char *v;

	memset(&r, 0, sizeof(r));
	r.id = id;
	r.kind = kind;
	r.url = url;
	r.timeout_ms = vxml_time_ms(fetch_attr(s, n, "fetchtimeout",
	    "fetchtimeout", "30s"), 30000);
	v = fetch_attr(s, n, "maxage", kind == VXML_FETCH_DOCUMENT ?
	    "documentmaxage" : kind == VXML_FETCH_SCRIPT ? "scriptmaxage" :
	    "grammarmaxage", NULL);
	r.maxage = v != NULL ? atoi(v) : -1;
	v = fetch_attr(s, n, "maxstale", kind == VXML_FETCH_DOCUMENT ?
	    "documentmaxstale" : kind == VXML_FETCH_SCRIPT ? "scriptmaxstale" :
	    "grammarmaxstale", NULL);
	r.maxstale = v != NULL ? atoi(v) : -1;
	if (t != NULL && t->post) {
		r.post = 1;
		r.enctype = t->enctype != NULL ? t->enctype :
		    "application/x-www-form-urlencoded";
		r.params = t->params;
		r.nparams = t->nparams;
	}
	s->p.fetch(s->arg, &r);
}

/* Fetches s->tr's document for a transition, the application root or a
 * subdialog. */
void
vxml_fetch_doc(struct vxml_session *s, enum vxml_fetch_for why)
{
	s->fetch_for = why;
	s->fetch_id = ++s->next_fetch_id;
	s->wait = WAIT_FETCH;
	if (why == FOR_APP) {
		fetch(s, s->fetch_id, VXML_FETCH_DOCUMENT, s->loading->app_url,
		    NULL, NULL);
		return;
	}
	free(s->loading_frag);
	s->loading_frag = s->tr.frag;
	s->tr.frag = NULL;
	fetch(s, s->fetch_id, VXML_FETCH_DOCUMENT, s->tr.url, &s->tr,
	    s->tr.node);
}

/* A document fetch failed or did not parse: error.badfetch where the
 * transition came from. */
static void
load_failed(struct vxml_session *s, const char *event, const char *url,
    int line, const char *msg)
{
	xmlNode *where = s->tr.node;
	char *u = url != NULL ? strdup(url) : NULL;	/* url may be s->tr's */

	vxml_doc_unref(s->loading);
	vxml_doc_unref(s->loading_app);
	s->loading = s->loading_app = NULL;
	vxml_tr_clear(&s->tr);
	s->wait = WAIT_NONE;
	s->subdialog = NULL;
	duk_push_undefined(s->js);
	duk_put_global_string(s->js, "$vxml_params");
	vxml_throw(s, event, msg, where);
	/* a broken document is reported where it breaks; a failed fetch
	 * where it was asked for */
	free(s->ev_url);
	if (u != NULL && (line > 0 || where == NULL))
		s->ev_url = u;
	else
		free(u);
	s->ev_line = line;
	if (s->ctx->doc == NULL)	/* nothing to catch it with */
		vxml_end(s, VXML_END_ERROR);
}

static void
start_resources(struct vxml_session *s, struct vxml_doc *d)
{
	size_t i;

	d->pending = 0;
	for (i = 0; i < d->nres; i++) {
		if (d->res[i].url == NULL ||
		    strncmp(d->res[i].url, "builtin:", 8) == 0) {
			d->res[i].status = 200;
			continue;
		}
		d->res[i].fetch_id = ++s->next_fetch_id;
		d->pending++;
	}
	for (i = 0; i < d->nres; i++)
		if (d->res[i].status == -1)
			fetch(s, d->res[i].fetch_id, vxml_is(d->res[i].node,
			    "script") ? VXML_FETCH_SCRIPT : VXML_FETCH_GRAMMAR,
			    d->res[i].url, NULL, d->res[i].node);
}

static int
resource_answer(struct vxml_session *s, struct vxml_doc *d, struct vxml_pend *p)
{
	size_t i;

	for (i = 0; d != NULL && i < d->nres; i++) {
		struct vxml_res *r = &d->res[i];

		if (r->status != -1 || r->fetch_id != p->id)
			continue;
		r->status = p->status;
		r->body = p->body;
		r->len = p->len;
		p->body = NULL;
		d->pending--;
		if (d->pending == 0 && s->wait == WAIT_FETCH && s->fetch_id == 0)
			vxml_doc_loaded(s);
		return 1;
	}
	return 0;
}

static void
doc_answer(struct vxml_session *s, struct vxml_pend *p)
{
	char err[512], badfetch[64];
	const char *url = p->url;
	struct vxml_doc *d;
	int line;

	s->fetch_id = 0;
	if (url == NULL)
		url = s->fetch_for == FOR_APP ? s->loading->app_url : s->tr.url;
	if (p->status < 200 || p->status > 299) {
		if (p->status > 0)
			snprintf(badfetch, sizeof(badfetch),
			    "error.badfetch.http.%d", p->status);
		else
			snprintf(badfetch, sizeof(badfetch), "error.badfetch");
		snprintf(err, sizeof(err), "cannot fetch %s: %s", url,
		    p->error != NULL ? p->error : "HTTP error");
		load_failed(s, badfetch, url, 0, err);
		return;
	}
	d = vxml_doc_parse(url, p->body != NULL ? p->body : "", p->len, err,
	    sizeof(err), &line);
	if (d == NULL) {
		load_failed(s, "error.badfetch", url, line, err);
		return;
	}
	if (s->fetch_for == FOR_APP)
		s->loading_app = d;
	else {
		vxml_doc_unref(s->loading);
		s->loading = d;
	}
	start_resources(s, d);
	if (d->pending == 0)
		vxml_doc_loaded(s);
}

/* Runs the <var> and <script> children of a document root into the
 * innermost scope. */
static enum vxml_flow
doc_init(struct vxml_session *s, struct vxml_doc *d)
{
	xmlNode *c;
	enum vxml_flow f;

	for (c = vxml_first_elem(d->root); c != NULL; c = vxml_next_elem(c))
		if ((vxml_is(c, "var") || vxml_is(c, "script")) &&
		    (f = vxml_exec_node(s, c)) != FLOW_NEXT)
			return f;
	return FLOW_NEXT;
}

/* The loaded document (and its resources) become active: in a new
 * context for a subdialog, else in place of the current document.  A
 * document without application= is its own application root (its
 * variables are the application's); one that names the root we already
 * have keeps the application scope, any other root starts a fresh one. */
void
vxml_doc_loaded(struct vxml_session *s)
{
	struct vxml_doc *d = s->loading, *app;
	struct vxml_ctx *c = s->ctx;
	int fresh, same, sub = s->subdialog != NULL, submit = s->tr.submit;
	enum vxml_flow f;
	xmlNode *dlg;
	char *frag;

	if (d->pending > 0 ||
	    (s->loading_app != NULL && s->loading_app->pending > 0))
		return;
	if (d->app_url != NULL && strcmp(d->app_url, d->url) != 0) {
		same = 0;
		if (!sub && c->app != NULL && strcmp(c->app->url, d->app_url) == 0) {
			app = c->app;
			fresh = 0;
		} else if (s->loading_app != NULL) {
			app = s->loading_app;
			fresh = 1;
		} else {
			vxml_fetch_doc(s, FOR_APP);
			return;
		}
	} else {
		same = 1;
		app = d;
		/* a leaf's <goto> to its root keeps the root's variables; a
		 * <submit>, or the root going to itself, reinitialises them */
		fresh = sub || submit || c->app == NULL ||
		    strcmp(c->app->url, d->url) != 0 ||
		    (c->doc != NULL && strcmp(c->doc->url, d->url) == 0);
	}
	vxml_doc_ref(app);
	vxml_doc_unref(s->loading_app);
	s->loading_app = NULL;
	s->loading = NULL;
	s->wait = WAIT_NONE;
	frag = s->loading_frag;
	s->loading_frag = NULL;
	vxml_tr_clear(&s->tr);
	if (sub) {
		struct vxml_ctx *n = calloc(1, sizeof(*n));

		if (n == NULL) {
			vxml_doc_unref(d);
			vxml_doc_unref(app);
			free(frag);
			vxml_throwf(s, "error.noresource", s->subdialog,
			    "out of memory");
			s->subdialog = NULL;
			return;
		}
		n->parent = c;
		n->caller = s->subdialog;
		n->dlg.cur = -1;
		n->dlg.next_item = -1;
		s->subdialog = NULL;
		s->ctx = c = n;
		/* the params wait in $vxml_params across the switch */
		n->scope_key = vxml_js_new_context(s);
	}
	if (c->doc != NULL)
		vxml_dialog_leave(s);
	vxml_doc_unref(c->doc);
	vxml_doc_unref(c->app);
	c->doc = d;
	c->app = app;
	vxml_js_set_app(s, fresh, same);
	f = FLOW_NEXT;
	if (!same) {
		if (fresh)
			f = doc_init(s, app);
		vxml_js_push_scope(s, "document");
		if (f == FLOW_NEXT)
			f = doc_init(s, d);
	} else if (fresh)
		f = doc_init(s, d);
	if (f != FLOW_NEXT) {
		free(frag);
		vxml_apply(s, f);
		return;
	}
	dlg = vxml_doc_dialog(d, frag);
	if (dlg == NULL) {
		vxml_throwf(s, "error.badfetch", d->root, "no dialog '%s' in %s",
		    frag != NULL ? frag : "", d->url);
		free(frag);
		return;
	}
	free(frag);
	vxml_apply(s, vxml_dialog_enter(s, dlg));
}

/* <return>: back to the caller with the namelist object or an event. */
void
vxml_subdialog_return(struct vxml_session *s)
{
	struct vxml_ctx *c = s->ctx, *parent = c->parent;
	struct vxml_item *it;
	char *json = s->ret_json, *ev = s->ret_event, *msg = s->ret_msg;
	xmlNode *caller;
	int key;

	s->ret_json = s->ret_event = s->ret_msg = NULL;
	if (parent == NULL) {
		free(json);
		free(ev);
		free(msg);
		return;
	}
	caller = c->caller;
	key = c->scope_key;
	ctx_free(s, c);		/* leaves its dialog: do it under its own scopes */
	s->ctx = parent;
	vxml_js_drop_context(s, key);
	vxml_js_use_context(s, parent->scope_key);
	it = vxml_item_by_node(s, caller);
	if (it == NULL) {
		free(json);
		free(ev);
		free(msg);
		return;
	}
	parent->dlg.cur = (int)(it - parent->dlg.items);
	if (ev != NULL) {
		vxml_throw(s, ev, msg, it->node);
		free(json);
		free(ev);
		free(msg);
		return;
	}
	duk_push_string(s->js, json != NULL ? json : "{}");
	duk_json_decode(s->js, -1);
	free(json);
	duk_dup_top(s->js);
	if (vxml_js_assign_top(s, it->var) != 0) {
		duk_pop(s->js);
		return;
	}
	it->just_filled = 1;
	if (it->var[0] != '$')
		vxml_note_field(s, it->var, vxml_js_json_top(s));
	else
		duk_pop(s->js);
	vxml_fia_filled(s, it);
}

/* The run loop: take queued answers, then run the FIA until it waits. */
static void
dispatch(struct vxml_session *s, struct vxml_pend *p)
{
	switch (p->kind) {
	case PEND_FETCH:
		if (s->wait == WAIT_FETCH && p->id == s->fetch_id && s->fetch_id != 0) {
			doc_answer(s, p);
			break;
		}
		if (!resource_answer(s, s->loading, p) &&
		    !resource_answer(s, s->loading_app, p))
			vxml_input_grammar_fetched(s, p->id, p->status, &p->body,
			    p->len);
		break;
	case PEND_PROMPTS:
		s->prompts_playing = 0;
		if (s->wait == WAIT_PROMPTS_END) {
			s->prompts_queued = 0;
			finish_done(s, s->end_how);
		} else if (s->wait == WAIT_PROMPTS_THEN)
			vxml_fia_prompts_played(s);
		else if (s->wait == WAIT_PROMPTS_DISC)
			vxml_disconnect_now(s);
		else if (s->wait == WAIT_INPUT)
			vxml_input_prompts_done(s);
		else
			s->prompts_queued = 0;
		break;
	case PEND_TIMER:
		vxml_input_timer(s);
		break;
	case PEND_DTMF:
		vxml_input_digit(s, p->digit);
		break;
	case PEND_HANGUP:
		if (s->hungup)
			break;
		s->hungup = 1;
		if (s->wait == WAIT_PROMPTS_END) {
			finish_done(s, s->end_how);
			break;
		}
		if (s->wait == WAIT_INPUT || s->wait == WAIT_PROMPTS_THEN ||
		    s->wait == WAIT_PROMPTS_DISC || s->wait == WAIT_GRAMMAR) {
			vxml_input_hangup(s);
			s->wait = WAIT_NONE;
		}
		if (s->wait == WAIT_TRANSFER || s->wait == WAIT_RECORD)
			s->wait = WAIT_NONE;
		if (s->wait == WAIT_NONE)
			vxml_throw(s, "connection.disconnect.hangup", NULL, NULL);
		else	/* a fetch is on its way: the event waits for it */
			vxml_throw(s, "connection.disconnect.hangup", NULL, NULL);
		break;
	case PEND_TRANSFER:
		if (s->wait != WAIT_TRANSFER)
			break;
		s->xfer_outcome = p->outcome;
		s->xfer_ms = p->duration_ms;
		vxml_transfer_finish(s);
		break;
	case PEND_RECORD:
		if (s->wait != WAIT_RECORD)
			break;
		free(s->rec_data);
		s->rec_data = p->body;
		p->body = NULL;
		free(s->rec_type);
		s->rec_type = p->type;
		p->type = NULL;
		s->rec_res = p->rec;
		s->rec_res.audio = s->rec_data;
		s->rec_res.type = s->rec_type;
		s->rec_res.url = p->url;
		vxml_record_finish(s);
		s->rec_res.url = NULL;
		s->rec_res.type = NULL;
		break;
	}
}

struct guard {
	struct vxml_session	*s;
	struct vxml_pend	*p;
};

static duk_ret_t
guarded_step(duk_context *js, void *udata)
{
	struct guard *g = udata;

	if (g->p != NULL)
		dispatch(g->s, g->p);
	else
		vxml_fia_step(g->s);
	return 0;
}

/* One step under a duktape error guard: the interpreter's own ECMAScript
 * calls are protected, but a document can still make a C-side property
 * access throw (a throwing getter or setter on a scope object, a frozen
 * scope).  Such an error ends this session, not the process. */
static void
guarded(struct vxml_session *s, struct vxml_pend *p)
{
	struct guard g = { s, p };

	if (duk_safe_call(s->js, guarded_step, &g, 0, 1) != 0) {
		vxml_throwf(s, "error.semantic", NULL, "script error: %s",
		    duk_safe_to_string(s->js, -1));
		duk_pop(s->js);
		vxml_end(s, VXML_END_ERROR);
		return;
	}
	duk_pop(s->js);
}

void
vxml_run(struct vxml_session *s)
{
	struct vxml_pend *p;

	if (s->running || !s->started)
		return;
	s->running = 1;
	for (;;) {
		if (s->wait == WAIT_DONE)
			break;
		if ((p = s->pend_head) != NULL) {
			if ((s->pend_head = p->next) == NULL)
				s->pend_tail = NULL;
			guarded(s, p);
			pend_free(p);
			continue;
		}
		if (s->wait == WAIT_NONE) {
			guarded(s, NULL);
			continue;
		}
		break;
	}
	s->running = 0;
}

static struct vxml_pend *
pend_new(struct vxml_session *s, enum vxml_pend_kind k)
{
	struct vxml_pend *p;

	if (s->wait == WAIT_DONE || (p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->kind = k;
	return p;
}

static void
pend_push(struct vxml_session *s, struct vxml_pend *p)
{
	if (p == NULL)
		return;
	if (s->pend_tail != NULL)
		s->pend_tail->next = p;
	else
		s->pend_head = p;
	s->pend_tail = p;
	vxml_run(s);
}

void
vxml_fetch_done(struct vxml_session *s, unsigned id,
    const struct vxml_fetch_res *res)
{
	struct vxml_pend *p = pend_new(s, PEND_FETCH);

	if (p == NULL)
		return;
	p->id = id;
	p->status = res->status;
	p->error = res->error != NULL ? strdup(res->error) : NULL;
	p->url = res->url != NULL ? strdup(res->url) : NULL;
	if (res->body != NULL && (p->body = malloc(res->len + 1)) != NULL) {
		memcpy(p->body, res->body, res->len);
		p->body[res->len] = '\0';
		p->len = res->len;
	}
	pend_push(s, p);
}

void
vxml_prompts_done(struct vxml_session *s)
{
	pend_push(s, pend_new(s, PEND_PROMPTS));
}

void
vxml_timer_fired(struct vxml_session *s)
{
	pend_push(s, pend_new(s, PEND_TIMER));
}

void
vxml_dtmf(struct vxml_session *s, char digit)
{
	struct vxml_pend *p;

	if (strchr("0123456789*#ABCD", digit) == NULL || digit == '\0')
		return;
	if ((p = pend_new(s, PEND_DTMF)) != NULL)
		p->digit = digit;
	pend_push(s, p);
}

void
vxml_hangup(struct vxml_session *s)
{
	pend_push(s, pend_new(s, PEND_HANGUP));
}

void
vxml_transfer_done(struct vxml_session *s, enum vxml_transfer_outcome outcome,
    int duration_ms)
{
	struct vxml_pend *p = pend_new(s, PEND_TRANSFER);

	if (p != NULL) {
		p->outcome = (int)outcome;
		p->duration_ms = duration_ms;
	}
	pend_push(s, p);
}

void
vxml_record_done(struct vxml_session *s, const struct vxml_record_res *r)
{
	struct vxml_pend *p = pend_new(s, PEND_RECORD);

	if (p == NULL)
		return;
	p->rec = *r;
	p->rec.audio = NULL;
	p->rec.type = NULL;
	p->rec.url = NULL;
	if (r->audio != NULL && r->len > 0 && (p->body = malloc(r->len)) != NULL)
		memcpy(p->body, r->audio, r->len);
	else
		p->rec.len = r->audio != NULL ? r->len : 0;
	p->url = r->url != NULL ? strdup(r->url) : NULL;
	p->type = r->type != NULL ? strdup(r->type) : NULL;
	pend_push(s, p);
}
