/* vxml_grammar.c: SRGS 1.0 XML grammars in mode dtmf, compiled to a graph
 * of nodes, and the matcher that tells the interpreter whether the keys so
 * far are no match, a prefix, a match that could grow, or a final match.
 *
 * The matcher is a memoised top-down recogniser: for a node and a start
 * position it computes the set of end positions it can match, whether the
 * rest of the input is a prefix of something it matches (viable), and
 * whether something longer than the rest matches (extendable).  Left
 * recursion is refused when the grammar is compiled, so no node is ever
 * re-entered at the same position; repeats become sequences and
 * alternatives over one shared child, and "n-" repeats a loop node. */
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "vxml_builtin.h"
#include "vxml_grammar.h"

#define NODES_MAX	50000	/* grammar size, after repeats are expanded */
#define RULES_MAX	1000
#define REPEAT_MAX	255	/* more keys than any caller types */
#define XML_DEPTH_MAX	64
#define EVAL_DEPTH_MAX	5000	/* C stack frames of the matcher */
#define WORK_MAX	1000000	/* node visits per match: ~0.2 s at worst */
#define TAGS_MAX	4096	/* tags on one match path */
#define PROG_MAX	(1 << 20)	/* bytes of the script made of them */
#define WORDS		((VXML_GRAMMAR_MAXKEYS + 1 + 63) / 64)

enum node_kind {
	N_KEY,		/* one DTMF key */
	N_SEQ,		/* kids in order; none: the empty sequence */
	N_ALT,		/* any one kid, the first preferred */
	N_STAR,		/* its kid any number of times */
	N_REF,		/* the body of a rule */
	N_NULL,
	N_VOID,
	N_GARBAGE,	/* any keys */
	N_TAG		/* matches nothing, carries a script or literal */
};

struct node {
	enum node_kind	 kind;
	char		 key;
	uint8_t		 productive;	/* matches some key string */
	uint8_t		 nullable;	/* matches the empty string */
	uint8_t		 optional;	/* N_ALT of (copy, rest), NULL */
	int		 nkids;
	int		*kids;
	int		 target;	/* N_REF: the rule's body node */
	char		*text;		/* N_TAG: the tag; N_REF: the rule id */
	int		 line;
};

struct rule {
	char	*id;
	int	 body;
	int	 line;
};

enum tag_style {
	TAGS_AUTO,	/* no tag-format: literals, unless a tag is a script */
	TAGS_LITERAL,
	TAGS_SCRIPT
};

struct vxml_grammar {
	struct vxml_builtin	*builtin;	/* or the rest */
	struct node		*nodes;
	int			 nnodes, capnodes;
	struct rule		*rules;
	int			 nrules, caprules;
	int			 root;		/* body node of the root rule */
	char			*tag_format;
	enum tag_style		 style;
	char			**header_tags;	/* <tag> in <grammar> */
	int			 nheader;
	char			*value;		/* vxml_grammar_sequence */
};

struct pctx {
	struct vxml_grammar	*g;
	char			*err;
	size_t			 errlen;
	int			 failed;
};

/* Matching: one result per (node, start position), made on demand. */
struct res {
	uint8_t		 state;		/* 0 new, 1 being computed, 2 done */
	uint8_t		 viable;
	uint8_t		 ext;
	uint64_t	 ends[WORDS];
};

struct mctx {
	const struct vxml_grammar	*g;
	const char			*in;
	int				 n;
	struct res			**memo;	/* per node, n + 1 results */
	int				 depth;
	long				 work;
	int				 failed;
	const char			**tags;	/* on the path, in order */
	int				 ntags;
	/* the same tags as one script with a scope per rule (SISR) */
	char				*prog;
	size_t				 plen, pcap;
	int				 rule_tags;	/* in this rule */
	int				 rule_refs;
};

static const struct res empty_res;

static void
perr(struct pctx *p, long line, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (p->failed)
		return;		/* the first error is the one to fix */
	p->failed = 1;
	if (p->errlen == 0)
		return;
	if (line > 0)
		n = snprintf(p->err, p->errlen, "line %ld: ", line);
	if (n < 0 || (size_t)n >= p->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->errlen - n, fmt, ap);
	va_end(ap);
}

static int
isname(const xmlNode *x, const char *name)
{
	return x->type == XML_ELEMENT_NODE &&
	    strcmp((const char *)x->name, name) == 0;
}

static char *
attr(const xmlNode *x, const char *name)
{
	return (char *)xmlGetNoNsProp(x, (const xmlChar *)name);
}

static int
blank(const char *s)
{
	for (; *s != '\0'; s++)
		if (!isspace((unsigned char)*s))
			return 0;
	return 1;
}

/* Text content of x, trimmed, malloc'd; NULL on error (reported). */
static char *
content(struct pctx *p, xmlNode *x)
{
	xmlChar *c;
	char *s, *start, *end;

	if ((c = xmlNodeGetContent(x)) == NULL)
		return strdup("");
	for (start = (char *)c; isspace((unsigned char)*start); start++)
		;
	end = start + strlen(start);
	while (end > start && isspace((unsigned char)end[-1]))
		end--;
	s = strndup(start, (size_t)(end - start));
	xmlFree(c);
	if (s == NULL)
		perr(p, 0, "out of memory");
	return s;
}

static int
new_node(struct pctx *p, enum node_kind kind, long line)
{
	struct vxml_grammar *g = p->g;
	struct node *nodes;
	int cap;

	if (p->failed)
		return -1;
	if (g->nnodes >= NODES_MAX) {
		perr(p, line, "grammar too large: more than %d nodes once "
		    "repeats are expanded", NODES_MAX);
		return -1;
	}
	if (g->nnodes == g->capnodes) {
		cap = g->capnodes == 0 ? 64 : g->capnodes * 2;
		if ((nodes = realloc(g->nodes, cap * sizeof(*nodes))) == NULL) {
			perr(p, line, "out of memory");
			return -1;
		}
		g->nodes = nodes;
		g->capnodes = cap;
	}
	memset(&g->nodes[g->nnodes], 0, sizeof(g->nodes[0]));
	g->nodes[g->nnodes].kind = kind;
	g->nodes[g->nnodes].line = (int)line;
	g->nodes[g->nnodes].target = -1;
	return g->nnodes++;
}

