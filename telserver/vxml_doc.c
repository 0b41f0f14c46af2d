/* vxml_doc.c: VoiceXML documents: parsing with libxml2 (keeping line numbers
 * for error reports), URL resolution, and the small DOM helpers the rest of
 * the interpreter uses.  A malformed document is the caller's
 * error.badfetch: this file only says why and where. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/uri.h>

#include "vxml_int.h"

/* Attribute rules a schema would enforce: a document breaking one is
 * invalid, so its fetch fails with error.badfetch in the document that
 * asked for it (VoiceXML 2.0 5.2.6: errors at document load time). */
static const struct attr_rule {
	const char	*elem;
	int		 exactly;	/* 1: exactly one of attrs; 0: at most one */
	const char	*attrs[5];
} attr_rules[] = {
	{ "audio",	1, { "src", "expr" } },
	{ "goto",	1, { "next", "expr", "nextitem", "expritem" } },
	{ "submit",	1, { "next", "expr" } },
	{ "subdialog",	1, { "src", "srcexpr" } },
	{ "throw",	1, { "event", "eventexpr" } },
	{ "throw",	0, { "message", "messageexpr" } },
	{ "return",	0, { "event", "eventexpr", "namelist" } },
	{ "return",	0, { "message", "messageexpr" } },
	{ "choice",	0, { "next", "expr", "event", "eventexpr" } },
	{ "choice",	0, { "message", "messageexpr" } },
	{ "exit",	0, { "expr", "namelist" } },
	{ "script",	0, { "src", "srcexpr" } },
	{ "grammar",	0, { "src", "srcexpr" } },
	{ "transfer",	0, { "dest", "destexpr" } },
	{ "transfer",	0, { "aai", "aaiexpr" } },
	{ "value",	1, { "expr" } },
	{ "var",	1, { "name" } },
	{ "assign",	1, { "name" } },
	{ "assign",	1, { "expr" } },
	{ "if",		1, { "cond" } },
	{ "elseif",	1, { "cond" } },
	{ "param",	1, { "name" } },
	{ "param",	0, { "expr", "value" } },
	{ "property",	1, { "name" } },
	{ "log",	0, { "expr", "label" } },
};

static int
check_attrs(xmlNode *c, char *err, size_t errlen)
{
	size_t i, k;
	int n;

	for (i = 0; i < sizeof(attr_rules) / sizeof(attr_rules[0]); i++) {
		const struct attr_rule *r = &attr_rules[i];

		if (!vxml_is(c, r->elem))
			continue;
		for (k = 0, n = 0; k < 5 && r->attrs[k] != NULL; k++)
			n += vxml_has_attr(c, r->attrs[k]);
		if (n > 1 || (r->exactly && n == 0)) {
			snprintf(err, errlen, "<%s> needs %s one of %s%s%s%s%s",
			    r->elem, r->exactly ? "exactly" : "at most",
			    r->attrs[0], r->attrs[1] != NULL ? ", " : "",
			    r->attrs[1] != NULL ? r->attrs[1] : "",
			    r->attrs[2] != NULL ? ", " : "",
			    r->attrs[2] != NULL ? r->attrs[2] : "");
			return -1;
		}
	}
	/* <audio> or <script> with a src and content is fine; a <script> with
	 * neither is not */
	return 0;
}

static int
validate(xmlNode *n, char *err, size_t errlen, int *line)
{
	xmlNode *c;

	for (c = n->children; c != NULL; c = c->next) {
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (check_attrs(c, err, errlen) != 0 ||
		    validate(c, err, errlen, line) != 0) {
			if (*line == 0)
				*line = (int)xmlGetLineNo(c);
			return -1;
		}
	}
	return 0;
}

static void
doc_collect(struct vxml_doc *d, xmlNode *n)
{
	xmlNode *c;
	char *src;

	for (c = n->children; c != NULL; c = c->next) {
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if ((vxml_is(c, "script") || vxml_is(c, "grammar")) &&
		    (src = vxml_attr(c, "src")) != NULL) {
			struct vxml_res *r;

			r = realloc(d->res, (d->nres + 1) * sizeof(*r));
			if (r == NULL) {
				free(src);
				return;
			}
			d->res = r;
			r += d->nres++;
			memset(r, 0, sizeof(*r));
			r->node = c;
			r->url = vxml_url_resolve(d->url, src);
			r->status = -1;
			free(src);
		}
		doc_collect(d, c);
	}
}

