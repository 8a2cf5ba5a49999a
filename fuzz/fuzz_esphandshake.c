/* SPDX-License-Identifier: MIT */
/* fuzz_esphandshake - espmsg_handshake_parse on arbitrary payloads from the example's
 * signalling topic: exactly '0', '1' or '2' is a step, nothing else. */
#include <stdlib.h>

#include "espmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    espmsg_step_t s;
    int rc = espmsg_handshake_parse(data, size, &s);
    bool step = size == 1 && data[0] >= '0' && data[0] <= '2';
    if ((rc == 0) != step || (rc == 0 && (unsigned)s != (unsigned)(data[0] - '0')))
        abort();
    return 0;
}
