/* Event outbox (see evout.h). */
#include <sys/file.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "bus.h"
#include "evout.h"
#include "log.h"
#include "syncer.h"
#include "util.h"

/* Pending events are indexed by (call_id, attempt, status), so that an
 * ack costs O(1) however far accounting lags; the list is kept in sent_ms
 * order, so that a tick stops at the first event not yet due. */
#define EVOUT_BUCKETS	65536
#define EVOUT_DROP_LOG_MS	1000

/* ZeroMQ's queue toward accounting: short, since the outbox keeps every
 * event until its ack anyway.  What it refuses while full waits at the
 * head of the outbox, in order, and goes as soon as there is room
 * (unsent_flush), up to EVOUT_FLUSH_MAX at a time. */
#define EVOUT_SNDHWM		1000
#define EVOUT_FLUSH_MAX		4096
/* rounds of reading and flushing in one rq_evout_process: enough for the
 * word of room or acks that the last round's sends took in */
#define EVOUT_PROCESS_ROUNDS	4

/* The journal: EVOUT_JOURNAL_MAGIC, then one record per event emitted,
 * its packed length (4 bytes, little-endian) and the packed EVENT.  Acks
 * are not written: when nothing is pending the file is cut to its header,
 * and when it has grown EVOUT_JOURNAL_SLACK beyond twice what is pending
 * it is rewritten with the pending events only.  An event acked since the
 * last cut may so be sent again after a restart; accounting stores it
 * once.  A write that fails is cut off the file, and the events that
 * follow stay in memory only until a rewrite succeeds.  jpath.lock, never
 * renamed, holds the flock that keeps a second process out.  A thread
 * syncs the file at the ticks after it changed (journal_sync), and a
 * rewrite before it is renamed over the journal (journal_rewrite). */
#define EVOUT_JOURNAL_MAGIC	"ringqEv1"
#define EVOUT_JOURNAL_MAGIC_LEN	8
#define EVOUT_JOURNAL_SLACK	(1u << 20)
#define EVOUT_RECORD_MAX	(1u << 20)
#define EVOUT_JOURNAL_RETRY_MAX_MS 10000
/* The journal's syncs: one per this at most, however often the ticks.
 * Under the telserver's 100 ms tick, so that a tick a few ms late does not
 * make the next one skip its ask. */
#define EVOUT_SYNC_MS		90

struct pending {
	struct pending	*next, *prev;
	struct pending	*hnext;		/* same bucket */
	struct rq_msg	 ev;
	uint64_t	 sent_ms;	/* monotonic; 0: among the unsent */
	uint64_t	 first_ms;	/* its first send, or 0 */
	int		 resent;	/* sent more than once */
	int		 lost;		/* with a run of accounting that
					 * stopped: goes again at a tick */
	size_t		 jlen;		/* its journal record's bytes */
};

struct rq_evout {
	void		*sock;
	struct rq_bus_in in;
	struct pending	*head, *tail;	/* least recently sent first */
	struct pending	*unsent_last;	/* the events ZeroMQ refused (its
					 * queue was full) are the first ones,
					 * up to this one; NULL: none */
	size_t		 npending;
	struct pending	*bucket[EVOUT_BUCKETS];
	uint64_t	 round_ms;	/* first resend unanswered, or 0 */
	uint64_t	 ack_ms;	/* the last ack of a pending event */
	uint64_t	 acked_sent_ms;	/* the latest first_ms acked */
	uint64_t	 probe_ms;	/* last probe while accounting is
					 * away; 0 while it answers */
	/* Accounting's run, from its acks: when it changes, the events sent
	 * before the new run's first ack go again at once (lost), not a
	 * wait later: the run that had them is gone. */
	char		 boot_id[64];
	int		 boot_new;	/* no ack of a pending event since */
	/* How long acks take (ms, once measured), and so how long an event
	 * waits for its ack before it is sent again. */
	int		 measured;
	uint64_t	 srtt_ms, rttvar_ms, rto_ms;
	uint64_t	 dropped;	/* events dropped while full: the
					 * count at exit */
	struct log_rate	 dropped_log;	/* one line a second, not one an
					 * event */
	/* the journal, when there is one (jfd >= 0) */
	int		 jfd;
	int		 lockfd;	/* flock'd: jpath.lock */
	char		*jpath;
	size_t		 jbytes;	/* the file's length */
	size_t		 jlive;		/* of it, the pending events' records */
	int		 jstale;	/* a write failed: events are missing
					 * from it until it is written again */
	uint64_t	 jretry_ms;	/* after a failed rewrite, the next */
	uint64_t	 jbackoff_ms;
	struct log_rate	 jlog;
	uint64_t	 jgen;		/* counts the file's changes */
	uint64_t	 jsync_gen;	/* jgen at the last sync asked */
	uint64_t	 jsync_ask;	/* the last ask's number (this file's
					 * or a rewrite's), or 0 */
	uint64_t	 jsync_ms;	/* when this file's was made
					 * (monotonic) */
	int		 jdir_unsynced;	/* created or renamed since */
	struct rq_syncer *syncer;
	/* a rewrite under way (rfd >= 0): rpath, jpath.new, to be renamed
	 * over the journal once its sync (rsync_ask, 0: not asked yet) is
	 * done */
	int		 rfd;
	char		*rpath;
	size_t		 rbytes;
	uint64_t	 rsync_ask;
};

