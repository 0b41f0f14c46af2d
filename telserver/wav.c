/* Audio files for <audio>: RIFF WAVE and Sun .au at 8 kHz mono in G.711
 * or 16-bit PCM, and headerless G.711 named by a content type or file
 * name, decoded into a ready struct tel_speech; and WAV files written for
 * recordings.  Everything read here came from the network: every length is
 * checked against the buffer, anything unusual is refused with a reason. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "telserver.h"

#define RATE		8000
#define MAX_SAMPLES	((size_t)TEL_AUDIO_MAX_MS * (RATE / 1000))

#define WAVE_PCM	0x0001
#define WAVE_ALAW	0x0006
#define WAVE_ULAW	0x0007
#define WAVE_EXT	0xFFFE

enum enc { ENC_ULAW, ENC_ALAW, ENC_S16LE, ENC_S16BE };

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static uint32_t
le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static uint16_t
le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

struct tel_speech *
tel_speech_new_pcm(const int16_t *pcm, size_t n)
{
	struct tel_speech *sp;

	if ((sp = calloc(1, sizeof(*sp))) == NULL)
		return NULL;
	if (n > 0 && (sp->samples = malloc(n * sizeof(*pcm))) == NULL) {
		free(sp);
		return NULL;
	}
	if (n > 0)
		memcpy(sp->samples, pcm, n * sizeof(*pcm));
	sp->nsamples = n;
	sp->refs = 1;
	sp->ready = 1;
	return sp;
}

struct tel_speech *
tel_speech_new_pending(void)
{
	struct tel_speech *sp;

	if ((sp = calloc(1, sizeof(*sp))) == NULL)
		return NULL;
	sp->refs = 1;
	return sp;
}

void
tel_speech_fill(struct tel_speech *dst, struct tel_speech *src)
{
	free(dst->samples);
	dst->samples = src->samples;
	dst->nsamples = src->nsamples;
	src->samples = NULL;
	src->nsamples = 0;
	dst->ready = 1;
}

/* The samples of p (len bytes in enc) as a new speech. */
static struct tel_speech *
decode_samples(const uint8_t *p, size_t len, enum enc enc, char *err,
    size_t errlen)
{
	struct tel_speech *sp;
	size_t n, i;

	n = enc == ENC_ULAW || enc == ENC_ALAW ? len : len / 2;
	if (n == 0) {
		seterr(err, errlen, "no audio samples");
		return NULL;
	}
	if (n > MAX_SAMPLES) {
		seterr(err, errlen, "audio longer than %d s",
		    TEL_AUDIO_MAX_MS / 1000);
		return NULL;
	}
	if ((sp = calloc(1, sizeof(*sp))) == NULL ||
	    (sp->samples = malloc(n * sizeof(int16_t))) == NULL) {
		free(sp);
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	for (i = 0; i < n; i++)
		switch (enc) {
		case ENC_ULAW:
			sp->samples[i] = tel_ulaw_decode(p[i]);
			break;
		case ENC_ALAW:
			sp->samples[i] = tel_alaw_decode(p[i]);
			break;
		case ENC_S16LE:
			sp->samples[i] = (int16_t)le16(p + 2 * i);
			break;
		case ENC_S16BE:
			sp->samples[i] = (int16_t)(p[2 * i] << 8 |
			    p[2 * i + 1]);
			break;
		}
	sp->nsamples = n;
	sp->refs = 1;
	sp->ready = 1;
	return sp;
}

static const char *
wave_tag_name(unsigned tag)
{
	switch (tag) {
	case 0x0002: return "MS ADPCM";
	case 0x0003: return "IEEE float";
	case 0x0011: return "IMA ADPCM";
	case 0x0031: return "GSM 6.10";
	case 0x0055: return "MP3";
	default: return "unknown";
	}
}

/* RIFF: "RIFF" size "WAVE", then chunks (id, size, body, a pad byte when
 * size is odd).  fmt must come before data; data may claim more than is
 * there (a file written while streaming): what is there is played. */
static struct tel_speech *
wav_decode(const uint8_t *b, size_t len, char *err, size_t errlen)
{
	const uint8_t *fmt = NULL;
	uint64_t off = 12, size;
	unsigned tag = 0, channels, bits;
	uint32_t rate;
	enum enc enc;

	while (off + 8 <= len) {
		size = le32(b + off + 4);
		if (!memcmp(b + off, "fmt ", 4)) {
			if (size < 16 || off + 8 + size > len) {
				seterr(err, errlen, "WAV fmt chunk truncated");
				return NULL;
			}
			fmt = b + off + 8;
			tag = le16(fmt);
			if (tag == WAVE_EXT) {
				/* WAVEFORMATEXTENSIBLE: the real tag opens
				 * the SubFormat GUID. */
				if (size < 40) {
					seterr(err, errlen, "WAV extensible "
					    "fmt chunk truncated");
					return NULL;
				}
				tag = le16(fmt + 24);
			}
		} else if (!memcmp(b + off, "data", 4)) {
			if (fmt == NULL) {
				seterr(err, errlen, "WAV data before fmt");
				return NULL;
			}
			break;
		}
		off += 8 + size + (size & 1);
	}
	if (fmt == NULL) {
		seterr(err, errlen, "WAV without fmt chunk");
		return NULL;
	}
	if (off + 8 > len) {
		seterr(err, errlen, "WAV without data chunk");
		return NULL;
	}
	channels = le16(fmt + 2);
	rate = le32(fmt + 4);
	bits = le16(fmt + 14);
	if (tag == WAVE_PCM && bits == 16)
		enc = ENC_S16LE;
	else if (tag == WAVE_ULAW && bits == 8)
		enc = ENC_ULAW;
	else if (tag == WAVE_ALAW && bits == 8)
		enc = ENC_ALAW;
	else if (tag == WAVE_PCM) {
		seterr(err, errlen, "WAV %u-bit PCM: only 16-bit PCM, "
		    "mu-law or A-law is played", bits);
		return NULL;
	} else {
		seterr(err, errlen, "WAV format 0x%04x (%s, %u bits): only "
		    "16-bit PCM, mu-law or A-law is played", tag,
		    wave_tag_name(tag), bits);
		return NULL;
	}
	if (channels != 1) {
		seterr(err, errlen, "WAV with %u channels: only mono is played",
		    channels);
		return NULL;
	}
	if (rate != RATE) {
		seterr(err, errlen, "WAV at %u Hz: only 8000 Hz is played",
		    (unsigned)rate);
		return NULL;
	}
	size = le32(b + off + 4);
	off += 8;
	if (size > len - off)
		size = len - off;
	return decode_samples(b + off, (size_t)size, enc, err, errlen);
}

/* Sun .au: ".snd", data offset, data size (~0 unknown), encoding, rate,
 * channels, all big-endian. */
static struct tel_speech *
au_decode(const uint8_t *b, size_t len, char *err, size_t errlen)
{
	uint32_t off, size, code, rate, channels;
	enum enc enc;

	if (len < 24) {
		seterr(err, errlen, "AU header truncated");
		return NULL;
	}
	off = be32(b + 4);
	size = be32(b + 8);
	code = be32(b + 12);
	rate = be32(b + 16);
	channels = be32(b + 20);
	if (off < 24 || off > len) {
		seterr(err, errlen, "AU data offset %u outside the file",
		    (unsigned)off);
		return NULL;
	}
	switch (code) {
	case 1:
		enc = ENC_ULAW;
		break;
	case 27:
		enc = ENC_ALAW;
		break;
	case 3:
		enc = ENC_S16BE;
		break;
	default:
		seterr(err, errlen, "AU encoding %u: only mu-law, A-law or "
		    "16-bit linear is played", (unsigned)code);
		return NULL;
	}
	if (channels != 1) {
		seterr(err, errlen, "AU with %u channels: only mono is played",
		    (unsigned)channels);
		return NULL;
	}
	if (rate != RATE) {
		seterr(err, errlen, "AU at %u Hz: only 8000 Hz is played",
		    (unsigned)rate);
		return NULL;
	}
	if (size > len - off)
		size = (uint32_t)(len - off);
	return decode_samples(b + off, size, enc, err, errlen);
}

static int
ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);

	return n >= k && !strncasecmp(s + n - k, suffix, k);
}

