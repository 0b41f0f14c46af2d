/* E.164 country table (lengths, time zones, premium and high-fraud ranges)
 * and calling-hours arithmetic in a callee's local time (see e164.h and
 * docs/policy.md for what the table covers). */
#include <ctype.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "e164.h"

struct cc_entry {
	const char	*cc;
	const char	*country;
	int		 min, max;	/* national significant number length */
	const char	*tz;
	int		 high_fraud;	/* the whole code is high-fraud */
};

/* Countries in the table with several time zones (mainland and the
 * main inhabited areas; small outlying islands left out): a number whose
 * own zone is not known gets hours open in all of them. */
struct cc_zones {
	const char	*cc;
	const char	*zones;
};

static const struct cc_zones multi_zones[] = {
	{ "1", "America/St_Johns America/Halifax America/New_York "
	  "America/Chicago America/Denver America/Phoenix "
	  "America/Los_Angeles America/Anchorage Pacific/Honolulu" },
	{ "7", "Europe/Kaliningrad Europe/Moscow Europe/Samara "
	  "Asia/Yekaterinburg Asia/Omsk Asia/Novosibirsk Asia/Irkutsk "
	  "Asia/Yakutsk Asia/Vladivostok Asia/Magadan Asia/Kamchatka" },
	{ "52", "America/Cancun America/Mexico_City America/Chihuahua "
	  "America/Hermosillo America/Tijuana" },
	{ "55", "America/Noronha America/Sao_Paulo America/Manaus "
	  "America/Rio_Branco" },
	{ "61", "Australia/Sydney Australia/Brisbane Australia/Adelaide "
	  "Australia/Darwin Australia/Perth" },
	{ "62", "Asia/Jakarta Asia/Makassar Asia/Jayapura" },
};

