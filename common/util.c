/* Shared helpers (see util.h). */
#include <ctype.h>
#include <stddef.h>
#include <errno.h>
#include <limits.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <ifaddrs.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

volatile sig_atomic_t rq_stop;

uint64_t
rq_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t
rq_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t
rq_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Random bytes for call ids, fetched from the kernel ID_POOL_IDS ids at a
 * time: a getrandom per id was a sixth of the gateway's system calls per
 * request.  Per thread; a forked child starts with an empty pool, so it
 * never hands out its parent's ids. */
#define ID_RANDOM	12
#define ID_POOL_IDS	20
_Static_assert(RQ_ID_LEN == 2 + 2 * ID_RANDOM, "RQ_ID_LEN: c_ and hex");
static _Thread_local unsigned char id_pool[ID_RANDOM * ID_POOL_IDS];
static _Thread_local size_t id_pool_left;
static pthread_once_t id_pool_once = PTHREAD_ONCE_INIT;
static int id_pool_ids = 1;	/* ids per refill: 1 until fork-safe */

static void
id_pool_forget(void)
{
	id_pool_left = 0;
}

static void
id_pool_register(void)
{
	if (pthread_atfork(NULL, NULL, id_pool_forget) == 0)
		id_pool_ids = ID_POOL_IDS;
}

int
rq_call_id_new(char out[RQ_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char *rnd;
	size_t i;

	pthread_once(&id_pool_once, id_pool_register);
	if (id_pool_left == 0) {
		if (getrandom(id_pool, ID_RANDOM * (size_t)id_pool_ids, 0) !=
		    (ssize_t)(ID_RANDOM * (size_t)id_pool_ids))
			return -1;
		id_pool_left = (size_t)id_pool_ids;
	}
	rnd = id_pool + ID_RANDOM * --id_pool_left;
	out[0] = 'c';
	out[1] = '_';
	for (i = 0; i < ID_RANDOM; i++) {
		out[2 + 2 * i] = hex[rnd[i] >> 4];
		out[3 + 2 * i] = hex[rnd[i] & 15];
	}
	out[RQ_ID_LEN] = '\0';
	return 0;
}

int
rq_call_id_valid(const char *id)
{
	return strlen(id) == RQ_ID_LEN && id[0] == 'c' && id[1] == '_' &&
	    strspn(id + 2, "0123456789abcdef") == RQ_ID_LEN - 2;
}

static int
digits(const char **p, int n, int *out)
{
	int v = 0;

	while (n-- > 0) {
		if (!isdigit((unsigned char)**p))
			return -1;
		v = v * 10 + (*(*p)++ - '0');
	}
	*out = v;
	return 0;
}

static int
leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int
rq_rfc3339_parse(const char *s, uint64_t *ms)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };
	int y, mo, d, h, mi, sec, oh = 0, om = 0, frac_ms = 0, scale = 100;
	int64_t days, t;
	const char *p = s;

	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) ||
	    *p++ != '-' || digits(&p, 2, &d) || (*p != 'T' && *p != 't' &&
	    *p != ' ') || (p++, digits(&p, 2, &h)) || *p++ != ':' ||
	    digits(&p, 2, &mi) || *p++ != ':' || digits(&p, 2, &sec))
		return -1;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 ||
	    d > mdays[mo - 1] + (mo == 2 && leap(y)) || h > 23 || mi > 59 ||
	    sec > 60)
		return -1;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		while (isdigit((unsigned char)*p)) {
			frac_ms += (*p++ - '0') * scale;
			scale /= 10;
		}
	}
	if (*p == 'Z' || *p == 'z')
		p++;
	else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1;

		if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) ||
		    oh > 23 || om > 59)
			return -1;
		oh *= sign;
		om *= sign;
	} else
		return -1;
	if (*p != '\0')
		return -1;
	if (sec == 60)
		sec = 59;	/* leap second: close enough for scheduling */

	/* Days from the civil date (Howard Hinnant's algorithm). */
	{
		int yy = mo <= 2 ? y - 1 : y;
		int era = yy / 400;
		int yoe = yy - era * 400;
		int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
		int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

		days = (int64_t)era * 146097 + doe - 719468;
	}
	t = days * 86400 + h * 3600 + mi * 60 + sec - (oh * 3600 + om * 60);
	if (t < 0)
		return -1;
	*ms = (uint64_t)t * 1000 + frac_ms;
	return 0;
}

