/* vxml_grammar.h: DTMF grammars for the VoiceXML interpreter: the builtin
 * types of VoiceXML 2.0 appendix P, SRGS 1.0 XML grammars in mode dtmf,
 * and the one-sequence grammars of <choice dtmf> and <option dtmf>.
 * A grammar is immutable once built: matching never changes it. */
#ifndef VXML_GRAMMAR_H
#define VXML_GRAMMAR_H

#include <stddef.h>

#include <libxml/tree.h>

/* Input longer than this many keys never matches (VXML_MATCH_NO). */
#define VXML_GRAMMAR_MAXKEYS	128

struct vxml_grammar;

enum vxml_match {
	VXML_MATCH_NO,		/* these digits can never match */
	VXML_MATCH_PREFIX,	/* no match yet, more digits could make one */
	VXML_MATCH_MORE,	/* a match, and more digits could make a
				 * longer one (wait termtimeout) */
	VXML_MATCH_FULL		/* a match, and no longer input can match */
};

/*
 * What a match means.  Exactly one of these holds after a match:
 * - value != NULL: the interpretation, ready to evaluate (builtins,
 *   <choice>/<option> sequences, literal tags, or no tag on the path:
 *   the keys as a string);
 * - value == NULL: tags[] holds one generated script to run (with `out'
 *   declared, or a parameter of the function that runs it); it leaves
 *   the interpretation in `out'.  It runs the grammar's header <tag>s,
 *   then the tags along the match path in order, each rule in a function
 *   of its own as SISR 1.0 says: out starts as {}, rules.<id> and
 *   rules.latest() hold what referenced rules gave, meta.<id>.text and
 *   meta.current().text the keys; a rule whose own tags did not run
 *   gives its last reference, or its keys.
 */
struct vxml_interp {
	/* the digits, as application.lastresult$.utterance */
	char	*utterance;
	/* the interpretation as ECMAScript source text: a string literal,
	 * a number, true/false, or an object literal; NULL when only tags
	 * must be run */
	char	*value;
	/* semantics/1.0 tag scripts along the match path, in order, for
	 * the interpreter to run (out = ...); NULL-terminated; may be NULL.
	 * This module gives one script that runs them all (see above) */
	char	**tags;
	/* the grammar's tag-format: "semantics/1.0",
	 * "semantics/1.0-literals", or NULL */
	char	*tag_format;
};

/* builtin:dtmf/<type>[?params] or a <field type=...> value: digits (length,
 * minlength, maxlength), boolean (1 true, 2 false; params y/n), number
 * (* as decimal point), currency, date (yyyymmdd), time (hhmm), phone
 * (* as x).  NULL + err when unknown or not available over DTMF. */
struct vxml_grammar *vxml_grammar_builtin(const char *type, char *err,
    size_t errlen);

/* An SRGS 1.0 XML grammar in mode dtmf: the <grammar> element (inline; the
 * node is only read, it may be freed after the call) or a whole document
 * fetched by src (buf/len).  NULL + err (for error.badfetch / error.grammar)
 * when invalid or not a DTMF grammar. */
struct vxml_grammar *vxml_grammar_srgs_node(xmlNode *grammar, char *err,
    size_t errlen);
struct vxml_grammar *vxml_grammar_srgs_doc(const char *buf, size_t len,
    char *err, size_t errlen);

/* One key sequence, as a menu <choice dtmf="1"> or <option dtmf>; spaces in
 * dtmf are ignored; value is the interpretation source text to return
 * (copied).  NULL when dtmf is empty or holds a character that is no key. */
struct vxml_grammar *vxml_grammar_sequence(const char *dtmf,
    const char *value);

/* Matches digits (without the termchar) against g; fills out on
 * VXML_MATCH_MORE/FULL (free with vxml_interp_clear), and zeroes it
 * otherwise. */
enum vxml_match vxml_grammar_match(const struct vxml_grammar *g,
    const char *digits, struct vxml_interp *out);
void vxml_interp_clear(struct vxml_interp *out);
void vxml_grammar_free(struct vxml_grammar *g);

#endif
