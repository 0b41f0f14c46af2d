/* Event outbox (see evout.h). */
#include <sys/file.h>
#include <sys/stat.h>
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
#include "util.h"

/* Pending events are indexed by (call_id, attempt, status), so that an
 * ack costs O(1) however far accounting lags; the list is kept in sent_ms
 * order, so that a tick stops at the first event not yet due. */
#define EVOUT_BUCKETS	65536
#define EVOUT_DROP_LOG_MS	1000

/* The journal: EVOUT_JOURNAL_MAGIC, then one record per event emitted,
 * its packed length (4 bytes, little-endian) and the packed EVENT.  Acks
 * are not written: when nothing is pending the file is cut to its header,
 * and when it has grown EVOUT_JOURNAL_SLACK beyond twice what is pending
 * it is rewritten with the pending events only.  An event acked since the
 * last cut may so be sent again after a restart; accounting stores it
 * once. */
#define EVOUT_JOURNAL_MAGIC	"ringqEv1"
#define EVOUT_JOURNAL_MAGIC_LEN	8
#define EVOUT_JOURNAL_SLACK	(1u << 20)
#define EVOUT_RECORD_MAX	(1u << 20)

struct pending {
	struct pending	*next, *prev;
	struct pending	*hnext;		/* same bucket */
	struct rq_msg	 ev;
	uint64_t	 sent_ms;	/* monotonic */
	size_t		 jlen;		/* its journal record's bytes */
};

