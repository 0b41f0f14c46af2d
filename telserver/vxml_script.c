/* vxml_script.c: ECMAScript with duktape, one heap per session.
 *
 * The VoiceXML scope chain (session -> application -> document -> dialog ->
 * anonymous) is an array of plain objects, $vxml_sc, innermost last.  Code
 * runs as
 *	with ($vxml_sc[0]) with ($vxml_sc[1]) ... { eval($vxml_code) }
 * so that names resolve innermost first and assignments reach the scope that
 * declared the variable.  The direct eval matters: duktape then gives the
 * functions a script declares that same chain as their scope.  A <script>
 * runs in a thread whose global object is its scope object, so that its
 * var and function declarations land there.  The session scope is the real
 * global object (which also holds the ECMAScript built-ins); every scope
 * object inherits from it so that the built-ins stay reachable from such a
 * thread.  Each execution context (the main one, each subdialog) keeps its
 * own array in the heap stash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vxml_int.h"

static const char js_boot[] =
"(function (g) {\n"
"  function hide(n, v) { Object.defineProperty(g, n, { value: v,\n"
"      writable: true, enumerable: false, configurable: true }); }\n"
"  hide('$vxml_global', g);\n"
"  hide('$vxml_sc', []);\n"
"  hide('$vxml_code', '');\n"
"  hide('$vxml_value', undefined);\n"
"  hide('$vxml_params', undefined);\n"
"  hide('$vxml_newscope', function () { return Object.create(g); });\n"
"  hide('$vxml_names', function () {\n"
"    var sc = g.$vxml_sc;\n"
"    hide('application', sc[0]);\n"
"    hide('document', sc.length > 1 ? sc[1] : undefined);\n"
"    hide('dialog', sc.length > 2 ? sc[2] : undefined);\n"
"  });\n"
/* a dotted name is declared when each step exists */
"  hide('$vxml_has', function (name) {\n"
"    var p = name.split('.'), sc = g.$vxml_sc, o, i, found = false;\n"
"    for (i = sc.length - 1; i >= 0; i--)\n"
"      if (Object.prototype.hasOwnProperty.call(sc[i], p[0])) {\n"
"        o = sc[i][p[0]]; found = true; break; }\n"
"    if (!found) { if (!(p[0] in g)) return false; o = g[p[0]]; }\n"
"    for (i = 1; i < p.length; i++) {\n"
"      if (o === null || o === undefined || !(p[i] in Object(o))) return false;\n"
"      o = o[p[i]];\n"
"    }\n"
"    return true;\n"
"  });\n"
"  hide('$vxml_result', function (utt, interp) {\n"
"    var r = { confidence: 1.0, utterance: utt, inputmode: 'dtmf',\n"
"        interpretation: interp }, a = [r];\n"
"    a.confidence = 1.0; a.utterance = utt; a.inputmode = 'dtmf';\n"
"    a.interpretation = interp; a.markname = undefined; a.marktime = undefined;\n"
"    g.$vxml_sc[0]['lastresult$'] = a;\n"
"    return r;\n"
"  });\n"
/* semantics/1.0 tags along the match path: out starts as an empty
 * object; left empty, the result is the utterance (SISR 1.0) */
"  hide('$vxml_tags', function (tags, utt) {\n"
"    var out = {}, rules = {}, meta = { current: function () {\n"
"        return { text: utt, score: 1.0 }; } };\n"
"    for (var i = 0; i < tags.length; i++)\n"
"      out = (function (out, rules, meta) { eval(tags[i]); return out; })\n"
"          (out, rules, meta);\n"
"    if (out === undefined || (typeof out == 'object' && out !== null &&\n"
"        Object.keys(out).length == 0)) return utt;\n"
"    return out;\n"
"  });\n"
"})(this);\n";

static void (*fatal_hook)(void);

void
vxml_set_fatal_hook(void (*hook)(void))
{
	fatal_hook = hook;
}

