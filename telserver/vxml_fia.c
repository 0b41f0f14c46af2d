/* vxml_fia.c: the Form Interpretation Algorithm (VoiceXML 2.0 appendix C)
 * over <form> and <menu>: select the first form item whose guard is open
 * (or the <goto nextitem> target), queue its prompts unless the previous
 * iteration ended in a catch without <reprompt>, run it, then process what
 * came back: an event for the catch machinery, or input that fills items and
 * triggers <filled>.  A menu is a dialog with one item, the menu itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vxml_int.h"

#define DEPTH_DIALOG	3	/* application, document, dialog */

static const struct {
	const char		*name;
	enum vxml_item_kind	 kind;
} item_kinds[] = {
	{ "block", ITEM_BLOCK }, { "field", ITEM_FIELD },
	{ "initial", ITEM_INITIAL }, { "subdialog", ITEM_SUBDIALOG },
	{ "record", ITEM_RECORD }, { "transfer", ITEM_TRANSFER },
	{ "object", ITEM_OBJECT }
};

static int
item_kind(xmlNode *n, enum vxml_item_kind *k)
{
	size_t i;

	for (i = 0; i < sizeof(item_kinds) / sizeof(item_kinds[0]); i++)
		if (vxml_is(n, item_kinds[i].name)) {
			*k = item_kinds[i].kind;
			return 0;
		}
	return -1;
}

void
vxml_dialog_leave(struct vxml_session *s)
{
	struct vxml_dialog *dl = &s->ctx->dlg;
	size_t i;

	for (i = 0; i < dl->nitems; i++) {
		free(dl->items[i].var);
		vxml_counts_free(&dl->items[i].counts);
	}
	free(dl->items);
	vxml_counts_free(&dl->counts);
	memset(dl, 0, sizeof(*dl));
	dl->cur = -1;
	dl->next_item = -1;
	if (vxml_js_depth(s) > DEPTH_DIALOG - 1)
		vxml_js_truncate(s, DEPTH_DIALOG - 1);
}

struct vxml_item *
vxml_item_by_node(struct vxml_session *s, xmlNode *n)
{
	struct vxml_dialog *dl = &s->ctx->dlg;
	size_t i;

	for (i = 0; i < dl->nitems; i++)
		if (dl->items[i].node == n)
			return &dl->items[i];
	return NULL;
}

struct vxml_item *
vxml_item_by_name(struct vxml_session *s, const char *name)
{
	struct vxml_dialog *dl = &s->ctx->dlg;
	size_t i;

	for (i = 0; i < dl->nitems; i++)
		if (strcmp(dl->items[i].var, name) == 0)
			return &dl->items[i];
	return NULL;
}

/* A subdialog's <param> values override the dialog's <var> of that name. */
static int
param_value(struct vxml_session *s, const char *name)
{
	duk_context *js = s->js;

	duk_get_global_string(js, "$vxml_params");
	if (!duk_is_object(js, -1) || !duk_has_prop_string(js, -1, name)) {
		duk_pop(js);
		return 0;
	}
	duk_get_prop_string(js, -1, name);
	duk_remove(js, -2);
	return 1;
}

static enum vxml_flow dialog_init(struct vxml_session *, xmlNode *);

/* Enters dialog: a fresh dialog scope with its <var>s, <script>s and form
 * item variables in document order, and fresh counters.  Subdialog params
 * apply to the first dialog entered after the call only. */
enum vxml_flow
vxml_dialog_enter(struct vxml_session *s, xmlNode *dialog)
{
	enum vxml_flow f = dialog_init(s, dialog);

	duk_push_undefined(s->js);
	duk_put_global_string(s->js, "$vxml_params");
	return f;
}

