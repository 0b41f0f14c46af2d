/* A call's hours as one rule (hours.h): its text, and the plan of its
 * next opening, shared by the gateway's policy engine and the scheduler. */
#include <stdio.h>
#include <string.h>

#include "hours.h"

/* Windows that keep moving each other (one inside the other's closed
 * time) are taken as never meeting after this many rounds. */
#define HOURS_ROUNDS	16

int
rq_hours_rule_add(struct rq_hours_rule *r, int kind, const char *hours,
    const char *zone, char *why, size_t whylen)
{
	struct rq_hours_entry *e;

	if (r->n == RQ_HOURS_ENTRIES) {
		snprintf(why, whylen, "more than %d windows",
		    RQ_HOURS_ENTRIES);
		return -1;
	}
	e = &r->e[r->n];
	if (strlen(hours) >= sizeof(e->hours) ||
	    strchr(hours, ';') != NULL ||
	    rq_hours_parse(hours, &e->h, why, whylen) == -1)
		return -1;
	if (strlen(zone) >= sizeof(e->zone) || !rq_tz_valid(zone)) {
		snprintf(why, whylen, "unknown time zone");
		return -1;
	}
	e->kind = kind;
	snprintf(e->hours, sizeof(e->hours), "%s", hours);
	snprintf(e->zone, sizeof(e->zone), "%s", zone);
	r->n++;
	return 0;
}

int
rq_hours_rule_format(const struct rq_hours_rule *r, char *buf, size_t len)
{
	size_t i, off = 0;
	int n;

	buf[0] = '\0';
	for (i = 0; i < r->n; i++) {
		n = snprintf(buf + off, len - off, "%s%c=%s %s",
		    i ? ";" : "", r->e[i].kind == RQ_HOURS_BUSINESS ? 'b' : 'c',
		    r->e[i].hours, r->e[i].zone);
		if (n < 0 || (size_t)n >= len - off)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

int
rq_hours_rule_parse(const char *text, struct rq_hours_rule *r, char *why,
    size_t whylen)
{
	char entry[RQ_HOURS_TEXT_MAX], *zone;
	const char *p, *end;
	int kind;

	memset(r, 0, sizeof(*r));
	for (p = text; *p != '\0'; p = *end ? end + 1 : end) {
		if ((end = strchr(p, ';')) == NULL)
			end = p + strlen(p);
		if (end - p < 3 || (size_t)(end - p) >= sizeof(entry) ||
		    (end[0] == ';' && end[1] == '\0') ||
		    (p[0] != 'c' && p[0] != 'b') || p[1] != '=') {
			snprintf(why, whylen, "an entry is not KIND=HOURS ZONE");
			return -1;
		}
		kind = p[0] == 'b' ? RQ_HOURS_BUSINESS : RQ_HOURS_CALLING;
		snprintf(entry, sizeof(entry), "%.*s", (int)(end - p - 2),
		    p + 2);
		if ((zone = strrchr(entry, ' ')) == NULL) {
			snprintf(why, whylen, "an entry has no zone");
			return -1;
		}
		*zone++ = '\0';
		if (rq_hours_rule_add(r, kind, entry, zone, why, whylen) == -1)
			return -1;
	}
	return 0;
}

int
rq_hours_rule_plan(const struct rq_hours_rule *r, uint64_t from_ms,
    uint64_t *open_ms, uint64_t *until_ms, int *moved)
{
	uint64_t at = from_ms, next, close, until = UINT64_MAX;
	int round, again;
	size_t i;

	*moved = 0;
	/* Move to the next opening of each window in turn until none
	 * moves: then all are open at once. */
	for (round = 0; round < HOURS_ROUNDS; round++) {
		again = 0;
		for (i = 0; i < r->n; i++) {
			if (rq_hours_next(&r->e[i].h, r->e[i].zone, at,
			    &next) == -1)
				return -1;
			if (next != at) {
				at = next;
				*moved |= r->e[i].kind;
				again = 1;
			}
		}
		if (!again)
			break;
	}
	if (round == HOURS_ROUNDS)
		return -1;
	for (i = 0; i < r->n; i++) {
		if (rq_hours_close(&r->e[i].h, r->e[i].zone, at, &close) == -1)
			return -1;
		if (close < until)
			until = close;
	}
	*open_ms = at;
	*until_ms = until;
	return 0;
}

void
rq_hours_reasons(int moved, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s",
	    moved & RQ_HOURS_CALLING ? "calling_hours" : "",
	    moved == (RQ_HOURS_CALLING | RQ_HOURS_BUSINESS) ? "," : "",
	    moved & RQ_HOURS_BUSINESS ? "business_hours" : "");
}
