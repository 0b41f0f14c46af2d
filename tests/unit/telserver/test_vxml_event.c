/* vxml_event.c: events as applications meet them: counts, catch selection
 * by name prefix, cond and scope, the default handlers, and every error
 * path ending a session with the event, the document and the line. */
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

static const struct h_doc count_docs[] = {
	{ "http://t/c.vxml", VXML_HEAD
"<catch event='noinput' count='3'><log>document third</log><exit/></catch>\n"
"<form>\n"
"  <field name='f' type='digits'>\n"
"    <prompt>go</prompt>\n"
"    <catch event='noinput nomatch'><log expr=\"'first ' + _event\"/></catch>\n"
"    <noinput count='2'><log>second</log></noinput>\n"
"  </field>\n"
"</form></vxml>\n" },
	{ NULL, NULL }
};

/* The highest count not above the counter wins; an outer scope's handler
 * takes over when its count is the best. */
static void
test_counts(void **state)
{
	struct harness h;

	h_init(&h, count_docs);
	h_run(&h, "http://t/c.vxml");
	SAW(&h, "PROMPT go\nLOG : first noinput\nLOG : second\n"
	    "LOG : document third\n");
	assert_int_equal(h.how, VXML_END_EXIT);
	h_free(&h);
}

static const struct h_doc select_docs[] = {
	{ "http://t/s.vxml", VXML_HEAD
"<catch event='app'><log expr=\"'doc app ' + _event + ' ' + _message\"/></catch>\n"
"<catch event='app.e1.x'><log>too specific</log></catch>\n"
"<form>\n"
"  <var name='n' expr='0'/>\n"
"  <catch event='app.e1' cond='n == 0'><log>form e1</log>"
"    <assign name='n' expr='1'/></catch>\n"
"  <catch event='app.'><log>form app.</log></catch>\n"
"  <block name='b1'><throw event='app.e1' message='m1'/></block>\n"
"  <block name='b2'><throw event='app.e1' message='m2'/></block>\n"
"  <block name='b3'><throw event='application.x'/></block>\n"
"  <block name='b4'><log>end</log></block>\n"
"</form>\n"
"<catch event='application'><log>doc application</log></catch>\n"
"</vxml>\n" },
	{ NULL, NULL }
};

/* Prefixes match whole components ("app" does not catch "application.x");
 * a false cond passes the event on to the next candidate in scope order. */
static void
test_catch_selection(void **state)
{
	struct harness h;

	h_init(&h, select_docs);
	h_run(&h, "http://t/s.vxml");
	SAW(&h, "LOG : form e1\nLOG : form app.\nLOG : doc application\n"
	    "LOG : end\n");
	assert_null(strstr(h.out, "too specific"));
	assert_null(strstr(h.out, "doc app "));
	h_free(&h);
}

static const struct h_doc default_docs[] = {
	{ "http://t/d.vxml", VXML_HEAD
"<form><field name='f' type='boolean'><prompt>yes or no</prompt></field>\n"
"<block><log expr=\"'f=' + f\"/><throw event='user.unhandled'/></block>\n"
"</form></vxml>\n" },
	{ NULL, NULL }
};

/* Defaults: nomatch and noinput reprompt; an uncaught user event exits. */
static void
test_default_handlers(void **state)
{
	struct harness h;

	h_init(&h, default_docs);
	h.dtmf = "52";
	h_run(&h, "http://t/d.vxml");
	SAW(&h, "PROMPT yes or no\nPROMPT Sorry, I did not understand.\n"
	    "PROMPT yes or no\nLOG : f=false\n");
	assert_int_equal(h.how, VXML_END_EXIT);
	h_free(&h);

	h_init(&h, default_docs);
	h.dtmf = "";
	h.hangup_at = 11000;
	h_run(&h, "http://t/d.vxml");
	SAW(&h, "PROMPT yes or no\nPROMPT yes or no\nPROMPT yes or no\n");
	assert_int_equal(h.how, VXML_END_HANGUP);
	h_free(&h);
}

