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

#endif