void
rq_rfc3339_format(uint64_t ms, char *out, size_t outlen)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char base[24];

	gmtime_r(&t, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, outlen, "%s.%03uZ", base, (unsigned)(ms % 1000));
}

void
rq_sha256_hex(const void *data, size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[SHA256_DIGEST_LENGTH];
	int i;

	SHA256(data, len, md);
	for (i = 0; i < SHA256_DIGEST_LENGTH; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

int
rq_hmac_sha256_hex(const void *key, size_t keylen, const void *data,
    size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;

	out[0] = '\0';
	if (keylen > INT_MAX)
		return -1;
	if (HMAC(EVP_sha256(), keylen ? key : "", (int)keylen,
	    len ? data : (const void *)"", len, md, &mdlen) == NULL ||
	    mdlen != 32)
		return -1;
	for (i = 0; i < mdlen; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
	return 0;
}

/* a, in host order, within net/bits */
#define IN4(a, net, bits) \
	(((a) >> (32 - (bits))) == ((uint32_t)(net) >> (32 - (bits))))

static int
addr4_is_public(uint32_t a)
{
	return !(IN4(a, 0x00000000, 8) ||	/* "this network" */
	    IN4(a, 0x0a000000, 8) ||		/* private */
	    IN4(a, 0x64400000, 10) ||		/* CGNAT */
	    IN4(a, 0x7f000000, 8) ||		/* loopback */
	    IN4(a, 0xa9fe0000, 16) ||		/* link-local, cloud metadata */
	    IN4(a, 0xac100000, 12) ||		/* private */
	    IN4(a, 0xc0000000, 24) ||		/* IETF protocol assignments */
	    IN4(a, 0xc0000200, 24) ||		/* documentation */
	    IN4(a, 0xc0586300, 24) ||		/* 6to4 relays */
	    IN4(a, 0xc0a80000, 16) ||		/* private */
	    IN4(a, 0xc6120000, 15) ||		/* benchmarking */
	    IN4(a, 0xc6336400, 24) ||		/* documentation */
	    IN4(a, 0xcb007100, 24) ||		/* documentation */
	    IN4(a, 0xe0000000, 4) ||		/* multicast */
	    IN4(a, 0xf0000000, 4));		/* reserved, broadcast */
}

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

int
rq_addr_is_public(const struct sockaddr *sa)
{
	struct sockaddr_in s4;
	struct sockaddr_in6 s6;
	sa_family_t family;
	const uint8_t *b;
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff };
	static const uint8_t nat64[12] = { 0, 0x64, 0xff, 0x9b };

	if (sa == NULL)
		return 0;
	/* Copies, the family too: the caller's buffer need not be aligned
	 * for the type. */
	memcpy(&family, (const char *)sa + offsetof(struct sockaddr,
	    sa_family), sizeof(family));
	if (family == AF_INET) {
		memcpy(&s4, sa, sizeof(s4));
		return addr4_is_public(ntohl(s4.sin_addr.s_addr));
	}
	if (family != AF_INET6)
		return 0;
	memcpy(&s6, sa, sizeof(s6));
	b = s6.sin6_addr.s6_addr;
	/* Forms that carry an IPv4 address reach it: ::ffff:a.b.c.d, the
	 * NAT64 prefix 64:ff9b::/96 and 6to4 2002::/16. */
	if (!memcmp(b, mapped, 12) || !memcmp(b, nat64, 12))
		return addr4_is_public(be32(b + 12));
	if (b[0] == 0x20 && b[1] == 0x02)
		return addr4_is_public(be32(b + 2));
	/* Only global unicast 2000::/3 is public: this leaves out ::, ::1,
	 * the IPv4-compatible ::/96, ULA fc00::/7, link-local fe80::/10,
	 * site-local fec0::/10, multicast ff00::/8 and the rest. */
	if ((b[0] & 0xe0) != 0x20)
		return 0;
	/* 2001::/23 (IETF: Teredo, benchmarking, ORCHID ...), 2001:db8::/32
	 * and 3fff::/20 (documentation). */
	if ((b[0] == 0x20 && b[1] == 0x01 && b[2] < 0x02) ||
	    (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) ||
	    (b[0] == 0x3f && b[1] == 0xff && b[2] < 0x10))
		return 0;
	return 1;
}

/* sa's family, read without assuming sa is aligned for its type. */
static sa_family_t
addr_family(const struct sockaddr *sa)
{
	sa_family_t family;

	memcpy(&family, (const char *)sa + offsetof(struct sockaddr,
	    sa_family), sizeof(family));
	return family;
}

/* The IPv4 address of sa (IPv4-mapped ones too) in *v4, or -1. */
static int
addr_v4(const struct sockaddr *sa, uint32_t *v4)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff };
	static const uint8_t nat64[12] = { 0, 0x64, 0xff, 0x9b };
	static const uint8_t zero[12];
	struct sockaddr_in s4;
	struct sockaddr_in6 s6;
	const uint8_t *b;

	/* Copies: curl's buffer need not be aligned for the type. */
	if (addr_family(sa) == AF_INET) {
		memcpy(&s4, sa, sizeof(s4));
		*v4 = ntohl(s4.sin_addr.s_addr);
		return 0;
	}
	memcpy(&s6, sa, sizeof(s6));
	b = s6.sin6_addr.s6_addr;
	/* Forms that carry an IPv4 address reach it (as rq_addr_is_public
	 * reads them): ::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16
	 * and the IPv4-compatible ::a.b.c.d (not :: and ::1). */
	if (!memcmp(b, mapped, 12) || !memcmp(b, nat64, 12))
		memcpy(v4, b + 12, 4);
	else if (b[0] == 0x20 && b[1] == 0x02)
		memcpy(v4, b + 2, 4);
	else if (!memcmp(b, zero, 12) && b[12] != 0)
		memcpy(v4, b + 12, 4);
	else
		return -1;
	*v4 = ntohl(*v4);
	return 0;
}

