/* vxml_exec.c: executable content (<block>, <filled>, catch handlers).  It
 * runs to completion without waiting: everything it could need from the
 * network (<script src>) was fetched with its document.  It stops at the
 * first element that throws or transfers control, and says which. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vxml_int.h"

void
vxml_tr_clear(struct vxml_tr *t)
{
	size_t i;

	free(t->url);
	free(t->frag);
	free(t->item);
	free(t->enctype);
	for (i = 0; i < t->nparams; i++) {
		free((char *)t->params[i].name);
		free((char *)t->params[i].value);
		free((void *)t->params[i].data);
		free((char *)t->params[i].type);
	}
	free(t->params);
	memset(t, 0, sizeof(*t));
}

/* The literal attr, or the value of the expression in exprattr; NULL when
 * neither is there (*err 0) or the expression failed (*err 1). */
char *
vxml_expr_or_attr(struct vxml_session *s, xmlNode *n, const char *attr,
    const char *exprattr, int *err)
{
	char *v, *e, *r = NULL;

	*err = 0;
	if (attr != NULL && (v = vxml_attr(n, attr)) != NULL)
		return v;
	if (exprattr == NULL || (e = vxml_attr(n, exprattr)) == NULL)
		return NULL;
	if (vxml_js_eval_str(s, e, n, &r) != 0)
		*err = 1;
	free(e);
	return r;
}

/* Splits a space-separated list in place; returns the count. */
static size_t
split_names(char *list, char **out, size_t max)
{
	size_t n = 0;
	char *p, *save = NULL;

	for (p = strtok_r(list, " \t\r\n", &save); p != NULL && n < max;
	    p = strtok_r(NULL, " \t\r\n", &save))
		out[n++] = p;
	return n;
}

static int	namelist_params(struct vxml_session *, xmlNode *, const char *,
		    struct vxml_tr *);
static void	url_append(char **, const char *, const char *);

/* The recording held for a <record> variable, if any. */
static struct vxml_audio *
recording(struct vxml_session *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->nrecs; i++)
		if (strcmp(s->recs[i].name, name) == 0)
			return s->rec_audio[i].data != NULL ? &s->rec_audio[i] : NULL;
	return NULL;
}

/* namelist -> params (string values; recordings as file parts); for GET
 * they go into the URL. */
int
vxml_namelist_params(struct vxml_session *s, xmlNode *n, const char *list,
    struct vxml_tr *t)
{
	size_t i;

	if (namelist_params(s, n, list, t) != 0)
		return -1;
	if (!t->post)
		for (i = 0; i < t->nparams; i++)
			url_append(&t->url, t->params[i].name, t->params[i].value);
	return 0;
}

static int
namelist_params(struct vxml_session *s, xmlNode *n, const char *list,
    struct vxml_tr *t)
{
	char *copy = strdup(list), *names[64];
	size_t nn, i;

	if (copy == NULL)
		return -1;
	nn = split_names(copy, names, 64);
	t->params = calloc(nn + 1, sizeof(*t->params));
	for (i = 0; i < nn && t->params != NULL; i++) {
		struct vxml_param *p = &t->params[t->nparams];
		struct vxml_audio *a;
		char *v;
		void *d;

		if (!vxml_js_is_defined(s, names[i])) {
			vxml_throwf(s, "error.semantic", n,
			    "namelist names undeclared variable '%s'", names[i]);
			free(copy);
			return -1;
		}
		if (vxml_js_eval(s, names[i], n) != 0) {
			free(copy);
			return -1;
		}
		if (duk_is_object(s->js, -1) && !duk_is_array(s->js, -1) &&
		    !duk_is_function(s->js, -1))
			v = vxml_js_json_top(s);
		else {
			v = strdup(duk_is_undefined(s->js, -1) ? "" :
			    duk_safe_to_string(s->js, -1));
			duk_pop(s->js);
		}
		p->name = strdup(names[i]);
		p->value = v;
		if ((a = recording(s, names[i])) != NULL &&
		    (d = malloc(a->len)) != NULL) {
			memcpy(d, a->data, a->len);
			p->data = d;
			p->len = a->len;
			p->type = strdup(a->type != NULL ? a->type : "audio/x-wav");
		}
		t->nparams++;
	}
	free(copy);
	return 0;
}

