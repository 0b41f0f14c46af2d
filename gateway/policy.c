/* The policy engine's pure checks: functions of (call, tenant, clock) with
 * no I/O, so that unit tests set the clock.  E.164 validity, allowed
 * destinations, premium rate, then calling hours in the callee's local
 * time and the business's hours, which defer rather than refuse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "e164.h"
#include "hours.h"
#include "gateway.h"

/*
 * glibc converts between UTC and one zone at a time, the one named by TZ:
 * switch TZ for the conversion and put the old value back (as e164.c
 * does for the hours).  Not thread-safe: the gateway has one thread.
 */
int
gw_local_to_utc(const char *zone, uint64_t wall_ms, uint64_t *ms)
{
	time_t wall = (time_t)(wall_ms / 1000), t;
	const char *o;
	char *old = NULL, buf[80];
	struct tm tm;
	int had, rc = -1;

	if (!rq_tz_valid(zone) || gmtime_r(&wall, &tm) == NULL)
		return -1;
	o = getenv("TZ");
	had = o != NULL;
	if (o != NULL && (old = strdup(o)) == NULL)
		return -1;
	snprintf(buf, sizeof(buf), ":%s", zone);
	setenv("TZ", buf, 1);
	tzset();
	tm.tm_isdst = -1;
	if ((t = mktime(&tm)) != (time_t)-1 && t >= 0) {
		*ms = (uint64_t)t * 1000 + wall_ms % 1000;
		rc = 0;
	}
	if (had && old != NULL)
		setenv("TZ", old, 1);
	else
		unsetenv("TZ");
	free(old);
	tzset();
	return rc;
}

/* not_before / not_after without an offset are in the callee's local
 * time: time_zone when given, else the number's zone when it has exactly
 * one; else the client must say. */
static int
local_times(struct gw_call *call, const char *zone, uint64_t now_ms,
    struct gw_error *err)
{
	const char *f = call->not_before_local ? "not_before" : "not_after";

	if (!call->not_before_local && !call->not_after_local)
		return 0;
	if (zone == NULL) {
		gw_error_set(err, 400, "time_zone_required", "time_zone",
		    "'%s' has no UTC offset, so it is the callee's local time, "
		    "but the callee's time zone is not known for sure%s: give "
		    "'time_zone' (an IANA zone like America/New_York) or an "
		    "offset (2026-11-21T10:00:00-05:00).", f,
		    call->kind == RQ_TARGET_SIP ? " for a SIP address" :
		    " (its country or area code has several)");
		return -1;
	}
	if (call->not_before_local && gw_local_to_utc(zone,
	    call->not_before_ms, &call->not_before_ms) == -1)
		goto bad;
	f = "not_after";
	if (call->not_after_local && gw_local_to_utc(zone,
	    call->not_after_ms, &call->not_after_ms) == -1)
		goto bad;
	call->not_before_local = call->not_after_local = 0;
	return gw_call_check_window(call, now_ms, err);
bad:
	gw_error_set(err, 400, "invalid_field", f, "'%s' cannot be converted "
	    "from the local time of %s.", f, zone);
	return -1;
}

int
gw_policy_check(const struct rq_config *cfg, const struct rq_tenant *tenant,
    struct gw_call *call, uint64_t now_ms, struct gw_policy *pol,
    struct gw_error *err)
{
	const struct rq_business *biz = NULL;
	const char *zone = "UTC", *zones = NULL, *z, *e;
	const char *local_zone = NULL;
	struct rq_e164 num;
	struct rq_hours_rule rule;
	char zbuf[RQ_HOURS_ZONE_MAX], hours[RQ_HOURS_TEXT_MAX];
	uint64_t nb, until = 0;
	char why[160];
	int moved;

	memset(pol, 0, sizeof(*pol));
	if (call->kind == RQ_TARGET_E164) {
		if (rq_e164_parse(call->to, &num, why, sizeof(why)) == -1) {
			gw_error_set(err, 400, "invalid_field", "to",
			    "'to' is not a valid E.164 number: %s.", why);
			return -1;
		}
		if (!rq_e164_prefix_allowed(num.e164,
		    tenant->allowed_prefixes)) {
			gw_error_set(err, 403, "destination_not_allowed", "to",
			    "This account may call only numbers starting "
			    "with %.200s; ask the operator to allow %s.",
			    tenant->allowed_prefixes, num.e164);
			return -1;
		}
		if (num.premium && !tenant->allow_premium) {
			gw_error_set(err, 403, "destination_not_allowed", "to",
			    "%s is a premium-rate or high-fraud destination "
			    "(%s); the operator can allow them for this "
			    "account (allow_premium).", num.e164,
			    num.country);
			return -1;
		}
		snprintf(pol->number, sizeof(pol->number), "%s", num.e164);
		zone = num.time_zone;
		zones = num.zones;
		if (zones == NULL)
			local_zone = zone;
	}
	if (call->time_zone != NULL) {
		if (!rq_tz_valid(call->time_zone)) {
			gw_error_set(err, 400, "invalid_field", "time_zone",
			    "'time_zone' must be an IANA time zone like "
			    "Europe/Berlin.");
			return -1;
		}
		zone = call->time_zone;
		zones = NULL;
		local_zone = zone;
	}
	if (local_times(call, local_zone, now_ms, err) == -1)
		return -1;
	nb = call->not_before_ms;
	if (call->business != NULL &&
	    (biz = rq_config_business(cfg, call->business)) == NULL) {
		gw_error_set(err, 400, "invalid_field", "business",
		    "No business is named '%.64s'.", call->business);
		return -1;
	}

