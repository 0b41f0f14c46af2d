/* vxml_fia.c and friends: the Form Interpretation Algorithm as a caller
 * meets it: item order, prompts and their counts, <reprompt>, <filled>
 * modes, menus with DTMF, <goto nextitem>, <clear>, subdialogs, record and
 * transfer, each run through the in-memory platform. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "vxml_harness.h"
#include "vxml_int.h"	/* VXML_TIME_MAX_MS */

#define SAW(h, lines) do {						\
	if (!h_saw((h), (lines)))					\
		fail_msg("transcript lacks:\n%s\n--- got:\n%s", (lines), (h)->out); \
} while (0)

static const char pin_doc[] = VXML_HEAD
"<form id='f'>\n"
"  <block>Welcome</block>\n"
"  <field name='pin' type='digits?length=4'>\n"
"    <prompt count='1'>Enter your pin</prompt>\n"
"    <prompt count='2'>Please enter the four digits</prompt>\n"
"    <prompt count='3' cond='false'>never said</prompt>\n"
"    <noinput>I heard nothing<reprompt/></noinput>\n"
"    <nomatch>That is not a pin</nomatch>\n"
"    <filled><log expr=\"'pin ' + pin\"/></filled>\n"
"  </field>\n"
"  <field name='ok' type='boolean'>\n"
"    <prompt>Is <value expr='pin'/> right?</prompt>\n"
"  </field>\n"
"  <filled mode='all'><log expr=\"'all ' + pin + ' ' + ok\"/></filled>\n"
"  <block><exit namelist='pin ok'/></block>\n"
"</form></vxml>\n";

static const struct h_doc pin_docs[] = {
	{ "http://t/pin.vxml", pin_doc }, { NULL, NULL }
};

static void
test_form_order_and_filled(void **state)
{
	struct harness h;

	h_init(&h, pin_docs);
	h.dtmf = "12341";
	h_run(&h, "http://t/pin.vxml");
	SAW(&h, "PROMPT Welcome\nPROMPT Enter your pin\nLOG : pin 1234\n"
	    "PROMPT Is 1234 right?\nLOG : all 1234 true\n");
	assert_int_equal(h.done, 1);
	assert_int_equal(h.how, VXML_END_EXIT);
	assert_non_null(strstr(h.json, "\"exit\":{\"ok\":true,\"pin\":\"1234\"}"));
	assert_non_null(strstr(h.json, "\"fields\":{\"ok\":true,\"pin\":\"1234\"}"));
	assert_null(strstr(h.out, "never said"));
	h_free(&h);

	/* a termchar after a complete pin is not the next field's nomatch */
	h_init(&h, pin_docs);
	h.dtmf = "1234#1";
	h_run(&h, "http://t/pin.vxml");
	SAW(&h, "LOG : pin 1234\nPROMPT Is 1234 right?\nLOG : all 1234 true\n");
	assert_null(strstr(h.out, "Sorry"));
	h_free(&h);
}

/* The same run with every fetch answered later, not from inside the
 * request, and with prompts ending from inside play(): the transcript must
 * not change. */
static void
test_async_fetch_same_transcript(void **state)
{
	struct harness a, b;

	h_init(&a, pin_docs);
	a.dtmf = "12341";
	h_run(&a, "http://t/pin.vxml");
	h_init(&b, pin_docs);
	b.dtmf = "12341";
	b.async = 1;
	h_run(&b, "http://t/pin.vxml");
	assert_string_equal(a.out, b.out);
	assert_string_equal(a.json, b.json);
	h_free(&b);

	/* prompts that end from inside play(): same again */
	h_init(&b, pin_docs);
	b.dtmf = "12341";
	b.instant = 1;
	h_run(&b, "http://t/pin.vxml");
	assert_string_equal(a.out, b.out);
	assert_string_equal(a.json, b.json);
	h_free(&a);
	h_free(&b);
}

/* noinput with <reprompt>: the prompt counter moves on to count 2 (and
 * stays there: count 3's cond is false); nomatch without <reprompt>: no
 * prompt on the next round. */
