/* SPDX-License-Identifier: MIT */
/* confscan.c - the site's config file as text (confscan.h). */
#include "confscan.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define fail(L, sect, key, ...)                                                                    \
    confscan_fail((L), confscan_line((L), (sect), (key)), (sect), (key), __VA_ARGS__)

/* ---- errors ------------------------------------------------------------------------ */

int confscan_line(const confscan_t *L, const char *sect, const char *key)
{
    if (!L->lines || !sect)
        return 0;
    int line = 0;
    if (key) {
        char *k = g_strconcat(sect, "\n", key, NULL);
        line = GPOINTER_TO_INT(g_hash_table_lookup(L->lines, k));
        g_free(k);
    }
    /* A missing key is reported at its section's header. */
    return line ? line : GPOINTER_TO_INT(g_hash_table_lookup(L->lines, sect));
}

/* "FILE[:LINE]: [section] key: reason"; returns BL_EINVAL. */
int confscan_fail(confscan_t *L, int line, const char *sect, const char *key, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    char where[32] = "";
    if (line > 0)
        snprintf(where, sizeof(where), ":%d", line);
    snprintf(L->err, L->errlen, "%s%s: %s%.100s%s%s%s%s", L->file, where, sect ? "[" : "",
             sect ? sect : "", sect ? "]" : "", key ? " " : "", key ? key : "",
             sect || key ? ": " : "");
    size_t used = strlen(L->err);
    if (used + 1 < L->errlen)
        snprintf(L->err + used, L->errlen - used, "%s", why);
    return BL_EINVAL;
}

/* ---- pass 1: our own line scan ------------------------------------------------------ */

static void remember(confscan_t *L, char *hkey, int line)
{
    /* Keeps the first line; takes ownership of hkey. */
    if (g_hash_table_contains(L->lines, hkey))
        g_free(hkey);
    else
        g_hash_table_insert(L->lines, hkey, GINT_TO_POINTER(line));
}

/* Same rules as GKeyFile: "[name]" then only blanks; no '[' ']' or controls in name. */
static int scan_section(confscan_t *L, const char *s, int line)
{
    const char *close = strchr(s, ']');
    const char *after = close ? close + 1 : NULL;
    while (after && (*after == ' ' || *after == '\t'))
        after++;
    bool ok = close && close > s + 1 && *after == '\0';
    for (const char *p = s + 1; ok && p < close; p++)
        if (*p == '[' || g_ascii_iscntrl(*p))
            ok = false;
    if (!ok)
        return confscan_fail(L, line, NULL, NULL, "\"%.100s\" is not a [section] header", s);
    char *name = g_strndup(s + 1, (gsize)(close - s - 1));
    int first = GPOINTER_TO_INT(g_hash_table_lookup(L->lines, name));
    if (first) {
        confscan_fail(L, line, name, NULL, "section repeated (first at line %d); give each once",
                      first);
        g_free(name);
        return BL_EINVAL;
    }
    g_ptr_array_add(L->sects, name);
    g_array_append_val(L->sect_lines, line);
    remember(L, g_strdup(name), line);
    return 0;
}

static int scan_key(confscan_t *L, const char *s, int line)
{
    const char *eq = strchr(s, '=');
    if (!eq)
        return confscan_fail(
            L, line, NULL, NULL,
            "\"%.100s\" is not a key = value line, a [section] header or a comment", s);
    char *key = g_strstrip(g_strndup(s, (gsize)(eq - s)));
    if (!*key || L->sects->len == 0) {
        confscan_fail(L, line, NULL, NULL,
                      *key ? "key \"%.100s\" comes before any [section]"
                           : "\"%.100s\" has no key before '='",
                      *key ? key : s);
        g_free(key);
        return BL_EINVAL;
    }
    int sect = (int)L->sects->len - 1;
    const char *sname = g_ptr_array_index(L->sects, sect);
    char *hkey = g_strconcat(sname, "\n", key, NULL);
    int first = GPOINTER_TO_INT(g_hash_table_lookup(L->lines, hkey));
    /* GKeyFile would silently keep the last of a repeated key; only topic repeats. */
    if (first && strcmp(key, "topic") != 0) {
        confscan_fail(L, line, sname, key, "given twice (first at line %d)", first);
        g_free(hkey);
        g_free(key);
        return BL_EINVAL;
    }
    remember(L, hkey, line);
    confscan_key_t k = {sect, key, g_strstrip(g_strdup(eq + 1)), line};
    g_array_append_val(L->keys, k);
    return 0;
}