/* Headerless G.711 named by hint: 1 µ-law, 2 A-law, 0 unknown. */
static int
raw_kind(const char *hint)
{
	static const char *const ulaw[] = { "audio/basic", "audio/pcmu",
	    "audio/x-mulaw", "audio/mulaw", "audio/x-ulaw", NULL };
	static const char *const alaw[] = { "audio/pcma",
	    "audio/x-alaw-basic", "audio/x-alaw", "audio/alaw", NULL };
	static const char *const ulaw_ext[] = { ".ul", ".ulaw", ".mulaw",
	    ".pcmu", ".mu", NULL };
	static const char *const alaw_ext[] = { ".al", ".alaw", ".pcma",
	    NULL };
	size_t n, i;

	if (hint == NULL)
		return 0;
	/* A content type, parameters after ';' aside. */
	n = strcspn(hint, "; \t");
	for (i = 0; ulaw[i]; i++)
		if (n == strlen(ulaw[i]) && !strncasecmp(hint, ulaw[i], n))
			return 1;
	for (i = 0; alaw[i]; i++)
		if (n == strlen(alaw[i]) && !strncasecmp(hint, alaw[i], n))
			return 2;
	/* A URL or a file name: the path's extension. */
	n = strcspn(hint, "?#");
	for (i = 0; ulaw_ext[i]; i++)
		if (ends_with(hint, n, ulaw_ext[i]))
			return 1;
	for (i = 0; alaw_ext[i]; i++)
		if (ends_with(hint, n, alaw_ext[i]))
			return 2;
	return 0;
}

