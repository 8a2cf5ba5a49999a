/* SPDX-License-Identifier: MIT */
/* wire.c - the frame codec spoken inside the data channel; docs/PROTOCOL.md "Frames"
 * is the specification this file and wire_msg.c (MSG) implement, byte by byte.
 *
 * Decoders read through a cursor that refuses to step past the end of the buffer, so
 * every announced length is checked against the bytes actually present before anything
 * is allocated for it: a hostile u32 length costs nothing. Reasons for refusal are
 * logged at debug level only; the caller logs one warning naming the peer. */
#include "wire_int.h"

/* ---- ACK, HELLO ------------------------------------------------------------------- */

int wire_encode_ack(const uint64_t *seqs, size_t n, uint8_t **out, size_t *out_len)
{
    if (n > UINT16_MAX || (n && !seqs))
        return BL_EINVAL;
    int rc = alloc_out(WIRE_HEADER_LEN + 2 + n * 8, out, out_len);
    if (rc)
        return rc;
    uint8_t *p = put_header(*out, WIRE_ACK, 0);
    p = put_be(p, n, 2);
    for (size_t i = 0; i < n; i++)
        p = put_be(p, seqs[i], 8);
    return 0;
}

/* The start of ACK and BATCH: no flags, a u16 count. */
static int rd_count(rd_t *r, uint8_t flags, uint16_t *n)
{
    return flags ? BL_EINVAL : rd_u16(r, n);
}

static int decode_ack(rd_t *r, uint8_t flags, wire_frame_t *f)
{
    uint16_t n;
    int rc = rd_count(r, flags, &n);
    if (rc)
        return rc;
    size_t need = (size_t)n * 8;
    if (r->left < need)
        return BL_ETRUNC;
    if (r->left > need) {
        r->why = "bytes after the ACK sequences";
        return BL_EINVAL;
    }
    if (n == 0)
        return 0;
    f->u.ack.seqs = malloc(need);
    if (!f->u.ack.seqs)
        return BL_ENOMEM;
    for (size_t i = 0; i < n; i++)
        rd_be(r, 8, &f->u.ack.seqs[i]);
    f->u.ack.n = n;
    return 0;
}

int wire_encode_hello(const wire_hello_t *h, uint8_t **out, size_t *out_len)
{
    if (!h || !bl_site_name_valid(h->site))
        return BL_EINVAL;
    size_t sl = strlen(h->site);
    int rc = alloc_out(WIRE_HEADER_LEN + 1 + sl + 4 + 4 + 8, out, out_len);
    if (rc)
        return rc;
    uint8_t *p = put_header(*out, WIRE_HELLO, 0);
    p = put_be(p, sl, 1);
    p = put_bytes(p, h->site, sl);
    p = put_be(p, h->features, 4);
    p = put_be(p, h->max_message_size, 4);
    put_be(p, h->epoch, 8);
    return 0;
}

/* Bytes after the epoch are ignored: a later version may append fields here
 * (docs/PROTOCOL.md, HELLO). */
static int decode_hello(rd_t *r, uint8_t flags, wire_hello_t *h)
{
    if (flags)
        return BL_EINVAL;
    int rc = rd_site(r, h->site);
    if (!rc)
        rc = rd_u32(r, &h->features);
    if (!rc)
        rc = rd_u32(r, &h->max_message_size);
    if (!rc)
        rc = rd_be(r, 8, &h->epoch);
    return rc;
}

/* ---- PING ------------------------------------------------------------------------- */

int wire_encode_ping(uint64_t token, bool reply, uint8_t **out, size_t *out_len)
{
    int rc = alloc_out(WIRE_HEADER_LEN + 8, out, out_len);
    if (rc)
        return rc;
    put_be(put_header(*out, WIRE_PING, reply ? WIRE_PING_REPLY : 0), token, 8);
    return 0;
}

static int decode_ping(rd_t *r, uint8_t flags, wire_frame_t *f)
{
    if (flags & ~WIRE_PING_REPLY)
        return BL_EINVAL;
    if (r->left != 8)
        return r->left < 8 ? BL_ETRUNC : BL_EINVAL;
    f->u.ping.reply = flags & WIRE_PING_REPLY;
    return rd_be(r, 8, &f->u.ping.token);
}

/* ---- FRAG ------------------------------------------------------------------------- */

size_t wire_frag_count(size_t frame_len, size_t chunk)
{
    if (chunk == 0)
        return 0;
    return frame_len / chunk + (frame_len % chunk != 0);
}

