/* ZeroMQ glue (see bus.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bus.h"
#include "log.h"

void *
rq_bus_socket(void *ctx, int type)
{
	void *s;
	int zero = 0, hwm = 100000;

	if ((s = zmq_socket(ctx, type)) == NULL)
		return NULL;
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	if (type == ZMQ_ROUTER) {
		int one = 1;

		/* An unroutable identity is an error we can see. */
		zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
	}
	return s;
}

int
rq_bus_send(void *sock, const void *identity, size_t idlen,
    const struct rq_msg *m)
{
	char *buf;
	size_t len;

	if (rq_msg_pack(m, &buf, &len) == -1) {
		log_warnx("bus: cannot pack %s: required field missing",
		    rq_msg_type_name(m->type));
		return -1;
	}
	if (identity != NULL &&
	    zmq_send(sock, identity, idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1)
		goto fail;
	if (zmq_send(sock, buf, len, ZMQ_DONTWAIT) == -1)
		goto fail;
	free(buf);
	return 0;
fail:
	/* EAGAIN: the peer's queue is full (it is slow or away).  Callers
	 * that must deliver resend (the event outbox does), so this is not
	 * worth a line per message. */
	if (errno == EAGAIN)
		log_debug("bus: send %s: %s", rq_msg_type_name(m->type),
		    zmq_strerror(errno));
	else
		log_warnx("bus: send %s: %s", rq_msg_type_name(m->type),
		    zmq_strerror(errno));
	free(buf);
	return -1;
}

/* Reads and discards the remaining frames of a message. */
static void
drain_frames(void *sock)
{
	zmq_msg_t part;
	int more;
	size_t ml = sizeof(more);

	for (;;) {
		if (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml) == -1 || !more)
			return;
		zmq_msg_init(&part);
		zmq_msg_recv(&part, sock, ZMQ_DONTWAIT);
		zmq_msg_close(&part);
	}
}

/*
 * A failed receive of a message's first frame means nothing to read now:
 * EAGAIN, or the socket or context is closing (ETERM).  Callers loop until
 * 0, so answering -1 here would spin.
 */
static int
recv_failed(void)
{
	if (errno != EAGAIN && errno != EINTR)
		log_warnx("bus: receive: %s", zmq_strerror(errno));
	return 0;
}

int
rq_bus_recv(void *sock, void *identity, size_t *idlen, struct rq_msg *m)
{
	zmq_msg_t frame;
	char err[160];
	int more, rc;
	size_t ml = sizeof(more);

	if (identity != NULL) {
		zmq_msg_init(&frame);
		if (zmq_msg_recv(&frame, sock, ZMQ_DONTWAIT) == -1) {
			zmq_msg_close(&frame);
			return recv_failed();
		}
		if (zmq_msg_size(&frame) > RQ_BUS_ID_MAX) {
			zmq_msg_close(&frame);
			drain_frames(sock);
			log_warnx("bus: identity frame too long");
			return -1;
		}
		*idlen = zmq_msg_size(&frame);
		memcpy(identity, zmq_msg_data(&frame), *idlen);
		zmq_msg_close(&frame);
		zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml);
		if (!more) {
			log_warnx("bus: message without a body dropped");
			return -1;
		}
	}
	zmq_msg_init(&frame);
	if (zmq_msg_recv(&frame, sock, ZMQ_DONTWAIT) == -1) {
		zmq_msg_close(&frame);
		if (identity == NULL)
			return recv_failed();
		log_warnx("bus: message body lost: %s", zmq_strerror(errno));
		return -1;
	}
	rc = rq_msg_unpack(zmq_msg_data(&frame), zmq_msg_size(&frame), m, err,
	    sizeof(err));
	zmq_msg_close(&frame);
	zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml);
	if (more) {
		drain_frames(sock);
		if (rc == 0)
			rq_msg_clear(m);
		log_warnx("bus: message with extra frames dropped");
		return -1;
	}
	if (rc == -1) {
		log_warnx("bus: malformed message dropped: %s", err);
		return -1;
	}
	return 1;
}

int
rq_bus_readable(void *sock)
{
	int events = 0;
	size_t len = sizeof(events);

	if (zmq_getsockopt(sock, ZMQ_EVENTS, &events, &len) == -1)
		return 0;
	return (events & ZMQ_POLLIN) != 0;
}

int
rq_bus_fd(void *sock)
{
	int fd = -1;
	size_t len = sizeof(fd);

	zmq_getsockopt(sock, ZMQ_FD, &fd, &len);
	return fd;
}
