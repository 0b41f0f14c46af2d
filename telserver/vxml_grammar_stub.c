/* vxml_grammar_stub.c: TEMPORARY stand-in for the grammar module
 * (vxml_grammar.c, written on another branch), so that the interpreter
 * links and its tests run until that module is merged.  It knows only the
 * builtin digits and boolean types and menu/option key sequences; the lead
 * deletes this file when merging the real vxml_grammar.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vxml_grammar.h"

enum kind { G_DIGITS, G_BOOLEAN, G_SEQ };

struct vxml_grammar {
	enum kind	 kind;
	int		 minlen, maxlen;	/* digits; maxlen 0: no bound */
	char		*seq, *value;
};

static int
param(const char *q, const char *name, int dflt)
{
	const char *p;
	size_t n = strlen(name);

	for (p = q != NULL ? q + 1 : NULL; p != NULL && *p != '\0'; p = strpbrk(p, ";&")) {
		if (*p == ';' || *p == '&')
			p++;
		if (strncmp(p, name, n) == 0 && p[n] == '=')
			return atoi(p + n + 1);
	}
	return dflt;
}

struct vxml_grammar *
vxml_grammar_builtin(const char *type, char *err, size_t errlen)
{
	struct vxml_grammar *g;
	const char *q = strchr(type, '?');
	size_t n = q != NULL ? (size_t)(q - type) : strlen(type);

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	if (n == 6 && strncmp(type, "digits", 6) == 0) {
		g->kind = G_DIGITS;
		g->minlen = param(q, "minlength", 1);
		g->maxlen = param(q, "maxlength", 0);
		if (param(q, "length", 0) > 0)
			g->minlen = g->maxlen = param(q, "length", 0);
		return g;
	}
	if (n == 7 && strncmp(type, "boolean", 7) == 0) {
		g->kind = G_BOOLEAN;
		return g;
	}
	free(g);
	snprintf(err, errlen, "builtin type %.*s not in the grammar stub",
	    (int)n, type);
	return NULL;
}

struct vxml_grammar *
vxml_grammar_srgs_node(xmlNode *grammar, char *err, size_t errlen)
{
	snprintf(err, errlen, "SRGS grammars are not in the grammar stub");
	return NULL;
}

struct vxml_grammar *
vxml_grammar_srgs_doc(const char *buf, size_t len, char *err, size_t errlen)
{
	snprintf(err, errlen, "SRGS grammars are not in the grammar stub");
	return NULL;
}

struct vxml_grammar *
vxml_grammar_sequence(const char *dtmf, const char *value)
{
	struct vxml_grammar *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return NULL;
	g->kind = G_SEQ;
	g->seq = strdup(dtmf);
	g->value = strdup(value);
	return g;
}

static enum vxml_match
hit(const char *digits, const char *value, enum vxml_match m,
    struct vxml_interp *out)
{
	out->utterance = strdup(digits);
	out->value = strdup(value);
	return m;
}

enum vxml_match
vxml_grammar_match(const struct vxml_grammar *g, const char *digits,
    struct vxml_interp *out)
{
	size_t n = strlen(digits), i;
	char *q;
	enum vxml_match m;

	memset(out, 0, sizeof(*out));
	switch (g->kind) {
	case G_DIGITS:
		for (i = 0; i < n; i++)
			if (digits[i] < '0' || digits[i] > '9')
				return VXML_MATCH_NO;
		if (g->maxlen > 0 && (int)n > g->maxlen)
			return VXML_MATCH_NO;
		if ((int)n < g->minlen)
			return VXML_MATCH_PREFIX;
		if ((q = malloc(n + 3)) == NULL)
			return VXML_MATCH_NO;
		snprintf(q, n + 3, "'%s'", digits);
		m = g->maxlen > 0 && (int)n == g->maxlen ? VXML_MATCH_FULL :
		    VXML_MATCH_MORE;
		out->utterance = strdup(digits);
		out->value = q;
		return m;
	case G_BOOLEAN:
		if (strcmp(digits, "1") == 0)
			return hit(digits, "true", VXML_MATCH_FULL, out);
		if (strcmp(digits, "2") == 0)
			return hit(digits, "false", VXML_MATCH_FULL, out);
		return VXML_MATCH_NO;
	case G_SEQ:
		if (strcmp(digits, g->seq) == 0)
			return hit(digits, g->value, VXML_MATCH_FULL, out);
		if (strncmp(g->seq, digits, n) == 0)
			return VXML_MATCH_PREFIX;
		return VXML_MATCH_NO;
	}
	return VXML_MATCH_NO;
}

void
vxml_interp_clear(struct vxml_interp *out)
{
	size_t i;

	if (out == NULL)
		return;
	free(out->utterance);
	free(out->value);
	for (i = 0; out->tags != NULL && out->tags[i] != NULL; i++)
		free(out->tags[i]);
	free(out->tags);
	free(out->tag_format);
	memset(out, 0, sizeof(*out));
}

void
vxml_grammar_free(struct vxml_grammar *g)
{
	if (g == NULL)
		return;
	free(g->seq);
	free(g->value);
	free(g);
}
