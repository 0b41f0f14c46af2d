/* vxml_input.c: collecting DTMF for a field, menu or <initial>.  The
 * interpreter does timeout, interdigittimeout, termtimeout, termchar,
 * bargein and typeahead itself because only it knows the active grammars:
 * the platform only reports keys, plays prompts and runs one timer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vxml_int.h"

/* <property> lookup from the innermost element outwards; the value is
 * valid until four more lookups. */
const char *
vxml_property(struct vxml_session *s, const char *name, const char *dflt)
{
	struct vxml_ctx *c = s->ctx;
	xmlNode *scopes[4], *p;
	size_t ns = 0, i;

	if (c == NULL)
		return dflt;
	if (c->dlg.node != NULL && c->dlg.cur >= 0 &&
	    c->dlg.items[c->dlg.cur].node != c->dlg.node)
		scopes[ns++] = c->dlg.items[c->dlg.cur].node;
	if (c->dlg.node != NULL)
		scopes[ns++] = c->dlg.node;
	if (c->doc != NULL)
		scopes[ns++] = c->doc->root;
	if (c->app != NULL && c->app != c->doc)
		scopes[ns++] = c->app->root;
	for (i = 0; i < ns; i++)
		for (p = vxml_first_elem(scopes[i]); p != NULL; p = vxml_next_elem(p)) {
			char *n, *v;
			int match;

			if (!vxml_is(p, "property"))
				continue;
			n = vxml_attr(p, "name");
			match = n != NULL && strcmp(n, name) == 0;
			free(n);
			if (!match || (v = vxml_attr(p, "value")) == NULL)
				continue;
			s->propi = (s->propi + 1) % 4;
			snprintf(s->propbuf[s->propi], sizeof(s->propbuf[0]), "%s", v);
			free(v);
			return s->propbuf[s->propi];
		}
	return dflt;
}

void
vxml_input_clear(struct vxml_session *s)
{
	size_t i;

	for (i = 0; i < s->ngrammars; i++)
		vxml_grammar_free(s->grammars[i]);
	free(s->grammars);
	free(s->gnodes);
	s->grammars = NULL;
	s->gnodes = NULL;
	s->ngrammars = 0;
	vxml_interp_clear(&s->match);
	s->match_idx = -1;
	s->ncur = 0;
	s->cur[0] = '\0';
}

static int
add_grammar(struct vxml_session *s, struct vxml_grammar *g, xmlNode *n)
{
	struct vxml_grammar **gv;
	xmlNode **nv;

	if (g == NULL)
		return -1;
	gv = realloc(s->grammars, (s->ngrammars + 1) * sizeof(*gv));
	nv = realloc(s->gnodes, (s->ngrammars + 1) * sizeof(*nv));
	if (gv != NULL)
		s->grammars = gv;
	if (nv != NULL)
		s->gnodes = nv;
	if (gv == NULL || nv == NULL) {
		vxml_grammar_free(g);
		return -1;
	}
	s->grammars[s->ngrammars] = g;
	s->gnodes[s->ngrammars++] = n;
	return 0;
}

/* A JavaScript string literal for v. */
static char *
js_quote(const char *v)
{
	size_t n = strlen(v), i;
	char *r = malloc(6 * n + 3), *q = r;

	if (r == NULL)
		return NULL;
	*q++ = '"';
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];

		if (ch == '"' || ch == '\\') {
			*q++ = '\\';
			*q++ = (char)ch;
		} else if (ch < 0x20) {
			sprintf(q, "\\u%04x", ch);
			q += 6;
		} else
			*q++ = (char)ch;
	}
	*q++ = '"';
	*q = '\0';
	return r;
}

/* A grammar fetched through srcexpr, by URL; NULL if not fetched yet. */
static struct vxml_res *
gcache_find(struct vxml_session *s, const char *url)
{
	size_t i;

	for (i = 0; i < s->ngcache; i++)
		if (strcmp(s->gcache[i].url, url) == 0)
			return &s->gcache[i];
	return NULL;
}

/* <grammar srcexpr>: the URL is known only now, so the collection waits
 * for the fetch and starts again (vxml_input_grammar_fetched()). */
