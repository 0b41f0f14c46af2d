/* Logging for every ringq daemon: one line per event on stderr, with the
 * daemon's name, so that a supervisor or journald can collect it. */
#ifndef RQ_LOG_H
#define RQ_LOG_H

#include <stdarg.h>

#define RQ_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* name is borrowed for the life of the process. */
void log_init(const char *name, int debug);
void log_set_debug(int debug);

void log_warn(const char *, ...) RQ_PRINTF(1, 2);    /* appends strerror(errno) */
void log_warnx(const char *, ...) RQ_PRINTF(1, 2);
void log_info(const char *, ...) RQ_PRINTF(1, 2);
void log_debug(const char *, ...) RQ_PRINTF(1, 2);
void fatal(const char *, ...) RQ_PRINTF(1, 2) __attribute__((noreturn));
void fatalx(const char *, ...) RQ_PRINTF(1, 2) __attribute__((noreturn));

#endif
