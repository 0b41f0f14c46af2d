/* vxml_grammar.c, vxml_builtin.c: the builtin DTMF types, SRGS grammars
 * in mode dtmf, and the no/prefix/more/full answers the interpreter times
 * its input by. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <duktape.h>
#include <libxml/parser.h>

#include "vxml_grammar.h"

#define NO	VXML_MATCH_NO
#define PREFIX	VXML_MATCH_PREFIX
#define MORE	VXML_MATCH_MORE
#define FULL	VXML_MATCH_FULL

static const char *const names[] = { "NO", "PREFIX", "MORE", "FULL" };

/* Matches digits; asserts the answer and, for a match, the utterance and
 * the value (NULL: no value, only tags). */
static void
expect(const struct vxml_grammar *g, const char *digits, enum vxml_match want,
    const char *value)
{
	struct vxml_interp in;
	enum vxml_match got;

	got = vxml_grammar_match(g, digits, &in);
	if (got != want)
		fail_msg("\"%s\": got %s, want %s", digits, names[got],
		    names[want]);
	if (got == MORE || got == FULL) {
		assert_string_equal(in.utterance, digits);
		if (value == NULL)
			assert_null(in.value);
		else {
			assert_non_null(in.value);
			assert_string_equal(in.value, value);
		}
	} else {
		assert_null(in.utterance);
		assert_null(in.value);
		assert_null(in.tags);
	}
	vxml_interp_clear(&in);
}

static struct vxml_grammar *
builtin(const char *type)
{
	struct vxml_grammar *g;
	char err[256];

	g = vxml_grammar_builtin(type, err, sizeof(err));
	if (g == NULL)
		fail_msg("%s: %s", type, err);
	return g;
}

/* The builtin must be refused with an error that contains what. */
static void
builtin_bad(const char *type, const char *what)
{
	char err[256];

	assert_null(vxml_grammar_builtin(type, err, sizeof(err)));
	if (strstr(err, what) == NULL)
		fail_msg("%s: error \"%s\" lacks \"%s\"", type, err, what);
}

static struct vxml_grammar *
srgs(const char *doc)
{
	struct vxml_grammar *g;
	char err[256];

	g = vxml_grammar_srgs_doc(doc, strlen(doc), err, sizeof(err));
	if (g == NULL)
		fail_msg("%s\n: %s", doc, err);
	return g;
}

static void
srgs_bad(const char *doc, const char *what)
{
	char err[256];

	assert_null(vxml_grammar_srgs_doc(doc, strlen(doc), err,
	    sizeof(err)));
	if (strstr(err, what) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, what);
}

#define HEAD	"<?xml version=\"1.0\"?>\n<grammar " \
	"xmlns=\"http://www.w3.org/2001/06/grammar\" version=\"1.0\" " \
	"mode=\"dtmf\" "

static void
test_digits(void **state)
{
	struct vxml_grammar *g;

	g = builtin("digits");
	expect(g, "", PREFIX, NULL);
	expect(g, "1", MORE, "\"1\"");
	expect(g, "0123456789", MORE, "\"0123456789\"");
	expect(g, "12*", NO, NULL);
	expect(g, "1#", NO, NULL);
	expect(g, "A", NO, NULL);
	vxml_grammar_free(g);

	/* the <field type> form */
	g = builtin("digits?length=4");
	expect(g, "1", PREFIX, NULL);
	expect(g, "123", PREFIX, NULL);
	expect(g, "1234", FULL, "\"1234\"");
	expect(g, "12345", NO, NULL);
	expect(g, "12*4", NO, NULL);
	vxml_grammar_free(g);

	g = builtin("builtin:dtmf/digits?minlength=3;maxlength=5");
	expect(g, "12", PREFIX, NULL);
	expect(g, "123", MORE, "\"123\"");
	expect(g, "1234", MORE, "\"1234\"");
	expect(g, "12345", FULL, "\"12345\"");
	expect(g, "123456", NO, NULL);
	vxml_grammar_free(g);

	g = builtin("digits?maxlength=2");
	expect(g, "1", MORE, "\"1\"");
	expect(g, "12", FULL, "\"12\"");
	expect(g, "123", NO, NULL);
	vxml_grammar_free(g);

	g = builtin("digits?minlength=2");
	expect(g, "1", PREFIX, NULL);
	expect(g, "12", MORE, "\"12\"");
	vxml_grammar_free(g);

	builtin_bad("digits?minlength=5;maxlength=3", "greater than");
	builtin_bad("digits?length=4;minlength=2", "cannot be combined");
	builtin_bad("digits?length=abc", "length=abc");
	builtin_bad("digits?length=-1", "length=-1");
	builtin_bad("digits?length=0", "length of 0");
	builtin_bad("digits?length", "no value");
	builtin_bad("digits?colour=red", "no parameter \"colour\"");
	builtin_bad("builtin:grammar/digits", "not a DTMF grammar");
	builtin_bad("builtin:dtmf/colour", "unknown builtin type \"colour\"");
	builtin_bad("colour", "unknown builtin");
}