static void
url_append(char **url, const char *name, const char *value)
{
	if (*url == NULL)
		return;
	size_t n = strlen(*url), i;
	char *r, *q;
	const char *parts[2] = { name, value };
	int k;

	r = malloc(n + 3 * (strlen(name) + strlen(value)) + 3);
	if (r == NULL)
		return;
	memcpy(r, *url, n);
	q = r + n;
	*q++ = strchr(*url, '?') != NULL ? '&' : '?';
	for (k = 0; k < 2; k++) {
		for (i = 0; parts[k][i] != '\0'; i++) {
			unsigned char ch = (unsigned char)parts[k][i];

			if (isalnum(ch) || strchr("-_.~", ch) != NULL)
				*q++ = (char)ch;
			else if (ch == ' ')
				*q++ = '+';
			else {
				sprintf(q, "%%%02X", ch);
				q += 3;
			}
		}
		if (k == 0)
			*q++ = '=';
	}
	*q = '\0';
	free(*url);
	*url = r;
}

/* The target of <goto>/<submit>/<choice>/<link> as a transition: a dialog
 * of the active document, or another document to fetch. */
int
vxml_tr_target(struct vxml_session *s, const char *target, struct vxml_tr *t)
{
	char *abs = NULL, *frag = NULL, *res;

	if (target[0] == '#') {
		t->kind = TR_DIALOG;
		t->frag = strdup(target + 1);
		return 0;
	}
	res = vxml_url_resolve(s->ctx->doc != NULL ? s->ctx->doc->url : NULL,
	    target);
	if (res == NULL)
		return -1;
	vxml_url_split(res, &abs, &frag);
	free(res);
	t->kind = TR_DOC;
	t->url = abs;
	t->frag = frag;
	return 0;
}

static enum vxml_flow
exec_goto(struct vxml_session *s, xmlNode *n, int submit)
{
	struct vxml_tr *t = &s->tr;
	char *next, *item, *list, *method;
	int err;

	vxml_tr_clear(t);
	t->node = n;
	if (!submit) {
		item = vxml_expr_or_attr(s, n, "nextitem", "expritem", &err);
		if (err)
			return FLOW_THROW;
		if (item != NULL) {
			t->kind = TR_ITEM;
			t->item = item;
			return FLOW_GOTO;
		}
	}
	next = vxml_expr_or_attr(s, n, "next", "expr", &err);
	if (err)
		return FLOW_THROW;
	if (next == NULL || *next == '\0') {
		free(next);
		return vxml_throwf(s, "error.badfetch", n, "<%s> without a target",
		    (const char *)n->name);
	}
	if (vxml_tr_target(s, next, t) != 0) {
		free(next);
		return vxml_throwf(s, "error.badfetch", n, "bad URI");
	}
	free(next);
	if (!submit)
		return FLOW_GOTO;
	t->submit = 1;
	if (t->kind == TR_DIALOG) {	/* a submit always fetches */
		t->kind = TR_DOC;
		t->url = strdup(s->ctx->doc->url);
	}
	if ((list = vxml_attr(n, "namelist")) != NULL) {
		int rc = namelist_params(s, n, list, t);

		free(list);
		if (rc != 0)
			return FLOW_THROW;
	}
	method = vxml_attr(n, "method");
	t->post = method != NULL && strcasecmp(method, "post") == 0;
	free(method);
	t->enctype = vxml_attr(n, "enctype");
	if (!t->post) {
		size_t i;

		for (i = 0; i < t->nparams; i++)
			url_append(&t->url, t->params[i].name, t->params[i].value);
	}
	return FLOW_GOTO;
}

/* A namelist as the JSON text of an object. */
static char *
namelist_json(struct vxml_session *s, xmlNode *n, const char *list, int *err)
{
	char *copy = strdup(list), *names[64];
	size_t nn, i;
	duk_idx_t obj;

	*err = 0;
	if (copy == NULL)
		return NULL;
	nn = split_names(copy, names, 64);
	obj = duk_push_object(s->js);
	for (i = 0; i < nn; i++) {
		if (!vxml_js_is_defined(s, names[i])) {
			vxml_throwf(s, "error.semantic", n,
			    "namelist names undeclared variable '%s'", names[i]);
			*err = 1;
			break;
		}
		if (vxml_js_eval(s, names[i], n) != 0) {
			*err = 1;
			break;
		}
		duk_put_prop_string(s->js, obj, names[i]);
	}
	free(copy);
	if (*err) {
		duk_pop(s->js);
		return NULL;
	}
	return vxml_js_json_top(s);
}

