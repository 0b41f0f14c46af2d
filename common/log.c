/* Logging: timestamped lines on stderr. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "util.h"

static const char *log_name = "ringq";
static int log_debug_on;

/* log_defer(): the deferring thread's info and debug lines, not written
 * yet.  Only that thread touches them. */
static __thread int log_deferring;
static void (*log_wake)(void *);
static void *log_wake_arg;
static char log_pending[16384];
static size_t log_npending;

void
log_init(const char *name, int debug)
{
	log_name = name;
	log_debug_on = debug;
	setvbuf(stderr, NULL, _IOLBF, 0);
}

void
log_set_debug(int debug)
{
	log_debug_on = debug;
}

/*
 * Log lines quote strings from peers (SIP phrases, telserver names, Redis
 * errors): escape control bytes so that no peer can forge a line or move
 * the terminal.  That includes the C1 controls as UTF-8 encodes them
 * (0xc2 0x80-0x9f: 0xc2 0x9b is a CSI to a UTF-8 terminal); other bytes
 * from 0x80 are left, as parts of UTF-8 text.  Rewrites line in place,
 * truncating to fit.
 */
static int
is_control(const unsigned char *p)
{
	return p[0] < 0x20 || p[0] == 0x7f ||
	    (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f);
}

/* "\xNN" for byte c at out + o; returns the new length. */
static size_t
put_escaped(char *out, size_t o, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";

	out[o++] = '\\';
	out[o++] = 'x';
	out[o++] = hex[c >> 4];
	out[o++] = hex[c & 15];
	return o;
}

static void
escape_controls(char *line, size_t size)
{
	const unsigned char *in = (const unsigned char *)line;
	char out[2048];
	size_t i, o = 0;

	if (size > sizeof(out))
		size = sizeof(out);
	for (i = 0; in[i] != '\0' && o + 9 <= size; i++) {
		if (!is_control(in + i)) {
			out[o++] = in[i];
			continue;
		}
		o = put_escaped(out, o, in[i]);
		if (in[i] == 0xc2)	/* a UTF-8 C1: both its bytes */
			o = put_escaped(out, o, in[++i]);
	}
	out[o] = '\0';
	memcpy(line, out, o + 1);
}

/* Tenants' URLs (VoiceXML applications, audio, callbacks) and connection
 * URIs may carry tokens in their query or a user:password@: whoever logs
 * one, the line shows where it leads only (rq_redact_urls). */
static void
redact_urls(char *line, size_t size)
{
	char out[2048];

	if (size > sizeof(out))
		size = sizeof(out);
	rq_redact_urls(line, out, size);
	memcpy(line, out, strlen(out) + 1);
}

/* What a line needs of the two above, found in one pass (most lines need
 * neither). */
#define LINE_URLS	0x1
#define LINE_CONTROLS	0x2

static int
line_needs(const char *line)
{
	/* 1: the end, or a byte that may begin a control (0x01-0x1f, 0x7f,
	 * 0xc2) or a "://"; one lookup a byte for the rest */
	static const unsigned char maybe[256] = {
		[0x00 ... 0x1f] = 1, [':'] = 1, [0x7f] = 1, [0xc2] = 1,
	};
	const unsigned char *p = (const unsigned char *)line;
	int needs = 0;

	for (;; p++) {
		while (!maybe[*p])
			p++;
		if (*p == '\0')
			return needs;
		if (is_control(p))
			needs |= LINE_CONTROLS;
		else if (p[0] == ':' && p[1] == '/' && p[2] == '/')
			needs |= LINE_URLS;
	}
}

/*
 * The line's second, formatted once per second (per thread): strftime
 * costs more than the rest of a short line (glibc's calls tzset, which
 * stats /etc/localtime), and a busy daemon logs thousands of lines a
 * second.
 */
