/* Asynchronous HTTP fetches for the VoiceXML interpreter: libcurl's multi
 * interface driven by the telserver's su_root (its sockets registered with
 * su_root_register, its timeout an su_timer), and an LRU cache in memory
 * that follows HTTP caching with VoiceXML's maxage/maxstale on top. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "log.h"
#include "telserver.h"
#include "util.h"

#define CACHE_BUCKETS	256
#define ENTRY_OVERHEAD	256	/* bytes charged per entry beyond its strings */
#define USER_AGENT	"ringq-telserver/1 (VoiceXML 2.1; libcurl)"

/* A cached response.  refs counts the fetches holding it (a hit being
 * delivered, a revalidation in flight); an entry evicted while held is
 * unlinked at once and freed when the last holder lets go. */
struct cache_entry {
	struct cache_entry	*hnext;		/* bucket chain */
	struct cache_entry	*prev, *next;	/* LRU: head is the newest */
	int			 refs;
	int			 linked;
	char			*key;		/* URL without fragment */
	char			*url;		/* effective URL */
	char			*ctype;
	char			*etag;
	char			*last_modified;
	char			*body;
	size_t			 len;
	size_t			 cost;
	uint64_t		 stored_ms;	/* monotonic: response received */
	int64_t			 age0_ms;	/* its Age then */
	int64_t			 lifetime_ms;	/* freshness lifetime */
	int			 no_cache;	/* revalidate every time */
	int			 must_revalidate; /* never served stale */
};

/* What the headers of the last response said (redirects reset it). */
struct resp_hdrs {
	char	*cache_control;
	char	*pragma;
	char	*expires;
	char	*date;
	char	*age;
	char	*etag;
	char	*last_modified;
	char	*vary;
};

struct fetch_job {
	struct fetch_job	*prev, *next;	/* in f->running or f->ready */
	struct tel_fetcher	*f;
	uint64_t		 id;
	tel_fetch_done_f	 done;
	void			*arg;
	CURL			*easy;
	struct curl_slist	*hdrs;
	curl_mime		*mime;
	char			*key;		/* cache key; NULL: not cacheable */
	int			 is_get;
	int			 is_file;
	struct cache_entry	*reval;		/* held: being revalidated */
	struct cache_entry	*hit;		/* held: the answer */
	struct resp_hdrs	 rh;
	char			*body;
	size_t			 len, cap;
	int			 too_big;
	char			 errbuf[CURL_ERROR_SIZE];
	const char		*refused;	/* why an address was refused */
	char			 refused_addr[INET6_ADDRSTRLEN];
	/* a result decided before or without a transfer */
	char			*error;
	int			 timed_out;
};

struct fetch_sock {
	struct tel_fetcher	*f;
	curl_socket_t		 fd;
	int			 reg;
};

struct tel_fetcher {
	su_root_t		*root;
	CURLM			*multi;
	su_timer_t		*timer;		/* curl's timeout */
	su_timer_t		*defer;		/* completions from the loop */
	struct fetch_job	*running;
	struct fetch_job	*ready, *ready_tail;
	uint64_t		 next_id;
	int			 allow_file;
	int			 allow_loopback, allow_private;
	size_t			 cache_max, cache_used, cache_n;
	struct cache_entry	*lru_head, *lru_tail;
	struct cache_entry	*buckets[CACHE_BUCKETS];
};

static int curl_inited;

static void check_done(struct tel_fetcher *);

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the cache ---- */

static unsigned
hash_key(const char *s)
{
	unsigned h = 5381;

	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h % CACHE_BUCKETS;
}

static void
entry_free(struct cache_entry *e)
{
	free(e->key);
	free(e->url);
	free(e->ctype);
	free(e->etag);
	free(e->last_modified);
	free(e->body);
	free(e);
}

static void
entry_unref(struct cache_entry *e)
{
	if (e != NULL && --e->refs == 0 && !e->linked)
		entry_free(e);
}

static void
cache_unlink(struct tel_fetcher *f, struct cache_entry *e)
{
	struct cache_entry **pp;

	if (!e->linked)
		return;
	for (pp = &f->buckets[hash_key(e->key)]; *pp != e; pp = &(*pp)->hnext)
		;
	*pp = e->hnext;
	if (e->prev)
		e->prev->next = e->next;
	else
		f->lru_head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		f->lru_tail = e->prev;
	e->prev = e->next = e->hnext = NULL;
	e->linked = 0;
	f->cache_used -= e->cost;
	f->cache_n--;
	if (e->refs == 0)
		entry_free(e);
}