static enum vxml_flow
dialog_init(struct vxml_session *s, xmlNode *dialog)
{
	struct vxml_dialog *dl;
	xmlNode *c;
	size_t n = 0, anon = 0;
	enum vxml_flow f;

	vxml_dialog_leave(s);
	dl = &s->ctx->dlg;
	vxml_js_truncate(s, DEPTH_DIALOG - 1);
	vxml_js_push_scope(s, "dialog");
	dl->node = dialog;
	if (vxml_is(dialog, "menu")) {
		dl->items = calloc(1, sizeof(*dl->items));
		if (dl->items == NULL)
			return vxml_throwf(s, "error.noresource", dialog, "out of memory");
		dl->items[0].node = dialog;
		dl->items[0].kind = ITEM_MENU;
		dl->items[0].var = strdup("$vxml_menu");
		dl->nitems = 1;
		duk_push_undefined(s->js);
		vxml_js_declare_top(s, "$vxml_menu");
		return FLOW_NEXT;
	}
	for (c = vxml_first_elem(dialog); c != NULL; c = vxml_next_elem(c))
		n++;
	if ((dl->items = calloc(n + 1, sizeof(*dl->items))) == NULL)
		return vxml_throwf(s, "error.noresource", dialog, "out of memory");
	for (c = vxml_first_elem(dialog); c != NULL; c = vxml_next_elem(c)) {
		struct vxml_item *it;
		enum vxml_item_kind k;
		char *name, *expr, buf[32];

		if (vxml_is(c, "var")) {
			name = vxml_attr(c, "name");
			if (name != NULL && param_value(s, name)) {
				vxml_js_declare_top(s, name);
				free(name);
				continue;
			}
			free(name);
		}
		if (vxml_is(c, "var") || vxml_is(c, "script")) {
			if ((f = vxml_exec_node(s, c)) != FLOW_NEXT)
				return f;
			continue;
		}
		if (item_kind(c, &k) != 0)
			continue;
		it = &dl->items[dl->nitems++];
		it->node = c;
		it->kind = k;
		if ((name = vxml_attr(c, "name")) == NULL) {
			snprintf(buf, sizeof(buf), "$vxml_item%zu", anon++);
			name = strdup(buf);
		}
		it->var = name;
		if (!vxml_js_valid_name(name))
			return vxml_throwf(s, "error.badfetch", c,
			    "invalid form item name '%s'", name);
		expr = vxml_attr(c, "expr");
		if (vxml_js_declare(s, name, expr, c) != 0) {
			free(expr);
			return FLOW_THROW;
		}
		free(expr);
	}
	return FLOW_NEXT;
}

/* Is the item's guard open: variable undefined and cond true? */
static int
guard_open(struct vxml_session *s, struct vxml_item *it, int *err)
{
	char *cond;
	int ok = 1;

	*err = 0;
	if (vxml_js_defined_var(s, it->var))
		return 0;
	if ((cond = vxml_attr(it->node, "cond")) != NULL) {
		if (vxml_js_eval_bool(s, cond, it->node, &ok) != 0)
			*err = 1;
		free(cond);
	}
	return ok && !*err;
}

static void
start_transition(struct vxml_session *s)
{
	struct vxml_tr *t = &s->tr;
	struct vxml_dialog *dl = &s->ctx->dlg;
	struct vxml_item *it;
	xmlNode *d;

	switch (t->kind) {
	case TR_ITEM:
		if ((it = vxml_item_by_name(s, t->item)) == NULL) {
			vxml_throwf(s, "error.badfetch", NULL,
			    "no form item '%s'", t->item);
			break;
		}
		dl->next_item = (int)(it - dl->items);
		break;
	case TR_DIALOG:
		if ((d = vxml_doc_dialog(s->ctx->doc, t->frag)) == NULL) {
			vxml_throwf(s, "error.badfetch", NULL, "no dialog '%s'",
			    t->frag != NULL ? t->frag : "");
			break;
		}
		vxml_apply(s, vxml_dialog_enter(s, d));
		break;
	case TR_DOC:
		vxml_fetch_doc(s, FOR_DOC);
		return;
	case TR_NONE:
		break;
	}
	vxml_tr_clear(t);
}

/* <disconnect>: hang up, then connection.disconnect.hangup for the
 * application to catch (it may still submit what it has). */