static int
add_kid(struct pctx *p, int parent, int kid)
{
	struct node *n;
	int *kids;

	if (parent < 0 || kid < 0)
		return -1;
	n = &p->g->nodes[parent];
	/* grows one at a time; node counts are bounded by NODES_MAX */
	if ((kids = realloc(n->kids, (n->nkids + 1) * sizeof(*kids))) ==
	    NULL) {
		perr(p, n->line, "out of memory");
		return -1;
	}
	kids[n->nkids++] = kid;
	n->kids = kids;
	return 0;
}

/* Tokens of a text: keys separated by spaces.  A token of several keys
 * ("12") is read as those keys in order; quotes around one are dropped. */
static int
add_tokens(struct pctx *p, int seq, const char *text, long line)
{
	const char *s = text, *start;
	size_t len, i;
	int k;

	while (*s != '\0') {
		if (isspace((unsigned char)*s)) {
			s++;
			continue;
		}
		start = s;
		while (*s != '\0' && !isspace((unsigned char)*s))
			s++;
		len = (size_t)(s - start);
		if (len >= 2 && start[0] == '"' && start[len - 1] == '"') {
			start++;
			len -= 2;
		}
		for (i = 0; i < len; i++)
			if (!vxml_dtmf_key((unsigned char)start[i]))
				break;
		if (len == 0 || i < len) {
			perr(p, line, "\"%.*s\" is not a DTMF key (0-9, *, #, "
			    "A-D) in a mode=\"dtmf\" grammar",
			    (int)(s - start > 40 ? 40 : s - start), start);
			return -1;
		}
		for (i = 0; i < len; i++) {
			if ((k = new_node(p, N_KEY, line)) == -1)
				return -1;
			p->g->nodes[k].key = start[i];
			if (add_kid(p, seq, k) == -1)
				return -1;
		}
	}
	return 0;
}

/* "n", "n-", "n-m": max -1 for no limit. */
static int
parse_repeat(struct pctx *p, const char *s, long line, int *min, int *max)
{
	const char *c = s;
	long a, b = -1;
	char *end;

	if (!isdigit((unsigned char)*c))
		goto bad;
	a = strtol(c, &end, 10);
	c = end;
	if (*c == '-') {
		c++;
		if (*c != '\0') {
			if (!isdigit((unsigned char)*c))
				goto bad;
			b = strtol(c, &end, 10);
			c = end;
		}
	} else
		b = a;
	if (*c != '\0')
		goto bad;
	if (a > REPEAT_MAX || b > REPEAT_MAX) {
		perr(p, line, "repeat=\"%s\": counts above %d are not "
		    "supported (write \"%ld-\" for no upper limit)", s,
		    REPEAT_MAX, a > REPEAT_MAX ? (long)REPEAT_MAX : a);
		return -1;
	}
	if (b != -1 && b < a) {
		perr(p, line, "repeat=\"%s\": the maximum is below the "
		    "minimum", s);
		return -1;
	}
	*min = (int)a;
	*max = (int)b;
	return 0;
bad:
	perr(p, line, "repeat=\"%s\" is not \"n\", \"n-m\" or \"n-\"", s);
	return -1;
}

/* kid repeated min to max times (max -1: no limit), as a sequence of min
 * kids then, for a limit, nested optional ones (greedy: one more copy is
 * preferred to stopping), or a loop node. */
static int
repeat_node(struct pctx *p, int kid, int min, int max, long line)
{
	int seq, tail = -1, inner, alt, null = -1, star, i;

	if (max == 0)
		return new_node(p, N_NULL, line);
	if ((seq = new_node(p, N_SEQ, line)) == -1)
		return -1;
	for (i = 0; i < min; i++)
		if (add_kid(p, seq, kid) == -1)
			return -1;
	if (max == -1) {
		if ((star = new_node(p, N_STAR, line)) == -1 ||
		    add_kid(p, star, kid) == -1 || add_kid(p, seq, star) == -1)
			return -1;
		return seq;
	}
	if (max > min && (null = new_node(p, N_NULL, line)) == -1)
		return -1;
	for (i = min; i < max; i++) {
		inner = kid;
		if (tail != -1) {
			if ((inner = new_node(p, N_SEQ, line)) == -1 ||
			    add_kid(p, inner, kid) == -1 ||
			    add_kid(p, inner, tail) == -1)
				return -1;
		}
		if ((alt = new_node(p, N_ALT, line)) == -1 ||
		    add_kid(p, alt, inner) == -1 || add_kid(p, alt, null) == -1)
			return -1;
		p->g->nodes[alt].optional = 1;
		tail = alt;
	}
	if (tail != -1 && add_kid(p, seq, tail) == -1)
		return -1;
	return seq;
}

static int parse_expansion(struct pctx *, xmlNode *, long, int);

static int
parse_item(struct pctx *p, xmlNode *x, int depth)
{
	char *rep;
	int body, min, max, r;

	body = parse_expansion(p, x->children, xmlGetLineNo(x), depth + 1);
	if (body == -1 || (rep = attr(x, "repeat")) == NULL)
		return body;
	r = parse_repeat(p, rep, xmlGetLineNo(x), &min, &max);
	xmlFree(rep);
	if (r == -1)
		return -1;
	return repeat_node(p, body, min, max, xmlGetLineNo(x));
}

