/* libFuzzer target: the inter-daemon message decoder must reject any byte
 * string cleanly, and re-encode whatever it accepts to an equal message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rq_msg m, again;
	char err[160], *buf;
	size_t len;

	if (rq_msg_unpack(data, size, &m, err, sizeof(err)) == -1)
		return 0;
	if (rq_msg_pack(&m, &buf, &len) == -1)
		abort();	/* accepted means it has its required fields */
	if (rq_msg_unpack(buf, len, &again, err, sizeof(err)) == -1 ||
	    again.type != m.type || again.present != m.present ||
	    (m.call_id && strcmp(m.call_id, again.call_id)) ||
	    again.attempt != m.attempt)
		abort();
	free(buf);
	rq_msg_clear(&again);
	rq_msg_clear(&m);
	return 0;
}