static struct cache_entry *
cache_find(struct tel_fetcher *f, const char *key)
{
	struct cache_entry *e;

	for (e = f->buckets[hash_key(key)]; e != NULL; e = e->hnext)
		if (strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

static void
cache_touch(struct tel_fetcher *f, struct cache_entry *e)
{
	if (f->lru_head == e)
		return;
	e->prev->next = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		f->lru_tail = e->prev;
	e->prev = NULL;
	e->next = f->lru_head;
	f->lru_head->prev = e;
	f->lru_head = e;
}

static void
cache_drop(struct tel_fetcher *f, const char *key)
{
	struct cache_entry *e;

	if (key != NULL && (e = cache_find(f, key)) != NULL)
		cache_unlink(f, e);
}

/* Inserts e (replacing an entry of the same key), evicting the least
 * recently used entries to make room.  Frees e when it cannot fit. */
static void
cache_insert(struct tel_fetcher *f, struct cache_entry *e)
{
	unsigned b;

	cache_drop(f, e->key);
	if (e->cost > f->cache_max) {
		entry_free(e);
		return;
	}
	while (f->cache_used + e->cost > f->cache_max && f->lru_tail)
		cache_unlink(f, f->lru_tail);
	b = hash_key(e->key);
	e->hnext = f->buckets[b];
	f->buckets[b] = e;
	e->prev = NULL;
	e->next = f->lru_head;
	if (f->lru_head)
		f->lru_head->prev = e;
	else
		f->lru_tail = e;
	f->lru_head = e;
	e->linked = 1;
	f->cache_used += e->cost;
	f->cache_n++;
}

void
tel_fetcher_cache_usage(const struct tel_fetcher *f, size_t *entries,
    size_t *bytes)
{
	*entries = f->cache_n;
	*bytes = f->cache_used;
}

/* ---- Cache-Control ---- */

struct cc {
	int	 max_age;	/* -1: none */
	int	 no_store;
	int	 no_cache;
	int	 must_revalidate;
};

/* Parses a Cache-Control value ("max-age=60, must-revalidate"); unknown
 * directives are ignored, as HTTP says. */
static void
cc_parse(const char *v, struct cc *cc)
{
	const char *p = v, *name, *val;
	size_t nlen;
	long n;
	char *end;

	cc->max_age = -1;
	cc->no_store = cc->no_cache = cc->must_revalidate = 0;
	if (v == NULL)
		return;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		name = p;
		while (*p && *p != '=' && *p != ',' && *p != ' ' && *p != '\t')
			p++;
		nlen = (size_t)(p - name);
		val = NULL;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '=') {
			p++;
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p == '"')
				p++;
			val = p;
			while (*p && *p != ',')
				p++;
		}
		if (nlen == 7 && strncasecmp(name, "max-age", 7) == 0 &&
		    val != NULL) {
			errno = 0;
			n = strtol(val, &end, 10);
			if (end != val && errno == 0 && n >= 0)
				cc->max_age = n > INT_MAX ? INT_MAX : (int)n;
		} else if (nlen == 8 && strncasecmp(name, "no-store", 8) == 0)
			cc->no_store = 1;
		else if (nlen == 8 && strncasecmp(name, "no-cache", 8) == 0)
			cc->no_cache = 1;
		else if (nlen == 15 &&
		    strncasecmp(name, "must-revalidate", 15) == 0)
			cc->must_revalidate = 1;
		while (*p && *p != ',')
			p++;
	}
}

/* Freshness lifetime of a response received at now_wall (seconds):
 * max-age, else Expires - Date, else 0 (no heuristic freshness: a
 * document without explicit freshness is revalidated every time). */
static int64_t
lifetime_ms(const struct resp_hdrs *rh, const struct cc *cc, time_t now_wall)
{
	time_t date, exp;

	if (cc->max_age >= 0)
		return (int64_t)cc->max_age * 1000;
	if (rh->expires != NULL) {
		exp = curl_getdate(rh->expires, NULL);
		date = rh->date ? curl_getdate(rh->date, NULL) : -1;
		if (date == -1)
			date = now_wall;
		/* an invalid Expires (often "0") means already expired */
		if (exp == -1 || exp <= date)
			return 0;
		return (int64_t)(exp - date) * 1000;
	}
	return 0;
}

static int64_t
age_hdr_ms(const struct resp_hdrs *rh)
{
	long n;

	if (rh->age == NULL || (n = strtol(rh->age, NULL, 10)) <= 0)
		return 0;
	return (int64_t)n * 1000;
}

/* ---- jobs ---- */

static void
rh_clear(struct resp_hdrs *rh)
{
	free(rh->cache_control);
	free(rh->pragma);
	free(rh->expires);
	free(rh->date);
	free(rh->age);
	free(rh->etag);
	free(rh->last_modified);
	free(rh->vary);
	memset(rh, 0, sizeof(*rh));
}

