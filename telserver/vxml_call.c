/* vxml_call.c: the form items that hand the call to something else and
 * wait for it: <subdialog> (a new execution context, see vxml_session.c for
 * the call and the return), <transfer> and <record> (the platform does them
 * and answers with vxml_transfer_done() / vxml_record_done(); the outcome
 * fills the item and its shadow variables name$.*). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vxml_int.h"

/* <subdialog>: params are evaluated here; the call starts once the
 * document is there. */
enum vxml_flow
vxml_subdialog_start(struct vxml_session *s, struct vxml_item *it)
{
	xmlNode *c, *n = it->node;
	char *src, *list, *method;
	int err;
	duk_idx_t obj;

	src = vxml_expr_or_attr(s, n, "src", "srcexpr", &err);
	if (err)
		return FLOW_THROW;
	if (src == NULL)
		return vxml_throwf(s, "error.badfetch", n, "<subdialog> without src");
	obj = duk_push_object(s->js);
	for (c = vxml_first_elem(n); c != NULL; c = vxml_next_elem(c)) {
		char *name, *v, *e;

		if (!vxml_is(c, "param"))
			continue;
		name = vxml_attr(c, "name");
		if ((v = vxml_attr(c, "value")) != NULL)
			duk_push_string(s->js, v);
		else if ((e = vxml_attr(c, "expr")) != NULL) {
			int rc = vxml_js_eval(s, e, c);

			free(e);
			if (rc != 0) {
				free(name);
				free(src);
				duk_pop(s->js);
				return FLOW_THROW;
			}
		} else
			duk_push_undefined(s->js);
		free(v);
		duk_put_prop_string(s->js, obj, name != NULL ? name : "");
		free(name);
	}
	duk_put_global_string(s->js, "$vxml_params");
	vxml_tr_clear(&s->tr);
	if (vxml_tr_target(s, src, &s->tr) != 0) {
		free(src);
		return vxml_throwf(s, "error.badfetch", n, "bad subdialog URI");
	}
	free(src);
	s->tr.node = n;
	if (s->tr.kind == TR_DIALOG) {	/* same document: no fetch */
		s->tr.kind = TR_DOC;
		s->tr.url = strdup(s->ctx->doc->url);
		s->subdialog = n;
		s->loading = s->ctx->doc;
		vxml_doc_ref(s->loading);
		free(s->loading_frag);
		s->loading_frag = s->tr.frag;
		s->tr.frag = NULL;
		s->fetch_for = FOR_SUBDIALOG;
		vxml_doc_loaded(s);
		return FLOW_NEXT;
	}
	method = vxml_attr(n, "method");
	s->tr.post = method != NULL && strcasecmp(method, "post") == 0;
	free(method);
	s->tr.enctype = vxml_attr(n, "enctype");
	if ((list = vxml_attr(n, "namelist")) != NULL) {
		int rc = vxml_namelist_params(s, n, list, &s->tr);

		free(list);
		if (rc != 0)
			return FLOW_THROW;
	}
	s->subdialog = n;
	vxml_fetch_doc(s, FOR_SUBDIALOG);
	return FLOW_NEXT;
}

enum vxml_flow
vxml_transfer_start(struct vxml_session *s, struct vxml_item *it)
{
	struct vxml_transfer_req r;
	char *dest, *v, *aai, *audio;
	int err, bridge;

	memset(&r, 0, sizeof(r));
	dest = vxml_expr_or_attr(s, it->node, "dest", "destexpr", &err);
	if (err)
		return FLOW_THROW;
	aai = vxml_expr_or_attr(s, it->node, "aai", "aaiexpr", &err);
	if (err) {
		free(dest);
		return FLOW_THROW;
	}
	v = vxml_attr(it->node, "bridge");
	bridge = v != NULL && strcmp(v, "true") == 0;
	free(v);
	v = vxml_attr(it->node, "type");
	if (v != NULL) {
		bridge = strcmp(v, "bridge") == 0 || strcmp(v, "consultation") == 0;
		if (strcmp(v, "consultation") == 0) {
			free(v);
			free(dest);
			free(aai);
			return vxml_throwf(s, "error.unsupported.transfer.consultation",
			    it->node, "consultation transfer is not supported");
		}
	}
	free(v);
	if (dest == NULL) {
		free(aai);
		return vxml_throwf(s, "error.semantic", it->node,
		    "<transfer> without dest");
	}
	r.dest = dest;
	r.bridge = bridge;
	v = vxml_attr(it->node, "connecttimeout");
	r.connecttimeout_ms = vxml_time_ms(v, 30000);
	free(v);
	v = vxml_attr(it->node, "maxtime");
	r.maxtime_ms = vxml_time_ms(v, 0);
	free(v);
	audio = vxml_attr(it->node, "transferaudio");
	r.transferaudio = audio;
	r.aai = aai;
	s->wait = WAIT_TRANSFER;
	s->iterations = 0;
	s->p.transfer(s->arg, &r);
	free(dest);
	free(aai);
	free(audio);
	return FLOW_NEXT;
}

static const char *outcome_names[] = {
	"busy", "noanswer", "network_busy", "near_end_disconnect",
	"far_end_disconnect", "maxtime_disconnect", "network_disconnect",
	"unknown", "unknown"
};

