/* libFuzzer target: ringq.apply's writes (common/redis_module.c), which a
 * Redis reads back from its AOF or its master.  Two ways, by the first
 * byte: the rest as the writes themselves, which the check must refuse
 * (with where) or count, without reading past them; or the rest read as
 * writes to make (a command, its arguments, as many as that command
 * takes), written by the module's own encoder, which the check must then
 * accept and count exactly, and of which no proper prefix may count them
 * all. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/redis_module.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void *
fuzz_realloc(void *p, size_t n)
{
	return realloc(p, n);
}

static void
fuzz_free(void *p)
{
	free(p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf b = { NULL, 0, 0 };
	size_t at = 0, i = 1, k, argc, n, cut;
	long count = 0, got;

	RedisModule_Realloc = fuzz_realloc;
	RedisModule_Free = fuzz_free;
	if (size < 1)
		return 0;
	if (data[0] & 1) {
		got = apply_writes(NULL, 0, (const char *)data + 1, size - 1,
		    &at);
		if (got < -1 || (got == -1 && at > size - 1) ||
		    (got >= 0 && (size_t)got > (size - 1) / 19))
			abort();	/* a write is at least 19 bytes */
		return 0;
	}
	/* writes to make: [command index, arguments, (length, bytes)...],
	 * the count of arguments brought within what the command takes */
	while (i + 2 <= size) {
		const struct apply_command *cmd = &apply_commands[data[i] %
		    (sizeof(apply_commands) / sizeof(apply_commands[0]))];

		argc = cmd->min + data[i + 1] % (cmd->max - cmd->min + 1);
		if (cmd->parity != 0 && argc % 2 != cmd->parity % 2)
			argc += argc < cmd->max ? 1 : -1;
		i += 2;
		resp_count(&b, argc);
		resp_arg(&b, cmd->name, strlen(cmd->name));
		for (k = 1; k < argc; k++) {
			n = i < size ? data[i++] % 32 : 0;
			if (n > size - i)
				n = size - i;
			resp_arg(&b, (const char *)data + i, n);
			i += n;
		}
		count++;
	}
	if (apply_writes(NULL, 0, b.p, b.len, &at) != count)
		abort();
	for (cut = 0; count > 0 && cut < b.len; cut += 1 + b.len / 16)
		if (apply_writes(NULL, 0, b.p, cut, &at) == count)
			abort();
	free(b.p);
	return 0;
}