/* Whether sa is an address of one of this host's interfaces. */
static int
addr_is_own(const struct sockaddr *sa)
{
	struct ifaddrs *ifs, *i;
	struct sockaddr_in6 s6, o6;
	uint32_t v4, o4;
	int own = 0, is4;

	if (getifaddrs(&ifs) == -1)
		return 1;	/* cannot tell: refuse */
	is4 = addr_v4(sa, &v4) == 0;
	if (!is4)
		memcpy(&s6, sa, sizeof(s6));
	for (i = ifs; i != NULL && !own; i = i->ifa_next) {
		if (i->ifa_addr == NULL)
			continue;
		if (i->ifa_addr->sa_family == AF_INET && is4)
			own = addr_v4(i->ifa_addr, &o4) == 0 && o4 == v4;
		else if (i->ifa_addr->sa_family == AF_INET6 && !is4) {
			memcpy(&o6, i->ifa_addr, sizeof(o6));
			own = !memcmp(&o6.sin6_addr, &s6.sin6_addr,
			    sizeof(s6.sin6_addr));
		}
	}
	freeifaddrs(ifs);
	return own;
}

const char *
rq_addr_refusal(const struct sockaddr *sa, int allow_loopback,
    int allow_private)
{
	struct sockaddr_in6 s6;
	sa_family_t family = addr_family(sa);
	uint32_t v4;

	if (family != AF_INET && family != AF_INET6)
		return "an address of an unknown family";
	if (addr_v4(sa, &v4) == 0) {
		if (v4 >> 24 == 127)
			return allow_loopback ? NULL :
			    "this host (loopback)";
		if (v4 >> 24 == 0 || v4 >> 28 >= 14)
			return "an address that is not a unicast one";
	} else {
		memcpy(&s6, sa, sizeof(s6));
		if (IN6_IS_ADDR_LOOPBACK(&s6.sin6_addr))
			return allow_loopback ? NULL :
			    "this host (loopback)";
		if (IN6_IS_ADDR_UNSPECIFIED(&s6.sin6_addr) ||
		    IN6_IS_ADDR_MULTICAST(&s6.sin6_addr))
			return "an address that is not a unicast one";
	}
	if (allow_private)
		return NULL;
	if (!rq_addr_is_public(sa))
		return "a private or reserved address";
	if (addr_is_own(sa))
		return "this host (one of its addresses)";
	return NULL;
}

