/* gw_json_dumps writes what json_dumps writes, byte for byte: every JSON
 * document of the corpus jansson accepts (../shared/corpora/json, in
 * $RQ_JSON_CORPUS), both with and without ASCII escaping, and values built
 * by hand that parsing cannot give (invalid UTF-8, deep nesting). */
#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "gateway.h"

/* Both writers agree on v: the same text, or both refuse it. */
/* Whether v holds a real number anywhere. */
static int
has_real(const json_t *v)
{
	const char *key;
	const json_t *x;
	size_t i;

	if (json_is_real(v))
		return 1;
	if (json_is_array(v)) {
		for (i = 0; i < json_array_size(v); i++)
			if (has_real(json_array_get(v, i)))
				return 1;
	} else if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, x)
			if (has_real(x))
				return 1;
	}
	return 0;
}

/* Two texts of one value: equal once read (reals by value). */
static int
same_value(const char *a, const char *b)
{
	json_t *x = json_loads(a, JSON_DECODE_ANY, NULL);
	json_t *y = json_loads(b, JSON_DECODE_ANY, NULL);
	int same = x != NULL && y != NULL && json_equal(x, y);

	json_decref(x);
	json_decref(y);
	return same;
}

static void
check_same(const json_t *v, const char *what)
{
	static const int flags[2] = { JSON_COMPACT | JSON_ENCODE_ANY,
	    JSON_COMPACT | JSON_ENCODE_ANY | JSON_ENSURE_ASCII };
	char *mine, *theirs;
	size_t len;
	int ascii;

	for (ascii = 0; ascii < 2; ascii++) {
		mine = gw_json_dumps(v, ascii, &len);
		theirs = json_dumps(v, (size_t)flags[ascii]);
		if (theirs == NULL) {
			if (mine != NULL)
				fail_msg("%s (ascii %d): jansson refused, we "
				    "wrote %s", what, ascii, mine);
			continue;
		}
		if (mine == NULL)
			fail_msg("%s (ascii %d): refused, jansson wrote %s",
			    what, ascii, theirs);
		/* reals in fewer digits than jansson's 17: the same value */
		if ((len != strlen(theirs) || strcmp(mine, theirs) != 0) &&
		    !(has_real(v) && same_value(mine, theirs)))
			fail_msg("%s (ascii %d):\n  ours   %s\n  jansson %s",
			    what, ascii, mine, theirs);
		free(mine);
		free(theirs);
	}
}

static void
test_corpus(void **state)
{
	const char *dir = getenv("RQ_JSON_CORPUS");
	char path[4096];
	struct dirent *de;
	json_error_t err;
	json_t *v;
	DIR *d = NULL;
	int n = 0;

	if (dir == NULL || (d = opendir(dir)) == NULL) {
		fail_msg("the JSON corpus (RQ_JSON_CORPUS=%s) is missing",
		    dir ? dir : "");
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strlen(de->d_name) < 6 || strcmp(de->d_name +
		    strlen(de->d_name) - 5, ".json") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		/* as the gateway parses requests */
		if ((v = json_load_file(path, JSON_DECODE_ANY |
		    JSON_REJECT_DUPLICATES, &err)) == NULL)
			continue;
		check_same(v, de->d_name);
		json_decref(v);
		n++;
	}
	closedir(d);
	assert_true(n >= 80);		/* the y_ files and some i_ ones */
}

static void
test_built(void **state)
{
	static const char *strs[] = { "", "plain", "quote \" back \\ slash /",
	    "\b\f\n\r\t\x01\x1f\x7f", "caf\xc3\xa9 \xe2\x82\xac",
	    "\xf0\x9f\x93\x9e phone", "\xef\xbf\xbf\xee\x80\x80" };
	json_t *o, *a, *deep, *inner;
	size_t i;
	int k;

	o = json_object();
	for (i = 0; i < sizeof(strs) / sizeof(*strs); i++) {
		a = json_string(strs[i]);
		check_same(a, strs[i]);
		json_object_set_new(o, strs[i], a);
	}
	json_object_set_new(o, "int", json_integer(-9007199254740993LL));
	json_object_set_new(o, "real", json_real(0.5));	/* exact */
	json_object_set_new(o, "t", json_true());
	json_object_set_new(o, "f", json_false());
	json_object_set_new(o, "n", json_null());
	a = json_array();
	json_array_append_new(a, json_object());
	json_array_append_new(a, json_array());
	json_array_append_new(a, json_integer(0));
	json_object_set_new(o, "a", a);
	check_same(o, "built object");
	/* a key with a NUL in it */
	json_object_setn_new(o, "a\0b", 3, json_integer(1));
	check_same(o, "key with NUL");
	json_decref(o);

	/* reals: the fewest digits that read back the same (jansson
	 * writes 17), still a real */
	{
		static const struct { double d; const char *text; } reals[] = {
			{ 0.1, "0.1" }, { -2.5, "-2.5" }, { 1.0, "1.0" },
			{ 0.1 + 0.2, "0.30000000000000004" },
			{ 123456789.123, "123456789.123" },
			{ 1e300, "1e+300" }, { -1e28, "-1e+28" },
		};
		char *t;

		for (i = 0; i < sizeof(reals) / sizeof(*reals); i++) {
			a = json_real(reals[i].d);
			t = gw_json_dumps(a, 0, NULL);
			assert_non_null(t);
			assert_string_equal(t, reals[i].text);
			assert_true(strtod(t, NULL) == reals[i].d);
			free(t);
			json_decref(a);
		}
	}

	/* invalid UTF-8 (only json_stringn_nocheck can make it): refused */
	o = json_stringn_nocheck("a\xff", 2);
	assert_null(gw_json_dumps(o, 0, NULL));
	assert_null(gw_json_dumps(o, 1, NULL));
	json_decref(o);
	o = json_stringn_nocheck("\xed\xa0\x80", 3);	/* a surrogate */
	assert_null(gw_json_dumps(o, 1, NULL));
	json_decref(o);

	/* nesting: 2,000 levels written, 3,000 refused */
	deep = json_array();
	inner = deep;
	for (k = 0; k < 3000; k++) {
		a = json_array();
		json_array_append_new(inner, a);
		inner = a;
		if (k == 1998) {
			char *s = gw_json_dumps(deep, 0, NULL);

			assert_non_null(s);
			free(s);
		}
	}
	assert_null(gw_json_dumps(deep, 0, NULL));
	json_decref(deep);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus),
		cmocka_unit_test(test_built),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