/* Sorted by nothing in particular: lookups try 3, 2, then 1 digit codes. */
static const struct cc_entry cc_table[] = {
	{ "1", "NANP", 10, 10, "America/New_York", 0 },
	{ "7", "RU", 10, 10, "Europe/Moscow", 0 },
	{ "20", "EG", 8, 10, "Africa/Cairo", 0 },
	{ "27", "ZA", 9, 9, "Africa/Johannesburg", 0 },
	{ "30", "GR", 10, 10, "Europe/Athens", 0 },
	{ "31", "NL", 9, 9, "Europe/Amsterdam", 0 },
	{ "32", "BE", 8, 9, "Europe/Brussels", 0 },
	{ "33", "FR", 9, 9, "Europe/Paris", 0 },
	{ "34", "ES", 9, 9, "Europe/Madrid", 0 },
	{ "36", "HU", 8, 9, "Europe/Budapest", 0 },
	{ "39", "IT", 6, 11, "Europe/Rome", 0 },
	{ "40", "RO", 9, 9, "Europe/Bucharest", 0 },
	{ "41", "CH", 9, 9, "Europe/Zurich", 0 },
	{ "43", "AT", 4, 13, "Europe/Vienna", 0 },
	{ "44", "GB", 9, 10, "Europe/London", 0 },
	{ "45", "DK", 8, 8, "Europe/Copenhagen", 0 },
	{ "46", "SE", 7, 13, "Europe/Stockholm", 0 },
	{ "47", "NO", 8, 8, "Europe/Oslo", 0 },
	{ "48", "PL", 9, 9, "Europe/Warsaw", 0 },
	{ "49", "DE", 6, 13, "Europe/Berlin", 0 },
	{ "51", "PE", 8, 9, "America/Lima", 0 },
	{ "52", "MX", 10, 10, "America/Mexico_City", 0 },
	{ "54", "AR", 10, 11, "America/Argentina/Buenos_Aires", 0 },
	{ "55", "BR", 10, 11, "America/Sao_Paulo", 0 },
	{ "56", "CL", 9, 9, "America/Santiago", 0 },
	{ "57", "CO", 10, 10, "America/Bogota", 0 },
	{ "60", "MY", 8, 10, "Asia/Kuala_Lumpur", 0 },
	{ "61", "AU", 9, 9, "Australia/Sydney", 0 },
	{ "62", "ID", 8, 12, "Asia/Jakarta", 0 },
	{ "63", "PH", 8, 10, "Asia/Manila", 0 },
	{ "64", "NZ", 8, 10, "Pacific/Auckland", 0 },
	{ "65", "SG", 8, 8, "Asia/Singapore", 0 },
	{ "66", "TH", 8, 9, "Asia/Bangkok", 0 },
	{ "81", "JP", 9, 10, "Asia/Tokyo", 0 },
	{ "82", "KR", 8, 10, "Asia/Seoul", 0 },
	{ "84", "VN", 9, 10, "Asia/Ho_Chi_Minh", 0 },
	{ "86", "CN", 10, 11, "Asia/Shanghai", 0 },
	{ "90", "TR", 10, 10, "Europe/Istanbul", 0 },
	{ "91", "IN", 10, 10, "Asia/Kolkata", 0 },
	{ "92", "PK", 9, 10, "Asia/Karachi", 0 },
	{ "212", "MA", 9, 9, "Africa/Casablanca", 0 },
	{ "234", "NG", 8, 10, "Africa/Lagos", 0 },
	{ "254", "KE", 9, 9, "Africa/Nairobi", 0 },
	{ "350", "GI", 8, 8, "Europe/Gibraltar", 0 },
	{ "351", "PT", 9, 9, "Europe/Lisbon", 0 },
	{ "352", "LU", 4, 11, "Europe/Luxembourg", 0 },
	{ "353", "IE", 7, 9, "Europe/Dublin", 0 },
	{ "354", "IS", 7, 7, "Atlantic/Reykjavik", 0 },
	{ "355", "AL", 8, 9, "Europe/Tirane", 0 },
	{ "356", "MT", 8, 8, "Europe/Malta", 0 },
	{ "357", "CY", 8, 8, "Asia/Nicosia", 0 },
	{ "358", "FI", 5, 12, "Europe/Helsinki", 0 },
	{ "359", "BG", 8, 9, "Europe/Sofia", 0 },
	{ "370", "LT", 8, 8, "Europe/Vilnius", 0 },
	{ "371", "LV", 8, 8, "Europe/Riga", 0 },
	{ "372", "EE", 7, 8, "Europe/Tallinn", 0 },
	{ "373", "MD", 8, 8, "Europe/Chisinau", 0 },
	{ "374", "AM", 8, 8, "Asia/Yerevan", 0 },
	{ "375", "BY", 9, 9, "Europe/Minsk", 0 },
	{ "376", "AD", 6, 9, "Europe/Andorra", 0 },
	{ "377", "MC", 8, 9, "Europe/Monaco", 0 },
	{ "378", "SM", 6, 10, "Europe/San_Marino", 0 },
	{ "380", "UA", 9, 9, "Europe/Kyiv", 0 },
	{ "381", "RS", 8, 9, "Europe/Belgrade", 0 },
	{ "382", "ME", 8, 9, "Europe/Podgorica", 0 },
	{ "383", "XK", 8, 9, "Europe/Belgrade", 0 },
	{ "385", "HR", 8, 9, "Europe/Zagreb", 0 },
	{ "386", "SI", 8, 8, "Europe/Ljubljana", 0 },
	{ "387", "BA", 8, 9, "Europe/Sarajevo", 0 },
	{ "389", "MK", 8, 8, "Europe/Skopje", 0 },
	{ "420", "CZ", 9, 9, "Europe/Prague", 0 },
	{ "421", "SK", 9, 9, "Europe/Bratislava", 0 },
	{ "852", "HK", 8, 8, "Asia/Hong_Kong", 0 },
	{ "886", "TW", 8, 9, "Asia/Taipei", 0 },
	{ "966", "SA", 9, 9, "Asia/Riyadh", 0 },
	{ "971", "AE", 8, 9, "Asia/Dubai", 0 },
	{ "972", "IL", 8, 9, "Asia/Jerusalem", 0 },
	/* Satellite and international networks: classic targets of
	 * international revenue share fraud. */
	{ "870", "Inmarsat", 9, 9, "UTC", 1 },
	{ "881", "GMSS", 8, 9, "UTC", 1 },
	{ "882", "International Networks", 7, 12, "UTC", 1 },
	{ "883", "International Networks", 8, 12, "UTC", 1 },
	{ "979", "International Premium Rate", 9, 9, "UTC", 1 },
};