static struct vxml_res *
grammar_expr(struct vxml_session *s, xmlNode *g, enum vxml_flow *f)
{
	struct vxml_res *r, *v;
	char *e, *ref = NULL, *url;
	struct vxml_fetch_req req;

	*f = FLOW_NEXT;
	e = vxml_attr(g, "srcexpr");
	if (vxml_js_eval_str(s, e, g, &ref) != 0) {
		free(e);
		*f = FLOW_THROW;
		return NULL;
	}
	free(e);
	url = vxml_url_resolve(vxml_node_url(s, g), ref);
	free(ref);
	if (url == NULL || (r = gcache_find(s, url)) != NULL) {
		free(url);
		return url == NULL ? NULL : r;
	}
	if (strncmp(url, "builtin:", 8) == 0 || s->ngcache >= VXML_GCACHE ||
	    (v = realloc(s->gcache, (s->ngcache + 1) * sizeof(*v))) == NULL) {
		struct vxml_res *tmp = &s->gtmp;	/* no caching: a builtin */

		free(tmp->url);
		memset(tmp, 0, sizeof(*tmp));
		tmp->url = url;
		tmp->status = strncmp(url, "builtin:", 8) == 0 ? 200 : 0;
		return tmp;
	}
	s->gcache = v;
	r = &v[s->ngcache++];
	memset(r, 0, sizeof(*r));
	r->url = url;
	r->status = -1;
	r->fetch_id = ++s->next_fetch_id;
	s->wait = WAIT_GRAMMAR;
	memset(&req, 0, sizeof(req));
	req.id = r->fetch_id;
	req.kind = VXML_FETCH_GRAMMAR;
	req.url = url;
	req.timeout_ms = vxml_time_ms(vxml_property(s, "fetchtimeout", "30s"), 30000);
	req.maxage = req.maxstale = -1;
	s->p.fetch(s->arg, &req);
	return NULL;
}

/* A <grammar> element: inline SRGS, src fetched with its document, or
 * srcexpr fetched now.  Voice-only grammars are skipped: this platform
 * hears only keys. */
static enum vxml_flow
grammar_elem(struct vxml_session *s, xmlNode *g)
{
	char err[256] = "", *mode;
	struct vxml_grammar *gr = NULL;
	struct vxml_res *r = NULL;
	enum vxml_flow f;
	int voice;

	mode = vxml_attr(g, "mode");
	voice = mode == NULL || strcmp(mode, "dtmf") != 0;
	free(mode);
	if (vxml_has_attr(g, "srcexpr")) {
		r = grammar_expr(s, g, &f);
		if (r == NULL)		/* an error, or a fetch on its way */
			return f;
	} else if (vxml_has_attr(g, "src")) {
		r = vxml_doc_res(s->ctx->doc, g);
		if (r == NULL)
			r = vxml_doc_res(s->ctx->app, g);
		if (r == NULL)
			return vxml_throwf(s, "error.badfetch", g, "grammar not fetched");
	}
	if (r != NULL) {
		if (strncmp(r->url, "builtin:", 8) == 0) {
			const char *t = r->url + 8;

			if (strncmp(t, "dtmf/", 5) == 0)
				t += 5;
			else if (strncmp(t, "voice/", 6) == 0)
				return FLOW_NEXT;
			gr = vxml_grammar_builtin(t, err, sizeof(err));
			if (gr == NULL)
				return vxml_throwf(s, "error.unsupported.builtin", g,
				    "%s", err);
			add_grammar(s, gr, g);
			return FLOW_NEXT;
		}
		if (r->status < 200 || r->status > 299)
			return vxml_throwf(s, "error.badfetch", g,
			    "cannot fetch grammar %s (status %d)", r->url, r->status);
		gr = vxml_grammar_srgs_doc(r->body, r->len, err, sizeof(err));
		if (gr == NULL) {
			if (voice)
				return FLOW_NEXT;
			return vxml_throwf(s, "error.badfetch", g, "grammar: %s", err);
		}
	} else {
		if (voice)
			return FLOW_NEXT;
		if ((gr = vxml_grammar_srgs_node(g, err, sizeof(err))) == NULL)
			return vxml_throwf(s, "error.badfetch", g, "grammar: %s", err);
	}
	add_grammar(s, gr, g);
	return FLOW_NEXT;
}

/* A srcexpr grammar arrived (or failed): collect again with it. */
int
vxml_input_grammar_fetched(struct vxml_session *s, unsigned id, int status,
    char **body, size_t len)
{
	size_t i;
	struct vxml_dialog *dl = &s->ctx->dlg;

	for (i = 0; i < s->ngcache; i++) {
		struct vxml_res *r = &s->gcache[i];

		if (r->status != -1 || r->fetch_id != id)
			continue;
		r->status = status;
		r->body = *body;
		r->len = len;
		*body = NULL;
		if (s->wait == WAIT_GRAMMAR) {
			s->wait = WAIT_NONE;
			if (dl->cur >= 0)
				vxml_apply(s, vxml_input_start(s, &dl->items[dl->cur]));
		}
		return 1;
	}
	return 0;
}