/* text is our private copy: ';' comment lines are turned into '#' ones in place so
 * GKeyFile (which only knows '#') reads the same file we do. */
int confscan_scan(confscan_t *L, char *text)
{
    int lineno = 0, rc = 0;
    for (char *line = text; line && rc == 0;) {
        lineno++;
        char *nl = strchr(line, '\n');
        char *end = nl ? nl : line + strlen(line);
        char *s = line;
        while (s < end && g_ascii_isspace(*s))
            s++;
        if (s < end && *s == ';')
            *s = '#';
        char *l = g_strndup(s, (gsize)(end - s));
        size_t n = strlen(l);
        if (n && l[n - 1] == '\r')
            l[n - 1] = '\0';
        if (*l == '[')
            rc = scan_section(L, l, lineno);
        else if (*l && *l != '#')
            rc = scan_key(L, l, lineno);
        g_free(l);
        line = nl ? nl + 1 : NULL;
    }
    return rc;
}

static int confscan_line_at(const char *data, const char *pos)
{
    int line = 1;
    for (const char *p = data; p < pos; p++)
        line += *p == '\n';
    return line;
}

/* ---- typed values --------------------------------------------------------------------- */

/* The value as written, blanks trimmed; NULL when absent or empty (empty = not set). */
char *confscan_str(confscan_t *L, const char *sect, const char *key)
{
    char *v = g_key_file_get_value(L->kf, sect, key, NULL);
    if (v && !*g_strstrip(v)) {
        g_free(v);
        v = NULL;
    }
    return v;
}

int confscan_long(confscan_t *L, const char *sect, const char *key, long min, long max, long *dst)
{
    char *v = confscan_str(L, sect, key);
    if (!v)
        return 0;
    char *end = NULL;
    errno = 0;
    long long x = g_ascii_strtoll(v, &end, 10);
    int rc = 0;
    if (errno || end == v || *end || x < min || x > max)
        rc = fail(L, sect, key, "\"%.100s\" is not a whole number from %ld to %ld", v, min, max);
    else
        *dst = (long)x;
    g_free(v);
    return rc;
}

int confscan_int(confscan_t *L, const char *sect, const char *key, long min, long max, int *dst)
{
    long x = *dst;
    int rc = confscan_long(L, sect, key, min, max, &x);
    *dst = (int)x;
    return rc;
}

int confscan_bool(confscan_t *L, const char *sect, const char *key, bool *dst)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    char *v = confscan_str(L, sect, key);
    if (!v)
        return 0;
    bool found = false;
    for (size_t i = 0; i < BL_ARRAY_LEN(yes); i++) {
        bool is_yes = g_ascii_strcasecmp(v, yes[i]) == 0;
        if (is_yes || g_ascii_strcasecmp(v, no[i]) == 0) {
            *dst = is_yes;
            found = true;
        }
    }
    int rc = 0;
    if (!found)
        rc = fail(L, sect, key, "\"%.100s\" is not a boolean (true or false)", v);
    g_free(v);
    return rc;
}