static void
test_boolean(void **state)
{
	struct vxml_grammar *g;

	g = builtin("boolean");
	expect(g, "", PREFIX, NULL);
	expect(g, "1", FULL, "true");
	expect(g, "2", FULL, "false");
	expect(g, "3", NO, NULL);
	expect(g, "11", NO, NULL);
	vxml_grammar_free(g);

	g = builtin("builtin:dtmf/boolean?y=7;n=9");
	expect(g, "7", FULL, "true");
	expect(g, "9", FULL, "false");
	expect(g, "1", NO, NULL);
	vxml_grammar_free(g);

	/* a sequence that is a prefix of the other: wait for more */
	g = builtin("boolean?y=11;n=1");
	expect(g, "1", MORE, "false");
	expect(g, "11", FULL, "true");
	expect(g, "12", NO, NULL);
	vxml_grammar_free(g);

	builtin_bad("boolean?y=1;n=1", "both");
	builtin_bad("boolean?y=x", "y=x");
	builtin_bad("boolean?minlength=1", "boolean takes y, n");
}

static void
test_number_currency_phone(void **state)
{
	struct vxml_grammar *g;

	g = builtin("number");
	expect(g, "", PREFIX, NULL);
	expect(g, "12", MORE, "12");
	expect(g, "007", MORE, "7");	/* not octal */
	expect(g, "0", MORE, "0");
	expect(g, "1*", PREFIX, NULL);
	expect(g, "1*5", MORE, "1.5");
	expect(g, "01*25", MORE, "1.25");
	expect(g, "*1", NO, NULL);
	expect(g, "1*2*3", NO, NULL);
	expect(g, "1#", NO, NULL);
	vxml_grammar_free(g);

	g = builtin("currency");
	expect(g, "12", MORE, "\"12.00\"");
	expect(g, "12*", PREFIX, NULL);
	expect(g, "12*5", MORE, "\"12.50\"");
	expect(g, "12*50", FULL, "\"12.50\"");
	expect(g, "0*99", FULL, "\"0.99\"");
	expect(g, "12*505", NO, NULL);
	vxml_grammar_free(g);

	g = builtin("phone");
	expect(g, "8005551234", MORE, "\"8005551234\"");
	expect(g, "8005551234*", PREFIX, NULL);
	expect(g, "8005551234*789", MORE, "\"8005551234x789\"");
	expect(g, "*789", NO, NULL);
	vxml_grammar_free(g);
}

static void
test_date_time(void **state)
{
	struct vxml_grammar *g;

	g = builtin("builtin:dtmf/date");
	expect(g, "", PREFIX, NULL);
	expect(g, "2026", PREFIX, NULL);
	expect(g, "20261", PREFIX, NULL);
	expect(g, "20262", NO, NULL);		/* no month 2x */
	expect(g, "202613", NO, NULL);
	expect(g, "202600", NO, NULL);
	expect(g, "2026112", PREFIX, NULL);
	expect(g, "2026114", NO, NULL);		/* no day 4x */
	expect(g, "20261121", FULL, "\"20261121\"");
	expect(g, "202611211", NO, NULL);
	expect(g, "20261131", NO, NULL);	/* November has 30 days */
	expect(g, "20260229", NO, NULL);
	expect(g, "20240229", FULL, "\"20240229\"");
	expect(g, "21000229", NO, NULL);	/* not a leap year */
	expect(g, "20000229", FULL, "\"20000229\"");
	expect(g, "2026*", NO, NULL);
	vxml_grammar_free(g);

	/* DTMF cannot say am or pm: "?" where a 12-hour reading exists */
	g = builtin("time");
	expect(g, "2", PREFIX, NULL);
	expect(g, "0", PREFIX, NULL);
	expect(g, "3", NO, NULL);		/* hours are two digits */
	expect(g, "24", NO, NULL);
	expect(g, "236", NO, NULL);
	expect(g, "0930", FULL, "\"0930?\"");
	expect(g, "1230", FULL, "\"1230?\"");
	expect(g, "1745", FULL, "\"1745h\"");
	expect(g, "0005", FULL, "\"0005h\"");
	expect(g, "2359", FULL, "\"2359h\"");
	expect(g, "1260", NO, NULL);
	expect(g, "17451", NO, NULL);
	vxml_grammar_free(g);
}

static void
test_sequence(void **state)
{
	struct vxml_grammar *g;

	g = vxml_grammar_sequence("1", "\"sales\"");
	assert_non_null(g);
	expect(g, "", PREFIX, NULL);
	expect(g, "1", FULL, "\"sales\"");
	expect(g, "2", NO, NULL);
	expect(g, "11", NO, NULL);
	vxml_grammar_free(g);

	g = vxml_grammar_sequence("9 #", NULL);
	assert_non_null(g);
	expect(g, "9", PREFIX, NULL);
	expect(g, "9#", FULL, "\"9#\"");
	vxml_grammar_free(g);

	assert_null(vxml_grammar_sequence("", "1"));
	assert_null(vxml_grammar_sequence("x", "1"));
	assert_null(vxml_grammar_sequence(NULL, "1"));
}