void
vxml_disconnect_now(struct vxml_session *s)
{
	s->wait = WAIT_NONE;
	s->prompts_queued = 0;
	if (!s->disconnected) {
		s->disconnected = 1;
		s->p.disconnect(s->arg);
	}
	s->hungup = 1;
	vxml_throw(s, "connection.disconnect.hangup", NULL, NULL);
}

/* Acts on what executable content or a handler asked for. */
void
vxml_apply(struct vxml_session *s, enum vxml_flow f)
{
	switch (f) {
	case FLOW_NEXT:
	case FLOW_THROW:	/* the next step handles the event */
		break;
	case FLOW_GOTO:
		start_transition(s);
		break;
	case FLOW_EXIT:
		if (s->wait != WAIT_DONE && s->wait != WAIT_PROMPTS_END)
			vxml_end(s, VXML_END_EXIT);
		break;
	case FLOW_RETURN:
		vxml_subdialog_return(s);
		break;
	case FLOW_DISCONNECT:
		if (s->prompts_queued > 0 && !s->hungup) {
			/* the goodbye before the hang-up */
			s->wait = WAIT_PROMPTS_DISC;
			s->prompts_playing = 1;
			s->p.play(s->arg);
			break;
		}
		vxml_disconnect_now(s);
		break;
	}
}

/* Executes content in a fresh anonymous scope under the dialog. */
static enum vxml_flow
exec_anon(struct vxml_session *s, xmlNode *n)
{
	int depth = vxml_js_depth(s);
	enum vxml_flow f;

	vxml_js_push_scope(s, NULL);
	f = vxml_exec(s, n);
	vxml_js_truncate(s, depth);
	return f;
}

static int
filled_triggered(struct vxml_session *s, xmlNode *fl)
{
	struct vxml_dialog *dl = &s->ctx->dlg;
	char *mode = vxml_attr(fl, "mode"), *list = vxml_attr(fl, "namelist");
	int any = mode != NULL && strcmp(mode, "any") == 0, just = 0, all = 1;
	size_t i;

	for (i = 0; i < dl->nitems; i++) {
		struct vxml_item *it = &dl->items[i];
		int named;

		if (it->kind == ITEM_BLOCK || it->kind == ITEM_INITIAL)
			continue;
		if (list != NULL) {
			const char *p = list;
			size_t vl = strlen(it->var);

			named = 0;
			while ((p = strstr(p, it->var)) != NULL) {
				if ((p == list || p[-1] == ' ' || p[-1] == '\t' ||
				    p[-1] == '\n') && (p[vl] == '\0' ||
				    p[vl] == ' ' || p[vl] == '\t' || p[vl] == '\n'))
					named = 1;
				p += vl;
			}
		} else
			named = 1;
		if (!named)
			continue;
		if (it->just_filled)
			just = 1;
		if (!vxml_js_defined_var(s, it->var))
			all = 0;
	}
	free(mode);
	free(list);
	return just && (any || all);
}

/* Process phase after items were filled: the <filled> elements in
 * document order, item-level ones only for the items just filled. */
void
vxml_fia_filled(struct vxml_session *s, struct vxml_item *filled)
{
	struct vxml_dialog *dl = &s->ctx->dlg;
	xmlNode *c, *f;
	enum vxml_flow fl = FLOW_NEXT;
	size_t i;

	for (c = vxml_first_elem(dl->node); c != NULL && fl == FLOW_NEXT;
	    c = vxml_next_elem(c)) {
		struct vxml_item *it;

		if (vxml_is(c, "filled")) {
			if (!filled_triggered(s, c))
				continue;
			dl->in_filled = 1;
			fl = exec_anon(s, c);
			dl->in_filled = 0;
			continue;
		}
		if ((it = vxml_item_by_node(s, c)) == NULL || !it->just_filled)
			continue;
		dl->cur = (int)(it - dl->items);
		for (f = vxml_first_elem(c); f != NULL && fl == FLOW_NEXT;
		    f = vxml_next_elem(f))
			if (vxml_is(f, "filled"))
				fl = exec_anon(s, f);
	}
	if (dl->node != NULL && vxml_is(dl->node, "menu") == 0)
		for (i = 0; i < dl->nitems; i++)
			dl->items[i].just_filled = 0;
	(void)filled;
	vxml_apply(s, fl);
}