void
vxml_input_free(struct vxml_session *s)
{
	size_t i;

	for (i = 0; i < s->ngcache; i++) {
		free(s->gcache[i].url);
		free(s->gcache[i].body);
	}
	free(s->gcache);
	free(s->gtmp.url);
	s->gcache = NULL;
	s->ngcache = 0;
	vxml_interp_clear(&s->taken);
	free(s->taken_src);
	s->taken_src = NULL;
	vxml_input_clear(s);
}

static enum vxml_flow
field_grammars(struct vxml_session *s, xmlNode *f)
{
	xmlNode *c;
	char *type, err[256] = "";
	enum vxml_flow fl;

	if ((type = vxml_attr(f, "type")) != NULL) {
		struct vxml_grammar *g = vxml_grammar_builtin(type, err, sizeof(err));

		if (g == NULL) {
			fl = vxml_throwf(s, "error.unsupported.builtin", f,
			    "type %s: %s", type, err);
			free(type);
			return fl;
		}
		free(type);
		add_grammar(s, g, f);
	}
	for (c = vxml_first_elem(f); c != NULL; c = vxml_next_elem(c)) {
		if (vxml_is(c, "grammar")) {
			if ((fl = grammar_elem(s, c)) != FLOW_NEXT)
				return fl;
		} else if (vxml_is(c, "option")) {
			char *dtmf = vxml_attr(c, "dtmf"), *val, *q;
			xmlChar *text;

			if (dtmf == NULL)
				continue;
			if ((val = vxml_attr(c, "value")) == NULL) {
				text = xmlNodeGetContent(c);
				val = strdup(text != NULL ? (const char *)text : "");
				xmlFree(text);
			}
			/* the value is the option's text, trimmed */
			q = js_quote(val != NULL ? val : "");
			if (q != NULL) {
				char *t = q + 1;

				while (*t == ' ' || *t == '\n' || *t == '\t')
					memmove(t, t + 1, strlen(t));
				add_grammar(s, vxml_grammar_sequence(dtmf, q), c);
			}
			free(q);
			free(val);
			free(dtmf);
		}
	}
	return FLOW_NEXT;
}

static enum vxml_flow
menu_grammars(struct vxml_session *s, xmlNode *m)
{
	xmlNode *c, *g;
	char *v, num[16], *dtmf;
	int auto_dtmf, k = 0;
	enum vxml_flow fl;

	v = vxml_attr(m, "dtmf");
	auto_dtmf = v != NULL && strcmp(v, "true") == 0;
	free(v);
	for (c = vxml_first_elem(m); c != NULL; c = vxml_next_elem(c)) {
		if (!vxml_is(c, "choice"))
			continue;
		k++;
		snprintf(num, sizeof(num), "%d", k);
		dtmf = vxml_attr(c, "dtmf");
		if (dtmf == NULL && auto_dtmf && k <= 9)
			dtmf = strdup(num);
		if (dtmf != NULL)
			add_grammar(s, vxml_grammar_sequence(dtmf, num), c);
		free(dtmf);
		for (g = vxml_first_elem(c); g != NULL; g = vxml_next_elem(g))
			if (vxml_is(g, "grammar") &&
			    (fl = grammar_elem(s, g)) != FLOW_NEXT)
				return fl;
	}
	return FLOW_NEXT;
}

static int
is_modal(struct vxml_item *it)
{
	char *v = vxml_attr(it->node, "modal");
	int modal = v != NULL && strcmp(v, "true") == 0;

	free(v);
	return modal;
}

static enum vxml_flow
links_of(struct vxml_session *s, xmlNode *scope)
{
	xmlNode *l, *g;
	enum vxml_flow f;
	char *dtmf;

	for (l = vxml_first_elem(scope); l != NULL; l = vxml_next_elem(l)) {
		if (!vxml_is(l, "link"))
			continue;
		if ((dtmf = vxml_attr(l, "dtmf")) != NULL)
			add_grammar(s, vxml_grammar_sequence(dtmf, "'link'"), l);
		free(dtmf);
		for (g = vxml_first_elem(l); g != NULL; g = vxml_next_elem(g))
			if (vxml_is(g, "grammar") &&
			    (f = grammar_elem(s, g)) != FLOW_NEXT)
				return f;
	}
	return FLOW_NEXT;
}

