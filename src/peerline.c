/* SPDX-License-Identifier: MIT */
/* peerline.c - see peerline.h. */
#include "peerline.h"

#include <stdio.h>
#include <string.h>

#include "config.h"

char *peerline_format(const char *name, const char *fingerprint, const char *signal)
{
    return signal && *signal
               ? g_strdup_printf(PEERLINE_TAG " name=%s fingerprint=%s signal=%s", name,
                                 fingerprint, signal)
               : g_strdup_printf(PEERLINE_TAG " name=%s fingerprint=%s", name, fingerprint);
}

static int field(peerline_t *out, const char *w, char *err, size_t errlen)
{
    const char *eq = strchr(w, '=');
    if (!eq) {
        snprintf(err, errlen, "\"%.40s\" is not KEY=VALUE", w);
        return BL_EINVAL;
    }
    size_t kl = (size_t)(eq - w);
    const char *v = eq + 1;
    if (kl == 4 && !strncmp(w, "name", 4)) {
        if (!bl_site_name_valid(v)) {
            snprintf(err, errlen,
                     "name \"%.70s\" is not a site name (1 to 64 of A-Z a-z 0-9 . _ -)", v);
            return BL_EINVAL;
        }
        snprintf(out->name, sizeof(out->name), "%s", v);
    } else if (kl == 11 && !strncmp(w, "fingerprint", 11)) {
        if (config_fingerprint_normalise(v, out->fingerprint)) {
            snprintf(err, errlen, "fingerprint \"%.100s\" is not 32 hex bytes (AB:CD:...)", v);
            return BL_EINVAL;
        }
    } else if (kl == 6 && !strncmp(w, "signal", 6)) {
        if (strlen(v) >= sizeof(out->signal) ||
            (strncmp(v, "mqtt://", 7) != 0 && strncmp(v, "mqtts://", 8) != 0)) {
            snprintf(err, errlen, "signal \"%.100s\" is not an mqtt:// or mqtts:// URL", v);
            return BL_EINVAL;
        }
        snprintf(out->signal, sizeof(out->signal), "%s", v);
    } else if (kl == 7 && !strncmp(w, "profile", 7)) {
        if (strcmp(v, "browser") != 0 && strcmp(v, "site") != 0) {
            snprintf(err, errlen, "profile \"%.40s\" is not site or browser", v);
            return BL_EINVAL;
        }
        out->browser = !strcmp(v, "browser");
    } else {
        snprintf(err, errlen, "unknown key \"%.*s\" (name, fingerprint, signal, profile)",
                 (int)BL_MIN(kl, 40), w);
        return BL_EINVAL;
    }
    return 0;
}

int peerline_parse(const char *line, peerline_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (!line || strlen(line) > 1024) {
        snprintf(err, errlen, "not a pairing line (longer than 1024 bytes)");
        return BL_EINVAL;
    }
    char **w = g_strsplit_set(line, " \t\r\n", -1);
    int rc = 0;
    size_t n = 0;
    for (char **p = w; *p && !rc; p++) {
        if (!**p)
            continue;
        if (n++ == 0) {
            if (strcmp(*p, PEERLINE_TAG) != 0) {
                snprintf(err, errlen,
                         "not a pairing line: it starts with \"" PEERLINE_TAG "\" (brokerless init "
                         "prints it at the other site)");
                rc = BL_EINVAL;
            }
            continue;
        }
        rc = field(out, *p, err, errlen);
    }
    g_strfreev(w);
    if (!rc && (!out->name[0] || !out->fingerprint[0])) {
        snprintf(err, errlen, "the line lacks %s", out->name[0] ? "fingerprint=" : "name=");
        rc = BL_EINVAL;
    }
    return rc;
}

char *peerline_section(const peerline_t *p, const char *self, const char *const *rules,
                       size_t n_rules)
{
    GString *g = g_string_new(NULL);
    g_string_append_printf(g, "[peer %s]\n%sfingerprint = %s\n", p->name,
                           p->browser ? "profile = browser\n" : "", p->fingerprint);
    g_string_append(g, "# What crosses, in mosquitto's bridge words:\n"
                       "#   topic = PATTERN in|out|both QOS [LOCAL_PREFIX REMOTE_PREFIX]\n");
    if (n_rules) {
        for (size_t i = 0; i < n_rules; i++)
            g_string_append_printf(g, "topic = %s\n", rules[i]);
        return g_string_free(g, FALSE);
    }
    g_string_append_printf(g,
                           "# A narrow start: what this site publishes under %s/ goes to %s,\n"
                           "# what %s publishes under %s/ comes in. Widen it to what you need,\n"
                           "# e.g. topic = sensors/# out 1\n"
                           "topic = %s/# out 1\n"
                           "topic = %s/# in 1\n",
                           self, p->name, p->name, p->name, self, p->name);
    return g_string_free(g, FALSE);
}

char *peerline_append(const char *text, const char *section)
{
    size_t n = strlen(text);
    const char *sep = !n ? "" : text[n - 1] == '\n' ? "\n" : "\n\n";
    return g_strconcat(text, sep, section, NULL);
}

/* "[peer NAME]" with any blanks where the config allows them. */
static bool is_header(const char *line, const char *name)
{
    while (*line == ' ' || *line == '\t')
        line++;
    if (*line++ != '[' || strncmp(line, "peer", 4) != 0)
        return false;
    line += 4;
    if (*line != ' ' && *line != '\t')
        return false;
    while (*line == ' ' || *line == '\t')
        line++;
    size_t nl = strlen(name);
    if (strncmp(line, name, nl) != 0)
        return false;
    line += nl;
    while (*line == ' ' || *line == '\t')
        line++;
    return *line == ']';
}

static bool is_any_header(const char *line)
{
    while (*line == ' ' || *line == '\t')
        line++;
    return *line == '[';
}

static bool is_aside(const char *line)
{
    while (*line == ' ' || *line == '\t')
        line++;
    return !*line || *line == '#' || *line == ';';
}

char *peerline_remove(const char *text, const char *name)
{
    char **lines = g_strsplit(text, "\n", -1);
    guint n = g_strv_length(lines), start = n, end = n;
    for (guint i = 0; i < n && start == n; i++)
        if (is_header(lines[i], name))
            start = i;
    if (start == n) {
        g_strfreev(lines);
        return NULL;
    }
    for (guint i = start + 1; i < n && end == n; i++)
        if (is_any_header(lines[i]))
            end = i;
    /* Comments and blank lines just above the next header introduce it. */
    if (end < n)
        while (end > start + 1 && is_aside(lines[end - 1]))
            end--;
    GString *g = g_string_new(NULL);
    for (guint i = 0; i < n; i++) {
        if (i >= start && i < end)
            continue;
        g_string_append(g, lines[i]);
        if (i + 1 < n)
            g_string_append_c(g, '\n');
    }
    g_strfreev(lines);
    return g_string_free(g, FALSE);
}