static const char *
log_when(time_t sec)
{
	static __thread time_t	 when_sec = (time_t)-1;
	static __thread char	 when[32];
	struct tm tm;

	if (sec != when_sec) {
		gmtime_r(&sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		when_sec = sec;
	}
	return when;
}

/* Appends s to buf (of size bytes, n used), leaving room for a newline. */
static size_t
append(char *buf, size_t n, size_t size, const char *s)
{
	size_t len = strlen(s);

	if (len > size - 1 - n)
		len = size - 1 - n;
	memcpy(buf + n, s, len);
	return n + len;
}

void
log_flush(void)
{
	if (!log_deferring || log_npending == 0)
		return;
	fwrite(log_pending, 1, log_npending, stderr);
	fflush(stderr);
	log_npending = 0;
}

void
log_defer(void (*wake)(void *), void *arg)
{
	static int registered;

	if (wake == NULL) {
		log_flush();
		if (log_deferring)
			log_wake = NULL;
		log_deferring = 0;
		return;
	}
	/* one buffer: one thread of the process defers */
	if (log_wake != NULL && !log_deferring)
		return;
	if (!registered && atexit(log_flush) != 0)
		return;		/* lines would be lost at exit: stay direct */
	registered = 1;
	log_wake = wake;
	log_wake_arg = arg;
	log_deferring = 1;
}

/* A deferred line waits in log_pending; any other is written at once,
 * after the lines waiting (so a warning follows what led to it). */
static void
log_out(const char *out, size_t n, int deferrable)
{
	int was_empty;

	if (!log_deferring) {
		fwrite(out, 1, n, stderr);
		return;
	}
	if (!deferrable || log_npending + n > sizeof(log_pending)) {
		log_flush();
		if (!deferrable) {
			fwrite(out, 1, n, stderr);
			return;
		}
	}
	was_empty = log_npending == 0;
	memcpy(log_pending + log_npending, out, n);
	log_npending += n;
	if (was_empty)
		log_wake(log_wake_arg);
}

/* "<when>.<ms>Z <name> <level>: <message>[: <err>]\n", put together by
 * hand and handed to stdio whole: the gateway logs every call it accepts,
 * and a second printf pass over each line was 2 % of its instructions. */
static void
log_vwrite(const char *level, int deferrable, const char *fmt, va_list ap,
    const char *err)
{
	struct timespec ts;
	char line[2048], out[2048 + 256];
	size_t n;
	int ms, needs;

	clock_gettime(CLOCK_REALTIME, &ts);
	vsnprintf(line, sizeof(line), fmt, ap);
	needs = line_needs(line);
	if (needs & LINE_URLS)
		redact_urls(line, sizeof(line));
	if (needs & LINE_CONTROLS)
		escape_controls(line, sizeof(line));
	ms = (int)(ts.tv_nsec / 1000000);
	n = append(out, 0, sizeof(out), log_when(ts.tv_sec));
	out[n++] = '.';
	out[n++] = '0' + ms / 100;
	out[n++] = '0' + ms / 10 % 10;
	out[n++] = '0' + ms % 10;
	out[n++] = 'Z';
	out[n++] = ' ';
	n = append(out, n, sizeof(out), log_name);
	n = append(out, n, sizeof(out), " ");
	n = append(out, n, sizeof(out), level);
	n = append(out, n, sizeof(out), ": ");
	n = append(out, n, sizeof(out), line);
	if (err) {
		n = append(out, n, sizeof(out), ": ");
		n = append(out, n, sizeof(out), err);
	}
	out[n++] = '\n';
	log_out(out, n, deferrable);
}

#define LOG_BODY(level, deferrable, err) do {		\
	va_list ap;					\
	va_start(ap, fmt);				\
	log_vwrite(level, deferrable, fmt, ap, err);	\
	va_end(ap);					\
} while (0)

void
log_warn(const char *fmt, ...)
{
	const char *err = strerror(errno);

	LOG_BODY("warning", 0, err);
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY("warning", 0, NULL);
}

void
log_warnx_rate(struct log_rate *r, unsigned every_ms, const char *fmt, ...)
{
	struct timespec ts;
	unsigned long long now;
	char line[1024];
	va_list ap;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (unsigned long long)ts.tv_sec * 1000 +
	    (unsigned long long)ts.tv_nsec / 1000000;
	if (r->last_ms != 0 && now - r->last_ms < every_ms) {
		r->held++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (r->held > 0)
		log_warnx("%s (and %lu more like it since the last such line)",
		    line, r->held);
	else
		log_warnx("%s", line);
	r->last_ms = now;
	r->held = 0;
}

void
log_info(const char *fmt, ...)
{
	LOG_BODY("info", 1, NULL);
}

void
log_debug(const char *fmt, ...)
{
	if (!log_debug_on)
		return;
	LOG_BODY("debug", 1, NULL);
}

void
fatal(const char *fmt, ...)
{
	const char *err = strerror(errno);

	LOG_BODY("fatal", 0, err);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY("fatal", 0, NULL);
	exit(1);
}