/* Bytes with an optional k (KiB) or M (MiB) suffix. */
int confscan_size(confscan_t *L, const char *sect, const char *key, size_t max, size_t *dst)
{
    char *v = confscan_str(L, sect, key);
    if (!v)
        return 0;
    char *end = NULL;
    errno = 0;
    guint64 x = g_ascii_strtoull(v, &end, 10);
    guint64 mult = 1;
    if (end != v && (*end == 'k' || *end == 'K'))
        mult = 1024, end++;
    else if (end != v && (*end == 'm' || *end == 'M'))
        mult = 1024 * 1024, end++;
    int rc = 0;
    if (errno || end == v || *end || !g_ascii_isdigit(v[0]) || x == 0 || x > max / mult)
        rc = fail(L, sect, key,
                  "\"%.100s\" is not a size from 1 to %zu bytes (suffix k or M "
                  "for KiB or MiB)",
                  v, max);
    else
        *dst = (size_t)(x * mult);
    g_free(v);
    return rc;
}

static bool host_chars_ok(const char *h, bool bracketed)
{
    for (const char *p = h; *p; p++) {
        bool ok = bracketed ? (g_ascii_isxdigit(*p) || *p == ':' || *p == '.')
                            : (g_ascii_isalnum(*p) || *p == '.' || *p == '-' || *p == '_');
        if (!ok)
            return false;
    }
    return *h != '\0';
}

/* "host", "host:port", "[v6]" or "[v6]:port". Returns a reason or NULL. */
const char *confscan_parse_hostport(const char *s, int defport, char **host, int *port)
{
    const char *colon, *hs = s, *he;
    bool br = s[0] == '[';
    if (br) {
        hs = s + 1;
        he = strchr(hs, ']');
        if (!he)
            return "has '[' without ']'";
        colon = he[1] == ':' ? he + 1 : NULL;
        if (he[1] && !colon)
            return "has something other than :PORT after ']'";
    } else {
        colon = strchr(s, ':');
        if (colon && strchr(colon + 1, ':'))
            return "has several ':' (write an IPv6 address in brackets: [::1]:3478)";
        he = colon ? colon : s + strlen(s);
    }
    char *h = g_strndup(hs, (gsize)(he - hs));
    if (!host_chars_ok(h, br)) {
        g_free(h);
        return "does not start with a host name or address";
    }
    long p = defport;
    if (colon) {
        char *end = NULL;
        p = g_ascii_isdigit(colon[1]) ? strtol(colon + 1, &end, 10) : -1;
        if (p < 1 || p > 65535 || *end) {
            g_free(h);
            return "has a port that is not a number from 1 to 65535";
        }
    }
    *host = h;
    *port = (int)p;
    return NULL;
}

int confscan_hostport(confscan_t *L, const char *sect, const char *key, int defport, char **host,
                      int *port)
{
    char *v = confscan_str(L, sect, key);
    if (!v)
        return 0;
    const char *why = confscan_parse_hostport(v, defport, host, port);
    if (why)
        fail(L, sect, key, "\"%.100s\" %s; expected HOST[:PORT]", v, why);
    g_free(v);
    return why ? BL_EINVAL : 0;
}

void confscan_key_clear(gpointer p)
{
    confscan_key_t *k = p;
    g_free(k->key);
    g_free(k->value);
}

void confscan_clear(confscan_t *L)
{
    if (L->kf)
        g_key_file_free(L->kf);
    if (L->sects)
        g_ptr_array_free(L->sects, TRUE);
    if (L->sect_lines)
        g_array_free(L->sect_lines, TRUE);
    if (L->keys)
        g_array_free(L->keys, TRUE);
    if (L->lines)
        g_hash_table_destroy(L->lines);
    g_free(L->dir);
}

/* Whole-file checks GKeyFile does not make with a line number. */
int confscan_check_bytes(confscan_t *L, const char *data, size_t len)
{
    const char *bad = memchr(data, '\0', len);
    if (bad)
        return confscan_fail(L, confscan_line_at(data, bad), NULL, NULL, "contains a NUL byte");
    if (!g_utf8_validate_len(data, len, &bad))
        return confscan_fail(L, confscan_line_at(data, bad), NULL, NULL, "is not valid UTF-8");
    return 0;
}