static void
job_free(struct fetch_job *j)
{
	if (j->easy != NULL) {
		curl_multi_remove_handle(j->f->multi, j->easy);
		curl_easy_cleanup(j->easy);
	}
	curl_slist_free_all(j->hdrs);
	curl_mime_free(j->mime);
	entry_unref(j->reval);
	entry_unref(j->hit);
	rh_clear(&j->rh);
	free(j->key);
	free(j->body);
	free(j->error);
	free(j);
}

static void
list_unlink(struct fetch_job **head, struct fetch_job **tail,
    struct fetch_job *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		*head = j->next;
	if (j->next)
		j->next->prev = j->prev;
	else if (tail != NULL)
		*tail = j->prev;
	j->prev = j->next = NULL;
}

static void
defer_fired(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
	struct tel_fetcher *f = arg;
	struct fetch_job *j;
	struct tel_fetch_res res;
	struct cache_entry *e;
	size_t n = 0;

	/* Only the jobs ready now: those the callbacks below make ready wait
	 * for the next round (job_ready re-arms the timer), so a callback
	 * that fetches from the cache again and again cannot starve the
	 * loop.  Cancels from the callbacks still find them in f->ready. */
	for (j = f->ready; j != NULL; j = j->next)
		n++;
	while (n-- > 0 && (j = f->ready) != NULL) {
		list_unlink(&f->ready, &f->ready_tail, j);
		memset(&res, 0, sizeof(res));
		res.id = j->id;
		if ((e = j->hit) != NULL) {
			res.status = 200;
			res.url = e->url;
			res.content_type = e->ctype;
			res.body = e->body;
			res.len = e->len;
			res.from_cache = 1;
		} else {
			res.error = j->error ? j->error : "fetch failed";
			res.timed_out = j->timed_out;
			res.url = "";
			res.content_type = "";
			res.body = "";
		}
		j->done(j->arg, &res);
		job_free(j);
	}
}

/* Queues a job whose answer is known now (a cache hit, an error) for
 * delivery from the loop. */
static void
job_ready(struct tel_fetcher *f, struct fetch_job *j)
{
	j->prev = f->ready_tail;
	j->next = NULL;
	if (f->ready_tail)
		f->ready_tail->next = j;
	else
		f->ready = j;
	f->ready_tail = j;
	if (!su_timer_is_set(f->defer))
		su_timer_set_interval(f->defer, defer_fired, f, 0);
}

static void
job_fail(struct tel_fetcher *f, struct fetch_job *j, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
job_fail(struct tel_fetcher *f, struct fetch_job *j, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&j->error, fmt, ap) == -1)
		j->error = NULL;
	va_end(ap);
	if (j->easy != NULL) {
		curl_easy_cleanup(j->easy);
		j->easy = NULL;
	}
	job_ready(f, j);
}

/* ---- curl callbacks ---- */

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
	struct fetch_job *j = arg;
	size_t len = size * n, cap;
	char *p;

	if (j->len + len > TEL_FETCH_MAX_BODY) {
		j->too_big = 1;
		return 0;
	}
	if (j->len + len + 1 > j->cap) {
		cap = j->cap ? j->cap : 4096;
		while (cap < j->len + len + 1)
			cap *= 2;
		if ((p = realloc(j->body, cap)) == NULL)
			return 0;
		j->body = p;
		j->cap = cap;
	}
	memcpy(j->body + j->len, data, len);
	j->len += len;
	j->body[j->len] = '\0';
	return len;
}

static void
hdr_set(char **field, const char *v, size_t len, int append)
{
	char *s;

	if (append && *field != NULL) {
		if (asprintf(&s, "%s, %.*s", *field, (int)len, v) == -1)
			return;
	} else if ((s = strndup(v, len)) == NULL)
		return;
	free(*field);
	*field = s;
}

static size_t
on_header(char *data, size_t size, size_t n, void *arg)
{
	struct fetch_job *j = arg;
	size_t len = size * n, nlen;
	const char *v, *end = data + len;
	static const struct {
		const char	*name;
		size_t		 off;
		int		 append;
	} known[] = {
		{ "cache-control",
		    offsetof(struct resp_hdrs, cache_control), 1 },
		{ "pragma", offsetof(struct resp_hdrs, pragma), 1 },
		{ "expires", offsetof(struct resp_hdrs, expires), 0 },
		{ "date", offsetof(struct resp_hdrs, date), 0 },
		{ "age", offsetof(struct resp_hdrs, age), 0 },
		{ "etag", offsetof(struct resp_hdrs, etag), 0 },
		{ "last-modified",
		    offsetof(struct resp_hdrs, last_modified), 0 },
		{ "vary", offsetof(struct resp_hdrs, vary), 1 },
	};
	size_t i;

	/* A new status line: an earlier response (a redirect, a 100). */
	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		rh_clear(&j->rh);
		return len;
	}
	if ((v = memchr(data, ':', len)) == NULL)
		return len;
	nlen = (size_t)(v - data);
	for (v++; v < end && (*v == ' ' || *v == '\t'); v++)
		;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' ||
	    end[-1] == ' ' || end[-1] == '\t'))
		end--;
	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strlen(known[i].name) == nlen &&
		    strncasecmp(data, known[i].name, nlen) == 0)
			hdr_set((char **)((char *)&j->rh + known[i].off), v,
			    (size_t)(end - v), known[i].append);
	return len;
}

