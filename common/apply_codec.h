/*
 * ringq.apply's format 2: a command's writes for the AOF and the replicas,
 * packed.  A write is its count of strings (its name included) and the
 * strings, each a token: a literal, a reference (to a word every ringq
 * knows, or to a string of the same ringq.apply written before), an integer
 * (canonical decimal text), or a known word as prefix and a token after it.
 * The strings, their order and the writes are those of format 1 (plain
 * RESP, docs/architecture.md): apply_expand() gives that back exactly.
 * Pure C, no Redis: the module, its fuzzer and its unit test build it.
 */
#ifndef RQ_APPLY_CODEC_H
#define RQ_APPLY_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* Where the codec gets and returns memory: the module sets Redis's. */
extern void *(*apply_realloc)(void *, size_t);
extern void (*apply_free)(void *);

#define APPLY_SLOTS	1024	/* strings the encoder looks back for */
#define APPLY_MAX_STRINGS 61	/* in a write, its name counted (HSET's
				 * 30 pairs) */

/* A string written before: where, how long. */
struct apply_str {
	uint32_t	 off, len;
};

struct apply_enc {
	unsigned char	*p;		/* the packed writes */
	size_t		 len, cap;
	char		*arena;		/* the strings written so far */
	size_t		 alen, acap;
	struct apply_str *hist;		/* in arena, one per string */
	size_t		 nhist, hcap;
	uint32_t	 gen;		/* slot[] is this payload's if equal */
	struct { uint32_t gen, idx; } slot[APPLY_SLOTS];
};

/* A write of argc strings begins; apply_enc_arg() each of them. */
void	 apply_enc_write(struct apply_enc *, size_t argc);
void	 apply_enc_arg(struct apply_enc *, const char *, size_t);
/* The payload is taken: the next write begins a new one. */
void	 apply_enc_reset(struct apply_enc *);
void	 apply_enc_free(struct apply_enc *);

/*
 * Format 2's p[len] as format 1's RESP, appended to *out (*outlen, *outcap,
 * grown by apply_realloc), at most max_out bytes.  0, or -1 with *at the
 * byte where p stops making sense (or would expand past max_out).
 */
int	 apply_expand(const unsigned char *p, size_t len, char **out,
	    size_t *outlen, size_t *outcap, size_t max_out, size_t *at);

#endif
