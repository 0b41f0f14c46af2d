/* DKIM for tenants that require it: libopendkim verifies the message and
 * one valid signature must come from the tenant's dkim_domain.  The key is
 * the tenant's pinned dkim_key when set, else libopendkim's DNS lookup,
 * which blocks: smtp_server.c calls gw_dkim_verify in a thread of its own
 * (few signatures, a short timeout all the same). */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <resolv.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <opendkim/dkim.h>

#include "gateway.h"
#include "log.h"

#define DKIM_MAX_SIGS		3	/* of the tenant's domain, verified */
#define DKIM_DNS_TIMEOUT_S	3	/* a name server's, one try; TCP's too */

/* Two handles, because a key lookup callback replaces DNS for the whole
 * library: one with the pinned-key callback, one that asks DNS. */
static DKIM_LIB	*dkim_pinned_lib;
static DKIM_LIB	*dkim_dns_lib;

/* Hands libopendkim the tenant's pinned key record ("p=..." or a whole
 * "v=DKIM1; k=rsa; p=..." TXT record). */
static DKIM_CBSTAT
dkim_pinned_key(DKIM *dkim, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
	const struct rq_tenant *t = dkim_get_user_context(dkim);

	if (t == NULL || t->dkim_key[0] == '\0')
		return DKIM_CBSTAT_NOTFOUND;
	if ((size_t)snprintf((char *)buf, buflen, "%s", t->dkim_key) >= buflen)
		return DKIM_CBSTAT_ERROR;
	return DKIM_CBSTAT_CONTINUE;
}

/* Before any key is fetched: signatures of other domains, and those of
 * the tenant's past the first DKIM_MAX_SIGS, are not verified, so a
 * message cannot make us do a DNS lookup per signature. */
static DKIM_CBSTAT
dkim_prescreen(DKIM *dkim, DKIM_SIGINFO **sigs, int nsigs)
{
	const struct rq_tenant *t = dkim_get_user_context(dkim);
	const char *dom;
	int i, n = 0;

	for (i = 0; i < nsigs; i++) {
		dom = (const char *)dkim_sig_getdomain(sigs[i]);
		if (t == NULL || dom == NULL ||
		    strcasecmp(dom, t->dkim_domain) || ++n > DKIM_MAX_SIGS)
			dkim_sig_ignore(sigs[i]);
	}
	return DKIM_CBSTAT_CONTINUE;
}

/*
 * libopendkim's own resolver keeps one resolver state (its socket with it)
 * per library handle, made without a lock, which the verifying threads
 * would share; and it leaves glibc's timeouts (5 s, two tries, per name
 * server).  Its replacement asks in the calling thread, with a state of
 * its own and DKIM_DNS_TIMEOUT_S, one try, per name server (and as long
 * again over TCP for a reply cut short): the query is done when it
 * starts, and its handle is the reply's length.
 */
static int	resolver_service;	/* a handle libopendkim wants set */
/* the verifying thread's: no query starts after it (rq_mono_ms) */
static __thread uint64_t resolver_deadline_ms;

/* How each of the check's key lookups went (the verifying thread's):
 * libopendkim reports "query failed" alike for a key that does not exist
 * and for a DNS server that did not answer, which the resolver's h_errno
 * tells apart (resolver_outcome). */
struct resolver_answer {
	char	name[NS_MAXDNAME];
	int	h_errno_;	/* NETDB_SUCCESS: answered */
};
static __thread struct resolver_answer resolver_answers[DKIM_MAX_SIGS];
static __thread int resolver_nanswers;

/* A resolver state for one query, 3 s and one try per name server, or
 * -1 once the check's time is up. */
static int
resolver_open(struct __res_state *rs)
{
	memset(rs, 0, sizeof(*rs));
	if (rq_mono_ms() >= resolver_deadline_ms || res_ninit(rs) != 0)
		return -1;
	rs->retrans = DKIM_DNS_TIMEOUT_S;
	rs->retry = 1;
	/* Replies of big keys in UDP (EDNS0: a 4096-bit key fits); one cut
	 * short is asked again over TCP by resolver_tcp, not by glibc, which
	 * bounds neither its connect nor its reads. */
	rs->options |= RES_USE_EDNS0 | RES_IGNTC;
	rs->options &= ~RES_USEVC;
	return 0;
}

/* Whether the reply in buf (of buflen bytes; res_nquery copies a reply
 * there before judging its answer count, even when it returns -1) was
 * cut short: the header's TC bit.  buf's header was zeroed before the
 * query. */
static int
resolver_truncated(const unsigned char *buf, size_t buflen)
{
	return buflen >= NS_HFIXEDSZ && (buf[2] & 0x02) != 0;
}

