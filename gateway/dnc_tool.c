/* ringq-dnc: bulk import (or removal) of a CSV file of numbers into a
 * do-not-call list in Redis (a tenant's, the customers' opt-outs or a
 * business's blocked numbers), pipelined, with a progress line on stderr. */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "keys.h"
#include "config.h"
#include "e164.h"
#include "gateway.h"
#include "redis_sync.h"
#include "util.h"

#define BATCH		500	/* numbers per SADD */
#define PIPELINE	16	/* SADDs in flight */
#define SHOW_INVALID	5	/* invalid lines named on stderr */

/* The customers' opt-outs keep who and when in a hash beside the set
 * (gateway/dnc.c; belongs in common/keys.h). */
#define DNC_KEY_CUSTOMER_META	RQ_KEY_DNC_CUSTOMER ":meta"

/* KEYS: the set, its meta hash.  ARGV: "add" or "rem", numbers.  Returns
 * how many were added (removed); an added number is recorded as "import",
 * a removed one loses its record. */
static const char customer_lua[] =
	"local n = 0\n"
	"local t = redis.call('TIME')\n"
	"local v = 'import at=' .. string.format('%.0f',"
	" tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))\n"
	"for i = 2, #ARGV do\n"
	"  if ARGV[1] == 'add' then\n"
	"    if redis.call('SADD', KEYS[1], ARGV[i]) == 1 then n = n + 1 end\n"
	"    redis.call('HSETNX', KEYS[2], ARGV[i], v)\n"
	"  else\n"
	"    if redis.call('SREM', KEYS[1], ARGV[i]) == 1 then n = n + 1 end\n"
	"    redis.call('HDEL', KEYS[2], ARGV[i])\n"
	"  end\n"
	"end\n"
	"return n\n";

struct dnc_import {
	redisContext	*rc;
	const char	*cmd;		/* SADD or SREM */
	const char	*key;
	int		 customer;	/* through customer_lua */
	const char	*argv[6 + BATCH];	/* EVAL ... mode, numbers */
	char		 nums[BATCH][17];
	size_t		 nbatch;
	int		 inflight;
	size_t		 lines, valid, invalid, changed;
	int		 failed;
};

static __attribute__((noreturn)) void
usage(void)
{
	fprintf(stderr, "usage: ringq-dnc -f CONFIG (-t TENANT | -c | "
	    "-b BUSINESS) [-r] [-q] FILE|-\n"
	    "  -t  the tenant's own list     -c  the customers' opt-outs\n"
	    "  -b  a business's blocked numbers\n"
	    "  -r  remove the numbers instead of adding them\n"
	    "  -q  no progress line\n"
	    "FILE: CSV, the number in the first column; a header line, "
	    "blank lines and lines starting with '#' are skipped.\n");
	exit(2);
}

static void
read_replies(struct dnc_import *im, int keep)
{
	redisReply *r;

	while (im->inflight > keep) {
		if (redisGetReply(im->rc, (void **)&r) != REDIS_OK) {
			fprintf(stderr, "\nringq-dnc: redis: %s\n",
			    im->rc->errstr);
			exit(1);
		}
		if (r->type == REDIS_REPLY_INTEGER)
			im->changed += r->integer;
		else {
			fprintf(stderr, "\nringq-dnc: redis: %s\n",
			    r->type == REDIS_REPLY_ERROR ? r->str :
			    "unexpected reply");
			im->failed = 1;
		}
		freeReplyObject(r);
		im->inflight--;
	}
}

static void
flush_batch(struct dnc_import *im)
{
	size_t i, n;

	if (im->nbatch == 0)
		return;
	if (im->customer) {
		im->argv[0] = "EVAL";
		im->argv[1] = customer_lua;
		im->argv[2] = "2";
		im->argv[3] = im->key;
		im->argv[4] = DNC_KEY_CUSTOMER_META;
		im->argv[5] = strcmp(im->cmd, "SADD") ? "rem" : "add";
		n = 6;
	} else {
		im->argv[0] = im->cmd;
		im->argv[1] = im->key;
		n = 2;
	}
	for (i = 0; i < im->nbatch; i++)
		im->argv[n + i] = im->nums[i];
	if (redisAppendCommandArgv(im->rc, (int)(n + im->nbatch), im->argv,
	    NULL) != REDIS_OK) {
		fprintf(stderr, "\nringq-dnc: redis: %s\n", im->rc->errstr);
		exit(1);
	}
	im->inflight++;
	im->nbatch = 0;
	read_replies(im, PIPELINE - 1);
}

