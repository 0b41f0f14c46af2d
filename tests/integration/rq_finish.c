/* A telserver's end of an attempt, for the end-to-end tests: takes the job
 * as a dispatcher would (attempts + 1, a lease in rq:inflight), claims it
 * and finishes it with the real lifecycle scripts, with a result read from
 * a file, so that tests can follow a result to PostgreSQL, the status
 * callback and the API without a VoiceXML call.
 *
 *   rq_finish PORT NODE ID completed|failed REASON RESULT-FILE|- [batch]
 *
 * REASON "" for none; RESULT-FILE "-" for none; "batch" finishes through
 * rq_job_finish_batch.  Prints the status emitted; exits 0, or 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "lifecycle.h"
#include "log.h"
#include "util.h"

static char *
slurp(const char *path)
{
	FILE *f;
	char *buf;
	long n;

	if ((f = fopen(path, "rb")) == NULL || fseek(f, 0, SEEK_END) == -1 ||
	    (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) == -1 ||
	    (buf = malloc((size_t)n + 1)) == NULL) {
		perror(path);
		exit(1);
	}
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		perror(path);
		exit(1);
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static long long
num(redisReply *r)
{
	long long v = -1;

	if (r != NULL && r->type == REDIS_REPLY_INTEGER)
		v = r->integer;
	if (r != NULL)
		freeReplyObject(r);
	return v;
}

int
main(int argc, char **argv)
{
	struct rq_script *scripts[] = { &rq_claim_script, &rq_finish_script,
	    &rq_finish_batch_script };
	struct rq_attempt_end e;
	struct rq_redis r;
	enum rq_status st;
	char *result = NULL;
	long long att;
	int rc;

	if (argc < 7 || argc > 8) {
		fprintf(stderr, "usage: rq_finish PORT NODE ID "
		    "completed|failed REASON RESULT-FILE|- [batch]\n");
		return 1;
	}
	log_init("rq_finish", 0);
	rq_redis_init(&r, "127.0.0.1", atoi(argv[1]), scripts, 3);
	if (rq_redis_ready(&r) == -1)
		return 1;
	/* The dispatcher's take (dispatcher/jobs.c), reduced to its effect. */
	att = num(redisCommand(r.c, "HINCRBY %s%s attempts 1", RQ_KEY_JOB,
	    argv[3]));
	num(redisCommand(r.c, "ZREM %s %s", RQ_KEY_DELAYED, argv[3]));
	num(redisCommand(r.c, "ZREM %s %s", RQ_KEY_READY, argv[3]));
	num(redisCommand(r.c, "ZADD %s %llu %s", RQ_KEY_INFLIGHT,
	    (unsigned long long)rq_now_ms() + 60000, argv[3]));
	if (att < 1 || rq_job_claim(&r, argv[3], (uint64_t)att, argv[2]) !=
	    RQ_CLAIM_OK) {
		fprintf(stderr, "rq_finish: %s: claim failed\n", argv[3]);
		return 1;
	}
	if (strcmp(argv[6], "-") != 0)
		result = slurp(argv[6]);
	memset(&e, 0, sizeof(e));
	e.call_id = argv[3];
	e.attempt = (uint64_t)att;
	e.node = argv[2];
	e.status = strcmp(argv[4], "completed") == 0 ? RQ_ST_COMPLETED :
	    RQ_ST_FAILED;
	e.reason = argv[5][0] ? argv[5] : NULL;
	e.started_ms = rq_now_ms() - 4000;
	if (e.status == RQ_ST_COMPLETED) {
		e.answered_ms = rq_now_ms() - 3000;
		e.duration_ms = 3000;
	}
	e.result = result;
	if (argc == 8 && strcmp(argv[7], "batch") == 0) {
		if (rq_job_finish_batch(&r, 1, &e, &st, &rc) == -1)
			rc = -1;
	} else
		rc = rq_job_finish(&r, &e, &st);
	free(result);
	rq_redis_close(&r);
	if (rc != 1 && rc != 3) {
		fprintf(stderr, "rq_finish: %s: finish returned %d\n", argv[3],
		    rc);
		return 1;
	}
	printf("%s\n", rq_status_name(st));
	return 0;
}
