/* SPDX-License-Identifier: MIT */
/* webserve.h - `brokerless web`: the browser peer's page (web/) served by libsoup 3 on a
 * loopback address, where a browser counts the page as a secure context (WebCrypto,
 * IndexedDB). Static files only, GET and HEAD: regular files under DIR whose every path
 * segment is [A-Za-z0-9._-] and does not start with a dot, and of node_modules only the
 * browser bundle of mqtt.js (node_modules/mqtt/dist/). Every answer forbids loading
 * anything from elsewhere (Content-Security-Policy), so the page works offline from
 * these files alone. */
#ifndef BL_WEBSERVE_H
#define BL_WEBSERVE_H

#include "common.h"

typedef struct webserve webserve_t;

/* The file under the served directory for a request path ("/" is index.html): the
 * relative path in out, 0; BL_EINVAL for anything outside what is served. Pure. */
int webserve_path(const char *url_path, char *out, size_t outlen);
/* The Content-Type for a file name, by its extension. Pure. */
const char *webserve_type(const char *name);
/* Serve dir on host:port (host a loopback address, else BL_EINVAL); err says why not. */
int webserve_new(const char *host, int port, const char *dir, webserve_t **out, char *err,
                 size_t errlen);
/* Requests answered, and refused (not found, outside, other methods), so far. */
void webserve_counts(const webserve_t *w, uint64_t *served, uint64_t *refused);
void webserve_free(webserve_t *w);

#endif