static struct pending **
pending_bucket(struct rq_evout *eo, const char *call_id, uint64_t attempt,
    const char *status)
{
	uint32_t h = 2166136261u;	/* FNV-1a */
	const char *c;

	for (c = call_id; *c != '\0'; c++)
		h = (h ^ (unsigned char)*c) * 16777619u;
	h = (h ^ (uint32_t)attempt) * 16777619u;
	for (c = status; *c != '\0'; c++)
		h = (h ^ (unsigned char)*c) * 16777619u;
	return &eo->bucket[h % EVOUT_BUCKETS];
}

static void
pending_append(struct rq_evout *eo, struct pending *p)
{
	p->next = NULL;
	p->prev = eo->tail;
	if (eo->tail)
		eo->tail->next = p;
	else
		eo->head = p;
	eo->tail = p;
}

/* Links p after at, or first when at is NULL. */
static void
pending_insert_after(struct rq_evout *eo, struct pending *at,
    struct pending *p)
{
	p->prev = at;
	p->next = at ? at->next : eo->head;
	if (p->next)
		p->next->prev = p;
	else
		eo->tail = p;
	if (at)
		at->next = p;
	else
		eo->head = p;
}

static void
pending_remove(struct rq_evout *eo, struct pending *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		eo->head = p->next;
	if (p->next)
		p->next->prev = p->prev;
	else
		eo->tail = p->prev;
}

static struct pending *
pending_find(struct rq_evout *eo, const char *call_id, uint64_t attempt,
    const char *status)
{
	struct pending *p;

	p = *pending_bucket(eo, call_id, attempt, status);
	for (; p != NULL; p = p->hnext)
		if (p->ev.attempt == attempt &&
		    !strcmp(p->ev.call_id, call_id) &&
		    !strcmp(p->ev.status, status))
			return p;
	return NULL;
}

static void
pending_unlink(struct rq_evout *eo, struct pending *p)
{
	struct pending **pp;

	pp = pending_bucket(eo, p->ev.call_id, p->ev.attempt, p->ev.status);
	for (; *pp != NULL; pp = &(*pp)->hnext)
		if (*pp == p) {
			*pp = p->hnext;
			break;
		}
	if (p == eo->unsent_last)	/* the ones before it are unsent too */
		eo->unsent_last = p->prev;
	pending_remove(eo, p);
	eo->npending--;
	eo->jlive -= p->jlen;
	rq_msg_clear(&p->ev);
	free(p);
}

/* Indexes a new event (at the tail).  A full outbox drops the event sent
 * longest ago, which accounting may still get; or, when none was sent
 * (ZeroMQ refused them all), the oldest. */
static void
pending_add(struct rq_evout *eo, struct pending *p)
{
	struct pending **pp, *old;

	if (eo->npending >= RQ_EVOUT_MAX_PENDING) {
		/* Accounting has been away for long: bound our memory. */
		old = eo->unsent_last && eo->unsent_last->next ?
		    eo->unsent_last->next : eo->head;
		log_warnx_rate(&eo->dropped_log, EVOUT_DROP_LOG_MS,
		    "evout: outbox full, dropping event %s/%llu %s",
		    old->ev.call_id, (unsigned long long)old->ev.attempt,
		    old->ev.status);
		pending_unlink(eo, old);
		eo->dropped++;
	}
	pending_append(eo, p);
	pp = pending_bucket(eo, p->ev.call_id, p->ev.attempt, p->ev.status);
	p->hnext = *pp;
	*pp = p;
	eo->npending++;
	eo->jlive += p->jlen;
}

static void	rewrite_drop(struct rq_evout *);
static void	rewrite_backoff(struct rq_evout *);

/* Appends an event's record (buf: the packed EVENT) to the journal, and to
 * the rewrite under way, if any.  After a failed write the outbox keeps
 * its events in memory only, until journal_tend has written the journal
 * again whole. */
static void
journal_append(struct rq_evout *eo, struct pending *p, const char *buf,
    size_t len)
{
	unsigned char hdr[4];
	struct iovec iov[2];
	size_t want = sizeof(hdr) + len;
	ssize_t n;

	if (eo->jfd < 0)
		return;
	rq_le32_put(hdr, (uint32_t)len);
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = (void *)buf;
	iov[1].iov_len = len;
	if (eo->rfd >= 0) {
		if ((n = writev(eo->rfd, iov, 2)) == (ssize_t)want) {
			p->jlen = want;
			eo->rbytes += want;
		} else {
			log_warnx_rate(&eo->jlog, EVOUT_DROP_LOG_MS, "evout: "
			    "journal %s: %s", eo->rpath, n == -1 ?
			    strerror(errno) : "short write (disk full?)");
			rewrite_drop(eo);
			rewrite_backoff(eo);
		}
	}
	if (eo->jstale)
		return;
	n = writev(eo->jfd, iov, 2);
	if (n == (ssize_t)want) {
		p->jlen = want;
		eo->jbytes += want;
		eo->jgen++;
		return;
	}
	log_warnx_rate(&eo->jlog, EVOUT_DROP_LOG_MS, "evout: journal %s: %s",
	    eo->jpath, n == -1 ? strerror(errno) : "short write (disk full?)");
	/* A torn record would take the next ones with it at the load. */
	if (n > 0 && ftruncate(eo->jfd, (off_t)eo->jbytes) == -1)
		log_warn("evout: journal %s", eo->jpath);
	eo->jstale = 1;
	eo->jgen++;
}