/* The menus of a document marked scope="document": their choices are
 * live everywhere in it (and, from the root, in the whole application). */
static enum vxml_flow
document_menus(struct vxml_session *s, xmlNode *root)
{
	xmlNode *d;
	enum vxml_flow f;
	char *scope;
	int doc;

	for (d = vxml_first_elem(root); d != NULL; d = vxml_next_elem(d)) {
		if (!vxml_is(d, "menu") || d == s->ctx->dlg.node)
			continue;
		scope = vxml_attr(d, "scope");
		doc = scope != NULL && strcmp(scope, "document") == 0;
		free(scope);
		if (doc && (f = menu_grammars(s, d)) != FLOW_NEXT)
			return f;
	}
	return FLOW_NEXT;
}

/* The grammars in scope beyond the item's own, innermost first (VoiceXML
 * 2.0 3.1.4): the item's links; the form's grammars (a field may fill
 * other fields through them) and links; the document's links and
 * document-scoped menus; the application root's. */
static enum vxml_flow
scope_grammars(struct vxml_session *s, struct vxml_item *it)
{
	struct vxml_ctx *c = s->ctx;
	xmlNode *g;
	enum vxml_flow f = FLOW_NEXT;

	if (it->node != c->dlg.node && (f = links_of(s, it->node)) != FLOW_NEXT)
		return f;
	if (it->kind == ITEM_FIELD)
		for (g = vxml_first_elem(c->dlg.node); g != NULL &&
		    f == FLOW_NEXT && s->wait != WAIT_GRAMMAR; g = vxml_next_elem(g))
			if (vxml_is(g, "grammar"))
				f = grammar_elem(s, g);
	if (f == FLOW_NEXT)
		f = links_of(s, c->dlg.node);
	if (f == FLOW_NEXT && c->doc != NULL) {
		f = links_of(s, c->doc->root);
		if (f == FLOW_NEXT)
			f = document_menus(s, c->doc->root);
	}
	if (f == FLOW_NEXT && c->app != NULL && c->app != c->doc) {
		f = links_of(s, c->app->root);
		if (f == FLOW_NEXT)
			f = document_menus(s, c->app->root);
	}
	return f;
}

static void
timer(struct vxml_session *s, enum vxml_input_state st, int ms)
{
	s->in_state = st;
	if (s->timer_on)
		s->p.timer_cancel(s->arg);
	s->timer_on = 1;
	s->p.timer_set(s->arg, ms);
}

static void
timer_off(struct vxml_session *s)
{
	if (s->timer_on)
		s->p.timer_cancel(s->arg);
	s->timer_on = 0;
}

/* The utterance is over: a match, nomatch or noinput goes to the FIA. */
static void
finish(struct vxml_session *s, const char *event)
{
	timer_off(s);
	if (s->prompts_playing) {
		s->p.stop_prompts(s->arg);
		s->prompts_playing = 0;
	}
	s->wait = WAIT_NONE;
	s->prompts_queued = 0;
	/* An application that asks again and again while the caller says
	 * nothing would hold the line until the call's time limit. */
	if (event != NULL && strcmp(event, "noinput") == 0) {
		if (++s->noinputs >= VXML_NOINPUT_LIMIT) {
			vxml_input_clear(s);
			vxml_throwf(s, "error.noresource", NULL,
			    "%d noinput events in a row: nobody answers",
			    s->noinputs);
			vxml_end(s, VXML_END_ERROR);
			return;
		}
	} else
		s->noinputs = 0;
	if (event != NULL) {
		if (strcmp(event, "nomatch") == 0) {
			vxml_js_set_lastresult(s, NULL, s->cur, NULL);
			duk_pop(s->js);
			s->ndigits = 0;		/* typeahead after a nomatch is stale */
		}
		vxml_input_clear(s);
		vxml_throw(s, event, NULL, NULL);
		vxml_fia_input_done(s, FLOW_THROW);
		return;
	}
	{
		int idx = s->match_idx;

		/* held by the session, not this frame: a script error inside
		 * may leave through the run loop's guard */
		vxml_interp_clear(&s->taken);
		s->taken = s->match;
		memset(&s->match, 0, sizeof(s->match));
		s->match_idx = -1;
		vxml_fia_matched(s, idx, &s->taken);
		vxml_interp_clear(&s->taken);
		vxml_input_clear(s);
	}
}

