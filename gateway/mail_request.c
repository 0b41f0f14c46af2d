/* A call request by e-mail: GMime parses the message (MIME structure,
 * transfer encodings, charsets); the request is its application/json part
 * or its text/plain body of "Key: value" lines (docs/email.md).  Both end
 * in gw_call_validate, so mail and HTTP share every rule. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "gateway.h"
#include "log.h"

#define MAIL_TEXT_MAX	(256 * 1024)	/* decoded request text */

/* The text keys and their field in the POST /v1/calls schema. */
static const struct {
	const char	*key;
	const char	*field;
} text_keys[] = {
	{ "To",		"to" },
	{ "Say",	"say" },
	{ "App",	"app_url" },
	{ "When",	"not_before" },
	{ "Not-After",	"not_after" },
	{ "Time-Zone",	"time_zone" },
	{ "Priority",	"priority" },
	{ "Caller-Id",	"caller_id" },
	{ "Callback",	"callback_url" },
};

static void
mail_init(void)
{
	static int done;

	if (!done) {
		g_mime_init();
		done = 1;
	}
}

/* The request part: the first application/json part, else the first
 * text/plain part that is not an attachment. */
static void
find_parts(GMimeObject *o, GMimePart **json, GMimePart **text, int depth)
{
	GMimeContentType *ct;
	int i, n;

	if (o == NULL || depth > 16)
		return;
	if (GMIME_IS_MULTIPART(o)) {
		n = g_mime_multipart_get_count(GMIME_MULTIPART(o));
		for (i = 0; i < n; i++)
			find_parts(g_mime_multipart_get_part(GMIME_MULTIPART(o),
			    i), json, text, depth + 1);
		return;
	}
	if (!GMIME_IS_PART(o))
		return;		/* message/rfc822 and the like: ignored */
	ct = g_mime_object_get_content_type(o);
	if (ct == NULL)
		return;
	if (*json == NULL && g_mime_content_type_is_type(ct, "application",
	    "json"))
		*json = GMIME_PART(o);
	else if (*text == NULL && g_mime_content_type_is_type(ct, "text",
	    "plain") && !g_mime_part_is_attachment(GMIME_PART(o)))
		*text = GMIME_PART(o);
}

/* The part's content decoded and converted to UTF-8, NUL-terminated; NULL
 * with err filled. */
static char *
part_text(GMimePart *part, size_t *lenp, struct gw_error *err)
{
	GMimeDataWrapper *w;
	GMimeStream *mem = NULL, *filt = NULL;
	GMimeFilter *f;
	GByteArray *ba;
	const char *cs;
	char *out = NULL;

	if ((w = g_mime_part_get_content(part)) == NULL) {
		gw_error_set(err, 400, "parse_error", NULL,
		    "The request part is empty.");
		return NULL;
	}
	mem = g_mime_stream_mem_new();
	filt = g_mime_stream_filter_new(mem);
	cs = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part),
	    "charset");
	if (cs != NULL && g_ascii_strcasecmp(cs, "utf-8") &&
	    g_ascii_strcasecmp(cs, "us-ascii")) {
		if ((f = g_mime_filter_charset_new(cs, "UTF-8")) == NULL) {
			gw_error_set(err, 400, "parse_error", NULL,
			    "Unknown charset '%.40s': send the request in "
			    "UTF-8.", cs);
			goto done;
		}
		g_mime_stream_filter_add(GMIME_STREAM_FILTER(filt), f);
		g_object_unref(f);
	}
	if (g_mime_data_wrapper_write_to_stream(w, filt) == -1 ||
	    g_mime_stream_flush(filt) == -1) {
		gw_error_set(err, 400, "parse_error", NULL,
		    "The request part cannot be decoded.");
		goto done;
	}
	ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	if (ba->len > MAIL_TEXT_MAX) {
		gw_error_set(err, 400, "too_large", NULL, "The request part "
		    "is over %d bytes once decoded.", MAIL_TEXT_MAX);
		goto done;
	}
	if ((out = malloc(ba->len + 1)) == NULL) {
		gw_error_set(err, 503, "unavailable", NULL, "Out of memory.");
		goto done;
	}
	if (ba->len > 0)		/* an empty array has no data */
		memcpy(out, ba->data, ba->len);
	out[ba->len] = '\0';
	*lenp = ba->len;
done:
	g_object_unref(filt);
	g_object_unref(mem);
	return out;
}

