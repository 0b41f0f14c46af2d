/* libFuzzer target: ringq.apply's writes (common/redis_module.c), which a
 * Redis reads back from its AOF or its master.  Three ways, by the first
 * byte: the rest as format 1's writes themselves, which the check must
 * refuse (with where) or count, without reading past them; the rest as
 * format 2's (common/apply_codec.c), which apply_expand() must refuse
 * (with where) or expand to RESP that packs and expands back the same;
 * or the rest read as writes to make (a command, its arguments, as many
 * as that command takes), written by the module's own encoder in format
 * 1, which the check must then accept and count exactly, and of which no
 * proper prefix may count them all, and in format 2, which must expand
 * to those bytes exactly. */
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

/* Format 2's e expands to format 1's b[len] exactly. */
static void
same_expanded(const struct apply_enc *e, const char *b, size_t len)
{
	char *out = NULL;
	size_t outlen = 0, outcap = 0, at = 0;

	if (apply_expand(e->p, e->len, &out, &outlen, &outcap, SIZE_MAX,
	    &at) == -1 || outlen != len ||
	    (len > 0 && memcmp(out, b, len) != 0))
		abort();
	free(out);
}

/* What apply_expand() gave, p[len]: RESP writes, each of 1 to 61
 * strings, which the encoder packs again to the same. */
static void
repack(const char *p, size_t len)
{
	struct apply_enc e;
	size_t i = 0, argc, n;

	memset(&e, 0, sizeof(e));
	while (i < len) {
		if (resp_num(p, len, &i, '*', &argc) == -1 || argc < 1 ||
		    argc > 61)
			abort();
		apply_enc_write(&e, argc);
		while (argc-- > 0) {
			if (resp_num(p, len, &i, '$', &n) == -1 ||
			    n > len - i || len - i - n < 2 ||
			    p[i + n] != '\r' || p[i + n + 1] != '\n')
				abort();
			apply_enc_arg(&e, p + i, n);
			i += n + 2;
		}
	}
	same_expanded(&e, p, len);
	apply_enc_free(&e);
}

/* Format 2's writes p[len]: refused with where, or expanded within
 * max_out to what the check may refuse but reads without harm. */
static void
expand(const uint8_t *p, size_t len)
{
	char *out = NULL;
	size_t outlen = 0, outcap = 0, at = 0, max_out = 1 << 20;
	long got;

	if (apply_expand(p, len, &out, &outlen, &outcap, max_out, &at) ==
	    -1) {
		if (at > len || outlen > max_out)
			abort();
		free(out);
		return;
	}
	if (outlen > max_out || (len > 0) != (outlen > 0))
		abort();
	repack(out, outlen);
	at = 0;
	got = apply_writes(NULL, 0, out, outlen, &at);
	if (got < -1 || (got == -1 && at > outlen))
		abort();
	free(out);
}

/* Writes to make: [command index, arguments, (length, bytes)...], the
 * count of arguments brought within what the command takes; in format 1
 * to b (unless NULL) and format 2 to e.  Returns how many. */
static long
make(const uint8_t *data, size_t size, struct buf *b, struct apply_enc *e)
{
	size_t i = 1, k, argc, n;
	long count = 0;

	while (i + 2 <= size) {
		const struct apply_command *cmd = &apply_commands[data[i] %
		    (sizeof(apply_commands) / sizeof(apply_commands[0]))];

		argc = cmd->min + data[i + 1] % (cmd->max - cmd->min + 1);
		if (cmd->parity != 0 && argc % 2 != cmd->parity % 2)
			argc += argc < cmd->max ? 1 : -1;
		i += 2;
		if (b != NULL) {
			resp_count(b, argc);
			resp_arg(b, cmd->name, strlen(cmd->name));
		}
		apply_enc_write(e, argc);
		apply_enc_arg(e, cmd->name, strlen(cmd->name));
		for (k = 1; k < argc; k++) {
			n = i < size ? data[i++] % 32 : 0;
			if (n > size - i)
				n = size - i;
			if (b != NULL)
				resp_arg(b, (const char *)data + i, n);
			apply_enc_arg(e, (const char *)data + i, n);
			i += n;
		}
		count++;
	}
	return count;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf b = { NULL, 0, 0 };
	struct apply_enc e;
	size_t at = 0, cut;
	long count, got;

	RedisModule_Realloc = fuzz_realloc;
	RedisModule_Free = fuzz_free;
	apply_realloc = fuzz_realloc;
	apply_free = fuzz_free;
	if (size < 1)
		return 0;
	if ((data[0] & 3) == 3) {
		expand(data + 1, size - 1);
		return 0;
	}
	if (data[0] & 1) {
		got = apply_writes(NULL, 0, (const char *)data + 1, size - 1,
		    &at);
		if (got < -1 || (got == -1 && at > size - 1) ||
		    (got >= 0 && (size_t)got > (size - 1) / 19))
			abort();	/* a write is at least 19 bytes */
		return 0;
	}
	/* the same writes in both formats; after apply_enc_reset() again,
	 * on their own: a payload never points into the one before */
	memset(&e, 0, sizeof(e));
	count = make(data, size, &b, &e);
	same_expanded(&e, b.p, b.len);
	apply_enc_reset(&e);
	make(data, size, NULL, &e);
	same_expanded(&e, b.p, b.len);
	apply_enc_free(&e);
	if (apply_writes(NULL, 0, b.p, b.len, &at) != count)
		abort();
	for (cut = 0; count > 0 && cut < b.len; cut += 1 + b.len / 16)
		if (apply_writes(NULL, 0, b.p, cut, &at) == count)
			abort();
	free(b.p);
	return 0;
}