/* Whether the thread is syncing a file of the journal's now. */
static int
journal_syncing(struct rq_evout *eo)
{
	return eo->syncer != NULL && eo->jsync_ask != 0 &&
	    rq_syncer_result(eo->syncer, eo->jsync_ask) == 0;
}

/* Gives up the rewrite under way: the journal stays as it is. */
static void
rewrite_drop(struct rq_evout *eo)
{
	if (eo->rfd < 0)
		return;
	close(eo->rfd);
	unlink(eo->rpath);
	eo->rfd = -1;
	eo->rsync_ask = 0;
}

/* After a failed rewrite, the next one waits: once a second at most, less
 * often while it keeps failing (a full disk must not cost the loop). */
static void
rewrite_backoff(struct rq_evout *eo)
{
	eo->jbackoff_ms = eo->jbackoff_ms == 0 ? RQ_EVOUT_JOURNAL_RETRY_MS :
	    eo->jbackoff_ms * 2;
	if (eo->jbackoff_ms > EVOUT_JOURNAL_RETRY_MAX_MS)
		eo->jbackoff_ms = EVOUT_JOURNAL_RETRY_MAX_MS;
	eo->jretry_ms = rq_mono_ms() + eo->jbackoff_ms;
}

/* The rewrite, on disk, becomes the journal.  Returns 0, or -1 (logged,
 * the rewrite given up). */
static int
rewrite_rename(struct rq_evout *eo)
{
	if (rename(eo->rpath, eo->jpath) == -1) {
		log_warnx_rate(&eo->jlog, EVOUT_DROP_LOG_MS, "evout: journal "
		    "%s: cannot write it again: %s", eo->jpath,
		    strerror(errno));
		rewrite_drop(eo);
		return -1;
	}
	if (eo->jstale)
		log_info("evout: journal %s holds every pending event again",
		    eo->jpath);
	close(eo->jfd);
	eo->jfd = eo->rfd;
	eo->jbytes = eo->rbytes;
	eo->rfd = -1;
	eo->rsync_ask = 0;
	eo->jstale = 0;
	eo->jbackoff_ms = 0;
	eo->jgen++;
	eo->jdir_unsynced = 1;
	return 0;
}

/* Moves the rewrite under way on, at a tick: asks the thread to sync it
 * (while a sync of the journal is under way, at a later tick), and once
 * it did, renames it over the journal.  Without the thread, the loop
 * waits for the syncs.  Returns -1 when the rewrite was given up (logged),
 * else 0. */
static int
rewrite_step(struct rq_evout *eo)
{
	int rc;

	if (eo->syncer == NULL) {
		if (rq_sync_path(eo->rpath, 0, "evout: journal") == -1) {
			rewrite_drop(eo);
			return -1;
		}
		if (rewrite_rename(eo) == -1)
			return -1;
		if (rq_sync_dir(eo->jpath, "evout: journal") == 0) {
			eo->jsync_gen = eo->jgen;
			eo->jdir_unsynced = 0;
		}
		return 0;
	}
	if (eo->rsync_ask == 0) {
		if ((eo->rsync_ask = rq_syncer_ask(eo->syncer, eo->rpath,
		    0)) != 0)
			eo->jsync_ask = eo->rsync_ask;
		return 0;
	}
	if ((rc = rq_syncer_result(eo->syncer, eo->rsync_ask)) == 0)
		return 0;
	if (rc == -1) {			/* (logged by the thread) */
		rewrite_drop(eo);
		return -1;
	}
	return rewrite_rename(eo);
}

/*
 * Starts to replace the journal with one that holds the pending events
 * only, in their order: written beside it (rpath), then renamed over it
 * once it is on disk (rewrite_step), so that neither a crash nor a power
 * cut meanwhile leaves less than the old one.  (A file renamed over
 * another before its data reached the disk can be found empty after a
 * power cut, on XFS for one.)  Until the rename, events are appended to
 * both.  Returns 0, or -1 (logged).
 */