static void
test_srgs_alternatives(void **state)
{
	struct vxml_grammar *g;

	g = srgs(HEAD "root=\"main\">\n"
	    "<rule id=\"main\" scope=\"public\"><one-of>\n"
	    "  <item>1</item>\n"
	    "  <item>1 2</item>\n"
	    "  <item><token>1</token><token>2</token> 3</item>\n"
	    "  <item>* #</item>\n"
	    "</one-of></rule></grammar>\n");
	expect(g, "", PREFIX, NULL);
	expect(g, "1", MORE, "\"1\"");
	expect(g, "12", MORE, "\"12\"");
	expect(g, "123", FULL, "\"123\"");
	expect(g, "1234", NO, NULL);
	expect(g, "13", NO, NULL);
	expect(g, "*", PREFIX, NULL);
	expect(g, "*#", FULL, "\"*#\"");
	expect(g, "2", NO, NULL);
	expect(g, "x", NO, NULL);
	vxml_grammar_free(g);

	/* literal tags, tag-format absent: the tag is the value; the first
	 * of two alternatives that match the same keys wins */
	g = srgs(HEAD "root=\"m\"><rule id=\"m\"><one-of>"
	    "<item>1<tag>sales</tag></item>"
	    "<item>1<tag>other</tag></item>"
	    "<item>2 <tag>'support'</tag></item>"
	    "<item>3</item>"
	    "</one-of></rule></grammar>");
	expect(g, "1", FULL, "\"sales\"");
	expect(g, "2", FULL, "\"support\"");
	expect(g, "3", FULL, "\"3\"");
	vxml_grammar_free(g);

	/* a token of several keys is those keys */
	g = srgs(HEAD "root=\"m\"><rule id=\"m\">12 <token>34</token>"
	    "</rule></grammar>");
	expect(g, "123", PREFIX, NULL);
	expect(g, "1234", FULL, "\"1234\"");
	vxml_grammar_free(g);
}

static void
test_srgs_repeat(void **state)
{
	struct vxml_grammar *g;

	g = srgs(HEAD "root=\"pin\">"
	    "<rule id=\"digit\"><one-of><item>0</item><item>1</item>"
	    "<item>2</item><item>3</item><item>4</item><item>5</item>"
	    "<item>6</item><item>7</item><item>8</item><item>9</item>"
	    "</one-of></rule>"
	    "<rule id=\"pin\"><item repeat=\"3-5\"><ruleref uri=\"#digit\"/>"
	    "</item></rule></grammar>");
	expect(g, "1", PREFIX, NULL);
	expect(g, "12", PREFIX, NULL);
	expect(g, "123", MORE, "\"123\"");
	expect(g, "1234", MORE, "\"1234\"");
	expect(g, "12345", FULL, "\"12345\"");
	expect(g, "123456", NO, NULL);
	expect(g, "12#", NO, NULL);
	vxml_grammar_free(g);

	g = srgs(HEAD "root=\"r\"><rule id=\"r\"><item repeat=\"2\">1 2</item>"
	    "#</rule></grammar>");
	expect(g, "12", PREFIX, NULL);
	expect(g, "121", PREFIX, NULL);
	expect(g, "1212#", FULL, "\"1212#\"");
	expect(g, "12#", NO, NULL);
	vxml_grammar_free(g);

	/* "n-": no upper limit */
	g = srgs(HEAD "root=\"r\"><rule id=\"r\"><item repeat=\"2-\">7</item>"
	    "</rule></grammar>");
	expect(g, "7", PREFIX, NULL);
	expect(g, "77", MORE, "\"77\"");
	expect(g, "7777777777777777777777777777777777777777", MORE,
	    "\"7777777777777777777777777777777777777777\"");
	expect(g, "778", NO, NULL);
	vxml_grammar_free(g);

	/* "0-1" and "0-": optional parts */
	g = srgs(HEAD "root=\"r\"><rule id=\"r\"><item repeat=\"0-1\">*</item>"
	    "5 <item repeat=\"0-\">0</item></rule></grammar>");
	expect(g, "*", PREFIX, NULL);
	expect(g, "5", MORE, "\"5\"");
	expect(g, "*5", MORE, "\"*5\"");
	expect(g, "*500", MORE, "\"*500\"");
	expect(g, "**5", NO, NULL);
	vxml_grammar_free(g);

	/* repeat="0": the item never matches anything but nothing */
	g = srgs(HEAD "root=\"r\"><rule id=\"r\">1<item repeat=\"0\">2</item>"
	    "</rule></grammar>");
	expect(g, "1", FULL, "\"1\"");
	expect(g, "12", NO, NULL);
	vxml_grammar_free(g);

	/* nullable items repeated: no loop without keys */
	g = srgs(HEAD "root=\"r\"><rule id=\"r\"><item repeat=\"1-\">"
	    "<item repeat=\"0-1\">1</item></item>2</rule></grammar>");
	expect(g, "2", FULL, "\"2\"");
	expect(g, "1112", FULL, "\"1112\"");
	expect(g, "111", PREFIX, NULL);
	vxml_grammar_free(g);
}

