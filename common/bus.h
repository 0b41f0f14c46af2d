/* ZeroMQ glue: rq_msgs, one per frame, behind an identity frame on ROUTER
 * sockets.  A ZeroMQ message usually carries one; a burst for one peer goes
 * as one message of several frames (rq_bus_send_batch), which ZeroMQ
 * passes between its threads, and the peer's, as one: a wake-up per burst,
 * not per message.  All calls are non-blocking. */
#ifndef RQ_BUS_H
#define RQ_BUS_H

#include <stddef.h>

#include "msg.h"

#define RQ_BUS_ID_MAX	256
/* Most rq_msgs in one ZeroMQ message, sent or taken. */
#define RQ_BUS_BATCH_MAX	64
/* Largest frame a socket takes (ZMQ_MAXMSGSIZE, per frame; a peer that
 * sends more is disconnected): an rq_msg, one frame, holds 14 string
 * fields of RQ_MSG_STR_MAX at most (under 1 MiB), and a hostile frame of
 * tiny elements would cost the unpacker some 24 times its size. */
#define RQ_BUS_FRAME_MAX	(4 * 1024 * 1024)

/* Sends m on sock; identity (idlen bytes) addresses a peer of a ROUTER
 * socket and is NULL on DEALER sockets.  Returns 0 or -1 (logged). */
int	rq_bus_send(void *sock, const void *identity, size_t idlen,
	    const struct rq_msg *m);

/* rq_msgs packed for one peer, to go as one ZeroMQ message. */
struct rq_bus_batch {
	size_t		 n;
	char		*buf[RQ_BUS_BATCH_MAX];
	size_t		 len[RQ_BUS_BATCH_MAX];
};

void	rq_bus_batch_init(struct rq_bus_batch *b);
/* Packs m into b.  Returns 0, or -1 when b is full or m lacks a required
 * field (logged). */
int	rq_bus_batch_add(struct rq_bus_batch *b, const struct rq_msg *m);
/* Sends b's messages as one ZeroMQ message, and empties b.  Returns 0, or
 * -1 (logged) when none of them went: all or none go. */
int	rq_bus_send_batch(void *sock, const void *identity, size_t idlen,
	    struct rq_bus_batch *b);
void	rq_bus_batch_free(struct rq_bus_batch *b);

/* A socket's receiving side: where it is within a message of several
 * frames, and on a ROUTER whose message that is. */
struct rq_bus_in {
	void		*sock;
	int		 router;
	int		 more;		/* a frame of this message is next */
	size_t		 frames;	/* frames of it read so far */
	unsigned char	 id[RQ_BUS_ID_MAX];	/* ROUTER: its sender */
	size_t		 idlen;
};

/* router: sock is a ROUTER (an identity frame begins each message). */
void	rq_bus_in_init(struct rq_bus_in *in, void *sock, int router);
/* Receives one rq_msg.  Returns 1 with m filled (m owns its strings:
 * rq_msg_clear; on a ROUTER, in->id and in->idlen say from whom), 0 when
 * nothing is waiting, -1 when a malformed frame was read, logged and
 * dropped (call again).  in->frames > 1: m came in a batch. */
int	rq_bus_recv(struct rq_bus_in *in, struct rq_msg *m);

/* What an edge-triggered ZMQ_FD's socket is ready for now: ZMQ_POLLIN (a
 * message waits), ZMQ_POLLOUT (room to send); 0 on error. */
int	rq_bus_events(void *sock);
int	rq_bus_fd(void *sock);

/* A socket with the options every ringq socket wants (linger 0), and
 * CURVE when rq_bus_secure() set it up for ctx. */
void	*rq_bus_socket(void *ctx, int type);
/* ZMTP heartbeats on s: a connection whose peer went silent (its state
 * dropped by a firewall or NAT, a partition longer than TCP's
 * retransmissions) is closed after 5 s without an answer to its pings.
 * For the dispatch link, read at once on both sides; not for the events
 * link, which accounting leaves unread while it drains a backlog (unread
 * pings would cut it). */
void	 rq_bus_heartbeats(void *s);

struct rq_config;

/*
 * CURVE between daemons (docs/security.md), from cfg's [bus] keys, for
 * every socket rq_bus_socket() makes in zctx afterwards: a ROUTER becomes
 * a CURVE server when curve_secret_key is set, and a ZAP handler (a thread
 * this call starts) lets through only the public keys in curve_clients and
 * this daemon's own; a DEALER becomes a CURVE client of curve_server_key.
 * Refused handshakes are logged by the server and by the client, at most a
 * line a second.  Nothing is done when no key is set.  Call once per
 * process, before making sockets; the thread ends when zctx is terminated.
 * Returns 0, or -1 with the reason in err (cfg is borrowed for the call).
 */
int	rq_bus_secure(void *zctx, const struct rq_config *cfg, char *err,
	    size_t errlen);

/* A new CURVE keypair in Z85 (40 characters and a NUL each): "ringq-ctl
 * keygen".  Returns 0, or -1 when this libzmq has no CURVE. */
int	rq_bus_keygen(char public_key[41], char secret_key[41]);

#endif