static int
journal_rewrite(struct rq_evout *eo)
{
	char *out = NULL, *rec, *grown;
	size_t outlen = 0, cap = 0, len, total, ncap;
	struct pending *p;
	int fd, saved;

	if ((fd = open(eo->rpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND |
	    O_CLOEXEC, 0600)) == -1) {
		log_warnx_rate(&eo->jlog, EVOUT_DROP_LOG_MS, "evout: journal "
		    "%s: %s", eo->rpath, strerror(errno));
		return -1;
	}
	eo->rfd = fd;
	eo->rsync_ask = 0;
	if (rq_write_all(fd, EVOUT_JOURNAL_MAGIC,
	    EVOUT_JOURNAL_MAGIC_LEN) == -1)
		goto fail;
	total = EVOUT_JOURNAL_MAGIC_LEN;
	for (p = eo->head; p != NULL; p = p->next) {
		if (rq_msg_pack(&p->ev, &rec, &len) == -1) {
			errno = EINVAL;
			goto fail;
		}
		if (outlen + 4 + len > cap) {
			for (ncap = cap ? cap : 65536; outlen + 4 + len > ncap;)
				ncap *= 2;
			if ((grown = realloc(out, ncap)) == NULL) {
				free(rec);
				goto fail;
			}
			out = grown;
			cap = ncap;
		}
		rq_le32_put((unsigned char *)out + outlen, (uint32_t)len);
		memcpy(out + outlen + 4, rec, len);
		free(rec);
		outlen += 4 + len;
		eo->jlive -= p->jlen;
		p->jlen = 4 + len;
		eo->jlive += p->jlen;
		if (outlen >= 65536) {
			if (rq_write_all(fd, out, outlen) == -1)
				goto fail;
			total += outlen;
			outlen = 0;
		}
	}
	if (rq_write_all(fd, out, outlen) == -1)
		goto fail;
	total += outlen;
	free(out);
	eo->rbytes = total;
	return rewrite_step(eo);
fail:
	saved = errno;
	log_warnx_rate(&eo->jlog, EVOUT_DROP_LOG_MS, "evout: journal %s: "
	    "cannot write it again: %s", eo->jpath, strerror(saved));
	free(out);
	rewrite_drop(eo);
	return -1;
}

/* Keeps the journal short and whole: cut to its header when nothing is
 * pending; written again with the pending events when it has grown well
 * beyond them, or when a write failed (rewrite_backoff). */
static void
journal_tend(struct rq_evout *eo)
{
	if (eo->jfd < 0)
		return;
	if (eo->rfd >= 0 && eo->npending > 0) {
		if (rewrite_step(eo) == -1)
			rewrite_backoff(eo);
		return;
	}
	/* A cut, or a rename over the file, waits for the pages the disk
	 * is writing: neither is done while a sync is under way
	 * (bench_evout: cuts up to 2.5 ms, against 0.4). */
	if (eo->npending == 0) {
		rewrite_drop(eo);
		if (eo->jbytes == EVOUT_JOURNAL_MAGIC_LEN && !eo->jstale)
			return;
		if (journal_syncing(eo))
			return;
		if (ftruncate(eo->jfd, EVOUT_JOURNAL_MAGIC_LEN) == -1) {
			log_warnx_rate(&eo->jlog, EVOUT_DROP_LOG_MS, "evout: "
			    "journal %s: %s", eo->jpath, strerror(errno));
			eo->jstale = 1;
			return;
		}
		eo->jbytes = EVOUT_JOURNAL_MAGIC_LEN;
		eo->jstale = 0;
		eo->jbackoff_ms = 0;
		eo->jgen++;
		return;
	}
	if (!eo->jstale && eo->jbytes <= EVOUT_JOURNAL_SLACK + 2 * eo->jlive)
		return;
	if (rq_mono_ms() < eo->jretry_ms || journal_syncing(eo))
		return;
	/* (a journal only too long stays whole: appends go on) */
	if (journal_rewrite(eo) == -1)
		rewrite_backoff(eo);
}

/* The events a previous run left unacknowledged, from buf (a journal's
 * content), into the outbox; *n says how many.  Returns the length of
 * buf's whole records, or -1 (out of memory). */
static ssize_t
journal_load(struct rq_evout *eo, const char *buf, size_t len, size_t *n)
{
	char err[128];
	const char *rec;
	struct pending *p;
	size_t off = EVOUT_JOURNAL_MAGIC_LEN, bad = 0, rlen;

	*n = 0;
	while (rq_record_next(buf, len, &off, &rec, &rlen,
	    EVOUT_RECORD_MAX)) {
		if ((p = calloc(1, sizeof(*p))) == NULL)
			return -1;
		if (rq_msg_unpack(rec, rlen, &p->ev, err,
		    sizeof(err)) == -1 || p->ev.type != RQ_MSG_EVENT ||
		    p->ev.call_id == NULL || p->ev.status == NULL) {
			bad++;
			rq_msg_clear(&p->ev);
			free(p);
		} else if (pending_find(eo, p->ev.call_id, p->ev.attempt,
		    p->ev.status) != NULL) {
			rq_msg_clear(&p->ev);	/* in twice */
			free(p);
		} else {
			p->jlen = 4 + rlen;
			p->resent = 1;	/* its ack tells nothing of the wait */
			pending_add(eo, p);
			(*n)++;
		}
	}
	if (off < len)
		log_warnx("evout: journal %s ends in %zu bytes that are no "
		    "whole record (cut by a crash): dropped", eo->jpath,
		    len - off);
	if (bad > 0)
		log_warnx("evout: journal %s: %zu records that are no event "
		    "ignored", eo->jpath, bad);
	return (ssize_t)off;
}

/* Locks the journal at path (through path.lock, which is never renamed),
 * takes in what a previous run left there, and cuts what follows its last
 * whole record.  Returns 0, or -1 (logged). */
