/* Speech synthesis with flite (cmu_us_kal, natively 8 kHz) in one worker
 * thread, so that synthesis never stalls the RTP of other calls.  Texts go
 * in through a mutex-protected queue; results come back to the Sofia thread
 * through an eventfd.  The last few texts are cached. */
#include <sys/eventfd.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <flite/flite.h>
#pragma GCC diagnostic pop

#include "log.h"
#include "telserver.h"

#define TTS_CACHE	4
#define TTS_RATE	8000

cst_voice	*register_cmu_us_kal(const char *voxdir);

/* A synthesis request.  The worker reads text and writes samples and
 * nsamples; only the Sofia thread touches sp (a reference it holds). */
struct tts_job {
	struct tts_job		*next;
	struct tel_speech	*sp;
	char			*text;
	int16_t			*samples;
	size_t			 nsamples;
};

struct tel_tts {
	struct tel_ctx		*ctx;
	pthread_t		 thread;
	int			 started;
	pthread_mutex_t		 lock;		/* guards the lists and quit */
	pthread_cond_t		 cond;
	struct tts_job		*waiting, *waiting_tail;
	struct tts_job		*done;
	int			 quit;
	int			 efd;
	int			 reg;
	struct tel_speech	*cache[TTS_CACHE];	/* Sofia thread only */
	int			 cache_next;
	int			 queued;	/* jobs not back yet (Sofia) */
	int			 queue_max;
};

struct tel_speech *
tel_speech_ref(struct tel_speech *sp)
{
	sp->refs++;
	return sp;
}

void
tel_speech_unref(struct tel_speech *sp)
{
	if (sp == NULL || --sp->refs > 0)
		return;
	free(sp->text);
	free(sp->samples);
	free(sp);
}

static void
tts_synth(cst_voice *voice, struct tts_job *job)
{
	cst_wave *w;
	size_t i;

	if ((w = flite_text_to_wave(job->text, voice)) == NULL)
		return;
	/* cst_wave_resample trips ASan even for 8000 -> 8000. */
	if (w->sample_rate != TTS_RATE)
		cst_wave_resample(w, TTS_RATE);
	if (w->num_samples > 0 && (job->samples = calloc(
	    (size_t)w->num_samples, sizeof(int16_t))) != NULL) {
		for (i = 0; i < (size_t)w->num_samples; i++)
			job->samples[i] = w->samples[i * w->num_channels];
		job->nsamples = (size_t)w->num_samples;
	}
	delete_wave(w);
}

static void *
tts_main(void *arg)
{
	struct tel_tts *t = arg;
	struct tts_job *job;
	cst_voice *voice;
	uint64_t one = 1;

	voice = register_cmu_us_kal(NULL);
	for (;;) {
		pthread_mutex_lock(&t->lock);
		while (t->waiting == NULL && !t->quit)
			pthread_cond_wait(&t->cond, &t->lock);
		if (t->quit) {
			pthread_mutex_unlock(&t->lock);
			break;
		}
		job = t->waiting;
		if ((t->waiting = job->next) == NULL)
			t->waiting_tail = NULL;
		pthread_mutex_unlock(&t->lock);

		if (voice != NULL)
			tts_synth(voice, job);

		pthread_mutex_lock(&t->lock);
		job->next = t->done;
		t->done = job;
		pthread_mutex_unlock(&t->lock);
		/* Cannot fail: the counter never nears overflow. */
		(void)!write(t->efd, &one, sizeof(one));
	}
	if (voice != NULL)
		delete_voice(voice);
	return NULL;
}

static void
job_free(struct tts_job *job)
{
	tel_speech_unref(job->sp);
	free(job->text);
	free(job->samples);
	free(job);
}

/* Sofia thread: hands finished samples to their speech objects. */
static int
tts_results(struct tel_ctx *ctx, su_wait_t *w, void *arg)
{
	struct tel_tts *t = arg;
	struct tts_job *job, *next;
	uint64_t n;

	if (read(t->efd, &n, sizeof(n)) == -1)
		return 0;
	pthread_mutex_lock(&t->lock);
	job = t->done;
	t->done = NULL;
	pthread_mutex_unlock(&t->lock);
	for (; job != NULL; job = next) {
		next = job->next;
		t->queued--;
		job->sp->samples = job->samples;
		job->sp->nsamples = job->nsamples;
		job->sp->ready = 1;
		job->samples = NULL;
		if (job->sp->nsamples == 0) {
			log_warnx("tts: synthesis of a %zu-byte text gave no "
			    "audio", strlen(job->text));
			tel_call_speech_silent(t->ctx, job->sp);
		} else
			log_debug("tts: %zu samples (%zu ms) ready",
			    job->sp->nsamples, job->sp->nsamples / 8);
		job_free(job);
	}
	return 0;
}

