/* vxml_event.c: throwing events and choosing their handler (VoiceXML 2.0
 * 5.2.4): candidates from the innermost scope outwards (form item, dialog,
 * document, application root), in document order within a scope; keep those
 * whose event prefix-matches and whose cond is true; take the highest count
 * not above the event's counter, first in that order.  No handler: the
 * platform's default one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vxml_int.h"

#define VXML_EVENT_DEPTH	32	/* handlers throwing events, nested */

enum vxml_flow
vxml_throw(struct vxml_session *s, const char *name, const char *msg,
    xmlNode *where)
{
	free(s->ev_name);
	free(s->ev_msg);
	s->ev_name = strdup(name);
	s->ev_msg = msg != NULL ? strdup(msg) : NULL;
	s->ev_node = where;
	free(s->ev_url);
	s->ev_url = NULL;
	s->ev_line = 0;
	return FLOW_THROW;
}

enum vxml_flow
vxml_throwf(struct vxml_session *s, const char *name, xmlNode *where,
    const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* an error inside the handling of an error keeps the first place */
	if (where == NULL && s->ev_name != NULL)
		where = s->ev_node;
	return vxml_throw(s, name, msg, where);
}

void
vxml_counts_free(struct vxml_count **c)
{
	struct vxml_count *n;

	while (*c != NULL) {
		n = (*c)->next;
		free((*c)->name);
		free(*c);
		*c = n;
	}
}