char *
rq_addr_text(const struct sockaddr *sa, char *buf, size_t len)
{
	struct sockaddr_in s4;
	struct sockaddr_in6 s6;
	const char *ok = NULL;

	if (addr_family(sa) == AF_INET) {
		memcpy(&s4, sa, sizeof(s4));
		ok = inet_ntop(AF_INET, &s4.sin_addr, buf, (socklen_t)len);
	} else if (addr_family(sa) == AF_INET6) {
		memcpy(&s6, sa, sizeof(s6));
		ok = inet_ntop(AF_INET6, &s6.sin6_addr, buf, (socklen_t)len);
	}
	if (ok == NULL)
		snprintf(buf, len, "?");
	return buf;
}

static int
sip_host_valid(const char *h, size_t len)
{
	size_t i;

	if (len == 0 || len > 253)
		return 0;
	if (h[0] == '[')	/* IPv6 reference */
		return len > 2 && h[len - 1] == ']' &&
		    strspn(h + 1, "0123456789abcdefABCDEF:.") == len - 2;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)h[i]) && h[i] != '-' && h[i] != '.')
			return 0;
	return 1;
}

int
rq_target_parse(const char *to, enum rq_target_kind *kind, char *err,
    size_t errlen)
{
	const unsigned char *c;
	size_t n;

	/* No control byte, space or DEL anywhere: the target ends up in a SIP
	 * request line and headers. */
	for (c = (const unsigned char *)to; *c; c++)
		if (*c <= 0x20 || *c == 0x7f) {
			snprintf(err, errlen, "must not contain spaces or "
			    "control characters");
			return -1;
		}
	if (c - (const unsigned char *)to > 256) {
		snprintf(err, errlen, "is longer than 256 characters");
		return -1;
	}
	if (to[0] == '+') {
		n = strlen(to + 1);
		if (strspn(to + 1, "0123456789") != n) {
			snprintf(err, errlen, "an E.164 number has only digits "
			    "after the +");
			return -1;
		}
		if (n < 8 || n > 15 || to[1] == '0') {
			snprintf(err, errlen, "an E.164 number has a country "
			    "code and 8 to 15 digits in all");
			return -1;
		}
		*kind = RQ_TARGET_E164;
		return 0;
	}
	if (!strncasecmp(to, "sip:", 4)) {
		const char *user = to + 4, *at, *host, *colon, *end;
		size_t ulen;

		if ((at = strchr(user, '@')) == NULL || at == user) {
			snprintf(err, errlen, "a SIP URI needs user@host");
			return -1;
		}
		ulen = at - user;
		if (strcspn(user, "<>\"@;?") < ulen) {
			snprintf(err, errlen, "the user part of the SIP URI has "
			    "characters it may not have");
			return -1;
		}
		host = at + 1;
		end = host + strlen(host);
		colon = host[0] == '[' ? strstr(host, "]:") : strchr(host, ':');
		if (colon && host[0] == '[')
			colon++;
		if (colon) {
			char *e;
			long port;

			/* Digits only: strtol would also take a sign. */
			errno = 0;
			port = strtol(colon + 1, &e, 10);
			if (!isdigit((unsigned char)colon[1]) || errno ||
			    *e != '\0' || port < 1 || port > 65535) {
				snprintf(err, errlen, "the SIP URI's port must be "
				    "1 to 65535");
				return -1;
			}
			end = colon;
		}
		if (!sip_host_valid(host, end - host)) {
			snprintf(err, errlen, "the SIP URI's host is not a host "
			    "name or address");
			return -1;
		}
		*kind = RQ_TARGET_SIP;
		return 0;
	}
	snprintf(err, errlen, "must be an E.164 number (+15551234567) or a "
	    "SIP URI (sip:user@host)");
	return -1;
}

