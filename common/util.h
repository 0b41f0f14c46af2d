/* Small shared helpers: clocks, ids, time formats, hashing, address
 * classes, call targets, PID files and the stop flag set by signal handlers. */
#ifndef RQ_UTIL_H
#define RQ_UTIL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

uint64_t	rq_now_ms(void);	/* wall clock, ms since the epoch */
uint64_t	rq_mono_ms(void);	/* monotonic, for timeouts */
uint64_t	rq_mono_us(void);	/* monotonic, for measuring */
/* s as a decimal integer: digits only (no sign, space or 0x), whole, in
 * range.  0, or -1 (NULL, empty, anything else). */
int		rq_parse_u64(const char *s, uint64_t *out);

/* A new call id: "c_" and 24 random hex digits (RQ_ID_LEN chars + NUL). */
#define RQ_ID_LEN	26
int		rq_call_id_new(char out[RQ_ID_LEN + 1]);
int		rq_call_id_valid(const char *id);

/* RFC 3339 date-time ("2026-11-21T10:00:00Z", "...+01:00", fractions
 * allowed) to ms since the epoch.  Returns 0 or -1. */
int		rq_rfc3339_parse(const char *s, uint64_t *ms);
/* Formats ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (at least 32 bytes). */
void		rq_rfc3339_format(uint64_t ms, char *out, size_t outlen);

/* Hex SHA-256 of data (65 bytes with the NUL). */
void		rq_sha256_hex(const void *data, size_t len, char out[65]);
/* Hex HMAC-SHA256 of data keyed with key.  Returns 0, or -1 with out "". */
int		rq_hmac_sha256_hex(const void *key, size_t keylen,
		    const void *data, size_t len, char out[65]);

/* Whether an IPv4 or IPv6 address (IPv4-mapped ones by the IPv4 rules) is
 * a public unicast one: not unspecified, loopback, private, CGNAT,
 * link-local, multicast, broadcast, reserved, documentation or benchmark,
 * unique or site local. */
struct sockaddr;
int		rq_addr_is_public(const struct sockaddr *sa);
/* Why a connection to sa must not be made for a URL a tenant gave (a
 * status callback, a VoiceXML document), or NULL: loopback (unless
 * allow_loopback), any non-public address or this host's own (unless
 * allow_private), never a non-unicast one.  Check the address curl is
 * about to connect to, after its own DNS, so a second look-up cannot
 * answer differently. */
const char	*rq_addr_refusal(const struct sockaddr *sa, int allow_loopback,
		    int allow_private);
/* sa's address as text (no port) in buf, "?" when it is neither IPv4 nor
 * IPv6; sa need not be aligned for its type.  Returns buf. */
char		*rq_addr_text(const struct sockaddr *sa, char *buf, size_t len);

enum rq_target_kind { RQ_TARGET_E164, RQ_TARGET_SIP };
/* Classifies a call target: an E.164 number "+<country><number>" (8 to 15
 * digits) or a SIP URI "sip:user@host[:port]".  Returns 0, or -1 with a
 * reason for people in err. */
int		rq_target_parse(const char *to, enum rq_target_kind *kind,
		    char *err, size_t errlen);

/* text (NULL: "") for a log line, with every URL in it (from "scheme://"
 * to a space, '"', '<' or '>', less the ')' and '\'' at its end) cut down
 * to where it leads: its user:password@ and its query and fragment
 * (replaced by "?..."), which may carry a tenant's tokens, are left out.
 * out is always terminated; returns out. */
char		*rq_redact_urls(const char *text, char *out, size_t outlen);

/* A listen address "host:port" or "[v6]:port" split into host (without
 * the brackets) and port (1 to 65535).  Returns 0 or -1. */
int		rq_listen_split(const char *s, char *host, size_t hostlen,
		    int *port);

/* Writes getpid() to run_dir/name.pid (nothing when run_dir is empty). */
int		rq_pidfile_write(const char *run_dir, const char *name);
void		rq_pidfile_remove(const char *run_dir, const char *name);

/* A whole file from fd (from its start) in a new buffer, its length in
 * *len.  Returns NULL on error (errno set). */
char		*rq_read_all(int fd, size_t *len);
/* write(2) until len bytes went (EINTR retried).  Returns 0 or -1. */
int		rq_write_all(int fd, const void *buf, size_t len);
/* The 4-byte little-endian lengths that frame the records of the
 * telserver's files (common/evout.c, telserver/life.c). */
void		rq_le32_put(unsigned char out[4], uint32_t v);
uint32_t	rq_le32_get(const unsigned char in[4]);
/* The record of buf (len bytes) at *off: *rec and *rlen, *off moved past
 * it.  Returns 1, or 0 at the end or at a record cut short or of length
 * 0 or over max (what a crash mid-write leaves): *off stays there, the
 * end of the whole records. */
int		rq_record_next(const char *buf, size_t len, size_t *off,
		    const char **rec, size_t *rlen, size_t max);

/* SIGINT and SIGTERM set rq_stop; SIGPIPE is ignored. */
extern volatile sig_atomic_t rq_stop;
void		rq_signals_install(void);

#endif
