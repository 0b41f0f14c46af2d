/* tts.c: the synthesis queue is bounded by the capacity, cached texts never
 * wait, and a finished text gives 8 kHz samples. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "telserver.h"
#include "util.h"

static int
wait_ready(struct tel_ctx *ctx, struct tel_speech **sp, int n)
{
	uint64_t end = rq_mono_ms() + 30000;
	int i, ready;

	while (rq_mono_ms() < end) {
		for (ready = 0, i = 0; i < n; i++)
			ready += sp[i]->ready;
		if (ready == n)
			return 0;
		su_root_step(ctx->root, 50);
	}
	return -1;
}

static void
test_queue_bound(void **state)
{
	struct rq_config cfg;
	struct tel_ctx ctx;
	struct tel_speech *sp[2];

	memset(&cfg, 0, sizeof(cfg));
	memset(&ctx, 0, sizeof(ctx));
	cfg.capacity = 2;
	ctx.cfg = &cfg;
	su_init();
	assert_non_null(ctx.root = su_root_create(&ctx));
	assert_non_null(ctx.tts = tel_tts_new(&ctx));

	assert_true(tel_tts_can_take(ctx.tts, "one"));
	assert_non_null(sp[0] = tel_tts_get(ctx.tts, "one"));
	assert_non_null(sp[1] = tel_tts_get(ctx.tts, "two, three."));
	/* full: a new text is refused, a queued (cached) one is not */
	assert_false(tel_tts_can_take(ctx.tts, "four"));
	assert_null(tel_tts_get(ctx.tts, "four"));
	assert_true(tel_tts_can_take(ctx.tts, "one"));
	tel_speech_unref(tel_tts_get(ctx.tts, "one"));

	assert_int_equal(wait_ready(&ctx, sp, 2), 0);
	assert_true(sp[0]->nsamples > 1000);
	assert_true(sp[1]->nsamples > sp[0]->nsamples);
	/* done: room again */
	assert_true(tel_tts_can_take(ctx.tts, "four"));

	tel_speech_unref(sp[0]);
	tel_speech_unref(sp[1]);
	tel_tts_free(ctx.tts);
	su_root_destroy(ctx.root);
	su_deinit();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queue_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
