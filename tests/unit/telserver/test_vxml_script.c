/* vxml_script.c: the ECMAScript scope chain as applications see it:
 * session -> application -> document -> dialog -> anonymous, shadowing,
 * functions that see their declaring scopes, application variables that
 * survive moving between leaf documents, session.* and lastresult$. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "vxml_harness.h"

#define SAW(h, lines) do {						\
	if (!h_saw((h), (lines)))					\
		fail_msg("transcript lacks:\n%s\n--- got:\n%s", (lines), (h)->out); \
} while (0)

static const struct h_doc shadow_docs[] = {
	{ "http://t/s.vxml", VXML_HEAD
"<var name='x' expr=\"'doc'\"/>\n"
"<script>var y = 2; function sum(a) { return a + y + z; } var z = 3;</script>\n"
"<form>\n"
"  <var name='x' expr=\"'dialog'\"/>\n"
"  <block>\n"
"    <var name='x' expr=\"'anon'\"/>\n"
"    <log expr=\"x + ' ' + dialog.x + ' ' + document.x\"/>\n"
"    <assign name='document.x' expr=\"'doc2'\"/>\n"
"    <assign name='y' expr='20'/>\n"
"    <log expr=\"document.x + ' ' + sum(1)\"/>\n"
"    <script>var w = 'in anon'; x = 'anon2';</script>\n"
"    <log expr=\"w + ' ' + x + ' ' + dialog.x\"/>\n"
"  </block>\n"
"  <block><log expr=\"typeof w + ' ' + x\"/></block>\n"
"  <block><log expr=\"session.connection.remote.uri + ' ' + session.connection.protocol.name\"/></block>\n"
"</form></vxml>\n" },
	{ NULL, NULL }
};

static void
test_shadowing_and_functions(void **state)
{
	struct harness h;

	h_init(&h, shadow_docs);
	h_run(&h, "http://t/s.vxml");
	SAW(&h, "LOG : anon dialog doc\n"
	    "LOG : doc2 24\n"		/* sum sees y assigned through the chain */
	    "LOG : in anon anon2 dialog\n"
	    "LOG : undefined dialog\n"	/* the block's scope is gone */
	    "LOG : sip:+15551234@example.org sip\n");
	assert_int_equal(h.how, VXML_END_EXIT);
	h_free(&h);
}

static const struct h_doc app_docs[] = {
	{ "http://t/root.vxml", VXML_HEAD
"<var name='count' expr='0'/>\n"
"<var name='who' expr=\"'root'\"/>\n"
"<catch event='app.done'><log expr=\"'root caught ' + count\"/><exit/></catch>\n"
"</vxml>\n" },
	{ "http://t/leaf1.vxml", VXML_HEAD_APP("root.vxml")
"<var name='who' expr=\"'leaf1'\"/>\n"
"<form><block>\n"
"  <assign name='count' expr='count + 1'/>\n"
"  <assign name='application.who' expr=\"'changed'\"/>\n"
"  <log expr=\"who + ' ' + application.who + ' ' + count\"/>\n"
"  <goto next='leaf2.vxml'/>\n"
"</block></form></vxml>\n" },
	{ "http://t/leaf2.vxml", VXML_HEAD_APP("root.vxml")
"<form><block>\n"
"  <assign name='count' expr='count + 1'/>\n"
"  <log expr=\"who + ' ' + count + ' ' + typeof document.who\"/>\n"
"  <throw event='app.done'/>\n"
"</block></form></vxml>\n" },
	{ "http://t/other.vxml", VXML_HEAD
"<form><block><log expr='typeof count'/></block></form></vxml>\n" },
	{ NULL, NULL }
};

/* Application variables live across leaf documents of one root; the
 * root's handlers catch the leaves' events. */
static void
test_application_scope_across_documents(void **state)
{
	struct harness h;

	h_init(&h, app_docs);
	h_run(&h, "http://t/leaf1.vxml");
	SAW(&h, "LOG : leaf1 changed 1\nLOG : changed 2 undefined\n"
	    "LOG : root caught 2\n");
	assert_int_equal(h.how, VXML_END_EXIT);
	/* the root was fetched once */
	assert_int_equal(h.nfetch, 3);
	h_free(&h);
}

static const struct h_doc result_docs[] = {
	{ "http://t/r.vxml", VXML_HEAD
"<form>\n"
"  <field name='code' type='digits'>\n"
"    <prompt>code</prompt>\n"
"    <filled><log expr=\"code + ' ' + code$.utterance + ' ' + "
"application.lastresult$.utterance + ' ' + application.lastresult$[0].inputmode + "
"' ' + application.lastresult$.interpretation\"/></filled>\n"
"  </field>\n"
"</form></vxml>\n" },
	{ NULL, NULL }
};

