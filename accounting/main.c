/* ringq-accounting: arguments, configuration, signals and the loop; the
 * work is in acct.c. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "accounting.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

static int
config_check(const struct rq_config *cfg, char *err, size_t errlen)
{
	if (acct_conninfo_valid(cfg->pg_conninfo))
		return 0;
	snprintf(err, errlen, "[postgres] conninfo does not parse as a "
	    "database name, key=value pairs or a postgresql:// URI (not "
	    "shown: it may hold a password)");
	return -1;
}

int
main(int argc, char *argv[])
{
	struct rq_config cfg;
	struct acct a;
	struct acct_cb *cb;
	struct rq_metrics_server *ms;

	rq_daemon_start_checked(argc, argv, "ringq-accounting", &cfg,
	    config_check);
	rq_redis_set_password(cfg.redis_password);
	if (acct_init(&a, &cfg) == -1)
		fatalx("cannot start");
	if ((cb = acct_cb_start(&cfg)) == NULL)
		fatalx("cannot start the callback thread");
	if (rq_pidfile_write(cfg.run_dir, "ringq-accounting") == -1)
		fatalx("cannot write the PID file");
	ms = rq_metrics_start(cfg.acct_metrics_listen);
	log_info("started");

	while (!rq_stop) {
		acct_step(&a, 200);
		/* Bound, PostgreSQL and Redis reached: tell systemd once. */
		if (a.pg != NULL && !a.redis_down)
			rq_daemon_ready();
	}

	log_info("stopping");
	rq_daemon_stopping();
	rq_metrics_stop(ms);
	acct_cb_stop(cb);
	acct_free(&a);
	rq_pidfile_remove(cfg.run_dir, "ringq-accounting");
	rq_config_free(&cfg);
	return 0;
}
