/* A file's sync to disk, off the event loop.  An fdatasync costs a loop
 * milliseconds (up to about 10 on a busy host: docs/benchmarks.md), and a
 * telserver's loop answers SIP and takes jobs: so a thread of the
 * syncer's own opens the file by its path, syncs it, and the directory
 * with it when asked (after a rename), while the loop goes on.  The loop
 * asks at most once a tick, when it wrote since its last ask; a power cut
 * so usually loses only the writes of the last tick or two, against those
 * of the kernel's own writeback delay (30 s by default); docs/delivery.md
 * says when it loses more.
 *
 * A failed sync is logged, not tried again: Linux marks the pages clean
 * even when their write failed, so a second fdatasync would say nothing. */
#ifndef RQ_SYNCER_H
#define RQ_SYNCER_H

#include <stdint.h>

struct rq_syncer;

/* what names the files in log lines ("evout: journal"); file in the
 * metrics, ringq_sync_seconds{file=...} and ringq_sync_failures_total
 * (a word of ours: "events_journal").  Returns NULL (logged) when the
 * thread cannot start. */
struct rq_syncer *rq_syncer_new(const char *what, const char *file);
/* Waits for the sync under way, if any, then frees s. */
void		 rq_syncer_free(struct rq_syncer *s);

/* Asks for path's data, and with dir its directory's entries, to reach
 * the disk.  Returns the ask's number (from 1 on), or 0 while the
 * previous one is still under way: ask again at the next tick. */
uint64_t	 rq_syncer_ask(struct rq_syncer *s, const char *path, int dir);

/* What became of the latest ask, n: 0 under way, 1 synced, -1 failed
 * (logged) or never asked.  (Of an older ask, 1 unless it failed last.) */
int		 rq_syncer_result(struct rq_syncer *s, uint64_t n);

/* The syncs done so far, and the longest of them (microseconds). */
void		 rq_syncer_stats(struct rq_syncer *s, uint64_t *n,
		    uint64_t *max_us);

/* Syncs path (and its directory) now, in the calling thread: at exit.
 * A path removed meanwhile has nothing to sync.  Returns 0 or -1
 * (logged). */
int		 rq_sync_path(const char *path, int dir, const char *what);
/* Syncs the directory that holds path (its entries: a rename). */
int		 rq_sync_dir(const char *path, const char *what);

#endif