/* Waits until fd is ready for events, or deadline_ms (rq_mono_ms):
 * 0 ready, -1 not in time. */
static int
resolver_poll(int fd, short events, uint64_t deadline_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	uint64_t now;
	int rc;

	for (;;) {
		if ((now = rq_mono_ms()) >= deadline_ms)
			return -1;
		rc = poll(&p, 1, (int)(deadline_ms - now));
		if (rc > 0)
			return 0;
		if (rc == 0 || errno != EINTR)
			return -1;
	}
}

/* n bytes to (out) or from fd, a non-blocking socket, by deadline_ms. */
static int
resolver_io(int fd, unsigned char *p, size_t n, int out,
    uint64_t deadline_ms)
{
	ssize_t k;

	while (n > 0) {
		if (resolver_poll(fd, out ? POLLOUT : POLLIN, deadline_ms) ==
		    -1)
			return -1;
		k = out ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
		if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
			return -1;
		if (k > 0) {
			p += k;
			n -= (size_t)k;
		}
	}
	return 0;
}

/* A reply of n bytes in buf to query q, judged as glibc judges one: n
 * when it answers, else -1 with rs's h_errno set.  SERVFAIL, NOTIMP and
 * REFUSED are a server's trouble (glibc tries the next server, then
 * says TRY_AGAIN), not the domain's. */
static int
resolver_judge(struct __res_state *rs, const unsigned char *q,
    const unsigned char *buf, int n)
{
	int rcode = buf[3] & 0x0f, ancount = buf[6] << 8 | buf[7];

	if (buf[0] != q[0] || buf[1] != q[1] || !(buf[2] & 0x80) ||
	    resolver_truncated(buf, (size_t)n) || rcode == ns_r_servfail ||
	    rcode == ns_r_notimpl || rcode == ns_r_refused)
		rs->res_h_errno = TRY_AGAIN;
	else if (rcode == ns_r_nxdomain)
		rs->res_h_errno = HOST_NOT_FOUND;
	else if (rcode != ns_r_noerror)
		rs->res_h_errno = NO_RECOVERY;
	else if (ancount == 0)
		rs->res_h_errno = NO_DATA;
	else
		return n;
	return -1;
}

/* The query again over TCP, for a reply UDP cut short, to the first
 * name server (as glibc's TCP does without `rotate`), all of it within
 * DKIM_DNS_TIMEOUT_S and the check's time.  Returns the reply's length,
 * or -1 with rs's h_errno set. */
static int
resolver_tcp(struct __res_state *rs, const char *name, int type,
    unsigned char *buf, size_t buflen)
{
	unsigned char q[2 + NS_PACKETSZ], len[2];
	uint64_t deadline = rq_mono_ms() + DKIM_DNS_TIMEOUT_S * 1000;
	struct sockaddr_storage ss;
	socklen_t sl, el = sizeof(int);
	size_t want;
	int fd = -1, n = -1, qn, err;

	if (deadline > resolver_deadline_ms)
		deadline = resolver_deadline_ms;
	rs->res_h_errno = TRY_AGAIN;
	memset(&ss, 0, sizeof(ss));
	/* glibc (2.26 on) keeps an IPv4 server in nsaddr_list, an IPv6 one
	 * in the state's private _u._ext.nsaddrs only */
	if (rs->nsaddr_list[0].sin_family == AF_INET) {
		sl = sizeof(struct sockaddr_in);
		memcpy(&ss, &rs->nsaddr_list[0], sl);
	} else if (rs->_u._ext.nsaddrs[0] != NULL) {
		sl = sizeof(struct sockaddr_in6);
		memcpy(&ss, rs->_u._ext.nsaddrs[0], sl);
	} else
		return -1;
	qn = res_nmkquery(rs, ns_o_query, name, ns_c_in, type, NULL, 0, NULL,
	    q + 2, (int)sizeof(q) - 2);
	if (qn <= 0)
		return -1;
	q[0] = (unsigned char)(qn >> 8);
	q[1] = (unsigned char)qn;
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1 ||
	    (connect(fd, (struct sockaddr *)&ss, sl) == -1 &&
	    errno != EINPROGRESS) ||
	    resolver_poll(fd, POLLOUT, deadline) == -1 ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == -1 || err != 0 ||
	    resolver_io(fd, q, 2 + (size_t)qn, 1, deadline) == -1 ||
	    resolver_io(fd, len, 2, 0, deadline) == -1)
		goto done;
	want = (size_t)len[0] << 8 | len[1];
	if (want > buflen)	/* no key is that big: the sender's to fix */
		rs->res_h_errno = NETDB_SUCCESS;
	else if (want >= NS_HFIXEDSZ &&
	    resolver_io(fd, buf, want, 0, deadline) == 0)
		n = resolver_judge(rs, q + 2, buf, (int)want);