static void
test_srgs_rulerefs_and_specials(void **state)
{
	struct vxml_grammar *g;

	/* right recursion: one or more 1s */
	g = srgs(HEAD "root=\"r\"><rule id=\"r\"><one-of><item>1</item>"
	    "<item>1 <ruleref uri=\"#r\"/></item></one-of></rule></grammar>");
	expect(g, "1", MORE, "\"1\"");
	expect(g, "111", MORE, "\"111\"");
	expect(g, "12", NO, NULL);
	vxml_grammar_free(g);

	/* nesting that no finite automaton does: 1^k 2^k */
	g = srgs(HEAD "root=\"s\"><rule id=\"s\"><one-of><item>1 2</item>"
	    "<item>1 <ruleref uri=\"#s\"/> 2</item></one-of></rule>"
	    "</grammar>");
	expect(g, "1", PREFIX, NULL);
	expect(g, "112", PREFIX, NULL);
	expect(g, "12", FULL, "\"12\"");
	expect(g, "1122", FULL, "\"1122\"");
	expect(g, "11122", PREFIX, NULL);
	expect(g, "111222", FULL, "\"111222\"");
	expect(g, "1222", NO, NULL);
	expect(g, "121", NO, NULL);
	vxml_grammar_free(g);

	/* VOID never matches: the alternative it is in is gone */
	g = srgs(HEAD "root=\"r\"><rule id=\"r\"><one-of>"
	    "<item>1 <ruleref special=\"VOID\"/></item><item>2</item>"
	    "</one-of></rule></grammar>");
	expect(g, "1", NO, NULL);
	expect(g, "2", FULL, "\"2\"");
	vxml_grammar_free(g);

	/* NULL matches nothing, GARBAGE any keys */
	g = srgs(HEAD "root=\"r\"><rule id=\"r\">1 <ruleref special=\"NULL\"/>"
	    "<ruleref special=\"GARBAGE\"/> #</rule></grammar>");
	expect(g, "1", PREFIX, NULL);
	expect(g, "1#", MORE, "\"1#\"");	/* garbage may hold # */
	expect(g, "1234#", MORE, "\"1234#\"");
	expect(g, "2", NO, NULL);
	vxml_grammar_free(g);

	/* a rule that is never complete */
	g = srgs(HEAD "root=\"r\"><rule id=\"r\"><ruleref special=\"VOID\"/>"
	    "</rule></grammar>");
	expect(g, "", NO, NULL);
	expect(g, "1", NO, NULL);
	vxml_grammar_free(g);

	/* no root attribute: the first rule */
	g = srgs(HEAD "><rule id=\"a\">4</rule><rule id=\"b\">5</rule>"
	    "</grammar>");
	expect(g, "4", FULL, "\"4\"");
	expect(g, "5", NO, NULL);
	vxml_grammar_free(g);
}

/* Runs a match's interpretation as the interpreter does: the value, or
 * each tag in a function of its own that has out as a parameter and
 * returns it (so a var of one tag is gone in the next), out undefined
 * meaning the keys.  Returns out as JSON (malloc'd). */
static char *
run_interp(const struct vxml_interp *in)
{
	static const char runner[] =
	    "(function (tags, utt) {\n"
	    "  var out, meta = { current: function () {\n"
	    "    return { text: utt }; } };\n"
	    "  for (var i = 0; i < tags.length; i++)\n"
	    "    out = (function (out, meta) { eval(tags[i]); return out; })"
	    "(out, meta);\n"
	    "  return out === undefined ? utt : out;\n"
	    "})";
	duk_context *ctx;
	char *json;
	int i;

	assert_non_null(ctx = duk_create_heap_default());
	if (in->value != NULL) {
		duk_push_sprintf(ctx, "(%s)", in->value);
		if (duk_peval(ctx) != 0)
			fail_msg("value %s: %s", in->value,
			    duk_safe_to_string(ctx, -1));
	} else {
		assert_int_equal(duk_peval_string(ctx, runner), 0);
		duk_push_array(ctx);
		for (i = 0; in->tags != NULL && in->tags[i] != NULL; i++) {
			duk_push_string(ctx, in->tags[i]);
			duk_put_prop_index(ctx, -2, (duk_uarridx_t)i);
		}
		duk_push_string(ctx, in->utterance);
		if (duk_pcall(ctx, 2) != 0)
			fail_msg("tags %s: %s", in->tags != NULL &&
			    in->tags[0] != NULL ? in->tags[0] : "none",
			    duk_safe_to_string(ctx, -1));
	}
	json = strdup(duk_json_encode(ctx, -1));
	duk_destroy_heap(ctx);
	return json;
}

/* Matches; the interpretation, run, gives json. */
static void
expect_js(const struct vxml_grammar *g, const char *digits,
    enum vxml_match want, const char *json)
{
	struct vxml_interp in;
	char *got;

	assert_int_equal(vxml_grammar_match(g, digits, &in), want);
	assert_string_equal(in.utterance, digits);
	got = run_interp(&in);
	if (strcmp(got, json) != 0)
		fail_msg("\"%s\": out is %s, want %s", digits, got, json);
	free(got);
	vxml_interp_clear(&in);
}

