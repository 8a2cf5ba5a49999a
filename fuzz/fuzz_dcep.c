/* SPDX-License-Identifier: MIT */
/* fuzz_dcep - dcep_parse on arbitrary SCTP PPID 50 payloads; a parsed OPEN must build
 * back to exactly the same bytes. */
#include <stdlib.h>
#include <string.h>

#include "dcep.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dcep_open_t o;
    int rc = dcep_parse(data, size, &o);
    if (rc == DCEP_MSG_OPEN) {
        uint8_t *buf;
        size_t len;
        if (dcep_build_open(&o, &buf, &len) != 0 || len != size || memcmp(buf, data, len) != 0)
            abort();
        free(buf);
        dcep_open_clear(&o);
    } else if (rc == DCEP_MSG_ACK && (size != 1 || data[0] != DCEP_MSG_ACK)) {
        abort();
    }
    return 0;
}