static const struct h_doc error_docs[] = {
	{ "http://t/bad.vxml", VXML_HEAD
"<form>\n"
"  <block>text</blok>\n"
"</form></vxml>\n" },
	{ "http://t/go.vxml", VXML_HEAD
"<form>\n"
"  <block>\n"
"    <goto next='missing.vxml'/>\n"
"  </block>\n"
"</form></vxml>\n" },
	{ "http://t/go2.vxml", VXML_HEAD
"<catch event='error.badfetch'><log expr=\"'caught ' + _event\"/><exit/></catch>\n"
"<form><block><goto next='bad.vxml'/></block></form></vxml>\n" },
	{ "http://t/script.vxml", VXML_HEAD
"<form>\n"
"  <block>\n"
"    <script>var a = undefinedFunction();</script>\n"
"  </block>\n"
"</form></vxml>\n" },
	{ "http://t/attrs.vxml", VXML_HEAD
"<form><block><audio src='a.wav' expr=\"'b.wav'\"/></block></form></vxml>\n" },
	{ "http://t/loop.vxml", VXML_HEAD
"<form><block><goto next='#again'/></block></form>\n"
"<form id='again'><block><goto next='#again'/></block></form></vxml>\n" },
	{ NULL, NULL }
};

static void
test_error_paths(void **state)
{
	struct harness h;

	/* a malformed first document: error.badfetch at its own line */
	h_init(&h, error_docs);
	h_run(&h, "http://t/bad.vxml");
	assert_int_equal(h.how, VXML_END_ERROR);
	assert_string_equal(h.event, "error.badfetch");
	assert_string_equal(h.url, "http://t/bad.vxml");
	assert_int_equal(h.line, 4);
	assert_non_null(strstr(h.json, "\"event\":\"error.badfetch\""));
	assert_non_null(strstr(h.json, "\"line\":4"));
	h_free(&h);

	/* a fetch that fails: reported at the <goto> that asked for it */
	h_init(&h, error_docs);
	h_run(&h, "http://t/go.vxml");
	assert_int_equal(h.how, VXML_END_ERROR);
	assert_string_equal(h.event, "error.badfetch.http.404");
	assert_string_equal(h.url, "http://t/go.vxml");
	assert_int_equal(h.line, 5);
	SAW(&h, "PROMPT Sorry, a technical problem occurred. Goodbye.\n");
	h_free(&h);

	/* a malformed target is caught by the document that went there */
	h_init(&h, error_docs);
	h_run(&h, "http://t/go2.vxml");
	SAW(&h, "LOG : caught error.badfetch\n");
	assert_int_equal(h.how, VXML_END_EXIT);
	h_free(&h);

	/* a script error: error.semantic at the <script> */
	h_init(&h, error_docs);
	h_run(&h, "http://t/script.vxml");
	assert_int_equal(h.how, VXML_END_ERROR);
	assert_string_equal(h.event, "error.semantic");
	assert_int_equal(h.line, 5);
	assert_non_null(strstr(h.json, "ReferenceError"));
	h_free(&h);

	/* src and expr together: the document is invalid */
	h_init(&h, error_docs);
	h_run(&h, "http://t/attrs.vxml");
	assert_string_equal(h.event, "error.badfetch");
	assert_int_equal(h.line, 3);
	h_free(&h);

	/* a loop that never waits for the caller ends, and says so */
	h_init(&h, error_docs);
	h_run(&h, "http://t/loop.vxml");
	assert_int_equal(h.done, 1);
	assert_int_equal(h.how, VXML_END_ERROR);
	assert_non_null(strstr(h.json, "loops"));
	SAW(&h, "PROMPT Sorry, a technical problem occurred. Goodbye.\n");
	h_free(&h);

	/* nothing at all at the URL */
	h_init(&h, error_docs);
	h_run(&h, "http://t/nothing.vxml");
	assert_int_equal(h.how, VXML_END_ERROR);
	assert_string_equal(h.event, "error.badfetch.http.404");
	assert_string_equal(h.url, "http://t/nothing.vxml");
	h_free(&h);
}