void
vxml_transfer_finish(struct vxml_session *s)
{
	struct vxml_dialog *dl = &s->ctx->dlg;
	struct vxml_item *it;
	char code[320];

	s->wait = WAIT_NONE;
	if (dl->cur < 0 || dl->items[dl->cur].kind != ITEM_TRANSFER)
		return;
	it = &dl->items[dl->cur];
	if (s->xfer_outcome == VXML_XFER_BLIND_OK) {
		s->disconnected = 1;
		vxml_throw(s, "connection.disconnect.transfer", NULL, it->node);
		return;
	}
	if (s->xfer_outcome < 0 || s->xfer_outcome > VXML_XFER_UNKNOWN) {
		vxml_throwf(s, "error.connection", it->node, "transfer failed");
		return;
	}
	snprintf(code, sizeof(code), "{duration: %g}", s->xfer_ms / 1000.0);
	if (vxml_js_eval(s, code, it->node) == 0) {
		snprintf(code, sizeof(code), "%s$", it->var);
		vxml_js_declare_top(s, code);
	}
	duk_push_string(s->js, outcome_names[s->xfer_outcome]);
	if (vxml_fill_item(s, it) != 0)
		return;
	vxml_fia_filled(s, it);
}

enum vxml_flow
vxml_record_start(struct vxml_session *s, struct vxml_item *it)
{
	struct vxml_record_req r;
	char *v;

	memset(&r, 0, sizeof(r));
	v = vxml_attr(it->node, "beep");
	r.beep = v != NULL && strcmp(v, "true") == 0;
	free(v);
	v = vxml_attr(it->node, "maxtime");
	r.maxtime_ms = vxml_time_ms(v, 60000);
	free(v);
	v = vxml_attr(it->node, "finalsilence");
	r.finalsilence_ms = vxml_time_ms(v, 3000);
	free(v);
	v = vxml_attr(it->node, "dtmfterm");
	r.dtmfterm = v == NULL || strcmp(v, "false") != 0;
	free(v);
	v = vxml_attr(it->node, "type");
	r.type = v != NULL ? v : "audio/x-wav";
	s->wait = WAIT_RECORD;
	s->iterations = 0;
	s->p.record(s->arg, &r);
	free(v);
	return FLOW_NEXT;
}

void
vxml_record_finish(struct vxml_session *s)
{
	struct vxml_dialog *dl = &s->ctx->dlg;
	struct vxml_item *it;
	char code[400];
	size_t i;

	s->wait = WAIT_NONE;
	if (dl->cur < 0 || dl->items[dl->cur].kind != ITEM_RECORD)
		return;
	it = &dl->items[dl->cur];
	if (s->rec_res.status != 0) {
		vxml_throwf(s, "error.noresource", it->node, "recording failed");
		return;
	}
	if (s->rec_res.duration_ms == 0 && s->rec_res.len == 0) {
		vxml_throw(s, "noinput", NULL, it->node);
		return;
	}
	snprintf(code, sizeof(code), "{duration: %d, size: %zu, termchar: %s, "
	    "maxtime: %s}", s->rec_res.duration_ms, s->rec_res.len,
	    s->rec_res.termchar != 0 ? (char[]){ '"', s->rec_res.termchar, '"', 0 } :
	    "undefined", s->rec_res.maxtime ? "true" : "false");
	if (vxml_js_eval(s, code, it->node) == 0) {
		snprintf(code, sizeof(code), "%s$", it->var);
		vxml_js_declare_top(s, code);
	}
	duk_push_string(s->js, s->rec_res.url != NULL ? s->rec_res.url :
	    "recording");
	for (i = 0; i < s->nrecs; i++)
		if (strcmp(s->recs[i].name, it->var) == 0)
			break;
	if (i == s->nrecs) {
		struct vxml_result_field *r = realloc(s->recs,
		    (s->nrecs + 1) * sizeof(*r));
		struct vxml_audio *a;

		if (r != NULL)
			s->recs = r;
		a = realloc(s->rec_audio, (s->nrecs + 1) * sizeof(*a));
		if (a != NULL)
			s->rec_audio = a;
		if (r != NULL && a != NULL) {
			s->recs[s->nrecs].name = strdup(it->var);
			s->recs[s->nrecs].value = NULL;
			memset(&s->rec_audio[s->nrecs++], 0, sizeof(*a));
		}
	}
	if (i < s->nrecs) {
		struct vxml_audio *a = &s->rec_audio[i];

		duk_dup_top(s->js);
		free(s->recs[i].value);
		s->recs[i].value = vxml_js_json_top(s);
		free(a->data);
		free(a->type);
		a->data = s->rec_data;		/* the session takes it */
		a->len = s->rec_res.len;
		a->type = s->rec_type;
		s->rec_data = NULL;
		s->rec_type = NULL;
	}
	if (vxml_fill_item(s, it) != 0)
		return;
	vxml_fia_filled(s, it);
}

/* The prompts before a transfer or record have played. */
void
vxml_fia_prompts_played(struct vxml_session *s)
{
	struct vxml_dialog *dl = &s->ctx->dlg;
	struct vxml_item *it;

	s->prompts_playing = 0;
	s->prompts_queued = 0;
	s->wait = WAIT_NONE;
	if (dl->cur < 0)
		return;
	it = &dl->items[dl->cur];
	vxml_apply(s, it->kind == ITEM_TRANSFER ? vxml_transfer_start(s, it) :
	    vxml_record_start(s, it));
}