static int
journal_open(struct rq_evout *eo, const char *path)
{
	char lock[4096], *buf;
	size_t len = 0, n = 0;
	ssize_t whole = 0;

	if ((size_t)snprintf(lock, sizeof(lock), "%s.lock", path) >=
	    sizeof(lock)) {
		log_warnx("evout: journal %s: path too long", path);
		return -1;
	}
	if ((eo->jpath = strdup(path)) == NULL ||
	    asprintf(&eo->rpath, "%s.new", path) == -1) {
		eo->rpath = NULL;
		log_warn("evout: journal %s", path);
		return -1;
	}
	if ((eo->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) ==
	    -1) {
		log_warn("evout: journal lock %s", lock);
		return -1;
	}
	if (flock(eo->lockfd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK)
			log_warnx("evout: journal %s is in use by another "
			    "process (a second telserver of the same name?)",
			    path);
		else
			log_warn("evout: journal lock %s", lock);
		return -1;
	}
	/* a rewrite a previous run did not rename: its journal holds all */
	if (unlink(eo->rpath) == 0)
		log_info("evout: journal %s: an unfinished rewrite removed",
		    eo->rpath);
	if ((eo->jfd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC,
	    0600)) == -1 || (buf = rq_read_all(eo->jfd, &len)) == NULL) {
		log_warn("evout: journal %s", path);
		return -1;
	}
	if (len >= EVOUT_JOURNAL_MAGIC_LEN &&
	    !memcmp(buf, EVOUT_JOURNAL_MAGIC, EVOUT_JOURNAL_MAGIC_LEN))
		whole = journal_load(eo, buf, len, &n);
	else if (len > 0)
		log_warnx("evout: journal %s: not an event journal (%zu "
		    "bytes): overwritten", path, len);
	free(buf);
	if (whole == -1) {
		log_warnx("evout: journal %s: out of memory", path);
		return -1;
	}
	if (whole == 0) {
		if (ftruncate(eo->jfd, 0) == -1 || rq_write_all(eo->jfd,
		    EVOUT_JOURNAL_MAGIC, EVOUT_JOURNAL_MAGIC_LEN) == -1) {
			log_warn("evout: journal %s", path);
			return -1;
		}
		whole = EVOUT_JOURNAL_MAGIC_LEN;
	} else if ((size_t)whole < len && ftruncate(eo->jfd, whole) == -1) {
		log_warn("evout: journal %s", path);
		return -1;
	}
	eo->jbytes = (size_t)whole;
	eo->jgen++;
	eo->jdir_unsynced = 1;		/* (it may be new) */
	/* (without its thread, the tick syncs in the loop) */
	eo->syncer = rq_syncer_new("evout: journal", "events_journal");
	if (n > 0)
		log_info("evout: %zu events a previous run left "
		    "unacknowledged, from %s: sent again", n, path);
	return 0;
}

/*
 * Asks the thread to sync the journal when it changed since the last ask,
 * never waiting for it: an fdatasync takes milliseconds, which the loop
 * does not have.  At most once a tick and once per EVOUT_SYNC_MS: a sync
 * keeps the disk and the file system's own journal busy beside the loop's
 * writes (bench_evout, whose ticks come every 1.5 ms or so, saw its
 * rewrites take up to 8.6 ms with a sync at each tick, 1.3 ms without).
 * A power cut then usually loses what the last 100 to 200 ms appended,
 * not the kernel's 30 s of writeback.  While the last sync is still under
 * way, the ask waits for a tick EVOUT_SYNC_MS later.
 */
static void
journal_sync(struct rq_evout *eo)
{
	uint64_t now, n;

	/* (a rewrite under way is synced first, then renamed over it) */
	if (eo->jfd < 0 || eo->rfd >= 0 || eo->jgen == eo->jsync_gen ||
	    (now = rq_mono_ms()) - eo->jsync_ms < EVOUT_SYNC_MS)
		return;
	eo->jsync_ms = now;
	if (eo->syncer == NULL)		/* no thread: the loop waits */
		rq_sync_path(eo->jpath, eo->jdir_unsynced, "evout: journal");
	else {
		if ((n = rq_syncer_ask(eo->syncer, eo->jpath,
		    eo->jdir_unsynced)) == 0)
			return;
		eo->jsync_ask = n;
	}
	eo->jsync_gen = eo->jgen;
	eo->jdir_unsynced = 0;
}

/* Frees eo and what it holds, the journal left as it is. */
static void
evout_destroy(struct rq_evout *eo)
{
	rq_syncer_free(eo->syncer);	/* (its sync under way ends first) */
	rewrite_drop(eo);
	while (eo->head)
		pending_unlink(eo, eo->head);
	if (eo->jfd >= 0)
		close(eo->jfd);
	if (eo->lockfd >= 0)
		close(eo->lockfd);
	free(eo->jpath);
	free(eo->rpath);
	if (eo->sock)
		zmq_close(eo->sock);
	free(eo);
}

struct rq_evout *
rq_evout_new(void *zctx, const char *endpoint, const char *journal)
{
	struct rq_evout *eo;

	if ((eo = calloc(1, sizeof(*eo))) == NULL)
		return NULL;
	eo->jfd = eo->lockfd = eo->rfd = -1;
	eo->rto_ms = RQ_EVOUT_RESEND_MS;
	if ((eo->sock = rq_bus_socket(zctx, ZMQ_DEALER)) == NULL ||
	    zmq_setsockopt(eo->sock, ZMQ_SNDHWM, &(int){ EVOUT_SNDHWM },
	    sizeof(int)) == -1 ||
	    zmq_connect(eo->sock, endpoint) == -1) {
		log_warnx("evout: connect %s: %s", endpoint,
		    zmq_strerror(zmq_errno()));
		evout_destroy(eo);
		return NULL;
	}
	rq_bus_in_init(&eo->in, eo->sock, 0);
	/* What the journal gives back has not been sent by us: it goes as
	 * the ones ZeroMQ refused do, as fast as there is room. */
	if (journal != NULL && journal_open(eo, journal) == -1) {
		evout_destroy(eo);
		return NULL;
	}
	eo->unsent_last = eo->tail;
	return eo;
}

