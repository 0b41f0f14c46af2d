/* SDP for our one audio stream: the offer we send in the INVITE and the
 * parts of the answer we use (address, port, codec); for an incoming call,
 * the parts of its offer we use and our answer to it.  Pure functions. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "telserver.h"

int
tel_sdp_offer(char *buf, size_t len, const char *ip, int port,
    uint64_t session_id)
{
	int n;

	n = snprintf(buf, len,
	    "v=0\r\n"
	    "o=ringq %llu %llu IN IP4 %s\r\n"
	    "s=ringq\r\n"
	    "c=IN IP4 %s\r\n"
	    "t=0 0\r\n"
	    "m=audio %d RTP/AVP %d %d %d\r\n"
	    "a=rtpmap:%d PCMU/8000\r\n"
	    "a=rtpmap:%d PCMA/8000\r\n"
	    "a=rtpmap:%d telephone-event/8000\r\n"
	    "a=fmtp:%d 0-16\r\n"
	    "a=ptime:20\r\n"
	    "a=sendrecv\r\n",
	    (unsigned long long)session_id, (unsigned long long)session_id,
	    ip, ip, port, TEL_PT_PCMU, TEL_PT_PCMA, TEL_PT_DTMF,
	    TEL_PT_PCMU, TEL_PT_PCMA, TEL_PT_DTMF, TEL_PT_DTMF);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Copies the line at *p (up to CR/LF) into line and advances *p. */
static int
next_line(const char **p, const char *end, char *line, size_t linelen)
{
	const char *s = *p, *e;
	size_t n;

	if (s >= end)
		return 0;
	for (e = s; e < end && *e != '\r' && *e != '\n'; e++)
		;
	n = (size_t)(e - s);
	if (n >= linelen)
		n = linelen - 1;
	memcpy(line, s, n);
	line[n] = '\0';
	while (e < end && (*e == '\r' || *e == '\n'))
		e++;
	*p = e;
	return 1;
}

static int
parse_conn(const char *v, char *addr, size_t addrlen)
{
	char a[64];

	/* c=IN IP4 <addr>[/ttl] */
	if (sscanf(v, "IN IP4 %63[0-9.]", a) != 1)
		return -1;
	snprintf(addr, addrlen, "%s", a);
	return 0;
}

/* Whether addr is an IPv4 unicast literal we can send RTP to.  Loopback
 * and private (RFC 1918) addresses are allowed on purpose: tests and LAN
 * phones use them, and the peer that names them answered our own INVITE. */
static int
media_addr_usable(const char *addr)
{
	struct in_addr in;
	uint32_t a;

	if (inet_pton(AF_INET, addr, &in) != 1)
		return 0;
	a = ntohl(in.s_addr);
	if (a == 0 ||			/* 0.0.0.0: unspecified (old hold) */
	    (a >> 28) == 0xE ||		/* 224.0.0.0/4: multicast */
	    a == 0xFFFFFFFF)		/* limited broadcast */
		return 0;
	return 1;
}

struct rtpmap {
	int	pt;
	char	name[32];
	int	rate;
};

#define MAX_FMTS	32

/* An answer to our offer, or an offer to answer (offer set): the first
 * audio stream's address, port, first codec of ours and telephone-event. */