static void
test_prompt_counts_and_reprompt(void **state)
{
	struct harness h;
	const char *p;

	h_init(&h, pin_docs);
	h.dtmf = "";
	h_run(&h, "http://t/pin.vxml");
	SAW(&h, "PROMPT Enter your pin\nPROMPT I heard nothing\n"
	    "PROMPT Please enter the four digits\nPROMPT I heard nothing\n"
	    "PROMPT Please enter the four digits\n");
	assert_null(strstr(h.out, "never said"));
	h_free(&h);

	/* 9 then # is a nomatch (too short); the next round has no prompt */
	h_init(&h, pin_docs);
	h.dtmf = "9#56781";
	h_run(&h, "http://t/pin.vxml");
	SAW(&h, "PROMPT Enter your pin\nPROMPT That is not a pin\nLOG : pin 5678\n");
	p = strstr(h.out, "That is not a pin\n");
	assert_non_null(p);
	assert_int_equal(strncmp(p + strlen("That is not a pin\n"), "LOG : pin", 9), 0);
	h_free(&h);
}

static const struct h_doc filled_docs[] = {
	{ "http://t/f.vxml", VXML_HEAD
"<form>\n"
"  <var name='n' expr='0'/>\n"
"  <filled mode='any' namelist='a b'><assign name='n' expr='n + 1'/>"
"    <log expr=\"'any ' + n\"/></filled>\n"
"  <field name='a' type='digits?length=1'><prompt>a</prompt></field>\n"
"  <field name='b' type='digits?length=1'><prompt>b</prompt></field>\n"
"  <filled namelist='a b'><log expr=\"'all ' + a + b\"/></filled>\n"
"</form></vxml>\n" }, { NULL, NULL }
};

/* mode="any" runs after each fill; the default mode="all" only once both
 * are filled. */
static void
test_filled_modes(void **state)
{
	struct harness h;

	h_init(&h, filled_docs);
	h.dtmf = "12";
	h_run(&h, "http://t/f.vxml");
	SAW(&h, "PROMPT a\nLOG : any 1\nPROMPT b\nLOG : any 2\nLOG : all 12\n");
	assert_int_equal(h.how, VXML_END_EXIT);
	assert_null(strstr(h.out, "LOG : all 1\n"));
	h_free(&h);
}

static const struct h_doc goto_docs[] = {
	{ "http://t/g.vxml", VXML_HEAD
"<form>\n"
"  <var name='visits' expr='0'/>\n"
"  <block name='one'><assign name='visits' expr='visits + 1'/>"
"    <log expr=\"'one ' + visits\"/></block>\n"
"  <block name='two'><log>two</log>\n"
"    <if cond='visits &lt; 3'><clear namelist='one two'/><goto nextitem='one'/>"
"    <elseif cond='visits == 3'/><log>three</log>"
"    <else/><log>never</log></if></block>\n"
"  <block name='three'><goto next='#second'/></block>\n"
"</form>\n"
"<form id='second'><block><log>second form</log></block></form>\n"
"</vxml>\n" }, { NULL, NULL }
};

static void
test_goto_nextitem_and_clear(void **state)
{
	struct harness h;

	h_init(&h, goto_docs);
	h_run(&h, "http://t/g.vxml");
	SAW(&h, "LOG : one 1\nLOG : two\nLOG : one 2\nLOG : two\nLOG : one 3\n"
	    "LOG : two\nLOG : three\nLOG : second form\n");
	assert_null(strstr(h.out, "never"));
	assert_int_equal(h.how, VXML_END_EXIT);
	h_free(&h);
}

static const struct h_doc menu_docs[] = {
	{ "http://t/m.vxml", VXML_HEAD
"<menu id='main' dtmf='true'>\n"
"  <prompt>Say <enumerate/></prompt>\n"
"  <choice next='#a'>sales</choice>\n"
"  <choice next='#b'>support</choice>\n"
"  <choice dtmf='9' event='bye'>quit</choice>\n"
"  <noinput>Please press a key</noinput>\n"
"</menu>\n"
"<form id='a'><block><log>sales</log><goto next='#main'/></block></form>\n"
"<form id='b'><block><log>support</log><goto next='#main'/></block></form>\n"
"<catch event='bye'><log>bye</log><exit/></catch>\n"
"</vxml>\n" }, { NULL, NULL }
};

