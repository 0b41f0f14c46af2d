/* Logging: timestamped lines on stderr. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static const char *log_name = "ringq";
static int log_debug_on;

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
 * the terminal.  Rewrites line in place, truncating to fit.
 */
static void
escape_controls(char *line, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	char out[2048];
	size_t i, o = 0;

	for (i = 0; line[i] != '\0'; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			break;
	if (line[i] == '\0')
		return;		/* the usual case: nothing to escape */
	if (size > sizeof(out))
		size = sizeof(out);
	for (i = 0; line[i] != '\0' && o + 5 <= size; i++) {
		unsigned char c = line[i];

		if (c < 0x20 || c == 0x7f) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else
			out[o++] = c;
	}
	out[o] = '\0';
	memcpy(line, out, o + 1);
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

/* "<when>.<ms>Z <name> <level>: <message>[: <err>]\n", put together by
 * hand and handed to stdio whole: the gateway logs every call it accepts,
 * and a second printf pass over each line was 2 % of its instructions. */
static void
log_vwrite(const char *level, const char *fmt, va_list ap, const char *err)
{
	struct timespec ts;
	char line[2048], out[2048 + 256];
	size_t n;
	int ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	vsnprintf(line, sizeof(line), fmt, ap);
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
	fwrite(out, 1, n, stderr);
}

#define LOG_BODY(level, err) do {		\
	va_list ap;				\
	va_start(ap, fmt);			\
	log_vwrite(level, fmt, ap, err);	\
	va_end(ap);				\
} while (0)

void
log_warn(const char *fmt, ...)
{
	const char *err = strerror(errno);

	LOG_BODY("warning", err);
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY("warning", NULL);
}

void
log_info(const char *fmt, ...)
{
	LOG_BODY("info", NULL);
}

void
log_debug(const char *fmt, ...)
{
	if (!log_debug_on)
		return;
	LOG_BODY("debug", NULL);
}

void
fatal(const char *fmt, ...)
{
	const char *err = strerror(errno);

	LOG_BODY("fatal", err);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY("fatal", NULL);
	exit(1);
}
