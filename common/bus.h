/* ZeroMQ glue: one rq_msg per ZeroMQ message, behind an identity frame on
 * ROUTER sockets.  All calls are non-blocking. */
#ifndef RQ_BUS_H
#define RQ_BUS_H

#include <stddef.h>

#include "msg.h"

#define RQ_BUS_ID_MAX	256

/* Sends m on sock; identity (idlen bytes) addresses a peer of a ROUTER
 * socket and is NULL on DEALER sockets.  Returns 0 or -1 (logged). */
int	rq_bus_send(void *sock, const void *identity, size_t idlen,
	    const struct rq_msg *m);

/* Receives one message.  Returns 1 with m filled (m owns its strings:
 * rq_msg_clear), 0 when nothing is waiting, -1 when a malformed message
 * was read, logged and dropped (call again).  When identity is not NULL the
 * socket is a ROUTER and the peer's identity is stored there. */
int	rq_bus_recv(void *sock, void *identity, size_t *idlen,
	    struct rq_msg *m);

/* Readiness of an edge-triggered ZMQ_FD: nonzero when a message waits. */
int	rq_bus_readable(void *sock);
int	rq_bus_fd(void *sock);

/* A socket with the options every ringq socket wants (linger 0), and
 * CURVE when rq_bus_secure() set it up for ctx. */
void	*rq_bus_socket(void *ctx, int type);

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