static void
test_menu_dtmf(void **state)
{
	struct harness h;

	h_init(&h, menu_docs);
	h.dtmf = "2419";
	h_run(&h, "http://t/m.vxml");
	/* 4 matches no choice: the default nomatch handler reprompts */
	SAW(&h, "PROMPT Say sales support quit\nLOG : support\n"
	    "PROMPT Say sales support quit\nPROMPT Sorry, I did not understand.\n"
	    "PROMPT Say sales support quit\nLOG : sales\n"
	    "PROMPT Say sales support quit\nLOG : bye\n");
	assert_int_equal(h.how, VXML_END_EXIT);
	h_free(&h);

	/* silence: the menu's noinput, without reprompt */
	h_init(&h, menu_docs);
	h.dtmf = "";
	h.hangup_at = 12000;
	h_run(&h, "http://t/m.vxml");
	SAW(&h, "PROMPT Say sales support quit\nPROMPT Please press a key\n"
	    "PROMPT Please press a key\n");
	assert_int_equal(h.how, VXML_END_HANGUP);
	h_free(&h);
}

static const struct h_doc sub_docs[] = {
	{ "http://t/main.vxml", VXML_HEAD
"<form>\n"
"  <subdialog name='r' src='sub.vxml#ask' namelist=''>\n"
"    <param name='greeting' expr=\"'hi'\"/>\n"
"    <filled><log expr=\"'got ' + r.answer + ' ' + r.greeting\"/></filled>\n"
"  </subdialog>\n"
"  <subdialog name='e' src='#thrower'/>\n"
"  <catch event='sub.failed'><log expr=\"'caller caught ' + _message\"/>"
"    <exit/></catch>\n"
"</form>\n"
"<form id='thrower'><block><return event='sub.failed' message='oops'/></block></form>\n"
"</vxml>\n" },
	{ "http://t/sub.vxml", VXML_HEAD
"<var name='docvar' expr='1'/>\n"
"<form id='ask'>\n"
"  <var name='greeting' expr=\"'default'\"/>\n"
"  <var name='answer' expr='42'/>\n"
"  <block><log expr=\"'sub ' + greeting\"/><return namelist='answer greeting'/></block>\n"
"</form></vxml>\n" },
	{ NULL, NULL }
};

static void
test_subdialog(void **state)
{
	struct harness h;

	h_init(&h, sub_docs);
	h_run(&h, "http://t/main.vxml");
	SAW(&h, "LOG : sub hi\nLOG : got 42 hi\nLOG : caller caught oops\n");
	assert_int_equal(h.how, VXML_END_EXIT);
	h_free(&h);
}

static const struct h_doc rx_docs[] = {
	{ "http://t/rx.vxml", VXML_HEAD
"<form>\n"
"  <record name='msg' beep='true' maxtime='10s'>\n"
"    <prompt>Speak after the tone</prompt>\n"
"    <filled><log expr=\"'rec ' + msg$.duration + ' ' + msg$.termchar\"/></filled>\n"
"  </record>\n"
"  <transfer name='xfer' dest='tel:+15550000' bridge='true' connecttimeout='20s'>\n"
"    <filled><log expr=\"'xfer ' + xfer + ' ' + xfer$.duration\"/></filled>\n"
"  </transfer>\n"
"  <block><submit next='http://t/done.vxml' method='post' "
"enctype='multipart/form-data' namelist='xfer msg'/></block>\n"
"</form></vxml>\n" },
	{ "http://t/done.vxml", VXML_HEAD "<form><block>thanks</block></form></vxml>\n" },
	{ NULL, NULL }
};

static void
test_record_and_transfer(void **state)
{
	struct harness h;

	h_init(&h, rx_docs);
	h.xfer_outcome = VXML_XFER_BUSY;
	h_run(&h, "http://t/rx.vxml");
	SAW(&h, "PROMPT Speak after the tone\nRECORD\nLOG : rec 3000 #\n"
	    "TRANSFER tel:+15550000 bridge\nLOG : xfer busy 4.5\nPROMPT thanks\n");
	/* the recording goes as a file part of 100 bytes */
	assert_string_equal(h.posted, "xfer=busy&msg=http://store/rec1.wav[100 audio/x-wav]");
	assert_non_null(strstr(h.json, "\"recordings\":{\"msg\":\"http://store/rec1.wav\"}"));
	h_free(&h);

	/* the caller hangs up during the bridge: the variable stays undefined */
	h_init(&h, rx_docs);
	h.xfer_outcome = -1;
	h_run(&h, "http://t/rx.vxml");
	assert_int_equal(h.how, VXML_END_HANGUP);
	assert_null(strstr(h.out, "LOG : xfer"));
	h_free(&h);
}