struct tel_tts *
tel_tts_new(struct tel_ctx *ctx)
{
	struct tel_tts *t;
	su_wait_t w;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->ctx = ctx;
	t->reg = -1;
	t->efd = -1;
	t->queue_max = ctx->cfg->capacity;
	if (t->queue_max > TEL_TTS_QUEUE_MAX)
		t->queue_max = TEL_TTS_QUEUE_MAX;
	if (t->queue_max < 1)
		t->queue_max = 1;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	if ((t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		log_warn("tts: eventfd");
		goto fail;
	}
	if (su_wait_create(&w, t->efd, SU_WAIT_IN) == -1 ||
	    (t->reg = su_root_register(ctx->root, &w, tts_results, t, 0)) < 0) {
		log_warnx("tts: cannot register the eventfd");
		goto fail;
	}
	flite_init();
	if (pthread_create(&t->thread, NULL, tts_main, t) != 0) {
		log_warnx("tts: cannot start the worker thread");
		goto fail;
	}
	t->started = 1;
	return t;
fail:
	tel_tts_free(t);
	return NULL;
}

void
tel_tts_free(struct tel_tts *t)
{
	struct tts_job *job, *next;
	int i;

	if (t == NULL)
		return;
	if (t->started) {
		pthread_mutex_lock(&t->lock);
		t->quit = 1;
		pthread_cond_signal(&t->cond);
		pthread_mutex_unlock(&t->lock);
		pthread_join(t->thread, NULL);
	}
	for (job = t->waiting; job != NULL; job = next) {
		next = job->next;
		job_free(job);
	}
	for (job = t->done; job != NULL; job = next) {
		next = job->next;
		job_free(job);
	}
	for (i = 0; i < TTS_CACHE; i++)
		tel_speech_unref(t->cache[i]);
	if (t->reg >= 0)
		su_root_deregister(t->ctx->root, t->reg);
	if (t->efd != -1)
		close(t->efd);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static struct tel_speech *
tts_cached(struct tel_tts *t, const char *text)
{
	int i;

	for (i = 0; i < TTS_CACHE; i++)
		if (t->cache[i] && !strcmp(t->cache[i]->text, text))
			return t->cache[i];
	return NULL;
}

int
tel_tts_has(struct tel_tts *t, const char *text)
{
	return tts_cached(t, text) != NULL;
}

int
tel_tts_can_take(struct tel_tts *t, const char *text)
{
	return tts_cached(t, text) != NULL || t->queued < t->queue_max;
}

struct tel_speech *
tel_tts_get(struct tel_tts *t, const char *text)
{
	struct tel_speech *sp;
	struct tts_job *job;

	if ((sp = tts_cached(t, text)) != NULL)
		return tel_speech_ref(sp);
	if (t->queued >= t->queue_max) {
		log_warnx("tts: queue full (%d texts)", t->queued);
		return NULL;
	}
	if ((sp = calloc(1, sizeof(*sp))) == NULL ||
	    (sp->text = strdup(text)) == NULL)
		goto fail;
	sp->refs = 1;
	if ((job = calloc(1, sizeof(*job))) == NULL)
		goto fail;
	if ((job->text = strdup(text)) == NULL) {
		free(job);
		goto fail;
	}
	job->sp = tel_speech_ref(sp);
	pthread_mutex_lock(&t->lock);
	if (t->waiting_tail)
		t->waiting_tail->next = job;
	else
		t->waiting = job;
	t->waiting_tail = job;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	t->queued++;

	tel_speech_unref(t->cache[t->cache_next]);
	t->cache[t->cache_next] = tel_speech_ref(sp);
	t->cache_next = (t->cache_next + 1) % TTS_CACHE;
	return sp;
fail:
	log_warnx("tts: out of memory");
	if (sp) {
		free(sp->text);
		free(sp);
	}
	return NULL;
}