void
rq_evout_free(struct rq_evout *eo, int linger_ms)
{
	uint64_t until;

	if (eo == NULL)
		return;
	until = rq_mono_ms() + linger_ms;
	while (eo->npending > 0 && rq_mono_ms() < until) {
		zmq_pollitem_t pi = { eo->sock, 0, ZMQ_POLLIN, 0 };

		zmq_poll(&pi, 1, 50);
		rq_evout_process(eo);
		rq_evout_tick(eo);
	}
	/* (its sync under way ends first: the cut below waits for none; a
	 * rewrite under way is made again, synced in the loop, below) */
	rq_syncer_free(eo->syncer);
	eo->syncer = NULL;
	rewrite_drop(eo);
	/* The journal keeps exactly what is pending, for the next start
	 * (a whole journal that cannot be written again keeps more). */
	if (eo->jfd >= 0 && eo->npending == 0)
		journal_tend(eo);
	else if (eo->jfd >= 0 && (journal_rewrite(eo) == 0 || !eo->jstale))
		log_warnx("evout: %zu events not acknowledged at exit: kept in "
		    "%s for the next start", eo->npending, eo->jpath);
	else if (eo->npending > 0)
		log_warnx("evout: %zu events not acknowledged at exit%s",
		    eo->npending, eo->jfd >= 0 ? ", some of them not in the "
		    "journal" : "");
	if (eo->dropped > 0)
		log_warnx("evout: %llu events dropped while the outbox was "
		    "full", (unsigned long long)eo->dropped);
	/* what the last ticks wrote, on disk before we go */
	if (eo->jfd >= 0 && eo->jgen != eo->jsync_gen)
		rq_sync_path(eo->jpath, eo->jdir_unsynced, "evout: journal");
	evout_destroy(eo);
}

/* p goes back among the events ZeroMQ refused, behind them. */
static void
unsent_add(struct rq_evout *eo, struct pending *p)
{
	pending_remove(eo, p);
	pending_insert_after(eo, eo->unsent_last, p);
	eo->unsent_last = p;
	p->sent_ms = 0;
}

/* Hands p to ZeroMQ (b: p packed already, or NULL) at now, then it waits
 * for its ack at the tail; or, when ZeroMQ refuses it, among the unsent
 * (a full queue; the other refusals, a socket closing or no memory, are
 * no better served otherwise).  Returns 0 or -1 (refused). */
static int
evout_send(struct rq_evout *eo, struct pending *p, struct rq_bus_batch *b,
    uint64_t now)
{
	int rc;

	rc = b ? rq_bus_send_batch(eo->sock, NULL, 0, b) :
	    rq_bus_send(eo->sock, NULL, 0, &p->ev);
	if (rc == -1) {
		if (p->sent_ms != 0)	/* not among them yet */
			unsent_add(eo, p);
		return -1;
	}
	if (p == eo->unsent_last)
		eo->unsent_last = p->prev;
	p->sent_ms = now;
	p->lost = 0;
	if (p->first_ms == 0)
		p->first_ms = now;
	if (p != eo->tail) {
		pending_remove(eo, p);
		pending_append(eo, p);
	}
	return 0;
}

/* Sends the events ZeroMQ refused, oldest first, until it refuses again:
 * as soon as there is room, not once the resend wait has passed. */
static void
unsent_flush(struct rq_evout *eo)
{
	uint64_t now = rq_mono_ms();
	int n = 0;

	/* (no room: not worth packing the first one again to hear it) */
	if (eo->unsent_last == NULL ||
	    !(rq_bus_events(eo->sock) & ZMQ_POLLOUT))
		return;
	while (eo->unsent_last != NULL && n++ < EVOUT_FLUSH_MAX)
		if (evout_send(eo, eo->head, NULL, now) == -1)
			break;
}

int
rq_evout_emit(struct rq_evout *eo, const struct rq_msg *ev)
{
	struct rq_bus_batch b;
	struct pending *p;

	if ((ev->present & (RQ_F_call_id | RQ_F_attempt | RQ_F_status)) !=
	    (RQ_F_call_id | RQ_F_attempt | RQ_F_status) ||
	    ev->call_id == NULL || ev->status == NULL)
		return -1;
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    rq_msg_copy(&p->ev, ev) == -1) {
		free(p);
		log_warnx("evout: out of memory, event %s %s lost",
		    ev->call_id, ev->status);
		return -1;
	}
	p->ev.type = RQ_MSG_EVENT;
	if (!rq_msg_has(&p->ev, ts_ms))
		rq_msg_set(&p->ev, ts_ms, rq_now_ms());
	/* packed once, for the journal and the socket */
	rq_bus_batch_init(&b);
	if (rq_bus_batch_add(&b, &p->ev) == -1) {
		rq_msg_clear(&p->ev);
		free(p);
		return -1;
	}
	journal_append(eo, p, b.buf[0], b.len[0]);
	p->sent_ms = rq_mono_ms();	/* (not among the unsent) */
	pending_add(eo, p);
	if (eo->unsent_last != NULL) {
		/* behind the ones refused before: they go first */
		rq_bus_batch_free(&b);
		unsent_add(eo, p);
		unsent_flush(eo);
		return 0;
	}
	evout_send(eo, p, &b, p->sent_ms);
	return 0;
}

