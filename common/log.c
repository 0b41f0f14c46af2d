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

static void
log_vwrite(const char *level, const char *fmt, va_list ap, const char *err)
{
	struct timespec ts;
	struct tm tm;
	char when[32];
	char line[2048];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	vsnprintf(line, sizeof(line), fmt, ap);
	if (err)
		fprintf(stderr, "%s.%03ldZ %s %s: %s: %s\n", when,
		    ts.tv_nsec / 1000000, log_name, level, line, err);
	else
		fprintf(stderr, "%s.%03ldZ %s %s: %s\n", when,
		    ts.tv_nsec / 1000000, log_name, level, line);
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