static void
js_fatal(void *udata, const char *msg)
{
	/* only reachable through an API misuse outside a protected call */
	if (fatal_hook != NULL)
		fatal_hook();
	fprintf(stderr, "vxml: duktape fatal error: %s\n", msg);
	abort();
}

static duk_ret_t
json_decode_safe(duk_context *js, void *udata)
{
	duk_json_decode(js, -1);
	return 1;
}

static duk_ret_t
json_encode_safe(duk_context *js, void *udata)
{
	duk_json_encode(js, -1);
	return 1;
}

static void
put_str(duk_context *js, const char *key, const char *v)
{
	if (v != NULL)
		duk_push_string(js, v);
	else
		duk_push_undefined(js);
	duk_put_prop_string(js, -2, key);
}

/* session.connection.* from the platform's info. */
static void
js_session_vars(struct vxml_session *s)
{
	duk_context *js = s->js;
	const struct vxml_session_info *in = &s->info;

	duk_push_global_object(js);
	duk_push_object(js);			/* session */
	duk_push_object(js);			/* connection */
	duk_push_object(js);
	put_str(js, "uri", in->local_uri);
	duk_put_prop_string(js, -2, "local");
	duk_push_object(js);
	put_str(js, "uri", in->remote_uri);
	duk_put_prop_string(js, -2, "remote");
	duk_push_object(js);
	put_str(js, "name", in->protocol_name != NULL ? in->protocol_name : "sip");
	put_str(js, "version", in->protocol_version);
	duk_push_object(js);
	duk_put_prop_string(js, -2, in->protocol_name != NULL ?
	    in->protocol_name : "sip");
	duk_put_prop_string(js, -2, "protocol");
	put_str(js, "originator", in->originator);
	put_str(js, "aai", in->aai);
	if (in->redirect != NULL) {
		duk_push_string(js, in->redirect);
		if (duk_safe_call(js, json_decode_safe, NULL, 1, 1) != 0) {
			duk_pop(js);
			duk_push_array(js);
		}
	} else
		duk_push_array(js);
	duk_put_prop_string(js, -2, "redirect");
	duk_put_prop_string(js, -2, "connection");
	duk_put_prop_string(js, -2, "session");
	duk_pop(js);
}

int
vxml_js_init(struct vxml_session *s)
{
	s->js = duk_create_heap(NULL, NULL, NULL, s, js_fatal);
	if (s->js == NULL)
		return -1;
	if (duk_peval_string(s->js, js_boot) != 0) {
		duk_destroy_heap(s->js);
		s->js = NULL;
		return -1;
	}
	duk_pop(s->js);
	js_session_vars(s);
	return 0;
}

void
vxml_js_free(struct vxml_session *s)
{
	if (s->js != NULL)
		duk_destroy_heap(s->js);
	s->js = NULL;
}

/* A new context's scope array [application], kept in the stash under the
 * returned key; it becomes the current one. */
int
vxml_js_new_context(struct vxml_session *s)
{
	duk_context *js = s->js;
	int key = ++s->next_scope_key;

	duk_push_heap_stash(js);
	duk_push_array(js);
	duk_get_global_string(js, "$vxml_newscope");
	duk_call(js, 0);
	duk_put_prop_index(js, -2, 0);
	duk_put_prop_index(js, -2, (duk_uarridx_t)key);
	duk_pop(js);
	vxml_js_use_context(s, key);
	return key;
}

void
vxml_js_use_context(struct vxml_session *s, int key)
{
	duk_context *js = s->js;

	duk_push_heap_stash(js);
	duk_get_prop_index(js, -1, (duk_uarridx_t)key);
	duk_put_global_string(js, "$vxml_sc");
	duk_pop(js);
	duk_get_global_string(js, "$vxml_names");
	duk_call(js, 0);
	duk_pop(js);
}