/* Premium-rate ranges and high-fraud NANP areas (Caribbean "one ring"
 * scams), as E.164 digit prefixes. */
static const char *const premium_prefixes[] = {
	"1900", "1976",
	"1268", "1284", "1473", "1649", "1664", "1767", "1809", "1829",
	"1849", "1876",
	"449", "4487", "4470",			/* GB 09x, 087x, 070 */
	"3389",					/* FR 089x */
	"49900", "49137",			/* DE */
	"39899", "39892",			/* IT */
	"34803", "34806", "34807", "34905",	/* ES */
	"31900", "31906", "31909",		/* NL */
	"3290",					/* BE */
	"43900", "43930", "43939",		/* AT */
	"41900", "41901", "41906",		/* CH */
	"46900", "46939", "46944",		/* SE */
	"4870",					/* PL */
	"35315",				/* IE 15xx */
	"61190",				/* AU */
};

/* NANP area codes and their zones.  US Eastern codes are listed too: a
 * code in no list is "somewhere in NANP" (time_zone America/New_York,
 * hours checked in every NANP zone).  A code whose area crosses a zone
 * line has them all in zones (its main one first), its hours checked in
 * each; the Pacific islands' codes are listed because they lie outside
 * the mainland's spread, where "somewhere in NANP" would ring them at
 * night. */
struct area_tz {
	const char	*areas;		/* space-separated 3-digit codes */
	const char	*tz;
	const char	*zones;		/* NULL: tz alone */
};

static const struct area_tz nanp_zones[] = {
	{ "201 202 203 212 215 216 239 248 267 301 302 305 313 321 347 "
	  "352 404 407 410 412 434 443 470 484 513 516 518 540 551 561 571 "
	  "585 586 603 609 610 614 617 631 646 678 703 704 716 718 727 732 "
	  "734 754 757 770 772 774 781 786 804 813 814 845 856 857 862 904 "
	  "908 910 914 917 919 929 937 941 954 973 978 980",
	  "America/New_York", NULL },
	{ "205 210 214 217 224 251 254 262 281 309 312 314 316 318 319 "
	  "320 331 337 346 361 402 405 409 414 417 430 432 469 479 501 504 "
	  "507 512 515 563 573 601 608 612 615 618 630 636 641 651 662 682 "
	  "708 713 715 731 737 763 773 779 815 816 817 830 832 847 872 901 "
	  "903 913 918 920 936 940 952 956 972 979",
	  "America/Chicago", NULL },
	{ "303 307 385 406 435 505 575 719 720 801 970",
	  "America/Denver", NULL },
	{ "480 520 602 623", "America/Phoenix", NULL },
	{ "206 209 213 253 310 323 341 360 408 415 424 425 442 503 509 "
	  "510 530 559 562 619 626 628 650 657 661 669 702 707 714 725 "
	  "747 760 805 818 831 858 909 916 925 949 951 971",
	  "America/Los_Angeles", NULL },
	{ "907", "America/Anchorage", NULL },
	{ "808", "Pacific/Honolulu", NULL },
	{ "289 343 416 437 438 450 514 613 647 905", "America/Toronto", NULL },
	{ "604", "America/Vancouver", NULL },
	{ "403 587 780 825", "America/Edmonton", NULL },
	{ "204 431", "America/Winnipeg", NULL },
	{ "306 639", "America/Regina", NULL },
	{ "782 902", "America/Halifax", NULL },
	{ "809 829 849", "America/Santo_Domingo", NULL },
	{ "876", "America/Jamaica", NULL },
	{ "670 671", "Pacific/Guam", NULL },
	{ "684", "Pacific/Pago_Pago", NULL },
	/* north Idaho on Pacific time; Malheur County (OR) on Mountain;
	 * the Navajo Nation keeps summer time; BC's East Kootenay on
	 * Mountain time, its Peace River on MST (250 and its province-wide
	 * overlays); West Wendover (NV) on Mountain; Labrador on Atlantic;
	 * the Magdalen Islands and the Lower North Shore (QC) on Atlantic */
	{ "208", "America/Boise", "America/Boise America/Los_Angeles" },
	{ "541", "America/Los_Angeles",
	  "America/Los_Angeles America/Boise" },
	{ "928", "America/Phoenix", "America/Phoenix America/Denver" },
	{ "236 250 778", "America/Vancouver",
	  "America/Vancouver America/Edmonton America/Dawson_Creek" },
	{ "775", "America/Los_Angeles",
	  "America/Los_Angeles America/Denver" },
	{ "709", "America/St_Johns", "America/St_Johns America/Goose_Bay" },
	{ "418", "America/Toronto",
	  "America/Toronto America/Halifax America/Blanc-Sablon" },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* The tables indexed by number, built once: the parser runs on every
 * request, and scanning them cost more than the rest of its work. */
static const struct cc_entry	*cc_by_code[3][1000];	/* [digits - 1][code] */
static const struct area_tz	*nanp_by_area[1000];
static pthread_once_t		 index_once = PTHREAD_ONCE_INIT;

static int
code_of(const char *digits, size_t len)
{
	int v = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		if (digits[i] < '0' || digits[i] > '9')
			return -1;
		v = v * 10 + (digits[i] - '0');
	}
	return v;
}