static const struct h_doc hangup_docs[] = {
	{ "http://t/h.vxml", VXML_HEAD
"<catch event='connection.disconnect.hangup'>"
"<log expr=\"'hung up, pin=' + pin\"/><submit next='http://t/save.vxml' "
"method='post' namelist='pin'/></catch>\n"
"<form><field name='pin' type='digits'><prompt>pin</prompt></field>\n"
"<block><disconnect/></block></form></vxml>\n" },
	{ "http://t/save.vxml", VXML_HEAD "<form><block><log>saved</log></block></form></vxml>\n" },
	{ NULL, NULL }
};

/* A hang-up during input, and <disconnect>: both throw
 * connection.disconnect.hangup, which the application may catch to submit
 * what it has. */
static void
test_hangup_and_disconnect(void **state)
{
	struct harness h;

	h_init(&h, hangup_docs);
	h.hangup_at = 1000;
	h_run(&h, "http://t/h.vxml");
	SAW(&h, "PROMPT pin\nLOG : hung up, pin=undefined\nLOG : saved\n");
	assert_int_equal(h.how, VXML_END_HANGUP);
	h_free(&h);

	h_init(&h, hangup_docs);
	h.dtmf = "77#";
	h_run(&h, "http://t/h.vxml");
	SAW(&h, "DISCONNECT\nLOG : hung up, pin=77\nLOG : saved\n");
	assert_string_equal(h.posted, "pin=77");
	assert_int_equal(h.how, VXML_END_DISCONNECT);
	h_free(&h);
}

static const struct h_doc silent_docs[] = {
	{ "http://t/q.vxml", VXML_HEAD
"<form><field name='x' type='digits'><prompt>say</prompt>\n"
"  <noinput><reprompt/></noinput></field></form></vxml>\n" },
	{ NULL, NULL }
};

/* An application that asks again and again while nobody answers ends
 * after VXML_NOINPUT_LIMIT noinputs in a row (else it would hold the line
 * until the call's time limit). */
static void
test_noinput_loop(void **state)
{
	struct harness h;

	h_init(&h, silent_docs);
	h_run(&h, "http://t/q.vxml");
	assert_int_equal(h.how, VXML_END_ERROR);
	assert_string_equal(h.event, "error.noresource");
	SAW(&h, "PROMPT Sorry, a technical problem occurred. Goodbye.\n");
	h_free(&h);
}

static const struct h_doc two_docs[] = {
	{ "http://t/ok.vxml", VXML_HEAD
"<form><block>bye<exit expr=\"'ok'\"/></block></form></vxml>\n" },
	{ "http://t/err.vxml", VXML_HEAD
"<form><block><script>nosuch();</script></block></form></vxml>\n" },
	{ NULL, NULL }
};

/* Two sessions at once, both ending while their last prompts play: each
 * keeps its own way of ending. */
static void
test_sessions_independent(void **state)
{
	struct harness a, b;
	struct vxml_session_info info = { NULL, NULL, NULL, NULL, NULL, NULL, NULL };

	h_init(&a, two_docs);
	h_init(&b, two_docs);
	a.s = vxml_session_new(&h_platform, &a, &info);
	b.s = vxml_session_new(&h_platform, &b, &info);
	vxml_session_start(a.s, "http://t/err.vxml");
	vxml_session_start(b.s, "http://t/ok.vxml");
	assert_true(a.playing && b.playing);
	assert_int_equal(a.done + b.done, 0);
	a.playing = b.playing = 0;
	vxml_prompts_done(a.s);
	vxml_prompts_done(b.s);
	assert_int_equal(a.done, 1);
	assert_int_equal(b.done, 1);
	assert_int_equal(a.how, VXML_END_ERROR);
	assert_int_equal(b.how, VXML_END_EXIT);
	SAW(&a, "PROMPT Sorry, a technical problem occurred. Goodbye.\n");
	SAW(&b, "PROMPT bye\n");
	vxml_session_free(a.s);
	vxml_session_free(b.s);
	h_free(&a);
	h_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_catch_selection),
		cmocka_unit_test(test_default_handlers),
		cmocka_unit_test(test_error_paths),
		cmocka_unit_test(test_hangup_and_disconnect),
		cmocka_unit_test(test_noinput_loop),
		cmocka_unit_test(test_sessions_independent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
