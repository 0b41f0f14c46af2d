/* vxml_prompt.c: prompts.  SSML is flattened into the platform's items
 * (text, pauses, audio with fallback); <prompt count> selection follows
 * VoiceXML 2.0 4.1.6: of the prompts whose cond holds, those with the
 * highest count not above the item's prompt counter. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vxml_int.h"

struct items {
	struct vxml_prompt_item	*v;
	struct items		*fb;	/* per item: its fallback list */
	size_t			 n;
};

static void
items_free(struct items *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free((char *)l->v[i].text);
		free((char *)l->v[i].url);
		if (l->fb != NULL)
			items_free(&l->fb[i]);
	}
	free(l->v);
	free(l->fb);
	memset(l, 0, sizeof(*l));
}

static struct vxml_prompt_item *
items_add(struct items *l, enum vxml_prompt_kind k, int bargein)
{
	struct vxml_prompt_item *v;
	struct items *fb;

	v = realloc(l->v, (l->n + 1) * sizeof(*v));
	if (v == NULL)
		return NULL;
	l->v = v;
	fb = realloc(l->fb, (l->n + 1) * sizeof(*fb));
	if (fb == NULL)
		return NULL;
	l->fb = fb;
	memset(&fb[l->n], 0, sizeof(*fb));
	v += l->n++;
	memset(v, 0, sizeof(*v));
	v->kind = k;
	v->bargein = bargein;
	return v;
}

/* Collapses white space; NULL when nothing but white space is left. */
static char *
squeeze(const char *t)
{
	char *r = malloc(strlen(t) + 1), *q = r;
	int sp = 0;

	if (r == NULL)
		return NULL;
	for (; *t != '\0'; t++) {
		if (isspace((unsigned char)*t)) {
			sp = q != r;
			continue;
		}
		if (sp)
			*q++ = ' ';
		sp = 0;
		*q++ = *t;
	}
	*q = '\0';
	if (q == r) {
		free(r);
		return NULL;
	}
	return r;
}

static void
add_text(struct items *l, const char *t, int bargein)
{
	struct vxml_prompt_item *it;
	char *sq = squeeze(t);

	if (sq == NULL)
		return;
	/* adjacent text (around <value>, say) is one sentence to speak */
	if (l->n > 0 && l->v[l->n - 1].kind == VXML_PROMPT_TEXT &&
	    l->v[l->n - 1].bargein == bargein) {
		const char *prev = l->v[l->n - 1].text;
		char *j = malloc(strlen(prev) + strlen(sq) + 2);

		if (j != NULL) {
			sprintf(j, "%s%s%s", prev, strchr(",.;:!?", sq[0]) != NULL ?
			    "" : " ", sq);
			free((char *)prev);
			l->v[l->n - 1].text = j;
		}
		free(sq);
		return;
	}
	if ((it = items_add(l, VXML_PROMPT_TEXT, bargein)) == NULL) {
		free(sq);
		return;
	}
	it->text = sq;
}

static int
strength_ms(const char *v)
{
	static const struct { const char *n; int ms; } t[] = {
		{ "none", 0 }, { "x-weak", 100 }, { "weak", 250 },
		{ "medium", 500 }, { "strong", 750 }, { "x-strong", 1000 } };
	size_t i;

	for (i = 0; v != NULL && i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(v, t[i].n) == 0)
			return t[i].ms;
	return 500;
}

static enum vxml_flow flatten(struct vxml_session *, xmlNode *, struct items *, int);

static enum vxml_flow
flatten_children(struct vxml_session *s, xmlNode *n, struct items *l, int b)
{
	xmlNode *c;
	enum vxml_flow f;

	for (c = n->children; c != NULL; c = c->next)
		if ((f = flatten(s, c, l, b)) != FLOW_NEXT)
			return f;
	return FLOW_NEXT;
}

