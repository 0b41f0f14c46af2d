/* A file's sync to disk, off the event loop (see syncer.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "syncer.h"
#include "util.h"

struct rq_syncer {
	pthread_t	 thread;
	pthread_mutex_t	 lock;
	pthread_cond_t	 wake;
	/* under lock: */
	char		 path[PATH_MAX];	/* the last ask's */
	int		 dir;
	uint64_t	 asked;		/* the last ask's number */
	uint64_t	 done;		/* the last one finished */
	uint64_t	 failed;	/* the last one that failed */
	uint64_t	 max_us;	/* the longest */
	int		 quit;
	int		 toolong_said;
	char		 what[64];
	struct log_rate	 log;		/* the thread's */
	struct rq_metric *m_seconds, *m_failures;	/* the thread's */
};

/* At most one line this often about the syncer thread's failures: a
 * failing disk fails every sync it is asked for, up to ten a second. */
#define SYNCER_LOG_MS	10000

/* A failed sync of path, said at once, or through rate (NULL: at once). */
static void
sync_warn(struct log_rate *rate, const char *what, const char *path)
{
	int error = errno;

	if (rate == NULL)
		log_warnx("%s: sync %s: %s", what, path, strerror(error));
	else
		log_warnx_rate(rate, SYNCER_LOG_MS, "%s: sync %s: %s", what,
		    path, strerror(error));
}

static int
sync_dir(const char *path, const char *what, struct log_rate *rate)
{
	char dpath[PATH_MAX], *slash;
	int fd, rc = 0;

	if ((size_t)snprintf(dpath, sizeof(dpath), "%s", path) >=
	    sizeof(dpath))
		return -1;
	if ((slash = strrchr(dpath, '/')) == NULL)
		snprintf(dpath, sizeof(dpath), ".");
	else
		slash[slash == dpath] = '\0';	/* "/x" -> "/" */
	if ((fd = open(dpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fsync(fd) == -1) {
		sync_warn(rate, what, dpath);
		rc = -1;
	}
	if (fd != -1)
		close(fd);
	return rc;
}

int
rq_sync_dir(const char *path, const char *what)
{
	return sync_dir(path, what, NULL);
}

static int
sync_path(const char *path, int dir, const char *what,
    struct log_rate *rate)
{
	int fd, rc = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)	/* removed since: nothing to keep */
			return 0;
		sync_warn(rate, what, path);
		return -1;
	}
	if (fdatasync(fd) == -1) {
		sync_warn(rate, what, path);
		rc = -1;
	}
	close(fd);
	if (dir && sync_dir(path, what, rate) == -1)
		rc = -1;
	return rc;
}

int
rq_sync_path(const char *path, int dir, const char *what)
{
	return sync_path(path, dir, what, NULL);
}

static void *
syncer_main(void *arg)
{
	struct rq_syncer *s = arg;
	char path[PATH_MAX];
	uint64_t n, t0, us;
	int dir, rc;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (s->done == s->asked && !s->quit)
			pthread_cond_wait(&s->wake, &s->lock);
		if (s->done == s->asked)
			break;		/* quit, with nothing left to sync */
		n = s->asked;
		dir = s->dir;
		memcpy(path, s->path, sizeof(path));
		pthread_mutex_unlock(&s->lock);
		t0 = rq_mono_us();
		rc = sync_path(path, dir, s->what, &s->log);
		us = rq_mono_us() - t0;
		rq_histogram_observe_ms(s->m_seconds, us / 1000.0);
		if (rc == -1)
			rq_metric_inc(s->m_failures);
		pthread_mutex_lock(&s->lock);
		s->done = n;
		if (us > s->max_us)
			s->max_us = us;
		if (rc == -1)
			s->failed = n;
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

struct rq_syncer *
rq_syncer_new(const char *what, const char *file)
{
	struct rq_syncer *s;
	sigset_t all, old;
	char labels[64];
	int rc;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_warn("%s: syncer", what);
		return NULL;
	}
	snprintf(s->what, sizeof(s->what), "%s", what);
	snprintf(labels, sizeof(labels), "file=\"%s\"", file);
	s->m_seconds = rq_histogram("ringq_sync_seconds", labels,
	    "How long the syncs of a file to disk took (fdatasync, and the "
	    "directory's fsync after a rename), by file");
	s->m_failures = rq_counter("ringq_sync_failures_total", labels,
	    "Syncs of a file to disk that failed (logged), by file");
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	/* signals are the loop's business, not this thread's */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&s->thread, NULL, syncer_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		log_warnx("%s: cannot start the sync thread: %s", what,
		    strerror(rc));
		pthread_cond_destroy(&s->wake);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return NULL;
	}
	return s;
}

void
rq_syncer_free(struct rq_syncer *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	s->quit = 1;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

uint64_t
rq_syncer_ask(struct rq_syncer *s, const char *path, int dir)
{
	uint64_t n = 0;

	pthread_mutex_lock(&s->lock);
	if (strlen(path) >= sizeof(s->path)) {
		/* (callers' paths are bounded below this: said once) */
		if (!s->toolong_said)
			log_warnx("%s: sync %s: path too long", s->what, path);
		s->toolong_said = 1;
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	if (s->done == s->asked) {
		memcpy(s->path, path, strlen(path) + 1);
		s->dir = dir;
		n = ++s->asked;
		pthread_cond_signal(&s->wake);
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

int
rq_syncer_result(struct rq_syncer *s, uint64_t n)
{
	int rc;

	pthread_mutex_lock(&s->lock);
	if (n == 0 || n > s->asked)
		rc = -1;		/* never asked */
	else
		rc = n > s->done ? 0 : n == s->failed ? -1 : 1;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

void
rq_syncer_stats(struct rq_syncer *s, uint64_t *n, uint64_t *max_us)
{
	pthread_mutex_lock(&s->lock);
	*n = s->done;
	*max_us = s->max_us;
	pthread_mutex_unlock(&s->lock);
}
