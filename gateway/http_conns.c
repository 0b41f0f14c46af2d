/* The HTTP connections that have made a request, by connection and by
 * client address, for [gateway] http_max_clients and
 * http_max_clients_per_ip.  Two open-addressing tables (linear probing,
 * deletion by backward shift), each at most half full: the caps bound the
 * entries.  Addresses are hashed with a random seed, so that a client
 * cannot choose addresses that fall in one chain. */
#include <sys/random.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway.h"

struct conn_slot {
	const void	*evcon;		/* NULL: free */
	char		 addr[GW_ADDR_LEN];
};

struct addr_slot {
	char		 addr[GW_ADDR_LEN];	/* "": free */
	int		 n;
};

struct gw_http_conns {
	struct conn_slot	*conns;
	struct addr_slot	*addrs;
	size_t			 mask;		/* slots - 1, both tables */
	uint64_t		 seed;		/* of hash_str */
	int			 n;		/* connections counted */
	int			 max_all;
	int			 max_per_addr;
};

static size_t
hash_ptr(const void *p)
{
	uint64_t x = (uint64_t)(uintptr_t)p;

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return (size_t)x;
}

/* FNV-1a from a secret start, then mixed (a seed alone would leave
 * FNV's collisions where they are: they do not depend on the start). */
static size_t
hash_str(uint64_t seed, const char *s)
{
	uint64_t h = seed ^ 14695981039346656037ULL;

	for (; *s != '\0'; s++) {
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
		h ^= h >> 29;
	}
	h ^= seed;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return (size_t)h;
}

struct gw_http_conns *
gw_http_conns_new(int max_all, int max_per_addr)
{
	struct gw_http_conns *c;
	size_t slots = 16;

	while (slots < 2 * (size_t)max_all)
		slots *= 2;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->conns = calloc(slots, sizeof(*c->conns));
	c->addrs = calloc(slots, sizeof(*c->addrs));
	if (c->conns == NULL || c->addrs == NULL) {
		gw_http_conns_free(c);
		return NULL;
	}
	if (getrandom(&c->seed, sizeof(c->seed), GRND_NONBLOCK) !=
	    sizeof(c->seed))
		c->seed = (uint64_t)(uintptr_t)c ^ (uint64_t)time(NULL);
	c->mask = slots - 1;
	c->max_all = max_all;
	c->max_per_addr = max_per_addr;
	return c;
}

void
gw_http_conns_free(struct gw_http_conns *c)
{
	if (c == NULL)
		return;
	free(c->conns);
	free(c->addrs);
	free(c);
}

static struct conn_slot *
conn_find(struct gw_http_conns *c, const void *evcon)
{
	size_t i;

	for (i = hash_ptr(evcon) & c->mask; c->conns[i].evcon != NULL;
	    i = (i + 1) & c->mask)
		if (c->conns[i].evcon == evcon)
			return &c->conns[i];
	return NULL;
}

/* The slot of addr, or the free one where it would go. */
static struct addr_slot *
addr_slot(struct gw_http_conns *c, const char *addr)
{
	size_t i;

	for (i = hash_str(c->seed, addr) & c->mask; c->addrs[i].addr[0] != '\0';
	    i = (i + 1) & c->mask)
		if (!strcmp(c->addrs[i].addr, addr))
			break;
	return &c->addrs[i];
}

int
gw_http_conns_admit(struct gw_http_conns *c, const void *evcon,
    const char *addr, int *newconn)
{
	struct addr_slot *a;
	size_t i;

	*newconn = 0;
	if (conn_find(c, evcon) != NULL)
		return 0;
	if (c->n >= c->max_all)
		return -1;
	if (addr == NULL || *addr == '\0' || strlen(addr) >= GW_ADDR_LEN)
		addr = "?";
	a = addr_slot(c, addr);
	if (a->addr[0] != '\0' && a->n >= c->max_per_addr)
		return -2;
	if (a->addr[0] == '\0') {
		snprintf(a->addr, sizeof(a->addr), "%s", addr);
		a->n = 0;
	}
	a->n++;
	for (i = hash_ptr(evcon) & c->mask; c->conns[i].evcon != NULL;
	    i = (i + 1) & c->mask)
		;
	c->conns[i].evcon = evcon;
	snprintf(c->conns[i].addr, sizeof(c->conns[i].addr), "%s", addr);
	c->n++;
	*newconn = 1;
	return 0;
}

/* Backward-shift deletion (Knuth's algorithm R): the entries after the
 * freed slot i move up when their home slot allows, so that no probe
 * sequence is cut.  An entry at j with home k stays when k lies
 * cyclically in (i, j]. */
static int
stays(size_t i, size_t j, size_t k)
{
	return i <= j ? i < k && k <= j : i < k || k <= j;
}

static void
conn_delete(struct gw_http_conns *c, size_t i)
{
	size_t j = i;

	for (;;) {
		c->conns[i].evcon = NULL;
		do {
			j = (j + 1) & c->mask;
			if (c->conns[j].evcon == NULL)
				return;
		} while (stays(i, j, hash_ptr(c->conns[j].evcon) & c->mask));
		c->conns[i] = c->conns[j];
		i = j;
	}
}

static void
addr_delete(struct gw_http_conns *c, size_t i)
{
	size_t j = i;

	for (;;) {
		c->addrs[i].addr[0] = '\0';
		do {
			j = (j + 1) & c->mask;
			if (c->addrs[j].addr[0] == '\0')
				return;
		} while (stays(i, j,
		    hash_str(c->seed, c->addrs[j].addr) & c->mask));
		c->addrs[i] = c->addrs[j];
		i = j;
	}
}

void
gw_http_conns_forget(struct gw_http_conns *c, const void *evcon)
{
	struct conn_slot *s;
	struct addr_slot *a;

	if ((s = conn_find(c, evcon)) == NULL)
		return;
	a = addr_slot(c, s->addr);
	if (a->addr[0] != '\0' && --a->n <= 0)
		addr_delete(c, (size_t)(a - c->addrs));
	c->n--;
	conn_delete(c, (size_t)(s - c->conns));
}

int
gw_http_conns_count(const struct gw_http_conns *c)
{
	return c->n;
}

/* The address a connection counts under for http_max_clients_per_ip: an
 * IPv6 client as its /64 (one host or site usually holds a whole /64, and
 * could otherwise take a cap per address). */
const char *
gw_http_conns_key(const char *addr, char *key, size_t keylen)
{
	struct in6_addr a6;
	char text[INET6_ADDRSTRLEN];

	if (addr == NULL || strchr(addr, ':') == NULL ||
	    inet_pton(AF_INET6, addr, &a6) != 1)
		return addr;
	if (IN6_IS_ADDR_V4MAPPED(&a6))
		return addr;
	memset(a6.s6_addr + 8, 0, 8);
	if (inet_ntop(AF_INET6, &a6, text, sizeof(text)) == NULL)
		return addr;
	snprintf(key, keylen, "%s/64", text);
	return key;
}
