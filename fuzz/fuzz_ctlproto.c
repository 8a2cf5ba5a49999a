/* SPDX-License-Identifier: MIT */
/* fuzz_ctlproto.c - the control socket's request parser on arbitrary bytes. */
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "ctlproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ctl_req_t req;
    char err[256];
    if (ctlproto_parse(data, size, &req, err, sizeof(err)) == 0) {
        /* What parses is written back the same way. */
        char *line = ctlproto_request(&req);
        if (!line)
            abort();
        size_t n = strlen(line);
        ctl_req_t again;
        if (ctlproto_parse((const uint8_t *)line, n - 1, &again, err, sizeof(err)) != 0 ||
            again.cmd != req.cmd || strcmp(again.peer, req.peer) != 0)
            abort();
        g_free(line);
    } else if (!memchr(err, '\0', sizeof(err)) || !err[0]) {
        abort(); /* every refusal says why */
    }
    return 0;
}
