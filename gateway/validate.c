/* Validation of a POST /v1/calls body: pure functions from bytes (or parsed
 * JSON) and a tenant to a gw_call or an API error.  No I/O, so the unit
 * tests cover every rule. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway.h"

/* Messages may quote the client's bytes (jansson's "near '...'", a field
 * name cut short): keep them printable ASCII so the JSON answer can always
 * be built. */
static void
ascii_only(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

void
gw_error_set(struct gw_error *err, int status, const char *code,
    const char *field, const char *fmt, ...)
{
	va_list ap;

	err->status = status;
	err->retry_after = 0;
	snprintf(err->code, sizeof(err->code), "%s", code);
	snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	ascii_only(err->field);
	ascii_only(err->message);
}

json_t *
gw_error_obj(const struct gw_error *err)
{
	json_t *o, *e;

	/* The message and field are ASCII (gw_error_set), so these cannot
	 * fail for bad UTF-8. */
	e = json_object();
	json_object_set_new(e, "code", json_string(err->code));
	if (err->field[0] != '\0')
		json_object_set_new(e, "field", json_string(err->field));
	json_object_set_new(e, "message", json_string(err->message));
	o = json_object();
	json_object_set_new(o, "error", e);
	return o;
}

void
gw_call_clear(struct gw_call *call)
{
	free(call->metadata);
	free(call->idem_key);
	free(call->hours);
	json_decref(call->root);
	memset(call, 0, sizeof(*call));
}

int
gw_caller_id_valid(const char *s)
{
	enum rq_target_kind kind;
	char why[128];
	size_t n;

	if (s[0] == '+' || !strncasecmp(s, "sip:", 4))
		return rq_target_parse(s, &kind, why, sizeof(why)) == 0;
	n = strlen(s);
	if (n < 1 || n > GW_CALLER_ID_NAME_MAX)
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789 ._-") == n;
}

/* The members a body may have; anything else is refused by name, so that
 * a misspelt optional field does not silently take its default. */
static const char *const known_fields[] = {
	"to", "say", "app_url", "caller_id", "priority", "not_before",
	"not_after", "callback_url", "metadata", "business", "time_zone",
};

static int
known_field(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(known_fields) / sizeof(known_fields[0]); i++)
		if (!strcmp(name, known_fields[i]))
			return 1;
	return 0;
}

static int
url_valid(const char *u)
{
	size_t skip, n = strlen(u), i;

	if (!strncasecmp(u, "http://", 7))
		skip = 7;
	else if (!strncasecmp(u, "https://", 8))
		skip = 8;
	else
		return 0;
	if (n == skip || u[skip] == '/')
		return 0;		/* no host */
	for (i = 0; i < n; i++)
		if ((unsigned char)u[i] <= ' ' || u[i] == 0x7f)
			return 0;
	return 1;
}

int
gw_app_url_check(const char *u, char *why, size_t whylen)
{
	size_t n = strlen(u), skip, alen, i;
	const char *auth;

	if (n == 0) {
		snprintf(why, whylen, "it is empty");
		return -1;
	}
	if (n > GW_APP_URL_MAX) {
		snprintf(why, whylen, "it is %zu bytes long", n);
		return -1;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)u[i];

		if (c <= ' ' || c == 0x7f) {
			snprintf(why, whylen, "byte %zu is a space or a "
			    "control character", i + 1);
			return -1;
		}
		if (c > 0x7f) {
			snprintf(why, whylen, "byte %zu is not ASCII "
			    "(percent-encode it)", i + 1);
			return -1;
		}
	}
	if (!strncasecmp(u, "http://", 7))
		skip = 7;
	else if (!strncasecmp(u, "https://", 8))
		skip = 8;
	else {
		snprintf(why, whylen, "it must start with http:// or "
		    "https://");
		return -1;
	}
	auth = u + skip;
	alen = strcspn(auth, "/?#");
	if (alen == 0) {
		snprintf(why, whylen, "it has no host");
		return -1;
	}
	/* A password in a URL ends up in logs and caches. */
	if (memchr(auth, '@', alen) != NULL) {
		snprintf(why, whylen, "it must not hold a user name or "
		    "password (user@host)");
		return -1;
	}
	if (auth[0] == ':') {
		snprintf(why, whylen, "it has no host");
		return -1;
	}
	return 0;
}