static int
parse_one_of(struct pctx *p, xmlNode *x, int depth)
{
	xmlNode *c;
	int alt, item;
	long line = xmlGetLineNo(x);

	if ((alt = new_node(p, N_ALT, line)) == -1)
		return -1;
	for (c = x->children; c != NULL; c = c->next) {
		if (c->type == XML_TEXT_NODE &&
		    blank((const char *)c->content))
			continue;
		if (c->type == XML_COMMENT_NODE || c->type == XML_PI_NODE)
			continue;
		if (!isname(c, "item")) {
			perr(p, xmlGetLineNo(c), "<one-of> may only hold "
			    "<item> elements");
			return -1;
		}
		if ((item = parse_item(p, c, depth)) == -1 ||
		    add_kid(p, alt, item) == -1)
			return -1;
	}
	if (p->g->nodes[alt].nkids == 0) {
		perr(p, line, "<one-of> without any <item>");
		return -1;
	}
	return alt;
}

static int
parse_ruleref(struct pctx *p, xmlNode *x)
{
	char *uri, *special;
	long line = xmlGetLineNo(x);
	int n = -1;

	uri = attr(x, "uri");
	special = attr(x, "special");
	if ((uri == NULL) == (special == NULL)) {
		perr(p, line, "<ruleref> needs either uri or special");
	} else if (special != NULL) {
		if (strcmp(special, "NULL") == 0)
			n = new_node(p, N_NULL, line);
		else if (strcmp(special, "VOID") == 0)
			n = new_node(p, N_VOID, line);
		else if (strcmp(special, "GARBAGE") == 0)
			n = new_node(p, N_GARBAGE, line);
		else
			perr(p, line, "<ruleref special=\"%s\">: special is "
			    "NULL, VOID or GARBAGE", special);
	} else if (uri[0] != '#' || uri[1] == '\0') {
		perr(p, line, "<ruleref uri=\"%s\">: only rules of the same "
		    "grammar (uri=\"#id\") are supported", uri);
	} else if ((n = new_node(p, N_REF, line)) != -1 &&
	    (p->g->nodes[n].text = strdup(uri + 1)) == NULL) {
		perr(p, line, "out of memory");
		n = -1;
	}
	xmlFree(uri);
	xmlFree(special);
	return n;
}

static int
parse_tag(struct pctx *p, xmlNode *x, int seq)
{
	char *text;
	int t;

	if ((text = content(p, x)) == NULL)
		return -1;
	if (text[0] == '\0') {
		free(text);
		return 0;
	}
	if ((t = new_node(p, N_TAG, xmlGetLineNo(x))) == -1) {
		free(text);
		return -1;
	}
	p->g->nodes[t].text = text;
	return add_kid(p, seq, t);
}

/* The content of a <rule> or <item>: a sequence of tokens, rulerefs,
 * items, one-ofs and tags. */
static int
parse_expansion(struct pctx *p, xmlNode *first, long line, int depth)
{
	xmlNode *c;
	char *text;
	int seq, kid, r;

	if (depth > XML_DEPTH_MAX) {
		perr(p, line, "grammar nested deeper than %d elements",
		    XML_DEPTH_MAX);
		return -1;
	}
	if ((seq = new_node(p, N_SEQ, line)) == -1)
		return -1;
	for (c = first; c != NULL && !p->failed; c = c->next) {
		switch (c->type) {
		case XML_TEXT_NODE:
		case XML_CDATA_SECTION_NODE:
			if (add_tokens(p, seq, (const char *)c->content,
			    xmlGetLineNo(c)) == -1)
				return -1;
			continue;
		case XML_COMMENT_NODE:
		case XML_PI_NODE:
			continue;
		case XML_ELEMENT_NODE:
			break;
		default:
			perr(p, xmlGetLineNo(c), "unexpected XML content "
			    "(entity references are not supported) in a rule");
			return -1;
		}
		kid = -1;
		if (isname(c, "token")) {
			if ((text = content(p, c)) == NULL)
				return -1;
			if (text[0] == '\0')
				perr(p, xmlGetLineNo(c), "empty <token>");
			r = p->failed ? -1 :
			    add_tokens(p, seq, text, xmlGetLineNo(c));
			free(text);
			if (r == -1)
				return -1;
			continue;
		} else if (isname(c, "tag")) {
			if (parse_tag(p, c, seq) == -1)
				return -1;
			continue;
		} else if (isname(c, "example"))
			continue;
		else if (isname(c, "item"))
			kid = parse_item(p, c, depth);
		else if (isname(c, "one-of"))
			kid = parse_one_of(p, c, depth + 1);
		else if (isname(c, "ruleref"))
			kid = parse_ruleref(p, c);
		else
			perr(p, xmlGetLineNo(c), "<%s> is not allowed in a "
			    "rule", (const char *)c->name);
		if (kid == -1 || add_kid(p, seq, kid) == -1)
			return -1;
	}
	return p->failed ? -1 : seq;
}

static int
find_rule(const struct vxml_grammar *g, const char *id)
{
	int i;

	for (i = 0; i < g->nrules; i++)
		if (strcmp(g->rules[i].id, id) == 0)
			return i;
	return -1;
}

static int
parse_rule(struct pctx *p, xmlNode *x)
{
	struct vxml_grammar *g = p->g;
	struct rule *rules;
	long line = xmlGetLineNo(x);
	char *id;
	int body;

	if ((id = attr(x, "id")) == NULL || id[0] == '\0') {
		xmlFree(id);
		perr(p, line, "<rule> without an id");
		return -1;
	}
	if (find_rule(g, id) != -1) {
		perr(p, line, "rule \"%s\" is defined twice", id);
		xmlFree(id);
		return -1;
	}
	if (g->nrules >= RULES_MAX) {
		perr(p, line, "more than %d rules", RULES_MAX);
		xmlFree(id);
		return -1;
	}
	if (g->nrules == g->caprules) {
		if ((rules = realloc(g->rules, (g->caprules * 2 + 8) *
		    sizeof(*rules))) == NULL) {
			perr(p, line, "out of memory");
			xmlFree(id);
			return -1;
		}
		g->rules = rules;
		g->caprules = g->caprules * 2 + 8;
	}
	g->rules[g->nrules].id = strdup(id);
	xmlFree(id);
	if (g->rules[g->nrules].id == NULL) {
		perr(p, line, "out of memory");
		return -1;
	}
	g->rules[g->nrules].line = (int)line;
	g->rules[g->nrules].body = -1;
	g->nrules++;
	if ((body = parse_expansion(p, x->children, line, 1)) == -1)
		return -1;
	g->rules[g->nrules - 1].body = body;
	return 0;
}

