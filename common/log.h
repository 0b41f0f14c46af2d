/* Logging for every ringq daemon: one line per event on stderr, with the
 * daemon's name, so that a supervisor or journald can collect it. */
#ifndef RQ_LOG_H
#define RQ_LOG_H

#include <stdarg.h>

#define RQ_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* name is borrowed for the life of the process. */
void log_init(const char *name, int debug);
void log_set_debug(int debug);

/*
 * Batching for a busy event loop: from log_defer() on, the calling thread's
 * info and debug lines wait in a buffer until log_flush() (or until it is
 * full), one write for a round of the loop instead of one per line.
 * wake(arg) runs when a line goes into the empty buffer: the caller then
 * flushes soon (the gateway: at the end of its loop's current round).
 * Warnings and fatal errors write the waiting lines and themselves at
 * once, and so does exit; a crash loses what waits.  Other threads' lines
 * are written at once.  One thread of a process may defer (a second
 * one's log_defer() does nothing); log_defer(NULL, NULL) in that thread
 * flushes and stops.  A flush at exit happens only when the deferring
 * thread calls exit().
 */
void log_defer(void (*wake)(void *), void *arg);
void log_flush(void);

/* A warning that may come in floods (refused clients, a failing accept()):
 * written at most once per every_ms, with how many like it were held back
 * since the last one.  A rate is one thread's. */
struct log_rate {
	unsigned long long	last_ms;	/* monotonic; 0 = never */
	unsigned long		held;
};
void log_warnx_rate(struct log_rate *r, unsigned every_ms, const char *, ...)
    RQ_PRINTF(3, 4);

void log_warn(const char *, ...) RQ_PRINTF(1, 2);    /* appends strerror(errno) */
void log_warnx(const char *, ...) RQ_PRINTF(1, 2);
void log_info(const char *, ...) RQ_PRINTF(1, 2);
void log_debug(const char *, ...) RQ_PRINTF(1, 2);
void fatal(const char *, ...) RQ_PRINTF(1, 2) __attribute__((noreturn));
void fatalx(const char *, ...) RQ_PRINTF(1, 2) __attribute__((noreturn));

#endif