static void
test_srgs_tags(void **state)
{
	struct vxml_grammar *g;
	struct vxml_interp in;

	/* header tags first, then the path's tags in order; tags of
	 * alternatives not taken are left out; a var reaches later tags */
	g = srgs(HEAD "root=\"main\" tag-format=\"semantics/1.0\">"
	    "<tag>var n = 0;</tag>"
	    "<rule id=\"main\"><one-of>"
	    "  <item>* <tag>out.dept = 'sales';</tag> 1 <tag>n++;</tag></item>"
	    "  <item>* 2<tag>n += 2;</tag></item>"
	    "</one-of><tag>out.n = n;</tag></rule></grammar>");
	expect_js(g, "*1", FULL, "{\"dept\":\"sales\",\"n\":1}");
	expect_js(g, "*2", FULL, "{\"n\":2}");
	expect(g, "*", PREFIX, NULL);
	/* one script, no value */
	assert_int_equal(vxml_grammar_match(g, "*1", &in), FULL);
	assert_null(in.value);
	assert_non_null(in.tags);
	assert_non_null(in.tags[0]);
	assert_null(in.tags[1]);
	assert_string_equal(in.tag_format, "semantics/1.0");
	vxml_interp_clear(&in);
	vxml_grammar_free(g);

	/* repeated tags run once per copy, in key order */
	g = srgs(HEAD "root=\"r\" tag-format=\"semantics/1.0\">"
	    "<rule id=\"r\"><tag>out = 'a';</tag><item repeat=\"1-\"><one-of>"
	    "<item>1<tag>out += 'a';</tag></item>"
	    "<item>2<tag>out += 'b';</tag></item></one-of></item></rule>"
	    "</grammar>");
	expect_js(g, "21", MORE, "\"aba\"");
	expect_js(g, "212", MORE, "\"abab\"");
	vxml_grammar_free(g);

	/* semantics/1.0 and no tag on the path: the keys are the value */
	g = srgs(HEAD "root=\"r\" tag-format=\"semantics/1.0\">"
	    "<rule id=\"r\"><one-of><item>1<tag>out = 1;</tag></item>"
	    "<item>2</item></one-of></rule></grammar>");
	expect(g, "2", FULL, "\"2\"");
	expect(g, "1", FULL, NULL);
	expect_js(g, "1", FULL, "1");
	vxml_grammar_free(g);

	/* semantics/1.0-literals: the last literal on the path */
	g = srgs(HEAD "root=\"r\" tag-format=\"semantics/1.0-literals\">"
	    "<rule id=\"r\"><one-of><item>1<tag>billing</tag></item>"
	    "<item>2<tag>a</tag><tag>b \"c\"</tag></item></one-of></rule>"
	    "</grammar>");
	assert_int_equal(vxml_grammar_match(g, "1", &in), FULL);
	assert_string_equal(in.value, "\"billing\"");
	assert_null(in.tags);
	assert_string_equal(in.tag_format, "semantics/1.0-literals");
	vxml_interp_clear(&in);
	expect(g, "2", FULL, "\"b \\\"c\\\"\"");
	vxml_grammar_free(g);

	/* no tag-format but script tags: they are run, not quoted */
	g = srgs(HEAD "root=\"r\"><rule id=\"r\">1<tag>out.x = 1;</tag>"
	    "</rule></grammar>");
	assert_int_equal(vxml_grammar_match(g, "1", &in), FULL);
	assert_null(in.value);
	assert_non_null(in.tags);
	assert_null(in.tag_format);
	vxml_interp_clear(&in);
	expect_js(g, "1", FULL, "{\"x\":1}");
	vxml_grammar_free(g);
}

/* Tags in referenced rules run in their own scope, as SISR says: out of
 * their own, rules.<id> and rules.latest() for the parent, meta.<id>.text
 * for the keys; a rule without tags is worth its last reference, or its
 * keys. */
static void
test_srgs_rule_scopes(void **state)
{
	struct vxml_grammar *g;

	g = srgs(HEAD "root=\"main\" tag-format=\"semantics/1.0\">"
	    "<tag>var n = 0;</tag>"
	    "<rule id=\"key\"><one-of>"
	    "  <item>1<tag>n++; out = 'one';</tag></item>"
	    "  <item>2<tag>n += 2;</tag></item></one-of></rule>"
	    "<rule id=\"main\"><one-of>"
	    "  <item>* <tag>out.dept = 'sales';</tag> <ruleref uri=\"#key\"/>"
	    "  <tag>out.key = rules.key;</tag></item>"
	    "  <item><item repeat=\"1-3\"><ruleref uri=\"#key\"/></item></item>"
	    "</one-of><tag>out.n = n;</tag></rule></grammar>");
	expect_js(g, "*1", FULL,
	    "{\"dept\":\"sales\",\"key\":\"one\",\"n\":1}");
	expect_js(g, "*2", FULL, "{\"dept\":\"sales\",\"key\":{},\"n\":2}");
	expect_js(g, "121", FULL, "{\"n\":4}");
	vxml_grammar_free(g);

	g = srgs(HEAD "root=\"main\" tag-format=\"semantics/1.0\">"
	    "<rule id=\"digit\"><one-of><item>1<tag>out = 1;</tag></item>"
	    "<item>2<tag>out = 2;</tag></item><item>3</item></one-of></rule>"
	    "<rule id=\"wrap\"><ruleref uri=\"#digit\"/></rule>"
	    "<rule id=\"main\"><tag>out.sum = 0; out.keys = '';</tag>"
	    "<item repeat=\"1-\"><ruleref uri=\"#digit\"/>"
	    "<tag>out.sum += Number(rules.digit); out.keys += meta.digit.text;"
	    "</tag></item> # <ruleref uri=\"#wrap\"/>"
	    "<tag>out.w = rules.wrap; out.latest = rules.latest();"
	    "out.all = meta.current().text;</tag></rule></grammar>");
	expect_js(g, "123#2", FULL, "{\"sum\":6,\"keys\":\"123\",\"w\":2,"
	    "\"latest\":2,\"all\":\"123#2\"}");
	expect_js(g, "3#3", FULL, "{\"sum\":3,\"keys\":\"3\",\"w\":\"3\","
	    "\"latest\":\"3\",\"all\":\"3#3\"}");
	vxml_grammar_free(g);

	/* literal values and keys run the same way */
	g = srgs(HEAD "root=\"r\"><rule id=\"r\"><one-of><item>1<tag>yes</tag>"
	    "</item><item>2</item></one-of></rule></grammar>");
	expect_js(g, "1", FULL, "\"yes\"");
	expect_js(g, "2", FULL, "\"2\"");
	vxml_grammar_free(g);
}