static enum vxml_flow
exec_exit(struct vxml_session *s, xmlNode *n)
{
	char *e, *list;
	int err = 0;

	free(s->exit_json);
	s->exit_json = NULL;
	if ((e = vxml_attr(n, "expr")) != NULL) {
		if (vxml_js_eval(s, e, n) != 0) {
			free(e);
			return FLOW_THROW;
		}
		free(e);
		s->exit_json = vxml_js_json_top(s);
	} else if ((list = vxml_attr(n, "namelist")) != NULL) {
		s->exit_json = namelist_json(s, n, list, &err);
		free(list);
		if (err)
			return FLOW_THROW;
	}
	return FLOW_EXIT;
}

static enum vxml_flow
exec_return(struct vxml_session *s, xmlNode *n)
{
	char *ev, *msg, *list;
	int err;

	if (s->ctx->parent == NULL)
		return vxml_throwf(s, "error.semantic", n,
		    "<return> outside a subdialog");
	free(s->ret_json);
	s->ret_json = NULL;
	ev = vxml_expr_or_attr(s, n, "event", "eventexpr", &err);
	if (err)
		return FLOW_THROW;
	if (ev != NULL) {
		msg = vxml_expr_or_attr(s, n, "message", "messageexpr", &err);
		if (err) {
			free(ev);
			return FLOW_THROW;
		}
		/* thrown in the caller once the subdialog is gone */
		free(s->ret_event);
		s->ret_event = ev;
		free(s->ret_msg);
		s->ret_msg = msg;
		return FLOW_RETURN;
	}
	if ((list = vxml_attr(n, "namelist")) != NULL) {
		s->ret_json = namelist_json(s, n, list, &err);
		free(list);
		if (err)
			return FLOW_THROW;
	} else
		s->ret_json = strdup("{}");
	return FLOW_RETURN;
}

static enum vxml_flow
exec_throw(struct vxml_session *s, xmlNode *n)
{
	char *ev, *msg;
	int err;
	enum vxml_flow f;

	ev = vxml_expr_or_attr(s, n, "event", "eventexpr", &err);
	if (err)
		return FLOW_THROW;
	if (ev == NULL || *ev == '\0') {
		free(ev);
		return vxml_throwf(s, "error.badfetch", n, "<throw> without event");
	}
	msg = vxml_expr_or_attr(s, n, "message", "messageexpr", &err);
	if (err) {
		free(ev);
		return FLOW_THROW;
	}
	f = vxml_throw(s, ev, msg, n);
	free(ev);
	free(msg);
	return f;
}

static enum vxml_flow
exec_log(struct vxml_session *s, xmlNode *n)
{
	char *label, *text = NULL, *e, *v;
	size_t len = 0;
	xmlNode *c;

	for (c = n->children; c != NULL; c = c->next) {
		v = NULL;
		if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE)
			v = strdup((const char *)c->content);
		else if (vxml_is(c, "value") &&
		    (e = vxml_attr(c, "expr")) != NULL) {
			int rc = vxml_js_eval_str(s, e, c, &v);

			free(e);
			if (rc != 0) {
				free(text);
				return FLOW_THROW;
			}
		}
		if (v != NULL) {
			size_t vl = strlen(v);
			char *t = realloc(text, len + vl + 1);

			if (t != NULL) {
				memcpy(t + len, v, vl + 1);
				text = t;
				len += vl;
			}
			free(v);
		}
	}
	if ((e = vxml_attr(n, "expr")) != NULL) {
		free(text);
		text = NULL;
		if (vxml_js_eval_str(s, e, n, &text) != 0) {
			free(e);
			return FLOW_THROW;
		}
		free(e);
	}
	label = vxml_attr(n, "label");
	vxml_log(s, label != NULL ? label : "", "%s", text != NULL ? text : "");
	free(label);
	free(text);
	return FLOW_NEXT;
}