/* The first CSV field of line, unquoted and trimmed, in place. */
static char *
first_field(char *line)
{
	char *s = line, *e;

	while (isspace((unsigned char)*s))
		s++;
	if (*s == '"') {
		s++;
		if ((e = strchr(s, '"')) != NULL)
			*e = '\0';
	} else
		s[strcspn(s, ",;\t\r\n")] = '\0';
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static void
progress(const struct dnc_import *im, off_t done, off_t total, int last)
{
	if (total > 0)
		fprintf(stderr, "\rringq-dnc: %zu lines, %zu valid, %zu "
		    "invalid, %3d%%%s", im->lines, im->valid, im->invalid,
		    (int)(done * 100 / total), last ? "\n" : "");
	else
		fprintf(stderr, "\rringq-dnc: %zu lines, %zu valid, %zu "
		    "invalid%s", im->lines, im->valid, im->invalid,
		    last ? "\n" : "");
	fflush(stderr);
}

int
main(int argc, char *argv[])
{
	struct dnc_import im;
	struct rq_config cfg;
	struct rq_e164 num;
	struct timeval tv = { 5, 0 };
	struct stat sb;
	const char *conf = NULL, *tenant = NULL, *business = NULL;
	char err[512], key[RQ_NAME_MAX + 32], why[160], *line = NULL, *f;
	size_t cap = 0;
	off_t total = 0, done = 0;
	ssize_t len;
	uint64_t last = 0, now;
	int ch, customer = 0, del = 0, quiet = 0, nkinds;
	FILE *fp;

	while ((ch = getopt(argc, argv, "f:t:cb:rq")) != -1) {
		switch (ch) {
		case 'f': conf = optarg; break;
		case 't': tenant = optarg; break;
		case 'c': customer = 1; break;
		case 'b': business = optarg; break;
		case 'r': del = 1; break;
		case 'q': quiet = 1; break;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	nkinds = (tenant != NULL) + customer + (business != NULL);
	if (conf == NULL || nkinds != 1 || argc != 1)
		usage();
	if (rq_config_load(&cfg, conf, err, sizeof(err)) == -1) {
		fprintf(stderr, "ringq-dnc: %s\n", err);
		return 1;
	}
	if (tenant != NULL && rq_config_tenant(&cfg, tenant) == NULL) {
		fprintf(stderr, "ringq-dnc: no [tenant %s] in %s\n", tenant,
		    conf);
		return 1;
	}
	if (business != NULL && rq_config_business(&cfg, business) == NULL) {
		fprintf(stderr, "ringq-dnc: no [business %s] in %s\n",
		    business, conf);
		return 1;
	}
	if (tenant != NULL)
		snprintf(key, sizeof(key), "%s%s", RQ_KEY_DNC_TENANT, tenant);
	else if (business != NULL)
		snprintf(key, sizeof(key), "%s%s", RQ_KEY_DNC_BUSINESS,
		    business);
	else
		snprintf(key, sizeof(key), "%s", RQ_KEY_DNC_CUSTOMER);

	if (!strcmp(argv[0], "-"))
		fp = stdin;
	else if ((fp = fopen(argv[0], "r")) == NULL) {
		fprintf(stderr, "ringq-dnc: %s: %s\n", argv[0],
		    strerror(errno));
		return 1;
	}
	if (fstat(fileno(fp), &sb) == 0 && S_ISREG(sb.st_mode))
		total = sb.st_size;

	memset(&im, 0, sizeof(im));
	im.cmd = del ? "SREM" : "SADD";
	im.key = key;
	im.customer = customer;
	rq_redis_set_password(cfg.redis_password);
	if ((im.rc = rq_redis_open(cfg.redis_host, cfg.redis_port, tv, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "ringq-dnc: redis %s:%d: %s\n", cfg.redis_host,
		    cfg.redis_port, err);
		return 1;
	}

	while ((len = getline(&line, &cap, fp)) != -1) {
		done += len;
		im.lines++;
		f = first_field(line);
		if (*f == '\0' || *f == '#')
			continue;
		if (rq_e164_parse(f, &num, why, sizeof(why)) == -1) {
			/* A first line that is no number is a header. */
			if (im.lines == 1 && strpbrk(f, "0123456789") == NULL)
				continue;
			if (im.invalid++ < SHOW_INVALID)
				fprintf(stderr, "%sringq-dnc: line %zu: '%.40s' "
				    "skipped: %s\n", quiet ? "" : "\r",
				    im.lines, f, why);
			continue;
		}
		memcpy(im.nums[im.nbatch++], num.e164, sizeof(num.e164));
		im.valid++;
		if (im.nbatch == BATCH) {
			flush_batch(&im);
			now = rq_mono_ms();
			if (!quiet && now - last >= 100) {
				progress(&im, done, total, 0);
				last = now;
			}
		}
	}
	flush_batch(&im);
	read_replies(&im, 0);
	if (!quiet)
		progress(&im, done, total, 1);
	printf("%s: %zu lines, %zu valid numbers, %zu invalid, %zu %s\n",
	    key, im.lines, im.valid, im.invalid, im.changed,
	    del ? "removed" : "added (new)");
	free(line);
	if (fp != stdin)
		fclose(fp);
	redisFree(im.rc);
	rq_config_free(&cfg);
	return im.failed ? 1 : 0;
}
