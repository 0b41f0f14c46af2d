/* See sync_spy.h. */
#include <sys/stat.h>
#include <sys/syscall.h>

#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "sync_spy.h"
#include "util.h"

#define SEEN_MAX	256

static pthread_mutex_t	 lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 released = PTHREAD_COND_INITIALIZER;
static struct sync_seen	 seen[SEEN_MAX];
static int		 nseen, fail_errno, hold, holding;

static int
spy(int fd, long call)
{
	struct stat st;
	int err;

	pthread_mutex_lock(&lock);
	while (hold) {
		holding++;
		pthread_cond_wait(&released, &lock);
		holding--;
	}
	if (fstat(fd, &st) == 0 && nseen < SEEN_MAX) {
		seen[nseen].ino = st.st_ino;
		seen[nseen].size = st.st_size;
		seen[nseen].dir = S_ISDIR(st.st_mode);
		seen[nseen].thread = pthread_self();
		nseen++;
	}
	err = fail_errno;
	pthread_mutex_unlock(&lock);
	if (err != 0) {
		errno = err;
		return -1;
	}
	return (int)syscall(call, fd);
}

int
fdatasync(int fd)
{
	return spy(fd, SYS_fdatasync);
}

int
fsync(int fd)
{
	return spy(fd, SYS_fsync);
}

void
sync_spy_reset(void)
{
	pthread_mutex_lock(&lock);
	nseen = 0;
	fail_errno = 0;
	pthread_mutex_unlock(&lock);
}

int
sync_spy_count(const char *path, struct sync_seen *last)
{
	struct stat st;
	int i, n = 0;

	if (stat(path, &st) == -1)
		return 0;
	pthread_mutex_lock(&lock);
	for (i = 0; i < nseen; i++)
		if (seen[i].ino == st.st_ino) {
			n++;
			if (last != NULL)
				*last = seen[i];
		}
	pthread_mutex_unlock(&lock);
	return n;
}

int
sync_spy_wait(const char *path, int n, int ms, struct sync_seen *last)
{
	uint64_t until = rq_mono_ms() + (uint64_t)ms;
	int got;

	while ((got = sync_spy_count(path, last)) <= n &&
	    rq_mono_ms() < until)
		usleep(2000);
	return got;
}

void
sync_spy_fail(int err)
{
	pthread_mutex_lock(&lock);
	fail_errno = err;
	pthread_mutex_unlock(&lock);
}

void
sync_spy_hold(int on)
{
	pthread_mutex_lock(&lock);
	hold = on;
	if (!on)
		pthread_cond_broadcast(&released);
	pthread_mutex_unlock(&lock);
}

int
sync_spy_held(int ms)
{
	uint64_t until = rq_mono_ms() + (uint64_t)ms;
	int n;

	for (;;) {
		pthread_mutex_lock(&lock);
		n = holding;
		pthread_mutex_unlock(&lock);
		if (n > 0 || rq_mono_ms() >= until)
			return n > 0;
		usleep(1000);
	}
}