int
rq_evout_fd(struct rq_evout *eo)
{
	return rq_bus_fd(eo->sock);
}

/* The wait before an event goes again: ms, from RQ_EVOUT_RESEND_MS to
 * RQ_EVOUT_RESEND_MAX_MS. */
static void
rto_set(struct rq_evout *eo, uint64_t ms)
{
	if (ms < RQ_EVOUT_RESEND_MS)
		ms = RQ_EVOUT_RESEND_MS;
	if (ms > RQ_EVOUT_RESEND_MAX_MS)
		ms = RQ_EVOUT_RESEND_MAX_MS;
	eo->rto_ms = ms;
}

/*
 * An ack came ms after its event was sent (once): the wait before an event
 * is sent again follows it, as TCP's retransmission timeout does (RFC
 * 6298: smoothed time plus four deviations), from RQ_EVOUT_RESEND_MS to
 * RQ_EVOUT_RESEND_MAX_MS.  A fixed second would send every event again
 * once a second while accounting lags by more: a lag of L seconds then
 * costs it L copies of each event, on top of the lag (rq_evout_tick
 * doubles it at each tick that sends some again).
 */
static void
ack_sample(struct rq_evout *eo, uint64_t ms)
{
	uint64_t dev;

	if (!eo->measured) {
		eo->measured = 1;
		eo->srtt_ms = ms;
		eo->rttvar_ms = ms / 2;
	} else {
		dev = ms > eo->srtt_ms ? ms - eo->srtt_ms : eo->srtt_ms - ms;
		eo->rttvar_ms = (3 * eo->rttvar_ms + dev) / 4;
		eo->srtt_ms = (7 * eo->srtt_ms + ms) / 8;
	}
	rto_set(eo, eo->srtt_ms + 4 * eo->rttvar_ms);
}

/* An ack said which run of accounting sent it: a new one is noted. */
static void
boot_seen(struct rq_evout *eo, const char *boot_id)
{
	char id[sizeof(eo->boot_id)];

	snprintf(id, sizeof(id), "%s", boot_id);
	if (strcmp(id, eo->boot_id) == 0)
		return;
	if (eo->boot_id[0] != '\0')
		eo->boot_new = 1;
	memcpy(eo->boot_id, id, sizeof(id));
}

/*
 * The first ack of a new run of accounting, of p: the events still
 * pending that were sent before p (ahead of it in the list) went to the
 * run before (one connection delivers in order, and accounting answers in
 * order: the new run would have acked them first), which had them in its
 * queues when it stopped.  They go again at the next tick rather than a
 * wait later (up to 30 s while accounting lagged).  (A p among the unsent
 * tells nothing: the next ack does.)
 */
static void
boot_first_ack(struct rq_evout *eo, const struct pending *p)
{
	struct pending *q;
	size_t n = 0;

	if (p->sent_ms == 0)
		return;
	eo->boot_new = 0;
	q = eo->unsent_last != NULL ? eo->unsent_last->next : eo->head;
	for (; q != NULL && q != p; q = q->next) {
		q->lost = 1;
		n++;
	}
	if (n > 0)
		log_info("evout: accounting restarted; %zu events it had not "
		    "acknowledged go again", n);
}

static void
acks_read(struct rq_evout *eo)
{
	struct rq_msg m;
	struct pending *p;
	int rc;

	while ((rc = rq_bus_recv(&eo->in, &m)) != 0) {
		if (rc == -1)
			continue;
		if (m.type != RQ_MSG_EVENT_ACK) {
			log_warnx("evout: unexpected %s dropped",
			    rq_msg_type_name(m.type));
			rq_msg_clear(&m);
			continue;
		}
		if (m.call_id == NULL || m.status == NULL) {
			rq_msg_clear(&m);
			continue;
		}
		if (m.boot_id != NULL)
			boot_seen(eo, m.boot_id);
		/* Any ack shows accounting is there: resend in full again. */
		eo->round_ms = 0;
		if (eo->probe_ms != 0) {
			log_info("evout: accounting answers again; %zu events "
			    "to send again", eo->npending);
			eo->probe_ms = 0;
			/* what went before it came back is taken as lost
			 * (some may only wait in the queues, when accounting
			 * stalled): all of it goes again once due
			 * (resend_due), copies rather than a long wait */
			eo->acked_sent_ms = rq_mono_ms();
		}
		if ((p = pending_find(eo, m.call_id, m.attempt,
		    m.status)) != NULL) {
			eo->ack_ms = rq_mono_ms();
			/* whose ack it is is clear: it went once */
			if (!p->resent && p->sent_ms != 0)
				ack_sample(eo, eo->ack_ms - p->sent_ms);
			/* (its first send: the ack may be that copy's, and
			 * what went before it was delivered before it) */
			if (p->first_ms > eo->acked_sent_ms)
				eo->acked_sent_ms = p->first_ms;
			if (eo->boot_new)
				boot_first_ack(eo, p);
			pending_unlink(eo, p);
		}
		rq_msg_clear(&m);
	}
}

