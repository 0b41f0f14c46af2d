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

/* A socket with the options every ringq socket wants (linger 0). */
void	*rq_bus_socket(void *ctx, int type);

#endif