static const struct h_doc object_docs[] = {
	{ "http://t/o.vxml", VXML_HEAD
"<form><object name='o' classid='method://x'/>"
"<catch event='error.unsupported.objecttype'><log expr='_event'/>"
"<assign name='o' expr='false'/></catch>"
"<block><log>after</log></block></form></vxml>\n" },
	{ NULL, NULL }
};

/* <object> is refused with error.unsupported.objecttype; once the handler
 * fills its variable the FIA moves on. */
static void
test_object_rejected(void **state)
{
	struct harness h;

	h_init(&h, object_docs);
	h_run(&h, "http://t/o.vxml");
	SAW(&h, "LOG : error.unsupported.objecttype\nLOG : after\n");
	assert_int_equal(h.done, 1);
	assert_int_equal(h.how, VXML_END_EXIT);
	h_free(&h);
}

static const struct h_doc link_docs[] = {
	{ "http://t/l.vxml", VXML_HEAD
"<link dtmf='*0' next='#operator'/>\n"
"<form id='main'>\n"
"  <field name='acct' type='digits'>\n"
"    <prompt bargein='false'>Account number please</prompt>\n"
"    <filled><log expr=\"'acct ' + acct\"/></filled>\n"
"  </field>\n"
"  <block><prompt>Goodbye</prompt><disconnect/></block>\n"
"</form>\n"
"<form id='operator'><block><log>operator</log><clear/>"
"<goto next='#main'/></block></form>\n"
"</vxml>\n" },
	{ NULL, NULL }
};

/* A document <link> is live while a field collects; the goodbye plays
 * before the hang-up. */
static void
test_link_disconnect(void **state)
{
	struct harness h;

	h_init(&h, link_docs);
	h.dtmf = "*042#";
	h_run(&h, "http://t/l.vxml");
	SAW(&h, "PROMPT Account number please\nLOG : operator\n"
	    "PROMPT Account number please\nLOG : acct 42\nPROMPT Goodbye\n"
	    "DISCONNECT\n");
	assert_int_equal(h.how, VXML_END_DISCONNECT);
	assert_non_null(strstr(h.json, "\"acct\":\"42\""));
	h_free(&h);
}

static const struct h_doc barge_docs[] = {
	{ "http://t/b.vxml", VXML_HEAD
"<form>\n"
"  <field name='a' type='digits'><prompt bargein='false'>first</prompt></field>\n"
"  <field name='b' type='digits'><prompt>second</prompt></field>\n"
"  <block><log expr=\"a + ' ' + b\"/></block>\n"
"</form></vxml>\n" },
	{ NULL, NULL }
};

/* A key during an unbargeable prompt is lost; during a bargeable one it
 * stops the prompt and counts. */
static void
test_bargein(void **state)
{
	struct harness h;

	h_init(&h, barge_docs);
	h.barge = 1;
	h.dtmf = "1234#56#";
	h_run(&h, "http://t/b.vxml");
	SAW(&h, "PROMPT first\nKEY 1\nPROMPT second\nKEY 5\nSTOP\nLOG : 234 56\n");
	h_free(&h);
}

static const struct h_doc gexpr_docs[] = {
	{ "http://t/ge.vxml", VXML_HEAD
"<var name='g' expr=\"'builtin:dtmf/digits?length=3'\"/>\n"
"<catch event='error.badfetch'><log expr=\"'badfetch ' + _message\"/><exit/></catch>\n"
"<form>\n"
"  <field name='a'><grammar srcexpr='g'/><prompt>three</prompt>\n"
"    <filled><log expr=\"'a ' + a\"/></filled></field>\n"
"  <field name='b'><grammar mode='dtmf' srcexpr=\"'gone.grxml'\"/>"
"<prompt>b</prompt></field>\n"
"</form></vxml>\n" },
	{ NULL, NULL }
};

/* <grammar srcexpr>: the URL comes from a variable; one that cannot be
 * fetched is error.badfetch once the fetch has failed. */
