/* wav.c: every format we play decodes to the samples it holds; everything
 * else is refused with a reason; what tel_wav_encode writes reads back. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "telserver.h"

#define N	1000

static int16_t pcm[N];

static void
fill_pcm(void)
{
	int i;

	for (i = 0; i < N; i++)
		pcm[i] = (int16_t)((i * 7919) % 60000 - 30000);
}

static void
put16(uint8_t *p, unsigned v)
{
	p[0] = v & 0xFF;
	p[1] = (v >> 8) & 0xFF;
}

static void
put32(uint8_t *p, uint32_t v)
{
	put16(p, v & 0xFFFF);
	put16(p + 2, v >> 16);
}

/* A WAV file with a fmt chunk of fmtlen bytes (16, 18 or 40), a LIST chunk
 * of odd length before the data (pad byte), and data of datalen bytes
 * (claiming data_claim). */
static size_t
make_wav(uint8_t *b, unsigned tag, unsigned ch, uint32_t rate,
    unsigned bits, unsigned fmtlen, const uint8_t *data, size_t datalen,
    uint32_t data_claim)
{
	size_t o = 0;

	memcpy(b, "RIFF", 4);
	memcpy(b + 8, "WAVE", 4);
	o = 12;
	memcpy(b + o, "fmt ", 4);
	put32(b + o + 4, fmtlen);
	memset(b + o + 8, 0, fmtlen);
	put16(b + o + 8, fmtlen == 40 ? 0xFFFE : tag);
	put16(b + o + 10, ch);
	put32(b + o + 12, rate);
	put32(b + o + 16, rate * ch * bits / 8);
	put16(b + o + 20, ch * bits / 8);
	put16(b + o + 22, bits);
	if (fmtlen == 40) {
		put16(b + o + 24, 22);
		put16(b + o + 8 + 24, tag);	/* SubFormat GUID */
	}
	o += 8 + fmtlen;
	memcpy(b + o, "LIST", 4);
	put32(b + o + 4, 5);
	memcpy(b + o + 8, "INFOx", 5);
	b[o + 13] = 0;
	o += 14;
	memcpy(b + o, "data", 4);
	put32(b + o + 4, data_claim);
	memcpy(b + o + 8, data, datalen);
	o += 8 + datalen;
	put32(b + 4, (uint32_t)(o - 8));
	return o;
}

static uint8_t file[64 + 48 + 2 * N];
static uint8_t data[2 * N];

static void
check_decodes(const uint8_t *b, size_t len, const char *hint,
    const int16_t *want, size_t n)
{
	struct tel_speech *sp;
	char err[128];

	sp = tel_audio_decode(b, len, hint, err, sizeof(err));
	if (sp == NULL)
		fail_msg("refused: %s", err);
	assert_int_equal(sp->ready, 1);
	assert_int_equal(sp->refs, 1);
	assert_null(sp->text);
	assert_int_equal(sp->nsamples, n);
	assert_memory_equal(sp->samples, want, n * sizeof(int16_t));
	tel_speech_unref(sp);
}

