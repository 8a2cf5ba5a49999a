/* SPDX-License-Identifier: MIT */
/* config.h - the site's configuration file (GKeyFile INI), parsed and validated.
 *
 *   [site]    name, state_dir, log_level, max_message_size, queue_max_messages,
 *             delivery (qos | exactly-once | at-least-once), link_window
 *   [local]   host, port, username, password, tls, cafile, client_id, keepalive
 *   [signal]  url (mqtt://host:port or mqtts://host:port), username, password, cafile,
 *             secret (the network secret, >= 16 chars) or secret_file
 *   [ice]     stun (host:port), turn (host:port), turn_username, turn_password,
 *             tcp (bool), force_relay (bool), send_host_candidates (bool)
 *   [metrics] listen (HOST:PORT of the Prometheus endpoint; none: no endpoint)
 *   [peer NAME] fingerprint (SHA-256, AB:CD:..), topic = RULE (repeatable: GKeyFile keeps
 *             only the last of a repeated key, so repeats are read from the raw text),
 *             mode (webrtc | esp32-example), profile (site | browser: webrtc only),
 *             queue_qos0 (bool), retained_max_topics,
 *             retained_max_bytes; with mode = esp32-example: insecure (must be true),
 *             role (peer1 | peer2: ours in the example's handshake), broker
 *             (mqtt://HOST[:PORT], default [signal] url), sync_topic (the example's
 *             topic base) and no fingerprint
 *
 * [signal] is required when a webrtc peer is configured (url and secret), or an
 * esp32-example peer without its own broker (url only).
 *
 * Every error names the file, the [section] and key, and what is wrong; the daemon
 * refuses to start on any. Pure apart from reading the file (and secret_file). */
#ifndef BL_CONFIG_H
#define BL_CONFIG_H

#include "common.h"
#include "router.h"

/* A broker the daemon connects to: [local], [signal], an esp32-example peer's. Every
 * string is its own (g_free; the password is wiped first). */
typedef struct config_broker {
    char *host;
    int port;
    bool tls;
    char *username, *password; /* NULL: none */
    char *cafile;              /* NULL: the system store (with tls) */
} config_broker_t;

typedef struct config_peer {
    char *name;
    char *fingerprint; /* normalised upper-case "AB:CD:..." (95 chars); NULL: none */
    char *mode;        /* "webrtc" (default) or "esp32-example" */
    /* profile = browser (webrtc only): fingerprint is the SHA-256 of the DER
     * SubjectPublicKeyInfo of the browser's WebCrypto ECDSA P-256 key, which signs its
     * signalling; its DTLS certificate is the one its signed SDP names (peerid.h). The
     * site always offers to it. false: profile = site, the default. */
    bool browser;
    bool insecure; /* insecure = true: the peer's link is plaintext (esp32-example) */
    /* esp32-example: our role in the example's handshake (1: we send "0"), its broker
     * (plain MQTT unless it is the [signal] one: then a copy of [signal]'s, login and
     * cafile too) and topic base. */
    int esp_role;
    config_broker_t esp_broker;
    char *esp_sync_topic;
    bool queue_qos0;
    size_t retained_max_topics; /* retained entries this peer may keep in our store */
    size_t retained_max_bytes;  /* ... and their bytes as stored */
    route_rule_t *rules;
    size_t n_rules;
} config_peer_t;

/* How a message from a peer reaches the local broker (docs/PROTOCOL.md, Delivery). */
typedef enum {
    CONFIG_DELIVERY_QOS = 0,      /* by each message's QoS: 0 at most, 1 at least, 2 exactly once */
    CONFIG_DELIVERY_EXACTLY_ONCE, /* every QoS >= 1 message exactly once (the echo) */
    CONFIG_DELIVERY_AT_LEAST_ONCE /* every QoS >= 1 message at least once */
} config_delivery_t;

typedef struct config {
    char *path;

    char *site_name;
    char *state_dir;
    int log_level;             /* log_level_t */
    size_t max_message_size;   /* default BL_MAX_MESSAGE_DEFAULT */
    size_t queue_max_messages; /* per peer, default 1000000 */
    /* Bytes a link may have in flight each way: its SCTP send and receive buffers (and the
     * UDP receive buffer under them). Default BL_LINK_WINDOW_DEFAULT. */
    size_t link_window;
    config_delivery_t delivery; /* default CONFIG_DELIVERY_QOS */

    config_broker_t local; /* default 127.0.0.1, port 1883 (8883 with tls) */
    char *local_client_id; /* default "brokerless-<site>" */
    int local_keepalive;   /* seconds, default 30 */

    config_broker_t signal; /* host NULL: no [signal] url */
    char *network_secret;   /* never logged */

    char *stun_host;
    int stun_port; /* NULL = none */
    char *turn_host;
    int turn_port; /* NULL = none */
    char *turn_username, *turn_password;
    bool ice_tcp;
    bool force_relay;
    bool send_host_candidates; /* default true */

    char *metrics_host; /* NULL: no metrics endpoint (the default) */
    int metrics_port;   /* default 9469 */

    config_peer_t *peers;
    size_t n_peers;
} config_t;

/* Load and validate. On error returns BL_EINVAL (or BL_EIO) and writes
 * "FILE: [section] key: reason" into err. *out is only filled on success. */
int config_load_file(const char *path, config_t *out, char *err, size_t errlen);
/* Same from memory; `name` stands for the file name in messages. */
int config_load_data(const char *data, size_t len, const char *name, config_t *out, char *err,
                     size_t errlen);
void config_free(config_t *c);
const config_peer_t *config_find_peer(const config_t *c, const char *name);
/* The signalling broker as [signal] url names it, mqtt[s]://host:port (g_free). */
char *config_signal_url(const config_t *c);
/* Normalise a fingerprint ("ab:cd..", "ABCD..", "sha-256 AB:..") to "AB:CD:..";
 * returns BL_EINVAL unless it is 32 bytes of hex. out must hold 96 bytes. */
int config_fingerprint_normalise(const char *in, char out[96]);

#endif