done:
	if (fd != -1)
		close(fd);
	return n;
}

static int
resolver_init(void **srv)
{
	*srv = &resolver_service;
	return 0;
}

static void
resolver_close(void *srv)
{
	(void)srv;
}

static int
resolver_start(void *srv, int type, unsigned char *query, unsigned char *buf,
    size_t buflen, void **qh)
{
	struct __res_state rs;
	struct resolver_answer *a = NULL;
	int n;

	(void)srv;
	if (resolver_nanswers < DKIM_MAX_SIGS) {
		a = &resolver_answers[resolver_nanswers++];
		snprintf(a->name, sizeof(a->name), "%s", (const char *)query);
		a->h_errno_ = TRY_AGAIN;	/* until it is answered */
	}
	if (resolver_open(&rs) == -1)
		return DKIM_DNS_ERROR;
	memset(buf, 0, buflen < NS_HFIXEDSZ ? buflen : NS_HFIXEDSZ);
	n = res_nquery(&rs, (const char *)query, ns_c_in, type, buf,
	    buflen > INT_MAX ? INT_MAX : (int)buflen);
	if (resolver_truncated(buf, buflen))
		n = resolver_tcp(&rs, (const char *)query, type, buf, buflen);
	if (a != NULL)
		a->h_errno_ = n > 0 ? NETDB_SUCCESS : rs.res_h_errno;
	res_nclose(&rs);
	if (n <= 0)
		return DKIM_DNS_ERROR;
	*qh = (void *)(intptr_t)n;
	return DKIM_DNS_SUCCESS;
}

static int
resolver_waitreply(void *srv, void *qh, struct timeval *timeout,
    size_t *bytes, int *error, int *dnssec)
{
	(void)srv;
	(void)timeout;
	if (bytes != NULL)
		*bytes = (size_t)(intptr_t)qh;
	if (error != NULL)
		*error = 0;
	if (dnssec != NULL)
		*dnssec = DKIM_DNSSEC_UNKNOWN;
	return DKIM_DNS_SUCCESS;
}

static int
resolver_cancel(void *srv, void *qh)
{
	(void)srv;
	(void)qh;
	return DKIM_DNS_SUCCESS;
}

static DKIM_LIB *
dkim_lib_new(int pinned)
{
	DKIM_LIB *lib;

	if ((lib = dkim_init(NULL, NULL)) == NULL)
		return NULL;
	dkim_set_prescreen(lib, dkim_prescreen);
	if (pinned) {
		dkim_set_key_lookup(lib, dkim_pinned_key);
		return lib;
	}
	dkim_dns_set_init(lib, resolver_init);
	dkim_dns_set_close(lib, resolver_close);
	dkim_dns_set_query_service(lib, &resolver_service);
	dkim_dns_set_query_start(lib, resolver_start);
	dkim_dns_set_query_waitreply(lib, resolver_waitreply);
	dkim_dns_set_query_cancel(lib, resolver_cancel);
	return lib;
}

static void
dkim_libs_init(void)
{
	if ((dkim_pinned_lib = dkim_lib_new(1)) == NULL ||
	    (dkim_dns_lib = dkim_lib_new(0)) == NULL)
		log_warnx("dkim: cannot start libopendkim: messages that "
		    "need DKIM are deferred");
}

/* Made once, whichever thread comes first; shared by the verifying
 * threads, as libopendkim allows (a DKIM handle each; the resolver
 * above, no shared state).  One that could not be made stays NULL: the
 * messages are deferred, and the log says why. */
static DKIM_LIB *
dkim_lib(int pinned)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, dkim_libs_init);
	return pinned ? dkim_pinned_lib : dkim_dns_lib;
}

/* How the lookup of sig's key went, for a signature libopendkim could
 * not get a key for: 1: it failed for now (TRY_AGAIN: SERVFAIL, a
 * refusal, no answer; the check's time up; not asked, as for a pinned key
 * that could not be handed over); 0: there is no key (NXDOMAIN, no TXT
 * record, FORMERR or a name DNS cannot hold); 2: a record is there, which
 * libopendkim could not read (or too big to be a key).  The last two the
 * sender must fix.  No second query: the resolver kept how each went. */
