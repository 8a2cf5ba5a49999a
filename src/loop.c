/* SPDX-License-Identifier: MIT */
/* loop.c - sources on the GLib main loop (loop.h). */
#include "loop.h"

GSource *loop_attach(GMainContext *ctx, GSource *src, GSourceFunc fn, void *ud)
{
    g_source_set_callback(src, fn, ud, NULL);
    g_source_attach(src, ctx);
    g_source_unref(src);
    return src;
}

GSource *loop_timeout(GMainContext *ctx, unsigned ms, GSourceFunc fn, void *ud)
{
    return loop_attach(ctx, g_timeout_source_new(ms), fn, ud);
}

GSource *loop_idle(GMainContext *ctx, int priority, GSourceFunc fn, void *ud)
{
    GSource *src = g_idle_source_new();
    g_source_set_priority(src, priority);
    return loop_attach(ctx, src, fn, ud);
}

void loop_cancel(GSource **src)
{
    if (*src) {
        g_source_destroy(*src);
        *src = NULL;
    }
}
