/* A call's hours: every window that must be open when it is dialled (the
 * tenant's calling hours in each of the callee's zones, the business's
 * hours), planned by the gateway when it accepts the call and again by the
 * scheduler when a window closed while the call waited (docs/policy.md).
 * The job keeps them as text, so that a call keeps the hours it was
 * accepted under: entries joined by ';', each "KIND=HOURS ZONE", KIND 'c'
 * (calling hours) or 'b' (business hours), HOURS as rq_hours_parse reads
 * them, ZONE an IANA zone:
 *   c=Mon-Sat 08:00-20:00 America/New_York;b=Mon-Fri 09:00-17:00 Europe/Paris
 */
#ifndef RQ_HOURS_H
#define RQ_HOURS_H

#include <stddef.h>
#include <stdint.h>

#include "e164.h"

#define RQ_HOURS_ENTRIES	24	/* a country's zones, and a business */
#define RQ_HOURS_TEXT_MAX	4096	/* the text, with its NUL */
#define RQ_HOURS_ZONE_MAX	65

#define RQ_HOURS_CALLING	1	/* kind bits, for the plan's "moved" */
#define RQ_HOURS_BUSINESS	2

struct rq_hours_entry {
	int		kind;		/* RQ_HOURS_CALLING or _BUSINESS */
	struct rq_hours	h;
	char		hours[64];	/* as given, for the text */
	char		zone[RQ_HOURS_ZONE_MAX];
};

struct rq_hours_rule {
	size_t			n;
	struct rq_hours_entry	e[RQ_HOURS_ENTRIES];
};

/* Adds a window.  Returns 0, or -1 with why set (bad hours, unknown zone,
 * full). */
int	rq_hours_rule_add(struct rq_hours_rule *r, int kind,
	    const char *hours, const char *zone, char *why, size_t whylen);
/* The rule as text; -1 when it does not fit in len. */
int	rq_hours_rule_format(const struct rq_hours_rule *r, char *buf,
	    size_t len);
/* Reads the text (a job's hours field).  Returns 0, or -1 with why. */
int	rq_hours_rule_parse(const char *text, struct rq_hours_rule *r,
	    char *why, size_t whylen);
/*
 * The first time at or after from_ms when every window is open: *open_ms,
 * with *until_ms when the first of them closes again (or a little before,
 * never after), and *moved the kinds that deferred it (0: open at
 * from_ms).  Returns 0, or -1 when the windows never meet (or a zone is
 * unknown).  A rule without entries is always open: until UINT64_MAX.
 */
int	rq_hours_rule_plan(const struct rq_hours_rule *r, uint64_t from_ms,
	    uint64_t *open_ms, uint64_t *until_ms, int *moved);
/* The policy reasons of a plan's moved kinds: "calling_hours",
 * "business_hours", both joined by ',', or "". */
void	rq_hours_reasons(int moved, char *buf, size_t len);

#endif