static enum vxml_flow
exec_script(struct vxml_session *s, xmlNode *n)
{
	struct vxml_res *r;
	xmlChar *code;
	int rc;

	if (vxml_has_attr(n, "src")) {
		char *body;

		r = vxml_doc_res(s->ctx->doc, n);
		if (r == NULL)
			r = vxml_doc_res(s->ctx->app, n);
		if (r == NULL || r->status < 200 || r->status > 299)
			return vxml_throwf(s, "error.badfetch", n,
			    "cannot fetch script %s (status %d)",
			    r != NULL ? r->url : "?", r != NULL ? r->status : 0);
		if ((body = strndup(r->body != NULL ? r->body : "", r->len)) == NULL)
			return vxml_throwf(s, "error.noresource", n, "out of memory");
		rc = vxml_js_run(s, body, n);
		free(body);
		return rc != 0 ? FLOW_THROW : FLOW_NEXT;
	}
	if (vxml_has_attr(n, "srcexpr"))
		return vxml_throwf(s, "error.unsupported.script.srcexpr", n,
		    "<script srcexpr> is not supported");
	code = xmlNodeGetContent(n);
	rc = vxml_js_run(s, code != NULL ? (const char *)code : "", n);
	xmlFree(code);
	return rc != 0 ? FLOW_THROW : FLOW_NEXT;
}

/* <clear>: the named (or all) form items become undefined with fresh
 * prompt and event counters. */
static enum vxml_flow
exec_clear(struct vxml_session *s, xmlNode *n)
{
	struct vxml_dialog *dl = &s->ctx->dlg;
	char *list, *names[64];
	size_t nn, i;

	if ((list = vxml_attr(n, "namelist")) == NULL) {
		for (i = 0; i < dl->nitems; i++) {
			struct vxml_item *it = &dl->items[i];

			duk_push_undefined(s->js);
			if (vxml_js_assign_top(s, it->var) != 0)
				return FLOW_THROW;
			it->prompt_count = 0;
			vxml_counts_free(&it->counts);
		}
		return FLOW_NEXT;
	}
	nn = split_names(list, names, 64);
	for (i = 0; i < nn; i++) {
		struct vxml_item *it = vxml_item_by_name(s, names[i]);

		duk_push_undefined(s->js);
		if (vxml_js_assign_top(s, names[i]) != 0) {
			free(list);
			return FLOW_THROW;
		}
		if (it != NULL) {
			it->prompt_count = 0;
			vxml_counts_free(&it->counts);
		}
	}
	free(list);
	return FLOW_NEXT;
}

/* One child of executable content: an element runs, text is a prompt. */
static enum vxml_flow
exec_child(struct vxml_session *s, xmlNode *c)
{
	if (c->type == XML_ELEMENT_NODE)
		return vxml_exec_node(s, c);
	if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE)
		return vxml_prompt_queue(s, c, vxml_bargein_default(s));
	return FLOW_NEXT;
}

static enum vxml_flow
exec_if(struct vxml_session *s, xmlNode *n)
{
	xmlNode *c;
	char *cond;
	int active, done, rc;
	enum vxml_flow f;

	cond = vxml_attr(n, "cond");
	rc = vxml_js_eval_bool(s, cond != NULL ? cond : "false", n, &active);
	free(cond);
	if (rc != 0)
		return FLOW_THROW;
	done = active;
	for (c = n->children; c != NULL; c = c->next) {
		if (vxml_is(c, "elseif") || vxml_is(c, "else")) {
			if (done && !active)
				continue;
			if (active)
				return FLOW_NEXT;	/* the branch ran */
			if (vxml_is(c, "else"))
				active = 1;
			else {
				cond = vxml_attr(c, "cond");
				rc = vxml_js_eval_bool(s, cond != NULL ? cond :
				    "false", c, &active);
				free(cond);
				if (rc != 0)
					return FLOW_THROW;
			}
			done = active;
			continue;
		}
		if (!active)
			continue;
		if ((f = exec_child(s, c)) != FLOW_NEXT)
			return f;
	}
	return FLOW_NEXT;
}

/* <foreach array item> (VoiceXML 2.1): body(s, n, arg) once per element,
 * with item declared in the innermost scope if it is not visible yet. */
enum vxml_flow
vxml_foreach(struct vxml_session *s, xmlNode *n,
    enum vxml_flow (*body)(struct vxml_session *, xmlNode *, void *), void *arg)
{
	char *array = vxml_attr(n, "array"), *item = vxml_attr(n, "item");
	enum vxml_flow f = FLOW_NEXT;
	duk_idx_t at;
	duk_size_t i, len;