/* Whether flite's English voice gives audio for text: it does for any
 * text with an ASCII letter or digit, and for none of ".", "日本", emoji. */
static int
say_speakable(const char *text)
{
	for (; *text != '\0'; text++)
		if (isalnum((unsigned char)*text))	/* C locale: ASCII */
			return 1;
	return 0;
}

static int
want_string(json_t *root, const char *name, const char **out,
    struct gw_error *err)
{
	json_t *v = json_object_get(root, name);

	*out = NULL;
	if (v == NULL)
		return 0;
	if (!json_is_string(v)) {
		gw_error_set(err, 400, "invalid_field", name,
		    "'%s' must be a string.", name);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

int
gw_time_parse(const char *s, uint64_t *ms, int *local)
{
	char buf[48];
	size_t n = strlen(s);

	*local = 0;
	if (rq_rfc3339_parse(s, ms) == 0)
		return 0;
	/* Without an offset: the same grammar with a 'Z' added, as long as
	 * s did not end in one already (then it was bad for another
	 * reason). */
	if (n == 0 || n + 2 > sizeof(buf) || s[n - 1] == 'Z' ||
	    s[n - 1] == 'z')
		return -1;
	memcpy(buf, s, n);
	buf[n] = 'Z';
	buf[n + 1] = '\0';
	if (rq_rfc3339_parse(buf, ms) == -1)
		return -1;
	*local = 1;
	return 0;
}

int
gw_call_check_window(struct gw_call *call, uint64_t now_ms,
    struct gw_error *err)
{
	if (call->not_before_ms > now_ms + GW_NOT_BEFORE_MAX_MS) {
		gw_error_set(err, 400, "invalid_field", "not_before",
		    "'not_before' may be at most 366 days ahead.");
		return -1;
	}
	if (call->not_before_ms < now_ms)
		call->not_before_ms = now_ms;
	if (call->not_after_ms == 0)
		return 0;
	if (call->not_after_ms > now_ms + GW_NOT_BEFORE_MAX_MS) {
		gw_error_set(err, 400, "invalid_field", "not_after",
		    "'not_after' may be at most 366 days ahead.");
		return -1;
	}
	if (call->not_after_ms <= call->not_before_ms) {
		gw_error_set(err, 400, "invalid_field", "not_after",
		    "'not_after' must be after 'not_before' (or after now "
		    "when there is no not_before).");
		return -1;
	}
	return 0;
}

int
gw_call_validate(json_t *root, const struct rq_tenant *tenant,
    uint64_t now_ms, struct gw_call *call, struct gw_error *err)
{
	const char *key, *nb;
	json_t *v;
	char why[160];

	memset(call, 0, sizeof(*call));
	if (!json_is_object(root)) {
		gw_error_set(err, 400, "invalid_request", NULL,
		    "The body must be a JSON object, like "
		    "{\"to\": \"+15551234567\", \"say\": \"Hello\"}.");
		return -1;
	}
	json_object_foreach(root, key, v) {
		if (!known_field(key)) {
			/* The name may be long or odd: quote a bounded copy. */
			gw_error_set(err, 400, "unknown_field", key,
			    "'%.64s' is not a field of a call; the fields are "
			    "to, say, app_url, caller_id, priority, "
			    "not_before, not_after, callback_url, metadata, "
			    "business and time_zone.",
			    key);
			return -1;
		}
	}
	if (want_string(root, "to", &call->to, err) == -1)
		goto fail;
	if (call->to == NULL) {
		gw_error_set(err, 400, "missing_field", "to",
		    "'to' is required: an E.164 number like +15551234567 "
		    "or a SIP URI like sip:alice@example.com.");
		goto fail;
	}
	if (strlen(call->to) > GW_TO_MAX) {
		gw_error_set(err, 400, "invalid_field", "to",
		    "'to' is longer than %d bytes.", GW_TO_MAX);
		goto fail;
	}
	if (rq_target_parse(call->to, &call->kind, why, sizeof(why)) == -1) {
		gw_error_set(err, 400, "invalid_field", "to",
		    "'to' must be an E.164 number like +15551234567 or a SIP "
		    "URI like sip:alice@example.com: %s.", why);
		goto fail;
	}
	if (call->kind == RQ_TARGET_SIP && !tenant->allow_sip) {
		gw_error_set(err, 403, "policy", "to",
		    "This account may not call SIP URIs; use an E.164 number "
		    "or ask the operator to allow SIP.");
		goto fail;
	}

	/* What the call does once answered: speak a text, or run a
	 * VoiceXML application; exactly one of them. */
	if (want_string(root, "say", &call->say, err) == -1 ||
	    want_string(root, "app_url", &call->app_url, err) == -1)
		goto fail;
	if (call->say == NULL && call->app_url == NULL) {
		gw_error_set(err, 400, "missing_field", "say",
		    "'say' (the text to speak when the call is answered) or "
		    "'app_url' (the VoiceXML application to run) is "
		    "required.");
		goto fail;
	}
	if (call->say != NULL && call->app_url != NULL) {
		gw_error_set(err, 422, "conflicting_fields", "app_url",
		    "Give 'say' or 'app_url', not both: a call either speaks "
		    "a text or runs a VoiceXML application.");
		goto fail;
	}
	/* jansson guarantees valid UTF-8 without NUL (no JSON_ALLOW_NUL). */
	if (call->say != NULL &&
	    (call->say[0] == '\0' || strlen(call->say) > GW_SAY_MAX)) {
		gw_error_set(err, 400, "invalid_field", "say",
		    "'say' must hold 1 to %d bytes of text.", GW_SAY_MAX);
		goto fail;
	}
	/* The voice reads English: a text without an ASCII letter or digit
	 * (".", emoji, CJK) synthesises to no audio, and the callee would be
	 * rung for silence. */
	if (call->say != NULL && !say_speakable(call->say)) {
		gw_error_set(err, 422, "unspeakable", "say",
		    "'say' has nothing the voice can speak: it reads English "
		    "text, so give at least one letter or digit (A-Z, 0-9).");
		goto fail;
	}
	if (call->app_url != NULL &&
	    gw_app_url_check(call->app_url, why, sizeof(why)) == -1) {
		gw_error_set(err, 422, "invalid_app_url", "app_url",
		    "'app_url' must be an absolute http:// or https:// URL of "
		    "at most %d bytes: %s.", GW_APP_URL_MAX, why);
		goto fail;
	}

	if (want_string(root, "caller_id", &call->caller_id, err) == -1)
		goto fail;
	if (call->caller_id != NULL && !gw_caller_id_valid(call->caller_id)) {
		gw_error_set(err, 400, "invalid_field", "caller_id",
		    "'caller_id' must be an E.164 number, a SIP URI, or 1 to "
		    "%d letters, digits, spaces, '.', '_' or '-'.",
		    GW_CALLER_ID_NAME_MAX);
		goto fail;
	}

	call->priority = GW_PRIORITY_DEFAULT;
	if ((v = json_object_get(root, "priority")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 9) {
			gw_error_set(err, 400, "invalid_field", "priority",
			    "'priority' must be an integer from 0 to 9 "
			    "(9 is the most urgent).");
			goto fail;
		}
		call->priority = (int)json_integer_value(v);
	}

	/* Times without an offset are the callee's local time: the policy
	 * engine, which knows the callee's zone, makes them absolute and
	 * checks them then (gw_policy_check). */
	call->not_before_ms = now_ms;
	if (want_string(root, "not_before", &nb, err) == -1)
		goto fail;
	if (nb != NULL && gw_time_parse(nb, &call->not_before_ms,
	    &call->not_before_local) == -1) {
		gw_error_set(err, 400, "invalid_field", "not_before",
		    "'not_before' must be an RFC 3339 date-time like "
		    "2026-11-21T10:00:00Z, or a local time of the callee like "
		    "2026-11-21T10:00:00.");
		goto fail;
	}
	if (want_string(root, "not_after", &nb, err) == -1)
		goto fail;
	if (nb != NULL && (gw_time_parse(nb, &call->not_after_ms,
	    &call->not_after_local) == -1 || call->not_after_ms == 0)) {
		gw_error_set(err, 400, "invalid_field", "not_after",
		    "'not_after' must be an RFC 3339 date-time like "
		    "2026-11-21T18:00:00Z, or a local time of the callee like "
		    "2026-11-21T18:00:00.");
		goto fail;
	}
	if (!call->not_before_local && !call->not_after_local &&
	    gw_call_check_window(call, now_ms, err) == -1)
		goto fail;

	if (want_string(root, "callback_url", &call->callback_url, err) == -1)
		goto fail;
	if (call->callback_url != NULL &&
	    (strlen(call->callback_url) > GW_CALLBACK_URL_MAX ||
	    !url_valid(call->callback_url))) {
		gw_error_set(err, 400, "invalid_field", "callback_url",
		    "'callback_url' must be an http:// or https:// URL of at "
		    "most %d bytes, without spaces.", GW_CALLBACK_URL_MAX);
		goto fail;
	}
	/* Status callbacks are always signed: no secret, no callbacks. */
	if (call->callback_url != NULL && tenant->callback_secret[0] == '\0') {
		gw_error_set(err, 422, "callbacks_unsigned", "callback_url",
		    "Status callbacks are signed, and this account has no "
		    "signing secret: the operator sets callback_secret in "
		    "[tenant %s] to enable them.", tenant->name);
		goto fail;
	}

	if ((v = json_object_get(root, "metadata")) != NULL) {
		if (!json_is_object(v)) {
			gw_error_set(err, 400, "invalid_field", "metadata",
			    "'metadata' must be a JSON object.");
			goto fail;
		}
		call->metadata = gw_json_dumps(v, 0, NULL);
		if (call->metadata == NULL ||
		    strlen(call->metadata) > GW_METADATA_MAX) {
			gw_error_set(err, 400, "invalid_field", "metadata",
			    "'metadata' must be at most %d bytes of compact "
			    "JSON.", GW_METADATA_MAX);
			goto fail;
		}
		call->metadata_obj = v;
	}

	/* The policy engine checks that they name a known business and
	 * time zone (policy.c); here only their shape. */
	if (want_string(root, "business", &call->business, err) == -1)
		goto fail;
	if (call->business != NULL && (call->business[0] == '\0' ||
	    strlen(call->business) >= RQ_NAME_MAX)) {
		gw_error_set(err, 400, "invalid_field", "business",
		    "'business' must name a business of 1 to %d bytes.",
		    RQ_NAME_MAX - 1);
		goto fail;
	}
	if (want_string(root, "time_zone", &call->time_zone, err) == -1)
		goto fail;

	call->root = json_incref(root);
	return 0;
fail:
	free(call->metadata);
	memset(call, 0, sizeof(*call));
	return -1;
}

int
gw_call_parse(const char *body, size_t len, size_t max_body,
    const struct rq_tenant *tenant, uint64_t now_ms, struct gw_call *call,
    struct gw_error *err)
{
	json_error_t jerr;
	json_t *root;
	int rc;

	memset(call, 0, sizeof(*call));
	if (len >= max_body) {
		gw_error_set(err, 413, "too_large", NULL,
		    "The body must be smaller than %zu bytes.", max_body);
		return -1;
	}
	if (len == 0) {
		gw_error_set(err, 400, "invalid_json", NULL,
		    "The body is empty; send a JSON object like "
		    "{\"to\": \"+15551234567\", \"say\": \"Hello\"}.");
		return -1;
	}
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
	    &jerr);
	if (root == NULL) {
		gw_error_set(err, 400, "invalid_json", NULL,
		    "The body is not valid JSON: %s (line %d, column %d, "
		    "byte %d).", jerr.text, jerr.line, jerr.column,
		    jerr.position);
		return -1;
	}
	rc = gw_call_validate(root, tenant, now_ms, call, err);
	json_decref(root);
	return rc;
}