static void
test_lastresult_and_shadow(void **state)
{
	struct harness h;

	h_init(&h, result_docs);
	h.dtmf = "507#";
	h_run(&h, "http://t/r.vxml");
	SAW(&h, "PROMPT code\nLOG : 507 507 507 dtmf 507\n");
	assert_non_null(strstr(h.json, "\"code\":\"507\""));
	h_free(&h);
}

static const struct h_doc undeclared_docs[] = {
	{ "http://t/u.vxml", VXML_HEAD
"<form><block><assign name='nosuch' expr='1'/><log>not reached</log></block>\n"
"<catch event='error.semantic'><log expr=\"_event + ': ' + _message\"/></catch>\n"
"</form></vxml>\n" },
	{ NULL, NULL }
};

static void
test_assign_undeclared(void **state)
{
	struct harness h;

	h_init(&h, undeclared_docs);
	h_run(&h, "http://t/u.vxml");
	SAW(&h, "LOG : error.semantic: assignment to undeclared variable 'nosuch'\n");
	assert_null(strstr(h.out, "not reached"));
	h_free(&h);
}

static const struct h_doc foreach_docs[] = {
	{ "http://t/fe.vxml", VXML_HEAD
"<form><var name='names' expr=\"['ann', 'bob']\"/>\n"
"<block><prompt>Hello <foreach item='n' array='names'><value expr='n'/>,"
"</foreach> all</prompt>\n"
"<foreach item='k' array='[1, 2, 3]'><log expr=\"'k=' + k\"/>"
"<if cond='k == 2'><exit/></if></foreach></block>\n"
"</form></vxml>\n" },
	{ NULL, NULL }
};

/* <foreach> (VoiceXML 2.1) in a prompt and in executable content, where
 * an <exit> stops the loop. */
static void
test_foreach(void **state)
{
	struct harness h;

	h_init(&h, foreach_docs);
	h_run(&h, "http://t/fe.vxml");
	SAW(&h, "PROMPT Hello ann, bob, all\nLOG : k=1\nLOG : k=2\n");
	assert_null(strstr(h.out, "k=3"));
	h_free(&h);
}

static const struct h_doc hostile_docs[] = {
	{ "http://t/cyc.vxml", VXML_HEAD
"<form><var name='a' expr='({})'/>\n"
"<block><script>a.self = a;</script><exit expr='a'/></block></form></vxml>\n" },
	{ "http://t/frozen.vxml", VXML_HEAD
"<form><block><script>Object.freeze(dialog);</script></block>\n"
"<field name='z' type='digits'><prompt>z</prompt></field></form></vxml>\n" },
	{ NULL, NULL }
};

/* Values and scopes a document can break: a cyclic exit value becomes
 * null; a frozen dialog scope ends the session with error.semantic instead
 * of aborting the process in duktape's fatal handler. */
static void
test_hostile_scripts(void **state)
{
	struct harness h;

	h_init(&h, hostile_docs);
	h_run(&h, "http://t/cyc.vxml");
	assert_int_equal(h.how, VXML_END_EXIT);
	assert_non_null(strstr(h.json, "\"exit\":null"));
	h_free(&h);

	h_init(&h, hostile_docs);
	h.dtmf = "1#";
	h_run(&h, "http://t/frozen.vxml");
	assert_int_equal(h.done, 1);
	assert_int_equal(h.how, VXML_END_ERROR);
	assert_string_equal(h.event, "error.semantic");
	h_free(&h);
}

static const struct h_doc tags_docs[] = {
	{ "http://t/tags.vxml", VXML_HEAD
"<form><block>\n"
"<log expr=\"JSON.stringify($vxml_tags(['out.drink = \\'tea\\'', 'out.size = 2'], '12'))\"/>\n"
"<log expr=\"$vxml_tags(['out = meta.current().text + \\'!\\''], '34')\"/>\n"
"<log expr=\"$vxml_tags(['var unused = 1'], '56')\"/>\n"
"</block></form></vxml>\n" },
	{ NULL, NULL }
};

/* The runner of semantics/1.0 tags a grammar match hands back (the real
 * grammar module returns them with a match): properties of out, a
 * scalar out, and an untouched out meaning the utterance. */
static void
test_si_tags(void **state)
{
	struct harness h;

	h_init(&h, tags_docs);
	h_run(&h, "http://t/tags.vxml");
	SAW(&h, "LOG : {\"drink\":\"tea\",\"size\":2}\nLOG : 34!\nLOG : 56\n");
	h_free(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shadowing_and_functions),
		cmocka_unit_test(test_application_scope_across_documents),
		cmocka_unit_test(test_lastresult_and_shadow),
		cmocka_unit_test(test_assign_undeclared),
		cmocka_unit_test(test_foreach),
		cmocka_unit_test(test_hostile_scripts),
		cmocka_unit_test(test_si_tags),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