/* The nth <name> element under x, in document order. */
static xmlNode *
element(xmlNode *x, const char *name, int *nth)
{
	xmlNode *c, *found;

	for (c = x; c != NULL; c = c->next) {
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (xmlStrEqual(c->name, (const xmlChar *)name) &&
		    (*nth)-- == 0)
			return c;
		if ((found = element(c->children, name, nth)) != NULL)
			return found;
	}
	return NULL;
}

/* An inline grammar, as the interpreter finds it in a VoiceXML document:
 * in the VoiceXML namespace, inside a <field>. */
static void
test_srgs_node(void **state)
{
	static const char vxml[] =
	    "<?xml version=\"1.0\"?>\n"
	    "<vxml version=\"2.1\" xmlns=\"http://www.w3.org/2001/vxml\">\n"
	    "<form><field name=\"f\">\n"
	    "<grammar mode=\"dtmf\" root=\"yn\" version=\"1.0\">\n"
	    "  <rule id=\"yn\"><one-of>\n"
	    "    <item>1 <tag>yes</tag></item>\n"
	    "    <item>2 <tag>no</tag></item>\n"
	    "  </one-of></rule>\n"
	    "</grammar>\n"
	    "<grammar mode=\"dtmf\" root=\"x\" version=\"1.0\">\n"
	    "  <rule id=\"x\"><ruleref uri=\"#y\"/></rule>\n"
	    "</grammar>\n"
	    "</field></form></vxml>\n";
	struct vxml_grammar *g;
	xmlDoc *doc;
	xmlNode *gr;
	char err[256];
	int nth;

	doc = xmlReadMemory(vxml, sizeof(vxml) - 1, NULL, NULL, 0);
	assert_non_null(doc);
	nth = 0;
	assert_non_null(gr = element(xmlDocGetRootElement(doc), "grammar",
	    &nth));
	g = vxml_grammar_srgs_node(gr, err, sizeof(err));
	assert_non_null(g);
	nth = 1;
	assert_non_null(gr = element(xmlDocGetRootElement(doc), "grammar",
	    &nth));
	assert_null(vxml_grammar_srgs_node(gr, err, sizeof(err)));
	/* the line is the VoiceXML document's */
	assert_string_equal(err, "line 11: <ruleref uri=\"#y\">: no rule "
	    "has that id");
	xmlFreeDoc(doc);	/* the grammar does not hold on to the tree */
	expect(g, "1", FULL, "\"yes\"");
	expect(g, "2", FULL, "\"no\"");
	expect(g, "3", NO, NULL);
	vxml_grammar_free(g);
}

static void
test_srgs_errors(void **state)
{
	char err[256];

	srgs_bad("<grammar mode=\"dtmf\"><rule id=\"r\">1</rule>",
	    "not well-formed XML");
	srgs_bad("", "not well-formed XML");
	srgs_bad("<vxml/>", "not an SRGS grammar");
	srgs_bad("<grammar root=\"r\"><rule id=\"r\">1</rule></grammar>",
	    "mode is voice (the default)");
	srgs_bad("<grammar mode=\"voice\" root=\"r\"><rule id=\"r\">yes</rule>"
	    "</grammar>", "mode is voice");
	srgs_bad(HEAD "type=\"application/x-jsgf\"><rule id=\"r\">1</rule>"
	    "</grammar>", "application/x-jsgf");
	srgs_bad(HEAD "root=\"r\">\n<rule id=\"r\">\n<ruleref uri=\"#nosuch\"/>"
	    "</rule></grammar>", "line 4: <ruleref uri=\"#nosuch\">: no rule");
	srgs_bad(HEAD "root=\"nosuch\"><rule id=\"r\">1</rule></grammar>",
	    "root=\"nosuch\"");
	srgs_bad(HEAD "root=\"r\"><rule id=\"r\">1</rule><rule id=\"r\">2"
	    "</rule></grammar>", "defined twice");
	srgs_bad(HEAD "root=\"r\"><rule id=\"r\">one</rule></grammar>",
	    "\"one\" is not a DTMF key");
	srgs_bad(HEAD "root=\"r\"><rule id=\"r\"><item repeat=\"5-2\">1</item>"
	    "</rule></grammar>", "below the minimum");
	srgs_bad(HEAD "root=\"r\"><rule id=\"r\"><item repeat=\"1000\">1"
	    "</item></rule></grammar>", "above 255");
	srgs_bad(HEAD "root=\"r\"><rule id=\"r\"><item repeat=\"x\">1</item>"
	    "</rule></grammar>", "repeat=\"x\"");
	srgs_bad(HEAD "root=\"r\"><rule id=\"r\"><ruleref uri=\"other.grxml\"/>"
	    "</rule></grammar>", "only rules of the same grammar");
	srgs_bad(HEAD "root=\"r\"><rule id=\"r\"><ruleref special=\"ANY\"/>"
	    "</rule></grammar>", "NULL, VOID or GARBAGE");
	srgs_bad(HEAD "root=\"r\"><rule id=\"r\"><one-of>1</one-of></rule>"
	    "</grammar>", "<one-of> may only hold <item>");
	srgs_bad(HEAD "root=\"r\"><rule id=\"r\"><one-of></one-of></rule>"
	    "</grammar>", "without any <item>");
	srgs_bad(HEAD "root=\"r\"><rule id=\"r\"><audio/></rule></grammar>",
	    "<audio> is not allowed");
	srgs_bad(HEAD "></grammar>", "without any <rule>");
	srgs_bad(HEAD ">1 2</grammar>", "outside any <rule>");
	srgs_bad(HEAD "><rule>1</rule></grammar>", "without an id");
	/* left recursion, direct and through an empty prefix */
	srgs_bad(HEAD "root=\"r\"><rule id=\"r\"><one-of><item>1</item>"
	    "<item><ruleref uri=\"#r\"/> 1</item></one-of></rule></grammar>",
	    "left recursion: rule \"r\"");
	srgs_bad(HEAD "root=\"a\"><rule id=\"a\"><item repeat=\"0-1\">1</item>"
	    "<ruleref uri=\"#b\"/></rule><rule id=\"b\"><tag>x</tag>"
	    "<ruleref uri=\"#a\"/> 2</rule></grammar>", "left recursion");
	srgs_bad(HEAD "root=\"a\"><rule id=\"a\"><item repeat=\"1-\">"
	    "<ruleref uri=\"#a\"/></item>1</rule></grammar>",
	    "left recursion");

	/* err is always terminated, even when short */
	assert_null(vxml_grammar_srgs_doc("<x", 2, err, 8));
	assert_true(strlen(err) < 8);
}