static int
resolve_refs(struct pctx *p)
{
	struct vxml_grammar *g = p->g;
	struct node *n;
	int i, r;

	for (i = 0; i < g->nnodes; i++) {
		n = &g->nodes[i];
		if (n->kind != N_REF)
			continue;
		if ((r = find_rule(g, n->text)) == -1) {
			perr(p, n->line, "<ruleref uri=\"#%s\">: no rule has "
			    "that id", n->text);
			return -1;
		}
		n->target = g->rules[r].body;
	}
	return 0;
}

/* Least fixpoints of "matches something" and "matches the empty string";
 * rules may refer to each other in cycles. */
static void
fixpoints(struct vxml_grammar *g)
{
	struct node *n;
	int changed, i, k, prod, null, pass;

	for (pass = 0, changed = 1; changed && pass <= g->nnodes; pass++) {
		changed = 0;
		for (i = 0; i < g->nnodes; i++) {
			n = &g->nodes[i];
			switch (n->kind) {
			case N_KEY:
				prod = 1, null = 0;
				break;
			case N_NULL:
			case N_TAG:
			case N_GARBAGE:
				prod = 1, null = 1;
				break;
			case N_VOID:
				prod = 0, null = 0;
				break;
			case N_STAR:
				prod = 1, null = 1;
				break;
			case N_REF:
				prod = g->nodes[n->target].productive;
				null = g->nodes[n->target].nullable;
				break;
			case N_SEQ:
				prod = 1, null = 1;
				for (k = 0; k < n->nkids; k++) {
					prod &= g->nodes[n->kids[k]].productive;
					null &= g->nodes[n->kids[k]].nullable;
				}
				break;
			case N_ALT:
			default:
				prod = 0, null = 0;
				for (k = 0; k < n->nkids; k++) {
					prod |= g->nodes[n->kids[k]].productive;
					null |= g->nodes[n->kids[k]].nullable;
				}
				break;
			}
			if (prod != n->productive || null != n->nullable) {
				n->productive = (uint8_t)prod;
				n->nullable = (uint8_t)null;
				changed = 1;
			}
		}
	}
}

/* The nodes a node can start with, at its own start position. */
static int
left_edges(const struct vxml_grammar *g, int ni, int *out)
{
	const struct node *n = &g->nodes[ni];
	int k, m = 0;

	switch (n->kind) {
	case N_SEQ:
		for (k = 0; k < n->nkids; k++) {
			out[m++] = n->kids[k];
			if (!g->nodes[n->kids[k]].nullable)
				break;
		}
		return m;
	case N_ALT:
	case N_STAR:
		for (k = 0; k < n->nkids; k++)
			out[m++] = n->kids[k];
		return m;
	case N_REF:
		out[0] = n->target;
		return 1;
	default:
		return 0;
	}
}

/* Left recursion would let the matcher enter a rule again at the same
 * position: a depth-first search over the left edges, with an explicit
 * stack, finds a cycle and names a rule on it. */
static int
check_left_recursion(struct pctx *p)
{
	struct vxml_grammar *g = p->g;
	struct frame {
		int	node;
		int	next;
	} *stack = NULL;
	uint8_t *color = NULL;	/* 0 white, 1 on the stack, 2 done */
	int *edges = NULL, maxkids = 1, top, i, k, m, s, e;
	size_t nn;

	for (i = 0; i < g->nnodes; i++)
		if (g->nodes[i].nkids > maxkids)
			maxkids = g->nodes[i].nkids;
	nn = g->nnodes > 0 ? (size_t)g->nnodes : 1;
	stack = calloc(nn, sizeof(*stack));
	color = calloc(nn, 1);
	edges = calloc((size_t)maxkids, sizeof(*edges));
	if (stack == NULL || color == NULL || edges == NULL) {
		perr(p, 0, "out of memory");
		goto done;
	}
	for (s = 0; s < g->nnodes && !p->failed; s++) {
		if (color[s] != 0)
			continue;
		top = 0;
		stack[0].node = s;
		stack[0].next = 0;
		color[s] = 1;
		while (top >= 0 && !p->failed) {
			m = left_edges(g, stack[top].node, edges);
			if (stack[top].next >= m) {
				color[stack[top].node] = 2;
				top--;
				continue;
			}
			e = edges[stack[top].next++];
			if (color[e] == 2)
				continue;
			if (color[e] == 0) {
				color[e] = 1;
				top++;
				stack[top].node = e;
				stack[top].next = 0;
				continue;
			}
			/* a cycle: from e's frame to the top */
			for (k = top; k >= 0 && g->nodes[stack[k].node].kind !=
			    N_REF; k--)
				;
			if (k >= 0)
				perr(p, g->nodes[stack[k].node].line, "left "
				    "recursion: rule \"%s\" can reach itself "
				    "before any key is matched",
				    g->nodes[stack[k].node].text);
			else
				perr(p, g->nodes[e].line, "left recursion");
		}
	}
done:
	free(stack);
	free(color);
	free(edges);
	return p->failed ? -1 : 0;
}

static int
add_header_tag(struct pctx *p, xmlNode *x)
{
	struct vxml_grammar *g = p->g;
	char **tags, *text;

	if ((text = content(p, x)) == NULL)
		return -1;
	if (text[0] == '\0') {
		free(text);
		return 0;
	}
	if ((tags = realloc(g->header_tags, (g->nheader + 1) *
	    sizeof(*tags))) == NULL) {
		free(text);
		perr(p, xmlGetLineNo(x), "out of memory");
		return -1;
	}
	g->header_tags = tags;
	g->header_tags[g->nheader++] = text;
	return 0;
}

