/* SPDX-License-Identifier: MIT */
/* fuzz_espdesc - espmsg_desc_parse on arbitrary payloads from the example's signalling
 * topic (anyone on the broker can publish there). What parses must be usable: both
 * credentials, at most ESPMSG_MAX_CANDS candidate lines with their "a=", and a
 * description built from it must parse back to the same. */
#include <stdlib.h>
#include <string.h>

#include "espmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    espmsg_desc_t d;
    if (espmsg_desc_parse(data, size, &d, NULL) != 0)
        return 0;
    if (!d.ufrag[0] || !d.pwd[0] || d.n_cands > ESPMSG_MAX_CANDS)
        abort();
    for (size_t i = 0; i < d.n_cands; i++)
        if (strncmp(d.cands[i], "a=candidate:", 12) != 0 || strlen(d.cands[i]) > ESPMSG_CAND_MAX ||
            strpbrk(d.cands[i], "\r\n"))
            abort();
    size_t used;
    char *s = espmsg_desc_build(d.ufrag, d.pwd, (const char *const *)d.cands, d.n_cands, &used);
    if (s) {
        espmsg_desc_t e;
        if (espmsg_desc_parse((const uint8_t *)s, strlen(s), &e, NULL) != 0 ||
            strcmp(e.ufrag, d.ufrag) || strcmp(e.pwd, d.pwd) || e.n_cands != used)
            abort();
        for (size_t i = 0; i < used; i++)
            if (strcmp(e.cands[i], d.cands[i]))
                abort();
        espmsg_desc_clear(&e);
        free(s);
    }
    espmsg_desc_clear(&d);
    return 0;
}
