/* ringq-vxml: runs a VoiceXML application without a call, for tests and
 * for the W3C conformance suite.  Fetches go through libcurl (http:, file:,
 * plain paths), synchronously from inside the request; time is virtual:
 * prompts take no time and timers fire at once, in order, unless a scripted
 * key or hang-up comes first.  Prints PROMPT/AUDIO/LOG lines and the
 * result as "RESULT {json}". */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "vxml.h"

struct cli {
	struct vxml_session	*s;
	long			 now;		/* virtual ms */
	long			 timer_at;	/* -1: none */
	int			 playing;
	const char		*dtmf;
	long			 dtmf_at;
	long			 hangup_at;
	int			 done;
	int			 outcome;
	int			 record_ms;
	int			 verbose;
	long			 max_ms;	/* the caller gives up (hangs up) */
	int			 failed;	/* the application ended in error */
};

struct buf {
	char	*p;
	size_t	 n;
};

static size_t
collect(char *data, size_t sz, size_t nm, void *arg)
{
	struct buf *b = arg;
	char *q = realloc(b->p, b->n + sz * nm + 1);

	if (q == NULL)
		return 0;
	memcpy(q + b->n, data, sz * nm);
	b->n += sz * nm;
	q[b->n] = '\0';
	b->p = q;
	return sz * nm;
}

static void
cli_fetch(void *arg, const struct vxml_fetch_req *req)
{
	struct cli *c = arg;
	struct vxml_fetch_res res;
	struct buf b = { NULL, 0 };
	CURL *h = curl_easy_init();
	curl_mime *mime = NULL;
	char *post = NULL, *eff = NULL, *ctype = NULL, errbuf[CURL_ERROR_SIZE] = "";
	long code = 0;
	CURLcode rc;
	size_t i;

	memset(&res, 0, sizeof(res));
	if (c->verbose)
		fprintf(stderr, "FETCH %s %s\n", req->post ? "POST" : "GET", req->url);
	curl_easy_setopt(h, CURLOPT_URL, req->url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(req->timeout_ms > 0 ?
	    req->timeout_ms : 30000));
	if (req->post) {
		int multi = req->enctype != NULL &&
		    strstr(req->enctype, "multipart") != NULL;

		if (multi) {
			mime = curl_mime_init(h);
			for (i = 0; i < req->nparams; i++) {
				curl_mimepart *part = curl_mime_addpart(mime);

				curl_mime_name(part, req->params[i].name);
				if (req->params[i].data != NULL) {
					curl_mime_data(part, req->params[i].data,
					    req->params[i].len);
					curl_mime_type(part, req->params[i].type);
					curl_mime_filename(part, req->params[i].name);
				} else
					curl_mime_data(part, req->params[i].value,
					    CURL_ZERO_TERMINATED);
			}
			curl_easy_setopt(h, CURLOPT_MIMEPOST, mime);
		} else {
			size_t len = 1;

			for (i = 0; i < req->nparams; i++)
				len += 3 * (strlen(req->params[i].name) +
				    strlen(req->params[i].value)) + 2;
			post = calloc(1, len);
			for (i = 0; post != NULL && i < req->nparams; i++) {
				char *n = curl_easy_escape(h, req->params[i].name, 0);
				char *v = curl_easy_escape(h, req->params[i].value, 0);

				if (i > 0)
					strcat(post, "&");
				strcat(post, n);
				strcat(post, "=");
				strcat(post, v);
				curl_free(n);
				curl_free(v);
			}
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, post != NULL ? post : "");
		}
	}
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		if (code == 0)		/* file: */
			code = 200;
		curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &eff);
		curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ctype);
	} else if (rc == CURLE_FILE_COULDNT_READ_FILE)
		code = 404;
	res.status = (int)code;
	res.error = rc != CURLE_OK ? (errbuf[0] != '\0' ? errbuf :
	    curl_easy_strerror(rc)) : NULL;
	res.url = eff;
	res.content_type = ctype;
	res.body = b.p;
	res.len = b.n;
	/* answered from inside the request, as a fast platform may */
	vxml_fetch_done(c->s, req->id, &res);
	free(b.p);
	free(post);
	curl_mime_free(mime);
	curl_easy_cleanup(h);
}