static void
index_build(void)
{
	const char *p;
	size_t i, len;
	int code;

	/* The first entry of a code wins, as the scans did. */
	for (i = 0; i < NELEM(cc_table); i++) {
		len = strlen(cc_table[i].cc);
		if (len >= 1 && len <= 3 &&
		    (code = code_of(cc_table[i].cc, len)) >= 0 &&
		    cc_by_code[len - 1][code] == NULL)
			cc_by_code[len - 1][code] = &cc_table[i];
	}
	for (i = 0; i < NELEM(nanp_zones); i++)
		for (p = nanp_zones[i].areas; *p; p += p[3] ? 4 : 3)
			if ((code = code_of(p, 3)) >= 0 &&
			    nanp_by_area[code] == NULL)
				nanp_by_area[code] = &nanp_zones[i];
}

/* The longest country code digits starts with. */
static const struct cc_entry *
cc_find(const char *digits)
{
	size_t len;
	int code;

	pthread_once(&index_once, index_build);
	for (len = 3; len >= 1; len--)
		if (strnlen(digits, len) == len &&
		    (code = code_of(digits, len)) >= 0 &&
		    cc_by_code[len - 1][code] != NULL)
			return cc_by_code[len - 1][code];
	return NULL;
}

static const struct area_tz *
nanp_zone(const char *national)
{
	int code;

	pthread_once(&index_once, index_build);
	if (strnlen(national, 3) < 3 || (code = code_of(national, 3)) < 0)
		return NULL;
	return nanp_by_area[code];
}