	/* Both windows must be open at the same time (hours.c).  A callee
	 * whose zone is one of several in the country gets calling hours
	 * open in every one of them (docs/policy.md). */
	memset(&rule, 0, sizeof(rule));
	z = tenant->calling_hours[0] != '\0' ? (zones ? zones : zone) : "";
	for (; *z != '\0'; z = *e ? e + 1 : e) {
		if (zones == NULL)
			e = z + strlen(z);
		else if ((e = strchr(z, ' ')) == NULL)
			e = z + strlen(z);
		snprintf(zbuf, sizeof(zbuf), "%.*s", (int)(e - z), z);
		if (rq_hours_rule_add(&rule, RQ_HOURS_CALLING,
		    tenant->calling_hours, zbuf, why, sizeof(why)) == -1)
			goto no_hours;
	}
	if (biz != NULL && biz->hours[0] != '\0' &&
	    rq_hours_rule_add(&rule, RQ_HOURS_BUSINESS, biz->hours,
	    biz->time_zone[0] ? biz->time_zone : "UTC", why,
	    sizeof(why)) == -1)
		goto no_hours;
	hours[0] = '\0';
	if (rule.n > 0) {
		if (rq_hours_rule_plan(&rule, nb, &nb, &until, &moved) == -1 ||
		    rq_hours_rule_format(&rule, hours, sizeof(hours)) == -1)
			goto no_hours;
		rq_hours_reasons(moved, pol->reasons, sizeof(pol->reasons));
	}
	if (nb > now_ms + GW_NOT_BEFORE_MAX_MS) {
		gw_error_set(err, 403, "outside_hours", NULL, "The next time "
		    "the calling hours%s allow is more than a year away (the "
		    "not_before limit); nothing was queued.", biz != NULL ?
		    " and the business's hours" : "");
		return -1;
	}
	/* The window closes before the hours open: refuse now, with the
	 * reason, rather than accept a call that can only expire. */
	if (call->not_after_ms != 0 && nb >= call->not_after_ms) {
		char t1[40], t2[40];

		rq_rfc3339_format(nb, t1, sizeof(t1));
		rq_rfc3339_format(call->not_after_ms, t2, sizeof(t2));
		gw_error_set(err, 422, "outside_window", "not_after", "The "
		    "calling hours%s first allow this call at %s, not before "
		    "its not_after (%s); nothing was queued.", biz != NULL &&
		    biz->hours[0] != '\0' ? " and the business's hours" : "",
		    t1, t2);
		return -1;
	}
	free(call->hours);
	call->hours = NULL;
	call->hours_until_ms = until;
	if (hours[0] != '\0' && (call->hours = strdup(hours)) == NULL) {
		gw_error_set(err, 503, "unavailable", NULL, "Out of memory; "
		    "nothing was queued.");
		return -1;
	}
	if (nb != call->not_before_ms) {
		pol->defer = 1;
		call->not_before_ms = nb;
		snprintf(call->policy, sizeof(call->policy), "defer:%s",
		    pol->reasons);
	} else
		snprintf(call->policy, sizeof(call->policy), "accept");
	return 0;
no_hours:
	gw_error_set(err, 403, "outside_hours", NULL, "The callee's calling "
	    "hours and the business's hours never meet; nothing was "
	    "queued.");
	return -1;
}

json_t *
gw_policy_obj(const char *policy, uint64_t not_before_ms)
{
	const char *colon, *p, *e;
	char t[40];
	json_t *o, *reasons;

	if (policy == NULL || *policy == '\0')
		return NULL;
	o = json_object();
	reasons = json_array();
	colon = strchr(policy, ':');
	json_object_set_new(o, "decision", colon ?
	    json_stringn(policy, colon - policy) : json_string(policy));
	for (p = colon ? colon + 1 : ""; *p; p = *e ? e + 1 : e) {
		if ((e = strchr(p, ',')) == NULL)
			e = p + strlen(p);
		if (e > p)
			json_array_append_new(reasons, json_stringn(p, e - p));
	}
	json_object_set_new(o, "reasons", reasons);
	if (!strncmp(policy, "defer", 5)) {
		rq_rfc3339_format(not_before_ms, t, sizeof(t));
		json_object_set_new(o, "not_before", json_string(t));
	}
	/* json_stringn of bytes from Redis may fail on bad UTF-8: then the
	 * member is missing, never a crash. */
	return o;
}

int
gw_idem_key_valid(const char *key)
{
	size_t n = strlen(key), i;

	if (n == 0 || n > GW_IDEM_KEY_MAX)
		return 0;
	/* The e-mail intake's keys: a client's must not replay a message. */
	if (!strncmp(key, GW_IDEM_MAIL_PREFIX, strlen(GW_IDEM_MAIL_PREFIX)))
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)key[i] < 0x20 ||
		    (unsigned char)key[i] >= 0x7f)
			return 0;
	return 1;
}