static int
resolver_outcome(DKIM_SIGINFO *sig, const char *domain)
{
	const char *sel = (const char *)dkim_sig_getselector(sig);
	char name[NS_MAXDNAME];
	int i;

	if (sel == NULL || (size_t)snprintf(name, sizeof(name),
	    "%s._domainkey.%s", sel, domain) >= sizeof(name))
		return 0;
	for (i = 0; i < resolver_nanswers; i++) {
		if (strcasecmp(resolver_answers[i].name, name))
			continue;
		switch (resolver_answers[i].h_errno_) {
		case NETDB_SUCCESS:
			return 2;
		case TRY_AGAIN:
			return 1;
		default:	/* HOST_NOT_FOUND, NO_DATA, NO_RECOVERY */
			return 0;
		}
	}
	return 1;
}

int
gw_dkim_verify(const struct rq_tenant *tenant, const char *data, size_t len,
    char *why, size_t whylen)
{
	DKIM_LIB *lib;
	DKIM *d;
	DKIM_STAT st;
	DKIM_SIGINFO **sigs;
	const char *dom, *sel, *other = NULL;
	int i, nsigs = 0, rc = -1, bad = 0, tempfail = 0, err, look;

	resolver_deadline_ms = rq_mono_ms() + GW_DKIM_VERIFY_MAX_MS;
	resolver_nanswers = 0;
	if (tenant->dkim_domain[0] == '\0') {
		snprintf(why, whylen, "DKIM is required but no dkim_domain is "
		    "configured for this tenant; ask your ringq operator");
		return -1;
	}
	if ((lib = dkim_lib(tenant->dkim_key[0] != '\0')) == NULL) {
		snprintf(why, whylen, "DKIM verification is unavailable");
		return -2;
	}
	if ((d = dkim_verify(lib, (const u_char *)"ringq", NULL, &st)) ==
	    NULL) {
		snprintf(why, whylen, "DKIM verification is unavailable");
		return -2;
	}
	dkim_set_user_context(d, (void *)tenant);
	st = dkim_chunk(d, (u_char *)data, len);
	if (st == DKIM_STAT_OK)
		st = dkim_chunk(d, NULL, 0);
	if (st == DKIM_STAT_OK || st == DKIM_STAT_NOSIG)
		st = dkim_eom(d, NULL);
	if (dkim_getsiglist(d, &sigs, &nsigs) != DKIM_STAT_OK)
		nsigs = 0;
	for (i = 0; i < nsigs; i++) {
		dom = (const char *)dkim_sig_getdomain(sigs[i]);
		if (dom == NULL)
			continue;
		if (strcasecmp(dom, tenant->dkim_domain)) {
			other = dom;
			continue;
		}
		if (DKIM_SIG_CHECK(sigs[i])) {
			rc = 0;
			break;
		}
		if (dkim_sig_getflags(sigs[i]) & DKIM_SIGFLAG_IGNORE)
			continue;	/* over DKIM_MAX_SIGS */
		sel = (const char *)dkim_sig_getselector(sigs[i]);
		err = dkim_sig_geterror(sigs[i]);
		look = err == DKIM_SIGERROR_KEYFAIL ?
		    resolver_outcome(sigs[i], dom) : -1;
		if (look == 1) {
			tempfail = 1;
			continue;
		}
		bad = 1;
		if (err == DKIM_SIGERROR_NOKEY || look == 0) {
			snprintf(why, whylen, "%s publishes no DKIM key for "
			    "the selector %s: publish it, or sign with one it "
			    "publishes", tenant->dkim_domain, sel ? sel : "");
			continue;
		}
		if (look == 2) {
			snprintf(why, whylen, "the DKIM key %s publishes for "
			    "the selector %s cannot be read (%s): publish a "
			    "valid key record", tenant->dkim_domain,
			    sel ? sel : "", dkim_geterror(d));
			continue;
		}
		snprintf(why, whylen, "the DKIM signature of %s does not "
		    "verify (%s): sign the message as sent, with the key "
		    "published for %s", tenant->dkim_domain,
		    dkim_sig_geterrorstr(dkim_sig_geterror(sigs[i])),
		    tenant->dkim_domain);
	}
	/* one signature that may pass later is worth a retry, whatever the
	 * others did (a key being rotated) */
	if (rc == -1 && tempfail) {
		snprintf(why, whylen, "the DNS lookup of the DKIM key of %s "
		    "failed: try again later", tenant->dkim_domain);
		rc = -2;
	} else if (rc == -1 && !bad) {
		if (nsigs == 0)
			snprintf(why, whylen, "this tenant requires a DKIM "
			    "signature from %s and the message has none",
			    tenant->dkim_domain);
		else
			snprintf(why, whylen, "this tenant requires a DKIM "
			    "signature from %s; the message is signed by %.100s",
			    tenant->dkim_domain, other ? other : "another domain");
	}
	dkim_free(d);
	return rc;
}