/* The first error libxml2 reports is the one a person can act on (a tag
 * not closed); the last is often "premature end of data" at the end. */
struct first_error {
	int	seen;
	int	line;
	char	msg[256];
};

static void
keep_first_error(void *arg, xmlErrorPtr e)
{
	struct first_error *fe = arg;

	if (fe->seen || e == NULL || e->level < XML_ERR_ERROR)
		return;
	fe->seen = 1;
	fe->line = e->line;
	snprintf(fe->msg, sizeof(fe->msg), "%s",
	    e->message != NULL ? e->message : "parse error");
}

/* Parses buf as the document at url.  On failure returns NULL with a reason
 * in err and the line in *errline (0 when unknown). */
struct vxml_doc *
vxml_doc_parse(const char *url, const char *buf, size_t len, char *err,
    size_t errlen, int *errline)
{
	xmlParserCtxt *pc;
	xmlDoc *x;
	xmlNode *root;
	struct vxml_doc *d;
	struct first_error fe;
	char *app;

	*errline = 0;
	if ((pc = xmlNewParserCtxt()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	memset(&fe, 0, sizeof(fe));
	xmlSetStructuredErrorFunc(&fe, keep_first_error);
	x = xmlCtxtReadMemory(pc, buf, (int)len, url, NULL,
	    XML_PARSE_NONET | XML_PARSE_NOWARNING);
	xmlSetStructuredErrorFunc(NULL, NULL);
	if (x == NULL || !pc->wellFormed) {
		const xmlError *e = xmlCtxtGetLastError(pc);
		size_t n;

		if (!fe.seen)
			keep_first_error(&fe, (xmlErrorPtr)e);
		snprintf(err, errlen, "malformed document: %s",
		    fe.seen ? fe.msg : "parse error");
		n = strlen(err);
		while (n > 0 && isspace((unsigned char)err[n - 1]))
			err[--n] = '\0';
		*errline = fe.line;
		if (x != NULL)
			xmlFreeDoc(x);
		xmlFreeParserCtxt(pc);
		return NULL;
	}
	xmlFreeParserCtxt(pc);
	root = xmlDocGetRootElement(x);
	if (root == NULL || !vxml_is(root, "vxml")) {
		snprintf(err, errlen, "not a VoiceXML document (root <%s>)",
		    root != NULL ? (const char *)root->name : "none");
		*errline = root != NULL ? xmlGetLineNo(root) : 0;
		xmlFreeDoc(x);
		return NULL;
	}
	if (validate(root, err, errlen, errline) != 0) {
		xmlFreeDoc(x);
		return NULL;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		xmlFreeDoc(x);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->refs = 1;
	d->xml = x;
	d->root = root;
	d->url = strdup(url);
	if ((app = vxml_attr(root, "application")) != NULL) {
		d->app_url = vxml_url_resolve(url, app);
		free(app);
		/* the fragment of an application URI means nothing */
		if (d->app_url != NULL && strchr(d->app_url, '#') != NULL)
			*strchr(d->app_url, '#') = '\0';
	}
	doc_collect(d, root);
	return d;
}

void
vxml_doc_ref(struct vxml_doc *d)
{
	if (d != NULL)
		d->refs++;
}

void
vxml_doc_unref(struct vxml_doc *d)
{
	size_t i;

	if (d == NULL || --d->refs > 0)
		return;
	for (i = 0; i < d->nres; i++) {
		free(d->res[i].url);
		free(d->res[i].body);
	}
	free(d->res);
	xmlFreeDoc(d->xml);
	free(d->url);
	free(d->app_url);
	free(d);
}

struct vxml_res *
vxml_doc_res(struct vxml_doc *d, xmlNode *n)
{
	size_t i;

	for (i = 0; d != NULL && i < d->nres; i++)
		if (d->res[i].node == n)
			return &d->res[i];
	return NULL;
}

/* ref against base; plain file paths count as file: URLs' paths. */
char *
vxml_url_resolve(const char *base, const char *ref)
{
	xmlChar *u;
	char *r;

	if (ref == NULL)
		return NULL;
	if (base == NULL)
		return strdup(ref);
	u = xmlBuildURI((const xmlChar *)ref, (const xmlChar *)base);
	if (u == NULL)
		return strdup(ref);
	r = strdup((const char *)u);
	xmlFree(u);
	return r;
}

/* url -> the part to fetch and the fragment (either may come back NULL). */
void
vxml_url_split(const char *url, char **abs, char **frag)
{
	const char *h = strchr(url, '#');

	if (h == NULL) {
		*abs = strdup(url);
		*frag = NULL;
		return;
	}
	*abs = h == url ? NULL : strndup(url, (size_t)(h - url));
	*frag = h[1] != '\0' ? strdup(h + 1) : NULL;
}

/* A <form> or <menu> by id, or the first one when id is NULL. */
xmlNode *
vxml_doc_dialog(struct vxml_doc *d, const char *id)
{
	xmlNode *c;

	for (c = vxml_first_elem(d->root); c != NULL; c = vxml_next_elem(c)) {
		char *v;
		int match;

		if (!vxml_is(c, "form") && !vxml_is(c, "menu"))
			continue;
		if (id == NULL)
			return c;
		v = vxml_attr(c, "id");
		match = v != NULL && strcmp(v, id) == 0;
		free(v);
		if (match)
			return c;
	}
	return NULL;
}

int
vxml_is(const xmlNode *n, const char *name)
{
	return n != NULL && n->type == XML_ELEMENT_NODE &&
	    strcmp((const char *)n->name, name) == 0;
}

/* A malloc'ed copy of the attribute, or NULL when absent. */
char *
vxml_attr(const xmlNode *n, const char *name)
{
	xmlChar *v;
	char *r;

	if (n == NULL || n->type != XML_ELEMENT_NODE)
		return NULL;
	if ((v = xmlGetProp(n, (const xmlChar *)name)) == NULL)
		return NULL;
	r = strdup((const char *)v);
	xmlFree(v);
	return r;
}

int
vxml_has_attr(const xmlNode *n, const char *name)
{
	return n != NULL && n->type == XML_ELEMENT_NODE &&
	    xmlHasProp(n, (const xmlChar *)name) != NULL;
}

xmlNode *
vxml_first_elem(xmlNode *n)
{
	xmlNode *c;

	for (c = n != NULL ? n->children : NULL; c != NULL; c = c->next)
		if (c->type == XML_ELEMENT_NODE)
			return c;
	return NULL;
}

xmlNode *
vxml_next_elem(xmlNode *n)
{
	for (n = n->next; n != NULL; n = n->next)
		if (n->type == XML_ELEMENT_NODE)
			return n;
	return NULL;
}

/* The URL of the document holding n (for error reports). */
const char *
vxml_node_url(struct vxml_session *s, xmlNode *n)
{
	struct vxml_ctx *c;

	if (n == NULL)
		return s->ctx != NULL && s->ctx->doc != NULL ?
		    s->ctx->doc->url : NULL;
	for (c = s->ctx; c != NULL; c = c->parent) {
		if (c->doc != NULL && c->doc->xml == n->doc)
			return c->doc->url;
		if (c->app != NULL && c->app->xml == n->doc)
			return c->app->url;
	}
	return n->doc != NULL ? (const char *)n->doc->URL : NULL;
}

/* A CSS2 time ("3s", "250ms") in ms, at most VXML_TIME_MAX_MS (a
 * document's "1e9s" or "1e400s" is a long wait, not an int overflow);
 * dflt when absent or malformed (a sign, strtod's "nan" and "inf"). */
int
vxml_time_ms(const char *v, int dflt)
{
	const char *p = v;
	char *end;
	double x;

	if (v == NULL)
		return dflt;
	while (isspace((unsigned char)*p))
		p++;
	if (!isdigit((unsigned char)*p) && *p != '.')
		return dflt;
	x = strtod(p, &end);	/* HUGE_VAL past a double's range */
	if (end == p)
		return dflt;
	while (isspace((unsigned char)*end))
		end++;
	if (strcmp(end, "s") == 0 || *end == '\0')
		x *= 1000;
	else if (strcmp(end, "ms") != 0)
		return dflt;
	return x < VXML_TIME_MAX_MS ? (int)x : VXML_TIME_MAX_MS;
}
