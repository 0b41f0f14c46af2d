/* vxml_grammar.h: DTMF grammars for the VoiceXML interpreter (builtin
 * types, SRGS XML in mode dtmf, menu choice sequences). */
#ifndef VXML_GRAMMAR_H
#define VXML_GRAMMAR_H

#include <stddef.h>

#include <libxml/tree.h>

struct vxml_grammar;
enum vxml_match {
	VXML_MATCH_NO,		/* these digits can never match */
	VXML_MATCH_PREFIX,	/* no match yet, but more digits could make one */
	VXML_MATCH_MORE,	/* a match, and more digits could make a longer one (wait termtimeout) */
	VXML_MATCH_FULL		/* a match, and no longer input can match */
};
struct vxml_interp {		/* what a match means */
	char	*utterance;	/* the digits, as application.lastresult$.utterance */
	char	*value;		/* the interpretation as ECMAScript source text: a string literal, a number, true/false, or an object literal; NULL when only tags must be run */
	char	**tags;		/* semantics/1.0 tag scripts along the match path, in order, for the interpreter to run (out = ...); NULL-terminated; may be NULL */
	char	*tag_format;	/* "semantics/1.0", "semantics/1.0-literals", or NULL */
};
/* builtin:dtmf/<type>[?params] or a <field type=...> value: digits (length, minlength, maxlength), boolean (1 true, 2 false; params y/n), number (* as decimal point), currency, date (yyyymmdd), time (hhmm, then 1 am / 2 pm? follow VoiceXML 2.0 appendix P). NULL + err when unknown or not available over DTMF. */
struct vxml_grammar *vxml_grammar_builtin(const char *type, char *err, size_t errlen);
/* An SRGS 1.0 XML grammar in mode dtmf: the <grammar> element (inline) or a whole document fetched by src (buf/len). Rules, ruleref (local #rule, special NULL/VOID/GARBAGE), one-of, item repeat="n", "n-m", "n-", repeat-prob ignored, tag, root, scope. NULL + err (for error.badfetch / error.grammar) when invalid or not a DTMF grammar. */
struct vxml_grammar *vxml_grammar_srgs_node(xmlNode *grammar, char *err, size_t errlen);
struct vxml_grammar *vxml_grammar_srgs_doc(const char *buf, size_t len, char *err, size_t errlen);
/* One key sequence, as a menu <choice dtmf="1"> or <option dtmf>; value is the interpretation source text to return. */
struct vxml_grammar *vxml_grammar_sequence(const char *dtmf, const char *value);
/* Matches digits (without the termchar) against g; fills out on VXML_MATCH_MORE/FULL (free with vxml_interp_clear). */
enum vxml_match vxml_grammar_match(const struct vxml_grammar *g, const char *digits, struct vxml_interp *out);
void vxml_interp_clear(struct vxml_interp *out);
void vxml_grammar_free(struct vxml_grammar *g);

#endif