struct rq_evout {
	void		*sock;
	struct rq_bus_in in;
	struct pending	*head, *tail;	/* least recently sent first */
	size_t		 npending;
	struct pending	*bucket[EVOUT_BUCKETS];
	uint64_t	 round_ms;	/* first resend unanswered, or 0 */
	uint64_t	 probe_ms;	/* last probe while accounting is
					 * away; 0 while it answers */
	uint64_t	 dropped;	/* events dropped while full: the
					 * count at exit */
	struct log_rate	 dropped_log;	/* one line a second, not one an
					 * event */
	/* the journal, when there is one (jfd >= 0) */
	int		 jfd;
	char		*jpath;
	size_t		 jbytes;	/* the file's length */
	size_t		 jlive;		/* of it, the pending events' records */
	int		 jstale;	/* a write failed: rewrite it whole */
	struct log_rate	 jlog;
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
		if (p->ev.attempt == attempt && !strcmp(p->ev.call_id, call_id) &&
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
	pending_remove(eo, p);
	eo->npending--;
	eo->jlive -= p->jlen;
	rq_msg_clear(&p->ev);
	free(p);
}

/* Indexes a new event (at the tail); a full outbox drops its oldest. */
static void
pending_add(struct rq_evout *eo, struct pending *p)
{
	struct pending **pp;

	if (eo->npending >= RQ_EVOUT_MAX_PENDING) {
		/* Accounting has been away for long: bound our memory. */
		log_warnx_rate(&eo->dropped_log, EVOUT_DROP_LOG_MS,
		    "evout: outbox full, dropping event %s/%llu %s",
		    eo->head->ev.call_id,
		    (unsigned long long)eo->head->ev.attempt,
		    eo->head->ev.status);
		pending_unlink(eo, eo->head);
		eo->dropped++;
	}
	pending_append(eo, p);
	pp = pending_bucket(eo, p->ev.call_id, p->ev.attempt, p->ev.status);
	p->hnext = *pp;
	*pp = p;
	eo->npending++;
	eo->jlive += p->jlen;
}

static void
record_header(unsigned char hdr[4], size_t len)
{
	hdr[0] = len & 0xff;
	hdr[1] = (len >> 8) & 0xff;
	hdr[2] = (len >> 16) & 0xff;
	hdr[3] = (len >> 24) & 0xff;
}

/* Appends an event's record (buf: the packed EVENT) to the journal.  A
 * failed write leaves the file for journal_tend to rewrite whole. */
static void
journal_append(struct rq_evout *eo, struct pending *p, const char *buf,
    size_t len)
{
	unsigned char hdr[4];
	struct iovec iov[2];
	ssize_t n;

	if (eo->jfd < 0)
		return;
	record_header(hdr, len);
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = (void *)buf;
	iov[1].iov_len = len;
	n = writev(eo->jfd, iov, 2);
	if (n != (ssize_t)(sizeof(hdr) + len)) {
		log_warnx_rate(&eo->jlog, EVOUT_DROP_LOG_MS, "evout: journal "
		    "%s: %s", eo->jpath, n == -1 ? strerror(errno) :
		    "short write");
		eo->jstale = 1;
		return;
	}
	p->jlen = sizeof(hdr) + len;
	eo->jbytes += p->jlen;
}

/* Writes len bytes, retrying short writes.  Returns 0 or -1. */
static int
write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, buf, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Replaces the journal with one that holds the pending events only, in
 * their order: written beside it, then renamed over it, so a crash
 * meanwhile leaves the old one.  The new file is locked before it takes
 * the journal's name. */
static int
journal_rewrite(struct rq_evout *eo)
{
	char tmp[4096], *out = NULL, *rec;
	size_t outlen = 0, cap = 0, len, total;
	struct pending *p;
	int fd, saved;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.new", eo->jpath) >=
	    sizeof(tmp))
		return -1;
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND |
	    O_CLOEXEC, 0600)) == -1) {
		log_warnx_rate(&eo->jlog, EVOUT_DROP_LOG_MS, "evout: journal "
		    "%s: %s", tmp, strerror(errno));
		eo->jstale = 1;
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1 ||
	    write_all(fd, EVOUT_JOURNAL_MAGIC, EVOUT_JOURNAL_MAGIC_LEN) == -1)
		goto fail;
	total = EVOUT_JOURNAL_MAGIC_LEN;
	for (p = eo->head; p != NULL; p = p->next) {
		if (rq_msg_pack(&p->ev, &rec, &len) == -1)
			goto fail;
		if (outlen + 4 + len > cap) {
			char *n;
			size_t ncap = cap ? cap : 65536;

			while (outlen + 4 + len > ncap)
				ncap *= 2;
			if ((n = realloc(out, ncap)) == NULL) {
				free(rec);
				goto fail;
			}
			out = n;
			cap = ncap;
		}
		record_header((unsigned char *)out + outlen, len);
		memcpy(out + outlen + 4, rec, len);
		free(rec);
		outlen += 4 + len;
		eo->jlive -= p->jlen;
		p->jlen = 4 + len;
		eo->jlive += p->jlen;
		if (outlen >= 65536) {
			if (write_all(fd, out, outlen) == -1)
				goto fail;
			total += outlen;
			outlen = 0;
		}
	}
	if (write_all(fd, out, outlen) == -1)
		goto fail;
	total += outlen;
	if (rename(tmp, eo->jpath) == -1)
		goto fail;
	free(out);
	if (eo->jfd >= 0)
		close(eo->jfd);
	eo->jfd = fd;
	eo->jbytes = total;
	eo->jstale = 0;
	return 0;
fail:
	saved = errno;
	log_warnx_rate(&eo->jlog, EVOUT_DROP_LOG_MS, "evout: journal %s: "
	    "cannot rewrite: %s", eo->jpath, strerror(saved));
	free(out);
	close(fd);
	unlink(tmp);
	eo->jstale = 1;
	return -1;
}

/* Keeps the journal short: cut to its header when nothing is pending,
 * rewritten when it has grown well beyond what is. */
static void
journal_tend(struct rq_evout *eo)
{
	if (eo->jfd < 0)
		return;
	if (eo->jstale || eo->jbytes > EVOUT_JOURNAL_SLACK + 2 * eo->jlive) {
		journal_rewrite(eo);
		return;
	}
	if (eo->npending == 0 && eo->jbytes > EVOUT_JOURNAL_MAGIC_LEN) {
		if (ftruncate(eo->jfd, EVOUT_JOURNAL_MAGIC_LEN) == -1) {
			log_warn("evout: journal %s", eo->jpath);
			eo->jstale = 1;
			return;
		}
		eo->jbytes = EVOUT_JOURNAL_MAGIC_LEN;
	}
}