static struct vxml_grammar *
compile(xmlNode *x, char *err, size_t errlen)
{
	struct pctx p;
	xmlNode *c;
	char *mode = NULL, *root = NULL, *type = NULL, *fmt = NULL;
	long line = xmlGetLineNo(x);
	int r;

	memset(&p, 0, sizeof(p));
	p.err = err;
	p.errlen = errlen;
	if (errlen > 0)
		err[0] = '\0';
	if ((p.g = calloc(1, sizeof(*p.g))) == NULL) {
		perr(&p, 0, "out of memory");
		return NULL;
	}
	if (x == NULL || !isname(x, "grammar")) {
		perr(&p, x == NULL ? 0 : line, "not an SRGS grammar: the "
		    "element is <%s>, not <grammar>", x == NULL ? "" :
		    (const char *)x->name);
		goto fail;
	}
	type = attr(x, "type");
	if (type != NULL && strcmp(type, "application/srgs+xml") != 0 &&
	    strcmp(type, "application/grammar+xml") != 0) {
		perr(&p, line, "grammar type \"%s\" is not supported (only "
		    "application/srgs+xml)", type);
		goto fail;
	}
	mode = attr(x, "mode");
	if (mode == NULL || strcmp(mode, "dtmf") != 0) {
		perr(&p, line, "grammar mode is %s%s: only mode=\"dtmf\" "
		    "grammars can be matched against keys", mode == NULL ?
		    "voice" : mode, mode == NULL ? " (the default)" : "");
		goto fail;
	}
	if ((fmt = attr(x, "tag-format")) != NULL) {
		if ((p.g->tag_format = strdup(fmt)) == NULL) {
			perr(&p, line, "out of memory");
			goto fail;
		}
		if (strcmp(fmt, "semantics/1.0-literals") == 0)
			p.g->style = TAGS_LITERAL;
		else
			p.g->style = TAGS_SCRIPT;
	}
	for (c = x->children; c != NULL && !p.failed; c = c->next) {
		if (isname(c, "rule"))
			parse_rule(&p, c);
		else if (isname(c, "tag"))
			add_header_tag(&p, c);
		else if (c->type == XML_ELEMENT_NODE && !isname(c, "meta") &&
		    !isname(c, "metadata") && !isname(c, "lexicon"))
			perr(&p, xmlGetLineNo(c), "<%s> is not allowed in "
			    "<grammar>", (const char *)c->name);
		else if ((c->type == XML_TEXT_NODE ||
		    c->type == XML_CDATA_SECTION_NODE) &&
		    !blank((const char *)c->content))
			perr(&p, xmlGetLineNo(c), "text outside any <rule> "
			    "(a DTMF grammar needs <rule> elements)");
	}
	if (p.failed)
		goto fail;
	if (p.g->nrules == 0) {
		perr(&p, line, "grammar without any <rule>");
		goto fail;
	}
	/* SRGS makes root optional; the first rule is what a reader means */
	r = 0;
	if ((root = attr(x, "root")) != NULL &&
	    (r = find_rule(p.g, root)) == -1) {
		perr(&p, line, "root=\"%s\": no rule has that id", root);
		goto fail;
	}
	p.g->root = p.g->rules[r].body;
	if (resolve_refs(&p) == -1)
		goto fail;
	fixpoints(p.g);
	if (check_left_recursion(&p) == -1)
		goto fail;
	xmlFree(mode);
	xmlFree(root);
	xmlFree(type);
	xmlFree(fmt);
	return p.g;
fail:
	xmlFree(mode);
	xmlFree(root);
	xmlFree(type);
	xmlFree(fmt);
	vxml_grammar_free(p.g);
	return NULL;
}

struct vxml_grammar *
vxml_grammar_srgs_node(xmlNode *grammar, char *err, size_t errlen)
{
	return compile(grammar, err, errlen);
}