struct tel_speech *
tel_audio_decode(const void *buf, size_t len, const char *hint, char *err,
    size_t errlen)
{
	const uint8_t *b = buf;

	seterr(err, errlen, "%s", "");
	if (len >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WAVE", 4))
		return wav_decode(b, len, err, errlen);
	if (len >= 4 && !memcmp(b, "RIFF", 4)) {
		seterr(err, errlen, "RIFF file that is not WAVE");
		return NULL;
	}
	if (len >= 4 && !memcmp(b, ".snd", 4))
		return au_decode(b, len, err, errlen);
	switch (raw_kind(hint)) {
	case 1:
		return decode_samples(b, len, ENC_ULAW, err, errlen);
	case 2:
		return decode_samples(b, len, ENC_ALAW, err, errlen);
	}
	seterr(err, errlen, "not an audio file we play (WAV or AU at 8 kHz, "
	    "or headerless .ul/.al)");
	return NULL;
}

static void
put_le32(uint8_t *p, uint32_t v)
{
	p[0] = v & 0xFF;
	p[1] = (v >> 8) & 0xFF;
	p[2] = (v >> 16) & 0xFF;
	p[3] = v >> 24;
}

static void
put_le16(uint8_t *p, unsigned v)
{
	p[0] = v & 0xFF;
	p[1] = (v >> 8) & 0xFF;
}

/* 16-bit PCM: RIFF, fmt (16), data.  µ-law: fmt (18, cbSize 0) and the
 * fact chunk that non-PCM formats carry. */
uint8_t *
tel_wav_encode(const int16_t *pcm, size_t n, int ulaw, size_t *lenp)
{
	size_t hdr = ulaw ? 12 + 26 + 12 + 8 : 12 + 24 + 8;
	size_t data = ulaw ? n : 2 * n, i;
	uint8_t *b, *p;

	if (n > 0x7FFFFFFF / 2 || (b = malloc(hdr + data + 1)) == NULL)
		return NULL;
	memcpy(b, "RIFF", 4);
	put_le32(b + 4, (uint32_t)(hdr - 8 + data + (data & 1)));
	memcpy(b + 8, "WAVE", 4);
	p = b + 12;
	memcpy(p, "fmt ", 4);
	put_le32(p + 4, ulaw ? 18 : 16);
	put_le16(p + 8, ulaw ? WAVE_ULAW : WAVE_PCM);
	put_le16(p + 10, 1);
	put_le32(p + 12, RATE);
	put_le32(p + 16, ulaw ? RATE : 2 * RATE);
	put_le16(p + 20, ulaw ? 1 : 2);
	put_le16(p + 22, ulaw ? 8 : 16);
	p += 24;
	if (ulaw) {
		put_le16(p, 0);
		p += 2;
		memcpy(p, "fact", 4);
		put_le32(p + 4, 4);
		put_le32(p + 8, (uint32_t)n);
		p += 12;
	}
	memcpy(p, "data", 4);
	put_le32(p + 4, (uint32_t)data);
	p += 8;
	for (i = 0; i < n; i++)
		if (ulaw)
			p[i] = tel_ulaw_encode(pcm[i]);
		else
			put_le16(p + 2 * i, (uint16_t)pcm[i]);
	if (data & 1)
		p[data] = 0;
	*lenp = hdr + data + (data & 1);
	return b;
}
