/* Daemon start-up shared by the five ringq daemons (see daemon.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "daemon.h"
#include "log.h"
#include "util.h"

static void __attribute__((noreturn))
usage(const char *name)
{
	fprintf(stderr, "usage: %s -f config [-n] [-d]\n", name);
	exit(1);
}

void
rq_daemon_start(int argc, char *argv[], const char *name,
    struct rq_config *cfg)
{
	rq_daemon_start_checked(argc, argv, name, cfg, NULL);
}

void
rq_daemon_start_checked(int argc, char *argv[], const char *name,
    struct rq_config *cfg,
    int (*own_check)(const struct rq_config *, char *, size_t))
{
	const char *path = NULL;
	char err[512];
	int ch, check = 0, debug = 0;

	while ((ch = getopt(argc, argv, "f:nd")) != -1) {
		switch (ch) {
		case 'f':
			path = optarg;
			break;
		case 'n':
			check = 1;
			break;
		case 'd':
			debug = 1;
			break;
		default:
			usage(name);
		}
	}
	if (path == NULL || optind != argc)
		usage(name);
	if (rq_config_load(cfg, path, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: %s\n", name, err);
		exit(1);
	}
	if (own_check != NULL && own_check(cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: %s: %s\n", name, path, err);
		rq_config_free(cfg);
		exit(1);
	}
	if (check) {
		printf("configuration OK\n");
		rq_config_free(cfg);
		exit(0);
	}
	log_init(name, debug || cfg->debug);
	rq_signals_install();
	if (cfg->run_dir[0] != '\0' && mkdir(cfg->run_dir, 0755) == -1 &&
	    errno != EEXIST)
		fatal("mkdir %s", cfg->run_dir);
}

void
rq_daemon_ready(void)
{
	static int sent;
	int rc;

	if (sent)
		return;
	sent = 1;
	/* 0: no NOTIFY_SOCKET, not under systemd's Type=notify. */
	if ((rc = sd_notify(0, "READY=1")) < 0)
		log_warnx("sd_notify READY=1: %s", strerror(-rc));
	else if (rc > 0)
		log_debug("told systemd we are ready");
}

void
rq_daemon_stopping(void)
{
	int rc;

	if ((rc = sd_notify(0, "STOPPING=1")) < 0)
		log_warnx("sd_notify STOPPING=1: %s", strerror(-rc));
}