int wire_encode_frag(const uint8_t *frame, size_t frame_len, size_t chunk, uint32_t msg_no,
                     size_t index, uint8_t **out, size_t *out_len)
{
    if (!frame || frame_len == 0 || chunk == 0)
        return BL_EINVAL;
    if (frame_len > UINT32_MAX)
        return BL_ETOOBIG;
    /* A FRAG inside a FRAG would let reassembly recurse; receivers refuse it too. */
    if (frame_len >= 2 && frame[1] == WIRE_FRAG)
        return BL_EINVAL;
    if (index >= wire_frag_count(frame_len, chunk))
        return BL_EINVAL;
    size_t off = index * chunk; /* < frame_len since index < count: no overflow */
    size_t n = BL_MIN(chunk, frame_len - off);
    int rc = alloc_out(WIRE_FRAG_HEADER_LEN + n, out, out_len);
    if (rc)
        return rc;
    uint8_t *p = put_header(*out, WIRE_FRAG, off + n == frame_len ? FRAG_FLAG_LAST : 0);
    p = put_be(p, msg_no, 4);
    p = put_be(p, off, 4);
    p = put_be(p, frame_len, 4);
    put_bytes(p, frame + off, n);
    return 0;
}

static int decode_frag(rd_t *r, uint8_t flags, wire_frag_t *f)
{
    int rc = rd_u32(r, &f->msg_no);
    if (!rc)
        rc = rd_u32(r, &f->offset);
    if (!rc)
        rc = rd_u32(r, &f->total);
    if (!rc && r->left == 0)
        rc = BL_ETRUNC; /* a piece carries at least one byte */
    if (rc)
        return rc;
    f->chunk = r->p;
    f->chunk_len = r->left;
    bool fits = f->offset <= f->total && f->chunk_len <= (size_t)(f->total - f->offset);
    bool ends = fits && f->chunk_len == (size_t)(f->total - f->offset);
    if ((flags & ~FRAG_FLAG_LAST) || !fits || ends != ((flags & FRAG_FLAG_LAST) != 0)) {
        r->why = "a FRAG whose offset, length and total do not agree";
        return BL_EINVAL;
    }
    return 0;
}

/* ---- BATCH ------------------------------------------------------------------------ */

static bool batchable(const uint8_t *f, size_t len)
{
    return f && len >= WIRE_HEADER_LEN && f[0] == WIRE_VERSION &&
           (f[1] == WIRE_MSG || f[1] == WIRE_ACK);
}

int wire_encode_batch(const wire_piece_t *pieces, size_t n, uint8_t **out, size_t *out_len)
{
    if (!pieces || n == 0 || n > 0xffff)
        return BL_EINVAL;
    size_t total = WIRE_BATCH_HEADER_LEN;
    for (size_t i = 0; i < n; i++) {
        if (!batchable(pieces[i].data, pieces[i].len) || pieces[i].len > UINT32_MAX)
            return BL_EINVAL;
        total += WIRE_BATCH_ENTRY_OVERHEAD + pieces[i].len;
    }
    int rc = alloc_out(total, out, out_len);
    if (rc)
        return rc;
    uint8_t *p = put_header(*out, WIRE_BATCH, 0);
    p = put_be(p, n, 2);
    for (size_t i = 0; i < n; i++) {
        p = put_be(p, pieces[i].len, 4);
        p = put_bytes(p, pieces[i].data, pieces[i].len);
    }
    return 0;
}

/* The whole BATCH is checked here, so that wire_batch_next cannot fail and a bad batch
 * is refused before any of its frames is acted on. */
static int decode_batch(rd_t *r, uint8_t flags, wire_batch_t *b)
{
    uint16_t n;
    int rc = rd_count(r, flags, &n);
    if (rc)
        return rc;
    if (n == 0) {
        r->why = "an empty BATCH";
        return BL_EINVAL;
    }
    b->p = r->p;
    b->left = r->left;
    b->count = n;
    for (size_t i = 0; i < n; i++) {
        uint32_t len;
        const uint8_t *f;
        if ((rc = rd_u32(r, &len)) || (rc = rd_take(r, len, &f)))
            return rc;
        if (!batchable(f, len)) {
            r->why = "a BATCH entry that is not a MSG or ACK frame";
            return BL_EINVAL;
        }
    }
    if (r->left) {
        r->why = "bytes after the BATCH's frames";
        return BL_EINVAL;
    }
    return 0;
}