void
vxml_js_drop_context(struct vxml_session *s, int key)
{
	duk_push_heap_stash(s->js);
	duk_del_prop_index(s->js, -1, (duk_uarridx_t)key);
	duk_pop(s->js);
}

static void
js_store_sc(struct vxml_session *s)
{
	duk_context *js = s->js;

	duk_push_heap_stash(js);
	duk_get_global_string(js, "$vxml_sc");
	duk_put_prop_index(js, -2, (duk_uarridx_t)s->ctx->scope_key);
	duk_pop(js);
	duk_get_global_string(js, "$vxml_names");
	duk_call(js, 0);
	duk_pop(js);
}

/* Resets the scopes to [application] (a fresh one when fresh), then
 * [application, document] where the document scope is the application
 * scope itself when the document is the application root. */
void
vxml_js_set_app(struct vxml_session *s, int fresh, int same_as_doc)
{
	duk_context *js = s->js;

	duk_get_global_string(js, "$vxml_sc");
	if (fresh) {
		duk_push_array(js);
		duk_get_global_string(js, "$vxml_newscope");
		duk_call(js, 0);
		duk_put_prop_index(js, -2, 0);
	} else {
		duk_push_array(js);
		duk_get_prop_index(js, -2, 0);
		duk_put_prop_index(js, -2, 0);
	}
	if (same_as_doc) {
		duk_get_prop_index(js, -1, 0);
		duk_put_prop_index(js, -2, 1);
	}
	duk_put_global_string(js, "$vxml_sc");
	duk_pop(js);
	js_store_sc(s);
}

void
vxml_js_push_scope(struct vxml_session *s, const char *name)
{
	duk_context *js = s->js;
	duk_size_t n;


	duk_get_global_string(js, "$vxml_sc");
	n = duk_get_length(js, -1);
	duk_get_global_string(js, "$vxml_newscope");
	duk_call(js, 0);
	duk_put_prop_index(js, -2, (duk_uarridx_t)n);
	duk_pop(js);
	js_store_sc(s);
}

int
vxml_js_depth(struct vxml_session *s)
{
	int n;

	duk_get_global_string(s->js, "$vxml_sc");
	n = (int)duk_get_length(s->js, -1);
	duk_pop(s->js);
	return n;
}

void
vxml_js_truncate(struct vxml_session *s, int depth)
{
	duk_context *js = s->js;

	duk_get_global_string(js, "$vxml_sc");
	if ((int)duk_get_length(js, -1) > depth) {
		duk_push_int(js, depth);
		duk_put_prop_string(js, -2, "length");
	}
	duk_pop(js);
	js_store_sc(s);
}

void
vxml_js_pop_scope(struct vxml_session *s)
{
	int n = vxml_js_depth(s);

	if (n > 1)
		vxml_js_truncate(s, n - 1);
}

/* Runs code under the scope chain, in js (the main context or a thread). */
static int
js_wrapped(struct vxml_session *s, duk_context *js, const char *code)
{
	char buf[512];
	int i, n, off = 0;

	n = vxml_js_depth(s);
	duk_push_string(s->js, code);
	duk_put_global_string(s->js, "$vxml_code");
	for (i = 0; i < n && off < (int)sizeof(buf) - 64; i++)
		off += snprintf(buf + off, sizeof(buf) - (size_t)off,
		    "with($vxml_sc[%d])", i);
	snprintf(buf + off, sizeof(buf) - (size_t)off, "{eval($vxml_code)}");
	return duk_peval_string(js, buf);
}

static int
js_error(struct vxml_session *s, duk_context *js, xmlNode *where)
{
	const char *msg = duk_safe_to_string(js, -1);

	vxml_throwf(s, "error.semantic", where, "%s", msg);
	duk_pop(js);
	return -1;
}

