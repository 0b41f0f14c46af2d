/* E.164 numbers and local time: a compact table of country codes (number
 * lengths, a representative time zone, premium-rate and high-fraud
 * prefixes), and the calling-hours arithmetic the policy engine needs. */
#ifndef RQ_E164_H
#define RQ_E164_H

#include <stddef.h>
#include <stdint.h>

/* A parsed number.  Strings point into static tables or into e164. */
struct rq_e164 {
	char		 e164[17];	/* "+" and up to 15 digits */
	char		 cc[4];		/* country calling code, digits */
	const char	*country;	/* ISO 3166 alpha-2 or a region name */
	const char	*time_zone;	/* IANA zone of the callee (best guess) */
	/* Space-separated IANA zones when the number is in a country with
	 * several and its own zone is not known, or in an area code that
	 * crosses a zone line: calling hours must then be open in every
	 * one of them.  NULL when time_zone is precise. */
	const char	*zones;
	int		 premium;	/* premium-rate or high-fraud range */
};

/* Parses "+<digits>" (spaces, '-', '.', '(' and ')' allowed between
 * digits; a leading "00" counts as "+").  Checks the country code is
 * known and the national number's length fits that country.  Returns 0,
 * or -1 with a reason for people in why. */
int	rq_e164_parse(const char *s, struct rq_e164 *out, char *why,
	    size_t whylen);

/* Does the number start with one of the comma-separated prefixes ("+44",
 * "4420", "+1 212")?  An empty list allows everything. */
int	rq_e164_prefix_allowed(const char *e164, const char *list);

/*
 * Hours.  A window is "HH:MM-HH:MM" (end after start, or before it to
 * cross midnight; "00:00-24:00" is all day), optionally preceded by days
 * "Mon-Fri" or "Mon,Wed,Sat" ("Mon-Fri 09:00-17:00").
 */
struct rq_hours {
	int	days;		/* bit 0 = Sunday ... bit 6 = Saturday */
	int	start_min;	/* minutes after local midnight */
	int	end_min;	/* may be <= start_min: crosses midnight */
};

/* Returns 0, or -1 with a reason in why.  An empty string is an error:
 * callers treat "" as "always" before asking. */
int	rq_hours_parse(const char *s, struct rq_hours *h, char *why,
	    size_t whylen);
/* Is zone a time zone this machine knows ("Europe/Berlin", "UTC")? */
int	rq_tz_valid(const char *zone);
/* Returns 0 and sets *next_ms to now_ms when now is inside the hours in
 * zone, or to the start of the next opening; -1 when the zone is unknown
 * or the hours never open. */
int	rq_hours_next(const struct rq_hours *h, const char *zone,
	    uint64_t now_ms, uint64_t *next_ms);
/* For hours open at at_ms in zone: sets *close_ms to when that window
 * closes, or to a time before it (never after).  Returns 0, or -1 when
 * the zone is unknown. */
int	rq_hours_close(const struct rq_hours *h, const char *zone,
	    uint64_t at_ms, uint64_t *close_ms);

#endif