/* Reads a whole file into a new buffer. */
static char *
read_file(int fd, size_t *len)
{
	struct stat st;
	char *buf;
	size_t got = 0;
	ssize_t n;

	if (fstat(fd, &st) == -1)
		return NULL;
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
		return NULL;
	while (got < (size_t)st.st_size) {
		if ((n = pread(fd, buf + got, (size_t)st.st_size - got,
		    (off_t)got)) == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	*len = got;
	return buf;
}

/* The events a previous run left unacknowledged, from buf (a journal's
 * content), into the outbox.  Returns how many. */
static size_t
journal_load(struct rq_evout *eo, const char *buf, size_t len)
{
	char err[128];
	struct pending *p;
	size_t off = EVOUT_JOURNAL_MAGIC_LEN, n = 0, bad = 0, rlen;
	const unsigned char *u = (const unsigned char *)buf;

	while (off + 4 <= len) {
		rlen = (size_t)u[off] | (size_t)u[off + 1] << 8 |
		    (size_t)u[off + 2] << 16 | (size_t)u[off + 3] << 24;
		if (rlen == 0 || rlen > EVOUT_RECORD_MAX ||
		    off + 4 + rlen > len)
			break;
		off += 4;
		if ((p = calloc(1, sizeof(*p))) == NULL)
			break;
		if (rq_msg_unpack(buf + off, rlen, &p->ev, err,
		    sizeof(err)) == -1 || p->ev.type != RQ_MSG_EVENT ||
		    p->ev.call_id == NULL || p->ev.status == NULL ||
		    pending_find(eo, p->ev.call_id, p->ev.attempt,
		    p->ev.status) != NULL) {
			if (p->ev.type != RQ_MSG_EVENT || p->ev.call_id ==
			    NULL || p->ev.status == NULL)
				bad++;
			rq_msg_clear(&p->ev);
			free(p);
		} else {
			p->jlen = 4 + rlen;
			pending_add(eo, p);
			n++;
		}
		off += rlen;
	}
	if (off < len)
		log_warnx("evout: journal %s ends in %zu bytes that are no "
		    "whole record (cut by a crash): ignored", eo->jpath,
		    len - off);
	if (bad > 0)
		log_warnx("evout: journal %s: %zu records that are no event "
		    "ignored", eo->jpath, bad);
	return n;
}

/* Opens and locks the journal at path, takes in what a previous run left
 * there and rewrites it.  Returns 0, or -1 (logged). */
static int
journal_open(struct rq_evout *eo, const char *path)
{
	char *buf;
	size_t len = 0, n = 0;
	int fd;

	if ((fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC,
	    0600)) == -1) {
		log_warn("evout: journal %s", path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		log_warnx("evout: journal %s is in use by another process "
		    "(a second telserver of the same name?)", path);
		close(fd);
		return -1;
	}
	if ((eo->jpath = strdup(path)) == NULL ||
	    (buf = read_file(fd, &len)) == NULL) {
		log_warn("evout: journal %s", path);
		close(fd);
		return -1;
	}
	eo->jfd = fd;
	if (len >= EVOUT_JOURNAL_MAGIC_LEN &&
	    !memcmp(buf, EVOUT_JOURNAL_MAGIC, EVOUT_JOURNAL_MAGIC_LEN))
		n = journal_load(eo, buf, len);
	else if (len > 0)
		log_warnx("evout: journal %s: not an event journal (%zu "
		    "bytes): overwritten", path, len);
	free(buf);
	if (journal_rewrite(eo) == -1)
		return -1;
	if (n > 0)
		log_info("evout: %zu events a previous run left "
		    "unacknowledged, from %s: sent again", n, path);
	return 0;
}

struct rq_evout *
rq_evout_new(void *zctx, const char *endpoint, const char *journal)
{
	struct rq_evout *eo;

	if ((eo = calloc(1, sizeof(*eo))) == NULL)
		return NULL;
	eo->jfd = -1;
	if ((eo->sock = rq_bus_socket(zctx, ZMQ_DEALER)) == NULL ||
	    zmq_connect(eo->sock, endpoint) == -1) {
		log_warnx("evout: connect %s: %s", endpoint,
		    zmq_strerror(zmq_errno()));
		if (eo->sock)
			zmq_close(eo->sock);
		free(eo);
		return NULL;
	}
	rq_bus_in_init(&eo->in, eo->sock, 0);
	/* What the journal gives back has sent_ms 0: the ticks send it
	 * again, RQ_EVOUT_RESEND_BURST at a time. */
	if (journal != NULL && journal_open(eo, journal) == -1) {
		rq_evout_free(eo, 0);
		return NULL;
	}
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
	if (eo->jfd >= 0) {
		/* the journal keeps exactly what is pending */
		journal_rewrite(eo);
		if (eo->npending > 0)
			log_warnx("evout: %zu events not acknowledged at exit: "
			    "kept in %s for the next start", eo->npending,
			    eo->jpath);
	} else if (eo->npending > 0)
		log_warnx("evout: %zu events not acknowledged at exit",
		    eo->npending);
	if (eo->dropped > 0)
		log_warnx("evout: %llu events dropped while the outbox was "
		    "full", (unsigned long long)eo->dropped);
	while (eo->head)
		pending_unlink(eo, eo->head);
	if (eo->jfd >= 0)
		close(eo->jfd);
	free(eo->jpath);
	zmq_close(eo->sock);
	free(eo);
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
	pending_add(eo, p);
	p->sent_ms = rq_mono_ms();
	rq_bus_send_batch(eo->sock, NULL, 0, &b);
	return 0;
}

int
rq_evout_fd(struct rq_evout *eo)
{
	return rq_bus_fd(eo->sock);
}

void
rq_evout_process(struct rq_evout *eo)
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
		/* Any ack shows accounting is there: resend in full again. */
		eo->round_ms = 0;
		if (eo->probe_ms != 0) {
			log_info("evout: accounting answers again; %zu events "
			    "to send again", eo->npending);
			eo->probe_ms = 0;
		}
		if ((p = pending_find(eo, m.call_id, m.attempt,
		    m.status)) != NULL)
			pending_unlink(eo, p);
		rq_msg_clear(&m);
	}
}