static int
sock_ready(su_root_magic_t *magic, su_wait_t *w, su_wakeup_arg_t *arg)
{
	struct fetch_sock *fs = arg;
	struct tel_fetcher *f = fs->f;
	curl_socket_t fd = fs->fd;	/* fs may be freed by the action */
	int ev, action = 0, running;

	ev = su_wait_events(w, fd);
	if (ev & (SU_WAIT_IN | SU_WAIT_HUP))
		action |= CURL_CSELECT_IN;
	if (ev & SU_WAIT_OUT)
		action |= CURL_CSELECT_OUT;
	if (ev & SU_WAIT_ERR)
		action |= CURL_CSELECT_ERR;
	curl_multi_socket_action(f->multi, fd, action, &running);
	check_done(f);
	return 0;
}

static int
on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct tel_fetcher *f = userp;
	struct fetch_sock *fs = socketp;
	su_wait_t w;
	int events = 0;

	if (what == CURL_POLL_REMOVE) {
		if (fs != NULL) {
			su_root_deregister(f->root, fs->reg);
			curl_multi_assign(f->multi, s, NULL);
			free(fs);
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		events |= SU_WAIT_IN;
	if (what & CURL_POLL_OUT)
		events |= SU_WAIT_OUT;
	if (fs != NULL) {
		if (su_root_eventmask(f->root, fs->reg, s, events) == -1)
			log_warnx("fetch: cannot change a socket's events");
		return 0;
	}
	if ((fs = calloc(1, sizeof(*fs))) == NULL)
		return -1;
	fs->f = f;
	fs->fd = s;
	if (su_wait_create(&w, s, events) == -1 ||
	    (fs->reg = su_root_register(f->root, &w, sock_ready, fs, 0)) < 0) {
		log_warnx("fetch: cannot register a socket");
		free(fs);
		return -1;
	}
	curl_multi_assign(f->multi, s, fs);
	return 0;
}

static void
timer_fired(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
	struct tel_fetcher *f = arg;
	int running;

	curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(f);
}

static int
on_timer(CURLM *multi, long ms, void *userp)
{
	struct tel_fetcher *f = userp;

	/* Never act from inside curl: the timer calls back from the loop. */
	if (ms < 0)
		su_timer_reset(f->timer);
	else
		su_timer_set_interval(f->timer, timer_fired, f, ms);
	return 0;
}

/* ---- completion ---- */

/* A 200 to a GET becomes a cache entry, unless HTTP forbids it or it
 * cannot fit.  Returns the entry, which took j's body, or NULL. */
static struct cache_entry *
maybe_store(struct tel_fetcher *f, struct fetch_job *j, const char *url,
    const char *ctype)
{
	struct cache_entry *e;
	struct cc cc;
	size_t cost;

	cc_parse(j->rh.cache_control, &cc);
	cost = j->len + strlen(j->key) + strlen(url) + strlen(ctype) +
	    ENTRY_OVERHEAD;
	if (cc.no_store || (j->rh.vary && strchr(j->rh.vary, '*')) ||
	    cost > f->cache_max) {
		cache_drop(f, j->key);
		return NULL;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	e->key = strdup(j->key);
	e->url = strdup(url);
	e->ctype = strdup(ctype);
	e->etag = j->rh.etag ? strdup(j->rh.etag) : NULL;
	e->last_modified = j->rh.last_modified ?
	    strdup(j->rh.last_modified) : NULL;
	e->body = j->body ? j->body : strdup("");
	if (e->key == NULL || e->url == NULL || e->ctype == NULL ||
	    e->body == NULL) {
		if (e->body == j->body)
			e->body = NULL;
		entry_free(e);
		return NULL;
	}
	e->len = j->len;
	j->body = NULL;
	j->len = j->cap = 0;
	e->cost = cost;
	e->stored_ms = mono_ms();
	e->age0_ms = age_hdr_ms(&j->rh);
	e->lifetime_ms = lifetime_ms(&j->rh, &cc, time(NULL));
	e->no_cache = cc.no_cache || (j->rh.cache_control == NULL &&
	    j->rh.pragma != NULL && strcasestr(j->rh.pragma, "no-cache"));
	e->must_revalidate = cc.must_revalidate;
	cache_insert(f, e);
	return e;
}

/* A 304 to our conditional GET: the held entry is fresh again, with the
 * new headers where the 304 carried some. */
static void
refresh(struct tel_fetcher *f, struct fetch_job *j, struct cache_entry *e)
{
	struct cc cc;
	char *s;

	cc_parse(j->rh.cache_control, &cc);
	if (j->rh.cache_control != NULL || j->rh.expires != NULL) {
		e->lifetime_ms = lifetime_ms(&j->rh, &cc, time(NULL));
		e->no_cache = cc.no_cache;
		e->must_revalidate = cc.must_revalidate;
	}
	if (j->rh.etag != NULL && (s = strdup(j->rh.etag)) != NULL) {
		free(e->etag);
		e->etag = s;
	}
	e->stored_ms = mono_ms();
	e->age0_ms = age_hdr_ms(&j->rh);
	if (e->linked)
		cache_touch(f, e);
}

static const char *
guess_type(const char *url)
{
	static const struct {
		const char	*ext;
		const char	*type;
	} types[] = {
		{ ".vxml", "application/voicexml+xml" },
		{ ".xml", "application/xml" },
		{ ".grxml", "application/srgs+xml" },
		{ ".js", "application/javascript" },
		{ ".wav", "audio/wav" },
		{ ".txt", "text/plain" },
	};
	size_t i, n = strlen(url), el;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		el = strlen(types[i].ext);
		if (n > el && strcasecmp(url + n - el, types[i].ext) == 0)
			return types[i].type;
	}
	return "";
}

static void
finish(struct tel_fetcher *f, struct fetch_job *j, CURLcode rc)
{
	struct tel_fetch_res res;
	struct cache_entry *e = NULL;
	char *url = NULL, *ctype = NULL;
	long status = 0;

	list_unlink(&f->running, NULL, j);
	curl_multi_remove_handle(f->multi, j->easy);
	memset(&res, 0, sizeof(res));
	res.id = j->id;
	curl_easy_getinfo(j->easy, CURLINFO_EFFECTIVE_URL, &url);
	curl_easy_getinfo(j->easy, CURLINFO_CONTENT_TYPE, &ctype);
	curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
	res.url = url ? url : "";
	res.content_type = ctype ? ctype : "";
	res.body = "";
	if (rc != CURLE_OK) {
		/* Happy Eyeballs may refuse one family and connect the
		 * other: the refusal is the cause only when nothing
		 * connected. */
		if (j->refused && rc == CURLE_COULDNT_CONNECT)
			snprintf(j->errbuf, sizeof(j->errbuf),
			    "refused to connect to %s: %s", j->refused_addr,
			    j->refused);
		else if (j->too_big)
			snprintf(j->errbuf, sizeof(j->errbuf),
			    "body larger than %u bytes", TEL_FETCH_MAX_BODY);
		else if (j->errbuf[0] == '\0')
			snprintf(j->errbuf, sizeof(j->errbuf), "%s",
			    curl_easy_strerror(rc));
		res.error = j->errbuf;
		res.timed_out = rc == CURLE_OPERATION_TIMEDOUT;
		/* a failed revalidation leaves the entry as it was */
	} else {
		if (j->is_file) {
			status = 200;
			res.content_type = guess_type(res.url);
		}
		res.status = status;
		if (status == 304 && (e = j->reval) != NULL) {
			refresh(f, j, e);
			res.status = 200;
			res.url = e->url;
			res.content_type = e->ctype;
			res.body = e->body;
			res.len = e->len;
			res.from_cache = 1;
		} else {
			if (j->key != NULL && j->is_get && status == 200 &&
			    f->cache_max > 0)
				e = maybe_store(f, j, res.url,
				    res.content_type);
			else if (j->key != NULL)
				cache_drop(f, j->key);
			if (e != NULL) {
				/* the entry took the body: lend it */
				e->refs++;
				j->hit = e;
				res.url = e->url;
				res.content_type = e->ctype;
				res.body = e->body;
				res.len = e->len;
			} else if (j->body != NULL) {
				res.body = j->body;
				res.len = j->len;
			}
		}
	}
	j->done(j->arg, &res);
	curl_easy_cleanup(j->easy);
	j->easy = NULL;
	job_free(j);
}

static void
check_done(struct tel_fetcher *f)
{
	CURLMsg *m;
	struct fetch_job *j;
	char *priv;
	int left;

	while ((m = curl_multi_info_read(f->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		priv = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
		if ((j = (struct fetch_job *)priv) != NULL)
			finish(f, j, m->data.result);
	}
}

/* ---- public ---- */

struct tel_fetcher *
tel_fetcher_new(su_root_t *root, size_t cache_bytes)
{
	struct tel_fetcher *f;

	if (!curl_inited) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			log_warnx("fetch: curl_global_init failed");
			return NULL;
		}
		curl_inited = 1;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	f->root = root;
	f->cache_max = cache_bytes;
	f->next_id = 1;
	if ((f->multi = curl_multi_init()) == NULL ||
	    (f->timer = su_timer_create(su_root_task(root), 0)) == NULL ||
	    (f->defer = su_timer_create(su_root_task(root), 0)) == NULL) {
		log_warnx("fetch: cannot create curl's multi handle or "
		    "timers");
		tel_fetcher_free(f);
		return NULL;
	}
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
	return f;
}

void
tel_fetcher_free(struct tel_fetcher *f)
{
	struct fetch_job *j;

	if (f == NULL)
		return;
	while ((j = f->running) != NULL) {
		list_unlink(&f->running, NULL, j);
		job_free(j);
	}
	while ((j = f->ready) != NULL) {
		list_unlink(&f->ready, &f->ready_tail, j);
		job_free(j);
	}
	while (f->lru_head)
		cache_unlink(f, f->lru_head);
	if (f->multi)
		curl_multi_cleanup(f->multi);
	if (f->timer)
		su_timer_destroy(f->timer);
	if (f->defer)
		su_timer_destroy(f->defer);
	free(f);
}

void
tel_fetcher_allow_file(struct tel_fetcher *f, int allow)
{
	f->allow_file = allow;
}

void
tel_fetcher_allow_addrs(struct tel_fetcher *f, int loopback, int private)
{
	f->allow_loopback = loopback;
	f->allow_private = private;
}

/* Checked on the address curl is about to connect to, after its own DNS
 * and for every redirect: a tenant's URL must not reach this host, the
 * cloud metadata service or the internal network unless allowed. */
static curl_socket_t
open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct fetch_job *j = arg;

	if ((j->refused = rq_addr_refusal(&a->addr, j->f->allow_loopback,
	    j->f->allow_private)) != NULL) {
		rq_addr_text(&a->addr, j->refused_addr,
		    sizeof(j->refused_addr));
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype, a->protocol);
}

/* Appends the parts to s as name=value&... (urlencoded). */
static int
urlencode_parts(CURL *easy, const struct tel_fetch_req *req, char **s)
{
	char *n, *v, *t;
	size_t i;
	int rc;

	for (i = 0; i < req->nparts; i++) {
		n = curl_easy_escape(easy, req->parts[i].name, 0);
		v = curl_easy_escape(easy, req->parts[i].value ?
		    req->parts[i].value : "", (int)req->parts[i].len);
		if (n == NULL || v == NULL) {
			curl_free(n);
			curl_free(v);
			return -1;
		}
		rc = asprintf(&t, "%s%s%s=%s", *s ? *s : "", *s ? "&" : "",
		    n, v);
		curl_free(n);
		curl_free(v);
		if (rc == -1)
			return -1;
		free(*s);
		*s = t;
	}
	return 0;
}

static int
build_mime(struct fetch_job *j, const struct tel_fetch_req *req)
{
	curl_mimepart *p;
	size_t i;

	if ((j->mime = curl_mime_init(j->easy)) == NULL)
		return -1;
	for (i = 0; i < req->nparts; i++) {
		if ((p = curl_mime_addpart(j->mime)) == NULL ||
		    curl_mime_name(p, req->parts[i].name) != CURLE_OK ||
		    curl_mime_data(p, req->parts[i].value ?
		    req->parts[i].value : "", req->parts[i].len) != CURLE_OK)
			return -1;
		if (req->parts[i].type != NULL &&
		    curl_mime_type(p, req->parts[i].type) != CURLE_OK)
			return -1;
		if (req->parts[i].filename != NULL &&
		    curl_mime_filename(p, req->parts[i].filename) != CURLE_OK)
			return -1;
	}
	return curl_easy_setopt(j->easy, CURLOPT_MIMEPOST, j->mime) ==
	    CURLE_OK ? 0 : -1;
}

/* The URL without its fragment, normalised by curl, and its scheme. */
static int
url_split(const char *in, char **url, char **scheme)
{
	CURLU *h;
	int rc = -1;

	*url = *scheme = NULL;
	if ((h = curl_url()) == NULL)
		return -1;
	if (curl_url_set(h, CURLUPART_URL, in, CURLU_NON_SUPPORT_SCHEME) !=
	    CURLUE_OK &&
	    curl_url_set(h, CURLUPART_URL, in, CURLU_NON_SUPPORT_SCHEME |
	    CURLU_URLENCODE) != CURLUE_OK)
		goto out;
	curl_url_set(h, CURLUPART_FRAGMENT, NULL, 0);
	if (curl_url_get(h, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_SCHEME, scheme, 0) != CURLUE_OK)
		goto out;
	rc = 0;
out:
	curl_url_cleanup(h);
	if (rc == -1) {
		curl_free(*url);
		curl_free(*scheme);
		*url = *scheme = NULL;
	}
	return rc;
}

/* Whether the cached entry may answer req without asking the server. */
static int
entry_usable(const struct cache_entry *e, const struct tel_fetch_req *req)
{
	int64_t age = e->age0_ms + (int64_t)(mono_ms() - e->stored_ms);

	if (e->no_cache)
		return 0;
	/* VoiceXML maxage: no content older than that; 0 forces a check */
	if (req->maxage >= 0 && age >= (int64_t)req->maxage * 1000)
		return 0;
	if (age < e->lifetime_ms)
		return 1;
	return req->maxstale >= 0 && !e->must_revalidate &&
	    age - e->lifetime_ms <= (int64_t)req->maxstale * 1000;
}

/* Sets up the conditional request that revalidates e (held by j). */
static int
add_validators(struct fetch_job *j, struct cache_entry *e)
{
	char *h;

	if (e->etag != NULL) {
		if (asprintf(&h, "If-None-Match: %s", e->etag) == -1)
			return -1;
		j->hdrs = curl_slist_append(j->hdrs, h);
		free(h);
	}
	if (e->last_modified != NULL) {
		if (asprintf(&h, "If-Modified-Since: %s", e->last_modified) ==
		    -1)
			return -1;
		j->hdrs = curl_slist_append(j->hdrs, h);
		free(h);
	}
	e->refs++;
	j->reval = e;
	return 0;
}

uint64_t
tel_fetch(struct tel_fetcher *f, const struct tel_fetch_req *req,
    tel_fetch_done_f done, void *arg)
{
	struct fetch_job *j;
	struct cache_entry *e;
	char *url = NULL, *scheme = NULL, *query = NULL, *full = NULL;
	long timeout;
	CURLMcode mrc;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		fatal("fetch: out of memory");
	j->f = f;
	j->id = f->next_id++;
	j->done = done;
	j->arg = arg;
	if (req->url == NULL || url_split(req->url, &url, &scheme) == -1) {
		job_fail(f, j, "bad URL: %s", req->url ? req->url : "(none)");
		return j->id;
	}
	if (strcasecmp(scheme, "file") == 0) {
		if (!f->allow_file) {
			job_fail(f, j, "file: URLs are not allowed: %s", url);
			goto out;
		}
		j->is_file = 1;
	} else if (strcasecmp(scheme, "http") != 0 &&
	    strcasecmp(scheme, "https") != 0) {
		job_fail(f, j, "unsupported URL scheme %s: %s", scheme, url);
		goto out;
	}
	if ((j->easy = curl_easy_init()) == NULL) {
		job_fail(f, j, "cannot start a fetch (curl)");
		goto out;
	}
	j->is_get = req->method == TEL_FETCH_GET;
	if (j->is_get && req->nparts > 0) {
		if (urlencode_parts(j->easy, req, &query) == -1) {
			job_fail(f, j, "cannot encode the query");
			goto out;
		}
		if (asprintf(&full, "%s%c%s", url,
		    strchr(url, '?') ? '&' : '?', query) == -1)
			fatal("fetch: out of memory");
	} else if ((full = strdup(url)) == NULL)
		fatal("fetch: out of memory");
	if (!j->is_file && (j->key = strdup(full)) == NULL)
		fatal("fetch: out of memory");

	if (j->is_get && j->key != NULL && f->cache_max > 0 &&
	    (e = cache_find(f, j->key)) != NULL) {
		if (entry_usable(e, req)) {
			cache_touch(f, e);
			e->refs++;
			j->hit = e;
			curl_easy_cleanup(j->easy);
			j->easy = NULL;
			job_ready(f, j);
			goto out;
		}
		if ((e->etag != NULL || e->last_modified != NULL) &&
		    add_validators(j, e) == -1) {
			job_fail(f, j, "out of memory");
			goto out;
		}
	} else if (!j->is_get && j->key != NULL)
		cache_drop(f, j->key);	/* a POST changes the resource */

	timeout = req->timeout_ms > 0 ? req->timeout_ms : TEL_FETCH_TIMEOUT_MS;
	curl_easy_setopt(j->easy, CURLOPT_URL, full);
	curl_easy_setopt(j->easy, CURLOPT_PRIVATE, (char *)j);
	curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(j->easy, CURLOPT_ERRORBUFFER, j->errbuf);
	curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS, timeout);
	curl_easy_setopt(j->easy, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(j->easy, CURLOPT_MAXREDIRS, 10L);
	curl_easy_setopt(j->easy, CURLOPT_PROTOCOLS_STR,
	    f->allow_file ? "http,https,file" : "http,https");
	curl_easy_setopt(j->easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(j->easy, CURLOPT_USERAGENT, USER_AGENT);
	curl_easy_setopt(j->easy, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, j);
	curl_easy_setopt(j->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(j->easy, CURLOPT_HEADERDATA, j);
	curl_easy_setopt(j->easy, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(j->easy, CURLOPT_OPENSOCKETDATA, j);
	/* A proxy from the environment would be the address checked, not
	 * the document's server. */
	curl_easy_setopt(j->easy, CURLOPT_PROXY, "");
	curl_easy_setopt(j->easy, CURLOPT_NOPROXY, "*");
	if (!j->is_get) {
		if (req->enc == TEL_FETCH_MULTIPART) {
			if (build_mime(j, req) == -1) {
				job_fail(f, j, "cannot build the multipart "
				    "body");
				goto out;
			}
		} else {
			if (urlencode_parts(j->easy, req, &query) == -1) {
				job_fail(f, j, "cannot encode the body");
				goto out;
			}
			curl_easy_setopt(j->easy, CURLOPT_POSTFIELDSIZE,
			    (long)(query ? strlen(query) : 0));
			curl_easy_setopt(j->easy, CURLOPT_COPYPOSTFIELDS,
			    query ? query : "");
		}
	}
	/* no "Expect: 100-continue" round trip for large POSTs */
	j->hdrs = curl_slist_append(j->hdrs, "Expect:");
	curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER, j->hdrs);
	if ((mrc = curl_multi_add_handle(f->multi, j->easy)) != CURLM_OK) {
		job_fail(f, j, "cannot start a fetch: %s",
		    curl_multi_strerror(mrc));
		goto out;
	}
	j->next = f->running;
	if (f->running)
		f->running->prev = j;
	f->running = j;
out:
	free(query);
	free(full);
	curl_free(url);
	curl_free(scheme);
	return j->id;
}

void
tel_fetch_cancel(struct tel_fetcher *f, uint64_t id)
{
	struct fetch_job *j;

	for (j = f->running; j != NULL; j = j->next)
		if (j->id == id) {
			list_unlink(&f->running, NULL, j);
			job_free(j);
			return;
		}
	for (j = f->ready; j != NULL; j = j->next)
		if (j->id == id) {
			list_unlink(&f->ready, &f->ready_tail, j);
			job_free(j);
			return;
		}
}

/* ---- URLs ---- */

int
tel_url_resolve(const char *base, const char *ref, char **url,
    char **fragment, char *err, size_t errlen)
{
	CURLU *h;
	const char *hash;
	char *u = NULL, *frag = NULL;
	int rc = -1;

	*url = *fragment = NULL;
	if ((h = curl_url()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (base != NULL && curl_url_set(h, CURLUPART_URL, base,
	    CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
		snprintf(err, errlen, "bad base URL: %s", base);
		goto out;
	}
	/* curl's resolver gets "" and "#frag" wrong: both name the base
	 * document itself (RFC 3986 5.2.2). */
	if (ref[0] == '\0' || ref[0] == '#') {
		if (base == NULL) {
			snprintf(err, errlen, "relative URL without a base: %s",
			    ref);
			goto out;
		}
	} else if (curl_url_set(h, CURLUPART_URL, ref,
	    CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK &&
	    curl_url_set(h, CURLUPART_URL, ref, CURLU_NON_SUPPORT_SCHEME |
	    CURLU_URLENCODE) != CURLUE_OK) {
		snprintf(err, errlen, "bad URL: %s", ref);
		goto out;
	}
	curl_url_set(h, CURLUPART_FRAGMENT, NULL, 0);
	if (curl_url_get(h, CURLUPART_URL, &u, 0) != CURLUE_OK) {
		snprintf(err, errlen, "bad URL: %s", ref);
		goto out;
	}
	if ((hash = strchr(ref, '#')) != NULL &&
	    (frag = strdup(hash + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if ((*url = strdup(u)) == NULL) {
		free(frag);
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	*fragment = frag;
	rc = 0;
out:
	curl_free(u);
	curl_url_cleanup(h);
	return rc;
}