int
rq_e164_parse(const char *s, struct rq_e164 *out, char *why, size_t whylen)
{
	const struct cc_entry *c;
	const struct area_tz *area;
	char digits[32];
	size_t n = 0, nsn, i;

	memset(out, 0, sizeof(*out));
	if (s[0] == '+')
		s++;
	else if (s[0] == '0' && s[1] == '0')
		s += 2;
	else {
		snprintf(why, whylen, "an E.164 number starts with '+' and "
		    "the country code");
		return -1;
	}
	for (; *s; s++) {
		if (isdigit((unsigned char)*s)) {
			if (n >= 15) {
				snprintf(why, whylen, "more than 15 digits");
				return -1;
			}
			digits[n++] = *s;
		} else if (strchr(" -.()", *s) == NULL || n == 0) {
			snprintf(why, whylen, "only digits may follow '+'");
			return -1;
		}
	}
	digits[n] = '\0';
	if (n < 4 || digits[0] == '0') {
		snprintf(why, whylen, "too short or no country code");
		return -1;
	}
	if ((c = cc_find(digits)) == NULL) {
		snprintf(why, whylen, "country code +%.3s... is not one ringq "
		    "knows", digits);
		return -1;
	}
	nsn = n - strlen(c->cc);
	if ((int)nsn < c->min || (int)nsn > c->max) {
		if (c->min == c->max)
			snprintf(why, whylen, "a number in +%s (%s) has %d "
			    "digits after the country code, not %zu", c->cc,
			    c->country, c->min, nsn);
		else
			snprintf(why, whylen, "a number in +%s (%s) has %d "
			    "to %d digits after the country code, not %zu",
			    c->cc, c->country, c->min, c->max, nsn);
		return -1;
	}
	if (!strcmp(c->cc, "1") && (digits[1] < '2' || digits[1] > '9')) {
		snprintf(why, whylen, "a NANP area code starts with 2 to 9");
		return -1;
	}
	out->e164[0] = '+';
	memcpy(out->e164 + 1, digits, n + 1);
	snprintf(out->cc, sizeof(out->cc), "%s", c->cc);
	out->country = c->country;
	out->time_zone = c->tz;
	for (i = 0; i < NELEM(multi_zones); i++)
		if (!strcmp(c->cc, multi_zones[i].cc))
			out->zones = multi_zones[i].zones;
	if (!strcmp(c->cc, "1") && (area = nanp_zone(digits + 1)) != NULL) {
		out->time_zone = area->tz;
		out->zones = area->zones;
	}
	out->premium = c->high_fraud;
	for (i = 0; i < NELEM(premium_prefixes) && !out->premium; i++)
		if (!strncmp(digits, premium_prefixes[i],
		    strlen(premium_prefixes[i])))
			out->premium = 1;
	return 0;
}

int
rq_e164_prefix_allowed(const char *e164, const char *list)
{
	const char *p = list, *num = e164 + (*e164 == '+');
	char item[16];
	size_t n;
	int any = 0;

	for (;;) {
		/* One item: its digits, skipping '+' and spaces. */
		for (n = 0; *p && *p != ','; p++)
			if (isdigit((unsigned char)*p) && n < sizeof(item) - 1)
				item[n++] = *p;
		item[n] = '\0';
		if (n > 0) {
			any = 1;
			if (!strncmp(num, item, n))
				return 1;
		}
		if (*p == '\0')
			break;
		p++;
	}
	return !any;
}

/* --- hours ---------------------------------------------------------------- */

static const char *const day_names[7] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat"
};

static int
day_parse(const char **sp)
{
	int i;

	for (i = 0; i < 7; i++)
		if (!strncasecmp(*sp, day_names[i], 3)) {
			*sp += 3;
			return i;
		}
	return -1;
}

static int
hhmm_parse(const char **sp, int *min)
{
	const char *s = *sp;
	int h, m;

	if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) ||
	    s[2] != ':' || !isdigit((unsigned char)s[3]) ||
	    !isdigit((unsigned char)s[4]))
		return -1;
	h = (s[0] - '0') * 10 + (s[1] - '0');
	m = (s[3] - '0') * 10 + (s[4] - '0');
	if (m > 59 || h > 24 || (h == 24 && m != 0))
		return -1;
	*min = h * 60 + m;
	*sp = s + 5;
	return 0;
}

int
rq_hours_parse(const char *s, struct rq_hours *h, char *why, size_t whylen)
{
	int a, b, d;

	memset(h, 0, sizeof(*h));
	while (*s == ' ')
		s++;
	if (isalpha((unsigned char)*s)) {
		for (;;) {
			if ((a = day_parse(&s)) == -1)
				goto bad;
			b = a;
			if (*s == '-' && (s++, (b = day_parse(&s))) == -1)
				goto bad;
			for (d = a;; d = (d + 1) % 7) {
				h->days |= 1 << d;
				if (d == b)
					break;
			}
			if (*s != ',')
				break;
			s++;
		}
		if (*s != ' ')
			goto bad;
		while (*s == ' ')
			s++;
	} else
		h->days = 0x7f;
	if (hhmm_parse(&s, &h->start_min) == -1 || *s++ != '-' ||
	    hhmm_parse(&s, &h->end_min) == -1)
		goto bad;
	while (*s == ' ')
		s++;
	if (*s != '\0' || h->start_min == h->end_min || h->start_min == 1440)
		goto bad;
	return 0;
bad:
	snprintf(why, whylen, "hours must look like \"08:00-21:00\" or "
	    "\"Mon-Fri 09:00-17:00\" (end differs from start)");
	return -1;
}