/* Evaluates an expression; on success its value is left on the stack. */
int
vxml_js_eval(struct vxml_session *s, const char *expr, xmlNode *where)
{
	char *code;
	size_t n = strlen(expr);

	if ((code = malloc(n + 4)) == NULL)
		return vxml_throwf(s, "error.noresource", where, "out of memory"), -1;
	code[0] = '(';
	memcpy(code + 1, expr, n);
	memcpy(code + 1 + n, "\n)", 3);
	if (js_wrapped(s, s->js, code) != 0) {
		free(code);
		return js_error(s, s->js, where);
	}
	free(code);
	return 0;
}

int
vxml_js_eval_str(struct vxml_session *s, const char *expr, xmlNode *where,
    char **out)
{
	if (vxml_js_eval(s, expr, where) != 0)
		return -1;
	*out = strdup(duk_safe_to_string(s->js, -1));
	duk_pop(s->js);
	return 0;
}

int
vxml_js_eval_bool(struct vxml_session *s, const char *expr, xmlNode *where,
    int *out)
{
	if (vxml_js_eval(s, expr, where) != 0)
		return -1;
	*out = duk_to_boolean(s->js, -1);
	duk_pop(s->js);
	return 0;
}

/* Runs a <script> in the innermost scope: its declarations land there. */
int
vxml_js_run(struct vxml_session *s, const char *code, xmlNode *where)
{
	duk_context *js = s->js, *t;
	int rc;

	duk_push_thread(js);
	t = duk_get_context(js, -1);
	duk_get_global_string(js, "$vxml_sc");
	duk_get_prop_index(js, -1, (duk_uarridx_t)(duk_get_length(js, -1) - 1));
	duk_xmove_top(t, js, 1);
	duk_pop(js);
	duk_set_global_object(t);
	rc = js_wrapped(s, t, code);
	if (rc != 0)
		js_error(s, t, where);
	else
		duk_pop(t);
	duk_pop(js);
	return rc != 0 ? -1 : 0;
}

/* Is name usable as a variable name? */
int
vxml_js_valid_name(const char *name)
{
	const char *p;

	if (name == NULL || *name == '\0' ||
	    (*name >= '0' && *name <= '9'))
		return 0;
	for (p = name; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '_' || *p == '$' ||
		    (unsigned char)*p >= 0x80))
			return 0;
	return 1;
}

/* The value on the stack top becomes name in the innermost scope. */
int
vxml_js_declare_top(struct vxml_session *s, const char *name)
{
	duk_context *js = s->js;

	duk_get_global_string(js, "$vxml_sc");
	duk_get_prop_index(js, -1, (duk_uarridx_t)(duk_get_length(js, -1) - 1));
	duk_dup(js, -3);
	duk_put_prop_string(js, -2, name);
	duk_pop_3(js);
	return 0;
}

/* <var name expr>: declares name in the innermost scope. */
int
vxml_js_declare(struct vxml_session *s, const char *name, const char *expr,
    xmlNode *where)
{
	if (!vxml_js_valid_name(name)) {
		vxml_throwf(s, "error.semantic", where,
		    "invalid variable name '%s'", name != NULL ? name : "");
		return -1;
	}
	if (expr != NULL) {
		if (vxml_js_eval(s, expr, where) != 0)
			return -1;
	} else
		duk_push_undefined(s->js);
	return vxml_js_declare_top(s, name);
}

int
vxml_js_is_defined(struct vxml_session *s, const char *name)
{
	int r;

	duk_get_global_string(s->js, "$vxml_has");
	duk_push_string(s->js, name);
	if (duk_pcall(s->js, 1) != 0) {
		duk_pop(s->js);
		return 0;
	}
	r = duk_to_boolean(s->js, -1);
	duk_pop(s->js);
	return r;
}

