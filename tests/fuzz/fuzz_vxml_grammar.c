/* libFuzzer target: an SRGS grammar document through vxml_grammar_srgs_doc
 * and the matcher, or (input starting with "B") a builtin type on the
 * first line and keys on the second.  Refusals must carry a message; the
 * answers for the prefixes of a key string must agree with each other:
 * nothing follows NO or FULL, and what follows a live prefix was one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vxml_grammar.h"

#define KEYS_MAX	24

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
is_key(int c)
{
	return (c >= '0' && c <= '9') || c == '*' || c == '#' ||
	    (c >= 'A' && c <= 'D');
}

static enum vxml_match
check_match(const struct vxml_grammar *g, const char *keys)
{
	struct vxml_interp in, again;
	enum vxml_match r, r2;
	size_t i;

	r = vxml_grammar_match(g, keys, &in);
	if (r == VXML_MATCH_MORE || r == VXML_MATCH_FULL) {
		if (in.utterance == NULL || strcmp(in.utterance, keys) != 0)
			abort();
		if (in.value == NULL && (in.tags == NULL ||
		    in.tags[0] == NULL))
			abort();
		if (in.value != NULL && in.value[0] == '\0')
			abort();
		if (in.tags != NULL)
			for (i = 0; in.tags[i] != NULL; i++)
				if (in.tags[i][0] == '\0')
					abort();
	} else if (in.utterance != NULL || in.value != NULL ||
	    in.tags != NULL || in.tag_format != NULL)
		abort();
	/* a grammar is not changed by matching */
	r2 = vxml_grammar_match(g, keys, &again);
	if (r2 != r || (in.value == NULL) != (again.value == NULL) ||
	    (in.value != NULL && strcmp(in.value, again.value) != 0))
		abort();
	vxml_interp_clear(&in);
	vxml_interp_clear(&again);
	return r;
}

/* Every prefix of keys, shortest first. */
static void
check_prefixes(const struct vxml_grammar *g, const char *keys)
{
	char buf[KEYS_MAX + 1];
	enum vxml_match prev = VXML_MATCH_PREFIX, r;
	size_t n, i;

	n = strlen(keys);
	for (i = 0; i <= n && i <= KEYS_MAX; i++) {
		memcpy(buf, keys, i);
		buf[i] = '\0';
		r = check_match(g, buf);
		if (i > 0 && (prev == VXML_MATCH_NO ||
		    prev == VXML_MATCH_FULL) && r != VXML_MATCH_NO)
			abort();
		if (i > 0 && r != VXML_MATCH_NO && prev != VXML_MATCH_PREFIX &&
		    prev != VXML_MATCH_MORE)
			abort();
		prev = r;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vxml_grammar *g;
	char err[256], keys[KEYS_MAX + 1], *s, *nl;
	size_t i, k;

	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	err[0] = 'x';
	err[1] = '\0';
	if (size > 0 && s[0] == 'B' && strlen(s) == size) {
		if ((nl = strchr(s, '\n')) != NULL)
			*nl++ = '\0';
		g = vxml_grammar_builtin(s + 1, err, sizeof(err));
		k = 0;
		for (i = 0; nl != NULL && nl[i] != '\0' && k < KEYS_MAX; i++)
			keys[k++] = nl[i];
		keys[k] = '\0';
	} else {
		g = vxml_grammar_srgs_doc((const char *)data, size, err,
		    sizeof(err));
		/* the keys the document names are the likely input */
		k = 0;
		for (i = 0; i < size && k < KEYS_MAX; i++)
			if (is_key(data[i]))
				keys[k++] = (char)data[i];
		keys[k] = '\0';
	}
	if (g == NULL) {
		if (err[0] == '\0' || strlen(err) >= sizeof(err))
			abort();
		free(s);
		return 0;
	}
	check_prefixes(g, keys);
	check_prefixes(g, "1234567890*#");
	check_prefixes(g, "11111111");
	vxml_grammar_free(g);
	free(s);
	return 0;
}