int
rq_tz_valid(const char *zone)
{
	char path[512], magic[4];
	struct stat sb;
	size_t i;
	int fd, ok;

	if (zone[0] == '\0' || zone[0] == '/' || strstr(zone, "..") != NULL ||
	    strlen(zone) > 64)
		return 0;
	for (i = 0; zone[i]; i++)
		if (!isalnum((unsigned char)zone[i]) &&
		    strchr("/_-+", zone[i]) == NULL)
			return 0;
	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", zone);
	/* a zone file, not one of the tables beside them ("leapseconds",
	 * which glibc would read as UTC without a word) */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	ok = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
	    read(fd, magic, sizeof(magic)) == sizeof(magic) &&
	    memcmp(magic, "TZif", sizeof(magic)) == 0;
	close(fd);
	return ok;
}

/*
 * glibc converts between UTC and one zone at a time, the one named by TZ:
 * switch TZ for the conversion and put the old value back.  Not
 * thread-safe; the gateway and the CLI call it from one thread.
 */
struct tz_saved {
	char	*old;
	int	 had;
};

static void
tz_enter(const char *zone, struct tz_saved *sv)
{
	const char *o = getenv("TZ");
	char buf[80];

	sv->had = o != NULL;
	sv->old = o ? strdup(o) : NULL;
	snprintf(buf, sizeof(buf), ":%s", zone);
	setenv("TZ", buf, 1);
	tzset();
}

static void
tz_leave(struct tz_saved *sv)
{
	if (sv->had && sv->old)
		setenv("TZ", sv->old, 1);
	else
		unsetenv("TZ");
	free(sv->old);
	tzset();
}

static int
has_day(const struct rq_hours *h, int wday)
{
	return (h->days >> (((wday % 7) + 7) % 7)) & 1;
}

/* Are the hours open at local time tm? */
static int
open_at(const struct rq_hours *h, const struct tm *tm)
{
	int m = tm->tm_hour * 60 + tm->tm_min;

	if (h->end_min > h->start_min)
		return has_day(h, tm->tm_wday) && m >= h->start_min &&
		    m < h->end_min;
	return (has_day(h, tm->tm_wday) && m >= h->start_min) ||
	    (has_day(h, tm->tm_wday - 1) && m < h->end_min);
}

int
rq_hours_next(const struct rq_hours *h, const char *zone, uint64_t now_ms,
    uint64_t *next_ms)
{
	struct tz_saved sv;
	struct tm tm, c;
	time_t now = (time_t)(now_ms / 1000), t;
	int m, k, rc = -1;

	if (!rq_tz_valid(zone) || h->days == 0)
		return -1;
	tz_enter(zone, &sv);
	if (localtime_r(&now, &tm) == NULL)
		goto out;
	m = tm.tm_hour * 60 + tm.tm_min;
	if (open_at(h, &tm)) {
		*next_ms = now_ms;
		rc = 0;
		goto out;
	}
	for (k = 0; k <= 7; k++) {
		if (!has_day(h, tm.tm_wday + k) || (k == 0 &&
		    m >= h->start_min))
			continue;
		c = tm;
		c.tm_mday += k;
		c.tm_hour = h->start_min / 60;
		c.tm_min = h->start_min % 60;
		c.tm_sec = 0;
		c.tm_isdst = -1;
		if ((t = mktime(&c)) == (time_t)-1)
			goto out;
		*next_ms = (uint64_t)t * 1000;
		if (*next_ms <= now_ms)		/* a DST gap moved it back */
			continue;
		rc = 0;
		goto out;
	}
out:
	tz_leave(&sv);
	return rc;
}