/* Sets an item's variable from the stack top (popped) and records it. */
int
vxml_fill_item(struct vxml_session *s, struct vxml_item *it)
{
	duk_dup_top(s->js);
	if (vxml_js_assign_top(s, it->var) != 0) {
		duk_pop(s->js);
		return -1;
	}
	it->just_filled = 1;
	if (it->var[0] != '$')
		vxml_note_field(s, it->var, vxml_js_json_top(s));
	else
		duk_pop(s->js);
	return 0;
}

/* A menu choice was taken: its next/expr/event is the transition. */
void
vxml_choice_taken(struct vxml_session *s, xmlNode *ch)
{
	char *ev, *msg, *next;
	int err;

	ev = vxml_expr_or_attr(s, ch, "event", "eventexpr", &err);
	if (err)
		return;
	if (ev != NULL) {
		msg = vxml_expr_or_attr(s, ch, "message", "messageexpr", &err);
		if (!err)
			vxml_throw(s, ev, msg, ch);
		free(ev);
		free(msg);
		return;
	}
	next = vxml_expr_or_attr(s, ch, "next", "expr", &err);
	if (err)
		return;
	vxml_tr_clear(&s->tr);
	if (next == NULL || vxml_tr_target(s, next, &s->tr) != 0) {
		vxml_throwf(s, "error.badfetch", ch, "<choice> without a target");
		free(next);
		return;
	}
	free(next);
	s->tr.node = ch;
	vxml_apply(s, FLOW_GOTO);
}


/* Input matched grammar idx (of the current item's active set). */
void
vxml_fia_matched(struct vxml_session *s, int idx, struct vxml_interp *m)
{
	struct vxml_dialog *dl = &s->ctx->dlg;
	struct vxml_item *it = dl->cur >= 0 ? &dl->items[dl->cur] : NULL;
	xmlNode *g = idx >= 0 && (size_t)idx < s->ngrammars ? s->gnodes[idx] : NULL;
	char *src, *slot;
	xmlNode *ln;
	size_t i;

	free(s->taken_src);	/* the session holds it (see finish()) */
	src = s->taken_src = vxml_interp_source(m);
	s->ev_depth = 0;
	if (it == NULL) {
		return;
	}
	for (ln = g; ln != NULL && !vxml_is(ln, "link"); ln = ln->parent)
		;
	if (ln != NULL) {		/* a <link>: like a menu choice */
		vxml_js_set_lastresult(s, NULL, m->utterance != NULL ?
		    m->utterance : s->cur, src);
		duk_pop(s->js);
		vxml_choice_taken(s, ln);
		return;
	}
	for (ln = g; ln != NULL && !vxml_is(ln, "choice"); ln = ln->parent)
		;
	if (it->kind == ITEM_MENU || ln != NULL) {
		/* this menu's choice, or a document-scoped menu's */
		xmlNode *ch = g;

		vxml_js_set_lastresult(s, NULL, m->utterance != NULL ?
		    m->utterance : s->cur, src);
		duk_pop(s->js);
		while (ch != NULL && !vxml_is(ch, "choice"))
			ch = ch->parent;
		if (ch == NULL)
			return;
		vxml_choice_taken(s, ch);
		return;
	}
	vxml_js_set_lastresult(s, it->kind == ITEM_FIELD ? it->var : NULL,
	    m->utterance != NULL ? m->utterance : s->cur, src);
	if (it->kind == ITEM_INITIAL ||
	    (vxml_is(g, "grammar") && g->parent == dl->node)) {
		/* a form-level grammar: fill the fields its slots name */
		for (i = 0; i < dl->nitems; i++) {
			struct vxml_item *f = &dl->items[i];

			if (f->kind == ITEM_INITIAL) {
				duk_push_true(s->js);
				vxml_js_assign_top(s, f->var);
				continue;
			}
			if (f->kind != ITEM_FIELD || !duk_is_object(s->js, -1))
				continue;
			slot = vxml_attr(f->node, "slot");
			if (duk_has_prop_string(s->js, -1, slot != NULL ? slot : f->var)) {
				duk_get_prop_string(s->js, -1, slot != NULL ? slot : f->var);
				vxml_fill_item(s, f);
			}
			free(slot);
		}
		duk_pop(s->js);
		vxml_fia_filled(s, it);
		return;
	}
	/* a field: the slot of an object interpretation, or all of it */
	slot = vxml_attr(it->node, "slot");
	if (duk_is_object(s->js, -1) && !duk_is_array(s->js, -1) &&
	    duk_has_prop_string(s->js, -1, slot != NULL ? slot : it->var)) {
		duk_get_prop_string(s->js, -1, slot != NULL ? slot : it->var);
		duk_remove(s->js, -2);
	}
	free(slot);
	if (vxml_fill_item(s, it) != 0)
		return;
	vxml_fia_filled(s, it);
}