void
rq_evout_process(struct rq_evout *eo)
{
	int rounds = 0, events;

	/* Reading and sending take in ZeroMQ's word of acks and of room,
	 * which its edge-triggered fd then does not give again: go on while
	 * it says either. */
	do {
		acks_read(eo);
		if (eo->unsent_last == NULL)
			break;
		unsent_flush(eo);
		events = rq_bus_events(eo->sock);
	} while (++rounds < EVOUT_PROCESS_ROUNDS && ((events & ZMQ_POLLIN) ||
	    (eo->unsent_last != NULL && (events & ZMQ_POLLOUT))));
}

/* ZeroMQ's queue toward accounting is full, so nothing is sent again:
 * what it holds goes first, and the refused ones as soon as it has room.
 * A wait without an ack then means accounting is away: said once, as the
 * resends' silence is, and its next ack says it is back. */
static void
note_queue_full(struct rq_evout *eo, uint64_t now)
{
	if (eo->round_ms == 0)
		eo->round_ms = now;
	if (eo->probe_ms != 0 || now - eo->round_ms < eo->rto_ms)
		return;
	log_warnx("evout: accounting has not answered for %llu ms and our "
	    "queue to it is full; %zu events kept until it reads again",
	    (unsigned long long)(now - eo->round_ms), eo->npending);
	eo->probe_ms = now;
}

/*
 * Whether p, sent at least due ago, goes again: when no ack at all came
 * for as long (accounting stalled, restarted or is away), or when an
 * event first sent at least due after it was acked (it was lost, or
 * accounting could not store it: a connection delivers in order, and
 * accounting answers in order but for the events it can never store).
 * As TCP restarts its timer at each ack of new data (RFC 6298, 5.3): a
 * lagging accounting whose acks keep coming, less than a wait apart,
 * however late, gets no copies.
 */
static int
resend_due(const struct rq_evout *eo, const struct pending *p, uint64_t now,
    uint64_t due)
{
	if (now - p->sent_ms < due)
		return 0;
	return now - eo->ack_ms >= due || p->sent_ms + due <= eo->acked_sent_ms;
}

void
rq_evout_tick(struct rq_evout *eo)
{
	struct pending *p;
	int sent = 0, limit = RQ_EVOUT_RESEND_BURST, lost;
	uint64_t now, due;

	rq_evout_process(eo);
	journal_tend(eo);
	journal_sync(eo);
	/* after the acks and sends just made: no time here is later */
	now = rq_mono_ms();
	if (eo->head == NULL)
		return;
	if (eo->unsent_last != NULL) {
		note_queue_full(eo, now);
		return;
	}
	due = eo->rto_ms;	/* as the acks just read left it */
	/* what a restarted accounting lost goes now (boot_first_ack) */
	lost = eo->head->lost;
	/* Resent, and not one ack back for as long as acks take: accounting
	 * is away.  Resending everything again and again would only burn
	 * CPU beside the calls; one event per interval finds out when it is
	 * back.  (An accounting only busy with rq:events answers within the
	 * wait, which its acks have stretched.) */
	if (!lost && eo->round_ms != 0 && now - eo->round_ms >= due) {
		if (eo->probe_ms == 0)
			log_warnx("evout: accounting has not answered for %llu "
			    "ms; %zu events kept, one sent again every %d ms "
			    "until it does", (unsigned long long)(now -
			    eo->round_ms), eo->npending, RQ_EVOUT_RESEND_MS);
		else if (now - eo->probe_ms < RQ_EVOUT_RESEND_MS)
			return;
		eo->probe_ms = now;
		limit = 1;
		due = 0;
	} else if (!lost && !resend_due(eo, eo->head, now, due))
		return;
	/* In sent_ms order: stop at the first one not due.  A resent event
	 * moves to the tail, where the loop meets it again as not due.  (The
	 * burst is bounded so that a long outage does not stall the loop.) */
	while ((p = eo->head) != NULL && (p->lost ||
	    resend_due(eo, p, now, due)) && sent < limit) {
		p->resent = 1;
		if (evout_send(eo, p, NULL, now) == -1)
			break;		/* no room: it goes first when there is */
		sent++;
	}
	/* The acks ack_sample sees are only those faster than the wait (the
	 * others' events were sent again): so it doubles at each tick that
	 * sends some again, as TCP's at each timeout, until it outlasts the
	 * lag. */
	if (sent > 0 && limit > 1 && !lost)
		rto_set(eo, 2 * eo->rto_ms);
	if (sent > 0 && eo->round_ms == 0)
		eo->round_ms = now;
	rq_evout_process(eo);	/* (a send may have taken in acks' word) */
}

size_t
rq_evout_pending(const struct rq_evout *eo)
{
	return eo->npending;
}

void
rq_evout_sync_stats(const struct rq_evout *eo, uint64_t *n, uint64_t *max_us)
{
	*n = *max_us = 0;
	if (eo->syncer != NULL)
		rq_syncer_stats(eo->syncer, n, max_us);
}