/* The first instant after at when the wall clock of the current TZ reads
 * want (normalised fields), or 0 when it never does: want falls in a DST
 * gap.  mktime reads a time as standard (tm_isdst 0) or summer time (1):
 * the real instant is one of the two, and in a repeated hour both are. */
static time_t
wall_instant(const struct tm *want, time_t at)
{
	struct tm c, got;
	time_t t, best = 0;
	int dst;

	for (dst = 0; dst <= 1; dst++) {
		c = *want;
		c.tm_isdst = dst;
		if ((t = mktime(&c)) == (time_t)-1 || t <= at ||
		    localtime_r(&t, &got) == NULL ||
		    got.tm_year != want->tm_year || got.tm_mon != want->tm_mon ||
		    got.tm_mday != want->tm_mday ||
		    got.tm_hour != want->tm_hour || got.tm_min != want->tm_min)
			continue;
		if (best == 0 || t < best)
			best = t;
	}
	return best;
}

/* The later of want read as standard and as summer time. */
static time_t
wall_later(const struct tm *want)
{
	struct tm c;
	time_t t, later = (time_t)-1;
	int dst;

	for (dst = 0; dst <= 1; dst++) {
		c = *want;
		c.tm_isdst = dst;
		if ((t = mktime(&c)) != (time_t)-1 && t > later)
			later = t;
	}
	return later;
}

/* The first instant in (lo, hi] whose UTC offset differs from lo's: the
 * clock change between them (there is one at most, months apart). */
static time_t
offset_change(time_t lo, time_t hi)
{
	struct tm a, b;
	time_t mid;

	if (localtime_r(&lo, &a) == NULL || localtime_r(&hi, &b) == NULL ||
	    b.tm_gmtoff == a.tm_gmtoff)
		return hi;
	while (hi - lo > 1) {
		mid = lo + (hi - lo) / 2;
		if (localtime_r(&mid, &b) == NULL)
			return hi;
		if (b.tm_gmtoff == a.tm_gmtoff)
			lo = mid;
		else
			hi = mid;
	}
	return hi;
}

int
rq_hours_close(const struct rq_hours *h, const char *zone, uint64_t at_ms,
    uint64_t *close_ms)
{
	struct tz_saved sv;
	struct tm tm, want;
	time_t at = (time_t)(at_ms / 1000), t, past, change;
	int m, rc = -1;

	if (!rq_tz_valid(zone) || h->days == 0)
		return -1;
	tz_enter(zone, &sv);
	if (localtime_r(&at, &tm) == NULL)
		goto out;
	m = tm.tm_hour * 60 + tm.tm_min;
	/* A window that crosses midnight and opened today closes tomorrow;
	 * any other closes today.  An all-day window closes at midnight,
	 * though the next day may be open too: early, never late.  The date
	 * and time are normalised as UTC, which has no clock changes. */
	memset(&want, 0, sizeof(want));
	want.tm_year = tm.tm_year;
	want.tm_mon = tm.tm_mon;
	want.tm_mday = tm.tm_mday +
	    (h->end_min <= h->start_min && m >= h->start_min);
	want.tm_hour = h->end_min / 60;
	want.tm_min = h->end_min % 60;
	if ((t = timegm(&want)) == (time_t)-1 || gmtime_r(&t, &want) == NULL)
		goto out;
	if ((t = wall_instant(&want, at)) == 0) {
		/* The end is skipped by the clocks going forward: the window
		 * closes when they jump past it, between at and the later
		 * reading of the end (the earlier is before the jump). */
		past = wall_later(&want);
		t = past > at ? offset_change(at, past) : at + 60;
	} else if ((change = offset_change(at, t)) < t &&
	    localtime_r(&change, &tm) != NULL && !open_at(h, &tm))
		t = change;	/* turned back to before the start */
	*close_ms = (uint64_t)t * 1000;
	rc = 0;
out:
	tz_leave(&sv);
	return rc;
}