/* The verdict of the active grammars on s->cur; the complete match of
 * highest precedence (the grammars are in precedence order) is kept in
 * s->match.  A complete match counts as final only if no grammar of higher
 * precedence could still match with more keys: "1" completing a
 * document-wide menu choice must not cut short a field's digits. */
static enum vxml_match
match_all(struct vxml_session *s)
{
	enum vxml_match best = VXML_MATCH_NO, chosen = VXML_MATCH_NO, m;
	struct vxml_interp in;
	int higher_open = 0;
	size_t i;

	vxml_interp_clear(&s->match);
	s->match_idx = -1;
	for (i = 0; i < s->ngrammars; i++) {
		memset(&in, 0, sizeof(in));
		m = vxml_grammar_match(s->grammars[i], s->cur, &in);
		if ((m == VXML_MATCH_FULL || m == VXML_MATCH_MORE) &&
		    s->match_idx < 0) {
			s->match = in;
			s->match_idx = (int)i;
			chosen = m;
		} else
			vxml_interp_clear(&in);
		if (m == VXML_MATCH_PREFIX && s->match_idx < 0)
			higher_open = 1;
		if (m > best)
			best = m;
	}
	if (s->match_idx < 0)
		return best;		/* NO or PREFIX */
	if (chosen == VXML_MATCH_FULL && higher_open)
		return VXML_MATCH_MORE;	/* wait for the next key */
	return chosen;
}

/* One key of the current utterance. */
static void
take_digit(struct vxml_session *s, char d)
{
	enum vxml_match m;

	if (s->termchar != 0 && d == s->termchar) {
		/* a termchar before any key most likely ended the previous
		 * utterance after its grammar was already complete: drop it */
		if (s->ncur == 0)
			return;
		m = match_all(s);
		finish(s, m == VXML_MATCH_FULL || m == VXML_MATCH_MORE ?
		    NULL : "nomatch");
		return;
	}
	if (s->ncur >= VXML_MAX_DIGITS) {
		finish(s, "nomatch");
		return;
	}
	s->cur[s->ncur++] = d;
	s->cur[s->ncur] = '\0';
	switch ((m = match_all(s))) {
	case VXML_MATCH_NO:
		finish(s, "nomatch");
		break;
	case VXML_MATCH_PREFIX:
		timer(s, IN_INTERDIGIT, s->interdigit_ms);
		break;
	case VXML_MATCH_MORE:
		timer(s, IN_INTERDIGIT, s->interdigit_ms);
		break;
	case VXML_MATCH_FULL:
		if (s->termchar != 0 && s->termtimeout_ms > 0)
			timer(s, IN_TERM, s->termtimeout_ms);
		else
			finish(s, NULL);
		break;
	}
}

/* Feeds typeahead keys while this utterance is undecided. */
static void
drain(struct vxml_session *s)
{
	while (s->wait == WAIT_INPUT && s->in_state != IN_PROMPTS &&
	    s->ndigits > 0) {
		char d = s->digits[0];

		memmove(s->digits, s->digits + 1, s->ndigits);
		s->ndigits--;
		take_digit(s, d);
	}
}

/* Starts collecting for a field, menu or <initial> whose prompts are queued. */
enum vxml_flow
vxml_input_start(struct vxml_session *s, struct vxml_item *it)
{
	enum vxml_flow f = FLOW_NEXT;
	const char *tc;
	xmlNode *c;

	if (s->hungup) {
		vxml_end(s, VXML_END_HANGUP);
		return FLOW_EXIT;
	}
	vxml_input_clear(s);
	if (it->kind == ITEM_MENU)
		f = menu_grammars(s, it->node);
	else if (it->kind == ITEM_FIELD)
		f = field_grammars(s, it->node);
	else		/* <initial>: the form's own grammars */
		for (c = vxml_first_elem(s->ctx->dlg.node); c != NULL &&
		    f == FLOW_NEXT && s->wait != WAIT_GRAMMAR; c = vxml_next_elem(c))
			if (vxml_is(c, "grammar"))
				f = grammar_elem(s, c);
	if (f == FLOW_NEXT && !is_modal(it) && s->wait != WAIT_GRAMMAR)
		f = scope_grammars(s, it);
	if (f != FLOW_NEXT || s->wait == WAIT_GRAMMAR) {
		/* on error, or to start again once the grammar is here */
		vxml_input_clear(s);
		return f;
	}
	/* inputmodes without dtmf: keys are not input here */
	s->dtmf_off = strstr(vxml_property(s, "inputmodes", "dtmf voice"),
	    "dtmf") == NULL;
	s->timeout_ms = s->prompt_timeout_ms >= 0 ? s->prompt_timeout_ms :
	    vxml_time_ms(vxml_property(s, "timeout", "5s"), 5000);
	s->interdigit_ms = vxml_time_ms(vxml_property(s, "interdigittimeout",
	    "3s"), 3000);
	s->termtimeout_ms = vxml_time_ms(vxml_property(s, "termtimeout", "0s"), 0);
	tc = vxml_property(s, "termchar", "#");
	s->termchar = tc[0];
	s->prompt_timeout_ms = -1;
	s->wait = WAIT_INPUT;
	s->iterations = 0;
	if (s->prompts_queued > 0) {
		s->in_state = IN_PROMPTS;
		s->prompts_playing = 1;
		s->p.play(s->arg);
		if (s->wait == WAIT_INPUT && s->ndigits > 0 && s->bargein &&
		    s->prompts_playing) {
			/* typeahead barges in at once */
			s->p.stop_prompts(s->arg);
			s->prompts_playing = 0;
			vxml_input_prompts_done(s);
		}
		return FLOW_NEXT;
	}
	timer(s, IN_NOINPUT, s->timeout_ms);
	drain(s);
	return FLOW_NEXT;
}