static int
text_set(json_t *root, const char *field, const char *val, size_t vlen,
    size_t lineno, struct gw_error *err)
{
	json_t *v;

	if (!strcmp(field, "priority")) {
		char buf[16], *end;
		long n;

		if (vlen == 0 || vlen >= sizeof(buf))
			goto badnum;
		memcpy(buf, val, vlen);
		buf[vlen] = '\0';
		n = strtol(buf, &end, 10);
		if (*end != '\0')
			goto badnum;
		v = json_integer(n);
	} else
		v = json_stringn(val, vlen);
	if (v == NULL) {
		gw_error_set(err, 400, "parse_error", NULL, "Line %zu: the "
		    "value is not valid UTF-8 (declare the part's charset).",
		    lineno);
		return -1;
	}
	json_object_set_new(root, field, v);
	return 0;
badnum:
	gw_error_set(err, 400, "parse_error", "priority", "Line %zu: Priority "
	    "must be a whole number from 0 to 9.", lineno);
	return -1;
}

/* Stores a complete "Key: value": an X- key in meta, others in root. */
static int
text_field_done(json_t *root, json_t *meta, const char *field,
    const char *val, size_t vallen, size_t vline, struct gw_error *err)
{
	json_t *s;

	if (strncmp(field, "X-", 2))
		return text_set(root, field, val, vallen, vline, err);
	if ((s = json_stringn(val, vallen)) == NULL) {
		gw_error_set(err, 400, "parse_error", NULL, "Line %zu: the "
		    "value is not valid UTF-8.", vline);
		return -1;
	}
	json_object_set_new(meta, field, s);
	return 0;
}

/* "Key: value" lines to a POST /v1/calls body.  Blank lines are skipped; a
 * line starting with a space or tab continues the previous value; "-- "
 * starts a signature, which ends the request. */
static json_t *
text_request(const char *text, size_t len, struct gw_error *err)
{
	json_t *root = json_object(), *meta = json_object();
	const char *p = text, *end = text + len, *nl, *colon, *v, *ve;
	char key[64], field[64] = "", *val = NULL;
	size_t lineno = 0, vallen = 0, vline = 0, klen, i;

	if (root == NULL || meta == NULL)
		goto nomem;
	for (; p <= end; p = nl + 1) {
		const char *le;
		int cont;

		if ((nl = memchr(p, '\n', end - p)) == NULL)
			nl = end;
		le = nl;
		if (le > p && le[-1] == '\r')
			le--;
		lineno++;
		for (v = p; v < le; v++)
			if ((unsigned char)*v < 0x20 && *v != '\t') {
				/* NUL and the like would be cut by C strings
				 * or refused by JSON readers later. */
				gw_error_set(err, 400, "parse_error", NULL,
				    "Line %zu: control characters are not "
				    "allowed.", lineno);
				goto fail;
			}
		cont = le > p && (*p == ' ' || *p == '\t');
		if (cont && field[0] != '\0') {
			char *nv;

			v = p + strspn(p, " \t");
			if ((nv = realloc(val, vallen + (le - v) + 2)) == NULL)
				goto nomem;
			val = nv;
			val[vallen++] = ' ';
			memcpy(val + vallen, v, le - v);
			vallen += le - v;
			if (nl == end)
				break;
			continue;
		}
		/* the previous key is complete */
		if (field[0] != '\0') {
			if (text_field_done(root, meta, field, val, vallen,
			    vline, err) == -1)
				goto fail;
			field[0] = '\0';
		}
		if (le - p >= 3 && !strncmp(p, "-- ", 3) && le - p == 3)
			break;
		if (le == p || cont) {
			if (nl == end)
				break;
			continue;
		}
		if ((colon = memchr(p, ':', le - p)) == NULL) {
			gw_error_set(err, 400, "parse_error", NULL, "Line %zu: "
			    "expected 'Key: value' (keys: To, Say, When, "
			    "Not-After, Time-Zone, Priority, Caller-Id, "
			    "Callback, App, X-...).",
			    lineno);
			goto fail;
		}
		klen = colon - p;
		while (klen > 0 && (p[klen - 1] == ' ' || p[klen - 1] == '\t'))
			klen--;
		if (klen == 0 || klen >= sizeof(key)) {
			gw_error_set(err, 400, "parse_error", NULL, "Line %zu: "
			    "missing or over-long key.", lineno);
			goto fail;
		}
		memcpy(key, p, klen);
		key[klen] = '\0';
		if (!strncasecmp(key, "X-", 2)) {
			snprintf(field, sizeof(field), "X-%s", key + 2);
		} else {
			for (i = 0; i < sizeof(text_keys) / sizeof(*text_keys);
			    i++)
				if (!strcasecmp(key, text_keys[i].key))
					break;
			if (i == sizeof(text_keys) / sizeof(*text_keys)) {
				gw_error_set(err, 400, "parse_error", NULL,
				    "Line %zu: unknown key '%.40s' (keys: To, "
				    "Say, When, Not-After, Time-Zone, Priority, "
				    "Caller-Id, Callback, App, X-...).", lineno,
				    key);
				goto fail;
			}
			snprintf(field, sizeof(field), "%s",
			    text_keys[i].field);
			if (json_object_get(root, field) != NULL) {
				gw_error_set(err, 400, "parse_error", NULL,
				    "Line %zu: key '%s' given twice.", lineno,
				    key);
				goto fail;
			}
		}
		v = colon + 1;
		v += strspn(v, " \t");
		if (v > le)
			v = le;
		ve = le;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		free(val);
		vallen = ve - v;
		if ((val = malloc(vallen + 1)) == NULL)
			goto nomem;
		memcpy(val, v, vallen);
		vline = lineno;
		if (nl == end)
			break;
	}
	if (field[0] != '\0' && text_field_done(root, meta, field, val,
	    vallen, vline, err) == -1)
		goto fail;
	free(val);
	if (json_object_size(root) == 0 && json_object_size(meta) == 0) {
		gw_error_set(err, 400, "parse_error", NULL, "The message holds "
		    "no request: write 'To: ...' and 'Say: ...' (or 'App: "
		    "...') lines, or attach an application/json part.");
		json_decref(meta);
		json_decref(root);
		return NULL;
	}
	if (json_object_size(meta) > 0)
		json_object_set(root, "metadata", meta);
	json_decref(meta);
	return root;
nomem:
	gw_error_set(err, 503, "unavailable", NULL, "Out of memory.");
fail:
	free(val);
	json_decref(meta);
	json_decref(root);
	return NULL;
}