static void
check_refused(const uint8_t *b, size_t len, const char *hint,
    const char *why)
{
	char err[128];

	assert_null(tel_audio_decode(b, len, hint, err, sizeof(err)));
	if (strstr(err, why) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", err, why);
}

static void
test_pcm16(void **state)
{
	size_t len, i;

	fill_pcm();
	for (i = 0; i < N; i++)
		put16(data + 2 * i, (uint16_t)pcm[i]);
	len = make_wav(file, 1, 1, 8000, 16, 16, data, 2 * N, 2 * N);
	check_decodes(file, len, NULL, pcm, N);
	len = make_wav(file, 1, 1, 8000, 16, 40, data, 2 * N, 2 * N);
	check_decodes(file, len, "audio/x-wav", pcm, N);
	/* streamed: the data size is unknown, what is there plays */
	len = make_wav(file, 1, 1, 8000, 16, 16, data, 2 * N, 0xFFFFFFFF);
	check_decodes(file, len, NULL, pcm, N);
	/* truncated in the middle of a sample: the whole ones */
	check_decodes(file, len - 3, NULL, pcm, N - 2);
}

static void
test_g711(void **state)
{
	int16_t want[N];
	size_t len, i;

	for (i = 0; i < N; i++) {
		data[i] = (uint8_t)(i * 37);
		want[i] = tel_ulaw_decode(data[i]);
	}
	len = make_wav(file, 7, 1, 8000, 8, 18, data, N, N);
	check_decodes(file, len, NULL, want, N);
	len = make_wav(file, 7, 1, 8000, 8, 40, data, N, N);
	check_decodes(file, len, NULL, want, N);
	/* headerless, named by its type or its name */
	check_decodes(data, N, "audio/basic", want, N);
	check_decodes(data, N, "audio/PCMU; rate=8000", want, N);
	check_decodes(data, N, "http://x/prompts/hello.ul?v=2", want, N);

	for (i = 0; i < N; i++)
		want[i] = tel_alaw_decode(data[i]);
	len = make_wav(file, 6, 1, 8000, 8, 16, data, N, N);
	check_decodes(file, len, NULL, want, N);
	check_decodes(data, N, "file.alaw", want, N);
	check_decodes(data, N, "audio/x-alaw-basic", want, N);
}

static size_t
make_au(uint8_t *b, uint32_t enc, uint32_t rate, uint32_t ch,
    const uint8_t *d, size_t n)
{
	static const uint8_t magic[4] = { '.', 's', 'n', 'd' };
	uint32_t v[5] = { 28, (uint32_t)n, enc, rate, ch };
	int i;

	memcpy(b, magic, 4);
	for (i = 0; i < 5; i++) {
		b[4 + 4 * i] = v[i] >> 24;
		b[5 + 4 * i] = (v[i] >> 16) & 0xFF;
		b[6 + 4 * i] = (v[i] >> 8) & 0xFF;
		b[7 + 4 * i] = v[i] & 0xFF;
	}
	memset(b + 24, 0, 4);		/* annotation */
	memcpy(b + 28, d, n);
	return 28 + n;
}

static void
test_au(void **state)
{
	int16_t want[N];
	size_t len, i;

	fill_pcm();
	for (i = 0; i < N; i++) {
		data[2 * i] = (uint8_t)((uint16_t)pcm[i] >> 8);
		data[2 * i + 1] = (uint8_t)(pcm[i] & 0xFF);
	}
	len = make_au(file, 3, 8000, 1, data, 2 * N);
	check_decodes(file, len, NULL, pcm, N);
	for (i = 0; i < N; i++)
		want[i] = tel_alaw_decode(data[i]);
	len = make_au(file, 27, 8000, 1, data, N);
	check_decodes(file, len, NULL, want, N);
	len = make_au(file, 2, 8000, 1, data, N);	/* 8-bit linear */
	check_refused(file, len, NULL, "AU encoding 2");
	len = make_au(file, 1, 16000, 1, data, N);
	check_refused(file, len, NULL, "8000 Hz");
	check_refused(file, 20, NULL, "truncated");
}

static void
test_refused(void **state)
{
	size_t len;

	memset(data, 0x55, sizeof(data));
	len = make_wav(file, 1, 2, 8000, 16, 16, data, 400, 400);
	check_refused(file, len, NULL, "2 channels");
	len = make_wav(file, 1, 1, 16000, 16, 16, data, 400, 400);
	check_refused(file, len, NULL, "16000 Hz");
	len = make_wav(file, 1, 1, 8000, 8, 16, data, 400, 400);
	check_refused(file, len, NULL, "8-bit PCM");
	len = make_wav(file, 0x11, 1, 8000, 4, 20, data, 400, 400);
	check_refused(file, len, NULL, "IMA ADPCM");
	len = make_wav(file, 3, 1, 8000, 32, 40, data, 400, 400);
	check_refused(file, len, NULL, "0x0003");
	len = make_wav(file, 7, 1, 8000, 8, 18, data, 0, 0);
	check_refused(file, len, NULL, "no audio samples");
	/* no data chunk: cut before it */
	len = make_wav(file, 7, 1, 8000, 8, 18, data, 10, 10);
	check_refused(file, len - 18, NULL, "without data");
	/* fmt longer than the file */
	check_refused(file, 30, NULL, "fmt chunk truncated");
	/* data before fmt */
	memcpy(file + 12, "data", 4);
	check_refused(file, len, NULL, "before fmt");
	check_refused(file, 12, NULL, "without fmt");
	memcpy(file + 8, "AVI ", 4);
	check_refused(file, len, NULL, "not WAVE");
	check_refused(data, 400, NULL, "not an audio file");
	check_refused(data, 400, "audio/mpeg", "not an audio file");
	check_refused(data, 0, "x.ul", "no audio samples");
}

static void
test_encode(void **state)
{
	struct tel_speech *sp;
	uint8_t *w;
	size_t len, i;
	char err[128];

	fill_pcm();
	assert_non_null(w = tel_wav_encode(pcm, N, 0, &len));
	assert_int_equal(len, 44 + 2 * N);
	assert_memory_equal(w, "RIFF", 4);
	assert_non_null(sp = tel_audio_decode(w, len, NULL, err, sizeof(err)));
	assert_int_equal(sp->nsamples, N);
	assert_memory_equal(sp->samples, pcm, sizeof(pcm));
	tel_speech_unref(sp);
	free(w);

	assert_non_null(w = tel_wav_encode(pcm, N - 1, 1, &len));
	assert_int_equal(len % 2, 0);		/* padded */
	assert_int_equal(w[20], 7);		/* µ-law */
	assert_non_null(sp = tel_audio_decode(w, len, NULL, err, sizeof(err)));
	assert_int_equal(sp->nsamples, N - 1);
	for (i = 0; i < N - 1; i++)
		assert_int_equal(sp->samples[i],
		    tel_ulaw_decode(tel_ulaw_encode(pcm[i])));
	tel_speech_unref(sp);
	free(w);

	/* an empty recording is a valid (empty) file */
	assert_non_null(w = tel_wav_encode(NULL, 0, 0, &len));
	assert_int_equal(len, 44);
	free(w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pcm16),
		cmocka_unit_test(test_g711),
		cmocka_unit_test(test_au),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_encode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