/* The value on the stack top is assigned to the declared variable name. */
int
vxml_js_assign_top(struct vxml_session *s, const char *name)
{
	char code[300];
	int rc;

	if (strlen(name) > 200 || !vxml_js_is_defined(s, name)) {
		duk_pop(s->js);
		vxml_throwf(s, "error.semantic", NULL,
		    "assignment to undeclared variable '%s'", name);
		return -1;
	}
	duk_put_global_string(s->js, "$vxml_value");
	snprintf(code, sizeof(code), "%s = $vxml_value", name);
	rc = js_wrapped(s, s->js, code);
	if (rc != 0)
		return js_error(s, s->js, NULL);
	duk_pop(s->js);
	return 0;
}

/* <assign name expr>. */
int
vxml_js_assign(struct vxml_session *s, const char *name, const char *expr,
    xmlNode *where)
{
	if (name == NULL || !vxml_js_is_defined(s, name)) {
		vxml_throwf(s, "error.semantic", where,
		    "assignment to undeclared variable '%s'",
		    name != NULL ? name : "");
		return -1;
	}
	if (vxml_js_eval(s, expr != NULL ? expr : "undefined", where) != 0)
		return -1;
	return vxml_js_assign_top(s, name);
}

/* Does the form item variable name hold a value other than undefined? */
int
vxml_js_defined_var(struct vxml_session *s, const char *name)
{
	char code[300];
	int r;

	if (strlen(name) > 200)
		return 0;
	snprintf(code, sizeof(code), "typeof %s != 'undefined'", name);
	if (js_wrapped(s, s->js, code) != 0) {
		duk_pop(s->js);
		return 0;
	}
	r = duk_to_boolean(s->js, -1);
	duk_pop(s->js);
	return r;
}

/* The JSON text of the stack top (popped); "null" for undefined. */
char *
vxml_js_json_top(struct vxml_session *s)
{
	const char *j;
	char *r;

	if (duk_is_undefined(s->js, -1) || duk_is_function(s->js, -1)) {
		duk_pop(s->js);
		return strdup("null");
	}
	/* a cyclic value or a throwing toJSON must not take the process down */
	if (duk_safe_call(s->js, json_encode_safe, NULL, 1, 1) != 0) {
		duk_pop(s->js);
		return strdup("null");
	}
	j = duk_get_string(s->js, -1);
	r = strdup(j != NULL ? j : "null");
	duk_pop(s->js);
	return r;
}

char *
vxml_js_var_json(struct vxml_session *s, const char *name)
{
	char code[300];

	if (strlen(name) > 200)
		return strdup("null");
	snprintf(code, sizeof(code), "%s", name);
	if (js_wrapped(s, s->js, code) != 0) {
		duk_pop(s->js);
		return strdup("null");
	}
	return vxml_js_json_top(s);
}

/* A string variable in the innermost scope (_event, _message). */
void
vxml_js_set_string(struct vxml_session *s, const char *name, const char *v)
{
	if (v != NULL)
		duk_push_string(s->js, v);
	else
		duk_push_undefined(s->js);
	vxml_js_declare_top(s, name);
}

/* application.lastresult$ and field$ (field may be NULL) from a match;
 * leaves the interpretation on the stack. */
void
vxml_js_set_lastresult(struct vxml_session *s, const char *field,
    const char *utterance, const char *interp_src)
{
	duk_context *js = s->js;

	if (interp_src != NULL) {
		if (js_wrapped(s, js, interp_src) != 0) {
			duk_pop(js);
			duk_push_string(js, utterance);
		}
	} else
		duk_push_string(js, utterance);
	duk_get_global_string(js, "$vxml_result");
	duk_push_string(js, utterance);
	duk_dup(js, -3);
	if (duk_pcall(js, 2) != 0) {
		duk_pop(js);
		return;
	}
	if (field != NULL) {
		char name[256];

		snprintf(name, sizeof(name), "%s$", field);
		duk_get_global_string(js, "$vxml_sc");
		duk_get_prop_index(js, -1, 2);
		duk_dup(js, -3);
		duk_put_prop_string(js, -2, name);
		duk_pop_2(js);
	}
	duk_pop(js);
}
