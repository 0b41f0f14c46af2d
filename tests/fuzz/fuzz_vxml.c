/* libFuzzer target: a VoiceXML document (the input) run by the interpreter
 * on the in-memory platform of its unit tests (virtual time, 1,000 steps at
 * most), with the keys a caller might press.  The first byte chooses the
 * keys and whether they barge in; the rest is the document, served at
 * http://t/f.vxml (also as its own application root and subdialogs). */
#include <stdint.h>

#include "../unit/telserver/vxml_harness.h"

/* the harness's transcript check is for the unit tests */
static int (*const unused_saw)(const struct harness *, const char *) = h_saw;

static const char *keys[] = { "", "1", "12#", "9", "1234", "*#", "2", "0" };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct h_doc docs[2] = { { "http://t/f.vxml", NULL }, { NULL, NULL } };
	struct harness h;
	char *doc;

	if (size < 1)
		return 0;
	if ((doc = malloc(size)) == NULL)
		return 0;
	memcpy(doc, data + 1, size - 1);
	doc[size - 1] = '\0';
	docs[0].text = doc;
	h_init(&h, docs);
	h.dtmf = keys[data[0] & 7];
	h.barge = (data[0] >> 3) & 1;
	h.async = (data[0] >> 4) & 1;
	h_run(&h, "http://t/f.vxml");
	h_free(&h);
	free(doc);
	(void)unused_saw;
	return 0;
}