static void
print_item(const struct vxml_prompt_item *it, const char *indent)
{
	size_t i;

	switch (it->kind) {
	case VXML_PROMPT_TEXT:
		printf("%sPROMPT %s\n", indent, it->text);
		break;
	case VXML_PROMPT_BREAK:
		printf("%sBREAK %d\n", indent, it->break_ms);
		break;
	case VXML_PROMPT_AUDIO:
		printf("%sAUDIO %s\n", indent, it->url);
		for (i = 0; i < it->nfallback; i++)
			print_item(&it->fallback[i], "  ");
		break;
	}
}

static void
cli_prompt(void *arg, const struct vxml_prompt_item *it)
{
	print_item(it, "");
}

static void
cli_play(void *arg)
{
	((struct cli *)arg)->playing = 1;
}

static void
cli_stop(void *arg)
{
	((struct cli *)arg)->playing = 0;
}

static void
cli_timer_set(void *arg, int ms)
{
	struct cli *c = arg;

	c->timer_at = c->now + ms;
}

static void
cli_timer_cancel(void *arg)
{
	((struct cli *)arg)->timer_at = -1;
}

static void
cli_transfer(void *arg, const struct vxml_transfer_req *r)
{
	struct cli *c = arg;

	printf("TRANSFER %s %s\n", r->dest, r->bridge ? "bridge" : "blind");
	if (c->outcome == -1) {		/* the caller hangs up meanwhile */
		printf("HANGUP during transfer\n");
		vxml_hangup(c->s);
		return;
	}
	vxml_transfer_done(c->s, r->bridge ? (enum vxml_transfer_outcome)
	    c->outcome : VXML_XFER_BLIND_OK, r->bridge ? 10000 : 0);
}

static void
cli_record(void *arg, const struct vxml_record_req *r)
{
	struct cli *c = arg;
	struct vxml_record_res res;
	static const char audio[64];

	printf("RECORD maxtime=%d beep=%d\n", r->maxtime_ms, r->beep);
	memset(&res, 0, sizeof(res));
	res.audio = audio;
	res.len = c->record_ms > 0 ? sizeof(audio) : 0;
	res.type = "audio/x-wav";
	res.duration_ms = c->record_ms;
	vxml_record_done(c->s, &res);
}

static void
cli_disconnect(void *arg)
{
	printf("DISCONNECT\n");
}

static void
cli_log(void *arg, const char *label, const char *text)
{
	printf("LOG %s: %s\n", label, text);
}

static void
cli_done(void *arg, const struct vxml_result *r)
{
	struct cli *c = arg;
	char *j = vxml_result_json(r);

	printf("RESULT %s\n", j != NULL ? j : "{}");
	free(j);
	c->done = 1;
	c->failed = r->how == VXML_END_ERROR;
}

static const char *outcomes[] = {
	"busy", "noanswer", "network_busy", "near_end_disconnect",
	"far_end_disconnect", "maxtime_disconnect", "network_disconnect",
	"unknown"
};

static void
usage(void)
{
	fprintf(stderr, "usage: ringq-vxml [--dtmf KEYS] [--dtmf-at MS] "
	    "[--hangup-at MS] [--transfer OUTCOME|hangup] [--record-ms MS]\n"
	    "    [--max-ms MS (600000: the caller hangs up)] [-v] "
	    "URL_or_file\n");
	exit(2);
}