static int
sdp_parse(const char *sdp, size_t len, int offer, struct tel_sdp_answer *out,
    char *err, size_t errlen)
{
	const char *p = sdp, *end = sdp + len;
	char line[1024], sess_addr[64] = "", media_addr[64] = "";
	struct rtpmap maps[MAX_FMTS];
	int fmts[MAX_FMTS], nfmts = 0, nmaps = 0, in_audio = 0, seen_audio = 0;
	int i, j;
	long port = -1;

	memset(out, 0, sizeof(*out));
	out->pt = -1;
	out->dtmf_pt = -1;
	while (next_line(&p, end, line, sizeof(line))) {
		if (strlen(line) < 2 || line[1] != '=')
			continue;
		if (line[0] == 'm') {
			char *s, *e;

			/* Only the first audio stream counts. */
			in_audio = 0;
			if (seen_audio || strncmp(line + 2, "audio ", 6) != 0)
				continue;
			in_audio = seen_audio = 1;
			errno = 0;
			port = strtol(line + 8, &e, 10);
			if (e == line + 8 || errno != 0 || port < 0 ||
			    port > 65535 || (*e != ' ' && *e != '/')) {
				snprintf(err, errlen, "bad audio port");
				return -1;
			}
			/* skip "/count" and the protocol */
			while (*e && *e != ' ')
				e++;
			while (*e == ' ')
				e++;
			if (strncasecmp(e, "RTP/AVP", 7) != 0) {
				snprintf(err, errlen, "audio is not RTP/AVP");
				return -1;
			}
			s = e + 7;
			while (*s && nfmts < MAX_FMTS) {
				long v = strtol(s, &e, 10);

				if (e == s)
					break;
				if (v >= 0 && v <= 127)
					fmts[nfmts++] = (int)v;
				s = e;
			}
		} else if (line[0] == 'c') {
			if (in_audio)
				parse_conn(line + 2, media_addr,
				    sizeof(media_addr));
			else if (!seen_audio)
				parse_conn(line + 2, sess_addr,
				    sizeof(sess_addr));
		} else if (line[0] == 'a' && in_audio) {
			struct rtpmap *rm;

			if (!strcmp(line + 2, "sendonly") ||
			    !strcmp(line + 2, "inactive"))
				out->recvonly = 1;
			if (!strcmp(line + 2, "inactive"))
				out->inactive = 1;
			if (!strcmp(line + 2, "recvonly"))
				out->sendonly = 1;
			if (strncmp(line + 2, "rtpmap:", 7) != 0 ||
			    nmaps == MAX_FMTS)
				continue;
			rm = &maps[nmaps];
			rm->rate = 8000;
			if (sscanf(line + 9, "%d %31[^/]/%d", &rm->pt, rm->name,
			    &rm->rate) >= 2)
				nmaps++;
		}
	}
	if (!seen_audio) {
		snprintf(err, errlen, "no audio stream in the %s",
		    offer ? "offer" : "answer");
		return -1;
	}
	if (port == 0) {
		snprintf(err, errlen, "audio stream refused (port 0)");
		return -1;
	}
	snprintf(out->addr, sizeof(out->addr), "%s",
	    media_addr[0] ? media_addr : sess_addr);
	if (!media_addr_usable(out->addr)) {
		snprintf(err, errlen, "no usable IPv4 media address");
		return -1;
	}
	out->port = (int)port;
	for (i = 0; i < nfmts; i++) {
		const char *name = NULL;
		int rate = 8000;

		for (j = 0; j < nmaps; j++)
			if (maps[j].pt == fmts[i]) {
				name = maps[j].name;
				rate = maps[j].rate;
			}
		/* Static payload types mean what RFC 3551 says unless
		 * mapped otherwise; we offered 0 and 8 only. */
		if (name == NULL && (fmts[i] == TEL_PT_PCMU ||
		    fmts[i] == TEL_PT_PCMA)) {
			if (out->pt == -1)
				out->pt = fmts[i];
			continue;
		}
		if (name == NULL || rate != 8000)
			continue;
		if (out->pt == -1 && fmts[i] == TEL_PT_PCMU &&
		    !strcasecmp(name, "PCMU"))
			out->pt = TEL_PT_PCMU;
		else if (out->pt == -1 && fmts[i] == TEL_PT_PCMA &&
		    !strcasecmp(name, "PCMA"))
			out->pt = TEL_PT_PCMA;
		else if (out->dtmf_pt == -1 &&
		    !strcasecmp(name, "telephone-event"))
			out->dtmf_pt = fmts[i];
	}
	if (out->pt == -1) {
		snprintf(err, errlen, "no codec of ours (PCMU, PCMA) %s",
		    offer ? "offered" : "accepted");
		return -1;
	}
	return 0;
}

int
tel_sdp_parse_answer(const char *sdp, size_t len, struct tel_sdp_answer *out,
    char *err, size_t errlen)
{
	return sdp_parse(sdp, len, 0, out, err, errlen);
}

int
tel_sdp_parse_offer(const char *sdp, size_t len, struct tel_sdp_answer *out,
    char *err, size_t errlen)
{
	return sdp_parse(sdp, len, 1, out, err, errlen);
}

int
tel_sdp_answer(char *buf, size_t len, const char *ip, int port,
    uint64_t session_id, const struct tel_sdp_answer *offer)
{
	const char *dir, *codec;
	char dtmf[128] = "", dtmf_fmt[8] = "";
	int n;

	if (offer->pt != TEL_PT_PCMU && offer->pt != TEL_PT_PCMA)
		return -1;
	codec = offer->pt == TEL_PT_PCMU ? "PCMU" : "PCMA";
	/* RFC 3264 6.1: the direction mirrors the offer's. */
	if (offer->inactive)
		dir = "inactive";
	else if (offer->recvonly)
		dir = "recvonly";
	else if (offer->sendonly)
		dir = "sendonly";
	else
		dir = "sendrecv";
	/* Its payload type for telephone-event, as offered (dynamic). */
	if (offer->dtmf_pt >= 0 && offer->dtmf_pt <= 127) {
		snprintf(dtmf_fmt, sizeof(dtmf_fmt), " %d", offer->dtmf_pt);
		snprintf(dtmf, sizeof(dtmf),
		    "a=rtpmap:%d telephone-event/8000\r\n"
		    "a=fmtp:%d 0-16\r\n", offer->dtmf_pt, offer->dtmf_pt);
	}
	n = snprintf(buf, len,
	    "v=0\r\n"
	    "o=ringq %llu %llu IN IP4 %s\r\n"
	    "s=ringq\r\n"
	    "c=IN IP4 %s\r\n"
	    "t=0 0\r\n"
	    "m=audio %d RTP/AVP %d%s\r\n"
	    "a=rtpmap:%d %s/8000\r\n"
	    "%s"
	    "a=ptime:20\r\n"
	    "a=%s\r\n",
	    (unsigned long long)session_id, (unsigned long long)session_id,
	    ip, ip, port, offer->pt, dtmf_fmt, offer->pt, codec, dtmf, dir);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}
