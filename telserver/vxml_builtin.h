/* vxml_builtin.h: private to vxml_grammar.c and vxml_builtin.c: the builtin
 * DTMF types of VoiceXML 2.0 appendix P, and helpers both files use. */
#ifndef VXML_BUILTIN_H
#define VXML_BUILTIN_H

#include <stddef.h>

#include "vxml_grammar.h"

struct vxml_builtin;

/* "builtin:dtmf/digits?minlength=3" or "digits?length=4": NULL + err. */
struct vxml_builtin *vxml_builtin_parse(const char *type, char *err,
    size_t errlen);
/* Fills out->value (only) on VXML_MATCH_MORE and VXML_MATCH_FULL. */
enum vxml_match vxml_builtin_match(const struct vxml_builtin *b,
    const char *digits, struct vxml_interp *out);
void vxml_builtin_free(struct vxml_builtin *b);

/* 1 when c is a DTMF key: 0-9 * # A-D. */
int vxml_dtmf_key(int c);
/* s as an ECMAScript string literal in double quotes (malloc'd), or NULL
 * when out of memory. */
char *vxml_js_string(const char *s);

#endif