static void
test_grammar_srcexpr(void **state)
{
	struct harness h;
	int async;

	for (async = 0; async < 2; async++) {
		h_init(&h, gexpr_docs);
		h.async = async;
		h.dtmf = "123";
		h_run(&h, "http://t/ge.vxml");
		SAW(&h, "PROMPT three\nLOG : a 123\n"
		    "LOG : badfetch cannot fetch grammar http://t/gone.grxml (status 404)\n");
		h_free(&h);
	}
}

static const struct h_doc docmenu_docs[] = {
	{ "http://t/dm.vxml", VXML_HEAD
"<menu id='top' scope='document'>\n"
"  <prompt>main menu</prompt>\n"
"  <choice dtmf='*' next='#top'>start over</choice>\n"
"  <choice dtmf='1' next='#acct'>account</choice>\n"
"</menu>\n"
"<form id='acct'>\n"
"  <field name='n' type='digits?length=3'><prompt>number</prompt>\n"
"    <filled><log expr=\"'n ' + n\"/><exit/></filled></field>\n"
"</form></vxml>\n" },
	{ "http://t/dl.vxml", VXML_HEAD
"<link dtmf='1' next='#op'/>\n"
"<form><field name='n' type='digits'><prompt>number</prompt>\n"
"  <filled><log expr=\"'n ' + n\"/></filled></field></form>\n"
"<form id='op'><block>operator</block></form></vxml>\n" },
	{ NULL, NULL }
};

/* A menu with scope="document" keeps its choices live in the document's
 * other dialogs: * goes back to it from inside the form. */
static void
test_document_scoped_menu(void **state)
{
	struct harness h;

	h_init(&h, docmenu_docs);
	h.dtmf = "1*1123";
	h_run(&h, "http://t/dm.vxml");
	SAW(&h, "PROMPT main menu\nPROMPT number\nPROMPT main menu\n"
	    "PROMPT number\nLOG : n 123\n");
	h_free(&h);

	/* the field's grammar goes first: 1 is the start of a number here,
	 * not the link */
	h_init(&h, docmenu_docs);
	h.dtmf = "12#";
	h_run(&h, "http://t/dl.vxml");
	SAW(&h, "PROMPT number\nLOG : n 12\n");
	assert_null(strstr(h.out, "operator"));
	h_free(&h);
}

static const struct h_doc times_docs[] = {
	{ "http://t/t.vxml", VXML_HEAD
"<form><block><prompt>a<break time='250ms'/>b<break time='2s'/>"
"c<break time=' 1.5 s'/>d<break time='1e300s'/>e<break time='nan'/>"
"f<break time='inf'/>g<break time='-3s'/>h<break time='4 min'/>i"
"<break time='1e400s'/>j"
"</prompt></block></form></vxml>\n" },
	{ NULL, NULL }
};

/* CSS2 times as a document writes them: ms or s, a huge one held to a
 * day (not an int overflow), and what is not a time, the default. */
static void
test_times(void **state)
{
	struct harness h;
	char want[320];

	h_init(&h, times_docs);
	h_run(&h, "http://t/t.vxml");
	snprintf(want, sizeof(want), "PROMPT a\nBREAK 250\nPROMPT b\n"
	    "BREAK 2000\nPROMPT c\nBREAK 1500\nPROMPT d\nBREAK %d\n"
	    "PROMPT e\nBREAK 500\nPROMPT f\nBREAK 500\nPROMPT g\n"
	    "BREAK 500\nPROMPT h\nBREAK 500\nPROMPT i\nBREAK %d\nPROMPT j\n",
	    VXML_TIME_MAX_MS, VXML_TIME_MAX_MS);
	SAW(&h, want);
	h_free(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_form_order_and_filled),
		cmocka_unit_test(test_async_fetch_same_transcript),
		cmocka_unit_test(test_prompt_counts_and_reprompt),
		cmocka_unit_test(test_filled_modes),
		cmocka_unit_test(test_goto_nextitem_and_clear),
		cmocka_unit_test(test_menu_dtmf),
		cmocka_unit_test(test_subdialog),
		cmocka_unit_test(test_record_and_transfer),
		cmocka_unit_test(test_object_rejected),
		cmocka_unit_test(test_link_disconnect),
		cmocka_unit_test(test_bargein),
		cmocka_unit_test(test_grammar_srcexpr),
		cmocka_unit_test(test_document_scoped_menu),
		cmocka_unit_test(test_times),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
