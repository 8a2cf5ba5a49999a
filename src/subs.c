/* SPDX-License-Identifier: MIT */
/* subs.c - the record of a site's local subscriptions, and what to drop at a start. */
#include "subs.h"

#include <string.h>

#include "router.h"

GPtrArray *subs_local_filters(const config_t *cfg)
{
    GPtrArray *all = g_ptr_array_new_with_free_func(g_free);
    for (size_t i = 0; i < cfg->n_peers; i++) {
        const config_peer_t *p = &cfg->peers[i];
        for (size_t r = 0; r < p->n_rules; r++)
            g_ptr_array_add(all, g_strconcat(p->rules[r].local_prefix, p->rules[r].pattern, NULL));
    }
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < all->len; i++) {
        const char *f = g_ptr_array_index(all, i);
        bool keep = true;
        for (guint j = 0; j < all->len && keep; j++) {
            const char *g = g_ptr_array_index(all, j);
            if (i == j || !router_filter_covers(g, f))
                continue;
            keep = router_filter_covers(f, g) && i < j; /* of two equal, the first */
        }
        if (keep)
            g_ptr_array_add(out, g_strdup(f));
    }
    g_ptr_array_unref(all);
    return out;
}

char *subs_line(const char *filter, int qos, bool no_local)
{
    char *raw = g_strdup_printf("%d %d %s", qos, no_local ? 1 : 0, filter);
    char *line = g_strescape(raw, NULL);
    g_free(raw);
    return line;
}

/* The filter of a record line: after the second space of the unescaped line. */
static char *line_filter(const char *line)
{
    char *raw = g_strcompress(line);
    const char *sp = strchr(raw, ' ');
    const char *f = sp ? strchr(sp + 1, ' ') : NULL;
    char *filter = f && f[1] ? g_strdup(f + 1) : NULL;
    g_free(raw);
    return filter;
}

static bool wanted(const GPtrArray *want, const char *line)
{
    for (guint i = 0; i < want->len; i++)
        if (!strcmp(line, g_ptr_array_index(want, i)))
            return true;
    return false;
}

static void add_unsubscribe(subs_plan_t *p, const char *line)
{
    char *f = line_filter(line);
    if (!f)
        return; /* not a line of ours: nothing to drop */
    for (guint i = 0; i < p->unsubscribe->len; i++)
        if (!strcmp(f, g_ptr_array_index(p->unsubscribe, i))) {
            g_free(f);
            return;
        }
    g_ptr_array_add(p->unsubscribe, f);
}

void subs_plan(const char *old, const GPtrArray *want, subs_plan_t *out)
{
    out->unsubscribe = g_ptr_array_new_with_free_func(g_free);
    GString *now = g_string_new(NULL);
    for (guint i = 0; i < want->len; i++)
        g_string_append_printf(now, "%s\n", (const char *)g_ptr_array_index(want, i));
    GString *both = g_string_new(now->str);
    if (!old)
        for (guint i = 0; i < want->len; i++)
            add_unsubscribe(out, g_ptr_array_index(want, i));
    char **lines = g_strsplit(old ? old : "", "\n", -1);
    for (char **lp = lines; *lp; lp++) {
        if (!**lp || wanted(want, *lp))
            continue;
        add_unsubscribe(out, *lp);
        g_string_append_printf(both, "%s\n", *lp);
    }
    g_strfreev(lines);
    out->record_now = g_string_free(now, FALSE);
    out->record_both = g_string_free(both, FALSE);
}

void subs_plan_clear(subs_plan_t *p)
{
    if (p->unsubscribe)
        g_ptr_array_unref(p->unsubscribe);
    g_free(p->record_now);
    g_free(p->record_both);
    memset(p, 0, sizeof(*p));
}