static struct vxml_count *
count_find(struct vxml_count *c, const char *name)
{
	for (; c != NULL; c = c->next)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static int
count_get(struct vxml_count *c, const char *name)
{
	struct vxml_count *f = count_find(c, name);

	return f != NULL ? f->n : 0;
}

/* Counts the event under its full name and each prefix of it. */
static void
count_bump(struct vxml_count **list, const char *name)
{
	char buf[256], *dot;
	struct vxml_count *c;

	snprintf(buf, sizeof(buf), "%s", name);
	for (;;) {
		if ((c = count_find(*list, buf)) == NULL &&
		    (c = calloc(1, sizeof(*c))) != NULL) {
			c->name = strdup(buf);
			c->next = *list;
			*list = c;
		}
		if (c != NULL)
			c->n++;
		if ((dot = strrchr(buf, '.')) == NULL)
			break;
		*dot = '\0';
	}
}

/* The catch's event list token that matches name (prefix on whole
 * components), "" for a catch-all, or -1 when it does not catch name. */
static int
catch_matches(const char *list, const char *name, char *tok, size_t toklen)
{
	const char *p = list, *e;
	size_t n, nl = strlen(name);

	if (list == NULL || strspn(list, " \t\r\n") == strlen(list)) {
		tok[0] = '\0';
		return 0;
	}
	while (*p != '\0') {
		p += strspn(p, " \t\r\n");
		e = p + strcspn(p, " \t\r\n");
		n = (size_t)(e - p);
		while (n > 0 && p[n - 1] == '.')	/* "error." is "error" */
			n--;
		if (n > 0 && n <= nl && strncmp(p, name, n) == 0 &&
		    (name[n] == '\0' || name[n] == '.') && n < toklen) {
			memcpy(tok, p, n);
			tok[n] = '\0';
			return 0;
		}
		p = e;
	}
	return -1;
}

static const char *
catch_events(xmlNode *c, char **owned)
{
	*owned = NULL;
	if (vxml_is(c, "catch"))
		return *owned = vxml_attr(c, "event");
	if (vxml_is(c, "error"))
		return "error";
	if (vxml_is(c, "noinput"))
		return "noinput";
	if (vxml_is(c, "nomatch"))
		return "nomatch";
	if (vxml_is(c, "help"))
		return "help";
	return NULL;
}

struct candidate {
	xmlNode	*node;
	int	 count;
};

/* Finds the handler for name with the counters in counts. */
static xmlNode *
select_catch(struct vxml_session *s, const char *name, struct vxml_count *counts,
    xmlNode **scopes, size_t nscopes)
{
	struct candidate cand[128];
	size_t ncand = 0, i;
	int best = -1;
	xmlNode *c;

	for (i = 0; i < nscopes; i++) {
		for (c = vxml_first_elem(scopes[i]); c != NULL;
		    c = vxml_next_elem(c)) {
			char tok[128], *owned, *cond, *cnt;
			const char *ev;
			int ok = 1, n;

			if ((ev = catch_events(c, &owned)) == NULL &&
			    !vxml_is(c, "catch"))
				continue;
			if (catch_matches(ev, name, tok, sizeof(tok)) != 0) {
				free(owned);
				continue;
			}
			free(owned);
			if ((cond = vxml_attr(c, "cond")) != NULL) {
				if (vxml_js_eval_bool(s, cond, c, &ok) != 0) {
					/* a broken cond does not select its catch */
					free(s->ev_name);
					s->ev_name = NULL;
					ok = 0;
				}
				free(cond);
			}
			if (!ok)
				continue;
			cnt = vxml_attr(c, "count");
			n = cnt != NULL ? atoi(cnt) : 1;
			free(cnt);
			if (n < 1)
				n = 1;
			if (n > count_get(counts, tok[0] != '\0' ? tok : name))
				continue;
			if (ncand < sizeof(cand) / sizeof(cand[0])) {
				cand[ncand].node = c;
				cand[ncand++].count = n;
			}
			if (n > best)
				best = n;
		}
	}
	for (i = 0; i < ncand; i++)
		if (cand[i].count == best)
			return cand[i].node;
	return NULL;
}

static int
is_prefix(const char *name, const char *p)
{
	size_t n = strlen(p);

	return strncmp(name, p, n) == 0 && (name[n] == '\0' || name[n] == '.');
}

/* The platform's handler: reprompt for input events, end for the rest. */
static enum vxml_flow default_handler_(struct vxml_session *, const char *,
		    const char *);

/* name and msg may be s->ev_name and s->ev_msg, which this replaces. */
static enum vxml_flow
default_handler(struct vxml_session *s, const char *name, const char *msg)
{
	char *n = strdup(name), *m = msg != NULL ? strdup(msg) : NULL;
	enum vxml_flow f;

	f = default_handler_(s, n != NULL ? n : "error", m);
	free(n);
	free(m);
	return f;
}

static enum vxml_flow
default_handler_(struct vxml_session *s, const char *name, const char *msg)
{
	struct vxml_dialog *dl = &s->ctx->dlg;

	if (strcmp(name, "noinput") == 0 || strcmp(name, "nomatch") == 0 ||
	    strcmp(name, "help") == 0 || strcmp(name, "maxspeechtimeout") == 0) {
		if (strcmp(name, "nomatch") == 0)
			vxml_prompt_text(s, "Sorry, I did not understand.", 1);
		dl->skip_prompts = 0;
		return FLOW_NEXT;
	}
	if (strcmp(name, "cancel") == 0) {
		dl->skip_prompts = 1;
		return FLOW_NEXT;
	}
	free(s->ev_name);
	s->ev_name = strdup(name);
	free(s->ev_msg);
	s->ev_msg = msg != NULL ? strdup(msg) : NULL;
	if (is_prefix(name, "connection.disconnect")) {
		vxml_end(s, s->disconnected ? VXML_END_DISCONNECT : VXML_END_HANGUP);
		return FLOW_EXIT;
	}
	vxml_log(s, "error", "uncaught %s: %s (%s:%d)", name,
	    msg != NULL ? msg : "", vxml_node_url(s, s->ev_node) != NULL ?
	    vxml_node_url(s, s->ev_node) : "?",
	    s->ev_node != NULL ? (int)xmlGetLineNo(s->ev_node) : 0);
	vxml_end(s, is_prefix(name, "error") ? VXML_END_ERROR : VXML_END_EXIT);
	return FLOW_EXIT;
}

/* Handles the pending event s->ev_name; returns what its handler asked. */
enum vxml_flow
vxml_handle_event(struct vxml_session *s)
{
	struct vxml_ctx *c = s->ctx;
	struct vxml_dialog *dl = &c->dlg;
	struct vxml_item *it = NULL;
	struct vxml_count **counts, *tmp = NULL;
	xmlNode *scopes[4], *h;
	size_t ns = 0;
	char *name, *msg;
	enum vxml_flow f;
	int depth;

	if (s->ev_name == NULL)
		return FLOW_NEXT;
	if (++s->ev_depth > VXML_EVENT_DEPTH) {
		s->ev_depth = 0;
		vxml_throwf(s, "error.semantic", NULL,
		    "event handlers keep throwing (last: %s)", s->ev_name);
		return default_handler(s, s->ev_name, s->ev_msg);
	}
	if (dl->node != NULL && dl->cur >= 0 && !dl->in_filled)
		it = &dl->items[dl->cur];
	if (it != NULL) {
		counts = &it->counts;
		if (it->node != dl->node)
			scopes[ns++] = it->node;
	} else if (dl->node != NULL)
		counts = &dl->counts;
	else
		counts = &tmp;
	if (dl->node != NULL)
		scopes[ns++] = dl->node;
	if (c->doc != NULL)
		scopes[ns++] = c->doc->root;
	if (c->app != NULL && c->app != c->doc)
		scopes[ns++] = c->app->root;
	count_bump(counts, s->ev_name);

	name = s->ev_name;
	msg = s->ev_msg;
	s->ev_name = NULL;
	s->ev_msg = NULL;
	h = select_catch(s, name, *counts, scopes, ns);
	if (s->ev_name != NULL) {	/* cond raised: that error wins */
		free(name);
		free(msg);
		vxml_counts_free(&tmp);
		return FLOW_THROW;
	}
	if (h == NULL) {
		f = default_handler(s, name, msg);
		free(name);
		free(msg);
		vxml_counts_free(&tmp);
		return f;
	}
	depth = vxml_js_depth(s);
	vxml_js_push_scope(s, NULL);
	vxml_js_set_string(s, "_event", name);
	vxml_js_set_string(s, "_message", msg);
	s->reprompt = 0;
	f = vxml_exec(s, h);
	vxml_js_truncate(s, depth);
	/* the next round queues no prompts unless the handler said <reprompt>
	 * (a <goto nextitem> too: the dialog is the same) */
	if (f == FLOW_NEXT || f == FLOW_GOTO)
		dl->skip_prompts = !s->reprompt;
	free(name);
	free(msg);
	vxml_counts_free(&tmp);
	return f;
}
