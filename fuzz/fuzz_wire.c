/* SPDX-License-Identifier: MIT */
/* fuzz_wire.c - libFuzzer target for the frame codec (src/wire.c, src/wire_msg.c).
 *
 * 1. The whole input is one frame: decode it; a decoded MSG, ACK or HELLO must encode
 *    again, decode to the same thing, and its encoding must be stable (canonical).
 * 2. The input is also read as a stream of records (u16 length, frame) whose FRAG frames
 *    feed one reassembler with a small limit, as a channel would; every reassembled frame
 *    is decoded in turn.
 * A decoded BATCH is walked: wire_batch_next must hand out exactly its count of frames,
 * each of which is decoded (and re-encoded) like a frame of its own. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "wire.h"

#define FUZZ_MAX_PAYLOAD 4096
#define FUZZ_MAX_TOTAL 8192

static void check(bool ok)
{
    if (!ok)
        abort();
}

static void check_msg_stable(const bl_msg_t *m)
{
    uint8_t *a, *b;
    size_t alen, blen;
    wire_frame_t f;
    check(wire_encode_msg(m, &a, &alen) == 0);
    check(wire_decode(a, alen, FUZZ_MAX_PAYLOAD, &f) == 0 && f.type == WIRE_MSG);
    const bl_msg_t *d = f.u.msg;
    check(msg_equal(m, d) && strcmp(m->origin, d->origin) == 0 && m->seq == d->seq &&
          m->dup == d->dup);
    check(wire_encode_msg(d, &b, &blen) == 0);
    check(alen == blen && memcmp(a, b, alen) == 0);
    wire_frame_clear(&f);
    free(a);
    free(b);
}

static void check_reencode(const wire_frame_t *f)
{
    uint8_t *a = NULL;
    size_t alen = 0;
    wire_frame_t g;
    switch (f->type) {
    case WIRE_MSG:
        check_msg_stable(f->u.msg);
        return;
    case WIRE_ACK:
        check(wire_encode_ack(f->u.ack.seqs, f->u.ack.n, &a, &alen) == 0);
        break;
    case WIRE_HELLO:
        check(wire_encode_hello(&f->u.hello, &a, &alen) == 0);
        break;
    default:
        return;
    }
    check(wire_decode(a, alen, 0, &g) == 0 && g.type == f->type);
    if (f->type == WIRE_ACK)
        check(g.u.ack.n == f->u.ack.n &&
              (g.u.ack.n == 0 || memcmp(g.u.ack.seqs, f->u.ack.seqs, g.u.ack.n * 8) == 0));
    else
        check(memcmp(&g.u.hello, &f->u.hello, sizeof(g.u.hello)) == 0);
    wire_frame_clear(&g);
    free(a);
}

static void decode_one(const uint8_t *buf, size_t len, wire_reasm_t *r)
{
    wire_frame_t f;
    if (wire_decode(buf, len, FUZZ_MAX_PAYLOAD, &f) != 0) {
        check(f.type == 0);
        return;
    }
    check_reencode(&f);
    if (f.type == WIRE_BATCH) {
        size_t want = f.u.batch.count, got = 0;
        const uint8_t *in;
        size_t il;
        while (wire_batch_next(&f.u.batch, &in, &il) == 1) {
            check(in >= buf && in + il <= buf + len && il >= WIRE_HEADER_LEN);
            check(in[1] == WIRE_MSG || in[1] == WIRE_ACK);
            decode_one(in, il, NULL);
            got++;
        }
        check(got == want && f.u.batch.left == 0);
    }
    if (f.type == WIRE_FRAG && r) {
        uint8_t *whole;
        size_t whole_len;
        int rc = wire_reasm_feed(r, &f.u.frag, &whole, &whole_len);
        check(rc <= 1);
        if (rc == 1) {
            check(whole_len <= FUZZ_MAX_TOTAL && whole_len >= 1);
            decode_one(whole, whole_len, NULL);
            free(whole);
        } else {
            check(whole == NULL);
        }
    }
    wire_frame_clear(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    log_set_level(LOG_LVL_ERROR);
    /* Copy into an exact-size buffer so ASan flags any read past the end. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    if (size)
        memcpy(buf, data, size);
    decode_one(buf, size, NULL);
    free(buf);

    wire_reasm_t r;
    wire_reasm_init(&r, FUZZ_MAX_TOTAL);
    size_t pos = 0;
    while (size - pos >= 2) {
        size_t n = ((size_t)data[pos] << 8) | data[pos + 1];
        pos += 2;
        if (n > size - pos)
            break;
        uint8_t *rec = malloc(n ? n : 1);
        if (!rec)
            break;
        if (n)
            memcpy(rec, data + pos, n);
        decode_one(rec, n, &r);
        free(rec);
        pos += n;
    }
    wire_reasm_clear(&r);
    return 0;
}