/* The choices of the active menu or options of the active field. */
static enum vxml_flow
enumerate(struct vxml_session *s, xmlNode *n, struct items *l, int b)
{
	struct vxml_dialog *dl = &s->ctx->dlg;
	xmlNode *owner = NULL, *c;
	int auto_dtmf = 0, k = 0;
	enum vxml_flow f = FLOW_NEXT;

	for (owner = n->parent; owner != NULL; owner = owner->parent)
		if (vxml_is(owner, "menu") || vxml_is(owner, "field"))
			break;
	if (owner == NULL && dl->cur >= 0 && dl->cur < (int)dl->nitems)
		owner = dl->items[dl->cur].node;
	if (owner == NULL)
		return vxml_throwf(s, "error.semantic", n,
		    "<enumerate> outside a menu or field");
	if (vxml_is(owner, "menu")) {
		char *v = vxml_attr(owner, "dtmf");

		auto_dtmf = v != NULL && strcmp(v, "true") == 0;
		free(v);
	}
	for (c = vxml_first_elem(owner); c != NULL && f == FLOW_NEXT;
	    c = vxml_next_elem(c)) {
		xmlChar *text;
		char *dtmf, num[16];
		int depth;

		if (!vxml_is(c, "choice") && !vxml_is(c, "option"))
			continue;
		k++;
		text = xmlNodeGetContent(c);
		dtmf = vxml_attr(c, "dtmf");
		if (dtmf == NULL && auto_dtmf && k <= 9) {
			snprintf(num, sizeof(num), "%d", k);
			dtmf = strdup(num);
		}
		if (n->children == NULL) {
			add_text(l, (const char *)text, b);
		} else {
			depth = vxml_js_depth(s);
			vxml_js_push_scope(s, NULL);
			char *sq = squeeze(text != NULL ? (const char *)text : "");

			vxml_js_set_string(s, "_prompt", sq != NULL ? sq : "");
			free(sq);
			vxml_js_set_string(s, "_dtmf", dtmf);
			f = flatten_children(s, n, l, b);
			vxml_js_truncate(s, depth);
		}
		xmlFree(text);
		free(dtmf);
	}
	return f;
}

struct fe {
	struct items	*l;
	int		 b;
};

static enum vxml_flow
foreach_flatten(struct vxml_session *s, xmlNode *n, void *arg)
{
	struct fe *fe = arg;

	return flatten_children(s, n, fe->l, fe->b);
}

static enum vxml_flow
flatten(struct vxml_session *s, xmlNode *n, struct items *l, int b)
{
	struct vxml_prompt_item *it;
	char *v, *e;
	int err;

	if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
		add_text(l, (const char *)n->content, b);
		return FLOW_NEXT;
	}
	if (n->type != XML_ELEMENT_NODE)
		return FLOW_NEXT;
	if (vxml_is(n, "value")) {
		if ((e = vxml_attr(n, "expr")) == NULL)
			return vxml_throwf(s, "error.badfetch", n,
			    "<value> without expr");
		if (vxml_js_eval_str(s, e, n, &v) != 0) {
			free(e);
			return FLOW_THROW;
		}
		free(e);
		add_text(l, v, b);
		free(v);
		return FLOW_NEXT;
	}
	if (vxml_is(n, "audio")) {
		size_t idx;
		enum vxml_flow f;

		v = vxml_expr_or_attr(s, n, "src", "expr", &err);
		if (err)
			return FLOW_THROW;
		if (v == NULL || *v == '\0') {
			/* no audio: the fallback content is what plays */
			free(v);
			return flatten_children(s, n, l, b);
		}
		if ((it = items_add(l, VXML_PROMPT_AUDIO, b)) == NULL) {
			free(v);
			return FLOW_NEXT;
		}
		idx = l->n - 1;
		it->url = vxml_url_resolve(vxml_node_url(s, n), v);
		free(v);
		f = flatten_children(s, n, &l->fb[idx], b);
		l->v[idx].fallback = l->fb[idx].v;
		l->v[idx].nfallback = l->fb[idx].n;
		return f;
	}
	if (vxml_is(n, "break")) {
		if ((it = items_add(l, VXML_PROMPT_BREAK, b)) == NULL)
			return FLOW_NEXT;
		v = vxml_attr(n, "time");
		e = vxml_attr(n, "strength");
		it->break_ms = v != NULL ? vxml_time_ms(v, 500) : strength_ms(e);
		free(v);
		free(e);
		return FLOW_NEXT;
	}
	if (vxml_is(n, "sub")) {
		if ((v = vxml_attr(n, "alias")) != NULL)
			add_text(l, v, b);
		free(v);
		return FLOW_NEXT;
	}
	if (vxml_is(n, "say-as")) {
		xmlChar *t = xmlNodeGetContent(n);
		char *how = vxml_attr(n, "interpret-as");

		if (t != NULL && how != NULL && (strcmp(how, "digits") == 0 ||
		    strcmp(how, "characters") == 0 || strcmp(how, "telephone") == 0)) {
			/* spelt out one by one */
			size_t i, k = 0, tl = strlen((const char *)t);
			char *sp = malloc(2 * tl + 1);

			for (i = 0; sp != NULL && i < tl; i++) {
				if (isspace(t[i]))
					continue;
				if (k > 0)
					sp[k++] = ' ';
				sp[k++] = (char)t[i];
			}
			if (sp != NULL) {
				sp[k] = '\0';
				add_text(l, sp, b);
			}
			free(sp);
		} else if (t != NULL)
			add_text(l, (const char *)t, b);
		xmlFree(t);
		free(how);
		return FLOW_NEXT;
	}
	if (vxml_is(n, "enumerate"))
		return enumerate(s, n, l, b);
	if (vxml_is(n, "foreach")) {
		struct fe fe = { l, b };

		return vxml_foreach(s, n, foreach_flatten, &fe);
	}
	if (vxml_is(n, "mark") || vxml_is(n, "desc") || vxml_is(n, "meta") ||
	    vxml_is(n, "metadata"))
		return FLOW_NEXT;
	if (n->ns != NULL && n->ns->href != NULL &&
	    strstr((const char *)n->ns->href, "conformance") != NULL)
		return FLOW_NEXT;
	if (vxml_is(n, "prompt"))	/* nested: take its content */
		return flatten_children(s, n, l, b);
	/* p, s, voice, emphasis, prosody, speak, lang...: their content */
	return flatten_children(s, n, l, b);
}

