/* The tests' own fdatasync and fsync, linked in place of libc's for the
 * code under test: each records which file it synced (inode, size then,
 * directory or not) and from which thread, then syncs for real, or fails
 * with sync_spy_fail's errno, or waits while sync_spy_hold is set. */
#ifndef SYNC_SPY_H
#define SYNC_SPY_H

#include <sys/types.h>

#include <pthread.h>

struct sync_seen {
	ino_t		 ino;
	off_t		 size;
	int		 dir;
	pthread_t	 thread;
};

void	sync_spy_reset(void);
/* the syncs seen of the file or directory at path: how many, the last */
int	sync_spy_count(const char *path, struct sync_seen *last);
/* waits up to ms for count(path) to exceed n; returns the count */
int	sync_spy_wait(const char *path, int n, int ms, struct sync_seen *last);
void	sync_spy_fail(int err);		/* 0: sync for real */
void	sync_spy_hold(int on);		/* 1: syncs wait until 0 */
/* waits up to ms for a sync to wait in the hold; returns 1 if one does */
int	sync_spy_held(int ms);

#endif
