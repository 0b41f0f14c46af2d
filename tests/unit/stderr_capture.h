/* What the code under test logs (stderr), from stderr_to_file until
 * stderr_back, kept in a temporary file that stderr_back rewinds for
 * reading; the caller fcloses it.  (Lines a log_defer() holds back are
 * not in it: the tests that capture do not defer.  A failed assertion in
 * between is reported into the file, and lost: assert after
 * stderr_back.) */
#ifndef STDERR_CAPTURE_H
#define STDERR_CAPTURE_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static inline FILE *
stderr_to_file(int *saved)
{
	FILE *out;

	*saved = -1;
	if ((out = tmpfile()) == NULL)
		return NULL;
	fflush(stderr);
	if ((*saved = dup(2)) == -1 || dup2(fileno(out), 2) == -1) {
		if (*saved != -1)
			close(*saved);
		fclose(out);
		return NULL;
	}
	return out;
}

static inline void
stderr_back(FILE *out, int saved)
{
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(out);
}

/* The lines of out holding both a and b (b NULL: a alone), out read to
 * its end. */
static inline int
stderr_lines(FILE *out, const char *a, const char *b)
{
	char line[1024];
	int n = 0;

	while (fgets(line, sizeof(line), out) != NULL)
		if (strstr(line, a) && (b == NULL || strstr(line, b)))
			n++;
	return n;
}

#endif