int
vxml_bargein_default(struct vxml_session *s)
{
	const char *v = vxml_property(s, "bargein", "true");

	return strcmp(v, "false") != 0;
}

static void
emit(struct vxml_session *s, struct items *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		s->p.prompt(s->arg, &l->v[i]);
		s->prompts_queued++;
		s->bargein = l->v[i].bargein;
	}
}

/* Queues n: a <prompt> (cond, bargein, timeout honoured) or any prompt
 * content met in executable content. */
enum vxml_flow
vxml_prompt_queue(struct vxml_session *s, xmlNode *n, int bargein)
{
	struct items l = { NULL, NULL, 0 };
	enum vxml_flow f;
	char *v;

	if (vxml_is(n, "prompt")) {
		if ((v = vxml_attr(n, "cond")) != NULL) {
			int ok;

			if (vxml_js_eval_bool(s, v, n, &ok) != 0) {
				free(v);
				return FLOW_THROW;
			}
			free(v);
			if (!ok)
				return FLOW_NEXT;
		}
		if ((v = vxml_attr(n, "bargein")) != NULL)
			bargein = strcmp(v, "false") != 0;
		free(v);
		if ((v = vxml_attr(n, "timeout")) != NULL)
			s->prompt_timeout_ms = vxml_time_ms(v, -1);
		free(v);
		f = flatten_children(s, n, &l, bargein);
	} else
		f = flatten(s, n, &l, bargein);
	if (f == FLOW_NEXT)
		emit(s, &l);
	items_free(&l);
	return f;
}

void
vxml_prompt_text(struct vxml_session *s, const char *text, int bargein)
{
	struct items l = { NULL, NULL, 0 };

	add_text(&l, text, bargein);
	emit(s, &l);
	items_free(&l);
}

static int
prompt_count(xmlNode *p)
{
	char *v = vxml_attr(p, "count");
	int n = v != NULL ? atoi(v) : 1;

	free(v);
	return n < 1 ? 1 : n;
}

static int
is_prompt_content(xmlNode *c)
{
	return vxml_is(c, "prompt") || vxml_is(c, "audio") ||
	    vxml_is(c, "value") || vxml_is(c, "enumerate");
}

/* Queues the prompts of a form item for its prompt counter. */
enum vxml_flow
vxml_prompt_select(struct vxml_session *s, struct vxml_item *it)
{
	xmlNode *c;
	int best = 0, ok, b = vxml_bargein_default(s);
	enum vxml_flow f;
	char *cond;

	/* pass 1: the highest count in reach among prompts whose cond holds */
	for (c = vxml_first_elem(it->node); c != NULL; c = vxml_next_elem(c)) {
		int n;

		if (!is_prompt_content(c))
			continue;
		n = vxml_is(c, "prompt") ? prompt_count(c) : 1;
		if (n > it->prompt_count || n <= best)
			continue;
		ok = 1;
		if (vxml_is(c, "prompt") && (cond = vxml_attr(c, "cond")) != NULL) {
			int rc = vxml_js_eval_bool(s, cond, c, &ok);

			free(cond);
			if (rc != 0)
				return FLOW_THROW;
		}
		if (ok)
			best = n;
	}
	if (best == 0)
		return FLOW_NEXT;
	for (c = vxml_first_elem(it->node); c != NULL; c = vxml_next_elem(c)) {
		if (!is_prompt_content(c))
			continue;
		if ((vxml_is(c, "prompt") ? prompt_count(c) : 1) != best)
			continue;
		if ((f = vxml_prompt_queue(s, c, b)) != FLOW_NEXT)
			return f;
	}
	return FLOW_NEXT;
}