int
gw_mail_request_parse(const char *data, size_t len,
    const struct rq_tenant *tenant, uint64_t now_ms, struct gw_call *call,
    char *msgid, size_t msgidlen, struct gw_error *err)
{
	GMimeStream *st;
	GMimeParser *parser;
	GMimeMessage *msg;
	GMimePart *jpart = NULL, *tpart = NULL;
	const char *id;
	json_t *root = NULL;
	json_error_t jerr;
	char *text = NULL;
	size_t tlen = 0;
	int rc = -1;

	memset(call, 0, sizeof(*call));
	msgid[0] = '\0';
	mail_init();
	st = g_mime_stream_mem_new_with_buffer(data, len);
	parser = g_mime_parser_new_with_stream(st);
	g_object_unref(st);
	msg = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	if (msg == NULL) {
		gw_error_set(err, 400, "parse_error", NULL, "The message "
		    "cannot be parsed as RFC 5322 mail.");
		return -1;
	}
	if ((id = g_mime_message_get_message_id(msg)) != NULL)
		snprintf(msgid, msgidlen, "%s", id);
	find_parts(g_mime_message_get_mime_part(msg), &jpart, &tpart, 0);
	if (jpart != NULL) {
		if ((text = part_text(jpart, &tlen, err)) == NULL)
			goto done;
		if ((root = json_loadb(text, tlen, JSON_REJECT_DUPLICATES,
		    &jerr)) == NULL) {
			gw_error_set(err, 400, "parse_error", NULL, "The "
			    "application/json part is not valid JSON: %s at "
			    "line %d.", jerr.text, jerr.line);
			goto done;
		}
	} else if (tpart != NULL) {
		if ((text = part_text(tpart, &tlen, err)) == NULL)
			goto done;
		if ((root = text_request(text, tlen, err)) == NULL)
			goto done;
	} else {
		gw_error_set(err, 400, "parse_error", NULL, "The message has "
		    "no text/plain body and no application/json part.");
		goto done;
	}
	if (gw_call_validate(root, tenant, now_ms, call, err) == -1)
		goto done;
	/* the intake's idempotency key: a message sent twice (a retrying
	 * relay, a resent mail) queues one call (docs/email.md) */
	if (msgid[0] != '\0') {
		if (asprintf(&call->idem_key, GW_IDEM_MAIL_PREFIX "%s", msgid) == -1) {
			call->idem_key = NULL;
			gw_error_set(err, 503, "unavailable", NULL, "Out of "
			    "memory.");
			goto done;
		}
	}
	rc = 0;
done:
	json_decref(root);
	free(text);
	g_object_unref(msg);
	return rc;
}