/* Pathological grammars and input stay within bounds and time. */
static void
test_bounds(void **state)
{
	struct vxml_grammar *g;
	char keys[VXML_GRAMMAR_MAXKEYS + 2], value[VXML_GRAMMAR_MAXKEYS + 8];
	char doc[4096];
	struct timespec t0, t1;
	int i;
	long ms;

	/* nested repeats of the largest counts */
	g = srgs(HEAD "root=\"r\"><rule id=\"r\"><item repeat=\"0-255\">"
	    "<item repeat=\"0-255\"><item repeat=\"0-255\"><one-of>"
	    "<item>1</item><item>1 1</item><item repeat=\"0-1\">1</item>"
	    "</one-of></item></item></item></rule></grammar>");
	memset(keys, '1', sizeof(keys));
	keys[VXML_GRAMMAR_MAXKEYS] = '\0';
	clock_gettime(CLOCK_MONOTONIC, &t0);
	snprintf(value, sizeof(value), "\"%s\"", keys);
	expect(g, keys, MORE, value);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) /
	    1000000;
	assert_true(ms < 2000);
	keys[VXML_GRAMMAR_MAXKEYS] = '1';
	keys[VXML_GRAMMAR_MAXKEYS + 1] = '\0';
	expect(g, keys, NO, NULL);		/* longer than any input */
	vxml_grammar_free(g);

	/* deeper nesting than allowed */
	strcpy(doc, HEAD "root=\"r\"><rule id=\"r\">");
	for (i = 0; i < 70; i++)
		strcat(doc, "<item>");
	strcat(doc, "1");
	for (i = 0; i < 70; i++)
		strcat(doc, "</item>");
	strcat(doc, "</rule></grammar>");
	srgs_bad(doc, "nested deeper");

	/* a long chain of rules, each referring to the next */
	strcpy(doc, HEAD "root=\"r0\">");
	for (i = 0; i < 60; i++)
		snprintf(doc + strlen(doc), sizeof(doc) - strlen(doc),
		    "<rule id=\"r%d\"><ruleref uri=\"#r%d\"/></rule>", i,
		    i + 1);
	strcat(doc, "<rule id=\"r60\">5</rule></grammar>");
	g = srgs(doc);
	expect(g, "5", FULL, "\"5\"");
	vxml_grammar_free(g);
}

/*
 * The matcher against brute force: random grammars over the keys 1 and 2
 * whose sentences are at most LEN_MAX keys long, their languages worked
 * out as sets, and every key string up to LEN_MAX checked against them.
 */
#define LEN_MAX		7
#define NSTRINGS	((1 << (LEN_MAX + 1)) - 1)	/* 0..LEN_MAX keys */

struct lang {
	uint8_t	in[NSTRINGS];
	int	too_long;	/* a sentence longer than LEN_MAX */
};

/* A string of length len and bits v (bit len-1 first: 0 is '1', 1 '2'). */
static int
str_index(int len, int v)
{
	return (1 << len) - 1 + v;
}

static void
str_of(int idx, char *buf)
{
	int len = 0, v, i;

	while (idx >= (1 << (len + 1)) - 1)
		len++;
	v = idx - ((1 << len) - 1);
	for (i = 0; i < len; i++)
		buf[i] = (v >> (len - 1 - i)) & 1 ? '2' : '1';
	buf[len] = '\0';
}

static void
lang_concat(struct lang *out, const struct lang *a, const struct lang *b)
{
	int la, va, lb, vb;
	struct lang r;

	memset(&r, 0, sizeof(r));
	r.too_long = a->too_long || b->too_long;
	for (la = 0; la <= LEN_MAX; la++)
		for (va = 0; va < (1 << la); va++) {
			if (!a->in[str_index(la, va)])
				continue;
			for (lb = 0; lb <= LEN_MAX; lb++)
				for (vb = 0; vb < (1 << lb); vb++) {
					if (!b->in[str_index(lb, vb)])
						continue;
					if (la + lb > LEN_MAX)
						r.too_long = 1;
					else
						r.in[str_index(la + lb,
						    (va << lb) | vb)] = 1;
				}
		}
	*out = r;
}

static void
lang_union(struct lang *a, const struct lang *b)
{
	int i;

	for (i = 0; i < NSTRINGS; i++)
		a->in[i] |= b->in[i];
	a->too_long |= b->too_long;
}

static void
append(char *buf, const char *s, size_t size)
{
	size_t n = strlen(buf);

	assert_true(n + strlen(s) < size);
	memcpy(buf + n, s, strlen(s) + 1);
}

