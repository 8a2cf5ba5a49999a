/* SPDX-License-Identifier: MIT */
/* fuzz_mqttpkt.c - libFuzzer target for the MQTT 5 packet parser (src/mqttpkt_parse.c), which
 * reads whatever the local and the signalling broker send.
 *
 * The input is a stream of packets, parsed one after the other as the client does,
 * with a small Maximum Packet Size. Every PUBLISH parsed must encode again (it is a
 * valid message by then), parse back to the same message, and encode to the same
 * bytes (canonical). Nothing may crash or leak. */
#include <stdlib.h>
#include <string.h>

#include "mqttpkt.h"

#define FUZZ_MAX_PACKET 65536

static void check(bool ok)
{
    if (!ok)
        abort();
}

static void check_publish_stable(const mqttpkt_t *k)
{
    check(mqttpkt_check_publish(&k->msg) == 0);
    GByteArray *a = g_byte_array_new(), *b = g_byte_array_new();
    check(mqttpkt_publish(a, &k->msg, k->pid, k->msg.dup) == 0);
    mqttpkt_t r;
    size_t used = 0;
    check(mqttpkt_parse(a->data, a->len, 0, &r, &used, NULL) == 0 && used == a->len);
    check(r.type == MQTTPKT_PUBLISH && r.pid == k->pid && msg_equal(&k->msg, &r.msg));
    check(mqttpkt_publish(b, &r.msg, r.pid, r.msg.dup) == 0);
    check(a->len == b->len && memcmp(a->data, b->data, a->len) == 0);
    mqttpkt_clear(&r);
    g_byte_array_free(a, TRUE);
    g_byte_array_free(b, TRUE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        mqttpkt_t k;
        size_t used = 0;
        const char *why = NULL;
        int rc = mqttpkt_parse(data + off, size - off, FUZZ_MAX_PACKET, &k, &used, &why);
        if (rc) {
            check(why != NULL || rc == BL_ENOMEM);
            break;
        }
        if (!used)
            break;
        check(used <= size - off);
        if (k.type == MQTTPKT_PUBLISH)
            check_publish_stable(&k);
        mqttpkt_clear(&k);
        off += used;
    }
    return 0;
}