static int
pidfile_path(const char *run_dir, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s.pid", run_dir, name);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int
rq_pidfile_write(const char *run_dir, const char *name)
{
	char path[PATH_MAX];
	FILE *fp;

	if (run_dir[0] == '\0')
		return 0;
	if (pidfile_path(run_dir, name, path, sizeof(path)) == -1 ||
	    (fp = fopen(path, "w")) == NULL) {
		log_warn("pidfile %s/%s.pid", run_dir, name);
		return -1;
	}
	fprintf(fp, "%ld\n", (long)getpid());
	return fclose(fp) == 0 ? 0 : -1;
}

void
rq_pidfile_remove(const char *run_dir, const char *name)
{
	char path[PATH_MAX];

	if (run_dir[0] != '\0' &&
	    pidfile_path(run_dir, name, path, sizeof(path)) == 0)
		unlink(path);
}

static void
on_stop_signal(int sig)
{
	(void)sig;
	rq_stop = 1;
}

void
rq_signals_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

int
rq_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

int
rq_listen_split(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(s, ':');
	char *end;
	long p;
	size_t n;

	if (colon == NULL)
		return -1;
	n = (size_t)(colon - s);
	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		s++;
		n -= 2;
	} else if (memchr(s, ':', n) != NULL)
		return -1;	/* IPv6 needs its brackets */
	if (n == 0 || n >= hostlen || !isdigit((unsigned char)colon[1]) ||
	    memchr(s, '[', n) != NULL || memchr(s, ']', n) != NULL)
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || *end != '\0' || p < 1 || p > 65535)
		return -1;
	*port = (int)p;
	return 0;
}

/* Where a URL ends in running text: at a byte no URL may hold. */
static int
url_end(int ch)
{
	return ch == '\0' || isspace(ch) || ch == '"' || ch == '<' ||
	    ch == '>';
}

/* Appends len bytes of src to out, as far as they fit with the NUL. */
static void
put(char *out, size_t outlen, size_t *o, const char *src, size_t len)
{
	size_t room = outlen - 1 - *o;

	if (len > room)
		len = room;
	memcpy(out + *o, src, len);
	*o += len;
}

char *
rq_redact_urls(const char *text, char *out, size_t outlen)
{
	const char *p = text != NULL ? text : "", *s, *host, *at, *end;
	size_t o = 0, len, auth;

	if (outlen == 0)
		return out;
	while ((s = strstr(p, "://")) != NULL) {
		host = s + 3;
		put(out, outlen, &o, p, (size_t)(host - p));
		for (end = host; !url_end((unsigned char)*end); end++)
			;
		/* ')' and '\'' may be in a URL, and around one in text:
		 * those at its end are taken for the text's */
		while (end > host && (end[-1] == ')' || end[-1] == '\''))
			end--;
		len = (size_t)(end - host);
		/* user:password@ comes before the path */
		if ((auth = strcspn(host, "/?#")) > len)
			auth = len;
		if ((at = memrchr(host, '@', auth)) != NULL) {
			len -= (size_t)(at + 1 - host);
			host = at + 1;
		}
		if ((auth = strcspn(host, "?#")) < len) {
			put(out, outlen, &o, host, auth);
			put(out, outlen, &o, "?...", 4);
		} else
			put(out, outlen, &o, host, len);
		p = end;
	}
	put(out, outlen, &o, p, strlen(p));
	out[o] = '\0';
	return out;
}

int
rq_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void
rq_le32_put(unsigned char out[4], uint32_t v)
{
	out[0] = v & 0xff;
	out[1] = (v >> 8) & 0xff;
	out[2] = (v >> 16) & 0xff;
	out[3] = (v >> 24) & 0xff;
}

uint32_t
rq_le32_get(const unsigned char in[4])
{
	return (uint32_t)in[0] | (uint32_t)in[1] << 8 | (uint32_t)in[2] << 16 |
	    (uint32_t)in[3] << 24;
}

char *
rq_read_all(int fd, size_t *len)
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
		n = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			free(buf);
			return NULL;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	*len = got;
	return buf;
}

int
rq_record_next(const char *buf, size_t len, size_t *off, const char **rec,
    size_t *rlen, size_t max)
{
	size_t n;

	if (*off + 4 > len)
		return 0;
	n = rq_le32_get((const unsigned char *)buf + *off);
	if (n == 0 || n > max || n > len - *off - 4)
		return 0;
	*rec = buf + *off + 4;
	*rlen = n;
	*off += 4 + n;
	return 1;
}