struct vxml_grammar *
vxml_grammar_srgs_doc(const char *buf, size_t len, char *err, size_t errlen)
{
	struct vxml_grammar *g;
	const xmlError *e;
	xmlDoc *doc;
	size_t n;

	if (len > INT_MAX) {
		snprintf(err, errlen, "grammar document too large");
		return NULL;
	}
	doc = xmlReadMemory(buf, (int)len, NULL, NULL, XML_PARSE_NONET |
	    XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (doc == NULL) {
		e = xmlGetLastError();
		if (e != NULL && e->message != NULL) {
			snprintf(err, errlen, "line %d: not well-formed XML: "
			    "%s", e->line, e->message);
			n = strlen(err);
			while (n > 0 && (err[n - 1] == '\n' ||
			    err[n - 1] == ' '))
				err[--n] = '\0';
		} else
			snprintf(err, errlen, "not well-formed XML");
		return NULL;
	}
	g = compile(xmlDocGetRootElement(doc), err, errlen);
	xmlFreeDoc(doc);
	return g;
}

struct vxml_grammar *
vxml_grammar_sequence(const char *dtmf, const char *value)
{
	struct pctx p;
	char err[128];

	memset(&p, 0, sizeof(p));
	p.err = err;
	p.errlen = sizeof(err);
	if (dtmf == NULL || blank(dtmf) ||
	    (p.g = calloc(1, sizeof(*p.g))) == NULL)
		return NULL;
	if ((p.g->root = new_node(&p, N_SEQ, 0)) == -1 ||
	    add_tokens(&p, p.g->root, dtmf, 0) == -1 ||
	    (value != NULL && (p.g->value = strdup(value)) == NULL)) {
		vxml_grammar_free(p.g);
		return NULL;
	}
	fixpoints(p.g);
	return p.g;
}

struct vxml_grammar *
vxml_grammar_builtin(const char *type, char *err, size_t errlen)
{
	struct vxml_grammar *g;
	struct vxml_builtin *b;

	if (errlen > 0)
		err[0] = '\0';
	if ((b = vxml_builtin_parse(type, err, errlen)) == NULL)
		return NULL;
	if ((g = calloc(1, sizeof(*g))) == NULL) {
		vxml_builtin_free(b);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	g->builtin = b;
	return g;
}

void
vxml_grammar_free(struct vxml_grammar *g)
{
	int i;

	if (g == NULL)
		return;
	vxml_builtin_free(g->builtin);
	for (i = 0; i < g->nnodes; i++) {
		free(g->nodes[i].kids);
		free(g->nodes[i].text);
	}
	free(g->nodes);
	for (i = 0; i < g->nrules; i++)
		free(g->rules[i].id);
	free(g->rules);
	for (i = 0; i < g->nheader; i++)
		free(g->header_tags[i]);
	free(g->header_tags);
	free(g->tag_format);
	free(g->value);
	free(g);
}

/* Matching. */

static void
bit_set(uint64_t *b, int i)
{
	b[i / 64] |= (uint64_t)1 << (i % 64);
}

static int
bit_test(const uint64_t *b, int i)
{
	return (b[i / 64] >> (i % 64)) & 1;
}

static void
bit_or(uint64_t *a, const uint64_t *b)
{
	int w;

	for (w = 0; w < WORDS; w++)
		a[w] |= b[w];
}

static int
bit_empty(const uint64_t *b)
{
	int w;

	for (w = 0; w < WORDS; w++)
		if (b[w] != 0)
			return 0;
	return 1;
}

/* The next set bit at or after i, or -1. */
static int
bit_next(const uint64_t *b, int i, int n)
{
	uint64_t w;
	int k;

	for (k = i / 64; k * 64 <= n; k++) {
		w = b[k];
		if (k == i / 64)
			w &= ~(uint64_t)0 << (i % 64);
		if (w != 0) {
			i = k * 64 + __builtin_ctzll(w);
			return i <= n ? i : -1;
		}
	}
	return -1;
}

static const struct res *
eval(struct mctx *m, int ni, int i)
{
	const struct node *nd = &m->g->nodes[ni];
	const struct res *s;
	struct res *r;
	uint64_t cur[WORDS], next[WORDS];
	int j, k;

	if (!nd->productive || m->failed)
		return &empty_res;
	if (m->memo[ni] == NULL &&
	    (m->memo[ni] = calloc(m->n + 1, sizeof(struct res))) == NULL) {
		m->failed = 1;
		return &empty_res;
	}
	r = &m->memo[ni][i];
	if (r->state == 2)
		return r;
	/* state 1 again would be left recursion, refused at compile time */
	if (r->state == 1 || m->depth >= EVAL_DEPTH_MAX ||
	    ++m->work > WORK_MAX) {
		m->failed = 1;
		return &empty_res;
	}
	r->state = 1;
	m->depth++;
	switch (nd->kind) {
	case N_KEY:
		if (i < m->n && m->in[i] == nd->key)
			bit_set(r->ends, i + 1);
		r->viable = r->ext = i == m->n;
		break;
	case N_NULL:
	case N_TAG:
		bit_set(r->ends, i);
		break;
	case N_VOID:
		break;
	case N_GARBAGE:
		for (j = i; j <= m->n; j++)
			bit_set(r->ends, j);
		r->ext = 1;
		break;
	case N_REF:
		s = eval(m, nd->target, i);
		memcpy(r->ends, s->ends, sizeof(r->ends));
		r->viable = s->viable;
		r->ext = s->ext;
		break;
	case N_ALT:
		for (k = 0; k < nd->nkids; k++) {
			s = eval(m, nd->kids[k], i);
			bit_or(r->ends, s->ends);
			r->viable |= s->viable;
			r->ext |= s->ext;
		}
		break;
	case N_SEQ:
		/* every kid is productive, as the sequence is: a kid that
		 * can go on makes the sequence go on */
		memset(cur, 0, sizeof(cur));
		bit_set(cur, i);
		for (k = 0; k < nd->nkids && !bit_empty(cur); k++) {
			memset(next, 0, sizeof(next));
			for (j = bit_next(cur, i, m->n); j != -1;
			    j = bit_next(cur, j + 1, m->n)) {
				s = eval(m, nd->kids[k], j);
				bit_or(next, s->ends);
				r->viable |= s->viable;
				r->ext |= s->ext;
			}
			memcpy(cur, next, sizeof(cur));
		}
		memcpy(r->ends, cur, sizeof(cur));
		break;
	case N_STAR:
		bit_set(r->ends, i);
		for (j = i; j != -1; j = bit_next(r->ends, j + 1, m->n)) {
			s = eval(m, nd->kids[0], j);
			bit_or(r->ends, s->ends);
			r->viable |= s->viable;
			r->ext |= s->ext;
		}
		break;
	}
	/* a match of all the rest is a prefix of a match */
	if (bit_test(r->ends, m->n))
		r->viable = 1;
	m->depth--;
	r->state = 2;
	return r;
}

static int derive(struct mctx *, int, int, int);

static int
prog_add(struct mctx *m, const char *s)
{
	size_t n = strlen(s), cap;
	char *p;

	if (m->plen + n + 1 > m->pcap) {
		if (m->plen + n + 1 > PROG_MAX)
			return -1;
		cap = m->pcap == 0 ? 1024 : m->pcap;
		while (cap < m->plen + n + 1)
			cap *= 2;
		if ((p = realloc(m->prog, cap)) == NULL)
			return -1;
		m->prog = p;
		m->pcap = cap;
	}
	memcpy(m->prog + m->plen, s, n + 1);
	m->plen += n;
	return 0;
}

/* The keys in[i..j) as a string literal; NULL when out of memory. */
static char *
keys_literal(const struct mctx *m, int i, int j)
{
	char *s, *v;

	if ((s = strndup(m->in + i, (size_t)(j - i))) == NULL)
		return NULL;
	v = vxml_js_string(s);
	free(s);
	return v;
}

/* A rule's function: out and rules of its own, rules.latest(), and
 * meta.current().text, the keys it matched. */
static int
prog_rule_open(struct mctx *m, const char *text)
{
	return prog_add(m, "(function () {\n"
	    "var out = {}, rules = {}, __latest;\n"
	    "rules.latest = function () { return __latest; };\n"
	    "var meta = { current: function () { return { text: ") == -1 ||
	    prog_add(m, text) == -1 ||
	    prog_add(m, ", score: 1 }; } };\n") == -1 ? -1 : 0;
}

/* Ends a rule's function with its value: out when a tag of the rule ran,
 * else the last rule it referred to, else its keys. */
static int
prog_rule_close(struct mctx *m, const char *text)
{
	if (prog_add(m, m->rule_tags ? "return out;\n" : m->rule_refs ?
	    "return __latest;\n" : "return ") == -1)
		return -1;
	if (!m->rule_tags && !m->rule_refs && (prog_add(m, text) == -1 ||
	    prog_add(m, ";\n") == -1))
		return -1;
	return prog_add(m, "})()");
}

static int
derive_ref(struct mctx *m, const struct node *nd, int i, int j)
{
	char *text, *id = NULL;
	int tags, rc = -1;

	if ((text = keys_literal(m, i, j)) == NULL ||
	    (id = vxml_js_string(nd->text)) == NULL)
		goto out;
	tags = m->rule_tags;
	m->rule_tags = m->rule_refs = 0;
	if (prog_add(m, "__latest = ") == -1 ||
	    prog_rule_open(m, text) == -1 ||
	    derive(m, nd->target, i, j) == -1 ||
	    prog_rule_close(m, text) == -1 ||
	    prog_add(m, ";\nrules[") == -1 || prog_add(m, id) == -1 ||
	    prog_add(m, "] = __latest;\nmeta[") == -1 ||
	    prog_add(m, id) == -1 || prog_add(m, "] = { text: ") == -1 ||
	    prog_add(m, text) == -1 || prog_add(m, ", score: 1 };\n") == -1)
		goto out;
	m->rule_tags = tags;
	m->rule_refs = 1;
	rc = 0;
out:
	free(text);
	free(id);
	return rc;
}

static int
push_tag(struct mctx *m, const char *text)
{
	const char **tags;

	if (m->ntags >= TAGS_MAX)
		return -1;
	if ((m->ntags & (m->ntags - 1)) == 0) {	/* 0, 1, 2, 4 ... */
		tags = realloc(m->tags, (m->ntags == 0 ? 1 : m->ntags * 2) *
		    sizeof(*tags));
		if (tags == NULL)
			return -1;
		m->tags = tags;
	}
	m->tags[m->ntags++] = text;
	m->rule_tags = 1;
	return prog_add(m, text) == -1 || prog_add(m, "\n;\n") == -1 ? -1 : 0;
}

/* Follows one derivation of in[i..j) by node ni, which eval said exists,
 * and collects its tags in order.  Where several derivations exist, the
 * first alternative wins and earlier parts of a sequence take the longest
 * match. */
static int
derive(struct mctx *m, int ni, int i, int j)
{
	const struct node *nd = &m->g->nodes[ni];
	uint64_t *sets = NULL;
	int *pos = NULL, *path = NULL, k, p, q, rc = -1;

	if (m->depth >= EVAL_DEPTH_MAX || ++m->work > WORK_MAX) {
		m->failed = 1;
		return -1;
	}
	m->depth++;
	switch (nd->kind) {
	case N_TAG:
		rc = push_tag(m, nd->text);
		break;
	case N_REF:
		rc = derive_ref(m, nd, i, j);
		break;
	case N_ALT:
		/* optional copies that match no key are left out: with
		 * nested repeats there could be millions of them */
		if (nd->optional && i == j) {
			rc = 0;
			break;
		}
		for (k = 0; k < nd->nkids; k++)
			if (bit_test(eval(m, nd->kids[k], i)->ends, j)) {
				rc = derive(m, nd->kids[k], i, j);
				break;
			}
		break;
	case N_SEQ:
		sets = calloc((size_t)(nd->nkids + 1) * WORDS,
		    sizeof(*sets));
		pos = calloc((size_t)nd->nkids + 1, sizeof(*pos));
		if (sets == NULL || pos == NULL)
			break;
		bit_set(sets, i);
		for (k = 0; k < nd->nkids; k++)
			for (p = bit_next(sets + k * WORDS, i, j); p != -1;
			    p = bit_next(sets + k * WORDS, p + 1, j))
				bit_or(sets + (k + 1) * WORDS,
				    eval(m, nd->kids[k], p)->ends);
		pos[nd->nkids] = j;
		for (k = nd->nkids - 1; k >= 0; k--) {
			for (p = pos[k + 1]; p >= i; p--)
				if (bit_test(sets + k * WORDS, p) &&
				    bit_test(eval(m, nd->kids[k], p)->ends,
				    pos[k + 1]))
					break;
			if (p < i)
				goto out;
			pos[k] = p;
		}
		for (k = 0; k < nd->nkids; k++)
			if (derive(m, nd->kids[k], pos[k], pos[k + 1]) == -1)
				goto out;
		rc = 0;
		break;
	case N_STAR:
		/* pos[q]: where the copy ending at q started; path: the
		 * ends of the copies, last first */
		pos = malloc(((size_t)m->n + 1) * sizeof(*pos));
		path = malloc(((size_t)m->n + 1) * sizeof(*path));
		if (pos == NULL || path == NULL)
			break;
		for (p = 0; p <= m->n; p++)
			pos[p] = -1;
		pos[i] = i;
		for (p = i; p <= j; p++) {
			if (pos[p] == -1)
				continue;
			for (q = p + 1; q <= j; q++)
				if (pos[q] == -1 &&
				    bit_test(eval(m, nd->kids[0], p)->ends, q))
					pos[q] = p;
		}
		if (pos[j] == -1)
			break;
		k = 0;
		for (q = j; q != i; q = pos[q])
			path[k++] = q;
		rc = 0;
		for (p = i; k > 0 && rc == 0; p = q) {
			q = path[--k];
			rc = derive(m, nd->kids[0], p, q);
		}
		break;
	default:
		rc = 0;
		break;
	}
out:
	free(sets);
	free(pos);
	free(path);
	m->depth--;
	return m->failed ? -1 : rc;
}

/* A script tag has an assignment or a statement; a literal has neither. */
static int
looks_like_script(const char *s)
{
	return strchr(s, '=') != NULL || strchr(s, ';') != NULL;
}

static char *
literal_value(const char *tag)
{
	size_t n = strlen(tag);
	char *s, *v;

	/* out of habit, people quote literals: 'sales' or "sales" */
	if (n >= 2 && (tag[0] == '\'' || tag[0] == '"') && tag[n - 1] == tag[0])
		s = strndup(tag + 1, n - 2);
	else
		s = strdup(tag);
	if (s == NULL)
		return NULL;
	v = vxml_js_string(s);
	free(s);
	return v;
}

/* The whole match as one script: the grammar's header tags, then the
 * root rule's function assigning out.  One script, so that variables a
 * tag declares reach the tags after it however the interpreter runs
 * them. */
static char *
root_program(const struct vxml_grammar *g, const struct mctx *m)
{
	struct mctx t;
	char *text;
	int i;

	memset(&t, 0, sizeof(t));
	t.rule_tags = m->rule_tags;
	t.rule_refs = m->rule_refs;
	if ((text = keys_literal(m, 0, m->n)) == NULL)
		return NULL;
	for (i = 0; i < g->nheader; i++)
		if (prog_add(&t, g->header_tags[i]) == -1 ||
		    prog_add(&t, "\n;\n") == -1)
			goto fail;
	if (prog_add(&t, "out = ") == -1 || prog_rule_open(&t, text) == -1 ||
	    prog_add(&t, m->prog != NULL ? m->prog : "") == -1 ||
	    prog_rule_close(&t, text) == -1 || prog_add(&t, ";\n") == -1)
		goto fail;
	free(text);
	return t.prog;
fail:
	free(t.prog);
	free(text);
	return NULL;
}

static int
fill_interp(const struct vxml_grammar *g, struct mctx *m,
    struct vxml_interp *out)
{
	enum tag_style style = g->style;
	int i;

	if (g->tag_format != NULL &&
	    (out->tag_format = strdup(g->tag_format)) == NULL)
		return -1;
	if (g->value != NULL)
		return (out->value = strdup(g->value)) == NULL ? -1 : 0;
	if (style == TAGS_AUTO) {
		style = TAGS_LITERAL;
		for (i = 0; i < m->ntags; i++)
			if (looks_like_script(m->tags[i]))
				style = TAGS_SCRIPT;
	}
	if (m->ntags == 0)
		out->value = vxml_js_string(m->in);
	else if (style == TAGS_LITERAL)
		out->value = literal_value(m->tags[m->ntags - 1]);
	else {
		if ((out->tags = calloc(2, sizeof(*out->tags))) == NULL)
			return -1;
		return (out->tags[0] = root_program(g, m)) == NULL ? -1 : 0;
	}
	return out->value == NULL ? -1 : 0;
}

enum vxml_match
vxml_grammar_match(const struct vxml_grammar *g, const char *digits,
    struct vxml_interp *out)
{
	struct mctx m;
	const struct res *r;
	enum vxml_match st;
	size_t n;
	int i;

	memset(out, 0, sizeof(*out));
	n = strlen(digits);
	if (n > VXML_GRAMMAR_MAXKEYS)
		return VXML_MATCH_NO;
	for (i = 0; i < (int)n; i++)
		if (!vxml_dtmf_key((unsigned char)digits[i]))
			return VXML_MATCH_NO;
	if (g->builtin != NULL) {
		st = vxml_builtin_match(g->builtin, digits, out);
		if ((st == VXML_MATCH_MORE || st == VXML_MATCH_FULL) &&
		    (out->utterance = strdup(digits)) == NULL) {
			vxml_interp_clear(out);
			return VXML_MATCH_NO;
		}
		return st;
	}

	memset(&m, 0, sizeof(m));
	m.g = g;
	m.in = digits;
	m.n = (int)n;
	if ((m.memo = calloc((size_t)g->nnodes, sizeof(*m.memo))) == NULL)
		return VXML_MATCH_NO;
	r = eval(&m, g->root, 0);
	if (bit_test(r->ends, m.n))
		st = r->ext ? VXML_MATCH_MORE : VXML_MATCH_FULL;
	else
		st = r->viable ? VXML_MATCH_PREFIX : VXML_MATCH_NO;
	if (st == VXML_MATCH_MORE || st == VXML_MATCH_FULL) {
		if (derive(&m, g->root, 0, m.n) == -1 ||
		    (out->utterance = strdup(digits)) == NULL ||
		    fill_interp(g, &m, out) == -1)
			m.failed = 1;
	}
	/* past a bound the answer may be wrong: no match is the safe one */
	if (m.failed) {
		vxml_interp_clear(out);
		st = VXML_MATCH_NO;
	}
	for (i = 0; i < g->nnodes; i++)
		free(m.memo[i]);
	free(m.memo);
	free(m.tags);
	free(m.prog);
	return st;
}

void
vxml_interp_clear(struct vxml_interp *out)
{
	size_t i;

	if (out == NULL)
		return;
	free(out->utterance);
	free(out->value);
	if (out->tags != NULL)
		for (i = 0; out->tags[i] != NULL; i++)
			free(out->tags[i]);
	free(out->tags);
	free(out->tag_format);
	memset(out, 0, sizeof(*out));
}
