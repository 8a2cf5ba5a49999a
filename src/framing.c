/* SPDX-License-Identifier: MIT */
#include "framing.h"

#include <stdlib.h>
#include <string.h>

#include "espframe.h"

const framing_t framing_wire = {
    .name = "brokerless",
    .max_frame = WIRE_MAX_CHUNK,
    .fragments = true,
    .batches = true,
    .control = true,
    .encode_msg = wire_encode_msg,
    .encode_ack = wire_encode_ack,
    .encode_hello = wire_encode_hello,
    .decode = wire_decode,
};

static int esp_encode_msg(const bl_msg_t *m, uint8_t **out, size_t *len)
{
    if (!m || !m->topic)
        return BL_EINVAL;
    return espframe_encode(m->topic, strlen(m->topic), m->payload, m->payload_len, out, len);
}

/* The example's receiver republishes at QoS 0, retain 0: that is all a frame means. */
static int esp_decode(const uint8_t *buf, size_t len, size_t max_payload, wire_frame_t *out)
{
    espframe_t f;
    memset(out, 0, sizeof(*out));
    int rc = espframe_parse(buf, len, &f);
    if (rc) {
        out->why = f.why;
        return rc;
    }
    if (f.payload_len > max_payload) {
        out->why = "a payload over max_message_size";
        return BL_ETOOBIG;
    }
    bl_msg_t *m = msg_new();
    if (!m)
        return BL_ENOMEM;
    m->topic = strndup(f.topic, f.topic_len);
    if (!m->topic || msg_set_payload(m, f.payload, f.payload_len)) {
        msg_free(m);
        return BL_ENOMEM;
    }
    out->type = WIRE_MSG;
    out->u.msg = m;
    return 0;
}

const framing_t framing_esp = {
    .name = "esp32-example",
    .max_frame = ESPFRAME_MAX,
    .encode_msg = esp_encode_msg,
    .decode = esp_decode,
};
