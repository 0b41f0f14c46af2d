/* vxml_result.c: a session's result as JSON, for the call record and the
 * status callback. */
#include <stdlib.h>

#include <jansson.h>

#include "vxml.h"

static const char *end_names[] = { "exit", "disconnect", "hangup", "error" };

/* Values are JSON texts made by the interpreter; one that does not parse
 * is kept as a string rather than lost. */
static json_t *
value(const char *text)
{
	json_t *v;

	if (text == NULL)
		return json_null();
	v = json_loads(text, JSON_DECODE_ANY, NULL);
	return v != NULL ? v : json_string(text);
}

static json_t *
fields(const struct vxml_result_field *f, size_t n)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; i < n; i++)
		json_object_set_new(o, f[i].name, value(f[i].value));
	return o;
}

char *
vxml_result_json(const struct vxml_result *r)
{
	json_t *o = json_object();
	char *s;

	json_object_set_new(o, "end", json_string(end_names[r->how]));
	if (r->exit_value != NULL)
		json_object_set_new(o, "exit", value(r->exit_value));
	json_object_set_new(o, "fields", fields(r->fields, r->nfields));
	if (r->nrecordings > 0)
		json_object_set_new(o, "recordings",
		    fields(r->recordings, r->nrecordings));
	if (r->event != NULL) {
		json_object_set_new(o, "event", json_string(r->event));
		if (r->message != NULL)
			json_object_set_new(o, "message", json_string(r->message));
		if (r->url != NULL)
			json_object_set_new(o, "url", json_string(r->url));
		if (r->line > 0)
			json_object_set_new(o, "line", json_integer(r->line));
	}
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}
