/* libFuzzer target: audio files come from any web server.  The decoder
 * must refuse any byte string cleanly with a printable reason, or give a
 * ready speech of at most TEL_AUDIO_MAX_MS that a WAV written from it
 * decodes back to.  The first byte picks the hint (none, µ-law or A-law by
 * name, a content type), so the headerless paths are reached too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "telserver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const hints[] = { NULL, "x.ul", "a/b.alaw?x=1",
	"audio/basic", "audio/x-wav" };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tel_speech *sp, *again;
	const char *hint;
	char err[160];
	uint8_t *w;
	size_t len, i;

	if (size < 1)
		return 0;
	hint = hints[data[0] % (sizeof(hints) / sizeof(hints[0]))];
	memset(err, 'x', sizeof(err));
	sp = tel_audio_decode(data + 1, size - 1, hint, err, sizeof(err));
	if (sp == NULL) {
		if (err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		for (i = 0; err[i] != '\0'; i++)
			if ((unsigned char)err[i] < 0x20 ||
			    (unsigned char)err[i] >= 0x7f)
				abort();
		return 0;
	}
	if (!sp->ready || sp->refs != 1 || sp->nsamples == 0 ||
	    sp->nsamples > (size_t)TEL_AUDIO_MAX_MS * 8 ||
	    sp->nsamples > size)
		abort();
	if ((w = tel_wav_encode(sp->samples, sp->nsamples, 0, &len)) == NULL)
		abort();
	again = tel_audio_decode(w, len, NULL, err, sizeof(err));
	if (again == NULL || again->nsamples != sp->nsamples ||
	    memcmp(again->samples, sp->samples, sp->nsamples * 2) != 0)
		abort();
	tel_speech_unref(again);
	free(w);
	tel_speech_unref(sp);
	return 0;
}
