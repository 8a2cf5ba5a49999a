/* SPDX-License-Identifier: MIT */
/* confscan.h - the site's config file as text, for config.c: a line scan of our own
 * (line numbers, repeated sections and keys, what GKeyFile would silently accept), then
 * GKeyFile for the values, and typed getters whose every error names the file, the
 * line, the [section] and the key. Knows no section: config.c does. Pure apart from
 * reading nothing at all (config.c reads the file). */
#ifndef BL_CONFSCAN_H
#define BL_CONFSCAN_H

#include <stdbool.h>
#include <stddef.h>

#include <glib.h>

#include "common.h"

typedef struct confscan_key {
    int sect; /* index into loader.sects */
    char *key;
    char *value;
    int line;
} confscan_key_t;

typedef struct confscan {
    const char *file;
    char *dir; /* where a relative secret_file is looked for */
    char *err;
    size_t errlen;
    GKeyFile *kf;
    GPtrArray *sects; /* section names in file order */
    GArray *sect_lines;
    GArray *keys;      /* confscan_key_t in file order */
    GHashTable *lines; /* "sect\nkey" or "sect" -> first line (GINT_TO_POINTER) */
} confscan_t;

/* "FILE[:LINE]: [section] key: reason" into L->err; returns BL_EINVAL. */
int confscan_fail(confscan_t *L, int line, const char *sect, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The line of [sect] key (or of [sect] when key is NULL), 0 when unknown. */
int confscan_line(const confscan_t *L, const char *sect, const char *key);
/* Pass 1 over our private copy of the text (';' comments become '#' in place). */
int confscan_scan(confscan_t *L, char *text);
/* NUL bytes and UTF-8, with the line. */
int confscan_check_bytes(confscan_t *L, const char *data, size_t len);
void confscan_key_clear(gpointer p);
void confscan_clear(confscan_t *L);

/* Typed values of [sect] key: 0 when absent (dst untouched) or valid, else the error. */
char *confscan_str(confscan_t *L, const char *sect, const char *key);
int confscan_long(confscan_t *L, const char *sect, const char *key, long min, long max, long *dst);
int confscan_int(confscan_t *L, const char *sect, const char *key, long min, long max, int *dst);
int confscan_bool(confscan_t *L, const char *sect, const char *key, bool *dst);
int confscan_size(confscan_t *L, const char *sect, const char *key, size_t max, size_t *dst);
/* HOST[:PORT] (an IPv6 address in brackets): NULL when valid, else why not. */
const char *confscan_parse_hostport(const char *s, int defport, char **host, int *port);
int confscan_hostport(confscan_t *L, const char *sect, const char *key, int defport, char **host,
                      int *port);

#endif