void
vxml_input_prompts_done(struct vxml_session *s)
{
	s->prompts_playing = 0;
	s->prompts_queued = 0;
	if (s->wait != WAIT_INPUT || s->in_state != IN_PROMPTS)
		return;
	timer(s, IN_NOINPUT, s->timeout_ms);
	drain(s);
}

void
vxml_input_digit(struct vxml_session *s, char d)
{
	if (s->wait == WAIT_INPUT && s->dtmf_off)
		return;
	if (s->wait == WAIT_INPUT && s->in_state == IN_PROMPTS) {
		if (!s->bargein)
			return;		/* keys during an unbargeable prompt are lost */
		s->p.stop_prompts(s->arg);
		s->prompts_playing = 0;
		s->prompts_queued = 0;
		s->in_state = IN_NOINPUT;
	}
	if (s->ndigits < VXML_MAX_DIGITS) {
		s->digits[s->ndigits++] = d;
		s->digits[s->ndigits] = '\0';
	}
	if (s->wait == WAIT_INPUT)
		drain(s);
}

void
vxml_input_timer(struct vxml_session *s)
{
	s->timer_on = 0;
	if (s->wait != WAIT_INPUT)
		return;
	switch (s->in_state) {
	case IN_PROMPTS:
		break;
	case IN_NOINPUT:
		finish(s, "noinput");
		break;
	case IN_INTERDIGIT:
		finish(s, s->match_idx >= 0 ? NULL : "nomatch");
		break;
	case IN_TERM:
		finish(s, NULL);
		break;
	}
}

void
vxml_input_hangup(struct vxml_session *s)
{
	timer_off(s);
	s->prompts_playing = 0;
	vxml_input_clear(s);
}

/* The interpretation of a match as ECMAScript source (for tags: their
 * result through $vxml_tags). */
char *
vxml_interp_source(const struct vxml_interp *m)
{
	size_t n = 64, i;
	char *r, *q;

	if (m->value != NULL)
		return strdup(m->value);
	/* literal tags: the (last) tag's text is the value */
	if (m->tag_format != NULL && strstr(m->tag_format, "literals") != NULL &&
	    m->tags != NULL && m->tags[0] != NULL) {
		for (i = 0; m->tags[i + 1] != NULL; i++)
			;
		return js_quote(m->tags[i]);
	}
	if (m->tags == NULL || m->tags[0] == NULL)
		return js_quote(m->utterance != NULL ? m->utterance : "");
	for (i = 0; m->tags[i] != NULL; i++)
		n += 6 * strlen(m->tags[i]) + 4;
	n += 6 * strlen(m->utterance != NULL ? m->utterance : "");
	if ((r = malloc(n)) == NULL)
		return NULL;
	strcpy(r, "$vxml_tags([");
	for (i = 0; m->tags[i] != NULL; i++) {
		q = js_quote(m->tags[i]);
		if (i > 0)
			strcat(r, ",");
		strcat(r, q != NULL ? q : "''");
		free(q);
	}
	strcat(r, "],");
	q = js_quote(m->utterance != NULL ? m->utterance : "");
	strcat(r, q != NULL ? q : "''");
	free(q);
	strcat(r, ")");
	return r;
}