static unsigned int rng_state;

static int
rnd(int n)
{
	rng_state = rng_state * 1103515245 + 12345;
	return (int)((rng_state >> 16) % (unsigned int)n);
}

/* Appends a random expansion to buf and sets l to its language; sub is
 * the language of rule "sub" (NULL while generating it). */
static void
gen(char *buf, size_t size, int depth, const struct lang *sub,
    struct lang *l)
{
	struct lang a, b, power;
	int k, n, lo, hi, c;

	memset(l, 0, sizeof(*l));
	c = depth == 0 ? 5 + rnd(4) : depth >= 3 ? rnd(5) : rnd(9);
	switch (c) {
	case 0:
	case 1:
	case 2:
		append(buf, c == 2 ? " <token>2</token> " : c == 1 ? " 2 " :
		    " 1 ", size);
		l->in[str_index(1, c == 2 || c == 1)] = 1;
		return;
	case 3:
		if (sub != NULL) {
			append(buf, "<ruleref uri=\"#sub\"/>", size);
			*l = *sub;
			return;
		}
		/* FALLTHROUGH */
	case 4:
		if (rnd(4) == 0) {
			append(buf, "<ruleref special=\"VOID\"/>", size);
			return;
		}
		append(buf, "<ruleref special=\"NULL\"/>", size);
		l->in[0] = 1;
		return;
	case 5:
	case 6:			/* a sequence */
		append(buf, "<item>", size);
		l->in[0] = 1;
		for (k = 0, n = 1 + rnd(3); k < n; k++) {
			gen(buf, size, depth + 1, sub, &a);
			lang_concat(l, l, &a);
		}
		append(buf, "</item>", size);
		return;
	case 7:			/* alternatives */
		append(buf, "<one-of>", size);
		for (k = 0, n = 1 + rnd(3); k < n; k++) {
			append(buf, "<item>", size);
			gen(buf, size, depth + 1, sub, &a);
			append(buf, "</item>", size);
			lang_union(l, &a);
		}
		append(buf, "</one-of>", size);
		return;
	default:		/* a repeat */
		lo = rnd(3);
		hi = lo + rnd(3);
		snprintf(buf + strlen(buf), size - strlen(buf),
		    "<item repeat=\"%d-%d\">", lo, hi);
		gen(buf, size, depth + 1, sub, &a);
		append(buf, "</item>", size);
		memset(&power, 0, sizeof(power));
		power.in[0] = 1;
		for (k = 0; k <= hi; k++) {
			if (k >= lo)
				lang_union(l, &power);
			lang_concat(&b, &power, &a);
			power = b;
		}
		return;
	}
}

static void
test_against_brute_force(void **state)
{
	static char doc[65536];
	struct vxml_grammar *g;
	struct lang sub, l;
	struct vxml_interp in;
	char s[LEN_MAX + 1], w[LEN_MAX + 1], want_value[LEN_MAX + 3];
	int tries, checked = 0, i, j, full, ext, seen[4] = { 0 };
	enum vxml_match want;

	rng_state = 42;
	for (tries = 0; checked < 300 && tries < 5000; tries++) {
		doc[0] = '\0';
		append(doc, HEAD "root=\"main\"><rule id=\"sub\">",
		    sizeof(doc));
		gen(doc, sizeof(doc), 1, NULL, &sub);
		append(doc, "</rule><rule id=\"main\">", sizeof(doc));
		gen(doc, sizeof(doc), 0, &sub, &l);
		append(doc, "</rule></grammar>", sizeof(doc));
		if (l.too_long)
			continue;	/* the sets would be cut short */
		checked++;
		g = srgs(doc);
		for (i = 0; i < NSTRINGS; i++) {
			str_of(i, s);
			full = l.in[i];
			ext = 0;
			for (j = 0; j < NSTRINGS && !ext; j++) {
				str_of(j, w);
				ext = l.in[j] && strlen(w) > strlen(s) &&
				    strncmp(w, s, strlen(s)) == 0;
			}
			want = full ? (ext ? MORE : FULL) :
			    (ext ? PREFIX : NO);
			seen[want]++;
			snprintf(want_value, sizeof(want_value), "\"%s\"", s);
			if (vxml_grammar_match(g, s, &in) != want)
				print_error("%s\n", doc);
			vxml_interp_clear(&in);
			expect(g, s, want, want_value);
		}
		vxml_grammar_free(g);
	}
	assert_int_equal(checked, 300);
	/* the grammars were varied enough to give every answer */
	for (i = 0; i < 4; i++)
		if (seen[i] <= 100)
			fail_msg("only %d %s answers: NO %d PREFIX %d MORE %d "
			    "FULL %d", seen[i], names[i], seen[0], seen[1],
			    seen[2], seen[3]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digits),
		cmocka_unit_test(test_boolean),
		cmocka_unit_test(test_number_currency_phone),
		cmocka_unit_test(test_date_time),
		cmocka_unit_test(test_sequence),
		cmocka_unit_test(test_srgs_alternatives),
		cmocka_unit_test(test_srgs_repeat),
		cmocka_unit_test(test_srgs_rulerefs_and_specials),
		cmocka_unit_test(test_srgs_tags),
		cmocka_unit_test(test_srgs_rule_scopes),
		cmocka_unit_test(test_srgs_node),
		cmocka_unit_test(test_srgs_errors),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_against_brute_force),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