/* Input collection ended without a match (the event is pending). */
void
vxml_fia_input_done(struct vxml_session *s, enum vxml_flow f)
{
	vxml_apply(s, f);
}

/* One FIA iteration, or the handling of a pending event. */
void
vxml_fia_step(struct vxml_session *s)
{
	struct vxml_dialog *dl = &s->ctx->dlg;
	struct vxml_item *it = NULL;
	enum vxml_flow f;
	size_t i;
	int err;

	/* events handled and items run since the caller was last asked */
	if (++s->iterations > VXML_LOOP_LIMIT) {
		vxml_throwf(s, "error.noresource", dl->node,
		    "the dialog loops without waiting for the caller");
		vxml_end(s, VXML_END_ERROR);
		return;
	}
	if (s->ev_name != NULL) {
		f = vxml_handle_event(s);
		if (f != FLOW_THROW)
			s->ev_depth = 0;
		vxml_apply(s, f);
		return;
	}
	if (s->wait != WAIT_NONE)
		return;
	if (dl->node == NULL) {
		vxml_end(s, VXML_END_EXIT);
		return;
	}
	if (dl->next_item >= 0) {
		it = &dl->items[dl->next_item];
		dl->next_item = -1;
	} else
		for (i = 0; i < dl->nitems; i++) {
			if (guard_open(s, &dl->items[i], &err)) {
				it = &dl->items[i];
				break;
			}
			if (err)
				return;
		}
	if (it == NULL) {		/* the form is done: an implicit <exit> */
		vxml_end(s, VXML_END_EXIT);
		return;
	}
	dl->cur = (int)(it - dl->items);
	if (it->kind == ITEM_BLOCK) {
		dl->skip_prompts = 0;
		duk_push_true(s->js);
		if (vxml_js_assign_top(s, it->var) != 0)
			return;
		vxml_apply(s, exec_anon(s, it->node));
		return;
	}
	if (!dl->skip_prompts) {
		it->prompt_count++;
		if ((f = vxml_prompt_select(s, it)) != FLOW_NEXT) {
			vxml_apply(s, f);
			return;
		}
	}
	dl->skip_prompts = 0;
	switch (it->kind) {
	case ITEM_FIELD:
	case ITEM_INITIAL:
	case ITEM_MENU:
		f = vxml_input_start(s, it);
		break;
	case ITEM_SUBDIALOG:
		f = vxml_subdialog_start(s, it);
		break;
	case ITEM_TRANSFER:
	case ITEM_RECORD:
		if (s->hungup) {
			f = vxml_throw(s, "connection.disconnect.hangup", NULL, NULL);
			break;
		}
		if (s->prompts_queued > 0) {
			/* play the item's prompts first */
			s->wait = WAIT_PROMPTS_THEN;
			s->prompts_playing = 1;
			s->p.play(s->arg);
			return;
		}
		f = it->kind == ITEM_TRANSFER ? vxml_transfer_start(s, it) :
		    vxml_record_start(s, it);
		break;
	case ITEM_OBJECT:
		f = vxml_throwf(s, "error.unsupported.objecttype", it->node,
		    "<object> is not supported");
		break;
	default:
		f = FLOW_NEXT;
		break;
	}
	vxml_apply(s, f);
}
