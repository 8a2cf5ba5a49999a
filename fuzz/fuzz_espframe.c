/* SPDX-License-Identifier: MIT */
/* fuzz_espframe - espframe_parse on arbitrary datagrams from an ESP32 example peer; what
 * parses must encode back to the same bytes (pad bytes aside) and decode as the link's
 * framing does. */
#include <stdlib.h>
#include <string.h>

#include "espframe.h"
#include "framing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    espframe_t e;
    if (espframe_parse(data, size, &e) == 0) {
        if (!e.topic_len || strlen(e.topic) != e.topic_len ||
            e.payload + e.payload_len != data + size)
            abort();
        uint8_t *f;
        size_t n;
        int rc = espframe_encode(e.topic, e.topic_len, e.payload, e.payload_len, &f, &n);
        if (rc == 0) {
            size_t head = 4 + e.topic_len + 1;
            if (n != size || memcmp(f, data, head) != 0 ||
                memcmp(f + n - e.payload_len, e.payload, e.payload_len) != 0)
                abort();
            free(f);
        } else if (rc != BL_ETOOBIG || size <= ESPFRAME_MAX) {
            abort();
        }
    }
    wire_frame_t w;
    if (framing_esp.decode(data, size, 1 << 20, &w) == 0) {
        if (w.type != WIRE_MSG || w.u.msg->qos || w.u.msg->retain)
            abort();
        wire_frame_clear(&w);
    }
    return 0;
}
