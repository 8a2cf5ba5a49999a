/* SPDX-License-Identifier: MIT */
/* libFuzzer target: session descriptions from the peer (outside input). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sdp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sdp_desc_t d;
    if (sdp_parse((const char *)data, size, &d) == 0) {
        /* What parsed must be internally consistent. */
        if (strlen(d.ufrag) < 4 || strlen(d.pwd) < 22 || strlen(d.fingerprint) != 95)
            abort();
        sdp_desc_clear(&d);
    }
    return 0;
}