int wire_batch_next(wire_batch_t *b, const uint8_t **frame, size_t *len)
{
    if (!b || b->count == 0 || b->left < WIRE_BATCH_ENTRY_OVERHEAD)
        return 0;
    rd_t r = {.p = b->p, .left = b->left};
    uint32_t n;
    const uint8_t *f;
    if (rd_u32(&r, &n) || rd_take(&r, n, &f))
        return 0;
    *frame = f;
    *len = n;
    b->p = r.p;
    b->left = r.left;
    b->count--;
    return 1;
}

/* ---- frames ----------------------------------------------------------------------- */

int wire_decode(const uint8_t *buf, size_t len, size_t max_payload, wire_frame_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!buf || len < WIRE_HEADER_LEN)
        return BL_ETRUNC;
    /* Any other version is refused outright: layouts are not compatible across versions. */
    if (buf[0] != WIRE_VERSION) {
        out->why = "a frame version we do not speak";
        return BL_EVERSION;
    }
    uint8_t type = buf[1], flags = buf[2]; /* buf[3] is reserved, ignored */
    rd_t r = {.p = buf + WIRE_HEADER_LEN, .left = len - WIRE_HEADER_LEN};
    int rc;
    switch (type) {
    case WIRE_MSG:
        rc = wire_decode_msg_body(&r, flags, max_payload, &out->u.msg);
        break;
    case WIRE_ACK:
        rc = decode_ack(&r, flags, out);
        break;
    case WIRE_HELLO:
        rc = decode_hello(&r, flags, &out->u.hello);
        break;
    case WIRE_FRAG:
        rc = decode_frag(&r, flags, &out->u.frag);
        break;
    case WIRE_BATCH:
        rc = decode_batch(&r, flags, &out->u.batch);
        break;
    case WIRE_PING:
        rc = decode_ping(&r, flags, out);
        break;
    default:
        out->why = "an unknown frame type";
        return BL_EINVAL;
    }
    if (rc) {
        out->type = type;
        wire_frame_clear(out);
        out->why = r.why;
        return rc;
    }
    out->type = type;
    return 0;
}

void wire_frame_clear(wire_frame_t *f)
{
    if (!f)
        return;
    if (f->type == WIRE_MSG)
        msg_free(f->u.msg);
    else if (f->type == WIRE_ACK)
        free(f->u.ack.seqs);
    memset(f, 0, sizeof(*f));
}

/* ---- reassembly ------------------------------------------------------------------- */

void wire_reasm_init(wire_reasm_t *r, size_t max_total)
{
    memset(r, 0, sizeof(*r));
    r->max_total = max_total;
}

void wire_reasm_clear(wire_reasm_t *r)
{
    free(r->buf);
    r->buf = NULL;
    r->msg_no = 0;
    r->total = r->filled = 0;
}

/* Checks the piece against the frame in progress, or starts one. The piece is never
 * used to start a new frame when it breaks the current one. */
static int reasm_accept(wire_reasm_t *r, const wire_frag_t *f)
{
    if (!f->chunk || f->chunk_len == 0 || f->offset > f->total ||
        f->chunk_len > (size_t)(f->total - f->offset)) {
        r->why = "an inconsistent FRAG piece";
        return BL_EINVAL;
    }
    if (r->buf) {
        if (f->msg_no == r->msg_no && f->total == r->total && f->offset == r->filled)
            return 0;
        r->why = "a FRAG that does not continue the frame being reassembled";
        return BL_EINVAL;
    }
    if (f->offset != 0) {
        r->why = "a first FRAG piece not at offset 0";
        return BL_EINVAL;
    }
    /* Check the announced total before allocating anything for it. */
    if (f->total > r->max_total) {
        r->why = "a fragmented frame over the limit";
        return BL_ETOOBIG;
    }
    r->buf = malloc(f->total);
    if (!r->buf)
        return BL_ENOMEM;
    r->msg_no = f->msg_no;
    r->total = f->total;
    r->filled = 0;
    return 0;
}

int wire_reasm_feed(wire_reasm_t *r, const wire_frag_t *f, uint8_t **whole, size_t *whole_len)
{
    *whole = NULL;
    *whole_len = 0;
    int rc = reasm_accept(r, f);
    if (rc) {
        wire_reasm_clear(r);
        return rc;
    }
    memcpy(r->buf + r->filled, f->chunk, f->chunk_len);
    r->filled += f->chunk_len;
    if (r->filled < r->total)
        return 0;
    if (r->total >= 2 && r->buf[1] == WIRE_FRAG) {
        r->why = "a reassembled frame that is itself a FRAG";
        wire_reasm_clear(r);
        return BL_EINVAL;
    }
    *whole = r->buf;
    *whole_len = r->total;
    r->buf = NULL;
    wire_reasm_clear(r);
    return 1;
}