/* A plain path becomes a file: URL so that relative URIs resolve. */
static char *
to_url(const char *arg)
{
	char path[PATH_MAX], *u;

	if (strstr(arg, "://") != NULL || strncmp(arg, "file:", 5) == 0)
		return strdup(arg);
	if (realpath(arg, path) == NULL)
		snprintf(path, sizeof(path), "%s", arg);
	if ((u = malloc(strlen(path) + 8)) != NULL)
		sprintf(u, "file://%s", path);
	return u;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dtmf", required_argument, NULL, 'd' },
		{ "dtmf-at", required_argument, NULL, 'a' },
		{ "hangup-at", required_argument, NULL, 'h' },
		{ "transfer", required_argument, NULL, 't' },
		{ "record-ms", required_argument, NULL, 'r' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "max-ms", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 }
	};
	struct vxml_platform p = {
		cli_fetch, cli_prompt, cli_play, cli_stop, cli_timer_set,
		cli_timer_cancel, cli_transfer, cli_record, cli_disconnect,
		cli_log, cli_done
	};
	struct vxml_session_info info = {
		"sip:app@ringq.invalid", "sip:caller@ringq.invalid", "sip", "2.0",
		"remote", NULL, NULL
	};
	struct cli c;
	char *url;
	int ch;
	size_t i;

	memset(&c, 0, sizeof(c));
	c.timer_at = -1;
	c.hangup_at = -1;
	c.dtmf = "";
	c.outcome = 4;			/* far_end_disconnect */
	c.record_ms = 2000;
	c.max_ms = 600000;
	while ((ch = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			c.dtmf = optarg;
			break;
		case 'a':
			c.dtmf_at = atol(optarg);
			break;
		case 'h':
			c.hangup_at = atol(optarg);
			break;
		case 't':
			for (i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++)
				if (strcmp(optarg, outcomes[i]) == 0)
					break;
			if (strcmp(optarg, "hangup") == 0)
				c.outcome = -1;
			else if (i == sizeof(outcomes) / sizeof(outcomes[0]))
				usage();
			else
				c.outcome = (int)i;
			break;
		case 'r':
			c.record_ms = atoi(optarg);
			break;
		case 'v':
			c.verbose = 1;
			break;
		case 'm':
			c.max_ms = atol(optarg);
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if ((c.s = vxml_session_new(&p, &c, &info)) == NULL) {
		fprintf(stderr, "ringq-vxml: cannot create a session\n");
		return 1;
	}
	url = to_url(argv[optind]);
	vxml_session_start(c.s, url);
	free(url);
	while (!c.done) {
		long next_key = *c.dtmf != '\0' && c.timer_at >= 0 ?
		    (c.dtmf_at > c.now ? c.dtmf_at : c.now) : -1;

		if (c.playing) {
			c.playing = 0;
			vxml_prompts_done(c.s);
			continue;
		}
		if (c.hangup_at >= 0 && (c.timer_at < 0 || c.hangup_at <= c.timer_at) &&
		    (next_key < 0 || c.hangup_at <= next_key)) {
			if (c.hangup_at > c.now)
				c.now = c.hangup_at;
			c.hangup_at = -1;
			printf("HANGUP at %ld\n", c.now);
			vxml_hangup(c.s);
			continue;
		}
		if (next_key >= 0 && next_key <= c.timer_at) {
			c.now = next_key + 100;	/* a key takes a tenth of a second */
			vxml_dtmf(c.s, *c.dtmf++);
			continue;
		}
		if (c.timer_at >= 0 && c.timer_at > c.max_ms && c.max_ms > 0) {
			/* an application that never lets go: the caller hangs up */
			c.now = c.max_ms;
			c.max_ms = 0;
			printf("HANGUP at %ld (--max-ms)\n", c.now);
			vxml_hangup(c.s);
			continue;
		}
		if (c.timer_at >= 0) {
			c.now = c.timer_at;
			c.timer_at = -1;
			vxml_timer_fired(c.s);
			continue;
		}
		fprintf(stderr, "ringq-vxml: the interpreter waits for nothing\n");
		break;
	}
	vxml_session_free(c.s);
	curl_global_cleanup();
	return c.done ? (c.failed ? 3 : 0) : 1;
}