void
rq_evout_tick(struct rq_evout *eo)
{
	uint64_t now = rq_mono_ms();
	struct pending *p;
	int resent = 0, limit = RQ_EVOUT_RESEND_BURST;

	rq_evout_process(eo);
	journal_tend(eo);
	if (eo->head == NULL || now - eo->head->sent_ms < RQ_EVOUT_RESEND_MS)
		return;
	/* Resent for a whole interval and not one ack back: accounting is
	 * away.  Resending everything again and again would only burn CPU
	 * beside the calls; one event per interval finds out when it is
	 * back. */
	if (eo->round_ms != 0 && now - eo->round_ms >= RQ_EVOUT_RESEND_MS) {
		if (eo->probe_ms == 0)
			log_warnx("evout: accounting has not answered for %llu "
			    "ms; %zu events kept, one sent again every %d ms "
			    "until it does", (unsigned long long)(now -
			    eo->round_ms), eo->npending, RQ_EVOUT_RESEND_MS);
		else if (now - eo->probe_ms < RQ_EVOUT_RESEND_MS)
			return;
		eo->probe_ms = now;
		limit = 1;
	}
	/* In sent_ms order: stop at the first one not due.  A resent event
	 * moves to the tail, where the loop meets it again as not due. */
	while ((p = eo->head) != NULL && now - p->sent_ms >=
	    RQ_EVOUT_RESEND_MS) {
		/* Bound the burst so a long outage does not stall the loop. */
		if (resent++ >= limit)
			break;
		p->sent_ms = now;
		rq_bus_send(eo->sock, NULL, 0, &p->ev);
		pending_remove(eo, p);
		pending_append(eo, p);
	}
	if (eo->round_ms == 0)
		eo->round_ms = now;
	rq_evout_process(eo);
}

size_t
rq_evout_pending(const struct rq_evout *eo)
{
	return eo->npending;
}