	if (array == NULL || item == NULL || !vxml_js_valid_name(item)) {
		free(array);
		free(item);
		return vxml_throwf(s, "error.badfetch", n,
		    "<foreach> needs array and a valid item");
	}
	if (vxml_js_eval(s, array, n) != 0) {
		free(array);
		free(item);
		return FLOW_THROW;
	}
	at = duk_get_top_index(s->js);
	if (!duk_is_array(s->js, at)) {
		duk_pop(s->js);
		f = vxml_throwf(s, "error.semantic", n, "'%s' is not an array", array);
		free(array);
		free(item);
		return f;
	}
	len = duk_get_length(s->js, at);
	for (i = 0; i < len && f == FLOW_NEXT; i++) {
		duk_get_prop_index(s->js, at, (duk_uarridx_t)i);
		if (vxml_js_is_defined(s, item)) {
			if (vxml_js_assign_top(s, item) != 0) {
				f = FLOW_THROW;
				break;
			}
		} else
			vxml_js_declare_top(s, item);
		f = body(s, n, arg);
	}
	duk_set_top(s->js, at);
	free(array);
	free(item);
	return f;
}

static enum vxml_flow
foreach_exec(struct vxml_session *s, xmlNode *n, void *arg)
{
	return vxml_exec(s, n);
}

enum vxml_flow
vxml_exec_node(struct vxml_session *s, xmlNode *n)
{
	char *name, *expr;
	int rc;

	if (n->ns != NULL && n->ns->href != NULL &&
	    strstr((const char *)n->ns->href, "vxml-conformance") != NULL)
		return FLOW_NEXT;	/* leftovers of the W3C test markup */
	if (vxml_is(n, "var")) {
		name = vxml_attr(n, "name");
		expr = vxml_attr(n, "expr");
		rc = vxml_js_declare(s, name, expr, n);
		free(name);
		free(expr);
		return rc != 0 ? FLOW_THROW : FLOW_NEXT;
	}
	if (vxml_is(n, "assign")) {
		name = vxml_attr(n, "name");
		expr = vxml_attr(n, "expr");
		rc = vxml_js_assign(s, name, expr, n);
		free(name);
		free(expr);
		return rc != 0 ? FLOW_THROW : FLOW_NEXT;
	}
	if (vxml_is(n, "if"))
		return exec_if(s, n);
	if (vxml_is(n, "clear"))
		return exec_clear(s, n);
	if (vxml_is(n, "goto"))
		return exec_goto(s, n, 0);
	if (vxml_is(n, "submit"))
		return exec_goto(s, n, 1);
	if (vxml_is(n, "exit"))
		return exec_exit(s, n);
	if (vxml_is(n, "return"))
		return exec_return(s, n);
	if (vxml_is(n, "disconnect"))
		return FLOW_DISCONNECT;
	if (vxml_is(n, "throw"))
		return exec_throw(s, n);
	if (vxml_is(n, "reprompt")) {
		s->reprompt = 1;
		return FLOW_NEXT;
	}
	if (vxml_is(n, "log"))
		return exec_log(s, n);
	if (vxml_is(n, "script"))
		return exec_script(s, n);
	if (vxml_is(n, "prompt") || vxml_is(n, "audio") || vxml_is(n, "value") ||
	    vxml_is(n, "enumerate") || vxml_is(n, "break") ||
	    vxml_is(n, "say-as") || vxml_is(n, "emphasis") ||
	    vxml_is(n, "prosody") || vxml_is(n, "p") || vxml_is(n, "s") ||
	    vxml_is(n, "sub") || vxml_is(n, "voice") || vxml_is(n, "mark"))
		return vxml_prompt_queue(s, n, vxml_bargein_default(s));
	if (vxml_is(n, "foreach"))
		return vxml_foreach(s, n, foreach_exec, NULL);
	if (vxml_is(n, "data"))
		return vxml_throwf(s, "error.unsupported.element", n,
		    "<%s> is not supported", (const char *)n->name);
	return FLOW_NEXT;
}

/* Runs the executable content among parent's children. */
enum vxml_flow
vxml_exec(struct vxml_session *s, xmlNode *parent)
{
	xmlNode *c;
	enum vxml_flow f;

	for (c = parent->children; c != NULL; c = c->next) {
		if ((f = exec_child(s, c)) != FLOW_NEXT)
			return f;
	}
	return FLOW_NEXT;
}
