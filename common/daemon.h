/* The start of every ringq daemon's main(): "-f config [-n] [-d]". */
#ifndef RQ_DAEMON_H
#define RQ_DAEMON_H

#include "config.h"

/* Parses the arguments, loads the config into cfg, and with -n prints
 * "configuration OK" or the error (naming file and line) and exits.
 * Otherwise starts logging as name (debug with -d or [global] debug),
 * installs the stop signals (rq_stop), ignores SIGPIPE and creates run_dir.
 * Returns only when the daemon should run; cfg is the caller's to free. */
void	rq_daemon_start(int argc, char *argv[], const char *name,
	    struct rq_config *cfg);
/* The same, with a check of the daemon's own on the loaded config (what
 * common/config.c cannot judge): -1 with a reason in err fails the start
 * and -n alike. */
void	rq_daemon_start_checked(int argc, char *argv[], const char *name,
	    struct rq_config *cfg,
	    int (*check)(const struct rq_config *, char *, size_t));

/* systemd's notification protocol (Type=notify units).  Without
 * NOTIFY_SOCKET in the environment (started by hand, by a test, or not by
 * systemd) both do nothing.  rq_daemon_ready() sends READY=1 once, when
 * the daemon really serves (after its first Redis connect, its binds);
 * later calls are no-ops.  rq_daemon_stopping() sends STOPPING=1 when
 * shutdown begins. */
void	rq_daemon_ready(void);
void	rq_daemon_stopping(void);

#endif
